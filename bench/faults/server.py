"""``imgate run`` as a subprocess that a scenario can kill -9 and restart on the same port and
data directory, without blocking the event loop its clients run on."""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from contextlib import suppress
from pathlib import Path
from typing import IO

from bench._common import free_port, peak_rss_mb, rss_mb, server_build

ROOT = Path(__file__).resolve().parent.parent.parent
_READY = "imgate: MQTT on"
START_TIMEOUT = 90.0
LOG_DIR = Path(tempfile.gettempdir()) / "imgate-faults-logs"
STOP_TIMEOUT = 30.0


class ImgateServer:
    """One ``python -m imgate run`` at a time on ``port`` with ``data_dir`` and IMGATE_* ``env``.
    Its output is drained all the time (a full pipe would block its logging) into ``tail``.

    Its web listener gets a free port of its own (``web_port``, kept over restarts) and its MQTT
    WebSocket listener a free one at each start, unless ``env`` names them: the defaults (8090,
    8083) would collide with any other imgate on this machine. ``nofile``: the server runs with
    RLIMIT_NOFILE lowered to that (soft and hard, so it cannot raise it again)."""

    def __init__(self, data_dir: Path, env: dict[str, str], port: int | None = None,
                 log_path: Path | None = None, nofile: int | None = None) -> None:
        self.data_dir = data_dir
        # Everything it prints, over every start; kept after the scenario (the data dir is not).
        self.log_path = log_path or LOG_DIR / f"{data_dir.name}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.web_port = int(env.get("IMGATE_WEB__PORT") or 0) or free_port()
        self.env = {"IMGATE_MQTT__WS_PORT": "0", **env, "IMGATE_WEB__PORT": str(self.web_port)}
        self.port = port or free_port()
        self.nofile = nofile
        self.proc: asyncio.subprocess.Process | None = None
        self.tail: deque[str] = deque(maxlen=200)
        self.lines = 0  # printed after start-up, over every start
        self.errors = 0  # of those, lines with ERROR or Traceback
        self.starts = 0
        self._drain: asyncio.Task[None] | None = None
        self._log_file: IO[str] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not running"
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        """Start and wait for the ready line.

        Raises:
            RuntimeError: it exited or did not get ready within START_TIMEOUT (with its output).
        """
        env = {**os.environ, "IMGATE_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1", **self.env}
        python, tree = server_build()  # this tree's, or IMGATE_BENCH_SERVER=PYTHON:TREE's
        self.proc = await asyncio.create_subprocess_exec(
            python, "-m", "imgate", "run", "--port", str(self.port), "--data-dir", str(self.data_dir),
            env=env, cwd=tree, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            limit=1 << 20, preexec_fn=self._limits if self.nofile else None)
        self.starts += 1
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(START_TIMEOUT):
                while True:
                    raw = await self.proc.stdout.readline()
                    if not raw:
                        code = await self.proc.wait()
                        msg = f"imgate exited at start ({code}):\n{self.log_tail()}"
                        raise RuntimeError(msg)
                    line = raw.decode(errors="replace")
                    self.tail.append(line)
                    self._log(line)
                    if _READY in line:
                        break
        except TimeoutError:
            msg = f"imgate did not get ready within {START_TIMEOUT:.0f}s:\n{self.log_tail()}"
            await self.stop()
            raise RuntimeError(msg) from None
        self._drain = asyncio.create_task(self._drain_output(self.proc), name="faults.server.drain")

    def _limits(self) -> None:
        """In the child, before exec: lower its open-file limit."""
        assert self.nofile is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    async def _drain_output(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            try:
                raw = await proc.stdout.readline()
            except ValueError:  # a line over the limit: skip it
                continue
            if not raw:
                return
            line = raw.decode(errors="replace")
            self.tail.append(line)
            self._log(line)
            self.lines += 1
            if "ERROR" in line or "Traceback" in line:
                self.errors += 1

    def _log(self, line: str) -> None:
        if self._log_file is None or self._log_file.closed:
            self._log_file = self.log_path.open("a")
        self._log_file.write(line)

    async def kill9(self) -> None:
        """SIGKILL, and wait for the process to be gone."""
        assert self.proc is not None
        with suppress(ProcessLookupError):
            self.proc.kill()
        await self.proc.wait()
        await self._stop_drain()

    async def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; returns the exit code (None if not running)."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            with suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                with suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        await self._stop_drain()
        return self.proc.returncode

    async def _stop_drain(self) -> None:
        if self._drain is not None:
            with suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._drain, 5)
            self._drain = None
        if self._log_file is not None:
            self._log_file.close()

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        return "".join(list(self.tail)[-lines:])

    def stack_dump(self) -> str:
        """``py-spy dump`` of the running server, when py-spy is installed (for a server that
        seems stuck); otherwise says how to get it."""
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(spy).exists():
            return "(py-spy not installed: .venv/bin/pip install py-spy)"
        try:
            done = subprocess.run([spy, "dump", "--pid", str(self.pid)], capture_output=True, text=True,
                                  timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"(py-spy failed: {exc})"
        return done.stdout + done.stderr


class RssSampler:
    """Samples a process's VmRSS every ``interval`` seconds in a task: start, peak, series."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, float]] = []  # (perf_counter, MB)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.sample()
        self._task = asyncio.create_task(self._loop(), name="faults.rss")

    def sample(self) -> float:
        try:
            mb = rss_mb(self.pid)
        except OSError:
            return float("nan")
        self.samples.append((time.perf_counter(), mb))
        return mb

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.sample()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    @property
    def peak(self) -> float:
        return max((mb for _, mb in self.samples), default=float("nan"))
