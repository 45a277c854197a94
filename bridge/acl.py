"""Which of the IM protocol's topics a user's device may use (protocol §2), for the broker's ACL
(``broker.acl.UserTopics``, injected by the composition root: the broker knows no IM topic).

- publish only ``{p}/{uid}/out/{kind}`` (one level after ``out/``: msg, rpc, event), or
  ``{p}/{uid}/out/rpc/{device}`` by that device only (so the server knows which device asks);
- subscribe to anything below its own ``{p}/{uid}/in/`` (wildcards included: they cannot match
  elsewhere);
- read its own ``{p}/{uid}/in/…``, except another device's ``in/notify/{device}``.
"""

from __future__ import annotations

from collections.abc import Callable

from bridge.router import Topics


class UserTopicRules:
    def __init__(self, topics: Topics) -> None:
        self._prefix = topics.prefix
        self._topics = topics

    def may_publish(self, uid: str, device: str, topic: str) -> bool:
        levels = topic.split("/")
        if len(levels) == 5:
            return (levels[0] == self._prefix and levels[1] == uid and levels[2] == "out" and levels[3] == "rpc"
                    and levels[4] == device)
        return len(levels) == 4 and levels[0] == self._prefix and levels[1] == uid and levels[2] == "out" \
            and levels[3] != ""

    def may_subscribe(self, uid: str, device: str, topic_filter: str) -> bool:
        levels = topic_filter.split("/")
        return len(levels) > 3 and levels[0] == self._prefix and levels[1] == uid and levels[2] == "in" \
            and levels[3] != ""

    def reader(self, uid: str, device: str) -> Callable[[str], bool]:
        inbox = self._topics.inbox(uid, "")
        notify = self._topics.device_notify(uid, "")
        own = self._topics.device_notify(uid, device)

        def reads(topic: str) -> bool:
            return topic.startswith(inbox) and (not topic.startswith(notify) or topic == own)

        return reads

