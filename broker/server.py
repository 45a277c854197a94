"""imgate's embedded broker: amqtt's Broker, subclassed where 0.12.1 falls short.

What this changes, and why:
- Authentication happens *before* amqtt touches the session table. Stock amqtt deletes (clean
  session) or merges into (persistent session) the existing session of a client id, and takes
  over a live connection, before it checks credentials: anyone could kick or hijack a session.
- CONNACK codes follow protocol §1: 4 for a bad token, 5 for a disabled user or a forbidden will,
  2 for a client id that is not ``{uid}:{device}`` of the token.
- A take-over first disconnects the old connection and waits for it to finish, so its
  disconnect cannot mark the resumed session as disconnected.
- The keep-alive is enforced (stock amqtt only logs a read timeout): after ``grace`` x keep-alive
  of silence the connection is dropped, its will is sent and presence goes offline.
- Retained messages are sent only to a session that subscribes to a matching filter *and* may
  read the topic (stock amqtt replays every retained message matching anybody's subscription to
  every connecting client).
- Users cannot create retained messages (only the broker's presence and service accounts can).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
from collections.abc import Mapping
from contextlib import suppress
from typing import Any, NoReturn

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.connack import BAD_USERNAME_PASSWORD, IDENTIFIER_REJECTED, NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session

from broker.acl import PRINCIPAL_KEY, Principal, TopicAcl
from broker.auth import AuthFailure, Authenticator, Identity
from services.ids import Clock, SystemClock

log = logging.getLogger("imgate.broker")

_CONNACK = {
    AuthFailure.BAD_CREDENTIALS: BAD_USERNAME_PASSWORD,
    AuthFailure.NOT_AUTHORIZED: NOT_AUTHORIZED,
    AuthFailure.IDENTIFIER_REJECTED: IDENTIFIER_REJECTED,
}
_TAKEOVER_TIMEOUT = 5.0


class ImHandler(BrokerProtocolHandler):
    """Protocol handler that enforces the keep-alive and tells when its connection has ended."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closed = asyncio.Event()

    def handle_read_timeout(self) -> None:
        # No packet within grace x keep-alive: the client is gone. Ending the disconnect waiter
        # makes the broker treat it as an abnormal disconnect (will, presence offline).
        waiter = self._disconnect_waiter
        if waiter is not None and not waiter.done():
            log.info("keep-alive expired for %s", self.session.client_id if self.session else "?")
            waiter.set_result(None)


def principal_of(session: Session) -> Principal | None:
    return session.attributes.get(PRINCIPAL_KEY)


