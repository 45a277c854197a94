"""Recall, typing, per-conversation settings, and gap repair after time offline."""

from __future__ import annotations

import json

from imgate.app import App
from tests.conftest import Users
from tests.helpers import ManualClock, connect, on
from tests.manual_clock import clock_fixture, manual_app_fixture  # noqa: F401


async def test_sender_recalls_within_the_window(app: App, users: Users) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob, \
               connect(app.mqtt_port, "alice", "desk", await users.token("alice", "desk")) as alice_desk, \
               connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        ack = await alice.send_and_ack("oops", "bob", "wrong chat")
        await alice.send_and_ack("fine", "bob", "this stays")
        assert await alice.result("recall", {"id": ack["id"]}) == {"id": ack["id"], "conv": "d:alice:bob", "seq": 1}
        for device in (bob, alice_desk):
            event = (await device.inbox.wait_for(on("/in/event", type="recall")))[0].json
            assert event == {"type": "recall", "conv": "d:alice:bob", "id": ack["id"], "seq": 1, "by": "alice"}
        history = (await bob.result("history", {"conv": "d:alice:bob"}))["messages"]
        assert [(m["seq"], m["type"]) for m in history] == [(1, "recalled"), (2, "text")]
        assert "text" not in history[0] and history[0]["recalled_by"] == "alice" and history[0]["id"] == ack["id"]
        # Recalling again is harmless and answers the same.
        assert (await alice.result("recall", {"id": ack["id"]}))["seq"] == 1


async def test_recall_errors(app: App, users: Users, clock: ManualClock) -> None:
    await users.add("alice", "bob", "eve")
    async with connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob, \
               connect(app.mqtt_port, "eve", "phone", await users.token("eve")) as eve, \
               connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        ack = await alice.send_and_ack("m", "bob", "mine")
        assert (await bob.rpc("recall", {"id": ack["id"]}))["error"]["code"] == 403  # not the sender
        assert (await eve.rpc("recall", {"id": ack["id"]}))["error"]["code"] == 404  # not even visible
        assert (await alice.rpc("recall", {"id": "0" * 26}))["error"]["code"] == 404
        assert (await alice.rpc("recall", {"id": "short"}))["error"]["code"] == -32602
        clock.ms += 121_000
        late = (await alice.rpc("recall", {"id": ack["id"]}))["error"]
        assert late["code"] == 403 and "too late" in late["message"]


async def test_group_admin_recalls_anyones_message_any_time(app: App, users: Users, clock: ManualClock) -> None:
    await users.add("alice", "bob", "carol")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
               connect(app.mqtt_port, "carol", "phone", await users.token("carol")) as carol, \
               connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        g = await alice.result("group.create", {"name": "g", "members": ["bob", "carol"]})
        await bob.send({"cid": "spam", "group": g["gid"], "type": "text", "text": "buy now"})
        spam = (await bob.inbox.wait_for(on("/in/ack", cid="spam")))[0].json
        clock.ms += 3_600_000
        assert (await carol.rpc("recall", {"id": spam["id"]}))["error"]["code"] == 403  # a plain member
        assert (await alice.result("recall", {"id": spam["id"]}))["seq"] == spam["seq"]  # the owner
        await carol.inbox.wait_for(on("/in/event", type="recall", id=spam["id"]))


