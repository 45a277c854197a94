"""Per-session outgoing delivery: QoS 1 in-flight window, bounded offline queue, redelivery.

amqtt 0.12.1 sends each delivery from its own task that waits for the PUBACK and drops the
message after a hard-coded 5 s; keeps offline messages in an unbounded queue and replays them
with the retain flag set; and forgets unacknowledged in-flight messages on reconnect. The Outbox
replaces that for every subscriber:

- a delivery is encoded once and written straight to the socket when the session is connected
  and has room in its in-flight window; otherwise it waits in a bounded queue;
- an in-flight QoS 1 message stays until its PUBACK, however long that takes; on a persistent
  session's reconnect the unacknowledged ones are sent again with DUP set, then the queue;
- the window and the queue are bounded in count *and* bytes (one message over the byte bound
  still goes when nothing else is in flight or queued, so a large history page is never stuck);
- when the queue is full the configured policy drops the oldest (default) or the newest message,
  and counts it. A *connected* client whose queue is full and which has acknowledged nothing for
  ``stall_s`` is not reading: its connection is aborted (a slow consumer; counted) rather than
  kept with the server's memory. What it missed stays in history.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from broker.framing import remaining_length

log = logging.getLogger("imgate.broker")

OfflinePolicy = Literal["drop_oldest", "drop_newest"]
_WRITE_BUFFER_LIMIT = 1 << 20  # a client that does not read: queue instead of buffering more


class Wire(Protocol):
    """Where an Outbox writes: the live connection's socket."""

    def write(self, data: bytes) -> None: ...

    def buffered(self) -> int: ...

    def abort(self) -> None:
        """Close the connection now (the client is not reading)."""


def encode_publish(topic: bytes, payload: bytes, qos: int, packet_id: int = 0, *, dup: bool = False,
                   retain: bool = False) -> bytes:
    """One MQTT 3.1.1 PUBLISH packet. ``topic`` is the UTF-8 topic name."""
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    variable = len(topic).to_bytes(2, "big") + topic + (packet_id.to_bytes(2, "big") if qos else b"")
    return bytes((0x30 | flags,)) + remaining_length(len(variable) + len(payload)) + variable + payload


@dataclass(slots=True)
class Stats:
    """Broker-wide delivery counters (read by metrics)."""

    delivered: int = 0
    queued: int = 0
    redelivered: int = 0
    dropped_offline: int = 0
    dropped_qos0: int = 0
    slow_consumers: int = 0  # connections aborted because their outbox was full
    paced: int = 0  # times a connection was read more slowly for sending over its publish rate


@dataclass(slots=True)
class _Pending:
    topic: bytes
    payload: bytes
    qos: int
    retain: bool = False

    @property
    def size(self) -> int:
        return len(self.topic) + len(self.payload)


