"""PushService: offline push through a durable outbox.

1. ``fan_out``: takes stored messages from the ``message_events`` queue (written in the
   messages' own transaction), and for each recipient with no device online and the
   conversation not muted (a mention, by uid or @all, overrides mute) queues one ``push_jobs`` row
   per push target. The payload's ``kind`` says why: ``mention`` or ``thread_reply`` (a plain message has none).
2. ``send_due``: starts sending due jobs, concurrently: at most ``concurrency`` at once, at most
   ``per_host_concurrency`` to one webhook host, each bounded by ``timeout_s``, so a target that
   never answers costs its own jobs a timeout and nobody else anything. A job is leased (its
   ``next_at`` moved past the time a send can take) before it is sent, so no pass and no other
   process picks it up twice. A job whose webhook host is at its cap is deferred (no attempt
   counted) and started as soon as a send to that host ends. 429/5xx/timeouts are retried with
   exponential back-off and jitter, a job is dropped (logged, counted) after ``max_attempts``, and
   a target the provider reports as invalid is removed with its jobs.

Both steps are idempotent (unique (target, message)), so a crash anywhere costs a retry, never
a push. Nothing here runs on the message path: a worker owned by the composition root calls
``fan_out``, and another runs ``run`` (the sender), which owns the sends it starts and cancels
them when it stops.

Webhook targets are checked against SSRF (``services.push.webhooks``) when registered and again
when sent; a user has at most ``max_targets_per_user`` targets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from typing import Any, Literal, Self

from services.conversations.service import ConversationService, Recipient
from services.errors import BadRequest, NotFound, TooLarge
from services.events.queue import EventQueue
from services.ids import Clock
from services.messages.commands import StoredMessage
from services.messages.service import MessageService
from services.presence.service import PresenceService
from services.push.models import PushJob, PushTarget
from services.push.providers import Outcome, Provider, Result
from services.push.webhooks import TargetRefused, WebhookPolicy
from services.users.service import UserService

log = logging.getLogger("imgate.push")
PLATFORMS = ("fcm", "apns", "webhook")


FAN_OUT_BATCH = 200  # message events one fan-out pass takes


@dataclass(slots=True)
class PushStats:
    queued: int = 0
    sent: int = 0
    retried: int = 0
    dropped: int = 0
    invalid_targets: int = 0
    deferred: int = 0  # jobs put back because their webhook host was at its concurrency cap


class PushService:
    """See the module's docstring. An async context manager: leaving it cancels the sends in
    flight (a job cancelled mid-send is sent again when its lease expires)."""

    def __init__(self, clock: Clock, providers: dict[str, Provider], *, messages: MessageService,
                 conversations: ConversationService, presence: PresenceService, users: UserService,
                 policy: Literal["tickle", "preview"] = "tickle",
                 preview_chars: int = 100, max_attempts: int = 8, base_delay_ms: int = 1000,
                 max_delay_ms: int = 3_600_000, rng: random.Random | None = None,
                 events: EventQueue | None = None, webhooks: WebhookPolicy | None = None,
                 max_targets_per_user: int = 10, concurrency: int = 64, per_host_concurrency: int = 4,
                 timeout_s: float = 3.0) -> None:
        self._clock = clock
        self._providers = providers
        self._messages = messages
        self._conversations = conversations
        self._presence = presence
        self._users = users
        self._policy = policy
        self._preview = preview_chars
        self._max_attempts = max_attempts
        self._base = base_delay_ms
        self._max_delay = max_delay_ms
        self._rng = rng or random.Random()  # jitter, not security
        self._events = events or EventQueue()
        self._webhooks = webhooks or WebhookPolicy()
        self._max_targets = max_targets_per_user
        self._concurrency = concurrency
        self._per_host_cap = per_host_concurrency
        self._timeout_s = timeout_s
        # A lease outlives any send (the send is cut at timeout_s); it only matters after a crash.
        self._lease_ms = max(30_000, int(timeout_s * 4000))
        self._max_waiting = 4 * per_host_concurrency  # deferred jobs remembered per host
        self._inflight: set[int] = set()  # ids of the jobs this process is sending
        self._per_host: dict[str, int] = {}  # webhook host -> sends in flight
        self._waiting: dict[str, dict[int, int]] = {}  # host -> {deferred job id: its next_at}, oldest first
        self._sends: asyncio.TaskGroup | None = None  # while entered (``async with``)
        self._tasks: set[asyncio.Task[None]] = set()  # the sends in flight (each bounded by timeout_s)
        self._wake = asyncio.Event()  # new jobs, or a slot freed while jobs were waiting for one
        self._blocked = False  # a pass left due jobs for want of a free slot
        self.stats = PushStats()

    async def __aenter__(self) -> Self:
        self._sends = asyncio.TaskGroup()  # owns every send this service starts
        await self._sends.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
        if self._sends is not None:
            sends, self._sends = self._sends, None
            await sends.__aexit__(None, None, None)

    async def register(self, uid: str, platform: str, token: str) -> None:
        """Add a push target (registering one again is harmless). Raises ``BadRequest`` (unknown
        platform, bad token, a webhook URL that is not allowed) or ``TooLarge`` (the user has
        ``max_targets_per_user`` targets already)."""
        if platform not in PLATFORMS:
            msg = f"platform must be one of {', '.join(PLATFORMS)}"
            raise BadRequest(msg)
        if not 1 <= len(token) <= 512:
            msg = "token must be 1-512 characters"
            raise BadRequest(msg)
        if platform == "webhook":
            try:
                self._webhooks.parse(token)
            except TargetRefused as exc:
                raise BadRequest(str(exc)) from None
        if await PushTarget.filter(uid=uid, platform=platform, token=token).exists():
            return
        too_many = f"at most {self._max_targets} push targets per user; unregister one first"
        if await PushTarget.filter(uid=uid).count() >= self._max_targets:
            raise TooLarge(too_many)
        if platform == "webhook":  # where it resolves now (checked again at every send)
            try:
                await self._webhooks.check(token)
            except TargetRefused as exc:
                raise BadRequest(str(exc)) from None
        await PushTarget.bulk_create([PushTarget(uid=uid, platform=platform, token=token,
                                                 created_at=self._clock.now_ms())], ignore_conflicts=True)
        # Two registrations at once may both have passed the count: the one that finds too many
        # takes itself back (both may, then neither stays: never more than the cap).
        if await PushTarget.filter(uid=uid).count() > self._max_targets:
            await PushTarget.filter(uid=uid, platform=platform, token=token).delete()
            raise TooLarge(too_many)

    async def unregister(self, uid: str, platform: str, token: str) -> None:
        if not await PushTarget.filter(uid=uid, platform=platform, token=token).delete():
            msg = "no such push target"
            raise NotFound(msg)

    async def depth(self) -> int:
        return await PushJob.all().count()

    # ---- 1. message events -> jobs -------------------------------------------------------
    async def fan_out(self, limit: int = FAN_OUT_BATCH) -> int:
        """Queue the pushes for up to ``limit`` stored messages. Returns how many events it took."""
        events = await self._events.read("push", limit)
        if not events:
            return 0
        messages = await self._messages.by_ids([e.message_id for e in events])
        members: dict[str, list[Recipient]] = await self._conversations.recipients(m.conv for m in messages.values())
        uids = {m.uid for ms in members.values() for m in ms}
        reachable = await self._users.active_uids(uids) - await self._presence.online_uids(uids)
        targets: dict[str, list[PushTarget]] = {}
        for t in await PushTarget.filter(uid__in=list(reachable)) if reachable else []:
            targets.setdefault(t.uid, []).append(t)
        # Who is mentioned (by uid or @all; not a member who blocks the sender): the stored rows.
        mentions = await self._conversations.mentioned([(m.conv, m.seq) for m in messages.values() if m.mentions])
        now = self._clock.now_ms()
        jobs = []
        for event in events:
            msg = messages.get(event.message_id)
            if msg is None or msg.type in ("member", "recalled", "expired", "ttl"):
                continue  # (by_ids shows a message past its expires_at as expired)
            if msg.edited_at is not None and event.created_at >= msg.edited_at:
                continue  # an edit's event (for the search index): the message was pushed when it was sent
            mentioned = mentions.get((msg.conv, msg.seq), set())
            for member in members.get(msg.conv, []):
                if member.uid == msg.sender or member.uid not in targets:
                    continue
                if msg.seq <= member.after:  # a member added since the message: outside its window
                    continue
                if member.muted and member.uid not in mentioned:
                    continue
                payload = self._payload(msg, member.uid in mentioned)
                jobs += [PushJob(target_id=t.id, message_id=msg.id, payload=payload, next_at=now, created_at=now,
                                 expires_at=msg.expires_at) for t in targets[member.uid]]
        if jobs:  # idempotent: a crash before done() makes the next pass create the same jobs (ignored)
            await PushJob.bulk_create(jobs, ignore_conflicts=True)
            self._wake.set()
        await self._events.done("push", events[-1].id)
        self.stats.queued += len(jobs)
        return len(events)

    def _payload(self, msg: StoredMessage, mentioned: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"conv": msg.conv, "seq": msg.seq}
        # kind: why it pushes, for the phone's wording ("mention" wins over "thread_reply"; a plain
        # message has none; in a muted conversation only mentions push at all).
        if mentioned:
            body |= {"kind": "mention", "mentioned": True}
        elif msg.thread is not None:
            body["kind"] = "thread_reply"
        if msg.thread is not None:
            body["thread"] = msg.thread
        if self._policy == "preview":
            body["from"] = msg.sender
            if msg.text:
                body["text"] = msg.text[: self._preview]
        return body

    # ---- 2. jobs -> providers --------------------------------------------------------------
    async def run(self, poll_s: float = 1.0) -> None:
        """The sender, until cancelled (a task of the composition root's TaskGroup): starts due
        jobs when woken (new jobs queued, a slot freed while jobs were waiting for one) and every
        ``poll_s`` (retries come due). Stopping it cancels the sends in flight."""
        try:
            await self._send_loop(poll_s)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Cancel the sends in flight (a job cancelled mid-send is sent again when its lease expires)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def drain(self) -> None:
        """Wait until no send is in flight (those started meanwhile included)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def _send_loop(self, poll_s: float) -> None:
        failing = False
        while True:
            self._wake.clear()  # before the pass: a wake during the pass is kept for the wait below
            self._blocked = False
            try:
                while await self.send_due():
                    pass
                if failing:
                    log.warning("push sender: back to normal")
                    failing = False
            except Exception:
                if not failing:
                    log.exception("push sender pass failed; retrying every %.1f s", poll_s)
                failing = True
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll_s):  # a polling interval for retries, not synchronisation
                    await self._wake.wait()

    async def send_due(self, limit: int = 100) -> int:
        """One pass: start sending up to ``limit`` due jobs, without waiting for the sends
        (``drain`` does). Returns how many due jobs it handled (started, deferred because their
        host is at its cap, or dropped because their target is gone); 0 when none is due or no
        slot is free."""
        if len(self._inflight) >= self._concurrency:
            self._blocked = True
            return 0
        now = self._clock.now_ms()
        jobs = [j for j in await PushJob.filter(next_at__lte=now).order_by("next_at", "id").limit(limit)
                if j.id not in self._inflight]
        if not jobs:
            return 0
        targets = {t.id: t for t in await PushTarget.filter(id__in=list({j.target_id for j in jobs}))}
        handled = 0
        deferred: dict[str, list[int]] = {}
        for job in jobs:
            if len(self._inflight) >= self._concurrency:
                self._blocked = True  # the rest stays due: started when a slot frees
                break
            handled += 1
            target = targets.get(job.target_id)
            provider = self._providers.get(target.platform) if target is not None else None
            expired = job.expires_at is not None and job.expires_at <= now  # its message disappeared: not sent
            if target is None or provider is None or expired:
                await PushJob.filter(id=job.id).delete()  # target gone, or platform not configured
                continue
            host = self._host(target)
            if host is not None and self._per_host.get(host, 0) >= self._per_host_cap:
                deferred.setdefault(host, []).append(job.id)
                continue
            await self._start(job, target, provider, host)
        if deferred:
            await self._defer(deferred, now)
        return handled

    def _host(self, target: PushTarget) -> str | None:
        """The host a webhook target's sends count against (None: not a webhook, or a URL that is
        not allowed any more; its send reports it invalid)."""
        if target.platform != "webhook":
            return None
        try:
            return self._webhooks.parse(target.token).host_key
        except TargetRefused:
            return None

    async def _defer(self, by_host: dict[str, list[int]], now: int) -> None:
        """Put back jobs whose host is at its cap, no attempt counted: not due again for about a
        send's timeout, and remembered (a bounded number per host) to start as soon as a send to
        their host ends."""
        until = now + int(self._timeout_s * 1000 * self._rng.uniform(0.5, 1.0))
        ids = [i for group in by_host.values() for i in group]
        await PushJob.filter(id__in=ids, next_at__lte=now).update(next_at=until)
        self.stats.deferred += len(ids)
        for host, group in by_host.items():
            waiting = self._waiting.setdefault(host, {})
            for job_id in group:
                if job_id in waiting or len(waiting) < self._max_waiting:
                    waiting.pop(job_id, None)
                    waiting[job_id] = until

    async def _start(self, job: PushJob, target: PushTarget, provider: Provider, host: str | None) -> bool:
        """Lease ``job`` (only if nobody changed it since it was read) and start its send."""
        self._inflight.add(job.id)  # the slots are taken before the first await
        if host is not None:
            self._per_host[host] = self._per_host.get(host, 0) + 1
            self._waiting.get(host, {}).pop(job.id, None)
        try:
            lease = self._clock.now_ms() + self._lease_ms
            claimed = await PushJob.filter(id=job.id, next_at=job.next_at).update(next_at=lease)
        except BaseException:
            self._release(job.id, host)
            raise
        if not claimed:  # another pass or process has it
            self._release(job.id, host)
            return False
        if self._sends is None:
            self._release(job.id, host)
            msg = "sending needs `async with PushService(...)` (its TaskGroup owns the sends)"
            raise RuntimeError(msg)
        task = self._sends.create_task(self._run(job, target, provider, host), name=f"imgate.push.send.{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._sent)
        return True

    def _release(self, job_id: int, host: str | None) -> None:
        self._inflight.discard(job_id)
        if host is not None:
            left = self._per_host.get(host, 1) - 1
            if left > 0:
                self._per_host[host] = left
            else:
                self._per_host.pop(host, None)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("push send task %s failed", task.get_name(), exc_info=task.exception())

    async def _run(self, job: PushJob, target: PushTarget, provider: Provider, host: str | None) -> None:
        try:
            await self._deliver(job, target, provider)
        except Exception:
            log.exception("push %s to %s/%s failed; retried when its lease expires", job.message_id, target.uid,
                          target.platform)
        finally:
            self._release(job.id, host)
        if host is not None:
            await self._resume(host)
        if self._blocked:
            self._wake.set()

    async def _resume(self, host: str) -> None:
        """A send to ``host`` ended: start the jobs deferred for it, oldest first, while it has a
        free slot. A host with no send in flight keeps no list: its deferred jobs are due again
        within about a timeout anyway (this bounds the lists to the hosts being sent to)."""
        waiting = self._waiting.get(host, {})
        try:
            while waiting and self._per_host.get(host, 0) < self._per_host_cap and \
                    len(self._inflight) < self._concurrency:
                job_id = next(iter(waiting))
                next_at = waiting.pop(job_id)
                job = await PushJob.get_or_none(id=job_id)
                if job is None or job.next_at != next_at or job_id in self._inflight:
                    continue  # sent, removed or taken meanwhile
                target = await PushTarget.get_or_none(id=job.target_id)
                provider = self._providers.get(target.platform) if target is not None else None
                if target is not None and provider is not None:
                    await self._start(job, target, provider, host)
        except Exception:
            log.exception("push: starting the jobs deferred for %s failed; they are retried later", host)
            waiting.clear()
        if not waiting or host not in self._per_host:
            self._waiting.pop(host, None)

    async def _deliver(self, job: PushJob, target: PushTarget, provider: Provider) -> None:
        """Send one job and record the outcome."""
        payload = job.payload
        if target.platform == "apns":  # the badge is the user's total unread count, as of now
            payload = {**payload, "badge": await self._conversations.unread_total(target.uid)}
        try:
            async with asyncio.timeout(self._timeout_s):
                result = await provider.send(target.token, payload)
        except TimeoutError:
            result = Result(Outcome.RETRY, f"no answer within {self._timeout_s:g} s")
        now = self._clock.now_ms()
        if result.outcome == Outcome.SENT:
            await PushJob.filter(id=job.id).delete()
            self.stats.sent += 1
        elif result.outcome == Outcome.INVALID:  # its other jobs (some may be in flight) go too
            await PushJob.filter(target_id=target.id).delete()
            if await PushTarget.filter(id=target.id).delete():  # counted once, whichever send saw it first
                log.info("push target %s/%s is invalid (%s): removed", target.uid, target.platform, result.detail)
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

    # ---- privacy (services/privacy): no instance needed (the API process has no PushService) ---
    @staticmethod
    async def export_user(uid: str) -> list[dict[str, Any]]:
        """The user's push targets, as records of the export archive."""
        return [{"kind": "push_target", "platform": t.platform, "token": t.token, "created_at": t.created_at}
                for t in await PushTarget.filter(uid=uid).order_by("id")]

    @staticmethod
    async def erase_user(uid: str) -> int:
        """Delete the user's push targets and the pushes to them not yet sent. Returns how many
        pushes were dropped."""
        targets = list(await PushTarget.filter(uid=uid).values_list("id", flat=True))
        dropped = int(await PushJob.filter(target_id__in=targets).delete()) if targets else 0
        await PushTarget.filter(uid=uid).delete()
        return dropped

    @staticmethod
    async def drop_messages(message_ids: list[str]) -> int:
        """Drop the pushes not yet sent of these messages (erased: their text must not go out)."""
        return int(await PushJob.filter(message_id__in=message_ids).delete()) if message_ids else 0
