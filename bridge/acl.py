"""Which of the IM protocol's topics a user's device may use (protocol §2), for the broker's ACL
(``broker.acl.UserTopics``, injected by the composition root: the broker knows no IM topic).

- publish only ``{p}/{uid}/out/{kind}`` (one level after ``out/``: msg, rpc, event), or
  ``{p}/{uid}/out/rpc/{device}`` by that device only (so the server knows which device asks);
- subscribe to anything below its own ``{p}/{uid}/in/`` (wildcards included: they cannot match
  elsewhere);
- read its own ``{p}/{uid}/in/…``, except another device's ``in/notify/{device}``;
- the same in each encoding tree ``{p}-cbor/…``, ``{p}-msgpack/…`` that is on.
"""

from __future__ import annotations

from collections.abc import Callable

from bridge.router import Topics


class UserTopicRules:
    def __init__(self, topics: Topics) -> None:
        self._prefixes = frozenset(topics.prefixes)  # {p}, and its encoding trees {p}-cbor...
        self._topics = topics

    def may_publish(self, uid: str, device: str, topic: str) -> bool:
        levels = topic.split("/")
        if len(levels) == 5:
            return (levels[0] in self._prefixes and levels[1] == uid and levels[2] == "out" and levels[3] == "rpc"
                    and levels[4] == device)
        return len(levels) == 4 and levels[0] in self._prefixes and levels[1] == uid and levels[2] == "out" \
            and levels[3] != ""

    def may_subscribe(self, uid: str, device: str, topic_filter: str) -> bool:
        levels = topic_filter.split("/")
        return len(levels) > 3 and levels[0] in self._prefixes and levels[1] == uid and levels[2] == "in" \
            and levels[3] != ""

    def reader(self, uid: str, device: str) -> Callable[[str], bool]:
        inboxes = tuple(f"{p}/{uid}/in/" for p in self._prefixes)
        notify = tuple(f"{p}/{uid}/in/notify/" for p in self._prefixes)
        own = frozenset(f"{p}/{uid}/in/notify/{device}" for p in self._prefixes)

        def reads(topic: str) -> bool:
            return topic.startswith(inboxes) and (not topic.startswith(notify) or topic in own)

        return reads

