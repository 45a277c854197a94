"""BlockService: the owner of the ``blocks`` table. A user blocks another: the blocked one cannot
send to the blocker in 1:1 nor add the blocker to a group (both answered "not allowed", nothing
more), and does not see the blocker's presence in the ``presence`` RPC."""

from __future__ import annotations

from tortoise.exceptions import IntegrityError

from services.blocks.models import Block
from services.errors import BadRequest, NotFound, TooLarge
from services.ids import Clock
from services.sql import AnyOf, Program, Query, fetch
from services.users.service import UserService

MAX_BLOCKED = 10_000  # per user


class BlockService:
    def __init__(self, clock: Clock, users: UserService) -> None:
        self._clock = clock
        self._users = users

    async def add(self, uid: str, target: str) -> bool:
        """``uid`` blocks ``target`` (idempotent). True if it was not blocked before.

        Raises:
            BadRequest: blocking oneself.
            NotFound: no such user.
            TooLarge: ``uid`` already blocks MAX_BLOCKED users.
        """
        if uid == target:
            msg = "you cannot block yourself"
            raise BadRequest(msg)
        if not await self._users.active_uids({target}):
            msg = f"user {target!r} does not exist"
            raise NotFound(msg)
        if await Block.exists(uid=uid, blocked=target):
            return False
        if await Block.filter(uid=uid).count() >= MAX_BLOCKED:
            msg = f"at most {MAX_BLOCKED} blocked users"
            raise TooLarge(msg)
        try:
            await Block.create(uid=uid, blocked=target, ts=self._clock.now_ms())
        except IntegrityError:  # blocked concurrently (another device)
            return False
        return True

    async def remove(self, uid: str, target: str) -> bool:
        """``uid`` unblocks ``target`` (idempotent). True if it was blocked."""
        return bool(await Block.filter(uid=uid, blocked=target).delete())

    async def blocked_by(self, uid: str) -> list[str]:
        """Whom ``uid`` blocks, sorted."""
        return sorted(await Block.filter(uid=uid).values_list("blocked", flat=True))  # type: ignore[arg-type]

    async def blockers(self, uid: str, among: set[str]) -> set[str]:
        """Those of ``among`` who block ``uid``."""
        if not among:
            return set()
        rows = await fetch("SELECT uid FROM blocks WHERE blocked = ? AND uid = ANY(?)", [uid, AnyOf(sorted(among))])
        return {r[0] for r in rows}

    async def blocked_among(self, uid: str, among: set[str]) -> set[str]:
        """Those of ``among`` whom ``uid`` blocks."""
        if not among:
            return set()
        rows = await fetch("SELECT blocked FROM blocks WHERE uid = ? AND blocked = ANY(?)", [uid, AnyOf(sorted(among))])
        return {r[0] for r in rows}

    @staticmethod
    def blocked_pairs_sql(pairs: set[tuple[str, str]]) -> Program[set[tuple[str, str]]]:
        """Which (blocker, blocked) of ``pairs`` hold, in the caller's transaction (a batch of sends)."""
        if not pairs:
            return set()
        rows = yield Query("SELECT uid, blocked FROM blocks WHERE uid = ANY(?) AND blocked = ANY(?)",
                           [AnyOf(sorted({p[0] for p in pairs})), AnyOf(sorted({p[1] for p in pairs}))])
        return {(r[0], r[1]) for r in rows} & pairs
