"""The asyncio shell of one client connection: it owns the transport (TCP, TLS or WebSocket, from
``broker.listeners``), the keep-alive timer, the read loop and the writes; the protocol is the
sans-IO :class:`broker.connection.Connection`, the decisions are the hub's.

- Packets are handled one at a time, in order, inline (no task per packet): not reading is real
  back-pressure. A client over its publish rate, or whose PUBLISH the bridge cannot take yet, is
  simply not read until it may go on; nothing it sent is dropped after its PUBACK.
- Everything written in one event-loop turn goes to the transport in one write.
- The keep-alive is one timer per connection, looked at when it fires (no timer per read).
- The server ends a connection (kick, revoke, take-over, keep-alive, shutdown) by queueing an
  MQTT 5 DISCONNECT with its reason and cancelling the read loop, which then cleans up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from broker import codec
from broker.connection import (
    NEED_DATA,
    QUOTA_EXCEEDED,
    AckReceived,
    Connection,
    ConnectRequested,
    ControlReceived,
    DisconnectRequested,
    ProtocolErrorEvent,
    PublishReceived,
    ServerLimits,
    SubscribeRequested,
    UnsubscribeRequested,
)
from broker.outbox import Pending

if TYPE_CHECKING:
    from broker.hub import Hub
    from broker.listeners import Transport
    from broker.sessions import Session

log = logging.getLogger("imgate.broker")

CONNECT_TIMEOUT = 10.0  # a socket that sends no CONNECT in this time is closed
CLOSE_TIMEOUT = 1.0  # a closing connection gets this long to take what is still buffered for it
READ_CHUNK = 65536
PACKETS_PER_TURN = 64  # packets of one connection handled before the others get the event loop


class Pace:
    """A token bucket in monotonic time: how long to wait before the next packet may be read."""

    __slots__ = ("_burst", "_last", "_rate", "_tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self._rate, self._burst = rate, max(1.0, burst)
        self._tokens, self._last = self._burst, time.monotonic()

    def delay(self, cost: int = 1) -> float:
        """Take ``cost`` tokens (going into debt if need be): how long to wait before going on."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate) - cost
        self._last = now
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate


