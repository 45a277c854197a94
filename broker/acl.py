"""Topic ACL (protocol §2): mosquitto-style rules for service accounts, the broker's own
presence topics, and, for users, the topic layout of the application, injected (``UserTopics``:
the broker knows no IM topic; ``bridge.acl`` says which a user may use). Pure functions, no IO.

Users may subscribe to ``presence/{uid}/+`` (or one device) of one concrete uid, and publish,
subscribe and read what their ``UserTopics`` allow.

Service accounts (the bridge, operators' gateways, test accounts) get rules, one per line:
``read|write|readwrite|deny TOPIC-FILTER``, where ``%u`` is the account's username and ``%c``
its client id. A deny rule wins. A subscription is granted only when one read rule covers the
whole filter and no deny rule overlaps it, so the decision is made once, at SUBSCRIBE time, and
never per delivered message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from broker.topics import filter_covers, filter_matches, valid_filter

PRINCIPAL_KEY = "imgate.principal"
Access = Literal["read", "write", "readwrite", "deny"]


@dataclass(frozen=True, slots=True)
class AclRule:
    access: Access
    pattern: str

    @classmethod
    def parse(cls, text: str) -> AclRule:
        """``"readwrite devices/%u/#"`` -> AclRule.

        Raises:
            ValueError: not ``ACCESS FILTER`` with a valid access word and filter.
        """
        access, _, pattern = text.strip().partition(" ")
        pattern = pattern.strip()
        if access not in ("read", "write", "readwrite", "deny"):
            msg = f"ACL rule {text!r}: access must be read, write, readwrite or deny"
            raise ValueError(msg)
        if not valid_filter(pattern.replace("%u", "u").replace("%c", "c")):
            msg = f"ACL rule {text!r}: {pattern!r} is not a valid topic filter"
            raise ValueError(msg)
        return cls(access, pattern)  # type: ignore[arg-type]

    def expand(self, username: str, client_id: str) -> AclRule:
        return AclRule(self.access, self.pattern.replace("%u", username).replace("%c", client_id))

    @property
    def reads(self) -> bool:
        return self.access in ("read", "readwrite")

    @property
    def writes(self) -> bool:
        return self.access in ("write", "readwrite")


FULL_ACCESS = (AclRule("readwrite", "#"),)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a connection is. Users have a uid and device; service accounts have rules instead."""

    uid: str | None
    device: str | None
    platform: str = ""
    token_id: int | None = None
    expires_at: int | None = None
    rules: tuple[AclRule, ...] | None = None  # set for service accounts (already expanded)
    account: str | None = None  # a service account's username
    content_type: str | None = None  # a user device's payload content type (None: as published)

    def same_owner(self, other: Principal) -> bool:
        """Do both stand for the same owner of a session (user device, or service account)?"""
        if self.is_service or other.is_service:
            return self.is_service and other.is_service and self.account == other.account
        return self.uid == other.uid and self.device == other.device

    @property
    def is_service(self) -> bool:
        return self.uid is None


def presence_topic(uid: str, device: str) -> str:
    return f"presence/{uid}/{device}"


def filters_overlap(a: str, b: str) -> bool:
    """Is there a topic that both filters match?"""
    a_levels, b_levels = a.split("/"), b.split("/")
    for x, y in zip(a_levels, b_levels, strict=False):
        if x == "#" or y == "#":
            return True
        if x != y and x != "+" and y != "+":
            return False
    if len(a_levels) == len(b_levels):
        return True
    longer = a_levels if len(a_levels) > len(b_levels) else b_levels
    return longer[min(len(a_levels), len(b_levels))] == "#"  # 'x/#' also matches 'x'


def _has_wildcard(level: str) -> bool:
    return "+" in level or "#" in level


class UserTopics(Protocol):
    """The application's topics a user's device may use (implemented by ``bridge.acl``)."""

    def may_publish(self, uid: str, device: str, topic: str) -> bool: ...

    def may_subscribe(self, uid: str, device: str, topic_filter: str) -> bool: ...

    def reader(self, uid: str, device: str) -> Callable[[str], bool]:
        """The check made on every delivery to that device (besides the one at SUBSCRIBE)."""


def _matcher(pattern: str) -> Callable[[str], bool]:
    """``filter_matches(pattern, topic)`` as a function of the topic; '#' and wildcard-free
    filters (most rules) need no split."""
    if pattern == "#":
        return lambda topic: not topic.startswith("$")  # '$' topics never match a leading wildcard
    if "+" not in pattern and "#" not in pattern:
        return lambda topic: topic == pattern
    return lambda topic: filter_matches(pattern, topic)


