"""The composition root: builds settings -> database -> services -> broker -> bridge, starts
them, and shuts them down in reverse order. Nothing else in imgate creates long-lived objects."""

from __future__ import annotations

import asyncio
import functools
import heapq
import logging
import os
import secrets
import shutil
import socket
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal, Self

from bridge.acl import UserTopicRules
from bridge.amqp import AmqpTransport
from bridge.handlers import Dispatcher
from bridge.ingress import IngressLimits
from bridge.ratelimit import Rate, RateLimits, Throttle, TokenBucket
from bridge.router import Router, Topics
from bridge.runner import Bridge
from bridge.transport import BrokerEndpoint, EncodingTrees, LocalTransport, MqttTransport, Transport
from broker.acl import AclRule, TopicAcl
from broker.external_auth import ExternalAuth
from broker.gate import Gate
from broker.listeners import ListenerError, ListenerKind
from broker.server import ClientLimits, DeliveryLimits, DevicePolicy, EmbeddedBroker, ListenerSpec, ServiceAccount
from config.settings import LimitSettings, Settings
from imgate.metrics import Metrics
from imgate.tasks import Supervisor
from imgate.worker import WorkerProcess
from services.attachments.service import AttachmentService
from services.attachments.store import ObjectStore
from services.audit.service import AuditService
from services.blocks.service import BlockService
from services.callbacks.outbox import AFTER_EVENTS, CallbackOutbox, CallbackSender
from services.contacts.service import ContactService
from services.conversations.service import ConversationService
from services.db import Database
from services.errors import ErrorCode, ImError
from services.events.queue import EventQueue
from services.files import private_dir
from services.groups.service import GroupChange, GroupService
from services.hooks.before import BeforeCallbacks, check_urls
from services.ids import Clock, SystemClock
from services.messages.scheduled import ScheduledSends
from services.messages.service import MessageService, SendResult
from services.notifications.service import NotificationService
from services.presence.service import PresenceService
from services.previews.service import Preview, PreviewJob, PreviewService
from services.privacy.service import PrivacyService
from services.profiles.service import ProfileService
from services.push.providers import Provider
from services.push.service import FAN_OUT_BATCH, PushService
from services.reactions.service import ReactionService
from services.search.base import SearchBackend
from services.search.service import SearchService
from services.users.service import UserService

if TYPE_CHECKING:
    from bridge.outbound import Publish
    from imgate.bots import BotActions
    from imgate.http import EmbeddedHttpServer
    from imgate.rabbitmq import ConnectionWatch, RabbitManagement

log = logging.getLogger("imgate")

BRIDGE_ACCOUNT = "svc:bridge"  # ':' is not allowed in uids, so no user can take this name
_BRIDGE_READY_TIMEOUT = 15.0
_DRAIN_TIMEOUT = 10.0
_LEASE_MS = 15_000  # an event consumer's lease (App.leased): a dead worker's consumer moves on after this
_AUDIT_QUEUE = 64  # audit entries from signal handlers waiting to be written (more: dropped and logged)


@dataclass(frozen=True)
class Services:
    """The services, each the one owner of its tables (see README, "How it is built")."""

    users: UserService
    conversations: ConversationService
    messages: MessageService
    presence: PresenceService
    groups: GroupService
    notifications: NotificationService
    events: EventQueue
    reactions: ReactionService
    blocks: BlockService
    profiles: ProfileService
    contacts: ContactService
    attachments: AttachmentService
    scheduled: ScheduledSends  # a table of the message service's (scheduled sends), with its own interface
    audit: AuditService  # the audit log (administrative changes)


def build_services(clock: Clock, *, max_group_members: int = 1000, recall_window_s: int = 120,
                   edit_window_s: int = 900, max_text: int = 8000, contacts_policy: bool = False,
                   attachments: AttachmentService | None = None, mention_all_per_minute: int = 3,
                   max_pins: int = 50, max_scheduled: int = 100, max_schedule_days: int = 30, min_ttl_s: int = 3600,
                   max_ttl_s: int = 90 * 86400, outbox: CallbackOutbox | None = None) -> Services:
    """The services on one clock. ``attachments``: the attachment service on the configured
    object store (:func:`open_attachments`); without it, attachments are off (file.upload is
    ``unavailable``). ``outbox``: the callbacks' outbox (:meth:`CallbackOutbox.of` the endpoints;
    without it, no ``after_*``, ``membership`` or ``user`` event is written)."""
    attachments = attachments or AttachmentService(clock, None)
    users = UserService(clock, outbox)
    blocks = BlockService(clock, users)
    contacts = ContactService(clock, users, blocks)
    conversations = ConversationService()
    presence = PresenceService()
    events = EventQueue()
    messages = MessageService(clock, users, conversations, blocks=blocks, events=events,
                              recall_window_s=recall_window_s, edit_window_s=edit_window_s, max_text=max_text,
                              contacts=contacts if contacts_policy else None, attachments=attachments,
                              mention_all_per_minute=mention_all_per_minute, max_pins=max_pins,
                              min_ttl_s=min_ttl_s, max_ttl_s=max_ttl_s, outbox=outbox)
    profiles = ProfileService(clock, users, conversations, attachments=attachments)
    attachments.add_referrer(messages)  # who may download an upload, and whether one is still used
    attachments.add_referrer(profiles)
    scheduled = ScheduledSends(clock, users, conversations, messages, attachments, max_pending=max_scheduled,
                               max_days=max_schedule_days)
    attachments.add_referrer(scheduled)  # a pending scheduled send's uploads are not swept
    return Services(users, conversations, messages, presence,
                    GroupService(clock, users, conversations, messages, max_members=max_group_members, blocks=blocks),
                    NotificationService(clock, users, presence), events, ReactionService(clock, messages), blocks,
                    profiles, contacts, attachments, scheduled, AuditService(clock))


async def open_attachments(settings: Settings, clock: Clock, web_url: str) -> AttachmentService:
    """The attachment service on the configured store: files in ``data_dir/files`` served by the
    web listener at ``web_url``, or an S3-compatible bucket."""
    f = settings.files
    store: ObjectStore
    if f.backend == "s3":
        from services.attachments.s3 import S3Store

        store = await S3Store.create(f.s3_bucket or "", endpoint_url=f.s3_endpoint_url, region=f.s3_region,
                        access_key_id=f.s3_access_key_id, secret_access_key=f.s3_secret_access_key,
                        public_endpoint_url=f.s3_public_endpoint_url, prefix=f.s3_prefix)
    else:
        from services.attachments.local import LocalStore

        store = await LocalStore.open(settings.data_dir / "files", web_url, f.signing_secret)
    return AttachmentService(clock, store, max_bytes=settings.limits.max_attachment_bytes,
                             upload_ttl_s=f.upload_ttl_s, download_ttl_s=f.download_ttl_s,
                             orphan_after_s=f.orphan_after_s, max_pending=f.max_pending,
                             daily_bytes=f.daily_bytes)


def build_push(svc: Services, clock: Clock, providers: dict[str, Provider], **options: Any) -> PushService:
    """The push service on ``svc`` (``options``: PushService's keyword settings)."""
    return PushService(clock, providers, messages=svc.messages, conversations=svc.conversations,
                       presence=svc.presence, users=svc.users, events=svc.events, **options)


def open_database(settings: Settings, *, create_db: bool = False, upgrade: bool = True) -> Database:
    """The database, migrated on entry (``upgrade``) or refused if it needs migrating."""
    return Database(settings.database_url(), sqlite_synchronous=settings.database.sqlite_synchronous,
                    busy_timeout_ms=settings.database.sqlite_busy_timeout_ms, create_db=create_db, upgrade=upgrade)


