"""connections: N idle, authenticated clients held open at once.

For imgate's embedded broker, N users with one device token each are written to the SQLite file
first; then ``bench.serve_broker`` is started on it and N raw MQTT 3.1.1 clients connect as
those users (username u{i}, password = token, client id u{i}:d, keep-alive 600 s, clean
session), at most ``--concurrency`` (100) connects in progress at a time. Mosquitto (anonymous) gets
the same clients without credentials. Reports the time until all N got CONNACK 0, connects/s,
per-connect latency p50/p99, failures, and the broker's RSS before and after (and per client).
Every socket stays open until the RSS is measured.

    python -m bench.connections --clients 1000 5000 10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench._common import pct, raise_nofile, server_for
from bench.mqttraw import connect_packet, parse_connack

BROKERS = ("imgate", "mosquitto")
_CONNECT_TIMEOUT = 30.0  # per connection: TCP connect + CONNACK
_BATCH = 1000


async def prepare_users(db_path: Path, n: int) -> list[str]:
    """Create users u0..u{n-1} with one token each (device "d") in one transaction; returns the
    tokens. Bulk inserts through the tortoise models: 2n single-row commits with fsync would take
    minutes at 10k."""
    from tortoise.transactions import in_transaction

    from services.db import Database
    from services.users.models import DeviceToken, User
    from services.users.service import hash_token

    tokens = ["imt_" + secrets.token_urlsafe(32) for _ in range(n)]
    now = time.time_ns() // 1_000_000
    async with Database(f"sqlite://{db_path}"):
        async with in_transaction():
            await User.bulk_create([User(uid=f"u{i}", created_at=now) for i in range(n)], batch_size=_BATCH)
            await DeviceToken.bulk_create(
                [DeviceToken(uid=f"u{i}", device="d", token_hash=hash_token(tokens[i]), created_at=now)
                 for i in range(n)], batch_size=_BATCH)
        # Sanity check through the real service: the first user's token authenticates.
        from broker.auth import Identity
        from imgate.app import build_services
        from services.ids import SystemClock

        if n and not isinstance(await build_services(SystemClock()).users.authenticate("u0", tokens[0], "u0:d"),
                                Identity):
            msg = "bulk-inserted token does not authenticate"
            raise RuntimeError(msg)
    return tokens


@dataclass
class Run:
    open: list[asyncio.StreamWriter] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)


async def _connect_one(port: int, packet: bytes, run: Run) -> None:
    t0 = time.perf_counter()
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(_CONNECT_TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(packet)
            await writer.drain()
            code = parse_connack(await reader.readexactly(4))
    except TimeoutError:
        run.failures["timeout"] += 1
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        run.failures[type(exc).__name__] += 1
    else:
        if code == 0:
            run.latency.append(time.perf_counter() - t0)
            run.open.append(writer)
            return
        run.failures[f"connack_{code}"] += 1
    if writer is not None:
        writer.close()


async def _close_all(writers: list[asyncio.StreamWriter]) -> None:
    for w in writers:
        w.close()
    for i in range(0, len(writers), _BATCH):
        await asyncio.wait_for(asyncio.gather(*(w.wait_closed() for w in writers[i:i + _BATCH]),
                                              return_exceptions=True), 30)


async def bench(broker: str, n: int, concurrency: int, timeout: float) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="imgate-bench-conn-"))
    try:
        prepare_s = 0.0
        tokens: list[str] | None = None
        if broker == "imgate":
            t = time.perf_counter()
            tokens = await prepare_users(tmp / "imgate.db", n)
            prepare_s = time.perf_counter() - t
        kwargs = {"data_dir": tmp} if broker == "imgate" else {}
        async with server_for(broker, **kwargs) as server:
            rss_before = server.rss_mb()
            packets = [connect_packet(f"u{i}:d", f"u{i}" if tokens else None, tokens[i] if tokens else None,
                                      keepalive=600) for i in range(n)]
            run = Run()
            next_index = iter(range(n))
            start = time.perf_counter()
            cpu0 = server.cpu_s()
            deadline = start + timeout

            async def worker() -> None:
                for i in next_index:
                    if time.perf_counter() >= deadline:
                        run.failures["overall_timeout"] += 1
                        continue
                    await _connect_one(server.port, packets[i], run)

            try:
                await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
                elapsed = time.perf_counter() - start
                server_cpu = server.cpu_s() - cpu0
                rss_after = server.rss_mb()
                rss_peak = server.peak_rss_mb()
            finally:
                await _close_all(run.open)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    connected = len(run.latency)
    failures = sum(run.failures.values())
    result: dict[str, object] = {
        "scenario": f"connections N={n}", "broker": broker, "clients": n, "connected": connected,
        "failures": failures, "connect_s": round(elapsed, 2), "connects_per_s": round(connected / elapsed, 1),
        "connect_p50_ms": round(pct(run.latency, 50), 2), "connect_p99_ms": round(pct(run.latency, 99), 2),
        "server_rss_before_mb": round(rss_before, 1), "server_rss_after_mb": round(rss_after, 1),
        "server_rss_peak_mb": round(rss_peak, 1),
        "kb_per_conn": round((rss_after - rss_before) * 1024 / connected, 1) if connected else None,
        "server_cpu_pct": round(100 * server_cpu / elapsed, 1),
        "server_cpu_ms_per_connect": round(1e3 * server_cpu / connected, 2) if connected else None,
        "concurrency": concurrency,
    }
    if failures:
        result["failure_kinds"] = dict(run.failures)
    if broker == "imgate":
        result["prepare_users_s"] = round(prepare_s, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--concurrency", type=int, default=100,
                        help="connects in progress at a time (default 100: Mosquitto listens with a "
                             "backlog of 100; more can overflow the accept queue and add 1 s SYN retries)")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up connecting after this many seconds")
    parser.add_argument("--brokers", nargs="+", choices=BROKERS, default=list(BROKERS))
    args = parser.parse_args()
    limit = raise_nofile()
    need = max(args.clients) + 100
    if limit < need:
        print(f"connections: open-file limit {limit} < {need}; connects beyond it will fail", file=sys.stderr)
    failed = False
    for n in args.clients:
        for broker in args.brokers:
            try:
                result = asyncio.run(bench(broker, n, args.concurrency, args.timeout))
            except Exception as exc:  # noqa: BLE001 (report and go on with the other scenarios)
                result = {"scenario": f"connections N={n}", "broker": broker, "clients": n,
                          "error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(result), flush=True)
            failed |= bool(result.get("error") or result.get("failures"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
