"""Shared helpers for the raw benchmarks: free ports, RSS, percentiles, and the two servers under
test (imgate's embedded broker via ``bench.serve_broker``, and a private Mosquitto) as async
context managers that always stop their process, even on error."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
MOSQUITTO = "/usr/sbin/mosquitto"
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 30.0


THIS_TREE = Path(__file__).resolve().parent.parent


def server_build() -> tuple[str, Path]:
    """(python, tree) of the imgate server under test: this tree's, or another build's named by
    ``IMGATE_BENCH_SERVER=PYTHON:TREE`` (set by ``bench.compare``: one load generator, this
    tree's, drives both builds' servers, so only the servers differ)."""
    spec = os.environ.get("IMGATE_BENCH_SERVER")
    if not spec:
        return sys.executable, THIS_TREE
    python, _, tree = spec.partition(":")
    return python, Path(tree)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb(pid: int) -> float:
    """Resident set size now (VmRSS), MB."""
    return _status_mb(pid, "VmRSS:")


def peak_rss_mb(pid: int) -> float:
    """Highest resident set size so far (VmHWM), MB."""
    return _status_mb(pid, "VmHWM:")


def pct(values: list[float], q: int) -> float:
    """The q-th percentile of ``values`` (seconds), in milliseconds."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0] * 1000
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


def cpu_s(pid: int) -> float:
    """User + system CPU time used so far by process ``pid`` (not its children), seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int) -> float:
    """CPU time used so far by process ``pid``, its live child processes (imgate's worker) and
    those it has reaped, seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # state, ppid, ...
        except OSError:
            continue  # gone meanwhile
        if stat.parent.name == str(pid):
            total += sum(int(f) for f in fields[11:15]) / tick  # utime, stime, cutime, cstime
        elif int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def raise_nofile() -> int:
    """Raise this process's open-file soft limit to the hard limit; returns the new soft limit.
    Child processes inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class Server:
    name: str
    port: int
    pid: int
    log: Path

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.pid)

    def cpu_s(self) -> float:
        return cpu_s(self.pid)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop(proc: subprocess.Popen[bytes], name: str, log: Path) -> None:
    """Terminate ``proc`` (SIGTERM, then SIGKILL after a bounded wait). Raises if it had died on
    its own while the benchmark was running."""
    died = proc.poll()
    if died is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"bench: {name} did not stop within {_STOP_TIMEOUT:.0f}s of SIGTERM; killing it", file=sys.stderr)
            proc.kill()
            proc.wait(timeout=_STOP_TIMEOUT)
    elif died != 0:
        msg = f"{name} (pid {proc.pid}) exited with code {died} during the benchmark; log tail:\n{_tail(log)}"
        raise RuntimeError(msg)


async def _wait_listening(proc: subprocess.Popen[bytes], port: int, name: str, log: Path) -> None:
    """Poll (bounded) until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = f"{name} exited with code {proc.returncode} at start; log tail:\n{_tail(log)}"
            raise RuntimeError(msg)
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.02)
            continue
        writer.close()
        with suppress(Exception):
            await writer.wait_closed()
        return
    msg = f"{name} did not listen on {port} within {_START_TIMEOUT:.0f}s; log tail:\n{_tail(log)}"
    raise RuntimeError(msg)


@asynccontextmanager
async def imgate_broker(*, accounts: int = 1, data_dir: Path | None = None,
                        log_level: str = "WARNING") -> AsyncIterator[Server]:
    """Run ``python -m bench.serve_broker`` on a free port (it binds port 0 and reports the port)
    until the block ends."""
    tmp = Path(tempfile.mkdtemp(prefix="imgate-bench-broker-"))
    data_dir = data_dir or tmp
    log = tmp / "serve_broker.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as log_file:
        proc = subprocess.Popen(  # noqa: ASYNC220 (a fork/exec once per scenario, before measuring)
            [server_build()[0], "-m", "bench.serve_broker", "--port", "0", "--data-dir", str(data_dir),
             "--accounts", str(accounts), "--log-level", log_level],
            stdout=subprocess.PIPE, stderr=log_file, env=env, cwd=server_build()[1])
    try:
        assert proc.stdout is not None
        # The broker prints exactly one line on stdout: READY <port>. Read it off the loop (bounded).
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), _START_TIMEOUT)
        text = line.decode(errors="replace").split()
        if len(text) != 2 or text[0] != "READY":
            msg = f"serve_broker did not start (got {line!r}, exit {proc.poll()}); log tail:\n{_tail(log)}"
            raise RuntimeError(msg)
        yield Server("imgate", int(text[1]), proc.pid, log)
    finally:
        try:
            _stop(proc, "serve_broker", log)
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
            shutil.rmtree(tmp, ignore_errors=True)  # not a caller's data_dir: it lives elsewhere


