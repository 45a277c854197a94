"""MQTT 3.1.1 and 5.0 packets as a client writes them, and a small decoder of what a server sends,
for the sans-IO tests of ``broker.codec`` and ``broker.connection`` (no sockets).

Everything here except property blocks is written independently of ``broker.codec`` (which
is what is under test): the encoders below are checked by the codec's decoders and the decoder
below by the codec's encoders, so a mistake in either shows up as a disagreement. Property
blocks are encoded with ``broker.codec.encode_properties``; its round trip through
:func:`decode_properties` (written here, with its own table of property types) is tested too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from broker.codec import encode_properties

V311, V5 = 4, 5
Props = dict[int, Any]

# Packet types (the fixed header's high nibble).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15


# ---- primitives ---------------------------------------------------------------------------------
def varint(n: int) -> bytes:
    """A variable byte integer in its shortest form (MQTT 5 §1.5.5)."""
    assert 0 <= n <= 268_435_455
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s(text: str | bytes) -> bytes:
    """A length-prefixed string (or binary data)."""
    raw = text.encode() if isinstance(text, str) else text
    return len(raw).to_bytes(2, "big") + raw


def packet(first: int, body: bytes) -> bytes:
    """A whole packet from its first byte and its body."""
    return bytes((first,)) + varint(len(body)) + body


def _props(level: int, props: Props | None) -> bytes:
    return encode_properties(props) if level == V5 else b""


# ---- what a client sends ------------------------------------------------------------------------
@dataclass(frozen=True)
class WillSpec:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    props: Props | None = None


def connect(client_id: str, *, level: int = V5, clean: bool = True, keep_alive: int = 60,
            username: str | None = None, password: bytes | None = None, will: WillSpec | None = None,
            props: Props | None = None, protocol_name: str = "MQTT") -> bytes:
    flags = 0x02 if clean else 0
    payload = s(client_id)
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        payload += _props(level, will.props) + s(will.topic) + s(will.payload)
    if username is not None:
        flags |= 0x80
        payload += s(username)
    if password is not None:
        flags |= 0x40
        payload += s(password)
    variable = s(protocol_name) + bytes((level, flags)) + keep_alive.to_bytes(2, "big")
    return packet(CONNECT << 4, variable + _props(level, props) + payload)


def publish(topic: str, payload: bytes = b"", *, qos: int = 0, packet_id: int = 1, dup: bool = False,
            retain: bool = False, level: int = V5, props: Props | None = None) -> bytes:
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = s(topic) + (packet_id.to_bytes(2, "big") if qos else b"") + _props(level, props) + payload
    return packet((PUBLISH << 4) | flags, body)


def options(qos: int, *, no_local: bool = False, retain_as_published: bool = False, retain_handling: int = 0) -> int:
    """A SUBSCRIBE's subscription options byte (MQTT 5 §3.8.3.1; 3.1.1: the QoS alone)."""
    return qos | (0x04 if no_local else 0) | (0x08 if retain_as_published else 0) | (retain_handling << 4)


def subscribe(packet_id: int, filters: Sequence[tuple[str, int]], *, level: int = V5,
              props: Props | None = None) -> bytes:
    """``filters``: (topic filter, options byte) pairs (see :func:`options`)."""
    body = packet_id.to_bytes(2, "big") + _props(level, props) + b"".join(s(f) + bytes((o,)) for f, o in filters)
    return packet((SUBSCRIBE << 4) | 2, body)


def unsubscribe(packet_id: int, filters: Sequence[str], *, level: int = V5, props: Props | None = None) -> bytes:
    body = packet_id.to_bytes(2, "big") + _props(level, props) + b"".join(s(f) for f in filters)
    return packet((UNSUBSCRIBE << 4) | 2, body)


def ack(kind: int, packet_id: int, reason: int | None = None, *, props: Props | None = None) -> bytes:
    """PUBACK, PUBREC, PUBREL or PUBCOMP: the 2-byte form (both versions) without ``reason`` and
    ``props``, else (MQTT 5) with the reason code and, if given, the properties."""
    body = packet_id.to_bytes(2, "big")
    if reason is not None or props is not None:
        body += bytes((reason or 0,)) + (encode_properties(props) if props is not None else b"")
    return packet((kind << 4) | (2 if kind == PUBREL else 0), body)


