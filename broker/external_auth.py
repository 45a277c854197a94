"""Authentication and topic ACL for an external broker that asks over HTTP (RabbitMQ's
``rabbitmq_auth_backend_http``, EMQX 5's HTTP authentication and authorization): the same decisions the embedded broker makes (``broker.gate``
logs a CONNECT in, ``broker.acl`` decides topics), for a broker that is not ours. No IO of its own
beyond the authenticator the gate calls; the HTTP shell is ``imgate.admin``.

RabbitMQ asks four questions (``auth_http.http_method = post``, form fields):

- *user*: ``username``, ``password``, ``vhost``, ``client_id`` (MQTT): a login. Users log in with
  a device token and the client id ``{uid}:{device}`` of that token, service accounts with their
  password, exactly as on the embedded broker (so no service account takes a bridge's client id,
  ``imgate-…`` or ``bridge.client_id``: it would take over the bridge's durable session and read
  its queue). RabbitMQ's auth cache keeps an "allow" for its TTL: a token that expires within
  that TTL + ``CACHE_MARGIN_MS`` is refused (``cached_ms``), so no cached login outlives its token.
- *vhost*: ``username``, ``vhost``: only the configured virtual host.
- *resource*: ``username``, ``vhost``, ``resource`` (``exchange``/``queue``), ``name``,
  ``permission`` (``configure``/``write``/``read``), ``client_id`` (MQTT): the MQTT plugin's own
  objects. A connection may use the queue of its own client id only
  (``mqtt-subscription-{client id}qos0|1``, whoever else's it names: denied; a service account's
  client id is never a user's nor a bridge's), and the topic
  exchange: a user to read and write, a service account to read only when one of its rules reads
  and to write only when one writes (the topic question then decides the routing key). Internal
  accounts (the bridges) anything. Only internal accounts log in over AMQP (no client id): another
  service account's AMQP login is refused, since an AMQP client could name any queue.
- *topic*: ``username``, ``vhost``, ``resource`` = ``topic``, ``name`` (the exchange),
  ``permission`` (``write``: a publish; ``read``: a subscription's binding key),
  ``routing_key``, ``variable_map.client_id``, ``variable_map.username``. The routing key is the
  MQTT topic with ``/`` as ``.`` and ``+`` as ``*``; it is decided with the MQTT topic ACL, on the
  principal that ``username`` and the connection's client id stand for (RabbitMQ asks this only
  for connections it logged in through the *user* question).

EMQX 5 asks two (``imgate.admin``'s ``/auth/emqx/…``; the request bodies are templates configured in
EMQX, see ``config/emqx/imgate.hocon``): *authn* with ``username``, ``password``, ``clientid``
(``login``), and *authz* with ``username``, ``clientid``, ``action`` (``publish``/``subscribe``)
and ``topic``, the MQTT topic or filter itself (``authorize``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from broker.acl import Principal, TopicAcl
from broker.connection import BAD_CREDENTIALS, NOT_AUTHORIZED
from broker.gate import USER_CLIENT_ID, Gate

# The MQTT plugin's queue for a client's subscriptions (RabbitMQ 3.10: rabbit_mqtt_processor).
_SUBSCRIPTION_QUEUE = "mqtt-subscription-"
# Past a cache's TTL: a login answered while a revocation committed, the clocks' skew.
CACHE_MARGIN_MS = 2_000


@dataclass(frozen=True, slots=True)
class Login:
    """The answer to a login: allowed, or refused with the embedded broker's reason code."""

    allowed: bool
    reason: int = 0


def mqtt_topic(routing_key: str) -> str:
    """RabbitMQ's routing (or binding) key as the MQTT topic (filter) it came from."""
    return "/".join("+" if level == "*" else level for level in routing_key.split("."))


