"""What a scenario needs before and around its server: users with device tokens, fresh
PostgreSQL databases, and a private PostgreSQL cluster (never the system one)."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit, urlunsplit

from bench._common import free_port

ROOT = Path(__file__).resolve().parent.parent.parent
PG_BIN = Path(os.environ.get("IMGATE_FAULTS_PG_BIN", "/usr/lib/postgresql/15/bin"))
_BATCH = 1000


def ensure_schema(db_url: str, data_dir: Path) -> None:
    """Run ``imgate migrate`` when this imgate has that command (schema migrations); without it,
    opening the database creates the schema."""
    from imgate.cli import build_parser

    parser = build_parser()
    commands = next((a.choices for a in parser._actions if getattr(a, "choices", None)), {})
    if "migrate" not in (commands or {}):
        return
    env = {**os.environ, "IMGATE_DATABASE__URL": db_url}
    done = subprocess.run([sys.executable, "-m", "imgate", "migrate", "--data-dir", str(data_dir)], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        msg = f"imgate migrate failed ({done.returncode}): {done.stdout}{done.stderr}"
        raise RuntimeError(msg)


async def create_users(db_url: str, uids: list[str], device: str = "d",
                       extra_devices: dict[str, list[str]] | None = None) -> dict[str, str]:
    """Create users with one device token each, in one transaction (thousands of single commits
    with fsync would take minutes); returns uid -> token, and "uid:device" -> token for the
    ``extra_devices`` of some users. The first token is checked through the real UserService."""
    from tortoise.transactions import in_transaction

    from broker.auth import Identity
    from imgate.app import build_services
    from services.db import Database
    from services.ids import SystemClock
    from services.users.models import DeviceToken, User
    from services.users.service import hash_token

    tokens = {uid: "imt_" + secrets.token_urlsafe(32) for uid in uids}
    devices = [(uid, device, uid) for uid in uids]
    for uid, more in (extra_devices or {}).items():
        for dev in more:
            tokens[f"{uid}:{dev}"] = "imt_" + secrets.token_urlsafe(32)
            devices.append((uid, dev, f"{uid}:{dev}"))
    now = time.time_ns() // 1_000_000
    async with Database(db_url):
        async with in_transaction():
            await User.bulk_create([User(uid=uid, created_at=now) for uid in uids], batch_size=_BATCH)
            await DeviceToken.bulk_create(
                [DeviceToken(uid=uid, device=dev, token_hash=hash_token(tokens[key]), created_at=now)
                 for uid, dev, key in devices], batch_size=_BATCH)
        if uids:
            first = uids[0]
            who = await build_services(SystemClock()).users.authenticate(first, tokens[first], f"{first}:{device}")
            if not isinstance(who, Identity):
                msg = "bulk-inserted token does not authenticate"
                raise RuntimeError(msg)
    return tokens


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def pg_wants_fresh(url: str) -> bool:
    """A PostgreSQL URL without a database name means: make a fresh database for the run."""
    return urlsplit(url).scheme in ("postgres", "postgresql") and urlsplit(url).path in ("", "/")


async def create_pg_database(server_url: str, prefix: str = "imgate_faults") -> str:
    """Create a fresh database on the server of ``server_url``; returns its URL."""
    import asyncpg

    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(_with_db(server_url, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return _with_db(server_url, name)


async def drop_pg_database(url: str) -> None:
    import asyncpg

    name = urlsplit(url).path.lstrip("/")
    admin = await asyncpg.connect(_with_db(url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


class PrivatePostgres:
    """A PostgreSQL cluster of our own in a temp dir, on a free 127.0.0.1 port (trust auth, user
    postgres), run as the ``postgres`` OS user when we are root. The system cluster on 5432 is
    never touched. ``async with PrivatePostgres() as pg``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="imgate-faults-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}"

    def _cmd(self, *argv: str) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *argv]
        return list(argv)

    def _run(self, *argv: str, timeout: float = 120) -> str:
        done = subprocess.run(self._cmd(*argv), capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            msg = f"{' '.join(argv[:2])} failed ({done.returncode}): {done.stdout}{done.stderr}\n{self.log_tail()}"
            raise RuntimeError(msg)
        return done.stdout

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def __aenter__(self) -> Self:
        if not (PG_BIN / "initdb").exists():
            msg = f"no PostgreSQL binaries in {PG_BIN} (set IMGATE_FAULTS_PG_BIN)"
            raise RuntimeError(msg)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        await asyncio.to_thread(self._run, str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust",
                                "-U", "postgres", "--no-sync")
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        try:
            await asyncio.to_thread(self._run, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                                    "-o", opts, "-w", "-t", "60", "start")
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            self.resume()  # never leave it stopped
            await asyncio.to_thread(self._run, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                                    "-w", "-t", "60", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    async def restart(self, mode: str) -> float:
        """``pg_ctl restart -m MODE`` (fast or immediate); returns how long it took (s)."""
        t0 = time.perf_counter()
        await asyncio.to_thread(self._run, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                                "-m", mode, "-w", "-t", "60", "restart")
        return time.perf_counter() - t0

    def pids(self) -> list[int]:
        """The postmaster and all its children."""
        try:
            master = int((self.data / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return []
        out = [master]
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == master:
                out.append(int(entry.name))
        return out

    def pause(self) -> int:
        """SIGSTOP the postmaster and every backend; returns how many processes were stopped."""
        pids = self.pids()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        return len(pids)

    def resume(self) -> None:
        for pid in reversed(self.pids()):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def accepting(self) -> bool:
        with socket.socket() as s:
            s.settimeout(1)
            return s.connect_ex(("127.0.0.1", self.port)) == 0
