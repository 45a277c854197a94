"""Topic ACL, protocol §2: pure functions over a principal and a topic (no IO)."""

from __future__ import annotations

import json
from dataclasses import dataclass

PRINCIPAL_KEY = "imgate.principal"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a connection is. ``uid is None`` only for service accounts (the bridge)."""

    uid: str | None
    device: str | None
    platform: str = ""
    token_id: int | None = None
    expires_at: int | None = None

    @property
    def is_service(self) -> bool:
        return self.uid is None


def presence_topic(uid: str, device: str) -> str:
    return f"presence/{uid}/{device}"


def _has_wildcard(level: str) -> bool:
    return "+" in level or "#" in level


class TopicAcl:
    """User rules: publish only ``{p}/{uid}/out/…``, subscribe only ``{p}/{uid}/in/…`` and
    ``presence/{uid}/+`` (or one device) for any single uid. Service accounts may do anything."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def can_publish(self, who: Principal, topic: str) -> bool:
        if who.is_service:
            return True
        levels = topic.split("/")
        # {p}/{uid}/out/{kind}: exactly one level after out/ (msg, rpc, event).
        return (
            len(levels) == 4 and levels[0] == self.prefix and levels[1] == who.uid and levels[2] == "out"
            and levels[3] != "" and not _has_wildcard(topic)
        )

    def can_subscribe(self, who: Principal, topic_filter: str) -> bool:
        if who.is_service:
            return True
        levels = topic_filter.split("/")
        if len(levels) >= 3 and levels[0] == self.prefix and levels[1] == who.uid and levels[2] == "in":
            # Anything below the user's own inbox, wildcards included: it cannot match elsewhere.
            return len(levels) > 3 and levels[3] != ""
        if len(levels) == 3 and levels[0] == "presence":
            # One concrete uid; a concrete device or '+'. No presence/+/… sweeps.
            return (not _has_wildcard(levels[1]) and levels[1] != ""
                    and (levels[2] == "+" or (levels[2] != "" and not _has_wildcard(levels[2]))))
        return False

    def can_receive(self, who: Principal, topic: str) -> bool:
        """Checked for every delivery, retained ones included."""
        if who.is_service:
            return True
        levels = topic.split("/")
        if len(levels) >= 4 and levels[0] == self.prefix and levels[1] == who.uid and levels[2] == "in":
            return True
        return len(levels) == 3 and levels[0] == "presence"

    def will_allowed(self, who: Principal, topic: str | None, payload: bytes | None) -> bool:
        """A user's will may only announce its own device offline (protocol §5)."""
        if who.is_service:
            return True
        if who.device is None or topic != presence_topic(who.uid or "", who.device):
            return False
        try:
            body = json.loads(payload or b"")
        except (ValueError, UnicodeDecodeError):
            return False
        return isinstance(body, dict) and body.get("online") is False
