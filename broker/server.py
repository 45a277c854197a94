"""imgate's embedded broker: amqtt's Broker, subclassed where 0.12.1 falls short.

amqtt still accepts connections, parses packets and runs the MQTT state machines; imgate
replaces what sits between an incoming PUBLISH and the subscribers' sockets, and the parts of
CONNECT that decide who may do what:

- Authentication happens *before* amqtt touches the session table. Stock amqtt deletes (clean
  session) or merges into (persistent session) the existing session of a client id, and takes
  over a live connection, before it checks credentials: anyone could kick or hijack a session.
- CONNACK codes follow protocol §1: 4 for a bad token, 5 for a disabled user or a forbidden will,
  2 for a client id that is not ``{uid}:{device}`` of the token.
- A take-over first disconnects the old connection and waits for it to finish, so its
  disconnect cannot mark the resumed session as disconnected.
- The keep-alive is enforced (stock amqtt only logs a read timeout): after ``grace`` x keep-alive
  of silence the connection is dropped, its will is sent and presence goes offline.
- Routing: subscriptions live in a trie (``broker.topics``), so a PUBLISH costs its matches, not
  a scan of every subscription; QoS 0/1 PUBLISHes are routed inline by the connection's reader
  instead of through two queues and a task per recipient; each subscriber has an ``Outbox``
  (in-flight window, bounded offline queue, DUP redelivery on resume, QoS = min(publish,
  subscription), retain flag only on retained replays).
- ACL is decided once per SUBSCRIBE (a granted filter is readable in full), not per delivery.
- Retained messages are kept in a trie too, and replayed only to the subscribing session, only
  for its new filter, and only where it may read (stock amqtt replays every retained message
  matching anybody's subscription to every connecting client). Users cannot retain.
- Connecting costs the same however many clients and retained messages there are.
- Packets after CONNECT are framed and checked by ``broker.framing`` (sans-IO) before anything
  acts on them: every packet's size against ``max_packet_bytes`` before it is buffered, UTF-8 of
  every topic and filter (a bad one closes the connection, so framing never desynchronises).
  Each connection's reader handles its packets in order, inline, and applies back-pressure: a
  client over its publish rate, or whose PUBLISH the bridge's ingress cannot take yet, is simply
  not read until it may go on; nothing it sent is dropped after its PUBACK.
- A session belongs to the principal that created it: a different principal never resumes or
  takes it over, and a service account cannot use a user's ``{uid}:{device}`` client id.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

from amqtt.adapters import ReaderAdapter, StreamReaderAdapter, StreamWriterAdapter, WriterAdapter
from amqtt.broker import Broker
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.connack import (
    BAD_USERNAME_PASSWORD,
    IDENTIFIER_REJECTED,
    NOT_AUTHORIZED,
    SERVER_UNAVAILABLE,
    ConnackPacket,
)
from amqtt.mqtt.disconnect import DisconnectPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.protocol.handler import ProtocolHandler
from amqtt.session import Session

from broker import framing
from broker.acl import FULL_ACCESS, PRINCIPAL_KEY, AclRule, Principal, TopicAcl, presence_topic
from broker.auth import AuthChange, Authenticator, AuthFailure, Identity
from broker.outbox import OfflinePolicy, Outbox, Stats
from broker.presence import presence_payload
from broker.session import _NEVER_USED, read_connect
from broker.topics import RetainedIndex, SubscriptionIndex, valid_filter, valid_topic
from services.ids import Clock, SystemClock

log = logging.getLogger("imgate.broker")

OUTBOX_KEY = "imgate.outbox"
QOS2_KEY = "imgate.qos2"
_CONNACK = {
    AuthFailure.BAD_CREDENTIALS: BAD_USERNAME_PASSWORD,
    AuthFailure.NOT_AUTHORIZED: NOT_AUTHORIZED,
    AuthFailure.IDENTIFIER_REJECTED: IDENTIFIER_REJECTED,
}
_TAKEOVER_TIMEOUT = 5.0
_CONNECT_TIMEOUT = 10.0  # a socket that sends no CONNECT in this time is closed
_CLOSE_TIMEOUT = 1.0  # a closing connection gets this long to take what is still buffered for it
_READ_CHUNK = 65536
_SUBACK_FAILURE = 0x80
_MAX_QOS = 1  # QoS 2 subscriptions are granted QoS 1 (MQTT 3.1.1 §3.9.3 lets the server downgrade)
# A user's client id is {uid}:{device}; a service account may not take one (or a wildcard).
_USER_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}:[A-Za-z0-9_-]{1,32}$")
_NOT_IN_ACCOUNT_NAMES = ("+", "#", "/", "\x00")
_RECENT_AUTH_CHANGES = 10_000
_MAX_QOS2_PENDING = 1000  # QoS 2 packet ids awaiting PUBREL per session
_NOBODY: tuple[()] = ()  # no in-process sink refused (shared: nothing allocated per routed message)
_MAX_TAKEOVER_ROUNDS = 10  # take-overs one login waits through (connects racing for one client id)


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """A non-user login with mosquitto-style ACL rules (``%u``/``%c`` expanded at connect).
    ``publish_rate``: its connections' PUBLISH/SUBSCRIBE packets per second (0: unlimited)."""

    username: str
    password: str
    rules: tuple[AclRule, ...] = FULL_ACCESS
    publish_rate: float = 0.0

    def __post_init__(self) -> None:
        if any(c in self.username for c in _NOT_IN_ACCOUNT_NAMES):
            msg = f"service account {self.username!r}: '+', '#', '/' and NUL would become part of its ACL filters"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class DevicePolicy:
    """How many devices of one user may be online at once (0 / absent: no limit)."""

    max_devices: int = 0
    per_class: Mapping[str, int] = field(default_factory=dict)
    platform_classes: Mapping[str, str] = field(default_factory=dict)
    on_limit: str = "refuse"  # or "kick_oldest"

    def class_of(self, platform: str) -> str:
        return self.platform_classes.get(platform.lower(), platform.lower() or "other")


