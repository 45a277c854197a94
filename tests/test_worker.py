"""The background work in its own process (workers.mode = "process", ``imgate run``'s default):
push and search indexing happen in ``imgate worker``, a child of the server, supervised and
stopped with it."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest

from config.settings import Settings
from imgate.app import App
from tests.conftest import Users
from tests.helpers import Device, connect, tweak, webhook_receiver

SECRET = "push-webhook-secret-123"
WAIT = 30  # seconds: a worker process starts (imports) in ~1-2 s, a restart waits its back-off


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[str, asyncio.Queue[Any]]]:
    async with webhook_receiver(SECRET) as receiver:
        yield receiver


def process_mode(settings: Settings) -> Settings:
    s = tweak(tweak(settings, "workers", mode="process"), "search", interval_s=0.05)
    return tweak(s, "push", webhook_secret=SECRET, interval_s=0.05, webhook_allow=["127.0.0.1"],
                 webhook_allow_http=True)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[App]:
    async with App(process_mode(settings)) as running:
        yield running


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def found(dev: Device, q: str) -> list[str]:
    """Ask until the worker has indexed something that matches (bounded)."""
    async with asyncio.timeout(WAIT):
        while not (texts := [m["text"] for m in (await dev.result("search", {"q": q}))["messages"]]):
            pass
    return texts


async def test_the_worker_process_indexes_pushes_and_stops_with_the_server(
        settings: Settings, webhook: tuple[str, asyncio.Queue[dict[str, object]]]) -> None:
    url, pushes = webhook
    async with App(process_mode(settings)) as app:  # not the fixture: the test stops it
        assert app.worker is not None and app.services is not None
        assert not app.tasks.running("imgate.search.indexer") and not app.tasks.running("imgate.push.worker")
        users = Users(app.services)
        await users.add("alice", "bob")
        async with connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
            assert (await bob.result("push.register", {"platform": "webhook", "token": url}))["registered"]
        async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
            async with asyncio.timeout(WAIT):  # bob's phone is recorded offline: he gets pushes
                while (await alice.result("presence", {"uids": ["bob"]}))["presence"]["bob"]["online"]:
                    pass
            ack = await alice.send_and_ack("w1", "bob", "indexed elsewhere")
            assert await found(alice, "elsewhere") == ["indexed elsewhere"]
            assert await asyncio.wait_for(pushes.get(), WAIT) == {"conv": "d:alice:bob", "seq": ack["seq"]}
        async with asyncio.timeout(WAIT):  # the worker's counters reach the server's /metrics
            while (m := await app.metrics()).get("push_sent_total", 0) < 1 or m["search_indexed_total"] < 1:
                await app.worker.next_report()
        pid = app.worker.pid
        assert pid is not None and alive(pid)
    # Stopped with the server: closing its stdin ends it (reaped by the server, so gone).
    assert not alive(pid)


async def test_a_killed_worker_is_started_again_and_catches_up(app: App, users: Users) -> None:
    assert app.worker is not None
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        await alice.send_and_ack("k1", "bob", "before the crash")
        assert await found(alice, "crash") == ["before the crash"]
        first = app.worker.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        # Stored while no worker runs: the queue keeps it for the next one.
        await alice.send_and_ack("k2", "bob", "while restarting")
        assert await found(alice, "restarting") == ["while restarting"]
        assert app.worker.stats.started == 2 and app.worker.pid != first
        assert app.tasks.restarts == {"imgate.worker": 1}
        assert not app.tasks.failed.is_set()  # a worker's crash never stops the server