@dataclass(slots=True)
class Outbox:
    client_id: str
    stats: Stats
    max_inflight: int = 100
    max_queued: int = 1000
    policy: OfflinePolicy = "drop_oldest"
    device: str | None = None  # a user's device (None: a service account)
    max_inflight_bytes: int = 1 << 20
    max_queued_bytes: int = 4 << 20
    reads: Callable[[str], bool] | None = None  # checked on every delivery (None: may read anything)
    stall_s: float = 5.0  # connected, full, and no PUBACK for this long: a slow consumer
    wire: Wire | None = None
    inflight: dict[int, _Pending] = field(default_factory=dict)  # insertion-ordered
    queue: deque[_Pending] | None = None  # created on first use: most sessions never queue
    inflight_bytes: int = 0
    queued_bytes: int = 0
    _next_id: int = 0
    _aborted: bool = False
    paused: int = 0  # >0 while the server itself is not reading this client (pace, back-pressure)
    _progress: float = 0.0  # monotonic time since which an acknowledgement is awaited (last PUBACK, or first send)
    _stall_timer: asyncio.TimerHandle | None = None

    # ---- delivery ------------------------------------------------------------------------
    def deliver(self, topic: bytes, payload: bytes, qos: int, retain: bool = False) -> None:
        """Send now if possible, else queue (QoS 1) or drop (QoS 0 while away)."""
        wire = self.wire
        if qos == 0:
            if wire is not None and wire.buffered() < _WRITE_BUFFER_LIMIT:
                wire.write(encode_publish(topic, payload, 0, retain=retain))
                self.stats.delivered += 1
            else:
                self.stats.dropped_qos0 += 1
            return
        item = _Pending(topic, payload, 1, retain)
        if wire is not None and not self.queue and self._has_room(wire, item.size):
            self._send(wire, item)
        else:
            self._enqueue(item)

    def ack(self, packet_id: int) -> None:
        """PUBACK received: free the slot, send what waits."""
        item = self.inflight.pop(packet_id, None)
        if item is not None:
            self.inflight_bytes -= item.size
            self._progress = time.monotonic()
            self._drain()

    # ---- connection lifecycle ------------------------------------------------------------
    def attach(self, wire: Wire) -> None:
        """A connection resumed this session: resend unacknowledged messages (DUP), then the queue."""
        self.wire = wire
        self._aborted = False
        self._progress = time.monotonic()
        for packet_id, item in self.inflight.items():
            wire.write(encode_publish(item.topic, item.payload, item.qos, packet_id, dup=True))
            self.stats.redelivered += 1
        self._drain()

    def detach(self) -> None:
        self.wire = None
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    # ---- internals -----------------------------------------------------------------------
    def _has_room(self, wire: Wire, size: int) -> bool:
        if not self.inflight:
            return wire.buffered() < _WRITE_BUFFER_LIMIT
        return (len(self.inflight) < self.max_inflight and self.inflight_bytes + size <= self.max_inflight_bytes
                and wire.buffered() < _WRITE_BUFFER_LIMIT)

    def _send(self, wire: Wire, item: _Pending) -> None:
        if not self.inflight:
            self._progress = time.monotonic()  # from now on an acknowledgement is due
        packet_id = self._allocate_id()
        self.inflight[packet_id] = item
        self.inflight_bytes += item.size
        # Retain is only ever set on a retained message sent because of a new subscription.
        wire.write(encode_publish(item.topic, item.payload, 1, packet_id, retain=item.retain))
        item.retain = False  # a redelivery is not a retained-replay any more
        self.stats.delivered += 1

    def _full(self, size: int) -> bool:
        queue = self.queue
        return queue is not None and len(queue) > 0 and (
            len(queue) >= self.max_queued or self.queued_bytes + size > self.max_queued_bytes)

    def _enqueue(self, item: _Pending) -> None:
        if self.queue is None:
            self.queue = deque()
        if self.wire is not None and not self._aborted and self._stall_timer is None and self._full(item.size):
            self._check_stall()
        if self.max_queued == 0:
            self.stats.dropped_offline += 1
            return
        while self._full(item.size):
            self.stats.dropped_offline += 1
            if self.policy == "drop_newest":
                log.warning("queue of %s is full: dropped a new message", self.client_id)
                return
            self.queued_bytes -= self.queue.popleft().size
            log.warning("queue of %s is full: dropped the oldest message", self.client_id)
        self.queue.append(item)
        self.queued_bytes += item.size
        self.stats.queued += 1

    def _check_stall(self) -> None:
        """Connected, its queue full (now or when armed), and nothing acknowledged for
        ``stall_s``: the client does not read; cut it off. Otherwise look again when it would be."""
        self._stall_timer = None
        if self.wire is None or self._aborted or not self.queue:
            return
        if self.paused:
            self._progress = time.monotonic()  # the server is not reading it: not the client's stall
        idle = time.monotonic() - self._progress
        if idle >= self.stall_s:
            self._aborted = True
            self.stats.slow_consumers += 1
            log.warning("%s does not read (%d messages, %d bytes waiting, nothing acknowledged for %.1f s): "
                        "disconnecting it", self.client_id, len(self.queue), self.queued_bytes, idle)
            self.wire.abort()
        else:
            self._stall_timer = asyncio.get_running_loop().call_later(self.stall_s - idle, self._check_stall)

    def _drain(self) -> None:
        wire, queue = self.wire, self.queue
        while wire is not None and queue and self._has_room(wire, queue[0].size):
            item = queue.popleft()
            self.queued_bytes -= item.size
            self._send(wire, item)

    def _allocate_id(self) -> int:
        for _ in range(65535):
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self.inflight:
                return self._next_id
        msg = "no free packet id"  # unreachable: max_inflight < 65535
        raise RuntimeError(msg)
