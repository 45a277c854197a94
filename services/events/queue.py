"""The message-event queue (``message_events``, written in each message's own transaction), read
by several consumers (push, search indexing), each at its own offset. Events every consumer has
passed are trimmed now and then (every ``trim_every`` passes or ``trim_after_s``), not on every
pass: a consumer's pass then costs one statement for its offset, which matters when messages
come one at a time and each is a pass of its own."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import cast

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from services.db import DbInfo
from services.events.models import MessageEvent
from services.sql import Many, Program, Query, fetch, run_on, run_transaction

CONSUMERS = ("push", "search")



@dataclass(frozen=True, slots=True)
class Event:
    id: int
    message_id: str
    created_at: int = 0  # ms: a message's own event has its ts; a later one (recall, edit) its time


class EventQueue:
    def __init__(self, consumers: tuple[str, ...] = CONSUMERS, *, trim_every: int = 256,
                 trim_after_s: float = 1.0) -> None:
        self._consumers = consumers
        self._trim_every = trim_every
        self._trim_after_s = trim_after_s
        self._since_trim = 0
        self._last_trim = time.monotonic()

    @staticmethod
    def _key(consumer: str) -> str:
        return f"events:{consumer}"

    async def lease(self, consumer: str, holder: str, now_ms: int, ttl_ms: int) -> bool:
        """Take or renew ``consumer``'s lease for ``holder`` until ``now_ms + ttl_ms``: one
        process at a time follows a consumer's offset, however many run (``imgate worker`` × N);
        another takes over once a holder has not renewed within the lease. False: someone else
        holds it."""
        try:
            return await run_transaction(self._lease_sql(consumer, holder, now_ms, ttl_ms))
        except IntegrityError:  # two first takers at once (PostgreSQL): the other one won
            return False

    @staticmethod
    def _lease_sql(consumer: str, holder: str, now_ms: int, ttl_ms: int) -> Program[bool]:
        key, value = f"lease:{consumer}", f"{holder}|{now_ms + ttl_ms}"
        rows = yield Query("SELECT value FROM imgate_meta WHERE key = ?", [key], for_update=True)
        if not rows:
            yield Query("INSERT INTO imgate_meta (key, value) VALUES (?, ?)", [key, value])
            return True
        current, _, until = str(rows[0][0]).rpartition("|")
        if current != holder and until.isdigit() and int(until) > now_ms:
            return False
        yield Query("UPDATE imgate_meta SET value = ? WHERE key = ?", [value, key])
        return True

    async def members(self, group: str, holder: str, now_ms: int, ttl_ms: int) -> list[str]:
        """Say ``holder`` is alive in ``group`` until ``now_ms + ttl_ms`` and return the group's
        live members, sorted (``holder`` among them): how the bridges of a cluster share the
        sender shards. Members that stopped saying so are forgotten."""
        return await run_transaction(self._members_sql(group, holder[:200], now_ms, ttl_ms))

    async def leave(self, group: str, holder: str) -> None:
        """``holder`` stops (its share goes to the others at their next call of ``members``)."""
        await DbInfo.filter(key=self._member_key(group, holder[:200])).delete()

    @staticmethod
    def _member_key(group: str, holder: str) -> str:
        return f"member:{group}:{hashlib.sha256(holder.encode()).hexdigest()[:32]}"  # fits the 64-char key

    @classmethod
    def _members_sql(cls, group: str, holder: str, now_ms: int, ttl_ms: int) -> Program[list[str]]:
        key = cls._member_key(group, holder)
        yield Query("DELETE FROM imgate_meta WHERE key = ?", [key])
        yield Query("INSERT INTO imgate_meta (key, value) VALUES (?, ?)", [key, f"{now_ms + ttl_ms}|{holder}"])
        rows = yield Query("SELECT key, value FROM imgate_meta WHERE key LIKE ?", [f"member:{group}:%"])
        live, dead = [], []
        for k, v in rows:
            until, _, name = str(v).partition("|")
            if until.isdigit() and int(until) > now_ms:
                live.append(name)
            else:
                dead.append((k,))
        if dead:
            yield Many("DELETE FROM imgate_meta WHERE key = ?", dead)
        return sorted(live)

    async def offset(self, consumer: str) -> int:
        row = await DbInfo.get_or_none(key=self._key(consumer))
        return int(row.value) if row is not None else 0

    @classmethod
    async def publish(cls, conn: BaseDBAsyncClient, message_ids: list[str], now: int) -> None:
        """Queue events for these messages, in the caller's transaction (stored with them)."""
        await run_on(conn, cls.publish_sql(message_ids, now))

    @staticmethod
    def publish_sql(message_ids: list[str], now: int) -> Program[None]:
        """``publish`` as a program, for a caller's transaction program."""
        if message_ids:
            yield Many("INSERT INTO message_events (message_id, created_at) VALUES (?, ?)",
                       [(m, now) for m in message_ids])

    async def read(self, consumer: str, limit: int) -> list[Event]:
        rows = await fetch("SELECT id, message_id, created_at FROM message_events WHERE id > ? ORDER BY id LIMIT ?",
                           [await self.offset(consumer), limit])
        return [Event(r[0], r[1], r[2]) for r in rows]

    async def pending(self, consumer: str) -> int:
        return await MessageEvent.filter(id__gt=await self.offset(consumer)).count()

    async def done(self, consumer: str, upto: int) -> None:
        """``consumer`` has handled every event up to ``upto`` (its offset moves; a crash before
        this makes it take them again). Trims now and then."""
        key, value = self._key(consumer), str(upto)
        if not await DbInfo.filter(key=key).update(value=value):
            await DbInfo.bulk_create([DbInfo(key=key, value=value)], ignore_conflicts=True)
        self._since_trim += 1
        if self._since_trim >= self._trim_every or time.monotonic() - self._last_trim >= self._trim_after_s:
            await self.trim()

    async def trim(self) -> int:
        """Delete the events every consumer has passed. Returns how many."""
        self._since_trim, self._last_trim = 0, time.monotonic()
        offsets = [int(cast("str", v)) for v in await DbInfo.filter(
            key__in=[self._key(c) for c in self._consumers]).values_list("value", flat=True)]
        if len(offsets) < len(self._consumers):  # a consumer that never ran needs them all
            return 0
        return await MessageEvent.filter(id__lte=min(offsets)).delete()
