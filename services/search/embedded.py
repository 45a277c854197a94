"""The embedded search backend: SQLite FTS5 in its own file (``{data_dir}/search.db``), whatever
the main database is. The sqlite3 module is synchronous, so every call runs in a worker thread
(``asyncio.to_thread``), one at a time."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from services.search.terms import fts_query, index_terms


@dataclass(frozen=True, slots=True)
class Doc:
    id: str
    conv: str
    seq: int
    sender: str
    ts: int
    text: str


@dataclass(frozen=True, slots=True)
class Window:
    """What a user may see of a conversation: seq in (after, upto]."""

    conv: str
    after: int
    upto: int | None


class EmbeddedSearch:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = asyncio.Lock()
        self._db: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS docs USING fts5(terms, id UNINDEXED, conv UNINDEXED, "
                       "seq UNINDEXED, sender UNINDEXED, ts UNINDEXED, text UNINDEXED, "
                       "tokenize = 'unicode61 remove_diacritics 2')")
            self._db = db
        return self._db

    async def _run(self, fn, *args):  # noqa: ANN001, ANN002, ANN202
        async with self._lock:
            return await asyncio.to_thread(fn, *args)

    async def add(self, docs: list[Doc]) -> None:
        def add() -> None:
            db = self._open()
            db.execute("BEGIN")
            db.executemany("DELETE FROM docs WHERE id = ?", [(d.id,) for d in docs])  # idempotent
            db.executemany("INSERT INTO docs (terms, id, conv, seq, sender, ts, text) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(index_terms(d.text), d.id, d.conv, d.seq, d.sender, d.ts, d.text) for d in docs])
            db.execute("COMMIT")
        if docs:
            await self._run(add)

    async def remove(self, ids: list[str]) -> None:
        def remove() -> None:
            self._open().executemany("DELETE FROM docs WHERE id = ?", [(i,) for i in ids])
        await self._run(remove)

    async def clear(self) -> None:
        await self._run(lambda: self._open().execute("DELETE FROM docs"))

    async def search(self, terms: list[str], windows: list[Window], *, sender: str | None, since: int | None,
                     until: int | None, limit: int) -> list[Doc]:
        if not windows or not terms:
            return []
        where = ["docs MATCH ?"]
        args: list[object] = [fts_query(terms)]
        visible = []
        for w in windows:
            visible.append("(conv = ? AND seq > ?" + (" AND seq <= ?)" if w.upto is not None else ")"))
            args += [w.conv, w.after] + ([w.upto] if w.upto is not None else [])
        where.append("(" + " OR ".join(visible) + ")")
        if sender is not None:
            where.append("sender = ?")
            args.append(sender)
        if since is not None:
            where.append("ts >= ?")
            args.append(since)
        if until is not None:
            where.append("ts < ?")
            args.append(until)
        sql = (f"SELECT id, conv, seq, sender, ts, text FROM docs WHERE {' AND '.join(where)} "
               "ORDER BY bm25(docs), ts DESC LIMIT ?")
        args.append(limit)

        def query() -> list[Doc]:
            return [Doc(*row) for row in self._open().execute(sql, args).fetchall()]
        return await self._run(query)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
