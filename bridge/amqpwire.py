"""A lean AMQP 0-9-1 client for the bridge's hot path: consume, acknowledge, publish with confirms.

Why not aio-pika/aiormq: measured with py-spy on the im-1to1 benchmark (issue 25), their
per-message machinery (a task per delivery, a lock, a UUID, a drain future and a timeout scope per
publish, an awaited write per acknowledgement) cost about half of the bridge's CPU. Here:

- Frames are parsed in ``data_received`` with no task, future or object per frame beyond the
  delivery's own callback; a ``Basic.Deliver`` and its header and body are read by hand (the
  properties stay undecoded bytes unless asked for: ``properties``), every other frame by pamqp.
- Writes are gathered and handed to the transport once per event-loop turn (one ``write`` for
  the publishes, acknowledgements and heartbeats of a turn).
- ``publish_many`` writes a batch's frames at once and returns one future, resolved when RabbitMQ
  has confirmed every one of them (``Basic.Ack`` with ``multiple`` settles many at a time), or
  failed with ``ConnectionError`` on a ``Basic.Nack``, a closed channel or a lost connection.
- ``ack(tag, multiple)`` only queues the frame.

pamqp marshals and unmarshals everything else (the handshake, declarations, ``Basic.Consume``…),
through ``Channel.rpc``: one synchronous method at a time per channel, as the protocol says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from pamqp import commands as spec
from pamqp import frame as pframe
from pamqp import header as pheader
from pamqp.base import Frame
from pamqp.common import FieldTable
from pamqp.exceptions import UnmarshalingException

log = logging.getLogger("imgate.bridge.amqpwire")

_HEAD = struct.Struct(">BHI")  # frame type, channel, payload size
_METHOD = struct.Struct(">HH")  # class id, method id
_DELIVER_TAG = struct.Struct(">QB")  # delivery tag, redelivered
_CONTENT = struct.Struct(">HHQ")  # class id, weight, body size
_PUBLISH = struct.Struct(">HHH")  # Basic.Publish: class, method, reserved ticket
_CONTENT_HEAD = struct.Struct(">HHQH")  # class, weight, body size, property flags
_ACK = struct.Struct(">HHQB")  # Basic.Ack: class, method, tag, multiple
_END = b"\xce"
HEARTBEAT = b"\x08\x00\x00\x00\x00\x00\x00\xce"
_DELIVERY_MODE = 0x1000  # the property flag of delivery-mode alone
_MAX_FRAME = 131072  # what this client accepts (RabbitMQ's default frame_max)
_HEARTBEAT_S = 30  # asked for; RabbitMQ's own suggestion (60) when it says less is not wanted

# Delivered: (delivery tag, routing key, body, raw content header payload: ``properties``). The
# body is None when it is over the connection's ``max_body``: its frames were counted, not kept.
OnDeliver = Callable[[int, str, bytes | None, bytes], None]
Publish = tuple[str, str, bytes, bool]  # exchange, routing key, body, persistent


class AmqpClosed(ConnectionError):
    """The connection or the channel is closed (by RabbitMQ, the network or this side)."""


def _shortstr(value: str) -> bytes:
    raw = value.encode()
    if len(raw) > 255:
        msg = f"AMQP short string too long ({len(raw)} bytes)"
        raise ValueError(msg)
    return bytes((len(raw),)) + raw


def method_frame(channel: int, payload: bytes) -> bytes:
    return _HEAD.pack(1, channel, len(payload)) + payload + _END


def publish_frames(channel: int, exchange: str, routing_key: str, body: bytes, persistent: bool,
                   frame_max: int = _MAX_FRAME) -> bytes:
    """``Basic.Publish`` with its content header (delivery-mode 2 or 1, nothing else) and body frames."""
    method = _PUBLISH.pack(60, 40, 0) + _shortstr(exchange) + _shortstr(routing_key) + b"\x00"
    head = _CONTENT_HEAD.pack(60, 0, len(body), _DELIVERY_MODE) + (b"\x02" if persistent else b"\x01")
    parts = [method_frame(channel, method), _HEAD.pack(2, channel, len(head)), head, _END]
    step = frame_max - 8
    for start in range(0, len(body), step):
        chunk = body[start:start + step]
        parts += (_HEAD.pack(3, channel, len(chunk)), chunk, _END)
    return b"".join(parts)


def ack_frame(channel: int, tag: int, multiple: bool) -> bytes:
    return method_frame(channel, _ACK.pack(60, 80, tag, 1 if multiple else 0))


def properties(header: bytes) -> spec.Basic.Properties:
    """A delivery's properties from its raw content header payload (decoded only when needed)."""
    content = pheader.ContentHeader()
    content.unmarshal(header)
    return content.properties


