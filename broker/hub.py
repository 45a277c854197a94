"""The broker's hub: sessions and what connections ask of them. It takes the events of each
connection's shell (``broker.link``), asks the gate who is connecting, the router who gets a
message, and keeps the sessions: take-over, resume, session expiry, wills (with their delay),
the device policy, and ending connections on kicks and revocations.

- Authentication happens before the session table is touched: a refused login cannot kick or
  resume anybody's session.
- A session belongs to the principal that created it: a different principal never resumes,
  takes over or discards it (a client id cannot be squatted either).
- A take-over first ends the old connection (MQTT 5: DISCONNECT 0x8E) and waits for it to
  finish, so its end cannot mark the resumed session as disconnected.
- Revocations applied while a login was under way are checked again before it goes live.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from broker import codec
from broker.acl import Principal, TopicAcl
from broker.auth import AuthChange, Authenticator
from broker.connection import (
    ADMINISTRATIVE_ACTION,
    BAD_AUTH_METHOD,
    BAD_CREDENTIALS,
    CLIENT_ID_NOT_VALID,
    IMPLEMENTATION_SPECIFIC,
    NO_MATCHING_SUBSCRIBERS,
    NOT_AUTHORIZED,
    PROTOCOL_ERROR,
    QUOTA_EXCEEDED,
    SERVER_BUSY,
    SERVER_SHUTTING_DOWN,
    SERVER_UNAVAILABLE,
    SESSION_TAKEN_OVER,
    SUCCESS,
    TOPIC_NAME_INVALID,
    AckReceived,
    DisconnectRequested,
    PublishReceived,
    ServerLimits,
)
from broker.gate import DevicePolicy, Gate, ServiceAccount
from broker.link import Link, Pace
from broker.outbox import Message, OfflinePolicy, Outbox, Stats
from broker.payload import Payload, label
from broker.presence import Presence, presence_payload
from broker.routing import LocalSink, Router
from broker.sessions import Session
from broker.topics import parse_shared, valid_topic

log = logging.getLogger("imgate.broker")

_TAKEOVER_TIMEOUT = 5.0
_MAX_TAKEOVER_ROUNDS = 10  # take-overs one login waits through (connects racing for one client id)
_RECENT_AUTH_CHANGES = 10_000
# Refusals a legitimate client does not retry at once (unlike 0x89 server busy, or a device limit).
_SLOW_REFUSALS = frozenset({BAD_CREDENTIALS, NOT_AUTHORIZED, CLIENT_ID_NOT_VALID, BAD_AUTH_METHOD})
_FORWARDED = frozenset({codec.P_PAYLOAD_FORMAT, codec.P_CONTENT_TYPE, codec.P_RESPONSE_TOPIC,
                        codec.P_CORRELATION_DATA, codec.P_USER})  # PUBLISH properties passed to subscribers


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
    receive_maximum: int = 100  # MQTT 5: unacknowledged QoS 1/2 PUBLISHes a client may have
    topic_alias_maximum: int = 16  # MQTT 5: topic aliases a client may set up
    max_keep_alive: int = 0  # MQTT 5 Server Keep Alive: at most this many seconds (0: the client's choice)
    max_properties: int = 32  # MQTT 5 properties in one packet (User Properties included)
    max_property_bytes: int = 8192  # bytes of one packet's properties (and of a will's)
    max_filters: int = 64  # topic filters in one SUBSCRIBE or UNSUBSCRIBE
    max_unread_bytes: int = 8 << 20  # answers written to a client and not read by it, before it is cut off
    refusal_delay: float = 1.0  # seconds a refused login (bad credentials, garbage) waits for its answer
    max_delayed_refusals: int = 256  # refusals waiting at once; beyond, answered at once


# (uid, device kicked, by device) -> the notices to publish: (topic, payload) each
DeviceNotice = Callable[[str, str, str], list[tuple[str, bytes]]]


def _forwarded(props: dict[int, Any] | None, content_type: str | None) -> dict[int, Any] | None:
    """The properties of a client's PUBLISH that reach its readers. A device with a content type
    of its own (its token's, or its CONNECT's) has its PUBLISHes labelled with it unless it
    labelled them itself, so the reader (the bridge) knows how to decode them."""
    if not props:
        return label(content_type) if content_type is not None else None
    out = {k: v for k, v in props.items() if k in _FORWARDED}
    if content_type is not None and codec.P_CONTENT_TYPE not in out:
        out[codec.P_CONTENT_TYPE] = content_type
    return out or None


def _labelled(payload: bytes, props: dict[int, Any] | None) -> dict[int, Any] | None:
    """A server message's properties: its payload's Content Type, for the MQTT 5 readers."""
    if not isinstance(payload, Payload) or (props is not None and codec.P_CONTENT_TYPE in props):
        return props
    if props:
        return {**props, codec.P_CONTENT_TYPE: payload.content_type}
    return label(payload.content_type)


_WHY = {IMPLEMENTATION_SPECIFIC: "the CONNECT asks for a payload encoding this server does not have"}


class Hub:
    """Sessions, connects and disconnects, and the handling of each connection's requests."""

    def __init__(self, *, authenticator: Authenticator, acl: TopicAcl, service_accounts: Mapping[str, str] | None = None,
                 accounts: Sequence[ServiceAccount] = (), keepalive_grace: float = 1.5,
                 limits: DeliveryLimits | None = None, devices: DevicePolicy | None = None,
                 clients: ClientLimits | None = None, session_expiry_s: int = 7 * 86400,
                 presence_interval_ms: int = 1000, device_notice: DeviceNotice | None = None) -> None:
        self._clients = clients or ClientLimits()
        self._devices = devices or DevicePolicy()
        self._limits = limits or DeliveryLimits()
        self._acl = acl
        self._gate = Gate(authenticator, accounts, service_accounts or {})
        self._grace = keepalive_grace
        self._max_expiry = session_expiry_s
        self._device_notice = device_notice
        c = self._clients
        self._server_limits = ServerLimits(c.max_packet, c.receive_maximum, c.topic_alias_maximum, c.max_keep_alive,
                                           codec.DecodeLimits(c.max_properties, c.max_property_bytes, c.max_filters))
        self.sessions: dict[str, Session] = {}
        self._outboxes: dict[str, Outbox] = {}
        self.router = Router(acl, self._outboxes, max_subscriptions=c.max_subscriptions,
                             max_topic_length=c.max_topic_length, online=self._is_online)
        # uid -> client id -> (platform class, connection order, link): live user devices.
        self._online: dict[str, dict[str, tuple[str, int, Link]]] = {}
        self._order = itertools.count()
        self._auth_applied: deque[tuple[int, str, str | None]] = deque(maxlen=_RECENT_AUTH_CHANGES)
        self._auth_seq = 0
        self.accepting = True  # False: users are refused (server busy) until the app is ready
        self.stats = Stats()
        self.presence = Presence(self, presence_interval_ms)
        self._links: set[Link] = set()
        self._delayed_refusals = 0

    def _is_online(self, client_id: str) -> bool:
        session = self.sessions.get(client_id)
        return session is not None and session.link is not None

    # ---- a new connection ----------------------------------------------------------------------
    async def serve(self, transport: Any) -> None:
        """The listeners' handler: serve one connection until it ends."""
        link = Link(transport, self, self._server_limits, self._grace, self._clients.max_unread_bytes)
        self._links.add(link)
        try:
            await link.run()
        finally:
            self._links.discard(link)

    async def on_connect(self, link: Link, connect: codec.Connect) -> bool:
        conn = link.conn
        conn.client_wants(connect)
        client_id, assigned = connect.client_id, None
        username, password = connect.username, connect.password_text
        if codec.P_AUTH_METHOD in connect.properties:
            return self._refuse(link, BAD_AUTH_METHOD, "enhanced authentication is not supported")
        if not client_id:
            # [MQTT-3.1.3-7/8]: an empty client id needs a clean session; imgate gives one only to
            # service accounts (a user's client id is {uid}:{device}).
            if not self._gate.is_account(username) or (connect.level == codec.MQTT311 and not connect.clean_start):
                return self._refuse(link, CLIENT_ID_NOT_VALID, "a client id is required")
            client_id = assigned = self._gate.assign_client_id()
        checked_at = self._auth_seq  # revocations applied before this are reflected in the login
        user_props: list[tuple[str, str]] = connect.properties.get(codec.P_USER, [])
        who = await self._gate.login(username, password, client_id, user_props)
        if not isinstance(who, Principal):
            return self._refuse(link, who, f"{client_id!r} login refused")
        if not self.accepting and who.account not in self._gate.internal:
            # Until the bridge is attached, a PUBLISH would be acknowledged and reach nobody.
            return self._refuse(link, SERVER_BUSY if conn.level == codec.MQTT5 else SERVER_UNAVAILABLE,
                                f"{client_id!r} (not ready yet)")
        will = connect.will
        if will is not None and (not self._acl.will_allowed(who, will.topic, will.payload)
                                 or not valid_topic(will.topic)):
            return self._refuse(link, NOT_AUTHORIZED, f"{client_id!r} (will on {will.topic[:200]!r})")
        if who.uid is not None and who.device is not None and not await self._device_policy(who, client_id):
            return self._refuse(link, QUOTA_EXCEEDED, f"{client_id!r} (device limit reached)")

        # Until nothing stands in the way. Every await (a take-over, a second look at the token)
        # lets other connects run, so the checks start again after it; after the last pass there
        # is no await before the session is registered, so two CONNECTs of one client id are
        # settled one after the other.
        for _ in range(_MAX_TAKEOVER_ROUNDS):
            existing = self.sessions.get(client_id)
            if existing is not None and not existing.principal.same_owner(who):
                return self._refuse(link, CLIENT_ID_NOT_VALID, f"{client_id!r} (a session of another principal)")
            if existing is not None and existing.link is not None:
                await self._take_over(existing.link)
                continue
            if checked_at != self._auth_seq:
                seen, checked_at = checked_at, self._auth_seq
                if self._concerned(who, since=seen) and not await self._gate.still_valid(who, username, password,
                                                                                      client_id, user_props):
                    return self._refuse(link, BAD_CREDENTIALS, f"{client_id!r} (revoked while connecting)")
                continue
            break
        else:
            return self._refuse(link, SERVER_UNAVAILABLE, f"{client_id!r} (its previous connection would not close)")

        expiry = self._expiry_of(connect)
        if existing is not None and connect.clean_start:
            self._end_session(existing)
            existing = None
        if existing is None:
            session = Session(client_id, who, self._new_outbox(client_id, who), connect.level)
        else:
            session = existing
            session.cancel_timers()  # resumed before its expiry: and its delayed will is not sent
            session.principal, session.level = who, connect.level
        session.expiry_s, session.will = expiry, will
        session.outbox.reads = self._acl.reader(who)
        session.outbox.read_as(who.content_type)
        self.sessions[client_id] = session
        self._outboxes[client_id] = session.outbox
        link.session = session
        rate, burst = self._gate.publish_rate(who, self._clients.publish_rate)
        if rate > 0:
            link.pace = link.control = Pace(rate, burst if burst is not None else self._clients.publish_burst)
        elif who.account not in self._gate.internal and self._clients.publish_rate > 0:
            # An account without a rate publishes freely, but what only asks for an answer
            # (PINGREQ, acknowledgements of nothing) goes at the users' pace.
            link.control = Pace(self._clients.publish_rate, self._clients.publish_burst)
        asked = connect.properties.get(codec.P_SESSION_EXPIRY, 0) if connect.level == codec.MQTT5 else None
        conn.accept(session_present=existing is not None, qos2_in=session.qos2_in, assigned_client_id=assigned,
                    session_expiry=expiry if asked is not None and asked != expiry else None,
                    keep_alive=connect.keep_alive)
        session.link = link
        link.since = time.time_ns() // 1_000_000
        if who.uid is not None:
            self._online.setdefault(who.uid, {})[client_id] = (self._devices.class_of(who.platform),
                                                               next(self._order), link)
        link.flush_soon()
        session.outbox.attach(link, conn.client_receive_maximum)
        self.presence.changed(session)
        return True

    def _expiry_of(self, connect: codec.Connect) -> int:
        if connect.level == codec.MQTT5:
            asked: int = connect.properties.get(codec.P_SESSION_EXPIRY, 0)
            return min(asked, self._max_expiry)
        return 0 if connect.clean_start else self._max_expiry

    def _new_outbox(self, client_id: str, who: Principal) -> Outbox:
        lim = self._limits
        return Outbox(client_id, self.stats, lim.max_inflight, lim.max_queued, lim.policy, device=who.device,
                      max_inflight_bytes=lim.max_inflight_bytes, max_queued_bytes=lim.max_queued_bytes,
                      stall_s=math.inf if who.account in self._gate.internal else lim.stall_s)

    def _refuse(self, link: Link, reason: int, what: str) -> bool:
        log.info("refused connection %s: reason %#x", what, reason)
        link.conn.refuse(reason, why=_WHY.get(reason))
        if reason in _SLOW_REFUSALS:
            link.slow_refusal = True
        return False

    async def delay_refusal(self, link: Link) -> None:
        """Hold a refused login's answer (bad credentials, a malformed or oversized CONNECT) for
        ``refusal_delay``, as login prompts do: a client that reconnects as soon as it is refused
        then costs the server a few logins a second instead of thousands. At most
        ``max_delayed_refusals`` wait at once (each holds a socket); beyond, the answer goes at
        once. A client that closes meanwhile gives its place up at once (so clients that never wait
        for their answer cannot keep the places taken)."""
        delay = self._clients.refusal_delay
        if delay <= 0 or self._delayed_refusals >= self._clients.max_delayed_refusals:
            return
        self._delayed_refusals += 1
        self.stats.delayed_refusals += 1
        try:
            async with asyncio.timeout(delay):
                await link.until_closed()
        except (TimeoutError, ConnectionError, OSError):
            pass
        finally:
            self._delayed_refusals -= 1

    async def _device_policy(self, who: Principal, client_id: str) -> bool:
        """False: refuse this login. Or disconnect the user's oldest devices to stay within the limits."""
        assert who.uid is not None and who.device is not None
        online = self._online.get(who.uid, {})
        victims = self._devices.over(who, client_id, {cid: v[:2] for cid, v in online.items()})
        if not victims:
            return True
        if self._devices.on_limit != "kick_oldest":
            return False
        for victim in victims:
            device = victim.partition(":")[2]
            if self._device_notice is not None:
                for topic, payload in self._device_notice(who.uid, device, who.device):
                    self.publish_internal(topic, payload, qos=1)
            log.info("disconnecting %s: device limit, %s logged in", victim, client_id)
            online[victim][2].end(ADMINISTRATIVE_ACTION, "device limit")
        return True

    async def _take_over(self, old: Link) -> None:
        log.info("%s connected again: closing the previous connection", old.client_id)
        old.end(SESSION_TAKEN_OVER, "session taken over")
        try:
            await asyncio.wait_for(old.wait_ended(), _TAKEOVER_TIMEOUT)
        except TimeoutError:
            log.warning("previous connection of %s did not close in time", old.client_id)

    def _concerned(self, who: Principal, *, since: int) -> bool:
        """Was a revocation or disable that concerns ``who`` applied after ``since``?"""
        if who.uid is None:
            return False
        if not self._auth_applied or self._auth_applied[0][0] > since + 1:
            return True  # changes forgotten (more than the memory holds since): cannot tell, so check
        for seq, uid, device in reversed(self._auth_applied):
            if seq <= since:
                break
            if uid == who.uid and device in (None, who.device):
                return True
        return False

    # ---- the end of a connection --------------------------------------------------------------
    def on_disconnect(self, link: Link, event: DisconnectRequested) -> None:
        session = link.session
        if session is not None and event.session_expiry is not None:
            session.expiry_s = min(event.session_expiry, self._max_expiry)

    async def on_closed(self, link: Link) -> None:
        session = link.session
        if session is None or session.link is not link:
            return
        session.link = None
        session.outbox.detach()
        who = session.principal
        if who.uid is not None:
            devices = self._online.get(who.uid, {})
            entry = devices.get(session.client_id)
            if entry is not None and entry[2] is link:
                del devices[session.client_id]
                if not devices:
                    del self._online[who.uid]
        will, session.will = session.will, None
        # A user's will can only be its own device's offline presence (TopicAcl.will_allowed): the
        # presence announced below is that, with the server's payload and clock, none of the will's
        # properties, and at the presence rate. So a will cannot date itself, carry a 60,000-character
        # User Property to every watcher, or fire faster than presence.
        if will is not None and not link.clean and who.uid is None:
            delay = will.properties.get(codec.P_WILL_DELAY, 0) if session.level == codec.MQTT5 else 0
            if delay and session.expiry_s:
                session.will = will  # sent when the delay is over, unless the session is resumed first
                session.will_timer = asyncio.get_running_loop().call_later(
                    min(delay, session.expiry_s), self._delayed_will, session)
            else:
                self._publish_will(session, will)
        if session.expiry_s == 0:
            self._end_session(session)
        else:
            session.expiry_timer = asyncio.get_running_loop().call_later(session.expiry_s, self._expire, session)
        self.presence.changed(session)

    def _delayed_will(self, session: Session) -> None:
        session.will_timer = None
        will, session.will = session.will, None
        if will is not None and session.link is None:
            self._publish_will(session, will)

    def _expire(self, session: Session) -> None:
        session.expiry_timer = None
        if self.sessions.get(session.client_id) is session and session.link is None:
            self._end_session(session)

    def _end_session(self, session: Session) -> None:
        """The session ends (expired, or replaced by a clean start); a will still waiting for its
        delay goes out now (MQTT 5 §3.1.2.5: at the earlier of the delay and the session's end)."""
        if session.will is not None and session.link is None:
            self._delayed_will(session)
        session.cancel_timers()
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
            self.router.forget(session.client_id)
            if self._outboxes.get(session.client_id) is session.outbox:
                del self._outboxes[session.client_id]

    def _publish_will(self, session: Session, will: codec.Will) -> None:
        """A service account's will (a user's is its presence: see on_closed)."""
        props = _forwarded(will.properties, None)
        expiry = will.properties.get(codec.P_MESSAGE_EXPIRY)
        message = Message(will.topic, will.payload, min(will.qos, 2), will.retain, props,
                          time.monotonic() + expiry if expiry else None, None)
        self.router.route(message)
        if will.retain:  # an account's (users' wills are their presence, and users never retain)
            self.router.store_retained(message)

    # ---- requests of a live connection ------------------------------------------------------------
    async def on_publish(self, link: Link, event: PublishReceived) -> None:
        p, session, conn = event.publish, link.session, link.conn
        assert session is not None
        reason = SUCCESS
        if not event.duplicate:
            reason, refused = self._client_publish(link, session, p)
            if refused:  # routed, but the bridge cannot take it yet: stop reading this client until it can
                await self._wait_for_room(link, p, refused)
        if p.qos == 1:
            conn.send_puback(p.packet_id or 0, reason)
        elif p.qos == 2:
            conn.send_pubrec(p.packet_id or 0, reason)

    def _client_publish(self, link: Link, session: Session, p: codec.Publish) -> tuple[int, Sequence[LocalSink]]:
        """Route a client's PUBLISH: the reason code for its acknowledgement, and the in-process
        sinks that refused it for now (see _wait_for_room)."""
        topic, who = p.topic, session.principal
        if not valid_topic(topic):
            raise codec.ProtocolViolation(f"PUBLISH to invalid topic {topic[:200]!r}", TOPIC_NAME_INVALID)
        if len(topic) > self._clients.max_topic_length or not self._acl.can_publish(who, topic):
            log.info("denied publish to %r by %s", topic[:200], session.client_id)
            return NOT_AUTHORIZED, ()  # MQTT 3.1.1 has no negative PUBACK: acknowledged and dropped
        props = p.properties
        expiry = props.get(codec.P_MESSAGE_EXPIRY) if props else None
        message = Message(topic, p.payload, p.qos, p.retain, _forwarded(props, who.content_type),
                          time.monotonic() + expiry if expiry is not None else None, session.client_id)
        refused = self.router.route(message, force=False)
        if p.retain and who.rules is not None:  # users never retain
            self.router.store_retained(message)
        if refused is None:
            return (NO_MATCHING_SUBSCRIBERS if link.conn.level == codec.MQTT5 else SUCCESS), ()
        return SUCCESS, refused

    async def _wait_for_room(self, link: Link, p: codec.Publish, refused: Sequence[LocalSink]) -> None:
        assert link.session is not None
        props = _forwarded(p.properties, link.session.principal.content_type)
        link.flush_soon()
        while refused:
            # The PUBACK waits too, so nothing acknowledged is ever dropped.
            with link.not_reading():
                await refused[0].room(p.topic)
            refused = [sink for sink in refused if not sink.offer(p.topic, p.payload, props=props)]

    def on_ack(self, link: Link, event: AckReceived) -> bool:
        """True if it acknowledged a message the server had in flight to this client."""
        session = link.session
        if session is None:
            return False
        if event.kind == codec.PUBREC:
            return session.outbox.received(event.packet_id, event.reason)
        return session.outbox.ack(event.packet_id)  # PUBACK, PUBCOMP

    def on_subscribe(self, link: Link, sub: codec.Subscribe) -> None:
        session = link.session
        assert session is not None
        for req in sub.filters:
            if req.no_local and parse_shared(req.topic_filter) is not None:
                # [MQTT-3.8.3-4]
                raise codec.ProtocolViolation("no-local on a shared subscription", PROTOCOL_ERROR)
        sub_id = sub.properties.get(codec.P_SUBSCRIPTION_ID) if sub.properties else None
        codes, replay = self.router.subscribe(session.client_id, session.principal, sub.filters, sub_id)
        link.conn.send_suback(sub.packet_id, codes)
        self.router.replay(session.client_id, replay)  # after the SUBACK [MQTT-3.3.1-6]

    def on_unsubscribe(self, link: Link, unsub: codec.Unsubscribe) -> None:
        session = link.session
        assert session is not None
        link.conn.send_unsuback(unsub.packet_id, self.router.unsubscribe(session.client_id, unsub.filters))

    # ---- the broker's own messages ---------------------------------------------------------------
    def publish_internal(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        message = self._route_own(topic, payload, qos, retain, None)
        if retain:
            self.router.store_retained(message)

    def route(self, topic: str, payload: bytes, qos: int, props: dict[int, Any] | None = None) -> None:
        """A message of the server's own (the bridge's replies and deliveries)."""
        self._route_own(topic, payload, qos, False, props)

    def _route_own(self, topic: str, payload: bytes, qos: int, retain: bool, props: dict[int, Any] | None) -> Message:
        """The server's own messages (the bridge's, the broker's presence and notices), labelled
        with their Content Type; a Payload is told once it has reached every subscriber."""
        message = Message(topic, payload, qos, retain, _labelled(payload, props))
        self.router.route(message)
        if isinstance(payload, Payload):
            payload.routed()
        return message

    def attach_local(self, name: str, filters: list[str], sink: LocalSink) -> None:
        self.router.attach_local(name, filters, sink)

    def detach_local(self, name: str) -> None:
        self.router.detach_local(name)

    # ---- operations ---------------------------------------------------------------------------
    def connected(self) -> list[tuple[Session, Link]]:
        return [(s, s.link) for s in self.sessions.values() if s.link is not None]

    async def kick(self, uid: str, device: str | None = None, reason: str = "", code: int = ADMINISTRATIVE_ACTION
                   ) -> int:
        """End the live connections of a user (or of one device). Returns how many."""
        count = 0
        for session, link in self.connected():
            who = session.principal
            if who.uid == uid and (device is None or who.device == device):
                log.info("disconnecting %s: %s", session.client_id, reason)
                link.end(code, reason)
                count += 1
        return count

    async def kick_expired(self, now_ms: int) -> int:
        count = 0
        for session, link in self.connected():
            who = session.principal
            if who.expires_at is not None and who.expires_at <= now_ms:
                log.info("disconnecting %s: token expired", session.client_id)
                link.end(NOT_AUTHORIZED, "token expired")
                count += 1
        return count

    async def apply_auth_change(self, change: AuthChange) -> int:
        """A revocation or disable: end the live connections it concerns (and remember it)."""
        self._auth_seq += 1
        self._auth_applied.append((self._auth_seq, change.uid, change.device))
        return await self.kick(change.uid, change.device, reason=change.kind, code=NOT_AUTHORIZED)

    async def stop_clients(self) -> None:
        """Accept no more users and end every client connection (their wills and presence go out)."""
        self.accepting = False
        links = list(self._links)
        for link in links:
            link.end(SERVER_SHUTTING_DOWN, "server shutting down")
        for link in links:
            await link.wait_ended()

    async def close(self) -> None:
        await self.stop_clients()
        await self.presence.close()
        for session in self.sessions.values():
            session.cancel_timers()


__all__ = ["ClientLimits", "DeliveryLimits", "DevicePolicy", "Hub", "LocalSink", "ServiceAccount",
           "presence_payload"]
