"""Per-session outgoing delivery: QoS 1 in-flight window, bounded offline queue, redelivery.

amqtt 0.12.1 sends each delivery from its own task that waits for the PUBACK and drops the
message after a hard-coded 5 s; keeps offline messages in an unbounded queue and replays them
with the retain flag set; and forgets unacknowledged in-flight messages on reconnect. The Outbox
replaces that for every subscriber:

- a delivery is encoded once and written straight to the socket when the session is connected
  and has room in its in-flight window; otherwise it waits in a bounded queue;
- an in-flight QoS 1 message stays until its PUBACK, however long that takes; on a persistent
  session's reconnect the unacknowledged ones are sent again with DUP set, then the queue;
- when the queue is full the configured policy drops the oldest (default) or the newest message,
  and counts it.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Literal, Protocol

log = logging.getLogger("imgate.broker")

OfflinePolicy = Literal["drop_oldest", "drop_newest"]
_WRITE_BUFFER_LIMIT = 1 << 20  # a client that does not read: queue instead of buffering more


class Wire(Protocol):
    """Where an Outbox writes: the live connection's socket."""

    def write(self, data: bytes) -> None: ...

    def buffered(self) -> int: ...


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def encode_publish(topic: bytes, payload: bytes, qos: int, packet_id: int = 0, *, dup: bool = False,
                   retain: bool = False) -> bytes:
    """One MQTT 3.1.1 PUBLISH packet. ``topic`` is the UTF-8 topic name."""
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    variable = len(topic).to_bytes(2, "big") + topic + (packet_id.to_bytes(2, "big") if qos else b"")
    return bytes((0x30 | flags,)) + _remaining_length(len(variable) + len(payload)) + variable + payload


@dataclass(slots=True)
class Stats:
    """Broker-wide delivery counters (read by metrics)."""

    delivered: int = 0
    queued: int = 0
    redelivered: int = 0
    dropped_offline: int = 0
    dropped_qos0: int = 0


@dataclass(slots=True)
class _Pending:
    topic: bytes
    payload: bytes
    qos: int
    retain: bool = False


@dataclass(slots=True)
class Outbox:
    client_id: str
    stats: Stats
    max_inflight: int = 100
    max_queued: int = 1000
    policy: OfflinePolicy = "drop_oldest"
    device: str | None = None  # a user's device (None: a service account)
    wire: Wire | None = None
    inflight: dict[int, _Pending] = field(default_factory=dict)  # insertion-ordered
    queue: deque[_Pending] | None = None  # created on first use: most sessions never queue
    _next_id: int = 0

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
        if wire is not None and not self.queue and self._has_room(wire):
            self._send(wire, item)
        else:
            self._enqueue(item)

    def ack(self, packet_id: int) -> None:
        """PUBACK received: free the slot, send what waits."""
        if self.inflight.pop(packet_id, None) is not None:
            self._drain()

    # ---- connection lifecycle ------------------------------------------------------------
    def attach(self, wire: Wire) -> None:
        """A connection resumed this session: resend unacknowledged messages (DUP), then the queue."""
        self.wire = wire
        for packet_id, item in self.inflight.items():
            wire.write(encode_publish(item.topic, item.payload, item.qos, packet_id, dup=True))
            self.stats.redelivered += 1
        self._drain()

    def detach(self) -> None:
        self.wire = None

    # ---- internals -----------------------------------------------------------------------
    def _has_room(self, wire: Wire) -> bool:
        return len(self.inflight) < self.max_inflight and wire.buffered() < _WRITE_BUFFER_LIMIT

    def _send(self, wire: Wire, item: _Pending) -> None:
        packet_id = self._allocate_id()
        self.inflight[packet_id] = item
        # Retain is only ever set on a retained message sent because of a new subscription.
        wire.write(encode_publish(item.topic, item.payload, 1, packet_id, retain=item.retain))
        item.retain = False  # a redelivery is not a retained-replay any more
        self.stats.delivered += 1

    def _enqueue(self, item: _Pending) -> None:
        if self.queue is None:
            self.queue = deque()
        if len(self.queue) >= self.max_queued:
            self.stats.dropped_offline += 1
            if self.policy == "drop_newest" or not self.queue:
                log.warning("queue of %s is full (%d): dropped a new message", self.client_id, self.max_queued)
                return
            self.queue.popleft()
            log.warning("queue of %s is full (%d): dropped the oldest message", self.client_id, self.max_queued)
        self.queue.append(item)
        self.stats.queued += 1

    def _drain(self) -> None:
        wire = self.wire
        while wire is not None and self.queue and self._has_room(wire):
            self._send(wire, self.queue.popleft())

    def _allocate_id(self) -> int:
        for _ in range(65535):
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self.inflight:
                return self._next_id
        msg = "no free packet id"  # unreachable: max_inflight < 65535
        raise RuntimeError(msg)
