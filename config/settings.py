"""imgate settings: defaults < TOML file < environment (``IMGATE_…``) < command-line overrides.

Each part of the platform gets only its own sub-model. Settings are frozen: read once at
start-up, never mutated. An invalid value fails start-up with a message naming the key.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class ConfigError(Exception):
    """Configuration could not be loaded; the message names the failing key."""


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttSettings(_Part):
    """Where the embedded broker listens, and the topic namespace clients use."""

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=0, le=65535)
    topic_prefix: str = Field("im", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    # Topic trees {topic_prefix}-cbor/... and {topic_prefix}-msgpack/...: a device that publishes
    # and subscribes there reads and writes that encoding (protocol "Encodings"). The way to
    # choose one in cluster mode, where RabbitMQ delivers to the devices and cannot convert per
    # device; each tree costs one more publish of everything the bridges send.
    encoding_trees: list[Literal["cbor", "msgpack"]] = Field(default_factory=list, max_length=2)
    # 1.5 x the client's keep-alive, as MQTT 3.1.1 §3.1.2.10 says; a client with keep-alive 0
    # is only dropped when its socket closes.
    keepalive_grace: float = Field(1.5, ge=1.0, le=10.0)
    # More listeners on the same host (0 picks a free port): MQTT over TLS, over WebSocket
    # (ws://host:ws_port{ws_path}; on by default) and over secure WebSocket, off unless set. The
    # TLS ones need a PEM certificate chain and its unencrypted key (`imgate cert dev` makes a
    # development pair).
    tls_port: int | None = Field(default=None, ge=0, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # WebSocket is on by default (127.0.0.1:8083): the web chat page (``[web]``) connects to it.
    ws_port: int | None = Field(default=8083, ge=0, le=65535)
    wss_port: int | None = Field(default=None, ge=0, le=65535)
    ws_path: str = "/mqtt"

    @field_validator("tls_port", "ws_port", "wss_port", mode="before")
    @classmethod
    def _off(cls, value: Any) -> Any:
        """``"off"`` turns a listener off (the WebSocket one is on by default)."""
        return None if value == "off" else value

    @field_validator("ws_path")
    @classmethod
    def _url_path(cls, value: str) -> str:
        if not re.fullmatch(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/-]{0,254}", value):
            msg = "must be a URL path starting with '/', e.g. /mqtt (no spaces, '?' or '#')"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _listeners(self) -> MqttSettings:
        tls = [name for name in ("tls_port", "wss_port") if getattr(self, name) is not None]
        missing = [name for name in ("tls_cert", "tls_key") if getattr(self, name) is None]
        if tls and missing:
            needs = " and ".join(f"mqtt.{n}" for n in tls) + (" needs" if len(tls) == 1 else " need")
            msg = f"{needs} mqtt.tls_cert and mqtt.tls_key (missing: {', '.join(f'mqtt.{n}' for n in missing)})"
            raise ValueError(msg)
        ports: dict[int, str] = {}
        for name in ("port", "tls_port", "ws_port", "wss_port"):
            port = getattr(self, name)
            if port:  # None: off; 0: a free port each
                if port in ports:
                    msg = f"mqtt.{ports[port]} and mqtt.{name} are both {port}: give each listener its own port"
                    raise ValueError(msg)
                ports[port] = name
        return self


class AccountSettings(_Part):
    """A service account of the embedded broker: a login with mosquitto-style ACL rules
    (``read|write|readwrite|deny FILTER``; ``%u`` = username, ``%c`` = client id)."""

    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=8)
    acl: list[str] = Field(default_factory=list)
    # Its connections' PUBLISH/SUBSCRIBE/UNSUBSCRIBE packets per second (0: unlimited).
    publish_rate: float = Field(0.0, ge=0)

    @field_validator("username")
    @classmethod
    def _not_a_uid(cls, value: str) -> str:
        if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
            msg = "must contain a character a uid cannot have (e.g. 'svc:gateway'), so no user can take it"
            raise ValueError(msg)
        if any(c in value for c in "+#/\x00"):
            msg = "must not contain '+', '#', '/' or NUL (it is substituted for %u in topic filters)"
            raise ValueError(msg)
        return value

    @field_validator("acl")
    @classmethod
    def _rules(cls, value: list[str]) -> list[str]:
        from broker.acl import AclRule

        for rule in value:
            AclRule.parse(rule)
        return value


class BrokerSettings(_Part):
    """The embedded broker, or an external one the bridge connects to."""

    embedded: bool = True
    # External broker (embedded = false): where the bridge connects and how it logs in.
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    # How often revocations / disabled users / expired tokens are checked for live sessions.
    auth_poll_interval: float = Field(0.5, gt=0, le=60)
    # Per session: QoS 1 messages sent and not yet acknowledged, and messages waiting (while the
    # client is away, or its window is full). When the queue is full, drop the oldest or newest.
    # A persistent session (clean session = 0) that is not resumed within this is dropped.
    session_expiry_s: int = Field(7 * 86400, ge=60)
    # A device that connects and disconnects faster than this is announced once per interval.
    presence_min_interval_ms: int = Field(1000, ge=0, le=60_000)
    max_inflight: int = Field(100, ge=1, le=65000)
    max_queued: int = Field(1000, ge=0)
    queue_policy: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    # The same in bytes (topic + payload). A connected client whose queue is full and which has
    # acknowledged nothing for slow_consumer_s is not reading: it is disconnected (a slow consumer)
    # and catches up from history when it comes back.
    max_inflight_bytes: int = Field(1 << 20, ge=1024)
    max_queued_bytes: int = Field(4 << 20, ge=1024)
    slow_consumer_s: float = Field(5.0, ge=0)  # ... whose queue is full and which acks nothing for this long
    # What one user connection may send: PUBLISH/SUBSCRIBE/UNSUBSCRIBE packets per second (bursts
    # of publish_burst; over it, the connection is read more slowly: nothing is dropped; 0: no
    # limit), subscriptions per session, characters of a topic or filter.
    publish_rate: float = Field(100.0, ge=0)
    publish_burst: float = Field(200.0, ge=1)
    max_subscriptions: int = Field(100, ge=1, le=100_000)
    max_topic_length: int = Field(256, ge=16, le=65535)
    # MQTT 5: unacknowledged QoS 1/2 PUBLISHes a client may have (Receive Maximum), topic aliases
    # it may set up, and the longest keep-alive it may ask for (0: its own choice; over it, the
    # CONNACK's Server Keep Alive tells it this one).
    receive_maximum: int = Field(100, ge=1, le=65535)
    topic_alias_maximum: int = Field(16, ge=0, le=1024)
    max_keep_alive: int = Field(0, ge=0, le=65535)
    accounts: list[AccountSettings] = Field(default_factory=list)
    # Login policy: devices of one user online at once (0 = no limit), and per platform class;
    # when a new login would exceed a limit, refuse it (CONNACK 5) or disconnect the oldest
    # device of that class (it gets a notice on {p}/{uid}/in/notify first).
    # Largest MQTT packet a client may send; a bigger one closes its connection. (Messages over
    # limits.max_payload but under this get a too_large ack instead.)
    max_packet_bytes: int = Field(1 << 20, ge=1024, le=256 << 20)
    # Checked before a packet is decoded (over a limit: the connection is closed, MQTT 5 with
    # reason 0x97 quota exceeded; a CONNECT gets CONNACK 0x97): MQTT 5 properties per packet
    # (User Properties included) and their bytes, per packet and per will; topic filters per
    # SUBSCRIBE or UNSUBSCRIBE.
    max_properties: int = Field(32, ge=1, le=65535)
    max_property_bytes: int = Field(8192, ge=64, le=1 << 20)
    max_filters_per_packet: int = Field(64, ge=1, le=65535)
    # A client that does not read what the server answers it (PINGRESPs, acks) is disconnected
    # once this much waits for it (MQTT 5: DISCONNECT 0x97). Deliveries are queued instead (above).
    max_unread_bytes: int = Field(8 << 20, ge=64 << 10)
    # A refused login (bad credentials or client id, a malformed or oversized CONNECT) is answered
    # this much later, so that a client reconnecting at once costs a few logins a second, not
    # thousands (at most max_delayed_refusals wait at once; 0: answered at once).
    refusal_delay_ms: int = Field(1000, ge=0, le=60_000)
    max_delayed_refusals: int = Field(256, ge=0, le=100_000)
    max_devices: int = Field(0, ge=0)
    max_devices_per_class: dict[str, int] = Field(default_factory=dict)
    platform_classes: dict[str, str] = Field(default_factory=lambda: {
        "android": "phone", "ios": "phone", "windows": "desktop", "macos": "desktop", "linux": "desktop",
        "desktop": "desktop", "web": "web"})
    on_device_limit: Literal["refuse", "kick_oldest"] = "refuse"

    @model_validator(mode="after")
    def _unread_fits(self) -> BrokerSettings:
        # What the server itself may legitimately leave unread: a socket's worth of deliveries
        # (1 MiB), the in-flight window sent again on a reconnect, and a large packet on top of each.
        needed = (1 << 20) + self.max_inflight_bytes + 2 * self.max_packet_bytes
        if self.max_unread_bytes < needed:
            msg = (f"broker.max_unread_bytes ({self.max_unread_bytes}) must be at least {needed} "
                   "(1 MiB + broker.max_inflight_bytes + 2 x broker.max_packet_bytes)")
            raise ValueError(msg)
        return self


class BridgeSettings(_Part):
    """The bridge's transport and its worker lanes."""

    # auto: in-process with the embedded broker (no MQTT encoding for the bridge's own traffic),
    # MQTT otherwise. mqtt: always over MQTT, as with an external broker.
    transport: Literal["auto", "mqtt"] = "auto"
    # Not {uid}:{device}-shaped: the embedded broker refuses a user's client id from a service account.
    client_id: str = Field("imgate-bridge", min_length=1, max_length=128)
    lanes: int = Field(256, ge=1, le=4096)
    # The ingress: one queue per user, served in turn. Per user: messages and bytes waiting, and
    # commands being handled at once; overall: bytes waiting and commands being handled. A user
    # whose queue is full is not read until it has room (back-pressure; nothing is dropped).
    ingress_user_items: int = Field(100, ge=1)
    ingress_user_bytes: int = Field(1 << 20, ge=1024)
    ingress_user_inflight: int = Field(32, ge=1)
    ingress_total_bytes: int = Field(64 << 20, ge=1 << 16)
    ingress_max_inflight: int = Field(4096, ge=1)
    incoming_queue: int = Field(10000, ge=1)  # the MQTT transport's client queue (unacknowledged messages)
    max_inflight: int = Field(200, ge=1, le=65535)
    publish_timeout: float = Field(10.0, gt=0)
    # With several bridges on an external broker: MQTT shared subscriptions ($share/{group}/…).
    shared_group: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,32}$")


