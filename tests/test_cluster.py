"""Cluster mode, live: RabbitMQ as the MQTT front and the queue, two ``imgate bridge`` processes
consuming the sender shards over AMQP, PostgreSQL, and ``imgate api`` as RabbitMQ's auth backend
(issue 14). Devices are real MQTT clients on the private RabbitMQ node."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from config.settings import load_settings
from imgate.app import App
from imgate.cli import _migrate
from services.errors import Conflict
from tests.cluster import (
    BRIDGE_PASSWORD,
    BRIDGE_USER,
    BridgeProcess,
    active_shards,
    bridge_env,
    delete_topology,
)
from tests.conftest import ADMIN_SECRET, postgres_database
from tests.helpers import WAIT, Device, connect, named, on
from tests.rabbitmq import ADMIN_PASSWORD, ADMIN_USER, RabbitNode, installed, rabbitmq_node_fixture  # noqa: F401
from tests.test_previews import Page, Site, site_fixture, trusted_fixture  # noqa: F401

pytestmark = [
    pytest.mark.timeout(240),
    # Cluster mode runs on PostgreSQL in either pass of the suite: the SQLite pass runs it once.
    pytest.mark.skipif(os.environ.get("IMGATE_TEST_DB") == "postgres", reason="run once, in the SQLite pass"),
]


@dataclass
class Cluster:
    node: RabbitNode
    api: App
    database_url: str
    prefix: str
    bridges: list[BridgeProcess]

    async def token(self, uid: str, device: str = "phone") -> str:
        assert self.api.services is not None
        with suppress(Conflict):
            await self.api.services.users.add_user(uid)
        return (await self.api.services.users.issue_token(uid, device)).token

    async def device(self, stack: AsyncExitStack, uid: str, device: str = "phone", **kw: Any) -> Device:
        return await stack.enter_async_context(connect(self.node.mqtt_port, uid, device,
                                                       await self.token(uid, device), **kw))

    async def both_active(self) -> dict[str, int]:
        """Until each live bridge is the active consumer of some shard (the balancing has run)."""
        holders = {b.holder for b in self.bridges if b.proc is not None and b.proc.returncode is None}
        found: dict[str, int] = {}
        try:
            async with asyncio.timeout(30):
                while True:
                    found = dict(await active_shards(self.node, self.prefix))
                    if set(found) == holders and sum(found.values()) == 8:
                        return found
                    await asyncio.sleep(0.3)  # polling RabbitMQ's consumer list for a condition, bounded above
        except TimeoutError:
            logs = "".join(line for b in self.bridges for line in b.output[-15:])
            raise AssertionError(f"shards not shared by {holders}: {found}\n{logs}") from None


@asynccontextmanager
async def running_cluster(tmp_path: Path, nodes: list[RabbitNode], trees: tuple[str, ...] = (),
                          api_amqp: bool = False, api_settings: dict[str, Any] | None = None,
                          **env: str) -> AsyncIterator[Cluster]:
    """``imgate api`` as the auth backend of ``nodes`` (one cluster), and an ``imgate bridge`` on
    each node in turn, two in all, on a fresh PostgreSQL database (cluster mode needs it,
    whatever IMGATE_TEST_DB says). ``env``: more of the bridges' environment. ``api_amqp``: the
    api has amqp.url too (it publishes the deliveries of its sends as a bot). ``api_settings``: more
    of the api's settings (as the bridges' ``env`` says them)."""
    prefix = f"t{secrets.token_hex(4)}"
    async with postgres_database("imgate_cluster") as url:
        settings = load_settings(None, {
            "data_dir": tmp_path / "api", "database": {"url": url},
            "admin": {"port": 0, "secret": ADMIN_SECRET},
            "broker": {"username": BRIDGE_USER, "password": BRIDGE_PASSWORD, "auth_poll_interval": 0.1},
            "rabbitmq": {"management_url": nodes[0].mgmt_url, "management_username": ADMIN_USER,
                         "management_password": ADMIN_PASSWORD},
            "mqtt": {"encoding_trees": list(trees)},
            **({"amqp": {"url": f"amqp://127.0.0.1:{nodes[0].amqp_port}/"}} if api_amqp else {}),
            "search": {"backend": "postgres"},  # as the bridges' (an erasure removes from it)
            **(api_settings or {}),
        })
        await _migrate(settings)  # as `imgate migrate` does before a cluster starts
        async with App(settings, role="api") as api:
            assert api.admin is not None
            for node in nodes:
                await node.aset_auth_base(f"http://127.0.0.1:{api.admin.port}/auth/rabbitmq")
            extra = {"IMGATE_MQTT__ENCODING_TREES": json.dumps(list(trees)), **env}
            bridges = [BridgeProcess(bridge_env(nodes[i % len(nodes)], url, prefix, tmp_path / f"bridge{i}", **extra),
                                     f"bridge{i}") for i in (0, 1)]
            try:
                for b in bridges:
                    await b.start()
                yield Cluster(nodes[0], api, url, prefix, bridges)
            finally:
                for b in bridges:
                    await b.stop()
                await delete_topology(nodes[0], prefix)


@pytest.fixture
async def cluster(tmp_path: Path, rabbitmq_node: RabbitNode) -> AsyncIterator[Cluster]:
    async with running_cluster(tmp_path, [rabbitmq_node]) as running:
        yield running


async def stored(url: str, sender: str) -> list[tuple[str, int, str]]:
    """(cid, seq, conv) of everything ``sender`` has stored, in seq order."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT cid, seq, conv FROM messages WHERE sender = $1 ORDER BY conv, seq", sender)
    finally:
        await conn.close()
    return [(r["cid"], r["seq"], r["conv"]) for r in rows]


async def test_a_1to1_and_a_group_exchange_through_two_bridges(cluster: Cluster) -> None:
    async with AsyncExitStack() as stack:
        alice = await cluster.device(stack, "alice")
        bob = await cluster.device(stack, "bob")
        carol = await cluster.device(stack, "carol")
        ack = await alice.send_and_ack("c1", "bob", "hello across the cluster")
        assert ack["seq"] == 1 and "error" not in ack
        got = (await bob.inbox.wait_for(on("/in/msg", cid="c1")))[0].json
        assert (got["from"], got["text"], got["conv"]) == ("alice", "hello across the cluster", "d:alice:bob")
        group = await alice.result("group.create", {"name": "trio", "members": ["bob", "carol"]})
        await alice.send({"cid": "g1", "group": group["gid"], "type": "text", "text": "hi both"})
        assert "error" not in (await alice.inbox.wait_for(on("/in/ack", cid="g1")))[0].json
        for member in (bob, carol):
            delivered = (await member.inbox.wait_for(on("/in/msg", cid="g1")))[0].json
            assert (delivered["from"], delivered["text"]) == ("alice", "hi both")
        # Bad input is answered by whichever bridge holds the sender's shard, as on the embedded broker.
        await bob.send(b"{not json")
        assert (await bob.inbox.wait_for(on("/in/ack", cid=None)))[0].json["error"]["code"] == "bad_request"


