"""End-to-end 1:1 messaging over the real broker and bridge (protocol §3–§4)."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from config.settings import Settings
from imgate.app import App
from services.messages.models import Message
from tests.conftest import Users
from tests.helpers import connect, on, platform, tweak


@pytest.fixture(params=["auto", "mqtt"])
def bridge_transport(request: pytest.FixtureRequest) -> str:
    """Every test here runs with the in-process bridge and with the bridge over MQTT."""
    return request.param

async def test_message_reaches_recipient_and_senders_other_devices_then_ack(app: App, users: Users) -> None:
    await users.add("alice", "bob")
    port = app.mqtt_port
    async with connect(port, "bob", "phone", await users.token("bob", "phone")) as bob_phone, \
               connect(port, "bob", "desk", await users.token("bob", "desk")) as bob_desk, \
               connect(port, "alice", "tablet", await users.token("alice", "tablet")) as alice_tablet, \
               connect(port, "alice", "phone", await users.token("alice", "phone")) as alice:
        ack = await alice.send_and_ack("k3j9-0001", "bob", "hello")
        assert set(ack) == {"cid", "id", "conv", "seq", "ts"}
        assert (ack["cid"], ack["conv"], ack["seq"]) == ("k3j9-0001", "d:alice:bob", 1)
        for device in (bob_phone, bob_desk, alice_tablet):
            got = (await device.inbox.wait_for(on("/in/msg", cid="k3j9-0001")))[0].json
            assert got == {"id": ack["id"], "conv": "d:alice:bob", "seq": 1, "from": "alice", "cid": "k3j9-0001",
                           "type": "text", "text": "hello", "ts": ack["ts"]}
        # The ack went out only after the message was stored.
        stored = await Message.get(id=ack["id"])
        assert (stored.seq, stored.text) == (1, "hello")
        # Sender's message was published to its devices before the ack.
        order = [r.topic for r in alice.inbox.items if "/in/" in r.topic]
        assert order.index("im/alice/in/msg") < order.index("im/alice/in/ack")


async def test_custom_messages_carry_data(app: App, users: Users) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob, \
               connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        data = {"kind": "image", "url": "https://example.invalid/x.png", "w": 640}
        await alice.send({"cid": "img", "to": "bob", "type": "custom", "data": data})
        got = (await bob.inbox.wait_for(on("/in/msg", cid="img")))[0].json
        assert got["data"] == data and "text" not in got


async def test_concurrent_senders_get_gap_free_seq_in_send_order(app: App, users: Users) -> None:
    """Four devices (two per user) send 25 messages each into one conversation at once."""
    await users.add("alice", "bob")
    port = app.mqtt_port
    per_device = 25
    async with connect(port, "alice", "a1", await users.token("alice", "a1")) as a1, \
               connect(port, "alice", "a2", await users.token("alice", "a2")) as a2, \
               connect(port, "bob", "b1", await users.token("bob", "b1")) as b1, \
               connect(port, "bob", "b2", await users.token("bob", "b2")) as b2:
        senders = [(a1, "bob"), (a2, "bob"), (b1, "alice"), (b2, "alice")]

        async def burst(dev, to, tag):
            for i in range(per_device):
                await dev.send({"cid": f"{tag}-{i:03d}", "to": to, "type": "text", "text": f"{tag} {i}"})

        await asyncio.gather(*(burst(d, to, f"s{n}") for n, (d, to) in enumerate(senders)))
        total = per_device * len(senders)
        acks: dict[str, dict] = {}
        for n, (dev, _) in enumerate(senders):
            for r in await dev.inbox.wait_for(lambda r, n=n: r.topic.endswith("/in/ack")
                                              and r.json["cid"].startswith(f"s{n}-"), count=per_device):
                acks[r.json["cid"]] = r.json
        seqs = sorted(a["seq"] for a in acks.values())
        assert seqs == list(range(1, total + 1)), "seq must start at 1 with no gap and no duplicate"
        for n in range(len(senders)):
            mine = [acks[f"s{n}-{i:03d}"]["seq"] for i in range(per_device)]
            assert mine == sorted(mine), "one device's messages keep their send order"
        # Every device of both users saw every message exactly once, in seq order.
        for dev, _ in senders:
            got = await dev.inbox.wait_for(lambda r: r.topic.endswith("/in/msg"), count=total)
            assert [r.json["seq"] for r in got] == list(range(1, total + 1))


async def test_a_busy_conversation_is_stored_in_batches_in_order(app: App, users: Users) -> None:
    """One sender bursts into one conversation: its queued sends share transactions (not one
    transaction each while the rest wait), and still get their seqs and deliveries in send order."""
    await users.add("alice", "bob")
    total = 200
    async with connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob, \
               connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        await alice.send_and_ack("warm", "bob")  # the conversation exists: every send below is alike
        before = app.services.messages.batches
        # Published without waiting for each PUBACK (in order: each publish is written as it starts).
        await asyncio.gather(*(alice.send({"cid": f"b-{i:03d}", "to": "bob", "type": "text", "text": str(i)})
                               for i in range(total)))
        acks = await alice.inbox.wait_for(lambda r: r.topic.endswith("/in/ack") and r.json["cid"].startswith("b-"),
                                          count=total)
        assert [a.json["seq"] for a in sorted(acks, key=lambda a: a.json["cid"])] == list(range(2, total + 2))
        got = await bob.inbox.wait_for(lambda r: r.topic.endswith("/in/msg") and r.json["cid"].startswith("b-"),
                                       count=total)
        assert [r.json["cid"] for r in got] == [f"b-{i:03d}" for i in range(total)]
        assert app.services.messages.batches - before < total / 2, "queued sends should share transactions"


async def test_retry_with_same_cid_is_acked_again_and_not_stored_or_delivered_twice(app: App, users: Users) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob, \
               connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        first = await alice.send_and_ack("dup-1", "bob", "once")
        await alice.send({"cid": "dup-1", "to": "bob", "type": "text", "text": "once"})
        acks = await alice.inbox.wait_for(on("/in/ack", cid="dup-1"), count=2)
        assert acks[0].json == acks[1].json == first
        # Barrier: the next message arrives, and the duplicate never did.
        await alice.send_and_ack("dup-2", "bob", "twice")
        await bob.inbox.wait_for(on("/in/msg", cid="dup-2"))
        assert len(bob.inbox.matching(on("/in/msg", cid="dup-1"))) == 1
        assert await Message.filter(sender="alice", cid="dup-1").count() == 1
        assert (await bob.inbox.wait_for(on("/in/msg", cid="dup-2")))[0].json["seq"] == 2


async def test_history_pages_forward_and_backward(app: App, users: Users) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        for i in range(1, 26):
            await alice.send({"cid": f"h{i}", "to": "bob", "type": "text", "text": f"m{i}"})
        await alice.inbox.wait_for(on("/in/ack", cid="h25"))
        latest = await alice.result("history", {"conv": "d:alice:bob", "limit": 10})
        assert [m["seq"] for m in latest["messages"]] == list(range(16, 26)) and latest["has_more"]
        older = await alice.result("history", {"conv": "d:alice:bob", "before_seq": 16, "limit": 10})
        assert [m["seq"] for m in older["messages"]] == list(range(6, 16)) and older["has_more"]
        oldest = await alice.result("history", {"conv": "d:alice:bob", "before_seq": 6, "limit": 10})
        assert [m["seq"] for m in oldest["messages"]] == [1, 2, 3, 4, 5] and not oldest["has_more"]
        forward = await alice.result("history", {"conv": "d:alice:bob", "after_seq": 20, "limit": 3})
        assert [m["seq"] for m in forward["messages"]] == [21, 22, 23] and forward["has_more"]
        tail = await alice.result("history", {"conv": "d:alice:bob", "after_seq": 23})
        assert [m["text"] for m in tail["messages"]] == ["m24", "m25"] and not tail["has_more"]
        both = await alice.rpc("history", {"conv": "d:alice:bob", "after_seq": 1, "before_seq": 5})
        assert both["error"]["code"] == -32602


async def test_history_of_someone_elses_conversation_is_not_found(app: App, users: Users) -> None:
    await users.add("alice", "bob", "eve")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
               connect(app.mqtt_port, "eve", "phone", await users.token("eve")) as eve:
        await alice.send_and_ack("p1", "bob", "private")
        for conv in ("d:alice:bob", "d:nobody:zzz"):
            err = (await eve.rpc("history", {"conv": conv}))["error"]
            assert err["code"] == 404 and err["data"]["code"] == "not_found"
        assert (await eve.rpc("read", {"conv": "d:alice:bob", "seq": 1}))["error"]["code"] == 404


async def test_unread_counts_and_read_receipts(app: App, users: Users) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "bob", "phone", await users.token("bob", "phone")) as bob, \
               connect(app.mqtt_port, "bob", "desk", await users.token("bob", "desk")) as bob_desk, \
               connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        for i in range(5):
            await alice.send({"cid": f"u{i}", "to": "bob", "type": "text", "text": str(i)})
        await alice.inbox.wait_for(on("/in/ack", cid="u4"))
        [conv] = (await bob.result("conversations"))["items"]
        assert (conv["conv"], conv["peer"], conv["kind"]) == ("d:alice:bob", "alice", "direct")
        assert (conv["last_seq"], conv["read_seq"], conv["unread"]) == (5, 0, 5)
        assert conv["last"]["cid"] == "u4" and conv["last"]["text"] == "4"
        # Own messages never count as unread.
        [mine] = (await alice.result("conversations"))["items"]
        assert mine["unread"] == 0 and mine["peer"] == "bob" and mine["peer_read_seq"] == 0

        assert await bob.result("read", {"conv": "d:alice:bob", "seq": 3}) == \
            {"conv": "d:alice:bob", "read_seq": 3, "unread": 2}
        receipt = (await alice.inbox.wait_for(on("/in/event", type="read")))[0].json
        assert receipt == {"type": "read", "conv": "d:alice:bob", "from": "bob", "seq": 3}
        await bob_desk.inbox.wait_for(on("/in/event", type="read", seq=3))  # other devices sync
        # After a reload, alice's list says how far bob has read (her "seen" marks).
        assert (await alice.result("conversations"))["items"][0]["peer_read_seq"] == 3
        # The marker never moves backward, and is capped at the last message.
        assert (await bob.result("read", {"conv": "d:alice:bob", "seq": 1}))["read_seq"] == 3
        assert (await bob.result("read", {"conv": "d:alice:bob", "seq": 99}))["read_seq"] == 5
        assert (await bob_desk.result("conversations"))["items"][0]["unread"] == 0
        # The read event (out/event) works like the RPC, with no response.
        reply = await bob.send_and_ack("r1", "alice", "got them")
        await alice.client.publish("im/alice/out/event",
                                   json.dumps({"type": "read", "conv": "d:alice:bob", "seq": reply["seq"]}))
        await bob.inbox.wait_for(on("/in/event", type="read", seq=6, **{"from": "alice"}))


async def test_conversation_list_pages_by_cursor_most_recent_first(app: App, users: Users) -> None:
    peers = [f"p{i}" for i in range(5)]
    await users.add("alice", *peers)
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        for p in peers:
            await alice.send_and_ack(f"to-{p}", p)
        page1 = await alice.result("conversations", {"limit": 2})
        page2 = await alice.result("conversations", {"limit": 2, "cursor": page1["next_cursor"]})
        page3 = await alice.result("conversations", {"limit": 2, "cursor": page2["next_cursor"]})
        got = [c["peer"] for c in page1["items"] + page2["items"] + page3["items"]]
        assert sorted(got) == peers and len(set(got)) == 5
        assert page3["next_cursor"] is None
        assert (await alice.rpc("conversations", {"cursor": "garbage"}))["error"]["code"] == -32602
        for cursor in ("\u00b2|d:alice:bob", f"{'9' * 30}|d:alice:bob"):  # int() refuses "²"; past SQL's BIGINT
            assert (await alice.rpc("conversations", {"cursor": cursor}))["error"]["code"] == -32602, cursor


async def test_persistent_session_gets_messages_sent_while_offline(app: App, users: Users) -> None:
    await users.add("alice", "bob")
    bob_token = await users.token("bob")
    async with connect(app.mqtt_port, "bob", "phone", bob_token, clean_session=False):
        pass
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        await alice.send_and_ack("while-away", "bob", "you were away")
    async with connect(app.mqtt_port, "bob", "phone", bob_token, clean_session=False, subscribe=[]) as bob:
        got = await bob.inbox.wait_for(on("/in/msg", cid="while-away"))
        assert got[0].json["text"] == "you were away"


async def test_failed_store_is_not_acked_and_the_retry_stores_once(settings: Settings, tmp_path) -> None:
    """The database refuses writes: the sender gets an ``internal`` error, never a success ack.
    When it comes back, the retry with the same cid is stored and delivered exactly once."""
    if not settings.database_url().startswith("sqlite://"):
        pytest.skip("locks the SQLite file from outside")
    tight = tweak(settings, "database", sqlite_busy_timeout_ms=50)
    async with platform(tight, "alice", "bob") as (app, tokens):
        async with connect(app.mqtt_port, "bob", "phone", tokens["bob"]) as bob, \
                   connect(app.mqtt_port, "alice", "phone", tokens["alice"]) as alice:
            await alice.send_and_ack("warmup", "bob")  # the conversation exists
            blocker = sqlite3.connect(tight.database_url().removeprefix("sqlite://"), isolation_level=None)
            blocker.execute("BEGIN EXCLUSIVE")
            try:
                await alice.send({"cid": "during-outage", "to": "bob", "type": "text", "text": "x"})
                failed = (await alice.inbox.wait_for(on("/in/ack", cid="during-outage")))[0].json
                assert failed["error"]["code"] == "internal" and "id" not in failed
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            await alice.send({"cid": "during-outage", "to": "bob", "type": "text", "text": "x"})
            acks = await alice.inbox.wait_for(on("/in/ack", cid="during-outage"), count=2)
            retried = acks[1].json
            assert "error" not in retried and retried["seq"] == 2
            await bob.inbox.wait_for(on("/in/msg", cid="during-outage"))
            assert len(bob.inbox.matching(on("/in/msg", cid="during-outage"))) == 1