def _method_of(frame: bytes) -> Frame:
    _, _, method = pframe.unmarshal(frame)
    if not isinstance(method, Frame):
        raise AmqpClosed(f"not a method frame: {method!r}")
    return method


class _Pending:
    """One ``publish_many`` batch waiting for its confirms."""

    __slots__ = ("future", "left")

    def __init__(self, future: asyncio.Future[None], left: int) -> None:
        self.future, self.left = future, left


class Channel:
    """One AMQP channel of a ``Connection`` (``Connection.channel()``)."""

    def __init__(self, connection: AmqpConnection, number: int) -> None:
        self._conn = connection
        self.number = number
        self.closed: asyncio.Future[BaseException] = connection.loop.create_future()
        self._replies: deque[asyncio.Future[Frame]] = deque()
        self._rpc_lock = asyncio.Lock()
        self._consumers: dict[str, OnDeliver] = {}
        self._confirms = False
        self._seq = 0  # publishes sent on this channel (confirm mode's delivery tags)
        self._unconfirmed: dict[int, _Pending] = {}  # in ascending tag order
        # A delivery being read: (callback, tag, routing key, header payload, body parts, left)
        self._reading: tuple[OnDeliver, int, str] | None = None
        self._header = b""
        self._body: list[bytes] = []
        self._left = 0
        self._oversize = False

    @property
    def is_open(self) -> bool:
        return not self.closed.done()

    # ---- synchronous methods --------------------------------------------------------------------
    async def rpc(self, method: Frame, timeout: float = 30.0) -> Frame:
        """Send a synchronous method and return RabbitMQ's reply (a channel exception raises AmqpClosed)."""
        async with self._rpc_lock:
            self._check()
            reply: asyncio.Future[Frame] = self._conn.loop.create_future()
            self._replies.append(reply)
            self._conn.send(pframe.marshal(method, self.number))
            try:
                async with asyncio.timeout(timeout):
                    return await reply
            except TimeoutError:
                self._conn.abort(AmqpClosed(f"no answer to {method.name} within {timeout}s"))
                raise AmqpClosed(f"no answer to {method.name} within {timeout}s") from None

    async def confirm_select(self) -> None:
        await self.rpc(spec.Confirm.Select())
        self._confirms = True

    async def qos(self, prefetch: int) -> None:
        await self.rpc(spec.Basic.Qos(prefetch_count=prefetch))

    async def consume(self, queue: str, tag: str, on_deliver: OnDeliver,
                      arguments: dict[str, Any] | None = None) -> None:
        self._consumers[tag] = on_deliver
        try:
            await self.rpc(spec.Basic.Consume(queue=queue, consumer_tag=tag, arguments=arguments or {}))
        except BaseException:
            self._consumers.pop(tag, None)
            raise

    async def close(self) -> None:
        """Close the channel (RabbitMQ requeues what was delivered on it and not acknowledged)."""
        if self.closed.done() or self._conn.lost:
            return
        with contextlib.suppress(AmqpClosed):
            await self.rpc(spec.Channel.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0), timeout=10.0)
        self._fail(AmqpClosed("channel closed"))

    # ---- asynchronous methods -------------------------------------------------------------------
    def ack(self, tag: int, *, multiple: bool = False) -> None:
        if self.is_open:
            self._conn.send(ack_frame(self.number, tag, multiple))

    def publish_many(self, items: Iterable[Publish]) -> asyncio.Future[None]:
        """Write every publish at once; the future resolves once RabbitMQ confirmed them all."""
        self._check()
        assert self._confirms, "publish_many needs confirm_select() first"
        future: asyncio.Future[None] = self._conn.loop.create_future()
        pending = _Pending(future, 0)
        frame_max = self._conn.frame_max
        for exchange, key, body, persistent in items:
            data = publish_frames(self.number, exchange, key, body, persistent, frame_max)  # may raise: before numbering
            self._seq += 1
            self._unconfirmed[self._seq] = pending
            pending.left += 1
            self._conn.send(data)
        if not pending.left:
            future.set_result(None)
        return future

    # ---- frames in -----------------------------------------------------------------------------
    def _check(self) -> None:
        if self.closed.done():
            raise AmqpClosed(f"channel {self.number} is closed: {self.closed.result()}")

    def _method(self, payload: bytes) -> None:
        class_id, method_id = _METHOD.unpack_from(payload)
        if class_id == 60 and method_id == 60:  # Basic.Deliver, by hand
            n = payload[4]
            tag_ = payload[5:5 + n].decode()
            off = 5 + n
            delivery_tag, _redelivered = _DELIVER_TAG.unpack_from(payload, off)
            off += 9
            off += 1 + payload[off]  # exchange
            n = payload[off]
            routing_key = payload[off + 1:off + 1 + n].decode()
            callback = self._consumers.get(tag_)
            if callback is None:
                msg = f"a delivery for unknown consumer {tag_!r}"
                raise AmqpClosed(msg)
            self._reading = (callback, delivery_tag, routing_key)
            self._header, self._body, self._left = b"", [], -1
            return
        if class_id == 60 and method_id in (80, 120):  # Basic.Ack / Basic.Nack (confirms)
            tag, bits = _ACK.unpack_from(payload)[2:]
            self._confirmed(tag, multiple=bool(bits & 1), ok=method_id == 80)
            return
        try:
            method = _method_of(_HEAD.pack(1, self.number, len(payload)) + payload + _END)
        except UnmarshalingException as exc:
            raise AmqpClosed(f"unreadable frame from RabbitMQ: {exc}") from exc
        if isinstance(method, spec.Channel.Close):
            self._conn.send(pframe.marshal(spec.Channel.CloseOk(), self.number))
            self._fail(AmqpClosed(f"channel closed by RabbitMQ: {method.reply_code} {method.reply_text}"))
        elif isinstance(method, spec.Basic.Cancel):  # the queue went away (consumer_cancel_notify)
            self._fail(AmqpClosed(f"consumer {method.consumer_tag} cancelled by RabbitMQ"))
            self._conn.send(pframe.marshal(spec.Channel.Close(reply_code=200, reply_text="cancelled", class_id=0, method_id=0), self.number))
        elif isinstance(method, spec.Channel.CloseOk):
            self._resolve(method)
            self._fail(AmqpClosed("channel closed"))
        elif isinstance(method, spec.Channel.Flow):
            self._conn.send(pframe.marshal(spec.Channel.FlowOk(active=method.active), self.number))
        else:
            self._resolve(method)

    def _resolve(self, method: Frame) -> None:
        """The reply to the oldest rpc waiting (one that was cancelled still takes its own reply,
        so a late one never answers the next rpc)."""
        if self._replies:
            reply = self._replies.popleft()
            if not reply.done():
                reply.set_result(method)

    def _content_header(self, payload: bytes) -> None:
        if self._reading is None:
            raise AmqpClosed("a content header without a delivery")
        self._header = payload
        self._left = _CONTENT.unpack_from(payload)[2]
        self._oversize = self._left > self._conn.max_body  # known before a byte of it is kept
        if self._left == 0:
            self._delivered()

    def _content_body(self, payload: bytes) -> None:
        if self._reading is None or self._left < 0:
            raise AmqpClosed("a content body without a delivery")
        if not self._oversize:
            self._body.append(payload)
        self._left -= len(payload)
        if self._left <= 0:
            self._delivered()

    def _delivered(self) -> None:
        assert self._reading is not None
        callback, tag, routing_key = self._reading
        body = None if self._oversize else self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._reading, self._body = None, []
        if self.is_open:
            callback(tag, routing_key, body, self._header)

    def _confirmed(self, tag: int, *, multiple: bool, ok: bool) -> None:
        done: list[_Pending] = []
        if multiple:
            while self._unconfirmed:
                first = next(iter(self._unconfirmed))
                if first > tag:
                    break
                done.append(self._unconfirmed.pop(first))
        elif (one := self._unconfirmed.pop(tag, None)) is not None:
            done.append(one)
        for pending in done:
            pending.left -= 1
            if pending.future.done():
                continue
            if not ok:
                pending.future.set_exception(AmqpClosed("RabbitMQ refused a publish (Basic.Nack)"))
            elif pending.left == 0:
                pending.future.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)
        self._conn.forget(self)
        for reply in self._replies:
            if not reply.done():
                reply.set_exception(AmqpClosed(str(exc)))
        self._replies.clear()
        for pending in self._unconfirmed.values():
            if not pending.future.done():
                pending.future.set_exception(AmqpClosed(str(exc)))
                pending.future.exception()  # retrieved: a caller that gave up must not be warned about it
        self._unconfirmed.clear()
        self._consumers.clear()
        self._reading = None


