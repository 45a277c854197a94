"""MessageService: durable storage, per-conversation sequence numbers, idempotent sends, history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from services.conversations.models import Conversation
from services.conversations.service import ConversationService
from services.errors import BadRequest, NotFound
from services.ids import Clock, direct_conv_id, new_ulid
from services.messages.models import Message
from services.users.service import UserService


@dataclass(frozen=True, slots=True)
class SendCommand:
    """A validated send from the wire (the bridge has checked shapes and sizes)."""

    sender: str
    cid: str
    to: str | None
    group: str | None
    type: str
    text: str | None
    data: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: str
    conv: str
    seq: int
    sender: str
    cid: str
    type: str
    text: str | None
    data: dict[str, Any] | None
    ts: int

    @classmethod
    def from_row(cls, row: Message) -> StoredMessage:
        return cls(row.id, row.conv, row.seq, row.sender, row.cid, row.type, row.text, row.data, row.ts)


@dataclass(frozen=True, slots=True)
class SendResult:
    """The stored message; ``recipients`` are the uids to deliver to (empty on a retried send)."""

    message: StoredMessage
    created: bool
    recipients: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HistoryPage:
    messages: list[StoredMessage]
    has_more: bool


class MessageService:
    def __init__(self, clock: Clock, users: UserService, conversations: ConversationService) -> None:
        self._clock = clock
        self._users = users
        self._conversations = conversations

    async def send(self, cmd: SendCommand) -> SendResult:
        """Store a message once per ``(sender, cid)`` with the conversation's next seq.

        The returned message is committed (durably, with SQLite's synchronous=FULL) before this
        returns, so the caller may ack it. A repeated ``(sender, cid)`` returns the stored message
        with ``created=False`` and no recipients.

        Raises:
            NotFound: the recipient or group does not exist.
        """
        existing = await Message.get_or_none(sender=cmd.sender, cid=cmd.cid)
        if existing is not None:
            return SendResult(StoredMessage.from_row(existing), created=False, recipients=())
        if cmd.group is not None:
            # Groups arrive with their own issue; until then no group exists.
            msg = f"group {cmd.group!r} does not exist"
            raise NotFound(msg)
        if cmd.to is None:
            msg = "exactly one of 'to' or 'group' is required"
            raise BadRequest(msg)
        members = {cmd.sender, cmd.to}
        if await self._users.active_uids(members) != members:
            msg = f"user {cmd.to!r} does not exist"
            raise NotFound(msg)
        conv = direct_conv_id(cmd.sender, cmd.to)
        now = self._clock.now_ms()
        await self._conversations.ensure_direct(conv, members, now)
        try:
            stored = await self._store(conv, cmd, now)
        except IntegrityError:
            # The same (sender, cid) was stored concurrently; its transaction won.
            existing = await Message.get_or_none(sender=cmd.sender, cid=cmd.cid)
            if existing is None:
                raise
            return SendResult(StoredMessage.from_row(existing), created=False, recipients=())
        return SendResult(stored, created=True, recipients=tuple(sorted(members)))

    async def _store(self, conv: str, cmd: SendCommand, now: int) -> StoredMessage:
        msg_id = new_ulid(now)
        async with in_transaction() as conn:
            # The UPDATE takes the conversation's row lock (PostgreSQL) or the write lock
            # (SQLite), so concurrent senders are serialised here and seq has no gaps: a rolled
            # back transaction gives its seq back.
            await Conversation.filter(id=conv).using_db(conn).update(
                last_seq=F("last_seq") + 1, last_ts=now, last_msg_id=msg_id,
            )
            seq = (await Conversation.filter(id=conv).using_db(conn).values_list("last_seq", flat=True))[0]
            row = await Message.create(
                using_db=conn, id=msg_id, conv=conv, seq=seq, sender=cmd.sender, cid=cmd.cid,
                type=cmd.type, text=cmd.text, data=cmd.data, ts=now,
            )
            await self._conversations.mark_sent(conv, cmd.sender, seq, conn)
        return StoredMessage.from_row(row)

    async def history(self, uid: str, conv: str, *, after_seq: int | None, before_seq: int | None,
                      limit: int) -> HistoryPage:
        """A page of a conversation in seq order: after ``after_seq``, before ``before_seq``, or
        the latest ``limit`` messages when neither is given.

        Raises:
            BadRequest: both cursors given.
            NotFound: not a member.
        """
        if after_seq is not None and before_seq is not None:
            msg = "give after_seq or before_seq, not both"
            raise BadRequest(msg)
        member = await self._conversations.membership(conv, uid)
        query = Message.filter(conv=conv, seq__gt=member.joined_seq)
        if after_seq is not None:
            rows = await query.filter(seq__gt=after_seq).order_by("seq").limit(limit + 1)
            has_more = len(rows) > limit
            rows = rows[:limit]
        else:
            if before_seq is not None:
                query = query.filter(seq__lt=before_seq)
            rows = await query.order_by("-seq").limit(limit + 1)
            has_more = len(rows) > limit
            rows = list(reversed(rows[:limit]))
        return HistoryPage([StoredMessage.from_row(r) for r in rows], has_more)

    async def by_ids(self, ids: list[str]) -> dict[str, StoredMessage]:
        rows = await Message.filter(id__in=ids) if ids else []
        return {r.id: StoredMessage.from_row(r) for r in rows}
