"""BlockService: the owner of the ``blocks`` table. A user blocks another: the blocked one cannot
send to the blocker in 1:1 nor add the blocker to a group (both answered "not allowed", nothing
more), nor react, edit, type or send read receipts to the blocker in their 1:1
(:meth:`BlockService.blocked_in`), and does not see the blocker's presence (the ``presence`` RPC,
and with the embedded broker the ``presence/{uid}/…`` topics: :meth:`BlockService.presence_filter`)."""

from __future__ import annotations

from collections.abc import Callable

from tortoise.exceptions import IntegrityError

from services.blocks.models import Block
from services.conversations.service import peer_of
from services.errors import BadRequest, NotFound, TooLarge
from services.ids import Clock
from services.sql import AnyOf, Program, Query, fetch
from services.users.service import UserService

MAX_BLOCKED = 10_000  # per user


class BlockService:
    def __init__(self, clock: Clock, users: UserService) -> None:
        self._clock = clock
        self._users = users
        # blocked uid -> its blockers, kept in memory once presence_filter() was asked for.
        self._blockers: dict[str, set[str]] | None = None

    async def presence_filter(self) -> Callable[[str, str], bool]:
        """``hidden(viewer, subject)``: does ``subject`` block ``viewer``? For the embedded broker,
        which checks it on every presence delivery, so it answers from memory: the block list is
        read once here, then kept current by this service's ``add`` and ``remove`` (with the
        embedded broker, this process is the only one that changes blocks)."""
        blockers: dict[str, set[str]] = {}
        for blocker, blocked in await Block.all().values_list("uid", "blocked"):
            blockers.setdefault(str(blocked), set()).add(str(blocker))
        self._blockers = blockers
        return lambda viewer, subject: subject in blockers.get(viewer, ())

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
            created = True
        except IntegrityError:  # blocked concurrently (another device)
            created = False
        if self._blockers is not None:
            self._blockers.setdefault(target, set()).add(uid)
        return created

    async def remove(self, uid: str, target: str) -> bool:
        """``uid`` unblocks ``target`` (idempotent). True if it was blocked."""
        removed = bool(await Block.filter(uid=uid, blocked=target).delete())
        if self._blockers is not None and uid in self._blockers.get(target, ()):
            self._blockers[target].discard(uid)
            if not self._blockers[target]:
                del self._blockers[target]
        return removed

    async def blocked_by(self, uid: str) -> list[str]:
        """Whom ``uid`` blocks, sorted."""
        return sorted(await Block.filter(uid=uid).values_list("blocked", flat=True))  # type: ignore[arg-type]

    async def blockers(self, uid: str, among: set[str]) -> set[str]:
        """Those of ``among`` who block ``uid``."""
        if not among:
            return set()
        rows = await fetch("SELECT uid FROM blocks WHERE blocked = ? AND uid = ANY(?)", [uid, AnyOf(sorted(among))])
        return {r[0] for r in rows}

    async def blocked_in(self, uid: str, conv: str) -> bool:
        """``conv`` is a 1:1 whose other member blocks ``uid``: nothing ``uid`` does there reaches
        the other (its reactions and edits are refused, its typing and read receipts not sent)."""
        peer = peer_of(conv, uid)
        return peer is not None and peer != uid and bool(await self.blockers(uid, {peer}))

    async def related(self, uid: str, among: set[str]) -> set[str]:
        """Those of ``among`` who block ``uid`` or whom ``uid`` blocks (one query)."""
        if not among:
            return set()
        others = AnyOf(sorted(among))
        rows = await fetch("SELECT uid, blocked FROM blocks WHERE (blocked = ? AND uid = ANY(?)) "
                           "OR (uid = ? AND blocked = ANY(?))", [uid, others, uid, others])
        return {b if a == uid else a for a, b in rows}

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

    # ---- privacy (services/privacy) ------------------------------------------------------------
    @staticmethod
    async def export_user(uid: str) -> list[dict[str, object]]:
        """Whom the user blocks (and since when), as records of the export archive."""
        return [{"blocked": r.blocked, "ts": r.ts} for r in await Block.filter(uid=uid).order_by("blocked")]

    @staticmethod
    async def erase_user(uid: str) -> int:
        """Delete the user's blocks, and others' blocks of them (nothing is left to block)."""
        return int(await Block.filter(uid=uid).delete()) + int(await Block.filter(blocked=uid).delete())
