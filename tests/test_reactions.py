"""Reactions (issue 15): each member adds or removes emoji reactions; members get ``reaction``
events; history and the conversation list carry the counts and the caller's own."""

from __future__ import annotations

from imgate.app import App
from services.reactions.service import MAX_PER_USER
from tests.conftest import Users
from tests.helpers import connect, on


async def test_members_react_are_told_and_see_the_counts(app: App, users: Users) -> None:
    await users.add("alice", "bob", "carol")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob, \
            connect(app.mqtt_port, "carol", "phone", await users.token("carol")) as carol:
        group = await alice.result("group.create", {"name": "trio", "members": ["bob", "carol"]})
        await alice.send({"cid": "g1", "group": group["gid"], "type": "text", "text": "pizza tonight?"})
        message = (await alice.inbox.wait_for(on("/in/ack", cid="g1")))[0].json
        added = await bob.result("reaction.add", {"id": message["id"], "emoji": "👍"})
        assert added == {"id": message["id"], "conv": group["conv"], "seq": message["seq"], "emoji": "👍", "count": 1}
        for device in (alice, bob, carol):
            event = (await device.inbox.wait_for(on("/in/event", type="reaction")))[0].json
            assert event == {"type": "reaction", "op": "add", "conv": group["conv"], "id": message["id"],
                             "seq": message["seq"], "emoji": "👍", "from": "bob", "count": 1}
        await carol.result("reaction.add", {"id": message["id"], "emoji": "👍"})
        await carol.result("reaction.add", {"id": message["id"], "emoji": "🍕"})
        assert (await carol.result("reaction.add", {"id": message["id"], "emoji": "🍕"}))["count"] == 1  # idempotent
        history = (await carol.result("history", {"conv": group["conv"]}))["messages"]
        mine = next(m for m in history if m["id"] == message["id"])
        assert mine["reactions"] == {"👍": 2, "🍕": 1} and sorted(mine["my_reactions"]) == sorted(["👍", "🍕"])
        items = (await alice.result("conversations", {}))["items"]
        last = next(i for i in items if i["conv"] == group["conv"])["last"]
        assert last["reactions"] == {"👍": 2, "🍕": 1} and "my_reactions" not in last  # alice has none
        removed = await bob.result("reaction.remove", {"id": message["id"], "emoji": "👍"})
        assert removed["count"] == 1
        event = (await alice.inbox.wait_for(on("/in/event", type="reaction", op="remove")))[0].json
        assert (event["from"], event["emoji"], event["count"]) == ("bob", "👍", 1)
        # A recall takes the reactions with it.
        await alice.result("recall", {"id": message["id"]})
        history = (await bob.result("history", {"conv": group["conv"]}))["messages"]
        assert "reactions" not in next(m for m in history if m["id"] == message["id"])


async def test_reactions_are_refused_to_strangers_former_members_and_bad_emoji(app: App, users: Users) -> None:
    await users.add("alice", "bob", "eve")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob, \
            connect(app.mqtt_port, "eve", "phone", await users.token("eve")) as eve:
        direct = await alice.send_and_ack("d1", "bob", "just us")
        group = await alice.result("group.create", {"name": "duo", "members": ["bob"]})
        await alice.send({"cid": "g1", "group": group["gid"], "type": "text", "text": "hi"})
        in_group = (await alice.inbox.wait_for(on("/in/ack", cid="g1")))[0].json
        await bob.result("group.leave", {"gid": group["gid"]})

        async def error(who: object, method: str, params: dict[str, object]) -> dict[str, object]:
            response = await who.rpc(method, params)  # type: ignore[attr-defined]
            assert "error" in response, response
            return response["error"]  # type: ignore[no-any-return]

        assert (await error(eve, "reaction.add", {"id": direct["id"], "emoji": "👀"}))["data"]["code"] == "not_found"
        assert (await error(bob, "reaction.add", {"id": in_group["id"], "emoji": "👍"}))["data"]["code"] == "forbidden"
        for emoji in ("", "a b", "x" * 17, "\u0000"):
            assert (await error(alice, "reaction.add", {"id": direct["id"], "emoji": emoji}))["code"] == -32602
        for n in range(MAX_PER_USER):
            await alice.result("reaction.add", {"id": direct["id"], "emoji": f"e{n}"})
        too_many = await error(alice, "reaction.add", {"id": direct["id"], "emoji": "one-more"})
        assert too_many["data"]["code"] == "too_large"
        member_event = (await alice.result("history", {"conv": group["conv"]}))["messages"][0]
        assert member_event["type"] == "member"
        assert (await error(alice, "reaction.add", {"id": member_event["id"], "emoji": "👍"}))["data"]["code"] \
            == "forbidden"


def test_reactions_cost_a_message_each() -> None:
    """A reaction tells every member, as a message does: it takes from the sender's message
    bucket, so toggling one in a large group is held to the message rate."""
    from bridge.ratelimit import Rate, RateLimits, Throttle
    from bridge.router import Rpc, Topics
    from bridge.wire import ReactionParams
    from tests.helpers import ManualClock

    throttle = Throttle(Topics("im"), ManualClock(0), RateLimits(messages=Rate(1, 2), rpcs=Rate(100, 100)))
    params = ReactionParams(id="01M8QD0EV8VJGDADPWYHRAPXHE", emoji="👍")
    calls = [throttle.check("bob", Rpc("bob", n, "reaction.add", params, "bob")) for n in range(3)]
    assert [type(c).__name__ for c in calls] == ["Rpc", "Rpc", "Reply"]  # the burst of 2 messages, then refused
