"""Conversation windows and blocks everywhere (issue 24, findings 6, 7, 8 and 11), each replayed
as the attack review found it: a member added later reads nothing from before its join (edit,
reaction, recall and read events, quotes); a blocked user reaches the blocker with nothing
(reactions, edits, typing, read markers); a removed member edits nothing; and the contacts answers
do not tell the blocked user of the block.

Nothing-was-delivered checks wait for a later marker on the same path, never on a sleep."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from config.settings import Settings
from imgate.app import App
from tests.conftest import Users
from tests.helpers import Device, Received, connect, on, tweak

NOT_ALLOWED = {"code": 403, "message": "not allowed", "data": {"code": "forbidden"}}


def events(device: Device, **fields: Any) -> list[Any]:
    return [r.json for r in device.inbox.matching(on("/in/event", **fields))]


async def group_send(device: Device, cid: str, gid: str, text: str) -> dict[str, Any]:
    await device.send({"cid": cid, "group": gid, "type": "text", "text": text})
    ack = (await device.inbox.wait_for(on("/in/ack", cid=cid)))[0].json
    assert "error" not in ack, ack
    return ack  # type: ignore[no-any-return]


async def test_a_member_added_later_learns_nothing_of_what_came_before(app: App, users: Users) -> None:
    """Finding 6: dave, added after a message, got its edits (with the new text), its reactions,
    its recall and the read receipts up to it, and could quote it into his own reply (its first 100
    characters rendered into his message)."""
    await users.add("alice", "bob", "dave")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob, \
            connect(app.mqtt_port, "dave", "phone", await users.token("dave")) as dave:
        g = await alice.result("group.create", {"name": "team", "members": ["bob"]})
        gid, conv = g["gid"], g["conv"]
        old = await group_send(alice, "old", gid, "before dave: the salaries are 1, 2 and 3")
        assert (await alice.result("group.add", {"gid": gid, "members": ["dave"]}))["seq"] == old["seq"] + 1

        await alice.result("edit", {"id": old["id"], "text": "before dave: the salaries are 4, 5 and 6"})
        await bob.result("reaction.add", {"id": old["id"], "emoji": "secret"})
        assert (await bob.result("read", {"conv": conv, "seq": old["seq"]}))["read_seq"] == old["seq"]
        await dave.send({"cid": "quote", "group": gid, "type": "text", "text": "?", "reply_to": old["id"]})
        quoted = (await dave.inbox.wait_for(on("/in/ack", cid="quote")))[0].json
        await alice.result("recall", {"id": old["id"]})
        # Those who saw the message were told of each change ...
        for kind in ("edit", "reaction", "recall"):
            await bob.inbox.wait_for(on("/in/event", type=kind, id=old["id"]))
        await alice.inbox.wait_for(on("/in/event", type="read", **{"from": "bob", "seq": old["seq"]}))
        # ... dave was not: the marker, published after all of them, came, and nothing before it.
        marker = await group_send(alice, "marker", gid, "after dave")
        await dave.inbox.wait_for(on("/in/msg", cid="marker"))
        assert [e for e in events(dave) if e["type"] != "member"] == []
        assert not any(b"salaries" in r.payload for r in dave.inbox.items)
        # His reply to it was refused as to an unknown id, saying nothing of the message.
        assert quoted.get("error", {}).get("code") == "bad_request", quoted
        assert "salaries" not in quoted["error"]["message"]
        assert [m["cid"] for m in (await dave.result("history", {"conv": conv}))["messages"]
                if m["type"] != "member"] == ["marker"]

        # Within his window he reacts, quotes and is told as anyone.
        await dave.send({"cid": "reply", "group": gid, "type": "text", "text": "hi", "reply_to": marker["id"]})
        assert (await dave.inbox.wait_for(on("/in/ack", cid="reply")))[0].json["seq"] == marker["seq"] + 1
        await bob.result("reaction.add", {"id": marker["id"], "emoji": "👋"})
        await dave.inbox.wait_for(on("/in/event", type="reaction", id=marker["id"]))


async def test_a_blocked_user_reaches_the_blocker_with_nothing(app: App, users: Users) -> None:
    """Finding 7: after the block, mallory's 1:1 messages were refused, but her reactions (any 16
    characters), edits of earlier messages, typing and read events still reached alice and landed
    in her history (and, found on the way, her profile changes: a status is 140 free characters)."""
    await users.add("alice", "mallory")
    conv = "d:alice:mallory"
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "mallory", "phone", await users.token("mallory")) as mallory:
        m1 = await mallory.send_and_ack("m1", "alice", "hello alice")
        a1 = await alice.send_and_ack("a1", "mallory", "go away")
        await mallory.result("reaction.add", {"id": a1["id"], "emoji": "👍"})  # before the block: stays
        await alice.inbox.wait_for(on("/in/event", type="reaction", emoji="👍"))
        await alice.result("block.add", {"uid": "mallory"})

        # Refused as her messages are: "not allowed", nothing more.
        for method, params in (("reaction.add", {"id": a1["id"], "emoji": "call-me-now"}),
                               ("reaction.remove", {"id": a1["id"], "emoji": "👍"}),
                               ("edit", {"id": m1["id"], "text": "call me at +1 555 0100"})):
            response = await mallory.rpc(method, params)
            assert response.get("error") == NOT_ALLOWED, (method, response)
        # Her own read marker moves (her unread count), without a receipt to alice.
        assert await mallory.result("read", {"conv": conv, "seq": a1["seq"]}) == {
            "conv": conv, "read_seq": a1["seq"], "unread": 0}
        await mallory.inbox.wait_for(on("/in/event", type="read", **{"from": "mallory"}))
        await mallory.result("profile.set", {"status": "call me at +1 555 0100"})  # her contacts but alice
        await mallory.client.publish("im/mallory/out/event", json.dumps({"type": "typing", "conv": conv}))
        # Typing is laned with the conversation's messages: once this refusal is back, the typing
        # was handled; alice's answer after it comes after anything that was sent to her.
        await mallory.send({"cid": "m2", "to": "alice", "type": "text", "text": "let me in"})
        assert (await mallory.inbox.wait_for(on("/in/ack", cid="m2")))[0].json["error"]["message"] == "not allowed"
        history = (await alice.result("history", {"conv": conv}))["messages"]

        def after_block(r: Received) -> bool:
            if not r.topic.endswith("/in/event"):
                return False
            body = r.json
            return body.get("type") in ("typing", "read", "edit", "reaction", "profile") \
                and body.get("emoji") != "👍" and (body.get("from") or body.get("by") or body.get("uid")) == "mallory"
        assert alice.inbox.matching(after_block) == []
        assert alice.inbox.matching(on("/in/event", type="reaction", op="remove")) == []
        assert [(m["text"], "edited_at" in m, m.get("reactions")) for m in history] == [
            ("hello alice", False, None), ("go away", False, {"👍": 1})]
        [item] = (await alice.result("conversations", {}))["items"]
        assert "peer_read_seq" not in item  # how far mallory read does not reach alice either

        # The blocker still acts in the conversation, and mallory is told.
        await alice.result("reaction.add", {"id": m1["id"], "emoji": "👎"})
        await mallory.inbox.wait_for(on("/in/event", type="reaction", emoji="👎"))
        # Unblocked, mallory acts again.
        await alice.result("block.remove", {"uid": "mallory"})
        await mallory.result("reaction.add", {"id": a1["id"], "emoji": "🙏"})
        await alice.inbox.wait_for(on("/in/event", type="reaction", emoji="🙏"))


async def test_a_removed_member_edits_nothing(app: App, users: Users) -> None:
    """Finding 8: removed from the group, bob still edited his messages there (for the 15 minutes
    of the edit window), and every member was sent the edit."""
    await users.add("alice", "bob", "carol")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob, \
            connect(app.mqtt_port, "carol", "phone", await users.token("carol")) as carol:
        g = await alice.result("group.create", {"name": "team", "members": ["bob", "carol"]})
        said = await group_send(bob, "b1", g["gid"], "count me in")
        await alice.result("group.remove", {"gid": g["gid"], "members": ["bob"]})
        response = await bob.rpc("edit", {"id": said["id"], "text": "you will all regret this"})
        assert response.get("error", {}).get("data") == {"code": "forbidden"}, response
        await group_send(alice, "marker", g["gid"], "bob has left")
        await carol.inbox.wait_for(on("/in/msg", cid="marker"))
        assert events(carol, type="edit") == [] and events(alice, type="edit") == []
        history = (await carol.result("history", {"conv": g["conv"]}))["messages"]
        assert [m["text"] for m in history if m["id"] == said["id"]] == ["count me in"]


@pytest.fixture
async def contacts_app(settings: Settings) -> AsyncIterator[App]:
    async with App(tweak(settings, "messaging", policy="contacts")) as running:
        yield running


async def test_the_contacts_answers_do_not_tell_of_a_block(contacts_app: App, users: Users) -> None:
    """Finding 11: alice asked bob, then blocked him. bob's request back answered ``contact:
    false`` (he could tell he was blocked: her request was still listed), and ``contact.accept``
    checked the block the wrong way round, so bob accepted her old request and became her contact.

    Now her request is, to bob, as one carol withdrew: the two look alike in every answer."""
    app = contacts_app
    await users.add("alice", "bob", "carol", "dave")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob, \
            connect(app.mqtt_port, "carol", "phone", await users.token("carol")) as carol:
        for asker in (alice, carol):
            await asker.result("contact.request", {"uid": "bob"})
            await bob.inbox.wait_for(on("/in/event", type="contact", op="request", **{"from": asker.uid}))
        await alice.result("block.add", {"uid": "bob"})
        await carol.result("contact.decline", {"uid": "bob"})  # carol withdraws hers

        seen = {}
        for other in ("alice", "carol"):
            listed = await bob.result("contact.list", {})
            seen[other] = (other in listed["contacts"], [i["uid"] for i in listed["incoming"]].count(other),
                           (await bob.result("contact.request", {"uid": other}))["contact"],
                           (await bob.rpc("contact.accept", {"uid": other})).get("error", {}).get("data"))
        assert seen["alice"] == seen["carol"] == (False, 0, False, {"code": "not_found"})
        assert (await alice.result("contact.list", {}))["contacts"] == []  # bob did not become hers
        # (Nor is alice told of bob's request back; carol, who only withdrew, is.)
        await carol.inbox.wait_for(on("/in/event", type="contact", op="request", **{"from": "bob"}))
        assert events(alice, type="contact") == []

        # A contact made before a block stays one, and says so as it would without the block.
        async with connect(app.mqtt_port, "dave", "phone", await users.token("dave")) as dave:
            await alice.result("contact.request", {"uid": "dave"})
            await dave.result("contact.accept", {"uid": "alice"})
            await alice.result("block.add", {"uid": "dave"})
            assert await dave.result("contact.request", {"uid": "alice"}) == {"uid": "alice", "contact": True}
            assert await dave.result("contact.accept", {"uid": "alice"}) == {"uid": "alice", "contact": True}
            assert (await dave.result("contact.list", {}))["contacts"] == ["alice"]
