"""MessageService: the owner of the ``messages`` table: durable storage, idempotent sends,
history and recall. Sequence numbers and membership come from the conversation service (which
owns them), the message-event queue is ``services.events``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Self

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from services.attachments.service import refs
from services.callbacks.outbox import CallbackOutbox, Entry, message_data
from services.conversations.service import (
    ALL,
    ConversationService,
    Locked,
    Membership,
    MentionRules,
    ReadBy,
    peer_of,
)
from services.conversations.window import Window
from services.errors import BadRequest, Forbidden, NotFound, RateLimited, TooLarge, Unavailable
from services.events.queue import EventQueue
from services.ids import Clock, new_ulid
from services.messages.commands import ATTACHMENT_TYPES, SendCommand, StoredMessage
from services.messages.expiry import EXPIRED, TTL, Expiry
from services.messages.forwards import MERGED_FILES_SQL, Copy, copies_sql, files_sql, unfile_sql
from services.messages.models import Message
from services.messages.pins import Pins, unpin_sql
from services.messages.threads import Threads, record_sql, resolve_sql

if TYPE_CHECKING:
    from services.attachments.service import AttachmentService
    from services.blocks.service import BlockService
    from services.contacts.service import ContactService
from services.sql import AnyOf, Many, Program, Query, Row, fetch, json_text, json_value, run_on, run_transaction
from services.transactions import transaction
from services.users.service import UserService

log = logging.getLogger("imgate.messages")

_COLUMNS = ("id, conv, seq, sender, cid, type, text, data, ts, mentions, reply, edited_at, preview, forwarded, "
            "thread, tseq, expires_at")
_INSERTED = f"{_COLUMNS}, reply_to, file_key, thumb_key"
EXCERPT_CHARS = 100  # a reply's quote carries this much of the text it answers
_NOT_ERASED = ("recalled", "member", TTL, EXPIRED)  # what an erasure leaves as it is (services/privacy)


def _stored(row: Row) -> StoredMessage:
    """A ``messages`` row of ``_COLUMNS`` as a StoredMessage."""
    return StoredMessage(row[0], row[1], row[2], row[3], row[4], row[5], row[6], json_value(row[7]), row[8],
                         tuple(json_value(row[9]) or ()), json_value(row[10]), row[11], json_value(row[12]),
                         json_value(row[13]), row[14], row[15], row[16])


COLUMNS, stored = _COLUMNS, _stored  # for services.messages.threads


def _insert_sql(messages: list[StoredMessage]) -> Program[None]:
    yield Many(f"INSERT INTO messages ({_INSERTED}) VALUES ({', '.join('?' * 20)})",
               [(m.id, m.conv, m.seq, m.sender, m.cid, m.type, m.text, json_text(m.data), m.ts,
                 json_text(list(m.mentions)) if m.mentions else None, json_text(m.reply), m.edited_at,
                 json_text(m.preview), json_text(m.forwarded), m.thread, m.tseq, m.expires_at,
                 m.reply["id"] if m.reply else None, *_file_keys(m)) for m in messages])


def _file_keys(m: StoredMessage) -> tuple[str | None, str | None]:
    """The upload keys of an attachment message: its file's and its thumbnail's."""
    a = m.attachment
    if a is None:
        return None, None
    return a.get("key"), (a.get("thumbnail") or {}).get("key")


def _quotes_sql(ids: set[str], now: int) -> Program[dict[str, tuple[str, dict[str, Any]]]]:
    """The quotes of the messages ``ids`` that replies answer: id -> (its conversation, quote). A
    disappearing message whose time has come (``now``) is ``expired``, swept or not."""
    if not ids:
        return {}
    rows = yield Query("SELECT id, conv, seq, sender, type, text, expires_at FROM messages WHERE id = ANY(?)",
                       [AnyOf(sorted(ids))])
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for r in rows:
        type_ = EXPIRED if r[6] is not None and r[6] <= now else r[4]
        out[r[0]] = (r[1], {"id": r[0], "seq": r[2], "from": r[3], "type": type_,
                            "excerpt": (r[5] or "")[:EXCERPT_CHARS] if type_ == "text" else ""})
    return out


def _unexpired(m: StoredMessage, now: int) -> StoredMessage:
    """``m``, or its tombstone if it is due and the sweep has not been by yet: an expired message
    shows nothing of itself from its ``expires_at`` on, whenever the sweep comes."""
    if m.expires_at is None or m.expires_at > now:
        return m
    # As the sweep leaves it: a thread reply keeps its thread and tseq.
    return StoredMessage(m.id, m.conv, m.seq, m.sender, m.cid, EXPIRED, None, None, m.ts, thread=m.thread, tseq=m.tseq)


unexpired = _unexpired  # for services.messages.threads


def _gone(row: Message, now: int) -> bool:
    """An expired message (swept or due): as unknown as any other id."""
    return row.type == EXPIRED or (row.expires_at is not None and row.expires_at <= now)


@dataclass(frozen=True, slots=True)
class SendResult:
    """The stored message; ``recipients`` are the uids to deliver to (empty on a retried send),
    ``mentioned`` those of them whose copy says ``mentioned`` (by uid or @all; not the sender, nor
    a member who blocks the sender)."""

    message: StoredMessage
    created: bool
    recipients: tuple[str, ...]
    mentioned: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class HistoryPage:
    messages: list[StoredMessage]
    has_more: bool


class MessageService:
    """Stores messages. Under load, concurrent sends are committed together (group commit): one
    transaction, one fsync and a handful of statements for a whole batch, instead of per message.

    ``run()`` is the committer (a task of the composition root's TaskGroup); while it is not
    running, each send commits alone.
    """

    def __init__(self, clock: Clock, users: UserService, conversations: ConversationService, *,
                 blocks: BlockService, events: EventQueue | None = None, batch_max: int = 256, queue_max: int = 10_000,
                 recall_window_s: int = 120, edit_window_s: int = 900, max_text: int = 8000,
                 store_timeout_s: float = 30.0, contacts: ContactService | None = None,
                 attachments: AttachmentService, mention_all_per_minute: int = 3, max_pins: int = 50,
                 min_ttl_s: int = 3600, max_ttl_s: int = 90 * 86400, outbox: CallbackOutbox | None = None) -> None:
        """``contacts``: the contacts policy is on (a 1:1 needs the two to be contacts).
        ``outbox``: the callbacks' outbox (``after_send``, ``after_edit``, ``after_recall``).
        ``mention_all_per_minute``: @all mentions a group may have in a minute. ``max_pins``:
        pinned messages a conversation may have."""
        self._clock = clock
        self._mention_all_per_minute = mention_all_per_minute
        self._attachments = attachments
        self._recall_window_ms = recall_window_s * 1000
        self._edit_window_ms = edit_window_s * 1000
        self._max_text = max_text
        self._blocks = blocks
        self._contacts = contacts
        self._users = users
        self._conversations = conversations
        self._events = events or EventQueue()
        self.outbox = outbox or CallbackOutbox()  # (the groups' membership events are written through it too)
        self._store_timeout_s = store_timeout_s
        self._batch_max = batch_max
        self._queue: asyncio.Queue[tuple[SendCommand, asyncio.Future[SendResult]]] = asyncio.Queue(queue_max)
        self._running = False
        self._waiting: dict[asyncio.Future[SendResult], float] = {}  # queued or being stored -> deadline
        self.batches = 0  # committed batches (read by metrics and the benchmark)
        self.pins = Pins(clock, conversations, blocks, self, max_pins=max_pins)  # the pins table is ours too
        self.threads = Threads(self, conversations, clock)  # and the threads tables
        self.expiry = Expiry(clock, conversations, blocks, self, self._events, attachments,  # disappearing messages
                             min_ttl_s=min_ttl_s, max_ttl_s=max_ttl_s)

    @asynccontextmanager
    async def committing(self) -> AsyncIterator[Self]:
        """The committer for the scope of a ``with`` (tools, tests, benchmarks; the app runs
        ``run`` in its TaskGroup)."""
        try:
            async with asyncio.TaskGroup() as tg:
                committer = tg.create_task(self.run(), name="imgate.messages.committer")
                self._running = True  # sends queue from now on; the committer takes them once it runs
                try:
                    yield self
                finally:
                    committer.cancel()
        except BaseExceptionGroup as group:  # the with-body's own error, as it was raised
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        finally:
            self._running = False

    @property
    def running(self) -> bool:
        """The committer runs: sends are stored in batches."""
        return self._running

    async def run(self) -> None:
        """The committer: stores what ``send`` queues, a batch per transaction, until cancelled,
        and the sweeper that answers sends waiting longer than ``store_timeout_s``. Sends still
        queued when it stops fail (nothing was stored for them: their clients retry)."""
        self._running = True
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._commit_loop(), name="imgate.messages.commit-loop")
                tg.create_task(self._sweep(), name="imgate.messages.sweeper")
        finally:
            self._running = False
            while not self._queue.empty():
                _, fut = self._queue.get_nowait()
                if not fut.done():
                    fut.set_exception(Unavailable("message service stopped: retry with the same cid"))

    async def send(self, cmd: SendCommand) -> SendResult:
        """Store a message once per ``(sender, cid)`` with the conversation's next seq.

        The returned message is committed (durably, with SQLite's synchronous=FULL) before this
        returns, so the caller may ack it. A repeated ``(sender, cid)`` returns the stored message
        with ``created=False`` and no recipients.

        Raises:
            NotFound: the recipient or group does not exist.
            Unavailable: not stored within ``store_timeout_s`` (or the committer stopped). Not
                acked: the client sends again with the same cid. A send the committer had not
                taken yet never will be; one it had taken (a transaction that outlived the
                timeout) is stored, the retry is acked with it, and recipients see it when they
                next sync.
        """
        self._validate(cmd)
        if cmd.type in ATTACHMENT_TYPES and not await Message.exists(sender=cmd.sender, cid=cmd.cid):
            # The objects are there, as the message states (a retry of a stored send is acked as it was).
            await self._attachments.verify(cmd.sender, refs(cmd.data))
        if not self._running:
            result = (await self._commit([cmd]))[0]
            if isinstance(result, Exception):
                raise result
            return result
        fut: asyncio.Future[SendResult] = asyncio.get_running_loop().create_future()
        # One sweeper for every waiting send (not a timer each: the hot path stays timer-free).
        self._waiting[fut] = time.monotonic() + self._store_timeout_s
        try:
            await self._queue.put((cmd, fut))
            return await fut  # cancelled with its sender: the committer skips it if it has not taken it
        finally:
            self._waiting.pop(fut, None)

    async def _sweep(self) -> None:
        """Answer ``unavailable`` to every send waiting past its deadline (checked a few times
        per timeout: a deadline, not synchronisation)."""
        interval = min(1.0, self._store_timeout_s / 4)
        msg = f"not stored within {self._store_timeout_s:g} s: retry with the same cid"
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            expired = []
            for fut, deadline in self._waiting.items():  # oldest first
                if deadline > now:
                    break
                expired.append(fut)
            for fut in expired:
                del self._waiting[fut]
                if not fut.done():  # the committer skips it, or drops its result
                    fut.set_exception(Unavailable(msg))

    @staticmethod
    def _validate(cmd: SendCommand) -> None:
        if (cmd.to is None) == (cmd.group is None):
            msg = "exactly one of 'to' or 'group' is required"
            raise BadRequest(msg)
        if cmd.to is not None and cmd.mentions and ALL in cmd.mentions:
            msg = "mentions: @all is for groups"
            raise BadRequest(msg)

    async def _commit_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            batch = [(cmd, fut) for cmd, fut in batch if not fut.done()]  # given up by their senders
            if not batch:
                continue
            try:
                results = await self._commit([cmd for cmd, _ in batch])
            except Exception as exc:  # the whole batch failed (database down): each sender retries
                log.exception("committing %d messages failed", len(batch))
                results = [exc] * len(batch)
            except BaseException as exc:  # cancelled mid-batch: nothing is acked, clients retry
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(Unavailable("message service stopped: retry with the same cid"))
                raise exc from None
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    if isinstance(result, Exception):
                        fut.set_exception(result)
                    else:
                        fut.set_result(result)

    async def _commit(self, cmds: list[SendCommand]) -> list[SendResult | Exception]:
        """Store a batch in one transaction. Returns, per command, its result or the error to
        tell its sender."""
        now = self._clock.now_ms()
        try:
            results, created = await run_transaction(self._commit_sql(cmds, now))
        except IntegrityError:
            # A concurrent writer (another bridge) stored one of these (sender, cid) meanwhile:
            # redo them one by one, each in its own transaction (a stored duplicate wins).
            results, created = [], []
            for cmd in cmds:
                for attempt in range(2):
                    try:
                        one, convs = await run_transaction(self._commit_sql([cmd], now))
                        break
                    except IntegrityError:
                        if attempt:
                            raise
                results += one
                created += convs
        self._conversations.remember_direct(created)
        self.batches += 1
        return results

    def _commit_sql(self, cmds: list[SendCommand], now: int) -> Program[tuple[list[SendResult | Exception], list[str]]]:
        """The batch as one transaction program: returns each command's result and the 1:1
        conversations it made sure of."""
        results: list[SendResult | Exception | None] = [None] * len(cmds)
        # 1. Retries: already stored (one query for the batch, on the (sender, cid) index; where
        #    the lists match more than the pairs, the extra rows are not looked up).
        pairs = sorted({(c.sender, c.cid) for c in cmds})
        existing = yield Query(
            f"SELECT {_COLUMNS} FROM messages WHERE sender = ANY(?) AND cid = ANY(?)",
            [AnyOf([s for s, _ in pairs]), AnyOf([c for _, c in pairs])],
            # PostgreSQL's generic plan would take the index on sender alone and filter every
            # message of those senders by cid: look each pair up instead.
            postgres=f"SELECT {_COLUMNS} FROM messages JOIN unnest(?::varchar[], ?::varchar[]) AS k(s, c) "
                     "ON sender = k.s AND cid = k.c")
        stored = {(r[3], r[4]): _stored(r) for r in existing}
        # 2. 1:1 recipients that exist and are not disabled (one query). Group membership is
        #    checked below, under the conversation's lock.
        wanted = {u for c in cmds if c.to is not None for u in (c.sender, c.to)}
        active = (yield from self._users.active_uids_sql(wanted)) if wanted else set()
        new: list[tuple[int, SendCommand]] = []
        first_of: dict[tuple[str, str], int] = {}
        for i, c in enumerate(cmds):
            key = (c.sender, c.cid)
            if key in stored:
                results[i] = SendResult(stored[key], created=False, recipients=())
            elif key in first_of:
                continue  # the same cid twice in one batch: answered from the first, below
            elif c.to is not None and (c.to not in active or c.sender not in active):
                results[i] = NotFound(f"user {c.to!r} does not exist")
            else:
                first_of[key] = i
                new.append((i, c))
        if new:  # refused 1:1s go no further: not even their conversation is made (that would tell)
            new = yield from self._allowed_sql(new, results)
        ensured: list[str] = []
        if new:
            # In id order, as lock_sql locks: two bridges making the same new 1:1s in one batch each
            # would otherwise wait on each other's uncommitted row (a deadlock PostgreSQL breaks by
            # failing a batch: seen in the node-loss test, where pairs send both ways).
            for conv, members in sorted({c.conv: {c.sender, c.to} for _, c in new if c.to is not None}.items()):
                if not self._conversations.direct_known(conv):
                    yield from self._conversations.ensure_direct_sql(conv, members, now)
                    ensured.append(conv)
            for i, outcome in (yield from self._store_sql(new, now)).items():
                results[i] = outcome
        for i, c in enumerate(cmds):  # in-batch duplicates share the first one's message
            if results[i] is None:
                first = results[first_of[(c.sender, c.cid)]]
                results[i] = SendResult(first.message, created=False, recipients=()) \
                    if isinstance(first, SendResult) else first
        return results, ensured  # type: ignore[return-value]

    def _allowed_sql(self, new: list[tuple[int, SendCommand]], results: list[SendResult | Exception | None]
                     ) -> Program[list[tuple[int, SendCommand]]]:
        """The sends of ``new`` that may go: not a 1:1 to someone who blocks the sender, nor (under
        ``messaging.policy = "contacts"``) to someone who is not the sender's contact. The others
        get ``forbidden`` "not allowed" in ``results``, and nothing more: the sender is not told why."""
        pairs = {(c.sender, c.to) for _, c in new if c.to is not None and c.to != c.sender}
        if not pairs:
            return new
        blocked = yield from self._blocks.blocked_pairs_sql({(to, sender) for sender, to in pairs})
        strangers: set[tuple[str, str]] = set()
        if self._contacts is not None:
            strangers = pairs - (yield from self._contacts.contacts_sql(pairs))
        if not blocked and not strangers:
            return new
        kept = []
        for i, c in new:
            if c.to is not None and ((c.to, c.sender) in blocked or (c.sender, c.to) in strangers):
                results[i] = Forbidden("not allowed")
            else:
                kept.append((i, c))
        return kept

    def _store_sql(self, new: list[tuple[int, SendCommand]], now: int) -> Program[dict[int, SendResult | Exception]]:
        out: dict[int, SendResult | Exception] = {}
        # The conversations' counters and members, locked: the batch's messages are numbered in
        # arrival order, continuing each conversation's sequence.
        locked = yield from self._conversations.lock_sql({c.conv for _, c in new})
        stored: list[StoredMessage] = []
        read_marks: dict[tuple[str, str], int] = {}
        replies = [c for _, c in new if c.reply_to is not None]
        quotes = yield from _quotes_sql({c.reply_to for c in replies if c.reply_to is not None}, now)
        # Thread replies: their roots and the threads' counters, read under the lock (as little).
        threading = [c for _, c in new if c.thread is not None]
        roots, tseqs = (yield from resolve_sql({c.thread for c in threading if c.thread is not None}, now)) \
            if threading else ({}, {})
        # Only for replies (a plain send reads no window): the senders' windows, under the lock.
        windows = (yield from self._conversations.windows_sql({(c.conv, c.sender) for c in replies + threading})) \
            if replies or threading else {}
        # Forwards: the copies they store (only for the sends that have the field; forwards.py).
        forwards = [c for _, c in new if c.forward]
        copies = (yield from copies_sql(forwards, self._conversations.windows_sql, now)) if forwards else {}
        # Attachments' uploads, locked: one deleted since the send checked it is refused (and a
        # deletion under way waits for this commit, then sees the message).
        wanted = {f.key for _, c in new if c.type in ATTACHMENT_TYPES for f in refs(c.data)}
        if copies:
            wanted |= {k for copy in copies.values() if isinstance(copy, Copy) for k in copy.keys}
        live = (yield from self._attachments.live_sql(wanted)) if wanted else set()
        # Mentions cost only the sends that have them (a plain batch runs none of this).
        mentioning = [c for _, c in new if c.mentions]
        rules: dict[str, MentionRules] = {}
        blocked: set[tuple[str, str]] = set()
        if mentioning:
            everyone = {c.conv for c in mentioning if ALL in c.mentions}
            rules = (yield from self._conversations.mention_rules_sql(everyone)) if everyone else {}
            # A member who blocks the sender is not mentioned by it (no flag, no count, no push past mute).
            blocked = yield from self._blocks.blocked_pairs_sql({
                (m, c.sender) for c in mentioning
                for m in (locked.members_of(c.conv) if ALL in c.mentions else c.mentions) if m != c.sender})
        recent: dict[str, list[int]] = {}  # groups whose @all times change
        mention_rows: list[tuple[str, int, str]] = []
        file_rows: list[tuple[str, str]] = []  # merged messages' uploads
        thread_rows: list[tuple[StoredMessage, int]] = []
        for i, c in new:
            conv = c.conv
            in_conv = locked.members_of(conv)
            if not locked.exists(conv) or c.sender not in in_conv:
                what = f"group {c.group!r}" if c.group is not None else f"conversation {conv!r}"
                out[i] = NotFound(f"{what} not found") if not locked.exists(conv) or c.group is None \
                    else Forbidden(f"you are not a member of group {c.group!r}")
                continue
            mentions = c.mentions
            if mentions:
                # Non-members are dropped (a stale autocomplete does not cost the message).
                mentions = tuple(m for m in mentions if m in in_conv or m == ALL)
                if ALL in mentions and rules[conv].mention_all != "members" \
                        and in_conv[c.sender] not in ("owner", "admin"):
                    out[i] = Forbidden("only the group's owner and admins may mention @all")
                    continue
            deleted = [f.key for f in refs(c.data) if f.key not in live] if c.type in ATTACHMENT_TYPES else []
            if deleted:
                out[i] = BadRequest(f"attachment {deleted[0]!r}: deleted")
                continue
            copy = copies.get((c.sender, c.cid)) if c.forward else None
            if copy is not None:
                if not isinstance(copy, Copy):
                    out[i] = copy
                    continue
                if gone := [k for k in copy.keys if k not in live]:
                    out[i] = BadRequest(f"forward: attachment {gone[0]!r}: deleted")
                    continue
            quote = None
            if c.reply_to is not None:
                found = quotes.get(c.reply_to)
                window = windows.get((conv, c.sender))
                # A message outside the sender's window (before it joined) is as unknown as any.
                if found is None or found[0] != conv or found[1]["type"] in ("member", TTL, EXPIRED) or window is None \
                        or not window.contains(found[1]["seq"]):
                    out[i] = BadRequest(f"reply_to: no message {c.reply_to!r} in this conversation")
                    continue
                quote = found[1]
            root = None
            if c.thread is not None:
                root = roots.get(c.thread)
                window = windows.get((conv, c.sender))
                if root is None or root.conv != conv or root.type in ("member", TTL, EXPIRED) or window is None \
                        or not window.contains(root.seq):
                    out[i] = BadRequest(f"thread: no message {c.thread!r} in this conversation")
                    continue
                if root.type == "recalled":
                    out[i] = BadRequest(f"thread: message {c.thread!r} was recalled")
                    continue
            if ALL in mentions:  # the group's @all rate: at most N in any minute
                times = recent.get(conv) or [t for t in rules[conv].recent if t > now - 60_000]
                if len(times) >= self._mention_all_per_minute:
                    wait = max(1, times[-self._mention_all_per_minute] + 60_000 - now)
                    out[i] = RateLimited(f"too many @all mentions in this group: retry in {wait} ms",
                                         retry_after_ms=wait)
                    continue
                recent[conv] = [*times, now][-self._mention_all_per_minute:]
            msg_id = new_ulid(now)
            ttl = locked.ttls.get(conv)  # disappearing messages: fixed now, as the conversation's ttl is
            message = StoredMessage(msg_id, conv, locked.next_seq(conv, msg_id, now), c.sender, c.cid, c.type, c.text,
                                    c.data, now, mentions, quote, expires_at=now + ttl * 1000 if ttl else None)
            if copy is not None:
                message = copy.of(message)
                file_rows += copy.file_rows(msg_id)
            if root is not None:  # its place in the thread: the next, under the conversation's lock
                tseqs[root.id] = tseqs.get(root.id, 0) + 1
                message = replace(message, thread=root.id, tseq=tseqs[root.id])
                thread_rows.append((message, root.seq))
            stored.append(message)
            mentioned: frozenset[str] = frozenset()
            if mentions:
                mentioned = frozenset(m for m in (in_conv if ALL in mentions else mentions)
                                      if m != c.sender and (m, c.sender) not in blocked)
                mention_rows += [(conv, message.seq, m) for m in sorted(mentioned)]
            out[i] = SendResult(message, created=True, recipients=tuple(sorted(in_conv)), mentioned=mentioned)
            read_marks[(conv, c.sender)] = message.seq
        if stored:
            yield from _insert_sql(stored)
            files = [k for m in stored for k in _file_keys(m) if k is not None]
            if file_rows:
                yield from files_sql(file_rows)
                files += [k for _, k in file_rows]
            if files:  # the uploads are used from this commit on (an unused one is swept)
                yield from self._attachments.used_sql(files)
            # The durable queue push and search work from, committed with the messages.
            yield from self._events.publish_sql([m.id for m in stored], now)
            if self.outbox.wants("after_send"):  # (no endpoint takes it: not a statement more)
                bots = self._users.bots
                yield from self.outbox.record_sql([Entry("after_send", m.conv, m.conv, m.ts,
                                                         message_data(m, m.sender in bots)) for m in stored], now)
            yield from self._conversations.commit_seqs_sql(locked)
            yield from self._conversations.mark_sent_read_sql(read_marks)
            if mention_rows:
                yield from self._conversations.mentions_sql(mention_rows)
            if thread_rows:
                yield from record_sql(thread_rows)
            if recent:
                yield from self._conversations.mention_all_recent_sql(recent)
        return out

    @staticmethod
    async def append(conn: BaseDBAsyncClient, locked: Locked, conv: str, sender: str, type_: str,
                     data: dict[str, Any], now: int) -> StoredMessage:
        """Store a message the server writes (a group's ``member`` event) in the caller's
        transaction, with the next seq of ``locked`` (the caller commits the counters)."""
        msg_id = new_ulid(now)
        message = StoredMessage(msg_id, conv, locked.next_seq(conv, msg_id, now), sender, f"{type_}:{msg_id}", type_,
                                None, data, now)
        await run_on(conn, _insert_sql([message]))
        return message

    @staticmethod
    def append_sql(locked: Locked, conv: str, sender: str, type_: str, data: dict[str, Any], now: int
                   ) -> Program[StoredMessage]:
        """``append`` as a program, for a caller's transaction program."""
        msg_id = new_ulid(now)
        message = StoredMessage(msg_id, conv, locked.next_seq(conv, msg_id, now), sender, f"{type_}:{msg_id}", type_,
                                None, data, now)
        yield from _insert_sql([message])
        return message

    async def history(self, member: Membership, *, after_seq: int | None, before_seq: int | None,
                      limit: int) -> HistoryPage:
        """A page of the member's conversation in seq order, inside its window: after
        ``after_seq``, before ``before_seq``, or the latest ``limit`` messages when neither is given.

        Raises:
            BadRequest: both cursors given.
        """
        if after_seq is not None and before_seq is not None:
            msg = "give after_seq or before_seq, not both"
            raise BadRequest(msg)
        window = member.window
        query = Message.filter(conv=window.conv, seq__gt=window.after)
        if window.upto is not None:  # a former group member reads up to its removal
            query = query.filter(seq__lte=window.upto)
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
        now = self._clock.now_ms()
        return HistoryPage([_unexpired(StoredMessage.from_row(r), now) for r in rows], has_more)

    async def _visible(self, uid: str, msg_id: str) -> tuple[Message, Membership]:
        """The message and ``uid``'s membership of its conversation, if ``uid`` may see it.

        Raises:
            NotFound: no such message in ``uid``'s window of its conversation.
        """
        row = await Message.get_or_none(id=msg_id)
        try:
            member = await self._conversations.membership(row.conv, uid) if row is not None else None
        except NotFound:
            member = None
        if row is None or member is None or not member.window.contains(row.seq) or _gone(row, self._clock.now_ms()):
            msg = f"message {msg_id!r} not found"
            raise NotFound(msg)
        return row, member

    async def _acting(self, uid: str, msg_id: str, what: str) -> Message:
        """The message ``uid`` changes (``what``: a reaction, an edit), if ``uid`` sees it, is a
        current member, and is not in a 1:1 whose other member blocks it.

        Raises:
            NotFound: no such message in ``uid``'s window of its conversation.
            Forbidden: a former member; or blocked (said only as "not allowed", as a blocked send).
        """
        row, member = await self._visible(uid, msg_id)
        if not member.current:
            msg = f"only current members may {what}"
            raise Forbidden(msg)
        if await self._blocks.blocked_in(uid, row.conv):
            msg = "not allowed"
            raise Forbidden(msg)
        return row

    async def reactable(self, uid: str, msg_id: str) -> tuple[StoredMessage, tuple[str, ...]]:
        """A message ``uid`` may react to (for the reaction service), and who to tell: the current
        members whose window holds it.

        Raises:
            NotFound: no such message in ``uid``'s window of its conversation.
            Forbidden: a former member; or blocked ("not allowed").
        """
        row = await self._acting(uid, msg_id, "react")
        return StoredMessage.from_row(row), await self._conversations.audience(row.conv, row.seq)

    async def read_by(self, uid: str, msg_id: str, *, conv: str | None, after: str | None, limit: int
                      ) -> tuple[StoredMessage, ReadBy]:
        """Who has read a message and who has not: the members whose window holds it, but its
        sender (a page in uid order after ``after``, and the totals). Asked by its sender, or in a
        group by an owner or admin; in a 1:1, a peer the caller blocks is in neither list (as its
        ``peer_read_seq`` is not shown).

        Raises:
            NotFound: no such message in ``uid``'s window (or not of ``conv``, when given).
            Forbidden: a former member; neither the sender nor (in a group) an owner or admin.
        """
        row, member = await self._visible(uid, msg_id)
        if conv is not None and row.conv != conv:  # as unknown as any other id
            msg = f"message {msg_id!r} not found"
            raise NotFound(msg)
        if not member.current:
            msg = "only current members may ask who read a message"
            raise Forbidden(msg)
        if row.sender != uid and not (row.conv.startswith("g:") and member.role in ("owner", "admin")):
            msg = "only the sender (or the group's owner and admins) may ask who read a message"
            raise Forbidden(msg)
        peer = peer_of(row.conv, uid)
        hidden = await self._blocks.blocked_among(uid, {peer}) if peer is not None and peer != uid else set()
        found = await self._conversations.read_by(row.conv, row.seq, leave_out={row.sender, *hidden}, after=after,
                                                  limit=limit)
        return StoredMessage.from_row(row), found

    async def recall(self, uid: str, msg_id: str) -> tuple[StoredMessage, tuple[str, ...]]:
        """Replace a message by a tombstone (type ``recalled``), keeping its seq.

        The sender may recall within the window; a group's owner or admins at any time.
        Returns the tombstone and who to tell: the current members whose window holds it.

        Raises:
            NotFound: no such message visible to ``uid``.
            Forbidden: not the sender (nor a group admin), or the window has passed.
        """
        row, member = await self._visible(uid, msg_id)
        if row.type in ("member", TTL):
            msg = "membership events cannot be recalled"
            raise Forbidden(msg)
        if row.type != "recalled":
            is_admin = row.conv.startswith("g:") and member.current and member.role in ("owner", "admin")
            if not is_admin:
                if row.sender != uid:
                    msg = "only the sender (or a group admin) may recall a message"
                    raise Forbidden(msg)
                if self._clock.now_ms() - row.ts > self._recall_window_ms:
                    msg = f"too late: messages can be recalled within {self._recall_window_ms // 1000} s"
                    raise Forbidden(msg)
            async with transaction() as conn:  # the event tells the search indexer (durably)
                files = await self._tombstone(conn, row, {"by": uid}, self._clock.now_ms())
            # Its uploads go once no other message (or profile) refers to them.
            await self._attachments.release(files)
            row = await Message.get(id=msg_id)
        return StoredMessage.from_row(row), await self._conversations.audience(row.conv, row.seq)

    async def _tombstone(self, conn: BaseDBAsyncClient, row: Message, data: dict[str, Any], now: int) -> list[str]:
        """Replace ``row`` by a tombstone (type ``recalled``, ``data``), keeping its seq, in the
        caller's transaction (a recall; an erasure, services/privacy). Returns the upload keys it
        no longer uses (the caller releases them once committed)."""
        msg_id = row.id
        files = [k for k in (row.file_key, row.thumb_key) if k is not None]
        await Message.filter(id=msg_id).using_db(conn).update(type="recalled", text=None, data=data, mentions=None,
                                                              reply=None, file_key=None, thumb_key=None, preview=None,
                                                              forwarded=None, expires_at=None)
        # The replies quoting it quote a recalled message from now on (no excerpt).
        await Message.filter(reply_to=msg_id).using_db(conn).update(reply={
            "id": msg_id, "seq": row.seq, "from": row.sender, "type": "recalled", "excerpt": ""})
        await self._events.publish(conn, [msg_id], now)  # the search index drops it
        if self.outbox.wants("after_recall"):  # (an erasure's tombstone says "erased": true)
            await self.outbox.record(conn, [Entry("after_recall", row.conv, row.conv, now, {
                "id": msg_id, "conv": row.conv, "seq": row.seq, "sender": row.sender, **data})], now)
        if row.mentions:  # it mentions nobody any more (nor counts as an unread mention)
            await run_on(conn, self._conversations.unmention_sql(row.conv, row.seq))
        await run_on(conn, unpin_sql(msg_id))  # pinned no more (the recall event says so)
        if row.type == "merged":  # its own references only (an original keeps its own)
            files += await run_on(conn, unfile_sql(msg_id))
        # Not used by this message any more: the sweep looks again if the release fails.
        if files:
            await run_on(conn, self._attachments.used_sql(files, used=False))
        return files

    # ---- privacy (services/privacy: export and erasure) ----------------------------------------
    async def export_user(self, windows: list[Window], batch: int = 500) -> AsyncIterator[StoredMessage]:
        """Every message inside ``windows`` (what a user may see: sent and received), a page of
        ``batch`` at a time in (conversation, seq) order, never all at once."""
        for window in windows:
            after = window.after
            while True:
                query = Message.filter(conv=window.conv, seq__gt=after)
                if window.upto is not None:
                    query = query.filter(seq__lte=window.upto)
                rows = await query.order_by("seq").limit(batch)
                if not rows:
                    break
                now = self._clock.now_ms()
                for r in rows:
                    yield _unexpired(StoredMessage.from_row(r), now)
                after = rows[-1].seq

    async def erase_sender(self, uid: str, batch: int = 200) -> AsyncIterator[list[str]]:
        """Replace every message ``uid`` sent by a tombstone (type ``recalled``, data ``{"by": uid,
        "erased": true}``: recalled by its sender, as devices show it), a batch per transaction;
        yields each batch's ids once committed (and its uploads released). Membership events and
        what is already a tombstone stay. Safe to run again: it takes up what is left."""
        while rows := await Message.filter(sender=uid).exclude(type__in=_NOT_ERASED).order_by("id").limit(batch):
            now = self._clock.now_ms()
            files: list[str] = []
            async with transaction() as conn:
                for row in rows:
                    files += await self._tombstone(conn, row, {"by": uid, "erased": True}, now)
            await self._attachments.release(files)
            yield [r.id for r in rows]

    async def edit(self, uid: str, msg_id: str, text: str) -> tuple[StoredMessage, tuple[str, ...]]:
        """Replace the text of ``uid``'s own text message, within ``edit_window_s`` of sending it.
        The quotes of replies to it follow, and so does the search index (the event queue).
        Returns the edited message and who to tell: the current members whose window holds it.

        Raises:
            NotFound: no such message visible to ``uid``.
            Forbidden: a former member (of the group), blocked by the other member of the 1:1 ("not
                allowed"), not the sender, not a text message (or recalled), or the window has passed.
            TooLarge: the text is longer than ``limits.max_text``.
        """
        if len(text) > self._max_text:
            msg = f"text is {len(text)} characters; the limit is {self._max_text}"
            raise TooLarge(msg)
        row = await self._acting(uid, msg_id, "edit")
        if row.sender != uid or row.type != "text":
            msg = "only the sender may edit, and only a text message"
            raise Forbidden(msg)
        if row.forwarded is not None:  # the words are the original sender's
            msg = "a forwarded message is not edited"
            raise Forbidden(msg)
        now = self._clock.now_ms()
        if now - row.ts > self._edit_window_ms:
            msg = f"too late: messages can be edited within {self._edit_window_ms // 1000} s"
            raise Forbidden(msg)
        async with transaction() as conn:
            # The preview was the old text's link's (the bridge previews the new text's again).
            changed = await Message.filter(id=msg_id, type="text").using_db(conn).update(text=text, edited_at=now,
                                                                                       preview=None)
            if not changed:  # recalled meanwhile
                msg = "only the sender may edit, and only a text message"
                raise Forbidden(msg)
            await Message.filter(reply_to=msg_id).using_db(conn).update(reply={
                "id": msg_id, "seq": row.seq, "from": row.sender, "type": "text", "excerpt": text[:EXCERPT_CHARS]})
            await self._events.publish(conn, [msg_id], now)  # the search index follows (push skips edits)
            if self.outbox.wants("after_edit"):
                await self.outbox.record(conn, [Entry("after_edit", row.conv, row.conv, now, {
                    "id": msg_id, "conv": row.conv, "seq": row.seq, "sender": row.sender, "text": text,
                    "edited_at": now})], now)
        row = await Message.get(id=msg_id)
        return StoredMessage.from_row(row), await self._conversations.audience(row.conv, row.seq)

    async def set_preview(self, msg_id: str, text: str, preview: dict[str, Any]) -> bool:
        """Store the link preview of text message ``msg_id`` (docs/protocol.md, link previews),
        if its text is still ``text`` (not recalled, nor edited since the link was taken from it).
        Returns whether it was stored."""
        changed: int = await Message.filter(id=msg_id, type="text", text=text).update(preview=preview)
        return changed > 0

    async def referenced_keys(self, keys: list[str]) -> set[str]:
        """The upload keys among ``keys`` that a message refers to (attachments.Referrer)."""
        rows = await fetch("SELECT file_key, thumb_key FROM messages WHERE file_key = ANY(?) OR thumb_key = ANY(?)",
                           [AnyOf(keys), AnyOf(keys)])
        wanted = set(keys)
        merged = await fetch(MERGED_FILES_SQL, [AnyOf(keys)])  # forwards.py: of messages still there
        return {k for r in rows for k in r if k in wanted} | {r[2] for r in merged}

    async def readable_keys(self, uid: str, keys: list[str]) -> set[str]:
        """The upload keys among ``keys`` of messages ``uid`` sees as a current member of their
        conversation (attachments.Referrer): a stranger or a removed member may not download. A
        disappearing message whose time has come gives nothing, swept or not."""
        now = self._clock.now_ms()
        rows = await fetch("SELECT conv, seq, file_key, thumb_key FROM messages "
                           "WHERE (file_key = ANY(?) OR thumb_key = ANY(?)) AND (expires_at IS NULL OR expires_at > ?)",
                           [AnyOf(keys), AnyOf(keys), now])
        rows += [(conv, seq, key, None) for conv, seq, key in await fetch(
            f"{MERGED_FILES_SQL} AND (messages.expires_at IS NULL OR messages.expires_at > ?)", [AnyOf(keys), now])]
        wanted, out = set(keys), set()
        members: dict[str, Membership | None] = {}
        for conv, seq, *found in rows:
            if conv not in members:
                try:
                    members[conv] = await self._conversations.membership(conv, uid)
                except NotFound:
                    members[conv] = None
            member = members[conv]
            if member is not None and member.current and member.window.contains(seq):
                out |= {k for k in found if k in wanted}
        return out

    async def is_stored(self, sender: str, cid: str) -> bool:
        """Whether a message of ``(sender, cid)`` is stored (a send of it again is a retry): one
        lookup of the unique index, without the ORM (asked before every send a callback decides)."""
        return bool(await fetch("SELECT 1 FROM messages WHERE sender = ? AND cid = ? LIMIT 1", [sender, cid]))

    async def by_ids(self, ids: list[str]) -> dict[str, StoredMessage]:
        if not ids:
            return {}
        wanted = sorted(set(ids))
        rows = await fetch(f"SELECT {_COLUMNS} FROM messages WHERE id = ANY(?)", [AnyOf(wanted)])
        now = self._clock.now_ms()
        return {r[0]: _unexpired(_stored(r), now) for r in rows}

    async def scan(self, after_id: str, types: tuple[str, ...], limit: int) -> list[StoredMessage]:
        """Messages of ``types`` in id order after ``after_id`` (a rebuild of the search index)."""
        rows = await Message.filter(id__gt=after_id, type__in=list(types)).order_by("id").limit(limit)
        return [StoredMessage.from_row(r) for r in rows]