def puback(packet_id: int, reason: int | None = None, *, props: Props | None = None) -> bytes:
    return ack(PUBACK, packet_id, reason, props=props)


def pubrec(packet_id: int, reason: int | None = None, *, props: Props | None = None) -> bytes:
    return ack(PUBREC, packet_id, reason, props=props)


def pubrel(packet_id: int, reason: int | None = None, *, props: Props | None = None) -> bytes:
    return ack(PUBREL, packet_id, reason, props=props)


def pubcomp(packet_id: int, reason: int | None = None, *, props: Props | None = None) -> bytes:
    return ack(PUBCOMP, packet_id, reason, props=props)


def disconnect(reason: int | None = None, *, props: Props | None = None) -> bytes:
    """DISCONNECT: empty (3.1.1, or MQTT 5 reason 0), else the reason and any properties."""
    if reason is None and props is None:
        return bytes((DISCONNECT << 4, 0))
    return packet(DISCONNECT << 4, bytes((reason or 0,)) + (encode_properties(props) if props is not None else b""))


def auth(reason: int = 0x18, *, props: Props | None = None) -> bytes:
    """AUTH (MQTT 5 only); 0x18: continue authentication."""
    return packet(AUTH << 4, bytes((reason,)) + encode_properties(props))


def pingreq() -> bytes:
    return bytes((PINGREQ << 4, 0))


# ---- what a server sends -------------------------------------------------------------------------
@dataclass(frozen=True)
class ConnAck:
    session_present: bool
    code: int
    properties: Props = field(default_factory=dict)


@dataclass(frozen=True)
class Pub:
    topic: str
    payload: bytes
    qos: int
    packet_id: int | None
    dup: bool
    retain: bool
    properties: Props = field(default_factory=dict)


@dataclass(frozen=True)
class AckOut:
    kind: int
    packet_id: int
    reason: int = 0
    properties: Props = field(default_factory=dict)


@dataclass(frozen=True)
class SubAck:
    packet_id: int
    codes: list[int]
    properties: Props = field(default_factory=dict)


@dataclass(frozen=True)
class UnsubAck:
    packet_id: int
    codes: list[int]
    properties: Props = field(default_factory=dict)


@dataclass(frozen=True)
class DisconnectOut:
    reason: int = 0
    properties: Props = field(default_factory=dict)


@dataclass(frozen=True)
class PingResp:
    pass


ServerPacket = ConnAck | Pub | AckOut | SubAck | UnsubAck | DisconnectOut | PingResp

_B, _U16, _U32, _VAR, _STR, _BIN, _PAIR = "byte", "u16", "u32", "varint", "str", "bin", "pair"
# MQTT 5 §2.2.2.2, written out again here (not taken from broker.codec) so the two check each other.
PROPERTY_TYPES = {
    0x01: _B, 0x02: _U32, 0x03: _STR, 0x08: _STR, 0x09: _BIN, 0x0B: _VAR, 0x11: _U32, 0x12: _STR, 0x13: _U16,
    0x15: _STR, 0x16: _BIN, 0x17: _B, 0x18: _U32, 0x19: _B, 0x1A: _STR, 0x1C: _STR, 0x1F: _STR, 0x21: _U16,
    0x22: _U16, 0x23: _U16, 0x24: _B, 0x25: _B, 0x26: _PAIR, 0x27: _U32, 0x28: _B, 0x29: _B, 0x2A: _B,
}
USER, SUBSCRIPTION_ID = 0x26, 0x0B


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, start = 0, pos
    for shift in (0, 7, 14, 21):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            assert pos - start == len(varint(value)), "variable byte integer not in its shortest form"
            return value, pos
    raise AssertionError("variable byte integer longer than 4 bytes")


def _read_bin(data: bytes, pos: int) -> tuple[bytes, int]:
    n = int.from_bytes(data[pos:pos + 2], "big")
    end = pos + 2 + n
    assert end <= len(data), "data runs past the end"
    return data[pos + 2:end], end


