"""reconnect-storm: N clients (default 2,000; even ones on persistent sessions, odd ones on
clean sessions, all subscribed to their inbox) lose their sockets at the same moment (TCP RST,
no DISCONNECT). While they are away, one message is sent to each persistent client; then all
reconnect at once (at most ``concurrency`` connects in progress), and one message is sent to
each clean client right after. Checks: the server stays up; every persistent client gets
``session present`` = 1 and its message from its own session, before any repair (a session
lost); no client gets a message meant for another (a session crossed); presence converges
(the ``presence`` RPC says every client is online); everything sent is stored once and, after
repair, everywhere it belongs. The p99 column is the reconnect's connect latency (TCP connect
to CONNACK)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from bench._common import pct
from bench.faults.audit import Row, audit, load_store
from bench.faults.client import Fleet, GoodClient, drain, repair_all, wait_connected
from bench.faults.world import check_server, platform, run_id, wait_until

_PER_SENDER = 40


@dataclass
class StormConfig:
    clients: int = 2000
    concurrency: int = 100  # connects in progress at once (Mosquitto listens with a backlog of 100)
    timeout: float = 180.0  # for connecting everyone, each time
    converge_s: float = 30.0  # presence and deliveries must settle within this
    env: dict[str, str] = field(default_factory=dict)


async def _presence_online(observer: GoodClient, uids: list[str]) -> int:
    online = 0
    for i in range(0, len(uids), 200):
        result = await observer.rpc_retry("presence", {"uids": uids[i:i + 200]}, 30)
        online += sum(1 for u in uids[i:i + 200] if result["presence"].get(u, {}).get("online"))
    return online


async def run_storm(cfg: StormConfig) -> Row:
    run = run_id()
    n = cfg.clients
    uids = [f"{run}u{i}" for i in range(n)]
    # One sender per 40 targets: each sends 20-40 messages, within a per-user burst.
    txs = [f"{run}tx{k}" for k in range((n + _PER_SENDER - 1) // _PER_SENDER)]
    row = Row(f"reconnect-storm (N={n})")
    async with platform([*uids, *txs], env=cfg.env) as plat:
        server = plat.server
        async with Fleet(server.port, run=run, connect_concurrency=cfg.concurrency) as fleet:
            clients = [fleet.client(uid, plat.tokens[uid], clean=bool(i % 2), keepalive=600,
                                    repair_on_reconnect=False) for i, uid in enumerate(uids)]
            persistent = [c for c in clients if not c.clean]
            clean = [c for c in clients if c.clean]
            senders = [fleet.client(tx, plat.tokens[tx], clean=True, keepalive=600, repair_on_reconnect=False)
                       for tx in txs]
            sender_of = {c.uid: senders[i // _PER_SENDER] for i, c in enumerate(clients)}
            t0 = time.perf_counter()
            await fleet.start_all([*clients, *senders], cfg.timeout)
            first_connect_s = time.perf_counter() - t0
            rss_before = server.rss_mb()

            # Who got which of the scenario's messages live (cid = run-kind-target).
            got: dict[str, list[tuple[str, str]]] = defaultdict(list)  # target -> [(receiver, kind)]
            crossed: list[str] = []

            def on_delivery(client: GoodClient, m: dict[str, Any], via: str) -> None:
                cid = m.get("cid")
                if via != "live" or not isinstance(cid, str) or not cid.startswith(f"{run}-"):
                    return
                _, kind, target = cid.split("-", 2)
                if client.uid in sender_set:
                    return
                if client.uid != target:
                    crossed.append(f"{client.uid} got {cid}")
                got[target].append((client.uid, kind))

            sender_set = set(txs)
            fleet.on_delivery = on_delivery
            for c in clients:
                c.connect_failures.clear()
            t_drop = time.perf_counter()
            for c in clients:
                c.drop(hold=True)
            for c in persistent:
                sender_of[c.uid].send(f"while away: {c.uid}", to=c.uid, cid=f"{run}-away-{c.uid}")
            left = await drain(senders, cfg.timeout)
            if left:
                row.fail(f"{left} message(s) to the away clients not acked")
            away_s = time.perf_counter() - t_drop
            t_back = time.perf_counter()
            for c in clients:
                c.release()
            await wait_connected(clients, cfg.timeout)
            reconnect_s = time.perf_counter() - t_back
            for c in clean:
                sender_of[c.uid].send(f"right after: {c.uid}", to=c.uid, cid=f"{run}-live-{c.uid}")
            left = await drain(senders, cfg.timeout)
            if left:
                row.fail(f"{left} message(s) to the reconnected clients not acked")

            def all_arrived() -> bool:
                return all(any(r == c.uid for r, _ in got.get(c.uid, ())) for c in clients)

            arrived_in_time = await wait_until(all_arrived, cfg.converge_s)
            t_presence = time.perf_counter()
            deadline = t_presence + cfg.converge_s
            while True:  # bounded polling of the presence RPC
                online = await _presence_online(senders[0], uids)
                if online == n or time.perf_counter() >= deadline:
                    break
                await asyncio.sleep(0.25)
            presence_s = time.perf_counter() - t_presence
            rss_after = server.rss_mb()

            # A persistent client's session is lost when it was not resumed, or its message
            # (queued while it was away) did not come live from the session.
            not_resumed = [c.uid for c in persistent if not c.session_present or not c.session_present[-1]]
            missed = [c.uid for c in persistent if (c.uid, "away") not in got.get(c.uid, [])]
            clean_missed = [c.uid for c in clean if (c.uid, "live") not in got.get(c.uid, [])]
            wrongly_present = [c.uid for c in clean if c.session_present and c.session_present[-1]]
            crossed += [f"{c.uid}: {c.crossed} on other topics" for c in clients if c.crossed]
            repair_failures = await repair_all([*clients, *senders])
            store = await load_store(plat.db_url)
            audit(row, store, list(fleet.sent.values()), [*clients, *senders])
            check_server(row, server)

            reconnect_lat = [c.connect_latency[-1] for c in clients if len(c.connect_latency) >= 2]
            failures: Counter[str] = Counter()
            for c in clients:
                failures.update(c.connect_failures)
            row.p99_ms = pct(reconnect_lat, 99)
            row.notes += [
                f"{n} reconnected in {reconnect_s:.1f} s, connect p50 {pct(reconnect_lat, 50):.0f} ms, "
                f"failed attempts {sum(failures.values())}" + (f" {dict(failures)}" if failures else ""),
                (f"sessions resumed {len(persistent) - len(not_resumed)}/{len(persistent)}, "
                 f"queued message live {len(persistent) - len(missed)}/{len(persistent)}, crossed {len(crossed)}"),
                f"presence: {online}/{n} online {presence_s:.1f} s after the deliveries",
                f"RSS {rss_before:.0f} -> {rss_after:.0f} MB",
            ]
            if not_resumed:
                row.fail(f"{len(not_resumed)} persistent session(s) not resumed, e.g. {not_resumed[:3]}")
            if missed:
                row.fail(f"{len(missed)} persistent client(s) did not get the message queued while away "
                         f"(before repair), e.g. {missed[:3]}")
            if clean_missed:
                row.fail(f"{len(clean_missed)} clean client(s) did not get the message sent after reconnecting, "
                         f"e.g. {clean_missed[:3]}")
            if wrongly_present:
                row.fail(f"{len(wrongly_present)} clean session(s) reported session present")
            if crossed:
                row.fail(f"{len(crossed)} message(s) crossed sessions, e.g. {crossed[:3]}")
            if online != n:
                row.fail(f"presence did not converge: {online}/{n} online after {cfg.converge_s:.0f} s")
            if not arrived_in_time:
                row.notes.append(f"deliveries still missing after {cfg.converge_s:.0f} s")
            if repair_failures:
                row.fail(f"repair failed for {len(repair_failures)} client(s): {repair_failures[0]}")
            row.extra.update({
                "clients": n, "persistent": len(persistent), "concurrency": cfg.concurrency,
                "first_connect_s": round(first_connect_s, 2), "away_s": round(away_s, 2),
                "reconnect_s": round(reconnect_s, 2), "reconnect_p50_ms": round(pct(reconnect_lat, 50), 1),
                "connect_failures": dict(failures), "presence_converged_s": round(presence_s, 2),
                "server_rss_before_mb": round(rss_before, 1), "server_rss_after_mb": round(rss_after, 1),
            })
    return row
