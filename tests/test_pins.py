"""Pinned messages over the real broker and bridge (issue 28): members (or, by a group setting,
only its owner and admins) pin and unpin; ``pinned`` lists them as history renders them; every
member whose window holds the message is told; a recall unpins; a cap per conversation, held
under the conversation's lock when pins race; and the refusals a hostile user tries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import cbor2
import pytest

from bridge.formats import KEYS
from config.settings import Settings
from imgate.app import App
from services.errors import TooLarge
from tests.conftest import Users
from tests.helpers import Device, connect, on, tweak

CAP = 3  # pinned messages a conversation may have, here
UNKNOWN = "01M8QD0EV8VJGDADPWYHRAPXHE"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return tweak(settings, "limits", max_pins=CAP)


@pytest.fixture
async def crowd(app: App, users: Users) -> AsyncIterator[dict[str, Device]]:
    """alice (the groups' owner), bob, carol, dave, erin: each connected with one device."""
    names = ["alice", "bob", "carol", "dave", "erin"]
    await users.add(*names)
    async with AsyncExitStack() as stack:
        yield {n: await stack.enter_async_context(connect(app.mqtt_port, n, "phone", await users.token(n)))
               for n in names}


async def send(device: Device, gid: str, cid: str, text: str = "look") -> dict[str, Any]:
    await device.send({"cid": cid, "group": gid, "type": "text", "text": text})
    ack = (await device.inbox.wait_for(on("/in/ack", cid=cid)))[0].json
    assert "error" not in ack, ack
    return ack  # type: ignore[no-any-return]


async def error(device: Device, method: str, params: dict[str, Any]) -> tuple[int, str | None]:
    """The JSON-RPC error code and the application code (None for -326xx) of a refused call."""
    response = await device.rpc(method, params)
    assert "error" in response, (method, params, response)
    err = response["error"]
    return err["code"], (err.get("data") or {}).get("code")


def pin_events(device: Device) -> list[tuple[str, str, str]]:
    """The ``pin`` events the device got, in order: (op, message id, by)."""
    return [(e.json["op"], e.json["id"], e.json["by"]) for e in device.inbox.matching(on("/in/event", type="pin"))]


async def told(device: Device, count: int) -> list[tuple[str, str, str]]:
    """Wait for the device's ``count``-th pin event; all of them, in order."""
    await device.inbox.wait_for(on("/in/event", type="pin"), count=count)
    return pin_events(device)


async def test_members_pin_and_unpin_and_every_member_is_told(crowd: dict[str, Device]) -> None:
    alice, bob, carol, dave = crowd["alice"], crowd["bob"], crowd["carol"], crowd["dave"]
    g = await alice.result("group.create", {"name": "team", "members": ["bob", "carol"]})
    gid, conv = g["gid"], g["conv"]
    m1 = await send(bob, gid, "m1", "the plan")
    m2 = await send(alice, gid, "m2", "the date")
    await alice.result("reaction.add", {"id": m1["id"], "emoji": "👍"})

    assert await carol.result("pin", {"id": m1["id"]}) == {"id": m1["id"], "conv": conv, "seq": m1["seq"],
                                                            "pinned": True}
    for member in (alice, bob, carol):
        event = (await member.inbox.wait_for(on("/in/event", type="pin")))[0].json
        assert {k: event[k] for k in ("op", "conv", "id", "seq", "by")} == \
            {"op": "add", "conv": conv, "id": m1["id"], "seq": m1["seq"], "by": "carol"}
        assert isinstance(event["ts"], int)
    # Pinning again changes nothing and tells nobody; so does unpinning what is not pinned.
    assert (await bob.result("pin", {"id": m1["id"], "conv": conv}))["pinned"] is True
    assert await bob.result("unpin", {"id": m2["id"]}) == {"id": m2["id"], "conv": conv, "seq": m2["seq"],
                                                           "pinned": False}
    await bob.result("pin", {"id": m2["id"]})
    for member in (alice, bob, carol):  # the repeat and the no-op are not between the two pins
        assert await told(member, 2) == [("add", m1["id"], "carol"), ("add", m2["id"], "bob")]

    # Newest pin first, each with who pinned it, when, and the message as history renders it.
    listed = await alice.result("pinned", {"conv": conv})
    assert [(p["id"], p["seq"], p["by"]) for p in listed["pins"]] == [(m2["id"], m2["seq"], "bob"),
                                                                        (m1["id"], m1["seq"], "carol")]
    assert listed["conv"] == conv and listed["hidden"] == 0
    history = {m["id"]: m for m in (await alice.result("history", {"conv": conv}))["messages"]}
    assert [p["message"] for p in listed["pins"]] == [history[m2["id"]], history[m1["id"]]]
    assert listed["pins"][1]["message"]["reactions"] == {"👍": 1}
    first = (await carol.inbox.wait_for(on("/in/event", type="pin", id=m1["id"])))[0].json
    assert listed["pins"][1]["ts"] == first["ts"]

    assert (await alice.result("unpin", {"id": m1["id"]}))["pinned"] is False
    for member in (alice, bob, carol):
        assert (await told(member, 3))[2] == ("remove", m1["id"], "alice")
    assert [p["id"] for p in (await bob.result("pinned", {"conv": conv}))["pins"]] == [m2["id"]]
    assert await error(dave, "pinned", {"conv": conv}) == (404, "not_found")
    # Not a member: told nothing. (What alice does next reaches dave after anything before it.)
    direct = await alice.send_and_ack("d1", "dave", "and you")
    await alice.result("pin", {"id": direct["id"]})
    assert await told(dave, 1) == [("add", direct["id"], "alice")]


async def test_a_group_may_let_only_its_owner_and_admins_pin(crowd: dict[str, Device]) -> None:
    alice, bob, carol = crowd["alice"], crowd["bob"], crowd["carol"]
    g = await alice.result("group.create", {"name": "team", "members": ["bob", "carol"]})
    gid, conv = g["gid"], g["conv"]
    m1 = await send(bob, gid, "m1")
    assert (await bob.result("group.info", {"gid": gid}))["pin"] == "members"  # the default
    assert (await bob.result("group.settings", {"gid": gid}))["pin"] == "members"
    await bob.result("pin", {"id": m1["id"]})

    # Only the owner and admins change it; every member is told with the 'group' event.
    assert await error(bob, "group.settings", {"gid": gid, "pin": "admins"}) == (403, "forbidden")
    assert (await error(alice, "group.settings", {"gid": gid, "pin": "owner"}))[0] == -32602
    changed = await alice.result("group.settings", {"gid": gid, "pin": "admins"})
    assert changed == {"gid": gid, "conv": conv, "mention_all": "admins", "pin": "admins"}
    for member in (alice, bob, carol):
        event = (await member.inbox.wait_for(on("/in/event", type="group", op="settings")))[0].json
        assert (event["pin"], event["mention_all"], event["by"]) == ("admins", "admins", "alice")
    assert (await carol.result("group.info", {"gid": gid}))["pin"] == "admins"

    # A plain member may neither pin nor unpin now; the pins made before stay.
    m2 = await send(carol, gid, "m2")
    assert await error(carol, "pin", {"id": m2["id"]}) == (403, "forbidden")
    assert await error(bob, "unpin", {"id": m1["id"]}) == (403, "forbidden")
    assert [p["id"] for p in (await carol.result("pinned", {"conv": conv}))["pins"]] == [m1["id"]]
    await alice.result("group.role", {"gid": gid, "uid": "carol", "role": "admin"})
    await carol.result("pin", {"id": m2["id"]})
    await alice.result("unpin", {"id": m1["id"]})
    assert await told(bob, 3) == [("add", m1["id"], "bob"), ("add", m2["id"], "carol"), ("remove", m1["id"], "alice")]
    # Changing mention_all alone keeps the pin setting.
    assert (await alice.result("group.settings", {"gid": gid, "mention_all": "members"}))["pin"] == "admins"


async def test_what_a_hostile_member_tries_is_refused_without_telling_what_exists(crowd: dict[str, Device]) -> None:
    alice, bob, carol, dave, erin = crowd["alice"], crowd["bob"], crowd["carol"], crowd["dave"], crowd["erin"]
    g = await alice.result("group.create", {"name": "team", "members": ["bob", "carol"]})
    gid, conv = g["gid"], g["conv"]
    other = await alice.result("group.create", {"name": "elsewhere", "members": ["dave"]})
    before = await send(alice, gid, "before")
    elsewhere = await send(dave, other["gid"], "elsewhere")
    await alice.result("group.add", {"gid": gid, "members": ["erin"]})
    after = await send(alice, gid, "after")
    created = (await alice.result("history", {"conv": conv}))["messages"][0]
    assert created["type"] == "member"

    # Not found, alike: an unknown id, another group's message (with or without conv), a message
    # from before the caller joined, a message of a conversation the caller is not in.
    for who, params in ((bob, {"id": UNKNOWN}), (bob, {"id": elsewhere["id"]}),
                        (alice, {"id": elsewhere["id"], "conv": conv}), (alice, {"id": before["id"], "conv": other["conv"]}),
                        (erin, {"id": before["id"]}), (dave, {"id": after["id"]})):
        for method in ("pin", "unpin"):
            assert await error(who, method, params) == (404, "not_found"), (who.uid, method, params)
    # Forbidden: a membership event, a recalled message, a former member.
    assert await error(bob, "pin", {"id": created["id"]}) == (403, "forbidden")
    recalled = await send(bob, gid, "oops")
    await bob.result("recall", {"id": recalled["id"]})
    assert await error(bob, "pin", {"id": recalled["id"]}) == (403, "forbidden")
    assert (await bob.result("unpin", {"id": recalled["id"]}))["pinned"] is False  # nothing to unpin
    await carol.result("pin", {"id": after["id"]})
    await carol.result("group.leave", {"gid": gid})
    assert await error(carol, "pin", {"id": before["id"]}) == (403, "forbidden")
    assert await error(carol, "unpin", {"id": after["id"]}) == (403, "forbidden")
    assert await error(carol, "pinned", {"conv": conv}) == (404, "not_found")  # learns nothing more of it
    # Bad params.
    for method, params in (("pin", {"id": "short"}), ("pin", {}), ("unpin", {"id": 5}), ("pinned", {}),
                           ("pinned", {"conv": ""}), ("pin", {"id": after["id"], "conv": 3})):
        assert (await error(bob, method, params))[0] == -32602, (method, params)
    assert [p["id"] for p in (await bob.result("pinned", {"conv": conv}))["pins"]] == [after["id"]]


async def test_the_cap_per_conversation(crowd: dict[str, Device]) -> None:
    alice, bob = crowd["alice"], crowd["bob"]
    g = await alice.result("group.create", {"name": "team", "members": ["bob"]})
    gid, conv = g["gid"], g["conv"]
    sent = [await send(bob, gid, f"m{n}") for n in range(CAP + 2)]
    for m in sent[:CAP]:
        await bob.result("pin", {"id": m["id"]})
    code, app_code = await error(bob, "pin", {"id": sent[CAP]["id"]})
    assert (code, app_code) == (413, "too_large")
    response = await bob.rpc("pin", {"id": sent[CAP]["id"]})
    assert f"at most {CAP} pinned messages" in response["error"]["message"]
    assert (await alice.result("pin", {"id": sent[0]["id"]}))["pinned"] is True  # already pinned: no new pin
    assert len((await alice.result("pinned", {"conv": conv}))["pins"]) == CAP
    # Unpinning (or recalling) makes room.
    await alice.result("unpin", {"id": sent[1]["id"]})
    await bob.result("pin", {"id": sent[CAP]["id"]})
    await bob.result("recall", {"id": sent[2]["id"]})
    await bob.result("pin", {"id": sent[CAP + 1]["id"]})
    assert [p["id"] for p in (await alice.result("pinned", {"conv": conv}))["pins"]] == \
        [sent[CAP + 1]["id"], sent[CAP]["id"], sent[0]["id"]]
    # Each conversation has its own cap.
    direct = await bob.send_and_ack("d1", "alice", "just us")
    assert (await alice.result("pin", {"id": direct["id"]}))["pinned"] is True


async def test_pins_racing_the_cap_stop_at_it(app: App, crowd: dict[str, Device]) -> None:
    """Many pins at once, from several members (each user's calls run on its own lane, on their
    own database connections with PostgreSQL): the conversation's lock lets exactly CAP through."""
    alice = crowd["alice"]
    g = await alice.result("group.create", {"name": "race", "members": ["bob", "carol", "dave", "erin"]})
    sent = [await send(alice, g["gid"], f"m{n}") for n in range(4 * CAP)]
    assert app.services is not None
    pins = app.services.messages.pins
    names = ["alice", "bob", "carol", "dave", "erin"]
    outcomes = await asyncio.gather(*(pins.pin(names[n % len(names)], m["id"]) for n, m in enumerate(sent)),
                                    return_exceptions=True)
    assert sum(not isinstance(o, BaseException) for o in outcomes) == CAP, outcomes
    assert all(isinstance(o, TooLarge) for o in outcomes if isinstance(o, BaseException)), outcomes
    # And over MQTT: room for one more, and every member at once pins another message.
    pinned = [m["id"] for m, o in zip(sent, outcomes, strict=True) if not isinstance(o, BaseException)]
    await alice.result("unpin", {"id": pinned[0]})
    others = [m["id"] for m in sent if m["id"] not in pinned]
    answers = await asyncio.gather(*(crowd[n].rpc("pin", {"id": others[i]}) for i, n in enumerate(names)))
    assert sum("result" in a for a in answers) == 1, answers
    assert {a["error"]["data"]["code"] for a in answers if "error" in a} == {"too_large"}
    listed = await crowd["erin"].result("pinned", {"conv": g["conv"]})
    assert len(listed["pins"]) == CAP and listed["hidden"] == 0


async def test_a_recall_unpins_and_windows_decide_who_sees_what(crowd: dict[str, Device]) -> None:
    alice, bob, erin = crowd["alice"], crowd["bob"], crowd["erin"]
    g = await alice.result("group.create", {"name": "team", "members": ["bob"]})
    gid, conv = g["gid"], g["conv"]
    old = await send(alice, gid, "old")
    await bob.result("pin", {"id": old["id"]})
    await alice.result("group.add", {"gid": gid, "members": ["erin"]})
    new = await send(bob, gid, "new")
    await alice.result("pin", {"id": new["id"]})
    # erin sees the pin of what is in its window; the other is counted, not shown.
    mine = await erin.result("pinned", {"conv": conv})
    assert [p["id"] for p in mine["pins"]] == [new["id"]] and mine["hidden"] == 1
    # An unpin of a message outside erin's window is not told to erin.
    await alice.result("unpin", {"id": old["id"]})
    await bob.result("unpin", {"id": new["id"]})
    assert await told(erin, 2) == [("add", new["id"], "alice"), ("remove", new["id"], "bob")]
    assert (await told(bob, 4))[2] == ("remove", old["id"], "alice")

    # A recall unpins, in its own transaction: the recall event says it (no separate pin event).
    await alice.result("pin", {"id": new["id"]})
    assert (await told(erin, 3))[2] == ("add", new["id"], "alice")
    await bob.result("recall", {"id": new["id"]})
    await erin.inbox.wait_for(on("/in/event", type="recall", id=new["id"]))
    assert len(pin_events(erin)) == 3
    assert await erin.result("pinned", {"conv": conv}) == {"conv": conv, "pins": [], "hidden": 0}


async def test_a_1to1_and_blocks(crowd: dict[str, Device]) -> None:
    alice, bob, carol = crowd["alice"], crowd["bob"], crowd["carol"]
    sent = await alice.send_and_ack("d1", "bob", "our address")
    conv = sent["conv"]
    assert (await bob.result("pin", {"id": sent["id"]}))["pinned"] is True
    assert (await told(alice, 1)) == [("add", sent["id"], "bob")]
    assert [p["by"] for p in (await alice.result("pinned", {"conv": conv}))["pins"]] == ["bob"]
    assert await error(carol, "pin", {"id": sent["id"]}) == (404, "not_found")
    assert await error(carol, "pinned", {"conv": conv}) == (404, "not_found")
    # Whom the other member blocks may not pin or unpin there ("not allowed", as a blocked send).
    await alice.result("block.add", {"uid": "bob"})
    for method in ("pin", "unpin"):
        response = await bob.rpc(method, {"id": sent["id"]})
        assert (response["error"]["data"]["code"], response["error"]["message"]) == ("forbidden", "not allowed")
    assert (await alice.result("unpin", {"id": sent["id"]}))["pinned"] is False  # the blocker still may
    assert (await bob.result("pinned", {"conv": conv}))["pins"] == []


async def test_the_new_keys_travel_as_numbers_in_cbor(app: App, users: Users) -> None:
    """protocol.md "Encodings": the keys added for pins have numbers (67-69), sent as numbers."""
    assert (KEYS["pins"], KEYS["hidden"], KEYS["pin"]) == (67, 68, 69)
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice", encoding="cbor")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        sent = await bob.send_and_ack("b1", "alice", "keep this")
        g = await bob.result("group.create", {"name": "pair", "members": ["alice"]})
        await bob.result("pin", {"id": sent["id"]})
        await alice.client.publish("im/alice/out/rpc", cbor2.dumps({KEYS["jsonrpc"]: "2.0", KEYS["id"]: 1,
                                                                    KEYS["method"]: "pinned",
                                                                    KEYS["params"]: {KEYS["conv"]: sent["conv"]}}))
        result = cbor2.loads((await alice.inbox.wait_for(on("/in/rpc", id=1)))[0].payload)[KEYS["result"]]
        assert result[KEYS["hidden"]] == 0 and result[KEYS["pins"]][0][KEYS["by"]] == "bob"
        await alice.client.publish("im/alice/out/rpc", cbor2.dumps({KEYS["jsonrpc"]: "2.0", KEYS["id"]: 2,
                                                                    KEYS["method"]: "group.settings",
                                                                    KEYS["params"]: {KEYS["gid"]: g["gid"]}}))
        result = cbor2.loads((await alice.inbox.wait_for(on("/in/rpc", id=2)))[0].payload)[KEYS["result"]]
        assert result[KEYS["pin"]] == "members"


def test_pins_take_from_the_rpc_bucket() -> None:
    from bridge.ratelimit import Rate, RateLimits, Throttle
    from bridge.router import Rpc, Topics
    from bridge.rpc import METHODS, Limit
    from bridge.wire import PinnedParams, PinParams
    from tests.helpers import ManualClock

    # pin and unpin tell every member, as a reaction does: the RPC bucket and the messages bucket.
    assert (METHODS["pin"].limit, METHODS["unpin"].limit, METHODS["pinned"].limit) == \
        (Limit.FAN_OUT, Limit.FAN_OUT, Limit.RPC)
    throttle = Throttle(Topics("im"), ManualClock(0), RateLimits(rpcs=Rate(1, 2)))
    calls = [throttle.check("bob", Rpc("bob", 0, "pin", PinParams(id=UNKNOWN), "bob")),
             throttle.check("bob", Rpc("bob", 1, "pinned", PinnedParams(conv="d:alice:bob"), "bob")),
             throttle.check("bob", Rpc("bob", 2, "unpin", PinParams(id=UNKNOWN), "bob"))]
    assert [type(c).__name__ for c in calls] == ["Rpc", "Rpc", "Reply"]  # the burst of 2, then refused
    throttle = Throttle(Topics("im"), ManualClock(0), RateLimits(messages=Rate(1, 1)))
    calls = [throttle.check("bob", Rpc("bob", n, "pin", PinParams(id=UNKNOWN), "bob")) for n in range(2)]
    assert [type(c).__name__ for c in calls] == ["Rpc", "Reply"]  # and the messages bucket
