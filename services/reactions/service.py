"""ReactionService: the owner of the ``reactions`` table. Members add and remove emoji reactions
to the messages of their conversations (the message service says which they may see); history
and the conversation list carry each message's counts and the caller's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from tortoise.exceptions import IntegrityError

from services.errors import Forbidden, TooLarge
from services.ids import Clock
from services.messages.commands import StoredMessage
from services.messages.service import MessageService
from services.reactions.models import Reaction
from services.sql import AnyOf, fetch

MAX_PER_USER = 20  # distinct emoji one user may put on one message


@dataclass(frozen=True, slots=True)
class Summary:
    """A message's reactions as one caller sees them."""

    counts: dict[str, int] = field(default_factory=dict)  # emoji -> how many users
    mine: list[str] = field(default_factory=list)  # the caller's, in emoji order


@dataclass(frozen=True, slots=True)
class Change:
    message: StoredMessage
    members: tuple[str, ...]  # who to tell: the current members whose window holds the message
    changed: bool  # False: it was already so (added twice, removed when absent)
    count: int  # users with this emoji on the message now


class ReactionService:
    def __init__(self, clock: Clock, messages: MessageService) -> None:
        self._clock = clock
        self._messages = messages

    async def add(self, uid: str, msg_id: str, emoji: str) -> Change:
        """``uid`` reacts with ``emoji`` (idempotent).

        Raises:
            NotFound: no such message visible to ``uid``.
            Forbidden: a former member, a user the other member of the 1:1 blocks ("not allowed"), or a
                message that takes no reactions (recalled, membership).
            TooLarge: ``uid`` already has MAX_PER_USER emoji on it.
        """
        message, members = await self._reactable(uid, msg_id)
        changed = False
        if not await Reaction.exists(message_id=msg_id, uid=uid, emoji=emoji):
            if await Reaction.filter(message_id=msg_id, uid=uid).count() >= MAX_PER_USER:
                msg = f"at most {MAX_PER_USER} reactions per message"
                raise TooLarge(msg)
            try:
                await Reaction.create(message_id=msg_id, uid=uid, emoji=emoji, ts=self._clock.now_ms())
                changed = True
            except IntegrityError:  # added concurrently (another device): the same outcome
                pass
        return Change(message, members, changed, await Reaction.filter(message_id=msg_id, emoji=emoji).count())

    async def remove(self, uid: str, msg_id: str, emoji: str) -> Change:
        """``uid`` takes its ``emoji`` back (idempotent). Raises as ``add``."""
        message, members = await self._reactable(uid, msg_id)
        changed = bool(await Reaction.filter(message_id=msg_id, uid=uid, emoji=emoji).delete())
        return Change(message, members, changed, await Reaction.filter(message_id=msg_id, emoji=emoji).count())

    async def clear(self, msg_id: str) -> None:
        """A recalled message keeps no reactions."""
        await Reaction.filter(message_id=msg_id).delete()

    async def clear_many(self, ids: list[str]) -> None:
        """Expired messages keep no reactions (services/messages/expiry.py)."""
        if ids:
            await Reaction.filter(message_id__in=ids).delete()

    async def summaries(self, ids: list[str], uid: str) -> dict[str, Summary]:
        """The reactions of the messages ``ids`` (those that have any), as ``uid`` sees them: one query."""
        if not ids:
            return {}
        rows = await fetch("SELECT message_id, emoji, COUNT(*), SUM(CASE WHEN uid = ? THEN 1 ELSE 0 END) "
                           "FROM reactions WHERE message_id = ANY(?) GROUP BY message_id, emoji ORDER BY message_id, emoji",
                           [uid, AnyOf(sorted(set(ids)))])
        out: dict[str, Summary] = {}
        for message_id, emoji, count, mine in rows:
            s = out.setdefault(message_id, Summary())
            s.counts[emoji] = int(count)
            if mine:
                s.mine.append(emoji)
        return out

    async def _reactable(self, uid: str, msg_id: str) -> tuple[StoredMessage, tuple[str, ...]]:
        message, members = await self._messages.reactable(uid, msg_id)
        if message.type in ("recalled", "member"):
            msg = f"a {message.type} message takes no reactions"
            raise Forbidden(msg)
        return message, members

    # ---- privacy (services/privacy) ------------------------------------------------------------
    @staticmethod
    async def export_user(uid: str, batch: int = 500) -> AsyncIterator[dict[str, object]]:
        """The user's reactions, a page at a time (id order), as archive records."""
        after = 0
        while rows := await Reaction.filter(uid=uid, id__gt=after).order_by("id").limit(batch):
            for r in rows:
                yield {"message_id": r.message_id, "emoji": r.emoji, "ts": r.ts}
            after = rows[-1].id

    @staticmethod
    async def erase_user(uid: str) -> int:
        """Delete the user's reactions."""
        return int(await Reaction.filter(uid=uid).delete())