class ImBroker(Broker):
    """amqtt broker with imgate's authentication, ACL, take-over and retained-message rules."""

    def __init__(self, config: dict[str, Any], *, authenticator: Authenticator, acl: TopicAcl,
                 service_accounts: Mapping[str, str], keepalive_grace: float = 1.5) -> None:
        super().__init__(config)
        self._authenticator = authenticator
        self._acl = acl
        self._service_accounts = dict(service_accounts)
        self._keepalive_grace = keepalive_grace

    # ---- connect ---------------------------------------------------------------------
    async def _login(self, incoming: Session) -> Principal | AuthFailure:
        username, password = incoming.username, incoming.password
        if username in self._service_accounts:
            expected = self._service_accounts[username]
            if password is not None and hmac.compare_digest(password.encode(), expected.encode()):
                if not incoming.client_id:
                    return AuthFailure.IDENTIFIER_REJECTED
                return Principal(uid=None, device=None)
            return AuthFailure.BAD_CREDENTIALS
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
            handler, incoming = await ImHandler.init_from_connect(reader, writer, self.plugins_manager)
        except MQTTError:
            with suppress(Exception):
                await writer.close()
            raise
        except (AMQTTError, NoDataError) as exc:
            log.info("no CONNECT from %s:%s: %s", remote_address, remote_port, exc)
            raise AMQTTError(exc) from exc

        who = await self._login(incoming)
        if not isinstance(who, Principal):
            await self._refuse(writer, _CONNACK[who], f"{incoming.client_id!r} ({who.value})")
        if incoming.will_flag and not self._acl.will_allowed(who, incoming.will_topic, incoming.will_message):
            await self._refuse(writer, NOT_AUTHORIZED, f"{incoming.client_id!r} (will on {incoming.will_topic!r})")
        incoming.attributes[PRINCIPAL_KEY] = who
        if incoming.keep_alive > 0:
            incoming.keep_alive = math.ceil(incoming.keep_alive * self._keepalive_grace)

        client_id = incoming.client_id
        existing = self._sessions.get(client_id)
        if existing is not None and existing[0].transitions.is_connected():
            await self._take_over(client_id, existing[1])
            existing = self._sessions.get(client_id)

        if incoming.clean_session or existing is None:
            if existing is not None:
                await self._delete_session(client_id)
            incoming.parent = 0
            return handler, incoming

        # Resume the persistent session with this connection's will, keep-alive and identity.
        session = existing[0]
        for attr in ("will_flag", "will_message", "will_topic", "will_qos", "will_retain", "keep_alive",
                     "username", "password"):
            setattr(session, attr, getattr(incoming, attr))
        session.attributes[PRINCIPAL_KEY] = who
        session.parent = 1
        return handler, session

    async def _refuse(self, writer: WriterAdapter, code: int, what: str) -> NoReturn:
        log.info("refused connection %s: CONNACK %d", what, code)
        with suppress(Exception):
            await ConnackPacket.build(0, code).to_stream(writer)
            await writer.close()
        msg = f"connection refused: {what}"
        raise MQTTError(msg)

    async def _take_over(self, client_id: str, old: BrokerProtocolHandler) -> None:
        log.info("%s connected again: closing the previous connection", client_id)
        await old.handle_connection_closed()
        if isinstance(old, ImHandler):
            try:
                await asyncio.wait_for(old.closed.wait(), _TAKEOVER_TIMEOUT)
            except TimeoutError:
                log.warning("previous connection of %s did not close in time", client_id)

    async def _authenticate(self, session: Session, _listener: Any) -> bool:
        # Credentials were checked before the session table was touched (_initialize_client_session).
        return principal_of(session) is not None

    async def _handle_disconnect(self, client_session: Session, handler: BrokerProtocolHandler,
                                 disconnect_waiter: asyncio.Future[Any]) -> None:
        try:
            await super()._handle_disconnect(client_session, handler, disconnect_waiter)
        finally:
            if isinstance(handler, ImHandler):
                handler.closed.set()

    # ---- authorisation ---------------------------------------------------------------
    async def _topic_filtering(self, session: Session, topic: str, action: Action) -> bool:
        who = principal_of(session)
        if who is None:
            return False
        if action == Action.PUBLISH:
            allowed = self._acl.can_publish(who, topic)
        elif action == Action.SUBSCRIBE:
            allowed = self._acl.can_subscribe(who, topic)
        else:
            return self._acl.can_receive(who, topic)
        if not allowed:
            log.info("denied %s of %r to %s", action.value, topic, session.client_id)
        return allowed

    async def retain_message(self, source_session: Session | None, topic_name: str | None,
                             data: bytes | bytearray | None, qos: int | None = None) -> None:
        if source_session is not None:
            who = principal_of(source_session)
            if who is None or not who.is_service:
                return  # users never create retained messages
        await super().retain_message(source_session, topic_name, data, qos)

    async def _publish_retained_messages_for_subscription(self, subscription: tuple[str, int],
                                                          session: Session) -> None:
        topic_filter, _ = subscription
        granted = next((qos for s, qos in self._subscriptions.get(topic_filter, ())
                        if s.client_id == session.client_id), None)
        who = principal_of(session)
        handler = self._get_handler(session)
        if granted is None or who is None or handler is None:
            return
        for topic, retained in list(self._retained_messages.items()):
            if self._matches(topic, topic_filter) and self._acl.can_receive(who, topic):
                qos = min(granted, retained.qos if retained.qos is not None else granted)
                await handler.mqtt_publish(retained.topic, retained.data, qos, retain=True)

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


class EmbeddedBroker:
    """Lifecycle of the embedded broker and its revocation watcher (an async context manager)."""

    def __init__(self, *, host: str, port: int, authenticator: Authenticator, acl: TopicAcl,
                 service_accounts: Mapping[str, str], keepalive_grace: float, auth_poll_interval: float,
                 clock: Clock | None = None, broker_cls: type[ImBroker] = ImBroker) -> None:
        self._host, self._port = host, port
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
            "plugins": {"broker.presence.PresencePlugin": {}},
            "timeout_disconnect_delay": 0,
        }
        self.broker = self._broker_cls(config, authenticator=self._authenticator, acl=self._acl,
                               service_accounts=self._service_accounts, keepalive_grace=self._keepalive_grace)
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
                    await self.broker.kick(change.uid, change.device, reason=change.kind)
                await self.broker.kick_expired(self._clock.now_ms())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("auth watcher pass failed; retrying")
            await asyncio.sleep(self._poll)
