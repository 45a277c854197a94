"""Transactions that survive the database connection dying under them.

tortoise's ``in_transaction()`` (1.1.9, asyncpg) puts the transaction's client in the running
task's context and takes it out in ``__aexit__`` only *after* releasing the connection to the
pool; when PostgreSQL restarts, that release raises (the dying connection cannot be reset), the
client stays in the task's context, and every later query of that task (a long-lived worker: the
message committer, a bridge lane) fails with "connection has been released back to the pool",
for good (tortoise issue #413). It also leaves the context set, and the connection taken, when
``BEGIN`` itself fails. ``transaction()`` is the same context manager, with both fixed: whatever
fails, the task's context is restored and the connection goes back to the pool (asyncpg
terminates a connection it cannot reset, which frees its place).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

log = logging.getLogger("imgate.db")


@asynccontextmanager
async def transaction(connection_name: str | None = None) -> AsyncIterator[BaseDBAsyncClient]:
    """``async with transaction() as conn:`` commits on success, rolls back on error."""
    ctx = in_transaction(connection_name)
    try:
        conn = await ctx.__aenter__()
    except BaseException:
        await _restore(ctx)
        raise
    try:
        yield conn
    except BaseException as exc:
        try:
            await ctx.__aexit__(type(exc), exc, exc.__traceback__)
        finally:
            await _restore(ctx)
        raise
    try:
        await ctx.__aexit__(None, None, None)
    finally:
        await _restore(ctx)


async def _restore(ctx: Any) -> None:
    """Undo what a transaction context may have left behind (a no-op when it cleaned up)."""
    token = getattr(ctx, "token", None)
    if token is not None and not getattr(token, "_used", True):
        with suppress(ValueError, RuntimeError):
            connections.reset(token)
    client = getattr(ctx, "client", None)
    pool = getattr(getattr(client, "_parent", None), "_pool", None)
    conn = getattr(client, "_connection", None)
    if pool is not None and conn is not None:
        try:
            await pool.release(conn)  # a no-op for a connection released already
        except Exception as exc:  # noqa: BLE001 (a dying connection: asyncpg has terminated it)
            log.debug("releasing a failed transaction's connection: %r", exc)
