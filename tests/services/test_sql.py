"""SQL programs (services/sql.py) on the real database, and ``?`` placeholders that become
PostgreSQL's ``$n`` only where they are placeholders."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from tortoise import connections
from tortoise.exceptions import IntegrityError

from services.db import Database, DbInfo, to_numbered
from services.sql import Many, Program, Query, json_text, json_value, marks, run_on, run_transaction
from services.transactions import transaction


@pytest.mark.parametrize(("query", "expected"), [
    ("SELECT * FROM t WHERE a = ? AND b IN (?, ?)", "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)"),
    ("SELECT '?' FROM t WHERE a = ?", "SELECT '?' FROM t WHERE a = $1"),  # before: '$1' and $2
    ("SELECT 'it''s ?', \"col?\" FROM t WHERE a = ?", "SELECT 'it''s ?', \"col?\" FROM t WHERE a = $1"),
    ("SELECT x -- why?\nFROM t WHERE a = ?", "SELECT x -- why?\nFROM t WHERE a = $1"),
    ("SELECT x /* ? and\n ? */ FROM t WHERE a = ?", "SELECT x /* ? and\n ? */ FROM t WHERE a = $1"),
    ("SELECT 1", "SELECT 1"),
])
def test_only_placeholders_are_numbered(query: str, expected: str) -> None:
    assert to_numbered(query) == expected


# ---- programs: the same statements, one transaction, on either dialect ------------------------



@pytest.fixture
async def db(database_url: str) -> AsyncIterator[None]:
    async with Database(database_url):
        yield


def put(pairs: list[tuple[str, str]]) -> Program[list[str]]:
    """Insert rows, then read back every key (what a transaction's later statement sees)."""
    yield Many("INSERT INTO imgate_meta (key, value) VALUES (?, ?)", pairs)
    rows = yield Query(f"SELECT key FROM imgate_meta WHERE key IN ({marks(len(pairs))}) ORDER BY key", [k for k, _ in pairs])
    return [r[0] for r in rows]


async def keys(prefix: str) -> list[str]:
    return sorted(r.key for r in await DbInfo.filter(key__startswith=prefix))


async def test_a_program_commits_as_one_transaction_and_returns_its_value(db: None) -> None:
    assert await run_transaction(put([("t:b", "2"), ("t:a", "1")])) == ["t:a", "t:b"]
    assert await keys("t:") == ["t:a", "t:b"]


async def test_a_program_that_raises_rolls_everything_back(db: None) -> None:
    def failing() -> Program[None]:
        yield from put([("r:a", "1")])
        raise ValueError("the program's own error")

    with pytest.raises(ValueError, match="own error"):
        await run_transaction(failing())
    assert await keys("r:") == []
    assert await run_transaction(put([("r:b", "1")])) == ["r:b"]  # the connection is usable again


async def test_a_unique_violation_is_tortoises_integrity_error_and_rolls_back(db: None) -> None:
    await run_transaction(put([("u:a", "1")]))
    with pytest.raises(IntegrityError):
        await run_transaction(put([("u:b", "1"), ("u:a", "again")]))
    assert await keys("u:") == ["u:a"]  # u:b, inserted before the violation, is rolled back


async def test_run_on_joins_the_callers_transaction(db: None) -> None:
    with pytest.raises(RuntimeError):
        async with transaction() as conn:
            assert await run_on(conn, put([("j:a", "1")])) == ["j:a"]
            raise RuntimeError("the caller rolls back")
    assert await keys("j:") == []
    assert await run_on(connections.get("default"), put([("j:b", "1")])) == ["j:b"]  # autocommit outside one


async def test_for_update_serialises_read_modify_write(db: None) -> None:
    """Concurrent programs that lock the same row take turns (PostgreSQL: FOR UPDATE; SQLite:
    one transaction at a time): no increment is lost."""
    await run_transaction(put([("ctr", "0")]))

    def increment() -> Program[int]:
        rows = yield Query("SELECT value FROM imgate_meta WHERE key = ?", ["ctr"], for_update=True)
        value = int(rows[0][0]) + 1
        yield Query("UPDATE imgate_meta SET value = ? WHERE key = ?", [str(value), "ctr"])
        return value

    seen = await asyncio.gather(*(run_transaction(increment()) for _ in range(20)))
    assert sorted(seen) == list(range(1, 21))
    assert (await DbInfo.get(key="ctr")).value == "20"


def test_json_columns_round_trip() -> None:
    value = {"k": ["ü", 1, None]}
    assert json_value(json_text(value)) == value
    assert json_text(None) is None and json_value(None) is None
    assert json_value({"decoded": True}) == {"decoded": True}
