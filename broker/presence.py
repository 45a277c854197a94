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
from typing import Any

from amqtt.broker import BrokerContext
from amqtt.plugins.base import BasePlugin
from amqtt.session import Session

from broker.acl import PRINCIPAL_KEY, Principal, presence_topic


def presence_payload(*, online: bool, platform: str, ts: int, persistent: bool = False) -> bytes:
    body: dict[str, Any] = {"online": online, "ts": ts}
    if online:
        body["platform"] = platform
        body["persistent"] = persistent  # a persistent session keeps its subscriptions across reconnects
    return json.dumps(body, separators=(",", ":")).encode()


class PresencePlugin(BasePlugin[BrokerContext]):
    def __init__(self, context: BrokerContext) -> None:
        super().__init__(context)
        self._lock = asyncio.Lock()

    async def on_broker_client_connected(self, *, client_id: str, client_session: Session) -> None:
        await self._refresh(client_id, client_session)

    async def on_broker_client_disconnected(self, *, client_id: str, client_session: Session) -> None:
        await self._refresh(client_id, client_session)

    async def _refresh(self, client_id: str, event_session: Session) -> None:
        async with self._lock:
            current = self.context.get_session(client_id)
            session = current or event_session
            who: Principal | None = session.attributes.get(PRINCIPAL_KEY)
            if who is None or who.is_service or who.uid is None or who.device is None:
                return
            online = current is not None and current.transitions.is_connected()
            data = presence_payload(online=online, platform=who.platform, ts=time.time_ns() // 1_000_000,
                                    persistent=not session.clean_session)
            topic = presence_topic(who.uid, who.device)
            await self.context.retain_message(topic, data, qos=1)
            await self.context.broadcast_message(topic, data, qos=1)
