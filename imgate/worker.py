"""The background worker process: push fan-out and sending, search indexing and the callbacks' outbox, off the process
that stores and delivers messages.

Both follow the durable message-event queue (``services.events``), so they need nothing from the
message path but the database: ``imgate run`` (``workers.mode = "process"``, the default) starts
``imgate worker`` as a child process on the other core, and supervises it like any queue worker
(imgate/tasks.py: a child that exits is started again, with back-off).

The parent hands the child its settings on stdin (one JSON line: nothing on disk, nothing in the
environment) and keeps stdin open: end of file (the parent stopped, or died) stops the child.
The child writes one JSON line a second on stdout with its counters, which the parent's /metrics
serves (``WorkerStats``). Stopping: the parent closes stdin, then SIGKILL after a bounded wait
(the child ignores SIGINT and SIGTERM, which a terminal or systemd send the whole group: the
parent acts on them).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from config.settings import Settings

if TYPE_CHECKING:
    from imgate.app import App

log = logging.getLogger("imgate.worker")

_STOP_TIMEOUT = 10.0
_REPORT_INTERVAL = 1.0
_MAX_LINE = 1 << 16  # a stats line is a few hundred bytes


class WorkerExited(RuntimeError):
    """The worker process ended on its own (its supervisor starts it again)."""


@dataclass
class WorkerStats:
    """The worker's latest report (zeros until its first)."""

    push: dict[str, float] = field(default_factory=dict)
    search_indexed: int = 0
    search_up: bool = False
    callbacks: dict[str, float] = field(default_factory=dict)  # the callbacks' sender's counters
    started: int = 0  # processes started (restarts + 1)


class WorkerProcess:
    """The parent's side: runs ``imgate worker`` until cancelled; raises ``WorkerExited`` if it
    ends on its own."""

    def __init__(self, settings: Settings, *, holder: str | None = None) -> None:
        """``holder``: the event consumers' lease holder every child started here uses, so a
        child restarted after a crash takes its leases back at once (``App.leased``)."""
        self._settings = settings
        self._holder = holder
        self.stats = WorkerStats()
        self.pid: int | None = None
        self._reported = asyncio.Event()  # set at each report (next_report waits for it)

    async def next_report(self) -> WorkerStats:
        """The worker's counters as its next report (once a second) gives them."""
        self._reported.clear()
        await self._reported.wait()
        return self.stats

    async def run(self) -> None:
        holder = ["--lease-holder", self._holder] if self._holder else []
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "imgate", "worker", "--settings-stdin", *holder,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=_MAX_LINE,
            start_new_session=True)  # a signal to our group (Ctrl-C, `timeout`, kill -- -PGID) is ours
        self.pid = proc.pid
        self.stats.started += 1
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(self._settings.model_dump_json().encode() + b"\n")
            await proc.stdin.drain()
            async for line in proc.stdout:
                self._report(line)
            code = await proc.wait()
            msg = f"the worker process (pid {proc.pid}) exited with code {code}"
            raise WorkerExited(msg)
        finally:
            await _stop(proc)

    def _report(self, line: bytes) -> None:
        try:
            report = json.loads(line)
        except ValueError:
            log.warning("worker: unexpected output %r", line[:200])
            return
        self.stats.push = {k: float(v) for k, v in report.get("push", {}).items()}
        self.stats.search_indexed = int(report.get("search_indexed", 0))
        self.stats.search_up = bool(report.get("search_up", False))
        self.stats.callbacks = {k: float(v) for k, v in report.get("callbacks", {}).items()}
        self._reported.set()


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """Close its stdin (it stops), then SIGKILL after a bounded wait (it ignores SIGTERM: a
    SIGTERM to the whole process group is its parent's to act on)."""
    if proc.returncode is not None:
        return
    if proc.stdin is not None:
        proc.stdin.close()
    for signal_it in (None, proc.kill):
        if signal_it is not None:
            with suppress(ProcessLookupError):
                signal_it()
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), _STOP_TIMEOUT)
            return
        except TimeoutError:
            log.warning("worker process %d did not stop; %s", proc.pid,
                        "killing it")


def read_settings() -> Settings:
    """The settings line on stdin (``imgate worker --settings-stdin``), read before the event
    loop starts: they choose it."""
    line = sys.stdin.buffer.readline()
    if not line:
        msg = "no settings on stdin"
        raise SystemExit(msg)
    return Settings.model_validate_json(line)


async def serve_worker(settings: Settings, holder: str | None = None) -> None:
    """The child's side: run the background work until stdin ends (the parent stopped or died),
    reporting counters on stdout."""
    from imgate.app import App

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, sys.stdout)
    async with App(settings, role="worker", holder=holder) as app, asyncio.TaskGroup() as tg:
        reports = tg.create_task(_report_loop(app, out), name="imgate.worker.reports")
        stdin_closed = tg.create_task(_until_eof(reader), name="imgate.worker.stdin")
        crashed = tg.create_task(app.wait(), name="imgate.worker.wait")
        await asyncio.wait({stdin_closed, crashed}, return_when=asyncio.FIRST_COMPLETED)
        for task in (reports, stdin_closed, crashed):
            task.cancel()


async def _until_eof(reader: asyncio.StreamReader) -> None:
    while await reader.read(4096):  # the parent sends nothing more: only its end matters
        pass


async def _report_loop(app: App, out: asyncio.WriteTransport) -> None:
    from imgate.app import vars_of

    while True:
        report: dict[str, object] = {"push": vars_of(app.push.stats) if app.push is not None else {}}
        if app.callbacks is not None:
            report["callbacks"] = vars_of(app.callbacks.stats)
        if app.search is not None:
            report["search_indexed"] = app.search.indexed
            report["search_up"] = app.search.available
        out.write(json.dumps(report).encode() + b"\n")  # buffered by the loop: never blocks it
        await asyncio.sleep(_REPORT_INTERVAL)  # a reporting period, not synchronisation