class DatabaseSettings(_Part):
    """``sqlite:///path`` (default: ``{data_dir}/imgate.db``) or ``postgres://…``."""

    url: str | None = None

    @field_validator("url")
    @classmethod
    def _supported(cls, value: str | None) -> str | None:
        if value is not None and value.partition("://")[0].lower() not in ("sqlite", "postgres", "postgresql"):
            scheme = value.partition("://")[0][:20] if "://" in value else value[:20]
            msg = f"unsupported database {scheme!r}: use sqlite://PATH or postgres://USER@HOST:PORT/DB"
            raise ValueError(msg)
        return value
    # SQLite durability: every acked message is committed with fsync (WAL, synchronous=FULL).
    sqlite_synchronous: Literal["FULL", "EXTRA", "NORMAL"] = "FULL"
    sqlite_busy_timeout_ms: int = Field(5000, ge=0)


class LimitSettings(_Part):
    """Sizes the server accepts from clients."""

    max_payload: int = Field(16 * 1024, ge=256, le=16 * 1024 * 1024)
    max_text: int = Field(8000, ge=1)
    max_group_members: int = Field(1000, ge=2, le=100_000)
    recall_window_s: int = Field(120, ge=0)  # senders recall within this; group admins any time
    edit_window_s: int = Field(900, ge=0)  # senders edit their text messages within this
    typing_per_second: float = Field(2.0, gt=0)  # per user; more typing events are dropped
    group_receipts_max: int = Field(20, ge=0)  # groups up to this size send read receipts to all members
    mention_all_per_minute: int = Field(3, ge=1, le=1000)  # @all mentions per group in any minute; beyond: rate_limited
    max_pins: int = Field(50, ge=1, le=1000)  # pinned messages per conversation; one more is too_large
    max_scheduled: int = Field(100, ge=1, le=10_000)  # a user's pending scheduled sends; one more is too_large
    max_schedule_days: int = Field(30, ge=1, le=366)  # how far ahead a send may be scheduled; beyond: bad_request
    schedule_poll_s: float = Field(1.0, gt=0, le=60)  # how often due scheduled sends are looked for (at most)
    # Disappearing messages: the ttl a conversation may have (s; 0 turns it off), and the sweep
    # that expires them (a pass every expiry_interval_s, at most expiry_batch a transaction).
    min_ttl_s: int = Field(3600, ge=1)
    max_ttl_s: int = Field(90 * 86400, ge=1, le=10 * 365 * 86400)
    expiry_interval_s: float = Field(5.0, gt=0, le=3600)
    expiry_batch: int = Field(500, ge=1, le=10_000)
    # Per user, token buckets (a rate per second and a burst): over a limit a send is acked and an
    # RPC answered with rate_limited and retry_after_ms, and is not carried out.
    messages_per_s: float = Field(20.0, gt=0)
    messages_burst: int = Field(50, ge=1)
    # A bot's messages (MQTT and the admin API's sends as the bot): its own bucket, set per bot
    # (POST /v1/bots), else these (docs/bots.md). Every process reads the bots again each bots_refresh_s.
    bot_messages_per_s: float = Field(5.0, gt=0)
    bot_messages_burst: int = Field(20, ge=1)
    bots_refresh_s: float = Field(5.0, gt=0, le=3600)
    rpcs_per_s: float = Field(20.0, gt=0)  # every RPC (read markers: a bucket of their own, as large)
    rpcs_burst: int = Field(50, ge=1)
    searches_per_s: float = Field(2.0, gt=0)  # search RPCs, on top of rpcs_per_s
    searches_burst: int = Field(5, ge=1)
    push_registers_per_s: float = Field(0.2, gt=0)  # push.register RPCs, on top of rpcs_per_s
    push_registers_burst: int = Field(10, ge=1)
    error_replies_per_s: float = Field(5.0, gt=0)  # error answers to bad input; beyond this they are not sent
    error_replies_burst: int = Field(20, ge=1)
    max_attachment_bytes: int = Field(25 << 20, ge=1024, le=5 << 30)  # one uploaded file (file.upload)

    @model_validator(mode="after")
    def _ttl_bounds(self) -> LimitSettings:
        if self.min_ttl_s > self.max_ttl_s:
            msg = "limits.min_ttl_s must not be above limits.max_ttl_s (disappearing messages)"
            raise ValueError(msg)
        return self