async def test_an_export_and_an_erasure_through_imgate_api(cluster: Cluster) -> None:
    """docs/privacy.md in cluster mode: ``imgate api`` exports and erases; the erased user's
    device, connected through RabbitMQ, is dropped; the others see a tombstone."""
    import io
    import zipfile

    import httpx

    assert cluster.api.admin is not None
    async with AsyncExitStack() as stack:
        erin = await cluster.device(stack, "erin")
        bob = await cluster.device(stack, "bob")
        sent = await erin.send_and_ack("e1", "bob", "erin across the cluster")
        await bob.inbox.wait_for(on("/in/msg", cid="e1"))
        # Indexed as a worker's indexer would (none runs here), in the shared PostgreSQL index.
        from services.search.base import Doc
        from services.search.postgres import PostgresSearch

        await PostgresSearch().add([Doc(sent["id"], "d:bob:erin", sent["seq"], "erin", sent["ts"],
                                        "erin across the cluster")])
        assert await indexed(cluster.database_url, sent["id"]) == 1
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{cluster.api.admin.port}", timeout=30,
                                     headers={"Authorization": f"Bearer {ADMIN_SECRET}"}) as api:
            r = await api.get("/v1/users/erin/export")
            assert r.status_code == 200, r.text
            lines = zipfile.ZipFile(io.BytesIO(r.content)).read("messages.jsonl").decode().splitlines()
            assert [json.loads(line)["text"] for line in lines] == ["erin across the cluster"]
            r = await api.post("/v1/users/erin/erase")
            assert r.status_code == 200 and r.json()["messages"] == 1, r.text
        async with asyncio.timeout(WAIT):
            await erin.disconnected.wait()
        history = (await bob.result("history", {"conv": "d:bob:erin"}))["messages"]
        assert [(m["id"], m["type"], m.get("text")) for m in history] == [(sent["id"], "recalled", None)]
    assert [(cid, conv) for cid, _, conv in await stored(cluster.database_url, "erin")] == [("e1", "d:bob:erin")]
    assert await indexed(cluster.database_url, sent["id"]) == 0  # imgate api removed it from the shared index


