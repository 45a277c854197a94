"""A client session: what outlives a connection (subscriptions live in the router, keyed by the
client id). MQTT 3.1.1 clean session 0 keeps it for the server's maximum; MQTT 5 for the Session
Expiry Interval the client asked for (capped by the server's maximum)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from broker.acl import Principal
from broker.codec import Will
from broker.outbox import Outbox

if TYPE_CHECKING:
    from broker.link import Link


@dataclass(eq=False, slots=True)
class Session:
    client_id: str
    principal: Principal
    outbox: Outbox
    level: int  # protocol level of the connection that last used it
    expiry_s: int = 0  # how long it outlives a disconnect (0: it ends with the connection)
    will: Will | None = None
    link: Link | None = None  # the live connection, if any
    qos2_in: set[int] = field(default_factory=set)  # QoS 2 ids received, not yet released (exactly once)
    expiry_timer: asyncio.TimerHandle | None = None
    will_timer: asyncio.TimerHandle | None = None

    @property
    def connected(self) -> bool:
        return self.link is not None

    @property
    def clean_session(self) -> bool:  # presence tells whether the session persists
        return self.expiry_s == 0

    def cancel_timers(self) -> None:
        for timer in (self.expiry_timer, self.will_timer):
            if timer is not None:
                timer.cancel()
        self.expiry_timer = self.will_timer = None
