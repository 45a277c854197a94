"""What every migration file calls: one history for SQLite and PostgreSQL, each file holding the
SQL of both (``UPGRADE``/``DOWNGRADE`` by dialect)."""

from __future__ import annotations

from tortoise import BaseDBAsyncClient


def sql_for(sql: dict[str, str], db: BaseDBAsyncClient) -> str:
    """The SQL for ``db``'s dialect.

    Raises:
        NotImplementedError: the migration has no SQL for this dialect.
    """
    dialect = db.capabilities.dialect
    if dialect not in sql:
        msg = f"this migration has no SQL for {dialect} (only {', '.join(sql)})"
        raise NotImplementedError(msg)
    return sql[dialect]
