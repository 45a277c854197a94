"""Scheduled sends' delivery on the real database, without MQTT (services/messages/scheduled.py):
two passes at once (a lease handed over while its old holder still runs) store, deliver and tell
each schedule once; a pass that dies after storing, before marking, leaves the next pass to mark
and tell without delivering again."""

from __future__ import annotations

import asyncio
import time

import pytest

from imgate.app import build_services
from services.db import Database
from services.messages.models import Message, ScheduledSend
from services.messages.service import SendCommand, SendResult
from tests.helpers import ManualClock

N = 20


def text(cid: str) -> SendCommand:
    return SendCommand(sender="alice", cid=cid, to="bob", group=None, type="text", text=cid, data=None)


async def test_two_passes_at_once_store_deliver_and_tell_each_once(database_url: str) -> None:
    clock = ManualClock(int(time.time() * 1000))
    async with Database(database_url):
        one, other = build_services(clock), build_services(clock)  # two processes' services
        for uid in ("alice", "bob"):
            await one.users.add_user(uid)
        cids = [f"s{i:02}" for i in range(N)]
        for cid in cids:
            await one.scheduled.schedule(text(cid), clock.ms + 1_000)
        clock.ms += 1_000
        delivered: list[list[SendResult]] = [[], []]

        async def deliver_one(results: list[SendResult]) -> None:
            delivered[0].extend(results)

        async def deliver_other(results: list[SendResult]) -> None:
            delivered[1].extend(results)

        told = await asyncio.gather(one.scheduled.deliver_due(deliver_one), other.scheduled.deliver_due(deliver_other))
        assert sorted(r.message.cid for r in delivered[0] + delivered[1]) == cids  # each delivered once
        assert sorted(o.schedule.cid for o in told[0] + told[1]) == cids  # each sender told once
        rows = await Message.filter(sender="alice").order_by("seq").values_list("cid", "seq")
        assert sorted(c for c, _ in rows) == cids and [s for _, s in rows] == list(range(1, N + 1))
        assert await ScheduledSend.filter(state="sent").count() == N
        assert await one.scheduled.deliver_due(deliver_one) == []  # nothing left


async def test_a_pass_that_dies_after_storing_is_finished_by_the_next(database_url: str) -> None:
    clock = ManualClock(int(time.time() * 1000))
    async with Database(database_url):
        svc = build_services(clock)
        for uid in ("alice", "bob"):
            await svc.users.add_user(uid)
        for i in range(3):
            await svc.scheduled.schedule(text(f"d{i}"), clock.ms + 1_000)
        clock.ms += 1_000

        async def lost(results: list[SendResult]) -> None:
            raise ConnectionError("the broker went away")

        with pytest.raises(ConnectionError):
            await svc.scheduled.deliver_due(lost)
        assert await Message.filter(sender="alice").count() == 3  # stored: recipients sync it
        assert await ScheduledSend.filter(state="sending").count() == 3  # not marked: not told
        again: list[SendResult] = []

        async def deliver(results: list[SendResult]) -> None:
            again.extend(results)

        outcomes = await svc.scheduled.deliver_due(deliver)
        assert again == []  # retries of stored messages: not delivered twice
        assert sorted(o.schedule.cid for o in outcomes) == ["d0", "d1", "d2"]
        stored = dict(await Message.filter(sender="alice").values_list("cid", "id"))
        assert {o.schedule.cid: o.message.id for o in outcomes if o.message is not None} == stored  # the stored ones
        assert await Message.filter(sender="alice").count() == 3


async def test_the_cap_holds_when_one_user_schedules_many_at_once(database_url: str) -> None:
    from services.errors import TooLarge

    clock = ManualClock(int(time.time() * 1000))
    async with Database(database_url):
        one, other = build_services(clock, max_scheduled=3), build_services(clock, max_scheduled=3)
        for uid in ("alice", "bob"):
            await one.users.add_user(uid)
        tries = [(one if i % 2 else other).scheduled.schedule(text(f"f{i}"), clock.ms + 60_000) for i in range(12)]
        outcomes = await asyncio.gather(*tries, return_exceptions=True)
        assert sum(isinstance(o, tuple) for o in outcomes) == 3
        assert all(isinstance(o, TooLarge) for o in outcomes if not isinstance(o, tuple)), outcomes
        assert await ScheduledSend.filter(sender="alice").count() == 3