class MessagingSettings(_Part):
    """Who may message whom in 1:1: ``open`` (anyone) or ``contacts`` (users who are contacts:
    one sent ``contact.request``, the other accepted; as OpenIM's friend mode)."""

    policy: Literal["open", "contacts"] = "open"


class FileSettings(_Part):
    """Attachments (protocol §3, attachments): where the bytes live and how long URLs and unsent
    uploads last. ``embedded``: files under ``data_dir/files``, uploaded to and downloaded from
    the web listener (``[web]``); ``s3``: an S3-compatible bucket (AWS S3, MinIO, Ceph) with
    presigned URLs (cluster mode needs it: every bridge signs, no bridge holds the files)."""

    backend: Literal["embedded", "s3"] = "embedded"
    upload_ttl_s: int = Field(900, ge=10, le=7 * 86400)  # an upload URL's validity
    download_ttl_s: int = Field(3600, ge=10, le=7 * 86400)  # a download URL's validity
    orphan_after_s: int = Field(86400, ge=60)  # an upload no message (or avatar) uses is deleted after this
    sweep_interval_s: float = Field(600.0, gt=0)  # how often unused uploads are looked for
    max_pending: int = Field(100, ge=1, le=100_000)  # per user: uploads not yet used by a message
    daily_bytes: int = Field(1 << 30, ge=1024)  # per user: bytes of uploads declared in 24 hours
    # The embedded store's URL-signing key (HMAC-SHA256); default: a random key kept in
    # data_dir/files/.signing-key (0600). Set it when several processes sign for one listener.
    signing_secret: str | None = Field(None, min_length=32)
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None  # MinIO, Ceph...; default: AWS
    s3_public_endpoint_url: str | None = None  # the endpoint in URLs given to clients, when it differs
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None  # default: the AWS credential chain (env, profile, role)
    s3_secret_access_key: str | None = None  # prefer IMGATE_FILES__S3_SECRET_ACCESS_KEY
    s3_prefix: str = Field("", pattern=r"^[A-Za-z0-9/_.-]{0,128}$")  # keys are stored under this prefix

    @model_validator(mode="after")
    def _s3(self) -> FileSettings:
        if self.backend == "s3" and not self.s3_bucket:
            msg = "files.backend = \"s3\" needs files.s3_bucket"
            raise ValueError(msg)
        if self.orphan_after_s <= self.upload_ttl_s + 60:  # a PUT may end a minute after its URL expired
            msg = ("files.orphan_after_s must be longer than files.upload_ttl_s and a minute "
                   "(or uploads in flight are swept)")
            raise ValueError(msg)
        return self


