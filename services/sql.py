"""SQL programs: a service's statements for the hot path, written once, sans-IO, run by a driver.

A *program* is a generator that yields statements (``Query``, ``Many``) and receives each one's
rows; its return value is its result. It does no IO, so the same program runs

- statement by statement on a tortoise connection inside a caller's transaction
  (``run_on(conn, program)``, either dialect), or
- as one transaction of its own (``run_transaction(program)``): on SQLite the whole transaction
  runs in the database thread in **one hand-off** (``BEGIN IMMEDIATE`` … ``COMMIT``, the fsync
  with the GIL released), instead of a thread hand-off and an ORM query build per statement; on
  PostgreSQL in ``services.transactions.transaction()``.

Programs compose with ``yield from``, so each service keeps its own tables' SQL (the message
service's batch asks the conversation service's ``lock_sql`` for the counters). Statements use
``?`` placeholders (rewritten to ``$n`` for PostgreSQL); a list is matched with
``column = ANY(?)`` and an ``AnyOf`` parameter (PostgreSQL binds one array, so a statement is
prepared and planned once for every length; SQLite gets ``column IN (?, ?, …)``). JSON columns are
written as JSON text and read with ``json_value``.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError, OperationalError

from services.db import to_numbered

T = TypeVar("T")
Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Query:
    """One statement; its result rows are sent back into the program (``[]`` for DML).
    ``postgres``: its text for PostgreSQL, where a portable one would get a poor plan there (a
    prepared statement's generic plan is made without seeing the parameters). ``for_update``: lock the selected rows until the transaction ends (PostgreSQL appends
    ``FOR UPDATE``, or ``FOR UPDATE OF table`` when it names one, e.g. beside an outer join;
    SQLite's ``BEGIN IMMEDIATE`` already holds the database's write lock)."""

    sql: str
    params: Sequence[Any] = ()
    for_update: bool | str = False
    postgres: str | None = None  # the same statement (same parameters) in PostgreSQL's own words

    @property
    def postgres_sql(self) -> str:
        """The statement as PostgreSQL runs it: ``$n`` placeholders, the lock clause."""
        return _numbered(self.postgres or self.sql, self.for_update)


@dataclass(frozen=True, slots=True)
class Many:
    """One statement run once per parameter row (``executemany``); sends back ``[]``."""

    sql: str
    rows: Sequence[Sequence[Any]]


Program = Generator[Query | Many, list[Row], T]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """The parameter of ``column = ANY(?)``: a list of values (an empty one matches nothing)."""

    values: Sequence[Any]


# ``= ANY(?)``, a placeholder, or something a '?' inside must not be taken from (as services.db).
_ANY_TOKENS = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|= ANY\(\?\)|\?""", re.DOTALL)


@lru_cache(maxsize=1024)
def _expanded(sql: str, lengths: tuple[int | None, ...]) -> str:
    """SQLite's text for ``sql`` whose placeholders' parameters are lists of ``lengths`` (None: a
    plain value): each ``= ANY(?)`` as ``IN (?, ?, …)``."""
    it = iter(lengths)

    def one(m: re.Match[str]) -> str:
        token = m.group()
        if token == "?":
            if next(it) is not None:
                msg = f"a list is bound to a plain '?' (write '= ANY(?)'): {sql!r}"
                raise ValueError(msg)
            return token
        if token == "= ANY(?)":
            n = next(it)
            if n is None:
                msg = f"'= ANY(?)' needs an AnyOf parameter: {sql!r}"
                raise ValueError(msg)
            return f"IN ({marks(n)})"
        return token

    return _ANY_TOKENS.sub(one, sql)


def _for_sqlite(sql: str, params: Sequence[Any]) -> tuple[str, Sequence[Any]]:
    if not any(isinstance(p, AnyOf) for p in params):
        return sql, params
    flat: list[Any] = []
    for p in params:
        if isinstance(p, AnyOf):
            flat += p.values
        else:
            flat.append(p)
    return _expanded(sql, tuple(len(p.values) if isinstance(p, AnyOf) else None for p in params)), flat


def _for_postgres(params: Sequence[Any]) -> list[Any]:
    return [list(p.values) if isinstance(p, AnyOf) else p for p in params]


def marks(n: int) -> str:
    """``?, ?, …`` for an ``IN (…)`` of ``n`` values."""
    return ", ".join("?" * n)


def json_text(value: Any) -> str | None:
    """A JSON column's value as written (None stays SQL NULL)."""
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def json_value(raw: Any) -> Any:
    """A JSON column's value as read (text on SQLite and from asyncpg's jsonb; decoded already
    when something else decoded it)."""
    return json.loads(raw) if isinstance(raw, str | bytes) else raw


