"""The routing and retained tries agree with the MQTT matching rules (checked against brute force),
and routing honours the MQTT 5 subscription options and shared subscriptions."""

from __future__ import annotations

import copy
import itertools
import pickle
import random
from collections.abc import Callable
from typing import Any

import pytest

from broker.topics import (
    Delivery,
    RetainedIndex,
    SubOptions,
    SubscriptionIndex,
    filter_covers,
    filter_matches,
    parse_shared,
    valid_filter,
    valid_subscription_filter,
)

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


def qos_of(matches: dict[str, Delivery]) -> dict[str, int]:
    return {client: delivery.qos for client, delivery in matches.items()}


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
        assert qos_of(index.match(t)) == expected, t


def test_remove_and_remove_client_prune() -> None:
    index = SubscriptionIndex()
    index.add("c1", "a/+", 1)
    index.add("c2", "a/+", 0)
    index.add("c1", "a/#", 0)
    assert qos_of(index.match("a/b")) == {"c1": 1, "c2": 0}
    assert index.remove("c1", "a/+") and not index.remove("c1", "a/+")
    assert qos_of(index.match("a/b")) == {"c1": 0, "c2": 0}
    assert index.remove_client("c1") == 1
    assert qos_of(index.match("a/b")) == {"c2": 0} and index.filters_of("c1") == {}
    index.remove_client("c2")
    assert len(index) == 0 and index._root.children == {} and index._root.empty()


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


