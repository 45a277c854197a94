"""The bridge's ingress: what clients published, waiting to be handled, fair between users.

One bounded queue per key (the uid in the topic; the broker's ACL guarantees it is the
publisher's), served round-robin, so a user who floods waits behind their own messages and never
in front of anybody else's. Bounds, all in count and bytes:

- per key: ``key_items`` messages and ``key_bytes`` bytes waiting;
- overall: ``total_bytes`` waiting (a user with nothing waiting may still queue one message past
  it, so a flood cannot shut everybody else out, but never past twice it);
- in the lanes (taken, not yet finished): ``key_inflight`` commands per key and ``max_inflight``
  overall, so one user can occupy only a few places in front of others in a shared lane.

``offer`` never blocks and never drops: it answers whether the message was taken. A producer
that must not lose a message (the broker, for a PUBLISH it is about to acknowledge) waits on
``room(key)`` and offers again, and meanwhile stops reading that client: back-pressure instead of
a drop. ``force`` takes a message past the bounds, for producers that cannot wait (the broker's
own presence announcements and wills, one per connect or disconnect).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from broker.codec import properties_size


class Receipt(Protocol):
    """A producer's handle on one message it offered (the AMQP transport's delivery): settled by
    the bridge once the message's command has finished (stored, its replies and deliveries
    confirmed by the broker, or answered with an error), so the producer acknowledges it to its
    queue only then. One never settled (a crash, a handover) is delivered again, to this bridge
    or another; the ``cid`` makes the retry harmless (protocol §3)."""

    def settle(self) -> None: ...


Item = tuple[str, bytes, dict[int, Any] | None, Receipt | None]


@dataclass(slots=True)
class IngressStats:
    offered: int = 0
    refused: int = 0  # offers turned away while full (the producer waits and retries)
    forced: int = 0


@dataclass(frozen=True, slots=True)
class IngressLimits:
    key_items: int = 100
    key_bytes: int = 1 << 20
    total_bytes: int = 64 << 20
    key_inflight: int = 32
    max_inflight: int = 4096


class Ingress:
    """Per-key fair queues with bounded waiting and bounded work in progress."""

    def __init__(self, key_of: Callable[[str], str] | None = None, limits: IngressLimits | None = None) -> None:
        self._key_of = key_of or key_of_topic
        self.limits = limits or IngressLimits()
        self._queues: dict[str, deque[Item]] = {}
        self._bytes: dict[str, int] = {}
        self._inflight: dict[str, int] = {}
        self._ready: deque[str] = deque()  # keys with waiting items and room in the lanes
        self._in_ready: set[str] = set()
        self._total_bytes = 0
        self._total_inflight = 0
        self._room: dict[str, list[asyncio.Future[None]]] = {}
        self._room_any: list[asyncio.Future[None]] = []  # refused with nothing of their own waiting
        self._work = asyncio.Event()
        self._idle = asyncio.Event()  # nothing waiting and nothing being handled
        self._idle.set()
        self._closed = False
        self.stats = IngressStats()

    # ---- producers -------------------------------------------------------------------------
    def offer(self, topic: str, payload: bytes, *, force: bool = False, props: dict[int, Any] | None = None,
              receipt: Receipt | None = None) -> bool:
        """Queue a message for its key; False (nothing queued) when that key or the whole
        ingress is full, unless ``force``. ``props``: the MQTT 5 properties of the PUBLISH;
        ``receipt``: settled once the message is handled (see ``Receipt``)."""
        if self._closed:
            self.stats.refused += 1
            return False
        key = self._key_of(topic)
        queue = self._queues.get(key)
        size = len(payload) + len(topic) + (properties_size(props) if props else 0)
        if not force and queue is not None and (
                len(queue) >= self.limits.key_items or self._bytes[key] + size > self.limits.key_bytes):
            self.stats.refused += 1
            return False
        if not force and self._total_bytes + size > self.limits.total_bytes and (
                queue or self._total_bytes + size > 2 * self.limits.total_bytes):
            # Overall full: a key with nothing waiting still gets one message in (so a flood
            # cannot shut everybody else out), up to a hard ceiling (so many users cannot each
            # add one without end); the others wait.
            self.stats.refused += 1
            return False
        if queue is None:
            queue = self._queues[key] = deque()
            self._bytes[key] = 0
        queue.append((topic, payload, props, receipt))
        self._bytes[key] += size
        self._total_bytes += size
        self._idle.clear()
        self.stats.offered += 1
        if force:
            self.stats.forced += 1
        self._mark_ready(key)
        return True

    def room(self, topic: str) -> asyncio.Future[None]:
        """Resolves when the key of ``topic`` has had a message taken (offer again then)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        key = self._key_of(topic)
        if self._closed:
            fut.set_exception(ConnectionAbortedError("the bridge has stopped"))
        elif key in self._queues:
            self._room.setdefault(key, []).append(fut)  # resolved when one of its messages is taken
        else:
            self._room_any.append(fut)  # refused at the ceiling: resolved when the total is below the bound
        return fut

    # ---- the consumer ----------------------------------------------------------------------
    async def take(self) -> tuple[str, str, bytes, dict[int, Any] | None, Receipt | None]:
        """The next (key, topic, payload, MQTT 5 properties, receipt), round-robin between keys;
        waits for one. The caller must ``release(key)`` once it has finished with it, and settle
        its receipt."""
        while not self._ready or self._total_inflight >= self.limits.max_inflight:
            self._work.clear()
            await self._work.wait()
        key = self._ready.popleft()
        self._in_ready.discard(key)
        queue = self._queues[key]
        topic, payload, props, receipt = queue.popleft()
        size = len(payload) + len(topic) + (properties_size(props) if props else 0)
        self._bytes[key] -= size
        self._total_bytes -= size
        if not queue:
            del self._queues[key], self._bytes[key]
        self._inflight[key] = self._inflight.get(key, 0) + 1
        self._total_inflight += 1
        self._mark_ready(key)
        self._wake_room(key)
        return key, topic, payload, props, receipt

    def release(self, key: str) -> None:
        """A message taken for ``key`` is finished: its place in the lanes is free again."""
        left = self._inflight.get(key, 0) - 1
        if left > 0:
            self._inflight[key] = left
        else:
            self._inflight.pop(key, None)
        self._total_inflight -= 1
        self._mark_ready(key)
        if self._ready and self._total_inflight < self.limits.max_inflight:
            self._work.set()
        if not self._queues and not self._total_inflight:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Until nothing is waiting and nothing is being handled."""
        await self._idle.wait()

    def close(self) -> None:
        """Take nothing more: producers waiting for room are told (their clients are dropped
        unacknowledged, and send again to whoever serves them next)."""
        self._closed = True
        for fut in [f for waiters in self._room.values() for f in waiters] + self._room_any:
            if not fut.done():
                fut.set_exception(ConnectionAbortedError("the bridge has stopped"))
        self._room.clear()
        self._room_any = []

    # ---- introspection ---------------------------------------------------------------------
    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._queues.values())

    @property
    def waiting_bytes(self) -> int:
        return self._total_bytes

    @property
    def inflight(self) -> int:
        return self._total_inflight

    # ---- internals -------------------------------------------------------------------------
    def _mark_ready(self, key: str) -> None:
        if key in self._in_ready or key not in self._queues:
            return
        if self._inflight.get(key, 0) >= self.limits.key_inflight:
            return  # released later, then ready again
        self._ready.append(key)
        self._in_ready.add(key)
        self._work.set()

    def _wake_room(self, key: str) -> None:
        # A refused key with messages waiting tries again when one of them is taken; one refused
        # at the ceiling with nothing waiting, when the total is back under the bound.
        waiters = self._room.pop(key, [])
        if self._room_any and self._total_bytes <= self.limits.total_bytes:
            waiters += self._room_any
            self._room_any = []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)


def key_of_topic(topic: str) -> str:
    """Which queue a topic goes to: its second level (the uid in ``{p}/{uid}/out/…`` and
    ``presence/{uid}/{device}``), else the topic itself."""
    first = topic.find("/")
    if first < 0:
        return topic
    second = topic.find("/", first + 1)
    return topic[first + 1:second] if second > 0 else topic[first + 1:]
