"""Attachments (issue 15, protocol §3 "Attachments"), end to end on the embedded store: a real
MQTT client declares an upload, PUTs the bytes over HTTP to imgate's web listener, sends the
message, and members download through signed URLs. And the refusals: oversized, other bytes,
other hash, not uploaded, someone else's upload, strangers, removed members, expired URLs."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from config.settings import Settings
from imgate.app import App
from tests.conftest import Users
from tests.helpers import ManualClock, connect, on, tweak
from tests.manual_clock import clock_fixture, manual_app_fixture  # noqa: F401

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40  # not a real image: the server never decodes it


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings = tweak(settings, "web", enabled=True, port=0)
    return tweak(settings, "files", max_pending=5, daily_bytes=4 << 20)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def upload(device: Any, http: httpx.AsyncClient, data: bytes, mime: str = "image/png",
                 name: str = "cat.png") -> dict[str, Any]:
    """file.upload, then the PUT; returns the attachment object to send."""
    ticket = await device.result("file.upload", {"name": name, "mime": mime, "size": len(data), "sha256": sha(data)})
    assert ticket["method"] == "PUT" and ticket["headers"] == {"Content-Type": mime}
    r = await http.put(ticket["url"], content=data, headers=ticket["headers"])
    assert r.status_code == 201, r.text
    return {"key": ticket["key"], "mime": mime, "size": len(data), "sha256": sha(data), "name": name}


async def send(device: Any, cid: str, attachment: dict[str, Any], *, to: str | None = "bob",
               group: str | None = None, type_: str = "image") -> dict[str, Any]:
    target = {"to": to} if group is None else {"group": group}
    await device.send({"cid": cid, **target, "type": type_, "attachment": attachment})
    return (await device.inbox.wait_for(on("/in/ack", cid=cid)))[0].json


async def test_an_image_goes_up_to_the_server_and_down_to_the_peer(app: App, users: Users,
                                                                   http: httpx.AsyncClient) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        image = await upload(alice, http, PNG)
        thumb_bytes = PNG[:500]
        thumb = await upload(alice, http, thumb_bytes, name="thumb.png")
        attachment = {**image, "width": 640, "height": 480,
                      "thumbnail": {k: thumb[k] for k in ("key", "mime", "size", "sha256")} | {"width": 64}}
        await alice.send({"cid": "i1", "to": "bob", "type": "image", "text": "look", "attachment": attachment})
        got = (await bob.inbox.wait_for(on("/in/msg", cid="i1")))[0].json
        assert (got["type"], got["text"], got["attachment"]) == ("image", "look", attachment)
        assert "data" not in got
        history = await bob.result("history", {"conv": got["conv"]})
        assert history["messages"][-1]["attachment"] == attachment
        urls = await bob.result("file.url", {"keys": [image["key"], thumb["key"]]})
        assert set(urls["urls"]) == {image["key"], thumb["key"]}
        r = await http.get(urls["urls"][image["key"]])
        assert r.status_code == 200 and r.content == PNG
        assert r.headers["content-type"] == "image/png" and r.headers["content-disposition"].startswith("inline")
        assert r.headers["x-content-type-options"] == "nosniff" and "sandbox" in r.headers["content-security-policy"]
        assert (await http.get(urls["urls"][thumb["key"]])).content == thumb_bytes
        # The URL is bob's: changing the user it names breaks the signature.
        assert (await http.get(urls["urls"][image["key"]].replace("u=bob", "u=alice"))).status_code == 403


async def test_a_declared_upload_is_enforced_on_the_put(app: App, users: Users, clock: ManualClock,
                                                        http: httpx.AsyncClient) -> None:
    await users.add("alice")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        too_big = await alice.rpc("file.upload", {"mime": "image/png", "size": 26 << 20, "sha256": sha(b"")})
        assert too_big["error"]["code"] == 413 and too_big["error"]["data"]["code"] == "too_large"
        for bad in ({"mime": "text", "size": 1, "sha256": sha(b"x")}, {"mime": "image/png", "size": 0,
                    "sha256": sha(b"")}, {"mime": "image/png", "size": 1, "sha256": "XYZ"},
                    {"mime": "image/png", "size": 1, "sha256": sha(b"x"), "name": "../../etc/passwd"}):
            assert (await alice.rpc("file.upload", bad))["error"]["code"] == -32602, bad

        async def ticket() -> dict[str, Any]:
            return dict(await alice.result("file.upload", {"mime": "image/png", "size": len(PNG),
                                                           "sha256": sha(PNG)}))

        t = await ticket()
        other = bytes([PNG[0] ^ 1]) + PNG[1:]  # the same size, other bytes
        r = await http.put(t["url"], content=other, headers=t["headers"])
        assert r.status_code == 400 and "sha256" in r.json()["error"]
        assert (await http.put(t["url"], content=PNG + b"x", headers=t["headers"])).status_code == 413
        assert (await http.put(t["url"], content=PNG[:-1], headers=t["headers"])).status_code == 400
        assert (await http.put(t["url"], content=PNG, headers={"Content-Type": "text/html"})).status_code == 400
        assert (await http.put(t["url"].replace(f"n={len(PNG)}", f"n={len(PNG) + 1}"), content=PNG + b"x",
                               headers=t["headers"])).status_code == 403  # altered: the signature breaks
        forged = re.sub(r"s=[^&]+", "s=%C3%A9", t["url"])  # not even ASCII
        assert (await http.put(forged, content=PNG, headers=t["headers"])).status_code == 403
        r = await http.put(t["url"], content=PNG, headers={**t["headers"], "Origin": "http://localhost:8090"})
        # Any origin may use a signed URL (the page opened as localhost uploads to 127.0.0.1).
        assert r.status_code == 201 and r.headers["access-control-allow-origin"] == "*"
        assert (await http.put(t["url"], content=PNG, headers=t["headers"])).status_code == 409
        preflight = await http.options(t["url"], headers={"Origin": "http://localhost:8090",
                                                          "Access-Control-Request-Method": "PUT",
                                                          "Access-Control-Request-Headers": "content-type"})
        assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == "*"
        assert "PUT" in preflight.headers["access-control-allow-methods"]
        late = await ticket()
        clock.ms += 901_000  # files.upload_ttl_s (900 s) later
        r = await http.put(late["url"], content=PNG, headers=late["headers"])
        assert r.status_code == 403 and "expired" in r.json()["error"]


async def test_a_message_must_match_its_upload(app: App, users: Users, http: httpx.AsyncClient) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        good = await upload(alice, http, PNG)
        declared = await alice.result("file.upload", {"mime": "image/png", "size": 10, "sha256": sha(b"0123456789")})
        bobs = await upload(bob, http, b"bob's secret", mime="image/jpeg")
        cases = {
            "hash": {**good, "sha256": sha(b"something else")},
            "size": {**good, "size": good["size"] + 1},
            "mime": {**good, "mime": "image/gif"},
            "missing": {"key": declared["key"], "mime": "image/png", "size": 10, "sha256": sha(b"0123456789")},
            "not-yours": bobs,
            "unknown": {**good, "key": "01M8EBYPMKG8081TNFKXCRQ5FX" + "0" * 16},
        }
        for cid, attachment in cases.items():
            ack = await send(alice, cid, attachment)
            assert ack["error"]["code"] == "bad_request", (cid, ack)
            assert attachment["key"] in ack["error"]["message"]
        for cid, body in {"no-attachment": {"type": "image"}, "not-an-image": {"type": "image", "attachment": {
                **good, "mime": "application/pdf"}}, "extra": {"type": "file", "attachment": {**good, "x": 1}},
                "both": {"type": "file", "attachment": {**good, "url": "https://example.com/f"}}}.items():
            await alice.send({"cid": cid, "to": "bob", **body})
            ack = (await alice.inbox.wait_for(on("/in/ack", cid=cid)))[0].json
            assert ack["error"]["code"] == "bad_request", (cid, ack)
        assert bob.inbox.matching(on("/in/msg")) == []  # nothing was stored
        assert "error" not in await send(alice, "ok", good)
        link = {"url": "https://example.com/report.pdf", "mime": "application/pdf", "size": 1, "sha256": sha(b"x")}
        assert "error" not in await send(alice, "link", link, type_="file")  # an external link: not checked


async def test_only_current_members_download(app: App, users: Users, http: httpx.AsyncClient) -> None:
    await users.add("alice", "bob", "carol", "mallory")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "carol", "phone", await users.token("carol")) as carol, \
            connect(app.mqtt_port, "mallory", "phone", await users.token("mallory")) as mallory:
        group = await alice.result("group.create", {"name": "trip", "members": ["bob", "carol"]})
        image = await upload(alice, http, PNG)
        assert "error" not in await send(alice, "g1", image, group=group["gid"])
        carols = (await carol.result("file.url", {"keys": [image["key"]]}))["urls"][image["key"]]
        assert (await http.get(carols)).status_code == 200
        # A stranger gets no URL, and cannot use anyone else's.
        assert (await mallory.result("file.url", {"keys": [image["key"]]}))["urls"] == {}
        assert (await mallory.rpc("file.url", {"keys": ["../../imgate.db"]}))["error"]["code"] == -32602
        await alice.result("group.remove", {"gid": group["gid"], "members": ["carol"]})
        # Removed: the URL carol holds stops working at once, and she gets no new one.
        r = await http.get(carols)
        assert r.status_code == 403 and r.json() == {"error": "not allowed"}
        assert (await carol.result("file.url", {"keys": [image["key"]]}))["urls"] == {}


async def test_download_urls_expire(app: App, users: Users, clock: ManualClock, http: httpx.AsyncClient) -> None:
    await users.add("alice")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        image = await upload(alice, http, PNG)
        url = (await alice.result("file.url", {"keys": [image["key"]]}))["urls"][image["key"]]  # its uploader
        assert (await http.get(url)).status_code == 200
        clock.ms += 3_601_000  # files.download_ttl_s (1 h) later
        r = await http.get(url)
        assert r.status_code == 403 and "expired" in r.json()["error"]


async def test_other_types_download_as_files_never_as_pages(app: App, users: Users, http: httpx.AsyncClient) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        page = b"<script>steal(sessionStorage)</script>"
        for mime in ("text/html", "image/svg+xml"):
            doc = await upload(alice, http, page, mime=mime, name="x.html")
            assert "error" not in await send(alice, mime, doc, type_="file")
            url = (await bob.result("file.url", {"keys": [doc["key"]]}))["urls"][doc["key"]]
            r = await http.get(url)
            assert r.content == page and r.headers["content-disposition"].startswith("attachment")
            assert r.headers["content-security-policy"] == "default-src 'none'; sandbox"


async def test_a_recall_deletes_the_objects_no_message_uses(app: App, users: Users, http: httpx.AsyncClient) -> None:
    await users.add("alice", "bob")
    files = app.settings.data_dir / "files"
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        ticket = await alice.result("file.upload", {"mime": "image/png", "size": len(PNG), "sha256": sha(PNG)})
        assert (await http.put(ticket["url"], content=PNG, headers=ticket["headers"])).status_code == 201
        shared = {"key": ticket["key"], "mime": "image/png", "size": len(PNG), "sha256": sha(PNG)}
        only = await upload(alice, http, PNG[:100], name="t.png")
        first = await send(alice, "m1", {**shared, "thumbnail": {k: only[k] for k in ("key", "mime", "size", "sha256")}})
        second = await send(alice, "m2", shared)  # the same upload in a second message
        await alice.result("recall", {"id": first["id"]})
        assert not list(files.rglob(only["key"]))  # nothing else used the thumbnail
        assert list(files.rglob(shared["key"]))  # m2 still does
        await alice.result("recall", {"id": second["id"]})
        assert not list(files.rglob(shared["key"]))
        # Attack: its upload URL is still valid; it must not put the object back (outside any quota).
        r = await http.put(ticket["url"], content=PNG, headers=ticket["headers"])
        assert r.status_code == 410 and not list(files.rglob(shared["key"]))
        # A retry of a stored send is acked as it was, though its file is gone.
        await alice.send({"cid": "m2", "to": "bob", "type": "image", "attachment": shared})
        acks = await alice.inbox.wait_for(on("/in/ack", cid="m2"), count=2)
        assert acks[1].json == acks[0].json and "error" not in acks[1].json
        assert (await alice.result("file.url", {"keys": [shared["key"]]}))["urls"] == {}
        history = await alice.result("history", {"conv": first["conv"]})
        assert [m["type"] for m in history["messages"]] == ["recalled", "recalled"]
        assert all("attachment" not in m for m in history["messages"])


async def test_unsent_uploads_are_swept_and_limited(app: App, users: Users, clock: ManualClock,
                                                    http: httpx.AsyncClient) -> None:
    await users.add("alice", "bob")
    assert app.services is not None
    files = app.settings.data_dir / "files"
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        sent = await upload(alice, http, PNG)
        assert "error" not in await send(alice, "m1", sent)
        pending = [await upload(alice, http, PNG[:n], name=f"{n}.png") for n in (10, 20, 30, 40, 50)]
        over = await alice.rpc("file.upload", {"mime": "image/png", "size": 1, "sha256": sha(b"x")})
        assert over["error"]["code"] == 429 and over["error"]["data"]["retry_after_ms"] > 0  # files.max_pending = 5
        assert await app.services.attachments.sweep() == 0  # not old enough
        clock.ms += 86_401_000  # files.orphan_after_s later
        assert await app.services.attachments.sweep() == 5
        assert all(not list(files.rglob(p["key"])) for p in pending)
        assert list(files.rglob(sent["key"]))  # in a message: kept
        assert "error" not in await alice.rpc("file.upload", {"mime": "image/png", "size": 1, "sha256": sha(b"x")})


async def test_an_avatar_is_an_own_image_and_public(app: App, users: Users, http: httpx.AsyncClient) -> None:
    await users.add("alice", "bob", "carol")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        private = await upload(bob, http, b"bob's private photo", mime="image/jpeg")
        taken = await alice.rpc("profile.set", {"avatar": private["key"]})  # publishing someone else's upload
        assert taken["error"]["data"]["code"] == "bad_request"
        doc = await upload(alice, http, b"%PDF", mime="application/pdf")
        assert (await alice.rpc("profile.set", {"avatar": doc["key"]}))["error"]["data"]["code"] == "bad_request"
        svg = await upload(alice, http, b"<svg onload=alert(1)>", mime="image/svg+xml")
        assert (await alice.rpc("profile.set", {"avatar": svg["key"]}))["error"]["data"]["code"] == "bad_request"
        big = await upload(alice, http, PNG * 300)  # over 2 MiB
        assert (await alice.rpc("profile.set", {"avatar": big["key"]}))["error"]["data"]["code"] == "bad_request"
        face = await upload(alice, http, PNG)
        assert (await alice.result("profile.set", {"avatar": face["key"]}))["avatar"] == face["key"]
        url = (await bob.result("file.url", {"keys": [face["key"]]}))["urls"][face["key"]]  # anyone may see it
        assert (await http.get(url)).content == PNG
        await alice.result("profile.set", {"avatar": ""})  # replaced: the old one goes
        assert (await bob.result("file.url", {"keys": [face["key"]]}))["urls"] == {}


async def test_the_web_listener_serves_the_page_config(app: App, http: httpx.AsyncClient) -> None:
    assert app.web is not None
    r = await http.get(f"http://127.0.0.1:{app.web.port}/config.json")
    assert r.status_code == 200
    assert r.json() == {"mqtt_url": None, "topic_prefix": "im", "max_attachment_bytes": 25 << 20, "max_text": 8000,
                        "min_ttl_s": 3600, "max_ttl_s": 90 * 86400}  # the page's ttl menu (disappearing messages)
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self';" in csp
    # Images and uploads: this listener only (no http:/https: wildcard for an injected URL to use).
    assert f"img-src 'self' blob: data: http://127.0.0.1:{app.web.port};" in csp


async def test_a_user_cannot_fill_the_disk_at_the_message_rate(app: App, users: Users, clock: ManualClock) -> None:
    """Attack: 20 messages a second of 25 MiB files is 500 MB/s. Uploads are capped per user and
    day (files.daily_bytes: 1 GiB by default, 4 MiB here)."""
    await users.add("alice", "bob")
    mib = {"mime": "application/zip", "size": 1 << 20, "sha256": sha(b"x")}
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        for _ in range(4):
            await alice.result("file.upload", mib)
            clock.ms += 1000
        over = await alice.rpc("file.upload", mib)
        assert over["error"]["data"]["code"] == "rate_limited"
        # Room again when the first upload is a day old.
        assert over["error"]["data"]["retry_after_ms"] == 86_400_000 - 4000
        assert "error" not in await bob.rpc("file.upload", mib)  # bob's own quota
        clock.ms += over["error"]["data"]["retry_after_ms"]
        assert "error" not in await alice.rpc("file.upload", mib)


@pytest.fixture
def admin_secret() -> str:
    from tests.conftest import ADMIN_SECRET

    return ADMIN_SECRET


async def test_an_operator_takes_an_upload_down(app: App, users: Users, http: httpx.AsyncClient) -> None:
    from tests.conftest import ADMIN_SECRET

    await users.add("alice", "bob")
    assert app.admin is not None
    admin = {"Authorization": f"Bearer {ADMIN_SECRET}"}
    base = f"http://127.0.0.1:{app.admin.port}/v1/files"
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        image = await upload(alice, http, PNG)
        assert "error" not in await send(alice, "m1", image)
        url = (await bob.result("file.url", {"keys": [image["key"]]}))["urls"][image["key"]]
        got = (await http.get(f"{base}/{image['key']}", headers=admin)).json()
        assert (got["owner"], got["size"], got["sha256"], got["used"]) == ("alice", len(PNG), sha(PNG), True)
        assert (await http.get(f"{base}/{image['key']}")).status_code == 401
        assert (await http.delete(f"{base}/{image['key']}", headers=admin)).status_code == 204
        assert (await http.get(url)).status_code == 403  # the URL bob holds: gone
        assert (await bob.result("file.url", {"keys": [image["key"]]}))["urls"] == {}
        assert not list((app.settings.data_dir / "files").rglob(image["key"]))
        assert (await http.delete(f"{base}/{image['key']}", headers=admin)).status_code == 404


async def test_sends_keep_their_order_across_an_attachment(app: App, users: Users, http: httpx.AsyncClient) -> None:
    """An attachment send checks its objects first (store I/O): the text sent right after it must
    not overtake it."""
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        image = await upload(alice, http, PNG)
        for n in range(3):
            await alice.send({"cid": f"i{n}", "to": "bob", "type": "image", "attachment": image})
            await alice.send({"cid": f"t{n}", "to": "bob", "type": "text", "text": f"look {n}"})
        got = await bob.inbox.wait_for(on("/in/msg"), count=6)
        assert [m.json["cid"] for m in got] == ["i0", "t0", "i1", "t1", "i2", "t2"]
        assert [m.json["seq"] for m in got] == [1, 2, 3, 4, 5, 6]


async def test_an_upload_in_a_refused_send_is_swept(app: App, users: Users, clock: ManualClock,
                                                    http: httpx.AsyncClient) -> None:
    await users.add("alice", "bob")
    assert app.services is not None
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        await bob.result("block.add", {"uid": "alice"})
        image = await upload(alice, http, PNG)
        assert (await send(alice, "x", image))["error"]["message"] == "not allowed"
        clock.ms += 86_401_000
        assert await app.services.attachments.sweep() == 1  # stored nowhere: not used
        assert not list((app.settings.data_dir / "files").rglob(image["key"]))


async def test_downloads_are_named_as_declared(app: App, users: Users, http: httpx.AsyncClient) -> None:
    await users.add("alice")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        doc = await upload(alice, http, b"%PDF-1.7", mime="application/pdf", name="report.pdf")
        url = (await alice.result("file.url", {"keys": [doc["key"]]}))["urls"][doc["key"]]
        r = await http.get(url)
        assert r.headers["content-disposition"] == 'attachment; filename="report.pdf"'
        bidi = {"mime": "application/pdf", "size": 1, "sha256": sha(b"x"), "name": "gpj\u202e.exe"}
        assert (await alice.rpc("file.upload", bidi))["error"]["code"] == -32602