def search_refusal(settings: Settings, role: str) -> str | None:
    """Why ``role`` cannot run with this search backend, in one line (None: it can). Cluster
    mode's bridges (which answer the ``search`` RPC) and workers (which index) need an index
    every process reaches, so ``imgate bridge`` and ``imgate worker`` with ``amqp.url`` refuse
    the embedded one (``imgate api`` never opens an embedded index; a shared one only to remove
    an erased user's messages); the postgres backend needs PostgreSQL."""
    backend = settings.search.backend
    if backend == "postgres" and settings.database_url().startswith("sqlite"):
        return ("search.backend = postgres keeps its index in the PostgreSQL database, but database.url is SQLite; "
                "set IMGATE_DATABASE__URL to a postgres:// URL, or IMGATE_SEARCH__BACKEND=embedded")
    if backend == "embedded" and role in ("bridge", "worker") and settings.amqp.url:
        return ("search.backend = embedded keeps its index in data_dir, which other machines cannot reach; "
                "set IMGATE_SEARCH__BACKEND=postgres (or meilisearch) in cluster mode")
    return None


def build_search(settings: Settings, svc: Services) -> SearchService:
    """The search service on the configured backend: the embedded engine (SQLite FTS5 in the
    data directory), a table of the PostgreSQL database, or Meilisearch.

    Raises:
        ImError: the postgres backend on a SQLite database.
    """
    s = settings.search
    backend: SearchBackend
    refusal = search_refusal(settings, "search")
    if refusal is not None:
        raise ImError(refusal, ErrorCode.BAD_REQUEST)
    if s.backend == "meilisearch":
        from services.search.meili import MeiliSearch

        backend = MeiliSearch(s.meili_url, s.meili_api_key, s.meili_index, timeout_s=s.meili_timeout_s)
    elif s.backend == "postgres":
        from services.search.postgres import PostgresSearch

        backend = PostgresSearch()
    else:
        from services.search.embedded import EmbeddedSearch

        backend = EmbeddedSearch(settings.data_dir / "search.db")
    return SearchService(backend, svc.messages, svc.conversations, svc.events, batch=s.batch)


def build_privacy(settings: Settings, svc: Services, search: SearchService | None, clock: Clock) -> PrivacyService:
    """Export and erasure (services/privacy) on ``svc``; ``search``: the index this process
    opened (an erasure removes the user's messages from it at once), if any."""
    return PrivacyService(clock, users=svc.users, presence=svc.presence,
                          conversations=svc.conversations, messages=svc.messages, scheduled=svc.scheduled,
                          groups=svc.groups, reactions=svc.reactions, blocks=svc.blocks, contacts=svc.contacts,
                          profiles=svc.profiles, attachments=svc.attachments, notifications=svc.notifications,
                          search=search, erase_messages=settings.privacy.erase_messages,
                          max_exports=settings.privacy.max_exports, audit=svc.audit)


def rate_limits(s: LimitSettings) -> RateLimits:
    return RateLimits(messages=Rate(s.messages_per_s, s.messages_burst), rpcs=Rate(s.rpcs_per_s, s.rpcs_burst),
                      searches=Rate(s.searches_per_s, s.searches_burst),
                      push_registers=Rate(s.push_registers_per_s, s.push_registers_burst),
                      typing=Rate(s.typing_per_second, s.typing_per_second),
                      error_replies=Rate(s.error_replies_per_s, s.error_replies_burst),
                      bot_messages=Rate(s.bot_messages_per_s, s.bot_messages_burst))


def topic_acl(topics: Topics | str, presence_hidden: Callable[[str, str], bool] | None = None) -> TopicAcl:
    """The broker's ACL: rules for service accounts, presence (hidden from the users its owner
    blocks, given ``presence_hidden``), and the IM topics of ``topics`` (or of a prefix alone)
    for users (the broker itself knows no IM topic)."""
    return TopicAcl(UserTopicRules(Topics(topics) if isinstance(topics, str) else topics),
                    presence_hidden=presence_hidden)


def im_topics(s: Settings) -> Topics:
    return Topics(s.mqtt.topic_prefix, s.mqtt.encoding_trees)


def service_accounts(s: Settings) -> list[ServiceAccount]:
    return [ServiceAccount(a.username, a.password, tuple(AclRule.parse(r) for r in a.acl), a.publish_rate)
            for a in s.broker.accounts]


def amqp_urls(s: Settings) -> list[str]:
    """The nodes of ``amqp.url`` (comma-separated), in order, each with ``broker.username`` /
    ``broker.password`` when it has no credentials."""
    from yarl import URL

    assert s.amqp.url is not None
    urls = []
    for part in s.amqp.url.split(","):
        url = URL(part.strip())
        if url.user is None and s.broker.username:
            url = url.with_user(s.broker.username).with_password(s.broker.password)
        urls.append(str(url))
    return urls


def listener_specs(s: Settings) -> list[ListenerSpec]:
    """The listeners besides plain MQTT on mqtt.port: TLS, WebSocket, secure WebSocket (each off
    while its port is unset)."""
    m, max_message = s.mqtt, s.broker.max_packet_bytes + 8
    specs: list[ListenerSpec] = []
    if m.tls_port is not None:
        specs.append(ListenerSpec("tls", m.host, m.tls_port, "mqtt.tls_port", m.tls_cert, m.tls_key,
                                  max_message=max_message))
    if m.ws_port is not None:
        specs.append(ListenerSpec("ws", m.host, m.ws_port, "mqtt.ws_port", ws_path=m.ws_path, max_message=max_message))
    if m.wss_port is not None:
        specs.append(ListenerSpec("wss", m.host, m.wss_port, "mqtt.wss_port", m.tls_cert, m.tls_key,
                                  ws_path=m.ws_path, max_message=max_message))
    return specs


def vars_of(stats: Any) -> dict[str, float]:
    return {f.name: getattr(stats, f.name) for f in fields(stats)}


