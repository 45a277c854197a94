"""PushService: offline push through a durable outbox.

1. ``fan_out``: takes stored messages from the ``message_events`` queue (written in the
   messages' own transaction), and for each recipient with no device online and the
   conversation not muted (a mention overrides mute) queues one ``push_jobs`` row per push target.
2. ``send_due``: sends due jobs; 429/5xx/timeouts are retried with exponential back-off and
   jitter, a job is dropped (logged, counted) after ``max_attempts``, and a target the provider
   reports as invalid is removed with its jobs.

Both steps are idempotent (unique (target, message)), so a crash anywhere costs a retry, never
a push. Nothing here runs on the message path: a worker owned by the composition root calls them.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any, Literal

from tortoise import connections

from services.conversations.models import Member
from services.db import portable_sql
from services.errors import BadRequest, NotFound
from services.ids import Clock
from services.messages.models import Message
from services.presence.models import DevicePresence
from services.messages.events import EventQueue
from services.push.models import PushJob, PushTarget
from services.push.providers import Outcome, Provider
from services.users.models import User

log = logging.getLogger("imgate.push")
PLATFORMS = ("fcm", "apns", "webhook")


@dataclass(slots=True)
class PushStats:
    queued: int = 0
    sent: int = 0
    retried: int = 0
    dropped: int = 0
    invalid_targets: int = 0


class PushService:
    def __init__(self, clock: Clock, providers: dict[str, Provider], *, policy: Literal["tickle", "preview"] = "tickle",
                 preview_chars: int = 100, max_attempts: int = 8, base_delay_ms: int = 1000,
                 max_delay_ms: int = 3_600_000, rng: random.Random | None = None,
                 events: EventQueue | None = None) -> None:
        self._clock = clock
        self._providers = providers
        self._policy = policy
        self._preview = preview_chars
        self._max_attempts = max_attempts
        self._base = base_delay_ms
        self._max_delay = max_delay_ms
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not security)
        self._events = events or EventQueue()
        self.stats = PushStats()

    async def register(self, uid: str, platform: str, token: str) -> None:
        if platform not in PLATFORMS:
            msg = f"platform must be one of {', '.join(PLATFORMS)}"
            raise BadRequest(msg)
        if not 1 <= len(token) <= 512:
            msg = "token must be 1-512 characters"
            raise BadRequest(msg)
        if platform == "webhook" and not token.startswith(("https://", "http://")):
            msg = "a webhook target is an http(s) URL"
            raise BadRequest(msg)
        await PushTarget.bulk_create([PushTarget(uid=uid, platform=platform, token=token,
                                                 created_at=self._clock.now_ms())], ignore_conflicts=True)

    async def unregister(self, uid: str, platform: str, token: str) -> None:
        if not await PushTarget.filter(uid=uid, platform=platform, token=token).delete():
            msg = "no such push target"
            raise NotFound(msg)

    async def depth(self) -> int:
        return await PushJob.all().count()

    # ---- 1. message events -> jobs -------------------------------------------------------
    async def fan_out(self, limit: int = 200) -> int:
        """Queue the pushes for up to ``limit`` stored messages. Returns how many events it took."""
        events = await self._events.read("push", limit)
        if not events:
            return 0
        messages = {m.id: m for m in await Message.filter(id__in=[e.message_id for e in events])}
        convs = {m.conv for m in messages.values()}
        members: dict[str, list[Member]] = {}
        for m in await Member.filter(conv_id__in=list(convs), left_seq=None):
            members.setdefault(m.conv_id, []).append(m)  # type: ignore[attr-defined]
        uids = {m.uid for ms in members.values() for m in ms}
        online = set(await DevicePresence.filter(uid__in=list(uids), online=True).values_list("uid", flat=True))
        disabled = set(await User.filter(uid__in=list(uids), disabled=True).values_list("uid", flat=True))
        targets: dict[str, list[PushTarget]] = {}
        for t in await PushTarget.filter(uid__in=list(uids - online - disabled)):
            targets.setdefault(t.uid, []).append(t)
        now = self._clock.now_ms()
        jobs = []
        for event in events:
            msg = messages.get(event.message_id)
            if msg is None or msg.type in ("member", "recalled"):
                continue
            mentioned = set(msg.mentions or ())
            for member in members.get(msg.conv, []):
                if member.uid == msg.sender or member.uid not in targets:
                    continue
                if member.muted and member.uid not in mentioned:
                    continue
                payload = self._payload(msg, member.uid in mentioned)
                jobs += [PushJob(target_id=t.id, message_id=msg.id, payload=payload, next_at=now, created_at=now)
                         for t in targets[member.uid]]
        if jobs:  # idempotent: a crash before done() makes the next pass create the same jobs (ignored)
            await PushJob.bulk_create(jobs, ignore_conflicts=True)
        await self._events.done("push", events[-1].id)
        self.stats.queued += len(jobs)
        return len(events)

    def _payload(self, msg: Message, mentioned: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"conv": msg.conv, "seq": msg.seq}
        if mentioned:
            body["mentioned"] = True
        if self._policy == "preview":
            body["from"] = msg.sender
            if msg.text:
                body["text"] = msg.text[: self._preview]
        return body

    @staticmethod
    async def _unread_total(uid: str) -> int:
        conn = connections.get("default")
        rows = await conn.execute_query_dict(portable_sql(
            conn, "SELECT COALESCE(SUM(c.last_seq - m.read_seq), 0) AS unread FROM members m "
                  "JOIN conversations c ON c.id = m.conv_id WHERE m.uid = ? AND m.left_seq IS NULL"), [uid])
        return int(rows[0]["unread"] or 0)

    # ---- 2. jobs -> providers --------------------------------------------------------------
    async def send_due(self, limit: int = 100) -> int:
        """Send up to ``limit`` due jobs. Returns how many were attempted."""
        now = self._clock.now_ms()
        jobs = await PushJob.filter(next_at__lte=now).order_by("next_at", "id").limit(limit)
        if not jobs:
            return 0
        targets = {t.id: t for t in await PushTarget.filter(id__in=list({j.target_id for j in jobs}))}
        for job in jobs:
            target = targets.get(job.target_id)
            provider = self._providers.get(target.platform) if target is not None else None
            if target is None or provider is None:
                await PushJob.filter(id=job.id).delete()  # target gone, or platform not configured
                continue
            payload = job.payload
            if target.platform == "apns":  # the badge is the user's total unread count, as of now
                payload = {**payload, "badge": await self._unread_total(target.uid)}
            result = await provider.send(target.token, payload)
            if result.outcome == Outcome.SENT:
                await PushJob.filter(id=job.id).delete()
                self.stats.sent += 1
            elif result.outcome == Outcome.INVALID:
                log.info("push target %s/%s is invalid (%s): removed", target.uid, target.platform, result.detail)
                await PushJob.filter(target_id=target.id).delete()
                await PushTarget.filter(id=target.id).delete()
                del targets[target.id]  # its other jobs in this batch are gone too
                self.stats.invalid_targets += 1
            elif result.outcome == Outcome.RETRY and job.attempts + 1 < self._max_attempts:
                delay = min(self._max_delay, self._base * 2 ** job.attempts)
                delay = int(delay * self._rng.uniform(0.5, 1.0))  # jitter: retries do not move in step
                await PushJob.filter(id=job.id).update(attempts=job.attempts + 1, next_at=now + delay,
                                                       last_error=result.detail[:255])
                self.stats.retried += 1
            else:
                log.warning("push %s to %s/%s dropped after %d attempt(s): %s", job.message_id, target.uid,
                            target.platform, job.attempts + 1, result.detail)
                await PushJob.filter(id=job.id).delete()
                self.stats.dropped += 1
        return len(jobs)