class WebSettings(_Part):
    """imgate's own web listener (``imgate run``): the web chat page at ``/`` and the embedded
    attachment store's uploads and downloads (``/files/…``). On by default, on 127.0.0.1."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8090, ge=0, le=65535)  # 0 picks a free port
    chat_page: bool = True  # false: only /files (the attachments), no page
    # The base URL clients reach this listener at (in upload and download URLs), e.g.
    # https://chat.example.com behind a TLS proxy; default http://host:port.
    public_url: str | None = Field(None, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    # What the page's MQTT.js connects to; default ws://{mqtt.host}:{mqtt.ws_port}{mqtt.ws_path}.
    mqtt_url: str | None = Field(None, pattern=r"^wss?://\S+$")
    # Connections (issue 24): a request's line and headers must arrive within header_timeout_s;
    # a connection with no request running is closed after idle_timeout_s without a byte (uvicorn's
    # timeout_keep_alive, applied from the accept on too), and one the server has waited as long to
    # write to (the client takes none of its answer). At most max_connections at once, fewer
    # when the open-files limit is small (more wait in the backlog); and none kept while the process
    # has fewer than fd_reserve file descriptors left under RLIMIT_NOFILE (they stay for MQTT clients).
    header_timeout_s: float = Field(10.0, gt=0, le=300)
    idle_timeout_s: int = Field(5, ge=1, le=3600)
    max_connections: int = Field(512, ge=1, le=1_000_000)
    fd_reserve: int = Field(256, ge=0, le=1_000_000)
    # Uploads (PUT /files): at most max_uploads at once, max_uploads_per_user of one user; a PUT
    # bringing fewer than min_upload_rate bytes/s over upload_rate_window_s, or unfinished its size at
    # that rate and a window after it began, is cut (0: no floor).
    max_uploads: int = Field(64, ge=1, le=100_000)
    max_uploads_per_user: int = Field(4, ge=1, le=100_000)
    min_upload_rate: int = Field(1024, ge=0, le=1 << 30)
    upload_rate_window_s: float = Field(30.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _uploads_fit(self) -> WebSettings:
        if self.max_uploads_per_user > self.max_uploads:
            msg = f"web.max_uploads_per_user ({self.max_uploads_per_user}) exceeds web.max_uploads ({self.max_uploads})"
            raise ValueError(msg)
        if self.max_uploads > self.max_connections:
            msg = f"web.max_uploads ({self.max_uploads}) exceeds web.max_connections ({self.max_connections})"
            raise ValueError(msg)
        return self


class AdminSettings(_Part):
    """The admin HTTP API: off unless a secret is set."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    secret: str | None = Field(None, min_length=16, description="Bearer secret; at least 16 characters")
    # Proxies in front of the admin API (addresses or networks, "10.0.0.0/8"): a request from one
    # is recorded in the audit log from its X-Forwarded-For address; from any other peer, the
    # header is ignored (anyone could write it).
    trusted_proxies: list[str] = Field(default_factory=list, max_length=64)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for v in value:
            try:
                ipaddress.ip_network(v, strict=False)
            except ValueError:
                raise ValueError(f"not an address or network: {v!r}") from None
        return value


class RabbitMqSettings(_Part):
    """RabbitMQ as the MQTT front (its HTTP auth backend asks ``imgate api``): its management API,
    through which imgate closes the live connections of a user whose token is revoked or who is
    disabled (RabbitMQ itself re-checks a connection only on its next login). Off when no URL."""

    management_url: str | None = None  # e.g. http://127.0.0.1:15672
    management_username: str | None = None  # a user with the "administrator" or "monitoring" tag
    management_password: str | None = None
    timeout_s: float = Field(5.0, gt=0, le=60)
    # RabbitMQ's auth_cache.cache_ttl, in seconds (0: no cache in front of the HTTP backend). For this
    # long (and 2 s more) after a revocation or a disable, a connection of the device that shows up
    # (its login answered from the cache) is closed again (imgate/rabbitmq.py); a token that expires
    # within it (and 2 s) is refused at login. At least the nodes' cache_ttl: config/rabbitmq/*.conf
    # ship 15 s.
    auth_cache_ttl_s: float = Field(15.0, ge=0, le=3600)


