"""The link preview service's own rules, on a fake fetcher and a hand-moved clock: the cache (LRU
in entries and bytes, TTL, failures kept briefly), one fetch per URL at a time, the buckets, the
bounded queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.previews.parse import PageInfo
from services.previews.service import Preview, PreviewJob, PreviewService


class Pages:
    """A fetcher answering ``answers[url]`` (None: no preview); ``gate`` holds every fetch while clear."""

    def __init__(self) -> None:
        self.answers: dict[str, PageInfo | None] = {}
        self.fetched: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.started = asyncio.Event()

    async def fetch(self, url: str) -> PageInfo | None:
        self.fetched.append(url)
        self.started.set()
        await self.gate.wait()
        return self.answers.get(url)


class Bucket:
    """``tokens`` per key, never refilled."""

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens
        self.left: dict[str, int] = {}

    def take(self, key: str) -> int:
        left = self.left.get(key, self.tokens)
        if left <= 0:
            return 1000
        self.left[key] = left - 1
        return 0


class Clock:
    def __init__(self) -> None:
        self.s = 1000.0

    def __call__(self) -> float:
        return self.s


def info(title: str) -> PageInfo:
    return PageInfo(title, "", None)


@asynccontextmanager
async def running(svc: PreviewService) -> AsyncIterator[asyncio.Queue[tuple[PreviewJob, Preview]]]:
    got: asyncio.Queue[tuple[PreviewJob, Preview]] = asyncio.Queue()

    async def deliver(job: PreviewJob, preview: Preview) -> None:
        got.put_nowait((job, preview))

    task = asyncio.create_task(svc.run(deliver))
    try:
        yield got
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def job_for(svc: PreviewService, n: int, url: str, uid: str = "alice") -> PreviewJob:
    job = svc.job(f"m{n}", "d:alice:bob", n, uid, f"see {url}", ("alice", "bob"))
    assert job is not None
    return job


async def test_the_cache_keeps_what_fits_for_its_ttl_and_failures_briefly() -> None:
    pages, clock = Pages(), Clock()
    pages.answers = {f"https://a.example/{i}": info(f"T{i}") for i in range(3)}
    svc = PreviewService(pages, user_bucket=Bucket(100), global_bucket=Bucket(100), cache_entries=2,
                         ttl_s=60, negative_ttl_s=5, monotonic=clock)
    assert await svc.lookup("k0", "https://a.example/0") == info("T0")
    assert await svc.lookup("k1", "https://a.example/1") == info("T1")
    assert await svc.lookup("k0", "https://a.example/0") == info("T0")  # a hit: k0 is the most recent
    await svc.lookup("k2", "https://a.example/2")  # a third entry: k1, the least recent, goes
    await svc.lookup("k1", "https://a.example/1")
    assert pages.fetched == ["https://a.example/0", "https://a.example/1", "https://a.example/2",
                             "https://a.example/1"]
    clock.s += 61  # past the TTL
    await svc.lookup("k1", "https://a.example/1")
    assert pages.fetched.count("https://a.example/1") == 3
    assert await svc.lookup("bad", "https://a.example/none") is None
    assert await svc.lookup("bad", "https://a.example/none") is None  # the failure is cached...
    clock.s += 6
    await svc.lookup("bad", "https://a.example/none")  # ...briefly
    assert pages.fetched.count("https://a.example/none") == 2
    assert svc.stats.cache_hits == 2


async def test_the_cache_is_bounded_in_bytes() -> None:
    pages = Pages()
    pages.answers = {f"https://a.example/{i}": info("x" * 400) for i in range(5)}
    svc = PreviewService(pages, user_bucket=Bucket(100), global_bucket=Bucket(100), cache_bytes=1024)
    for i in range(5):
        await svc.lookup(f"k{i}", f"https://a.example/{i}")
    for i in (4, 3):  # the two most recent fit in 1 KiB
        await svc.lookup(f"k{i}", f"https://a.example/{i}")
    assert len(pages.fetched) == 5
    await svc.lookup("k0", "https://a.example/0")
    assert len(pages.fetched) == 6


async def test_one_fetch_per_url_at_a_time_and_the_buckets_and_the_queue() -> None:
    pages = Pages()
    pages.answers = {u: info(u) for u in ("https://a.example/p", "https://b.example/q", "https://c.example/r")}
    pages.gate.clear()
    svc = PreviewService(pages, user_bucket=Bucket(2), global_bucket=Bucket(100), queue_max=3, concurrency=1)
    async with running(svc) as got:
        assert svc.request(job_for(svc, 1, "https://a.example/p"))  # a token of alice's two
        await pages.started.wait()  # the worker fetches it (and holds there)
        assert svc.request(job_for(svc, 2, "https://a.example/p#other"))  # the same page, being fetched: no token
        assert svc.request(job_for(svc, 3, "https://b.example/q"))  # alice's last token
        assert not svc.request(job_for(svc, 4, "https://c.example/r"))  # none left
        assert svc.request(job_for(svc, 5, "https://c.example/r", uid="bob"))  # bob has his own
        assert not svc.request(job_for(svc, 6, "https://a.example/p", uid="bob"))  # the queue is full (3)
        pages.gate.set()
        previews = [await got.get() for _ in range(4)]
    assert [j.id for j, _ in previews] == ["m1", "m2", "m3", "m5"]
    assert [p.url for _, p in previews][:2] == ["https://a.example/p", "https://a.example/p#other"]
    assert pages.fetched == ["https://a.example/p", "https://b.example/q", "https://c.example/r"]
    assert svc.stats.rate_limited == 1 and svc.stats.dropped == 1 and svc.stats.cache_hits == 1
