"""The message-event queue (``message_events``, written in each message's own transaction), read
by several consumers (push, search indexing), each at its own offset. Events every consumer has
passed are trimmed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from tortoise.backends.base.client import BaseDBAsyncClient

from services.db import DbInfo
from services.events.models import MessageEvent
from services.transactions import transaction

CONSUMERS = ("push", "search")


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    message_id: str


class EventQueue:
    def __init__(self, consumers: tuple[str, ...] = CONSUMERS) -> None:
        self._consumers = consumers

    @staticmethod
    def _key(consumer: str) -> str:
        return f"events:{consumer}"

    async def offset(self, consumer: str) -> int:
        row = await DbInfo.get_or_none(key=self._key(consumer))
        return int(row.value) if row is not None else 0

    @staticmethod
    async def publish(conn: BaseDBAsyncClient, message_ids: list[str], now: int) -> None:
        """Queue events for these messages, in the caller's transaction (stored with them)."""
        if message_ids:
            await MessageEvent.bulk_create([MessageEvent(message_id=m, created_at=now) for m in message_ids],
                                           using_db=conn)

    async def read(self, consumer: str, limit: int) -> list[Event]:
        rows = await MessageEvent.filter(id__gt=await self.offset(consumer)).order_by("id").limit(limit)
        return [Event(r.id, r.message_id) for r in rows]

    async def pending(self, consumer: str) -> int:
        return await MessageEvent.filter(id__gt=await self.offset(consumer)).count()

    async def done(self, consumer: str, upto: int) -> None:
        """``consumer`` has handled every event up to ``upto``; trim what all consumers passed."""
        async with transaction() as conn:
            updated = await DbInfo.filter(key=self._key(consumer)).using_db(conn).update(value=str(upto))
            if not updated:
                await DbInfo.create(key=self._key(consumer), value=str(upto), using_db=conn)
            offsets = [int(cast("str", v)) for v in await DbInfo.filter(
                key__in=[self._key(c) for c in self._consumers]).using_db(conn).values_list("value", flat=True)]
            if len(offsets) == len(self._consumers):
                await MessageEvent.filter(id__lte=min(offsets)).using_db(conn).delete()
