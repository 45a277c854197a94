"""fanout-raw: plain MQTT forwarding through the broker alone (no bridge, no database), against
imgate's embedded broker and against Mosquitto, with the same load generator in the same run.

P publisher/subscriber pairs. Pair i's subscriber subscribes ``bench/{i}`` at QoS 1; its
publisher keeps W QoS 1 messages in flight (W lanes; a lane publishes, waits for the PUBACK and
for its message to reach the subscriber, then sends the next). The payload carries a sequence
number and the send time. Reports msgs/s, publish->receive latency p50/p99, lost, duplicated and
the broker's RSS; then the ratio mosquitto/imgate msgs/s for every (P, W).

    python -m bench.fanout_raw --pairs 10 --window 1 10 --seconds 8
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from bench._common import NODELAY, Server, pct, raise_nofile, server_for

BROKERS = ("imgate", "mosquitto")
_LANE_WAIT = 10.0  # a message not delivered within this is counted lost; the lane goes on
_DRAIN = 5.0
_SETUP_TIMEOUT = 60.0


@dataclass
class Pair:
    n: int
    sent: dict[int, float] = field(default_factory=dict)
    received: dict[int, int] = field(default_factory=dict)
    latency: list[float] = field(default_factory=list)
    waiters: dict[int, asyncio.Future[None]] = field(default_factory=dict)


def _client(server: Server, identifier: str, account: int, window: int) -> aiomqtt.Client:
    creds = {"username": f"bench-{account}", "password": "bench"} if server.name == "imgate" else {}
    return aiomqtt.Client("127.0.0.1", server.port, identifier=identifier, socket_options=NODELAY,
                          max_inflight_messages=max(20, 2 * window), keepalive=60, **creds)


async def _run_pair(server: Server, pair: Pair, window: int, payload_bytes: int, ready: asyncio.Event,
                    go: asyncio.Event, stop_at: list[float]) -> None:
    loop = asyncio.get_running_loop()
    topic = f"bench/{pair.n}"
    pad = b"x" * payload_bytes
    async with AsyncExitStack() as stack:
        sub = await stack.enter_async_context(_client(server, f"fanout-sub-{pair.n}", 2 * pair.n, window))
        pub = await stack.enter_async_context(_client(server, f"fanout-pub-{pair.n}", 2 * pair.n + 1, window))
        await sub.subscribe(topic, qos=1)

        async def receive() -> None:
            async for m in sub.messages:
                now = time.perf_counter()
                seq_text, ts_text, _ = bytes(m.payload).split(b" ", 2)  # type: ignore[arg-type]
                seq = int(seq_text)
                pair.received[seq] = pair.received.get(seq, 0) + 1
                if pair.received[seq] == 1:
                    pair.latency.append(now - float(ts_text))
                waiter = pair.waiters.pop(seq, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

        receiver = asyncio.create_task(receive())
        receiver.add_done_callback(lambda t: t.cancelled() or t.exception() is None or print(
            f"fanout-raw: receiver of pair {pair.n} failed: {t.exception()!r}", file=sys.stderr, flush=True))
        try:
            ready.set()
            await go.wait()
            counter = itertools.count()

            async def lane() -> None:
                while time.perf_counter() < stop_at[0]:
                    seq = next(counter)
                    waiter = loop.create_future()
                    pair.waiters[seq] = waiter
                    t0 = time.perf_counter()
                    pair.sent[seq] = t0
                    await pub.publish(topic, b"%d %r " % (seq, t0) + pad, qos=1, timeout=_LANE_WAIT)
                    try:
                        await asyncio.wait_for(waiter, _LANE_WAIT)
                    except TimeoutError:
                        pair.waiters.pop(seq, None)

            await asyncio.gather(*(lane() for _ in range(window)))
            # Bounded drain: a late or duplicate delivery still gets counted.
            deadline = time.perf_counter() + _DRAIN
            while time.perf_counter() < deadline and len(pair.received) < len(pair.sent):
                await asyncio.sleep(0.01)
        finally:
            receiver.cancel()


async def bench(broker: str, pairs: int, window: int, seconds: float, payload_bytes: int) -> dict[str, object]:
    async with server_for(broker, accounts=2 * pairs) as server:
        all_pairs = [Pair(n) for n in range(pairs)]
        readies = [asyncio.Event() for _ in all_pairs]
        go = asyncio.Event()
        stop_at = [0.0]
        tasks = [asyncio.create_task(_run_pair(server, p, window, payload_bytes, r, go, stop_at))
                 for p, r in zip(all_pairs, readies, strict=True)]
        try:
            # Every pair connected and subscribed before the clock starts (bounded; a task that
            # fails during setup ends the wait with its error).
            ready_all = asyncio.create_task(asyncio.wait_for(
                asyncio.gather(*(r.wait() for r in readies)), _SETUP_TIMEOUT))
            done, _ = await asyncio.wait({ready_all, *tasks}, return_when=asyncio.FIRST_COMPLETED)
            if ready_all not in done:
                ready_all.cancel()
                for t in done:
                    t.result()
            ready_all.result()
            start = time.perf_counter()
            cpu0, gen0 = server.cpu_s(), time.process_time()
            stop_at[0] = start + seconds
            go.set()
            await asyncio.wait_for(asyncio.gather(*tasks), seconds + 2 * _LANE_WAIT + _DRAIN + 30)
            elapsed = time.perf_counter() - start
            server_cpu, gen_cpu = server.cpu_s() - cpu0, time.process_time() - gen0
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        rss = server.rss_mb()
        peak = server.peak_rss_mb()
    sent = sum(len(p.sent) for p in all_pairs)
    delivered = sum(len(p.received) for p in all_pairs)
    dupes = sum(c - 1 for p in all_pairs for c in p.received.values() if c > 1)
    lat = [x for p in all_pairs for x in p.latency]
    missing = [f"{p.n}:{seq}" for p in all_pairs for seq in sorted(p.sent) if seq not in p.received][:10]
    extra = {"lost_sample": missing, "elapsed_s": round(elapsed, 2)} if missing else {}
    return {
        "scenario": f"fanout-raw P={pairs} W={window}", "broker": broker, "pairs": pairs, "window": window,
        "sent": sent, "delivered": delivered, "lost": sent - delivered, "duplicated": dupes,
        "msgs_per_s": round(delivered / elapsed, 1),
        "p50_ms": round(pct(lat, 50), 2), "p99_ms": round(pct(lat, 99), 2),
        "server_rss_mb": round(rss, 1), "server_rss_peak_mb": round(peak, 1),
        # CPU: what the broker costs per message, and whether the generator was the bottleneck.
        "server_cpu_pct": round(100 * server_cpu / elapsed, 1),
        "server_cpu_us_per_msg": round(1e6 * server_cpu / delivered, 1) if delivered else None,
        "generator_cpu_pct": round(100 * gen_cpu / elapsed, 1), **extra,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, nargs="+", default=[10])
    parser.add_argument("--window", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--payload-bytes", type=int, default=64, help="padding after seq and timestamp")
    parser.add_argument("--brokers", nargs="+", choices=BROKERS, default=list(BROKERS))
    args = parser.parse_args()
    raise_nofile()
    failed = False
    rates: dict[tuple[int, int], dict[str, dict[str, Any]]] = {}
    for p in args.pairs:
        for w in args.window:
            for broker in args.brokers:
                try:
                    result = asyncio.run(bench(broker, p, w, args.seconds, args.payload_bytes))
                except Exception as exc:  # noqa: BLE001 (report and go on with the other scenarios)
                    result = {"scenario": f"fanout-raw P={p} W={w}", "broker": broker, "pairs": p, "window": w,
                              "error": f"{type(exc).__name__}: {exc}"}
                print(json.dumps(result), flush=True)
                failed |= bool(result.get("error") or result.get("lost") or result.get("duplicated"))
                if "msgs_per_s" in result:
                    rates.setdefault((p, w), {})[broker] = result
    for (p, w), r in rates.items():
        if "imgate" in r and "mosquitto" in r and r["imgate"]["msgs_per_s"]:
            line: dict[str, object] = {"scenario": f"fanout-raw P={p} W={w}", "ratio_mosquitto_over_imgate":
                                       round(r["mosquitto"]["msgs_per_s"] / r["imgate"]["msgs_per_s"], 2)}
            if r["imgate"]["server_cpu_us_per_msg"] and r["mosquitto"]["server_cpu_us_per_msg"]:
                # When the generator is saturated (generator_cpu_pct ~100) msgs/s are equal; CPU per
                # message still tells the brokers apart.
                line["cpu_per_msg_imgate_over_mosquitto"] = round(
                    r["imgate"]["server_cpu_us_per_msg"] / r["mosquitto"]["server_cpu_us_per_msg"], 2)
            print(json.dumps(line), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
