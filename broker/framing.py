"""MQTT 3.1.1 packets after CONNECT, sans-IO: split a byte stream into packets, check every packet
before anything acts on it, and decode the few a broker receives. No sockets, no asyncio.

Every check that protects the server happens here, before a packet is buffered or parsed:

- The remaining length of *every* packet type is checked against the limit as soon as its
  length field is complete, so no packet over the limit is ever buffered (a SUBSCRIBE is not read
  string by string past the limit, as amqtt's own parser would).
- Strings (topic names and filters) must be well-formed UTF-8 without U+0000 and must lie inside
  their packet [MQTT-1.5.3-1, -2]: a bad one is a protocol violation that closes the connection,
  so a packet can never be parsed with the wrong length and desynchronise the framing.
- Flags, packet identifiers and QoS values are checked as MQTT 3.1.1 requires.

``FrameDecoder.feed`` takes bytes, ``next_packet`` returns a decoded packet, ``None`` when more
bytes are needed, or raises :class:`ProtocolViolation`; it never raises anything else, never
loops without consuming input and never holds more than one packet plus one read of input.
"""

from __future__ import annotations

from dataclasses import dataclass

# Packet types (the fixed header's high nibble).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

PINGRESP_BYTES = b"\xd0\x00"


class ProtocolViolation(Exception):
    """The peer broke the protocol: close the connection."""


class PacketTooLarge(ProtocolViolation):
    """A packet's announced size is over the limit (nothing of it was buffered)."""


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    packet_id: int | None
    retain: bool
    dup: bool


@dataclass(frozen=True, slots=True)
class Subscribe:
    packet_id: int
    filters: tuple[tuple[str, int], ...]  # (filter, requested QoS)


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    packet_id: int
    filters: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PacketId:
    """PUBACK, PUBREC, PUBREL or PUBCOMP."""

    kind: int
    packet_id: int


@dataclass(frozen=True, slots=True)
class Bare:
    """PINGREQ or DISCONNECT."""

    kind: int


Packet = Publish | Subscribe | Unsubscribe | PacketId | Bare

_FIXED_FLAGS = {PUBACK: 0, PUBREC: 0, PUBREL: 2, PUBCOMP: 0, SUBSCRIBE: 2, UNSUBSCRIBE: 2, PINGREQ: 0,
                DISCONNECT: 0}


class FrameDecoder:
    """Splits the bytes a client sends after CONNECT into checked, decoded packets."""

    __slots__ = ("_buf", "_limit", "_pos")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buf = bytearray()
        self._pos = 0  # start of the first packet not yet returned (consumed bytes are dropped lazily)

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buf[:self._pos]  # once per read, not once per packet
            self._pos = 0
        self._buf += data

    def next_packet(self) -> Packet | None:
        """The next complete packet, or None until more bytes are fed.

        Raises:
            PacketTooLarge: a packet announced more than the limit.
            ProtocolViolation: anything malformed or not allowed from a client.
        """
        buf, start = self._buf, self._pos
        if len(buf) - start < 2:
            return None
        length, shift, pos = 0, 0, start + 1
        while True:
            if pos >= len(buf):
                return None
            if pos - start > 4:
                msg = "remaining length field longer than 4 bytes"
                raise ProtocolViolation(msg)
            byte = buf[pos]
            length |= (byte & 0x7F) << shift
            pos += 1
            if not byte & 0x80:
                break
            shift += 7
        if length > self._limit:
            msg = f"packet of {length} bytes is over the limit of {self._limit}"
            raise PacketTooLarge(msg)
        end = pos + length
        if len(buf) < end:
            return None
        first = buf[start]
        body = bytes(buf[pos:end])
        self._pos = end
        return decode(first, body)


