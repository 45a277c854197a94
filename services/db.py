"""Database lifecycle: the one place that initialises and closes tortoise-orm."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tortoise import Tortoise, connections, fields
from tortoise.models import Model
from tortoise.backends.base.client import BaseDBAsyncClient

# Bump when a table changes. There are no migrations yet: a database made by another schema
# version is refused at start-up with a clear message instead of failing on the first query.
SCHEMA_VERSION = 2

MODEL_MODULES = [
    "services.db",
    "services.users.models",
    "services.conversations.models",
    "services.messages.models",
    "services.presence.models",
    "services.notifications.models",
    "services.push.models",
]


_QMARK = re.compile(r"\?")


def portable_sql(conn: BaseDBAsyncClient, query: str) -> str:
    """SQL written with ``?`` placeholders, rewritten to ``$1, $2, …`` for PostgreSQL."""
    if conn.capabilities.dialect == "postgres":
        counter = iter(range(1, 10_000))
        return _QMARK.sub(lambda _: f"${next(counter)}", query)
    return query


def tortoise_config(url: str, *, sqlite_synchronous: str = "FULL", busy_timeout_ms: int = 5000) -> dict[str, Any]:
    """Build tortoise's config; SQLite gets WAL + fsync on commit + a busy timeout."""
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        connection: dict[str, Any] | str = {
            "engine": "tortoise.backends.sqlite",
            "credentials": {
                "file_path": path,
                "journal_mode": "WAL",
                "synchronous": sqlite_synchronous,
                "busy_timeout": busy_timeout_ms,
            },
        }
    elif urlsplit(url).scheme in {"postgres", "postgresql", "asyncpg"}:
        connection = url
    else:
        msg = f"unsupported database url {url!r} (use sqlite://PATH or postgres://…)"
        raise ValueError(msg)
    return {
        "connections": {"default": connection},
        "apps": {"models": {"models": MODEL_MODULES, "default_connection": "default"}},
        "use_tz": True,
        "timezone": "UTC",
    }


class DbInfo(Model):
    """Key/value facts about the database itself (the schema version)."""

    key = fields.CharField(max_length=64, primary_key=True)
    value = fields.CharField(max_length=255)

    class Meta:
        table = "imgate_meta"


class SchemaMismatch(RuntimeError):
    """The database was created by an incompatible version of imgate."""


class Database:
    """Owns tortoise's global state for one process; use as an async context manager."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", busy_timeout_ms: int = 5000,
                 create_db: bool = False) -> None:
        self._config = tortoise_config(url, sqlite_synchronous=sqlite_synchronous, busy_timeout_ms=busy_timeout_ms)
        self._create_db = create_db
        self.url = url

    async def __aenter__(self) -> Database:
        # Tortoise keeps its state in a context; the global fallback makes it visible to tasks
        # that asyncio servers start outside this task's context (broker connections).
        await Tortoise.init(config=self._config, _create_db=self._create_db, _enable_global_fallback=True)
        try:
            await self._check_schema()
        except BaseException:
            await Tortoise.close_connections()
            raise
        return self

    async def _check_schema(self) -> None:
        conn = connections.get("default")
        if conn.capabilities.dialect == "postgres":
            rows = await conn.execute_query_dict("SELECT to_regclass('users') IS NOT NULL AS present")
            existed = bool(rows[0]["present"])
        else:
            existed = bool(await conn.execute_query_dict(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'users'"))
        await Tortoise.generate_schemas(safe=True)
        row = await DbInfo.get_or_none(key="schema_version")
        if row is None and not existed:
            await DbInfo.create(key="schema_version", value=str(SCHEMA_VERSION))
        elif row is None or row.value != str(SCHEMA_VERSION):
            found = row.value if row is not None else "1"
            msg = (f"the database at {self.url} has imgate schema version {found}, this imgate needs "
                   f"{SCHEMA_VERSION}; there are no migrations yet: use a new data directory or database")
            raise SchemaMismatch(msg)

    async def __aexit__(self, *exc: object) -> None:
        await Tortoise.close_connections()

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite://")
