"""Schema migrations, on SQLite and on PostgreSQL (IMGATE_TEST_DB=postgres).

A database made by the previous schema (imgate commit 72449cc: ``imgate_meta`` schema_version 2,
tables from ``generate_schemas``, no migrations; its DDL is in tests/data) with users, tokens,
conversations, messages and notifications in it is upgraded by ``imgate migrate`` and by starting
imgate, and everything is still there: row for row, and through the real broker's RPCs. Also: a
fresh database, running twice, a database from a newer imgate, the CLI's user commands, two
processes at once, the lock, models and migrations agreeing, and no password in any message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from imgate.app import App
from services.db import Database, DatabaseUnavailable, SchemaMismatch, redact_url
from services.migrations.runner import PG_LOCK_KEY, known_migrations
from services.users.service import hash_token
from tests.conftest import PG_DSN
from tests.helpers import WAIT, connect

DATA = Path(__file__).parent / "data"
T0 = 1_700_000_000_000
TOKENS = {"alice": "imt_alice-phone-token-made-by-imgate-schema-2",
          "bob": "imt_bob-phone-token-made-by-imgate-schema-2"}
# Message ids as imgate makes them (ULIDs), fixed so the test can compare whole messages.
IDS = [f"01HV{n:022d}" for n in range(1, 6)]
VERSIONS = [m.version for m in known_migrations()]
V2_TABLES = ["imgate_meta", "auth_events", "device_tokens", "users", "conversations", "members", "messages",
             "device_presence", "notifications", "notification_cursors", "message_events", "push_jobs",
             "push_targets"]


def dialect(url: str) -> str:
    return "sqlite" if url.startswith("sqlite://") else "postgres"


class Raw:
    """The test's own connection (aiosqlite or asyncpg, not tortoise): SQL with ``?`` placeholders."""

    def __init__(self, conn: Any, kind: str) -> None:
        self.conn = conn
        self.kind = kind

    def _sql(self, query: str) -> str:
        if self.kind == "sqlite":
            return query
        parts = query.split("?")
        return parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], start=1))

    async def script(self, sql: str) -> None:
        if self.kind == "sqlite":
            await self.conn.executescript(sql)
        else:
            await self.conn.execute(sql)

    async def execute(self, query: str, *args: Any) -> None:
        if self.kind == "sqlite":
            await self.conn.execute(query, args)
        else:
            await self.conn.execute(self._sql(query), *args)

    async def rows(self, query: str, *args: Any) -> list[dict[str, Any]]:
        if self.kind == "sqlite":
            async with self.conn.execute(self._sql(query), args) as cur:
                names = [d[0] for d in cur.description]
                return [dict(zip(names, r, strict=True)) for r in await cur.fetchall()]
        return [dict(r) for r in await self.conn.fetch(self._sql(query), *args)]

    async def tables(self) -> set[str]:
        if self.kind == "sqlite":
            return {r["name"] for r in await self.rows("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return {r["tablename"] for r in await self.rows("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


@asynccontextmanager
async def raw(url: str) -> AsyncIterator[Raw]:
    if dialect(url) == "sqlite":
        import aiosqlite

        conn = await aiosqlite.connect(url.removeprefix("sqlite://"), isolation_level=None)
        try:
            await conn.execute("PRAGMA journal_mode = WAL")  # as imgate's connections set it
            yield Raw(conn, "sqlite")
        finally:
            await conn.close()
    else:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            yield Raw(conn, "postgres")
        finally:
            await conn.close()


async def make_v2_database(url: str) -> None:
    """The previous schema, with what a running imgate of that version had written into it."""
    kind = dialect(url)
    async with raw(url) as db:
        await db.script((DATA / f"schema_v2_{kind}.sql").read_text())
        meta = [("schema_version", "2"), ("events:push", "0"), ("events:search", "0")]
        for key, value in meta:
            await db.execute('INSERT INTO imgate_meta ("key", "value") VALUES (?, ?)', key, value)
        for uid, name, disabled in [("alice", "Alice", False), ("bob", "Bob", False), ("carol", "Carol", True)]:
            await db.execute("INSERT INTO users (uid, name, disabled, created_at) VALUES (?, ?, ?, ?)",
                             uid, name, disabled, T0)
        for uid, device, platform, token, revoked in [("alice", "phone", "android", TOKENS["alice"], None),
                                                      ("bob", "phone", "ios", TOKENS["bob"], None),
                                                      ("bob", "old", "", "imt_revoked-token", T0 + 5)]:
            await db.execute("INSERT INTO device_tokens (uid, device, platform, token_hash, created_at, revoked_at) "
                             "VALUES (?, ?, ?, ?, ?, ?)", uid, device, platform, hash_token(token), T0, revoked)
        await db.execute("INSERT INTO auth_events (uid, device, kind, ts) VALUES (?, ?, ?, ?)",
                         "bob", "old", "revoke", T0 + 5)
        await db.execute("INSERT INTO conversations (id, kind, last_seq, last_msg_id, last_ts, created_at, name, owner) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", "d:alice:bob", "direct", 3, IDS[2], T0 + 3, T0, "", None)
        await db.execute("INSERT INTO conversations (id, kind, last_seq, last_msg_id, last_ts, created_at, name, owner) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", "g:team", "group", 2, IDS[4], T0 + 5, T0, "Team", "alice")
        for conv, uid, read_seq, role, muted in [("d:alice:bob", "alice", 3, "member", False),
                                                 ("d:alice:bob", "bob", 1, "member", True),
                                                 ("g:team", "alice", 2, "owner", False),
                                                 ("g:team", "bob", 0, "member", False)]:
            await db.execute("INSERT INTO members (conv_id, uid, read_seq, joined_seq, left_seq, role, muted, pinned) "
                             "VALUES (?, ?, ?, 0, NULL, ?, ?, ?)", conv, uid, read_seq, role, muted, False)
        for msg in v2_messages():
            await db.execute("INSERT INTO messages (id, conv, seq, sender, cid, type, text, data, mentions, ts) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", msg["id"], msg["conv"], msg["seq"], msg["from"],
                             msg["cid"], msg["type"], msg.get("text"),
                             json.dumps(msg["data"]) if "data" in msg else None,
                             json.dumps(msg["mentions"]) if "mentions" in msg else None, msg["ts"])
        for uid, title in [("bob", "one"), ("bob", "two"), ("alice", "hello")]:
            await db.execute("INSERT INTO notifications (uid, body, created_at) VALUES (?, ?, ?)",
                             uid, json.dumps({"title": title}), T0 + 1)
        first = (await db.rows("SELECT MIN(id) AS id FROM notifications"))[0]["id"]
        await db.execute("INSERT INTO notification_cursors (uid, device, last_id) VALUES (?, ?, ?)",
                         "bob", "phone", first)  # bob's phone had "one" already
        await db.execute("INSERT INTO device_presence (uid, device, online, platform, ts) VALUES (?, ?, ?, ?, ?)",
                         "bob", "phone", False, "ios", T0 + 4)
        await db.execute("INSERT INTO push_targets (uid, platform, token, created_at) VALUES (?, ?, ?, ?)",
                         "bob", "webhook", "https://push.example.invalid/bob", T0)


def v2_messages() -> list[dict[str, Any]]:
    """The stored messages, as the history RPC renders them."""
    def m(i: int, conv: str, seq: int, sender: str, **rest: Any) -> dict[str, Any]:
        return {"id": IDS[i], "conv": conv, "seq": seq, "from": sender, "cid": f"c-{i}", "type": "text",
                "ts": T0 + i + 1, **rest}

    return [m(0, "d:alice:bob", 1, "alice", text="hello bob"),
            m(1, "d:alice:bob", 2, "bob", text="hi alice, ünïcode ✓"),
            m(2, "d:alice:bob", 3, "alice", type="location", data={"lat": 52.5, "lon": 13.4}),
            m(3, "g:team", 1, "alice", text="welcome @bob", mentions=["bob"]),
            m(4, "g:team", 2, "bob", text="thanks")]


async def dump(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table the previous schema had, in primary-key order."""
    out = {}
    async with raw(url) as db:
        for table in V2_TABLES:
            key = "key" if table == "imgate_meta" else "uid" if table == "users" else "id"
            out[table] = await db.rows(f'SELECT * FROM "{table}" ORDER BY "{key}"')
    return out


async def imgate(tmp_path: Path, *args: str, url: str) -> tuple[int, str, str]:
    """``imgate ARGS`` as a real process; (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "imgate", "--data-dir", str(tmp_path), *args, env=_env(url),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _env(url: str) -> dict[str, str]:
    return {**os.environ, "IMGATE_DATABASE__URL": url}


async def assert_everything_is_there(app: App) -> None:
    """Through the real broker: the old tokens log in, history, conversations, a new message
    continuing the old sequence; and the notifications after a device's cursor."""
    port = app.mqtt_port
    async with connect(port, "bob", "phone", TOKENS["bob"]) as bob, \
               connect(port, "alice", "phone", TOKENS["alice"]) as alice:
        messages = v2_messages()
        direct = await bob.result("history", {"conv": "d:alice:bob"})
        assert direct == {"messages": messages[:3], "has_more": False}
        group = await bob.result("history", {"conv": "g:team"})
        assert group == {"messages": messages[3:], "has_more": False}
        items = (await bob.result("conversations", {}))["items"]
        assert [(i["conv"], i["last_seq"], i["read_seq"], i["unread"], i["muted"]) for i in items] == [
            ("g:team", 2, 0, 2, False), ("d:alice:bob", 3, 1, 2, True)]
        assert items[0]["name"] == "Team" and items[0]["last"] == messages[4]
        # (Through the service: the notifications RPC's shape is not this test's business.)
        assert app.services is not None
        claimed = await app.services.notifications.claim("bob", "phone")
        assert claimed is not None  # "one" was delivered before the upgrade
        assert [(n.uid, n.body) for n in claimed.notifications] == [("bob", {"title": "two"})]
        ack = await alice.send_and_ack("after-the-upgrade", "bob", "still here")
        assert (ack["conv"], ack["seq"]) == ("d:alice:bob", 4)
        assert (await alice.result("history", {"conv": "d:alice:bob", "after_seq": 3}))["messages"][0]["text"] \
            == "still here"


# Columns the migrations after the baseline add to existing rows, with the value each gets.
ADDED_COLUMNS = {"device_presence": {"conn": ""}, "device_tokens": {"encoding": "json", "last_used_at": None},
                 "users": {"kind": "user", "messages_per_s": None, "messages_burst": None, "erased_at": None},
                 "conversations": {"mention_all": None, "mention_all_recent": None, "pin": None,
                                   "ttl": None},
                 "messages": {"reply": None, "reply_to": None, "edited_at": None, "file_key": None, "thumb_key": None,
                              "preview": None, "forwarded": None, "thread": None, "tseq": None, "expires_at": None}}


async def aerich_rows(url: str) -> list[tuple[int, str, str]]:
    async with raw(url) as db:
        return [(r["id"], r["version"], r["app"]) for r in await db.rows('SELECT * FROM aerich ORDER BY id')]


async def meta_version(url: str) -> str:
    async with raw(url) as db:
        return (await db.rows("SELECT value FROM imgate_meta WHERE key = 'schema_version'"))[0]["value"]


def test_the_baseline_is_the_previous_schema_and_there_is_a_migration_after_it() -> None:
    assert len(VERSIONS) >= 2 and VERSIONS[0].startswith("0_") and VERSIONS[0].endswith("_init.py")
    assert [int(v.split("_")[0]) for v in VERSIONS] == list(range(len(VERSIONS)))


async def test_imgate_migrate_upgrades_a_schema_2_database_and_loses_nothing(
        tmp_path: Path, database_url: str, settings: Settings) -> None:
    await make_v2_database(database_url)
    before = await dump(database_url)
    code, out, err = await imgate(tmp_path, "migrate", url=database_url)
    assert code == 0, err
    assert f"adopted the database at {redact_url(database_url)} (schema version 2) as {VERSIONS[0]}" in out
    assert [line for line in out.splitlines() if line.startswith("applied")] == [f"applied {v}" for v in VERSIONS[1:]]
    after = await dump(database_url)
    assert after["imgate_meta"] == [{"key": "events:push", "value": "0"}, {"key": "events:search", "value": "0"},
                                    {"key": "schema_version", "value": "3"}]
    for table, added in ADDED_COLUMNS.items():  # columns of later migrations: their defaults, then compared
        for row in after[table]:
            assert {c: row.pop(c) for c in added} == added, table
    assert {t: rows for t, rows in after.items() if t != "imgate_meta"} == \
        {t: rows for t, rows in before.items() if t != "imgate_meta"}
    assert [v for _, v, _ in await aerich_rows(database_url)] == VERSIONS
    async with App(settings) as app:
        await assert_everything_is_there(app)


async def test_starting_imgate_upgrades_a_schema_2_database_with_a_log_line(
        database_url: str, settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    await make_v2_database(database_url)
    caplog.set_level(logging.INFO, logger="imgate")
    async with App(settings) as app:
        where = redact_url(database_url)
        logged = [r.getMessage() for r in caplog.records if r.name == "imgate.migrations"]
        assert logged == [f"database: adopted the schema-version-2 database at {where} as migration {VERSIONS[0]}",
                          *(f"database: applied migration {v} to {where}" for v in VERSIONS[1:])]
        await assert_everything_is_there(app)
    assert [v for _, v, _ in await aerich_rows(database_url)] == VERSIONS
    caplog.clear()
    async with App(settings):  # the second start applies nothing
        assert not [r for r in caplog.records if r.name == "imgate.migrations"]


async def test_a_fresh_database_gets_every_migration_and_is_up_to_date(database_url: str) -> None:
    async with Database(database_url) as db:
        assert db.migrations.created and db.migrations.applied == VERSIONS and db.migrations.stamped is None
    assert [v for _, v, _ in await aerich_rows(database_url)] == VERSIONS
    assert await meta_version(database_url) == "3"
    async with raw(database_url) as conn:
        assert set(V2_TABLES) | {"aerich"} <= await conn.tables()
    async with Database(database_url) as db:
        assert not db.migrations.created and db.migrations.applied == [] and db.migrations.current == VERSIONS[-1]


async def test_migrate_twice_changes_nothing_the_second_time(tmp_path: Path, database_url: str) -> None:
    await make_v2_database(database_url)
    code, _, err = await imgate(tmp_path, "migrate", url=database_url)
    assert code == 0, err
    rows, data = await aerich_rows(database_url), await dump(database_url)
    code, out, err = await imgate(tmp_path, "migrate", url=database_url)
    assert code == 0, err
    assert out.splitlines() == [f"the database at {redact_url(database_url)} is up to date",
                                f"schema at {VERSIONS[-1]}"]
    assert await aerich_rows(database_url) == rows and await dump(database_url) == data


async def test_a_database_from_a_newer_imgate_is_refused_and_left_alone(tmp_path: Path, database_url: str) -> None:
    async with Database(database_url):
        pass
    future = f"{len(VERSIONS)}_20991231235959_from_the_future.py"
    async with raw(database_url) as db:
        await db.execute("INSERT INTO aerich (version, app, content) VALUES (?, ?, ?)", future, "models", "{}")
    rows = await aerich_rows(database_url)
    # On PostgreSQL with a password in the URL (trust auth lets it in): the message hides it.
    url = database_url.replace("postgres@", "postgres:pw-s3cret@") if dialect(database_url) == "postgres" \
        else database_url
    with pytest.raises(SchemaMismatch, match="newer imgate") as refused:
        async with Database(url):
            pass
    assert future in str(refused.value) and "pw-s3cret" not in str(refused.value)
    assert redact_url(url) in str(refused.value)
    code, out, err = await imgate(tmp_path, "migrate", url=url)
    assert code == 2 and future in err and "newer imgate" in err and "pw-s3cret" not in out + err
    assert await aerich_rows(database_url) == rows
    async with raw(database_url) as db:
        await db.execute("DELETE FROM aerich WHERE version = ?", future)
        await db.execute("UPDATE imgate_meta SET value = '4' WHERE key = 'schema_version'")
    with pytest.raises(SchemaMismatch, match="schema version 4, newer than this imgate knows"):
        async with Database(database_url):
            pass


async def test_user_commands_refuse_a_database_that_needs_migrating(tmp_path: Path, database_url: str) -> None:
    await make_v2_database(database_url)
    before = await dump(database_url)
    code, _, err = await imgate(tmp_path, "user", "add", "dave", url=database_url)
    assert code == 2 and "run `imgate migrate`" in err
    async with raw(database_url) as db:
        assert "aerich" not in await db.tables()
    assert await dump(database_url) == before
    code, _, err = await imgate(tmp_path, "migrate", url=database_url)
    assert code == 0, err
    code, _, err = await imgate(tmp_path, "user", "add", "dave", url=database_url)
    assert code == 0 and "created user dave" in err


async def test_two_processes_migrating_at_once_apply_each_migration_once(tmp_path: Path, database_url: str) -> None:
    await make_v2_database(database_url)
    results = await asyncio.gather(*(imgate(tmp_path, "migrate", url=database_url) for _ in range(2)))
    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    outputs = "\n".join(out for _, out, _ in results).splitlines()
    assert sum(line.startswith("adopted ") for line in outputs) == 1
    for version in VERSIONS[1:]:
        assert outputs.count(f"applied {version}") == 1
    assert [v for _, v, _ in await aerich_rows(database_url)] == VERSIONS


async def test_a_migration_waits_for_the_lock_another_process_holds(tmp_path: Path, database_url: str) -> None:
    await make_v2_database(database_url)
    async with raw(database_url) as holder:
        if holder.kind == "postgres":
            await holder.execute("BEGIN")
            await holder.execute("SELECT pg_advisory_xact_lock(?)", PG_LOCK_KEY)
        else:
            await holder.execute("BEGIN IMMEDIATE")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "imgate", "--data-dir", str(tmp_path), "migrate", env=_env(database_url),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            assert proc.stderr is not None and proc.stdout is not None

            async def waiting() -> None:
                while True:
                    line = await proc.stderr.readline()  # type: ignore[union-attr]
                    assert line, "imgate migrate ended (or closed stderr) without waiting for the lock"
                    if b"waiting for another process's migration" in line or b"holds the write lock" in line:
                        return
            await asyncio.wait_for(waiting(), WAIT * 3)
            assert "aerich" not in await holder.tables()  # it has not started: the lock is ours
            await holder.execute("ROLLBACK")
            out = await asyncio.wait_for(proc.stdout.read(), 60)
            assert await asyncio.wait_for(proc.wait(), 60) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert f"applied {VERSIONS[-1]}" in out.decode()
    assert [v for _, v, _ in await aerich_rows(database_url)] == VERSIONS


@asynccontextmanager
async def another_database(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    if dialect(database_url) == "sqlite":
        yield f"sqlite://{tmp_path / 'other.db'}"
        return
    import asyncpg

    name = f"imgate_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(f"{PG_DSN}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{PG_DSN}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def schema_of(url: str) -> dict[str, Any]:
    """Tables, columns and indexes, as the database describes them."""
    async with raw(url) as db:
        if db.kind == "postgres":
            columns = await db.rows(
                "SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns "
                "WHERE table_schema = 'public' ORDER BY table_name, column_name")
            indexes = await db.rows("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                                    "ORDER BY indexname")
            return {"columns": columns, "indexes": indexes}
        out: dict[str, Any] = {}
        for table in sorted(await db.tables() - {"sqlite_sequence"}):
            out[table] = {
                "columns": await db.rows(f'SELECT name, type, "notnull", pk FROM pragma_table_info("{table}")'),
                "indexes": [(i["name"], i["unique"], i["origin"],
                             [c["name"] for c in await db.rows(f'SELECT name FROM pragma_index_info("{i["name"]}")')])
                            for i in sorted(await db.rows(f'SELECT * FROM pragma_index_list("{table}")'),
                                            key=lambda i: i["name"])],
            }
        return out


async def test_the_migrations_make_the_schema_the_models_describe(tmp_path: Path, database_url: str) -> None:
    """A model changed without a migration fails here (write one: python -m services.migrations.make NAME)."""
    from tortoise import Tortoise

    from services.db import tortoise_config

    async with Database(database_url):
        pass
    async with another_database(database_url, tmp_path) as url:
        await Tortoise.init(config=tortoise_config(url))
        try:
            await Tortoise.generate_schemas(safe=False)
        finally:
            await Tortoise.close_connections()
        assert await schema_of(database_url) == await schema_of(url)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_no_message_shows_the_database_password(tmp_path: Path) -> None:
    assert redact_url("postgres://imgate:s3cret@db.example:5432/im") == "postgres://imgate:***@db.example:5432/im"
    assert redact_url("postgres://imgate@db.example/im") == "postgres://imgate@db.example/im"
    assert redact_url("sqlite:///var/lib/imgate/imgate.db") == "sqlite:///var/lib/imgate/imgate.db"
    assert redact_url("postgres://im:p@ss@db/im?password=s3cret&ssl=true") == \
        "postgres://im:***@db/im?password=***&ssl=true"
    with pytest.raises(ValueError, match="unsupported") as bad:
        Database("mysql://root:s3cret@db.example/im")
    assert "s3cret" not in str(bad.value) and "root:***@" in str(bad.value)
    url = f"postgres://imgate:s3cret@127.0.0.1:{_closed_port()}/im"
    with pytest.raises(DatabaseUnavailable) as down:
        async with Database(url):
            pass
    assert "s3cret" not in str(down.value) and redact_url(url) in str(down.value)
    for args in (("migrate",), ("run", "--port", "0"), ("user", "add", "dave")):
        code, out, err = await imgate(tmp_path, *args, url=url)
        assert code == 2 and "cannot open the database" in err and "s3cret" not in out + err, (args, err)


async def test_one_process_may_open_sqlite_then_postgresql(tmp_path: Path) -> None:
    """Tortoise caches INSERT statements by connection name, not dialect: Database forgets them
    (the suite's SQLite pass opens PostgreSQL for cluster mode after SQLite elsewhere)."""
    from services.users.models import User
    from tests.conftest import postgres_database

    async with Database(f"sqlite://{tmp_path / 'a.db'}"):
        await User.create(uid="alice", created_at=1)
    async with postgres_database() as url, Database(url):
        await User.create(uid="alice", created_at=1)
        assert await User.filter(uid="alice").count() == 1