@asynccontextmanager
async def mosquitto() -> AsyncIterator[Server]:
    """Run a private Mosquitto (anonymous, no persistence) on a free 127.0.0.1 port until the block
    ends. The system Mosquitto (1883) is neither used nor touched."""
    tmp = Path(tempfile.mkdtemp(prefix="imgate-bench-mosquitto-"))
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    log = tmp / "mosquitto.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log_file, stderr=log_file,  # noqa: ASYNC220
                                stdin=subprocess.DEVNULL)
    try:
        await _wait_listening(proc, port, "mosquitto", log)
        yield Server("mosquitto", port, proc.pid, log)
    finally:
        try:
            _stop(proc, "mosquitto", log)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def server_for(name: str, **kwargs: object):  # type: ignore[no-untyped-def]
    if name == "imgate":
        return imgate_broker(**kwargs)  # type: ignore[arg-type]
    if name == "mosquitto":
        return mosquitto()
    msg = f"unknown broker {name!r}"
    raise ValueError(msg)


@dataclass
class Platform:
    """A running ``imgate run`` (the whole platform) started by a benchmark."""

    port: int
    pid: int
    log_lines: list[int]  # [count] of lines it printed after start-up (should stay ~0)
    tail: deque[str]


def _drain(stream: Any, tail: deque[str], count: list[int]) -> None:
    """Keep reading the server's output: a full pipe would block its logging, and so the server."""
    for line in stream:
        tail.append(line)
        count[0] += 1


# Throughput scenarios measure capacity, not the per-user abuse limits (a benchmark sender does
# hundreds of messages per second; a person a few): the limits are lifted, the work is the same.
UNLIMITED = {"IMGATE_LIMITS__MESSAGES_PER_S": "1000000", "IMGATE_LIMITS__MESSAGES_BURST": "1000000",
             "IMGATE_LIMITS__RPCS_PER_S": "1000000", "IMGATE_LIMITS__RPCS_BURST": "1000000",
             "IMGATE_BROKER__PUBLISH_RATE": "0"}


_KNOWN_SETTINGS = """
import json, sys
from config.settings import Settings
known = []
for key in json.loads(sys.argv[1]):
    model = Settings
    for part in key.removeprefix("IMGATE_").lower().split("__"):
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            break
        model = field.annotation
    else:
        known.append(key)
print(json.dumps(known))
"""


def _settings_known_to(python: str, tree: Path, env: dict[str, str]) -> dict[str, str]:
    """``env`` without the IMGATE_* settings another build does not have (an older build refuses
    unknown settings; one without a limit does not need it lifted)."""
    out = subprocess.run([python, "-c", _KNOWN_SETTINGS, json.dumps(list(env))], cwd=tree, capture_output=True,
                         text=True, timeout=60, check=True)
    known = set(json.loads(out.stdout.strip().splitlines()[-1]))
    dropped = sorted(k for k in env if k not in known and k.startswith("IMGATE_"))
    if dropped:
        print(f"bench: the server in {tree} has no setting {', '.join(dropped)}: not passed", file=sys.stderr)
    return {k: v for k, v in env.items() if k not in dropped}


@contextmanager
def imgate_platform(data_dir: Path, env: dict[str, str]) -> Iterator[Platform]:
    """Run ``python -m imgate run`` on a free port with ``env`` (IMGATE_* settings) until the block
    ends (SIGTERM, then SIGKILL after a bounded wait)."""
    port = free_port()
    python, tree = server_build()
    if tree != THIS_TREE:
        env = _settings_known_to(python, tree, env)
    # Free ports for the WebSocket and web listeners too (--port would move them by as much as MQTT
    # moved from 1883: past 65535 for a high free port).
    full_env = {**os.environ, "IMGATE_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1", "IMGATE_MQTT__WS_PORT": "0",
                "IMGATE_WEB__PORT": "0", **env}
    server = subprocess.Popen([python, "-m", "imgate", "run", "--port", str(port), "--data-dir", str(data_dir)],
                              env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tree)
    tail: deque[str] = deque(maxlen=50)
    try:
        assert server.stdout is not None
        for line in server.stdout:
            tail.append(line)
            if "imgate: MQTT on" in line:
                break
        else:
            msg = f"imgate exited at start ({server.wait()}):\n{''.join(tail)}"
            raise RuntimeError(msg)
        count = [0]
        threading.Thread(target=_drain, args=(server.stdout, tail, count), daemon=True).start()
        yield Platform(port, server.pid, count, tail)
    finally:
        server.terminate()
        try:
            server.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=_STOP_TIMEOUT)


