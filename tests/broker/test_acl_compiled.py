"""A service account's ACL rules are compiled once into the checks made per PUBLISH and per
delivery: they decide exactly as the rules read one by one (``TopicAcl._rules_allow``)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from broker.acl import AclRule, Principal, TopicAcl

TOPICS = ["a", "a/b", "a/b/c", "$SYS/x", "$SYS", "b/x", "devices/svc/1", "devices/other/1", "x/+"]
RULES = ["readwrite #", "read a/#", "write a/+", "deny a/b", "readwrite $SYS/#", "deny #", "write b/x",
         "read devices/svc/+", "deny $SYS", "readwrite a/b/c"]


class NoUsers:
    def may_publish(self, uid: str, device: str, topic: str) -> bool:
        return False

    def may_subscribe(self, uid: str, device: str, topic_filter: str) -> bool:
        return False

    def reader(self, uid: str, device: str) -> Callable[[str], bool]:
        return lambda _topic: False


def test_compiled_checks_equal_the_rules_read_one_by_one() -> None:
    acl = TopicAcl(NoUsers())
    for n in range(4):
        for combo in itertools.combinations(RULES, n):
            rules = tuple(AclRule.parse(r) for r in combo)
            who = Principal(uid=None, device=None, rules=rules, account="svc")
            reads = acl.reader(who)
            for topic in TOPICS:
                assert acl.can_publish(who, topic) is TopicAcl._rules_allow(rules, topic, write=True), (combo, topic)
                assert reads(topic) is TopicAcl._rules_allow(rules, topic, write=False), (combo, topic)


def test_equal_rule_sets_of_two_principals_are_each_checked_by_their_own_rules() -> None:
    acl = TopicAcl(NoUsers())
    allow = Principal(uid=None, device=None, rules=(AclRule.parse("write a/#"),), account="x")
    deny = Principal(uid=None, device=None, rules=(AclRule.parse("write b/#"),), account="y")
    for _ in range(3):
        assert acl.can_publish(allow, "a/1") and not acl.can_publish(allow, "b/1")
        assert acl.can_publish(deny, "b/1") and not acl.can_publish(deny, "a/1")
