"""Applies the schema migrations: aerich's files and its ``aerich`` table, under a lock.

The files (``models/{n}_{timestamp}_{name}.py``) and the bookkeeping table are aerich's, so
``aerich history`` and ``aerich heads`` work on an imgate database. Applying them is done here
rather than by ``aerich upgrade`` because imgate needs four things aerich does not do:

- a lock, so that two processes starting at once do not both apply a migration (PostgreSQL: an
  advisory lock; SQLite: ``BEGIN IMMEDIATE``, the write lock, held from the first read);
- one transaction for the whole run, DDL and bookkeeping together (aerich runs each file through
  ``execute_script``, and Python's sqlite3 commits the open transaction before a script);
- refusing a database that has a migration this imgate does not know (made by a newer imgate);
- adopting a database made before migrations (``imgate_meta`` schema_version 2): it is stamped at
  the baseline, whose DDL is the version-2 schema written idempotently (``IF NOT EXISTS``), so on
  such a database it creates only aerich's table.

``imgate_meta`` keeps a ``schema_version`` row: 3 means "the aerich table says which migrations
are applied". An imgate from before migrations refuses such a database instead of misreading it.
"""

from __future__ import annotations

import logging
import pkgutil
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from aerich.models import Aerich
from aerich.utils import decompress_dict, import_py_module
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import OperationalError

from services.transactions import transaction

log = logging.getLogger("imgate.migrations")

APP = "models"  # tortoise's app label, and aerich's ``app`` column
MIGRATIONS_DIR = Path(__file__).resolve().parent / APP
LEGACY_VERSION = "2"  # imgate_meta schema_version of a database made before migrations
META_VERSION = "3"  # imgate_meta schema_version since: the aerich table is the truth
# pg_advisory_xact_lock key: any fixed bigint, the same in every imgate ("imgate.m" in ASCII).
PG_LOCK_KEY = 0x696D676174652E6D
SQLITE_LOCK_WAIT_S = 600.0  # how long to wait for another process's migration on SQLite

_AERICH = "aerich"  # aerich.models.Aerich has no Meta.table: tortoise names it from the class
_META = "imgate_meta"


class SchemaMismatch(RuntimeError):
    """The database's schema cannot be used by this imgate as it is (see the message)."""


@dataclass(frozen=True)
class Migration:
    version: str  # aerich's name for it: the file name, "1_20260509120000_notifications_uid_id.py"
    module: ModuleType

    @property
    def models_state(self) -> dict[str, Any]:
        return decompress_dict(self.module.MODELS_STATE)


@dataclass
class Outcome:
    """What :func:`migrate` found and did."""

    applied: list[str] = field(default_factory=list)  # versions applied now, in order
    stamped: str | None = None  # baseline recorded for a database made before migrations
    created: bool = False  # the database was empty
    current: str = ""  # the newest migration now applied


def known_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """This imgate's migrations, oldest first (aerich's order: the number before the first ``_``).

    Raises:
        RuntimeError: a migration that must run outside a transaction (not supported here).
    """
    infos = [m for m in pkgutil.iter_modules([str(directory)])
             if "_" in m.name and m.name.split("_", 1)[0].isdigit()]
    out = []
    for info in sorted(infos, key=lambda m: int(m.name.split("_", 1)[0])):
        module = import_py_module(info)
        if not getattr(module, "RUN_IN_TRANSACTION", True):
            msg = f"migration {info.name} asks to run outside a transaction; imgate applies every migration in one"
            raise RuntimeError(msg)
        out.append(Migration(info.name + ".py", module))
    return out


async def migrate(conn: BaseDBAsyncClient, where: str, *, upgrade: bool = True) -> Outcome:
    """Bring the database up to date (``upgrade``), or only check that it is.

    An empty database is always created at the newest schema. With ``upgrade`` false, a database
    that needs migrations is refused instead of changed. ``where`` names the database in messages
    (without its password).

    Raises:
        SchemaMismatch: a database made by a newer imgate (an unknown migration or schema
            version), by an imgate too old to migrate from (schema version 1), or, when not
            upgrading, one that needs migrations.
    """
    known = known_migrations()
    if not known:
        msg = f"no migrations found in {MIGRATIONS_DIR} (a broken installation)"
        raise RuntimeError(msg)
    out = Outcome()
    async with _locked(conn, loud=upgrade) as tx:
        tables = await _tables(tx)
        meta = await _meta_version(tx) if _META in tables else None
        applied: list[str] = []
        if _AERICH in tables:
            if meta != META_VERSION:
                raise SchemaMismatch(_version_msg(where, meta or "unknown"))
            applied = await _applied(tx)
            unknown = [v for v in applied if v not in {m.version for m in known}]
            if unknown:
                msg = (f"the database at {where} has migration(s) this imgate does not know ({', '.join(unknown)}): "
                       f"it was upgraded by a newer imgate; run that version (or newer), or restore a backup")
                raise SchemaMismatch(msg)
        elif _META in tables or "users" in tables:
            if meta != LEGACY_VERSION:
                raise SchemaMismatch(_version_msg(where, meta or "1"))
        else:
            out.created = True
        pending = [m for m in known if m.version not in applied]
        legacy = _AERICH not in tables and not out.created
        if not upgrade and not out.created and (pending or legacy):
            msg = (f"the database at {where} needs migration(s) {', '.join(m.version for m in pending)}: "
                   f"run `imgate migrate` (or start imgate, which applies them)")
            raise SchemaMismatch(msg)
        if legacy:
            # The baseline is the version-2 schema with IF NOT EXISTS: here it adds aerich's table.
            await _apply(tx, known[0])
            out.stamped = known[0].version
            pending = pending[1:]
            log.info("database: adopted the schema-version-2 database at %s as migration %s", where, out.stamped)
        for m in pending:
            await _apply(tx, m)
            out.applied.append(m.version)
            log.info("database: applied migration %s to %s", m.version, where)
        if out.created or legacy or out.applied:
            await tx.execute_query(_sql(tx, f'INSERT INTO "{_META}" ("key", "value") VALUES (?, ?) '
                                            f'ON CONFLICT ("key") DO UPDATE SET "value" = excluded."value"'),
                                   ["schema_version", META_VERSION])
        out.current = known[-1].version
    return out


