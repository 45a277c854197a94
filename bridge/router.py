"""Sans-IO routing: (topic, payload bytes) -> a Command to execute, or a Reply to send at once.

Nothing here awaits or imports MQTT: every rule about what a client may put on the wire is a
pure function, unit-tested without a broker. The uid always comes from the topic, which the
broker's ACL guarantees belongs to the publisher.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from bridge.formats import JSON_FORMAT, MAX_DEPTH, Format, FormatError, format_of, holds_nul, nested_deeper
from bridge.outbound import (
    CONTENT_TYPE,
    CORRELATION_DATA,
    RESPONSE_TOPIC,
    Publish,
    ReplyTo,
    Topics,
    ack_error,
    error_reply,
    rpc_error,
)
from bridge.rpc import METHODS, Lane
from bridge.wire import (
    NOT_IN_A_FORWARD,
    ForwardIn,
    PresenceIn,
    ReadParams,
    RpcEnvelope,
    SendIn,
    TypingIn,
    describe,
    valid_device,
)
from services.errors import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    WIRE,
    ErrorCode,
)
from services.ids import UID_RE, direct_conv_id
from services.messages.commands import FORWARD_TYPE, SendCommand

__all__ = ["APP_CODES", "CLOSED_PREFIX", "CORRELATION_DATA", "RESPONSE_TOPIC", "Command", "ConnectionClosed", "Ignore",
           "PresenceUpdate", "Publish", "Reply", "ReplyTo", "Router", "Rpc", "Send", "Topics", "Typing", "ack_error",
           "error_reply", "rpc_error"]

_MAX_RESPONSE_TOPIC = 256

# JSON-RPC 2.0 codes (protocol §4).
APP_CODES = {code: wire.rpc for code, wire in WIRE.items()}  # the one table: services.errors.WIRE

@dataclass(frozen=True, slots=True)
class Reply:
    """Answer at once (bad input): nothing to store."""

    publish: Publish
    lane_key: str


@dataclass(frozen=True, slots=True)
class Send:
    command: SendCommand
    lane_key: str
    at: int | None = None  # a scheduled send: stored now, sent at this time (ms)


@dataclass(frozen=True, slots=True)
class Rpc:
    uid: str
    id: int | str | None
    method: str
    params: BaseModel
    lane_key: str
    respond: bool = True  # False for JSON-RPC notifications (no "id") and out/event
    device: str | None = None  # the publishing device, when it used {p}/{uid}/out/rpc/{device}
    reply_to: ReplyTo | None = None  # an MQTT 5 request's response topic and correlation data


@dataclass(frozen=True, slots=True)
class PresenceUpdate:
    uid: str
    device: str
    state: PresenceIn
    lane_key: str


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """Cluster mode: the broker closed connection ``conn`` of a device this bridge did not see
    connect (the presence service knows whose it was)."""

    conn: str
    ts: int
    lane_key: str


@dataclass(frozen=True, slots=True)
class Typing:
    """Ephemeral: forwarded at QoS 0 to the other members, never stored."""

    uid: str
    conv: str
    lane_key: str


@dataclass(frozen=True, slots=True)
class Ignore:
    reason: str
    lane_key: str = ""


Command = Reply | Send | Rpc | PresenceUpdate | ConnectionClosed | Typing | Ignore

CLOSED_PREFIX = "$closed/"  # the AMQP transport's topic for a connection's close (cluster mode)


def _usable_cid(body: Any) -> str | None:
    if isinstance(body, dict):
        cid = body.get("cid")
        if isinstance(cid, str) and 0 < len(cid) <= 64:
            return cid
    return None


def _usable_id(body: Any) -> int | str | None:
    if isinstance(body, dict):
        rid = body.get("id")
        if isinstance(rid, (int, str)) and not isinstance(rid, bool):
            return rid
    return None


class Router:
    """Turns inbound MQTT messages into commands. Pure and synchronous."""

    def __init__(self, topics: Topics, *, max_payload: int, max_text: int, connection_events: bool = False) -> None:
        """``connection_events``: route the AMQP transport's ``$closed/{conn}`` (cluster mode; no
        client can publish there: the transport consumes the clients' ``out`` topics only)."""
        self.topics = topics
        self.max_payload = max_payload
        self.max_text = max_text
        self.connection_events = connection_events

    def route(self, topic: str, payload: bytes, props: dict[int, Any] | None = None) -> Command:
        """``props``: the MQTT 5 properties of the PUBLISH (request/response for out/rpc; the
        Content Type the payload is in: the device's own, or the one it labelled it with)."""
        if self.connection_events and topic.startswith(CLOSED_PREFIX):
            return self._closed(topic[len(CLOSED_PREFIX):], payload)
        levels = topic.split("/")
        if len(levels) == 3 and levels[0] == "presence":
            return self._presence(levels[1], levels[2], payload)
        topics = self.topics
        tree = JSON_FORMAT if levels[0] == topics.prefix else topics.trees.get(levels[0])  # or {p}-cbor/...
        if tree is None:
            return Ignore(f"not a client topic: {topic[:200]!r}")
        # The payload's Content Type (MQTT 5; or the broker's label: the device's own encoding),
        # else the tree's.
        content_type = props.get(CONTENT_TYPE) if props else None
        fmt = format_of(content_type) if content_type is not None else tree
        if len(levels) == 5 and levels[2] == "out" and levels[3] == "rpc" \
                and UID_RE.match(levels[1]) and valid_device(levels[4]):
            # {p}/{uid}/out/rpc/{device}: the broker lets only that device publish here.
            return self._rpc(levels[1], payload, fmt, levels[4], self.reply_to(levels[1], props))
        if len(levels) != 4 or levels[2] != "out" or not UID_RE.match(levels[1]):
            return Ignore(f"not a client topic: {topic[:200]!r}")
        uid, kind = levels[1], levels[3]
        if kind == "msg":
            return self._send(uid, payload, fmt)
        if kind == "rpc":
            return self._rpc(uid, payload, fmt, None, self.reply_to(uid, props))
        if kind == "event":
            return self._event(uid, payload, fmt)
        return Ignore(f"unknown out topic {kind!r} from {uid}", lane_key=uid)

    # ---- out/msg -------------------------------------------------------------------------
    def _send(self, uid: str, payload: bytes, fmt: Format | None) -> Command:
        if fmt is None:
            return Reply(ack_error(self.topics, uid, None, ErrorCode.BAD_REQUEST, UNKNOWN_CONTENT_TYPE), uid)
        if len(payload) > self.max_payload:
            # Still try to echo the cid, from a bounded amount of text, so the client can match it.
            cid = _usable_cid(_loads(payload, fmt)) if len(payload) <= 4 * self.max_payload else None
            return Reply(ack_error(self.topics, uid, cid, ErrorCode.TOO_LARGE,
                                   f"payload is {len(payload)} bytes; the limit is {self.max_payload}"), uid)
        body = _loads(payload, fmt)
        if isinstance(body, FormatError):
            return Reply(ack_error(self.topics, uid, None, ErrorCode.BAD_REQUEST,
                                   f"payload is not {fmt.label}: {body}"), uid)
        if not isinstance(body, dict):
            return Reply(ack_error(self.topics, uid, None, ErrorCode.BAD_REQUEST,
                                   f"payload must be {fmt.object_name}"), uid)
        if "forward" in body:
            return self._forward(uid, body)
        try:
            msg = SendIn.model_validate(body)
        except ValidationError as exc:
            return Reply(ack_error(self.topics, uid, _usable_cid(body), ErrorCode.BAD_REQUEST, describe(exc)), uid)
        if msg.data is not None and nested_deeper(msg.data, MAX_DEPTH - 1):  # the payload: MAX_DEPTH
            # CBOR and MessagePack refuse it when decoding; JSON's decoder takes hundreds of levels.
            return Reply(ack_error(self.topics, uid, msg.cid, ErrorCode.BAD_REQUEST,
                                   f"data: more than {MAX_DEPTH} levels of nesting"), uid)
        if msg.text is not None and len(msg.text) > self.max_text:
            return Reply(ack_error(self.topics, uid, msg.cid, ErrorCode.TOO_LARGE,
                                   f"text is {len(msg.text)} characters; the limit is {self.max_text}"), uid)
        if (msg.text is not None and "\x00" in msg.text) or (msg.data is not None and holds_nul(msg.data)):
            # PostgreSQL stores no U+0000: the batch holding it would fail, and every send in it.
            return Reply(ack_error(self.topics, uid, msg.cid, ErrorCode.BAD_REQUEST,
                                   "text and data may not hold U+0000 (NUL)"), uid)
        command = SendCommand(sender=uid, cid=msg.cid, to=msg.to, group=msg.group, type=msg.type,
                              text=msg.text if msg.type != "custom" else None,
                              data=msg.data if msg.type == "custom" else
                              msg.attachment.model_dump(exclude_none=True) if msg.attachment is not None else None,
                              mentions=tuple(dict.fromkeys(msg.mentions or ())), reply_to=msg.reply_to,
                              thread=msg.thread)
        lane = direct_conv_id(uid, msg.to) if msg.to is not None else f"g:{msg.group}"
        return Send(command, lane, msg.at) if msg.at is not None else Send(command, lane)

    def _forward(self, uid: str, body: dict[str, Any]) -> Command:
        """A send with ``forward``: its copy is made by the message service (forwards.py)."""
        cid = _usable_cid(body)
        if own := [k for k in NOT_IN_A_FORWARD if k in body]:
            return Reply(ack_error(self.topics, uid, cid, ErrorCode.BAD_REQUEST,
                                   f"{own[0]}: a forward carries the original's content, not its own"), uid)
        if "at" in body:
            return Reply(ack_error(self.topics, uid, cid, ErrorCode.BAD_REQUEST,
                                   "at: a forward is sent now, not scheduled"), uid)
        try:
            msg = ForwardIn.model_validate(body)
        except ValidationError as exc:
            return Reply(ack_error(self.topics, uid, cid, ErrorCode.BAD_REQUEST, describe(exc)), uid)
        command = SendCommand(sender=uid, cid=msg.cid, to=msg.to, group=msg.group, type=FORWARD_TYPE, text=None,
                              data=None, forward=tuple(dict.fromkeys(msg.forward)), merge=msg.merge)
        return Send(command, direct_conv_id(uid, msg.to) if msg.to is not None else f"g:{msg.group}")

    # ---- out/rpc -------------------------------------------------------------------------
    def reply_to(self, uid: str, props: dict[int, Any] | None) -> ReplyTo | None:
        """An MQTT 5 request's Response Topic and Correlation Data. A response topic the
        requester could not read (another user's, or outside its ``in/rpc``) is not used: the
        reply goes to ``{p}/{uid}/in/rpc``, still with the correlation data."""
        if not props:
            return None
        topic, correlation = props.get(RESPONSE_TOPIC), props.get(CORRELATION_DATA)
        if not isinstance(topic, str) or len(topic) > _MAX_RESPONSE_TOPIC or "+" in topic or "#" in topic \
                or not any(topic == own or topic.startswith(own + "/")
                           for own in (f"{p}/{uid}/in/rpc" for p in self.topics.prefixes)):
            topic = None
        if not isinstance(correlation, bytes):
            correlation = None
        return ReplyTo(topic, correlation) if topic is not None or correlation is not None else None

    def _rpc(self, uid: str, payload: bytes, fmt: Format | None, device: str | None = None,
             reply_to: ReplyTo | None = None) -> Command:
        cmd = self._rpc_command(uid, payload, fmt, device, reply_to)
        if reply_to is not None and isinstance(cmd, Reply):
            return Reply(reply_to.apply(cmd.publish), cmd.lane_key)
        return cmd

    def _rpc_command(self, uid: str, payload: bytes, fmt: Format | None, device: str | None,
                     reply_to: ReplyTo | None) -> Command:
        if fmt is None:
            return Reply(rpc_error(self.topics, uid, None, PARSE_ERROR, f"parse error: {UNKNOWN_CONTENT_TYPE}"), uid)
        if len(payload) > self.max_payload:
            return Reply(rpc_error(self.topics, uid, None, INVALID_REQUEST,
                                   f"request is {len(payload)} bytes; the limit is {self.max_payload}",
                                   ErrorCode.TOO_LARGE), uid)
        body = _loads(payload, fmt)
        if isinstance(body, FormatError):
            return Reply(rpc_error(self.topics, uid, None, PARSE_ERROR, f"parse error: not {fmt.label}: {body}"), uid)
        if isinstance(body, list):
            return Reply(rpc_error(self.topics, uid, None, INVALID_REQUEST, "batch requests are not supported"), uid)
        try:
            env = RpcEnvelope.model_validate(body)
        except ValidationError as exc:
            return Reply(rpc_error(self.topics, uid, _usable_id(body), INVALID_REQUEST,
                                   f"invalid request: {describe(exc)}"), uid)
        method = METHODS.get(env.method)
        if method is None:
            return Reply(rpc_error(self.topics, uid, env.id, METHOD_NOT_FOUND, f"unknown method {env.method!r}"), uid)
        try:
            params = method.params.model_validate(env.params)
        except ValidationError as exc:
            return Reply(rpc_error(self.topics, uid, env.id, INVALID_PARAMS, f"invalid params: {describe(exc)}"), uid)
        if method.own_device:
            asked = getattr(params, "device", None)
            if device is None or (asked is not None and asked != device):
                # A device may only take its own data, so the server must know which device
                # asks: the topic says it, and the broker lets only that device use it.
                return Reply(rpc_error(self.topics, uid, env.id, INVALID_PARAMS,
                                       f"send {env.method} on {self.topics.prefix}/{uid}/out/rpc/{{device}} "
                                       "(your own device)", ErrorCode.BAD_REQUEST), uid)
        # Group changes are laned with the group's messages, so both keep the order they were sent in.
        lane = f"g:{getattr(params, 'gid')}" if method.lane == Lane.GROUP else uid  # noqa: B009 (declared: has gid)
        return Rpc(uid, env.id, env.method, params, lane, respond="id" in body, device=device, reply_to=reply_to)

    # ---- out/event -----------------------------------------------------------------------
    def _event(self, uid: str, payload: bytes, fmt: Format | None) -> Command:
        body = _loads(payload, fmt) if fmt is not None and len(payload) <= self.max_payload else None
        if not isinstance(body, dict):
            return Ignore(f"malformed event from {uid}", lane_key=uid)
        if body.get("type") == "read":
            try:
                params = ReadParams.model_validate(body)
            except ValidationError:
                return Ignore(f"malformed read event from {uid}", lane_key=uid)
            return Rpc(uid, None, "read", params, uid, respond=False)
        if body.get("type") == "typing":
            try:
                typing = TypingIn.model_validate({"conv": body.get("conv")})
            except ValidationError:
                return Ignore(f"malformed typing event from {uid}", lane_key=uid)
            return Typing(uid, typing.conv, typing.conv)  # laned with the conversation: ordered with its messages
        return Ignore(f"unsupported event type {body.get('type')!r} from {uid}", lane_key=uid)

    # ---- presence/{uid}/{device} -----------------------------------------------------------
    def _presence(self, uid: str, device: str, payload: bytes) -> Command:
        if not UID_RE.match(uid) or not valid_device(device):
            return Ignore(f"bad presence topic for {uid}/{device}")
        body = _loads(payload, JSON_FORMAT) if payload and len(payload) <= 1024 else None
        try:
            state = PresenceIn.model_validate(body)
        except ValidationError:
            return Ignore(f"malformed presence for {uid}/{device}", lane_key=uid)
        return PresenceUpdate(uid, device, state, uid)

    @staticmethod
    def _closed(conn: str, payload: bytes) -> Command:
        body = _loads(payload, JSON_FORMAT) if len(payload) <= 256 else None
        ts = body.get("ts") if isinstance(body, dict) else None
        if not conn or len(conn) > 128 or not isinstance(ts, int) or isinstance(ts, bool):
            return Ignore(f"malformed connection close {conn[:128]!r}")
        return ConnectionClosed(conn, ts, conn)


UNKNOWN_CONTENT_TYPE = "unsupported Content Type: use application/json, application/cbor or application/msgpack"


def _loads(payload: bytes, fmt: Format) -> Any:
    """The decoded payload, or the FormatError saying why it is not one."""
    try:
        return fmt.decode(payload)
    except FormatError as exc:
        return exc
