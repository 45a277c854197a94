"""A minimal raw MQTT 3.1.1 client over asyncio streams, for checking exact CONNACK bytes and
for a client that connects and then goes silent (keep-alive expiry)."""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import dataclass


def _s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(raw)) + raw


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(client_id: str, username: str | None = None, password: str | None = None, *,
                   clean: bool = True, keepalive: int = 60, will: tuple[str, bytes] | None = None) -> bytes:
    flags = 0x02 if clean else 0
    payload = _s(client_id)
    if will is not None:
        flags |= 0x04 | (1 << 3)  # will, QoS 1
        payload += _s(will[0]) + _s(will[1])
    if username is not None:
        flags |= 0x80
        payload += _s(username)
    if password is not None:
        flags |= 0x40
        payload += _s(password)
    body = _s("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + payload
    return bytes([0x10]) + _remaining_length(len(body)) + body


@dataclass
class RawConnection:
    return_code: int
    session_present: bool
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def closed_by_server(self, timeout: float) -> bool:
        """True once the server closes the socket (EOF) within ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(1024):
                    pass
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return True

    def close(self) -> None:
        self.writer.close()


async def raw_connect(port: int, client_id: str, username: str | None = None, password: str | None = None,
                      *, rcvbuf: int | None = None, **kwargs: object) -> RawConnection:
    """Connect and read the CONNACK. ``rcvbuf``: a small receive buffer, for a client that will
    stop reading (the server's writes then back up at once instead of filling megabytes)."""
    if rcvbuf is None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(connect_packet(client_id, username, password, **kwargs))  # type: ignore[arg-type]
    await writer.drain()
    header = await asyncio.wait_for(reader.readexactly(4), 10)
    assert header[0] == 0x20 and header[1] == 2, header
    return RawConnection(header[3], bool(header[2] & 1), reader, writer)


@dataclass
class Packet:
    kind: int  # the fixed header's high nibble (3 = PUBLISH, 9 = SUBACK, …)
    flags: int
    body: bytes

    @property
    def dup(self) -> bool:
        return bool(self.flags & 0x08)

    @property
    def qos(self) -> int:
        return (self.flags >> 1) & 0x03

    @property
    def retain(self) -> bool:
        return bool(self.flags & 0x01)

    def publish_fields(self) -> tuple[str, int | None, bytes]:
        """(topic, packet id or None, payload) of a PUBLISH."""
        n = int.from_bytes(self.body[:2], "big")
        topic = self.body[2:2 + n].decode()
        rest = self.body[2 + n:]
        if self.qos:
            return topic, int.from_bytes(rest[:2], "big"), rest[2:]
        return topic, None, rest


async def read_packet(conn: RawConnection, timeout: float = 10) -> Packet:
    async with asyncio.timeout(timeout):
        first = (await conn.reader.readexactly(1))[0]
        length, shift = 0, 0
        while True:
            byte = (await conn.reader.readexactly(1))[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return Packet(first >> 4, first & 0x0F, await conn.reader.readexactly(length))


async def subscribe(conn: RawConnection, topic_filter: str, qos: int = 1, packet_id: int = 1) -> int:
    """SUBSCRIBE one filter; returns the SUBACK return code (skipping PUBLISHes that arrive first)."""
    return (await subscribe_many(conn, [topic_filter], qos, packet_id))[0]


def subscribe_packet(filters: list[str], qos: int = 1, packet_id: int = 1) -> bytes:
    body = packet_id.to_bytes(2, "big") + b"".join(_s(f) + bytes([qos]) for f in filters)
    return bytes([0x82]) + _remaining_length(len(body)) + body


async def subscribe_many(conn: RawConnection, filters: list[str], qos: int = 1, packet_id: int = 1) -> list[int]:
    """SUBSCRIBE several filters in one packet; returns the SUBACK return codes."""
    conn.writer.write(subscribe_packet(filters, qos, packet_id))
    await conn.writer.drain()
    while True:
        packet = await read_packet(conn)
        if packet.kind == 9:
            return list(packet.body[2:])


async def puback(conn: RawConnection, packet_id: int) -> None:
    conn.writer.write(b"\x40\x02" + packet_id.to_bytes(2, "big"))
    await conn.writer.drain()


def publish_packet(topic: str | bytes, payload: bytes, *, qos: int = 0, packet_id: int = 1, dup: bool = False,
                   retain: bool = False) -> bytes:
    body = _s(topic) + (packet_id.to_bytes(2, "big") if qos else b"") + payload
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    return bytes([0x30 | flags]) + _remaining_length(len(body)) + body


async def publish(conn: RawConnection, topic: str | bytes, payload: bytes, *, qos: int = 0, packet_id: int = 1,
                  dup: bool = False, retain: bool = False) -> None:
    conn.writer.write(publish_packet(topic, payload, qos=qos, packet_id=packet_id, dup=dup, retain=retain))
    await conn.writer.drain()


async def pubrel(conn: RawConnection, packet_id: int) -> None:
    conn.writer.write(b"\x62\x02" + packet_id.to_bytes(2, "big"))
    await conn.writer.drain()
