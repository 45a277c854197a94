"""A small MQTT 3.1.1 client as an asyncio Protocol: no threads and no reader task per
connection, so a scenario can hold thousands. Enough for the fault suite: CONNECT (clean or
persistent session, will), SUBSCRIBE, PUBLISH at QoS 0/1 with PUBACKs both ways, PINGREQ,
DISCONNECT, an abrupt close (RST), and pausing reads (a consumer that never reads)."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any, cast

from tests.mqttraw import _remaining_length, _s, connect_packet

CONNECT_TIMEOUT = 15.0

# on_publish(topic, payload, qos, dup); QoS 1 PUBLISHes are PUBACKed before it is called.
OnPublish = Callable[[str, bytes, int, bool], None]


class MqttError(Exception):
    """The server answered with something this client cannot use (not a CONNACK, a bad packet)."""


class ConnectionLost(ConnectionError):
    """The connection closed before the awaited answer arrived."""


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _remaining_length(len(body)) + body


class Connection(asyncio.Protocol):
    """One MQTT connection. Use :meth:`open`; incoming PUBLISHes go to ``on_publish``."""

    def __init__(self, on_publish: OnPublish | None = None) -> None:
        self.on_publish = on_publish
        self.transport: asyncio.Transport | None = None
        self.connack: asyncio.Future[tuple[int, bool]] = asyncio.get_running_loop().create_future()
        self.closed = asyncio.Event()
        self.close_reason: BaseException | None = None
        self.closed_at: float | None = None  # perf_counter when the connection was lost
        self.aborted_by_us = False
        self.last_write = time.monotonic()
        self.bytes_in = 0
        self.pubacks = 0  # PUBACKs received for our QoS 1 PUBLISHes
        self._buf = bytearray()
        self._pid = 0
        self._subacks: dict[int, asyncio.Future[bytes]] = {}
        self._writable = asyncio.Event()
        self._writable.set()

    # -- opening and closing ---------------------------------------------------------------

    @classmethod
    async def open(cls, port: int, client_id: str, username: str | None, password: str | None, *,
                   clean: bool = True, keepalive: int = 60, will: tuple[str, bytes] | None = None,
                   host: str = "127.0.0.1", rcvbuf: int | None = None, timeout: float = CONNECT_TIMEOUT,
                   on_publish: OnPublish | None = None) -> tuple[Connection, int, bool]:
        """Connect and wait for the CONNACK. Returns (connection, return code, session present);
        a refused connection (code != 0) is already closed.

        Raises:
            OSError: the TCP connect failed.
            TimeoutError: no CONNACK within ``timeout``.
            ConnectionLost: the server closed the socket before the CONNACK.
            MqttError: the first packet was not a CONNACK.
        """
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        proto: Connection | None = None
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if rcvbuf is not None:  # before connect: it sets the window the server may fill
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, (host, port))
                _, proto = await loop.create_connection(lambda: cls(on_publish), sock=sock)
                proto.write(connect_packet(client_id, username, password, clean=clean, keepalive=keepalive,
                                           will=will))
                closed: asyncio.Future[Any] = asyncio.create_task(proto.closed.wait(), name="faults.mqtt.connack-close")
                try:
                    await asyncio.wait({proto.connack, closed}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    closed.cancel()
        except BaseException:
            if proto is not None:
                proto.abort()
            sock.close()
            raise
        if not proto.connack.done():
            proto.abort()
            msg = f"closed before CONNACK: {proto.close_reason!r}"
            raise ConnectionLost(msg)
        code, present = proto.connack.result()
        if code != 0:
            proto.abort()
        return proto, code, present

    def abort(self) -> None:
        """Drop the connection at once with a TCP RST (no DISCONNECT: the server sees an
        abnormal close and sends the will)."""
        self.aborted_by_us = True
        if self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    def disconnect(self) -> None:
        """A clean DISCONNECT, then close."""
        self.aborted_by_us = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"\xe0\x00")
            self.transport.close()

    # -- sending ---------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self.closed.is_set() and not self.transport.is_closing()

    def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionLost("connection closed")
        self.transport.write(data)
        self.last_write = time.monotonic()

    def next_pid(self) -> int:
        self._pid = self._pid % 65535 + 1
        return self._pid

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        """Write one PUBLISH (QoS 0 or 1); the PUBACK is only counted.

        Raises:
            ConnectionLost: the connection is closed.
        """
        body = _s(topic) + (self.next_pid().to_bytes(2, "big") if qos else b"") + payload
        self.write(_packet(0x30 | (qos << 1), body))

    async def subscribe(self, filters: list[tuple[str, int]], timeout: float = CONNECT_TIMEOUT) -> bytes:
        """SUBSCRIBE; returns the SUBACK's return codes (0x80 = refused).

        Raises:
            ConnectionLost, TimeoutError: no SUBACK.
        """
        pid = self.next_pid()
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._subacks[pid] = fut
        try:
            self.send_subscribe(filters, pid)
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._subacks.pop(pid, None)

    def send_subscribe(self, filters: list[tuple[str, int]], pid: int | None = None) -> None:
        """Write a SUBSCRIBE without waiting for its SUBACK (a flood)."""
        body = (pid or self.next_pid()).to_bytes(2, "big") + b"".join(_s(f) + bytes([q]) for f, q in filters)
        self.write(_packet(0x82, body))

    def ping(self) -> None:
        self.write(b"\xc0\x00")

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark.

        Raises:
            ConnectionLost: the connection closed meanwhile.
        """
        while not self._writable.is_set():
            if self.closed.is_set():
                raise ConnectionLost("connection closed")
            waiter = asyncio.create_task(self._writable.wait(), name="faults.mqtt.drain")
            closer = asyncio.create_task(self.closed.wait(), name="faults.mqtt.drain-close")
            try:
                await asyncio.wait({waiter, closer}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                closer.cancel()
        if self.closed.is_set():
            raise ConnectionLost("connection closed")

    # -- reading ---------------------------------------------------------------------------

    def pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is one without subclassing it

    def connection_lost(self, exc: Exception | None) -> None:
        self.close_reason = exc
        self.closed_at = time.perf_counter()
        self.closed.set()
        self._writable.set()
        lost = ConnectionLost(f"connection lost: {exc!r}")
        if not self.connack.done():
            self.connack.set_exception(lost)
            self.connack.exception()  # retrieved: open() reports it
        for fut in self._subacks.values():
            if not fut.done():
                fut.set_exception(lost)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        buf = self._buf
        buf += data
        pos, end = 0, len(buf)
        while end - pos >= 2:
            length, shift, i, complete = 0, 0, pos + 1, False
            while i < end:
                byte = buf[i]
                i += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    complete = True
                    break
                if shift >= 28:
                    self._protocol_error("bad remaining length")
                    return
            if not complete or end - i < length:
                break
            first = buf[pos]
            body = bytes(buf[i:i + length])
            pos = i + length
            self._packet(first >> 4, first & 0x0F, body)
            if self.transport is None or self.transport.is_closing():
                break
        if pos:
            del buf[:pos]

    def _protocol_error(self, why: str) -> None:
        self.close_reason = MqttError(why)
        if self.transport is not None:
            self.transport.abort()

    def _packet(self, kind: int, flags: int, body: bytes) -> None:
        if kind == 3:  # PUBLISH
            n = int.from_bytes(body[:2], "big")
            topic = body[2:2 + n].decode(errors="replace")
            qos = (flags >> 1) & 3
            if qos:
                pid = body[2 + n:4 + n]
                payload = body[4 + n:]
                if self.transport is not None and not self.transport.is_closing():
                    self.transport.write(b"\x40\x02" + pid)
            else:
                payload = body[2 + n:]
            if self.on_publish is not None:
                self.on_publish(topic, payload, qos, bool(flags & 0x08))
        elif kind == 2:  # CONNACK
            if not self.connack.done():
                self.connack.set_result((body[1], bool(body[0] & 1)))
        elif kind == 4:  # PUBACK
            self.pubacks += 1
        elif kind == 9:  # SUBACK
            fut = self._subacks.get(int.from_bytes(body[:2], "big"))
            if fut is not None and not fut.done():
                fut.set_result(body[2:])
        elif kind == 13:  # PINGRESP
            pass
        elif not self.connack.done():
            self.connack.set_exception(MqttError(f"expected CONNACK, got packet type {kind}"))
            self.connack.exception()
            self._protocol_error("no CONNACK")
