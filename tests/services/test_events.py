"""The message-event queue: each consumer at its own offset; trimmed behind the slowest."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.db import Database
from services.events.models import MessageEvent
from services.events.queue import EventQueue
from services.transactions import transaction


@pytest.fixture
async def queue(database_url: str) -> AsyncIterator[EventQueue]:
    async with Database(database_url):
        events = EventQueue(("push", "search"), trim_every=3, trim_after_s=3600)
        async with transaction() as conn:
            await events.publish(conn, [f"m{i}" for i in range(5)], now=1)
        yield events


async def test_each_consumer_reads_from_its_own_offset(queue: EventQueue) -> None:
    first = await queue.read("push", 2)
    assert [e.message_id for e in first] == ["m0", "m1"]
    await queue.done("push", first[-1].id)
    assert [e.message_id for e in await queue.read("push", 10)] == ["m2", "m3", "m4"]
    assert [e.message_id for e in await queue.read("search", 10)] == ["m0", "m1", "m2", "m3", "m4"]
    assert (await queue.pending("push"), await queue.pending("search")) == (3, 5)


async def test_events_are_trimmed_behind_the_slowest_consumer_every_few_passes(queue: EventQueue) -> None:
    ids = [e.id for e in await queue.read("search", 10)]
    await queue.done("push", ids[3])
    await queue.done("search", ids[1])
    assert await MessageEvent.all().count() == 5  # two passes: not trimmed yet (trim_every=3)
    await queue.done("push", ids[4])  # the third: trims what both passed
    assert [e.message_id for e in await queue.read("search", 10)] == ["m2", "m3", "m4"]
    assert await MessageEvent.all().count() == 3
    assert await queue.trim() == 0  # nothing more both have passed


async def test_nothing_is_trimmed_before_every_consumer_has_run(queue: EventQueue) -> None:
    ids = [e.id for e in await queue.read("push", 10)]
    await queue.done("push", ids[-1])
    assert await queue.trim() == 0 and await MessageEvent.all().count() == 5
