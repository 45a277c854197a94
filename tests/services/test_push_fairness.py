"""Push fairness (issue 10, hole 4): sends run concurrently in a bounded pool, each cut at the
timeout, at most ``per_host_concurrency`` to one webhook host; a job whose host is at its cap is
deferred (no attempt counted) and started as soon as the host has a free slot; a job being sent
is leased, so no other pass or process sends it too; shutting down cancels the sends in flight.
Webhook receivers are local servers; their names come from a fake DNS and are allowed as an
intranet network."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from imgate.app import Services, build_push, build_services
from services.db import Database
from services.messages.service import SendCommand
from services.push.models import PushJob
from services.push.providers import WebhookProvider
from services.push.service import PushService
from services.push.webhooks import WebhookClient, WebhookPolicy
from tests.fakes.webhook import BlackHole, FakeDns, HookServer
from tests.helpers import ManualClock

SECRET = "webhook-secret-for-fairness-tests"
CIDS = itertools.count()


@dataclass
class Rig:
    svc: Services
    clock: ManualClock
    dns: FakeDns
    policy: WebhookPolicy
    client: WebhookClient

    def push(self, **kw: Any) -> PushService:
        return build_push(self.svc, self.clock, {"webhook": WebhookProvider(self.client, SECRET)},
                          webhooks=self.policy, rng=random.Random(1), **kw)


@pytest.fixture
async def rig(database_url: str) -> AsyncIterator[Rig]:
    clock = ManualClock(1_800_000_000_000)
    dns = FakeDns()
    policy = WebhookPolicy(allow_http=True, allow=["127.0.0.0/8"], resolver=dns)
    async with Database(database_url), WebhookClient(policy) as client:
        svc = build_services(clock)
        for uid in ("alice", "bob", "carol"):
            await svc.users.add_user(uid)
        yield Rig(svc, clock, dns, policy, client)


@asynccontextmanager
async def sending(push: PushService) -> AsyncIterator[None]:
    """The push sender running (as the composition root runs it), polling only every 600 s."""
    async with asyncio.TaskGroup() as tg:
        sender = tg.create_task(push.run(poll_s=600), name="imgate.push.sender")
        yield
        sender.cancel()


async def message(rig: Rig, to: str) -> None:
    await rig.svc.messages.send(SendCommand("alice", f"m{next(CIDS)}", to, None, "text", "hi", None))


async def test_a_host_at_its_cap_waits_without_costing_an_attempt_and_resumes_at_once(rig: Rig) -> None:
    rig.dns.table.update({"busy.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]})
    release = asyncio.Event()
    async with HookServer(hold=release, secret=SECRET) as busy, HookServer(secret=SECRET) as other, \
            rig.push(per_host_concurrency=2) as push:
        for i in range(5):
            await push.register("bob", "webhook", f"http://busy.example:{busy.port}/{i}")
        await push.register("carol", "webhook", f"http://other.example:{other.port}/hook")
        await message(rig, "bob")
        await message(rig, "carol")
        await push.fan_out()
        assert await push.send_due() == 6  # 2 started to busy.example, 3 deferred, 1 to other.example
        async with asyncio.timeout(10):
            await other.got.get()  # the other host is not held up
            for _ in range(2):
                await busy.arrived.get()
        deferred = await PushJob.filter(attempts=0, next_at__gt=rig.clock.ms, next_at__lt=rig.clock.ms + 10_000)
        assert len(deferred) == 3 and push.stats.deferred == 3  # no attempt counted
        assert await push.send_due() == 0  # nothing due: the deferred ones are not fetched again
        release.set()
        await push.drain()  # the clock has not moved: the deferred ones started as slots freed
        assert sorted(r.path for r in busy.requests) == ["/0", "/1", "/2", "/3", "/4"]
        assert busy.max_pending == 2 and await PushJob.all().count() == 0 and push.stats.sent == 6


async def test_the_pool_is_bounded_and_a_freed_slot_starts_the_next_job(rig: Rig) -> None:
    release = asyncio.Event()
    async with HookServer(hold=release, secret=SECRET) as hook, rig.push(concurrency=2) as push:
        for i in range(5):  # five hosts: the per-host cap is not what limits
            rig.dns.table[f"h{i}.example"] = ["127.0.0.1"]
            await push.register("bob", "webhook", f"http://h{i}.example:{hook.port}/hook")
        await message(rig, "bob")
        await push.fan_out()
        async with sending(push):  # only a wake-up (new jobs, a freed slot) makes it look again
            async with asyncio.timeout(10):
                for _ in range(2):
                    await hook.arrived.get()
            release.set()
            async with asyncio.timeout(10):
                for _ in range(5):
                    await hook.got.get()
        assert hook.max_pending <= 2 and len(hook.requests) == 5


async def test_a_job_being_sent_is_leased_to_one_sender(rig: Rig) -> None:
    rig.dns.table["hooks.example"] = ["127.0.0.1"]
    release = asyncio.Event()
    async with HookServer(hold=release, secret=SECRET) as hook, rig.push() as one, rig.push() as two:
        await one.register("bob", "webhook", f"http://hooks.example:{hook.port}/hook")
        await message(rig, "bob")
        await one.fan_out()
        await asyncio.gather(one.send_due(), two.send_due())  # two processes, at the same moment
        await asyncio.wait_for(hook.arrived.get(), 10)
        assert await one.send_due() == 0 and await two.send_due() == 0  # leased: not due
        release.set()
        await one.drain()
        await two.drain()
        assert len(hook.requests) == 1 and one.stats.sent + two.stats.sent == 1


@pytest.mark.parametrize("scheme", ["http", "https"])  # no answer / a TLS handshake that never completes
async def test_a_black_hole_costs_one_timeout_then_a_retry(rig: Rig, scheme: str) -> None:
    async with BlackHole() as hole, rig.push(timeout_s=0.3) as push:
        rig.dns.table["hole.example"] = ["127.0.0.1"]
        await push.register("bob", "webhook", f"{scheme}://hole.example:{hole.port}/hook")
        await message(rig, "bob")
        await push.fan_out()
        await push.send_due()
        await push.drain()
        job = await PushJob.get()  # cut at 0.3 s: one attempt, recorded as a timeout
        assert job.attempts == 1 and job.last_error == "no answer within 0.3 s" and hole.accepted == 1


async def test_shutdown_cancels_the_sends_in_flight(rig: Rig) -> None:
    async with BlackHole() as hole:
        rig.dns.table["hole.example"] = ["127.0.0.1"]
        async with rig.push(timeout_s=30) as push, sending(push):
            await push.register("bob", "webhook", f"http://hole.example:{hole.port}/hook")
            await message(rig, "bob")
            await push.fan_out()  # wakes the sender
            await hole.wait_for(1)
        # Leaving did not wait for the 30 s timeout: the send was cancelled (no attempt recorded).
        assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("imgate.push")]
        job = await PushJob.get()  # still queued, leased: sent again once the lease runs out
        assert job.attempts == 0 and job.next_at > rig.clock.ms
