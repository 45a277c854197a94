"""Scheduled sends over the real broker and bridge (issue 28): a send with ``at`` is acked as
scheduled once stored, listed and cancelled by its sender, and delivered at its time with the seq
of that time; the rules of that time apply (a sender who left the group, or is blocked, is told
it failed); the refusals a hostile user tries. Most tests run on a clock the test moves
(tests/manual_clock.py); the kill -9 test runs ``imgate run`` as a process on the real clock."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import cbor2
import pytest

from bridge.formats import KEYS
from config.settings import Settings, load_settings
from imgate.app import App, build_services, open_database
from services.ids import SystemClock
from tests.conftest import Users
from tests.helpers import Device, ManualClock, connect, on, tweak
from tests.manual_clock import clock_fixture, manual_app_fixture  # noqa: F401

CAP = 3  # pending scheduled sends a user may have, here
DAY_MS = 86_400_000
UNKNOWN = "01M8QD0EV8VJGDADPWYHRAPXHE"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Due sends are looked for every 50 ms (the test moves the clock, then waits for the delivery).
    return tweak(settings, "limits", max_scheduled=CAP, max_schedule_days=7, schedule_poll_s=0.05)


@pytest.fixture
async def crowd(app: App, users: Users) -> AsyncIterator[dict[str, Device]]:
    """alice (two devices: phone and laptop), bob, carol, mallory."""
    await users.add("alice", "bob", "carol", "mallory")
    async with AsyncExitStack() as stack:
        out = {n: await stack.enter_async_context(connect(app.mqtt_port, n, "phone", await users.token(n)))
               for n in ("alice", "bob", "carol", "mallory")}
        out["laptop"] = await stack.enter_async_context(
            connect(app.mqtt_port, "alice", "laptop", await users.token("alice", "laptop")))
        yield out


async def schedule(device: Device, cid: str, at: int, **send: Any) -> dict[str, Any]:
    """Schedule a send (``to`` or ``group`` and the rest in ``send``); its ack."""
    body = {"cid": cid, "type": "text", "text": f"later {cid}", "at": at, **send}
    before = len(device.inbox.matching(on("/in/ack", cid=cid)))  # a repeat's ack is the next one
    await device.send(body)
    return (await device.inbox.wait_for(on("/in/ack", cid=cid), count=before + 1))[-1].json  # type: ignore[no-any-return]


def error_of(ack: dict[str, Any]) -> str:
    assert "error" in ack, ack
    return ack["error"]["code"]  # type: ignore[no-any-return]


async def rpc_error(device: Device, method: str, params: dict[str, Any]) -> str | None:
    response = await device.rpc(method, params)
    assert "error" in response, response
    return (response["error"].get("data") or {}).get("code")  # type: ignore[no-any-return]


async def test_scheduled_acked_listed_and_delivered_at_its_time_with_the_seq_of_then(
        crowd: dict[str, Device], clock: ManualClock) -> None:
    alice, laptop, bob = crowd["alice"], crowd["laptop"], crowd["bob"]
    at = clock.ms + 60_000
    ack = await schedule(alice, "s1", at, to="bob")
    assert {k: ack[k] for k in ("cid", "status", "conv", "at")} == \
        {"cid": "s1", "status": "scheduled", "conv": "d:alice:bob", "at": at}
    assert len(ack["id"]) == 26 and "seq" not in ack
    # The sender's devices are told (the other one too), with the send as it will go.
    added = (await laptop.inbox.wait_for(on("/in/event", type="scheduled", op="add")))[0].json
    assert (added["id"], added["cid"], added["conv"], added["at"]) == (ack["id"], "s1", "d:alice:bob", at)
    listed = await laptop.result("schedule.list")
    assert added["scheduled"] == listed["scheduled"][0]
    assert {k: added["scheduled"][k] for k in ("id", "cid", "conv", "at", "to", "type", "text")} == \
        {"id": ack["id"], "cid": "s1", "conv": "d:alice:bob", "at": at, "to": "bob", "type": "text",
         "text": "later s1"}
    assert [(s["id"], s["at"], s["text"]) for s in listed["scheduled"]] == [(ack["id"], at, "later s1")]
    assert listed["next_cursor"] is None
    # Scheduling the same cid again is the same schedule (and tells nobody again).
    again = await schedule(alice, "s1", at + 5_000, to="bob", text="changed")
    assert (again["id"], again["at"], again["status"]) == (ack["id"], at, "scheduled")

    # Nothing is stored yet: a message sent now takes seq 1, the scheduled one the seq of its time.
    now = await alice.send_and_ack("n1", "bob", "right now")
    assert now["seq"] == 1
    clock.ms = at
    got = (await bob.inbox.wait_for(on("/in/msg", cid="s1")))[0].json
    assert (got["seq"], got["from"], got["text"], got["ts"]) == (2, "alice", "later s1", at)
    for device in (alice, laptop):
        sent = (await device.inbox.wait_for(on("/in/event", type="scheduled", op="sent")))[0].json
        assert (sent["id"], sent["cid"], sent["message_id"], sent["seq"]) == (ack["id"], "s1", got["id"], 2)
        assert (await device.inbox.wait_for(on("/in/msg", cid="s1")))[0].json["id"] == got["id"]
    assert (await alice.result("schedule.list"))["scheduled"] == []
    history = await bob.result("history", {"conv": "d:alice:bob"})
    assert [(m["cid"], m["seq"]) for m in history["messages"]] == [("n1", 1), ("s1", 2)]
    # A retry of the cid now answers that it was sent, and sends nothing again.
    retry = await schedule(alice, "s1", clock.ms + 60_000, to="bob")
    assert (retry["status"], retry["message_id"]) == ("sent", got["id"])
    later = await schedule(alice, "s2", clock.ms + 1_000, to="bob")
    clock.ms += 1_000
    await bob.inbox.wait_for(on("/in/msg", cid="s2"))  # delivered after anything s1 could have been again
    assert len(bob.inbox.matching(on("/in/msg", cid="s1"))) == 1
    assert len(alice.inbox.matching(on("/in/event", type="scheduled", op="sent", cid="s1"))) == 1
    assert later["status"] == "scheduled"
    # A cid sent without 'at' is acked as that send's retry; nothing is scheduled.
    plain = await schedule(alice, "n1", clock.ms + 60_000, to="bob")
    assert (plain["id"], plain["seq"]) == (now["id"], 1) and "status" not in plain
    # Long after (the horizon), a sent schedule is forgotten: its cid is then the stored message's.
    await alice.inbox.wait_for(on("/in/event", type="scheduled", op="sent", cid="s2"))
    clock.ms += 8 * DAY_MS
    async with asyncio.timeout(10):
        while "status" in (retry := await schedule(alice, "s1", clock.ms + 60_000, to="bob")):
            assert retry["status"] == "sent"  # (asked again until the purge has run: at most a pass)
    assert (retry["id"], retry["seq"]) == (got["id"], 2)
    assert (await alice.result("schedule.list"))["scheduled"] == []


async def test_sends_due_together_go_in_time_order_and_groups_get_them(crowd: dict[str, Device],
                                                                      clock: ManualClock) -> None:
    alice, bob, carol = crowd["alice"], crowd["bob"], crowd["carol"]
    g = await alice.result("group.create", {"name": "team", "members": ["bob", "carol"]})
    base = clock.ms + 10_000
    await schedule(alice, "third", base + 3, group=g["gid"], mentions=["bob"])
    await schedule(alice, "first", base + 1, group=g["gid"])
    await schedule(bob, "second", base + 2, group=g["gid"])
    page = await alice.result("schedule.list", {"limit": 1})
    assert [s["cid"] for s in page["scheduled"]] == ["first"] and page["next_cursor"]
    rest = await alice.result("schedule.list", {"limit": 1, "cursor": page["next_cursor"]})
    assert [s["cid"] for s in rest["scheduled"]] == ["third"] and rest["next_cursor"] is None
    assert rest["scheduled"][0]["mentions"] == ["bob"] and rest["scheduled"][0]["group"] == g["gid"]
    clock.ms = base + 3
    got = await carol.inbox.wait_for(on("/in/msg", conv=g["conv"], type="text"), count=3)
    assert [(m.json["cid"], m.json["from"]) for m in got] == [("first", "alice"), ("second", "bob"),
                                                                ("third", "alice")]
    assert [m.json["seq"] for m in got] == sorted(m.json["seq"] for m in got)
    mentioned = (await bob.inbox.wait_for(on("/in/msg", cid="third")))[0].json
    assert mentioned["mentioned"] is True and mentioned["mentions"] == ["bob"]


async def test_a_scheduled_thread_reply_joins_its_thread_at_its_time(crowd: dict[str, Device],
                                                                    clock: ManualClock) -> None:
    alice, bob = crowd["alice"], crowd["bob"]
    root = await alice.send_and_ack("root", "bob", "the root")
    ack = await schedule(alice, "later-reply", clock.ms + 5_000, to="bob", thread=root["id"])
    assert ack["status"] == "scheduled"
    [pending] = (await alice.result("schedule.list"))["scheduled"]
    assert pending["thread"] == root["id"]
    await bob.send({"cid": "now-reply", "to": "alice", "type": "text", "text": "first", "thread": root["id"]})
    assert (await bob.inbox.wait_for(on("/in/ack", cid="now-reply")))[0].json["tseq"] == 1
    clock.ms += 5_000
    got = (await bob.inbox.wait_for(on("/in/msg", cid="later-reply")))[0].json
    assert (got["thread"], got["tseq"]) == (root["id"], 2)


async def test_cancel_and_what_a_hostile_user_tries(crowd: dict[str, Device], clock: ManualClock) -> None:
    alice, laptop, bob, mallory = crowd["alice"], crowd["laptop"], crowd["bob"], crowd["mallory"]
    now = clock.ms
    # When: not in the past, not now, not beyond the horizon, and a number.
    assert error_of(await schedule(alice, "p1", now - 1, to="bob")) == "bad_request"
    assert error_of(await schedule(alice, "p2", now, to="bob")) == "bad_request"
    far = await schedule(alice, "p3", now + 7 * DAY_MS + 1, to="bob")
    assert error_of(far) == "bad_request" and "7 days" in far["error"]["message"]
    assert error_of(await schedule(alice, "p4", str(now + 1000), to="bob")) == "bad_request"  # type: ignore[arg-type]
    assert error_of(await schedule(alice, "p5", 1 << 60, to="bob")) == "bad_request"
    # The send itself is checked now, as a send is.
    assert error_of(await schedule(alice, "p6", now + 1000, to="nobody")) == "not_found"
    assert error_of(await schedule(alice, "p7", now + 1000, to="bob", text="x" * 9000)) == "too_large"
    assert error_of(await schedule(alice, "p8", now + 1000, to="bob", type="image")) == "bad_request"
    g = await bob.result("group.create", {"name": "bobs", "members": ["carol"]})
    assert error_of(await schedule(mallory, "p9", now + 1000, group=g["gid"])) == "forbidden"
    assert error_of(await schedule(alice, "p10", now + 1000, to="bob", mentions=["@all"])) == "bad_request"
    assert (await alice.result("schedule.list"))["scheduled"] == []

    # A cap of pending ones per user.
    acks = [await schedule(alice, f"c{i}", now + 10_000 + i, to="bob") for i in range(CAP)]
    full = await schedule(alice, "c-over", now + 20_000, to="bob")
    assert error_of(full) == "too_large" and "cancel one" in full["error"]["message"]
    # Another user neither lists nor cancels them; an unknown id is the same not_found.
    assert (await mallory.result("schedule.list"))["scheduled"] == []
    assert await rpc_error(mallory, "schedule.cancel", {"id": acks[0]["id"]}) == "not_found"
    assert await rpc_error(mallory, "schedule.cancel", {"id": UNKNOWN}) == "not_found"
    assert (await mallory.rpc("schedule.cancel", {"id": "../../etc"}))["error"]["code"] == -32602
    assert (await mallory.rpc("schedule.list", {"limit": 10_000}))["error"]["code"] == -32602
    assert await rpc_error(alice, "schedule.list", {"cursor": "garbage"}) == "bad_request"
    # Digits int() refuses ("²" is str.isdigit) and a time past SQL's BIGINT: refused, not an internal error.
    for cursor in (f"\u00b2:{acks[0]['id']}", f"{'9' * 30}:{acks[0]['id']}"):
        assert await rpc_error(alice, "schedule.list", {"cursor": cursor}) == "bad_request", cursor

    # The sender cancels: its devices are told; a cancelled one is not sent, and cancelling again is not_found.
    assert await alice.result("schedule.cancel", {"id": acks[0]["id"]}) == \
        {"id": acks[0]["id"], "cid": "c0", "conv": "d:alice:bob", "status": "cancelled"}
    cancelled = (await laptop.inbox.wait_for(on("/in/event", type="scheduled", op="cancel")))[0].json
    assert (cancelled["id"], cancelled["cid"]) == (acks[0]["id"], "c0")
    assert await rpc_error(alice, "schedule.cancel", {"id": acks[0]["id"]}) == "not_found"
    assert [s["cid"] for s in (await alice.result("schedule.list"))["scheduled"]] == ["c1", "c2"]
    assert (await schedule(alice, "c3", now + 30_000, to="bob"))["status"] == "scheduled"  # room again
    clock.ms = now + 30_000
    await bob.inbox.wait_for(on("/in/msg", cid="c3"))  # after c1 and c2, and where c0 would have been
    await alice.inbox.wait_for(on("/in/event", type="scheduled", op="sent", cid="c3"))  # marked sent, all three
    assert [m.json["cid"] for m in bob.inbox.matching(on("/in/msg", type="text"))] == ["c1", "c2", "c3"]
    assert await rpc_error(alice, "schedule.cancel", {"id": acks[1]["id"]}) == "not_found"  # sent: too late
    # The cancelled cid answers its state, and is not scheduled again.
    assert (await schedule(alice, "c0", clock.ms + 1000, to="bob"))["status"] == "cancelled"


async def test_the_rules_of_its_time_apply_and_the_sender_is_told(crowd: dict[str, Device],
                                                                   clock: ManualClock) -> None:
    alice, laptop, bob, carol = crowd["alice"], crowd["laptop"], crowd["bob"], crowd["carol"]
    g = await bob.result("group.create", {"name": "team", "members": ["alice", "carol"]})
    at = clock.ms + 60_000
    left = await schedule(alice, "left", at, group=g["gid"])
    blocked = await schedule(alice, "blocked", at + 1, to="carol")
    await alice.result("group.leave", {"gid": g["gid"]})
    await carol.result("block.add", {"uid": "alice"})
    fine = await schedule(alice, "fine", at + 2, to="bob")
    clock.ms = at + 2
    await bob.inbox.wait_for(on("/in/msg", cid="fine"))
    for device in (alice, laptop):
        failed = await device.inbox.wait_for(on("/in/event", type="scheduled", op="failed"), count=2)
        assert [(f.json["id"], f.json["cid"], f.json["error"]["code"]) for f in failed] == \
            [(left["id"], "left", "forbidden"), (blocked["id"], "blocked", "forbidden")]
        assert failed[1].json["error"]["message"] == "not allowed"  # as a blocked send says it
    assert fine["status"] == "scheduled"
    history = await bob.result("history", {"conv": g["conv"]})
    assert "left" not in [m["cid"] for m in history["messages"]]
    assert carol.inbox.matching(on("/in/msg", cid="blocked")) == []
    assert (await schedule(alice, "left", clock.ms + 1000, group=g["gid"]))["status"] == "failed"


async def test_a_disabled_sender_sends_nothing(app: App, crowd: dict[str, Device], clock: ManualClock) -> None:
    alice, bob = crowd["alice"], crowd["bob"]
    assert app.services is not None
    at = clock.ms + 60_000
    await schedule(alice, "gone", at, to="bob")
    await schedule(bob, "still", at + 1, to="carol")
    await app.services.users.disable_user("alice")
    clock.ms = at + 1
    await crowd["carol"].inbox.wait_for(on("/in/msg", cid="still"))
    assert bob.inbox.matching(on("/in/msg", cid="gone")) == []


async def test_the_new_keys_travel_as_numbers_in_cbor(app: App, users: Users, clock: ManualClock) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice", encoding="cbor")) as alice:
        at = clock.ms + 5_000
        await alice.client.publish("im/alice/out/msg", cbor2.dumps({KEYS["cid"]: "k1", KEYS["to"]: "bob",
                                                                    KEYS["type"]: "text", KEYS["text"]: "hi",
                                                                    KEYS["at"]: at}))
        ack = cbor2.loads((await alice.inbox.wait_for(on("/in/ack", cid="k1")))[0].payload)
        assert (ack[KEYS["status"]], ack[KEYS["at"]]) == ("scheduled", at)
        await alice.client.publish("im/alice/out/rpc", cbor2.dumps({KEYS["jsonrpc"]: "2.0", KEYS["id"]: 1,
                                                                    KEYS["method"]: "schedule.list"}))
        result = cbor2.loads((await alice.inbox.wait_for(on("/in/rpc", id=1)))[0].payload)[KEYS["result"]]
        assert result[KEYS["scheduled"]][0][KEYS["created"]] <= at
        clock.ms = at
        sent = await alice.inbox.wait_for(on("/in/event", type="scheduled", op="sent"))
        assert isinstance(cbor2.loads(sent[0].payload)[KEYS["message_id"]], str)


def test_scheduling_takes_from_the_messages_bucket() -> None:
    """A flood of schedules is a flood of sends: the sender's message rate limits it (and the cap)."""
    from bridge.ratelimit import Rate, RateLimits, Throttle
    from bridge.router import Router, Send, Topics

    router = Router(Topics("im"), max_payload=16384, max_text=8000)
    throttle = Throttle(Topics("im"), ManualClock(0), RateLimits(messages=Rate(1, 2)))
    outcomes = []
    for i in range(3):
        cmd = router.route("im/eve/out/msg", f'{{"cid": "f{i}", "to": "bob", "type": "text", "text": "x", '
                                             f'"at": 99999999999999}}'.encode())
        assert isinstance(cmd, Send) and cmd.at == 99999999999999
        outcomes.append(throttle.check("eve", cmd))
    assert [type(o).__name__ for o in outcomes] == ["Send", "Send", "Reply"]


