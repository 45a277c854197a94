"""Server-side presence (protocol §5), as an amqtt broker plugin.

On every connect and disconnect (clean DISCONNECT, dropped socket, keep-alive timeout, kick,
take-over) the plugin looks at the client id's *current* session and publishes the retained
``presence/{uid}/{device}`` that matches it. Reading the current state under one lock, instead
of trusting the event's order, makes the last publish right even when a take-over's connect and
the old connection's disconnect events run out of order.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from amqtt.broker import BrokerContext
from amqtt.plugins.base import BasePlugin
from amqtt.session import Session

from broker.acl import PRINCIPAL_KEY, Principal, presence_topic

_FORGET_AFTER = 100_000  # remembered devices before old entries are dropped (bounded memory)


def presence_payload(*, online: bool, platform: str, ts: int, persistent: bool = False) -> bytes:
    body: dict[str, Any] = {"online": online, "ts": ts}
    if online:
        body["platform"] = platform
        body["persistent"] = persistent  # a persistent session keeps its subscriptions across reconnects
    return json.dumps(body, separators=(",", ":")).encode()


class PresencePlugin(BasePlugin[BrokerContext]):
    """Publishes presence; a device that flaps is announced at most once per ``min_interval_ms``
    (its latest state, when the interval ends), so subscribers are not stormed."""

    @dataclass
    class Config:
        min_interval_ms: int = 1000

    def __init__(self, context: BrokerContext) -> None:
        super().__init__(context)
        self._lock = asyncio.Lock()
        self._interval = max(0, self.config.min_interval_ms) / 1000
        self._last: dict[str, tuple[float, bool]] = {}  # client id -> (when, online) last published
        self._deferred: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        for handle in self._deferred.values():
            handle.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def on_broker_client_connected(self, *, client_id: str, client_session: Session) -> None:
        await self._refresh(client_id, client_session)

    async def on_broker_client_disconnected(self, *, client_id: str, client_session: Session) -> None:
        await self._refresh(client_id, client_session)

    def _later(self, client_id: str, event_session: Session, delay: float) -> None:
        def fire() -> None:
            self._deferred.pop(client_id, None)
            task = asyncio.create_task(self._refresh(client_id, event_session), name=f"imgate.presence[{client_id}]")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        if client_id not in self._deferred:
            self._deferred[client_id] = asyncio.get_running_loop().call_later(delay, fire)

    async def _refresh(self, client_id: str, event_session: Session) -> None:
        async with self._lock:
            current = self.context.get_session(client_id)
            session = current or event_session
            who: Principal | None = session.attributes.get(PRINCIPAL_KEY)
            if who is None or who.is_service or who.uid is None or who.device is None:
                return
            online = current is not None and current.transitions.is_connected()
            now = time.monotonic()
            last = self._last.get(client_id)
            if last is not None and now - last[0] < self._interval:
                # Flapping: announce the state it settles in once the interval is over.
                self._later(client_id, event_session, self._interval - (now - last[0]))
                return
            self._last[client_id] = (now, online)
            if not online and len(self._last) > _FORGET_AFTER:
                self._forget_old(now)
            data = presence_payload(online=online, platform=who.platform, ts=time.time_ns() // 1_000_000,
                                    persistent=not session.clean_session)
            topic = presence_topic(who.uid, who.device)
            await self.context.retain_message(topic, data, qos=1)
            await self.context.broadcast_message(topic, data, qos=1)

    def _forget_old(self, now: float) -> None:
        for client_id, (when, _) in list(self._last.items()):
            if now - when >= self._interval and client_id not in self._deferred:
                del self._last[client_id]
