"""Topic matching without scans: a trie of subscription filters, and a trie of retained topics.

Routing a PUBLISH walks the topic's levels once (cost grows with the topic's depth and the number
of matching subscribers, not with the number of subscriptions), and replaying retained messages
for a new subscription walks the filter's levels over the retained topics.

Subscriptions carry their MQTT 5 options (§3.8.3.1: no local, retain as published, retain
handling, subscription identifier); shared subscriptions ``$share/{group}/{filter}`` (§4.8.2) live
in the same trie, on the node of their filter, so one walk finds both kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NoReturn

SHARE_PREFIX = "$share/"
MAX_CACHED_TOPICS = 10_000  # topics whose matching trie nodes SubscriptionIndex.match remembers
MAX_CACHED_CHARS = 1 << 20  # ... and their characters together (topics may be long: max_topic_length)
MAX_SUB_ID = 268_435_455  # the largest Variable Byte Integer (§3.3.2.3.8)


def valid_filter(topic_filter: str) -> bool:
    """MQTT 3.1.1 §4.7.1: '#' alone and last, '+' alone in its level, not empty."""
    if not topic_filter:
        return False
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def parse_shared(topic_filter: str) -> tuple[str, str] | None:
    """``(group, filter)`` for a well-formed ``$share/{group}/{filter}`` (§4.8.2), else None.

    The group (ShareName) is not empty and has no '/', '+' or '#'; the filter after it is a valid
    filter. None for a filter that is not in the shared form, and for a malformed one: use
    ``valid_subscription_filter`` to tell a malformed shared filter from an ordinary one.
    """
    if not topic_filter.startswith(SHARE_PREFIX):
        return None
    group, sep, inner = topic_filter[len(SHARE_PREFIX):].partition("/")
    if not sep or not group or "+" in group or "#" in group or not valid_filter(inner):
        return None
    return group, inner


def valid_subscription_filter(topic_filter: str) -> bool:
    """A filter a SUBSCRIBE may carry: an ordinary valid filter, or a well-formed shared one.

    Anything starting with ``$share/`` must be a well-formed shared filter (the prefix is reserved).
    """
    if topic_filter.startswith(SHARE_PREFIX):
        return parse_shared(topic_filter) is not None
    return valid_filter(topic_filter)


def valid_topic(topic: str) -> bool:
    """A PUBLISH topic: not empty, no wildcards, no NUL."""
    return bool(topic) and "+" not in topic and "#" not in topic and "\x00" not in topic


def filter_matches(topic_filter: str, topic: str) -> bool:
    """Does ``topic`` match ``topic_filter`` (§4.7; '$' topics never match a leading wildcard)?"""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    f_levels, t_levels = topic_filter.split("/"), topic.split("/")
    for i, f in enumerate(f_levels):
        if f == "#":
            return True
        if i >= len(t_levels) or (f != "+" and f != t_levels[i]):
            return False
    return len(f_levels) == len(t_levels)


def filter_covers(outer: str, inner: str) -> bool:
    """True when every topic matching filter ``inner`` also matches filter ``outer``."""
    o_levels, i_levels = outer.split("/"), inner.split("/")
    for idx, o in enumerate(o_levels):
        if o == "#":
            return True
        if idx >= len(i_levels):
            return False
        i = i_levels[idx]
        if i == "#":
            return False
        if o == "+":
            continue
        if i == "+" or i != o:
            return False
    return len(o_levels) == len(i_levels)


@dataclass(frozen=True, slots=True)
class SubOptions:
    """One subscription's options (MQTT 5 §3.8.3.1); a 3.1.1 subscription has only a QoS."""

    qos: int  # the granted QoS, 0..2
    no_local: bool = False  # never deliver to the client that published the message
    retain_as_published: bool = False  # forward the RETAIN flag as published
    retain_handling: int = 0  # 0, 1, 2: used by the broker at SUBSCRIBE time; only stored here
    sub_id: int | None = None  # the Subscription Identifier, 1..268435455

    def __post_init__(self) -> None:
        if type(self.qos) is not int or not 0 <= self.qos <= 2:
            raise ValueError(f"qos must be 0, 1 or 2, not {self.qos!r}")
        if type(self.retain_handling) is not int or not 0 <= self.retain_handling <= 2:
            raise ValueError(f"retain_handling must be 0, 1 or 2, not {self.retain_handling!r}")
        if self.sub_id is not None and (type(self.sub_id) is not int or not 1 <= self.sub_id <= MAX_SUB_ID):
            raise ValueError(f"sub_id must be 1..{MAX_SUB_ID}, not {self.sub_id!r}")


