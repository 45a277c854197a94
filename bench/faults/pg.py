"""pg-restart / pg-pause: imgate on a private PostgreSQL cluster (started here on a free port,
never the system one) loses its database in the middle of a 1:1 and group load:

- ``pg-restart``: ``pg_ctl restart -m fast`` and, as a separate row, ``-m immediate`` (a crash
  restart with WAL recovery);
- ``pg-pause``: every PostgreSQL process SIGSTOPped for a few seconds, then SIGCONTed (a hung
  database: connections stay open, queries hang).

imgate is not restarted. Sends during the outage must get an error ack (``internal`` /
``unavailable``) or wait; no ack without a commit (every acked id is in the database at the end;
and no ack at all while the database is frozen); after the outage imgate must serve again on its
own. If it does not, the row says so with the server's log and, when py-spy is installed, a
stack dump of the server.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from bench.faults.audit import Row, audit, load_store
from bench.faults.client import Fleet, drain, repair_all
from bench.faults.setup import PrivatePostgres
from bench.faults.world import ChatPlan, ChatWorld, ack_p, check_server, delivery_p, platform, run_id

MODES = ("fast", "immediate", "pause")
_PAUSE_GRACE = 0.3  # s: acks already on their way when the pause starts


@dataclass
class PgConfig:
    plan: ChatPlan = field(default_factory=lambda: ChatPlan(pairs=10, members=10, group_senders=3))
    seconds: float = 30.0  # load duration
    outage_at: float = 0.25  # fraction of the load at which the (first) outage starts
    restarts: int = 3  # pg-restart: restarts per run, spread from outage_at to 1 - outage_at of the load
    pause_s: float = 5.0
    recover_s: float = 60.0  # after the load, every message must be acked within this
    env: dict[str, str] = field(default_factory=dict)


def _name(mode: str, cfg: PgConfig) -> str:
    return f"pg-pause ({cfg.pause_s:g} s)" if mode == "pause" else f"pg-restart ({mode})"


async def run_pg(mode: str, cfg: PgConfig, pg: PrivatePostgres) -> Row:
    """One outage of kind ``mode`` (fast, immediate, pause) against a fresh database on ``pg``."""
    run = run_id()
    uids = ChatWorld.uids(run, cfg.plan)
    row = Row(_name(mode, cfg))
    async with platform(uids, database_url=pg.url, env=cfg.env) as plat:
        server = plat.server
        async with Fleet(server.port, run=run) as fleet:
            world = ChatWorld(fleet, cfg.plan, run)
            await world.start(plat.tokens)
            clients = list(world.clients.values())
            start = time.perf_counter()
            tasks = world.load(start + cfg.seconds)
            errors_before = sum(sum(c.ack_errors.values()) for c in clients)
            outages = 1 if mode == "pause" else cfg.restarts
            t_out = t_resume = start
            span = 1 - 2 * cfg.outage_at  # outages spread over the middle of the load
            fractions = [cfg.outage_at + span * k / (outages - 1) for k in range(outages)] if outages > 1 \
                else [cfg.outage_at]
            for fraction in fractions:
                at = start + cfg.seconds * fraction
                await asyncio.sleep(max(0.0, at - time.perf_counter()))  # the load runs meanwhile
                t_out = time.perf_counter()
                if mode == "pause":
                    stopped = pg.pause()
                    try:
                        await asyncio.sleep(cfg.pause_s)  # the outage itself
                        t_resume = time.perf_counter()
                    finally:
                        pg.resume()
                    row.notes.append(f"{stopped} PostgreSQL processes stopped for {cfg.pause_s:g} s")
                else:
                    took = await pg.restart(mode)
                    t_resume = time.perf_counter()
                    row.notes.append(f"pg_ctl restart -m {mode} at {t_out - start:.1f} s took {took:.1f} s")
            t_back = time.perf_counter()
            pending_at_back = [s for s in fleet.sent.values() if s.id is None and s.first < t_back]
            await asyncio.gather(*tasks)
            left = await drain(clients, cfg.recover_s)
            t_drained = time.perf_counter()
            acked_after = sorted(s.acked_at for s in fleet.sent.values()
                                 if s.acked_at is not None and s.acked_at >= t_back)
            first_ack_s = acked_after[0] - t_back if acked_after else None
            backlog = [s.acked_at for s in pending_at_back if s.acked_at is not None]
            backlog_s = (max(backlog) - t_back) if backlog and len(backlog) == len(pending_at_back) else None
            errors = sum(sum(c.ack_errors.values()) for c in clients) - errors_before
            if left:
                row.fail(f"imgate did not recover: {left} message(s) unacked {cfg.recover_s:.0f} s after the load "
                         f"(database back {t_drained - t_back:.0f} s before); log: {server.log_path}")
                row.extra["server_stack"] = await asyncio.to_thread(server.stack_dump)
                row.extra["server_log_tail_at_failure"] = server.log_tail(40)
            failures = await repair_all(clients, timeout=15.0 if left else 120.0)
            store = await load_store(plat.db_url)
            audit(row, store, list(fleet.sent.values()), clients)
            check_server(row, server)
            if server.starts != 1:
                row.fail("imgate was restarted")
            if mode == "pause":
                frozen = [s for s in fleet.sent.values() if s.acked_at is not None
                          and t_out + _PAUSE_GRACE < s.acked_at < t_resume]
                row.notes.append(f"acks while the database was frozen: {len(frozen)}")
                if frozen:
                    row.fail(f"{len(frozen)} ack(s) while PostgreSQL was stopped: no commit can have happened")
            if failures:
                row.fail(f"repair failed for {len(failures)} client(s): {failures[0]}")
            row.notes.append(f"error acks during/after the outage: {errors} "
                             f"({', '.join(f'{k} {v}' for k, v in row.extra.get('ack_errors', {}).items()) or '-'})")
            row.notes.append("first ack after the (last) outage: " + (f"{first_ack_s:.1f} s" if first_ack_s is not None
                                                                  else "never"))
            if pending_at_back:
                row.notes.append(f"{len(pending_at_back)} message(s) pending when the database came back; all acked "
                                 + (f"{backlog_s:.1f} s later" if backlog_s is not None else "- never"))
            row.p99_ms = delivery_p(fleet, 99)
            row.extra.update({
                "mode": mode, "pairs": cfg.plan.pairs, "group_members": cfg.plan.members, "seconds": cfg.seconds,
                "outage_at_s": round(t_out - start, 2), "outage_s": round(t_back - t_out, 2),
                "deliver_p50_ms": round(delivery_p(fleet, 50), 1), "ack_p99_ms": round(ack_p(fleet, 99), 1),
            })
    return row


async def run_pg_scenarios(modes: list[str], cfg: PgConfig) -> list[Row]:
    """Each mode on a fresh database of one private cluster (started and removed here)."""
    rows: list[Row] = []
    async with PrivatePostgres() as pg:
        for mode in modes:
            try:
                rows.append(await run_pg(mode, cfg, pg))
            except Exception as exc:  # noqa: BLE001 - report it as a row and go on with the next mode
                row = Row(_name(mode, cfg))
                row.fail(f"{type(exc).__name__}: {exc}")
                rows.append(row)
            pg.resume()
    return rows
