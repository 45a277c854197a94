"""Disappearing messages (docs/protocol.md, "Disappearing messages"): a conversation's ``ttl``
(seconds), set by either member of a 1:1 or a group's owner and admins; a message sent while it
is set carries ``expires_at`` (its ts + the ttl, fixed at send time: ``MessageService._store_sql``
reads the ttl from the conversation row it locks anyway); the sweep turns due messages into
tombstones of type ``expired``.

A tombstone, not a deletion: it keeps the message's id, seq, sender, cid and ts and nothing it
said (no text, data, mentions, quote, attachment or preview), as a recall's does. So a
conversation's seqs stay gap-free (a client syncing ``after_seq`` tells "expired" from "lost"),
the send's cid stays idempotent (a retry of an expired send is answered with the tombstone, not
stored again), and a reply that quoted it quotes an expired message. With the row go, in the
same transaction: its pins, its mention rows, the quotes' excerpts, its uploads' "used" mark (the
uploads are released after the commit, as a recall does), and a message event that makes the
search indexer drop it. Push drops its jobs still waiting (``push_jobs.expires_at``).

The sweep is driven by the database (``messages.expires_at``, a partial index): a server that was
down expires what came due meanwhile when it starts, and each pass takes a bounded batch in a
transaction of its own, oldest first. ``App`` runs it under the event queue's lease, so one process
of a cluster sweeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.conversations.service import ConversationService
from services.errors import BadRequest, Forbidden, NotFound
from services.events.queue import EventQueue
from services.ids import Clock
from services.messages.commands import StoredMessage
from services.messages.forwards import unfile_sql
from services.sql import AnyOf, Many, Program, Query, json_text, run_on, run_transaction
from services.transactions import transaction

if TYPE_CHECKING:
    from services.attachments.service import AttachmentService
    from services.blocks.service import BlockService
    from services.messages.service import MessageService

EXPIRED = "expired"  # a tombstone's type
TTL = "ttl"  # the server's message telling a conversation that its ttl changed (data: {"ttl": s or null})


@dataclass(frozen=True, slots=True)
class TtlChange:
    """A ttl set: the conversation's ttl now (None: off), the stored ``ttl`` message (None when
    nothing changed: a repeat tells nobody) and who to tell (its current members)."""

    conv: str
    ttl: int | None
    message: StoredMessage | None
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Expired:
    """Messages of one conversation that expired in a pass: (id, seq), in seq order."""

    conv: str
    messages: tuple[tuple[str, int], ...]


class Expiry:
    def __init__(self, clock: Clock, conversations: ConversationService, blocks: BlockService,
                 messages: MessageService, events: EventQueue, attachments: AttachmentService, *,
                 min_ttl_s: int, max_ttl_s: int) -> None:
        self._clock = clock
        self._conversations = conversations
        self._blocks = blocks
        self._messages = messages
        self._events = events
        self._attachments = attachments
        self.min_ttl_s = min_ttl_s
        self.max_ttl_s = max_ttl_s

    # ---- the setting ------------------------------------------------------------------------
    async def set_ttl(self, uid: str, conv: str, ttl: int | None) -> TtlChange:
        """Set ``conv``'s ttl (None or 0: off). Idempotent: the same value again stores and tells
        nothing. A change is stored as a ``ttl`` message (the conversation's next seq, shown in
        history) in the transaction that changes the setting, under the conversation's lock, so
        every send is before it (no ttl) or after it (this ttl).

        Raises:
            BadRequest: a ttl outside ``[min_ttl_s, max_ttl_s]``.
            NotFound: no such conversation, or ``uid`` is not a current member of it.
            Forbidden: a plain member of a group; a 1:1 whose other member blocks ``uid``.
        """
        ttl = ttl or None
        if ttl is not None and not self.min_ttl_s <= ttl <= self.max_ttl_s:
            msg = f"ttl must be 0 (off) or {self.min_ttl_s}-{self.max_ttl_s} seconds"
            raise BadRequest(msg)
        if await self._blocks.blocked_in(uid, conv):
            msg = "not allowed"
            raise Forbidden(msg)
        now = self._clock.now_ms()
        async with transaction() as conn:
            return await run_on(conn, self._set_sql(uid, conv, ttl, now))

    def _set_sql(self, uid: str, conv: str, ttl: int | None, now: int) -> Program[TtlChange]:
        locked = yield from self._conversations.lock_sql([conv])
        members = locked.members_of(conv)
        if uid not in members:  # not a member, a former one, or no such conversation: alike
            msg = f"conversation {conv!r} not found"
            raise NotFound(msg)
        if locked.kinds[conv] == "group" and members[uid] not in ("owner", "admin"):
            msg = "only the group's owner and admins may change its ttl"
            raise Forbidden(msg)
        if locked.ttls.get(conv) == ttl:
            return TtlChange(conv, ttl, None, ())
        yield from self._conversations.set_ttl_sql(conv, ttl)
        message = yield from self._messages.append_sql(locked, conv, uid, TTL, {"ttl": ttl}, now)
        yield from self._conversations.commit_seqs_sql(locked)
        yield from self._conversations.mark_sent_read_sql({(conv, uid): message.seq})
        return TtlChange(conv, ttl, message, tuple(sorted(members)))

    # ---- the sweep --------------------------------------------------------------------------
    async def expire_due(self, limit: int) -> list[Expired]:
        """Turn up to ``limit`` messages due by now into tombstones (oldest due first), in one
        transaction, then release their uploads. Returns them by conversation (empty: none due)."""
        now = self._clock.now_ms()
        found, files = await run_transaction(self._expire_sql(now, limit))
        if files:  # deleted once nothing else (a forward, a profile) refers to them
            await self._attachments.release(files)
        return found

    def _expire_sql(self, now: int, limit: int) -> Program[tuple[list[Expired], list[str]]]:
        # Locked (PostgreSQL): a recall or a pin of one of them waits, then finds a tombstone.
        rows = yield Query("SELECT id, conv, seq, sender, mentions, file_key, thumb_key, type FROM messages "
                           "WHERE expires_at <= ? ORDER BY expires_at, id LIMIT ?", [now, limit], for_update=True)
        if not rows:
            return [], []
        ids = [r[0] for r in rows]
        yield Query("UPDATE messages SET type = ?, text = NULL, data = NULL, mentions = NULL, reply = NULL, "
                    "reply_to = NULL, edited_at = NULL, file_key = NULL, thumb_key = NULL, preview = NULL, "
                    "forwarded = NULL, expires_at = NULL WHERE id = ANY(?)", [EXPIRED, AnyOf(ids)])
        # The replies quoting them quote an expired message from now on (no excerpt).
        yield Many("UPDATE messages SET reply = ? WHERE reply_to = ?",
                   [(json_text({"id": r[0], "seq": r[2], "from": r[3], "type": EXPIRED, "excerpt": ""}), r[0])
                    for r in rows])
        yield Query("DELETE FROM pins WHERE message_id = ANY(?)", [AnyOf(ids)])
        for r in rows:
            if r[4] is not None:  # they mention nobody any more (nor count as unread mentions)
                yield from self._conversations.unmention_sql(r[1], int(r[2]))
        files = [k for r in rows for k in (r[5], r[6]) if k is not None]
        merged = [r[0] for r in rows if r[7] == "merged"]
        if merged:  # a merged message's own references (services/messages/forwards.py)
            files += yield from unfile_sql(*merged)
        if files:  # not used by these any more (the sweep of uploads looks again if the release fails)
            yield from self._attachments.used_sql(files, used=False)
        yield from self._events.publish_sql(ids, now)  # the search index drops them
        by_conv: dict[str, list[tuple[str, int]]] = {}
        for r in rows:
            by_conv.setdefault(r[1], []).append((r[0], int(r[2])))
        return [Expired(conv, tuple(sorted(ms, key=lambda m: m[1]))) for conv, ms in sorted(by_conv.items())], files

    async def audience(self, expired: Expired) -> dict[str, list[tuple[str, int]]]:
        """Who is told of these expired messages, and of which: each current member of the
        conversation, of those in its window (one query per conversation)."""
        seeing = await self._conversations.audiences(expired.conv, [seq for _, seq in expired.messages])
        out: dict[str, list[tuple[str, int]]] = {}
        for msg_id, seq in expired.messages:
            for uid in seeing.get(seq, ()):
                out.setdefault(uid, []).append((msg_id, seq))
        return out