class _SharedIds(list[int]):
    """A Delivery's subscription identifiers: a list (the codec and the outbox take one) that
    refuses to change, because ``match`` hands the same one out for every message."""

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("a Delivery's sub_ids are shared with the subscription index: copy them to change them")

    append = extend = insert = pop = remove = clear = sort = reverse = _refuse
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse

    def __reduce__(self) -> tuple[type[_SharedIds], tuple[tuple[int, ...]]]:
        return _SharedIds, (tuple(self),)  # copy and pickle rebuild it whole (list's way appends)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one client gets for one message: the merge of its subscriptions matching the topic.

    Frozen, with a read-only list of ids, because it is shared: each subscription keeps its own
    Delivery ready in the trie, and ``match`` hands that very object out when it is the client's
    only matching subscription (the common case), so routing allocates nothing per subscriber;
    only a client with overlapping subscriptions gets a new, merged one.
    """

    qos: int  # the highest QoS among the client's matching subscriptions
    retain_as_published: bool  # True if any matching subscription has it
    sub_ids: list[int]  # the identifiers of the matching subscriptions that have one (any order, no duplicates)


_NO_IDS = _SharedIds()
# Deliveries of subscriptions without an identifier: six values, shared by every such subscription.
_PLAIN = {(qos, rap): Delivery(qos, rap, _NO_IDS) for qos in range(3) for rap in (False, True)}


def _delivery_of(options: SubOptions) -> Delivery:
    if options.sub_id is None:
        return _PLAIN[options.qos, options.retain_as_published]
    return Delivery(options.qos, options.retain_as_published, _SharedIds((options.sub_id,)))


def _merge(a: Delivery, b: Delivery) -> Delivery:
    """One client's delivery for two of its matching subscriptions (the rare overlapping case):
    one of the two when it covers the other, else a new one."""
    a_ids, b_ids = a.sub_ids, b.sub_ids
    extra = [i for i in b_ids if i not in a_ids] if b_ids else b_ids
    if not extra and b.qos <= a.qos and (a.retain_as_published or not b.retain_as_published):
        return a
    if len(a_ids) + len(extra) == len(b_ids) and a.qos <= b.qos \
            and (b.retain_as_published or not a.retain_as_published):
        return b  # b has every id of a (each has no duplicates, so |a ∪ b| == |b| says so)
    return Delivery(max(a.qos, b.qos), a.retain_as_published or b.retain_as_published,
                    _SharedIds((*a_ids, *extra)) if extra else a_ids)


class _Group:
    """The members of one shared subscription (one group on one filter), in the order they joined.

    ``next`` is the index of the member due next: plain round-robin, so tests (and operators) can
    predict who gets a message.
    """

    __slots__ = ("deliveries", "members", "next")

    def __init__(self) -> None:
        self.members: list[str] = []
        self.deliveries: dict[str, Delivery] = {}
        self.next = 0

    def join(self, client_id: str, delivery: Delivery) -> None:
        if client_id not in self.deliveries:
            self.members.append(client_id)  # a replaced subscription keeps its place in the rotation
        self.deliveries[client_id] = delivery

    def leave(self, client_id: str) -> None:
        """Drop a member; the member that was due next stays due next (or its successor, if it left)."""
        if self.deliveries.pop(client_id, None) is None:
            return
        i = self.members.index(client_id)
        del self.members[i]
        if i < self.next:
            self.next -= 1
        if self.next >= len(self.members):
            self.next = 0

    def pick(self, available: Callable[[str], bool] | None) -> str:
        """The next member in turn for which ``available`` is true (the next in turn if none is),
        and advance the rotation past it."""
        members = self.members
        n = len(members)
        i = self.next
        if available is not None and n > 1:
            for k in range(n):
                j = i + k
                if j >= n:
                    j -= n
                if available(members[j]):
                    i = j
                    break
        self.next = i + 1 if i + 1 < n else 0
        return members[i]


class _Node:
    """One level of the filter trie. The wildcard children are attributes, not keys of ``children``,
    so routing reads them without a dict lookup at every node it visits."""

    __slots__ = ("children", "hash", "no_local", "plus", "shared", "subs")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}  # literal levels only
        self.plus: _Node | None = None
        self.hash: _Node | None = None
        self.subs: dict[str, Delivery] = {}  # client id -> its (ordinary) subscription here, ready to hand out
        self.no_local: set[str] | None = None  # the clients in ``subs`` whose subscription has no local
        self.shared: dict[str, _Group] | None = None  # group name -> members (None: no group, the common case)

    def child(self, level: str) -> _Node | None:
        if level == "+":
            return self.plus
        if level == "#":
            return self.hash
        return self.children.get(level)

    def make_child(self, level: str) -> _Node:
        child = self.child(level)
        if child is None:
            child = _Node()
            if level == "+":
                self.plus = child
            elif level == "#":
                self.hash = child
            else:
                self.children[level] = child
        return child

    def drop_child(self, level: str) -> None:
        if level == "+":
            self.plus = None
        elif level == "#":
            self.hash = None
        else:
            self.children.pop(level, None)

    def subscribe(self, client_id: str, options: SubOptions) -> None:
        self.subs[client_id] = _delivery_of(options)
        if options.no_local:
            if self.no_local is None:
                self.no_local = set()
            self.no_local.add(client_id)
        else:
            self.unsubscribe_no_local(client_id)

    def unsubscribe_no_local(self, client_id: str) -> None:
        if self.no_local is not None:
            self.no_local.discard(client_id)
            if not self.no_local:
                self.no_local = None

    def join(self, group: str, client_id: str, options: SubOptions) -> None:
        if self.shared is None:
            self.shared = {}
        members = self.shared.get(group)
        if members is None:
            members = self.shared[group] = _Group()
        members.join(client_id, _delivery_of(options))

    def leave(self, group: str, client_id: str) -> None:
        shared = self.shared
        if shared is None or (members := shared.get(group)) is None:
            return
        members.leave(client_id)
        if not members.members:
            del shared[group]
            if not shared:
                self.shared = None

    def empty(self) -> bool:
        return not self.subs and not self.children and self.plus is None and self.hash is None and self.shared is None


class SubscriptionIndex:
    """Subscription filters in a trie, plus each client's own filters (for removal and replay).

    A client's filters are keyed by the filter as subscribed, so a shared subscription is keyed by
    its full ``$share/{group}/{filter}`` form, and the same filter subscribed plainly and shared
    (or in two groups) makes distinct subscriptions, as MQTT 5 has it.
    """

    def __init__(self) -> None:
        self._root = _Node()
        # The root as '$' topics see it: the same literal children, no wildcards (§4.7.2).
        self._dollar_root = _Node()
        self._dollar_root.children = self._root.children
        self._by_client: dict[str, dict[str, SubOptions]] = {}
        # Topic -> the trie nodes whose subscriptions match it (the walk of ``match``, done once per
        # topic). Nodes change in place when clients subscribe or leave; the lists are only wrong
        # once a node is created or dropped, which clears them all.
        self._hits: dict[str, list[_Node]] = {}
        self._hit_chars = 0  # the cached topics' length together

    def __len__(self) -> int:
        return sum(len(f) for f in self._by_client.values())

    def add(self, client_id: str, topic_filter: str, options: SubOptions | int) -> bool:
        """Subscribe (or subscribe again, replacing the options); an int is a bare QoS.

        True if ``topic_filter`` is new for this client, False if it replaced the client's
        subscription to it (the broker sends retained messages for retain handling 1 only on True).
        ``topic_filter`` must pass ``valid_subscription_filter``; a malformed ``$share/`` filter
        raises ValueError (the index cannot tell where its filter starts).
        """
        if not isinstance(options, SubOptions):
            options = SubOptions(options)
        group: str | None = None
        inner = topic_filter
        if topic_filter.startswith(SHARE_PREFIX):
            parsed = parse_shared(topic_filter)
            if parsed is None:
                raise ValueError(f"malformed shared subscription filter {topic_filter[:200]!r}")
            group, inner = parsed
        node = self._root
        for level in inner.split("/"):
            child = node.child(level)
            if child is None:
                child = node.make_child(level)
                self._forget()
            node = child
        if group is None:
            node.subscribe(client_id, options)
        else:
            node.join(group, client_id, options)
        filters = self._by_client.setdefault(client_id, {})
        new = topic_filter not in filters
        filters[topic_filter] = options
        return new

    def remove(self, client_id: str, topic_filter: str) -> bool:
        filters = self._by_client.get(client_id)
        if filters is None or filters.pop(topic_filter, None) is None:
            return False
        if not filters:
            del self._by_client[client_id]
        self._unlink(client_id, topic_filter)
        return True

    def remove_client(self, client_id: str) -> int:
        filters = self._by_client.pop(client_id, {})
        for topic_filter in filters:
            self._unlink(client_id, topic_filter)
        return len(filters)

    def _unlink(self, client_id: str, topic_filter: str) -> None:
        parsed = parse_shared(topic_filter) if topic_filter.startswith(SHARE_PREFIX) else None
        if parsed is None:
            self._prune(self._root, topic_filter.split("/"), 0, client_id, None)
        else:
            self._prune(self._root, parsed[1].split("/"), 0, client_id, parsed[0])

    def _prune(self, node: _Node, levels: list[str], depth: int, client_id: str, group: str | None) -> bool:
        """Remove the client (from ``group`` if one) at the end of ``levels``; drop nodes left
        empty. True if ``node`` is empty."""
        if depth == len(levels):
            if group is None:
                node.subs.pop(client_id, None)
                node.unsubscribe_no_local(client_id)
            else:
                node.leave(group, client_id)
        else:
            child = node.child(levels[depth])
            if child is not None and self._prune(child, levels, depth + 1, client_id, group):
                node.drop_child(levels[depth])
                self._forget()
        return node.empty()

    def filters_of(self, client_id: str) -> dict[str, int]:
        """Filter (a shared one in its ``$share/`` form) -> granted QoS."""
        return {f: o.qos for f, o in self._by_client.get(client_id, {}).items()}

    def subscriptions_of(self, client_id: str) -> dict[str, SubOptions]:
        """Filter (a shared one in its ``$share/`` form) -> options."""
        return dict(self._by_client.get(client_id, {}))

    def count_of(self, client_id: str) -> int:
        return len(self._by_client.get(client_id, ()))

    def granted(self, client_id: str, topic_filter: str) -> int | None:
        """The QoS granted to ``client_id`` for ``topic_filter``, or None if not subscribed."""
        options = self.options_of(client_id, topic_filter)
        return None if options is None else options.qos

    def options_of(self, client_id: str, topic_filter: str) -> SubOptions | None:
        """The options of ``client_id``'s subscription to ``topic_filter``, or None if not subscribed."""
        filters = self._by_client.get(client_id)
        return None if filters is None else filters.get(topic_filter)

    def match(self, topic: str, publisher: str | None = None,
              available: Callable[[str], bool] | None = None) -> dict[str, Delivery]:
        """Client id -> its Delivery for a message on ``topic`` published by ``publisher``.

        Ordinary subscriptions with no local are skipped for the publisher. Each shared
        subscription matching the topic gets the message once: its next member in turn for which
        ``available`` is true (the next in turn if none is). So this call is a delivery decision,
        not a query: it advances the rotation of every matching shared subscription. The
        Deliveries are shared with the index, so they are read-only (frozen, and their
        ``sub_ids`` raise TypeError on any change).
        """
        hits = self._hits.get(topic)
        if hits is None:
            if len(self._hits) >= MAX_CACHED_TOPICS or self._hit_chars + len(topic) > MAX_CACHED_CHARS:
                self._forget()
            hits = self._hits[topic] = self._walk(topic)
            self._hit_chars += len(topic)
        out: dict[str, Delivery] = {}
        for node in hits:
            if node.no_local is None or publisher not in node.no_local:
                for client_id, delivery in node.subs.items():
                    prev = out.get(client_id)
                    out[client_id] = delivery if prev is None else _merge(prev, delivery)
            else:  # the publisher subscribed here with no local
                for client_id, delivery in node.subs.items():
                    if client_id != publisher:
                        prev = out.get(client_id)
                        out[client_id] = delivery if prev is None else _merge(prev, delivery)
            if node.shared is not None:
                for members in node.shared.values():  # no local does not apply (§3.8.3.1)
                    client_id = members.pick(available)
                    delivery = members.deliveries[client_id]
                    prev = out.get(client_id)
                    out[client_id] = delivery if prev is None else _merge(prev, delivery)
        return out

    def _forget(self) -> None:
        self._hits.clear()
        self._hit_chars = 0

    def _walk(self, topic: str) -> list[_Node]:
        """The nodes whose subscriptions match ``topic``, in no particular order."""
        levels = topic.split("/")
        final = levels.pop()
        hits: list[_Node] = []
        nodes = [self._dollar_root if topic[:1] == "$" else self._root]
        for level in levels:
            next_nodes: list[_Node] = []
            for node in nodes:
                child = node.hash
                if child is not None:
                    hits.append(child)
                child = node.plus
                if child is not None:
                    next_nodes.append(child)
                child = node.children.get(level)
                if child is not None:
                    next_nodes.append(child)
            if not next_nodes:
                break
            nodes = next_nodes
        else:
            for node in nodes:
                child = node.hash
                if child is not None:
                    hits.append(child)
                for child in (node.plus, node.children.get(final)):
                    if child is not None:
                        hits.append(child)
                        if child.hash is not None:  # 'a/#' also matches 'a'
                            hits.append(child.hash)
        return hits