_MODULE_STOP_GRACE = 60.0


async def run_module(argv: list[str], limit: float, *, python: str = sys.executable, cwd: Path | None = None,
                     env: dict[str, str] | None = None, tag: str = "") -> tuple[list[dict[str, Any]], int]:
    """Run ``python -m argv`` (in ``cwd`` with ``env``), echo its lines (prefixed ``[tag]``) and
    collect those that are JSON objects; SIGINT (then SIGKILL) past ``limit`` seconds. Returns the
    objects and the exit code (-1: stopped at the limit; the objects then end with an error)."""
    proc = await asyncio.create_subprocess_exec(python, "-m", *argv, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    prefix = f"[{tag}] " if tag else ""
    results: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(limit):
            async for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip()
                print(prefix + line, flush=True)
                with suppress(ValueError):
                    obj = json.loads(line)
                    if isinstance(obj, dict):
                        results.append(obj)
            return results, await proc.wait()
    except TimeoutError:
        print(f"bench: {prefix}{argv[0]} ran past {limit:.0f}s; stopping it", file=sys.stderr, flush=True)
        results.append({"scenario": argv[0], "error": f"timed out after {limit:.0f}s"})
        return results, -1
    finally:
        if proc.returncode is None:
            # SIGINT lets the module's finally blocks stop the servers it started.
            with suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), _MODULE_STOP_GRACE)
            except TimeoutError:
                proc.kill()
                await proc.wait()


CGROUP_CPU = Path("/sys/fs/cgroup/cpu")  # the cgroup v1 ``cpu`` controller


class CpuQuota:
    """A cgroup (v1 ``cpu`` controller, as root) whose processes together get at most ``fraction``
    of one core: ``cfs_quota_us`` of CPU time per ``cfs_period_us``, the kernel's default period of
    100 ms (the quota never under the kernel's 1 ms minimum). A process that used its quota waits
    for the next period: a bridge under a quota works in bursts on what gathered meanwhile, as a
    busy bridge on a small machine does. (A 10 ms period was tried: it chopped each message's
    pipeline into more waits, and a bridge at 6% of a core then spent 0.48 ms of CPU per message
    instead of 0.16.) ``close()`` moves what is left back to the root group and removes the group."""

    def __init__(self, name: str, fraction: float) -> None:
        if not 0 < fraction <= 64:
            msg = f"a CPU quota of {fraction} cores"
            raise ValueError(msg)
        if not (CGROUP_CPU / "cpu.cfs_quota_us").exists() or os.geteuid() != 0:
            msg = f"a CPU quota needs root and the cgroup v1 cpu controller at {CGROUP_CPU}"
            raise RuntimeError(msg)
        self.fraction = fraction
        self.period_us = max(100_000, int(1000 / fraction) + 1)
        self.path = CGROUP_CPU / f"imgate-bench-{os.getpid()}-{name}"
        self.path.mkdir(exist_ok=True)
        (self.path / "cpu.cfs_period_us").write_text(str(self.period_us))
        (self.path / "cpu.cfs_quota_us").write_text(str(int(fraction * self.period_us)))

    def add(self, pid: int) -> None:
        """Put process ``pid`` (all its threads) in the group."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def throttled(self) -> tuple[int, float]:
        """(periods in which the group was throttled, seconds it spent throttled) so far."""
        stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
        return int(stat.get("nr_throttled", 0)), int(stat.get("throttled_time", 0)) / 1e9

    def close(self) -> None:
        if not self.path.exists():
            return
        for pid in (self.path / "cgroup.procs").read_text().split():
            with suppress(OSError):
                (CGROUP_CPU / "cgroup.procs").write_text(pid)
        with suppress(OSError):
            self.path.rmdir()


def postgres_cpu_s() -> float:
    """CPU time so far of this machine's PostgreSQL: every ``postgres`` process, with what the
    postmaster reaped (the backends of closed connections), seconds. The benchmarks' database
    server serves nothing else while they run, so a difference over a run is its share."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        name, _, rest = text.partition(" (")[2].rpartition(") ")
        if name.startswith("postgres"):
            total += sum(int(f) for f in rest.split()[11:15]) / tick  # utime, stime, cutime, cstime
    return total
