"""Pinned messages (docs/protocol.md, "Pins"): members (or, as a group's setting ``pin`` says,
only its owner and admins) pin and unpin messages of their conversations; ``pinned`` lists them.

The ``pins`` table belongs to the message service: a pin is a reference to a message, as a quote
is, and what happens to the message (a recall) changes it in the message's own transaction
(``unpin_sql``). Membership, windows, the conversation's lock and the group's setting are the
conversation service's, asked here. A pin is written under the conversation's lock, so the cap
per conversation holds whatever the number of bridges pinning at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.conversations.service import ConversationService, Membership
from services.errors import Forbidden, NotFound, TooLarge
from services.ids import Clock
from services.messages.commands import StoredMessage
from services.messages.models import Message, Pin
from services.sql import Program, Query, run_on
from services.transactions import transaction

if TYPE_CHECKING:
    from services.blocks.service import BlockService
    from services.messages.service import MessageService

UNPINNABLE = ("member", "recalled", "expired", "ttl")  # membership and ttl events and tombstones are never pinned


@dataclass(frozen=True, slots=True)
class PinChange:
    """A pin or unpin: the message, whether anything changed (a repeat changes nothing and tells
    nobody), and who to tell (the current members whose window holds the message)."""

    message: StoredMessage
    pinned: bool
    changed: bool
    ts: int  # when it was pinned (the pin's, for a repeat), or unpinned
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PinnedMessage:
    message: StoredMessage
    by: str
    ts: int


@dataclass(frozen=True, slots=True)
class Pinned:
    """A conversation's pins as one member sees them: newest pin first, those whose message is in
    its window; ``hidden`` counts the others."""

    pins: list[PinnedMessage]
    hidden: int


def unpin_sql(msg_id: str) -> Program[None]:
    """A recalled message is pinned no more (in the recall's transaction)."""
    yield Query("DELETE FROM pins WHERE message_id = ?", [msg_id])


class Pins:
    def __init__(self, clock: Clock, conversations: ConversationService, blocks: BlockService,
                 messages: MessageService, *, max_pins: int) -> None:
        self._clock = clock
        self._conversations = conversations
        self._blocks = blocks
        self._messages = messages
        self.max_pins = max_pins

    async def pin(self, uid: str, msg_id: str, *, conv: str | None = None) -> PinChange:
        """``uid`` pins a message (idempotent: a pinned one stays as it was pinned).

        Raises:
            NotFound: no such message in ``uid``'s window (or, with ``conv``, not of ``conv``).
            Forbidden: a former member; blocked in a 1:1 ("not allowed"); a group whose setting
                lets only its owner and admins pin; a recalled message or a membership event.
            TooLarge: the conversation has ``max_pins`` pinned messages already.
        """
        row = await self._acting(uid, msg_id, conv)
        if row.type in UNPINNABLE:
            msg = "a recalled message or a membership event cannot be pinned"
            raise Forbidden(msg)
        now = self._clock.now_ms()
        async with transaction() as conn:
            ts, changed = await run_on(conn, self._pin_sql(uid, row, now))
        return PinChange(await self._message(msg_id), True, changed, ts,
                         await self._conversations.audience(row.conv, row.seq))

    def _pin_sql(self, uid: str, row: Message, now: int) -> Program[tuple[int, bool]]:
        # The conversation's lock: pins of one conversation one at a time (the cap), ordered with
        # its membership changes and setting changes.
        locked = yield from self._conversations.lock_sql([row.conv])
        self._may_pin(locked.members_of(row.conv), uid, (yield from self._conversations.pin_rule_sql(row.conv)))
        # The message's row, locked: a recall running now waits for this pin, then removes it.
        found = yield Query("SELECT type FROM messages WHERE id = ?", [row.id], for_update=True)
        if not found or found[0][0] in UNPINNABLE:
            msg = "a recalled message or a membership event cannot be pinned"
            raise Forbidden(msg)
        existing = yield Query("SELECT ts FROM pins WHERE message_id = ?", [row.id])
        if existing:
            return int(existing[0][0]), False
        count = yield Query("SELECT COUNT(*) FROM pins WHERE conv = ?", [row.conv])
        if int(count[0][0]) >= self.max_pins:
            msg = f"a conversation has at most {self.max_pins} pinned messages: unpin one first"
            raise TooLarge(msg)
        yield Query("INSERT INTO pins (conv, message_id, seq, pinned_by, ts) VALUES (?, ?, ?, ?, ?)",
                    [row.conv, row.id, row.seq, uid, now])
        return now, True

    async def unpin(self, uid: str, msg_id: str, *, conv: str | None = None) -> PinChange:
        """``uid`` unpins a message (idempotent: one not pinned stays so, and nobody is told).
        Who may: as ``pin``.

        Raises:
            NotFound, Forbidden: as ``pin`` (a recalled message is simply not pinned).
        """
        row = await self._acting(uid, msg_id, conv)
        now = self._clock.now_ms()
        async with transaction() as conn:
            changed = await run_on(conn, self._unpin_sql(uid, row))
        return PinChange(await self._message(msg_id), False, changed, now,
                         await self._conversations.audience(row.conv, row.seq))

    def _unpin_sql(self, uid: str, row: Message) -> Program[bool]:
        locked = yield from self._conversations.lock_sql([row.conv])
        self._may_pin(locked.members_of(row.conv), uid, (yield from self._conversations.pin_rule_sql(row.conv)))
        existing = yield Query("SELECT id FROM pins WHERE message_id = ?", [row.id])
        if not existing:
            return False
        yield Query("DELETE FROM pins WHERE message_id = ?", [row.id])
        return True

    async def pinned(self, member: Membership) -> Pinned:
        """The conversation's pins, newest first, as ``member`` sees them (at most ``max_pins``).

        Raises:
            NotFound: a former member (it learns nothing more of the conversation).
        """
        if not member.current:
            msg = f"conversation {member.conv!r} not found"
            raise NotFound(msg)
        rows = await Pin.filter(conv=member.conv).order_by("-ts", "-id").values_list("message_id", "seq",
                                                                                    "pinned_by", "ts")
        window = member.window
        shown = [(str(m), str(by), int(ts)) for m, seq, by, ts in rows if window.contains(int(seq))]
        found = await self._messages.by_ids([m for m, _, _ in shown])
        pins = [PinnedMessage(found[m], by, ts) for m, by, ts in shown if m in found]
        return Pinned(pins, len(rows) - len(pins))

    # ---- internals -------------------------------------------------------------------------
    async def _acting(self, uid: str, msg_id: str, conv: str | None) -> Message:
        """The message, if ``uid`` sees it (its window) as a current member, and is not in a 1:1
        whose other member blocks it. An unknown id, a message outside the window and (with
        ``conv``) another conversation's are alike: not found."""
        row = await Message.get_or_none(id=msg_id)
        member: Membership | None = None
        if row is not None and (conv is None or row.conv == conv):
            try:
                member = await self._conversations.membership(row.conv, uid)
            except NotFound:
                member = None
        gone = row is not None and (row.type == "expired" or (row.expires_at or 1 << 62) <= self._clock.now_ms())
        if row is None or member is None or not member.window.contains(row.seq) or gone:  # (expired: gone too)
            msg = f"message {msg_id!r} not found"
            raise NotFound(msg)
        if not member.current:
            msg = "only current members may pin or unpin"
            raise Forbidden(msg)
        if await self._blocks.blocked_in(uid, row.conv):
            msg = "not allowed"
            raise Forbidden(msg)
        return row

    @staticmethod
    def _may_pin(members: dict[str, str], uid: str, rule: str) -> None:
        """Under the lock: still a member, and allowed by the group's setting."""
        if uid not in members:  # removed meanwhile
            msg = "only current members may pin or unpin"
            raise Forbidden(msg)
        if rule == "admins" and members[uid] not in ("owner", "admin"):
            msg = "only the group's owner and admins may pin or unpin messages here"
            raise Forbidden(msg)

    async def _message(self, msg_id: str) -> StoredMessage:
        return (await self._messages.by_ids([msg_id]))[msg_id]
