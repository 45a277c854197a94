"""SubscriptionIndex.match remembers, per topic, the trie nodes that match it: whatever is
subscribed, unsubscribed or forgotten in between, what it returns equals a fresh walk (checked
against brute force, on the same topics again and again so the remembered answer is used)."""

from __future__ import annotations

import random

from broker import topics
from broker.topics import SubOptions, SubscriptionIndex, filter_matches

TOPICS = ["a", "a/b", "a/b/c", "b", "$SYS/x", "im/alice/in/msg", "x/y"]
FILTERS = ["#", "+", "a/#", "a/+", "a/b", "+/b", "a/b/c", "$SYS/#", "im/+/in/#", "x/y", "b"]


def expected(model: dict[str, dict[str, int]], topic: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for client, filters in model.items():
        qos = [q for f, q in filters.items() if filter_matches(f, topic)]
        if qos:
            out[client] = max(qos)
    return out


def got(index: SubscriptionIndex, topic: str) -> dict[str, int]:
    return {client: d.qos for client, d in index.match(topic).items()}


def test_a_new_filter_is_matched_after_the_topic_was_routed() -> None:
    index = SubscriptionIndex()
    index.add("c1", "a/b", 1)
    assert got(index, "a/b") == {"c1": 1}
    assert got(index, "a/c") == {}  # remembered as matching nothing
    index.add("c2", "a/+", 0)  # a new node that both topics match
    assert got(index, "a/b") == {"c1": 1, "c2": 0}
    assert got(index, "a/c") == {"c2": 0}
    index.add("c3", "a/b", 2)  # an existing node: the remembered nodes see it
    assert got(index, "a/b") == {"c1": 1, "c2": 0, "c3": 2}


def test_a_dropped_node_is_not_matched_and_a_new_one_in_its_place_is() -> None:
    index = SubscriptionIndex()
    index.add("c1", "a/b", 1)
    assert got(index, "a/b") == {"c1": 1}
    assert index.remove("c1", "a/b")  # the node is pruned
    assert got(index, "a/b") == {}
    index.add("c2", "a/b", 2)  # a new node at the same place
    assert got(index, "a/b") == {"c2": 2}
    assert index.remove_client("c2") == 1
    assert got(index, "a/b") == {}
    index.add("c3", "a/b", 0)
    assert got(index, "a/b") == {"c3": 0}


def test_no_local_and_shared_are_decided_per_message_not_remembered() -> None:
    index = SubscriptionIndex()
    index.add("c1", "a/b", SubOptions(1, no_local=True))
    index.add("c2", "$share/g/a/b", 1)
    index.add("c3", "$share/g/a/b", 1)
    assert set(index.match("a/b", publisher="c1")) == {"c2"}
    assert set(index.match("a/b", publisher="c4")) == {"c1", "c3"}  # the group's next member
    assert set(index.match("a/b", publisher="c1")) == {"c2"}


def test_the_cache_is_bounded() -> None:
    index = SubscriptionIndex()
    index.add("c1", "t/+", 1)
    limit = topics.MAX_CACHED_TOPICS
    for n in range(limit + 5):
        assert got(index, f"t/{n}") == {"c1": 1}
    assert len(index._hits) <= limit


def test_the_cache_is_bounded_in_characters() -> None:
    """Long topics (up to max_topic_length) fill the cache by size before they fill it by count."""
    index = SubscriptionIndex()
    index.add("c1", "t/#", 1)
    long = "x" * 60_000
    for n in range(40):
        assert got(index, f"t/{n}/{long}") == {"c1": 1}
    assert sum(len(t) for t in index._hits) <= topics.MAX_CACHED_CHARS


def test_interleaved_changes_and_matches_equal_brute_force() -> None:
    rng = random.Random(13)
    index = SubscriptionIndex()
    model: dict[str, dict[str, int]] = {}
    clients = ["c1", "c2", "c3", "c4"]
    for step in range(3000):
        roll = rng.random()
        client = rng.choice(clients)
        if roll < 0.2:
            f, qos = rng.choice(FILTERS), rng.randint(0, 2)
            index.add(client, f, qos)
            model.setdefault(client, {})[f] = qos
        elif roll < 0.35 and model.get(client):
            f = rng.choice(sorted(model[client]))
            assert index.remove(client, f)
            del model[client][f]
        elif roll < 0.38:
            assert index.remove_client(client) == len(model.pop(client, {}))
        else:
            topic = rng.choice(TOPICS)
            assert got(index, topic) == expected(model, topic), (step, topic)