class AmqpSettings(_Part):
    """Cluster mode (``imgate bridge``): the bridge consumes the clients' ``out`` traffic from
    RabbitMQ over AMQP instead of subscribing over MQTT. ``url`` turns it on; without credentials
    in it the bridge logs in with ``broker.username`` / ``broker.password`` (the account the auth
    backend, ``imgate api``, lets do anything). Every bridge of one deployment must use the same
    ``shards`` and ``queue_prefix``: the consistent-hash exchange spreads the senders over that
    many quorum queues, each consumed by one bridge at a time (single active consumer).
    ``url`` may list several nodes of one RabbitMQ cluster, comma-separated: a bridge connects to
    the first that answers, in order, and after a lost connection tries the next one first."""

    # e.g. amqp://rabbit1:5672/%2F, or amqp://rabbit1:5672/,amqp://rabbit2:5672/,amqp://rabbit3:5672/
    url: str | None = Field(None, pattern=r"^amqps?://[^,\s]+(\s*,\s*amqps?://[^,\s]+)*$")
    exchange: str = Field("amq.topic", min_length=1, max_length=255)  # RabbitMQ's mqtt.exchange
    queue_prefix: str = Field("imgate", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    shards: int = Field(8, ge=1, le=256)
    prefetch: int = Field(128, ge=1, le=65535)  # unacknowledged deliveries per shard a bridge holds
    # Each shard queue's bounds: when one is full RabbitMQ refuses what is published to it (an MQTT
    # client gets no PUBACK and keeps the message: back-pressure, nothing lost), e.g. while no bridge runs.
    max_queue_messages: int = Field(100_000, ge=100)
    max_queue_bytes: int = Field(256 << 20, ge=1 << 20)
    membership_interval_s: float = Field(2.0, gt=0, le=60)  # bridges' heartbeat (shard balancing)


class PushSettings(_Part):
    """Offline push. A provider is on when it is configured."""

    policy: Literal["tickle", "preview"] = "tickle"  # tickle: conversation and seq only
    preview_chars: int = Field(100, ge=0, le=1000)
    max_attempts: int = Field(8, ge=1, le=100)
    interval_s: float = Field(1.0, gt=0, le=60)  # how often the worker looks for work
    fcm_service_account_file: Path | None = None
    fcm_base_url: str = "https://fcm.googleapis.com"
    webhook_secret: str | None = Field(None, min_length=16)
    apns_key_file: Path | None = None  # the .p8 token-signing key; turns APNs on
    apns_key_id: str = ""
    apns_team_id: str = ""
    apns_topic: str = ""  # the app's bundle id
    apns_base_url: str = "https://api.push.apple.com"
    # Limits and fairness: sends run concurrently, each cut at timeout_s, at most
    # per_host_concurrency at once to one webhook host.
    max_targets_per_user: int = Field(10, ge=1, le=1000)  # all platforms together; beyond: too_large
    concurrency: int = Field(64, ge=1, le=10_000)  # sends in flight at once
    per_host_concurrency: int = Field(4, ge=1, le=10_000)  # webhook sends in flight to one host name
    timeout_s: float = Field(3.0, gt=0, le=60)  # one send, everything included
    connect_timeout_s: float = Field(1.0, gt=0, le=60)  # connecting (TCP and TLS) to a provider or webhook
    # Webhook targets (SSRF guard): https only, and only hosts whose every address is public,
    # checked at registration and again at connect time, unless listed here: host names
    # ("hooks.corp.example", "*.corp.example": trusted whatever they resolve to) and networks
    # ("10.0.0.0/8", "fd00::/8", "127.0.0.1").
    webhook_allow_http: bool = False
    webhook_allow: list[str] = Field(default_factory=list)

    @field_validator("webhook_allow")
    @classmethod
    def _allowlist(cls, value: list[str]) -> list[str]:
        from services.netguard import parse_allowlist

        parse_allowlist(value)
        return value


class PreviewSettings(_Part):
    """Link previews (docs/protocol.md §6, ``preview``): the server GETs the first https link of a
    text message, through the webhooks' SSRF guard (public addresses only, checked again at
    connect time, every redirect too; no proxy, no cookies), and sends its title, description
    and image URL to the members who got the message. In cluster mode each ``imgate bridge``
    fetches for the messages it handles, with its own cache and buckets."""

    enabled: bool = True  # off: no link of a message is ever fetched
    images: bool = True  # give the page's image URL (clients that load it show the viewer's IP to its host)
    timeout_s: float = Field(5.0, gt=0, le=60)  # one preview, redirects included
    connect_timeout_s: float = Field(2.0, gt=0, le=60)
    max_bytes: int = Field(256 * 1024, ge=1024, le=16 << 20)  # of a page read (and parsed); the rest is not
    max_redirects: int = Field(3, ge=0, le=10)
    max_url: int = Field(2048, ge=16, le=8192)  # a longer link is not previewed
    user_per_s: float = Field(0.2, gt=0, le=1000)  # fetches a user's messages may cause (cached links cost none)
    user_burst: int = Field(5, ge=1, le=10_000)
    global_per_s: float = Field(10.0, gt=0, le=100_000)  # fetches of the whole process
    global_burst: int = Field(50, ge=1, le=100_000)
    concurrency: int = Field(8, ge=1, le=1000)  # fetches at once
    queue: int = Field(1000, ge=1, le=1_000_000)  # waiting previews; beyond: dropped (counted)
    cache_entries: int = Field(10_000, ge=1, le=10_000_000)
    cache_bytes: int = Field(8 << 20, ge=1024, le=1 << 30)
    ttl_s: float = Field(3600.0, gt=0, le=7 * 86400)  # a preview is kept this long
    negative_ttl_s: float = Field(60.0, ge=0, le=86400)  # a link that gave none is not fetched again for this long
    # Intranet exceptions to the public-address rule, as push.webhook_allow: host names
    # ("wiki.corp.example", "*.corp.example") and networks ("10.0.0.0/8").
    allow: list[str] = Field(default_factory=list)
    ca_file: Path | None = None  # extra CA certificates (PEM) to trust, e.g. an intranet's, besides the public ones

    @field_validator("allow")
    @classmethod
    def _allowlist(cls, value: list[str]) -> list[str]:
        from services.netguard import parse_allowlist

        parse_allowlist(value)
        return value


class CallbackEndpoint(_Part):
    """One receiver of integration callbacks (docs/callbacks.md): imgate POSTs JSON to ``url``,
    signed with ``secret`` (header ``Imgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
    "<t>.<body>">``; receivers refuse a ``t`` older than ``callbacks.replay_window_s``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    url: str = Field(max_length=2048)
    secret: str = Field(min_length=16, max_length=256)
    # before_send (1:1 and group messages), before_edit, before_profile: the answer decides
    # (allow, refuse with a code, replace); after_send, after_edit, after_recall, membership,
    # user: at least once, from the durable outbox, in order per conversation.
    events: list[Literal["before_send", "before_edit", "before_profile", "after_send", "after_edit",
                         "after_recall", "membership", "user"]] = Field(min_length=1)
    timeout_s: float = Field(2.0, gt=0, le=30)  # a before_* answer; an outbox POST
    on_failure: Literal["allow", "refuse"] = "allow"  # before_*: no valid answer in time (fail open or closed)


class CallbackOutboxSettings(_Part):
    """The delivery of the ``after_*``, ``membership`` and ``user`` events from the outbox
    (docs/callbacks.md, "After"), by the worker: per endpoint, one conversation's events one at a
    time in order, at most ``concurrency`` conversations at once."""

    poll_s: float = Field(0.5, gt=0, le=60)  # how often the sender looks for new events
    batch: int = Field(100, ge=1, le=10_000)  # events one pass starts at most (per endpoint)
    concurrency: int = Field(4, ge=1, le=256)  # POSTs in flight to one endpoint
    retry_base_ms: int = Field(1000, ge=10, le=3_600_000)  # back-off after a failure, doubling, with jitter
    retry_max_ms: int = Field(300_000, ge=10, le=86_400_000)  # the longest back-off
    max_attempts: int = Field(20, ge=1, le=1000)  # then the event is given up (logged, counted)
    max_age_s: int = Field(86_400, ge=1, le=30 * 86_400)  # an event older than this is given up at its next failure
    # Events waiting per endpoint: beyond it the oldest are dropped (logged, counted) so a dead
    # endpoint cannot fill the database.
    max_pending: int = Field(10_000, ge=10, le=10_000_000)


class CallbackSettings(_Part):
    """Integration callbacks (docs/callbacks.md). None configured: the send path never waits."""

    endpoints: list[CallbackEndpoint] = Field(default_factory=list, max_length=16)
    replay_window_s: int = Field(300, ge=10, le=86400)  # documented for receivers: refuse older signatures
    # The outbound guard (services.netguard) as for push webhooks: https only and public addresses
    # only, checked again at connect time, unless listed here ("hooks.corp.example", "10.0.0.0/8").
    allow_http: bool = False
    allow: list[str] = Field(default_factory=list)
    connect_timeout_s: float = Field(1.0, gt=0, le=60)
    max_response_bytes: int = Field(64 * 1024, ge=1024, le=1 << 20)
    outbox: CallbackOutboxSettings = CallbackOutboxSettings()

    @field_validator("allow")
    @classmethod
    def _allowlist(cls, value: list[str]) -> list[str]:
        from services.netguard import parse_allowlist

        parse_allowlist(value)
        return value

    @model_validator(mode="after")
    def _one_decider(self) -> CallbackSettings:
        names = [e.name for e in self.endpoints]
        if len(set(names)) != len(names):
            raise ValueError("callbacks.endpoints: two endpoints have one name")
        for event in ("before_send", "before_edit", "before_profile"):
            if sum(event in e.events for e in self.endpoints) > 1:
                raise ValueError(f"callbacks.endpoints: more than one endpoint takes {event}; one decides")
        return self


class WorkerSettings(_Part):
    """Where the background work runs: push fan-out and sending, search indexing."""

    # "process": a child process (``imgate worker``) on the other core, supervised by
    # ``imgate run``; "inline": tasks in the server's own event loop (one process).
    mode: Literal["process", "inline"] = "process"


class SearchSettings(_Part):
    """History search: the embedded SQLite FTS5 engine (in data_dir), a table of the PostgreSQL
    database, or Meilisearch. Cluster mode needs one every process reaches: postgres or meilisearch."""

    backend: Literal["embedded", "postgres", "meilisearch"] = "embedded"
    interval_s: float = Field(1.0, gt=0, le=60)  # how often the indexer looks for new messages
    batch: int = Field(500, ge=1, le=10_000)  # messages per indexing step
    meili_url: str = "http://127.0.0.1:7700"
    meili_api_key: str | None = None  # a key with search and document/settings/task rights
    meili_index: str = Field("imgate_messages", pattern=r"^[A-Za-z0-9_-]{1,400}$")
    meili_timeout_s: float = Field(5.0, gt=0, le=300)  # per HTTP request


class PrivacySettings(_Part):
    """Data export and erasure (docs/privacy.md)."""

    # What an erasure does to the messages the user sent: "tombstone" replaces each by a
    # tombstone (type recalled, data {"erased": true}); "keep" leaves them for the others.
    erase_messages: Literal["tombstone", "keep"] = "tombstone"
    max_exports: int = Field(2, ge=1, le=64)  # exports running at once per process; more: rate_limited


class Settings(BaseSettings):
    """All of imgate's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="IMGATE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Path("data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # uvloop (libuv, in C) costs the broker ~15% less CPU per message than asyncio's own loop
    # (bench/RESULTS.md, issue 13); "asyncio" is the fallback where uvloop cannot be installed.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    mqtt: MqttSettings = MqttSettings()
    broker: BrokerSettings = BrokerSettings()
    bridge: BridgeSettings = BridgeSettings()
    database: DatabaseSettings = DatabaseSettings()
    limits: LimitSettings = LimitSettings()
    messaging: MessagingSettings = MessagingSettings()
    admin: AdminSettings = AdminSettings()
    files: FileSettings = FileSettings()
    web: WebSettings = WebSettings()
    rabbitmq: RabbitMqSettings = RabbitMqSettings()
    amqp: AmqpSettings = AmqpSettings()
    push: PushSettings = PushSettings()
    previews: PreviewSettings = PreviewSettings()
    search: SearchSettings = SearchSettings()
    workers: WorkerSettings = WorkerSettings()
    callbacks: CallbackSettings = CallbackSettings()
    privacy: PrivacySettings = PrivacySettings()

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    def database_url(self) -> str:
        """The database URL, defaulting to SQLite in the data directory."""
        if self.database.url:
            return self.database.url
        return f"sqlite://{(self.data_dir / 'imgate.db').resolve()}"


def _describe(exc: ValidationError, path: str | None, environ: Mapping[str, str]) -> str:
    """One line: each invalid key, where it was set (its environment variable when that is set,
    else the file), and what is wrong with it."""
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc) or "(root)"
        # The variable that set it: the key's own, or its section's (a JSON object).
        names = ["IMGATE_" + "__".join(loc[:n]).upper() for n in range(len(loc), 0, -1)]
        env = next((name for name in names if name in {k.upper() for k in environ}), None)
        where = f"env {env}" if env else f"in {path}" if path else f"env {names[0]}"
        if err["type"] == "extra_forbidden":  # a typo, most likely: pydantic says "Extra inputs are not permitted"
            parts.append(f"{key} ({where}): names no setting{_nearest_key(loc)}")
            continue
        parts.append(f"{key} ({where}): {err['msg'].removeprefix('Value error, ')}")
    return "invalid configuration: " + "; ".join(parts)