def _version_msg(where: str, found: str) -> str:
    if found.isdigit() and int(found) > int(META_VERSION):
        return (f"the database at {where} has imgate schema version {found}, newer than this imgate knows "
                f"({META_VERSION}): it was upgraded by a newer imgate; run that version (or newer)")
    return (f"the database at {where} has imgate schema version {found}; this imgate migrates from version "
            f"{LEGACY_VERSION} on: use a new data directory or database")


async def _apply(tx: BaseDBAsyncClient, m: Migration) -> None:
    sql = await m.module.upgrade(tx)
    if tx.capabilities.dialect == "sqlite":
        for statement in _sqlite_statements(sql):  # not execute_script: it would commit the lock away
            await tx.execute_query(statement)
    elif sql.strip():
        await tx.execute_script(sql)
    await Aerich.create(version=m.version, app=APP, content=m.models_state, using_db=tx)


def _sqlite_statements(sql: str) -> list[str]:
    """Split a script into complete statements (sqlite3 knows where each one ends)."""
    out, current = [], ""
    for line in sql.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return [s for s in out if s.strip(" \n;")]


@asynccontextmanager
async def _locked(conn: BaseDBAsyncClient, *, loud: bool = True) -> AsyncIterator[BaseDBAsyncClient]:
    """One transaction holding the migration lock, from before the first read to the commit.
    A wait for it is a warning when we may migrate (``loud``), else only worth an info line (a
    worker checking the schema beside a busy server waits for the server's commits)."""
    async with transaction(conn.connection_name) as tx:
        if tx.capabilities.dialect == "postgres":
            rows = await tx.execute_query_dict("SELECT pg_try_advisory_xact_lock($1) AS got", [PG_LOCK_KEY])
            if not rows[0]["got"]:
                log.warning("database: waiting for another process's migration to finish")
                await tx.execute_query("SELECT pg_advisory_xact_lock($1)", [PG_LOCK_KEY])
        elif tx.capabilities.dialect == "sqlite":
            await _begin_immediate(tx, loud=loud)
        else:
            msg = f"migrations support sqlite and postgres, not {tx.capabilities.dialect}"
            raise SchemaMismatch(msg)
        yield tx


async def _begin_immediate(tx: BaseDBAsyncClient, *, loud: bool) -> None:
    # tortoise begins SQLite transactions DEFERRED (the write lock comes with the first write, so
    # two processes could both read "not applied"). End that empty transaction and begin an
    # IMMEDIATE one on the same connection: first without waiting, to say why we wait, then with
    # the busy timeout, again and again, while another process's migration runs.
    await tx.execute_query("COMMIT")
    busy_ms = int((await tx.execute_query_dict("PRAGMA busy_timeout"))[0]["timeout"])
    await tx.execute_query("PRAGMA busy_timeout = 0")
    try:
        await tx.execute_query("BEGIN IMMEDIATE")
        return
    except OperationalError as exc:
        if "locked" not in str(exc):
            raise
        # Another process migrating, or imgate run storing messages while its worker starts.
        log.log(logging.WARNING if loud else logging.INFO,
                "database: another process holds the write lock (a migration, or its writes); waiting")
    finally:
        await tx.execute_query(f"PRAGMA busy_timeout = {busy_ms}")
    deadline = time.monotonic() + SQLITE_LOCK_WAIT_S
    while True:
        try:
            await tx.execute_query("BEGIN IMMEDIATE")
            return
        except OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise


async def _tables(tx: BaseDBAsyncClient) -> set[str]:
    names = ["users", _META, _AERICH]
    if tx.capabilities.dialect == "postgres":
        row = (await tx.execute_query_dict(
            "SELECT " + ", ".join(f"to_regclass('{n}') IS NOT NULL AS \"{n}\"" for n in names)))[0]
        return {n for n in names if row[n]}
    rows = await tx.execute_query_dict(
        f"SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ({', '.join('?' * len(names))})", names)
    return {r["name"] for r in rows}


async def _meta_version(tx: BaseDBAsyncClient) -> str | None:
    rows = await tx.execute_query_dict(_sql(tx, f'SELECT "value" FROM "{_META}" WHERE "key" = ?'),
                                       ["schema_version"])
    return str(rows[0]["value"]) if rows else None


async def _applied(tx: BaseDBAsyncClient) -> list[str]:
    rows = await tx.execute_query_dict(_sql(tx, f'SELECT "version" FROM "{_AERICH}" WHERE "app" = ? ORDER BY "id"'),
                                       [APP])
    return [str(r["version"]) for r in rows]


def _sql(tx: BaseDBAsyncClient, query: str) -> str:
    """``?`` placeholders, as ``$1, $2, ...`` on PostgreSQL (services.db.portable_sql, without the import cycle)."""
    if tx.capabilities.dialect != "postgres":
        return query
    parts = query.split("?")
    return parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], start=1))
