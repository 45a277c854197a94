"""The after callbacks (docs/callbacks.md, "After (the outbox)"): real MQTT clients send, the real
server writes each event in the change's own transaction and its sender POSTs it, signed, to a
real HTTP receiver on a free port: in order per conversation, again with the same event id after
a failure, past a black hole, and across a restart."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from config.settings import Settings
from imgate.app import App
from imgate.http import EmbeddedHttpServer
from services.callbacks.models import CallbackOutboxRow
from services.callbacks.signing import EVENT_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER, verify
from tests.conftest import ADMIN_SECRET, Users
from tests.helpers import WAIT, connect, on, tweak

SECRET = "callback-secret-0123456789"


@dataclass
class Receiver:
    """An endpoint that checks each POST's signature and headers, answers 500 to the first
    ``fail`` of them, and keeps what it took (2xx) and every attempt (event ids)."""

    url: str = ""
    fail: int = 0
    refuse: set[str] = field(default_factory=set)  # conversations whose events are answered 500
    attempts: list[str] = field(default_factory=list)  # event ids, in the order they came
    tried: list[dict[str, Any]] = field(default_factory=list)  # every event POSTed, taken or not
    taken: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def hook(self, request: Request) -> JSONResponse:
        body = await request.body()
        assert verify(SECRET, body, request.headers[SIGNATURE_HEADER], int(time.time()))
        event = json.loads(body)
        assert request.headers[EVENT_ID_HEADER] == event["id"]
        assert request.headers[EVENT_HEADER] == event["event"]
        self.attempts.append(event["id"])
        self.tried.append(event)
        self.changed.set()
        if self.fail > 0 or event["conv"] in self.refuse:
            self.fail -= 1
            return JSONResponse({"error": "not now"}, status_code=500)
        self.taken.append(event)
        return JSONResponse({})

    async def until(self, count: int, event: str | None = None, wait: float = WAIT) -> list[dict[str, Any]]:
        """The events taken (of kind ``event``), once there are ``count`` of them."""
        async with asyncio.timeout(wait):
            while len(got := [e for e in self.taken if event is None or e["event"] == event]) < count:
                self.changed.clear()
                await self.changed.wait()
        return got


@asynccontextmanager
async def receiver(fail: int = 0) -> AsyncIterator[Receiver]:
    r = Receiver(fail=fail)
    async with EmbeddedHttpServer(Starlette(routes=[Route("/hook", r.hook, methods=["POST"])]), "127.0.0.1", 0) as http:
        r.url = f"http://127.0.0.1:{http.port}/hook"
        yield r


@dataclass
class BlackHole:
    """A TCP listener that takes connections and never answers."""

    url: str = ""
    held: list[asyncio.StreamWriter] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def holding(self, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.held) < count:
                self.changed.clear()
                await self.changed.wait()


@asynccontextmanager
async def black_hole() -> AsyncIterator[BlackHole]:
    hole = BlackHole()

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hole.held.append(writer)
        hole.changed.set()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    hole.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    try:
        yield hole
    finally:
        for w in hole.held:
            w.close()
        server.close()


def endpoint(name: str, url: str, events: list[str], timeout_s: float = 5.0) -> dict[str, Any]:
    return {"name": name, "url": url, "secret": SECRET, "events": events, "timeout_s": timeout_s}


def with_callbacks(settings: Settings, *endpoints: dict[str, Any]) -> Settings:
    """``settings`` with these endpoints, the receivers' host allowed (127.0.0.1, plain http), and
    short back-offs (a test waits for retries)."""
    callbacks = settings.callbacks.model_validate({
        "endpoints": list(endpoints), "allow": ["127.0.0.1"], "allow_http": True,
        "outbox": {"poll_s": 0.05, "retry_base_ms": 20, "retry_max_ms": 200}})
    return settings.model_copy(update={"callbacks": callbacks})


ALL = ["after_send", "after_edit", "after_recall", "membership", "user"]


@pytest.fixture
def admin_secret() -> str | None:
    return ADMIN_SECRET


async def test_after_send_arrives_signed_with_the_message(settings: Settings) -> None:
    async with receiver() as hook, App(with_callbacks(settings, endpoint("crm", hook.url, ALL))) as app:
        users = Users(app.services)  # type: ignore[arg-type]
        await users.add("alice", "bob")
        async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
            ack = await alice.send_and_ack("c1", "bob", "hello there")
            [event] = await hook.until(1, "after_send")
            assert event["conv"] == "d:alice:bob" and event["event"] == "after_send"
            data = event["data"]
            assert (data["id"], data["seq"], data["conv"], data["sender"], data["text"], data["cid"]) == \
                (ack["id"], ack["seq"], "d:alice:bob", "alice", "hello there", "c1")
            await alice.result("edit", {"id": ack["id"], "text": "hello, edited"})
            [edit] = await hook.until(1, "after_edit")
            assert (edit["data"]["id"], edit["data"]["text"]) == (ack["id"], "hello, edited")
            await alice.result("recall", {"id": ack["id"]})
            [recall] = await hook.until(1, "after_recall")
            assert (recall["data"]["id"], recall["data"]["by"]) == (ack["id"], "alice")
            # One conversation's events in the order they happened, each with its own id.
            convs = [e for e in hook.taken if e["conv"] == "d:alice:bob"]
            assert [e["event"] for e in convs] == ["after_send", "after_edit", "after_recall"]
            assert len({e["id"] for e in hook.taken}) == len(hook.taken)
        # alice's and bob's user events, and the three above (counted once deleted from the outbox)
        assert await metric(app, "callbacks_delivered_total", 5) == 5
        assert (await app.metrics())["callbacks_pending"] == 0


async def test_order_per_conversation_holds_across_many_sends(settings: Settings) -> None:
    async with receiver() as hook, App(with_callbacks(settings, endpoint("crm", hook.url, ["after_send"]))) as app:
        users = Users(app.services)  # type: ignore[arg-type]
        await users.add("alice", "bob", "carol", "dave")
        async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
            n = 25
            for i in range(n):  # without waiting for acks: they are stored in batches
                for to in ("bob", "carol", "dave"):
                    await alice.send({"cid": f"{to}{i}", "to": to, "type": "text", "text": f"{to} {i}"})
            await alice.inbox.wait_for(on("/in/ack"), count=3 * n)
            events = await hook.until(3 * n)
        for to in ("bob", "carol", "dave"):
            mine = [e["data"] for e in events if e["data"]["conv"] == f"d:alice:{to}"]
            assert [d["seq"] for d in mine] == list(range(1, n + 1))
            assert [d["text"] for d in mine] == [f"{to} {i}" for i in range(n)]


async def test_a_failing_receiver_gets_the_same_event_again_still_in_order(settings: Settings) -> None:
    async with receiver(fail=3) as hook, \
            App(with_callbacks(settings, endpoint("crm", hook.url, ["after_send"]))) as app:
        users = Users(app.services)  # type: ignore[arg-type]
        await users.add("alice", "bob")
        async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
            acks = [await alice.send_and_ack(f"c{i}", "bob", f"m{i}") for i in range(5)]
            events = await hook.until(5)
        assert [e["data"]["id"] for e in events] == [a["id"] for a in acks]  # in order, each once
        # The three refused attempts were all of the first event (its stream waited for it), and
        # it came again with the same event id.
        assert hook.attempts[:4] == [events[0]["id"]] * 4
        assert (await app.metrics())["callbacks_retries_total"] == 3


async def test_a_failing_conversation_holds_up_only_its_own_events(settings: Settings) -> None:
    async with receiver() as hook, \
            App(with_callbacks(settings, endpoint("crm", hook.url, ["after_send"]))) as app:
        users = Users(app.services)  # type: ignore[arg-type]
        await users.add("alice", "bob", "carol")
        hook.refuse.add("d:alice:bob")
        async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
            to_bob = [await alice.send_and_ack(f"b{i}", "bob", f"b{i}") for i in range(2)]
            to_carol = [await alice.send_and_ack(f"c{i}", "carol", f"c{i}") for i in range(3)]
            taken = await hook.until(3)  # carol's, while bob's first is refused again and again
            assert [e["data"]["id"] for e in taken] == [a["id"] for a in to_carol]
            # Of bob's, only the first was tried (maybe several times): the second waits behind it.
            assert {e["data"]["id"] for e in hook.tried if e["conv"] == "d:alice:bob"} <= {to_bob[0]["id"]}
            hook.refuse.clear()
            taken = await hook.until(5)
        assert [e["data"]["id"] for e in taken[3:]] == [a["id"] for a in to_bob]


async def test_a_black_hole_beside_a_healthy_endpoint(settings: Settings) -> None:
    """An endpoint that takes connections and never answers holds at most its own concurrency's
    worth of POSTs; the healthy endpoint gets every event meanwhile."""
    async with receiver() as hook, black_hole() as hole:
        s = with_callbacks(settings, endpoint("hole", hole.url, ["after_send"], timeout_s=30),
                           endpoint("good", hook.url, ["after_send"]))
        async with App(s) as app:
            users = Users(app.services)  # type: ignore[arg-type]
            uids = [f"u{i}" for i in range(8)]
            await users.add("alice", *uids)
            async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
                acks = [await alice.send_and_ack(f"c{u}{i}", u, f"hi {u}") for i in range(2) for u in uids]
                await hole.holding(s.callbacks.outbox.concurrency)  # the hole has all its POSTs hanging
                events = await hook.until(len(acks))
                assert sorted(e["data"]["id"] for e in events) == sorted(a["id"] for a in acks)
                # The hole answered nothing: its events all wait, no more of its POSTs started.
                assert await CallbackOutboxRow.filter(endpoint="hole").count() == len(acks)
                assert len(hole.held) == s.callbacks.outbox.concurrency


async def test_membership_and_user_events(settings: Settings) -> None:
    async with receiver() as hook, App(with_callbacks(settings, endpoint("crm", hook.url, ["membership", "user"]))) \
            as app, httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.admin.port}",  # type: ignore[union-attr]
                                      headers={"Authorization": f"Bearer {ADMIN_SECRET}"}) as api:
        for uid in ("alice", "bob", "carol"):
            assert (await api.post("/v1/users", json={"uid": uid, "name": uid.title()})).status_code == 201
        token = (await api.post("/v1/users/alice/tokens", json={"device": "phone"})).json()["token"]
        assert (await api.post("/v1/users/carol/disable")).status_code == 200
        assert (await api.post("/v1/users/carol/enable")).status_code == 200
        assert (await api.post("/v1/users/bob/tokens/revoke", json={})).status_code == 200
        async with connect(app.mqtt_port, "alice", "phone", token) as alice:
            group = await alice.result("group.create", {"name": "trio", "members": ["bob"]})
            await alice.result("group.add", {"gid": group["gid"], "members": ["carol"]})
            await alice.result("group.role", {"gid": group["gid"], "uid": "bob", "role": "admin"})
            await alice.result("group.remove", {"gid": group["gid"], "members": ["carol"]})
            membership = await hook.until(4, "membership")
        user = await hook.until(6, "user")
        per_user = {u: [e["data"]["event"] for e in user if e["data"]["uid"] == u] for u in ("alice", "bob", "carol")}
        assert per_user == {"alice": ["created"], "bob": ["created", "tokens_revoked"],  # in order per user
                            "carol": ["created", "disabled", "enabled"]}
        assert all(e["conv"] is None for e in user)
        assert [e["data"]["event"] for e in membership] == ["created", "added", "role", "removed"]
        assert {e["conv"] for e in membership} == {group["conv"]}
        assert membership[0]["data"]["added"] == ["alice", "bob"] and membership[0]["data"]["by"] == "alice"
        assert (membership[2]["data"]["target"], membership[2]["data"]["role"]) == ("bob", "admin")
        assert membership[3]["data"]["removed"] == ["carol"]


async def test_a_bots_api_send_is_an_after_send_event_that_says_bot(settings: Settings) -> None:
    """A bot's send through the admin API is stored by the same path as a device's: its
    after_send event is written with it, and says its sender is a bot (as its deliveries do)."""
    async with receiver() as hook, App(with_callbacks(settings, endpoint("crm", hook.url, ["after_send"]))) \
            as app, httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.admin.port}",  # type: ignore[union-attr]
                                      headers={"Authorization": f"Bearer {ADMIN_SECRET}"}) as api:
        users = Users(app.services)  # type: ignore[arg-type]
        await users.add("bob")
        assert (await api.post("/v1/bots", json={"uid": "helper"})).status_code == 201
        sent = await api.post("/v1/bots/helper/messages", json={"cid": "h1", "to": "bob", "text": "beep"})
        assert sent.status_code == 201, sent.text
        async with connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
            await bob.send_and_ack("b1", "helper", "boop")
        first, second = await hook.until(2, "after_send")
        assert (first["data"]["sender"], first["data"]["bot"], first["data"]["id"]) == ("helper", True, sent.json()["id"])
        assert (second["data"]["sender"], second["data"]["bot"]) == ("bob", False)


async def test_nothing_is_written_for_events_no_endpoint_takes(settings: Settings) -> None:
    """The send path's cost without callbacks: no outbox row (and with only ``user`` taken, a
    send writes none either)."""
    async with black_hole() as hole:  # (it never answers: what is written stays to be seen)
        quiet = with_callbacks(settings, endpoint("crm", hole.url, ["user"], timeout_s=30))
        for n, s in enumerate((settings, quiet)):
            async with App(s) as app:
                users = Users(app.services)  # type: ignore[arg-type]
                a, b = f"alice{n}", f"bob{n}"
                await users.add(a, b)
                async with connect(app.mqtt_port, a, "phone", await users.token(a)) as alice:
                    await alice.send_and_ack("c1", b, "quiet")
                rows = await CallbackOutboxRow.all().values_list("event", flat=True)
                assert rows == ([] if s is settings else ["user", "user"])
                assert (app.callbacks is None) == (s is settings)


async def test_events_written_while_the_endpoint_was_down_arrive_after_a_restart(settings: Settings) -> None:
    """Durable: events stored while nothing takes them stay in the outbox through a stop of the
    server and are delivered, in order, by the next one."""
    async with black_hole() as hole:
        down = with_callbacks(settings, endpoint("crm", hole.url, ["after_send"], timeout_s=0.2))
        async with App(down, holder="restarted") as app:  # (a restart of the same process keeps its leases)
            users = Users(app.services)  # type: ignore[arg-type]
            await users.add("alice", "bob")
            async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
                acks = [await alice.send_and_ack(f"c{i}", "bob", f"m{i}") for i in range(4)]
            assert (await app.metrics())["callbacks_pending"] == 4
    async with receiver() as hook, App(with_callbacks(settings, endpoint("crm", hook.url, ["after_send"])),
                                       holder="restarted"):
        events = await hook.until(4)
    assert [e["data"]["id"] for e in events] == [a["id"] for a in acks]


async def test_a_worker_killed_between_commit_and_delivery_loses_nothing(settings: Settings) -> None:
    """kill -9 of the worker process (workers.mode = "process") while events are committed and
    not yet taken, and more sent while no worker runs: the restarted worker delivers them all, in
    order (a receiver de-duplicating on the event id sees each once)."""
    async with receiver(fail=1 << 30) as hook:
        s = tweak(with_callbacks(settings, endpoint("crm", hook.url, ["after_send"])), "workers", mode="process")
        async with App(s) as app:
            assert app.worker is not None and app.callbacks is None  # (sent by the worker process)
            users = Users(app.services)  # type: ignore[arg-type]
            await users.add("alice", "bob")
            async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
                acks = [await alice.send_and_ack(f"c{i}", "bob", f"m{i}") for i in range(3)]
                async with asyncio.timeout(30):  # the worker process is up and trying (and refused)
                    while not hook.attempts:
                        hook.changed.clear()
                        await hook.changed.wait()
                first = app.worker.pid
                assert first is not None
                os.kill(first, signal.SIGKILL)
                acks += [await alice.send_and_ack(f"d{i}", "bob", f"n{i}") for i in range(2)]
                hook.fail = 0
                await hook.until(5, wait=30)  # a restart waits its back-off, then starts Python
            seen = list({e["id"]: e["data"]["id"] for e in hook.taken}.values())
            assert seen == [a["id"] for a in acks]
            assert app.worker.stats.started == 2 and app.worker.pid != first


async def metric(app: App, name: str, at_least: float) -> float:
    """``name`` from the app's /metrics snapshot once it reaches ``at_least`` (asked until then, bounded)."""
    async with asyncio.timeout(WAIT):
        while (value := (await app.metrics()).get(name, 0)) < at_least:
            pass
    return value


