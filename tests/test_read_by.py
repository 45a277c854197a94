"""Read-by lists (issue 28): ``read_by`` tells a message's sender (and a group's owner and
admins) who of the members whose window holds it has read it and who has not, paged."""

from __future__ import annotations

from typing import Any

import cbor2

from bridge.formats import KEYS
from imgate.app import App
from tests.conftest import Users
from tests.helpers import Device, connect, on


async def group_send(device: Device, gid: str, cid: str, text: str = "hi") -> dict[str, Any]:
    await device.send({"cid": cid, "group": gid, "type": "text", "text": text})
    ack = (await device.inbox.wait_for(on("/in/ack", cid=cid)))[0].json
    assert "error" not in ack, ack
    return ack  # type: ignore[no-any-return]


async def error(device: Device, method: str, params: dict[str, Any]) -> dict[str, Any]:
    response = await device.rpc(method, params)
    assert "error" in response, response
    return response["error"]  # type: ignore[no-any-return]


async def every_page(device: Device, params: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """All pages of one read_by: (the pages, every read uid, every unread uid), in order."""
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await device.result("read_by", params | ({"cursor": cursor} if cursor else {}))
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 100, "the pages never end"
    return pages, [r["uid"] for p in pages for r in p["read"]], [u for p in pages for u in p["unread"]]


async def test_readers_and_non_readers_in_the_messages_window(app: App, users: Users) -> None:
    """Who joined after the message or left before it is in neither list; who left at or after
    it is in one; the sender in neither."""
    await users.add("alice", "bob", "carol", "dave", "erin", "frank")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob, \
            connect(app.mqtt_port, "dave", "phone", await users.token("dave")) as dave, \
            connect(app.mqtt_port, "erin", "phone", await users.token("erin")) as erin:
        group = await alice.result("group.create", {"name": "six", "members": ["bob", "carol", "dave", "frank"]})
        gid, conv = group["gid"], group["conv"]
        await alice.result("group.remove", {"gid": gid, "members": ["frank"]})  # seq 2: left before m1
        m1 = await group_send(alice, gid, "m1")  # seq 3
        assert m1["seq"] == 3
        await bob.result("read", {"conv": conv, "seq": 3})
        await dave.result("read", {"conv": conv, "seq": 3})
        removed = await alice.result("group.remove", {"gid": gid, "members": ["dave"]})  # seq 4: dave left after m1
        added = await alice.result("group.add", {"gid": gid, "members": ["erin"]})  # seq 5: erin joined after m1
        assert (removed["seq"], added["seq"]) == (4, 5)
        await erin.result("read", {"conv": conv, "seq": 5})  # erin's marker is past m1, but m1 is not hers

        got = await alice.result("read_by", {"id": m1["id"], "conv": conv})
        assert got == {"id": m1["id"], "conv": conv, "seq": 3, "read": [{"uid": "bob"}, {"uid": "dave"}],
                       "unread": ["carol"], "read_count": 2, "unread_count": 1, "next_cursor": None}
        assert await alice.result("read_by", {"id": m1["id"]}) == got  # conv is optional

        events = {m["seq"]: m for m in (await alice.result("history", {"conv": conv}))["messages"]}
        # The removal's own event is in dave's window (left_seq = its seq), not in erin's (joined_seq = it).
        at_removal = await alice.result("read_by", {"id": events[4]["id"]})
        assert (at_removal["read"], at_removal["unread"]) == ([], ["bob", "carol", "dave"])
        at_addition = await alice.result("read_by", {"id": events[5]["id"]})
        assert (at_addition["read"], at_addition["unread"]) == ([{"uid": "erin"}], ["bob", "carol"])
        assert (at_addition["read_count"], at_addition["unread_count"]) == (1, 2)

        # Reading moves a member from one list to the other.
        await bob.result("read", {"conv": conv, "seq": 5})
        again = await alice.result("read_by", {"id": events[5]["id"]})
        assert (again["read"], again["unread"]) == ([{"uid": "bob"}, {"uid": "erin"}], ["carol"])


async def test_the_sender_admins_and_nobody_else_may_ask(app: App, users: Users) -> None:
    await users.add("alice", "bob", "carol", "eve", "frank")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob, \
            connect(app.mqtt_port, "carol", "phone", await users.token("carol")) as carol, \
            connect(app.mqtt_port, "eve", "phone", await users.token("eve")) as eve, \
            connect(app.mqtt_port, "frank", "phone", await users.token("frank")) as frank:
        group = await alice.result("group.create", {"name": "trio", "members": ["bob", "carol"]})
        gid, conv = group["gid"], group["conv"]
        other = await alice.result("group.create", {"name": "elsewhere", "members": ["eve"]})
        m1 = await group_send(alice, gid, "m1")
        c1 = await group_send(carol, gid, "c1")
        m2 = await group_send(alice, other["gid"], "m2")

        # A plain member: its own message, yes; another's, no.
        own = await carol.result("read_by", {"id": c1["id"]})
        assert (own["read"], own["unread"]) == ([], ["alice", "bob"])
        assert (await error(carol, "read_by", {"id": m1["id"]}))["data"]["code"] == "forbidden"
        assert (await error(bob, "read_by", {"id": m1["id"]}))["data"]["code"] == "forbidden"
        # An admin may ask of anyone's message (itself included in the lists, as a member).
        await alice.result("group.role", {"gid": gid, "uid": "bob", "role": "admin"})
        by_admin = await bob.result("read_by", {"id": m1["id"]})
        assert (by_admin["read"], by_admin["unread"]) == ([{"uid": "carol"}], ["bob"])  # carol's send read m1
        # Not a member, an unknown id, another conversation's message: not found, alike.
        unknown = "01M8QD0EV8VJGDADPWYHRAPXHE"
        for who, params in ((eve, {"id": m1["id"]}), (eve, {"id": unknown}), (alice, {"id": unknown}),
                            (alice, {"id": m2["id"], "conv": conv}), (alice, {"id": m1["id"], "conv": other["conv"]})):
            err = await error(who, "read_by", params)
            assert (err["code"], err["data"]["code"]) == (404, "not_found"), (who.uid, params)
        assert (await alice.result("read_by", {"id": m2["id"]}))["unread"] == ["eve"]  # it exists, in its own
        # An admin who joined after the message: it is outside its window.
        await alice.result("group.add", {"gid": gid, "members": ["frank"]})
        await alice.result("group.role", {"gid": gid, "uid": "frank", "role": "admin"})
        assert (await error(frank, "read_by", {"id": m1["id"]}))["data"]["code"] == "not_found"
        # A former member, even of its own message: forbidden (it learns nothing more of the group).
        await carol.result("group.leave", {"gid": gid})
        assert (await error(carol, "read_by", {"id": c1["id"]}))["data"]["code"] == "forbidden"
        # Bad params: -32602.
        for params in ({"id": m1["id"], "limit": 201}, {"id": m1["id"], "limit": 0}, {"id": m1["id"], "cursor": "a b"},
                       {"conv": conv}, {"id": m1["id"], "limit": "5"}):
            assert (await error(alice, "read_by", params))["code"] == -32602, params


async def test_a_1to1_tells_the_sender_about_the_peer(app: App, users: Users) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        sent = await alice.send_and_ack("d1", "bob", "seen it?")
        assert (await alice.result("read_by", {"id": sent["id"]}))["unread"] == ["bob"]
        await bob.result("read", {"conv": sent["conv"], "seq": sent["seq"]})
        got = await alice.result("read_by", {"id": sent["id"], "conv": "d:alice:bob"})
        assert (got["read"], got["unread"], got["read_count"], got["unread_count"]) == ([{"uid": "bob"}], [], 1, 0)
        assert (await error(bob, "read_by", {"id": sent["id"]}))["data"]["code"] == "forbidden"  # not bob's message
        # Whom the sender blocks is in neither list (its peer_read_seq is not shown either).
        await alice.result("block.add", {"uid": "bob"})
        hidden = await alice.result("read_by", {"id": sent["id"]})
        assert (hidden["read"], hidden["unread"], hidden["read_count"], hidden["unread_count"]) == ([], [], 0, 0)


async def test_a_large_group_pages(app: App, users: Users) -> None:
    """250 members: pages of at most ``limit`` in uid order, together every member but the
    sender once, with the same totals on every page."""
    others = [f"m{n:03d}" for n in range(249)]
    await users.add("alice", *others)
    readers = ["m000", "m137", "m248"]
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        group = await alice.result("group.create", {"name": "crowd", "members": others})
        m1 = await group_send(alice, group["gid"], "m1")
        for uid in readers:
            async with connect(app.mqtt_port, uid, "phone", await users.token(uid)) as reader:
                await reader.result("read", {"conv": group["conv"], "seq": m1["seq"]})
        pages, read, unread = await every_page(alice, {"id": m1["id"]})  # default limit: 100
        assert [len(p["read"]) + len(p["unread"]) for p in pages] == [100, 100, 49]
        assert read == readers and unread == [u for u in others if u not in readers]
        assert {(p["read_count"], p["unread_count"]) for p in pages} == {(3, 246)}
        assert [p["next_cursor"] for p in pages] == ["m099", "m199", None]
        pages, read, unread = await every_page(alice, {"id": m1["id"], "limit": 200})
        assert [len(p["read"]) + len(p["unread"]) for p in pages] == [200, 49]
        assert sorted(read + unread) == others
        # A cursor is where the previous page stopped: anything after it.
        tail = await alice.result("read_by", {"id": m1["id"], "cursor": "m245", "limit": 10})
        assert (tail["read"], tail["unread"], tail["next_cursor"]) == ([{"uid": "m248"}], ["m246", "m247"], None)


async def test_the_new_keys_travel_as_numbers_in_cbor(app: App, users: Users) -> None:
    """protocol.md "Encodings": the keys added for read_by have numbers (64-66), sent as numbers."""
    assert (KEYS["read"], KEYS["read_count"], KEYS["unread_count"]) == (64, 65, 66)
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice", encoding="cbor")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        sent = await bob.send_and_ack("b1", "alice", "hi")
        await alice.client.publish("im/alice/out/rpc", cbor2.dumps({"jsonrpc": "2.0", "id": 1, "method": "read",
                                                                    "params": {"conv": sent["conv"], "seq": 1}}))
        await alice.inbox.wait_for(on("/in/rpc", id=1))
        assert (await bob.result("read_by", {"id": sent["id"]}))["read"] == [{"uid": "alice"}]
        await alice.send(cbor2.dumps({"cid": "a1", "to": "bob", "type": "text", "text": "back"}))
        mine = (await alice.inbox.wait_for(on("/in/ack", cid="a1")))[0].body
        await alice.client.publish("im/alice/out/rpc", cbor2.dumps({KEYS["jsonrpc"]: "2.0", KEYS["id"]: 3,
                                                                    KEYS["method"]: "read_by",
                                                                    KEYS["params"]: {KEYS["id"]: mine["id"]}}))
        result = cbor2.loads((await alice.inbox.wait_for(on("/in/rpc", id=3)))[0].payload)[KEYS["result"]]
        assert (result[KEYS["read"]], result[KEYS["unread"]], result[KEYS["read_count"]],
                result[KEYS["unread_count"]]) == ([], ["bob"], 0, 1)


def test_read_by_takes_from_the_rpc_bucket() -> None:
    from bridge.ratelimit import Rate, RateLimits, Throttle
    from bridge.router import Rpc, Topics
    from bridge.rpc import METHODS, Limit
    from bridge.wire import ReadByParams
    from tests.helpers import ManualClock

    assert METHODS["read_by"].limit == Limit.RPC
    throttle = Throttle(Topics("im"), ManualClock(0), RateLimits(rpcs=Rate(1, 2)))
    params = ReadByParams(id="01M8QD0EV8VJGDADPWYHRAPXHE")
    calls = [throttle.check("bob", Rpc("bob", n, "read_by", params, "bob")) for n in range(3)]
    assert [type(c).__name__ for c in calls] == ["Rpc", "Rpc", "Reply"]  # the burst of 2, then refused
