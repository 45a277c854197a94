"""MQTT 3.1.1 and 5.0 packets, sans-IO: split a byte stream into packets, check every packet before
anything acts on it, decode what a server receives and encode what it sends. No sockets, no
asyncio, no state beyond one connection's byte buffer (the protocol state lives in
``broker.connection``).

Every check that protects the server happens here, before a packet is buffered or parsed:

- The remaining length of every packet is checked against the limit as soon as its length field
  is complete, so no packet over the limit is ever buffered.
- Strings must be well-formed UTF-8 without U+0000 and lie inside their packet [MQTT-1.5.4-1,
  -2]; binary data, variable byte integers and properties must lie inside their packet too. A bad
  one is a :class:`ProtocolViolation`: the connection closes, so a packet is never parsed with the
  wrong length and the framing never desynchronises.
- Flags, packet identifiers, QoS values, reason codes and (MQTT 5) which properties a packet may
  carry are checked as the specifications require.

Why our own codec: amqtt 0.12 parses MQTT 3.1.1 only, from a stream (not sans-IO), and reads a
SUBSCRIBE string by string past any limit; the ``mqtt5`` package speaks MQTT 5 only. One codec
for both versions keeps one set of checks.

Properties are a ``dict[int, object]`` keyed by property identifier (the ``P_*`` constants).
User properties (``P_USER``) are a list of ``(name, value)`` pairs, Subscription Identifiers in a
server's PUBLISH a list of ints; every other property appears at most once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Packet types (the fixed header's high nibble).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15

MQTT311, MQTT5 = 4, 5  # protocol levels
PINGRESP_BYTES = b"\xd0\x00"

# Property identifiers (MQTT 5 §2.2.2.2).
P_PAYLOAD_FORMAT = 0x01
P_MESSAGE_EXPIRY = 0x02
P_CONTENT_TYPE = 0x03
P_RESPONSE_TOPIC = 0x08
P_CORRELATION_DATA = 0x09
P_SUBSCRIPTION_ID = 0x0B
P_SESSION_EXPIRY = 0x11
P_ASSIGNED_CLIENT_ID = 0x12
P_SERVER_KEEP_ALIVE = 0x13
P_AUTH_METHOD = 0x15
P_AUTH_DATA = 0x16
P_REQUEST_PROBLEM_INFO = 0x17
P_WILL_DELAY = 0x18
P_REQUEST_RESPONSE_INFO = 0x19
P_RESPONSE_INFO = 0x1A
P_SERVER_REFERENCE = 0x1C
P_REASON_STRING = 0x1F
P_RECEIVE_MAXIMUM = 0x21
P_TOPIC_ALIAS_MAXIMUM = 0x22
P_TOPIC_ALIAS = 0x23
P_MAXIMUM_QOS = 0x24
P_RETAIN_AVAILABLE = 0x25
P_USER = 0x26
P_MAXIMUM_PACKET_SIZE = 0x27
P_WILDCARD_SUB_AVAILABLE = 0x28
P_SUB_ID_AVAILABLE = 0x29
P_SHARED_SUB_AVAILABLE = 0x2A

_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
_PROPERTY_TYPES = {
    P_PAYLOAD_FORMAT: _BYTE, P_MESSAGE_EXPIRY: _U32, P_CONTENT_TYPE: _STR, P_RESPONSE_TOPIC: _STR,
    P_CORRELATION_DATA: _BIN, P_SUBSCRIPTION_ID: _VARINT, P_SESSION_EXPIRY: _U32, P_ASSIGNED_CLIENT_ID: _STR,
    P_SERVER_KEEP_ALIVE: _U16, P_AUTH_METHOD: _STR, P_AUTH_DATA: _BIN, P_REQUEST_PROBLEM_INFO: _BYTE,
    P_WILL_DELAY: _U32, P_REQUEST_RESPONSE_INFO: _BYTE, P_RESPONSE_INFO: _STR, P_SERVER_REFERENCE: _STR,
    P_REASON_STRING: _STR, P_RECEIVE_MAXIMUM: _U16, P_TOPIC_ALIAS_MAXIMUM: _U16, P_TOPIC_ALIAS: _U16,
    P_MAXIMUM_QOS: _BYTE, P_RETAIN_AVAILABLE: _BYTE, P_USER: _PAIR, P_MAXIMUM_PACKET_SIZE: _U32,
    P_WILDCARD_SUB_AVAILABLE: _BYTE, P_SUB_ID_AVAILABLE: _BYTE, P_SHARED_SUB_AVAILABLE: _BYTE,
}
_ACK_PROPS = frozenset({P_REASON_STRING, P_USER})
# What a client may send, per packet (MQTT 5 §2.2.2.2 table); anything else is a protocol error.
_CLIENT_PROPS: dict[int | str, frozenset[int]] = {
    CONNECT: frozenset({P_SESSION_EXPIRY, P_AUTH_METHOD, P_AUTH_DATA, P_REQUEST_PROBLEM_INFO,
                        P_REQUEST_RESPONSE_INFO, P_RECEIVE_MAXIMUM, P_TOPIC_ALIAS_MAXIMUM, P_USER,
                        P_MAXIMUM_PACKET_SIZE}),
    "will": frozenset({P_PAYLOAD_FORMAT, P_MESSAGE_EXPIRY, P_CONTENT_TYPE, P_RESPONSE_TOPIC, P_CORRELATION_DATA,
                       P_WILL_DELAY, P_USER}),
    PUBLISH: frozenset({P_PAYLOAD_FORMAT, P_MESSAGE_EXPIRY, P_CONTENT_TYPE, P_RESPONSE_TOPIC, P_CORRELATION_DATA,
                        P_TOPIC_ALIAS, P_USER}),
    PUBACK: _ACK_PROPS, PUBREC: _ACK_PROPS, PUBREL: _ACK_PROPS, PUBCOMP: _ACK_PROPS,
    SUBSCRIBE: frozenset({P_SUBSCRIPTION_ID, P_USER}),
    UNSUBSCRIBE: frozenset({P_USER}),
    DISCONNECT: frozenset({P_SESSION_EXPIRY, P_REASON_STRING, P_USER, P_SERVER_REFERENCE}),
    AUTH: frozenset({P_AUTH_METHOD, P_AUTH_DATA, P_REASON_STRING, P_USER}),
}
# Reason codes a client may put in its packets (MQTT 5 §3.4.2.1, §3.6.2.1, §3.14.2.1, §3.15.2.1).
_PUBACK_REASONS = frozenset({0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99})
_PUBREL_REASONS = frozenset({0x00, 0x92})
_DISCONNECT_REASONS = frozenset({0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90,
                                 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F,
                                 0xA0, 0xA1, 0xA2})
_CLIENT_REASONS = {PUBACK: _PUBACK_REASONS, PUBREC: _PUBACK_REASONS, PUBREL: _PUBREL_REASONS,
                   PUBCOMP: _PUBREL_REASONS}

MAX_VARINT = 268_435_455
MAX_CONNECT = 64 * 1024  # bytes: client id, will, user name and a token fit many times over
NO_PROPS: dict[int, Any] = {}  # shared, never mutated
QUOTA_EXCEEDED = 0x97  # MQTT 5 reason: an imposed limit was exceeded


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """What one packet may carry beyond its size, checked before it is decoded: properties
    (count, User Properties included, and bytes, per property block) and topic filters per
    SUBSCRIBE or UNSUBSCRIBE. Over a limit: :class:`LimitExceeded`."""

    max_properties: int = 32
    max_property_bytes: int = 8192
    max_filters: int = 64


DEFAULT_LIMITS = DecodeLimits()


class ProtocolViolation(Exception):
    """The peer broke the protocol: close the connection (MQTT 5: DISCONNECT with ``reason``)."""

    def __init__(self, message: str, reason: int = 0x81) -> None:  # 0x81 Malformed Packet
        super().__init__(message)
        self.reason = reason


class PacketTooLarge(ProtocolViolation):
    """A packet's announced size is over the limit (nothing of it was buffered)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 0x95)


