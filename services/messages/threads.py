"""Threads (docs/protocol.md, "Threads"): a message may reply in the thread of a root message of
its conversation (``thread`` = the root's id). A thread reply is an ordinary message of the
conversation (its seq, its delivery, its sync) that also carries ``thread`` and ``tseq``, its
place in the thread (1..n, gap-free), handed out under the conversation's lock in the send's own
transaction (``resolve_sql`` / ``record_sql``, asked by ``MessageService._store_sql`` only for the
sends that have a thread).

The tables are the message service's: ``threads`` (a thread's counters: the list reads them
without counting), ``thread_replies`` (a thread's replies in order, for paging) and
``thread_reads`` (a member's read marker per thread). Membership and windows are the
conversation service's: a thread is visible exactly where its root is (a member who joined after
the root sees neither; a former member reads up to its removal).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.conversations.service import ConversationService, Membership
from services.errors import BadRequest, NotFound
from services.ids import Clock
from services.messages.commands import StoredMessage
from services.sql import AnyOf, Many, Program, Query, fetch, run_transaction

if TYPE_CHECKING:
    from services.messages.service import HistoryPage, MessageService

NO_ROOT = ("member",)  # membership events start no thread (a recalled root takes no new replies)
_ROOT_COLUMNS = "id, conv, seq, type, thread, expires_at"


@dataclass(frozen=True, slots=True)
class Root:
    """A thread's root as a send sees it: a send naming a reply joins its root's thread."""

    id: str
    conv: str
    seq: int
    type: str


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    """One thread as a member sees it in the list."""

    root: StoredMessage
    replies: int
    last: StoredMessage | None
    last_ts: int
    read_tseq: int

    @property
    def unread(self) -> int:
        return max(0, self.replies - self.read_tseq)


@dataclass(frozen=True, slots=True)
class ThreadRead:
    conv: str
    root: str
    read_tseq: int
    replies: int
    changed: bool

    @property
    def unread(self) -> int:
        return max(0, self.replies - self.read_tseq)


def resolve_sql(named: set[str], now: int) -> Program[tuple[dict[str, Root], dict[str, int]]]:
    """In a send's transaction, under the conversations' lock: the roots of the threads the sends
    name (a reply named resolves to its root), and each root's replies so far (its last tseq). A
    disappearing root whose time has come (``now``) is ``expired``, swept or not."""
    rows = yield Query(f"SELECT {_ROOT_COLUMNS} FROM messages WHERE id = ANY(?)", [AnyOf(sorted(named))])
    found = {r[0]: r for r in rows}
    up = {r[4] for r in rows if r[4] is not None} - found.keys()
    if up:
        found |= {r[0]: r for r in (yield Query(f"SELECT {_ROOT_COLUMNS} FROM messages WHERE id = ANY(?)",
                                                [AnyOf(sorted(up))]))}
    roots: dict[str, Root] = {}
    for i in named:
        r = found.get(i)
        if r is not None and r[4] is not None:
            r = found.get(r[4])
        if r is not None:
            due = r[5] is not None and r[5] <= now
            roots[i] = Root(r[0], r[1], int(r[2]), "expired" if due else r[3])
    counts: dict[str, int] = {}
    if roots:
        counted = yield Query("SELECT root_id, replies FROM threads WHERE root_id = ANY(?)",
                              [AnyOf(sorted({r.id for r in roots.values()}))])
        counts = {r[0]: int(r[1]) for r in counted}
    return roots, counts


def record_sql(replies: list[tuple[StoredMessage, int]]) -> Program[None]:
    """The replies' rows, their threads' counters (the last reply of each) and their senders' read
    markers (their own replies are never unread), in the replies' transaction. ``replies``:
    (the stored reply, its root's seq), in tseq order."""
    yield Many("INSERT INTO thread_replies (root_id, seq, tseq, message_id) VALUES (?, ?, ?, ?)",
               [(m.thread, m.seq, m.tseq, m.id) for m, _ in replies])
    latest = {m.thread: (m, root_seq) for m, root_seq in replies}  # the last reply of each thread
    yield Many("INSERT INTO threads (root_id, conv, root_seq, replies, last_id, last_seq, last_ts) "
               "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (root_id) DO UPDATE SET replies = excluded.replies, "
               "last_id = excluded.last_id, last_seq = excluded.last_seq, last_ts = excluded.last_ts",
               [(root, m.conv, root_seq, m.tseq, m.id, m.seq, m.ts) for root, (m, root_seq) in latest.items()])
    marks = {(m.sender, m.thread): m for m, _ in replies}
    yield Many("INSERT INTO thread_reads (uid, root_id, conv, read_tseq) VALUES (?, ?, ?, ?) "
               "ON CONFLICT (uid, root_id) DO UPDATE SET read_tseq = excluded.read_tseq "
               "WHERE thread_reads.read_tseq < excluded.read_tseq",
               [(uid, root, m.conv, m.tseq) for (uid, root), m in marks.items()])


class Threads:
    def __init__(self, messages: MessageService, conversations: ConversationService, clock: Clock) -> None:
        self._messages = messages
        self._conversations = conversations
        self._clock = clock

    async def _root(self, member: Membership, thread: str) -> StoredMessage:
        """The root of ``thread`` (a reply's id names its root's thread) if ``member`` sees it.

        Raises:
            NotFound: no such message in the member's window of this conversation.
        """
        found = (await self._messages.by_ids([thread])).get(thread)
        if found is not None and found.thread is not None:
            found = (await self._messages.by_ids([found.thread])).get(found.thread)
        if found is None or found.conv != member.conv or found.type in NO_ROOT \
                or not member.window.contains(found.seq):
            msg = f"thread {thread!r} not found"
            raise NotFound(msg)
        return found

    async def history(self, member: Membership, thread: str, *, after_seq: int | None, before_seq: int | None,
                      limit: int) -> tuple[StoredMessage, HistoryPage]:
        """A page of a thread's replies in order (tseq, which is seq order), inside the member's
        window, with the same cursors as the conversation's history (conversation seqs).

        Raises:
            BadRequest: both cursors given.
            NotFound: no such thread root in the member's window.
        """
        from services.messages.service import COLUMNS, HistoryPage, stored, unexpired  # service imports this module

        if after_seq is not None and before_seq is not None:
            msg = "give after_seq or before_seq, not both"
            raise BadRequest(msg)
        root = await self._root(member, thread)
        window = member.window
        where = ["t.root_id = ?", "t.seq > ?"]
        args: list[object] = [root.id, window.after]
        if window.upto is not None:
            where.append("t.seq <= ?")
            args.append(window.upto)
        if after_seq is not None:
            where.append("t.seq > ?")
            args.append(after_seq)
        elif before_seq is not None:
            where.append("t.seq < ?")
            args.append(before_seq)
        newest_first = after_seq is None
        cols = ", ".join(f"m.{c.strip()}" for c in COLUMNS.split(","))
        rows = await fetch(f"SELECT {cols} FROM thread_replies t JOIN messages m ON m.id = t.message_id "
                           f"WHERE {' AND '.join(where)} ORDER BY t.seq {'DESC' if newest_first else 'ASC'} LIMIT ?",
                           [*args, limit + 1])
        has_more = len(rows) > limit
        now = self._clock.now_ms()  # a reply due and not swept yet is expired here, as in history
        page = [unexpired(stored(r), now) for r in rows[:limit]]
        if newest_first:
            page.reverse()
        return root, HistoryPage(page, has_more)

    async def page(self, member: Membership, *, cursor: str | None, limit: int
                   ) -> tuple[list[ThreadSummary], str | None]:
        """The conversation's threads whose root ``member`` sees, newest reply first, with the
        member's unread count in each; a page and the next page's cursor.

        Raises:
            NotFound: a former member (it learns nothing more of the conversation).
            BadRequest: a cursor that is not one this returned.
        """
        if not member.current:
            msg = f"conversation {member.conv!r} not found"
            raise NotFound(msg)
        where = ["conv = ?", "root_seq > ?"]
        args: list[object] = [member.conv, member.window.after]
        if cursor is not None:
            ts, root = _decode(cursor)
            where.append("(last_ts < ? OR (last_ts = ? AND root_id < ?))")
            args += [ts, ts, root]
        rows = await fetch(f"SELECT root_id, replies, last_id, last_ts FROM threads WHERE {' AND '.join(where)} "
                           "ORDER BY last_ts DESC, root_id DESC LIMIT ?", [*args, limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        if not rows:
            return [], None
        reads: dict[str, int] = dict(await fetch("SELECT root_id, read_tseq FROM thread_reads WHERE uid = ? AND root_id = ANY(?)",
                                 [member.uid, AnyOf([r[0] for r in rows])]))
        found = await self._messages.by_ids([r[0] for r in rows] + [r[2] for r in rows])
        items = [ThreadSummary(found[r[0]], int(r[1]), found.get(r[2]), int(r[3]), int(reads.get(r[0], 0)))
                 for r in rows if r[0] in found]
        return items, (f"{rows[-1][3]}:{rows[-1][0]}" if more else None)

    async def read(self, member: Membership, thread: str, tseq: int) -> ThreadRead:
        """Move ``member``'s read marker in a thread forward to ``tseq`` (at most the thread's
        last reply; never backwards).

        Raises:
            NotFound: a former member; no thread (a root with replies) ``thread`` in its window.
        """
        if not member.current:
            msg = f"conversation {member.conv!r} not found"
            raise NotFound(msg)
        rows = await fetch("SELECT conv, root_seq, replies FROM threads WHERE root_id = ?", [thread])
        if not rows or rows[0][0] != member.conv or not member.window.contains(int(rows[0][1])):
            msg = f"thread {thread!r} not found"
            raise NotFound(msg)
        replies = int(rows[0][2])
        target = min(tseq, replies)

        def mark() -> Program[tuple[int, bool]]:
            before = yield Query("SELECT read_tseq FROM thread_reads WHERE uid = ? AND root_id = ?",
                                 [member.uid, thread])
            was = int(before[0][0]) if before else 0
            if target <= was:
                return was, False
            yield Query("INSERT INTO thread_reads (uid, root_id, conv, read_tseq) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (uid, root_id) DO UPDATE SET read_tseq = excluded.read_tseq "
                        "WHERE thread_reads.read_tseq < excluded.read_tseq", [member.uid, thread, member.conv, target])
            return target, True
        read_tseq, changed = await run_transaction(mark())
        return ThreadRead(member.conv, thread, read_tseq, replies, changed)

    async def unread_followed(self, uid: str, convs: list[str]) -> dict[str, int]:
        """Per conversation of ``convs``, the threads ``uid`` follows (it replied in them, or
        marked them read) with replies it has not read, whose root is in its window: read from
        its own markers (one row per thread it follows), so the cost is the threads it follows,
        not every thread there (and its windows, from the conversation service, only when one has
        something unread)."""
        if not convs:
            return {}
        rows = await fetch("SELECT r.conv, t.root_seq FROM thread_reads r JOIN threads t ON t.root_id = r.root_id "
                           "WHERE r.uid = ? AND r.conv = ANY(?) AND t.replies > r.read_tseq",
                           [uid, AnyOf(sorted(set(convs)))])
        if not rows:
            return {}
        windows = {w.conv: w for w in await self._conversations.windows_in(uid, {r[0] for r in rows})}
        out: dict[str, int] = {}
        for conv, root_seq in rows:
            if conv in windows and windows[conv].contains(int(root_seq)):  # a member who came back late
                out[conv] = out.get(conv, 0) + 1
        return out

    @staticmethod
    async def counts(ids: list[str], upto: int | None = None) -> dict[str, int]:
        """The reply counts of those of ``ids`` that are thread roots; with ``upto`` (a former
        member's window ends there), only the replies up to that seq: it learns nothing of the
        thread after its removal."""
        if not ids:
            return {}
        if upto is not None:
            rows = await fetch("SELECT root_id, COUNT(*) FROM thread_replies WHERE root_id = ANY(?) AND seq <= ? "
                               "GROUP BY root_id", [AnyOf(sorted(set(ids))), upto])
        else:
            rows = await fetch("SELECT root_id, replies FROM threads WHERE root_id = ANY(?)", [AnyOf(sorted(set(ids)))])
        return {r[0]: int(r[1]) for r in rows}


_CURSOR = re.compile(r"[0-9]{1,16}:[0-9A-HJKMNP-TV-Z]{26}")  # a time (ms) and a root id: within SQL's BIGINT


async def erase_reader(uid: str) -> int:
    """Forget ``uid``'s thread read markers (services/privacy). Returns how many went."""
    from services.messages.models import ThreadRead as ThreadReadRow

    return int(await ThreadReadRow.filter(uid=uid).delete())


def _decode(cursor: str) -> tuple[int, str]:
    ts, _, root = cursor.partition(":")
    if not _CURSOR.fullmatch(cursor):  # (str.isdigit takes "²", which int() refuses)
        msg = "cursor: not a cursor of this list"
        raise BadRequest(msg)
    return int(ts), root