@dataclass(frozen=True, slots=True)
class DeliveryLimits:
    max_inflight: int = 100
    max_queued: int = 1000
    policy: OfflinePolicy = "drop_oldest"
    max_inflight_bytes: int = 1 << 20
    max_queued_bytes: int = 4 << 20
    stall_s: float = 5.0  # a connected session that is full and acks nothing for this long is cut off


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """What one client connection may send."""

    max_packet: int = 1 << 20  # bytes of one packet
    publish_rate: float = 100.0  # a user connection's PUBLISH/SUBSCRIBE/UNSUBSCRIBE per second (0: no limit)
    publish_burst: float = 200.0
    max_subscriptions: int = 100  # filters per session
    max_topic_length: int = 256  # characters of a topic name or filter


class LocalSink(Protocol):
    """An in-process subscriber (the bridge's ingress)."""

    def offer(self, topic: str, payload: bytes, *, force: bool = False) -> bool:
        """Take a message (True), or refuse it for now (False; never when ``force``)."""

    def room(self, topic: str) -> Awaitable[None]:
        """Resolves when a refused message on ``topic`` may be offered again."""


class _StreamAdapter(StreamReaderAdapter):
    """amqtt's stream reader (used for CONNECT), refusing to buffer a body over ``limit`` bytes;
    after CONNECT the connection's reader reads ``stream`` itself, framed by ``broker.framing``."""

    def __init__(self, reader: asyncio.StreamReader, limit: int) -> None:
        super().__init__(reader)
        self.stream = reader
        self._limit = limit

    async def read(self, n: int = -1) -> bytes:
        if n > self._limit:
            msg = f"packet of {n} bytes is over the limit of {self._limit}"
            raise framing.PacketTooLarge(msg)
        return await super().read(n)


class _WriterAdapter(StreamWriterAdapter):
    """amqtt's stream writer whose close does not wait forever for a client that does not read
    (amqtt drains with no timeout: a take-over or kick could hang on it)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        super().__init__(writer)
        self.stream = writer

    async def close(self) -> None:
        if getattr(self, "is_closed", False):
            return
        self.is_closed = True
        writer = self.stream
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await writer.drain()
                if writer.can_write_eof():
                    writer.write_eof()
                writer.close()
                await writer.wait_closed()
        except (TimeoutError, OSError, RuntimeError):
            writer.transport.abort()


class _SocketWire:
    """Writes whole packets straight to the connection's transport (atomic per packet)."""

    __slots__ = ("_adapter", "_transport")

    def __init__(self, adapter: WriterAdapter) -> None:
        self._adapter = adapter
        stream = getattr(adapter, "_writer", None)  # amqtt's StreamWriterAdapter wraps a StreamWriter
        self._transport = getattr(stream, "transport", None)

    def write(self, data: bytes) -> None:
        if getattr(self._adapter, "is_closed", False):
            return
        if self._transport is not None:
            self._transport.write(data)
        else:
            self._adapter.write(data)

    def buffered(self) -> int:
        return self._transport.get_write_buffer_size() if self._transport is not None else 0

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


