"""Database lifecycle: the one place that initialises and closes tortoise-orm."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient

MODEL_MODULES = [
    "services.users.models",
    "services.conversations.models",
    "services.messages.models",
    "services.presence.models",
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
        await Tortoise.generate_schemas(safe=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await Tortoise.close_connections()

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite://")