class LimitExceeded(ProtocolViolation):
    """A packet carries more properties or filters than :class:`DecodeLimits` allows (found
    before they are decoded). ``level``: the protocol level, when it is a CONNECT's (so the
    refusal can be a CONNACK)."""

    def __init__(self, message: str, level: int | None = None) -> None:
        super().__init__(message, QUOTA_EXCEEDED)
        self.level = level


def _error(message: str, reason: int = 0x81) -> ProtocolViolation:
    return ProtocolViolation(message, reason)


# ---- packets -----------------------------------------------------------------------------------
@dataclass(slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: dict[int, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Connect:
    level: int  # MQTT311 or MQTT5
    client_id: str
    clean_start: bool  # 3.1.1: clean session
    keep_alive: int
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    properties: dict[int, Any] = field(default_factory=dict)

    @property
    def password_text(self) -> str | None:
        return None if self.password is None else self.password.decode("utf-8", "replace")


@dataclass(slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    packet_id: int | None
    retain: bool
    dup: bool
    properties: dict[int, Any] = field(default_factory=lambda: NO_PROPS)


@dataclass(frozen=True, slots=True)
class Ack:
    """PUBACK, PUBREC, PUBREL or PUBCOMP."""

    kind: int
    packet_id: int
    reason: int = 0
    properties: dict[int, Any] = field(default_factory=lambda: NO_PROPS)


@dataclass(frozen=True, slots=True)
class SubscriptionRequest:
    topic_filter: str
    qos: int
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0


@dataclass(frozen=True, slots=True)
class Subscribe:
    packet_id: int
    filters: tuple[SubscriptionRequest, ...]
    properties: dict[int, Any] = field(default_factory=lambda: NO_PROPS)


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    packet_id: int
    filters: tuple[str, ...]
    properties: dict[int, Any] = field(default_factory=lambda: NO_PROPS)


@dataclass(frozen=True, slots=True)
class Disconnect:
    reason: int = 0
    properties: dict[int, Any] = field(default_factory=lambda: NO_PROPS)


@dataclass(frozen=True, slots=True)
class Bare:
    """PINGREQ (or, MQTT 3.1.1, DISCONNECT, which has no body there)."""

    kind: int


@dataclass(frozen=True, slots=True)
class AuthPacket:
    reason: int
    properties: dict[int, Any] = field(default_factory=lambda: NO_PROPS)


Packet = Connect | Publish | Ack | Subscribe | Unsubscribe | Disconnect | Bare | AuthPacket


# ---- framing -----------------------------------------------------------------------------------
class FrameDecoder:
    """Splits the bytes a client sends into checked, decoded packets. ``level`` is None until the
    CONNECT has been decoded (only a CONNECT is accepted then), then that CONNECT's level.

    ``feed`` takes bytes; ``next_packet`` returns a decoded packet, None when more bytes are needed,
    or raises :class:`ProtocolViolation`. It never raises anything else, never loops without
    consuming input and never holds more than one packet plus one read of input."""

    __slots__ = ("_buf", "_limit", "_limits", "_pos", "level")

    def __init__(self, limit: int, level: int | None = None, limits: DecodeLimits = DEFAULT_LIMITS) -> None:
        self._limit = limit
        self._limits = limits
        self._buf = bytearray()
        self._pos = 0  # start of the first packet not yet returned (consumed bytes are dropped lazily)
        self.level = level

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buf[:self._pos]  # once per read, not once per packet
            self._pos = 0
        self._buf += data

    def next_packet(self) -> Packet | None:
        buf, start = self._buf, self._pos
        if self.level is None and len(buf) > start and buf[start] != CONNECT << 4:
            # Judged on its first byte: a peer that does not speak MQTT is not waited for.
            raise _error(f"first packet is not a CONNECT (first byte {buf[start]:#x})", 0x82)
        if len(buf) - start < 2:
            return None
        length, shift, pos = 0, 0, start + 1
        while True:
            if pos >= len(buf):
                return None
            if pos - start > 4:
                msg = "remaining length field longer than 4 bytes"
                raise _error(msg)
            byte = buf[pos]
            length |= (byte & 0x7F) << shift
            pos += 1
            if not byte & 0x80:
                break
            shift += 7
        limit = self._limit if self.level is not None else min(self._limit, MAX_CONNECT)
        if length > limit:
            msg = f"packet of {length} bytes is over the limit of {limit}"
            raise PacketTooLarge(msg)
        end = pos + length
        if len(buf) < end:
            return None
        first = buf[start]
        body = bytes(buf[pos:end])
        self._pos = end
        if self.level is None:
            connect = decode_connect(first, body, self._limits)
            self.level = connect.level
            return connect
        return decode(first, body, self.level, self._limits)


# ---- primitive readers (all bounds-checked) ---------------------------------------------------
def _u16(body: bytes, pos: int) -> tuple[int, int]:
    if pos + 2 > len(body):
        raise _error("two-byte integer runs past the end of its packet")
    return (body[pos] << 8) | body[pos + 1], pos + 2


def _u32(body: bytes, pos: int) -> tuple[int, int]:
    if pos + 4 > len(body):
        raise _error("four-byte integer runs past the end of its packet")
    return int.from_bytes(body[pos:pos + 4], "big"), pos + 4


def _varint(body: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    for i in range(4):
        if pos + i >= len(body):
            raise _error("variable byte integer runs past the end of its packet")
        byte = body[pos + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if i and byte == 0:
                raise _error("variable byte integer not in its shortest form")
            return value, pos + i + 1
        shift += 7
    raise _error("variable byte integer longer than 4 bytes")


def _binary(body: bytes, pos: int) -> tuple[bytes, int]:
    n, pos = _u16(body, pos)
    end = pos + n
    if end > len(body):
        raise _error("data runs past the end of its packet")
    return body[pos:end], end


def _string(body: bytes, pos: int) -> tuple[str, int]:
    raw, end = _binary(body, pos)
    try:
        text = raw.decode("utf-8")  # strict: rejects overlongs, surrogates and invalid bytes
    except UnicodeDecodeError as exc:
        msg = "string is not well-formed UTF-8 [MQTT-1.5.4-1]"
        raise _error(msg) from exc
    if "\x00" in text:
        msg = "string contains U+0000 [MQTT-1.5.4-2]"
        raise _error(msg)
    return text, end


def _packet_id(body: bytes, pos: int) -> tuple[int, int]:
    packet_id, pos = _u16(body, pos)
    if packet_id == 0:
        raise _error("packet identifier 0", 0x82)
    return packet_id, pos


def _properties(body: bytes, pos: int, allowed: frozenset[int], limits: DecodeLimits = DEFAULT_LIMITS
                ) -> tuple[dict[int, Any], int]:
    length, pos = _varint(body, pos)
    end = pos + length
    if end > len(body):
        raise _error("properties run past the end of their packet")
    if not length:
        return {}, end
    if length > limits.max_property_bytes:  # refused before any of it is decoded
        raise LimitExceeded(f"{length} bytes of properties, over the limit of {limits.max_property_bytes}")
    props: dict[int, Any] = {}
    count = 0
    while pos < end:
        count += 1
        if count > limits.max_properties:
            raise LimitExceeded(f"more than {limits.max_properties} properties in one packet")
        ident, pos = _varint(body, pos)
        kind = _PROPERTY_TYPES.get(ident)
        if kind is None or ident not in allowed:
            raise _error(f"property {ident:#x} is not allowed here", 0x82)
        value: Any
        if kind == _BYTE:
            if pos >= end:
                raise _error("property runs past its properties")
            value, pos = body[pos], pos + 1
        elif kind == _U16:
            value, pos = _u16(body, pos)
        elif kind == _U32:
            value, pos = _u32(body, pos)
        elif kind == _VARINT:
            value, pos = _varint(body, pos)
        elif kind == _STR:
            value, pos = _string(body, pos)
        elif kind == _BIN:
            value, pos = _binary(body, pos)
        else:
            name, pos = _string(body, pos)
            text, pos = _string(body, pos)
            props.setdefault(P_USER, []).append((name, text))
            continue
        if pos > end:
            raise _error("property runs past its properties")
        if ident in props:
            raise _error(f"property {ident:#x} given twice", 0x82)
        props[ident] = value
    if pos != end:
        raise _error("properties run past their length")
    _check_property_values(props)
    return props, end


def _check_property_values(props: dict[int, Any]) -> None:
    for ident in (P_PAYLOAD_FORMAT, P_REQUEST_PROBLEM_INFO, P_REQUEST_RESPONSE_INFO):
        if props.get(ident, 0) > 1:
            raise _error(f"property {ident:#x} must be 0 or 1", 0x82)
    if props.get(P_RECEIVE_MAXIMUM) == 0 or props.get(P_MAXIMUM_PACKET_SIZE) == 0 \
            or props.get(P_SUBSCRIPTION_ID) == 0 or props.get(P_TOPIC_ALIAS) == 0:
        raise _error("a property that must not be 0 is 0", 0x82)
    topic = props.get(P_RESPONSE_TOPIC)
    if topic is not None and (not topic or "+" in topic or "#" in topic):
        raise _error("response topic must be a topic name [MQTT-3.3.2-14]", 0x82)


# ---- decoders ---------------------------------------------------------------------------------
def decode_connect(first: int, body: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> Connect:
    """The first packet of a connection, which must be a CONNECT.

    Raises:
        UnsupportedVersion: a CONNECT of a protocol level other than 4 or 5 (answer CONNACK 1 / 0x84).
        ProtocolViolation: not a CONNECT, or malformed.
    """
    if first != CONNECT << 4:
        raise _error(f"first packet is not a CONNECT (type {first >> 4}, flags {first & 15:#x})", 0x82)
    name, pos = _string(body, 0)
    if pos >= len(body):
        raise _error("CONNECT without protocol level")
    level = body[pos]
    if name != "MQTT" or level not in (MQTT311, MQTT5):
        raise UnsupportedVersion(f"protocol {name!r} level {level}", level)
    if pos + 1 >= len(body):
        raise _error("CONNECT without flags")
    flags = body[pos + 1]
    keep_alive, pos = _u16(body, pos + 2)
    if flags & 0x01:
        raise _error("[MQTT-3.1.2-3] CONNECT reserved flag set")
    will_flag, will_qos, will_retain = bool(flags & 0x04), (flags >> 3) & 0x03, bool(flags & 0x20)
    if not will_flag and (will_qos or will_retain):
        raise _error("will QoS or retain without a will [MQTT-3.1.2-11]")
    if will_qos == 3:
        raise _error("will QoS 3 [MQTT-3.1.2-12]")
    username_flag, password_flag = bool(flags & 0x80), bool(flags & 0x40)
    if level == MQTT311 and password_flag and not username_flag:
        raise _error("password without user name [MQTT-3.1.2-22]")
    props = NO_PROPS
    try:
        if level == MQTT5:
            props, pos = _properties(body, pos, _CLIENT_PROPS[CONNECT], limits)
        client_id, pos = _string(body, pos)
        will_props = NO_PROPS
        if will_flag and level == MQTT5:
            will_props, pos = _properties(body, pos, _CLIENT_PROPS["will"], limits)
    except LimitExceeded as exc:
        exc.level = level  # answered with a CONNACK
        raise
    will = None
    if will_flag:
        topic, pos = _string(body, pos)
        payload, pos = _binary(body, pos)
        will = Will(topic, payload, will_qos, will_retain, dict(will_props))
    username = password = None
    if username_flag:
        username, pos = _string(body, pos)
    if password_flag:
        password, pos = _binary(body, pos)
    if pos != len(body):
        raise _error("bytes after the end of CONNECT")
    return Connect(level, client_id, bool(flags & 0x02), keep_alive, username, password, will, dict(props))


class UnsupportedVersion(ProtocolViolation):
    def __init__(self, message: str, level: int) -> None:
        super().__init__(message, 0x84)
        self.level = level


_FIXED_FLAGS = {PUBACK: 0, PUBREC: 0, PUBREL: 2, PUBCOMP: 0, SUBSCRIBE: 2, UNSUBSCRIBE: 2, PINGREQ: 0,
                DISCONNECT: 0, AUTH: 0}


def decode(first: int, body: bytes, level: int = MQTT311, limits: DecodeLimits = DEFAULT_LIMITS) -> Packet:
    """Decode one packet a client sends after CONNECT, from its first byte and its body.

    Raises:
        ProtocolViolation: malformed, or a packet type a client must not send after CONNECT.
    """
    kind, flags = first >> 4, first & 0x0F
    if kind == PUBLISH:
        return _publish(flags, body, level, limits)
    expected = _FIXED_FLAGS.get(kind)
    if expected is None or (kind == AUTH and level != MQTT5):
        raise _error(f"packet type {kind} is not allowed from a client after CONNECT", 0x82)
    if flags != expected:
        raise _error(f"packet type {kind} with reserved flags {flags:#x}")
    if kind == PINGREQ:
        if body:
            raise _error("PINGREQ with a body")
        return Bare(kind)
    if kind == DISCONNECT:
        if level != MQTT5:
            if body:
                raise _error("DISCONNECT with a body")
            return Bare(kind)
        return _disconnect(body, limits)
    if kind in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        return _ack(kind, body, level, limits)
    if kind == SUBSCRIBE:
        return _subscribe(body, level, limits)
    if kind == UNSUBSCRIBE:
        return _unsubscribe(body, level, limits)
    reason, props = 0, NO_PROPS
    if body:
        reason = body[0]
        if len(body) > 1:
            props, end = _properties(body, 1, _CLIENT_PROPS[AUTH], limits)
            if end != len(body):
                raise _error("bytes after the end of AUTH")
    return AuthPacket(reason, props)


def _disconnect(body: bytes, limits: DecodeLimits) -> Disconnect:
    if not body:
        return Disconnect()
    reason = body[0]
    if reason not in _DISCONNECT_REASONS:
        raise _error(f"DISCONNECT reason {reason:#x}", 0x82)
    props = NO_PROPS
    if len(body) > 1:
        props, end = _properties(body, 1, _CLIENT_PROPS[DISCONNECT], limits)
        if end != len(body):
            raise _error("bytes after the end of DISCONNECT")
    return Disconnect(reason, props)


def _ack(kind: int, body: bytes, level: int, limits: DecodeLimits) -> Ack:
    packet_id, pos = _packet_id(body, 0)
    if level != MQTT5:
        if len(body) != 2:
            raise _error(f"packet type {kind} must have 2 bytes, not {len(body)}")
        return Ack(kind, packet_id)
    reason, props = 0, NO_PROPS
    if len(body) > 2:
        reason = body[2]
        if reason not in _CLIENT_REASONS[kind]:
            raise _error(f"packet type {kind} with reason {reason:#x}", 0x82)
        if len(body) > 3:
            props, pos = _properties(body, 3, _CLIENT_PROPS[kind], limits)
            if pos != len(body):
                raise _error(f"bytes after the end of packet type {kind}")
    return Ack(kind, packet_id, reason, props)


def _publish(flags: int, body: bytes, level: int, limits: DecodeLimits) -> Publish:
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise _error("PUBLISH with QoS 3 [MQTT-3.3.1-4]")
    dup = bool(flags & 0x08)
    if dup and qos == 0:
        raise _error("PUBLISH QoS 0 with DUP set [MQTT-3.3.1-2]")
    topic, pos = _string(body, 0)
    packet_id = None
    if qos:
        packet_id, pos = _packet_id(body, pos)
    props = NO_PROPS
    if level == MQTT5:
        if pos < len(body) and body[pos] == 0:  # no properties: the common case, no dict made
            pos += 1
        else:
            props, pos = _properties(body, pos, _CLIENT_PROPS[PUBLISH], limits)
    return Publish(topic, body[pos:], qos, packet_id, bool(flags & 0x01), dup, props)


def _too_many_filters(limits: DecodeLimits) -> LimitExceeded:
    return LimitExceeded(f"more than {limits.max_filters} topic filters in one packet")


def _subscribe(body: bytes, level: int, limits: DecodeLimits) -> Subscribe:
    packet_id, pos = _packet_id(body, 0)
    props = NO_PROPS
    if level == MQTT5:
        props, pos = _properties(body, pos, _CLIENT_PROPS[SUBSCRIBE], limits)
    filters: list[SubscriptionRequest] = []
    while pos < len(body):
        if len(filters) == limits.max_filters:  # the next one is not decoded
            raise _too_many_filters(limits)
        text, pos = _string(body, pos)
        if pos >= len(body):
            raise _error("SUBSCRIBE filter without options")
        options = body[pos]
        pos += 1
        qos = options & 0x03
        if qos == 3:
            raise _error("SUBSCRIBE with requested QoS 3 [MQTT-3.8.3-4]")
        if level == MQTT5:
            if options & 0xC0:
                raise _error(f"SUBSCRIBE options {options:#x} with reserved bits [MQTT-3.8.3-5]")
            if (options >> 4) & 0x03 == 3:
                raise _error(f"SUBSCRIBE options {options:#x} with retain handling 3", 0x82)
            filters.append(SubscriptionRequest(text, qos, bool(options & 0x04), bool(options & 0x08),
                                               (options >> 4) & 0x03))
        else:
            if options & 0xFC:
                raise _error(f"SUBSCRIBE with requested QoS byte {options:#x} [MQTT-3.8.3-4]")
            filters.append(SubscriptionRequest(text, qos))
    if not filters:
        raise _error("SUBSCRIBE without a filter [MQTT-3.8.3-3]", 0x82)
    return Subscribe(packet_id, tuple(filters), props)


def _unsubscribe(body: bytes, level: int, limits: DecodeLimits) -> Unsubscribe:
    packet_id, pos = _packet_id(body, 0)
    props = NO_PROPS
    if level == MQTT5:
        props, pos = _properties(body, pos, _CLIENT_PROPS[UNSUBSCRIBE], limits)
    filters: list[str] = []
    while pos < len(body):
        if len(filters) == limits.max_filters:
            raise _too_many_filters(limits)
        text, pos = _string(body, pos)
        filters.append(text)
    if not filters:
        raise _error("UNSUBSCRIBE without a filter [MQTT-3.10.3-2]", 0x82)
    return Unsubscribe(packet_id, tuple(filters), props)


# ---- encoders (what a server sends) -----------------------------------------------------------
def remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


_varint_bytes = remaining_length


def _str_bytes(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def encode_properties(props: dict[int, Any] | None) -> bytes:
    if not props:
        return b"\x00"
    out = bytearray()
    for ident, value in props.items():
        kind = _PROPERTY_TYPES[ident]
        if kind == _PAIR:
            for name, text in value:
                out += bytes((ident,)) + _str_bytes(name) + _str_bytes(text)
            continue
        if ident == P_SUBSCRIPTION_ID and isinstance(value, list):  # a server's PUBLISH may carry several
            for sub_id in value:
                out += bytes((ident,)) + _varint_bytes(sub_id)
            continue
        out.append(ident)
        if kind == _BYTE:
            out.append(value)
        elif kind == _U16:
            out += value.to_bytes(2, "big")
        elif kind == _U32:
            out += value.to_bytes(4, "big")
        elif kind == _VARINT:
            out += _varint_bytes(value)
        elif kind == _STR:
            out += _str_bytes(value)
        else:
            out += len(value).to_bytes(2, "big") + bytes(value)
    return _varint_bytes(len(out)) + bytes(out)


_CONSTANT: dict[int, tuple[dict[int, Any], int]] = {}  # id -> (properties never changed, their size)


def constant_properties(props: dict[int, Any]) -> dict[int, Any]:
    """``props``, which nobody will change (shared by many messages): its size is known at once."""
    _CONSTANT[id(props)] = (props, properties_size(props))
    return props


def properties_size(props: dict[int, Any]) -> int:
    """About the encoded bytes of properties (strings, binary data and User Properties are what
    weigh): a message's properties count in every byte bound with its topic and payload."""
    known = _CONSTANT.get(id(props))
    if known is not None and known[0] is props:
        return known[1]
    size = 0
    for value in props.values():
        if isinstance(value, list):  # User Properties ((name, value) pairs), or Subscription Identifiers
            size += sum(5 + len(v[0]) + len(v[1]) if isinstance(v, tuple) else 4 for v in value)
        else:
            size += 3 + len(value) if isinstance(value, str | bytes) else 5
    return size


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + remaining_length(len(body)) + body


def encode_connack(level: int, session_present: bool, code: int, props: dict[int, Any] | None = None) -> bytes:
    body = bytes((1 if session_present else 0, code))
    if level == MQTT5:
        body += encode_properties(props)
    return _packet(CONNACK << 4, body)


def encode_publish(topic: bytes, payload: bytes, qos: int, packet_id: int = 0, *, dup: bool = False,
                   retain: bool = False, level: int = MQTT311, props: bytes = b"\x00") -> bytes:
    """One PUBLISH. ``topic`` is the UTF-8 topic name (empty with a topic alias); ``props`` the
    encoded properties (MQTT 5 only)."""
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    variable = len(topic).to_bytes(2, "big") + topic + (packet_id.to_bytes(2, "big") if qos else b"")
    if level == MQTT5:
        variable += props
    return bytes((0x30 | flags,)) + remaining_length(len(variable) + len(payload)) + variable + payload


def encode_ack(kind: int, packet_id: int, reason: int = 0, *, level: int = MQTT311,
               props: dict[int, Any] | None = None) -> bytes:
    """PUBACK, PUBREC, PUBREL or PUBCOMP."""
    first = (kind << 4) | (2 if kind == PUBREL else 0)
    if level == MQTT5 and (reason or props):
        body = packet_id.to_bytes(2, "big") + bytes((reason,))
        if props:
            body += encode_properties(props)
        return _packet(first, body)
    return bytes((first, 2)) + packet_id.to_bytes(2, "big")


def encode_suback(packet_id: int, codes: list[int], *, level: int = MQTT311,
                  props: dict[int, Any] | None = None) -> bytes:
    body = packet_id.to_bytes(2, "big")
    if level == MQTT5:
        body += encode_properties(props)
    return _packet(SUBACK << 4, body + bytes(codes))


def encode_unsuback(packet_id: int, codes: list[int] | None = None, *, level: int = MQTT311,
                    props: dict[int, Any] | None = None) -> bytes:
    if level != MQTT5:
        return b"\xb0\x02" + packet_id.to_bytes(2, "big")
    body = packet_id.to_bytes(2, "big") + encode_properties(props) + bytes(codes or ())
    return _packet(UNSUBACK << 4, body)


def encode_disconnect(reason: int, props: dict[int, Any] | None = None) -> bytes:
    """MQTT 5 only (a 3.1.1 server closes the connection without a packet)."""
    if not reason and not props:
        return b"\xe0\x00"
    return _packet(DISCONNECT << 4, bytes((reason,)) + (encode_properties(props) if props else b""))