class Link:
    """One client connection: the Wire its session's Outbox writes to."""

    __slots__ = ("_cancellable", "_flush_pending", "_grace", "_hub", "_ka_timer", "_last_read", "_max_unread",
                 "_task", "clean", "conn", "control", "ended", "pace", "session", "since", "slow_refusal",
                 "transport", "why")

    def __init__(self, transport: Transport, hub: Hub, limits: ServerLimits, grace: float,
                 max_unread: int = 8 << 20) -> None:
        self.transport = transport
        self._max_unread = max_unread  # bytes written to the client and not yet taken by it
        self.conn = Connection(limits)
        self._hub = hub
        self._grace = grace
        self.session: Session | None = None
        self.pace: Pace | None = None  # what it sends (None: no limit)
        self.control: Pace | None = None  # what it sends that asks only for an answer (PINGREQ, stray acks)
        self.clean = False  # ended by the client's DISCONNECT (no will)
        self.why = ""  # why the server ended it (for logs)
        self.since = 0  # wall-clock ms of its accepted CONNECT (0: not logged in yet)
        self.slow_refusal = False  # its login was refused in a way worth answering slowly (Hub.delay_refusal)
        self.ended: asyncio.Future[None] | None = None  # created when someone waits for the end
        self._task: asyncio.Task[Any] | None = None
        self._cancellable = False
        self._flush_pending = False
        self._ka_timer: asyncio.TimerHandle | None = None
        self._last_read = 0.0

    @property
    def client_id(self) -> str:
        return self.session.client_id if self.session is not None else "?"

    # ---- Wire (for the Outbox) -----------------------------------------------------------
    def publish(self, item: Pending, packet_id: int, *, dup: bool = False) -> bool:
        m = item.message
        props = m.props
        if m.expires_at is not None:
            remaining = math.ceil(m.expires_at - time.monotonic())
            if remaining <= 0:
                return False
            props = {**props, codec.P_MESSAGE_EXPIRY: remaining} if props else {codec.P_MESSAGE_EXPIRY: remaining}
        sent = self.conn.send_publish(m.topic, m.payload, item.qos, packet_id, dup=dup, retain=item.retain,
                                      props=props, sub_ids=item.sub_ids)
        if sent:
            self.flush_soon()
        return sent

    def pubrel(self, packet_id: int) -> None:
        self.conn.send_pubrel(packet_id)
        self.flush_soon()

    def buffered(self) -> int:
        return self.transport.buffered() + self.conn.out_bytes

    def abort(self) -> None:
        self.transport.abort()

    # ---- output ----------------------------------------------------------------------------
    def flush_soon(self) -> None:
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        data = self.conn.data_to_send()
        if data:
            self.transport.write(data)
            if self.transport.buffered() > self._max_unread and not self.why:
                # It asks (PINGREQ, unknown acks...) and does not read the answers: cut it off
                # instead of buffering for it. (Deliveries never get here: the outbox stops
                # writing to a full socket and queues, see Outbox.)
                log.warning("%s does not read its output (%d bytes waiting): disconnecting it", self.client_id,
                            self.transport.buffered())
                self._hub.stats.unread_cutoffs += 1
                self.end(QUOTA_EXCEEDED, "not reading")
                self.transport.abort()  # what it would be sent next is never read either

    # ---- the server ends it ------------------------------------------------------------------
    def end(self, reason: int, why: str) -> None:
        """Disconnect this client (MQTT 5: with a DISCONNECT carrying ``reason``). The read loop
        stops, then the hub cleans up as for a lost connection (will, presence)."""
        if self.why:
            return
        self.why = why or "ended"
        with contextlib.suppress(Exception):
            self.conn.close(reason, why=why if self.conn.level == codec.MQTT5 else None)
        self.flush_soon()
        task = self._task
        if task is not None and self._cancellable and task is not asyncio.current_task():
            task.cancel()

    async def wait_ended(self) -> None:
        if self.ended is None:
            self.ended = asyncio.get_running_loop().create_future()
        await asyncio.shield(self.ended)

    def _keepalive_check(self) -> None:
        self._ka_timer = None
        window = self.conn.keep_alive * self._grace
        idle = time.monotonic() - self._last_read
        if idle >= window:
            log.info("keep-alive expired for %s", self.client_id)
            self.end(0x8D, "keep-alive timeout")
        else:
            self._ka_timer = asyncio.get_running_loop().call_later(window - idle, self._keepalive_check)

    # ---- the read loop ------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve the connection until it ends; the transport is closed on return."""
        self._task = asyncio.current_task()
        self._cancellable = True
        try:
            if await self._connect():
                await self._serve()
        except codec.ProtocolViolation as exc:  # found by the hub (a topic name, an option)
            log.warning("%s broke the protocol (%s): closing", self.client_id, exc)
            with contextlib.suppress(Exception):
                self.conn.close(exc.reason)  # MQTT 5: a DISCONNECT saying why
        except (ConnectionError, OSError):
            log.debug("%s: connection lost", self.client_id)
        except asyncio.CancelledError:
            if not self.why:  # not our own end(): the server is shutting down
                raise
        except Exception:
            log.exception("%s: connection failed; closing", self.client_id)
        finally:
            self._cancellable = False
            if self._ka_timer is not None:
                self._ka_timer.cancel()
            try:
                if self.session is not None:
                    await self._hub.on_closed(self)
            finally:
                self._flush()
                await self.transport.close(CLOSE_TIMEOUT)
                if self.ended is not None and not self.ended.done():
                    self.ended.set_result(None)
                elif self.ended is None:
                    self.ended = asyncio.get_running_loop().create_future()
                    self.ended.set_result(None)

    async def _connect(self) -> bool:
        conn = self.conn
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                while True:
                    event = conn.next_event()
                    if event is not NEED_DATA:
                        break
                    data = await self.transport.read(READ_CHUNK)
                    if not data:
                        return False
                    conn.receive_data(data)
        except TimeoutError:
            log.info("no CONNECT from %s within %.0f s", self.transport.peer, CONNECT_TIMEOUT)
            return False
        if not isinstance(event, ConnectRequested):
            if isinstance(event, ProtocolErrorEvent):
                log.info("no valid CONNECT from %s: %s", self.transport.peer, event.message)
                await self._hub.delay_refusal(self)  # its CONNACK, if any, is written on return
            return False
        accepted = await self._hub.on_connect(self, event.connect)
        if not accepted and self.slow_refusal:
            await self._hub.delay_refusal(self)
        self._flush()
        return accepted

    async def _serve(self) -> None:
        conn, hub, transport = self.conn, self._hub, self.transport
        self._last_read = time.monotonic()
        if conn.keep_alive:
            self._ka_timer = asyncio.get_running_loop().call_later(conn.keep_alive * self._grace,
                                                                  self._keepalive_check)
        turn = 0  # packets handled since this connection last let the others run
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                # The answers to everything this read brought (PUBACKs, and PINGRESP or PUBCOMP
                # made inside the core), in one write, now: no callback of their own. Every other
                # await in this loop flushes before it waits (_paced, Hub._wait_for_room).
                if conn.out_bytes:
                    self._flush()
                data = await transport.read(READ_CHUNK)
                if not data:
                    return
                self._last_read = time.monotonic()
                conn.receive_data(data)
                continue
            turn += 1
            if turn > PACKETS_PER_TURN:  # a read (reads that find data waiting do not yield) may hold thousands
                turn = 0
                self._flush()
                await asyncio.sleep(0)
            # Every packet counts against the connection's pace. An acknowledgement of what the
            # server sent, and a PUBREL of what it received, were paid for by that PUBLISH.
            if isinstance(event, PublishReceived):
                if self.pace is not None:
                    await self._paced(1)
                await hub.on_publish(self, event)
            elif isinstance(event, AckReceived):
                if not hub.on_ack(self, event) and self.control is not None:
                    await self._paced(1, self.control)
            elif isinstance(event, ControlReceived):
                if not event.prepaid and self.control is not None:
                    await self._paced(1, self.control)
            elif isinstance(event, SubscribeRequested):
                await self._paced(len(event.subscribe.filters))  # each filter costs: a packet may carry thousands
                hub.on_subscribe(self, event.subscribe)
            elif isinstance(event, UnsubscribeRequested):
                await self._paced(len(event.unsubscribe.filters))
                hub.on_unsubscribe(self, event.unsubscribe)
            elif isinstance(event, DisconnectRequested):
                self.clean = not event.send_will
                hub.on_disconnect(self, event)
                return
            elif isinstance(event, ProtocolErrorEvent):
                log.warning("%s broke the protocol (%s): closing", self.client_id, event.message)
                return
            else:  # PAUSED: closed by the server
                return

    async def until_closed(self, limit: int = 1 << 20) -> None:
        """Until the client closes: what it sends meanwhile is read and dropped (at most
        ``limit`` bytes; then it is only waited for). For a refused login's delay."""
        seen = 0
        while seen < limit:
            data = await self.transport.read(READ_CHUNK)
            if not data:
                return
            seen += len(data)
        await asyncio.get_running_loop().create_future()  # until the caller's timeout

    @contextlib.contextmanager
    def not_reading(self) -> Iterator[None]:
        """The server does not read this client meanwhile: its PUBACKs wait too, which is not the
        client's stall (see Outbox.paused)."""
        outbox = self.session.outbox if self.session is not None else None
        if outbox is not None:
            outbox.paused += 1
        try:
            yield
        finally:
            if outbox is not None:
                outbox.paused -= 1

    async def _paced(self, cost: int, pace: Pace | None = None) -> None:
        pace = pace or self.pace
        if pace is not None:
            delay = pace.delay(cost)
            if delay > 0:
                self._hub.stats.paced += 1
                self._flush()
                with self.not_reading():
                    await asyncio.sleep(delay)  # the client's own rate: it is read more slowly
