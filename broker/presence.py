"""Server-side presence (protocol §5): the retained ``presence/{uid}/{device}`` of every user device.

On every connect and disconnect (clean DISCONNECT, dropped socket, keep-alive timeout, kick,
take-over) the hub calls :meth:`Presence.changed`, which looks at the client id's *current*
session and publishes the retained presence that matches it, so the last publish is right even
when a take-over's connect and the old connection's end come out of order. A device that flaps
is announced at most once per ``min_interval_ms`` (its latest state, when the interval ends).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from broker.acl import presence_topic
from broker.payload import Payload

if TYPE_CHECKING:
    from broker.hub import Hub
    from broker.sessions import Session

_FORGET_AFTER = 100_000  # remembered devices before old entries are dropped (bounded memory)


def presence_payload(*, online: bool, platform: str, ts: int, persistent: bool = False) -> bytes:
    body: dict[str, Any] = {"online": online, "ts": ts}
    if online:
        body["platform"] = platform
        body["persistent"] = persistent  # a persistent session keeps its subscriptions across reconnects
    # JSON for every reader (protocol "Encodings"): labelled application/json, never converted.
    return Payload(json.dumps(body, separators=(",", ":")).encode())


class Presence:
    def __init__(self, hub: Hub, min_interval_ms: int = 1000) -> None:
        self._hub = hub
        self._interval = max(0, min_interval_ms) / 1000
        self._last: dict[str, tuple[float, bool]] = {}  # client id -> (when, online) last published
        self._deferred: dict[str, asyncio.TimerHandle] = {}

    async def close(self) -> None:
        for handle in self._deferred.values():
            handle.cancel()
        self._deferred.clear()

    def changed(self, event_session: Session) -> None:
        client_id = event_session.client_id
        current = self._hub.sessions.get(client_id)
        session = current or event_session
        who = session.principal
        if who.is_service or who.uid is None or who.device is None:
            return
        online = current is not None and current.connected
        now = time.monotonic()
        last = self._last.get(client_id)
        if last is not None and now - last[0] < self._interval:
            # Flapping: announce the state it settles in once the interval is over.
            if client_id not in self._deferred:
                self._deferred[client_id] = asyncio.get_running_loop().call_later(
                    self._interval - (now - last[0]), self._fire, event_session)
            return
        self._last[client_id] = (now, online)
        if not online and len(self._last) > _FORGET_AFTER:
            self._forget_old(now)
        data = presence_payload(online=online, platform=who.platform, ts=time.time_ns() // 1_000_000,
                                persistent=not session.clean_session)
        self._hub.publish_internal(presence_topic(who.uid, who.device), data, qos=1, retain=True)

    def _fire(self, event_session: Session) -> None:
        self._deferred.pop(event_session.client_id, None)
        self.changed(event_session)

    def _forget_old(self, now: float) -> None:
        for client_id, (when, _) in list(self._last.items()):
            if now - when >= self._interval and client_id not in self._deferred:
                del self._last[client_id]