class _Pace:
    """A token bucket in monotonic time: how long to wait before the next packet may be read."""

    __slots__ = ("_burst", "_last", "_rate", "_tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self._rate, self._burst = rate, max(1.0, burst)
        self._tokens, self._last = self._burst, time.monotonic()

    def delay(self, cost: int = 1) -> float:
        """Take ``cost`` tokens (going into debt if need be): how long to wait before going on."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate) - cost
        self._last = now
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate


class ImHandler(BrokerProtocolHandler):
    """Protocol handler: reads, checks and handles its connection's packets in order (framing,
    keep-alive, publish rate, back-pressure from the bridge), routes PUBLISHes inline, hands
    PUBACKs to the session's Outbox, and tells when its connection has ended."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # SUBSCRIBE/UNSUBSCRIBE are handled as they arrive: amqtt's pending queues stay unused.
        self._pending_subscriptions = self._pending_unsubscriptions = _NEVER_USED
        self._closed: asyncio.Future[None] | None = None  # created only if someone waits
        self._is_closed = False
        self.im_broker: ImBroker | None = None
        self.im_outbox: Outbox | None = None
        self.im_limits = ClientLimits()
        self.im_pace: _Pace | None = None
        self.im_disconnected: asyncio.Future[Any] | None = None  # resolved when the connection ends
        self._close_requested = False

    async def start(self) -> None:
        # amqtt creates the disconnect waiter only after the reader has started, so a connection
        # that ended (or was taken over) in between got a waiter nobody resolves, and hung: it is
        # created first here, and kept (amqtt resets its own reference once resolved).
        self.im_disconnected = self._disconnect_waiter = asyncio.get_running_loop().create_future()
        if self._close_requested:  # taken over or kicked before it started
            self._disconnect_waiter.set_result(None)
            return
        await ProtocolHandler.start(self)

    async def stop(self) -> None:
        # A reader task cancelled before its first step never runs its cleanup, and amqtt would
        # wait for that cleanup forever: its end is noted whatever way it ends.
        task, stopped = self._reader_task, self._reader_stopped
        if task is not None and stopped is not None:
            task.add_done_callback(lambda _: stopped.set())
        await super().stop()

    async def handle_connection_closed(self) -> None:
        self._close_requested = True
        await super().handle_connection_closed()

    def mark_closed(self) -> None:
        self._is_closed = True
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        if self._is_closed:
            return
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._closed)

    def handle_read_timeout(self) -> None:
        # No packet within grace x keep-alive: the client is gone. Ending the disconnect waiter
        # makes the broker treat it as an abnormal disconnect (will, presence offline).
        waiter = self._disconnect_waiter
        if waiter is not None and not waiter.done():
            log.info("keep-alive expired for %s", self.session.client_id if self.session else "?")
            waiter.set_result(None)

    # ---- the connection's reader ---------------------------------------------------------------
    async def _reader_loop(self) -> None:
        """Replaces amqtt's reader: one packet at a time, framed and checked first, handled
        inline and in order (no task per packet), so that not reading is real back-pressure."""
        assert self.session is not None and self._reader_ready is not None and self._reader_stopped is not None
        stream = getattr(self.reader, "stream", None)
        client_id = self.session.client_id
        keepalive = self.session.keep_alive if self.session.keep_alive > 0 else None
        decoder = framing.FrameDecoder(self.im_limits.max_packet)
        self._reader_ready.set()
        try:
            if not isinstance(stream, asyncio.StreamReader):
                msg = "imgate's handler reads asyncio streams only"
                raise AMQTTError(msg)
            while True:
                packet = decoder.next_packet()
                if packet is None:
                    try:
                        data = await asyncio.wait_for(stream.read(_READ_CHUNK), keepalive)
                    except TimeoutError:
                        self.handle_read_timeout()
                        break
                    if not data:
                        break
                    decoder.feed(data)
                    continue
                if not await self._dispatch(packet):
                    break
        except framing.ProtocolViolation as exc:
            log.warning("%s broke the protocol (%s): closing", client_id, exc)
        except (ConnectionError, OSError):
            log.debug("%s: connection lost", client_id)
        except asyncio.CancelledError:
            log.debug("%s: reader cancelled", client_id)
        except Exception:
            log.exception("%s: reader failed; closing", client_id)
        await self.handle_connection_closed()
        self._reader_stopped.set()
        await self.stop()

    async def _dispatch(self, packet: framing.Packet) -> bool:
        """Handle one packet; False ends the connection."""
        broker, session, writer = self.im_broker, self.session, self.writer
        assert broker is not None and session is not None and writer is not None
        if isinstance(packet, framing.Publish):
            await self._pace()
            return await self._publish(broker, session, writer, packet)
        if isinstance(packet, framing.PacketId):
            if packet.kind == framing.PUBACK:
                if self.im_outbox is not None:
                    self.im_outbox.ack(packet.packet_id)
            elif packet.kind == framing.PUBREL:
                session.attributes.get(QOS2_KEY, set()).discard(packet.packet_id)
                writer.write(framing.encode_ack(framing.PUBCOMP, packet.packet_id))
            # PUBREC / PUBCOMP: the broker never sends QoS 2, nothing to do.
            return True
        if isinstance(packet, framing.Subscribe):
            await self._pace(len(packet.filters))  # each filter costs: a packet may carry thousands
            await broker.subscribe(self, packet.packet_id, list(packet.filters))
            return True
        if isinstance(packet, framing.Unsubscribe):
            await self._pace(len(packet.filters))
            await broker.unsubscribe(self, packet.packet_id, list(packet.filters))
            return True
        if packet.kind == framing.PINGREQ:
            writer.write(framing.PINGRESP_BYTES)
            return True
        # A clean DISCONNECT: the will is discarded [MQTT-3.1.2-10] (even if it comes before amqtt
        # has set up its disconnect waiter, which then takes the end of the connection as abnormal).
        session.will_flag = False
        await self.handle_disconnect(DisconnectPacket())
        return False

    @contextmanager
    def _not_reading(self) -> Iterator[None]:
        """The server does not read this client meanwhile: its PUBACKs wait too, which is not the
        client's stall (see Outbox.paused)."""
        outbox = self.im_outbox
        if outbox is not None:
            outbox.paused += 1
        try:
            yield
        finally:
            if outbox is not None:
                outbox.paused -= 1

    async def _pace(self, cost: int = 1) -> None:
        if self.im_pace is not None:
            delay = self.im_pace.delay(cost)
            if delay > 0:
                if self.im_broker is not None:
                    self.im_broker.stats.paced += 1
                with self._not_reading():
                    await asyncio.sleep(delay)  # the client's own rate: it is read more slowly

    async def _publish(self, broker: ImBroker, session: Session, writer: WriterAdapter, p: framing.Publish) -> bool:
        # QoS 2, "method A" (MQTT 3.1.1 §4.3.3): route on PUBLISH, remember the packet id until
        # PUBREL so a resent PUBLISH (DUP) is not routed twice.
        seen = session.attributes.setdefault(QOS2_KEY, set()) if p.qos == 2 else None
        if seen is None or p.packet_id not in seen:
            refused = broker.client_publish(session, p.topic, p.payload, min(p.qos, _MAX_QOS), retain=p.retain)
            if refused is None:
                return False  # protocol violation: invalid topic name
            while refused:
                # The bridge cannot take this yet: stop reading this client until it can. The
                # PUBACK waits too, so nothing acknowledged is ever dropped.
                with self._not_reading():
                    await refused[0].room(p.topic)
                refused = [sink for sink in refused if not sink.offer(p.topic, p.payload)]
            if seen is not None:
                if len(seen) >= _MAX_QOS2_PENDING:
                    msg = f"more than {_MAX_QOS2_PENDING} QoS 2 PUBLISHes without PUBREL"
                    raise framing.ProtocolViolation(msg)
                seen.add(p.packet_id)
        if p.packet_id is not None:  # PUBACK (QoS 1) or PUBREC (QoS 2)
            writer.write(framing.encode_ack(framing.PUBACK if p.qos == 1 else framing.PUBREC, p.packet_id))
        return True


