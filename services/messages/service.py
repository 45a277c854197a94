"""MessageService: durable storage, per-conversation sequence numbers, idempotent sends, history."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from dataclasses import dataclass
from typing import Self, cast

from tortoise.exceptions import IntegrityError

from services.conversations.models import Member
from services.conversations.service import ConversationService
from services.db import portable_sql
from services.errors import BadRequest, Forbidden, NotFound
from services.ids import Clock, new_ulid
from services.messages.commands import SendCommand, StoredMessage
from services.messages.models import Message
from services.push.models import MessageEvent
from services.transactions import transaction
from services.users.service import UserService

log = logging.getLogger("imgate.messages")


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
    """Stores messages. Under load, concurrent sends are committed together (group commit): one
    transaction, one fsync and a handful of statements for a whole batch, instead of per message.

    Use as an async context manager to run the committer; without it, each send commits alone.
    """

    def __init__(self, clock: Clock, users: UserService, conversations: ConversationService, *,
                 batch_max: int = 256, queue_max: int = 10_000, recall_window_s: int = 120) -> None:
        self._clock = clock
        self._recall_window_ms = recall_window_s * 1000
        self._users = users
        self._conversations = conversations
        self._batch_max = batch_max
        self._queue: asyncio.Queue[tuple[SendCommand, asyncio.Future[SendResult]]] = asyncio.Queue(queue_max)
        self._committer: asyncio.Task[None] | None = None
        self.batches = 0  # committed batches (read by metrics and the benchmark)

    async def __aenter__(self) -> Self:
        self._committer = asyncio.create_task(self._commit_loop(), name="imgate.messages.committer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._committer is not None:
            self._committer.cancel()
            with suppress(asyncio.CancelledError):
                await self._committer
            self._committer = None
        while not self._queue.empty():  # nothing was stored for these: the clients retry
            _, fut = self._queue.get_nowait()
            if not fut.done():
                fut.set_exception(RuntimeError("message service stopped"))

    async def send(self, cmd: SendCommand) -> SendResult:
        """Store a message once per ``(sender, cid)`` with the conversation's next seq.

        The returned message is committed (durably, with SQLite's synchronous=FULL) before this
        returns, so the caller may ack it. A repeated ``(sender, cid)`` returns the stored message
        with ``created=False`` and no recipients.

        Raises:
            NotFound: the recipient or group does not exist.
        """
        self._validate(cmd)
        if self._committer is None:
            result = (await self._commit([cmd]))[0]
        else:
            fut: asyncio.Future[SendResult] = asyncio.get_running_loop().create_future()
            await self._queue.put((cmd, fut))
            result = await fut
        if isinstance(result, Exception):
            raise result
        return result

    @staticmethod
    def _validate(cmd: SendCommand) -> None:
        if (cmd.to is None) == (cmd.group is None):
            msg = "exactly one of 'to' or 'group' is required"
            raise BadRequest(msg)

    async def _commit_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                results = await self._commit([cmd for cmd, _ in batch])
            except Exception as exc:  # the whole batch failed (database down): each sender retries
                log.exception("committing %d messages failed", len(batch))
                results = [exc] * len(batch)
            except BaseException as exc:  # cancelled mid-batch: nothing is acked, clients retry
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(RuntimeError("message service stopped"))
                raise exc from None
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    if isinstance(result, Exception):
                        fut.set_exception(result)
                    else:
                        fut.set_result(result)

    async def _commit(self, cmds: list[SendCommand]) -> list[SendResult | Exception]:
        """Store a batch. Returns, per command, its result or the error to tell its sender."""
        results: list[SendResult | Exception | None] = [None] * len(cmds)
        # 1. Retries: already stored (one query for the batch, on the (sender, cid) index).
        existing = await Message.filter(sender__in=list({c.sender for c in cmds}),
                                        cid__in=list({c.cid for c in cmds}))
        stored = {(m.sender, m.cid): StoredMessage.from_row(m) for m in existing}
        # 2. 1:1 recipients that exist and are not disabled (one query). Group membership is
        #    checked inside the storing transaction, under the conversation's lock.
        wanted = {u for c in cmds if c.to is not None for u in (c.sender, c.to)}
        active = await self._users.active_uids(wanted)
        now = self._clock.now_ms()
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
            elif c.to is not None and any(m not in (c.sender, c.to) for m in c.mentions):
                results[i] = BadRequest("mentions must be members of the conversation")
            else:
                first_of[key] = i
                new.append((i, c))
        if new:
            for conv, members in {c.conv: {c.sender, c.to} for _, c in new if c.to is not None}.items():
                await self._conversations.ensure_direct(conv, members, now)  # type: ignore[arg-type]
            try:
                outcomes = await self._store_batch(new, now)
            except IntegrityError:
                # A concurrent writer (another bridge) stored one of these (sender, cid) meanwhile:
                # redo them one by one, each in its own transaction.
                outcomes = {}
                for i, c in new:
                    outcomes.update(await self._store_one(i, c, now))
            for i, _ in new:
                results[i] = outcomes[i]
        for i, c in enumerate(cmds):  # in-batch duplicates share the first one's message
            if results[i] is None:
                first = results[first_of[(c.sender, c.cid)]]
                results[i] = SendResult(first.message, created=False, recipients=()) \
                    if isinstance(first, SendResult) else first
        self.batches += 1
        return results  # type: ignore[return-value]

    async def _store_batch(self, new: list[tuple[int, SendCommand]], now: int) -> dict[int, SendResult | Exception]:
        convs = sorted({c.conv for _, c in new})
        out: dict[int, SendResult | Exception] = {}
        async with transaction() as conn:
            # Lock the counters (PostgreSQL: row locks; SQLite: the write lock) and number the
            # batch's messages in arrival order, continuing each conversation's sequence.
            lock = " FOR UPDATE" if conn.capabilities.dialect == "postgres" else ""
            rows = await conn.execute_query_dict(portable_sql(
                conn, f"SELECT id, last_seq FROM conversations WHERE id IN ({', '.join('?' * len(convs))})"
                      f" ORDER BY id{lock}"), convs)
            last = {r["id"]: r["last_seq"] for r in rows}
            # Who is in each conversation right now: the recipients, and who may send.
            members: dict[str, set[str]] = {}
            for conv, uid in await Member.filter(conv_id__in=convs, left_seq=None).using_db(conn).values_list(
                    "conv_id", "uid"):
                members.setdefault(conv, set()).add(uid)
            objs: list[Message] = []
            last_msg: dict[str, tuple[int, str]] = {}
            read_marks: dict[tuple[str, str], int] = {}
            for i, c in new:
                conv = c.conv
                in_conv = members.get(conv, set())
                if conv not in last or c.sender not in in_conv:
                    what = f"group {c.group!r}" if c.group is not None else f"conversation {conv!r}"
                    out[i] = NotFound(f"{what} not found") if conv not in last or c.group is None \
                        else Forbidden(f"you are not a member of group {c.group!r}")
                    continue
                if any(m not in in_conv for m in c.mentions):
                    out[i] = BadRequest("mentions must be members of the conversation")
                    continue
                last[conv] += 1
                seq = last[conv]
                msg_id = new_ulid(now)
                objs.append(Message(id=msg_id, conv=conv, seq=seq, sender=c.sender, cid=c.cid, type=c.type,
                                    text=c.text, data=c.data, mentions=list(c.mentions) or None, ts=now))
                message = StoredMessage(msg_id, conv, seq, c.sender, c.cid, c.type, c.text, c.data, now, c.mentions)
                out[i] = SendResult(message, created=True, recipients=tuple(sorted(in_conv)))
                last_msg[conv] = (seq, msg_id)
                read_marks[(conv, c.sender)] = seq
            if objs:
                await Message.bulk_create(objs, using_db=conn)
                # The durable queue push works from, committed with the messages themselves.
                await MessageEvent.bulk_create([MessageEvent(message_id=o.id, created_at=now) for o in objs],
                                               using_db=conn)
                await conn.execute_many(
                    portable_sql(conn, "UPDATE conversations SET last_seq = ?, last_ts = ?, last_msg_id = ? WHERE id = ?"),
                    [[seq, now, msg_id, conv] for conv, (seq, msg_id) in last_msg.items()])
                # The sender has read everything up to its own message: own messages are never unread.
                await conn.execute_many(
                    portable_sql(conn, "UPDATE members SET read_seq = ? WHERE conv_id = ? AND uid = ? AND read_seq < ?"),
                    [[seq, conv, uid, seq] for (conv, uid), seq in read_marks.items()])
        return out

    async def _store_one(self, i: int, cmd: SendCommand, now: int) -> dict[int, SendResult | Exception]:
        """Store one message in its own transaction; a stored duplicate wins over ours."""
        for attempt in range(2):
            existing = await Message.get_or_none(sender=cmd.sender, cid=cmd.cid)
            if existing is not None:
                return {i: SendResult(StoredMessage.from_row(existing), created=False, recipients=())}
            try:
                return await self._store_batch([(i, cmd)], now)
            except IntegrityError:
                if attempt:
                    raise
        raise AssertionError  # unreachable

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
        if member.left_seq is not None:  # a former group member reads up to its removal
            query = query.filter(seq__lte=member.left_seq)
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

    async def recall(self, uid: str, msg_id: str) -> tuple[StoredMessage, tuple[str, ...]]:
        """Replace a message by a tombstone (type ``recalled``), keeping its seq.

        The sender may recall within the window; a group's owner or admins at any time.
        Returns the tombstone and the conversation's current members (to tell).

        Raises:
            NotFound: no such message visible to ``uid``.
            Forbidden: not the sender (nor a group admin), or the window has passed.
        """
        row = await Message.get_or_none(id=msg_id)
        member = await Member.get_or_none(conv_id=row.conv, uid=uid) if row is not None else None
        visible = (row is not None and member is not None and row.seq > member.joined_seq
                   and (member.left_seq is None or row.seq <= member.left_seq))
        if not visible or row is None or member is None:
            msg = f"message {msg_id!r} not found"
            raise NotFound(msg)
        if row.type == "member":
            msg = "membership events cannot be recalled"
            raise Forbidden(msg)
        if row.type != "recalled":
            is_admin = row.conv.startswith("g:") and member.left_seq is None and member.role in ("owner", "admin")
            if not is_admin:
                if row.sender != uid:
                    msg = "only the sender (or a group admin) may recall a message"
                    raise Forbidden(msg)
                if self._clock.now_ms() - row.ts > self._recall_window_ms:
                    msg = f"too late: messages can be recalled within {self._recall_window_ms // 1000} s"
                    raise Forbidden(msg)
            async with transaction() as conn:  # the event tells the search indexer (durably)
                await Message.filter(id=msg_id).using_db(conn).update(type="recalled", text=None, data={"by": uid},
                                                                      mentions=None)
                await MessageEvent.create(message_id=msg_id, created_at=self._clock.now_ms(), using_db=conn)
            row = await Message.get(id=msg_id)
        members = await Member.filter(conv_id=row.conv, left_seq=None).values_list("uid", flat=True)
        return StoredMessage.from_row(row), tuple(cast("list[str]", members))

    async def by_ids(self, ids: list[str]) -> dict[str, StoredMessage]:
        rows = await Message.filter(id__in=ids) if ids else []
        return {r.id: StoredMessage.from_row(r) for r in rows}
