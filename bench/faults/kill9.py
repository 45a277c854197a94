"""kill9: ``kill -9`` of imgate in the middle of a 1:1 and group load, then a restart on the same
data directory and port. The clients reconnect, resend what was not acked (same cid) and repair
their gaps. Audit: every message acked before the kill is stored exactly once; every one unacked
at the kill is stored exactly once after the resends; every member ends with every seq."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from bench.faults.audit import Row, audit, load_store
from bench.faults.client import Fleet, drain, repair_all, wait_connected
from bench.faults.world import ChatPlan, ChatWorld, ack_p, check_server, delivery_p, platform, run_id


@dataclass
class Kill9Config:
    plan: ChatPlan = field(default_factory=ChatPlan)
    seconds: float = 20.0  # load duration
    kill_at: float = 0.5  # fraction of the load at which imgate is killed
    down_s: float = 1.0  # how long it stays down before the restart
    database_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    drain_s: float = 90.0


async def run_kill9(cfg: Kill9Config) -> Row:
    run = run_id()
    uids = ChatWorld.uids(run, cfg.plan)
    async with platform(uids, database_url=cfg.database_url, env=cfg.env) as plat:
        server = plat.server
        row = Row(f"kill9 ({plat.db_kind})")
        async with Fleet(server.port, run=run) as fleet:
            world = ChatWorld(fleet, cfg.plan, run)
            await world.start(plat.tokens)
            clients = list(world.clients.values())
            start = time.perf_counter()
            tasks = world.load(start + cfg.seconds)
            await asyncio.sleep(cfg.seconds * cfg.kill_at)  # the load runs meanwhile
            acked_before = {cid for cid, s in fleet.sent.items() if s.id is not None}
            unacked_at_kill = {cid for cid, s in fleet.sent.items() if s.id is None}
            t_kill = time.perf_counter()
            await server.kill9()
            await asyncio.sleep(cfg.down_s)  # down: the clients get connection refused and back off
            await server.start()
            t_up = time.perf_counter()
            await wait_connected(clients, 120)
            reconnected_s = time.perf_counter() - t_up
            await asyncio.gather(*tasks)
            left = await drain(clients, cfg.drain_s)
            failures = await repair_all(clients)
            store = await load_store(plat.db_url)
            audit(row, store, list(fleet.sent.values()), clients)
            check_server(row, server)
            rows_per_cid = Counter((r.sender, r.cid) for r in store.rows)
            sent = fleet.sent
            before_once = sum(1 for cid in acked_before if rows_per_cid[(sent[cid].sender, cid)] == 1)
            after_once = sum(1 for cid in unacked_at_kill if rows_per_cid[(sent[cid].sender, cid)] == 1)
            row.p99_ms = delivery_p(fleet, 99)
            row.notes += [
                f"acked before the kill: {len(acked_before)}, stored once: {before_once}",
                f"unacked at the kill: {len(unacked_at_kill)}, stored once after resend: {after_once}",
                f"all clients back {reconnected_s:.1f} s after the restart",
            ]
            if before_once != len(acked_before):
                row.fail(f"{len(acked_before) - before_once} message(s) acked before the kill not stored exactly once")
            if after_once != len(unacked_at_kill):
                row.fail(f"{len(unacked_at_kill) - after_once} message(s) unacked at the kill not stored exactly once")
            if left:
                row.fail(f"{left} message(s) still unacked {cfg.drain_s:.0f} s after the load")
            if failures:
                row.fail(f"repair failed for {len(failures)} client(s): {failures[0]}")
            row.extra.update({
                "pairs": cfg.plan.pairs, "group_members": cfg.plan.members, "group_senders": cfg.plan.group_senders,
                "seconds": cfg.seconds, "killed_at_s": round(t_kill - start, 2), "down_s": round(t_up - t_kill, 2),
                "deliver_p50_ms": round(delivery_p(fleet, 50), 1), "ack_p99_ms": round(ack_p(fleet, 99), 1),
            })
    return row