async def indexed(url: str, msg_id: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM search_messages WHERE id = $1", msg_id))
    finally:
        await conn.close()


async def test_mentions_and_at_all_through_two_bridges(cluster: Cluster) -> None:
    """Mentions (issue 28) in cluster mode: a non-member's mention dropped, @all by the group's
    setting, the group's @all rate (kept in the database, so it holds whichever bridge has the
    sender's shard), and the unread mentions of ``conversations``."""
    async with AsyncExitStack() as stack:
        alice, bob, carol, dave = [await cluster.device(stack, u) for u in ("alice", "bob", "carol", "dave")]
        group = await alice.result("group.create", {"name": "four", "members": ["bob", "carol"]})
        gid, conv = group["gid"], group["conv"]

        async def send(device: Device, cid: str, mentions: list[str]) -> dict[str, Any]:
            await device.send({"cid": cid, "group": gid, "type": "text", "text": "look", "mentions": mentions})
            return (await device.inbox.wait_for(on("/in/ack", cid=cid)))[0].json

        ack = await send(alice, "m1", ["bob", "dave"])
        assert "error" not in ack and ack["mentions_dropped"] == ["dave"]
        got = (await bob.inbox.wait_for(on("/in/msg", cid="m1")))[0].json
        assert got["mentions"] == ["bob"] and got["mentioned"] is True
        assert (await send(bob, "bob-all", ["@all"]))["error"]["code"] == "forbidden"
        await alice.result("group.settings", {"gid": gid, "mention_all": "members"})
        await bob.inbox.wait_for(on("/in/event", type="group", op="settings", mention_all="members"))
        for device, cid in ((alice, "all-1"), (bob, "all-2"), (carol, "all-3")):  # three senders, any bridge
            assert "error" not in await send(device, cid, ["@all"])
        over = (await send(bob, "all-4", ["@all"]))["error"]
        assert over["code"] == "rate_limited" and over["retry_after_ms"] > 0
        # Unread: what came after each one's own last message (sending reads up to it).
        for member, mentioned in ((alice, 2), (bob, 1), (carol, 0)):
            await member.inbox.wait_for(on("/in/msg", cid="all-3"))
            [item] = [i for i in (await member.result("conversations"))["items"] if i["conv"] == conv]
            assert item["unread_mentions"] == mentioned, member.uid
        assert dave.inbox.matching(on("/in/msg", cid="all-1")) == []


async def test_read_by_through_two_bridges(cluster: Cluster) -> None:
    """Read-by lists (issue 28) in cluster mode: read_by answers from the markers ``read`` moved,
    whichever bridge holds each user's shard, with the same refusals (the handlers are the
    embedded broker's; tests/test_read_by.py has the window edges and the paging)."""
    async with AsyncExitStack() as stack:
        alice, bob, carol = [await cluster.device(stack, u) for u in ("alice", "bob", "carol")]
        group = await alice.result("group.create", {"name": "trio", "members": ["bob", "carol"]})
        await alice.send({"cid": "r1", "group": group["gid"], "type": "text", "text": "read me"})
        sent = (await alice.inbox.wait_for(on("/in/ack", cid="r1")))[0].json
        await bob.result("read", {"conv": group["conv"], "seq": sent["seq"]})
        got = await alice.result("read_by", {"id": sent["id"], "conv": group["conv"]})
        assert (got["read"], got["unread"], got["read_count"], got["unread_count"], got["next_cursor"]) \
            == ([{"uid": "bob"}], ["carol"], 1, 1, None)
        refused = await carol.rpc("read_by", {"id": sent["id"]})
        assert refused["error"]["data"]["code"] == "forbidden"


async def test_pins_through_two_bridges(cluster: Cluster) -> None:
    """Pins (issue 28) in cluster mode: a pin and an unpin told to every member whichever bridge
    holds each user's shard, the group's pin setting, and the list (tests/test_pins.py has the
    rest: the cap is held under the conversation's lock in the database, whoever pins)."""
    async with AsyncExitStack() as stack:
        alice, bob, carol = [await cluster.device(stack, u) for u in ("alice", "bob", "carol")]
        group = await alice.result("group.create", {"name": "trio", "members": ["bob", "carol"]})
        gid, conv = group["gid"], group["conv"]
        sent = []
        for n in range(3):
            await alice.send({"cid": f"p{n}", "group": gid, "type": "text", "text": f"pin me {n}"})
            sent.append((await alice.inbox.wait_for(on("/in/ack", cid=f"p{n}")))[0].json)
        assert (await bob.result("pin", {"id": sent[0]["id"]}))["pinned"] is True
        for member in (alice, bob, carol):
            event = (await member.inbox.wait_for(on("/in/event", type="pin", op="add")))[0].json
            assert (event["id"], event["by"]) == (sent[0]["id"], "bob")
        await alice.result("group.settings", {"gid": gid, "pin": "admins"})
        await carol.inbox.wait_for(on("/in/event", type="group", op="settings", pin="admins"))
        refused = await carol.rpc("unpin", {"id": sent[0]["id"]})
        assert refused["error"]["data"]["code"] == "forbidden"
        await alice.result("unpin", {"id": sent[0]["id"]})
        await carol.inbox.wait_for(on("/in/event", type="pin", op="remove", id=sent[0]["id"], by="alice"))
        await alice.result("pin", {"id": sent[1]["id"]})
        listed = await bob.result("pinned", {"conv": conv})
        assert [(p["id"], p["by"], p["message"]["text"]) for p in listed["pins"]] == [(sent[1]["id"], "alice",
                                                                                      "pin me 1")]


async def test_link_previews_through_two_bridges(tmp_path: Path, rabbitmq_node: RabbitNode, site: Site,
                                                trusted: Path) -> None:
    """Link previews (issue 28) in cluster mode: the bridge that stored the message fetches its
    link and sends the preview event after the message to both members, whichever bridge holds
    each one's shard, and stores it with the message (history on the other bridge has it).
    tests/test_previews.py has the guard, the rates, the cache and the refusals."""
    site.pages["/page"] = Page()
    env = {"IMGATE_PREVIEWS__ENABLED": "true", "IMGATE_PREVIEWS__ALLOW": '["localhost"]',
           "IMGATE_PREVIEWS__CA_FILE": str(trusted)}
    async with running_cluster(tmp_path, [rabbitmq_node], **env) as cluster, AsyncExitStack() as stack:
        await cluster.both_active()
        alice, bob = [await cluster.device(stack, u) for u in ("alice", "bob")]
        ack = await alice.send_and_ack("l1", "bob", f"look {site.url('/page#top')}")
        want = {"url": site.url("/page#top"), "title": "The & Title", "description": "A description of the page",
                "image": site.url("/img/cover.png")}
        for device in (alice, bob):
            event = (await device.inbox.wait_for(on("/in/event", type="preview", id=ack["id"])))[0]
            assert {k: event.json[k] for k in want} == want
            [message] = device.inbox.matching(on("/in/msg", id=ack["id"]))
            assert device.inbox.items.index(message) < device.inbox.items.index(event)
        [stored] = (await bob.result("history", {"conv": "d:alice:bob"}))["messages"]
        assert stored["preview"] == want
        assert site.requests == ["/page"]


async def test_forwarding_through_two_bridges(cluster: Cluster) -> None:
    """Forwarding (issue 28) in cluster mode: a forward and a merge stored by whichever bridge holds
    the forwarder's shard and delivered to every member, a retry acked once, a message the
    forwarder cannot read refused as unknown (tests/test_forwarding.py has the rest: attachments,
    every refusal)."""
    async with AsyncExitStack() as stack:
        alice, bob, carol, dave = [await cluster.device(stack, u) for u in ("alice", "bob", "carol", "dave")]
        sources = []
        for n, (device, to) in enumerate(((bob, "alice"), (alice, "bob"), (bob, "alice"))):
            sources.append(await device.send_and_ack(f"s{n}", to, f"line {n}"))
        group = await alice.result("group.create", {"name": "trio", "members": ["carol", "dave"]})
        await alice.send({"cid": "f1", "group": group["gid"], "forward": [sources[0]["id"]]})
        ack = (await alice.inbox.wait_for(on("/in/ack", cid="f1")))[0].json
        assert "error" not in ack and ack["conv"] == group["conv"]
        for member in (carol, dave):
            got = (await member.inbox.wait_for(on("/in/msg", cid="f1")))[0]
            assert (got.json["text"], got.json["forwarded"]) == ("line 0", {"from": "bob", "kind": "direct",
                                                                          "ts": sources[0]["ts"]})
            assert sources[0]["conv"].encode() not in got.payload
        await alice.send({"cid": "f1", "group": group["gid"], "forward": [sources[0]["id"]]})
        acks = await alice.inbox.wait_for(on("/in/ack", cid="f1"), count=2)
        assert acks[1].json == acks[0].json
        await alice.send({"cid": "f2", "to": "carol", "forward": [s["id"] for s in reversed(sources)], "merge": True})
        merged = (await carol.inbox.wait_for(on("/in/msg", cid="f2")))[0].json
        assert [(i["from"], i["text"]) for i in merged["merged"]["messages"]] == [("bob", "line 0"), ("alice", "line 1"),
                                                                                  ("bob", "line 2")]
        await carol.send({"cid": "c1", "to": "dave", "forward": [sources[1]["id"]]})
        refused = (await carol.inbox.wait_for(on("/in/ack", cid="c1")))[0].json
        assert refused["error"]["code"] == "not_found"
        assert len(carol.inbox.matching(on("/in/msg", cid="f1"))) == 1


async def test_threads_through_two_bridges(cluster: Cluster) -> None:
    """Threads (issue 28) in cluster mode: replies from users on different bridges' shards take
    the thread's tseq in turn (held under the conversation's lock in the database), every member
    gets them, and the thread's history, list and read marker answer alike whichever bridge asks
    (tests/test_threads.py has the rest: refusals, windows, the race)."""
    async with AsyncExitStack() as stack:
        alice, bob, carol = [await cluster.device(stack, u) for u in ("alice", "bob", "carol")]
        group = await alice.result("group.create", {"name": "trio", "members": ["bob", "carol"]})
        gid, conv = group["gid"], group["conv"]

        async def send(device: Device, cid: str, thread: str | None = None) -> dict[str, Any]:
            body = {"cid": cid, "group": gid, "type": "text", "text": f"say {cid}"}
            await device.send(body | ({"thread": thread} if thread else {}))
            ack: dict[str, Any] = (await device.inbox.wait_for(on("/in/ack", cid=cid)))[0].json
            assert "error" not in ack, ack
            return ack

        root = await send(alice, "root")
        acks = [await send(device, f"t{n}", root["id"]) for n, device in enumerate((bob, carol, alice, bob))]
        assert [(a["thread"], a["tseq"]) for a in acks] == [(root["id"], n) for n in range(1, 5)]
        got = (await carol.inbox.wait_for(on("/in/msg", cid="t3")))[0].json
        assert (got["thread"], got["tseq"]) == (root["id"], 4)
        refused = await send_raw(carol, {"cid": "bad", "group": gid, "type": "text", "text": "x",
                                         "thread": "01M8QD0EV8VJGDADPWYHRAPXHE"})
        assert refused["error"]["code"] == "bad_request"
        page = await bob.result("history", {"conv": conv, "thread": root["id"]})
        assert [m["tseq"] for m in page["messages"]] == [1, 2, 3, 4] and page["root"]["replies"] == 4
        [item] = (await carol.result("threads", {"conv": conv}))["items"]
        assert (item["replies"], item["read_tseq"], item["unread"]) == (4, 2, 2)
        assert (await carol.result("thread.read", {"conv": conv, "thread": root["id"], "tseq": 4}))["unread"] == 0
        await carol.inbox.wait_for(on("/in/event", type="thread_read", read_tseq=4))


async def send_raw(device: Device, body: dict[str, Any]) -> dict[str, Any]:
    await device.send(body)
    return (await device.inbox.wait_for(on("/in/ack", cid=body["cid"])))[0].json  # type: ignore[no-any-return]


async def lease_holder(url: str, consumer: str) -> str | None:
    """Who holds ``consumer``'s lease (App.leased) now, if anyone."""
    conn = await asyncpg.connect(url)
    try:
        value = await conn.fetchval("SELECT value FROM imgate_meta WHERE key = $1", f"lease:{consumer}")
    finally:
        await conn.close()
    return str(value).rpartition("|")[0] if value is not None else None


async def test_scheduled_sends_through_two_bridges_once_and_after_a_kill_9(cluster: Cluster) -> None:
    """Scheduled send (issue 28) in cluster mode: scheduled through whichever bridge holds the
    sender's shard, delivered at its time exactly once by the bridge holding the ``scheduled``
    lease (the sender told once); that bridge killed with SIGKILL, the other one takes the lease
    over and delivers the next."""
    async with AsyncExitStack() as stack:
        alice, bob, carol = [await cluster.device(stack, u) for u in ("alice", "bob", "carol")]
        g = await alice.result("group.create", {"name": "later", "members": ["bob", "carol"]})

        async def schedule(cid: str, in_ms: int) -> dict[str, Any]:
            await alice.send({"cid": cid, "group": g["gid"], "type": "text", "text": f"at last {cid}",
                              "at": int(time.time() * 1000) + in_ms})
            ack = (await alice.inbox.wait_for(on("/in/ack", cid=cid)))[0].json
            assert ack["status"] == "scheduled", ack
            return ack  # type: ignore[no-any-return]

        first = [await schedule(f"s{i}", 1_500) for i in range(3)]
        for member in (bob, carol):
            got = await member.inbox.wait_for(on("/in/msg", conv=g["conv"], type="text"), count=3)
            assert sorted(m.json["cid"] for m in got) == ["s0", "s1", "s2"]
        sent = await alice.inbox.wait_for(on("/in/event", type="scheduled", op="sent"), count=3)
        assert sorted(e.json["id"] for e in sent) == sorted(a["id"] for a in first)
        holder = await lease_holder(cluster.database_url, "scheduled")
        assert holder in {b.holder for b in cluster.bridges}
        # kill -9 the bridge delivering them; the other one takes over (the lease runs out in 15 s).
        victim = next(b for b in cluster.bridges if b.holder == holder)
        victim.kill()
        await schedule("after-kill", 500)
        got = (await bob.inbox.wait_for(on("/in/msg", cid="after-kill"), timeout=60))[0].json
        assert got["text"] == "at last after-kill"
        await alice.inbox.wait_for(on("/in/event", type="scheduled", op="sent", cid="after-kill"), timeout=WAIT)
        assert await lease_holder(cluster.database_url, "scheduled") == next(
            b.holder for b in cluster.bridges if b is not victim)
        # Each exactly once: stored, delivered, told (all of it came before the last delivery).
        rows = [cid for cid, _, conv in await stored(cluster.database_url, "alice")
                if conv == g["conv"] and not cid.startswith("member:")]
        assert sorted(rows) == ["after-kill", "s0", "s1", "s2"]
        for member in (bob, carol):
            await member.inbox.wait_for(on("/in/msg", cid="after-kill"), timeout=WAIT)
            cids = [m.json["cid"] for m in member.inbox.matching(on("/in/msg", conv=g["conv"], type="text"))]
            assert sorted(cids) == ["after-kill", "s0", "s1", "s2"], cids
        told = [e.json["cid"] for e in alice.inbox.matching(on("/in/event", type="scheduled", op="sent"))]
        assert sorted(told) == ["after-kill", "s0", "s1", "s2"], told


async def test_disappearing_messages_through_two_bridges(tmp_path: Path, rabbitmq_node: RabbitNode) -> None:
    """Disappearing messages (issue 28) in cluster mode: the ttl set through one bridge marks
    the messages sent through either, and the sweep, run by the bridge holding the lease (each
    bridge runs it, under the lease), tells every member once (tests/test_disappearing.py has
    the rest, on a clock moved by hand; here the clock is real, so a ttl of 2 s that the bridges'
    settings allow, and the test waits on the events)."""
    env = {"IMGATE_LIMITS__MIN_TTL_S": "1", "IMGATE_LIMITS__EXPIRY_INTERVAL_S": "0.2"}
    async with running_cluster(tmp_path, [rabbitmq_node], **env) as cluster, AsyncExitStack() as stack:
        alice, bob, carol = [await cluster.device(stack, u) for u in ("alice", "bob", "carol")]
        group = await alice.result("group.create", {"name": "trio", "members": ["bob", "carol"]})
        gid, conv = group["gid"], group["conv"]
        await alice.result("group.role", {"gid": gid, "uid": "bob", "role": "admin"})
        refused = await carol.rpc("conversation.ttl", {"conv": conv, "ttl": 2})
        assert refused["error"]["data"]["code"] == "forbidden"
        assert (await bob.result("conversation.ttl", {"conv": conv, "ttl": 2}))["ttl"] == 2
        for member in (alice, bob, carol):
            await member.inbox.wait_for(on("/in/event", type="ttl", ttl=2, **{"from": "bob"}))
        sent = []
        for device, cid in ((alice, "x1"), (carol, "x2")):  # whichever bridge holds each sender's shard
            await device.send({"cid": cid, "group": gid, "type": "text", "text": f"gone soon {cid}"})
            sent.append((await device.inbox.wait_for(on("/in/ack", cid=cid)))[0].json)
        assert all(s["expires_at"] == s["ts"] + 2000 for s in sent)
        got = (await bob.inbox.wait_for(on("/in/msg", cid="x2")))[0].json
        assert got["expires_at"] == sent[1]["expires_at"]
        ids = {s["id"] for s in sent}
        for member in (alice, bob, carol):
            seen: set[str] = set()
            async with asyncio.timeout(WAIT + 5):
                n = 0
                while seen != ids:
                    n += 1
                    events = await member.inbox.wait_for(on("/in/event", type="expired"), count=n)
                    seen = {i for e in events for i in e.json["ids"]}
        history = (await carol.result("history", {"conv": conv}))["messages"]
        assert [m["type"] for m in history if m["id"] in ids] == ["expired", "expired"]
        # Later, in order after anything the sweep published: still one expired event per message.
        await bob.result("conversation.ttl", {"conv": conv, "ttl": 0})
        for member in (alice, bob, carol):
            await member.inbox.wait_for(on("/in/event", type="ttl", ttl=None))
            told = [i for e in member.inbox.matching(on("/in/event", type="expired")) for i in e.json["ids"]]
            assert sorted(told) == sorted(ids), member.uid


async def test_devices_on_encoding_trees_talk_with_json_devices(tmp_path: Path, rabbitmq_node: RabbitNode) -> None:
    """RabbitMQ delivers to the devices itself, so in cluster mode a device chooses CBOR or
    MessagePack by its topic tree (protocol "Encodings"): the bridges decode what it sends there
    and publish everything to each tree converted."""
    import cbor2
    import msgpack  # type: ignore[import-untyped]

    async with running_cluster(tmp_path, [rabbitmq_node], trees=("cbor", "msgpack")) as cluster, \
            AsyncExitStack() as stack:
        board = await cluster.device(stack, "alice", "board", subscribe=["im-cbor/alice/in/#"])
        phone = await cluster.device(stack, "alice", "phone")  # JSON, on im/alice/in/#
        watch = await cluster.device(stack, "bob", "watch", subscribe=["im-msgpack/bob/in/#"])
        await board.client.publish("im-cbor/alice/out/msg", cbor2.dumps({5: "c1", 9: "bob", 6: "text", 7: "hi"}),
                                   qos=1)
        ack = (await board.inbox.wait_for(on("/in/ack", cid="c1")))[0]
        assert ack.topic == "im-cbor/alice/in/ack" and ack.payload[0] == 0xA5  # a CBOR map of 5
        assert named(cbor2.loads(ack.payload))["seq"] == 1
        assert (await phone.inbox.wait_for(on("/in/msg", cid="c1")))[0].json["text"] == "hi"
        got = (await watch.inbox.wait_for(on("/in/msg", cid="c1")))[0]
        assert got.topic == "im-msgpack/bob/in/msg"
        assert named(msgpack.unpackb(got.payload, strict_map_key=False))["text"] == "hi"

        # The watch answers in MessagePack with named keys; an RPC on the CBOR tree is answered there.
        await watch.client.publish("im-msgpack/bob/out/msg", msgpack.packb(
            {"cid": "w1", "to": "alice", "type": "text", "text": "ok"}), qos=1)
        reply = (await board.inbox.wait_for(on("/in/msg", cid="w1")))[0]
        assert named(cbor2.loads(reply.payload))["text"] == "ok"
        await board.client.publish("im-cbor/alice/out/rpc", cbor2.dumps(
            {14: "2.0", 1: 7, 15: "history", 16: {2: "d:alice:bob"}}), qos=1)
        page = (await board.inbox.wait_for(on("/in/rpc", id=7)))[0]
        assert page.topic == "im-cbor/alice/in/rpc"
        assert [m["text"] for m in named(cbor2.loads(page.payload))["result"]["messages"]] == ["hi", "ok"]

        # Malformed CBOR on the tree: an error in CBOR there, in JSON on the JSON tree.
        await board.client.publish("im-cbor/alice/out/msg", b"\xa2\x05", qos=1)
        err = (await board.inbox.wait_for(on("/in/ack", cid=None)))[0]
        assert named(cbor2.loads(err.payload))["error"]["code"] == "bad_request"
        assert (await phone.inbox.wait_for(on("/in/ack", cid=None)))[0].json["error"]["code"] == "bad_request"
        # Each device saw its own encoding only.
        assert all(r.topic.startswith("im-cbor/") and r.payload[0] >> 5 == 5 for r in board.inbox.items)
        assert all(r.topic.startswith("im/") for r in phone.inbox.items)


async def test_the_bridges_share_the_shards(cluster: Cluster) -> None:
    """Each of the two bridges is the active consumer of some of the 8 shards, none of both."""
    shares = await cluster.both_active()
    assert sorted(shares.values()) == [4, 4], shares
    # Every queue is bounded (full, RabbitMQ withholds the device's PUBACK: nothing dropped).
    listed = await cluster.node.actl("list_queues", "-q", "--no-table-headers", "name", "arguments")
    ours = [line for line in listed.splitlines() if line.startswith(f"{cluster.prefix}.")]
    assert len(ours) == 9, ours  # 8 shards and presence
    for line in ours:
        assert "x-max-length" in line and "x-max-length-bytes" in line and "reject-publish" in line, line


@pytest.mark.parametrize("event", ["the busiest bridge is killed with SIGKILL", "a third bridge joins"])
async def test_mid_stream_nothing_is_lost_duplicated_or_reordered(cluster: Cluster, event: str) -> None:
    """8 senders stream to 8 receivers; once a quarter of the acks are in (a third sent), the
    bridge holding the most shards is killed with SIGKILL, or a third bridge starts and the
    others hand it shards while the last two thirds stream. Every message is acked (RabbitMQ hands the unacknowledged deliveries
    of a dead bridge's or a handed-on shard to the next bridge; no client sends anything twice),
    stored once, in each sender's order; receivers never get one twice, and what they missed live
    (stored by the dead bridge, not yet delivered) is in their history."""
    per_sender, window = 90, 6
    shares = await cluster.both_active()
    victim = next(b for b in cluster.bridges if b.holder == max(shares, key=lambda h: shares[h]))
    joining = BridgeProcess({**cluster.bridges[0].env,
                             "IMGATE_DATA_DIR": str(Path(cluster.bridges[0].env["IMGATE_DATA_DIR"]).parent / "bridge3")},
                            "bridge3")
    async with AsyncExitStack() as stack:
        senders = [await cluster.device(stack, f"s{i}") for i in range(8)]
        receivers = [await cluster.device(stack, f"r{i}") for i in range(8)]
        acked = 0
        a_quarter = asyncio.Event()
        done = asyncio.Event()  # the event has happened: the last two thirds go out after it

        async def stream(i: int) -> None:
            s = senders[i]
            slots = asyncio.Semaphore(window)
            # Each message is published (and PUBACKed) after the one before it: the cid order is
            # the order RabbitMQ got them in, whichever task a freed slot or the event wakes first.
            turns = [asyncio.Event() for _ in range(per_sender + 1)]
            turns[0].set()

            async def one(n: int) -> None:
                async with slots:
                    if n >= per_sender // 3:
                        await done.wait()
                    await turns[n].wait()
                    await s.send({"cid": f"m{n:03d}", "to": f"r{i}", "type": "text", "text": f"{i}:{n}"})
                    turns[n + 1].set()
                    await s.inbox.wait_for(on("/in/ack", cid=f"m{n:03d}"), timeout=60)
                nonlocal acked
                acked += 1
                if acked >= 8 * per_sender // 4:
                    a_quarter.set()

            async with asyncio.TaskGroup() as tg:
                for n in range(per_sender):
                    tg.create_task(one(n))

        async def when_a_quarter_is_acked() -> None:
            await a_quarter.wait()
            if event.startswith("the busiest"):
                victim.kill()  # with its share of the first third still in flight
            else:
                cluster.bridges.append(joining)  # stopped by the fixture
                await joining.start()  # the others hand shards on within a heartbeat, mid-stream
            done.set()

        async with asyncio.timeout(120), asyncio.TaskGroup() as tg:
            tg.create_task(when_a_quarter_is_acked())
            for i in range(8):
                tg.create_task(stream(i))
        if event.startswith("the busiest"):
            assert victim.proc is not None and await victim.proc.wait() == -9
        else:
            assert sorted((await cluster.both_active()).values()) == [2, 3, 3]  # the three share them
        assert acked == 8 * per_sender
        acked = sum(len({a.json["cid"] for a in s.inbox.matching(on("/in/ack"))}) for s in senders)
        assert acked == 8 * per_sender
        for i, s in enumerate(senders):
            errors = [a.json for a in s.inbox.matching(on("/in/ack")) if "error" in a.json]
            assert not errors, errors[:3]
            rows = await stored(cluster.database_url, f"s{i}")
            # Once each, and in the sender's order: seq 1..90 follows cid order.
            assert [cid for cid, _, _ in rows] == [f"m{n:03d}" for n in range(per_sender)]
            assert [seq for _, seq, _ in rows] == list(range(1, per_sender + 1))
            live = [json.loads(m.payload)["cid"] for m in receivers[i].inbox.matching(on("/in/msg"))]
            assert len(live) == len(set(live)), "a receiver got a message twice"
            history = await receivers[i].result("history", {"conv": f"d:r{i}:s{i}" if f"r{i}" < f"s{i}"
                                                            else f"d:s{i}:r{i}", "limit": 100})
            assert sorted(m["cid"] for m in history["messages"]) == [f"m{n:03d}" for n in range(per_sender)]
            assert set(live) <= {m["cid"] for m in history["messages"]}


async def test_presence_comes_from_rabbitmqs_connection_events(cluster: Cluster) -> None:
    """RabbitMQ's event exchange says when a device connects and when its connection closes: the
    bridges store it (the ``presence`` RPC) and announce it on ``presence/{uid}/{device}``."""
    async with AsyncExitStack() as stack:
        bob = await cluster.device(stack, "bob", subscribe=["im/bob/in/#", "presence/alice/+"])
        async with connect(cluster.node.mqtt_port, "alice", "phone", await cluster.token("alice")):
            online = (await bob.inbox.wait_for(lambda r: r.topic == "presence/alice/phone"))[0].json
            assert online["online"] is True and online["ts"] > 0
            seen = await bob.result("presence", {"uids": ["alice"]})
            assert seen["presence"]["alice"]["online"] is True
        offline = await bob.inbox.wait_for(lambda r: r.topic == "presence/alice/phone", count=2)
        assert offline[1].json["online"] is False
        seen = await bob.result("presence", {"uids": ["alice"]})
        assert seen["presence"]["alice"]["online"] is False


async def test_presence_survives_a_takeover_and_the_bridge_that_saw_the_connect(cluster: Cluster) -> None:
    """A device that reconnects before its old connection closes stays online (the close names
    the old connection); a close seen by a bridge that did not see the connect (the other one
    died meanwhile) is matched through the presence table."""
    async with AsyncExitStack() as stack:
        bob = await cluster.device(stack, "bob", subscribe=["im/bob/in/#", "presence/alice/+"])
        token = await cluster.token("alice")
        first = await stack.enter_async_context(connect(cluster.node.mqtt_port, "alice", "phone", token))
        await bob.inbox.wait_for(on("presence/alice/phone", online=True))
        async with connect(cluster.node.mqtt_port, "alice", "phone", token):  # takes the client id over
            await asyncio.wait_for(first.disconnected.wait(), WAIT)
            await bob.inbox.wait_for(on("presence/alice/phone", online=True), count=2)
            seen = await bob.result("presence", {"uids": ["alice"]})
            assert seen["presence"]["alice"]["online"] is True, "the old connection's close took the new one offline"
        await bob.inbox.wait_for(on("presence/alice/phone", online=False))
        assert (await bob.result("presence", {"uids": ["alice"]}))["presence"]["alice"]["online"] is False


async def test_a_two_node_rabbitmq_cluster(tmp_path: Path) -> None:
    """Two RabbitMQ nodes clustered, a bridge on each: alice on node 2 and bob on node 1 talk
    (quorum queues and the deliveries cross the nodes), and bob sees alice's presence from an
    event of the other node."""
    if not installed():
        pytest.skip("RabbitMQ is not installed")
    first = RabbitNode()
    second = RabbitNode(cookie=first.cookie)
    try:
        await asyncio.gather(asyncio.to_thread(first.start), asyncio.to_thread(second.start))
        await second.join(first)
        assert second.nodename in await first.actl("cluster_status")
        async with running_cluster(tmp_path, [first, second]) as cluster, AsyncExitStack() as stack:
            bob = await stack.enter_async_context(connect(first.mqtt_port, "bob", "phone", await cluster.token("bob"),
                                                          subscribe=["im/bob/in/#", "presence/alice/+"]))
            alice = await stack.enter_async_context(connect(second.mqtt_port, "alice", "phone",
                                                            await cluster.token("alice")))
            await bob.inbox.wait_for(on("presence/alice/phone", online=True))
            ack = await alice.send_and_ack("n2", "bob", "from node 2")
            assert ack["seq"] == 1 and "error" not in ack
            assert (await bob.inbox.wait_for(on("/in/msg", cid="n2")))[0].json["text"] == "from node 2"
            back = await bob.send_and_ack("n1", "alice", "from node 1")
            assert back["seq"] == 2
            assert (await alice.inbox.wait_for(on("/in/msg", cid="n1")))[0].json["from"] == "bob"
    finally:
        await asyncio.gather(asyncio.to_thread(second.stop), asyncio.to_thread(first.stop))


async def test_bridges_reconnect_when_rabbitmq_closes_their_connections(cluster: Cluster) -> None:
    """RabbitMQ closes both bridges' AMQP connections (an operator, a node restart): they connect
    again, take the shards back, and messaging goes on."""
    async with AsyncExitStack() as stack:
        alice = await cluster.device(stack, "alice")
        bob = await cluster.device(stack, "bob")
        assert (await alice.send_and_ack("before", "bob"))["seq"] == 1
        listed = await cluster.node.actl("list_connections", "-q", "--no-table-headers", "pid", "user", "protocol")
        bridges = [line.split("\t")[0] for line in listed.splitlines()
                   if line.split("\t")[1:2] == [BRIDGE_USER] and "0,9,1" in line]
        assert len(bridges) == 2, listed
        for pid in bridges:
            await cluster.node.actl("close_connection", pid, "test: closed by the operator")
        await cluster.both_active()  # both connected again and consuming
        assert (await alice.send_and_ack("after", "bob"))["seq"] == 2
        assert [m.json["cid"] for m in await bob.inbox.wait_for(on("/in/msg"), count=2)] == ["before", "after"]


async def test_imgate_api_serves_the_console_its_stats_and_the_connections_from_presence(cluster: Cluster) -> None:
    """Cluster mode's ``imgate api`` serves the operator console; it has no broker of its own, so
    ``/v1/connections`` answers from the presence table the bridges keep (and says so), and
    ``/v1/stats`` is the api process's own metrics."""
    import httpx

    assert cluster.api.admin is not None
    base = f"http://127.0.0.1:{cluster.api.admin.port}"
    async with httpx.AsyncClient(base_url=base) as public, \
            httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {ADMIN_SECRET}"}) as api:
        page = await public.get("/console")
        assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
        assert (await public.get("/console/console.js")).status_code == 200
        assert (await public.get("/v1/stats")).status_code == 401
        stats = (await api.get("/v1/stats")).json()
        assert stats["role"] == "api" and "message_batches_total" in stats["metrics"]
        async with AsyncExitStack() as stack:
            bob = await cluster.device(stack, "bob", subscribe=["im/bob/in/#", "presence/alice/+"])
            async with connect(cluster.node.mqtt_port, "alice", "phone", await cluster.token("alice")):
                # The bridge stores a presence before it announces it.
                await bob.inbox.wait_for(on("presence/alice/phone", online=True))
                live = (await api.get("/v1/connections")).json()
                assert live["source"] == "presence"
                assert [c["client_id"] for c in live["items"]] == ["alice:phone", "bob:phone"]
                assert live["total"] == 2 and live["items"][0]["since"] > 0
                devices = (await api.get("/v1/users/alice/devices")).json()["items"]
                assert [(d["device"], d["online"]) for d in devices] == [("phone", True)]
            await bob.inbox.wait_for(on("presence/alice/phone", online=False))
            live = (await api.get("/v1/connections")).json()
            assert [c["client_id"] for c in live["items"]] == ["bob:phone"] and live["total"] == 1


async def test_the_audit_log_and_the_group_routes_in_cluster_mode(tmp_path: Path, rabbitmq_node: RabbitNode) -> None:
    """Issue 29: ``imgate api`` records its changes and serves them; the two bridges, starting
    with a callback configuration, record it once in the same PostgreSQL table; a group made
    through the API (no bridge in that process) reaches its member by ``history``."""
    import httpx

    endpoints = [{"name": "ops", "url": "https://hooks.example.com/imgate", "secret": "cluster-signing-secret-42",
                  "events": ["after_recall"]}]
    async with running_cluster(tmp_path, [rabbitmq_node], IMGATE_CALLBACKS__ENDPOINTS=json.dumps(endpoints)) \
            as cluster, AsyncExitStack() as stack, httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{cluster.api.admin.port}",  # type: ignore[union-attr]
                headers={"Authorization": f"Bearer {ADMIN_SECRET}", "X-Imgate-Actor": "console:ops"}) as api:
        assert (await api.post("/v1/users", json={"uid": "ann"})).status_code == 201
        bob = await cluster.device(stack, "bob")
        assert (await api.post("/v1/users/bob/tokens", json={"device": "tablet"})).status_code == 201
        made = await api.post("/v1/groups", json={"owner": "ann", "name": "ops", "members": ["bob"]})
        assert made.status_code == 201
        conv = made.json()["conv"]
        history = await bob.result("history", {"conv": conv})
        assert [(m["type"], m["seq"]) for m in history["messages"]] == [("member", 1)]
        log = (await api.get("/v1/audit")).json()["items"]
        mine = [(e["actor"], e["action"], e["target"]) for e in log if e["actor"] == "console:ops"]
        assert mine == [("console:ops", "group.create", conv), ("console:ops", "token.issue", "bob"),
                        ("console:ops", "user.create", "ann")]
        configs = (await api.get("/v1/audit", params={"action": "callbacks.config"})).json()["items"]
        assert len(configs) == 1 and configs[0]["detail"]["process"].startswith("bridge ")
        assert configs[0]["detail"]["endpoints"][0]["url"] == "https://hooks.example.com/imgate"
        assert "cluster-signing-secret" not in json.dumps(configs)


