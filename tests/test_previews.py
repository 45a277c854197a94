"""Link previews end to end: real MQTT clients, a real HTTPS site on 127.0.0.1 (trusted through
``previews.ca_file``, reached as ``localhost`` through ``previews.allow``, the operator's
intranet exception), and the refusals: plain http, a private address, a redirect to one, a
huge page, hostile pages, the per-user rate, the cache, the off switch, recall and edit."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from imgate.app import App
from services.previews.extract import cache_key, first_https_url
from services.previews.parse import parse_page
from tests.fakes.tcp import TcpServer
from tests.fakes.webhook import BlackHole, tls_contexts
from tests.helpers import Device, connect, on, platform, tweak

HTML = {"Content-Type": "text/html; charset=utf-8"}
PAGE = (b'<html><head><title>Fallback</title><meta property="og:title" content="The &amp; Title">'
        b'<meta property="og:description" content="  A   description\nof the page ">'
        b'<meta property="og:image" content="/img/cover.png"></head><body>hi</body></html>')


@dataclass
class Page:
    body: bytes = PAGE
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: dict(HTML))
    hold: asyncio.Event | None = None  # answer once set
    flood: int = 0  # bytes of filler after the body (announced in Content-Length)


class Site(TcpServer):
    """An HTTPS server on 127.0.0.1 serving ``pages`` by path; ``requests`` lists the paths asked,
    ``connections`` counts TCP connections, ``written`` the filler bytes it managed to send."""

    def __init__(self, context: ssl.SSLContext, client_context: ssl.SSLContext) -> None:
        self.context = context
        self.client_context = client_context  # trusts the site's certificate
        self.pages: dict[str, Page] = {}
        self.requests: list[str] = []
        self.connections = 0
        self.written = 0
        self.arrived: asyncio.Queue[str] = asyncio.Queue()

    def tls(self) -> ssl.SSLContext:
        return self.context

    def url(self, path: str, host: str = "localhost") -> str:
        return f"https://{host}:{self.port}{path}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(IndexError):  # not an HTTP request line
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.decode("latin-1").split("\r\n")[0].split(" ")[1]
                self.requests.append(path)
                self.arrived.put_nowait(path)
                page = self.pages.get(path, Page(b"missing", 404))
                if page.hold is not None:
                    await page.hold.wait()
                headers = {**page.headers, "Content-Length": str(len(page.body) + page.flood)}
                writer.write(f"HTTP/1.1 {page.status} X\r\n".encode()
                             + "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode() + b"\r\n" + page.body)
                await writer.drain()
                chunk = b"<p>" + b"x" * 65533
                while self.written < page.flood:
                    writer.write(chunk)
                    await writer.drain()
                    self.written += len(chunk)


@pytest.fixture(name="site")
async def site_fixture() -> AsyncIterator[Site]:
    async with Site(*tls_contexts("localhost")) as running:
        yield running


@pytest.fixture(name="trusted")
def trusted_fixture(tmp_path: Path, site: Site) -> Path:
    """The site's certificate as a CA file for ``previews.ca_file``."""
    der = site.client_context.get_ca_certs(binary_form=True)
    assert len(der) == 1
    path = tmp_path / "site-ca.pem"
    path.write_text(ssl.DER_cert_to_PEM_cert(der[0]))
    return path


def conf(settings: Settings, ca: Path, **changes: Any) -> Settings:
    return tweak(settings, "previews", **{"enabled": True, "allow": ["localhost"], "ca_file": ca, "concurrency": 1,
                                          "user_burst": 100, **changes})


@contextlib.asynccontextmanager
async def chat(settings: Settings, *uids: str) -> AsyncIterator[tuple[App, list[Device]]]:
    async with platform(settings, *uids) as (app, tokens), contextlib.AsyncExitStack() as stack:
        devices = [await stack.enter_async_context(connect(app.mqtt_port, u, "phone", tokens[u])) for u in uids]
        yield app, devices


def is_preview(**fields_: Any) -> Any:
    return on("/in/event", type="preview", **fields_)


async def send(dev: Device, cid: str, to: str, text: str) -> dict[str, Any]:
    return await dev.send_and_ack(cid, to, text)


# ---- the rules, without the network -------------------------------------------------------------
def test_the_first_https_link_is_the_one() -> None:
    assert first_https_url("see http://a.example and https://b.example/x?y=1, and https://c.example") == \
        "https://b.example/x?y=1"
    assert first_https_url("(https://en.example/wiki/Foo_(bar)).") == "https://en.example/wiki/Foo_(bar)"
    assert first_https_url("no link here") is None
    assert first_https_url("HTTP://a.example https:// nothing") is None
    assert first_https_url("https://user:pw@a.example/") is None
    assert first_https_url("https://a.example/" + "x" * 3000) is None
    assert cache_key("https://A.Example:443/p?q#frag") == cache_key("https://a.example/p?q") == "https://a.example/p?q"