# ---- kill -9 ------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _run_server(tmp_path: Path, database_url: str, port: int) -> asyncio.subprocess.Process:
    """``imgate run`` as a process on ``port``, once it serves."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGATE_")}
    env.update({"IMGATE_DATABASE__URL": database_url, "IMGATE_MQTT__PORT": str(port), "IMGATE_MQTT__WS_PORT": "off",
                "IMGATE_WEB__ENABLED": "false", "IMGATE_WORKERS__MODE": "inline",
                "IMGATE_PREVIEWS__ENABLED": "false", "IMGATE_LIMITS__SCHEDULE_POLL_S": "0.1"})
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "imgate", "--data-dir", str(tmp_path), "run",
                                                env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    assert proc.stdout is not None
    seen = []
    async with asyncio.timeout(60):
        while line := (await proc.stdout.readline()).decode():
            seen.append(line)
            if line.startswith("imgate: MQTT on"):
                return proc
    raise AssertionError("imgate run did not start:\n" + "".join(seen[-30:]))


async def test_a_scheduled_send_survives_kill_9_and_is_delivered_once(tmp_path: Path, database_url: str) -> None:
    settings = load_settings(None, {"data_dir": tmp_path, "database": {"url": database_url}})
    async with open_database(settings):
        svc = build_services(SystemClock())
        for uid in ("alice", "bob"):
            await svc.users.add_user(uid)
        tokens = {uid: (await svc.users.issue_token(uid, "phone")).token for uid in ("alice", "bob")}
    port = _free_port()
    server = await _run_server(tmp_path, database_url, port)
    try:
        async with connect(port, "alice", "phone", tokens["alice"], clean_session=False) as alice:
            ack = await schedule(alice, "k9", int(time.time() * 1000) + 2_000, to="bob")
            assert ack["status"] == "scheduled"
        os.killpg(server.pid, signal.SIGKILL)  # no goodbye: acked means stored
        await server.wait()
        server = await _run_server(tmp_path, database_url, port)
        async with connect(port, "bob", "phone", tokens["bob"]) as bob, \
                connect(port, "alice", "phone", tokens["alice"], clean_session=False) as alice:
            # The killed process's lease on the delivery runs out first (App.leased): up to 15 s.
            got = (await bob.inbox.wait_for(on("/in/msg", cid="k9"), timeout=40))[0].json
            assert (got["from"], got["text"], got["seq"]) == ("alice", "later k9", 1)
            await alice.inbox.wait_for(on("/in/event", type="scheduled", op="sent"), timeout=10)
            history = await bob.result("history", {"conv": "d:alice:bob"})
            assert [m["cid"] for m in history["messages"]] == ["k9"]
            assert len(bob.inbox.matching(on("/in/msg", cid="k9"))) == 1
    finally:
        if server.returncode is None:
            os.killpg(server.pid, signal.SIGTERM)
            async with asyncio.timeout(30):
                await server.wait()
