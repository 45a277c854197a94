"""Threads over the real broker and bridge (issue 28): a message starts or joins a thread (``thread``
= the root's id); replies are ordinary messages of the conversation with their own gap-free
``tseq``; ``history`` pages a thread; ``threads`` lists them with reply counts, the last reply and
the caller's unread count; ``thread.read`` marks one read; search hits say their thread; offline
pushes say ``thread_reply`` (and a muted conversation pushes only mentions); windows and blocks
apply as to the conversation; and the refusals a hostile user tries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import cbor2
import pytest

from bridge.formats import KEYS
from imgate.app import App
from tests.conftest import Users
from tests.helpers import Device, connect, on

UNKNOWN = "01M8QD0EV8VJGDADPWYHRAPXHE"


@pytest.fixture
async def crowd(app: App, users: Users) -> AsyncIterator[dict[str, Device]]:
    """alice (the groups' owner), bob, carol, dave: each connected with one device."""
    names = ["alice", "bob", "carol", "dave"]
    await users.add(*names)
    async with AsyncExitStack() as stack:
        yield {n: await stack.enter_async_context(connect(app.mqtt_port, n, "phone", await users.token(n)))
               for n in names}


async def send(device: Device, cid: str, *, gid: str | None = None, to: str | None = None, text: str = "look",
               thread: str | None = None, **extra: Any) -> dict[str, Any]:
    """Send a text (to a group or a user), in ``thread`` if given; its ack (or error ack)."""
    body: dict[str, Any] = {"cid": cid, "type": "text", "text": text, **extra}
    body |= {"group": gid} if gid is not None else {"to": to}
    if thread is not None:
        body["thread"] = thread
    await device.send(body)
    return (await device.inbox.wait_for(on("/in/ack", cid=cid)))[0].json


async def ok(device: Device, cid: str, **kw: Any) -> dict[str, Any]:
    ack = await send(device, cid, **kw)
    assert "error" not in ack, ack
    return ack


async def refused(device: Device, cid: str, **kw: Any) -> tuple[str, str]:
    ack = await send(device, cid, **kw)
    assert "error" in ack, ack
    return ack["error"]["code"], ack["error"]["message"]


async def error(device: Device, method: str, params: dict[str, Any]) -> tuple[int, str | None]:
    response = await device.rpc(method, params)
    assert "error" in response, (method, params, response)
    err = response["error"]
    return err["code"], (err.get("data") or {}).get("code")


async def unread_threads(device: Device, conv: str) -> int:
    [item] = [i for i in (await device.result("conversations"))["items"] if i["conv"] == conv]
    return item["unread_threads"]  # type: ignore[no-any-return]


async def test_replies_join_a_thread_in_order_and_everyone_gets_them(crowd: dict[str, Device]) -> None:
    alice, bob, carol = crowd["alice"], crowd["bob"], crowd["carol"]
    g = await alice.result("group.create", {"name": "team", "members": ["bob", "carol"]})
    gid, conv = g["gid"], g["conv"]
    root = await ok(alice, "root", gid=gid, text="shall we ship friday?")
    assert "thread" not in root and "tseq" not in root  # a plain message says nothing of threads
    r1 = await ok(bob, "r1", gid=gid, text="yes", thread=root["id"])
    other = await ok(carol, "plain", gid=gid, text="lunch?")  # the conversation goes on beside it
    r2 = await ok(carol, "r2", gid=gid, text="after the tests", thread=root["id"])
    # A reply to a reply joins the root's thread (threads do not nest).
    r3 = await ok(alice, "r3", gid=gid, text="agreed", thread=r1["id"])
    assert [(a["thread"], a["tseq"]) for a in (r1, r2, r3)] == [(root["id"], 1), (root["id"], 2), (root["id"], 3)]
    # Thread replies keep the conversation's seq: delivery order and sync are the conversation's.
    assert [a["seq"] for a in (root, r1, other, r2, r3)] == [root["seq"] + n for n in range(5)]
    for member in (alice, bob, carol):
        got = await member.inbox.wait_for(on("/in/msg", conv=conv), count=5)
        assert [(m.json["cid"], m.json.get("thread"), m.json.get("tseq")) for m in got] == [
            ("root", None, None), ("r1", root["id"], 1), ("plain", None, None), ("r2", root["id"], 2),
            ("r3", root["id"], 3)]
    # The conversation's history has them all, and the root says how many replies it has.
    history = (await bob.result("history", {"conv": conv}))["messages"]
    by_cid = {m["cid"]: m for m in history}
    assert by_cid["root"]["replies"] == 3 and "replies" not in by_cid["plain"]
    assert (by_cid["r2"]["thread"], by_cid["r2"]["tseq"]) == (root["id"], 2)
    # A retried reply is acked as it was, and takes no second place in the thread.
    assert (await ok(bob, "r1", gid=gid, text="yes", thread=root["id"]))["tseq"] == 1
    assert (await alice.result("threads", {"conv": conv}))["items"][0]["replies"] == 3


async def test_history_pages_a_thread_in_order(crowd: dict[str, Device]) -> None:
    alice, bob = crowd["alice"], crowd["bob"]
    root = await alice.send_and_ack("root", "bob", "a long story")
    conv = root["conv"]
    replies = []
    for n in range(7):
        replies.append(await ok(bob if n % 2 else alice, f"t{n}", to="alice" if n % 2 else "bob",
                                text=f"part {n}", thread=root["id"]))
        await ok(alice, f"x{n}", to="bob", text="meanwhile")  # not in the thread
    page = await bob.result("history", {"conv": conv, "thread": root["id"], "limit": 3})
    assert page["thread"] == root["id"] and page["root"]["text"] == "a long story" and page["root"]["replies"] == 7
    assert [m["tseq"] for m in page["messages"]] == [5, 6, 7] and page["has_more"] is True
    older = await bob.result("history", {"conv": conv, "thread": root["id"], "limit": 3,
                                         "before_seq": page["messages"][0]["seq"]})
    assert [m["tseq"] for m in older["messages"]] == [2, 3, 4] and older["has_more"] is True
    newer = await bob.result("history", {"conv": conv, "thread": root["id"], "after_seq": replies[0]["seq"]})
    assert [m["text"] for m in newer["messages"]] == [f"part {n}" for n in range(1, 7)]
    assert newer["has_more"] is False
    # Naming a reply pages its root's thread; an unknown id, or a root of another conversation, is not found.
    assert len((await bob.result("history", {"conv": conv, "thread": replies[3]["id"]}))["messages"]) == 7
    assert await error(bob, "history", {"conv": conv, "thread": UNKNOWN}) == (404, "not_found")
    elsewhere = await crowd["carol"].send_and_ack("c1", "bob", "elsewhere")
    assert await error(bob, "history", {"conv": conv, "thread": elsewhere["id"]}) == (404, "not_found")
    assert (await bob.rpc("history", {"conv": conv, "thread": "not-an-id"}))["error"]["code"] == -32602


async def test_the_thread_list_counts_replies_and_unread_until_read(crowd: dict[str, Device]) -> None:
    alice, bob, carol = crowd["alice"], crowd["bob"], crowd["carol"]
    g = await alice.result("group.create", {"name": "team", "members": ["bob", "carol"]})
    gid, conv = g["gid"], g["conv"]
    a = await ok(alice, "a", gid=gid, text="topic a")
    b = await ok(bob, "b", gid=gid, text="topic b")
    assert (await carol.result("threads", {"conv": conv})) == {"conv": conv, "items": [], "next_cursor": None}
    await ok(bob, "a1", gid=gid, text="on a", thread=a["id"])
    await ok(carol, "b1", gid=gid, text="on b", thread=b["id"])
    last_a = await ok(bob, "a2", gid=gid, text="more on a", thread=a["id"])
    listed = await carol.result("threads", {"conv": conv})
    assert [(t["thread"], t["replies"], t["read_tseq"], t["unread"]) for t in listed["items"]] == [
        (a["id"], 2, 0, 2), (b["id"], 1, 1, 0)]  # newest reply first; carol's own reply is read
    first = listed["items"][0]
    assert first["root"]["text"] == "topic a" and first["root"]["replies"] == 2
    assert (first["last"]["id"], first["last"]["text"], first["last"]["tseq"]) == (last_a["id"], "more on a", 2)
    # Replying marks one's own reply read (bob wrote both of a's replies).
    assert [t["unread"] for t in (await bob.result("threads", {"conv": conv}))["items"]] == [0, 1]
    # conversations counts the unread threads one follows (replied in, or marked read): carol
    # follows b only, read; a's unread replies are in the thread list, not this count.
    assert await unread_threads(carol, conv) == 0
    # Paging: one a page.
    page1 = await carol.result("threads", {"conv": conv, "limit": 1})
    page2 = await carol.result("threads", {"conv": conv, "limit": 1, "cursor": page1["next_cursor"]})
    assert [t["thread"] for t in page1["items"] + page2["items"]] == [a["id"], b["id"]]
    assert page2["next_cursor"] is None
    assert await error(carol, "threads", {"conv": conv, "cursor": "garbage"}) == (-32602, "bad_request")
    # Digits int() refuses ("²" is str.isdigit) and a time past SQL's BIGINT: refused, not an internal error.
    for cursor in (f"\u00b2:{a['id']}", f"{'9' * 30}:{a['id']}"):
        assert await error(carol, "threads", {"conv": conv, "cursor": cursor}) == (-32602, "bad_request"), cursor

    # thread.read moves the marker forward (never back, never past the last reply); the other
    # devices of the reader are told.
    assert await carol.result("thread.read", {"conv": conv, "thread": a["id"], "tseq": 1}) == \
        {"conv": conv, "thread": a["id"], "read_tseq": 1, "unread": 1}
    event = (await carol.inbox.wait_for(on("/in/event", type="thread_read")))[0].json
    assert (event["thread"], event["read_tseq"]) == (a["id"], 1)
    assert (await carol.result("thread.read", {"conv": conv, "thread": a["id"], "tseq": 99}))["read_tseq"] == 2
    assert (await carol.result("thread.read", {"conv": conv, "thread": a["id"], "tseq": 0}))["read_tseq"] == 2
    assert [t["unread"] for t in (await carol.result("threads", {"conv": conv}))["items"]] == [0, 0]
    await ok(alice, "a3", gid=gid, text="and one more", thread=a["id"])
    assert [t["unread"] for t in (await carol.result("threads", {"conv": conv}))["items"]] == [1, 0]
    assert (await unread_threads(carol, conv), await unread_threads(bob, conv)) == (1, 1)
    await carol.result("thread.read", {"conv": conv, "thread": a["id"], "tseq": 3})
    assert await unread_threads(carol, conv) == 0
    # A message with no replies is no thread to mark; neither is another conversation's.
    plain = await ok(alice, "p", gid=gid, text="no replies")
    assert await error(carol, "thread.read", {"conv": conv, "thread": plain["id"], "tseq": 1}) == (404, "not_found")
    assert await error(crowd["dave"], "threads", {"conv": conv}) == (404, "not_found")
    assert await error(crowd["dave"], "thread.read", {"conv": conv, "thread": a["id"], "tseq": 1}) == \
        (404, "not_found")


async def test_the_refusals_a_hostile_client_tries(crowd: dict[str, Device]) -> None:
    alice, bob, dave = crowd["alice"], crowd["bob"], crowd["dave"]
    g = await alice.result("group.create", {"name": "team", "members": ["bob"]})
    gid, conv = g["gid"], g["conv"]
    old = await ok(alice, "old", gid=gid, text="before dave")
    direct = await dave.send_and_ack("d1", "bob", "a 1:1")
    # An unknown root, a root in another conversation (even one the sender is in), a malformed id.
    assert await refused(bob, "x1", gid=gid, thread=UNKNOWN) == (
        "bad_request", f"thread: no message {UNKNOWN!r} in this conversation")
    assert (await refused(bob, "x2", gid=gid, thread=direct["id"]))[0] == "bad_request"
    assert (await refused(bob, "x3", gid=gid, thread="1234"))[0] == "bad_request"
    assert (await refused(bob, "x3b", gid=gid, thread=42))[0] == "bad_request"
    # A membership event starts no thread.
    member_event = [m for m in (await bob.result("history", {"conv": conv}))["messages"] if m["type"] == "member"]
    assert (await refused(bob, "x4", gid=gid, thread=member_event[0]["id"]))[0] == "bad_request"
    # A root outside the sender's window: dave joined after it; he neither replies nor sees it.
    await alice.result("group.add", {"gid": gid, "members": ["dave"]})
    await ok(bob, "in-old", gid=gid, text="reply", thread=old["id"])
    assert await refused(dave, "x5", gid=gid, thread=old["id"]) == (
        "bad_request", f"thread: no message {old['id']!r} in this conversation")
    assert await error(dave, "history", {"conv": conv, "thread": old["id"]}) == (404, "not_found")
    assert (await dave.result("threads", {"conv": conv}))["items"] == []
    assert await error(dave, "thread.read", {"conv": conv, "thread": old["id"], "tseq": 1}) == (404, "not_found")
    # A thread dave can see: one whose root came after he joined.
    new = await ok(alice, "new", gid=gid, text="after dave")
    assert (await ok(dave, "d-new", gid=gid, text="me too", thread=new["id"]))["tseq"] == 1
    # A recalled root takes no new replies (its replies stay).
    await alice.result("recall", {"id": new["id"]})
    assert await refused(bob, "x6", gid=gid, thread=new["id"]) == (
        "bad_request", f"thread: message {new['id']!r} was recalled")
    # A former member: not a member any more, so no reply; it pages the thread up to its removal.
    await ok(alice, "before-leave", gid=gid, text="still here", thread=old["id"])
    await bob.result("group.leave", {"gid": gid})
    await ok(alice, "after-leave", gid=gid, text="bob is gone", thread=old["id"])
    assert (await refused(bob, "x7", gid=gid, thread=old["id"]))[0] == "forbidden"
    seen = await bob.result("history", {"conv": conv, "thread": old["id"]})
    assert [m["cid"] for m in seen["messages"]] == ["in-old", "before-leave"]
    # Nor does the root's reply count tell it of the replies since (in either history); a member's says 3.
    assert seen["root"]["replies"] == 2
    assert {m["id"]: m for m in (await bob.result("history", {"conv": conv}))["messages"]}[old["id"]]["replies"] == 2
    assert (await alice.result("history", {"conv": conv, "thread": old["id"]}))["root"]["replies"] == 3
    assert await error(bob, "threads", {"conv": conv}) == (404, "not_found")
    # Back in the group, bob's window starts again: the old thread (which he followed, and which
    # has a reply he has not read) is outside it, in the list and in the count alike.
    await alice.result("group.add", {"gid": gid, "members": ["bob"]})
    assert (await bob.result("threads", {"conv": conv}))["items"] == []
    assert await unread_threads(bob, conv) == 0
    assert (await refused(bob, "x7b", gid=gid, thread=old["id"]))[0] == "bad_request"
    # Blocked 1:1: whom the other member blocks cannot reply there.
    await bob.result("block.add", {"uid": "dave"})
    assert await refused(dave, "x8", to="bob", thread=direct["id"]) == ("forbidden", "not allowed")
    assert (await ok(bob, "b-ok", to="dave", thread=direct["id"]))["tseq"] == 1  # the blocker still may


async def test_the_new_keys_travel_as_numbers_in_cbor(app: App, users: Users) -> None:
    """protocol.md "Encodings": the keys added for threads have numbers, sent as numbers."""
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice", encoding="cbor")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        root = await bob.send_and_ack("b1", "alice", "start here")
        await alice.client.publish("im/alice/out/msg", cbor2.dumps({
            KEYS["cid"]: "c1", KEYS["to"]: "bob", KEYS["type"]: "text", KEYS["text"]: "in the thread",
            KEYS["thread"]: root["id"]}), qos=1)
        ack = cbor2.loads((await alice.inbox.wait_for(on("/in/ack")))[0].payload)
        assert (ack[KEYS["thread"]], ack[KEYS["tseq"]]) == (root["id"], 1)
        got = (await bob.inbox.wait_for(on("/in/msg", cid="c1")))[0].json
        assert (got["thread"], got["tseq"]) == (root["id"], 1)
        await alice.client.publish("im/alice/out/rpc", cbor2.dumps({KEYS["jsonrpc"]: "2.0", KEYS["id"]: 1,
                                                                    KEYS["method"]: "threads",
                                                                    KEYS["params"]: {KEYS["conv"]: root["conv"]}}))
        result = cbor2.loads((await alice.inbox.wait_for(on("/in/rpc", id=1)))[0].payload)[KEYS["result"]]
        [item] = result[KEYS["items"]]
        assert (item[KEYS["thread"]], item[KEYS["replies"]], item[KEYS["read_tseq"]], item[KEYS["unread"]]) == \
            (root["id"], 1, 1, 0)
        assert item[KEYS["root"]][KEYS["replies"]] == 1
        await alice.client.publish("im/alice/out/rpc", cbor2.dumps({KEYS["jsonrpc"]: "2.0", KEYS["id"]: 2,
                                                                    KEYS["method"]: "conversations"}))
        result = cbor2.loads((await alice.inbox.wait_for(on("/in/rpc", id=2)))[0].payload)[KEYS["result"]]
        assert result[KEYS["items"]][0][KEYS["unread_threads"]] == 0


def test_thread_calls_take_their_buckets() -> None:
    from bridge.rpc import METHODS, Limit

    # The list takes the RPC bucket; a thread's read marker the read bucket, as ``read`` does.
    assert (METHODS["threads"].limit, METHODS["thread.read"].limit) == (Limit.RPC, Limit.READ)


async def test_replies_racing_in_one_thread_get_every_tseq_once(crowd: dict[str, Device]) -> None:
    """Many replies at once from every member (each user's sends on its own lane, batched by the
    committer, on PostgreSQL on several connections): tseq is 1..n without gaps or repeats, in
    seq order, and the thread's counters agree."""
    alice = crowd["alice"]
    g = await alice.result("group.create", {"name": "race", "members": ["bob", "carol", "dave"]})
    gid, conv = g["gid"], g["conv"]
    root = await ok(alice, "root", gid=gid, text="go")
    names = ["alice", "bob", "carol", "dave"]
    for n in range(40):
        await crowd[names[n % 4]].send({"cid": f"r{n}", "group": gid, "type": "text", "text": f"r{n}",
                                        "thread": root["id"]})
    acks = [(await crowd[names[n % 4]].inbox.wait_for(on("/in/ack", cid=f"r{n}")))[0].json for n in range(40)]
    assert all("error" not in a for a in acks), acks
    assert sorted(a["tseq"] for a in acks) == list(range(1, 41))
    assert [a["tseq"] for a in sorted(acks, key=lambda a: a["seq"])] == list(range(1, 41))
    [item] = (await crowd["bob"].result("threads", {"conv": conv}))["items"]
    last = max(acks, key=lambda a: a["seq"])
    assert (item["replies"], item["last"]["id"]) == (40, last["id"])
    page = await crowd["carol"].result("history", {"conv": conv, "thread": root["id"], "limit": 200})
    assert [m["tseq"] for m in page["messages"]] == list(range(1, 41))
