"""slow-consumer: one client subscribes to its inbox (persistent session, a 4 KiB socket receive
buffer) and then never reads its socket again, though it keeps writing (a PINGREQ every second,
so it looks alive, and so a server-side close is noticed). Other users send it text messages of
``text_chars`` characters, and it asks for ``history_rpcs`` history pages of 200 of them, whose
replies are large. Meanwhile other pairs chat. Reported: the server's RSS (VmRSS: start, peak,
end, every 0.25 s), whether and when the server cut the consumer off (its socket closed by the
server; its presence went offline), the other pairs' send -> delivery p99 before and during, and
everything's losses: the consumer comes back afterwards as a good client and must find every
message in history. Targets: cut off; RSS growth at most ``rss_growth_limit_mb``; others' p99 at
most ``ratio_target`` x the quiet figure; nothing lost."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from bench.faults.audit import Row, audit, load_store
from bench.faults.client import Fleet, GoodClient, chat, drain, repair_all
from bench.faults.mqtt import Connection, ConnectionLost
from bench.faults.server import RssSampler
from bench.faults.world import check_server, delivery_p, effective_settings, platform, run_id, wait_until

_LIMIT_KEYS = ("max_inflight", "max_queued", "max_inflight_bytes", "max_queued_bytes")


@dataclass
class SlowConfig:
    pairs: int = 5  # other users chatting meanwhile
    senders: int = 10  # users sending to the slow consumer
    send_interval: tuple[float, float] = (0.05, 0.07)  # per sender (under a per-user limit of 20/s)
    text_chars: int = 8000
    history_rpcs: int = 60
    rpc_at: float = 0.2  # fraction of the load at which the consumer sends its history RPCs
    quiet_s: float = 3.0
    load_s: float = 10.0
    settle_s: float = 10.0  # after the load: time for the cut-off to show and memory to settle
    persistent: bool = True
    rss_growth_limit_mb: float = 64.0
    ratio_target: float = 3.0
    env: dict[str, str] = field(default_factory=dict)


async def run_slow(cfg: SlowConfig) -> Row:
    run = run_id()
    others = [f"{run}a{i}" for i in range(cfg.pairs)] + [f"{run}b{i}" for i in range(cfg.pairs)]
    senders = [f"{run}t{k}" for k in range(cfg.senders)]
    slow = f"{run}slow"
    row = Row("slow-consumer")
    settings = effective_settings(cfg.env)
    limits = {k: getattr(settings.broker, k) for k in _LIMIT_KEYS if hasattr(settings.broker, k)}
    async with platform([*others, *senders, slow], env=cfg.env) as plat:
        server = plat.server
        async with Fleet(server.port, run=run) as fleet:
            offline_at: list[float] = []
            seen_online: list[float] = []

            def on_other(client: GoodClient, topic: str, body: dict[str, Any]) -> None:
                if not topic.startswith(f"presence/{slow}/"):
                    return
                if body.get("online") is True:
                    seen_online.append(time.perf_counter())
                elif body.get("online") is False and seen_online:  # not a retained state from before
                    offline_at.append(time.perf_counter())

            fleet.on_other = on_other
            # The first chatter also watches the consumer's presence.
            chatters = {uid: fleet.client(uid, plat.tokens[uid], extra_filters=(f"presence/{slow}/+",) if not i else ())
                        for i, uid in enumerate(others)}
            feeders = [fleet.client(uid, plat.tokens[uid]) for uid in senders]
            await fleet.start_all([*chatters.values(), *feeders])

            consumer, code, _ = await Connection.open(server.port, f"{slow}:d", slow, plat.tokens[slow],
                                                      clean=not cfg.persistent, keepalive=60, rcvbuf=4096)
            if code != 0:
                msg = f"the slow consumer was refused: CONNACK {code}"
                raise RuntimeError(msg)
            await consumer.subscribe([(f"im/{slow}/in/#", 1)])
            consumer.pause_reading()  # from now on it never reads

            rss = RssSampler(server.pid)
            rss.start()
            t0 = time.perf_counter()
            t_load = t0 + cfg.quiet_s
            t_end = t_load + cfg.load_s
            tasks = []
            for i in range(cfg.pairs):
                a, b = chatters[f"{run}a{i}"], chatters[f"{run}b{i}"]
                tasks += [asyncio.create_task(chat(a, until=t_end, interval=(0.1, 0.2), to=b.uid),
                                              name=f"faults.chat.{a.uid}"),
                          asyncio.create_task(chat(b, until=t_end, interval=(0.1, 0.2), to=a.uid),
                                              name=f"faults.chat.{b.uid}")]
            filler = "x" * cfg.text_chars

            def text(n: int, uid: str) -> str:
                return f"{uid} {n} {filler}"[:cfg.text_chars]

            await asyncio.sleep(max(0.0, t_load - time.perf_counter()))  # the quiet phase runs
            tasks += [asyncio.create_task(chat(f, until=t_end, interval=cfg.send_interval, to=slow,
                                               text=functools.partial(text, uid=f.uid)),
                                          name=f"faults.feed.{f.uid}") for f in feeders]
            convs = [f"d:{min(slow, t)}:{max(slow, t)}" for t in senders]
            rpcs_sent = 0
            cut_off_at: float | None = None
            while time.perf_counter() < t_end + cfg.settle_s:
                await asyncio.sleep(0.5)
                now = time.perf_counter()
                try:
                    consumer.ping()  # keeps writing: looks alive, and a closed socket shows up
                    if now >= t_load + cfg.load_s * cfg.rpc_at and rpcs_sent < cfg.history_rpcs:
                        for _ in range(cfg.history_rpcs - rpcs_sent):
                            consumer.publish(f"im/{slow}/out/rpc", json.dumps(
                                {"jsonrpc": "2.0", "id": rpcs_sent + 1, "method": "history",
                                 "params": {"conv": convs[rpcs_sent % len(convs)], "limit": 200}}).encode(), qos=0)
                            rpcs_sent += 1
                except ConnectionLost:
                    pass
                if consumer.closed.is_set() and not consumer.aborted_by_us:
                    cut_off_at = consumer.closed_at
                    if now >= t_end:
                        break
            await asyncio.gather(*tasks)
            rss_end = rss.sample()
            await rss.stop()
            cut_off = consumer.closed.is_set() and not consumer.aborted_by_us
            if cut_off and cut_off_at is None:
                cut_off_at = consumer.closed_at
            if not cut_off:
                consumer.abort()
            await wait_until(lambda: bool(offline_at), 5.0)

            left = await drain([*chatters.values(), *feeders], 120)
            # The consumer comes back as a good client and catches up from history.
            back = fleet.client(slow, plat.tokens[slow], clean=not cfg.persistent)
            await fleet.start_all([back])
            failures = await repair_all([*chatters.values(), *feeders, back])
            store = await load_store(plat.db_url)
            audit(row, store, list(fleet.sent.values()), [*chatters.values(), *feeders, back])
            check_server(row, server)

            start_mb = rss.samples[0][1]
            growth = rss.peak - start_mb
            others_set = set(others)
            quiet = delivery_p(fleet, 99, t0, t_load, others_set)
            during = delivery_p(fleet, 99, t_load, t_end, others_set)
            ratio = during / quiet if quiet > 0 else float("inf")
            to_slow = sum(1 for s in fleet.sent.values() if s.sender in set(senders))
            row.p99_ms = during
            row.notes += [
                f"RSS start {start_mb:.0f} / peak {rss.peak:.0f} / end {rss_end:.0f} MB (growth {growth:.0f} MB; "
                f"target <= {cfg.rss_growth_limit_mb:g}); limits: "
                + ", ".join(f"{k}={v}" for k, v in limits.items()),
                "consumer cut off by the server " + (f"{cut_off_at - t_load:.1f} s into the load" if cut_off and
                                                     cut_off_at else "- NO (still connected at the end)")
                + f"; presence offline seen: {'yes' if offline_at else 'no'}",
                (f"{to_slow} messages of {cfg.text_chars} chars at it; it asked for {rpcs_sent} history pages "
                 f"(limit 200) {cfg.load_s * cfg.rpc_at:g} s into the load"),
                f"others' send->delivery p99 quiet {quiet:.1f} ms, during {during:.1f} ms ({ratio:.1f}x)",
            ]
            if not cut_off:
                row.fail("the server did not cut the slow consumer off")
            if growth > cfg.rss_growth_limit_mb:
                row.fail(f"server RSS grew {growth:.0f} MB (> {cfg.rss_growth_limit_mb:g})")
            if ratio > cfg.ratio_target:
                row.fail(f"others' p99 during the load is {ratio:.1f}x the quiet p99 (target <= {cfg.ratio_target:g}x)")
            if left:
                row.fail(f"{left} message(s) unacked 120 s after the load")
            if failures:
                row.fail(f"repair failed for {len(failures)} client(s): {failures[0]}")
            row.extra.update({
                "rss_start_mb": round(start_mb, 1), "rss_peak_mb": round(rss.peak, 1), "rss_end_mb": round(rss_end, 1),
                "rss_series_mb": [round(mb) for _, mb in rss.samples[::4]], "limits": limits,
                "cut_off": cut_off, "cut_off_after_s": round(cut_off_at - t_load, 2) if cut_off_at else None,
                "messages_to_consumer": to_slow,
                "history_rpcs": rpcs_sent, "others_quiet_p99_ms": round(quiet, 1),
                "others_during_p99_ms": round(during, 1),
            })
    return row
