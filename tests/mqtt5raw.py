"""A raw MQTT 5 client over a socket, for tests that look at reason codes and properties byte by
byte (aiomqtt hides most of them). Packets are built and parsed by ``tests.mqtt5packets``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from broker import codec
from tests import mqtt5packets as mp
from tests.helpers import WAIT


def connect_packet(client_id: str, username: str | None = None, password: str | None = None, *,
                   clean_start: bool = True, keep_alive: int = 60, props: dict[int, Any] | None = None,
                   will: tuple[str, bytes, int, bool, dict[int, Any]] | None = None, level: int = 5) -> bytes:
    spec = mp.WillSpec(*will) if will is not None else None
    return mp.connect(client_id, level=level, clean=clean_start, keep_alive=keep_alive, username=username,
                      password=password.encode() if password is not None else None, will=spec, props=props)


def publish_packet(topic: str, payload: bytes, qos: int = 0, packet_id: int = 0, *, retain: bool = False,
                   dup: bool = False, props: dict[int, Any] | None = None) -> bytes:
    return mp.publish(topic, payload, qos=qos, packet_id=packet_id, retain=retain, dup=dup, props=props)


def subscribe_packet(packet_id: int, filters: list[tuple[str, int]], props: dict[int, Any] | None = None) -> bytes:
    """``filters``: (filter, options byte: QoS | no-local 0x04 | retain-as-published 0x08 | retain handling << 4)."""
    return mp.subscribe(packet_id, filters, props=props)


def unsubscribe_packet(packet_id: int, filters: list[str]) -> bytes:
    return mp.unsubscribe(packet_id, filters)


def ack_packet(kind: int, packet_id: int, reason: int = 0) -> bytes:
    return mp.ack(kind, packet_id, reason or None)


def disconnect_packet(reason: int = 0, props: dict[int, Any] | None = None) -> bytes:
    return mp.disconnect(reason, props=props if props is not None else {})


@dataclass
class ServerPacket:
    """Any packet from the server, flattened for assertions."""

    kind: int
    flags: int
    reason: int = 0
    props: dict[int, Any] = field(default_factory=dict)
    packet_id: int | None = None
    topic: str | None = None
    payload: bytes = b""
    codes: list[int] = field(default_factory=list)  # SUBACK / UNSUBACK
    session_present: bool = False

    @property
    def qos(self) -> int:
        return (self.flags >> 1) & 3

    @property
    def retain(self) -> bool:
        return bool(self.flags & 1)

    @property
    def dup(self) -> bool:
        return bool(self.flags & 8)


def decode_server(first: int, body: bytes) -> ServerPacket:
    parsed = mp.parse_one(bytes((first,)) + codec.remaining_length(len(body)) + body)
    out = ServerPacket(first >> 4, first & 0x0F)
    if isinstance(parsed, mp.ConnAck):
        out.session_present, out.reason, out.props = parsed.session_present, parsed.code, parsed.properties
    elif isinstance(parsed, mp.Pub):
        out.topic, out.payload, out.packet_id, out.props = parsed.topic, parsed.payload, parsed.packet_id, \
            parsed.properties
    elif isinstance(parsed, mp.AckOut):
        out.packet_id, out.reason, out.props = parsed.packet_id, parsed.reason, parsed.properties
    elif isinstance(parsed, mp.SubAck | mp.UnsubAck):
        out.packet_id, out.codes, out.props = parsed.packet_id, parsed.codes, parsed.properties
    elif isinstance(parsed, mp.DisconnectOut):
        out.reason, out.props = parsed.reason, parsed.properties
    return out


class Raw5:
    """One raw connection; ``connack`` is the server's answer to the CONNECT."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.connack: ServerPacket | None = None

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def read(self, timeout: float = WAIT) -> ServerPacket:
        async with asyncio.timeout(timeout):
            first = (await self.reader.readexactly(1))[0]
            length, shift = 0, 0
            while True:
                byte = (await self.reader.readexactly(1))[0]
                length |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    break
                shift += 7
            body = await self.reader.readexactly(length) if length else b""
        return decode_server(first, body)

    async def read_kind(self, kind: int, timeout: float = WAIT) -> ServerPacket:
        """The next packet of ``kind`` (answering PUBLISHes QoS 1 with PUBACK on the way)."""
        while True:
            p = await self.read(timeout)
            if p.kind == kind:
                return p
            if p.kind == codec.PUBLISH and p.qos == 1 and p.packet_id:
                self.send(ack_packet(codec.PUBACK, p.packet_id))

    async def closed(self, timeout: float = WAIT) -> bool:
        """True once the server has closed the connection (reads until EOF)."""
        async with asyncio.timeout(timeout):
            while await self.reader.read(65536):
                pass
        return True

    def close(self) -> None:
        self.writer.close()


async def connect5(port: int, client_id: str, username: str | None = None, password: str | None = None,
                   **kwargs: Any) -> Raw5:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = Raw5(reader, writer)
    conn.send(connect_packet(client_id, username, password, **kwargs))
    conn.connack = await conn.read()
    assert conn.connack.kind == codec.CONNACK, conn.connack
    return conn