async def test_a_bot_sends_through_imgate_api_and_over_mqtt(tmp_path: Path, rabbitmq_node: RabbitNode) -> None:
    """Bots (docs/bots.md) in cluster mode: a send through ``imgate api`` is stored and delivered
    live through RabbitMQ (the api's AMQP publisher), marked as a bot's; the bot's own MQTT sends
    are marked by the bridges once they have read the bots (``limits.bots_refresh_s``)."""
    import httpx

    async with running_cluster(tmp_path, [rabbitmq_node], trees=("cbor",), api_amqp=True,
                               IMGATE_LIMITS__BOTS_REFRESH_S="0.2") as cluster, AsyncExitStack() as stack:
        assert cluster.api.admin is not None
        api = await stack.enter_async_context(httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{cluster.api.admin.port}", headers={"Authorization": f"Bearer {ADMIN_SECRET}"},
            timeout=WAIT))
        assert (await api.post("/v1/bots", json={"uid": "helper"})).status_code == 201
        alice = await cluster.device(stack, "alice")
        r = await api.post("/v1/bots/helper/messages", json={"cid": "api1", "to": "alice", "text": "from the api"})
        assert r.status_code == 201 and r.json()["live"] is True, r.text
        got = (await alice.inbox.wait_for(on("/in/msg", cid="api1")))[0].json
        assert (got["text"], got["from"], got["bot"], got["id"]) == ("from the api", "helper", True, r.json()["id"])
        again = await api.post("/v1/bots/helper/messages", json={"cid": "api1", "to": "alice", "text": "from the api"})
        assert again.status_code == 200 and again.json()["id"] == r.json()["id"]
        history = (await api.get("/v1/bots/helper/conversations/d:alice:helper/messages")).json()["messages"]
        assert [m["cid"] for m in history] == ["api1"]
        # Over MQTT: the bridges know the bot within their refresh; until then a message is not marked.
        bot = await cluster.device(stack, "helper", "srv")
        marked = False
        for i in range(50):  # each round waits for its own delivery; bounded
            ack = await bot.send_and_ack(f"mq{i}", "alice", "over mqtt")
            assert "error" not in ack
            marked = (await alice.inbox.wait_for(on("/in/msg", cid=f"mq{i}")))[0].json.get("bot", False)
            if marked:
                break
        assert marked
        assert len(alice.inbox.matching(on("/in/msg", cid="api1"))) == 1  # never twice


