"""The PostgreSQL search backend: the index is a table of the main database, so every process of
a cluster (``imgate bridge`` answering the ``search`` RPC, ``imgate worker`` indexing) reaches
the same one, with nothing more to run.

One row per text message in ``search_messages`` (``id, conv, seq, sender, ts, text``) and its
terms as a ``text[]`` column under a GIN index: the same terms the embedded engine indexes
(services.search.terms: words lower-cased, each run of CJK characters as its single characters
and its overlapping pairs), each without diacritics (``fold``, as FTS5's ``remove_diacritics``
compares them). A query is ``terms @> ARRAY[every query term]``: a document matches when it
holds every term exactly, the embedded engine's semantics (``世界`` finds ``你好世界``, one CJK
character matches, ``hello`` does not find ``hellos``). PostgreSQL's own full-text search was
not used: its parsers split no CJK text (a run of Chinese is one "word", so ``世界`` would not
find ``你好世界``, whatever the configuration), and its language configurations stem words and drop
stop words, which the other backends do not.

Hits are the newest first (``ts``, then ``id``), as Meilisearch's are: in a chat history the
recent match is the one looked for, and it needs no score per row. (FTS5's bm25 ranks a short
message holding the term above a long one; a GIN index has no term frequencies to rank by.)
Visibility is in the query: whole conversations as one ``conv = ANY(array)``, partial windows
(a group joined late or left) as three arrays unnested against the row, so the statement's text
is the same for any number of conversations and is prepared once.

Measured over 100,000 messages (bench/search.py ``--backend postgres``; half English, 40%
Chinese): about 10,000 messages indexed per second; the most frequent English word p50 19 ms,
a rare one 4 ms, one Chinese character 7 ms, a pair 4 ms (the embedded engine: 17, 1, 4 and
1 ms). An index on ``(conv, ts)`` for searches within one conversation was tried: no faster
there, and indexing fell to 5,500 messages per second, so there is none.

The table is PostgreSQL-only (a ``text[]`` column and a GIN index have no SQLite counterpart),
so it is not a migration, whose one history serves both dialects with models tortoise builds
on either (docs/migrations.md): ``start`` creates it, idempotently, under a transaction-scoped
advisory lock (two workers starting at once would otherwise race on ``CREATE TABLE IF NOT
EXISTS``). It belongs to the search service alone; ``imgate search reindex`` rebuilds it from
the messages table. Statements go through services.sql on tortoise's asyncpg pool, like every
service's: nothing blocks the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tortoise import connections

from services.search.base import Doc, Window
from services.search.terms import fold, index_terms
from services.sql import AnyOf, Many, Program, Query, fetch, run_transaction

TABLE = "search_messages"
_LOCK = 0x696D676174652E73  # "imgate.s": pg_advisory_xact_lock's key while the table is created
_SCHEMA = (
    (f"CREATE TABLE IF NOT EXISTS {TABLE} (id TEXT PRIMARY KEY, conv TEXT NOT NULL, seq BIGINT NOT NULL, "
     "sender TEXT NOT NULL, ts BIGINT NOT NULL, text TEXT NOT NULL, terms TEXT[] NOT NULL)"),
    f"CREATE INDEX IF NOT EXISTS {TABLE}_terms ON {TABLE} USING GIN (terms)",
    f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS thread TEXT",  # a thread reply's root (issue 28)
)
_UPSERT = (f"INSERT INTO {TABLE} (id, conv, seq, sender, ts, text, terms, thread) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
           "ON CONFLICT (id) DO UPDATE SET conv = excluded.conv, seq = excluded.seq, sender = excluded.sender, "
           "ts = excluded.ts, text = excluded.text, terms = excluded.terms, thread = excluded.thread")
_VISIBLE = ("(d.conv = ANY(?::text[]) OR EXISTS (SELECT 1 FROM unnest(?::text[], ?::bigint[], ?::bigint[]) "
            "AS w(conv, after, upto) WHERE w.conv = d.conv AND d.seq > w.after "
            "AND (w.upto IS NULL OR d.seq <= w.upto)))")


def doc_terms(text: str) -> list[str]:
    """A document's distinct terms, without diacritics."""
    return list(dict.fromkeys(fold(t) for t in index_terms(text).split()))


class PostgresSearch:
    def __init__(self, connection_name: str = "default") -> None:
        self._conn = connection_name
        self._ready = False

    async def start(self) -> None:
        if self._ready:  # the indexer calls this every pass
            return
        dialect = connections.get(self._conn).capabilities.dialect
        if dialect != "postgres":
            msg = f"search.backend = postgres needs a PostgreSQL database.url, not {dialect}"
            raise RuntimeError(msg)

        def create() -> Program[None]:
            yield Query("SELECT pg_advisory_xact_lock(?)", [_LOCK])
            for statement in _SCHEMA:
                yield Query(statement)
        await run_transaction(create(), self._conn)
        self._ready = True

    async def _write(self, program: Program[None]) -> None:
        await self.start()
        await run_transaction(program, self._conn)

    async def add(self, docs: list[Doc]) -> None:
        def add() -> Program[None]:
            yield Many(_UPSERT, [(d.id, d.conv, d.seq, d.sender, d.ts, d.text, doc_terms(d.text), d.thread)
                                 for d in docs])
        if docs:
            await self._write(add())

    async def remove(self, ids: list[str]) -> None:
        def remove() -> Program[None]:
            yield Query(f"DELETE FROM {TABLE} WHERE id = ANY(?)", [AnyOf(ids)])
        if ids:
            await self._write(remove())

    async def clear(self) -> None:
        def clear() -> Program[None]:
            yield Query(f"TRUNCATE {TABLE}")
        await self._write(clear())

    async def search(self, terms: list[str], windows: list[Window], *, sender: str | None, since: int | None,
                     until: int | None, limit: int) -> list[Doc]:
        if not windows or not terms:
            return []
        await self.start()
        partial = [w for w in windows if not w.whole]
        where = ["d.terms @> ?::text[]", _VISIBLE]
        args: list[Any] = [list(dict.fromkeys(fold(t) for t in terms)), [w.conv for w in windows if w.whole],
                           [w.conv for w in partial], [w.after for w in partial], [w.upto for w in partial]]
        for clause, value in (("d.sender = ?", sender), ("d.ts >= ?", since), ("d.ts < ?", until)):
            if value is not None:
                where.append(clause)
                args.append(value)
        args.append(limit)
        rows: Sequence[tuple[Any, ...]] = await fetch(
            f"SELECT d.id, d.conv, d.seq, d.sender, d.ts, d.text, d.thread FROM {TABLE} d WHERE {' AND '.join(where)} "
            "ORDER BY d.ts DESC, d.id DESC LIMIT ?", args, self._conn)
        return [Doc(*row) for row in rows]

    def close(self) -> None:
        pass  # the connections are the database's (services.db), closed with it
