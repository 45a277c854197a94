"""One MQTT connection, server side, sans-IO (in the manner of h11): bytes and decisions in,
events and bytes out. No sockets, no asyncio, no clock.

The shell (``broker.link``) feeds what it reads with :meth:`Connection.receive_data`, pulls
events one at a time with :meth:`Connection.next_event` (so that not pulling is back-pressure),
answers them through the ``accept``/``refuse``/``send_*``/``close`` methods, and writes what
:meth:`Connection.data_to_send` returns. The broker decides *who* may do *what*; this object
knows only the protocol: both versions (3.1.1 and 5.0), their packet rules, reason codes, the
QoS 2 receiver state, topic aliases, receive maximum and maximum packet size.

States (``TRANSITIONS`` is the whole table; anything else raises :class:`LocalProtocolError`,
a bug in the caller):

    AWAIT_CONNECT --CONNECT--> CONNECTING --accept--> CONNECTED --DISCONNECT/close--> CLOSED
                                   |--refuse--> CLOSED
    any state --protocol violation / close--> CLOSED

While CONNECTING, packets a client sends right after its CONNECT (allowed by MQTT 5 §3.1.4)
wait in the buffer until the broker has decided.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from broker import codec
from broker.codec import (
    MQTT5,
    MQTT311,
    Ack,
    AuthPacket,
    Bare,
    Connect,
    Disconnect,
    ProtocolViolation,
    Publish,
    Subscribe,
    Unsubscribe,
)


class State(enum.Enum):
    AWAIT_CONNECT = "await_connect"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


A, CI, CD, X = State.AWAIT_CONNECT, State.CONNECTING, State.CONNECTED, State.CLOSED
TRANSITIONS: dict[tuple[State, str], State] = {
    (A, "connect"): CI,
    (CI, "accept"): CD,
    (CI, "refuse"): X,
    (CD, "disconnect"): X,
    (A, "violation"): X, (CI, "violation"): X, (CD, "violation"): X,
    (A, "close"): X, (CI, "close"): X, (CD, "close"): X, (X, "close"): X,
}

# MQTT 5 reason codes the broker uses (MQTT 5 §2.4).
SUCCESS = 0x00
NO_MATCHING_SUBSCRIBERS = 0x10
NO_SUBSCRIPTION_EXISTED = 0x11
DISCONNECT_WITH_WILL = 0x04
UNSPECIFIED = 0x80
MALFORMED = 0x81
PROTOCOL_ERROR = 0x82
IMPLEMENTATION_SPECIFIC = 0x83
UNSUPPORTED_VERSION = 0x84
CLIENT_ID_NOT_VALID = 0x85
BAD_CREDENTIALS = 0x86
NOT_AUTHORIZED = 0x87
SERVER_UNAVAILABLE = 0x88
SERVER_BUSY = 0x89
SERVER_SHUTTING_DOWN = 0x8B
BAD_AUTH_METHOD = 0x8C
KEEP_ALIVE_TIMEOUT = 0x8D
SESSION_TAKEN_OVER = 0x8E
TOPIC_FILTER_INVALID = 0x8F
TOPIC_NAME_INVALID = 0x90
PACKET_ID_NOT_FOUND = 0x92
RECEIVE_MAXIMUM_EXCEEDED = 0x93
TOPIC_ALIAS_INVALID = 0x94
PACKET_TOO_LARGE = 0x95
QUOTA_EXCEEDED = 0x97
ADMINISTRATIVE_ACTION = 0x98
PAYLOAD_FORMAT_INVALID = 0x99
SHARED_NOT_SUPPORTED = 0x9E
SUB_IDS_NOT_SUPPORTED = 0xA1
WILDCARDS_NOT_SUPPORTED = 0xA2

# A refused CONNECT: the MQTT 5 reason and the nearest MQTT 3.1.1 return code (§3.2.2.3).
_CONNACK_311 = {UNSUPPORTED_VERSION: 1, CLIENT_ID_NOT_VALID: 2, SERVER_UNAVAILABLE: 3, SERVER_BUSY: 3,
                SERVER_SHUTTING_DOWN: 3, BAD_CREDENTIALS: 4, NOT_AUTHORIZED: 5, QUOTA_EXCEEDED: 5,
                BAD_AUTH_METHOD: 5, UNSPECIFIED: 3, PACKET_TOO_LARGE: 3}

MAX_QOS2_PENDING_311 = 1000  # 3.1.1 has no receive maximum: QoS 2 ids awaiting PUBREL per session
MAX_OUT_ALIASES = 64  # topic aliases the server assigns (at most what the client allows)


class LocalProtocolError(Exception):
    """The caller did something the state table does not allow (a bug, not the client's fault)."""


# ---- events -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ConnectRequested:
    connect: Connect


@dataclass(frozen=True, slots=True)
class PublishReceived:
    """A PUBLISH, its topic alias resolved. ``duplicate``: a QoS 2 PUBLISH whose packet id is
    already received and not yet released: do not route it again, just answer PUBREC."""

    publish: Publish
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class AckReceived:
    """PUBACK, PUBREC or PUBCOMP for a message the server sent (PUBREL is handled here)."""

    kind: int
    packet_id: int
    reason: int = 0


@dataclass(frozen=True, slots=True)
class ControlReceived:
    """A PINGREQ or PUBREL, already answered here (PINGRESP, PUBCOMP): an event only so that
    the shell charges it to the connection's budget. ``prepaid``: a PUBREL releasing a QoS 2
    PUBLISH this session received, which paid for it."""

    kind: int
    prepaid: bool = False


_PING = ControlReceived(codec.PINGREQ)
_PUBREL_KNOWN = ControlReceived(codec.PUBREL, prepaid=True)
_PUBREL_UNKNOWN = ControlReceived(codec.PUBREL)


@dataclass(frozen=True, slots=True)
class SubscribeRequested:
    subscribe: Subscribe


@dataclass(frozen=True, slots=True)
class UnsubscribeRequested:
    unsubscribe: Unsubscribe


@dataclass(frozen=True, slots=True)
class DisconnectRequested:
    """The client's DISCONNECT. ``send_will``: MQTT 5 reason 0x04 asks for the will anyway.
    ``session_expiry``: a new session expiry interval, if the client gave one."""

    reason: int = 0
    session_expiry: int | None = None
    send_will: bool = False


@dataclass(frozen=True, slots=True)
class ProtocolErrorEvent:
    """The client broke the protocol; the connection is CLOSED and (MQTT 5) a DISCONNECT with
    ``reason`` is in the output. Write it, then close the socket."""

    reason: int
    message: str


class _Marker(enum.Enum):
    NEED_DATA = "need_data"
    PAUSED = "paused"


NEED_DATA = _Marker.NEED_DATA  # nothing complete in the buffer
PAUSED = _Marker.PAUSED  # waiting for accept/refuse (or closed): pull again after deciding

Event = (ConnectRequested | PublishReceived | AckReceived | ControlReceived | SubscribeRequested
         | UnsubscribeRequested | DisconnectRequested | ProtocolErrorEvent)


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What the server accepts from a client (announced in an MQTT 5 CONNACK)."""

    max_packet: int = 1 << 20
    receive_maximum: int = 100  # QoS 1/2 PUBLISHes a client may have unacknowledged
    topic_alias_maximum: int = 16
    max_keep_alive: int = 0  # 0: the client's choice stands; else at most this (Server Keep Alive)
    decode: codec.DecodeLimits = codec.DEFAULT_LIMITS  # properties and filters per packet


class Connection:
    """The protocol state of one client connection."""

    __slots__ = ("_aliases_in", "_aliases_out", "_client_alias_max", "_decoder", "_out", "_qos2_in",
                 "_session_expiry_was_zero", "_unacked_in", "client_max_packet", "client_receive_maximum",
                 "keep_alive", "level", "limits", "out_bytes", "state")

    def __init__(self, limits: ServerLimits | None = None) -> None:
        self.limits = limits or ServerLimits()
        self.state = State.AWAIT_CONNECT
        self._decoder = codec.FrameDecoder(self.limits.max_packet, limits=self.limits.decode)
        self._out: list[bytes] = []
        self.out_bytes = 0  # bytes in the output not yet taken by data_to_send
        self.level = MQTT311
        self.keep_alive = 0  # seconds, after accept (the server's override, if any)
        # What the client accepts (MQTT 5 CONNECT properties; 3.1.1: unlimited).
        self.client_receive_maximum = 65535
        self.client_max_packet = codec.MAX_VARINT + 5
        self._client_alias_max = 0
        self._aliases_in: dict[int, str] = {}
        self._aliases_out: dict[str, int] = {}
        self._qos2_in: set[int] = set()  # the session's: QoS 2 packet ids received and not yet released
        self._session_expiry_was_zero = True
        self._unacked_in = 0  # QoS 1 PUBLISHes received and not yet acknowledged (plus QoS 2 pending PUBREL)

    # ---- input ------------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        if self.state is not State.CLOSED:
            self._decoder.feed(data)

    def next_event(self) -> Event | _Marker:
        """The next event, NEED_DATA, or PAUSED (deciding on the CONNECT, or closed). One packet
        per call, whatever its type, so that the shell can pace every packet a client sends."""
        if self.state in (State.CONNECTING, State.CLOSED):
            return PAUSED
        try:
            packet = self._decoder.next_packet()
            if packet is None:
                return NEED_DATA
            return self._event(packet)
        except codec.UnsupportedVersion as exc:
            self._write(codec.encode_connack(MQTT311 if exc.level < MQTT5 else MQTT5, False,
                                             1 if exc.level < MQTT5 else UNSUPPORTED_VERSION))
            return self._violation(exc.reason, str(exc), send=False)
        except codec.LimitExceeded as exc:
            if self.state is State.AWAIT_CONNECT and exc.level == MQTT5:  # a CONNECT over the limits
                self._write(codec.encode_connack(MQTT5, False, QUOTA_EXCEEDED, {codec.P_REASON_STRING: str(exc)}))
                return self._violation(exc.reason, str(exc), send=False)
            return self._violation(exc.reason, str(exc))
        except ProtocolViolation as exc:
            return self._violation(exc.reason, str(exc))

    def _violation(self, reason: int, message: str, *, send: bool = True) -> ProtocolErrorEvent:
        if send and self.state is State.CONNECTED and self.level == MQTT5:
            self._write(codec.encode_disconnect(reason))
        self._fire("violation")
        return ProtocolErrorEvent(reason, message)

    def _fire(self, trigger: str) -> None:
        dest = TRANSITIONS.get((self.state, trigger))
        if dest is None:
            msg = f"cannot {trigger} in state {self.state.value}"
            raise LocalProtocolError(msg)
        self.state = dest

    def _event(self, packet: codec.Packet) -> Event:
        if self.state is State.AWAIT_CONNECT:
            assert isinstance(packet, Connect)  # the decoder accepts only a CONNECT first
            self.level = packet.level
            self._fire("connect")
            return ConnectRequested(packet)
        if isinstance(packet, Publish):
            return self._publish(packet)
        if isinstance(packet, Ack):
            if packet.kind == codec.PUBREL:
                return _PUBREL_KNOWN if self._pubrel(packet.packet_id) else _PUBREL_UNKNOWN
            return AckReceived(packet.kind, packet.packet_id, packet.reason)
        if isinstance(packet, Subscribe):
            return SubscribeRequested(packet)
        if isinstance(packet, Unsubscribe):
            return UnsubscribeRequested(packet)
        if isinstance(packet, Bare):  # PINGREQ, or a 3.1.1 DISCONNECT
            if packet.kind == codec.PINGREQ:
                self._write(codec.PINGRESP_BYTES)
                return _PING
            self._fire("disconnect")
            return DisconnectRequested()
        if isinstance(packet, Disconnect):
            expiry = packet.properties.get(codec.P_SESSION_EXPIRY)
            if expiry and self._session_expiry_was_zero:
                # [MQTT-3.14.2-2]: a session that was to end at disconnect cannot be kept now.
                raise ProtocolViolation("DISCONNECT sets a session expiry the CONNECT had as 0", PROTOCOL_ERROR)
            self._fire("disconnect")
            return DisconnectRequested(packet.reason, expiry, packet.reason == DISCONNECT_WITH_WILL)
        assert isinstance(packet, AuthPacket)
        raise ProtocolViolation("AUTH without an authentication method in CONNECT", PROTOCOL_ERROR)

    def _publish(self, p: Publish) -> PublishReceived:
        if self.level == MQTT5:
            alias = p.properties.get(codec.P_TOPIC_ALIAS)
            if alias is not None:
                if alias > self.limits.topic_alias_maximum:
                    raise ProtocolViolation(f"topic alias {alias} over the maximum", TOPIC_ALIAS_INVALID)
                if p.topic:
                    self._aliases_in[alias] = p.topic
                else:
                    topic = self._aliases_in.get(alias)
                    if topic is None:
                        raise ProtocolViolation(f"unknown topic alias {alias}", PROTOCOL_ERROR)
                    p.topic = topic
            # A QoS 2 retransmission of an id still awaiting PUBREL is already counted.
            duplicate = p.qos == 2 and p.packet_id in self._qos2_in
            if p.qos and not duplicate and self._unacked_in >= self.limits.receive_maximum:
                raise ProtocolViolation("more unacknowledged QoS 1/2 PUBLISHes than Receive Maximum",
                                        RECEIVE_MAXIMUM_EXCEEDED)
        if not p.topic:
            raise ProtocolViolation("PUBLISH with an empty topic", PROTOCOL_ERROR)
        if p.qos == 2:
            if p.packet_id in self._qos2_in:
                return PublishReceived(p, duplicate=True)
            if self.level == MQTT311 and len(self._qos2_in) >= MAX_QOS2_PENDING_311:
                raise ProtocolViolation(f"more than {MAX_QOS2_PENDING_311} QoS 2 PUBLISHes without PUBREL")
        if p.qos:
            self._unacked_in += 1
        return PublishReceived(p)

    def _pubrel(self, packet_id: int) -> bool:
        """PUBCOMP for a PUBREL; True if it released a QoS 2 PUBLISH this session received."""
        known = packet_id in self._qos2_in
        self._qos2_in.discard(packet_id)
        if known:
            self._unacked_in -= 1
        reason = SUCCESS if known or self.level != MQTT5 else PACKET_ID_NOT_FOUND
        self._write(codec.encode_ack(codec.PUBCOMP, packet_id, reason, level=self.level))
        return known

    # ---- decisions --------------------------------------------------------------------------
    def accept(self, *, session_present: bool, qos2_in: set[int] | None = None, assigned_client_id: str | None = None,
               session_expiry: int | None = None, keep_alive: int, extra: dict[int, Any] | None = None) -> None:
        """CONNACK 0. ``qos2_in``: the session's QoS 2 packet ids awaiting PUBREL (kept by the
        session across connections, for exactly-once). ``session_expiry``: the interval the
        server chose, sent if it differs from the client's (MQTT 5). ``keep_alive``: what the
        client asked for; the server's maximum applies."""
        self._fire("accept")
        if qos2_in is not None:
            self._qos2_in = qos2_in
            self._unacked_in = len(qos2_in)
        limit = self.limits.max_keep_alive if self.level == MQTT5 else 0  # 3.1.1 cannot be told another one
        self.keep_alive = keep_alive if not limit or (keep_alive and keep_alive <= limit) else limit
        if self.level != MQTT5:
            self._write(codec.encode_connack(MQTT311, session_present, 0))
            return
        # Maximum Packet Size counts the whole packet, fixed header included: the largest whose
        # remaining length is within max_packet (one byte more needs max_packet + 1 of remaining length).
        max_packet = self.limits.max_packet
        props: dict[int, Any] = {
            codec.P_RECEIVE_MAXIMUM: self.limits.receive_maximum,
            codec.P_MAXIMUM_PACKET_SIZE: max_packet + 1 + len(codec.remaining_length(max_packet)),
            codec.P_TOPIC_ALIAS_MAXIMUM: self.limits.topic_alias_maximum,
        }
        if assigned_client_id is not None:
            props[codec.P_ASSIGNED_CLIENT_ID] = assigned_client_id
        if session_expiry is not None:
            props[codec.P_SESSION_EXPIRY] = session_expiry
        if self.keep_alive != keep_alive:
            props[codec.P_SERVER_KEEP_ALIVE] = self.keep_alive
        if extra:
            props.update(extra)
        self._write(codec.encode_connack(MQTT5, session_present, 0, props))

    def client_wants(self, connect: Connect) -> None:
        """Take what an MQTT 5 client announced in its CONNECT (done by the broker before accept)."""
        props = connect.properties
        self.client_receive_maximum = props.get(codec.P_RECEIVE_MAXIMUM, 65535)
        self.client_max_packet = props.get(codec.P_MAXIMUM_PACKET_SIZE, codec.MAX_VARINT + 5)
        self._client_alias_max = min(props.get(codec.P_TOPIC_ALIAS_MAXIMUM, 0), MAX_OUT_ALIASES)
        self._session_expiry_was_zero = not props.get(codec.P_SESSION_EXPIRY, 0)

    def refuse(self, reason: int, *, why: str | None = None) -> None:
        """A CONNACK refusing the connection (the 3.1.1 code nearest to ``reason``); then close."""
        self._fire("refuse")
        if self.level == MQTT5:
            props = {codec.P_REASON_STRING: why} if why else None
            self._write(codec.encode_connack(MQTT5, False, reason, props))
        else:
            self._write(codec.encode_connack(MQTT311, False, _CONNACK_311.get(reason, 3)))

    def close(self, reason: int = SUCCESS, *, why: str | None = None) -> None:
        """The server ends the connection: MQTT 5 gets a DISCONNECT with ``reason`` first (if it
        was connected); 3.1.1 has no such packet. Write what is pending, then close the socket."""
        if self.state is State.CONNECTED and self.level == MQTT5:
            self._write(codec.encode_disconnect(reason, {codec.P_REASON_STRING: why} if why else None))
        self._fire("close")

    # ---- output -----------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        self._out.append(data)
        self.out_bytes += len(data)

    def data_to_send(self) -> bytes:
        """What to write to the socket, in order (empty if nothing)."""
        if not self._out:
            return b""
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        self.out_bytes = 0
        return data

    def send_publish(self, topic: str, payload: bytes, qos: int, packet_id: int = 0, *, dup: bool = False,
                     retain: bool = False, props: dict[int, Any] | None = None,
                     sub_ids: list[int] | None = None) -> bool:
        """A PUBLISH to the client. False (nothing sent) if it is over the client's Maximum
        Packet Size: the server then acts as if it was delivered [MQTT-3.1.2-25]."""
        if self.state is not State.CONNECTED:
            return False
        topic_bytes = topic.encode()
        new_alias = 0
        if self.level != MQTT5:
            data = codec.encode_publish(topic_bytes, payload, qos, packet_id, dup=dup, retain=retain)
        else:
            encoded = b"\x00"
            if props or sub_ids or self._client_alias_max:
                out = dict(props) if props else {}
                if sub_ids:
                    out[codec.P_SUBSCRIPTION_ID] = sub_ids
                if self._client_alias_max:
                    alias = self._aliases_out.get(topic)
                    if alias is not None:
                        topic_bytes = b""
                    elif len(self._aliases_out) < self._client_alias_max:
                        alias = new_alias = len(self._aliases_out) + 1
                    if alias is not None:
                        out[codec.P_TOPIC_ALIAS] = alias
                encoded = codec.encode_properties(out)
            data = codec.encode_publish(topic_bytes, payload, qos, packet_id, dup=dup, retain=retain, level=MQTT5,
                                        props=encoded)
        if len(data) > self.client_max_packet:
            return False  # a new alias is not recorded: the client never saw its topic
        if new_alias:
            self._aliases_out[topic] = new_alias
        self._write(data)
        return True

    def send_puback(self, packet_id: int, reason: int = SUCCESS) -> None:
        self._unacked_in -= 1
        self._write(codec.encode_ack(codec.PUBACK, packet_id, reason, level=self.level))

    def send_pubrec(self, packet_id: int, reason: int = SUCCESS) -> None:
        """PUBREC for a QoS 2 PUBLISH (a duplicate gets one again). Below 0x80 the id waits for PUBREL."""
        if reason < 0x80 or self.level != MQTT5:
            self._qos2_in.add(packet_id)
        else:
            self._unacked_in -= 1
        self._write(codec.encode_ack(codec.PUBREC, packet_id, reason, level=self.level))

    def send_pubrel(self, packet_id: int) -> None:
        if self.state is State.CONNECTED:
            self._write(codec.encode_ack(codec.PUBREL, packet_id, level=self.level))

    def send_suback(self, packet_id: int, codes: list[int]) -> None:
        """``codes``: granted QoS or an MQTT 5 reason code (3.1.1 gets 0x80 for any failure)."""
        if self.level != MQTT5:
            codes = [min(128, c) for c in codes]
        self._write(codec.encode_suback(packet_id, codes, level=self.level))

    def send_unsuback(self, packet_id: int, codes: list[int]) -> None:
        self._write(codec.encode_unsuback(packet_id, codes, level=self.level))

