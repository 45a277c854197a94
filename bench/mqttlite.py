"""A small asyncio MQTT 3.1.1 client for the load generators (the peer of ``bench.xmpp``).

aiomqtt (paho underneath) costs the generator most of a core at a few hundred messages per
second on this machine, and a generator that shares the server's two cores measures itself. This
one is an ``asyncio.Protocol``: CONNECT, SUBSCRIBE (waits for SUBACK), QoS 0/1 PUBLISH (does not
wait for PUBACK: the closed loops wait for imgate's own ack), and incoming PUBLISHes handed to a
callback in arrival order, QoS 1 ones PUBACKed at once. TCP_NODELAY on.

    client = await LiteClient.connect("127.0.0.1", 1883, "alice:bench", "alice", token, on_message=cb)
    await client.subscribe("im/alice/in/#")
    client.publish("im/alice/out/msg", b"{...}")
    await client.close()
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable

OnMessage = Callable[[str, bytes], None]


def _str(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(data)) + data


def _packet(first: int, body: bytes) -> bytes:
    n, length = len(body), bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        length.append(byte | 0x80 if n else byte)
        if not n:
            return bytes([first]) + bytes(length) + body


class MqttError(Exception):
    """The server refused the connection or subscription, or the connection ended."""


class _Protocol(asyncio.Protocol):
    def __init__(self, client: LiteClient) -> None:
        self._client = client

    def data_received(self, data: bytes) -> None:
        self._client._feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._client._lost(exc)


class LiteClient:
    def __init__(self, on_message: OnMessage | None) -> None:
        self._on_message = on_message or (lambda _t, _p: None)
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._ids = 0
        self._waiting: dict[int, asyncio.Future[bytes]] = {}  # CONNACK (id 0), SUBACK by packet id
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def connect(cls, host: str, port: int, client_id: str, username: str | None = None,
                      password: str | None = None, *, on_message: OnMessage | None = None, keepalive: int = 600,
                      timeout: float = 30.0) -> LiteClient:
        client = cls(on_message)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(lambda: _Protocol(client), host, port)
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client._transport = transport  # type: ignore[assignment]
        flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
        body = _str("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + _str(client_id)
        body += (_str(username) if username is not None else b"") + (_str(password) if password is not None else b"")
        connack = client._expect(0)
        transport.write(_packet(0x10, body))
        code = (await asyncio.wait_for(connack, timeout))[1]
        if code:
            transport.close()
            msg = f"CONNACK {code} for {client_id}"
            raise MqttError(msg)
        return client

    def _next_id(self) -> int:
        self._ids = self._ids % 0xFFFF + 1
        return self._ids

    def _expect(self, key: int) -> asyncio.Future[bytes]:
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[key] = fut
        return fut

    async def subscribe(self, topic_filter: str, qos: int = 1, timeout: float = 30.0) -> None:
        assert self._transport is not None
        pid = self._next_id()
        suback = self._expect(pid)
        self._transport.write(_packet(0x82, struct.pack("!H", pid) + _str(topic_filter) + bytes([qos])))
        granted = (await asyncio.wait_for(suback, timeout))[2:]
        if granted[:1] == b"\x80":
            msg = f"SUBSCRIBE {topic_filter} refused"
            raise MqttError(msg)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Write a PUBLISH (QoS 1: a packet id; its PUBACK is not waited for)."""
        assert self._transport is not None
        head = _str(topic) + (struct.pack("!H", self._next_id()) if qos else b"")
        self._transport.write(_packet(0x30 | qos << 1, head + payload))

    async def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"\xe0\x00")  # DISCONNECT
            self._transport.close()
        await asyncio.shield(self.closed)

    # ---- input ----------------------------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos, end = 0, len(buf)
        while end - pos >= 2:
            length, shift, i, complete = 0, 0, pos + 1, False
            while i < end and i - pos <= 4:  # the remaining length: at most 4 bytes
                byte = buf[i]
                i += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    complete = True
                    break
            if not complete or end - i < length:
                break
            self._packet(buf[pos], bytes(buf[i:i + length]))
            pos = i + length
        del buf[:pos]

    def _packet(self, first: int, body: bytes) -> None:
        kind = first >> 4
        if kind == 3:  # PUBLISH
            qos = (first >> 1) & 3
            tlen = struct.unpack_from("!H", body)[0]
            topic = body[2:2 + tlen].decode()
            at = 2 + tlen
            if qos:
                pid = body[at:at + 2]
                at += 2
                assert self._transport is not None
                self._transport.write(b"\x40\x02" + pid)  # PUBACK
            self._on_message(topic, body[at:])
        elif kind == 2:  # CONNACK
            self._resolve(0, body)
        elif kind == 9:  # SUBACK
            self._resolve(struct.unpack_from("!H", body)[0], body)
        # PUBACK (4), PINGRESP (13): nothing to do

    def _resolve(self, key: int, body: bytes) -> None:
        fut = self._waiting.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_result(body)

    def _lost(self, exc: Exception | None) -> None:
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(MqttError(f"connection lost: {exc!r}"))
        self._waiting.clear()
        if not self.closed.done():
            self.closed.set_result(None)
