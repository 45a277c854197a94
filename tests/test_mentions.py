"""Mentions over the real broker and bridge (issue 28): mentions of non-members dropped (the ack
says which), @all in groups (who may: a group setting; rate-limited per group), the per-conversation
count of unread mentions in ``conversations``, blocks, and the refusals a hostile user tries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import cbor2
import pytest

from bridge.formats import KEYS
from config.settings import Settings
from imgate.app import App
from tests.conftest import Users
from tests.helpers import Device, ManualClock, connect, on, tweak
from tests.manual_clock import clock_fixture, manual_app_fixture  # noqa: F401

PER_MINUTE = 2  # @all mentions a group may have in a minute, here


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return tweak(settings, "limits", mention_all_per_minute=PER_MINUTE)


@pytest.fixture
async def crowd(app: App, users: Users) -> AsyncIterator[dict[str, Device]]:
    """alice (the groups' owner), bob, carol, dave: each connected with one device."""
    names = ["alice", "bob", "carol", "dave"]
    await users.add(*names)
    async with AsyncExitStack() as stack:
        yield {n: await stack.enter_async_context(connect(app.mqtt_port, n, "phone", await users.token(n)))
               for n in names}


async def group(owner: Device, *members: str) -> dict[str, Any]:
    return await owner.result("group.create", {"name": "team", "members": list(members)})


async def send(device: Device, cid: str, gid: str, mentions: list[str], text: str = "look") -> dict[str, Any]:
    """Send a group text with ``mentions``; its ack."""
    await device.send({"cid": cid, "group": gid, "type": "text", "text": text, "mentions": mentions})
    return (await device.inbox.wait_for(on("/in/ack", cid=cid)))[0].json


async def delivered(device: Device, cid: str) -> dict[str, Any]:
    return (await device.inbox.wait_for(on("/in/msg", cid=cid)))[0].json


async def unread_mentions(device: Device, conv: str) -> tuple[int, int]:
    """(unread, unread_mentions) of ``conv`` in the device's ``conversations``."""
    [item] = [i for i in (await device.result("conversations"))["items"] if i["conv"] == conv]
    return item["unread"], item["unread_mentions"]


async def flags(device: Device, conv: str) -> dict[str, bool | None]:
    """Each text message's ``mentioned`` in the device's ``history`` of ``conv``, by cid."""
    return {m["cid"]: m.get("mentioned") for m in (await device.result("history", {"conv": conv}))["messages"]
            if m["type"] == "text"}


async def test_mentions_of_non_members_are_dropped_and_the_ack_says_which(crowd: dict[str, Device],
                                                                        users: Users) -> None:
    alice, bob = crowd["alice"], crowd["bob"]
    g = await group(alice, "bob")
    strangers = [f"ghost{n}" for n in range(97)]  # unknown users; with the three, the 100 allowed
    ack = await send(alice, "crowded", g["gid"], ["carol", "bob", *strangers, "dave"])
    assert "error" not in ack and ack["mentions_dropped"] == ["carol", *strangers, "dave"]
    got = await delivered(bob, "crowded")
    assert got["mentions"] == ["bob"] and got["mentioned"] is True
    # 1:1: only the two are members; a third is dropped.
    await alice.send({"cid": "dm", "to": "bob", "type": "text", "text": "@carol?", "mentions": ["carol", "bob"]})
    ack = (await alice.inbox.wait_for(on("/in/ack", cid="dm")))[0].json
    assert "error" not in ack and ack["mentions_dropped"] == ["carol"]
    assert (await delivered(bob, "dm"))["mentioned"] is True
    # A retry is acked the same, dropped mentions included, and not delivered again.
    await alice.send({"cid": "dm", "to": "bob", "type": "text", "text": "@carol?", "mentions": ["carol", "bob"]})
    acks = await alice.inbox.wait_for(on("/in/ack", cid="dm"), count=2)
    assert acks[1].json == acks[0].json
    assert len(bob.inbox.matching(on("/in/msg", cid="dm"))) == 1


async def test_the_refusals_a_hostile_client_tries(crowd: dict[str, Device]) -> None:
    alice, bob = crowd["alice"], crowd["bob"]
    g = await group(alice, "bob")
    over = await send(alice, "too-many", g["gid"], [f"u{n}" for n in range(101)])
    assert over["error"]["code"] == "bad_request" and "mentions" in over["error"]["message"]
    for bad in ("@everyone", "bob smith", "x" * 65, "@ALL", ""):
        err = await send(alice, f"bad-{len(bad)}-{bad[:3]}", g["gid"], [bad])
        assert err["error"]["code"] == "bad_request" and "mentions" in err["error"]["message"], bad
    await alice.send({"cid": "all-dm", "to": "bob", "type": "text", "text": "hey", "mentions": ["@all"]})
    err = (await alice.inbox.wait_for(on("/in/ack", cid="all-dm")))[0].json["error"]
    assert err["code"] == "bad_request" and "@all" in err["message"]
    # A plain member may not mention @all (admins only, by default): refused, nothing stored.
    err = (await send(bob, "bob-all", g["gid"], ["@all"]))["error"]
    assert err["code"] == "forbidden" and "@all" in err["message"]
    seen = [m.get("cid") for m in (await alice.result("history", {"conv": g["conv"]}))["messages"]]
    assert "bob-all" not in seen and "too-many" not in seen and "all-dm" not in seen


async def test_at_all_flags_every_member_and_who_may_use_it_is_a_group_setting(crowd: dict[str, Device]) -> None:
    alice, bob, carol, dave = crowd["alice"], crowd["bob"], crowd["carol"], crowd["dave"]
    g = await group(alice, "bob", "carol")
    gid, conv = g["gid"], g["conv"]
    assert (await bob.result("group.info", {"gid": gid}))["mention_all"] == "admins"
    assert await bob.result("group.settings", {"gid": gid}) == {"gid": gid, "conv": conv, "mention_all": "admins",
                                                               "pin": "members"}
    ack = await send(alice, "all-1", gid, ["@all"], "hello everyone")
    assert "mentions_dropped" not in ack
    for member in (bob, carol):
        got = await delivered(member, "all-1")
        assert got["mentions"] == ["@all"] and got["mentioned"] is True
    assert "mentioned" not in await delivered(alice, "all-1")  # one's own message mentions nobody to oneself
    # Only the owner and admins change the setting; a non-member learns nothing.
    denied = await bob.rpc("group.settings", {"gid": gid, "mention_all": "members"})
    assert denied["error"]["code"] == 403
    assert (await dave.rpc("group.settings", {"gid": gid}))["error"]["code"] == 404
    assert (await alice.rpc("group.settings", {"gid": gid, "mention_all": "everyone"}))["error"]["code"] == -32602
    await alice.result("group.role", {"gid": gid, "uid": "carol", "role": "admin"})
    changed = await carol.result("group.settings", {"gid": gid, "mention_all": "members"})
    assert changed == {"gid": gid, "conv": conv, "mention_all": "members", "pin": "members"}
    for member in (alice, bob, carol):  # every member is told
        event = (await member.inbox.wait_for(on("/in/event", type="group", op="settings")))[0].json
        assert (event["gid"], event["conv"], event["mention_all"], event["by"]) == (gid, conv, "members", "carol")
    assert dave.inbox.matching(on("/in/event", type="group")) == []
    # Now a plain member may.
    assert "error" not in await send(bob, "bob-all", gid, ["@all"])
    assert (await delivered(alice, "bob-all"))["mentioned"] is True
    assert (await bob.result("group.info", {"gid": gid}))["mention_all"] == "members"


async def test_at_all_is_rate_limited_per_group(crowd: dict[str, Device], clock: ManualClock) -> None:
    alice, bob = crowd["alice"], crowd["bob"]
    g, other = await group(alice, "bob"), await group(alice, "bob")
    for n in range(PER_MINUTE):
        assert "error" not in await send(alice, f"all-{n}", g["gid"], ["@all"])
    clock.ms += 1000
    over = (await send(alice, "all-flood", g["gid"], ["@all", "bob"]))["error"]
    assert over["code"] == "rate_limited" and "@all" in over["message"] and over["retry_after_ms"] == 59_000
    # Per group: another group has its own; mentions by uid are not limited.
    assert "error" not in await send(alice, "other-all", other["gid"], ["@all"])
    assert "error" not in await send(alice, "by-uid", g["gid"], ["bob"])
    history = [m.get("cid") for m in (await bob.result("history", {"conv": g["conv"]}))["messages"]]
    assert "all-flood" not in history and "by-uid" in history
    clock.ms += 59_000  # those of the minute are a minute old: the refused send, retried (same cid), goes
    await alice.send({"cid": "all-flood", "group": g["gid"], "type": "text", "text": "look", "mentions": ["@all", "bob"]})
    retried = (await alice.inbox.wait_for(on("/in/ack", cid="all-flood"), count=2))[1].json
    assert "error" not in retried and retried["seq"] > 0
    assert (await delivered(bob, "all-flood"))["mentioned"] is True
    assert "error" not in await send(alice, "all-again", g["gid"], ["@all"])
    assert (await send(alice, "all-over", g["gid"], ["@all"]))["error"]["code"] == "rate_limited"


async def test_conversations_count_unread_mentions_until_read(crowd: dict[str, Device]) -> None:
    alice, bob, carol, dave = crowd["alice"], crowd["bob"], crowd["carol"], crowd["dave"]
    g = await group(alice, "bob", "carol")
    gid, conv = g["gid"], g["conv"]
    first = await send(alice, "m1", gid, ["bob"])
    await send(alice, "plain", gid, [])
    await send(alice, "m2", gid, ["bob", "carol"])
    last = await send(alice, "m3", gid, ["@all"])
    await delivered(bob, "m3")
    assert await unread_mentions(bob, conv) == (5, 3)  # the group's creation, then the four
    assert await unread_mentions(carol, conv) == (5, 2)
    assert await unread_mentions(alice, conv) == (0, 0)  # her own
    # History says which messages mention the caller, as the deliveries did.
    assert await flags(bob, conv) == {"m1": True, "plain": None, "m2": True, "m3": True}
    assert await flags(carol, conv) == {"m1": None, "plain": None, "m2": True, "m3": True}
    assert await flags(alice, conv) == {"m1": None, "plain": None, "m2": None, "m3": None}
    await bob.result("read", {"conv": conv, "seq": first["seq"]})
    assert await unread_mentions(bob, conv) == (3, 2)
    # A recalled message mentions nobody any more.
    await alice.result("recall", {"id": last["id"]})
    assert await unread_mentions(bob, conv) == (3, 1)
    await bob.result("read", {"conv": conv, "seq": last["seq"]})
    assert await unread_mentions(bob, conv) == (0, 0)
    # A member added later counts nothing from before it joined (its window), then its own.
    await alice.result("group.add", {"gid": gid, "members": ["dave"]})
    assert (await unread_mentions(dave, conv))[1] == 0
    await send(alice, "m4", gid, ["dave"])
    await delivered(dave, "m4")
    assert (await unread_mentions(dave, conv))[1] == 1
    # 1:1s too.
    await alice.send({"cid": "dm", "to": "bob", "type": "text", "text": "@bob", "mentions": ["bob"]})
    await delivered(bob, "dm")
    assert await unread_mentions(bob, "d:alice:bob") == (1, 1)


async def test_a_member_who_blocks_the_sender_is_not_mentioned_by_it(crowd: dict[str, Device]) -> None:
    alice, bob, carol = crowd["alice"], crowd["bob"], crowd["carol"]
    g = await group(alice, "bob", "carol")
    await bob.result("block.add", {"uid": "alice"})
    await send(alice, "to-bob", g["gid"], ["bob", "carol"])
    await send(alice, "to-all", g["gid"], ["@all"])
    for cid in ("to-bob", "to-all"):
        got = await delivered(bob, cid)  # groups they share are unchanged: the message comes...
        assert "mentioned" not in got  # ... but not as a mention of him
        assert (await delivered(carol, cid))["mentioned"] is True
    assert await unread_mentions(bob, g["conv"]) == (3, 0)
    assert await flags(bob, g["conv"]) == {"to-bob": None, "to-all": None}
    assert await unread_mentions(carol, g["conv"]) == (3, 2)


async def test_the_new_keys_travel_as_numbers_in_cbor(app: App, users: Users) -> None:
    """protocol.md "Encodings": the keys added for mentions have numbers (61-63), sent as numbers."""
    assert (KEYS["unread_mentions"], KEYS["mentions_dropped"], KEYS["mention_all"]) == (61, 62, 63)
    await users.add("erin", "fred")
    async with connect(app.mqtt_port, "erin", "phone", await users.token("erin", encoding="cbor")) as erin, \
            connect(app.mqtt_port, "fred", "phone", await users.token("fred")) as fred:
        await fred.send({"cid": "f1", "to": "erin", "type": "text", "text": "@erin", "mentions": ["erin", "zed"]})
        assert (await fred.inbox.wait_for(on("/in/ack", cid="f1")))[0].json["mentions_dropped"] == ["zed"]
        got = cbor2.loads((await erin.inbox.wait_for(on("/in/msg", cid="f1")))[0].payload)
        assert got[KEYS["mentioned"]] is True and got[KEYS["mentions"]] == ["erin"]
        await erin.send(cbor2.dumps({KEYS["cid"]: "e1", KEYS["to"]: "fred", KEYS["type"]: "text", KEYS["text"]: "hi",
                                     KEYS["mentions"]: ["fred", "zed"]}))
        ack = cbor2.loads((await erin.inbox.wait_for(on("/in/ack", cid="e1")))[0].payload)
        assert ack[KEYS["mentions_dropped"]] == ["zed"]
        await erin.client.publish("im/erin/out/rpc", cbor2.dumps({"jsonrpc": "2.0", "id": 1, "method": "group.create",
                                                                  "params": {"name": "g", "members": ["fred"]}}))
        result = cbor2.loads((await erin.inbox.wait_for(on("/in/rpc", id=1)))[0].payload)[KEYS["result"]]
        await erin.client.publish("im/erin/out/rpc", cbor2.dumps({"jsonrpc": "2.0", "id": 2, "method": "group.info",
                                                                  "params": {"gid": result[KEYS["gid"]]}}))
        info = cbor2.loads((await erin.inbox.wait_for(on("/in/rpc", id=2)))[0].payload)[KEYS["result"]]
        assert info[KEYS["mention_all"]] == "admins"
        await fred.send({"cid": "f2", "to": "erin", "type": "text", "text": "@erin again", "mentions": ["erin"]})
        await erin.inbox.wait_for(on("/in/msg", cid="f2"))
        await erin.client.publish("im/erin/out/rpc", cbor2.dumps({"jsonrpc": "2.0", "id": 3, "method": "conversations"}))
        items = cbor2.loads((await erin.inbox.wait_for(on("/in/rpc", id=3)))[0].payload)[KEYS["result"]][KEYS["items"]]
        [dm] = [i for i in items if i[KEYS["conv"]] == "d:erin:fred"]
        assert dm[KEYS["unread_mentions"]] == 1  # f2 (f1 was before erin's own e1, which read up to it)
