"""Leases on the message-event queue's consumers: of N worker processes one follows each
consumer (push fan-out, search indexing) and another takes over when it stops renewing; on the
real database, both dialects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from config.settings import Settings
from imgate.app import App
from services.db import Database
from services.events.queue import EventQueue
from tests.helpers import ManualClock

TTL = 15_000


@pytest.fixture
async def queue(database_url: str) -> AsyncIterator[EventQueue]:
    async with Database(database_url):
        yield EventQueue()


async def test_one_holder_at_a_time_and_a_take_over_after_the_lease(queue: EventQueue) -> None:
    assert await queue.lease("push", "a", 1_000, TTL)
    assert not await queue.lease("push", "b", 2_000, TTL)  # a holds it
    assert await queue.lease("search", "b", 2_000, TTL)  # consumers are leased apart
    assert await queue.lease("push", "a", 10_000, TTL)  # a renews: until 25,000
    assert not await queue.lease("push", "b", 24_999, TTL)
    assert await queue.lease("push", "b", 25_001, TTL)  # a stopped renewing: b takes over
    assert not await queue.lease("push", "a", 25_002, TTL)


async def test_of_many_first_takers_at_once_one_wins(queue: EventQueue) -> None:
    won = await asyncio.gather(*(queue.lease("push", f"w{i}", 1_000, TTL) for i in range(8)))
    assert won.count(True) == 1


async def test_an_apps_consumer_pass_runs_only_while_it_holds_the_lease(settings: Settings) -> None:
    clock = ManualClock(1_000_000)
    async with App(settings, clock=clock) as app:
        passes = 0

        async def step() -> int:
            nonlocal passes
            passes += 1
            return 0

        guarded = app.leased("probe", step)
        events = app.services.events
        assert await events.lease("probe", "another process", clock.now_ms(), TTL)
        assert await guarded() == 0 and passes == 0  # stands by
        clock.ms += TTL + 1  # the other stopped renewing
        await guarded()
        assert passes == 1
        assert not await events.lease("probe", "another process", clock.now_ms(), TTL)
        clock.ms += 6_000  # a third of the lease gone: the next pass renews it
        await guarded()
        clock.ms += 10_000  # past the first lease's end, inside the renewed one
        assert not await events.lease("probe", "another process", clock.now_ms(), TTL)
        assert passes == 2


async def test_bridges_membership_lists_the_live_ones_and_forgets_the_silent(queue: EventQueue) -> None:
    """How cluster-mode bridges share the sender shards: each says it is alive; a long holder
    name (hostname:pid:…) still fits the table's 64-character key."""
    long = "a-rather-long-host-name.example.internal:123456:deadbeef" * 2
    assert await queue.members("bridges", "b1", 1_000, 900) == ["b1"]
    assert await queue.members("bridges", long, 1_100, 900) == sorted(["b1", long])
    assert await queue.members("other", "x", 1_100, 900) == ["x"]  # groups apart
    assert await queue.members("bridges", long, 1_950, 900) == [long]  # b1 said nothing since 1,000
    await queue.members("bridges", "b1", 2_000, 900)  # b1 is back
    await queue.leave("bridges", long)
    assert await queue.members("bridges", "b1", 2_100, 900) == ["b1"]
