"""RabbitMQ's management HTTP API and event exchange, as imgate uses them when RabbitMQ is the MQTT
front: closing the live connections of a user whose token was revoked or expired or who was
disabled. (Its HTTP auth backend, ``/auth/rabbitmq/…`` in ``imgate.admin``, refuses their next
login; a live MQTT connection is not asked again.)

Why closing once is not enough: RabbitMQ's ``rabbitmq_auth_backend_cache`` (``auth_cache.cache_ttl``,
15 s in ``config/rabbitmq/*.conf``) keeps every answer of the HTTP backend for its TTL, keyed by the
question's arguments: a login (username, password, client id) answered "allow" before the
revocation is answered "allow" again from the cache, without asking imgate, until it expires; so
are the topic and resource questions of that user and client id (verified on RabbitMQ 3.10: a
second connection of the same device asks imgate nothing). A connection is never asked again once
it is open, and caches its own topic answers. So a device whose token was revoked can reconnect
at once, and nothing would close it again: denying its topics in imgate would not help either,
their answers being in the cache too.

The answer here, ``Quarantine``: for the cache's TTL (``rabbitmq.auth_cache_ttl_s``) and
``MARGIN_MS`` more after a revocation or a disable, every connection of that ``{uid}:{device}``
(every device, for a disable or a revocation of all devices) that RabbitMQ reports
(``connection.created`` on ``amq.rabbitmq.event``, which ``ConnectionWatch`` consumes over AMQP)
is closed at once, and again until its ``connection.closed`` comes. Past the window nothing is
cached any more, and the login is refused by imgate itself. The cost: a device given a new token
within the window is closed too until the window ends (its new login cannot be told apart from
the old one's: the event carries no credentials). Without AMQP (``imgate run`` on RabbitMQ over
MQTT) the watcher closes the quarantined users' connections on every pass of
``broker.auth_poll_interval`` instead, for the same window.

An expiry is not quarantined: refreshing a token before it expires is what clients do, and the
quarantine would close all of the user's devices, their new tokens' too, for the window. Instead
the auth backend refuses a token that expires within the cache's TTL + ``MARGIN_MS``
(``broker.external_auth``), so no cached "allow" outlives its token; the live connections of an
expired token are closed once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import aio_pika
import httpx
from aio_pika.abc import AbstractIncomingMessage

from bridge.amqp import EVENT_EXCHANGE, connection_event
from bridge.transport import backoff
from broker.external_auth import CACHE_MARGIN_MS

log = logging.getLogger("imgate.rabbitmq")

MARGIN_MS = CACHE_MARGIN_MS  # past the cache TTL: a login answered while the revocation committed, clock skew
_MAX_ENTRIES = 100_000  # quarantined devices remembered at once (the oldest go first)
_KEEP_MS = 60_000  # past its window, an entry still serves events that were queued late
_QUEUE_LENGTH = 10_000  # the event queue's bound (the oldest events are dropped beyond)
_MAX_TRIES = 40  # closes of one connection in quarantine, ConnectionWatch.RETRY_S apart (10 s)
_MAX_CLOSING = 10_000  # connections being closed at once (beyond, one close each)


class RabbitManagement:
    """Closes connections through ``DELETE /api/connections/username/{user}`` (immediate; the
    listing of connections lags by the node's statistics interval, and so does closing one
    connection by its name (404 for a connection just opened), so a per-device close could miss a
    device that has just connected: every connection of the user is closed, and the devices whose
    tokens are still valid log in again)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def close_user(self, uid: str, reason: str) -> int:
        """Close every connection of ``uid`` on the cluster. Returns how many were listed (the
        listing may miss the newest; they are closed all the same).

        Raises:
            httpx.HTTPError: the management API could not be reached or refused.
        """
        path = f"/api/connections/username/{quote(uid, safe='')}"
        listed = await self._client.get(path)
        count = len(listed.json()) if listed.status_code == 200 else 0
        closed = await self._client.delete(path, headers={"X-Reason": reason})
        if closed.status_code not in (204, 404):
            closed.raise_for_status()
        log.info("closed the RabbitMQ connections of %s (%s): %d listed", uid, reason, count)
        return count


class Quarantine:
    """The devices whose connections are closed whenever they show up, each until its revocation
    (disable) time + the auth cache's TTL + ``MARGIN_MS``. Sans-IO; bounded."""

    def __init__(self, cache_ttl_ms: int) -> None:
        self.window_ms = cache_ttl_ms + MARGIN_MS
        self._until: OrderedDict[tuple[str, str | None], int] = OrderedDict()

    def add(self, uid: str, device: str | None, since_ms: int) -> None:
        """Quarantine ``uid``'s ``device`` (None: every device) from ``since_ms`` on."""
        key = (uid, device)
        self._until[key] = max(self._until.get(key, 0), since_ms + self.window_ms)
        self._until.move_to_end(key)
        while len(self._until) > _MAX_ENTRIES:
            self._until.popitem(last=False)

    def holds(self, uid: str, device: str, at_ms: int) -> bool:
        """Must a connection of ``uid:device`` created at ``at_ms`` (RabbitMQ's clock) be closed?"""
        return any(at_ms <= self._until.get(key, -1) for key in ((uid, device), (uid, None)))

    def active(self, now_ms: int) -> list[str]:
        """The users with a device in quarantine now."""
        return list(dict.fromkeys(uid for (uid, _), until in self._until.items() if now_ms <= until))

    def prune(self, now_ms: int) -> None:
        for key in [k for k, until in self._until.items() if until + _KEEP_MS < now_ms]:
            del self._until[key]

    def __len__(self) -> int:
        return len(self._until)