class ExternalAuth:
    """The decisions behind an external broker's HTTP auth questions."""

    def __init__(self, gate: Gate, acl: TopicAcl, *, vhost: str = "/", exchange: str = "amq.topic",
                 internal: Collection[str] = (), cached_ms: int = 0,
                 now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        """``cached_ms``: how long the broker keeps a login's answer (RabbitMQ's
        ``auth_cache.cache_ttl``; 0: no cache), for ``login(cached=True)``."""
        self._gate = gate
        self._acl = acl
        self._vhost = vhost
        self._exchange = exchange
        self._internal = frozenset(internal)
        self._now_ms = now_ms
        # A token must outlive a cached "allow" by this much (nothing to outlive without a cache).
        self.token_margin_ms = cached_ms + CACHE_MARGIN_MS if cached_ms > 0 else 0

    async def login(self, username: str | None, password: str | None, client_id: str | None, *,
                    cached: bool = False) -> Login:
        """``cached``: the broker caches the answer (RabbitMQ) for ``cached_ms``, and never asks
        about a live connection again: a token that expires within ``token_margin_ms`` is refused,
        so that no "allow" it keeps outlives the token."""
        if not username or not password:
            return Login(allowed=False)
        if self._gate.is_account(username) and not client_id:
            # An AMQP connection (no MQTT client id): the bridges' own account only. Any other
            # service account is refused: over AMQP it could read or delete queues by name.
            if username not in self._internal:
                return Login(allowed=False, reason=NOT_AUTHORIZED)
            client_id = f"amqp-{username}"
        who = await self._gate.login(username, password, client_id or "")
        if not isinstance(who, Principal):
            return Login(allowed=False, reason=who)
        if cached and who.expires_at is not None and who.expires_at <= self._now_ms() + self.token_margin_ms:
            return Login(allowed=False, reason=BAD_CREDENTIALS)  # its cached "allow" would outlive it
        return Login(allowed=True)

    def vhost(self, vhost: str) -> bool:
        return vhost == self._vhost

    def principal(self, username: str, client_id: str | None) -> Principal | None:
        """Who a connection RabbitMQ logged in (through ``login``) is, from its username and
        client id; None when those cannot belong to one of our logins."""
        if self._gate.is_account(username):
            if client_id and (USER_CLIENT_ID.match(client_id) or self._gate.reserved(username, client_id)):
                return None  # a user's or a bridge's client id is never an account's (its login is refused)
            rules = self._gate.accounts[username].rules
            cid = client_id or f"amqp-{username}"
            return Principal(uid=None, device=None, rules=tuple(r.expand(username, cid) for r in rules), account=username)
        if not client_id or not USER_CLIENT_ID.match(client_id):
            return None
        uid, _, device = client_id.partition(":")
        return Principal(uid, device) if uid == username else None

    def resource(self, username: str, vhost: str, resource: str, name: str, permission: str,
                 client_id: str | None = None) -> bool:
        """RabbitMQ's resource question, for the connection ``username`` / ``client_id`` (the
        form's ``client_id``: MQTT connections send it)."""
        if not self.vhost(vhost):
            return False
        if username in self._internal:
            return True
        who = self.principal(username, client_id) if client_id else None
        if who is None:  # not one of our MQTT logins (a service account's AMQP login is refused)
            return False
        if resource == "exchange":
            if name != self._exchange:
                return False
            if who.account is None:
                return permission in ("read", "write")
            rules = who.rules or ()
            return (permission == "read" and any(r.reads for r in rules)) or \
                (permission == "write" and any(r.writes for r in rules))
        if resource == "queue":
            # The MQTT plugin's queue of this very connection's client id (it declares, binds and
            # consumes it: configure, write, read); never another client's, user or account.
            return name in (f"{_SUBSCRIPTION_QUEUE}{client_id}qos0", f"{_SUBSCRIPTION_QUEUE}{client_id}qos1") \
                and permission in ("configure", "write", "read")
        return False

    def topic(self, username: str, vhost: str, exchange: str, permission: str, routing_key: str,
              client_id: str | None) -> bool:
        """RabbitMQ's topic question (a routing or binding key on a topic exchange). An internal
        account (the bridges) may use any: they also bind to ``amq.rabbitmq.event``."""
        if username in self._internal:
            return self.vhost(vhost)
        if not self.vhost(vhost) or exchange != self._exchange or permission not in ("write", "read"):
            return False
        return self.authorize(username, client_id, "publish" if permission == "write" else "subscribe",
                              mqtt_topic(routing_key))

    def authorize(self, username: str, client_id: str | None, action: str, topic: str) -> bool:
        """May this connection ``publish`` to ``topic`` or ``subscribe`` to the filter ``topic``?
        (EMQX asks this as it is; a shared subscription's ``$share/{group}/`` is decided on its
        filter.)"""
        who = self.principal(username, client_id)
        if who is None:
            return False
        if action == "publish":
            return self._acl.can_publish(who, topic)
        if action == "subscribe":
            if topic.startswith("$share/"):
                _, _, rest = topic.partition("/")
                group, _, topic = rest.partition("/")
                if not group or not topic:
                    return False
            return self._acl.can_subscribe(who, topic)
        return False