def bounded(settings: Settings, **outbox: int) -> Settings:
    return settings.model_copy(update={"callbacks": settings.callbacks.model_copy(update={
        "outbox": settings.callbacks.outbox.model_copy(update=outbox)})})


async def test_an_event_is_given_up_after_max_attempts(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """An event refused ``max_attempts`` times is given up (a metric and a log line) and its
    conversation goes on with the next."""
    async with receiver(fail=1 << 30) as hook:
        async with App(bounded(with_callbacks(settings, endpoint("crm", hook.url, ["after_send"])),
                               max_attempts=2)) as app:
            users = Users(app.services)  # type: ignore[arg-type]
            await users.add("alice", "bob")
            async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
                acks = [await alice.send_and_ack(f"c{i}", "bob", f"m{i}") for i in range(2)]
            async with asyncio.timeout(WAIT):  # the two events, each tried twice, in order
                while len(hook.tried) < 4:
                    hook.changed.clear()
                    await hook.changed.wait()
            assert [e["data"]["id"] for e in hook.tried] == [acks[0]["id"]] * 2 + [acks[1]["id"]] * 2
            assert await metric(app, "callbacks_failed_total", 2) == 2
            assert await CallbackOutboxRow.all().count() == 0
    assert "callbacks: gave up event" in caplog.text


async def test_an_endpoint_keeps_at_most_max_pending_events(settings: Settings,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """A dead endpoint's outbox keeps its newest ``max_pending`` events: the oldest are dropped
    (a metric and a log line), so it cannot fill the database."""
    async with black_hole() as hole:
        async with App(bounded(with_callbacks(settings, endpoint("hole", hole.url, ["after_send"], timeout_s=30)),
                               max_pending=10)) as app:
            users = Users(app.services)  # type: ignore[arg-type]
            await users.add("alice", "bob")
            async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
                acks = [await alice.send_and_ack(f"c{i}", "bob", f"m{i}") for i in range(14)]
            assert await metric(app, "callbacks_dropped_total", 4) == 4
            kept = await CallbackOutboxRow.all().order_by("id").values_list("body", flat=True)
            assert [json.loads(b)["data"]["id"] for b in kept] == [a["id"] for a in acks[4:]]
    assert "has more than 10 events waiting" in caplog.text


async def test_user_events_of_the_command_line_are_delivered_too(settings: Settings, tmp_path: Any) -> None:
    """``imgate user add`` / ``disable`` (another process, the same database): their events go to
    the outbox in their transactions, and the server's sender delivers them."""
    import subprocess
    import sys

    async with receiver() as hook, App(with_callbacks(settings, endpoint("crm", hook.url, ["user"]))):
        env = {**os.environ, "IMGATE_DATABASE__URL": settings.database_url(),
               "IMGATE_CALLBACKS__ENDPOINTS": json.dumps([endpoint("crm", hook.url, ["user"])])}
        for args in (("add", "carl"), ("disable", "carl")):
            done = await asyncio.to_thread(subprocess.run, [
                sys.executable, "-m", "imgate", "--data-dir", str(tmp_path), "user", *args],
                env=env, capture_output=True, text=True, timeout=60, check=False)
            assert done.returncode == 0, done.stderr
        events = await hook.until(2)
    assert [(e["data"]["uid"], e["data"]["event"]) for e in events] == [("carl", "created"), ("carl", "disabled")]
