"""The fault suite: each scenario runs the real ``imgate run`` as a subprocess (fresh data
directory, free port) and real MQTT clients that behave as docs/protocol.md asks of a good client
(bench/faults/client.py), breaks something, and audits what is stored and delivered.

    python -m bench.faults                       # every scenario, moderate sizes (about 8 minutes)
    python -m bench.faults --quick               # small sizes (about 3 minutes)
    python -m bench.faults --only kill9 abuse    # some of them
    python -m bench.faults --only kill9 --database-url postgres://postgres@127.0.0.1:5432

Scenarios: kill9, pg-restart, pg-pause, reconnect-storm, abuse, slow-consumer, the attacks of
issue 24: ping-flood, property-bomb, connect-bomb, web-idle-fds, upload-hog, and issue 25's
rabbit-node-loss (cluster mode: a three-node RabbitMQ cluster, one node killed; on --database-url,
else on a private PostgreSQL; skipped without RabbitMQ) (see bench/README.md, "Fault suite"). Each runs in its own child process (tortoise keeps per-process state of the first
database it opened, and a storm's thousands of sockets stay out of the next scenario). One JSON
line per row as it finishes, then a Markdown table. Exit status 1 when a
row has lost > 0 or duplicated > 0, a scenario could not run, or any other check of a row failed
(a target missed, a message never acked, no cut-off, ...; ``--lenient`` leaves these out).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench._common import raise_nofile
from bench.faults.attack import ATTACKS, AttackConfig, run_attack
from bench.faults.audit import Row
from bench.faults.kill9 import Kill9Config, run_kill9
from bench.faults.pg import PgConfig, run_pg_scenarios
from bench.faults.rabbit_loss import RabbitLossConfig, run_rabbit_node_loss
from bench.faults.slow import SlowConfig, run_slow
from bench.faults.storm import StormConfig, run_storm
from bench.faults.world import ChatPlan

SCENARIOS = ("kill9", "pg-restart", "pg-pause", "reconnect-storm", "abuse", "slow-consumer", "ping-flood",
             "property-bomb", "connect-bomb", "web-idle-fds", "upload-hog", "rabbit-node-loss")
_LIMIT = 1800.0  # seconds per scenario


def _env(items: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("IMGATE_"):
            msg = f"--env wants IMGATE_<SECTION>__<KEY>=VALUE, got {item!r}"
            raise SystemExit(msg)
        env[key] = value
    return env


def plan(args: argparse.Namespace) -> list[tuple[str, Callable[[], Awaitable[list[Row]]]]]:
    """(name, coroutine factory) per scenario to run, in order."""
    q, env = args.quick, _env(args.env)
    runs: list[tuple[str, Callable[[], Awaitable[list[Row]]]]] = []

    async def one(coro: Awaitable[Row]) -> list[Row]:
        return [await coro]

    if "kill9" in args.only:
        k9 = Kill9Config(plan=ChatPlan(3, 4, 2) if q else ChatPlan(20, 20, 5),
                         seconds=args.seconds or (6.0 if q else 20.0), env=env)
        runs.append(("kill9", lambda: one(run_kill9(k9))))
        if args.database_url:
            k9pg = Kill9Config(plan=k9.plan, seconds=k9.seconds, database_url=args.database_url, env=env)
            runs.append(("kill9-postgres", lambda: one(run_kill9(k9pg))))
    modes = (["fast", "immediate"] if "pg-restart" in args.only else []) + (
        ["pause"] if "pg-pause" in args.only else [])
    if modes:
        pg = PgConfig(plan=ChatPlan(3, 4, 2) if q else ChatPlan(10, 10, 3),
                      seconds=args.seconds or (10.0 if q else 30.0), restarts=2 if q else 3,
                      pause_s=3.0 if q else 5.0, env=env)
        runs.append(("pg-" + "-".join(modes), lambda: run_pg_scenarios(modes, pg)))
    if "reconnect-storm" in args.only:
        st = StormConfig(clients=args.clients or (200 if q else 2000), env=env)
        runs.append(("reconnect-storm", lambda: one(run_storm(st))))
    if "slow-consumer" in args.only:
        sc = SlowConfig(pairs=2, senders=4, load_s=6.0, history_rpcs=20, settle_s=6.0, env=env) if q \
            else SlowConfig(env=env)
        runs.append(("slow-consumer", lambda: one(run_slow(sc))))
    for name in (n for n in SCENARIOS if n in ATTACKS and n in args.only):  # abuse, then issue 24's
        at = AttackConfig(kind=name, users=args.users or (10 if q else 50), quiet_s=4.0 if q else 10.0,
                          attack_s=4.0 if q else 10.0, env=env)
        runs.append((name, _attack(at, one)))
    if "rabbit-node-loss" in args.only:
        rl = RabbitLossConfig(plan=ChatPlan(4, 3, 1) if q else ChatPlan(10, 10, 3),
                              seconds=args.seconds or (6.0 if q else 20.0), database_url=args.database_url, env=env)
        runs.append(("rabbit-node-loss", lambda: one(run_rabbit_node_loss(rl))))
    return runs


def _attack(cfg: AttackConfig, one: Callable[[Awaitable[Row]], Awaitable[list[Row]]],
            ) -> Callable[[], Awaitable[list[Row]]]:
    return lambda: one(run_attack(cfg))


async def _guarded(name: str, factory: Callable[[], Awaitable[list[Row]]]) -> list[Row]:
    try:
        async with asyncio.timeout(_LIMIT):
            return await factory()
    except Exception as exc:  # noqa: BLE001 - report it as a row and go on with the next scenario
        row = Row(name)
        row.fail(f"could not run: {type(exc).__name__}: {str(exc)[:500]}")
        row.extra["error"] = True
        return [row]


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(rows: list[Row]) -> str:
    out = ["| scenario | sent | acked | stored | delivered | lost | duplicated | p99 (ms) | notes |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        p99 = "-" if r.p99_ms is None or math.isnan(r.p99_ms) else f"{r.p99_ms:,.1f}"
        notes = "; ".join([*(f"**FAIL: {f}**" for f in r.failed), *r.notes])
        out.append(f"| {_cell(r.scenario)} | {r.sent:,} | {r.acked:,} | {r.stored:,} | {r.delivered:,} | {r.lost:,} "
                   f"| {r.duplicated:,} | {p99} | {_cell(notes)} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--database-url", help="kill9 also runs on this PostgreSQL (no database name in the URL: "
                                               "a fresh database, dropped at the end), and rabbit-node-loss on it")
    parser.add_argument("--env", nargs="+", default=[], metavar="IMGATE_SECTION__KEY=VALUE",
                        help="extra settings for every imgate started (e.g. IMGATE_LIMITS__MESSAGES_PER_S=50)")
    parser.add_argument("--seconds", type=float, help="load duration of kill9, rabbit-node-loss and pg-* "
                                                      "(default 20 / 30; quick 6 / 10)")
    parser.add_argument("--clients", type=int, help="reconnect-storm clients (default 2000; quick 200)")
    parser.add_argument("--users", type=int, help="abuse and the attacks: normal users (default 50; quick 10)")
    parser.add_argument("--lenient", action="store_true", help="exit 1 only on lost or duplicated messages, not "
                                                               "when another check of a row failed")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # run one planned scenario in this process
    args = parser.parse_args()
    raise_nofile()
    runs = plan(args)
    if args.one:
        # SIGTERM (from the parent's timeout, or anyone) unwinds like Ctrl-C: the scenario's
        # finally blocks stop its imgate and its private PostgreSQL.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        for name, factory in runs:
            if name == args.one:
                for row in asyncio.run(_guarded(name, factory)):
                    print(row.json(), flush=True)
        return
    started = time.perf_counter()
    rows: list[Row] = []
    for name, _ in runs:
        print(f"## {name}", file=sys.stderr, flush=True)
        rows += _run_child(name)
    print(f"\n## Fault suite ({time.perf_counter() - started:.0f} s{', --quick' if args.quick else ''})\n", flush=True)
    print(table(rows), flush=True)
    bad = any(r.lost or r.duplicated or r.extra.get("error") or (not args.lenient and not r.ok) for r in rows)
    sys.exit(1 if bad else 0)


def _run_child(name: str) -> list[Row]:
    """Run one planned scenario in a child process (same arguments plus ``--one``); echo and
    collect its JSON rows. A child that dies or hangs becomes an error row."""
    argv = [sys.executable, "-m", "bench.faults", *sys.argv[1:], "--one", name]
    rows: list[Row] = []
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = child.communicate(timeout=_LIMIT + 120)
    except subprocess.TimeoutExpired:
        child.terminate()  # lets it clean up (see --one)
        try:
            out, _ = child.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            child.kill()
            out, _ = child.communicate()
    finally:
        if child.poll() is None:  # Ctrl-C here: the child got it too; wait for its clean-up
            try:
                child.wait(timeout=120)
            except subprocess.TimeoutExpired:
                child.kill()
    code = child.returncode
    for line in (out or "").splitlines():
        if line.startswith("{"):
            print(line, flush=True)
            rows.append(Row.from_json(line))
    if not rows:
        row = Row(name)
        row.fail(f"could not run: the child process exited with {code} and no result")
        row.extra["error"] = True
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