def _read_str(data: bytes, pos: int) -> tuple[str, int]:
    raw, pos = _read_bin(data, pos)
    return raw.decode("utf-8"), pos


def decode_properties(data: bytes, pos: int = 0) -> tuple[Props, int]:
    """A property block at ``pos``: (properties, position after it). User properties are a list of
    pairs, Subscription Identifiers always a list of ints (a server's PUBLISH may carry several);
    any other property twice is an AssertionError."""
    length, pos = _read_varint(data, pos)
    end = pos + length
    assert end <= len(data), "properties run past the end"
    props: Props = {}
    while pos < end:
        ident, pos = _read_varint(data, pos)
        kind = PROPERTY_TYPES[ident]
        value: Any
        if kind == _B:
            value, pos = data[pos], pos + 1
        elif kind == _U16:
            value, pos = int.from_bytes(data[pos:pos + 2], "big"), pos + 2
        elif kind == _U32:
            value, pos = int.from_bytes(data[pos:pos + 4], "big"), pos + 4
        elif kind == _VAR:
            value, pos = _read_varint(data, pos)
        elif kind == _STR:
            value, pos = _read_str(data, pos)
        elif kind == _BIN:
            value, pos = _read_bin(data, pos)
        else:
            name, pos = _read_str(data, pos)
            text, pos = _read_str(data, pos)
            value = (name, text)
        if ident in (USER, SUBSCRIPTION_ID):
            props.setdefault(ident, []).append(value)
        else:
            assert ident not in props, f"property {ident:#x} twice"
            props[ident] = value
    assert pos == end, "properties run past their length"
    return props, end


def _decode(first: int, body: bytes, level: int) -> ServerPacket:
    kind, flags = first >> 4, first & 0x0F
    v5 = level == V5
    props: Props = {}
    if kind == CONNACK:
        assert flags == 0 and body[0] in (0, 1)
        props = decode_properties(body, 2)[0] if v5 else {}
        assert v5 or len(body) == 2
        return ConnAck(bool(body[0]), body[1], props)
    if kind == PUBLISH:
        qos = (flags >> 1) & 3
        topic, pos = _read_str(body, 0)
        pub_id = None
        if qos:
            pub_id, pos = int.from_bytes(body[pos:pos + 2], "big"), pos + 2
        if v5:
            props, pos = decode_properties(body, pos)
        return Pub(topic, body[pos:], qos, pub_id, bool(flags & 8), bool(flags & 1), props)
    if kind in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        assert flags == (2 if kind == PUBREL else 0)
        packet_id = int.from_bytes(body[:2], "big")
        reason = body[2] if len(body) > 2 else 0
        props = decode_properties(body, 3)[0] if len(body) > 3 else {}
        assert v5 or len(body) == 2
        return AckOut(kind, packet_id, reason, props)
    if kind in (SUBACK, UNSUBACK):
        packet_id, pos = int.from_bytes(body[:2], "big"), 2
        if v5:
            props, pos = decode_properties(body, pos)
        return (SubAck if kind == SUBACK else UnsubAck)(packet_id, list(body[pos:]), props)
    if kind == DISCONNECT:
        assert v5, "a 3.1.1 server sends no DISCONNECT"
        reason = body[0] if body else 0
        return DisconnectOut(reason, decode_properties(body, 1)[0] if len(body) > 1 else {})
    assert kind == PINGRESP and not body, f"not a server packet: type {kind}"
    return PingResp()


def parse(data: bytes, level: int = V5) -> list[ServerPacket]:
    """Every packet in ``data``, which must hold whole packets only."""
    out: list[ServerPacket] = []
    pos = 0
    while pos < len(data):
        length, body_at = _read_varint(data, pos + 1)
        end = body_at + length
        assert end <= len(data), "a packet cut short"
        out.append(_decode(data[pos], data[body_at:end], level))
        pos = end
    return out


def parse_one(data: bytes, level: int = V5) -> ServerPacket:
    """The only packet in ``data``."""
    packets = parse(data, level)
    assert len(packets) == 1, packets
    return packets[0]
