"""ConversationService: membership, the conversation list, read markers and unread counts."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import cast

from tortoise.expressions import Q

from services.conversations.models import Conversation, Member
from services.errors import BadRequest, NotFound


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    conv: str
    kind: str
    peer: str | None
    last_seq: int
    read_seq: int
    last_msg_id: str | None
    last_ts: int
    name: str = ""
    muted: bool = False
    pinned: bool = False

    @property
    def unread(self) -> int:
        return max(0, self.last_seq - self.read_seq)


@dataclass(frozen=True, slots=True)
class ReadResult:
    conv: str
    read_seq: int
    last_seq: int
    members: tuple[str, ...]
    advanced: bool

    @property
    def unread(self) -> int:
        return max(0, self.last_seq - self.read_seq)


def peer_of(conv: str, uid: str) -> str | None:
    """The other member of a 1:1 conversation (``d:a:b``), or None for groups."""
    if not conv.startswith("d:"):
        return None
    a, _, b = conv[2:].partition(":")
    return b if a == uid else a


def _encode_cursor(last_ts: int, conv: str) -> str:
    return f"{last_ts}|{conv}"


def _decode_cursor(cursor: str) -> tuple[int, str]:
    ts, sep, conv = cursor.partition("|")
    if not sep or not ts.isdigit() or not conv:
        msg = "invalid cursor"
        raise BadRequest(msg)
    return int(ts), conv


class ConversationService:
    """Conversations and members."""

    def __init__(self, known_max: int = 100_000) -> None:
        # 1:1 conversations never change members: once one is known to exist, it always will.
        self._known: OrderedDict[str, None] = OrderedDict()
        self._known_max = known_max

    async def ensure_direct(self, conv: str, members: set[str], now_ms: int) -> None:
        """Create the 1:1 conversation and its members if missing (idempotent, race-safe)."""
        if conv in self._known:
            self._known.move_to_end(conv)
            return
        if await Member.filter(conv_id=conv).count() < len(members):
            await self._create_direct(conv, members, now_ms)
        self._known[conv] = None
        if len(self._known) > self._known_max:
            self._known.popitem(last=False)

    async def _create_direct(self, conv: str, members: set[str], now_ms: int) -> None:
        await Conversation.bulk_create(
            [Conversation(id=conv, kind="direct", created_at=now_ms)], ignore_conflicts=True,
        )
        await Member.bulk_create(
            [Member(conv_id=conv, uid=uid) for uid in sorted(members)], ignore_conflicts=True,
        )

    async def members(self, conv: str) -> list[str]:
        """Current members (former group members excluded)."""
        return cast("list[str]", list(await Member.filter(conv_id=conv, left_seq=None).values_list("uid", flat=True)))

    async def membership(self, conv: str, uid: str) -> Member:
        """The caller's membership row.

        Raises:
            NotFound: the conversation does not exist or the caller is not a member (the two are
                not told apart, so conversation ids do not leak).
        """
        member = await Member.get_or_none(conv_id=conv, uid=uid)
        if member is None:
            msg = f"conversation {conv!r} not found"
            raise NotFound(msg)
        return member

    async def mark_read(self, uid: str, conv: str, seq: int) -> ReadResult:
        """Move the read marker forward (never backward), capped at the last seq.

        Raises:
            BadRequest: seq is negative.
            NotFound: not a current member (a former group member learns nothing more of it).
        """
        if seq < 0:
            msg = "seq must be >= 0"
            raise BadRequest(msg)
        member = await self.membership(conv, uid)
        if member.left_seq is not None:
            msg = f"conversation {conv!r} not found"
            raise NotFound(msg)
        row = await Conversation.get(id=conv)
        target = min(seq, row.last_seq)
        advanced = bool(await Member.filter(id=member.id, read_seq__lt=target).update(read_seq=target))
        read_seq = max(member.read_seq, target)
        return ReadResult(conv, read_seq, row.last_seq, tuple(await self.members(conv)), advanced)

    async def set_flags(self, uid: str, conv: str, *, muted: bool | None, pinned: bool | None) -> tuple[bool, bool]:
        """Mute or pin a conversation for ``uid``; returns (muted, pinned).

        Raises:
            NotFound: not a current member.
        """
        member = await self.membership(conv, uid)
        if member.left_seq is not None:
            msg = f"conversation {conv!r} not found"
            raise NotFound(msg)
        changes = {k: v for k, v in (("muted", muted), ("pinned", pinned)) if v is not None}
        if changes:
            await Member.filter(id=member.id).update(**changes)
        return changes.get("muted", member.muted), changes.get("pinned", member.pinned)

    async def is_current_member(self, conv: str, uid: str) -> bool:
        return await Member.exists(conv_id=conv, uid=uid, left_seq=None)

    async def list_for(self, uid: str, limit: int, cursor: str | None) -> tuple[list[ConversationSummary], str | None]:
        """The user's conversations, most recently active first, paged by an opaque cursor."""
        query = Member.filter(uid=uid, left_seq=None).select_related("conv")
        if cursor:
            ts, conv = _decode_cursor(cursor)
            query = query.filter(Q(conv__last_ts__lt=ts) | Q(conv__last_ts=ts, conv_id__lt=conv))
        rows = await query.order_by("-conv__last_ts", "-conv_id").limit(limit + 1)
        items = [
            ConversationSummary(
                conv=m.conv.id, kind=m.conv.kind, peer=peer_of(m.conv.id, uid), last_seq=m.conv.last_seq,
                read_seq=m.read_seq, last_msg_id=m.conv.last_msg_id, last_ts=m.conv.last_ts, name=m.conv.name,
                muted=m.muted, pinned=m.pinned,
            )
            for m in rows[:limit]
        ]
        next_cursor = _encode_cursor(items[-1].last_ts, items[-1].conv) if len(rows) > limit else None
        return items, next_cursor