class AmqpConnection(asyncio.Protocol):
    """The connection: the frame parser, the write buffer, the channels (``connect()`` makes one)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_body: int = 1 << 30) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[BaseException] = loop.create_future()
        self.frame_max = _MAX_FRAME
        self.heartbeat = 0
        self.max_body = max_body  # larger deliveries are not kept (OnDeliver gets None)
        self._rest = b""  # the start of a frame not yet complete
        self._out: list[bytes] = []
        self._flushing = False
        self._channels: dict[int, Channel] = {}
        self._channel0: Channel = Channel(self, 0)
        self._next_channel = 1
        self._channel_max = 2047
        self._received = True  # anything arrived since the last heartbeat check

    @property
    def lost(self) -> bool:
        return self.closed.done()

    # ---- asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not registered subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(AmqpClosed(f"connection to RabbitMQ lost: {exc or 'closed'}"))

    def data_received(self, data: bytes) -> None:
        self._received = True
        if self._rest:
            data, self._rest = self._rest + data, b""
        off, end = 0, len(data)
        try:
            while end - off >= 7:
                kind, channel, size = _HEAD.unpack_from(data, off)
                if size > self.frame_max:
                    msg = f"a frame of {size} bytes from RabbitMQ (frame_max {self.frame_max})"
                    raise AmqpClosed(msg)
                stop = off + 7 + size
                if stop >= end:
                    break
                if data[stop] != 0xCE:
                    raise AmqpClosed("a frame without its end marker from RabbitMQ")
                payload = data[off + 7:stop]
                off = stop + 1
                if kind == 8:
                    continue  # heartbeat
                target = self._channels.get(channel) if channel else self._channel0
                if target is None:
                    continue  # a channel closed here, its last frames still coming
                if kind == 1:
                    if channel == 0:
                        self._connection_method(payload)
                    else:
                        target._method(payload)
                elif kind == 2:
                    target._content_header(payload)
                elif kind == 3:
                    target._content_body(payload)
        except AmqpClosed as exc:
            if not self.lost:  # (already closing, e.g. gracefully after RabbitMQ's Connection.Close)
                self.abort(exc)
            return
        if off < end:
            self._rest = data[off:]

    def _connection_method(self, payload: bytes) -> None:
        try:
            method = _method_of(_HEAD.pack(1, 0, len(payload)) + payload + _END)
        except UnmarshalingException as exc:
            raise AmqpClosed(f"unreadable frame from RabbitMQ: {exc}") from exc
        if isinstance(method, spec.Connection.Close):
            self.send(pframe.marshal(spec.Connection.CloseOk(), 0))
            self.abort(AmqpClosed(f"RabbitMQ closed the connection: {method.reply_code} {method.reply_text}"),
                       flush=True)  # the CloseOk written first
            raise AmqpClosed(str(self.closed.result()))
        if isinstance(method, spec.Connection.Blocked):
            log.warning("RabbitMQ blocks publishing (%s): publishes wait", method.reason)
            return
        if isinstance(method, spec.Connection.Unblocked):
            log.info("RabbitMQ unblocked publishing")
            return
        self._channel0._resolve(method)

    # ---- out ------------------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        """Queue bytes for the transport, written at the end of this event-loop turn."""
        if self.transport is None or self.lost:
            return
        self._out.append(data)
        if not self._flushing:
            self._flushing = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flushing = False
        if self._out and self.transport is not None and not self.lost:
            out, self._out = self._out, []
            self.transport.write(b"".join(out) if len(out) > 1 else out[0])
        self._out.clear()

    # ---- channels -------------------------------------------------------------------------------
    async def channel(self, *, confirms: bool = False, prefetch: int | None = None) -> Channel:
        if self.lost:
            raise AmqpClosed(str(self.closed.result()))
        for _ in range(self._channel_max):
            number = self._next_channel
            self._next_channel = number % self._channel_max + 1
            if number not in self._channels:
                break
        else:
            raise AmqpClosed("no free channel number")
        channel = self._channels[number] = Channel(self, number)
        try:
            await channel.rpc(spec.Channel.Open())
            if confirms:
                await channel.confirm_select()
            if prefetch is not None:
                await channel.qos(prefetch)
        except BaseException:  # cancelled or refused half-way: not left open behind
            self.send(pframe.marshal(spec.Channel.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0),
                                     number))
            channel._fail(AmqpClosed("channel not opened"))
            raise
        return channel

    def forget(self, channel: Channel) -> None:
        if self._channels.get(channel.number) is channel:
            del self._channels[channel.number]

    # ---- life -----------------------------------------------------------------------------------
    async def heartbeats(self) -> None:
        """Send a heartbeat every half period and close when RabbitMQ said nothing for two
        periods (run as a task for the connection's life; returns at once without heartbeats)."""
        if not self.heartbeat:
            return
        half = self.heartbeat / 2
        quiet = 0
        while not self.lost:
            await asyncio.sleep(half)  # the heartbeat's period, not synchronisation
            self.send(HEARTBEAT)
            quiet = 0 if self._received else quiet + 1
            self._received = False
            if quiet >= 4:
                self.abort(AmqpClosed(f"no heartbeat from RabbitMQ for {2 * self.heartbeat}s"))

    async def close(self, timeout: float = 5.0) -> None:
        if self.lost or self.transport is None:
            return
        try:
            await self._channel0.rpc(spec.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0), timeout=timeout)
        except AmqpClosed:
            pass
        self.abort(AmqpClosed("connection closed"))

    def abort(self, exc: BaseException, *, flush: bool = False) -> None:
        """Drop the connection (``flush``: after writing what is queued, e.g. acknowledgements)."""
        if flush and not self.lost:
            self._flush()
        self._lost(exc)
        if self.transport is not None:
            if flush:
                self.transport.close()
            else:
                self.transport.abort()

    def _lost(self, exc: BaseException) -> None:
        if self.closed.done():
            return
        self.closed.set_result(exc)
        for channel in [*self._channels.values(), self._channel0]:
            channel._fail(exc)
        self._channels.clear()

    async def _handshake(self, user: str, password: str, vhost: str, name: str) -> None:
        assert self.transport is not None
        ch0 = self._channel0
        start: asyncio.Future[Frame] = self.loop.create_future()
        ch0._replies.append(start)
        self.transport.write(pheader.ProtocolHeader().marshal())
        method = await start
        if not isinstance(method, spec.Connection.Start):
            raise AmqpClosed(f"unexpected {method.name} from RabbitMQ")
        props: FieldTable = {"connection_name": name, "product": "imgate",
                 "capabilities": {"consumer_cancel_notify": True, "connection.blocked": True,
                                  "publisher_confirms": True, "basic.nack": True}}
        tune: asyncio.Future[Frame] = self.loop.create_future()
        ch0._replies.append(tune)
        self.send(pframe.marshal(spec.Connection.StartOk(
            client_properties=props, mechanism="PLAIN", response=f"\0{user}\0{password}", locale="en_US"), 0))
        method = await tune
        if not isinstance(method, spec.Connection.Tune):
            raise AmqpClosed(f"unexpected {method.name} from RabbitMQ")
        self.frame_max = min(method.frame_max or _MAX_FRAME, _MAX_FRAME)
        self._channel_max = min(method.channel_max or 2047, 2047)
        self.heartbeat = min(method.heartbeat, _HEARTBEAT_S) if method.heartbeat else _HEARTBEAT_S  # lower non-zero
        self.send(pframe.marshal(spec.Connection.TuneOk(
            channel_max=self._channel_max, frame_max=self.frame_max, heartbeat=self.heartbeat), 0))
        await ch0.rpc(spec.Connection.Open(virtual_host=vhost))


async def connect(url: str, *, name: str = "imgate", timeout: float = 10.0, max_body: int = 1 << 30) -> AmqpConnection:
    """Open a connection to ``amqp://user:password@host:port/vhost`` (``amqps://`` with TLS).

    Raises:
        AmqpClosed: refused (wrong credentials, unknown vhost) or lost during the handshake.
        OSError: not reachable.
        TimeoutError: no answer within ``timeout``.
    """
    parts = urlsplit(url)
    ssl = parts.scheme == "amqps"
    host = parts.hostname or "localhost"
    port = parts.port or (5671 if ssl else 5672)
    user, password = unquote(parts.username or "guest"), unquote(parts.password or "guest")
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        _, conn = await loop.create_connection(lambda: AmqpConnection(loop, max_body), host, port, ssl=ssl or None)
        try:
            await conn._handshake(user, password, vhost, name)  # a loss fails what it waits for
        except BaseException:
            conn.abort(AmqpClosed("handshake failed"))
            raise
    return conn