def decode(first: int, body: bytes) -> Packet:
    """Decode one packet from its first byte and its body.

    Raises:
        ProtocolViolation: malformed, or a packet type a client must not send after CONNECT.
    """
    kind, flags = first >> 4, first & 0x0F
    if kind == PUBLISH:
        return _publish(flags, body)
    expected = _FIXED_FLAGS.get(kind)
    if expected is None:
        msg = f"packet type {kind} is not allowed from a client after CONNECT"
        raise ProtocolViolation(msg)
    if flags != expected:
        msg = f"packet type {kind} with reserved flags {flags:#x}"
        raise ProtocolViolation(msg)
    if kind in (PINGREQ, DISCONNECT):
        if body:
            msg = f"packet type {kind} with a body"
            raise ProtocolViolation(msg)
        return Bare(kind)
    if kind in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        if len(body) != 2:
            msg = f"packet type {kind} must have 2 bytes, not {len(body)}"
            raise ProtocolViolation(msg)
        return PacketId(kind, _packet_id(body, 0))
    if kind == SUBSCRIBE:
        return _subscribe(body)
    return _unsubscribe(body)


def _packet_id(body: bytes, pos: int) -> int:
    if pos + 2 > len(body):
        msg = "packet identifier missing"
        raise ProtocolViolation(msg)
    packet_id = int.from_bytes(body[pos:pos + 2], "big")
    if packet_id == 0:
        msg = "packet identifier 0"
        raise ProtocolViolation(msg)
    return packet_id


def _string(body: bytes, pos: int) -> tuple[str, int]:
    if pos + 2 > len(body):
        msg = "string length missing"
        raise ProtocolViolation(msg)
    n = int.from_bytes(body[pos:pos + 2], "big")
    end = pos + 2 + n
    if end > len(body):
        msg = "string runs past the end of its packet"
        raise ProtocolViolation(msg)
    raw = body[pos + 2:end]
    try:
        text = raw.decode("utf-8")  # strict: rejects overlongs, surrogates and invalid bytes
    except UnicodeDecodeError as exc:
        msg = "string is not well-formed UTF-8 [MQTT-1.5.3-1]"
        raise ProtocolViolation(msg) from exc
    if "\x00" in text:
        msg = "string contains U+0000 [MQTT-1.5.3-2]"
        raise ProtocolViolation(msg)
    return text, end


def _publish(flags: int, body: bytes) -> Publish:
    qos = (flags >> 1) & 0x03
    if qos == 3:
        msg = "PUBLISH with QoS 3 [MQTT-3.3.1-4]"
        raise ProtocolViolation(msg)
    dup = bool(flags & 0x08)
    if dup and qos == 0:
        msg = "PUBLISH QoS 0 with DUP set [MQTT-3.3.1-2]"
        raise ProtocolViolation(msg)
    topic, pos = _string(body, 0)
    packet_id = None
    if qos:
        packet_id = _packet_id(body, pos)
        pos += 2
    return Publish(topic, body[pos:], qos, packet_id, bool(flags & 0x01), dup)


def _subscribe(body: bytes) -> Subscribe:
    packet_id = _packet_id(body, 0)
    pos, filters = 2, []
    while pos < len(body):
        text, pos = _string(body, pos)
        if pos >= len(body):
            msg = "SUBSCRIBE filter without QoS byte"
            raise ProtocolViolation(msg)
        qos = body[pos]
        pos += 1
        if qos > 2:
            msg = f"SUBSCRIBE with requested QoS byte {qos:#x} [MQTT-3.8.3-4]"
            raise ProtocolViolation(msg)
        filters.append((text, qos))
    if not filters:
        msg = "SUBSCRIBE without a filter [MQTT-3.8.3-3]"
        raise ProtocolViolation(msg)
    return Subscribe(packet_id, tuple(filters))


def _unsubscribe(body: bytes) -> Unsubscribe:
    packet_id = _packet_id(body, 0)
    pos, filters = 2, []
    while pos < len(body):
        text, pos = _string(body, pos)
        filters.append(text)
    if not filters:
        msg = "UNSUBSCRIBE without a filter [MQTT-3.10.3-2]"
        raise ProtocolViolation(msg)
    return Unsubscribe(packet_id, tuple(filters))


def remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def encode_suback(packet_id: int, codes: list[int]) -> bytes:
    body = packet_id.to_bytes(2, "big") + bytes(codes)
    return b"\x90" + remaining_length(len(body)) + body


def encode_unsuback(packet_id: int) -> bytes:
    return b"\xb0\x02" + packet_id.to_bytes(2, "big")


def encode_ack(kind: int, packet_id: int) -> bytes:
    """PUBACK, PUBREC or PUBCOMP."""
    return bytes(((kind << 4), 2)) + packet_id.to_bytes(2, "big")