def principal_of(session: Session) -> Principal | None:
    return session.attributes.get(PRINCIPAL_KEY)


class ImBroker(Broker):
    """amqtt broker with imgate's authentication, ACL, routing, delivery and retained rules."""

    def __init__(self, config: dict[str, Any], *, authenticator: Authenticator, acl: TopicAcl,
                 service_accounts: Mapping[str, str] | None = None, accounts: Sequence[ServiceAccount] = (),
                 keepalive_grace: float = 1.5, limits: DeliveryLimits | None = None,
                 devices: DevicePolicy | None = None, clients: ClientLimits | None = None) -> None:
        super().__init__(config)
        self._clients = clients or ClientLimits()
        self._devices = devices or DevicePolicy()
        # uid -> client id -> (platform class, connection order, handler): live user devices.
        self._online: dict[str, dict[str, tuple[str, int, BrokerProtocolHandler]]] = {}
        self._order = itertools.count()
        self._authenticator = authenticator
        self._acl = acl
        self._accounts = {a.username: a for a in accounts}
        # Internal accounts (the bridge over MQTT): full access, never cut off as slow consumers.
        self._internal = set(service_accounts or {})
        for username, password in (service_accounts or {}).items():
            self._accounts[username] = ServiceAccount(username, password)
        self._keepalive_grace = keepalive_grace
        self._limits = limits or DeliveryLimits()
        self._index = SubscriptionIndex()
        self._retained_index = RetainedIndex()
        self._outboxes: dict[str, Outbox] = {}
        self._local: dict[str, LocalSink] = {}  # in-process subscribers (the bridge's ingress)
        # Revocations and disables applied so far (bounded): a login under way while one of them
        # was applied is checked again before it goes live (see _initialize_client_session).
        self._auth_applied: deque[tuple[int, str, str | None]] = deque(maxlen=_RECENT_AUTH_CHANGES)
        self._auth_seq = 0
        self.accepting = True  # False: users are refused (CONNACK 3) until the app is ready
        self.stats = Stats()

    # ---- connect ---------------------------------------------------------------------
    async def stream_connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                               listener_name: str) -> None:
        await self._client_connected(listener_name, _StreamAdapter(reader, self._clients.max_packet),
                                     _WriterAdapter(writer))

    async def _login(self, incoming: Session) -> Principal | AuthFailure:
        username, password = incoming.username, incoming.password
        account = self._accounts.get(username or "")
        if account is not None:
            if password is None or not hmac.compare_digest(password.encode(), account.password.encode()):
                return AuthFailure.BAD_CREDENTIALS
            client_id = incoming.client_id or ""
            # Not a user's {uid}:{device} (a service account must not resume or take over a
            # user's session), not '$…' (in-process subscribers), nothing that would turn into
            # a wildcard or a level when %c is expanded in its rules.
            if not client_id or client_id.startswith("$") or _USER_CLIENT_ID.match(client_id) \
                    or any(c in client_id for c in _NOT_IN_ACCOUNT_NAMES):
                return AuthFailure.IDENTIFIER_REJECTED
            rules = tuple(r.expand(account.username, client_id) for r in account.rules)
            return Principal(uid=None, device=None, rules=rules, account=account.username)
        try:
            result = await self._authenticator.authenticate(username, password, incoming.client_id)
        except Exception:
            log.exception("authentication failed with an error; refusing %s", incoming.client_id)
            return AuthFailure.NOT_AUTHORIZED
        if isinstance(result, Identity):
            return Principal(result.uid, result.device, result.platform, result.token_id, result.expires_at)
        return result

    async def _initialize_client_session(self, reader: ReaderAdapter, writer: WriterAdapter,
                                         remote_address: str, remote_port: int) -> tuple[BrokerProtocolHandler, Session]:
        try:
            incoming = await asyncio.wait_for(read_connect(reader, writer), _CONNECT_TIMEOUT)
            handler = ImHandler(self.plugins_manager)
        except (MQTTError, AMQTTError, NoDataError, TimeoutError, ConnectionError) as exc:
            log.info("no valid CONNECT from %s:%s: %r", remote_address, remote_port, exc)
            with suppress(Exception):
                await writer.close()
            raise AMQTTError(exc) from exc

        checked_at = self._auth_seq  # revocations applied before this are reflected in the login
        who = await self._login(incoming)
        if not isinstance(who, Principal):
            await self._refuse(writer, _CONNACK[who], f"{incoming.client_id!r} ({who.value})")
        if not self.accepting and who.account not in self._internal:
            # Until the bridge is attached, a PUBLISH would be acknowledged and reach nobody.
            await self._refuse(writer, SERVER_UNAVAILABLE, f"{incoming.client_id!r} (not ready yet)")
        if incoming.will_flag and not self._acl.will_allowed(who, incoming.will_topic, incoming.will_message):
            await self._refuse(writer, NOT_AUTHORIZED, f"{incoming.client_id!r} (will on {incoming.will_topic!r})")
        client_id = incoming.client_id
        if who.uid is not None and who.device is not None:
            await self._apply_device_policy(who, client_id, writer)
        incoming.attributes[PRINCIPAL_KEY] = who
        if incoming.keep_alive > 0:
            incoming.keep_alive = math.ceil(incoming.keep_alive * self._keepalive_grace)

        # Until nothing stands in the way. Every await (a take-over, a second look at the token)
        # lets other connects run, so the checks start again after it; after the last pass there
        # is no await before amqtt registers the session, so two CONNECTs of one client id are
        # settled one after the other.
        for _ in range(_MAX_TAKEOVER_ROUNDS):
            existing = self._sessions.get(client_id)
            owner = principal_of(existing[0]) if existing is not None else None
            if existing is not None and (owner is None or not owner.same_owner(who)):
                # A session belongs to the principal that created it: another one never resumes,
                # takes over or discards it (a client id cannot be squatted either).
                await self._refuse(writer, IDENTIFIER_REJECTED, f"{client_id!r} (a session of another principal)")
            if existing is not None and existing[0].transitions.is_connected():
                await self._take_over(client_id, existing[1])
                continue
            if checked_at != self._auth_seq:
                seen, checked_at = checked_at, self._auth_seq
                if not await self._still_allowed(who, incoming, since=seen):
                    await self._refuse(writer, BAD_USERNAME_PASSWORD, f"{client_id!r} (revoked while connecting)")
                continue
            break
        else:
            await self._refuse(writer, SERVER_UNAVAILABLE, f"{client_id!r} (its previous connection would not close)")

        if incoming.clean_session or existing is None:
            if existing is not None:
                await self._delete_session(client_id)  # does not suspend
            incoming.parent = 0
            session = incoming
        else:
            # Resume the persistent session with this connection's will, keep-alive and identity.
            session = existing[0]
            for attr in ("will_flag", "will_message", "will_topic", "will_qos", "will_retain", "keep_alive",
                         "username", "password"):
                setattr(session, attr, getattr(incoming, attr))
            session.attributes[PRINCIPAL_KEY] = who
            session.parent = 1
        outbox = session.attributes.get(OUTBOX_KEY)
        if outbox is None:
            lim = self._limits
            outbox = Outbox(client_id, self.stats, lim.max_inflight, lim.max_queued, lim.policy, device=who.device,
                            max_inflight_bytes=lim.max_inflight_bytes, max_queued_bytes=lim.max_queued_bytes,
                            stall_s=math.inf if who.account in self._internal else lim.stall_s)
            session.attributes[OUTBOX_KEY] = outbox
        outbox.reads = self._acl.reader(who)
        self._outboxes[client_id] = outbox
        assert isinstance(handler, ImHandler)
        handler.im_broker, handler.im_outbox = self, outbox
        handler.im_limits = self._clients
        rate = self._accounts[who.account].publish_rate if who.account is not None else self._clients.publish_rate
        if rate > 0:
            handler.im_pace = _Pace(rate, self._clients.publish_burst if who.account is None else max(1.0, rate))
        return handler, session

    async def _refuse(self, writer: WriterAdapter, code: int, what: str) -> NoReturn:
        log.info("refused connection %s: CONNACK %d", what, code)
        with suppress(Exception):
            await ConnackPacket.build(0, code).to_stream(writer)
            await writer.close()
        msg = f"connection refused: {what}"
        raise MQTTError(msg)

    async def _apply_device_policy(self, who: Principal, client_id: str, writer: WriterAdapter) -> None:
        """Refuse this login, or disconnect the user's oldest devices, to stay within the limits."""
        policy = self._devices
        if not policy.max_devices and not policy.per_class:
            return
        assert who.uid is not None
        cls = policy.class_of(who.platform)
        others = {cid: v for cid, v in self._online.get(who.uid, {}).items() if cid != client_id}  # a take-over is free
        victims: list[str] = []
        limit = policy.per_class.get(cls, 0)
        same = sorted((v[1], cid) for cid, v in others.items() if v[0] == cls)
        if limit and len(same) >= limit:
            victims += [cid for _, cid in same[: len(same) - limit + 1]]
        remaining = sorted((v[1], cid) for cid, v in others.items() if cid not in victims)
        if policy.max_devices and len(remaining) >= policy.max_devices:
            victims += [cid for _, cid in remaining[: len(remaining) - policy.max_devices + 1]]
        if not victims:
            return
        if policy.on_limit != "kick_oldest":
            await self._refuse(writer, NOT_AUTHORIZED, f"{client_id!r} (device limit reached)")
        for victim in victims:
            device = victim.partition(":")[2]
            notice = {"type": "kicked", "device": device, "reason": "device_limit", "by": who.device,
                      "ts": time.time_ns() // 1_000_000}
            self.route(f"{self._acl.prefix}/{who.uid}/in/notify", json.dumps(notice).encode(), 1)
            log.info("disconnecting %s: device limit, %s logged in", victim, client_id)
            await others[victim][2].handle_connection_closed()

    async def _take_over(self, client_id: str, old: BrokerProtocolHandler) -> None:
        log.info("%s connected again: closing the previous connection", client_id)
        await old.handle_connection_closed()
        if isinstance(old, ImHandler):
            try:
                await asyncio.wait_for(old.wait_closed(), _TAKEOVER_TIMEOUT)
            except TimeoutError:
                log.warning("previous connection of %s did not close in time", client_id)

    async def _authenticate(self, session: Session, _listener: Any) -> bool:
        # Credentials were checked before the session table was touched (_initialize_client_session).
        return principal_of(session) is not None

    async def _publish_session_retained_messages(self, session: Session) -> None:
        # Called once the connection is up: this is where the session's Outbox gets its socket,
        # resends what was in flight (DUP) and what queued while the client was away.
        handler = self._get_handler(session)
        who = principal_of(session)
        outbox = session.attributes.get(OUTBOX_KEY)
        if outbox is not None and handler is not None and handler.writer is not None:
            outbox.attach(_SocketWire(handler.writer))
        if who is not None and who.uid is not None and handler is not None:
            self._online.setdefault(who.uid, {})[session.client_id] = (
                self._devices.class_of(who.platform), next(self._order), handler)

    async def _still_allowed(self, who: Principal, incoming: Session, *, since: int) -> bool:
        """Revocations and disables were applied (to the connections live then) while this login
        was under way: if one concerns it, check its token again."""
        if who.uid is None:
            return True
        # Changes forgotten (more than the memory holds since): cannot tell, so check.
        concerned = not self._auth_applied or self._auth_applied[0][0] > since + 1
        if not concerned:
            for seq, uid, device in reversed(self._auth_applied):
                if seq <= since:
                    break
                if uid == who.uid and device in (None, who.device):
                    concerned = True
                    break
        if not concerned:
            return True
        try:
            again = await self._authenticator.authenticate(incoming.username, incoming.password, incoming.client_id)
        except Exception:
            log.exception("checking %s again failed; refusing it", incoming.client_id)
            return False
        return isinstance(again, Identity) and again.token_id == who.token_id

    async def apply_auth_change(self, change: AuthChange) -> int:
        """A revocation or disable: drop the live connections it concerns (and remember it)."""
        self._auth_seq += 1
        self._auth_applied.append((self._auth_seq, change.uid, change.device))
        return await self.kick(change.uid, change.device, reason=change.kind)

    async def _handle_disconnect(self, client_session: Session, handler: BrokerProtocolHandler,
                                 disconnect_waiter: asyncio.Future[Any]) -> None:
        outbox = client_session.attributes.get(OUTBOX_KEY)
        if outbox is not None:
            outbox.detach()
        who = principal_of(client_session)
        if who is not None and who.uid is not None:
            devices = self._online.get(who.uid, {})
            entry = devices.get(client_session.client_id)
            if entry is not None and entry[2] is handler:  # not a newer connection's entry
                del devices[client_session.client_id]
                if not devices:
                    del self._online[who.uid]
        try:
            await super()._handle_disconnect(client_session, handler, disconnect_waiter)
        finally:
            if isinstance(handler, ImHandler):
                handler.mark_closed()

    async def _client_message_loop(self, client_session: Session, handler: BrokerProtocolHandler) -> None:
        # PUBLISH (all QoS), SUBSCRIBE and UNSUBSCRIBE are handled by the connection's reader as
        # they arrive (ImHandler); this only waits for the end of the connection. No task.
        waiter = getattr(handler, "im_disconnected", None) or getattr(handler, "_disconnect_waiter", None)
        if waiter is None:
            waiter = asyncio.get_running_loop().create_future()
            waiter.set_result(None)
        await asyncio.wait({waiter})
        await self._handle_disconnect(client_session, handler, waiter)

    # ---- subscriptions ---------------------------------------------------------------
    async def subscribe(self, handler: ImHandler, packet_id: int, topics: list[tuple[str, int]]) -> None:
        """SUBSCRIBE: grant or refuse each filter, SUBACK, then replay matching retained messages.
        Once the session has ``max_subscriptions`` filters, new ones are refused without being
        looked at (a packet may carry thousands), and the refusals are logged once per packet."""
        session = handler.session
        if session is None or handler.writer is None:
            return
        codes, refused = [], []
        for sub in topics:
            code = await self.add_subscription(sub, session)
            codes.append(code)
            if code == _SUBACK_FAILURE:
                refused.append(sub[0])
        handler.writer.write(framing.encode_suback(packet_id, codes))
        if refused:
            log.info("refused %d of %d filters for %s (first %r; %d subscribed)", len(refused), len(topics),
                     session.client_id, refused[0][:200], self._index.count_of(session.client_id))
        for sub, code in zip(topics, codes, strict=True):
            if code != _SUBACK_FAILURE:
                await self._publish_retained_messages_for_subscription(sub, session)

    async def unsubscribe(self, handler: ImHandler, packet_id: int, topics: list[str]) -> None:
        session = handler.session
        if session is None or handler.writer is None:
            return
        for topic_filter in topics:
            self._del_subscription(topic_filter, session)
        handler.writer.write(framing.encode_unsuback(packet_id))

    async def add_subscription(self, subscription: tuple[str, int], session: Session) -> int:
        """Grant one filter, or 0x80. A new one beyond ``max_subscriptions`` is refused before it
        is looked at (cheap, however many a SUBSCRIBE carries)."""
        if self._index.granted(session.client_id, subscription[0]) is None \
                and self._index.count_of(session.client_id) >= self._clients.max_subscriptions:
            return _SUBACK_FAILURE
        return self._grant(subscription, session)

    def _grant(self, subscription: tuple[str, int], session: Session) -> int:
        """Grant a filter (the ACL, its length and its syntax allowing), or 0x80."""
        topic_filter, qos = subscription
        who = principal_of(session)
        if who is None or len(topic_filter) > self._clients.max_topic_length or not valid_filter(topic_filter) \
                or not self._acl.can_subscribe(who, topic_filter):
            return _SUBACK_FAILURE
        granted = min(qos, _MAX_QOS)
        self._index.add(session.client_id, topic_filter, granted)
        return granted

    def _del_subscription(self, a_filter: str, session: Session) -> int:
        return int(self._index.remove(session.client_id, a_filter))

    async def _del_all_subscriptions(self, session: Session) -> None:
        self._index.remove_client(session.client_id)
        outbox = session.attributes.get(OUTBOX_KEY)
        if outbox is not None and self._outboxes.get(session.client_id) is outbox:
            del self._outboxes[session.client_id]

    async def _publish_retained_messages_for_subscription(self, subscription: tuple[str, int],
                                                          session: Session) -> None:
        topic_filter, _ = subscription
        granted = self._index.granted(session.client_id, topic_filter)
        outbox = self._outboxes.get(session.client_id)
        if granted is None or outbox is None:
            return
        for topic in self._retained_index.matching(topic_filter):
            retained = self._retained_messages.get(topic)
            if retained is not None and (outbox.reads is None or outbox.reads(topic)):
                qos = min(granted, retained.qos if retained.qos is not None else granted)
                outbox.deliver(topic.encode(), bytes(retained.data), qos, retain=True)

    # ---- in-process subscribers ----------------------------------------------------------
    def attach_local(self, name: str, filters: list[str], sink: LocalSink) -> None:
        """Subscribe an in-process consumer (the bridge's ingress) with full read access; it gets
        the retained messages matching its filters at once, then every match as it is routed.
        A client's PUBLISH the sink refuses waits (the client is not read) until it takes it."""
        key = f"$local/{name}"  # no client may use a client id starting with '$' (see _login)
        self._local[key] = sink
        for topic_filter in filters:
            self._index.add(key, topic_filter, _MAX_QOS)
            for topic in self._retained_index.matching(topic_filter):
                retained = self._retained_messages.get(topic)
                if retained is not None:
                    sink.offer(topic, bytes(retained.data), force=True)

    def detach_local(self, name: str) -> None:
        key = f"$local/{name}"
        self._index.remove_client(key)
        self._local.pop(key, None)

    async def stop_clients(self) -> None:
        """The first step of a graceful stop: accept no more connections and close every client
        connection (their wills and presence go out), so nothing more is acknowledged; what was
        acknowledged can then be drained by the bridge."""
        self.accepting = False
        for server in self._servers.values():
            if server.instance is not None:
                server.instance.close()
        for _, handler in self.connected():
            await handler.handle_connection_closed()

    # ---- publish and route -------------------------------------------------------------
    def route(self, topic: str, data: bytes, qos: int, *, force: bool = True) -> Sequence[LocalSink]:
        """Deliver to every matching subscriber at min(publish QoS, its best subscription QoS),
        each delivery checked against its reader. Returns the in-process sinks that refused the
        message (only when not ``force``: a client's PUBLISH, which can wait)."""
        matches = self._index.match(topic)
        if not matches:
            return _NOBODY
        topic_bytes = topic.encode()
        outboxes = self._outboxes
        refused: list[LocalSink] | None = None
        for client_id, sub_qos in matches.items():
            outbox = outboxes.get(client_id)
            if outbox is not None:
                if outbox.reads is not None and not outbox.reads(topic):
                    continue  # not this reader's (another device's notification, or a stale grant)
                outbox.deliver(topic_bytes, data, min(qos, sub_qos))
            else:
                sink = self._local.get(client_id)
                if sink is not None and not sink.offer(topic, data, force=force):
                    refused = [*(refused or ()), sink]
        return refused or _NOBODY

    def client_publish(self, session: Session, topic: str, data: bytes, qos: int, *,
                       retain: bool) -> Sequence[LocalSink] | None:
        """A client's PUBLISH: the sinks that could not take it yet (the caller waits for them),
        or None for a protocol violation (the connection must close)."""
        if not valid_topic(topic) or topic.startswith("$"):
            log.warning("%s published to invalid topic %r: closing", session.client_id, topic[:200])
            return None
        who = principal_of(session)
        if who is None or len(topic) > self._clients.max_topic_length or not self._acl.can_publish(who, topic):
            log.info("denied publish to %r by %s", topic[:200], session.client_id)
            return _NOBODY  # MQTT 3.1.1 has no negative PUBACK: acknowledge and drop
        refused = self.route(topic, data, qos, force=False)
        if retain and who.rules is not None:  # users never retain (see retain_message)
            self._store_retained(topic, data, qos)
        return refused

    async def _broadcast_message(self, session: Session | None, topic: str | None,
                                 data: bytes | bytearray | None, force_qos: int | None = None) -> None:
        # Wills and the broker's own messages (presence): route inline, no queue.
        if topic:
            payload = self._server_will(session, topic, bytes(data or b""))
            self.route(topic, payload, min(force_qos if force_qos is not None else _MAX_QOS, _MAX_QOS))

    def _server_will(self, session: Session | None, topic: str, data: bytes) -> bytes:
        """A user's will (its own presence, offline) is sent with the server's clock, not the
        client's: a will cannot date itself."""
        who = principal_of(session) if session is not None else None
        if who is None or who.uid is None or who.device is None or topic != presence_topic(who.uid, who.device):
            return data
        return presence_payload(online=False, platform=who.platform, ts=time.time_ns() // 1_000_000)

    async def retain_message(self, source_session: Session | None, topic_name: str | None,
                             data: bytes | bytearray | None, qos: int | None = None) -> None:
        if source_session is not None:
            who = principal_of(source_session)
            if who is None or who.rules is None:
                return  # users never create retained messages
        if topic_name:
            self._store_retained(topic_name, bytes(data or b""), qos or 0)

    def _store_retained(self, topic: str, data: bytes, qos: int) -> None:
        if data:
            self._retained_messages[topic] = _Retained(topic, data, qos)
            self._retained_index.add(topic)
        elif self._retained_messages.pop(topic, None) is not None:  # [MQTT-3.3.1-10]: empty clears
            self._retained_index.remove(topic)

    # ---- operations --------------------------------------------------------------------
    def connected(self) -> list[tuple[Session, BrokerProtocolHandler]]:
        return [(s, h) for s, h in self._sessions.values() if s.transitions.is_connected()]

    async def kick(self, uid: str, device: str | None = None, reason: str = "") -> int:
        """Drop the live connections of a user (or of one device). Returns how many."""
        count = 0
        for session, handler in self.connected():
            who = principal_of(session)
            if who is not None and who.uid == uid and (device is None or who.device == device):
                log.info("disconnecting %s: %s", session.client_id, reason)
                await handler.handle_connection_closed()
                count += 1
        return count

    async def kick_expired(self, now_ms: int) -> int:
        count = 0
        for session, handler in self.connected():
            who = principal_of(session)
            if who is not None and who.expires_at is not None and who.expires_at <= now_ms:
                log.info("disconnecting %s: token expired", session.client_id)
                await handler.handle_connection_closed()
                count += 1
        return count

    @property
    def bound_port(self) -> int:
        server = self._servers["default"].instance
        return server.sockets[0].getsockname()[1]


@dataclass(slots=True)
class _Retained:
    """A retained message (same fields amqtt's RetainedApplicationMessage exposes)."""

    topic: str
    data: bytes
    qos: int


def raise_file_limit() -> None:
    """One socket per client: lift the soft open-files limit to the hard one."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        log.warning("could not raise the open-files limit")


class EmbeddedBroker:
    """Lifecycle of the embedded broker and its revocation watcher (an async context manager)."""

    def __init__(self, *, host: str, port: int, authenticator: Authenticator, acl: TopicAcl,
                 service_accounts: Mapping[str, str], keepalive_grace: float, auth_poll_interval: float,
                 accounts: Sequence[ServiceAccount] = (), limits: DeliveryLimits | None = None,
                 devices: DevicePolicy | None = None, clients: ClientLimits | None = None, clock: Clock | None = None,
                 presence_interval_ms: int = 1000, session_expiry_s: int = 7 * 86400,
                 broker_cls: type[ImBroker] = ImBroker, accept_users: bool = True) -> None:
        """``accept_users=False``: users (and configured accounts) are refused with CONNACK 3
        until ``broker.accepting`` is set, once whatever consumes their messages is attached."""
        self._accept_users = accept_users
        self._host, self._port = host, port
        self._session_expiry_s = session_expiry_s
        self._presence_interval_ms = presence_interval_ms
        self._clients = clients
        self._devices = devices
        self._accounts = accounts
        self._limits = limits
        self._broker_cls = broker_cls
        self._clock = clock or SystemClock()
        self._authenticator = authenticator
        self._acl = acl
        self._service_accounts = service_accounts
        self._keepalive_grace = keepalive_grace
        self._poll = auth_poll_interval
        self.broker: ImBroker | None = None
        self._watcher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> EmbeddedBroker:
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self._host}:{self._port}"}},
            "plugins": {"broker.presence.PresencePlugin": {"min_interval_ms": self._presence_interval_ms}},
            "timeout_disconnect_delay": 0,
            # A persistent session nobody resumes is dropped after this (with its queue).
            "session_expiry_interval": self._session_expiry_s,
        }
        raise_file_limit()
        self.broker = self._broker_cls(config, authenticator=self._authenticator, acl=self._acl,
                                       service_accounts=self._service_accounts, accounts=self._accounts,
                                       keepalive_grace=self._keepalive_grace, limits=self._limits,
                                       devices=self._devices, clients=self._clients)
        self.broker.accepting = self._accept_users
        last_change = await self._authenticator.last_auth_change_id()
        await self.broker.start()
        self._watcher = asyncio.create_task(self._watch_auth(last_change), name="imgate.broker.auth-watcher")
        log.info("embedded broker listening on %s:%d", self._host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with suppress(asyncio.CancelledError):
                await self._watcher
        if self.broker is not None:
            await self.broker.shutdown()

    @property
    def port(self) -> int:
        assert self.broker is not None
        return self.broker.bound_port

    async def _watch_auth(self, after_id: int) -> None:
        """Apply revocations and disables made by any process (CLI, admin API) to live sessions."""
        assert self.broker is not None
        while True:
            try:
                for change in await self._authenticator.auth_changes_since(after_id):
                    after_id = change.id
                    await self.broker.apply_auth_change(change)
                await self.broker.kick_expired(self._clock.now_ms())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("auth watcher pass failed; retrying")
            await asyncio.sleep(self._poll)
