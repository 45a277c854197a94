"""Per-session outgoing delivery: in-flight window (QoS 1 and 2), bounded offline queue, redelivery.

- a delivery is sent at once when the session is connected and has room in its in-flight window
  (the smaller of the server's ``max_inflight`` and the client's MQTT 5 Receive Maximum);
  otherwise it waits in a bounded queue;
- an in-flight message stays until it is acknowledged (PUBACK; PUBREC then PUBCOMP for QoS 2),
  however long that takes; on a persistent session's reconnect the unacknowledged PUBLISHes are
  sent again with DUP set and the released QoS 2 ones get their PUBREL again, then the queue;
- a message whose MQTT 5 Message Expiry Interval has passed is dropped instead of sent;
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
from typing import Any, Literal, Protocol

from broker.codec import P_CONTENT_TYPE, properties_size
from broker.payload import Payload, label

log = logging.getLogger("imgate.broker")

OfflinePolicy = Literal["drop_oldest", "drop_newest"]
_WRITE_BUFFER_LIMIT = 1 << 20  # a client that does not read: queue instead of buffering more


@dataclass(slots=True)
class Message:
    """A routed application message, shared by all its deliveries."""

    topic: str
    payload: bytes
    qos: int
    retain: bool = False
    props: dict[int, Any] | None = None  # MQTT 5 properties passed through (user properties, response topic...)
    expires_at: float | None = None  # monotonic deadline (MQTT 5 Message Expiry Interval)
    publisher: str | None = None  # client id of the publishing connection (for no-local)
    size: int = field(init=False)  # what it weighs in the byte bounds: topic, payload and properties
    origin: Message | None = field(default=None, repr=False)  # a conversion's: the message as published

    def __post_init__(self) -> None:
        self.size = len(self.topic) + len(self.payload) + (properties_size(self.props) if self.props else 0)

    def read_as(self, content_type: str) -> Message:
        """This message as a reader of ``content_type`` gets it: converted when the server
        published it as a :class:`Payload` of another (the payload converts once per content
        type), else as it is. (A conversion refers to its origin, never the other way: no cycle
        for the garbage collector to find.)"""
        m = self.origin or self
        payload = m.payload
        if not isinstance(payload, Payload) or payload.content_type == content_type:
            return m
        data = payload.convert(content_type)
        if data is None:
            return m
        props = m.props
        return Message(m.topic, data, m.qos, m.retain,
                       label(content_type) if props is None or props is label(payload.content_type)
                       else {**props, P_CONTENT_TYPE: content_type}, m.expires_at, m.publisher, origin=m)


@dataclass(slots=True)
class Pending:
    """One delivery to one session."""

    message: Message
    qos: int
    retain: bool = False
    sub_ids: list[int] | None = None
    released: bool = False  # QoS 2: PUBREC received, PUBREL sent, waiting for PUBCOMP

    @property
    def size(self) -> int:
        return self.message.size


class Wire(Protocol):
    """Where an Outbox sends: the live connection."""

    def publish(self, item: Pending, packet_id: int, *, dup: bool = False) -> bool:
        """Send a PUBLISH; False if the client cannot take it (over its Maximum Packet Size, or
        expired): the server then acts as if it was delivered."""

    def pubrel(self, packet_id: int) -> None: ...

    def buffered(self) -> int: ...

    def abort(self) -> None:
        """Close the connection now (the client is not reading)."""


@dataclass(slots=True)
class Stats:
    """Broker-wide delivery counters (read by metrics)."""

    delivered: int = 0
    queued: int = 0
    redelivered: int = 0
    dropped_offline: int = 0
    dropped_qos0: int = 0
    dropped_expired: int = 0  # MQTT 5 messages whose expiry interval passed before they could be sent
    dropped_too_large: int = 0  # over a client's Maximum Packet Size
    slow_consumers: int = 0  # connections aborted because their outbox was full
    unread_cutoffs: int = 0  # connections aborted for not reading the answers to what they sent
    delayed_refusals: int = 0  # refused logins answered after broker.refusal_delay_ms
    paced: int = 0  # times a connection was read more slowly for sending over its publish rate


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
    stall_s: float = 5.0  # connected, full, and no acknowledgement for this long: a slow consumer
    wire: Wire | None = None
    window: int = 100  # in-flight limit of the live connection: min(max_inflight, its Receive Maximum)
    inflight: dict[int, Pending] = field(default_factory=dict)  # insertion-ordered
    queue: deque[Pending] | None = None  # created on first use: most sessions never queue
    inflight_bytes: int = 0
    queued_bytes: int = 0
    _next_id: int = 0
    _aborted: bool = False
    paused: int = 0  # >0 while the server itself is not reading this client (pace, back-pressure)
    _progress: float = 0.0  # monotonic time since which an acknowledgement is awaited
    _stall_timer: asyncio.TimerHandle | None = None
    content_type: str | None = None  # what its reader reads (None: every message as published)

    # ---- delivery ------------------------------------------------------------------------
    def deliver(self, message: Message, qos: int, retain: bool = False, sub_ids: list[int] | None = None) -> None:
        """Send now if possible, else queue (QoS 1/2) or drop (QoS 0 while away)."""
        if self.content_type is not None:
            message = message.read_as(self.content_type)
        wire = self.wire
        if qos == 0:
            if wire is not None and wire.buffered() < _WRITE_BUFFER_LIMIT:
                if wire.publish(Pending(message, 0, retain, sub_ids), 0):
                    self.stats.delivered += 1
            else:
                self.stats.dropped_qos0 += 1
            return
        item = Pending(message, qos, retain, sub_ids)
        if wire is not None and not self.queue and self._has_room(wire, item.size):
            self._send(wire, item)
        else:
            self._enqueue(item)

    def ack(self, packet_id: int) -> bool:
        """PUBACK (QoS 1) or PUBCOMP (QoS 2) received: free the slot, send what waits. False:
        no message of that id was in flight."""
        item = self.inflight.pop(packet_id, None)
        if item is None:
            return False
        self.inflight_bytes -= item.size
        self._progress = time.monotonic()
        self._drain()
        return True

    def received(self, packet_id: int, reason: int = 0) -> bool:
        """PUBREC for a QoS 2 message: release it (PUBREL), or drop it if the client refused it.
        False: no unreleased QoS 2 message of that id was in flight."""
        item = self.inflight.get(packet_id)
        if item is None or item.qos != 2:
            if self.wire is not None and item is None:
                self.wire.pubrel(packet_id)  # a PUBREC for a released id: answer so the client can finish
            return False
        first = not item.released  # a repeated PUBREC is answered again, but was not paid for
        if reason >= 0x80:
            return self.ack(packet_id) and first
        item.released = True
        self._progress = time.monotonic()
        if self.wire is not None:
            self.wire.pubrel(packet_id)
        return first

    def read_as(self, content_type: str | None) -> None:
        """A connection of this session reads ``content_type`` (its login's): what waits for it,
        queued or unacknowledged, is converted if the last connection read another."""
        if content_type == self.content_type:
            return
        self.content_type = content_type

        def conv(item: Pending) -> int:
            before = item.size
            origin = item.message.origin or item.message
            item.message = origin if content_type is None else origin.read_as(content_type)
            return item.size - before

        for item in self.inflight.values():
            self.inflight_bytes += conv(item)
        for item in self.queue or ():
            self.queued_bytes += conv(item)

    # ---- connection lifecycle ------------------------------------------------------------
    def attach(self, wire: Wire, receive_maximum: int = 65535) -> None:
        """A connection resumed this session: resend unacknowledged messages (DUP) and PUBRELs,
        then the queue."""
        self.wire = wire
        self.window = max(1, min(self.max_inflight, receive_maximum))
        self._aborted = False
        self._progress = time.monotonic()
        for packet_id, item in self.inflight.items():
            if item.released:
                wire.pubrel(packet_id)
            else:
                wire.publish(item, packet_id, dup=True)
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
        return (len(self.inflight) < self.window and self.inflight_bytes + size <= self.max_inflight_bytes
                and wire.buffered() < _WRITE_BUFFER_LIMIT)

    def _send(self, wire: Wire, item: Pending) -> None:
        expires = item.message.expires_at
        if expires is not None and expires <= time.monotonic():
            self.stats.dropped_expired += 1
            return
        packet_id = self._allocate_id()
        if not wire.publish(item, packet_id):
            self.stats.dropped_too_large += 1
            return
        if not self.inflight:
            self._progress = time.monotonic()  # from now on an acknowledgement is due
        self.inflight[packet_id] = item
        self.inflight_bytes += item.size
        item.retain = False  # a redelivery is not a retained replay any more
        self.stats.delivered += 1

    def _full(self, size: int) -> bool:
        queue = self.queue
        return queue is not None and len(queue) > 0 and (
            len(queue) >= self.max_queued or self.queued_bytes + size > self.max_queued_bytes)

    def _enqueue(self, item: Pending) -> None:
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
            wire = self.wire  # sending may have closed the connection

    def _allocate_id(self) -> int:
        for _ in range(65535):
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self.inflight:
                return self._next_id
        msg = "no free packet id"  # unreachable: max_inflight < 65535
        raise RuntimeError(msg)