class App:
    """The running platform. ``async with App(settings) as app: await app.wait()``."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None,
                 role: Literal["all", "worker", "api", "bridge"] = "all", holder: str | None = None) -> None:
        """``role``: "all" is ``imgate run`` (broker, bridge, services; the background work in a
        worker process or inline, by ``workers.mode``); "worker" is ``imgate worker`` (the
        background work alone); "api" is ``imgate api`` (the admin API and the external broker's
        auth endpoints alone, for a deployment whose MQTT front is RabbitMQ); "bridge" is
        ``imgate bridge`` (a bridge on RabbitMQ over AMQP, one of any number: bridge.amqp)."""
        self.settings = settings
        self.role = role
        self.clock = clock or SystemClock()
        self._stack = AsyncExitStack()
        self.tasks = Supervisor()  # every long-lived task (imgate/tasks.py states the crash rule)
        self.services: Services | None = None
        self.broker: EmbeddedBroker | None = None
        self.bridge: Bridge | None = None
        self.admin: EmbeddedHttpServer | None = None  # when admin.secret is set
        self.web: EmbeddedHttpServer | None = None  # the web chat page and files (imgate run, web.enabled)
        self.push: PushService | None = None
        self.search: SearchService | None = None
        self.worker: WorkerProcess | None = None  # the background work's process (workers.mode = "process")
        self.rabbit: RabbitManagement | None = None  # RabbitMQ's management API (rabbitmq.management_url)
        self.connection_watch: ConnectionWatch | None = None  # RabbitMQ's connection events (with amqp.url)
        self.amqp: AmqpTransport | None = None  # imgate bridge's transport (cluster mode)
        self.previews: PreviewService | None = None  # link previews (previews.enabled), where messages are handled
        self.privacy: PrivacyService | None = None  # export and erasure (the admin API's), with admin.secret
        self.callbacks: CallbackSender | None = None  # the callbacks' outbox sender, where the background work runs
        # This process in the event consumers' leases (imgate run's worker child keeps its parent's).
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.telemetry = Metrics(role=role)  # this process's /metrics (its own registry: one per App)
        # Entries recorded from synchronous code (the SIGHUP handler), written by imgate.audit.recorder.
        self._audit_queue: asyncio.Queue[tuple[str, str, str, dict[str, Any], str]] = asyncio.Queue(_AUDIT_QUEUE)

    @property
    def mqtt_port(self) -> int:
        assert self.broker is not None, "no embedded broker"
        return self.broker.port

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stop()

    async def _start(self) -> None:
        s = self.settings
        refusal = search_refusal(s, self.role)  # before anything starts (or logs): one line, from the CLI
        if refusal is not None:
            raise ImError(refusal, ErrorCode.BAD_REQUEST)
        check_urls(s.callbacks)  # an endpoint an outbound request could never reach: one line, now
        private_dir(s.data_dir)
        # A worker finds the schema current (the server migrates it) or refuses to start.
        await self._stack.enter_async_context(open_database(s, upgrade=self.role == "all"))
        await self._stack.enter_async_context(self.tasks)  # closed by _stop before what the tasks use
        attachments = await self._start_web() if self.role in ("all", "bridge", "api") else None
        self.services = svc = build_services(self.clock, max_group_members=s.limits.max_group_members,
                                             recall_window_s=s.limits.recall_window_s,
                                             edit_window_s=s.limits.edit_window_s, max_text=s.limits.max_text,
                                             contacts_policy=s.messaging.policy == "contacts",
                                             attachments=attachments,
                                             mention_all_per_minute=s.limits.mention_all_per_minute,
                                             max_pins=s.limits.max_pins, max_scheduled=s.limits.max_scheduled,
                                             max_schedule_days=s.limits.max_schedule_days,
                                             min_ttl_s=s.limits.min_ttl_s, max_ttl_s=s.limits.max_ttl_s,
                                             outbox=CallbackOutbox.of(s.callbacks.endpoints))
        self.tasks.spawn("imgate.audit.recorder", lambda: self._audit_recorder(svc.audit), restart=True)
        await self._record_callbacks(svc.audit)
        if self.role != "worker":  # the bots (senders' kinds and buckets), known to the message path in memory
            await svc.users.refresh_bots()
            self.tasks.spawn("imgate.users.bots", lambda: svc.users.follow_bots(s.limits.bots_refresh_s),
                             restart=True)
        if self.role in ("all", "api"):  # where devices log in (the embedded broker, the external brokers' auth)
            self.tasks.spawn("imgate.users.token-use", svc.users.record_token_use, restart=True)
        if attachments is not None:
            self._stack.push_async_callback(attachments.close)
            refresh = getattr(attachments.store, "refresh_loop", None)  # S3 on temporary credentials
            if refresh is not None and getattr(attachments.store, "refreshes", False):
                self.tasks.spawn("imgate.attachments.s3-credentials", refresh, restart=True)
            sweep = self.leased("attachments.sweep", attachments.sweep)
            # A pass sweeps all there is (in batches of its own): the loop never reruns it at once.
            self.tasks.spawn("imgate.attachments.sweeper", lambda: self._work_loop(
                "the sweep of unused uploads", sweep, 1 << 62, s.files.sweep_interval_s), restart=True)
        cluster = self.role == "bridge"
        if cluster and (not s.amqp.url or s.database_url().startswith("sqlite")):
            msg = "imgate bridge needs amqp.url (RabbitMQ) and a PostgreSQL database.url"
            raise ImError(msg, ErrorCode.BAD_REQUEST)
        if self.role == "worker":
            await self._start_push(svc, loops=True)
            self._start_search(svc, loops=True)
            await self._start_callbacks()
            log.info("imgate worker is up (push, search indexing, callbacks)")
            return
        if self.role == "api":
            if not s.admin.secret:
                msg = "imgate api needs admin.secret (IMGATE_ADMIN__SECRET)"
                raise ImError(msg, ErrorCode.BAD_REQUEST)
            await self._start_rabbit(svc)
            await self._start_admin()
            log.info("imgate api is up (admin API, RabbitMQ auth backend)")
            return
        self.tasks.spawn("imgate.messages.committer", svc.messages.run)  # the group commit
        topics = im_topics(s)

        transport: Transport
        b = s.bridge
        if cluster:
            transport = self._amqp(svc)
        elif s.broker.embedded:
            secret = secrets.token_urlsafe(32)
            # The embedded broker starts with no connections, so nobody is online.
            await svc.presence.mark_all_offline(self.clock.now_ms())
            self.broker = await self._stack.enter_async_context(EmbeddedBroker(
                host=s.mqtt.host, port=s.mqtt.port, authenticator=svc.users,
                acl=topic_acl(topics, await svc.blocks.presence_filter()),
                service_accounts={BRIDGE_ACCOUNT: secret}, keepalive_grace=s.mqtt.keepalive_grace,
                auth_poll_interval=s.broker.auth_poll_interval, clock=self.clock,
                accounts=service_accounts(s),
                limits=DeliveryLimits(s.broker.max_inflight, s.broker.max_queued, s.broker.queue_policy,
                                      s.broker.max_inflight_bytes, s.broker.max_queued_bytes,
                                      s.broker.slow_consumer_s),
                devices=DevicePolicy(s.broker.max_devices, s.broker.max_devices_per_class, s.broker.platform_classes,
                                     s.broker.on_device_limit),
                clients=ClientLimits(s.broker.max_packet_bytes, s.broker.publish_rate, s.broker.publish_burst,
                                     s.broker.max_subscriptions, s.broker.max_topic_length, s.broker.receive_maximum,
                                     s.broker.topic_alias_maximum, s.broker.max_keep_alive,
                                     max_properties=s.broker.max_properties,
                                     max_property_bytes=s.broker.max_property_bytes,
                                     max_filters=s.broker.max_filters_per_packet,
                                     max_unread_bytes=s.broker.max_unread_bytes,
                                     refusal_delay=s.broker.refusal_delay_ms / 1000,
                                     max_delayed_refusals=s.broker.max_delayed_refusals),
                presence_interval_ms=s.broker.presence_min_interval_ms,
                session_expiry_s=s.broker.session_expiry_s,
                accept_users=False,  # until the bridge consumes what they publish (below)
                listeners=listener_specs(s), device_notice=topics.device_limit_notice,
            ))
            if b.transport == "auto":
                assert self.broker.broker is not None
                transport = LocalTransport(self.broker.broker, name=b.client_id)
            else:
                host = "127.0.0.1" if s.mqtt.host in ("0.0.0.0", "", "::") else s.mqtt.host
                transport = self._mqtt(BrokerEndpoint(host, self.broker.port, BRIDGE_ACCOUNT, secret, b.client_id))
        else:
            transport = self._mqtt(BrokerEndpoint(s.broker.host, s.broker.port, s.broker.username,
                                                  s.broker.password, b.client_id))

        if topics.trees:
            transport = EncodingTrees(transport, topics)
        inline = s.workers.mode == "inline" and not cluster  # cluster mode: imgate worker does it
        await self._start_push(svc, loops=inline)
        self._start_search(svc, loops=inline)
        if inline:
            await self._start_callbacks()
        if not inline and not cluster:
            self.worker = WorkerProcess(s, holder=f"{self.holder}/worker")
            self.tasks.spawn("imgate.worker", self.worker.run, restart=True)
        router = Router(topics, max_payload=s.limits.max_payload, max_text=s.limits.max_text,
                        connection_events=cluster)
        before = await self._start_before(svc)
        dispatcher = Dispatcher(topics, messages=svc.messages, conversations=svc.conversations,
                                presence=svc.presence, groups=svc.groups, clock=self.clock,
                                group_receipts_max=s.limits.group_receipts_max,
                                notifications=svc.notifications, push=self.push, search=self.search,
                                reactions=svc.reactions, blocks=svc.blocks, profiles=svc.profiles,
                                contacts=svc.contacts, attachments=svc.attachments,
                                announce_presence=cluster, previews=await self._start_previews(),
                                scheduled=svc.scheduled, bots=svc.users.bots, before=before)
        self.bridge = Bridge(transport, router, dispatcher,
                             Throttle(topics, self.clock, rate_limits(s.limits), svc.users.bots),
                             lanes=b.lanes, shared_group=b.shared_group, timings=self.telemetry,
                             ingress=IngressLimits(b.ingress_user_items, b.ingress_user_bytes, b.ingress_total_bytes,
                                                   b.ingress_user_inflight, b.ingress_max_inflight))
        self.tasks.spawn("imgate.bridge", self.bridge.run)
        self._start_scheduled(svc, self.bridge, topics)
        if self.previews is not None:
            bridge, previews = self.bridge, self.previews

            async def deliver(job: PreviewJob, preview: Preview) -> None:
                await bridge.publish_many(await dispatcher.preview_publishes(job, preview))

            self.tasks.spawn("imgate.previews", lambda: previews.run(deliver), restart=True)
        self._start_expiry(svc, self.bridge, dispatcher)
        try:
            async with asyncio.timeout(_BRIDGE_READY_TIMEOUT), asyncio.TaskGroup() as tg:
                ready = tg.create_task(self.bridge.ready.wait(), name="imgate.bridge.ready")
                failed = tg.create_task(self.tasks.failed.wait(), name="imgate.bridge.failed")
                await asyncio.wait({ready, failed}, return_when=asyncio.FIRST_COMPLETED)
                ready.cancel()
                failed.cancel()
        except TimeoutError:
            msg = f"bridge could not subscribe within {_BRIDGE_READY_TIMEOUT}s"
            raise RuntimeError(msg) from None
        if self.tasks.failure is not None:
            raise self.tasks.failure  # the bridge could not start (its error is logged and chained)
        if self.broker is not None and self.broker.broker is not None:
            self.broker.broker.accepting = True  # a PUBLISH acknowledged from now on reaches the bridge
        elif not cluster:  # imgate run on RabbitMQ over MQTT (imgate api closes connections in cluster mode)
            await self._start_rabbit(svc)
        await self._start_admin()
        log.info("imgate is up (bridge transport: %s)", type(transport).__name__)

    def _amqp(self, svc: Services) -> AmqpTransport:
        """Cluster mode's transport: RabbitMQ over AMQP, the sender shards shared with the other
        bridges alive in the database (bridge/amqp.py)."""
        a, s = self.settings.amqp, self.settings
        urls = amqp_urls(s)
        ttl_ms = int(a.membership_interval_s * 3000)
        holder, events, clock = self.holder, svc.events, self.clock

        async def members() -> list[str]:
            return await events.members("bridges", holder, clock.now_ms(), ttl_ms)

        async def leave() -> None:
            try:
                await events.leave("bridges", holder)
            except Exception:  # the others forget us when our heartbeat expires
                log.exception("could not leave the bridges' membership")

        self._stack.push_async_callback(leave)
        self.amqp = AmqpTransport(urls, exchange=a.exchange, prefix=a.queue_prefix, shards=a.shards,
                             prefetch=a.prefetch, holder=holder, members=members,
                             interval=a.membership_interval_s, publish_timeout=s.bridge.publish_timeout,
                             max_messages=a.max_queue_messages, max_bytes=a.max_queue_bytes,
                             max_body=s.broker.max_packet_bytes)
        return self.amqp

    async def _start_previews(self) -> PreviewService | None:
        """Link previews (``previews.enabled``): the fetcher behind the shared SSRF guard, the
        per-user and global buckets, the cache. Run by the process that handles the messages
        (imgate run, each imgate bridge): the preview follows the message's own deliveries."""
        p = self.settings.previews
        if not p.enabled:
            return None
        from services.netguard import OutboundPolicy, default_ssl_context
        from services.previews.service import PreviewFetcher

        context = default_ssl_context()
        if p.ca_file is not None:
            context.load_verify_locations(cafile=str(p.ca_file))
        policy = OutboundPolicy(allow=p.allow, resolve_timeout_s=p.timeout_s, noun="link")
        fetcher = await self._stack.enter_async_context(PreviewFetcher(
            policy, timeout_s=p.timeout_s, connect_timeout_s=p.connect_timeout_s, max_bytes=p.max_bytes,
            max_redirects=p.max_redirects, max_connections=p.concurrency, ssl_context=context))
        self.previews = PreviewService(
            fetcher, user_bucket=TokenBucket(self.clock, Rate(p.user_per_s, p.user_burst)),
            global_bucket=TokenBucket(self.clock, Rate(p.global_per_s, p.global_burst), max_keys=1),
            queue_max=p.queue, concurrency=p.concurrency, cache_entries=p.cache_entries, cache_bytes=p.cache_bytes,
            ttl_s=p.ttl_s, negative_ttl_s=p.negative_ttl_s, max_url=p.max_url, images=p.images)
        return self.previews

    def _mqtt(self, endpoint: BrokerEndpoint) -> MqttTransport:
        b = self.settings.bridge
        return MqttTransport(endpoint, incoming_queue=b.incoming_queue, max_inflight=b.max_inflight,
                             publish_timeout=b.publish_timeout)

    async def _start_push(self, svc: Services, *, loops: bool) -> None:
        """The push service (the RPCs use it), and with ``loops`` its fan-out (message events ->
        push jobs) and its sender (jobs -> providers, concurrently), both stopped with the app."""
        import json

        import httpx

        from services.push.providers import ApnsProvider, FcmProvider, WebhookProvider
        from services.push.webhooks import WebhookClient, WebhookPolicy

        p = self.settings.push
        timeout = httpx.Timeout(p.timeout_s, connect=p.connect_timeout_s)
        limits = httpx.Limits(max_connections=p.concurrency, max_keepalive_connections=min(p.concurrency, 20))
        webhooks = WebhookPolicy(allow_http=p.webhook_allow_http, allow=p.webhook_allow, resolve_timeout_s=p.timeout_s)
        providers: dict[str, Provider] = {}
        if p.fcm_service_account_file is not None:
            account = json.loads(p.fcm_service_account_file.read_text())
            client = await self._stack.enter_async_context(httpx.AsyncClient(timeout=timeout, limits=limits))
            providers["fcm"] = FcmProvider(client, account, base_url=p.fcm_base_url)
        if p.webhook_secret:  # users' URLs: the SSRF-guarded client (no proxy, no redirect, capped answers)
            hooks = await self._stack.enter_async_context(WebhookClient(
                webhooks, timeout_s=p.timeout_s, connect_timeout_s=p.connect_timeout_s, max_connections=p.concurrency))
            providers["webhook"] = WebhookProvider(hooks, p.webhook_secret)
        if p.apns_key_file is not None:
            h2 = await self._stack.enter_async_context(httpx.AsyncClient(http2=True, timeout=timeout, limits=limits))
            providers["apns"] = ApnsProvider(h2, key_pem=p.apns_key_file.read_text(), key_id=p.apns_key_id,
                                             team_id=p.apns_team_id, topic=p.apns_topic, base_url=p.apns_base_url)
        push = self.push = await self._stack.enter_async_context(build_push(
            svc, self.clock, providers, policy=p.policy, preview_chars=p.preview_chars, max_attempts=p.max_attempts,
            webhooks=webhooks, max_targets_per_user=p.max_targets_per_user, concurrency=p.concurrency,
            per_host_concurrency=p.per_host_concurrency, timeout_s=p.timeout_s))
        if not loops:
            return
        self.tasks.spawn("imgate.push.sender", lambda: push.run(p.interval_s), restart=True)
        fan_out = self.leased("push", push.fan_out)
        self.tasks.spawn("imgate.push.worker", lambda: self._work_loop("push", fan_out, FAN_OUT_BATCH, p.interval_s),
                         restart=True)

    def _start_search(self, svc: Services, *, loops: bool) -> None:
        """The search service (the ``search`` RPC), and with ``loops`` its indexer, which follows
        the message-event queue (a backend that is down at start-up is retried by the indexer;
        messaging does not wait for it)."""
        search = self.search = build_search(self.settings, svc)
        if not loops:
            return
        index = self.leased("search", search.index_pending)
        self.tasks.spawn("imgate.search.indexer", lambda: self._work_loop(
            "search indexing", index, self.settings.search.batch, self.settings.search.interval_s),
            restart=True)

    async def _start_before(self, svc: Services) -> BeforeCallbacks | None:
        """The operator's before_* callbacks (docs/callbacks.md), where a bridge runs and in ``imgate
        api`` (a bot's sends): asked before a send, an edit or a profile change is stored, and before
        a scheduled send is sent. None when no endpoint takes a before_* event (nothing on the send
        path then)."""
        before = BeforeCallbacks.build(self.settings.callbacks, clock=self.clock,
                                       max_text=self.settings.limits.max_text, bots=svc.users.bots)
        if before is not None:
            await self._stack.enter_async_context(before)
            svc.scheduled.before = functools.partial(before.before_send, scheduled=True)
        return before
    async def _start_callbacks(self) -> None:
        """The sender of the callbacks' outbox (services/callbacks/outbox.py), where the background
        work runs, under the ``callbacks`` lease (one process of a cluster sends); off while no
        endpoint takes an ``after_*``, ``membership`` or ``user`` event."""
        from services.callbacks.outbox import AFTER_EVENTS, CallbackSender, Endpoint
        from services.netguard import OutboundPolicy
        from services.push.webhooks import WebhookClient

        c = self.settings.callbacks
        endpoints = [Endpoint(e.name, e.url, e.secret, e.timeout_s) for e in c.endpoints
                     if any(ev in AFTER_EVENTS for ev in e.events)]
        if not endpoints:
            return
        o = c.outbox
        policy = OutboundPolicy(allow_http=c.allow_http, allow=c.allow, resolve_timeout_s=c.connect_timeout_s,
                                noun="callback")
        client = await self._stack.enter_async_context(WebhookClient(
            policy, timeout_s=max(e.timeout_s for e in endpoints), connect_timeout_s=c.connect_timeout_s,
            max_connections=o.concurrency * len(endpoints), max_response_bytes=c.max_response_bytes))
        sender = self.callbacks = CallbackSender(
            self.clock, endpoints, client, policy, batch=o.batch, concurrency=o.concurrency,
            retry_base_ms=o.retry_base_ms, retry_max_ms=o.retry_max_ms, max_attempts=o.max_attempts,
            max_age_s=o.max_age_s, max_pending=o.max_pending)
        step = self.leased("callbacks", sender.step)
        self.tasks.spawn("imgate.callbacks.sender", lambda: sender.run(step, o.poll_s), restart=True)

    def _start_scheduled(self, svc: Services, bridge: Bridge, topics: Topics) -> None:
        """The delivery of scheduled sends, where a bridge publishes (imgate run, each imgate
        bridge): under the ``scheduled`` lease, so one process of the cluster delivers at a time
        (and the (sender, cid) of each send keeps a takeover from storing one twice)."""
        from bridge.scheduled import delivery_publishes, outcome_publishes

        scheduled, previews = svc.scheduled, self.previews

        async def deliver(results: list[SendResult]) -> None:
            await bridge.publish_many(delivery_publishes(topics, results, svc.users.bots))
            if previews is not None:  # a text's link is previewed after its deliveries, as a send's
                for r in results:
                    m = r.message
                    job = previews.job(m.id, m.conv, m.seq, m.sender, m.text, r.recipients) \
                        if m.type == "text" and m.text and "https://" in m.text else None
                    if job is not None:
                        previews.request(job)

        async def step() -> int:
            outcomes = await scheduled.deliver_due(deliver)
            await bridge.publish_many(outcome_publishes(topics, outcomes))
            return len(outcomes)

        leased = self.leased("scheduled", step)
        self.tasks.spawn("imgate.scheduled", lambda: scheduled.run(leased, self.settings.limits.schedule_poll_s),
                         restart=True)


    def _start_expiry(self, svc: Services, bridge: Bridge, dispatcher: Dispatcher) -> None:
        """The sweep of disappearing messages (services/messages/expiry.py) where a bridge tells
        the members (imgate run, each imgate bridge), under a lease: one process of a cluster
        sweeps; another takes over within the lease of its death. Driven by the database, so
        what came due while no process ran is expired by the first pass."""
        limits = self.settings.limits

        async def step() -> int:
            expired = await svc.messages.expiry.expire_due(limits.expiry_batch)
            await svc.reactions.clear_many([i for e in expired for i, _ in e.messages])
            await bridge.publish_many(await dispatcher.expired_publishes(expired))
            return sum(len(e.messages) for e in expired)

        sweep = self.leased("expiry", step)
        self.tasks.spawn("imgate.messages.expiry", lambda: self._work_loop(
            "the expiry of disappearing messages", sweep, limits.expiry_batch, limits.expiry_interval_s), restart=True)

    def leased(self, consumer: str, step: Callable[[], Awaitable[int]]) -> Callable[[], Awaitable[int]]:
        """``step`` (a pass over the message-event queue as ``consumer``), run only while this
        process holds the consumer's lease (``EventQueue.lease``): of N worker processes, one
        follows each consumer and the others stand by, taking over within ``_LEASE_MS`` of a
        holder's death. The lease is renewed in the database only once a third of it is gone."""
        assert self.services is not None
        events, clock = self.services.events, self.clock
        held_until = 0

        async def guarded() -> int:
            nonlocal held_until
            now = clock.now_ms()
            if held_until - now < _LEASE_MS * 2 // 3:
                if not await events.lease(consumer, self.holder, now, _LEASE_MS):
                    held_until = 0
                    return 0
                held_until = now + _LEASE_MS
            return await step()

        return guarded

    @staticmethod
    async def _work_loop(name: str, step: Callable[[], Awaitable[int]], full: int, interval: float) -> None:
        """Run ``step`` again at once while it takes full batches (``full`` events: more may be
        waiting), else wait ``interval``; forever. So a busy server takes the queue in batches,
        not in a pass per message (each pass costs its reads and its offset write, on the same
        core as the message path). A failing pass is logged and retried (e.g. an index or
        provider outage: it catches up later); an outage the service reports (ImError) is logged
        once when it starts and once when it ends."""
        down = False
        while True:
            try:
                while await step() >= full:
                    pass
                if down:
                    log.warning("%s: back to normal", name)
                    down = False
            except asyncio.CancelledError:
                raise
            except ImError as exc:
                if not down:
                    log.warning("%s: %s; retrying every %.1f s", name, exc.message, interval)
                down = True
            except Exception:
                log.exception("%s pass failed; retrying", name)
            await asyncio.sleep(interval)  # a polling interval for new work, not synchronisation

    async def _start_web(self) -> AttachmentService | None:
        """The attachment service, and (``imgate run``, ``web.enabled``) the web listener serving
        the chat page and the embedded store's files. Attachments are off (``unavailable``) on the
        embedded store without the web listener, and in cluster mode without S3."""
        from imgate.web import UploadPace, UploadSlots, WebContext, build_web_app, origin

        s = self.settings
        if s.files.backend == "embedded" and not (self.role == "all" and s.web.enabled):
            log.warning("attachments off: the embedded file store needs the web listener (web.enabled, "
                        "imgate run); cluster mode needs files.backend = \"s3\"")
            return None
        if not (self.role == "all" and s.web.enabled):
            return await open_attachments(s, self.clock, "")
        from broker.server import raise_file_limit
        from imgate.http import EmbeddedHttpServer
        from imgate.webconn import WebGuard, uvicorn_options

        def mqtt_url(host: str) -> str | None:
            if s.web.mqtt_url:
                return s.web.mqtt_url
            if self.broker is None or not any(spec.kind in ("ws", "wss") for spec in self.broker.specs):
                return None
            kind: ListenerKind = "wss" if any(spec.kind == "wss" for spec in self.broker.specs) else "ws"
            return f"{kind}://{host}:{self.broker.port_of(kind)}{s.mqtt.ws_path}"

        limits = {"max_attachment_bytes": s.limits.max_attachment_bytes, "max_text": s.limits.max_text,
                  "min_ttl_s": s.limits.min_ttl_s, "max_ttl_s": s.limits.max_ttl_s}  # (the page's ttl choices)
        w = s.web
        ctx = WebContext(self.clock, mqtt_url, s.mqtt.topic_prefix, limits,
                         slots=UploadSlots(w.max_uploads, w.max_uploads_per_user),
                         pace=UploadPace(w.min_upload_rate, w.upload_rate_window_s))
        raise_file_limit()  # as the broker does (later), before the web listener sizes itself under it
        guard = WebGuard.plan(max_connections=w.max_connections, fd_reserve=w.fd_reserve,
                              header_timeout_s=w.header_timeout_s)
        self.web = EmbeddedHttpServer(build_web_app(ctx, chat_page=s.web.chat_page), s.web.host, s.web.port,
                                      name="web listener", setting="web.port",
                                      **uvicorn_options(guard, w.idle_timeout_s))
        self.tasks.spawn("imgate.web.http", self.web.serve)
        await self.web.started()
        public = s.web.public_url or f"http://{s.web.host}:{self.web.port}"
        ctx.files_origins = " ".join(dict.fromkeys(origin(u) for u in (
            public, s.files.s3_public_endpoint_url or s.files.s3_endpoint_url or (
                "https://*.amazonaws.com" if s.files.backend == "s3" else None)) if u))
        attachments = await open_attachments(s, self.clock, public)
        ctx.attachments = attachments
        log.info("web listener on http://%s:%d%s", s.web.host, self.web.port,
                 " (the web chat page at /)" if s.web.chat_page else "")
        return attachments

    async def _start_admin(self) -> None:
        s, svc = self.settings, self.services
        assert svc is not None
        if not s.admin.secret:
            log.info("admin API off (no admin.secret)")
            return
        from imgate.admin import AdminContext, build_admin_app
        from imgate.http import EmbeddedHttpServer

        async def exposition() -> bytes:
            return self.telemetry.render(await self.metrics())

        search = self.search
        if search is None and self.role == "api" and s.search.backend != "embedded":
            # imgate api indexes nothing, but an erasure removes the user's messages from a shared
            # index at once (the workers' indexer would, as it follows the tombstones' events).
            search = build_search(s, svc)
            self._stack.callback(search.close)
        self.privacy = build_privacy(s, svc, search, self.clock)
        await asyncio.to_thread(shutil.rmtree, s.data_dir / "exports", True)  # what a crash left mid-export
        ctx = AdminContext(users=svc.users, kick=self._kick, health=self._health, metrics=exposition,
                           notify=self._notify, external_auth=self._external_auth(), blocks=svc.blocks,
                           profiles=svc.profiles, attachments=svc.attachments, presence=svc.presence,
                           connections=self.connections, stats=self.stats, audit=svc.audit,
                           trusted_proxies=list(s.admin.trusted_proxies), groups=svc.groups,
                           group_changed=self._group_changed, bots=await self._bot_actions(svc),
                           privacy=self.privacy, exports_dir=s.data_dir / "exports")
        # proxy_headers off: uvicorn would take X-Forwarded-For from any local peer as the client's
        # address; the audit log trusts it only from admin.trusted_proxies (imgate/audit.py).
        self.admin = EmbeddedHttpServer(build_admin_app(ctx, s.admin.secret), s.admin.host, s.admin.port,
                                        setting="admin.port", proxy_headers=False)
        self.tasks.spawn("imgate.admin.http", self.admin.serve)
        await self.admin.started()
        log.info("admin API on http://%s:%d", s.admin.host, self.admin.port)

    async def _bot_actions(self, svc: Services) -> BotActions:
        """What the admin API does as a bot (imgate/bots.py): in ``imgate run`` through the
        bridge (its dispatcher, its buckets, its transport); in ``imgate api`` with a dispatcher
        and buckets of its own, delivering through an AMQP publisher (``amqp.url``), else stored
        only (devices get the messages when they sync)."""
        from imgate.bots import BotActions

        s = self.settings
        topics = im_topics(s)
        router = Router(topics, max_payload=s.limits.max_payload, max_text=s.limits.max_text)
        if self.bridge is not None:
            return BotActions(svc.users, self.bridge.dispatcher, router, self.bridge.throttle, self.bridge.publish_many)
        dispatcher = Dispatcher(topics, messages=svc.messages, conversations=svc.conversations,
                                presence=svc.presence, groups=svc.groups, clock=self.clock,
                                group_receipts_max=s.limits.group_receipts_max, reactions=svc.reactions,
                                blocks=svc.blocks, profiles=svc.profiles, contacts=svc.contacts,
                                attachments=svc.attachments, scheduled=svc.scheduled, bots=svc.users.bots,
                                before=await self._start_before(svc))  # a bot's send asked as a device's
        throttle = Throttle(topics, self.clock, rate_limits(s.limits), svc.users.bots)
        publish: Callable[[list[Publish]], Awaitable[None]] | None = None
        if s.amqp.url:
            from bridge.amqp import AmqpPublisher

            publisher = AmqpPublisher(amqp_urls(s), exchange=s.amqp.exchange, timeout=s.bridge.publish_timeout)
            self._stack.push_async_callback(publisher.close)
            trees = EncodingTrees(publisher, topics) if topics.trees else publisher

            async def publish(pubs: list[Publish]) -> None:
                await trees.publish_many([(p.topic, p.payload, p.qos, p.props) for p in pubs])

        return BotActions(svc.users, dispatcher, router, throttle, publish)

    def _external_auth(self) -> ExternalAuth:
        """What RabbitMQ's HTTP auth backend asks (``/auth/rabbitmq/…``): the embedded broker's
        logins and topic ACL; the bridge's own login to the external broker has full access, and
        its client id (``bridge.client_id``, as any ``imgate-…``) is no other account's. A token
        is let in through RabbitMQ only while it outlives the node's auth cache
        (``rabbitmq.auth_cache_ttl_s``) and a margin."""
        s, svc = self.settings, self.services
        assert svc is not None
        internal = {s.broker.username: s.broker.password} if s.broker.username and s.broker.password else {}
        gate = Gate(svc.users, service_accounts(s), internal, reserved_client_ids=(s.bridge.client_id,))
        return ExternalAuth(gate, topic_acl(im_topics(s)), internal=internal,
                            cached_ms=int(s.rabbitmq.auth_cache_ttl_s * 1000), now_ms=self.clock.now_ms)

    async def _notify(self, body: dict[str, Any], uids: list[str] | None) -> tuple[int, int]:
        """Store a system notification and hand it to the devices online now (the others get it
        when they come back). Returns (users, devices reached now)."""
        assert self.services is not None
        stored, deliveries = await self.services.notifications.send(body, uids)
        if self.bridge is None:  # imgate api: stored; each device gets it when it next syncs
            return stored, 0
        await self.bridge.publish_many(self.bridge.dispatcher.notification_publishes(deliveries))
        return stored, len(deliveries)

    async def _group_changed(self, change: GroupChange) -> None:
        """A group change made through the admin API, to its members online now (imgate run);
        imgate api has no bridge: the member event is stored, and each device gets it when it syncs."""
        if self.bridge is None:
            return
        from bridge.rpc import member_event_publishes

        await self.bridge.publish_many(member_event_publishes(self.bridge.dispatcher.topics, change))

    async def _record_callbacks(self, audit: AuditService) -> None:
        """At start: record the callback configuration (``callbacks.config``, its digest as the
        target, never a secret: each endpoint's secret as a fingerprint) when it differs from the
        last one recorded. Every process that reads it does this; the record is conditional, so a
        change is recorded once however many start with it. Nothing configured and nothing ever
        recorded: nothing to say."""
        import hashlib
        import json

        c = self.settings.callbacks
        config: dict[str, Any] = {
            "endpoints": [{"name": e.name, "url": e.url, "events": list(e.events), "timeout_s": e.timeout_s,
                           "on_failure": e.on_failure,
                           "fingerprint": hashlib.sha256(e.secret.encode()).hexdigest()[:12]} for e in c.endpoints],
            "replay_window_s": c.replay_window_s, "allow_http": c.allow_http, "allow": list(c.allow),
            "connect_timeout_s": c.connect_timeout_s, "max_response_bytes": c.max_response_bytes,
        }
        digest = "sha256:" + hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:32]
        if not c.endpoints and not (await audit.page(action="callbacks.config", limit=1)).items:
            return
        from urllib.parse import urlsplit

        def shown(url: str) -> str:  # a token in the query (or a password) is not written down
            u = urlsplit(url)
            return f"{u.scheme}://{u.hostname or ''}{f':{u.port}' if u.port else ''}{u.path}" + ("?…" if u.query else "")

        detail = {**config, "endpoints": [{**e, "url": shown(e["url"])} for e in config["endpoints"]],
                  "process": f"{self.role} {self.holder}"}
        if await audit.record_if_changed("imgate", "callbacks.config", digest, detail, "start-up"):
            log.info("callback configuration %s recorded in the audit log", digest)

    async def _audit_recorder(self, audit: AuditService) -> None:
        """Write what synchronous code queued for the audit log (the SIGHUP handler's reloads)."""
        while True:
            actor, action, target, detail, source = await self._audit_queue.get()
            try:
                await audit.record(actor, action, target, detail, source)
            except Exception:
                log.exception("could not record %s in the audit log", action)

    def _audit_later(self, actor: str, action: str, detail: dict[str, Any], source: str) -> None:
        try:
            self._audit_queue.put_nowait((actor, action, "", detail, source))
        except asyncio.QueueFull:
            log.warning("audit log: %s not recorded (%d entries waiting already)", action, _AUDIT_QUEUE)

    def listening(self) -> str:
        """Where clients connect, for the start-up line."""
        if self.role == "bridge":
            from yarl import URL

            nodes = (URL(u.strip()).with_user(None) for u in (self.settings.amqp.url or "").split(","))
            return f"bridge to RabbitMQ at {', '.join(map(str, nodes))}"
        if self.broker is None:
            return f"bridge to the MQTT broker at {self.settings.broker.host}:{self.settings.broker.port}"
        names = {"tcp": "MQTT", "tls": "MQTT/TLS", "ws": "WebSocket", "wss": "secure WebSocket"}
        host = self.settings.mqtt.host
        parts = [f"{names[s.kind]} on {host}:{self.broker.port_of(s.kind)}"
                 + (self.settings.mqtt.ws_path if s.kind in ("ws", "wss") else "") for s in self.broker.specs]
        if self.web is not None:
            page = "chat page" if self.settings.web.chat_page else "attachments"
            parts.append(f"{page} on {_http_url(self.settings.web.host, self.web.port)}")
        if self.admin is not None:
            parts.append(f"admin API on {_http_url(self.settings.admin.host, self.admin.port)}")
        return ", ".join(parts)

    def reload_tls(self) -> None:
        """SIGHUP: read the TLS certificate and key again (new handshakes use them; live
        connections are kept). A bad pair is logged and the old one stays."""
        if self.broker is None:
            return
        try:
            self.broker.listeners.reload_tls()
            log.info("TLS certificate reloaded")
            detail: dict[str, Any] = {"what": "tls", "ok": True}
        except (ListenerError, OSError, ValueError) as exc:
            log.error("TLS certificate not reloaded: %s", exc)
            detail = {"what": "tls", "ok": False, "error": str(exc)}
        self._audit_later("signal", "settings.reload", detail, "signal")

    async def _start_rabbit(self, svc: Services) -> None:
        """With ``rabbitmq.management_url``: the management API, and a watcher that closes the
        RabbitMQ connections of every revocation or disable logged in the database (made by this
        process, another ``imgate api`` or the CLI) and of every token as it expires, within
        ``broker.auth_poll_interval``. (With several api processes each closes them: harmless.)
        A revoked or disabled device is then in quarantine for RabbitMQ's auth cache TTL: whenever
        it shows up again (a login answered from the cache), it is closed again, as RabbitMQ
        reports it on its event exchange (with ``amqp.url``), else on every pass
        (imgate/rabbitmq.py). An expiry is not quarantined (the devices of a user who refreshed
        their tokens would be closed again and again): the auth backend refuses a token that
        expires within the cache's TTL and a margin, so no cached login outlives its token."""
        r = self.settings.rabbitmq
        if not r.management_url:
            return
        import httpx

        from imgate.rabbitmq import ConnectionWatch, Quarantine, RabbitManagement

        auth = (r.management_username or "", r.management_password or "") if r.management_username else None
        client = await self._stack.enter_async_context(httpx.AsyncClient(base_url=r.management_url, auth=auth,
                                                                         timeout=r.timeout_s))
        rabbit = self.rabbit = RabbitManagement(client)
        quarantine = Quarantine(int(r.auth_cache_ttl_s * 1000))
        watch_events = None
        if self.settings.amqp.url:
            watch_events = self.connection_watch = ConnectionWatch(amqp_urls(self.settings), quarantine,
                                                                   rabbit.close_user, self.clock.now_ms)
            self.tasks.spawn("imgate.rabbitmq.connection-watch", watch_events.run)
        after = await svc.users.last_auth_change_id()
        expired_after = self.clock.now_ms()
        interval = self.settings.broker.auth_poll_interval

        async def watch() -> None:
            nonlocal after, expired_after
            while True:
                await asyncio.sleep(interval)  # a polling interval for the database's log, not synchronisation
                try:
                    for change in await svc.users.auth_changes_since(after):
                        quarantine.add(change.uid, change.device, change.ts)
                        await rabbit.close_user(change.uid, f"{change.kind} (imgate)")
                        after = change.id
                    # Tokens that expired since the last pass (RabbitMQ checks a login only once):
                    # closed once, not quarantined (no cached login of theirs is left by now).
                    now = self.clock.now_ms()
                    expired = await svc.users.expired_between(expired_after, now)
                    for uid in dict.fromkeys(uid for uid, _, _ in expired):
                        await rabbit.close_user(uid, "token expired (imgate)")
                    expired_after = now if len(expired) < 1000 else expired[-1][2]  # a full page: the rest next pass
                    quarantine.prune(now)
                    if watch_events is None:  # no event exchange: close the quarantined users on every pass
                        for uid in quarantine.active(now):
                            await rabbit.close_user(uid, "token revoked (imgate; RabbitMQ's auth cache)")
                except Exception:  # the database or the management API is away: the next pass retries
                    log.exception("closing revoked RabbitMQ connections failed; retrying")

        self.tasks.spawn("imgate.rabbitmq.auth-watch", watch)

    async def _kick(self, uid: str, device: str | None, reason: str) -> int:
        if self.rabbit is not None:  # RabbitMQ as the front: every connection of the user (see imgate.rabbitmq)
            try:
                return await self.rabbit.close_user(uid, reason)
            except Exception:  # the watcher closes them when the management API is back
                log.exception("closing the RabbitMQ connections of %s failed; the watcher retries", uid)
                return 0
        if self.broker is None or self.broker.broker is None:
            return 0  # an external broker: the auth watcher of its own deployment applies it
        # A revocation or a disable is "not authorized any more" (as the auth watcher says it);
        # a plain logout by the admin is an administrative action.
        code = 0x87 if reason in ("user disabled", "token revoked", "account erased") else 0x98
        return await self.broker.broker.kick(uid, device, reason, code)

    async def _health(self) -> dict[str, bool]:
        from tortoise import connections

        try:
            await connections.get("default").execute_query("SELECT 1")
            database = True
        except Exception:
            log.exception("health: database check failed")
            database = False
        checks = {"database": database}
        if self.role in ("all", "bridge"):
            checks["bridge"] = self.tasks.running("imgate.bridge") and self.bridge is not None \
                and self.bridge.ready.is_set()
        if self.broker is not None:
            checks["broker"] = self.broker.serving
        return checks

    async def metrics(self) -> dict[str, float]:
        """Counters (``*_total``) and gauges for /metrics."""
        out: dict[str, float] = {}
        if self.push is not None:
            out["push_outbox_depth"] = await self.push.depth()
        if self.broker is not None and self.broker.broker is not None:
            b = self.broker.broker
            out["connections"] = len(b.connected())
            for name, value in vars_of(b.stats).items():
                out[f"broker_{name}_total"] = value
        if self.bridge is not None:
            out["bridge_backlog"] = self.bridge.backlog
            out["bridge_ingress_waiting_bytes"] = self.bridge.ingress.waiting_bytes
            out["bridge_ingress_refused_total"] = self.bridge.ingress.stats.refused
            out["bridge_rate_limited_total"] = self.bridge.throttle.limited
            out["bridge_error_replies_silenced_total"] = self.bridge.throttle.silenced
            for name, value in vars_of(self.bridge.dispatcher.stats).items():
                out[f"bridge_{name}_total"] = value
            if (before := self.bridge.dispatcher.before) is not None:
                for name, value in vars_of(before.stats).items():
                    out[f"callbacks_before_{name}_total"] = value
        if self.amqp is not None:
            out["bridge_amqp_shards_handed_on_total"] = self.amqp.handovers
            out["bridge_amqp_oversize_dropped_total"] = self.amqp.oversize
        if self.previews is not None:
            for name, value in self.previews.counters().items():
                out[f"previews_{name}_total"] = value
        if self.services is not None:
            out["message_batches_total"] = self.services.messages.batches
        if self.worker is not None:  # counted in the worker process, as it last reported them
            w = self.worker.stats
            for name, value in w.push.items():
                out[f"push_{name}_total"] = value
            out["worker_restarts_total"] = max(0, w.started - 1)
        elif self.push is not None:
            for name, value in vars_of(self.push.stats).items():
                out[f"push_{name}_total"] = value
        if any(e in AFTER_EVENTS for ep in self.settings.callbacks.endpoints for e in ep.events):
            out["callbacks_pending"] = await CallbackOutbox.pending()
            stats = self.worker.stats.callbacks if self.worker is not None else \
                vars_of(self.callbacks.stats) if self.callbacks is not None else {}
            for name, value in stats.items():
                out[f"callbacks_{name}_total"] = value
        if self.search is not None:
            out["search_indexed_total"] = self.worker.stats.search_indexed if self.worker else self.search.indexed
            out["search_backlog"] = await self.search.backlog()
            out["search_up"] = int(self.worker.stats.search_up if self.worker else self.search.available)
        return out

    async def stats(self) -> dict[str, Any]:
        """The operator console's snapshot of this process's own metrics (``GET /v1/stats``):
        the counters and gauges of :meth:`metrics` and the send-ack latency histogram, at ``ts``."""
        return {"ts": self.clock.now_ms(), "role": self.role, "metrics": await self.metrics(),
                "send_ack": self.telemetry.send_ack_buckets()}

    async def connections(self, uid: str | None, limit: int) -> dict[str, Any]:
        """The live connections (``GET /v1/connections``), the first ``limit`` by client id: the
        embedded broker's sessions, or, with no broker of its own (``imgate api``, an external
        broker), the devices the presence table says are online (``source`` tells which)."""
        assert self.services is not None
        if self.broker is None or self.broker.broker is None:
            online, total = await self.services.presence.online_page(uid=uid, limit=limit)
            return {"source": "presence", "total": total, "items": [
                {"client_id": f"{d.uid}:{d.device}", "uid": d.uid, "device": d.device, "platform": d.platform,
                 "since": d.ts} for d in online]}
        live = [(session, link) for session, link in self.broker.broker.connected()
                if uid is None or session.principal.uid == uid]
        first = heapq.nsmallest(limit, live, key=lambda c: c[0].client_id)  # O(n log limit): no full sort
        return {"source": "broker", "total": len(live), "items": [
            {"client_id": session.client_id, "uid": session.principal.uid, "device": session.principal.device,
             "account": session.principal.account, "platform": session.principal.platform,
             "protocol": "5" if session.level == 5 else "3.1.1", "transport": link.transport.kind,
             "remote": link.transport.peer, "since": link.since} for session, link in first]}

    async def _drain(self) -> None:
        """A graceful stop loses nothing the broker acknowledged: first no more clients (so no
        more acknowledgements), then the bridge finishes what it took (bounded)."""
        if self.broker is not None and self.broker.broker is not None:
            try:
                await self.broker.broker.stop_clients()
            except Exception:
                log.exception("closing the client connections failed")
        if self.bridge is not None and self.tasks.running("imgate.bridge"):
            try:
                await asyncio.wait_for(self.bridge.ingress.wait_idle(), _DRAIN_TIMEOUT)
            except TimeoutError:
                log.warning("stopping with %d message(s) not handled (their clients were not acked by imgate "
                            "and send them again)", self.bridge.backlog)

    async def wait(self, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set (or until cancelled); raises ``TaskCrashed`` when a task
        the platform cannot run without fails (imgate/tasks.py)."""
        async with asyncio.TaskGroup() as tg:
            waits = {tg.create_task(self.tasks.failed.wait(), name="imgate.wait.failed")}
            if stop is not None:
                waits.add(tg.create_task(stop.wait(), name="imgate.wait.stop"))
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in waits:
                task.cancel()
        if self.tasks.failure is not None:
            raise self.tasks.failure

    async def _stop(self) -> None:
        try:
            await self._drain()
            for http in (self.admin, self.web):  # a graceful stop: requests in flight finish, ports close
                if http is not None:
                    await http.shutdown()
                    await http.stopped(_DRAIN_TIMEOUT)
            await self.tasks.aclose()  # every task, before the clients, broker and database they use
        finally:
            if self.search is not None:
                self.search.close()
            await self._stack.aclose()


def _http_url(host: str, port: int) -> str:
    """The URL to open: a listener on every address (0.0.0.0, ::) is shown as localhost's."""
    if host in ("0.0.0.0", "::", ""):
        return f"http://127.0.0.1:{port}/ (on every address)"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