def _not_json(environ: Mapping[str, str]) -> str:
    """For an environment variable of a list or an object that is not JSON (pydantic-settings names
    only its section): ``: IMGATE_CALLBACKS__ENDPOINTS is not valid JSON``, or ``""``."""
    import json

    bad = []
    for name, value in environ.items():
        if not name.upper().startswith("IMGATE_"):
            continue
        model: Any = Settings
        field = None
        for part in name[len("IMGATE_"):].lower().split("__"):
            field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
            if field is None:
                break
            model = field.annotation
        origin = getattr(model, "__origin__", None)
        if field is None or not (origin in (list, dict) or (isinstance(model, type) and issubclass(model, BaseModel))):
            continue
        try:
            json.loads(value)
        except ValueError:
            bad.append(name.upper())
    return f": {', '.join(sorted(bad))} is not valid JSON" if bad else ""


def _nearest_key(loc: list[str]) -> str:
    """For a key that names no setting (``mqtt.prot`` in the file): ``: did you mean mqtt.port?``,
    or ``""`` when none is near."""
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(part)
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    guess = difflib.get_close_matches(loc[-1], model.model_fields, n=1) if loc else []
    return f": did you mean {'.'.join([*loc[:-1], guess[0]])}?" if guess else ""


def load_settings(config_file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Load settings: defaults < TOML file < environment < ``overrides``.

    The file is ``config_file``, else ``$IMGATE_CONFIG``, else none.

    Raises:
        ConfigError: the file is missing or unreadable, or a value is invalid (names the key).
    """
    _check_environment(os.environ)
    path = config_file or os.environ.get("IMGATE_CONFIG")
    if path is not None and not Path(path).is_file():
        msg = f"config file not found: {path}"
        raise ConfigError(msg)

    class _Loaded(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            del dotenv_settings, file_secret_settings
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(path)))
            return tuple(sources)

    try:
        loaded = _Loaded(**(overrides or {}))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, str(path) if path else None, os.environ)) from exc
    except ValueError as exc:  # e.g. malformed TOML or env JSON
        msg = f"invalid configuration ({path or 'environment'}): {exc}{_not_json(os.environ)}"
        raise ConfigError(msg) from exc
    # Hand out a plain Settings so callers never see the loader subclass.
    return Settings.model_construct(**{name: getattr(loaded, name) for name in Settings.model_fields})


# The listeners `imgate run --port N` moves with MQTT (section, key): each left at its default.
MOVED_WITH_PORT = (("mqtt", "ws_port"), ("web", "port"), ("admin", "port"))


def move_listeners(settings: Settings, port: int) -> Settings:
    """``imgate run --port N`` (``make run PORT=N``): MQTT on N, and every other listener whose port
    is left at its default (WebSocket 8083, the web page 8090, the admin API 8080) moves by as much
    as MQTT did (N - 1883), so a second instance with another ``--port`` starts beside the first.
    A port set in the file or the environment stays where it is, as does a listener that is off
    (the web one disabled, the admin API without a secret); ``--port 0`` gives every moved
    listener a free port of its own.

    Raises:
        ConfigError: a moved port falls outside 1-65535 (names the setting that keeps it).
    """
    shift = port - MqttSettings.model_fields["port"].default
    parts: dict[str, Any] = {"mqtt": {"port": port}}
    off = {("web", "port"): not settings.web.enabled, ("admin", "port"): not settings.admin.secret}
    for section, key in MOVED_WITH_PORT:
        part = getattr(settings, section)
        default = type(part).model_fields[key].default
        if key in part.model_fields_set or getattr(part, key) != default or off.get((section, key)):
            continue  # set, or a listener that is off (the web one disabled, the admin API without a secret)
        moved = 0 if port == 0 else default + shift
        if port and not 0 < moved <= 65535:
            env = f"IMGATE_{section.upper()}__{key.upper()}"
            msg = (f"--port {port} would move {section}.{key} from {default} to {moved}, outside 1-65535: "
                   f"choose a --port nearer 1883, or set {section}.{key} / {env}")
            raise ConfigError(msg)
        parts.setdefault(section, {})[key] = moved
    return settings.model_copy(update={section: getattr(settings, section).model_copy(update=values)
                                       for section, values in parts.items()})


def _check_environment(environ: Mapping[str, str]) -> None:
    """An ``IMGATE_{SECTION}__{KEY}`` variable that names no setting is a typo (``IMGATE_WEBB__PORT``):
    said, with the nearest setting, instead of silently ignored.

    Raises:
        ConfigError: the first such variable.
    """
    sections = {name: field.annotation for name, field in Settings.model_fields.items()
                if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)}
    for key in environ:
        upper = key.upper()
        if not upper.startswith("IMGATE_"):
            continue
        if "__" not in upper:
            _check_single_underscore(key, sections)
            continue
        section, _, rest = upper[len("IMGATE_"):].partition("__")
        model = sections.get(section.lower())
        if model is None:
            guess = difflib.get_close_matches(section.lower(), sections, n=1)
            hint = f": did you mean IMGATE_{guess[0].upper()}__{rest}?" if guess else \
                f" (sections: {', '.join(sorted(sections))})"
            msg = f"{key} names no setting: there is no section {section.lower()!r}{hint}"
            raise ConfigError(msg)
        field = rest.partition("__")[0].lower()
        if field not in model.model_fields:
            guess = difflib.get_close_matches(field, model.model_fields, n=1)
            hint = f": did you mean IMGATE_{section}__{guess[0].upper()}?" if guess else ""
            msg = f"{key} names no setting: [{section.lower()}] has no {field!r}{hint}"
            raise ConfigError(msg)


def _check_single_underscore(key: str, sections: Mapping[str, Any]) -> None:
    """``IMGATE_MQTT_PORT`` for ``IMGATE_MQTT__PORT`` (a section's keys take two underscores), or
    ``IMGATE_LOGLEVEL`` for ``IMGATE_LOG_LEVEL``. Other ``IMGATE_`` names that look like no
    setting (``IMGATE_CONFIG``, the test suite's ``IMGATE_TEST_DB``) are left alone.

    Raises:
        ConfigError: it looks like a setting misspelt.
    """
    name = key.upper()[len("IMGATE_"):].lower()
    top = [field for field in Settings.model_fields if field not in sections]
    if name in top or name in sections:  # a top-level setting, or a whole section as JSON
        return
    section = next((s for s in sorted(sections, key=len, reverse=True) if name.startswith(s + "_")), None)
    if section is not None:
        rest = name[len(section) + 1:]
        fields = sections[section].model_fields
        guess = rest if rest in fields else next(iter(difflib.get_close_matches(rest, fields, n=1)), None)
        hint = f"IMGATE_{section.upper()}__{guess.upper()}" if guess else f"IMGATE_{section.upper()}__KEY"
        msg = f"{key} names no setting: a key of [{section}] takes two underscores: did you mean {hint}?"
        raise ConfigError(msg)
    guess = next(iter(difflib.get_close_matches(name, top, n=1, cutoff=0.8)), None)
    if guess is not None:
        msg = f"{key} names no setting: did you mean IMGATE_{guess.upper()}?"
        raise ConfigError(msg)


__all__ = ["ConfigError", "Settings", "load_settings"]