def test_a_hostile_page_gives_a_clean_preview_or_none() -> None:
    url = "https://a.example/dir/page"
    giant = parse_page(b"<title>" + b"T" * 100_000 + b"</title>", "text/html", url)
    assert len(giant.title) == 200 and giant.title.endswith("\u2026")
    assert parse_page(b"<html><head></head><body>nothing</body>", "text/html", url).empty
    broken = parse_page(b'<html><head><title>Broken</ti<meta property="og:title" content="x<<>', "text/html", url)
    assert "<" not in broken.description
    script = parse_page(b'<meta property="og:image" content="javascript:alert(1)"><title>t</title>', "text/html", url)
    assert script.image is None and script.title == "t"
    plain = parse_page(b'<meta property="og:image" content="http://a.example/i.png"><title>t</title>', "text/html", url)
    assert plain.image is None
    relative = parse_page(b'<meta property="og:image" content="i.png"><title>t</title>', "text/html", url)
    assert relative.image == "https://a.example/dir/i.png"
    latin = parse_page("<title>caf\u00e9 \u202eevil</title>".encode("latin-1", "replace"),
                       "text/html; charset=iso-8859-1", url)
    assert latin.title == "caf\u00e9 ?evil"
    assert parse_page(b"<script>document.title='x'</script><title>\x00a\x1bb</title>", "text/html", url).title == "ab"


# ---- end to end --------------------------------------------------------------------------------
async def test_a_link_gets_a_preview_event_after_the_message_for_both_members(settings: Settings, site: Site,
                                                                             trusted: Path) -> None:
    site.pages["/page"] = Page()
    async with chat(conf(settings, trusted), "alice", "bob") as (app, (alice, bob)):
        ack = await send(alice, "k1", "bob", f"look {site.url('/page#top')}.")
        want = {"type": "preview", "conv": "d:alice:bob", "id": ack["id"], "seq": ack["seq"],
                "url": site.url("/page#top"), "title": "The & Title", "description": "A description of the page",
                "image": site.url("/img/cover.png")}
        for dev in (alice, bob):
            event = (await dev.inbox.wait_for(is_preview(id=ack["id"])))[0]
            assert event.json == want
            items = dev.inbox.items
            first = next(i for i, r in enumerate(items) if on("/in/msg", id=ack["id"])(r))
            assert first < items.index(event)  # the message, then its preview
        acked = next(i for i, r in enumerate(alice.inbox.items) if on("/in/ack", cid="k1")(r))
        assert acked < alice.inbox.items.index(alice.inbox.matching(is_preview())[0])
        assert site.requests == ["/page"]  # the fragment is not sent; the image is not fetched
        assert app.previews is not None and app.previews.stats.sent == 1
        # Stored with the message: history (and a device that was away) has it.
        stored = {k: want[k] for k in ("url", "title", "description", "image")}
        [message] = (await bob.result("history", {"conv": "d:alice:bob"}))["messages"]
        assert message["preview"] == stored
        items = (await alice.result("conversations", {}))["items"]
        assert items[0]["last"]["preview"] == stored
        # A cached link's preview is ready at once, and still waits for the message's deliveries.
        for n in range(5):
            again = await send(alice, f"again-{n}", "bob", site.url("/page"))
            for dev in (alice, bob):
                event = (await dev.inbox.wait_for(is_preview(id=again["id"])))[0]
                msg = dev.inbox.matching(on("/in/msg", id=again["id"]))
                assert msg and dev.inbox.items.index(msg[0]) < dev.inbox.items.index(event)
        assert site.requests == ["/page"]


async def test_a_black_hole_link_delays_neither_the_ack_nor_anyone_elses_message(settings: Settings,
                                                                                trusted: Path) -> None:
    async with BlackHole() as hole, \
            chat(conf(settings, trusted, timeout_s=30, connect_timeout_s=30, concurrency=2), "alice", "bob", "carol") as (_, (alice, bob, carol)):
        await send(alice, "k1", "bob", f"https://localhost:{hole.port}/never")
        await hole.wait_for(1)  # the fetch is under way and will not end for 30 s
        ack = await send(carol, "k2", "bob", "meanwhile")
        await bob.inbox.wait_for(on("/in/msg", id=ack["id"]))
        again = await send(alice, "k3", "bob", f"https://localhost:{hole.port}/never again")
        await bob.inbox.wait_for(on("/in/msg", id=again["id"]))
        assert hole.open >= 1 and not bob.inbox.matching(is_preview())


