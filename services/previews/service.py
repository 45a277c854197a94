"""Link previews: the title, description and image of the first ``https`` link of a text
message, fetched by the server after the message is delivered, and sent to the members who got
it as a ``preview`` event (docs/protocol.md §6). The send path never waits for it.

- ``PreviewFetcher``: one GET through the shared SSRF guard (``services.netguard``: public
  addresses only, checked again at connect time, the connection to the very addresses checked),
  no proxy, no cookies, ``https`` only; each redirect (at most ``max_redirects``) is checked by
  the same policy; at most ``max_bytes`` of an HTML answer read, everything within
  ``timeout_s``; the page parsed in a thread (``parse.parse_page``).
- ``PreviewService``: a bounded queue of requests (full: dropped and counted) taken by
  ``concurrency`` workers; a per-user and a global token bucket on fetches (a cached URL costs
  none); an LRU cache by normalised URL, bounded in entries and bytes, with a TTL (a failure is
  cached for ``negative_ttl_s``); one fetch at a time per URL.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from typing import Protocol, Self
from urllib.parse import urljoin

import httpcore

from services.netguard import TRANSPORT_ERRORS, GuardedBackend, OutboundPolicy, TargetRefused, default_ssl_context
from services.previews.extract import cache_key, first_https_url
from services.previews.parse import PageInfo, parse_page

log = logging.getLogger("imgate.previews")

_USER_AGENT = b"imgate-preview/1 (link preview)"
_HTML = ("text/html", "application/xhtml+xml")


@dataclass(frozen=True, slots=True)
class Preview:
    """What a message's link shows: ``url`` as the message has it, the page's ``title``,
    ``description`` and ``image`` (an https URL, or None)."""

    url: str
    title: str
    description: str
    image: str | None

    def size(self) -> int:
        return len(self.url) + len(self.title) + len(self.description) + len(self.image or "") + 64


@dataclass(frozen=True, slots=True)
class PreviewJob:
    """A preview to send: for message ``id`` (``seq`` of ``conv``), its first link ``url``,
    requested by ``uid`` (the sender), for the members ``to``."""

    id: str
    conv: str
    seq: int
    uid: str
    url: str
    to: tuple[str, ...]

    @property
    def key(self) -> str:
        return cache_key(self.url)


class Bucket(Protocol):
    """A token bucket per key (``bridge.ratelimit.TokenBucket``): 0 if a token was taken, else
    the ms until there will be one."""

    def take(self, key: str) -> int: ...


Deliver = Callable[[PreviewJob, Preview], Awaitable[None]]


@dataclass(slots=True)
class PreviewStats:
    """Counters for /metrics (``previews_*_total``)."""

    requested: int = 0  # messages with a link, handed to the service
    cache_hits: int = 0
    fetched: int = 0  # fetches that gave a preview
    failed: int = 0  # fetches that gave none (refused, an error, not HTML, nothing to show)
    rate_limited: int = 0  # not fetched: the user's or the global bucket was empty
    dropped: int = 0  # not fetched: the queue was full
    sent: int = 0  # previews handed to the delivery


class PreviewFetcher:
    """GETs pages for previews through the guard. An async context manager (it owns a pool)."""

    def __init__(self, policy: OutboundPolicy, *, timeout_s: float = 5.0, connect_timeout_s: float = 2.0,
                 max_bytes: int = 256 * 1024, max_redirects: int = 3, max_connections: int = 8,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.policy = policy
        self._timeout_s = timeout_s
        self._timeouts = {"connect": connect_timeout_s, "read": timeout_s, "write": timeout_s, "pool": timeout_s}
        self._cap = max_bytes
        self._max_redirects = max_redirects
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or default_ssl_context(), max_connections=max_connections,
            max_keepalive_connections=min(max_connections, 8), keepalive_expiry=15.0, retries=0,
            network_backend=GuardedBackend(policy))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._pool.aclose()

    async def fetch(self, url: str) -> PageInfo | None:
        """The page's preview, or None (refused by the guard, an error, a timeout, too many
        redirects, not an HTML 200, nothing to show). Never raises but on cancellation."""
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._fetch(url)
        except TargetRefused as exc:
            log.info("preview of a link refused: %s", exc)
        except TimeoutError:
            log.info("preview fetch timed out")
        except TRANSPORT_ERRORS as exc:
            log.info("preview fetch failed: %r", exc)
        return None

    async def _fetch(self, url: str) -> PageInfo | None:
        for _ in range(self._max_redirects + 1):
            target = self.policy.parse(url)  # https only, a canonical host, no user name
            raw_target = target.url.raw_path  # path and query, no fragment
            request_url = httpcore.URL(scheme=b"https", host=target.url.raw_host, port=target.url.port,
                                       target=raw_target)
            headers = [(b"Host", target.url.netloc), (b"User-Agent", _USER_AGENT),
                       (b"Accept", b"text/html,application/xhtml+xml;q=0.9"), (b"Accept-Encoding", b"identity")]
            async with self._pool.stream("GET", request_url, headers=headers,
                                         extensions={"timeout": self._timeouts}) as response:
                status = response.status
                head = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers}
                if status in (301, 302, 303, 307, 308) and head.get("location"):
                    url = urljoin(str(target.url), head["location"].strip())
                    continue  # the next hop goes through the same checks (and the guard at connect time)
                content_type = head.get("content-type", "")
                if status != 200 or content_type.split(";")[0].strip().lower() not in _HTML:
                    return None
                body = bytearray()
                async for chunk in response.aiter_stream():
                    body += chunk[: self._cap - len(body)]
                    if len(body) >= self._cap:
                        break  # the rest is not read: the connection is closed, not reused
            info = await asyncio.to_thread(parse_page, bytes(body), content_type, str(target.url))
            return None if info.empty else info
        log.info("preview fetch gave up after %d redirects", self._max_redirects)
        return None


class Fetch(Protocol):
    async def fetch(self, url: str) -> PageInfo | None: ...


@dataclass(slots=True)
class _Entry:
    info: PageInfo | None
    expires: float
    size: int


class PreviewService:
    """Takes preview requests (``request``: never blocks, never raises) and runs the fetches and
    deliveries (``run``, a task of the composition root)."""

    def __init__(self, fetcher: Fetch, *, user_bucket: Bucket, global_bucket: Bucket, queue_max: int = 1000,
                 concurrency: int = 8, cache_entries: int = 10_000, cache_bytes: int = 8 << 20,
                 ttl_s: float = 3600.0, negative_ttl_s: float = 60.0, max_url: int = 2048,
                 images: bool = True, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._fetcher = fetcher
        self._user_bucket = user_bucket
        self._global_bucket = global_bucket
        self._queue: asyncio.Queue[PreviewJob] = asyncio.Queue(queue_max)
        self._concurrency = concurrency
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._cache_entries = cache_entries
        self._cache_bytes = cache_bytes
        self._cached_bytes = 0
        self._ttl = ttl_s
        self._negative_ttl = negative_ttl_s
        self._inflight: dict[str, asyncio.Future[PageInfo | None]] = {}
        self._max_url = max_url
        self._images = images
        self._now = monotonic
        self.stats = PreviewStats()

    def link(self, text: str | None) -> str | None:
        """The link of ``text`` a preview would be for (None: none)."""
        return first_https_url(text, self._max_url)

    def job(self, msg_id: str, conv: str, seq: int, uid: str, text: str | None, to: tuple[str, ...]
            ) -> PreviewJob | None:
        """The preview job of a text message (None: no link to preview). Cheap for a text
        without ``https://``: a substring test."""
        url = first_https_url(text, self._max_url)
        return PreviewJob(msg_id, conv, seq, uid, url, to) if url is not None else None

    def request(self, job: PreviewJob) -> bool:
        """Queue ``job``: False when it is not (a bucket is empty, or the queue is full; counted)."""
        self.stats.requested += 1
        fetch = self._cached(job.key) is None and job.key not in self._inflight
        if fetch and (self._user_bucket.take(job.uid) or self._global_bucket.take("*")):
            self.stats.rate_limited += 1
            return False
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            return False
        return True

    def _cached(self, key: str) -> _Entry | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        if entry.expires <= self._now():
            self._forget(key)
            return None
        self._cache.move_to_end(key)
        return entry

    def _forget(self, key: str) -> None:
        entry = self._cache.pop(key, None)
        if entry is not None:
            self._cached_bytes -= entry.size

    def _store(self, key: str, info: PageInfo | None) -> None:
        self._forget(key)
        size = len(key) + 64 + (len(info.title) + len(info.description) + len(info.image or "") if info else 0)
        ttl = self._ttl if info is not None else self._negative_ttl
        self._cache[key] = _Entry(info, self._now() + ttl, size)
        self._cached_bytes += size
        while self._cache and (len(self._cache) > self._cache_entries or self._cached_bytes > self._cache_bytes):
            self._forget(next(iter(self._cache)))

    async def lookup(self, key: str, url: str) -> PageInfo | None:
        """The page info of ``url``: cached, or fetched once however many ask at the same time."""
        entry = self._cached(key)
        if entry is not None:
            self.stats.cache_hits += 1
            return entry.info
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[PageInfo | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            info = await self._fetcher.fetch(url)
            if info is not None:
                self.stats.fetched += 1
            else:
                self.stats.failed += 1
            self._store(key, info)
            fut.set_result(info)
            return info
        except BaseException:
            fut.cancel()
            raise
        finally:
            self._inflight.pop(key, None)

    async def run(self, deliver: Deliver) -> None:
        """The workers: fetch (or find in the cache) each queued job's page and ``deliver`` its
        preview, until cancelled."""
        async with asyncio.TaskGroup() as tg:
            for i in range(self._concurrency):
                tg.create_task(self._work(deliver), name=f"imgate.previews.worker[{i}]")

    async def _work(self, deliver: Deliver) -> None:
        while True:
            job = await self._queue.get()
            try:
                info = await self.lookup(job.key, job.url)
                if info is not None:
                    await deliver(job, Preview(job.url, info.title, info.description,
                                               info.image if self._images else None))
                    self.stats.sent += 1
            except Exception:
                log.exception("preview of message %s failed", job.id)

    def counters(self) -> dict[str, int]:
        return {f.name: getattr(self.stats, f.name) for f in fields(self.stats)}
