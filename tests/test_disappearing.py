"""Disappearing messages over the real broker and bridge (issue 28): a conversation's ttl, set by
a 1:1's members or a group's owner and admins and told to every member as a stored ``ttl``
message; messages sent while it is set carry ``expires_at`` and, once due, the sweep turns them
into ``expired`` tombstones for everyone: gone from history, search, pins, mentions, reactions,
quotes, pushes not yet sent and the file store, with an ``expired`` event to the members. A
message sent before the setting (or after it is turned off) stays. The sweep works from the
database, so what came due while the server was down goes when it starts. And the refusals.

On a clock the test moves by hand (tests/manual_clock.py): the sweep's pass runs every 50 ms of
real time and expires what the manual clock says is due; the tests wait on the events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import cbor2
import httpx
import pytest

from bridge.formats import KEYS
from bridge.rpc import METHODS, Limit
from config.settings import Settings
from imgate.app import App
from services.conversations.models import Mention
from services.messages.models import Message
from services.push.models import PushJob, PushTarget
from tests.conftest import Users
from tests.helpers import Device, ManualClock, connect, on, tweak
from tests.manual_clock import clock_fixture, manual_app_fixture  # noqa: F401
from tests.test_attachments import upload

MIN, MAX = 60, 3600  # the bounds here (limits.min_ttl_s, max_ttl_s)


UNSWEPT = "unswept"  # a test whose sweep passes once, at start, and not again within the test


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    interval = 3600 if request.node.get_closest_marker(UNSWEPT) else 0.05
    settings = tweak(settings, "limits", min_ttl_s=MIN, max_ttl_s=MAX, expiry_interval_s=interval, expiry_batch=3)
    settings = tweak(settings, "search", interval_s=0.05)
    # Webhook push configured (its sender drops a job whose message expired; none is sent here).
    settings = tweak(settings, "push", webhook_secret="s" * 32)
    return tweak(settings, "web", enabled=True, port=0)  # attachments (the embedded store)


@pytest.fixture
async def crowd(app: App, users: Users) -> AsyncIterator[dict[str, Device]]:
    """alice, bob, carol, dave: each connected with one device."""
    names = ["alice", "bob", "carol", "dave"]
    await users.add(*names)
    async with AsyncExitStack() as stack:
        yield {n: await stack.enter_async_context(connect(app.mqtt_port, n, "phone", await users.token(n)))
               for n in names}


async def send(device: Device, cid: str, *, to: str | None = None, group: str | None = None, text: str = "psst",
               **extra: Any) -> dict[str, Any]:
    await device.send({"cid": cid, **({"to": to} if to else {"group": group}), "type": "text", "text": text, **extra})
    ack = (await device.inbox.wait_for(on("/in/ack", cid=cid)))[0].json
    assert "error" not in ack, ack
    return ack  # type: ignore[no-any-return]


async def error(device: Device, method: str, params: dict[str, Any]) -> tuple[int, str | None]:
    response = await device.rpc(method, params)
    assert "error" in response, (method, params, response)
    err = response["error"]
    return err["code"], (err.get("data") or {}).get("code")


async def expired(device: Device, count: int = 1) -> list[str]:
    """The ids of the ``expired`` events the device got, once it has ``count`` events."""
    events = await device.inbox.wait_for(on("/in/event", type="expired"), count=count)
    return [i for e in events for i in e.json["ids"]]


async def history(device: Device, conv: str) -> dict[int, dict[str, Any]]:
    return {m["seq"]: m for m in (await device.result("history", {"conv": conv}))["messages"]}


async def test_a_1to1_setting_marks_new_messages_and_the_sweep_removes_them(
        app: App, clock: ManualClock, crowd: dict[str, Device]) -> None:
    alice, bob = crowd["alice"], crowd["bob"]
    before = await send(alice, "before", to="bob", text="sent before the setting")
    conv = before["conv"]
    assert "expires_at" not in before

    # Either member of a 1:1 sets it; both are told, and it is a message of the conversation.
    got = await bob.result("conversation.ttl", {"conv": conv, "ttl": 120})
    assert (got["conv"], got["ttl"], got["seq"]) == (conv, 120, 2)
    for member in (alice, bob):
        event = (await member.inbox.wait_for(on("/in/event", type="ttl")))[0].json
        assert {k: event[k] for k in ("conv", "seq", "id", "from", "ttl")} == \
            {"conv": conv, "seq": 2, "id": got["id"], "from": "bob", "ttl": 120}
    [item] = (await alice.result("conversations"))["items"]
    assert item["ttl"] == 120
    shown = (await history(alice, conv))[2]
    assert (shown["type"], shown["from"], shown["data"]) == ("ttl", "bob", {"ttl": 120})
    assert "expires_at" not in shown

    # From now on each message carries expires_at: in the ack, the delivery and history.
    secret = await send(alice, "secret", to="bob", text="burn this banana", mentions=["bob"])
    assert secret["expires_at"] == secret["ts"] + 120_000
    delivered = (await bob.inbox.wait_for(on("/in/msg", cid="secret")))[0].json
    assert delivered["expires_at"] == secret["expires_at"] and delivered["text"] == "burn this banana"
    assert (await history(bob, conv))[secret["seq"]]["expires_at"] == secret["expires_at"]
    await bob.result("pin", {"id": secret["id"]})
    await bob.result("reaction.add", {"id": secret["id"], "emoji": "🔥"})
    clock.ms += 1000
    reply = await send(bob, "reply", to="alice", text="got it", reply_to=secret["id"])
    assert reply["expires_at"] == reply["ts"] + 120_000
    assert await Mention.filter(conv=conv, seq=secret["seq"], uid="bob").exists()

    # Due: the sweep takes it (not the reply, a second later), tells both, and it is gone.
    clock.ms += 119_500
    assert await expired(alice) == [secret["id"]]
    event = (await bob.inbox.wait_for(on("/in/event", type="expired")))[0].json
    assert event == {"type": "expired", "conv": conv, "ids": [secret["id"]], "seqs": [secret["seq"]]}
    shown = await history(bob, conv)
    assert shown[secret["seq"]] == {"id": secret["id"], "conv": conv, "seq": secret["seq"], "from": "alice",
                                    "cid": "secret", "type": "expired", "ts": secret["ts"]}
    assert shown[reply["seq"]]["reply"] == {"id": secret["id"], "seq": secret["seq"], "from": "alice",
                                            "type": "expired", "excerpt": ""}
    assert shown[1]["text"] == "sent before the setting" and "expires_at" not in shown[1]
    assert (await bob.result("pinned", {"conv": conv}))["pins"] == []
    assert not await Mention.filter(conv=conv, seq=secret["seq"]).exists()
    # What one does with an expired message: as with any unknown id.
    for method, params in (("pin", {"id": secret["id"]}), ("recall", {"id": secret["id"]}),
                           ("reaction.add", {"id": secret["id"], "emoji": "x"}),
                           ("read_by", {"id": secret["id"]})):
        assert await error(alice, method, params) == (404, "not_found"), method
    refused = await alice.rpc("edit", {"id": secret["id"], "text": "back"})
    assert refused["error"]["data"]["code"] == "not_found"
    await bob.send({"cid": "r2", "to": "alice", "type": "text", "text": "?", "reply_to": secret["id"]})
    assert (await bob.inbox.wait_for(on("/in/ack", cid="r2")))[0].json["error"]["code"] == "bad_request"
    # A retry of the expired send is answered with the tombstone's id, never stored again.
    await alice.send({"cid": "secret", "to": "bob", "type": "text", "text": "burn this banana"})
    acks = await alice.inbox.wait_for(on("/in/ack", cid="secret"), count=2)
    assert acks[1].json["id"] == secret["id"] and acks[1].json["seq"] == secret["seq"]
    assert bob.inbox.matching(on("/in/msg", cid="secret"))[-1].json["text"] == "burn this banana"  # the one delivery
    assert len(bob.inbox.matching(on("/in/msg", cid="secret"))) == 1
    assert app.services is not None
    assert await app.services.reactions.summaries([secret["id"]], "bob") == {}

    clock.ms += 1000
    assert await expired(bob, 2) == [secret["id"], reply["id"]]
    assert [m["type"] for m in (await history(alice, conv)).values()] == ["text", "ttl", "expired", "expired"]


async def test_turning_it_off_and_what_was_sent_before_stays(clock: ManualClock, crowd: dict[str, Device]) -> None:
    alice, bob = crowd["alice"], crowd["bob"]
    conv = (await send(alice, "first", to="bob", text="kept"))["conv"]
    await alice.result("conversation.ttl", {"conv": conv, "ttl": MIN})
    going = await send(alice, "going", to="bob")
    # The same value again changes nothing and tells nobody (no message, no event).
    assert await bob.result("conversation.ttl", {"conv": conv, "ttl": MIN}) == {"conv": conv, "ttl": MIN}
    off = await bob.result("conversation.ttl", {"conv": conv, "ttl": 0})
    assert off["ttl"] is None and off["seq"] == going["seq"] + 1
    events = await alice.inbox.wait_for(on("/in/event", type="ttl"), count=2)
    assert [(e.json["from"], e.json["ttl"]) for e in events] == [("alice", MIN), ("bob", None)]
    assert await bob.result("conversation.ttl", {"conv": conv, "ttl": None}) == {"conv": conv, "ttl": None}
    staying = await send(bob, "staying", to="alice")
    assert "expires_at" not in staying
    assert "ttl" not in (await alice.result("conversations"))["items"][0]

    clock.ms += 365 * 86_400_000  # a year on: only what was sent while it was on has gone
    assert await expired(alice) == [going["id"]]
    shown = await history(bob, conv)
    assert [(m["type"], m.get("text")) for m in shown.values()] == [
        ("text", "kept"), ("ttl", None), ("expired", None), ("ttl", None), ("text", "psst")]
    assert len(alice.inbox.matching(on("/in/event", type="ttl"))) == 2


async def test_groups_who_may_and_the_refusals(clock: ManualClock, crowd: dict[str, Device]) -> None:
    alice, bob, carol, dave = crowd["alice"], crowd["bob"], crowd["carol"], crowd["dave"]
    g = await alice.result("group.create", {"name": "team", "members": ["bob", "carol"]})
    gid, conv = g["gid"], g["conv"]
    await alice.result("group.role", {"gid": gid, "uid": "bob", "role": "admin"})
    assert await error(carol, "conversation.ttl", {"conv": conv, "ttl": MIN}) == (403, "forbidden")
    assert await error(dave, "conversation.ttl", {"conv": conv, "ttl": MIN}) == (404, "not_found")
    assert await error(dave, "conversation.ttl", {"conv": "g:nothing", "ttl": MIN}) == (404, "not_found")
    assert await error(dave, "conversation.ttl", {"conv": "d:alice:bob", "ttl": MIN}) == (404, "not_found")
    # The bounds: a second of ttl to wipe evidence at once is refused, as is one past the maximum.
    for ttl in (1, MIN - 1, MAX + 1):
        assert await error(bob, "conversation.ttl", {"conv": conv, "ttl": ttl}) == (-32602, "bad_request"), ttl
    for bad in ({"conv": conv, "ttl": "3600"}, {"conv": conv, "ttl": 60.5}, {"conv": conv}, {"ttl": MIN},
                {"conv": conv, "ttl": -1}, {"conv": conv, "ttl": True}, {"conv": "", "ttl": MIN},
                {"conv": conv, "ttl": 10**12}, {"conv": ["x"], "ttl": MIN}):
        assert (await bob.rpc("conversation.ttl", bad))["error"]["code"] == -32602, bad
    assert (await bob.result("conversation.ttl", {"conv": conv, "ttl": MAX}))["ttl"] == MAX  # an admin may
    for member in (alice, bob, carol):
        event = (await member.inbox.wait_for(on("/in/event", type="ttl")))[0].json
        assert (event["from"], event["ttl"], event["conv"]) == ("bob", MAX, conv)
    assert dave.inbox.matching(on("/in/event", type="ttl")) == []
    sent = await send(carol, "g1", group=gid)
    assert sent["expires_at"] == sent["ts"] + MAX * 1000
    # A removed member can change nothing any more, and learns of nothing.
    await alice.result("group.remove", {"gid": gid, "members": ["bob"]})
    assert await error(bob, "conversation.ttl", {"conv": conv, "ttl": MIN}) == (404, "not_found")
    clock.ms += MAX * 1000
    for member in (alice, carol):
        assert await expired(member) == [sent["id"]]
    # (Everything alice is told after the expiry reaches her after it: bob's copy would have too.)
    await alice.result("conversation.ttl", {"conv": conv, "ttl": 0})
    await alice.inbox.wait_for(on("/in/event", type="ttl", ttl=None))
    assert bob.inbox.matching(on("/in/event", type="expired")) == []


async def test_a_blocked_peer_may_not_change_the_1to1(crowd: dict[str, Device]) -> None:
    alice, bob = crowd["alice"], crowd["bob"]
    conv = (await send(alice, "hi", to="bob"))["conv"]
    await bob.result("block.add", {"uid": "alice"})
    assert await error(alice, "conversation.ttl", {"conv": conv, "ttl": MIN}) == (403, "forbidden")
    assert (await bob.result("conversation.ttl", {"conv": conv, "ttl": MIN}))["ttl"] == MIN  # the blocker may


async def test_search_pushes_and_files_forget_an_expired_message(
        app: App, users: Users, clock: ManualClock, crowd: dict[str, Device]) -> None:
    alice, bob = crowd["alice"], crowd["bob"]
    assert app.services is not None and app.search is not None
    conv = (await send(alice, "hi", to="bob"))["conv"]
    await alice.result("conversation.ttl", {"conv": conv, "ttl": MIN})
    words = await send(alice, "words", to="bob", text="the melon is ripe")
    async with asyncio.timeout(10):  # indexing follows the event queue: until it is there
        while not (await bob.result("search", {"q": "melon"}))["messages"]:
            pass
    async with httpx.AsyncClient(timeout=10) as http:
        image = await upload(alice, http, b"\x89PNG" + bytes(300), name="x.png")
    await alice.send({"cid": "img", "to": "bob", "type": "image", "attachment": image})
    picture = (await alice.inbox.wait_for(on("/in/ack", cid="img")))[0].json
    assert picture["expires_at"] == picture["ts"] + MIN * 1000
    files = app.settings.data_dir / "files"
    assert list(files.rglob(image["key"]))
    # A push still waiting (its target down, retried later) when the message expires is not sent.
    target = await PushTarget.create(uid="bob", platform="webhook", token="https://push.example/x",
                                     created_at=clock.ms)
    await PushJob.create(target_id=target.id, message_id=words["id"], payload={"conv": conv, "seq": words["seq"]},
                         next_at=clock.ms + MIN * 2000, created_at=clock.ms, expires_at=words["expires_at"])

    clock.ms += MIN * 1000
    assert sorted(await expired(bob)) == sorted([words["id"], picture["id"]])
    assert not list(files.rglob(image["key"]))  # nothing else used it: released
    assert (await alice.result("file.url", {"keys": [image["key"]]}))["urls"] == {}
    assert (await bob.result("search", {"q": "melon"}))["messages"] == []
    async with asyncio.timeout(10):  # and the index itself drops it (the expiry's event)
        while await app.search.backlog():
            pass
    from services.search.terms import query_terms

    windows = await app.services.conversations.windows("bob", conv)
    assert await app.search.backend.search(query_terms("melon"), windows, sender=None, since=None, until=None,
                                           limit=10) == []
    assert app.push is not None and app.push.stats.sent == 0
    clock.ms += MIN * 2000
    await app.push.send_due()  # (or the sender's own pass): taken, and dropped, not sent (nor failed and retried)
    assert not await PushJob.filter(message_id=words["id"]).exists()
    await app.push.drain()
    assert (app.push.stats.sent, app.push.stats.retried, app.push.stats.dropped) == (0, 0, 0)


async def test_the_sweep_takes_bounded_batches_and_tells_each_member_its_window(
        app: App, clock: ManualClock, crowd: dict[str, Device]) -> None:
    """Seven messages due at once go in batches of limits.expiry_batch (3 here), each its own
    transaction; a member who joined after some of them is told only of those it saw."""
    alice, bob, carol = crowd["alice"], crowd["bob"], crowd["carol"]
    g = await alice.result("group.create", {"name": "team", "members": ["bob"]})
    gid, conv = g["gid"], g["conv"]
    await alice.result("conversation.ttl", {"conv": conv, "ttl": MIN})
    early = [await send(alice, f"e{n}", group=gid) for n in range(4)]
    await alice.result("group.add", {"gid": gid, "members": ["carol"]})
    late = [await send(bob, f"l{n}", group=gid) for n in range(3)]
    clock.ms += MIN * 1000
    everything = [m["id"] for m in early + late]
    assert sorted(await expired(alice, 3)) == sorted(everything)  # 3 + 3 + 1
    assert sorted(await expired(carol, 1)) == sorted(m["id"] for m in late)
    assert all(len(e.json["ids"]) <= 3 for e in alice.inbox.matching(on("/in/event", type="expired")))
    rows = await Message.filter(id__in=everything).values_list("type", "text", "expires_at")
    assert set(rows) == {("expired", None, None)}


async def test_the_new_keys_travel_as_numbers_in_cbor(app: App, clock: ManualClock, users: Users) -> None:
    await users.add("alice", "bob")
    token = await app.services.users.issue_token("bob", "board", encoding="cbor")  # type: ignore[union-attr]
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "board", token.token) as board:
        conv = (await send(alice, "hi", to="bob"))["conv"]
        await alice.result("conversation.ttl", {"conv": conv, "ttl": MIN})
        ttl_event = cbor2.loads((await board.inbox.wait_for(lambda r: r.topic.endswith("/in/event")))[0].payload)
        assert ttl_event[KEYS["ttl"]] == MIN
        sent = await send(alice, "m", to="bob")
        clock.ms += MIN * 1000
        await alice.inbox.wait_for(on("/in/event", type="expired"))
        got = [cbor2.loads(r.payload) for r in board.inbox.matching(lambda r: r.topic.endswith("/in/event"))]
        got += [cbor2.loads(r.payload) for r in board.inbox.matching(lambda r: r.topic.endswith("/in/msg"))]
        assert any(g.get(KEYS["expires_at"]) == sent["expires_at"] for g in got)
        async with asyncio.timeout(10):
            while not any(KEYS["ids"] in g for g in got):
                await board.inbox.wait_for(lambda r: r.topic.endswith("/in/event"), count=len(got))
                got = [cbor2.loads(r.payload) for r in board.inbox.matching(lambda r: True)]
        [gone] = [g for g in got if KEYS["ids"] in g]
        assert (gone[KEYS["ids"]], gone[KEYS["seqs"]]) == ([sent["id"]], [sent["seq"]])


def test_setting_a_ttl_takes_from_the_message_bucket() -> None:
    assert METHODS["conversation.ttl"].limit == Limit.FAN_OUT  # each change is a message to every member


async def test_what_came_due_while_the_server_was_down_expires_when_it_starts(
        settings: Settings, clock: ManualClock) -> None:
    async with App(settings, clock=clock) as app:
        users = Users(app.services)  # type: ignore[arg-type]
        await users.add("alice", "bob")
        async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
            conv = (await send(alice, "hi", to="bob"))["conv"]
            await alice.result("conversation.ttl", {"conv": conv, "ttl": MIN})
            doomed = await send(alice, "doomed", to="bob")
    clock.ms += MIN * 1000 + 1  # due while nothing runs
    async with App(settings, clock=clock) as app:
        async with asyncio.timeout(10):  # the new process's first pass takes it: read the row until then
            while (await Message.get(id=doomed["id"])).type != "expired":
                await asyncio.sleep(0.02)  # a bounded poll of the database, not a synchronising sleep
        users = Users(app.services)  # type: ignore[arg-type]
        async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
            shown = await history(alice, conv)
            assert shown[doomed["seq"]]["type"] == "expired" and "text" not in shown[doomed["seq"]]


def test_a_minimum_above_the_maximum_is_refused_at_start() -> None:
    from config.settings import ConfigError, load_settings

    with pytest.raises(ConfigError, match="min_ttl_s must not be above limits.max_ttl_s"):
        load_settings(None, {"limits": {"min_ttl_s": 7200, "max_ttl_s": 3600}})


async def test_a_merged_message_that_expires_releases_its_own_uploads(
        app: App, clock: ManualClock, crowd: dict[str, Device]) -> None:
    """Forwarding meets disappearing messages: a merge into a conversation with a ttl expires with
    it, and the uploads it shared go once nothing else refers to them (the merge's own references
    are in message_files, not in the message's columns)."""
    alice, carol = crowd["alice"], crowd["carol"]
    async with httpx.AsyncClient(timeout=10) as http:
        image = await upload(alice, http, b"\x89PNG" + bytes(500), name="y.png")
        await alice.send({"cid": "img", "to": "bob", "type": "image", "attachment": image})
        original = (await alice.inbox.wait_for(on("/in/ack", cid="img")))[0].json
        words = await send(alice, "w", to="bob", text="and the words")
        group = await alice.result("group.create", {"name": "brief", "members": ["carol"]})
        await alice.result("conversation.ttl", {"conv": group["conv"], "ttl": MIN})
        await alice.send({"cid": "m", "group": group["gid"], "forward": [original["id"], words["id"]], "merge": True})
        merged = (await alice.inbox.wait_for(on("/in/ack", cid="m")))[0].json
        assert merged["expires_at"] == merged["ts"] + MIN * 1000
        got = (await carol.inbox.wait_for(on("/in/msg", cid="m")))[0].json
        assert got["type"] == "merged" and got["expires_at"] == merged["expires_at"]
        await alice.result("recall", {"id": original["id"]})  # the merge alone refers to the upload now
        url = (await carol.result("file.url", {"keys": [image["key"]]}))["urls"][image["key"]]
        assert (await http.get(url)).status_code == 200
        files = app.settings.data_dir / "files"
        assert list(files.rglob(image["key"]))

        clock.ms += MIN * 1000
        assert await expired(carol) == [merged["id"]]
        assert (await carol.result("file.url", {"keys": [image["key"]]}))["urls"] == {}
        assert not list(files.rglob(image["key"]))  # released: no message refers to it any more
        [gone] = [m for m in (await history(carol, group["conv"])).values() if m["id"] == merged["id"]]
        assert gone["type"] == "expired" and "merged" not in gone and "forwarded" not in gone


@pytest.mark.unswept
async def test_a_message_whose_time_has_come_is_neither_forwarded_nor_a_thread_root(
        clock: ManualClock, crowd: dict[str, Device]) -> None:
    """Due but not swept yet (the sweep's next pass is an hour away), an expired message is as
    unknown as any id to a forward and to a thread reply (swept, its type says so)."""
    alice, bob = crowd["alice"], crowd["bob"]
    conv = (await send(alice, "hi", to="bob"))["conv"]
    await alice.result("conversation.ttl", {"conv": conv, "ttl": MIN})
    doomed = await send(alice, "doomed", to="bob", text="gone soon")
    reply = await send(bob, "r1", to="alice", text="in its thread", thread=doomed["id"])
    assert reply["tseq"] == 1
    clock.ms += MIN * 1000
    for body in ({"cid": "f", "to": "carol", "forward": [doomed["id"]]},
                 {"cid": "t", "to": "alice", "type": "text", "text": "late", "thread": doomed["id"]}):
        device = alice if "forward" in body else bob
        await device.send(body)
        ack = (await device.inbox.wait_for(on("/in/ack", cid=body["cid"])))[0].json
        assert ack["error"]["code"] in ("not_found", "bad_request") and doomed["id"] in ack["error"]["message"], ack
    assert not crowd["carol"].inbox.matching(on("/in/msg", cid="f"))


@pytest.mark.unswept
async def test_a_due_reply_is_expired_in_its_thread_and_a_due_message_is_not_quoted(
        clock: ManualClock, crowd: dict[str, Device]) -> None:
    """Due but not swept yet: a thread's history shows a due reply as the tombstone the sweep
    will leave (its thread and tseq, nothing it said), as the conversation's history does; and a
    reply may not quote a due message (its excerpt would go to every member, and stay if the
    reply was stored as the sweep ran)."""
    alice, bob = crowd["alice"], crowd["bob"]
    conv = (await send(alice, "hi", to="bob", text="the root, kept"))["conv"]
    root = (await history(alice, conv))[1]
    await alice.result("conversation.ttl", {"conv": conv, "ttl": MIN})
    doomed = await send(bob, "doomed", to="alice", text="burn this banana", thread=root["id"])
    clock.ms += MIN * 1000
    page = await alice.result("history", {"conv": conv, "thread": root["id"]})
    [shown] = page["messages"]
    assert (shown["id"], shown["type"], shown["thread"], shown["tseq"]) == (doomed["id"], "expired", root["id"], 1)
    assert "text" not in shown and "expires_at" not in shown
    assert (await history(alice, conv))[doomed["seq"]] == shown  # the same as the conversation's history
    await alice.send({"cid": "q", "to": "bob", "type": "text", "text": "what?", "reply_to": doomed["id"]})
    ack = (await alice.inbox.wait_for(on("/in/ack", cid="q")))[0].json
    assert ack["error"]["code"] == "bad_request" and doomed["id"] in ack["error"]["message"], ack
    assert not bob.inbox.matching(on("/in/msg", cid="q"))


@pytest.mark.unswept
async def test_a_due_attachment_is_not_downloadable_before_the_sweep(
        clock: ManualClock, crowd: dict[str, Device]) -> None:
    """Due but not swept yet, an attachment message's files are no more the members' to download
    (file.url leaves them out), alone or in a merged message; the uploader keeps its own."""
    alice, bob = crowd["alice"], crowd["bob"]
    conv = (await send(alice, "hi", to="bob"))["conv"]
    await alice.result("conversation.ttl", {"conv": conv, "ttl": MIN})
    async with httpx.AsyncClient(timeout=10) as http:
        image = await upload(alice, http, b"\x89PNG" + bytes(300), name="x.png")
        other = await upload(alice, http, b"\x89PNG" + bytes(200), name="other.png")
    await alice.send({"cid": "img", "to": "bob", "type": "image", "attachment": image})
    picture = (await alice.inbox.wait_for(on("/in/ack", cid="img")))[0].json
    # The other image reaches bob only in a merged message of this conversation (from carol's).
    await alice.send({"cid": "other", "to": "carol", "type": "image", "attachment": other})
    original = (await alice.inbox.wait_for(on("/in/ack", cid="other")))[0].json
    await alice.send({"cid": "m", "to": "bob", "forward": [original["id"]], "merge": True})
    merged = (await alice.inbox.wait_for(on("/in/ack", cid="m")))[0].json
    assert "error" not in merged and "expires_at" not in original, (merged, original)
    keys = sorted([image["key"], other["key"]])
    assert sorted((await bob.result("file.url", {"keys": keys}))["urls"]) == keys
    clock.ms = max(picture["expires_at"], merged["expires_at"])
    assert (await bob.result("file.url", {"keys": keys}))["urls"] == {}
    assert sorted((await alice.result("file.url", {"keys": keys}))["urls"]) == keys  # her own uploads