@lru_cache(maxsize=1024)
def _numbered(sql: str, for_update: bool | str = False) -> str:
    if for_update:
        sql += " FOR UPDATE" if for_update is True else f" FOR UPDATE OF {for_update}"
    return to_numbered(sql)


async def run_on(conn: BaseDBAsyncClient, program: Program[T]) -> T:
    """Run ``program`` statement by statement on ``conn`` (typically the caller's transaction)."""
    postgres = conn.capabilities.dialect == "postgres"
    rows: list[Row] | None = None
    try:
        while True:
            stmt = program.send(rows)  # type: ignore[arg-type]  # the first send is None
            if isinstance(stmt, Many):
                if stmt.rows:
                    await conn.execute_many(_numbered(stmt.sql) if postgres else stmt.sql, [list(r) for r in stmt.rows])
                rows = []
                continue
            if postgres:
                _, result = await conn.execute_query(stmt.postgres_sql, _for_postgres(stmt.params))
            else:
                sql, params = _for_sqlite(stmt.sql, stmt.params)
                _, result = await conn.execute_query(sql, list(params))
            rows = [tuple(r) for r in result]
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def _one(query: Query) -> Program[list[Row]]:
    return (yield query)


async def fetch(sql: str, params: Sequence[Any] = (), connection_name: str = "default") -> list[Row]:
    """One statement's rows, outside a transaction (a read on the hot path, without the ORM)."""
    return await run_on(connections.get(connection_name), _one(Query(sql, params)))


async def run_transaction(program: Program[T], connection_name: str = "default") -> T:
    """Run ``program`` as one transaction of its own: committed when it returns, rolled back when
    it (or a statement) raises. A unique-constraint violation raises tortoise's IntegrityError on
    either dialect."""
    client = connections.get(connection_name)
    raw = _sqlite_connection(client)
    if raw is not None:
        async with client._lock:  # tortoise's one SQLite connection, ours meanwhile
            return await raw._execute(_drive_sqlite, raw._conn, program)  # type: ignore[no-any-return]
    if _is_asyncpg(client):
        return await _drive_asyncpg(client, program)
    from services.transactions import transaction

    async with transaction(connection_name) as conn:
        return await run_on(conn, program)


def _is_asyncpg(client: BaseDBAsyncClient) -> bool:
    return client.capabilities.dialect == "postgres" and type(client).__module__ == "tortoise.backends.asyncpg.client"


async def _drive_asyncpg(client: BaseDBAsyncClient, program: Program[T]) -> T:
    """The whole transaction on one of tortoise's pooled asyncpg connections, each statement
    straight to asyncpg (its prepared-statement cache; no ORM layer per statement). Errors as
    tortoise raises them."""
    import asyncpg  # type: ignore[import-untyped]

    try:
        async with client.acquire_connection() as conn, conn.transaction():
            rows: list[Row] | None = None
            try:
                while True:
                    stmt = program.send(rows)  # type: ignore[arg-type]
                    if isinstance(stmt, Many):
                        if stmt.rows:
                            await conn.executemany(_numbered(stmt.sql), stmt.rows)
                        rows = []
                    else:
                        rows = await conn.fetch(stmt.postgres_sql, *_for_postgres(stmt.params))
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(exc) from exc
    except (asyncpg.SyntaxOrAccessError, asyncpg.exceptions.DataError) as exc:
        raise OperationalError(exc) from exc


def _sqlite_connection(client: BaseDBAsyncClient) -> Any:
    """The aiosqlite connection behind tortoise's SQLite client (None on other dialects). Its
    worker thread runs our whole transaction as one queued call (``_execute``, the call aiosqlite
    makes for each of its own statements)."""
    if client.capabilities.dialect != "sqlite":
        return None
    raw = getattr(client, "_connection", None)
    if raw is None or not hasattr(raw, "_execute") or not isinstance(getattr(client, "_lock", None), asyncio.Lock):
        msg = "tortoise's SQLite client changed shape: services/sql.py needs updating"
        raise RuntimeError(msg)
    return raw


def _drive_sqlite(conn: sqlite3.Connection, program: Program[T]) -> T:
    """In the database thread: the whole transaction, synchronously."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:  # busy past the timeout, disk I/O
        raise OperationalError(str(exc)) from exc
    try:
        rows: list[Row] | None = None
        try:
            while True:
                stmt = program.send(rows)  # type: ignore[arg-type]
                if isinstance(stmt, Many):
                    if stmt.rows:
                        conn.executemany(stmt.sql, stmt.rows)
                    rows = []
                else:
                    rows = conn.execute(*_for_sqlite(stmt.sql, stmt.params)).fetchall()
        except StopIteration as done:
            result: T = done.value
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.IntegrityError):
            raise IntegrityError(str(exc)) from exc
        if isinstance(exc, sqlite3.OperationalError):
            raise OperationalError(str(exc)) from exc
        raise
    return result
