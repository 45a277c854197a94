"""Replies and edits (issue 15). ``reply_to`` names a message of the same conversation; the
server stores and delivers the quote ({"id", "seq", "from", "type", "excerpt"}), so a client
without the original can show it; a recall of the original scrubs its quotes. The sender edits
a text message within ``limits.edit_window_s``: members get an ``edit`` event, history shows the
latest text with ``edited_at``, quotes and the search index follow."""

from __future__ import annotations

from imgate.app import App
from services.messages.service import EXCERPT_CHARS
from tests.conftest import Users
from tests.helpers import ManualClock, connect, on
from tests.manual_clock import clock_fixture, manual_app_fixture  # noqa: F401


async def test_a_reply_carries_the_quote_live_and_in_history(app: App, users: Users) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        long = "where shall we meet tonight? " * 10
        original = await alice.send_and_ack("q1", "bob", long)
        await bob.send({"cid": "r1", "to": "alice", "type": "text", "text": "at eight", "reply_to": original["id"]})
        ack = (await bob.inbox.wait_for(on("/in/ack", cid="r1")))[0].json
        assert "error" not in ack and ack["seq"] == 2
        quote = {"id": original["id"], "seq": 1, "from": "alice", "type": "text", "excerpt": long[:EXCERPT_CHARS]}
        delivered = (await alice.inbox.wait_for(on("/in/msg", cid="r1")))[0].json
        assert delivered["reply"] == quote and delivered["text"] == "at eight"
        history = (await alice.result("history", {"conv": "d:alice:bob"}))["messages"]
        assert "reply" not in history[0] and history[1]["reply"] == quote


async def test_a_reply_to_a_message_elsewhere_or_unknown_is_refused(app: App, users: Users) -> None:
    await users.add("alice", "bob", "carol")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "carol", "phone", await users.token("carol")) as carol:
        elsewhere = await alice.send_and_ack("a1", "bob", "private to bob")
        for cid, reply_to in (("x1", elsewhere["id"]), ("x2", "01M8QD0EV8VJGDADPWYHRAPXHE"), ("x3", "not-an-id")):
            await carol.send({"cid": cid, "to": "alice", "type": "text", "text": "?", "reply_to": reply_to})
            error = (await carol.inbox.wait_for(on("/in/ack", cid=cid)))[0].json["error"]
            assert error["code"] == "bad_request", error
            assert "private to bob" not in error["message"]
        # Nothing was stored: carol's next message to alice is the conversation's first.
        assert (await carol.send_and_ack("ok", "alice", "hello"))["seq"] == 1


async def test_recalling_the_original_scrubs_its_quotes(app: App, users: Users) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        original = await alice.send_and_ack("q1", "bob", "sent by mistake")
        await bob.send({"cid": "r1", "to": "alice", "type": "text", "text": "what?", "reply_to": original["id"]})
        await bob.inbox.wait_for(on("/in/ack", cid="r1"))
        await alice.result("recall", {"id": original["id"]})
        history = (await bob.result("history", {"conv": "d:alice:bob"}))["messages"]
        assert history[1]["reply"] == {"id": original["id"], "seq": 1, "from": "alice", "type": "recalled",
                                       "excerpt": ""}
        # A recalled reply keeps no quote either.
        await bob.result("recall", {"id": history[1]["id"]})
        assert "reply" not in (await alice.result("history", {"conv": "d:alice:bob"}))["messages"][1]


async def test_the_sender_edits_members_are_told_and_history_quotes_and_search_follow(
        app: App, users: Users, clock: ManualClock) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        original = await alice.send_and_ack("m1", "bob", "see you at 8 pm in the kitchen")
        await bob.send({"cid": "r1", "to": "alice", "type": "text", "text": "ok", "reply_to": original["id"]})
        await bob.inbox.wait_for(on("/in/ack", cid="r1"))
        clock.ms += 60_000
        result = await alice.result("edit", {"id": original["id"], "text": "see you at 9 pm in the garden"})
        assert result == {"id": original["id"], "conv": "d:alice:bob", "seq": 1, "edited_at": clock.ms}
        for device in (alice, bob):
            event = (await device.inbox.wait_for(on("/in/event", type="edit")))[0].json
            assert event == {"type": "edit", "conv": "d:alice:bob", "id": original["id"], "seq": 1,
                             "text": "see you at 9 pm in the garden", "edited_at": clock.ms, "by": "alice"}
        history = (await bob.result("history", {"conv": "d:alice:bob"}))["messages"]
        assert (history[0]["text"], history[0]["edited_at"]) == ("see you at 9 pm in the garden", clock.ms)
        assert history[1]["reply"]["excerpt"] == "see you at 9 pm in the garden"
        assert app.search is not None
        while await app.search.index_pending():  # the indexer's pass, driven here (workers inline)
            pass
        found = await bob.result("search", {"q": "garden"})
        assert [(h["id"], h["text"]) for h in found["messages"]] == [(original["id"], "see you at 9 pm in the garden")]
        assert (await bob.result("search", {"q": "kitchen"}))["messages"] == []


async def test_edits_are_refused_to_others_after_the_window_and_of_non_text(
        app: App, users: Users, clock: ManualClock) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        text = await alice.send_and_ack("m1", "bob", "hello")
        await alice.send({"cid": "m2", "to": "bob", "type": "custom", "data": {"kind": "sticker"}})
        custom = (await alice.inbox.wait_for(on("/in/ack", cid="m2")))[0].json

        async def refused(who: object, params: dict[str, object]) -> dict[str, object]:
            response = await who.rpc("edit", params)  # type: ignore[attr-defined]
            assert "error" in response, response
            return response["error"]  # type: ignore[no-any-return]

        assert (await refused(bob, {"id": text["id"], "text": "mine now"}))["data"]["code"] == "forbidden"
        assert (await refused(alice, {"id": custom["id"], "text": "x"}))["data"]["code"] == "forbidden"
        assert (await refused(alice, {"id": "01M8QD0EV8VJGDADPWYHRAPXHE", "text": "x"}))["data"]["code"] == "not_found"
        assert (await refused(alice, {"id": text["id"], "text": "x" * 8001}))["data"]["code"] == "too_large"
        assert (await refused(alice, {"id": text["id"], "text": ""}))["code"] == -32602  # invalid params
        clock.ms += app.settings.limits.edit_window_s * 1000 + 1
        error = await refused(alice, {"id": text["id"], "text": "too late"})
        assert error["data"]["code"] == "forbidden" and "too late" in error["message"]
        history = (await bob.result("history", {"conv": "d:alice:bob"}))["messages"]
        assert history[0]["text"] == "hello" and "edited_at" not in history[0]