Close = Callable[[str, str], Awaitable[int]]


class ConnectionWatch:
    """Consumes ``connection.created`` and ``connection.closed`` from RabbitMQ's event exchange (its
    own exclusive queue, so every ``imgate api`` sees every event) and closes the connections
    ``quarantine`` holds: the user's, through the management API, again every ``RETRY_S`` until
    that connection's ``connection.closed`` comes (the event can come before RabbitMQ tracks the
    connection by user, and a close then misses it: seen live), at most ``_MAX_TRIES`` times.
    ``run`` reconnects with backoff, to the next of ``urls`` (the nodes of one cluster) first;
    after a reconnect (events of the gap are lost) it closes the users in quarantine once."""

    RETRY_S = 0.25

    def __init__(self, urls: str | list[str], quarantine: Quarantine, close: Close, now_ms: Callable[[], int]) -> None:
        self._urls = [urls] if isinstance(urls, str) else urls
        self._node = 0  # index in _urls of the node tried next
        self._quarantine = quarantine
        self._close = close
        self._now_ms = now_ms
        self.ready = asyncio.Event()  # consuming (for tests and the start-up order)
        self.closed = 0  # closes made because of the quarantine
        self._gone: dict[str, asyncio.Event] = {}  # pid of a connection being closed -> its close seen
        self._closers: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        attempt = 0
        while True:
            try:
                connection = await aio_pika.connect(self._urls[self._node % len(self._urls)], timeout=10)
            except (OSError, aio_pika.exceptions.AMQPError, TimeoutError) as exc:
                self._node += 1
                if self._node % len(self._urls):  # another node of the cluster, at once
                    continue
                attempt += 1
                delay = backoff(attempt)
                # The first attempts of an ``imgate api`` starting up log in through its own auth
                # backend, which may not listen yet: quiet until it is clearly something else.
                log.log(logging.WARNING if attempt > 3 else logging.DEBUG,
                        "RabbitMQ event exchange: cannot connect (%s); again in %.1f s", exc, delay)
                await asyncio.sleep(delay)  # a reconnect backoff, not synchronisation
                continue
            try:
                async with connection:
                    await self._consume(connection, reconnected=attempt > 0)
                    attempt = 0
            except (OSError, aio_pika.exceptions.AMQPError, ConnectionError) as exc:
                log.warning("RabbitMQ event exchange: connection lost (%s); reconnecting", exc)
                self._node += 1  # its node may be the one gone: the next one first
            finally:
                self.ready.clear()
                for task in list(self._closers):  # their close events would not come any more
                    task.cancel()
            attempt += 1
            await asyncio.sleep(backoff(attempt))  # a reconnect backoff, not synchronisation

    async def _consume(self, connection: aio_pika.abc.AbstractConnection, *, reconnected: bool) -> None:
        channel = await connection.channel()
        queue = await channel.declare_queue("", exclusive=True, auto_delete=True, arguments={
            "x-max-length": _QUEUE_LENGTH, "x-overflow": "drop-head"})
        for kind in ("connection.created", "connection.closed"):
            await queue.bind(EVENT_EXCHANGE, kind)
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def gone(*_: object) -> None:
            if not lost.done():
                lost.set_result(None)

        connection.close_callbacks.add(gone)
        channel.close_callbacks.add(gone)
        if reconnected:  # what was created while we were away: close the quarantined users once
            for uid in self._quarantine.active(self._now_ms()):
                await self._closing(uid, "token revoked (imgate; events were missed)")
        await queue.consume(self._on_event, no_ack=True)
        self.ready.set()
        await lost

    async def _on_event(self, message: AbstractIncomingMessage) -> None:
        event = connection_event(message.routing_key or "", dict(message.headers or {}))
        if event is None:
            return
        kind, pid, client_id, ts = event
        if kind == "closed":
            if (seen := self._gone.get(pid)) is not None:
                seen.set()
            return
        uid, _, device = client_id.partition(":")
        if not self._quarantine.holds(uid, device, ts) or pid in self._gone:
            return
        if len(self._gone) >= _MAX_CLOSING:
            await self._closing(uid, "token revoked (imgate; it came back through RabbitMQ's auth cache)")
        else:
            self._gone[pid] = asyncio.Event()
            task = asyncio.create_task(self._close_until_gone(pid, uid), name=f"imgate.rabbitmq.close[{uid}]")
            self._closers.add(task)
            task.add_done_callback(self._closers.discard)

    async def _close_until_gone(self, pid: str, uid: str) -> None:
        try:
            for _ in range(_MAX_TRIES):
                await self._closing(uid, "token revoked (imgate; it came back through RabbitMQ's auth cache)")
                try:
                    await asyncio.wait_for(self._gone[pid].wait(), self.RETRY_S)
                    return
                except TimeoutError:
                    continue  # not closed yet (RabbitMQ had not tracked it by user): again
            log.warning("a connection of %s in quarantine (%s) was not seen closing", uid, pid)
        finally:
            del self._gone[pid]

    async def _closing(self, uid: str, reason: str) -> None:
        try:
            await self._close(uid, reason)
            self.closed += 1
        except Exception:  # the management API is away: the watcher's next pass closes them
            log.exception("closing the RabbitMQ connections of %s failed", uid)
