"""Topic matching without scans: a trie of subscription filters, and a trie of retained topics.

Routing a PUBLISH walks the topic's levels once (cost grows with the topic's depth and the number
of matching subscribers, not with the number of subscriptions), and replaying retained messages
for a new subscription walks the filter's levels over the retained topics.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field


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


@dataclass(slots=True)
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    subscribers: dict[str, int] = field(default_factory=dict)  # client id -> granted QoS


class SubscriptionIndex:
    """Subscription filters in a trie, plus each client's own filters (for removal and replay)."""

    def __init__(self) -> None:
        self._root = _Node()
        self._by_client: dict[str, dict[str, int]] = {}

    def __len__(self) -> int:
        return sum(len(f) for f in self._by_client.values())

    def add(self, client_id: str, topic_filter: str, qos: int) -> None:
        node = self._root
        for level in topic_filter.split("/"):
            node = node.children.setdefault(level, _Node())
        node.subscribers[client_id] = qos
        self._by_client.setdefault(client_id, {})[topic_filter] = qos

    def remove(self, client_id: str, topic_filter: str) -> bool:
        filters = self._by_client.get(client_id)
        if filters is None or filters.pop(topic_filter, None) is None:
            return False
        if not filters:
            del self._by_client[client_id]
        self._prune(self._root, topic_filter.split("/"), 0, client_id)
        return True

    def remove_client(self, client_id: str) -> int:
        filters = self._by_client.pop(client_id, {})
        for topic_filter in filters:
            self._prune(self._root, topic_filter.split("/"), 0, client_id)
        return len(filters)

    def _prune(self, node: _Node, levels: list[str], depth: int, client_id: str) -> bool:
        """Remove the client at the end of ``levels``; drop nodes left empty. True if ``node`` is empty."""
        if depth == len(levels):
            node.subscribers.pop(client_id, None)
        else:
            child = node.children.get(levels[depth])
            if child is not None and self._prune(child, levels, depth + 1, client_id):
                del node.children[levels[depth]]
        return not node.subscribers and not node.children

    def filters_of(self, client_id: str) -> dict[str, int]:
        return dict(self._by_client.get(client_id, {}))

    def count_of(self, client_id: str) -> int:
        return len(self._by_client.get(client_id, ()))

    def granted(self, client_id: str, topic_filter: str) -> int | None:
        """The QoS granted to ``client_id`` for ``topic_filter``, or None if not subscribed."""
        filters = self._by_client.get(client_id)
        return None if filters is None else filters.get(topic_filter)

    def match(self, topic: str) -> dict[str, int]:
        """Client id -> the highest QoS among its subscriptions matching ``topic``."""
        out: dict[str, int] = {}
        levels = topic.split("/")
        dollar = topic.startswith("$")
        nodes = [self._root]
        last = len(levels) - 1
        for depth, level in enumerate(levels):
            next_nodes: list[_Node] = []
            for node in nodes:
                wild_ok = not (dollar and depth == 0)
                if wild_ok:
                    hash_node = node.children.get("#")
                    if hash_node is not None:
                        _merge(out, hash_node.subscribers)
                    plus = node.children.get("+")
                    if plus is not None:
                        next_nodes.append(plus)
                exact = node.children.get(level)
                if exact is not None:
                    next_nodes.append(exact)
            nodes = next_nodes
            if not nodes:
                return out
            if depth == last:
                for node in nodes:
                    _merge(out, node.subscribers)
                    hash_node = node.children.get("#")  # 'a/#' also matches 'a'
                    if hash_node is not None:
                        _merge(out, hash_node.subscribers)
        return out


def _merge(out: dict[str, int], subscribers: dict[str, int]) -> None:
    for client_id, qos in subscribers.items():
        if out.get(client_id, -1) < qos:
            out[client_id] = qos


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