@dataclass(slots=True)
class _RNode:
    children: dict[str, _RNode] = field(default_factory=dict)
    has_value: bool = False


class RetainedIndex:
    """The topics that hold a retained message, in a trie, to find those matching a filter."""

    def __init__(self) -> None:
        self._root = _RNode()

    def add(self, topic: str) -> None:
        node = self._root
        for level in topic.split("/"):
            node = node.children.setdefault(level, _RNode())
        node.has_value = True

    def remove(self, topic: str) -> None:
        self._remove(self._root, topic.split("/"), 0)

    def _remove(self, node: _RNode, levels: list[str], depth: int) -> bool:
        if depth == len(levels):
            node.has_value = False
        else:
            child = node.children.get(levels[depth])
            if child is not None and self._remove(child, levels, depth + 1):
                del node.children[levels[depth]]
        return not node.has_value and not node.children

    def matching(self, topic_filter: str) -> Iterator[str]:
        """Every retained topic matching ``topic_filter``."""
        levels = topic_filter.split("/")
        yield from self._walk(self._root, levels, 0, [])

    def _walk(self, node: _RNode, levels: list[str], depth: int, path: list[str]) -> Iterator[str]:
        if depth == len(levels):
            if node.has_value:
                yield "/".join(path)
            return
        level = levels[depth]
        if level == "#":
            if depth > 0 and node.has_value:  # 'a/#' matches 'a'
                yield "/".join(path)
            yield from self._all_below(node, path, skip_dollar=depth == 0)
            return
        if level == "+":
            for name, child in node.children.items():
                if depth == 0 and name.startswith("$"):
                    continue
                yield from self._walk(child, levels, depth + 1, [*path, name])
            return
        exact = node.children.get(level)
        if exact is not None:
            yield from self._walk(exact, levels, depth + 1, [*path, level])

    def _all_below(self, node: _RNode, path: list[str], *, skip_dollar: bool) -> Iterator[str]:
        for name, child in node.children.items():
            if skip_dollar and name.startswith("$"):
                continue
            child_path = [*path, name]
            if child.has_value:
                yield "/".join(child_path)
            yield from self._all_below(child, child_path, skip_dollar=False)