async def test_before_send_callbacks_through_two_bridges(tmp_path: Path, rabbitmq_node: RabbitNode) -> None:
    """The before_send callback (issue 29) in cluster mode: each ``imgate bridge`` asks the
    operator's endpoint (a real HTTP server of the test, every request's signature checked) before
    storing; a refusal reaches the sender as ``refused`` with the operator's reason and nobody
    else; a replacement is what the recipient gets and what is stored."""
    from tests.callback_receiver import SECRET, answer, receiving

    async def policy(event: dict[str, Any]) -> tuple[int, bytes]:
        text = event.get("text") or ""
        if "spam" in text:
            return answer("refuse", code="spam")
        return answer("replace", text=text.replace("darn", "d**n")) if "darn" in text else answer("allow")

    async with receiving(policy) as receiver:
        endpoints = [{"name": "policy", "url": receiver.url, "secret": SECRET, "events": ["before_send"],
                      "timeout_s": 5}]
        callbacks = {"endpoints": endpoints, "allow_http": True, "allow": ["127.0.0.1"]}
        async with running_cluster(tmp_path, [rabbitmq_node], api_settings={"callbacks": callbacks},
                                   IMGATE_CALLBACKS__ENDPOINTS=json.dumps(endpoints),
                                   IMGATE_CALLBACKS__ALLOW_HTTP="true",
                                   IMGATE_CALLBACKS__ALLOW='["127.0.0.1"]') as cluster, AsyncExitStack() as stack:
            alice, bob, carol = [await cluster.device(stack, u) for u in ("alice", "bob", "carol")]
            group = await alice.result("group.create", {"name": "trio", "members": ["bob", "carol"]})
            for device, cid, body in ((alice, "c1", {"to": "bob", "text": "buy spam"}),
                                      (alice, "c2", {"to": "bob", "text": "darn it"}),
                                      (carol, "g1", {"group": group["gid"], "text": "spam all"}),
                                      (carol, "g2", {"group": group["gid"], "text": "darn all"})):
                await device.send({"cid": cid, "type": "text", **body})
            assert (await alice.inbox.wait_for(on("/in/ack", cid="c1")))[0].json["error"] == \
                {"code": "refused", "message": "refused by the operator (spam)", "reason": "spam"}
            assert (await carol.inbox.wait_for(on("/in/ack", cid="g1")))[0].json["error"]["reason"] == "spam"
            assert (await bob.inbox.wait_for(on("/in/msg", cid="c2")))[0].json["text"] == "d**n it"
            assert (await bob.inbox.wait_for(on("/in/msg", cid="g2")))[0].json["text"] == "d**n all"
            assert [m.json["cid"] for m in bob.inbox.matching(on("/in/msg"))] in (["c2", "g2"], ["g2", "c2"])
            sent = {"c1", "c2", "g1", "g2"}  # (alice's group also holds its system messages)
            assert [c for c, _, _ in await stored(cluster.database_url, "alice") if c in sent] == ["c2"]
            assert [c for c, _, _ in await stored(cluster.database_url, "carol") if c in sent] == ["g2"]
            assert {e["cid"] for e in receiver.events} == {"c1", "c2", "g1", "g2"} and receiver.bad == []
            # A bot's send through imgate api is asked too (imgate api's own dispatcher).
            import httpx

            assert cluster.api.admin is not None
            api = await stack.enter_async_context(httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{cluster.api.admin.port}",
                headers={"Authorization": f"Bearer {ADMIN_SECRET}"}, timeout=WAIT))
            assert (await api.post("/v1/bots", json={"uid": "helper"})).status_code == 201
            refused = await api.post("/v1/bots/helper/messages", json={"cid": "h1", "to": "bob", "text": "spam bot"})
            assert refused.status_code == 422 and refused.json()["error"]["reason"] == "spam", refused.text
            assert [(e["sender"], e["bot"]) for e in receiver.events if e["cid"] == "h1"] == [("helper", True)]


