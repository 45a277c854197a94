"""Plumbing shared by the scenarios: a platform (fresh database with users, ``imgate run``) that
always stops and cleans up, and a chat world of 1:1 pairs and a group kept busy by good clients."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._common import pct
from bench.faults.audit import Row
from bench.faults.client import Fleet, GoodClient, chat
from bench.faults.server import ImgateServer
from bench.faults.setup import create_pg_database, create_users, drop_pg_database, ensure_schema, pg_wants_fresh


def run_id() -> str:
    """A short id that prefixes this run's uids and cids (uid alphabet: letters, digits, _ -)."""
    return "f" + os.urandom(3).hex()


@dataclass
class Platform:
    server: ImgateServer
    db_url: str
    tokens: dict[str, str]
    data_dir: Path

    @property
    def db_kind(self) -> str:
        return "sqlite" if self.db_url.startswith("sqlite://") else "postgres"


@asynccontextmanager
async def platform(uids: list[str], *, database_url: str | None = None, env: dict[str, str] | None = None,
                   extra_devices: dict[str, list[str]] | None = None,
                   nofile: int | None = None) -> AsyncIterator[Platform]:
    """A fresh data directory and database (SQLite in the data directory by default; a
    PostgreSQL URL without a database name gets a fresh database, dropped at the end), the users
    ``uids`` with one token each (device ``d``), and ``imgate run`` on a free port (``nofile``:
    with that open-file limit)."""
    tmp = Path(tempfile.mkdtemp(prefix="imgate-faults-"))
    url = database_url or f"sqlite://{tmp / 'imgate.db'}"
    fresh_pg = bool(database_url) and pg_wants_fresh(url)
    if fresh_pg:
        url = await create_pg_database(url)
    server: ImgateServer | None = None
    try:
        await asyncio.to_thread(ensure_schema, url, tmp)
        tokens = await create_users(url, uids, extra_devices=extra_devices)
        server = ImgateServer(tmp, {"IMGATE_DATABASE__URL": url, **(env or {})}, nofile=nofile)
        await server.start()
        yield Platform(server, url, tokens, tmp)
    finally:
        try:
            if server is not None:
                await server.stop()
        finally:
            if fresh_pg:
                await drop_pg_database(url)
            shutil.rmtree(tmp, ignore_errors=True)


def check_server(row: Row, server: ImgateServer) -> None:
    """Fail the row if the server died on its own; note what it logged."""
    if not server.alive:
        row.fail(f"imgate died (exit {server.proc.returncode if server.proc else '?'}): "
                 f"{server.log_tail(5).strip()[-400:]}")
    if server.errors:
        row.notes.append(f"server logged {server.errors} ERROR/Traceback line(s)")
    row.extra["server_log_lines"] = server.lines
    row.extra["server_log"] = str(server.log_path)
    row.extra["server_log_tail"] = server.log_tail(8)[-2000:] if server.lines else ""


@dataclass
class ChatPlan:
    """A 1:1 load (pairs, both sides sending) and a group load (members, some of them sending)."""

    pairs: int = 20
    members: int = 20
    group_senders: int = 5
    interval: tuple[float, float] = (0.05, 0.15)  # seconds between one sender's messages
    max_pending: int = 200  # a sender holds off while this many of its messages are unacked


@dataclass
class ChatWorld:
    fleet: Fleet
    plan: ChatPlan
    run: str
    clients: dict[str, GoodClient] = field(default_factory=dict)
    gid: str | None = None

    @staticmethod
    def uids(run: str, plan: ChatPlan) -> list[str]:
        return ([f"{run}a{i}" for i in range(plan.pairs)] + [f"{run}b{i}" for i in range(plan.pairs)]
                + [f"{run}g{j}" for j in range(plan.members)])

    async def start(self, tokens: dict[str, str], timeout: float = 120.0) -> None:
        """Connect everyone and create the group (the first member owns it)."""
        for uid in self.uids(self.run, self.plan):
            self.clients[uid] = self.fleet.client(uid, tokens[uid])
        await self.fleet.start_all(list(self.clients.values()), timeout)
        if self.plan.members:
            owner = self.clients[f"{self.run}g0"]
            members = [f"{self.run}g{j}" for j in range(1, self.plan.members)]
            result = await owner.rpc_retry("group.create", {"name": "faults", "members": members}, timeout)
            self.gid = result["gid"]

    def load(self, until: float) -> list[asyncio.Task[None]]:
        """Start every sender; each stops at the perf_counter time ``until``."""
        p, run = self.plan, self.run
        tasks = []
        for i in range(p.pairs):
            a, b = self.clients[f"{run}a{i}"], self.clients[f"{run}b{i}"]
            tasks.append(asyncio.create_task(chat(a, until=until, interval=p.interval, to=b.uid,
                                                  max_pending=p.max_pending), name=f"faults.chat.{a.uid}"))
            tasks.append(asyncio.create_task(chat(b, until=until, interval=p.interval, to=a.uid,
                                                  max_pending=p.max_pending), name=f"faults.chat.{b.uid}"))
        for j in range(min(p.group_senders, p.members)):
            g = self.clients[f"{run}g{j}"]
            tasks.append(asyncio.create_task(chat(g, until=until, interval=p.interval, group=self.gid,
                                                  max_pending=p.max_pending), name=f"faults.chat.{g.uid}"))
        return tasks


def delivery_p(fleet: Fleet, q: int, since: float = 0.0, before: float = float("inf"),
               uids: set[str] | None = None) -> float:
    """Send -> delivery percentile (ms) of live deliveries of messages first sent in [since, before)
    (only between ``uids``, when given)."""
    return pct([lat for t, lat, to, sender in fleet.deliveries if since <= t < before
                and (uids is None or (to in uids and sender in uids))], q)


def effective_settings(env: dict[str, str]) -> Any:
    """The settings ``imgate run`` gets with these IMGATE_<SECTION>__<KEY> variables (and ours)."""
    from config.settings import load_settings

    overrides: dict[str, dict[str, str]] = {}
    for key, value in env.items():
        if key.startswith("IMGATE_") and "__" in key:
            section, name = key.removeprefix("IMGATE_").lower().split("__", 1)
            overrides.setdefault(section, {})[name] = value
    return load_settings(None, overrides)


def ack_p(fleet: Fleet, q: int, senders: set[str] | None = None, since: float = 0.0,
          before: float = float("inf")) -> float:
    """Send -> ack percentile (ms) of messages first sent in [since, before)."""
    return pct([s.acked_at - s.first for s in fleet.sent.values()
                if s.acked_at is not None and since <= s.first < before
                and (senders is None or s.sender in senders)], q)


async def wait_until(pred: object, timeout: float, step: float = 0.05) -> bool:
    """Poll ``pred()`` (bounded); True once it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return True
        await asyncio.sleep(step)
    return bool(pred())  # type: ignore[operator]
