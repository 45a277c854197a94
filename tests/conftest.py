"""Fixtures: the real platform (imgate's embedded broker on a free port, bridge, services) on a
fresh SQLite file per test, or a fresh PostgreSQL database when IMGATE_TEST_DB=postgres."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvloop

from config.settings import Settings, load_settings
from imgate.app import App, Services

PG_DSN = os.environ.get("IMGATE_TEST_PG", "postgres://postgres@127.0.0.1:5432")


@pytest.fixture(scope="session")
def event_loop_policy() -> uvloop.EventLoopPolicy:
    """Tests run on the event loop ``imgate run`` uses by default (settings: event_loop)."""
    return uvloop.EventLoopPolicy()


@pytest.fixture(autouse=True)
def _no_thread_outlives_its_test() -> Any:
    """A test leaves no thread behind (an unclosed database connection keeps aiosqlite's worker
    thread, and a leftover non-daemon thread keeps pytest from exiting after the last test)."""
    before = set(threading.enumerate())
    yield
    left = [t for t in threading.enumerate() if t not in before and not t.daemon]
    for t in left:
        t.join(timeout=5)  # a thread told to stop (a closed connection) ends within moments
    assert [t.name for t in left if t.is_alive()] == []


def pytest_report_header() -> str:
    return f"imgate database: {os.environ.get('IMGATE_TEST_DB', 'sqlite')}"


@asynccontextmanager
async def postgres_database(prefix: str = "imgate_test") -> AsyncIterator[str]:
    """A fresh PostgreSQL database on ``PG_DSN`` (dropped afterwards)."""
    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(f"{PG_DSN}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"{PG_DSN}/{name}"
    finally:
        admin = await asyncpg.connect(f"{PG_DSN}/postgres")
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    if os.environ.get("IMGATE_TEST_DB", "sqlite") != "postgres":
        yield f"sqlite://{tmp_path / 'imgate.db'}"
        return
    async with postgres_database() as url:
        yield url


@pytest.fixture
def bridge_transport() -> str:
    """The bridge's transport: "auto" (in-process with the embedded broker) unless a module
    parametrizes it to run its tests over MQTT too."""
    return "auto"


ADMIN_SECRET = "s3cret-admin-token-for-tests"


@pytest.fixture
def admin_secret() -> str | None:
    """The admin API's secret (None: the API is off). Modules that test it override this."""
    return None


@pytest.fixture
def settings(tmp_path: Path, database_url: str, bridge_transport: str, admin_secret: str | None) -> Settings:
    return load_settings(None, {
        "admin": {"port": 0, "secret": admin_secret},
        "data_dir": tmp_path,
        # The WebSocket listener and the web listener are on by default on fixed ports: off here
        # (the tests that use them turn them on, on free ports).
        "mqtt": {"port": 0, "ws_port": None},
        "web": {"enabled": False},
        "database": {"url": database_url},
        # Rate limits far above what the tests send: the tests of the limits set their own.
        # (Bursts too: some tests run on a manual clock, where buckets never refill.)
        # Refused logins answered at once (the suite refuses hundreds; test_hostile.py tests the delay).
        "broker": {"auth_poll_interval": 0.1, "publish_rate": 100_000, "publish_burst": 100_000,
                   "refusal_delay_ms": 0},
        "limits": {"messages_per_s": 100_000, "messages_burst": 100_000, "rpcs_per_s": 100_000,
                   "rpcs_burst": 100_000, "searches_per_s": 100_000, "searches_burst": 100_000,
                   "push_registers_per_s": 100_000, "push_registers_burst": 100_000,
                   "error_replies_per_s": 100_000, "error_replies_burst": 100_000},
        "bridge": {"transport": bridge_transport},
        # No link previews (a test sending an https:// text would fetch it): tests/test_previews.py
        # turns them on, against a site of its own.
        "previews": {"enabled": False},
        # Background work in the test's own loop (tests on a manual clock drive it; the worker
        # process has its own tests: tests/test_worker.py).
        "workers": {"mode": "inline"},
        "log_level": "DEBUG",
    })


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[App]:
    async with App(settings) as running:
        yield running


@pytest.fixture
async def api(app: App) -> AsyncIterator[Any]:
    """An HTTP client of the running admin API, with the secret."""
    import httpx

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.admin.port}",
                                 headers={"Authorization": f"Bearer {ADMIN_SECRET}"}, timeout=10) as client:
        yield client


@dataclass
class Users:
    """Creates users and device tokens through the real UserService."""

    services: Services

    async def add(self, *uids: str) -> None:
        for uid in uids:
            await self.services.users.add_user(uid, uid.title())

    async def token(self, uid: str, device: str = "phone", platform: str = "android",
                    ttl_s: int | None = None, encoding: str = "json") -> str:
        return (await self.services.users.issue_token(uid, device, platform, ttl_s, encoding)).token


@pytest.fixture
def users(app: App) -> Users:
    assert app.services is not None
    return Users(app.services)