async def test_after_send_callbacks_from_two_bridges_are_delivered_by_the_worker(
        tmp_path: Path, rabbitmq_node: RabbitNode) -> None:
    """Callbacks (issue 29) in cluster mode: both bridges write the after_send events in their
    messages' transactions into the PostgreSQL outbox, and an ``imgate worker`` process on the
    same database delivers them, signed, in order per conversation (tests/test_callbacks_after.py
    has the rest: retries, the black hole, the other events, a restart)."""
    import sys

    from tests.test_callbacks_after import endpoint, receiver

    async with receiver() as hook:
        env = {"IMGATE_CALLBACKS__ENDPOINTS": json.dumps([endpoint("crm", hook.url, ["after_send"])]),
               "IMGATE_CALLBACKS__ALLOW": '["127.0.0.1"]', "IMGATE_CALLBACKS__ALLOW_HTTP": "true",
               "IMGATE_CALLBACKS__OUTBOX__POLL_S": "0.05"}
        async with running_cluster(tmp_path, [rabbitmq_node], **env) as cluster, AsyncExitStack() as stack:
            worker_env = bridge_env(cluster.node, cluster.database_url, cluster.prefix, tmp_path / "worker", **env)
            (tmp_path / "worker").mkdir()
            worker = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "imgate", "worker", env=worker_env, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True)
            assert worker.stdout is not None

            async def drain() -> None:  # (its log: a full pipe would stop it)
                assert worker.stdout is not None
                while await worker.stdout.read(65536):
                    pass

            async def stop_worker() -> None:
                worker.kill()
                await worker.wait()
                if reading is not None:
                    await reading

            reading: asyncio.Task[None] | None = None
            stack.push_async_callback(stop_worker)
            async with asyncio.timeout(60):
                while b"imgate worker: running" not in (line := await worker.stdout.readline()):
                    assert line, "imgate worker exited"
            reading = asyncio.create_task(drain(), name="test-worker-output")
            await cluster.both_active()
            senders = ["alice", "bob", "carol", "dave"]
            devices = [await cluster.device(stack, u) for u in senders]
            acks = []
            for i in range(5):
                for n, device in enumerate(devices):
                    acks.append(await device.send_and_ack(f"c{i}", senders[(n + 1) % 4], f"{senders[n]} {i}"))
            events = await hook.until(len(acks))
            assert sorted(e["data"]["id"] for e in events) == sorted(a["id"] for a in acks)
            for conv in {a["conv"] for a in acks}:
                assert [e["data"]["seq"] for e in events if e["conv"] == conv] == \
                    sorted(a["seq"] for a in acks if a["conv"] == conv)
