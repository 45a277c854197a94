"""Routing: who gets a message. Subscriptions (with MQTT 5 options and shared subscriptions) in a
trie, retained messages in a trie, in-process subscribers (the bridge's ingress), and the ACL
checks of SUBSCRIBE and of every delivery. No sockets and no protocol state: the hub calls it
with decoded requests and gets reason codes back.

- ACL is decided once per SUBSCRIBE (a granted filter is readable in full) and, as a second
  line, each delivery is checked against its reader (``Outbox.reads``).
- Retained messages are replayed only to the subscribing session, only for its new filter, only
  where it may read, and as its retain handling says. Users cannot retain.
- A PUBLISH costs its matches, not a scan of every subscription.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from broker import codec
from broker.acl import Principal, TopicAcl
from broker.connection import (
    NO_SUBSCRIPTION_EXISTED,
    NOT_AUTHORIZED,
    QUOTA_EXCEEDED,
    SUCCESS,
    TOPIC_FILTER_INVALID,
)
from broker.outbox import Message, Outbox
from broker.topics import RetainedIndex, SubOptions, SubscriptionIndex, parse_shared, valid_subscription_filter

log = logging.getLogger("imgate.broker")

MAX_QOS = 2
_NOBODY: tuple[()] = ()  # no in-process sink refused (shared: nothing allocated per routed message)


class LocalSink(Protocol):
    """An in-process subscriber (the bridge's ingress)."""

    def offer(self, topic: str, payload: bytes, *, force: bool = False, props: dict[int, Any] | None = None) -> bool:
        """Take a message (True), or refuse it for now (False; never when ``force``)."""

    def room(self, topic: str) -> Awaitable[None]:
        """Resolves when a refused message on ``topic`` may be offered again."""


class Router:
    def __init__(self, acl: TopicAcl, outboxes: Mapping[str, Outbox], *, max_subscriptions: int,
                 max_topic_length: int, online: Callable[[str], bool]) -> None:
        self._acl = acl
        self._outboxes = outboxes  # client id -> the session's Outbox (owned by the hub)
        self._max_subscriptions = max_subscriptions
        self._max_topic_length = max_topic_length
        self._online = online  # is this client id connected (shared subscriptions prefer those)
        self.index = SubscriptionIndex()
        self.retained_index = RetainedIndex()
        self.retained: dict[str, Message] = {}
        self._local: dict[str, LocalSink] = {}

    # ---- subscriptions --------------------------------------------------------------------
    def subscribe(self, client_id: str, who: Principal, requests: Sequence[codec.SubscriptionRequest],
                  sub_id: int | None) -> tuple[list[int], list[tuple[str, SubOptions]]]:
        """Grant or refuse each filter: the SUBACK's codes (granted QoS, or an MQTT 5 reason
        code), and the filters whose retained messages are to be replayed (``replay``, after the
        SUBACK). Once the session has ``max_subscriptions`` filters, new ones are refused without
        being looked at."""
        codes: list[int] = []
        replay: list[tuple[str, SubOptions]] = []
        refused = 0
        for req in requests:
            code, new = self._grant(client_id, who, req, sub_id)
            codes.append(code)
            if code >= 0x80:
                refused += 1
                continue
            opts = SubOptions(code, req.no_local, req.retain_as_published, req.retain_handling, sub_id)
            if parse_shared(req.topic_filter) is None and (req.retain_handling == 0 or
                                                           (req.retain_handling == 1 and new)):
                replay.append((req.topic_filter, opts))
        if refused:
            log.info("refused %d of %d filters for %s (first %r; %d subscribed)", refused, len(requests), client_id,
                     next(r.topic_filter for r, c in zip(requests, codes, strict=True) if c >= 0x80)[:200],
                     self.index.count_of(client_id))
        return codes, replay

    def replay(self, client_id: str, filters: list[tuple[str, SubOptions]]) -> None:
        """Send the retained messages of newly granted filters (as their retain handling asked)."""
        outbox = self._outboxes.get(client_id)
        if outbox is not None:
            for topic_filter, opts in filters:
                self._replay(outbox, topic_filter, opts)

    def _grant(self, client_id: str, who: Principal, req: codec.SubscriptionRequest,
               sub_id: int | None) -> tuple[int, bool]:
        topic_filter = req.topic_filter
        if self.index.granted(client_id, topic_filter) is None \
                and self.index.count_of(client_id) >= self._max_subscriptions:
            return QUOTA_EXCEEDED, False
        if len(topic_filter) > self._max_topic_length or not valid_subscription_filter(topic_filter):
            return TOPIC_FILTER_INVALID, False
        shared = parse_shared(topic_filter)
        if not self._acl.can_subscribe(who, shared[1] if shared else topic_filter):
            return NOT_AUTHORIZED, False
        granted = min(req.qos, MAX_QOS)
        new = self.index.add(client_id, topic_filter, SubOptions(granted, req.no_local, req.retain_as_published,
                                                                 req.retain_handling, sub_id))
        return granted, new

    def unsubscribe(self, client_id: str, filters: Sequence[str]) -> list[int]:
        return [SUCCESS if self.index.remove(client_id, f) else NO_SUBSCRIPTION_EXISTED for f in filters]

    def forget(self, client_id: str) -> None:
        self.index.remove_client(client_id)

    def _replay(self, outbox: Outbox, topic_filter: str, opts: SubOptions) -> None:
        sub_ids = [opts.sub_id] if opts.sub_id is not None else None
        for topic in self.retained_index.matching(topic_filter):
            message = self.retained.get(topic)
            if message is not None and (outbox.reads is None or outbox.reads(topic)):
                outbox.deliver(message, min(opts.qos, message.qos), retain=True, sub_ids=sub_ids)

    # ---- in-process subscribers ----------------------------------------------------------
    def attach_local(self, name: str, filters: list[str], sink: LocalSink) -> None:
        """Subscribe an in-process consumer with full read access; it gets the retained messages
        matching its filters at once, then every match as it is routed."""
        key = f"$local/{name}"  # no client may use a client id starting with '$'
        self._local[key] = sink
        for topic_filter in filters:
            self.index.add(key, topic_filter, SubOptions(1))
            shared = parse_shared(topic_filter)
            for topic in self.retained_index.matching(shared[1] if shared else topic_filter):
                message = self.retained.get(topic)
                if message is not None:
                    sink.offer(topic, message.payload, force=True)

    def detach_local(self, name: str) -> None:
        key = f"$local/{name}"
        self.index.remove_client(key)
        self._local.pop(key, None)

    # ---- publish --------------------------------------------------------------------------
    def route(self, message: Message, *, force: bool = True) -> Sequence[LocalSink] | None:
        """Deliver to every matching subscriber at min(publish QoS, its subscription's QoS),
        each delivery checked against its reader. Returns the in-process sinks that refused the
        message (only when not ``force``: a client's PUBLISH, which can wait); None when nobody
        matched at all."""
        topic = message.topic
        matches = self.index.match(topic, message.publisher, self._online)
        if not matches:
            return None
        outboxes = self._outboxes
        refused: list[LocalSink] | None = None
        for client_id, d in matches.items():
            outbox = outboxes.get(client_id)
            if outbox is not None:
                if outbox.reads is not None and not outbox.reads(topic):
                    continue  # not this reader's (another device's notification, or a stale grant)
                qos = min(d.qos, message.qos)
                outbox.deliver(message, qos, message.retain and d.retain_as_published, d.sub_ids or None)
            else:
                sink = self._local.get(client_id)
                if sink is not None and not sink.offer(topic, message.payload, force=force, props=message.props):
                    refused = [*(refused or ()), sink]
        return refused or _NOBODY

    def store_retained(self, message: Message) -> None:
        topic = message.topic
        if message.payload:
            self.retained[topic] = message
            self.retained_index.add(topic)
        elif self.retained.pop(topic, None) is not None:  # [MQTT-3.3.1-10]: empty clears
            self.retained_index.remove(topic)
