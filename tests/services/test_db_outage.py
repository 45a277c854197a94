"""The database connection dying under a transaction (PostgreSQL restarted, a backend killed):
the long-lived workers that run transactions recover by themselves once the database answers."""

from __future__ import annotations

import asyncio
import os

import pytest

from imgate.app import build_services
from services.db import Database
from services.messages.service import SendCommand
from tests.helpers import ManualClock

pytestmark = pytest.mark.skipif(os.environ.get("IMGATE_TEST_DB", "sqlite") != "postgres",
                                reason="kills PostgreSQL backends")


async def test_the_committer_recovers_after_its_connections_are_killed_mid_transaction(database_url: str) -> None:
    """Before: tortoise left a dead transaction in the committer task's context when the
    connection died while it was released, and every later send failed with "connection has
    been released back to the pool", for good (seen after a PostgreSQL restart)."""
    import asyncpg

    async with Database(database_url):
        svc = build_services(ManualClock(1_800_000_000_000))
        for uid in ("alice", "bob"):
            await svc.users.add_user(uid)
        async with svc.messages.committing():
            def send(cid: str) -> asyncio.Future[object]:
                return asyncio.ensure_future(svc.messages.send(
                    SendCommand("alice", cid, "bob", None, "text", cid, None)))

            await send("warm-up")
            admin = await asyncpg.connect(database_url)
            outcomes: list[object] = []
            try:
                stop = asyncio.Event()

                async def sender() -> None:  # one send at a time: one transaction after another
                    i = 0
                    while not stop.is_set():
                        i += 1
                        try:
                            outcomes.append(await send(f"storm-{i}"))
                        except Exception as exc:  # noqa: BLE001 (counted below)
                            outcomes.append(exc)

                storm = asyncio.create_task(sender(), name="storm")
                for _ in range(150):  # kill every backend of this database, about every 13 ms
                    await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                        "WHERE datname = current_database() AND pid <> pg_backend_pid()")
                    await asyncio.sleep(0.013)  # pacing the killing, not synchronisation
                stop.set()
                await storm
            finally:
                await admin.close()
            assert any(isinstance(o, Exception) for o in outcomes)  # the storm did hurt
            # Afterwards every send goes through, once the pool has replaced its dead connections
            # (a good client retries with the same cid).
            for i in range(20):
                for attempt in range(5):
                    try:
                        result = await send(f"after-{i}")
                        break
                    except Exception:
                        if attempt == 4:
                            raise
                assert result.message.seq > 0  # type: ignore[attr-defined]
