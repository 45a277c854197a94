"""The ``after_*``, ``membership`` and ``user`` callbacks: a durable outbox (``callback_outbox``)
and its sender (docs/callbacks.md, "After (the outbox)").

- ``CallbackOutbox.record_sql``: the services that change things (messages, groups, users) write
  the event in the transaction of the change, one row per endpoint that subscribes to it, the
  body (JSON, with its event id) fixed then. An event no endpoint subscribes to writes nothing:
  with no endpoint configured the send path runs no statement more than before.
- ``CallbackSender``: in the worker, under the ``callbacks`` lease (one process of a cluster
  sends), each endpoint's oldest event of each *stream* (a conversation, or ``user:<uid>``) is
  POSTed, signed (``services.callbacks.signing``), through the shared outbound guard. A stream's
  next event waits until the one before is taken (2xx) or given up, so one endpoint sees a
  conversation's events in order; another stream is not held up by it. At most ``concurrency``
  POSTs are in flight per endpoint, each cut at the endpoint's ``timeout_s``: a slow or dead
  endpoint costs its own events time and nothing else. A failure is retried after an exponential
  back-off with jitter; after ``max_attempts`` (or ``max_age_s``) the event is given up (logged,
  counted). An endpoint's outbox holds at most ``max_pending`` events: beyond that the oldest are
  dropped (logged, counted). The event id stays the same across retries: receivers de-duplicate
  on it (delivery is at least once).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tortoise.backends.base.client import BaseDBAsyncClient

from services.callbacks.models import CallbackOutboxRow
from services.callbacks.signing import EVENT_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER, sign
from services.ids import Clock, new_ulid
from services.netguard import TRANSPORT_ERRORS, OutboundPolicy, OutboundUrl, TargetRefused
from services.sql import Many, Program, fetch, run_on

log = logging.getLogger("imgate.callbacks")

_FAILURES: tuple[type[Exception], ...] = (*TRANSPORT_ERRORS, OSError)
AFTER_EVENTS = ("after_send", "after_edit", "after_recall", "membership", "user")


@dataclass(frozen=True, slots=True)
class Entry:
    """One event to record: its kind, its stream (the ordering key), its conversation (None for
    a user event), when it happened (ms) and its data."""

    event: str
    stream: str
    conv: str | None
    ts: int
    data: dict[str, Any]


def message_data(msg: Any, bot: bool = False) -> dict[str, Any]:
    """A stored message as the ``after_send`` event carries it (``msg``: a StoredMessage; ``bot``:
    its sender is a bot, as its deliveries say)."""
    return {"id": msg.id, "conv": msg.conv, "seq": msg.seq, "sender": msg.sender, "bot": bot, "cid": msg.cid,
            "type": msg.type, "text": msg.text, "data": msg.data, "ts": msg.ts, "mentions": list(msg.mentions),
            "reply_to": msg.reply["id"] if msg.reply else None, "thread": msg.thread,
            "expires_at": msg.expires_at}


class CallbackOutbox:
    """Which endpoints take which event, and the writing of events (in a caller's transaction)."""

    def __init__(self, subscriptions: Mapping[str, Sequence[str]] | None = None) -> None:
        """``subscriptions``: event -> the names of the endpoints that take it."""
        self._subs = {e: tuple(names) for e, names in (subscriptions or {}).items() if names}

    @classmethod
    def of(cls, endpoints: Iterable[Any]) -> CallbackOutbox:
        """From ``callbacks.endpoints`` (each with ``name`` and ``events``)."""
        subs: dict[str, list[str]] = {}
        for e in endpoints:
            for event in e.events:
                if event in AFTER_EVENTS:
                    subs.setdefault(event, []).append(e.name)
        return cls(subs)

    def wants(self, event: str) -> bool:
        """Whether any endpoint takes ``event`` (else recording it writes nothing)."""
        return event in self._subs

    def record_sql(self, entries: Iterable[Entry], now: int) -> Program[None]:
        """Write ``entries`` (those some endpoint takes), for the caller's transaction program."""
        rows = []
        for e in entries:
            names = self._subs.get(e.event)
            if not names:
                continue
            event_id = new_ulid(now)
            body = json.dumps({"id": event_id, "event": e.event, "ts": e.ts, "conv": e.conv, "data": e.data},
                              separators=(",", ":"), ensure_ascii=False)
            rows += [(name, e.stream[:96], e.event, event_id, body, now, now, 0) for name in names]
        if rows:
            yield Many("INSERT INTO callback_outbox (endpoint, stream, event, event_id, body, created_at, next_at, "
                       "attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    async def record(self, conn: BaseDBAsyncClient, entries: Iterable[Entry], now: int) -> None:
        """``record_sql`` in the caller's (ORM) transaction ``conn``."""
        await run_on(conn, self.record_sql(entries, now))

    @staticmethod
    async def pending() -> int:
        return await CallbackOutboxRow.all().count()


class Poster(Protocol):
    """The HTTP client (``services.push.webhooks.WebhookClient``: the guarded backend, no proxy,
    no redirect, a capped answer), injected by the composition root."""

    async def post(self, target: OutboundUrl, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]: ...


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    url: str
    secret: str
    timeout_s: float


@dataclass(slots=True)
class CallbackStats:
    delivered: int = 0
    retries: int = 0  # failed attempts scheduled again
    failed: int = 0  # events given up (max_attempts or max_age_s)
    dropped: int = 0  # events dropped unsent: their endpoint's outbox was over max_pending


@dataclass(frozen=True, slots=True)
class _Row:
    id: int
    stream: str
    event: str
    event_id: str
    body: str
    created_at: int
    attempts: int


class CallbackSender:
    """See the module's docstring. ``step`` is one pass (run under the lease); ``run`` loops it,
    owning the POSTs it starts (cancelled when it stops: an event cut mid-POST is sent again)."""

    def __init__(self, clock: Clock, endpoints: Sequence[Endpoint], client: Poster, policy: OutboundPolicy, *,
                 batch: int = 100, concurrency: int = 4, retry_base_ms: int = 1000, retry_max_ms: int = 300_000,
                 max_attempts: int = 20, max_age_s: int = 86_400, max_pending: int = 10_000,
                 rng: random.Random | None = None) -> None:
        self._clock = clock
        self._endpoints = {e.name: e for e in endpoints}
        self._client = client
        self._policy = policy
        self._targets: dict[str, OutboundUrl | None] = {}
        self._batch = batch
        self._concurrency = concurrency
        self._base = retry_base_ms
        self._max_delay = retry_max_ms
        self._max_attempts = max_attempts
        self._max_age_ms = max_age_s * 1000
        self._max_pending = max_pending
        self._rng = rng or random.Random()  # jitter, not security
        self._inflight: dict[str, set[str]] = {e.name: set() for e in endpoints}  # endpoint -> streams being sent
        self._wake = asyncio.Event()  # a POST ended: its stream's next event may go now
        self._tasks: asyncio.TaskGroup | None = None
        self._last_bound = -1_000_000_000
        self.stats = CallbackStats()

    async def run(self, step: Callable[[], Awaitable[int]], poll_s: float) -> None:
        """Run ``step`` (this sender's ``step``, under the lease) whenever a POST ends, and every
        ``poll_s`` for events other processes wrote; forever."""
        async with asyncio.TaskGroup() as tg:
            self._tasks = tg
            down = False
            try:
                while True:
                    self._wake.clear()
                    try:
                        await step()
                        if down:
                            log.warning("callbacks: the outbox is read again")
                            down = False
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        if not down:  # (once, not at every poll while the database is away)
                            log.exception("callbacks: a pass of the outbox failed; retrying every %.2f s", poll_s)
                        down = True
                    try:
                        async with asyncio.timeout(poll_s):
                            await self._wake.wait()
                    except TimeoutError:
                        pass  # a polling interval for other processes' events, not synchronisation
            finally:
                self._tasks = None

    async def step(self) -> int:
        """Start the POSTs that may go now. Returns how many it started."""
        if self._tasks is None:
            msg = "CallbackSender.step runs inside run()"
            raise RuntimeError(msg)
        now = self._clock.now_ms()
        if now - self._last_bound >= 1000:  # the per-endpoint bound, once a second at most
            self._last_bound = now
            await self._bound()
        started = 0
        for name, endpoint in self._endpoints.items():
            busy = self._inflight[name]
            free = min(self._concurrency - len(busy), self._batch)
            if free <= 0:
                continue
            # A stream busy now may finish during the read: its head read then is stale (already
            # sent). It is skipped; its end woke the next pass.
            was_busy = set(busy)
            for row in await self._heads(name, now, free + len(busy)):
                if row.stream in busy or row.stream in was_busy:
                    continue
                busy.add(row.stream)
                self._tasks.create_task(self._send(endpoint, row), name=f"imgate.callbacks.post.{name}")
                started += 1
                if len(busy) >= self._concurrency:
                    break
        return started

    @staticmethod
    async def _heads(endpoint: str, now: int, limit: int) -> list[_Row]:
        """The endpoint's oldest event of each stream, if due, oldest first."""
        rows = await fetch(
            "SELECT o.id, o.stream, o.event, o.event_id, o.body, o.created_at, o.attempts FROM callback_outbox o "
            "JOIN (SELECT MIN(id) AS id FROM callback_outbox WHERE endpoint = ? GROUP BY stream) h ON o.id = h.id "
            "WHERE o.next_at <= ? ORDER BY o.id LIMIT ?", [endpoint, now, limit])
        return [_Row(*r) for r in rows]

    async def _bound(self) -> None:
        """Drop each endpoint's oldest events beyond ``max_pending`` (and forget nothing else)."""
        counts = await fetch("SELECT endpoint, COUNT(*) FROM callback_outbox GROUP BY endpoint")
        for endpoint, count in counts:
            over = int(count) - self._max_pending
            if over <= 0:
                continue
            oldest = await fetch("SELECT id FROM callback_outbox WHERE endpoint = ? ORDER BY id LIMIT ?",
                                 [endpoint, over])
            await CallbackOutboxRow.filter(id__in=[r[0] for r in oldest]).delete()
            self.stats.dropped += over
            log.warning("callbacks: endpoint %s has more than %d events waiting; dropped the %d oldest",
                        endpoint, self._max_pending, over)

    def _target(self, endpoint: Endpoint) -> OutboundUrl | None:
        if endpoint.name not in self._targets:
            try:
                self._targets[endpoint.name] = self._policy.parse(endpoint.url)
            except TargetRefused as exc:
                log.error("callbacks: endpoint %s: %s", endpoint.name, exc)
                self._targets[endpoint.name] = None
        return self._targets[endpoint.name]

    async def _send(self, endpoint: Endpoint, row: _Row) -> None:
        try:
            error = await self._post(endpoint, row)
            if error is None:
                await CallbackOutboxRow.filter(id=row.id).delete()
                self.stats.delivered += 1
            else:
                await self._failed(endpoint, row, error)
        except Exception:  # the database: the row stays, and is tried again
            log.exception("callbacks: recording the outcome of event %s for %s failed", row.event_id, endpoint.name)
        finally:
            self._inflight[endpoint.name].discard(row.stream)
            self._wake.set()

    async def _post(self, endpoint: Endpoint, row: _Row) -> str | None:
        """POST one event; None when the endpoint took it (2xx), else why not."""
        target = self._target(endpoint)
        if target is None:
            return "its URL is refused"
        body = row.body.encode()
        headers = {"Content-Type": "application/json", "User-Agent": "imgate-callbacks",
                   SIGNATURE_HEADER: sign(endpoint.secret, body, self._clock.now_ms() // 1000),
                   EVENT_ID_HEADER: row.event_id, EVENT_HEADER: row.event}
        try:
            async with asyncio.timeout(endpoint.timeout_s):
                status, _ = await self._client.post(target, body, headers)
        except TimeoutError:
            return f"no answer within {endpoint.timeout_s} s"
        except TargetRefused as exc:
            return str(exc)
        except _FAILURES as exc:
            return f"{type(exc).__name__}: {exc}"[:200]
        return None if 200 <= status < 300 else f"HTTP {status}"

    async def _failed(self, endpoint: Endpoint, row: _Row, error: str) -> None:
        now = self._clock.now_ms()
        attempts = row.attempts + 1
        if attempts >= self._max_attempts or now - row.created_at >= self._max_age_ms:
            await CallbackOutboxRow.filter(id=row.id).delete()
            self.stats.failed += 1
            log.warning("callbacks: gave up event %s (%s) for endpoint %s after %d attempts: %s", row.event_id,
                        row.event, endpoint.name, attempts, error)
            return
        delay = min(self._max_delay, self._base * (1 << min(attempts - 1, 30)))
        delay = int(delay * (0.5 + self._rng.random() / 2))  # jitter: endpoints recovering are not stampeded
        await CallbackOutboxRow.filter(id=row.id).update(attempts=attempts, next_at=now + delay)
        self.stats.retries += 1
        log.info("callbacks: event %s for endpoint %s failed (%s); attempt %d in %d ms", row.event_id, endpoint.name,
                 error, attempts + 1, delay)