def _compile(rules: tuple[AclRule, ...], *, write: bool) -> Callable[[str], bool]:
    """The check of ``TopicAcl._rules_allow(rules, topic, write=write)``, made once per rule set."""
    deny = tuple(_matcher(r.pattern) for r in rules if r.access == "deny")
    allow = tuple(_matcher(r.pattern) for r in rules if (r.writes if write else r.reads))
    if not allow:
        return lambda _topic: False
    if not deny and len(allow) == 1:
        return allow[0]

    def check(topic: str) -> bool:
        for m in deny:
            if m(topic):
                return False
        for m in allow:  # a loop, not any() over a generator: this runs per message
            if m(topic):
                return True
        return False

    return check


_MAX_COMPILED = 4096  # rule sets whose compiled checks are kept (one per service account connection)


class TopicAcl:
    """Decides publish, subscribe and (on every delivery) read, per principal."""

    def __init__(self, users: UserTopics, *, presence_hidden: Callable[[str, str], bool] | None = None) -> None:
        """``presence_hidden(viewer, subject)``: the user ``subject``'s presence is not delivered
        to the user ``viewer`` (the auth side's block list; the broker knows no more of it)."""
        self._users = users
        self._presence_hidden = presence_hidden
        # id(rules) -> (rules, its compiled write check): the rules are held, so the id stays theirs.
        self._writes: dict[int, tuple[tuple[AclRule, ...], Callable[[str], bool]]] = {}

    def _write_check(self, rules: tuple[AclRule, ...]) -> Callable[[str], bool]:
        entry = self._writes.get(id(rules))
        if entry is not None and entry[0] is rules:
            return entry[1]
        if len(self._writes) >= _MAX_COMPILED:
            self._writes.clear()
        check = _compile(rules, write=True)
        self._writes[id(rules)] = (rules, check)
        return check

    @staticmethod
    def _rules_allow(rules: tuple[AclRule, ...], topic: str, *, write: bool) -> bool:
        """No deny rule matches the topic, and an allow rule of the right kind does."""
        if any(r.access == "deny" and filter_matches(r.pattern, topic) for r in rules):
            return False
        return any((r.writes if write else r.reads) and filter_matches(r.pattern, topic) for r in rules)

    def can_publish(self, who: Principal, topic: str) -> bool:
        if who.rules is not None:
            return self._write_check(who.rules)(topic)
        if who.uid is None or who.device is None or _has_wildcard(topic):
            return False
        return self._users.may_publish(who.uid, who.device, topic)

    def can_subscribe(self, who: Principal, topic_filter: str) -> bool:
        if who.rules is not None:
            return (not any(r.access == "deny" and filters_overlap(r.pattern, topic_filter) for r in who.rules)
                    and any(r.reads and filter_covers(r.pattern, topic_filter) for r in who.rules))
        if who.uid is None or who.device is None:
            return False
        levels = topic_filter.split("/")
        if len(levels) == 3 and levels[0] == "presence":
            # One concrete uid; a concrete device or '+'. No presence/+/… sweeps.
            return (not _has_wildcard(levels[1]) and levels[1] != ""
                    and (levels[2] == "+" or (levels[2] != "" and not _has_wildcard(levels[2]))))
        return self._users.may_subscribe(who.uid, who.device, topic_filter)

    def reader(self, who: Principal) -> Callable[[str], bool]:
        """The check made on every delivery to ``who`` (besides the one at SUBSCRIBE): a user
        reads presence and what its UserTopics let that device read; a service account what its
        rules let it read."""
        if who.rules is not None:
            return _compile(who.rules, write=False)
        if who.uid is None or who.device is None:
            return lambda _topic: False
        own = self._users.reader(who.uid, who.device)
        hidden, viewer = self._presence_hidden, who.uid
        if hidden is None:
            return lambda topic: own(topic) or topic.startswith("presence/")

        def read(topic: str) -> bool:
            if own(topic):
                return True
            return topic.startswith("presence/") and not hidden(viewer, topic.split("/", 2)[1])

        return read

    def will_allowed(self, who: Principal, topic: str | None, payload: bytes | None) -> bool:
        """A user's will may only announce its own device offline (protocol §5); an account's
        will must be a topic it may publish."""
        if who.rules is not None:
            return topic is not None and self.can_publish(who, topic)
        if who.device is None or topic != presence_topic(who.uid or "", who.device):
            return False
        try:
            body = json.loads(payload or b"")
        except (ValueError, UnicodeDecodeError):
            return False
        return isinstance(body, dict) and body.get("online") is False
