"""The routing and retained tries agree with the MQTT matching rules (checked against brute force)."""

from __future__ import annotations

import itertools
import random

import pytest

from broker.topics import RetainedIndex, SubscriptionIndex, filter_covers, filter_matches, valid_filter

TOPICS = ["a", "a/b", "a/b/c", "a/c", "b/b", "$SYS/x", "$SYS", "a//b", "/a", "im/alice/in/msg", "presence/bob/p"]
FILTERS = ["#", "+", "a/#", "a/+", "a/b", "+/b", "+/+", "a/+/c", "$SYS/#", "+/#", "/+", "a//b", "a/+/+",
           "im/alice/in/#", "presence/bob/+", "presence/+/+", "a/b/c/#"]


@pytest.mark.parametrize(("f", "t", "expected"), [
    ("a/#", "a", True), ("a/#", "a/b/c", True), ("+", "a", True), ("+", "a/b", False),
    ("#", "$SYS/x", False), ("+/x", "$SYS/x", False), ("$SYS/#", "$SYS/x", True), ("a/+/c", "a/b/c", True),
    ("a/+", "a", False), ("/+", "/a", True), ("a//b", "a//b", True),
])
def test_filter_matches(f: str, t: str, expected: bool) -> None:
    assert filter_matches(f, t) is expected


def test_trie_match_equals_brute_force() -> None:
    index = SubscriptionIndex()
    rng = random.Random(7)
    subs: dict[str, dict[str, int]] = {}
    for n, f in enumerate(FILTERS):
        for client in rng.sample(["c1", "c2", "c3", "c4"], k=2):
            qos = (n + len(client)) % 3
            index.add(client, f, qos)
            subs.setdefault(client, {})[f] = qos
    for t in TOPICS:
        expected = {}
        for client, filters in subs.items():
            q = [qos for f, qos in filters.items() if filter_matches(f, t)]
            if q:
                expected[client] = max(q)
        assert index.match(t) == expected, t


def test_remove_and_remove_client_prune() -> None:
    index = SubscriptionIndex()
    index.add("c1", "a/+", 1)
    index.add("c2", "a/+", 0)
    index.add("c1", "a/#", 0)
    assert index.match("a/b") == {"c1": 1, "c2": 0}
    assert index.remove("c1", "a/+") and not index.remove("c1", "a/+")
    assert index.match("a/b") == {"c1": 0, "c2": 0}
    assert index.remove_client("c1") == 1
    assert index.match("a/b") == {"c2": 0} and index.filters_of("c1") == {}
    index.remove_client("c2")
    assert len(index) == 0 and index._root.children == {}


def test_retained_index_equals_brute_force() -> None:
    retained = RetainedIndex()
    for t in TOPICS:
        retained.add(t)
    for f in FILTERS:
        assert sorted(retained.matching(f)) == sorted(t for t in TOPICS if filter_matches(f, t)), f
    retained.remove("a/b")
    assert "a/b" not in set(retained.matching("#")) and "a/b/c" in set(retained.matching("#"))


@pytest.mark.parametrize("f", ["a/#/b", "a#", "a/b+", "", "##"])
def test_invalid_filters(f: str) -> None:
    assert not valid_filter(f)


def test_filter_covers_is_subset() -> None:
    plain = [t for t in TOPICS if not t.startswith("$")]
    for outer, inner in itertools.product(FILTERS, FILTERS):
        if filter_covers(outer, inner):
            assert all(filter_matches(outer, t) for t in plain if filter_matches(inner, t)), (outer, inner)
    assert filter_covers("bench/%u/#".replace("%u", "x"), "bench/x/in/+")
    assert not filter_covers("bench/x/#", "bench/+/in")
    assert not filter_covers("a/+", "a/#") and filter_covers("a/#", "a/+/b")
