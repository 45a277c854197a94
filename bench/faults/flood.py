"""The abuse scenario's flooder, in its own process (so its CPU does not slow the measuring
clients' event loop): one user on several connections, each writing as fast as the server reads
one kind of traffic, reconnecting whenever it is disconnected. Kinds, by connection, round robin:

- ``qos0``: messages to a sink user at QoS 0;
- ``qos1``: messages to a sink user at QoS 1;
- ``rpc``: ``history`` and ``conversations`` RPCs;
- ``search``: ``search`` RPCs and SUBSCRIBE packets (a new filter each time).

It reads (and PUBACKs) everything the server sends, so it is not also a slow consumer. On
SIGINT/SIGTERM it stops and prints one JSON line of counts.

    python -m bench.faults.flood --port P --uid U --tokens DEV=TOKEN ... --sinks S1 S2 ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections import Counter
from contextlib import suppress

from bench.faults.mqtt import Connection, ConnectionLost, MqttError

KINDS = ("qos0", "qos1", "rpc", "search")
_BATCH = 50  # packets written between two drains


async def _flood(kind: str, port: int, uid: str, device: str, token: str, sink: str, stop: asyncio.Event,
                 counts: Counter[str]) -> None:
    n = 0
    out_msg, out_rpc = f"im/{uid}/out/msg", f"im/{uid}/out/rpc"

    def received(topic: str, payload: bytes, qos: int, dup: bool) -> None:
        counts[f"{kind}.received"] += 1
        if topic.endswith("/in/ack") and b"rate_limited" in payload:
            counts[f"{kind}.rate_limited"] += 1
        elif topic.endswith("/in/rpc") and b'"error"' in payload:
            counts[f"{kind}.rpc_errors"] += 1

    while not stop.is_set():
        try:
            conn, code, _ = await Connection.open(port, f"{uid}:{device}", uid, token, clean=True, keepalive=600,
                                                  on_publish=received)
        except (OSError, TimeoutError, MqttError) as exc:
            counts[f"{kind}.connect_failed.{type(exc).__name__}"] += 1
            await asyncio.sleep(0.2)
            continue
        if code != 0:
            counts[f"{kind}.connack_{code}"] += 1
            await asyncio.sleep(0.2)
            continue
        counts[f"{kind}.connects"] += 1
        try:
            if kind != "qos0":
                await conn.subscribe([(f"im/{uid}/in/#", 1)])
            while not stop.is_set() and conn.is_open:
                for _ in range(_BATCH):
                    n += 1
                    if kind in ("qos0", "qos1"):
                        body = {"cid": f"flood-{device}-{time.time_ns()}-{n}", "to": sink, "type": "text",
                                "text": f"spam {n}"}
                        conn.publish(out_msg, json.dumps(body).encode(), qos=0 if kind == "qos0" else 1)
                    elif kind == "rpc":
                        if n % 2:
                            req = {"method": "conversations", "params": {"limit": 200}}
                        else:
                            req = {"method": "history", "params": {"conv": f"d:{min(uid, sink)}:{max(uid, sink)}",
                                                                    "limit": 200}}
                        conn.publish(out_rpc, json.dumps({"jsonrpc": "2.0", "id": n, **req}).encode(), qos=1)
                    elif n % 2:
                        conn.publish(out_rpc, json.dumps({"jsonrpc": "2.0", "id": n, "method": "search",
                                                          "params": {"q": "spam"}}).encode(), qos=1)
                    else:
                        conn.send_subscribe([(f"im/{uid}/in/x{n}", 1)])
                    counts[f"{kind}.sent"] += 1
                await conn.drain()
        except ConnectionLost:
            pass
        finally:
            if conn.is_open:
                conn.abort()
            else:
                counts[f"{kind}.disconnected_by_server"] += 1


async def _main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    counts: Counter[str] = Counter()
    tokens = dict(t.split("=", 1) for t in args.tokens)
    tasks = []
    for i, (device, token) in enumerate(tokens.items()):
        kind = KINDS[i % len(KINDS)]
        tasks.append(asyncio.create_task(_flood(kind, args.port, args.uid, device, token,
                                                args.sinks[i % len(args.sinks)], stop, counts),
                                         name=f"flood.{device}"))
    print("READY", flush=True)
    started = time.perf_counter()
    await stop.wait()
    for task in tasks:
        task.cancel()
    for task in tasks:
        with suppress(asyncio.CancelledError):
            await task
    print(json.dumps({"seconds": round(time.perf_counter() - started, 2), **counts}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--uid", required=True)
    parser.add_argument("--tokens", nargs="+", required=True, metavar="DEVICE=TOKEN")
    parser.add_argument("--sinks", nargs="+", required=True)
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
