"""A lighter amqtt Session, and CONNECT validation that builds it.

amqtt gives every session a ``transitions`` state machine: about 22 KB and a noticeable part of
each connect's CPU, for three states. ``ImSession`` keeps amqtt's Session but replaces the
machine with a transition table of the same interface (``connect()``, ``disconnect()``,
``is_connected()``, ``state``).
"""

from __future__ import annotations

import asyncio
import struct
import time
from math import floor
from typing import ClassVar

from amqtt.adapters import BufferReader, ReaderAdapter, WriterAdapter
from amqtt.errors import MQTTError, NoDataError
from amqtt.mqtt.connack import BAD_USERNAME_PASSWORD, IDENTIFIER_REJECTED, UNACCEPTABLE_PROTOCOL_VERSION, ConnackPacket
from amqtt.mqtt.connect import ConnectPacket
from amqtt.mqtt.packet import CONNECT, MQTTFixedHeader
from amqtt.session import Session

_MAX_CONNECT = 64 * 1024  # bytes: client id, will, username and a token fit many times over


class SessionStates:
    """Session lifecycle as data: (trigger, from) -> to."""

    TABLE: ClassVar[dict[tuple[str, str], str]] = {
        ("connect", "new"): "connected",
        ("connect", "disconnected"): "connected",
        ("disconnect", "new"): "disconnected",
        ("disconnect", "connected"): "disconnected",
        ("disconnect", "disconnected"): "disconnected",
    }
    __slots__ = ("_session", "state")

    def __init__(self, session: ImSession) -> None:
        self._session = session
        self.state = "new"

    def _fire(self, trigger: str) -> None:
        dest = self.TABLE.get((trigger, self.state))
        if dest is None:
            msg = f"cannot {trigger} a session that is {self.state}"
            raise ValueError(msg)  # amqtt's broker catches ValueError for an invalid transition
        self.state = dest
        now = floor(time.time())
        if dest == "connected":
            self._session.last_connect_time, self._session.last_disconnect_time = now, None
        else:
            self._session.last_disconnect_time = now

    def connect(self) -> None:
        self._fire("connect")

    def disconnect(self) -> None:
        self._fire("disconnect")

    def is_connected(self) -> bool:
        return self.state == "connected"

    def is_disconnected(self) -> bool:
        return self.state == "disconnected"


class _NeverUsed(asyncio.Queue):  # type: ignore[type-arg]
    """Stands in for amqtt's per-session queues, which imgate's data path does not use (the
    Outbox holds offline messages; PUBLISHes are routed as they arrive). Anything put here is a
    bug, so it fails loudly."""

    def put_nowait(self, item: object) -> None:
        msg = "imgate routes PUBLISHes inline; amqtt's session queues are not used"
        raise RuntimeError(msg)


class ImSession(Session):
    """amqtt's Session without the per-session state machine and queues imgate does not use."""

    def __init__(self) -> None:
        super().__init__()
        self.retained_messages = self.delivered_message_queue = _NEVER_USED

    def _init_states(self) -> None:
        self.transitions = SessionStates(self)  # type: ignore[assignment]


_NEVER_USED: asyncio.Queue = _NeverUsed()  # type: ignore[type-arg]  # stateless: nothing is ever stored


async def _refuse(writer: WriterAdapter, code: int, why: str) -> None:
    await ConnackPacket.build(0, code).to_stream(writer)
    await writer.close()
    raise MQTTError(why)


async def read_connect(reader: ReaderAdapter, writer: WriterAdapter) -> ImSession:
    """Read the first packet, which must be a valid MQTT 3.1.1 CONNECT, into a new session.

    Raises:
        MQTTError: not a valid CONNECT (a CONNACK with the reason was sent where the protocol
            has one, and the connection closed).
        NoDataError / AMQTTError: the client sent nothing usable.
    """
    fixed = await MQTTFixedHeader.from_stream(reader)
    if fixed is None:
        msg = "connection closed before CONNECT"
        raise NoDataError(msg)
    if fixed.packet_type != CONNECT or fixed.remaining_length > _MAX_CONNECT:
        msg = f"first packet is not a CONNECT (type {fixed.packet_type}, {fixed.remaining_length} bytes)"
        raise MQTTError(msg)
    # Parse from the packet's own bytes, so a lying length field cannot make us read past it.
    body = await reader.read(fixed.remaining_length) if fixed.remaining_length else b""
    while len(body) < fixed.remaining_length:
        more = await reader.read(fixed.remaining_length - len(body))
        if not more:
            msg = "connection closed inside CONNECT"
            raise NoDataError(msg)
        body += more
    try:
        connect = await ConnectPacket.from_stream(BufferReader(body), fixed_header=fixed)
    except (IndexError, ValueError, UnicodeDecodeError, struct.error, asyncio.IncompleteReadError) as exc:
        msg = f"malformed CONNECT: {exc!r}"
        raise MQTTError(msg) from exc
    header, payload = connect.variable_header, connect.payload
    if header is None or payload is None:
        msg = "CONNECT without variable header or payload"
        raise MQTTError(msg)
    if connect.proto_name != "MQTT":
        msg = f"[MQTT-3.1.2-1] protocol name {connect.proto_name!r}"
        raise MQTTError(msg)
    if header.reserved_flag:
        msg = "[MQTT-3.1.2-3] CONNECT reserved flag set"
        raise MQTTError(msg)
    if header.will_flag and (payload.will_topic is None or payload.will_message is None):
        msg = "will flag set without will topic and message"
        raise MQTTError(msg)
    if connect.proto_level != 4:
        await _refuse(writer, UNACCEPTABLE_PROTOCOL_VERSION, f"protocol level {connect.proto_level}")
    if (connect.password_flag and not connect.username_flag) or (connect.username_flag and connect.username is None) \
            or (connect.password_flag and connect.password is None):
        await _refuse(writer, BAD_USERNAME_PASSWORD, "malformed credentials")
    if not payload.client_id or payload.client_id_is_random:
        await _refuse(writer, IDENTIFIER_REJECTED, "a client id is required")  # ours are {uid}:{device}

    session = ImSession()
    session.client_id = connect.client_id
    session.clean_session = connect.clean_session_flag
    session.will_flag = connect.will_flag
    session.will_retain = connect.will_retain_flag
    session.will_qos = connect.will_qos
    session.will_topic = connect.will_topic
    session.will_message = connect.will_message
    session.username = connect.username
    session.password = connect.password
    peer = writer.get_peer_info()
    if peer is not None:
        session.remote_address, session.remote_port = peer
    session.keep_alive = max(connect.keep_alive, 0)
    return session
