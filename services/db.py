"""Database lifecycle: the one place that initialises and closes tortoise-orm."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tortoise import Tortoise, connections, fields
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import DBConnectionError
from tortoise.models import Model

from services.files import private_sqlite_file
from services.migrations.runner import Outcome, SchemaMismatch, migrate

__all__ = ["MODEL_MODULES", "Database", "DatabaseUnavailable", "DbInfo", "SchemaMismatch", "portable_sql", "redact_url",
           "tortoise_config"]

log = logging.getLogger("imgate.db")

# A table changes through a migration (services/migrations; docs/migrations.md), never by hand.
MODEL_MODULES = [
    "aerich.models",  # aerich's bookkeeping table: which migrations are applied
    "services.db",
    "services.users.models",
    "services.conversations.models",
    "services.messages.models",
    "services.presence.models",
    "services.notifications.models",
    "services.events.models",
    "services.push.models",
    "services.reactions.models",
    "services.blocks.models",
    "services.profiles.models",
    "services.contacts.models",
    "services.attachments.models",
    "services.audit.models",
    "services.callbacks.models",
]


# A placeholder, or something a '?' inside must not be taken from: a string literal, a quoted
# identifier, a comment.
_TOKENS = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|\?""", re.DOTALL)


def portable_sql(conn: BaseDBAsyncClient, query: str) -> str:
    """SQL written with ``?`` placeholders, rewritten to ``$1, $2, …`` for PostgreSQL."""
    if conn.capabilities.dialect == "postgres":
        return to_numbered(query)
    return query


def to_numbered(query: str) -> str:
    """``?`` placeholders as ``$1, $2, …``; a ``?`` in a string literal, a quoted identifier or a
    comment is left as it is."""
    counter = iter(range(1, 1_000_000))
    return _TOKENS.sub(lambda m: f"${next(counter)}" if m.group() == "?" else m.group(), query)


def redact_url(url: str) -> str:
    """The URL without its password, for messages: ``postgres://user:***@host/db`` (also a
    ``?password=`` parameter)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparseable database url>"
    if password:
        host = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    if "password" in parts.query.lower():
        query = [(k, "***" if k.lower() == "password" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return urlunsplit(parts)


def tortoise_config(url: str, *, sqlite_synchronous: str = "FULL", busy_timeout_ms: int = 5000) -> dict[str, Any]:
    """Build tortoise's config; SQLite gets WAL + fsync on commit + a busy timeout."""
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
        if path != ":memory:":
            private_sqlite_file(Path(path))  # 0600, in a 0700 directory if it creates one
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
        msg = f"unsupported database url {redact_url(url)!r} (use sqlite://PATH or postgres://…)"
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


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached or logged into at start-up (the message has no password)."""


def _connect_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (OSError, DBConnectionError)
    try:
        import asyncpg  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - asyncpg comes with tortoise-orm[asyncpg]
        return errors
    return (*errors, asyncpg.InvalidAuthorizationSpecificationError, asyncpg.CannotConnectNowError)


class Database:
    """Owns tortoise's global state for one process; use as an async context manager.

    Entering it brings the schema up to date (``upgrade``, the default), or with ``upgrade=False``
    refuses a database that needs migrations (an empty database is created either way).
    """

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", busy_timeout_ms: int = 5000,
                 create_db: bool = False, upgrade: bool = True) -> None:
        self._config = tortoise_config(url, sqlite_synchronous=sqlite_synchronous, busy_timeout_ms=busy_timeout_ms)
        self._create_db = create_db
        self._upgrade = upgrade
        self.url = url
        self.migrations = Outcome()  # what entering did

    @property
    def display_url(self) -> str:
        """The URL for messages and logs: without its password."""
        return redact_url(self.url)

    def __repr__(self) -> str:
        return f"Database({self.display_url!r})"

    async def __aenter__(self) -> Self:
        """Raises:
            SchemaMismatch: the schema is newer than this imgate, too old to migrate, or (with
                ``upgrade=False``) needs migrations.
            DatabaseUnavailable: the database server cannot be reached or refuses the login.
        """
        # Tortoise caches each model's INSERT statement by connection name and table, not by
        # dialect: a process that opened SQLite before (the test suite) would send SQLite's
        # placeholders to PostgreSQL. A fresh start forgets them.
        from tortoise.backends.base.executor import EXECUTOR_CACHE

        EXECUTOR_CACHE.clear()
        # Tortoise keeps its state in a context; the global fallback makes it visible to tasks
        # that asyncio servers start outside this task's context (broker connections).
        await Tortoise.init(config=self._config, _create_db=self._create_db, _enable_global_fallback=True)
        try:
            try:
                self.migrations = await migrate(connections.get("default"), self.display_url, upgrade=self._upgrade)
            except _connect_errors() as exc:
                msg = f"cannot open the database at {self.display_url}: {type(exc).__name__}: {exc}"
                raise DatabaseUnavailable(msg) from None
        except BaseException:
            await Tortoise.close_connections()
            raise
        if self.migrations.created:
            log.info("database: created %s", self.display_url)
        log.info("database: %s is at migration %s", self.display_url, self.migrations.current)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await Tortoise.close_connections()

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite://")