async def test_plain_http_private_addresses_and_redirects_to_them_are_not_fetched(settings: Settings, site: Site,
                                                                                 trusted: Path) -> None:
    site.pages["/page"] = Page()
    site.pages["/to-private"] = Page(b"", 302, {"Location": site.url("/page", "127.0.0.1")})
    site.pages["/to-http"] = Page(b"", 301, {"Location": f"http://localhost:{site.port}/page"})
    site.pages["/hop"] = Page(b"", 302, {"Location": "/page"})
    async with chat(conf(settings, trusted), "alice", "bob") as (app, (alice, bob)):
        await send(alice, "k1", "bob", f"http://localhost:{site.port}/page")
        await send(alice, "k2", "bob", site.url("/page", "127.0.0.1"))  # loopback, not in previews.allow
        await send(alice, "k3", "bob", site.url("/to-private"))
        await send(alice, "k4", "bob", site.url("/to-http"))
        last = await send(alice, "k5", "bob", site.url("/hop"))
        # One worker (concurrency 1) takes them in order: the last one's preview comes after the rest.
        await bob.inbox.wait_for(is_preview(id=last["id"]))
        assert len(bob.inbox.matching(is_preview())) == 1
        assert site.requests == ["/to-private", "/to-http", "/hop", "/page"]
        assert app.previews is not None and app.previews.stats.failed == 3


async def test_a_huge_page_is_cut_and_what_was_read_is_previewed(settings: Settings, site: Site,
                                                                trusted: Path) -> None:
    late = b'<meta name="description" content="after the cut">'
    site.pages["/huge"] = Page(b"<title>Huge</title>" + b" " * 70_000 + late, flood=50_000_000)
    async with chat(conf(settings, trusted, max_bytes=65536), "alice", "bob") as (_, (alice, bob)):
        ack = await send(alice, "k1", "bob", site.url("/huge"))
        event = (await bob.inbox.wait_for(is_preview(id=ack["id"])))[0].json
        assert event["title"] == "Huge" and event["description"] == ""
        assert site.written < 50_000_000  # the server hung up on it


async def test_hostile_pages_give_clean_previews_or_none(settings: Settings, site: Site, trusted: Path) -> None:
    site.pages["/empty"] = Page(b"<html><head></head><body><script>alert(1)</script></body>")
    site.pages["/giant"] = Page(b"<title>" + b"G" * 50_000 + b"</title>")
    site.pages["/broken"] = Page(b'<html><head><title>Broken</title><meta property="og:description" content="d')
    site.pages["/images"] = Page(b'<title>Img</title><meta property="og:image" content="javascript:alert(1)">')
    site.pages["/plain"] = Page(b'<title>Plain</title><meta property="og:image" content="http://x.example/i.png">')
    site.pages["/json"] = Page(b'{"title": "not html"}', headers={"Content-Type": "application/json"})
    async with chat(conf(settings, trusted), "alice", "bob") as (_, (alice, bob)):
        acks = {p: await send(alice, p, "bob", site.url(p))
                for p in ("/empty", "/json", "/giant", "/broken", "/images", "/plain")}
        await bob.inbox.wait_for(is_preview(id=acks["/plain"]["id"]))
        got = {r.json["id"]: r.json for r in bob.inbox.matching(is_preview())}
        assert acks["/empty"]["id"] not in got and acks["/json"]["id"] not in got
        giant = got[acks["/giant"]["id"]]["title"]
        assert len(giant) == 200 and set(giant[:-1]) == {"G"}
        assert got[acks["/broken"]["id"]]["title"] == "Broken"
        assert got[acks["/images"]["id"]]["image"] is None and got[acks["/plain"]["id"]]["image"] is None


async def test_a_users_fetch_rate_and_the_cache(settings: Settings, site: Site, trusted: Path) -> None:
    for p in ("/a", "/b", "/c", "/d"):
        site.pages[p] = Page()
    async with chat(conf(settings, trusted, user_burst=2, user_per_s=0.001), "alice", "bob") as (app, (alice, bob)):
        first = await send(alice, "k1", "bob", site.url("/a"))
        await bob.inbox.wait_for(is_preview(id=first["id"]))
        cached = await send(alice, "k2", "bob", f"again {site.url('/a')}")  # from the cache: costs no token
        await bob.inbox.wait_for(is_preview(id=cached["id"]))
        await send(alice, "k3", "bob", site.url("/b"))
        limited = await send(alice, "k4", "bob", site.url("/c"))  # a third fetch: over alice's burst of 2
        other = await send(bob, "k5", "alice", site.url("/d"))  # bob has his own bucket
        await alice.inbox.wait_for(is_preview(id=other["id"]))
        assert site.requests == ["/a", "/b", "/d"]
        assert not bob.inbox.matching(is_preview(id=limited["id"]))
        assert app.previews is not None and app.previews.stats.rate_limited == 1
        assert app.previews.stats.cache_hits == 1


