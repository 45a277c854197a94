"""abuse: normal users chatting in pairs at a human-ish rate (each sends one message every
100-200 ms) while one user floods from several connections (QoS 0 and QoS 1 messages, history
and conversations RPCs, search RPCs and SUBSCRIBE packets, as fast as the server reads; see
bench.faults.flood, run in its own process). The normal users' send -> delivery and send -> ack
p99 are measured over a quiet phase and then during the flood (by the time each message was
first sent). Target: no normal message lost, during-flood delivery p99 at most ``ratio_target``
x the quiet p99. The p99 column is the during-flood delivery p99."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field

from bench._common import cpu_s
from bench.faults.audit import Row, audit, load_store
from bench.faults.client import Fleet, chat, drain, repair_all
from bench.faults.server import ROOT
from bench.faults.world import ack_p, check_server, delivery_p, platform, run_id

_FLOODER_START = 30.0


@dataclass
class AbuseConfig:
    users: int = 50  # normal users, in pairs
    interval: tuple[float, float] = (0.1, 0.2)
    warmup_s: float = 2.0
    quiet_s: float = 10.0
    flood_s: float = 10.0
    connections: int = 4  # the flooder's
    ratio_target: float = 3.0
    env: dict[str, str] = field(default_factory=dict)


async def _start_flooder(port: int, uid: str, tokens: dict[str, str], devices: list[str],
                         sinks: list[str]) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.faults.flood", "--port", str(port), "--uid", uid,
        "--tokens", *(f"{d}={tokens[f'{uid}:{d}']}" for d in devices), "--sinks", *sinks,
        cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), _FLOODER_START)
    if line.strip() != b"READY":
        proc.kill()
        await proc.wait()
        msg = f"flooder did not start: {line!r}"
        raise RuntimeError(msg)
    return proc


async def _stop_flooder(proc: asyncio.subprocess.Process) -> dict[str, object]:
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return {"error": "flooder did not stop"}
    lines = out.decode(errors="replace").strip().splitlines()
    try:
        return json.loads(lines[-1]) if lines else {}
    except ValueError:
        return {"output": lines[-1][:200]}


async def run_abuse(cfg: AbuseConfig) -> Row:
    run = run_id()
    pairs = max(1, cfg.users // 2)
    normal = [f"{run}a{i}" for i in range(pairs)] + [f"{run}b{i}" for i in range(pairs)]
    flooder = f"{run}x"
    devices = [f"f{k}" for k in range(cfg.connections)]
    sinks = [f"{run}sink{k}" for k in range(2)]
    row = Row(f"abuse ({2 * pairs} users, {cfg.connections} flood connections)")
    async with platform([*normal, flooder, *sinks], env=cfg.env, extra_devices={flooder: devices}) as plat:
        server = plat.server
        async with Fleet(server.port, run=run) as fleet:
            clients = {uid: fleet.client(uid, plat.tokens[uid]) for uid in normal}
            await fleet.start_all(list(clients.values()))
            t0 = time.perf_counter()
            t_quiet = t0 + cfg.warmup_s
            t_flood = t_quiet + cfg.quiet_s
            t_end = t_flood + cfg.flood_s
            tasks = []
            for i in range(pairs):
                a, b = clients[f"{run}a{i}"], clients[f"{run}b{i}"]
                tasks.append(asyncio.create_task(chat(a, until=t_end, interval=cfg.interval, to=b.uid),
                                                 name=f"faults.chat.{a.uid}"))
                tasks.append(asyncio.create_task(chat(b, until=t_end, interval=cfg.interval, to=a.uid),
                                                 name=f"faults.chat.{b.uid}"))
            await asyncio.sleep(t_flood - time.perf_counter())  # warm-up and quiet phase run
            cpu_quiet = cpu_s(server.pid)
            proc = await _start_flooder(server.port, flooder, plat.tokens, devices, sinks)
            t_flood = time.perf_counter()  # the flood really starts now
            rss_peak = server.rss_mb()
            try:
                while time.perf_counter() < t_end:
                    await asyncio.sleep(min(0.5, max(0.0, t_end - time.perf_counter())))
                    if server.alive:
                        rss_peak = max(rss_peak, server.rss_mb())
            finally:
                flood_stats = await _stop_flooder(proc)
            t_end = time.perf_counter()
            cpu_flood = cpu_s(server.pid) - cpu_quiet if server.alive else float("nan")
            await asyncio.gather(*tasks)
            left = await drain(list(clients.values()), 120)
            failures = await repair_all(list(clients.values()))
            store = await load_store(plat.db_url)
            audit(row, store, list(fleet.sent.values()), list(clients.values()))
            check_server(row, server)
            quiet_d, flood_d = delivery_p(fleet, 99, t_quiet, t_flood), delivery_p(fleet, 99, t_flood, t_end)
            quiet_a, flood_a = ack_p(fleet, 99, None, t_quiet, t_flood), ack_p(fleet, 99, None, t_flood, t_end)
            ratio = flood_d / quiet_d if quiet_d > 0 else float("inf")
            row.p99_ms = flood_d
            row.notes += [
                (f"send->delivery p99 quiet {quiet_d:.1f} ms, flood {flood_d:.1f} ms ({ratio:.1f}x; target <= "
                 f"{cfg.ratio_target:g}x)"),
                f"send->ack p99 quiet {quiet_a:.1f} ms, flood {flood_a:.1f} ms",
                "flood: " + ", ".join(f"{k} {v}" for k, v in sorted(flood_stats.items()) if k != "seconds"),
                (f"server CPU during the flood {100 * cpu_flood / max(t_end - t_flood, 1e-9):.0f}%, "
                 f"RSS peak {rss_peak:.0f} MB"),
            ]
            if ratio > cfg.ratio_target:
                row.fail(f"during-flood p99 is {ratio:.1f}x the quiet p99 (target <= {cfg.ratio_target:g}x)")
            if left:
                row.fail(f"{left} normal message(s) unacked 120 s after the load")
            if failures:
                row.fail(f"repair failed for {len(failures)} client(s): {failures[0]}")
            row.extra.update({
                "users": 2 * pairs, "quiet_s": cfg.quiet_s, "flood_s": round(t_end - t_flood, 2),
                "quiet_deliver_p99_ms": round(quiet_d, 1), "flood_deliver_p99_ms": round(flood_d, 1),
                "quiet_deliver_p50_ms": round(delivery_p(fleet, 50, t_quiet, t_flood), 1),
                "flood_deliver_p50_ms": round(delivery_p(fleet, 50, t_flood, t_end), 1),
                "quiet_ack_p99_ms": round(quiet_a, 1), "flood_ack_p99_ms": round(flood_a, 1),
                "ratio": round(ratio, 2), "flooder": flood_stats, "server_rss_peak_mb": round(rss_peak, 1),
            })
    return row