async def test_typing_is_forwarded_at_qos0_rate_limited_and_never_stored(app: App, users: Users) -> None:
    await users.add("alice", "bob", "eve")
    async with connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob, \
               connect(app.mqtt_port, "eve", "phone", await users.token("eve")) as eve, \
               connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        await alice.send_and_ack("first", "bob")
        for _ in range(10):  # the clock does not move: only the burst (2) passes
            await alice.client.publish("im/alice/out/event", json.dumps({"type": "typing", "conv": "d:alice:bob"}))
        # eve is not in the conversation: her typing goes nowhere.
        await eve.client.publish("im/eve/out/event", json.dumps({"type": "typing", "conv": "d:alice:bob"}))
        await alice.send_and_ack("barrier", "bob")  # typing is laned with the conversation's messages
        await eve.send_and_ack("eve-barrier", "bob")
        await bob.inbox.wait_for(on("/in/msg", cid="barrier"))
        await bob.inbox.wait_for(on("/in/msg", cid="eve-barrier"))
        typing = bob.inbox.matching(on("/in/event", type="typing"))
        assert [t.json for t in typing] == [{"type": "typing", "conv": "d:alice:bob", "from": "alice"}] * 2
        assert alice.inbox.matching(on("/in/event", type="typing")) == []  # not echoed to the typist
        history = (await bob.result("history", {"conv": "d:alice:bob"}))["messages"]
        assert [m["cid"] for m in history] == ["first", "barrier"]


async def test_mute_and_pin_sync_to_all_devices(app: App, users: Users) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "desk", await users.token("alice", "desk")) as desk, \
               connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as phone:
        await phone.send_and_ack("x", "bob")
        assert await phone.result("conversation.settings", {"conv": "d:alice:bob", "muted": True}) == \
            {"conv": "d:alice:bob", "muted": True, "pinned": False}
        event = (await desk.inbox.wait_for(on("/in/event", type="settings")))[0].json
        assert event == {"type": "settings", "conv": "d:alice:bob", "muted": True, "pinned": False}
        await desk.result("conversation.settings", {"conv": "d:alice:bob", "pinned": True})
        [conv] = (await phone.result("conversations"))["items"]
        assert (conv["muted"], conv["pinned"]) == (True, True)
        assert (await phone.rpc("conversation.settings", {"conv": "d:x:y", "muted": True}))["error"]["code"] == 404
        assert (await phone.rpc("conversation.settings", {"conv": "d:alice:bob", "muted": "yes"}))["error"]["code"] \
            == -32602


async def test_a_device_back_from_offline_repairs_every_gap(app: App, users: Users) -> None:
    """bob's phone is away while 500 messages arrive in 20 conversations; it catches up with
    ``conversations`` and ``history`` after its last seen seq: no gap, no duplicate."""
    senders = [f"s{i:02d}" for i in range(20)]
    await users.add("bob", *senders)
    bob_token = await users.token("bob")
    last_seen: dict[str, int] = {}
    async with connect(app.mqtt_port, "bob", "phone", bob_token) as phone:
        for s in senders:  # one message each while the phone is online
            async with connect(app.mqtt_port, s, "d", await users.token(s, "d")) as dev:
                await dev.send_and_ack(f"{s}-0", "bob", "hello")
        for r in await phone.inbox.wait_for(on("/in/msg"), count=20):
            last_seen[r.json["conv"]] = max(last_seen.get(r.json["conv"], 0), r.json["seq"])
    for s in senders:  # 25 more each while it is away: 500
        async with connect(app.mqtt_port, s, "d2", await users.token(s, "d2")) as dev:
            for i in range(1, 26):
                await dev.send({"cid": f"{s}-{i}", "to": "bob", "type": "text", "text": str(i)})
            await dev.inbox.wait_for(on("/in/ack", cid=f"{s}-25"))
    async with connect(app.mqtt_port, "bob", "phone", bob_token) as phone:
        convs, cursor = [], None
        while True:
            page = await phone.result("conversations", {"limit": 7, **({"cursor": cursor} if cursor else {})})
            convs += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(convs) == 20 and all(c["unread"] == 26 for c in convs)
        fetched = 0
        for c in convs:
            after, seqs = last_seen[c["conv"]], []
            while True:
                page = await phone.result("history", {"conv": c["conv"], "after_seq": after, "limit": 10})
                seqs += [m["seq"] for m in page["messages"]]
                after = seqs[-1] if seqs else after
                if not page["has_more"]:
                    break
            assert seqs == list(range(2, 27)), c["conv"]  # contiguous, nothing twice
            assert seqs[-1] == c["last_seq"]
            fetched += len(seqs)
        assert fetched == 500
