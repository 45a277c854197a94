"""The embedded search backend: SQLite FTS5 in its own file (``{data_dir}/search.db``), whatever
the main database is. The sqlite3 module is synchronous, so every call runs in a worker thread
(``asyncio.to_thread``), one at a time."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from services.files import private_sqlite_file
from services.search.base import Doc, Window
from services.search.terms import fts_query, index_terms

T = TypeVar("T")


class EmbeddedSearch:
    """Two tables: ``messages`` (one row per message, indexed by id and by (conv, seq)) and the
    FTS5 table ``message_terms``, whose rowid is the message row's. Deletes and replacements go
    by rowid (an FTS5 column cannot be indexed). The first layout's single FTS5 table ``docs`` is dropped
    if found: run ``imgate search reindex`` once on such a data directory."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = asyncio.Lock()
        self._db: sqlite3.Connection | None = None
        self._closed = False
        self._inflight: asyncio.Future[Any] | None = None  # the worker thread's current job

    def _open(self) -> sqlite3.Connection:
        if self._closed:
            msg = "the search index is closed"
            raise RuntimeError(msg)
        if self._db is None:
            private_sqlite_file(self._path)
            db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript("""
                BEGIN;
                DROP TABLE IF EXISTS docs;
                CREATE TABLE IF NOT EXISTS messages (
                    rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, conv TEXT NOT NULL, seq INTEGER NOT NULL,
                    sender TEXT NOT NULL, ts INTEGER NOT NULL, text TEXT NOT NULL);
                CREATE INDEX IF NOT EXISTS messages_conv_seq ON messages (conv, seq);
                CREATE VIRTUAL TABLE IF NOT EXISTS message_terms
                    USING fts5(terms, tokenize = 'unicode61 remove_diacritics 2');
                COMMIT;
            """)
            # A thread reply's root (issue 28): an index made before threads gets the column
            # (its documents are no thread replies: there were none).
            if "thread" not in {r[1] for r in db.execute("PRAGMA table_info(messages)")}:
                db.execute("ALTER TABLE messages ADD COLUMN thread TEXT")
            self._db = db
        return self._db

    async def start(self) -> None:
        if self._db is None:  # the indexer calls this every pass: no thread hop once open
            await self._run(self._open)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        async with self._lock:
            # Cancelling the caller does not stop the thread: the job is kept so that close()
            # does not pull the connection from under it (SQLite then crashes the process).
            self._inflight = asyncio.ensure_future(asyncio.to_thread(fn, *args))
            # A cancelled caller leaves nobody to read the job's error (e.g. "closed" at shutdown).
            self._inflight.add_done_callback(_seen)
            result: T = await asyncio.shield(self._inflight)
            return result

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._open()
        db.execute("BEGIN")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @staticmethod
    def _delete(db: sqlite3.Connection, ids: list[str]) -> None:
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            rowids = [(r,) for (r,) in db.execute(f"SELECT rowid FROM messages WHERE id IN ({marks})", chunk)]
            db.executemany("DELETE FROM message_terms WHERE rowid = ?", rowids)
            db.executemany("DELETE FROM messages WHERE rowid = ?", rowids)

    async def add(self, docs: list[Doc]) -> None:
        def add() -> None:
            with self._transaction() as db:
                self._delete(db, [d.id for d in docs])  # idempotent: a document is replaced
                for d in docs:
                    rowid = db.execute("INSERT INTO messages (id, conv, seq, sender, ts, text, thread) "
                                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                       (d.id, d.conv, d.seq, d.sender, d.ts, d.text, d.thread)).lastrowid
                    db.execute("INSERT INTO message_terms (rowid, terms) VALUES (?, ?)", (rowid, index_terms(d.text)))
        if docs:
            await self._run(add)

    async def remove(self, ids: list[str]) -> None:
        def remove() -> None:
            with self._transaction() as db:
                self._delete(db, ids)
        if ids:
            await self._run(remove)

    async def clear(self) -> None:
        def clear() -> None:
            with self._transaction() as db:
                db.execute("DELETE FROM message_terms")
                db.execute("DELETE FROM messages")
        await self._run(clear)

    async def search(self, terms: list[str], windows: list[Window], *, sender: str | None, since: int | None,
                     until: int | None, limit: int) -> list[Doc]:
        if not windows or not terms:
            return []
        where = ["message_terms MATCH ?"]
        args: list[object] = [fts_query(terms)]
        # Whole conversations as one IN list (SQLite probes it as an index: much cheaper per
        # candidate row than a chain of ORs), passed as one JSON array so that no number of
        # conversations reaches SQLite's limit on parameters; partial windows (groups joined
        # late or left) as ranges.
        whole = [w.conv for w in windows if w.whole]
        visible = ["d.conv IN (SELECT value FROM json_each(?))"] if whole else []
        args += [json.dumps(whole)] if whole else []
        for w in (w for w in windows if not w.whole):
            visible.append("(d.conv = ? AND d.seq > ?" + (" AND d.seq <= ?)" if w.upto is not None else ")"))
            args += [w.conv, w.after] + ([w.upto] if w.upto is not None else [])
        where.append("(" + " OR ".join(visible) + ")")
        if sender is not None:
            where.append("d.sender = ?")
            args.append(sender)
        if since is not None:
            where.append("d.ts >= ?")
            args.append(since)
        if until is not None:
            where.append("d.ts < ?")
            args.append(until)
        sql = (f"SELECT d.id, d.conv, d.seq, d.sender, d.ts, d.text, d.thread "
               f"FROM message_terms JOIN messages d ON d.rowid = message_terms.rowid WHERE {' AND '.join(where)} "
               "ORDER BY bm25(message_terms), d.ts DESC LIMIT ?")
        args.append(limit)

        def query() -> list[Doc]:
            return [Doc(*row) for row in self._open().execute(sql, args).fetchall()]
        return await self._run(query)

    def close(self) -> None:
        """Close the index; a job still running in the worker thread finishes first."""
        self._closed = True
        db, self._db = self._db, None
        if db is None:
            return
        job = self._inflight
        if job is not None and not job.done():
            job.add_done_callback(lambda _: db.close())
        else:
            db.close()


def _seen(job: asyncio.Future[Any]) -> None:
    if not job.cancelled():
        job.exception()