# ---- MQTT 5 subscription options ------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"qos": 3}, {"qos": -1}, {"qos": True}, {"qos": 1, "retain_handling": 3},
    {"qos": 1, "sub_id": 0}, {"qos": 1, "sub_id": 268_435_456}, {"qos": 1, "sub_id": True},
])
def test_sub_options_are_limited(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SubOptions(**kwargs)


def test_add_reports_new_or_replaced_and_keeps_the_options() -> None:
    index = SubscriptionIndex()
    first = SubOptions(1, retain_handling=1, sub_id=7)
    assert index.add("c1", "a/+", first) is True
    assert index.add("c2", "a/+", SubOptions(0)) is True  # another client's filter is its own
    assert index.options_of("c1", "a/+") == first and index.granted("c1", "a/+") == 1
    second = SubOptions(2, retain_as_published=True)
    assert index.add("c1", "a/+", second) is False
    assert index.options_of("c1", "a/+") == second and index.granted("c1", "a/+") == 2
    assert index.match("a/b")["c1"] == Delivery(2, True, [])  # the replaced one no longer counts
    assert index.count_of("c1") == 1 and len(index) == 2
    assert index.add("c1", "a/#", 0) is True  # a bare QoS, as 3.1.1 has it
    assert index.options_of("c1", "a/#") == SubOptions(0) and index.filters_of("c1") == {"a/+": 2, "a/#": 0}
    assert index.subscriptions_of("c1") == {"a/+": second, "a/#": SubOptions(0)}
    assert index.options_of("c1", "b") is None and index.granted("nobody", "a/+") is None


def test_no_local_skips_only_that_subscription_of_the_publisher() -> None:
    index = SubscriptionIndex()
    index.add("c1", "chat/+", SubOptions(2, no_local=True, sub_id=1))
    index.add("c1", "chat/#", SubOptions(0, sub_id=2))
    index.add("c2", "chat/+", SubOptions(1, no_local=True))
    assert index.match("chat/x", publisher="c1") == {"c1": Delivery(0, False, [2]), "c2": Delivery(1, False, [])}
    got = index.match("chat/x", publisher="c2")
    assert set(got) == {"c1"} and got["c1"].qos == 2 and sorted(got["c1"].sub_ids) == [1, 2]
    assert index.match("chat/x")["c1"].qos == 2  # no publisher (the broker's own message): everyone
    index.remove("c1", "chat/#")
    assert index.match("chat/x", publisher="c1") == {"c2": Delivery(1, False, [])}
    index.add("c1", "chat/+", SubOptions(2))  # replaced without no local
    assert index.match("chat/x", publisher="c1") == {"c1": Delivery(2, False, []), "c2": Delivery(1, False, [])}


def test_retain_as_published_and_qos_merge_over_overlapping_subscriptions() -> None:
    index = SubscriptionIndex()
    index.add("c1", "a/#", SubOptions(0, retain_as_published=True))
    index.add("c1", "a/+", SubOptions(2))
    index.add("c1", "+/b", SubOptions(1))
    assert index.match("a/b") == {"c1": Delivery(2, True, [])}
    assert index.match("a/c") == {"c1": Delivery(2, True, [])}
    assert index.match("x/b") == {"c1": Delivery(1, False, [])}


def test_subscription_ids_of_overlapping_subscriptions_are_collected_once() -> None:
    index = SubscriptionIndex()
    index.add("c1", "a/+", SubOptions(1, sub_id=10))
    index.add("c1", "a/#", SubOptions(0, sub_id=20))
    index.add("c1", "+/b", SubOptions(0, sub_id=10))  # the same identifier on another filter
    index.add("c1", "a/b", SubOptions(0))  # no identifier
    delivery = index.match("a/b")["c1"]
    assert sorted(delivery.sub_ids) == [10, 20] and len(delivery.sub_ids) == 2 and delivery.qos == 1
    assert index.match("a/c")["c1"].sub_ids in ([10, 20], [20, 10])
    assert index.match("a")["c1"] == Delivery(0, False, [20])


def test_merging_does_not_leak_into_other_deliveries() -> None:
    """A subscription's Delivery is shared between calls: a merge must make a new one."""
    index = SubscriptionIndex()
    index.add("c1", "a/+", SubOptions(0, sub_id=1))
    index.add("c1", "a/b", SubOptions(2, retain_as_published=True, sub_id=2))
    index.add("c2", "a/+", SubOptions(0, sub_id=1))
    assert index.match("a/b")["c1"].qos == 2
    assert index.match("a/c") == {"c1": Delivery(0, False, [1]), "c2": Delivery(0, False, [1])}
    shared = index.match("a/c")["c1"]
    with pytest.raises(AttributeError):
        shared.qos = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        shared.sub_ids.append(2)
    with pytest.raises(TypeError):
        shared.sub_ids[0] = 2
    assert isinstance(shared.sub_ids, list)  # what the codec and the outbox take
    assert copy.copy(shared.sub_ids) == [1] and copy.deepcopy(shared) == shared
    assert pickle.loads(pickle.dumps(shared)) == shared
    assert index.match("a/c")["c1"] == Delivery(0, False, [1])


# ---- '$' topics ------------------------------------------------------------------------------

@pytest.mark.parametrize(("f", "expected"), [
    ("#", False), ("+/B", False), ("+/#", False), ("+", False), ("$TopicA/#", True), ("$TopicA/+", True),
    ("$TopicA/B", True), ("$share/g/#", False), ("$share/g/+/B", False), ("$share/g/$TopicA/#", True),
])
def test_dollar_topics_never_match_a_leading_wildcard(f: str, expected: bool) -> None:
    index = SubscriptionIndex()
    index.add("c1", f, 1)
    assert ("c1" in index.match("$TopicA/B")) is expected
    shared = parse_shared(f)
    inner = shared[1] if shared else f
    assert filter_matches(inner, "$TopicA/B") is expected
    for topic in ("TopicA/B", "TopicA"):  # the same filters do match topics without '$'
        assert ("c1" in index.match(topic)) is filter_matches(inner, topic)
    assert expected or "c1" in index.match("TopicA/B") or "c1" in index.match("TopicA")


# ---- shared subscriptions --------------------------------------------------------------------

@pytest.mark.parametrize(("f", "parsed"), [
    ("$share/g/a/+", ("g", "a/+")), ("$share/g/#", ("g", "#")), ("$share/g//", ("g", "/")),
    ("$share/grp-1/$SYS/x", ("grp-1", "$SYS/x")),
    ("$share//a", None), ("$share/g", None), ("$share/g/", None), ("$share/g+/a", None), ("$share/#/a", None),
    ("$share/g/a/#/b", None), ("$share/g/a+", None), ("a/+", None), ("$share", None), ("$shared/g/a", None),
])
def test_parse_shared(f: str, parsed: tuple[str, str] | None) -> None:
    assert parse_shared(f) == parsed
    assert valid_subscription_filter(f) is (parsed is not None or (not f.startswith("$share/") and valid_filter(f)))


def test_valid_subscription_filter_keeps_ordinary_rules() -> None:
    assert valid_subscription_filter("a/+/#") and valid_subscription_filter("$share") and valid_subscription_filter("$sharex/a")
    assert not valid_subscription_filter("a/#/b") and not valid_subscription_filter("")
    assert not valid_subscription_filter("$share//a") and valid_filter("$share//a")  # reserved prefix


def test_malformed_shared_filter_is_refused_by_add() -> None:
    index = SubscriptionIndex()
    with pytest.raises(ValueError):
        index.add("c1", "$share//a", 1)
    assert len(index) == 0 and index._root.empty()


def shared_index(members: list[str], topic_filter: str = "$share/g/jobs/+") -> SubscriptionIndex:
    index = SubscriptionIndex()
    for member in members:
        assert index.add(member, topic_filter, SubOptions(1))
    return index


def receivers(index: SubscriptionIndex, n: int, available: Callable[[str], bool] | None = None) -> list[str]:
    out: list[str] = []
    for _ in range(n):
        matches = index.match("jobs/x", available=available)
        assert len(matches) == 1, matches  # exactly one member of the group
        out.extend(matches)
    return out


def test_shared_round_robin_is_fair_over_three_members() -> None:
    index = shared_index(["m1", "m2", "m3"])
    got = receivers(index, 9)
    assert got == ["m1", "m2", "m3"] * 3
    assert index.add("m2", "$share/g/jobs/+", SubOptions(2)) is False  # replaced: keeps its turn
    assert receivers(index, 3) == ["m1", "m2", "m3"]
    assert index.match("jobs/y") == {"m1": Delivery(1, False, [])}
    assert index.match("jobs/y") == {"m2": Delivery(2, False, [])}


def test_shared_member_removed_mid_rotation() -> None:
    index = shared_index(["m1", "m2", "m3"])
    assert receivers(index, 1) == ["m1"]  # m2 is due
    assert index.remove("m2", "$share/g/jobs/+")
    assert receivers(index, 4) == ["m3", "m1", "m3", "m1"]  # the one after the leaver is due
    index.add("m4", "$share/g/jobs/+", 1)  # joins at the end
    assert receivers(index, 3) == ["m3", "m4", "m1"]
    assert index.remove_client("m1") == 1  # a member before the one due: m3 stays due
    assert receivers(index, 3) == ["m3", "m4", "m3"]
    index.remove("m4", "$share/g/jobs/+")  # the one due was last: wraps to the first
    assert receivers(index, 2) == ["m3", "m3"]
    index.remove("m3", "$share/g/jobs/+")
    assert index.match("jobs/x") == {} and index._root.empty() and len(index) == 0


def test_shared_skips_members_that_are_not_available() -> None:
    index = shared_index(["m1", "m2", "m3"])
    online = {"m1", "m3"}
    asked: list[str] = []

    def available(client_id: str) -> bool:
        asked.append(client_id)
        return client_id in online

    assert receivers(index, 4, available=available) == ["m1", "m3", "m1", "m3"]
    assert asked == ["m1", "m2", "m3", "m1", "m2", "m3"]
    online.clear()  # nobody: still delivered, in turn (the broker queues it for that session)
    assert receivers(index, 3, available=available) == ["m1", "m2", "m3"]
    online.add("m2")
    assert receivers(index, 2, available=available) == ["m2", "m2"]


def test_shared_and_ordinary_subscriptions_together() -> None:
    index = SubscriptionIndex()
    index.add("m1", "$share/g/a/+", SubOptions(2, sub_id=5, no_local=True))  # no local: ignored when shared
    index.add("m2", "$share/g/a/+", SubOptions(0, sub_id=6))
    index.add("m1", "a/#", SubOptions(0, retain_as_published=True, sub_id=7))
    index.add("m3", "a/b", SubOptions(1))
    first = index.match("a/b", publisher="m1")
    assert first["m3"] == Delivery(1, False, []) and set(first) == {"m1", "m3"}
    assert first["m1"].qos == 2 and first["m1"].retain_as_published and sorted(first["m1"].sub_ids) == [5, 7]
    assert index.match("a/b", publisher="m1") == {"m1": Delivery(0, True, [7]), "m2": Delivery(0, False, [6]),
                                                  "m3": Delivery(1, False, [])}
    assert index.match("a") == {"m1": Delivery(0, True, [7])}  # 'a/+' (shared) does not match 'a'
    assert index.filters_of("m1") == {"$share/g/a/+": 2, "a/#": 0} and index.count_of("m1") == 2
    assert index.granted("m1", "$share/g/a/+") == 2 and index.granted("m1", "a/+") is None


def test_each_matching_shared_subscription_delivers_once() -> None:
    """Two groups on one filter, and one group on two filters, are distinct shared subscriptions."""
    index = SubscriptionIndex()
    for member in ("x1", "x2"):
        index.add(member, "$share/x/a/+", 1)
        index.add(member, "$share/x/a/#", 0)
    for member in ("y1", "y2"):
        index.add(member, "$share/y/a/+", 1)
    assert index.match("a/b/c") == {"x1": Delivery(0, False, [])}  # only x's 'a/#' matches: its turn moves on
    assert index.match("a/b") == {"x1": Delivery(1, False, []), "x2": Delivery(0, False, []),
                                  "y1": Delivery(1, False, [])}
    assert index.match("a/b") == {"x2": Delivery(1, False, []), "x1": Delivery(0, False, []),
                                  "y2": Delivery(1, False, [])}
    assert index.match("a/b/c") == {"x2": Delivery(0, False, [])}  # back in step
    assert index.match("a/b") == {"x1": Delivery(1, False, []), "y1": Delivery(1, False, [])}  # x1 twice: merged


def test_shared_removal_prunes_and_keeps_other_kinds() -> None:
    index = SubscriptionIndex()
    index.add("c1", "$share/g/a/+", 1)
    index.add("c1", "$share/h/a/+", 1)
    index.add("c1", "a/+", 0)
    assert index.count_of("c1") == 3 and len(index) == 3
    assert index.remove("c1", "$share/g/a/+") and not index.remove("c1", "$share/g/a/+")
    assert index.match("a/b") == {"c1": Delivery(1, False, [])}  # still in group h
    assert not index.remove("c1", "$share/zzz/a/+") and not index.remove("c2", "$share/h/a/+")
    index.add("c2", "$share/h/a/+", 0)
    assert index.remove_client("c1") == 2
    assert index.match("a/b") == {"c2": Delivery(0, False, [])}
    index.remove("c2", "$share/h/a/+")
    assert index._root.empty() and len(index) == 0 and index.filters_of("c1") == {}


# ---- property: the trie agrees with brute force ---------------------------------------------

LEVELS = ["a", "b", "c", ""]


def random_filter(rng: random.Random) -> str:
    levels = [rng.choice([*LEVELS, "+", "+"]) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.1:
        levels[0] = "$x"
    if rng.random() < 0.3 or levels == [""]:
        levels.append("#")
    topic_filter = "/".join(levels)
    assert valid_filter(topic_filter)
    return topic_filter


def random_topic(rng: random.Random) -> str:
    levels = [rng.choice(LEVELS) for _ in range(rng.randint(1, 4))]
    if rng.random() < 0.15:
        levels[0] = "$x"
    return "/".join(levels)


def random_options(rng: random.Random) -> SubOptions:
    return SubOptions(rng.randint(0, 2), no_local=rng.random() < 0.3, retain_as_published=rng.random() < 0.3,
                      sub_id=rng.choice([None, None, 1, 2, 3, 4]))


@pytest.mark.parametrize("seed", range(8))
def test_match_agrees_with_brute_force_over_random_subscriptions(seed: int) -> None:
    rng = random.Random(seed)
    clients = [f"c{i}" for i in range(6)]
    index = SubscriptionIndex()
    model: dict[str, dict[str, SubOptions]] = {}  # client -> filter (as subscribed) -> options
    groups: dict[tuple[str, str], list[str]] = {}  # (group, filter) -> members in the order they joined
    for _ in range(120):
        client = rng.choice(clients)
        if rng.random() < 0.25 and model.get(client):
            topic_filter = rng.choice(sorted(model[client]))
            assert index.remove(client, topic_filter)
            del model[client][topic_filter]
            shared = parse_shared(topic_filter)
            if shared:
                groups[shared].remove(client)
            continue
        topic_filter = random_filter(rng)
        if rng.random() < 0.3:
            topic_filter = f"$share/{rng.choice('gh')}/{topic_filter}"
        options = random_options(rng)
        assert index.add(client, topic_filter, options) is (topic_filter not in model.get(client, {}))
        shared = parse_shared(topic_filter)
        if shared and topic_filter not in model.get(client, {}):
            groups.setdefault(shared, []).append(client)
        model.setdefault(client, {})[topic_filter] = options
    assert len(index) == sum(len(f) for f in model.values())
    for client in clients:
        assert index.subscriptions_of(client) == model.get(client, {})
    due = dict.fromkeys(groups, 0)  # (group, filter) -> index of the member due next
    for _ in range(150):
        topic = random_topic(rng)
        publisher = rng.choice([None, *clients])
        offline = set(rng.sample(clients, k=rng.randint(0, 5)))
        matched: dict[str, list[SubOptions]] = {}
        for client, filters in model.items():
            for topic_filter, options in filters.items():
                if not topic_filter.startswith("$share/") and filter_matches(topic_filter, topic) \
                        and not (options.no_local and client == publisher):
                    matched.setdefault(client, []).append(options)
        for (group, topic_filter), members in groups.items():
            if members and filter_matches(topic_filter, topic):
                turn = [*range(due[group, topic_filter], len(members)), *range(due[group, topic_filter])]
                chosen = next((i for i in turn if members[i] not in offline), turn[0])
                due[group, topic_filter] = (chosen + 1) % len(members)
                matched.setdefault(members[chosen], []).append(model[members[chosen]][f"$share/{group}/{topic_filter}"])
        got = index.match(topic, publisher, available=(set(clients) - offline).__contains__)
        assert set(got) == set(matched), (topic, publisher)
        for client, subscriptions in matched.items():
            delivery = got[client]
            assert delivery.qos == max(o.qos for o in subscriptions), (topic, client)
            assert delivery.retain_as_published == any(o.retain_as_published for o in subscriptions)
            assert len(set(delivery.sub_ids)) == len(delivery.sub_ids)
            assert set(delivery.sub_ids) == {o.sub_id for o in subscriptions if o.sub_id is not None}
    for client in clients:
        index.remove_client(client)
    assert len(index) == 0 and index._root.empty()