async def test_the_off_switch(settings: Settings, site: Site, trusted: Path) -> None:
    site.pages["/page"] = Page()
    async with chat(conf(settings, trusted, enabled=False), "alice", "bob") as (app, (alice, bob)):
        ack = await send(alice, "k1", "bob", site.url("/page"))
        await bob.inbox.wait_for(on("/in/msg", id=ack["id"]))
        assert app.previews is None and app.bridge is not None and app.bridge.dispatcher.previews is None
        assert "previews_requested_total" not in await app.metrics()
        assert site.connections == 0


async def test_a_recalled_message_gets_no_preview_and_an_edit_to_another_link_gets_one(
        settings: Settings, site: Site, trusted: Path) -> None:
    held = asyncio.Event()
    site.pages["/slow"] = Page(hold=held)
    site.pages["/new"] = Page(PAGE.replace(b"The &amp; Title", b"New"))
    async with chat(conf(settings, trusted), "alice", "bob") as (app, (alice, bob)):
        recalled = await send(alice, "k1", "bob", site.url("/slow"))
        assert await site.arrived.get() == "/slow"  # being fetched
        await alice.result("recall", {"id": recalled["id"]})
        held.set()
        edited = await send(alice, "k2", "bob", "no link yet")
        await alice.result("edit", {"id": edited["id"], "text": f"now {site.url('/new')}"})
        event = (await bob.inbox.wait_for(is_preview(id=edited["id"])))[0]
        assert event.json["title"] == "New"
        items = bob.inbox.items
        assert next(i for i, r in enumerate(items) if on("/in/event", type="edit")(r)) < items.index(event)
        assert not bob.inbox.matching(is_preview(id=recalled["id"]))  # fetched, and dropped: recalled since
        assert site.requests == ["/slow", "/new"]
        assert app.previews is not None and app.previews.stats.fetched == 2
        history = {m["id"]: m for m in (await bob.result("history", {"conv": "d:alice:bob"}))["messages"]}
        assert "preview" not in history[recalled["id"]] and history[edited["id"]]["preview"]["title"] == "New"
        # An edit to a text without a link drops the stored preview.
        await alice.result("edit", {"id": edited["id"], "text": "no link after all"})
        history = {m["id"]: m for m in (await bob.result("history", {"conv": "d:alice:bob"}))["messages"]}
        assert "preview" not in history[edited["id"]]


async def test_a_cbor_device_gets_the_preview_with_numbered_keys(settings: Settings, site: Site,
                                                                 trusted: Path) -> None:
    """A CBOR (or MessagePack) device reads the preview's fields as their numbers (protocol
    "Encodings": 70 preview, 71 title, 72 description, 73 image; 47 url)."""
    import cbor2

    site.pages["/page"] = Page()
    async with platform(conf(settings, trusted), "alice", "bob") as (app, tokens):
        assert app.services is not None
        board = (await app.services.users.issue_token("bob", "board", encoding="cbor")).token
        async with connect(app.mqtt_port, "alice", "phone", tokens["alice"]) as alice, \
                connect(app.mqtt_port, "bob", "board", board) as bob:
            ack = await send(alice, "k1", "bob", site.url("/page"))
            event = (await bob.inbox.wait_for(is_preview(id=ack["id"])))[0]
            raw = cbor2.loads(event.payload)
            assert {47, 71, 72, 73} <= set(raw) and raw[71] == "The & Title"
            assert not [k for k in raw if isinstance(k, str)]  # every key a number



async def test_a_scheduled_message_gets_its_preview_after_its_delivery(settings: Settings, site: Site,
                                                                      trusted: Path) -> None:
    """Scheduled send (issue 28): the link of a scheduled text is previewed when it is sent, after
    the message reaches the members (not when it is scheduled)."""
    import time

    site.pages["/later"] = Page()
    async with chat(tweak(conf(settings, trusted), "limits", schedule_poll_s=0.1), "alice", "bob") \
            as (_, (alice, bob)):
        await alice.send({"cid": "later", "to": "bob", "type": "text", "text": f"see {site.url('/later')}",
                          "at": int(time.time() * 1000) + 1_500})
        assert (await alice.inbox.wait_for(on("/in/ack", cid="later")))[0].json["status"] == "scheduled"
        assert site.requests == []  # nothing fetched for a message nobody has yet
        for dev in (alice, bob):
            msg = (await dev.inbox.wait_for(on("/in/msg", cid="later")))[0]
            event = (await dev.inbox.wait_for(is_preview(id=msg.json["id"])))[0]
            assert event.json["title"] == "The & Title"
            assert dev.inbox.items.index(msg) < dev.inbox.items.index(event)
        assert site.requests == ["/later"]
