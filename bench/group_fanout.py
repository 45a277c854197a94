"""group-fanout: one message to a group of M members (default 1,000), each connected.

Measures the time from the send until the *last* member has the message (p50/p99/max over K
sends), and, at the same time, the latency of a 1:1 conversation that keeps talking: large
group fan-out must not hold up other conversations.

    python -m bench.group_fanout --members 1000 --messages 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiomqtt

from bench._common import UNLIMITED, imgate_platform, pct, raise_nofile, rss_mb
from bench.connections import prepare_users
from bench.mqttraw import connect_packet, parse_connack
from bridge.transport import NODELAY
from tests.mqttraw import _remaining_length, _s

_TIMEOUT = 120.0


class Member:
    """A raw MQTT client subscribed to its inbox; records when each cid arrived."""

    def __init__(self, uid: str) -> None:
        self.uid = uid
        self.got: dict[str, float] = {}
        self.arrived = asyncio.Event()

    async def run(self, port: int, token: str, ready: asyncio.Semaphore) -> None:
        async with ready:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(connect_packet(f"{self.uid}:d", self.uid, token, keepalive=600))
            await writer.drain()
            if parse_connack(await reader.readexactly(4)) != 0:
                msg = f"{self.uid} refused"
                raise RuntimeError(msg)
            body = (1).to_bytes(2, "big") + _s(f"im/{self.uid}/in/msg") + b"\x01"
            writer.write(b"\x82" + _remaining_length(len(body)) + body)
            await writer.drain()
            await reader.readexactly(5)  # SUBACK
        self.ready = True
        try:
            while True:
                first = (await reader.readexactly(1))[0]
                length, shift = 0, 0
                while True:
                    byte = (await reader.readexactly(1))[0]
                    length |= (byte & 0x7F) << shift
                    shift += 7
                    if not byte & 0x80:
                        break
                packet = await reader.readexactly(length)
                if first >> 4 != 3:
                    continue
                n = int.from_bytes(packet[:2], "big")
                qos = (first >> 1) & 3
                payload = packet[2 + n + (2 if qos else 0):]
                if qos:
                    writer.write(b"\x40\x02" + packet[2 + n:4 + n])
                self.got.setdefault(json.loads(payload)["cid"], time.perf_counter())
                self.arrived.set()
        finally:
            writer.close()


async def _chatter(port: int, token: str, stop: asyncio.Event, latencies: list[float]) -> None:
    """u1 and u2 talk 1:1 (closed loop, one at a time) for as long as the group sends run."""
    async with aiomqtt.Client("127.0.0.1", port, username="u1", password=token, identifier="u1:c",
                              socket_options=NODELAY) as a:
        await a.subscribe("im/u1/in/ack", qos=1)
        i = 0
        while not stop.is_set():
            sent = time.perf_counter()
            await a.publish("im/u1/out/msg", json.dumps({"cid": f"chat-{i}", "to": "u2", "type": "text",
                                                         "text": "meanwhile"}), qos=1)
            async with asyncio.timeout(_TIMEOUT):
                async for m in a.messages:
                    if json.loads(m.payload).get("cid") == f"chat-{i}":
                        break
            latencies.append(time.perf_counter() - sent)
            i += 1


async def _device_tokens(db_path: Path, devices: list[tuple[str, str]]) -> dict[str, str]:
    from imgate.app import build_services
    from services.db import Database
    from services.ids import SystemClock

    async with Database(f"sqlite://{db_path}"):
        users = build_services(SystemClock()).users
        return {f"{uid}:{dev}": (await users.issue_token(uid, dev)).token for uid, dev in devices}


async def bench(members: int, messages: int) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="imgate-bench-group-"))
    tokens = await prepare_users(tmp / "imgate.db", members)
    extra = await _device_tokens(tmp / "imgate.db", [("u0", "owner"), ("u1", "c")])
    env = {**UNLIMITED, "IMGATE_DATABASE__URL": f"sqlite://{tmp / 'imgate.db'}", "IMGATE_LIMITS__MAX_GROUP_MEMBERS": str(members),
           "IMGATE_LIMITS__MAX_PAYLOAD": str(64 * 1024)}
    with imgate_platform(tmp, env) as server:
        port = server.port
        crowd = [Member(f"u{i}") for i in range(members)]
        gate = asyncio.Semaphore(100)
        readers = [asyncio.create_task(m.run(port, tokens[i], gate)) for i, m in enumerate(crowd)]
        async with aiomqtt.Client("127.0.0.1", port, username="u0", password=extra["u0:owner"], identifier="u0:owner",
                                  socket_options=NODELAY, max_inflight_messages=100) as owner:
            await owner.subscribe("im/u0/in/#", qos=1)
            async with asyncio.timeout(_TIMEOUT):
                while not all(getattr(m, "ready", False) for m in crowd):
                    await asyncio.sleep(0.05)  # bounded poll: connects in progress
                await owner.publish("im/u0/out/rpc", json.dumps({"jsonrpc": "2.0", "id": 1, "method": "group.create",
                                                                 "params": {"name": "all", "members": [
                                                                     m.uid for m in crowd]}}), qos=1)
                async for m in owner.messages:
                    body = json.loads(m.payload)
                    if m.topic.matches("im/u0/in/rpc") and body.get("id") == 1:
                        gid = body["result"]["gid"]
                        break
            # The 1:1 chatter runs in its own process, so its latency shows the server, not this
            # process's 1,000 readers.
            chatter = subprocess.Popen([sys.executable, "-m", "bench.group_fanout", "--chat", str(port),  # noqa: ASYNC220
                                        extra["u1:c"]], stdout=subprocess.PIPE, text=True)
            completions: list[float] = []
            rss_peak = 0.0
            for k in range(messages):
                cid = f"g-{k}"
                sent = time.perf_counter()
                await owner.publish("im/u0/out/msg", json.dumps({"cid": cid, "group": gid, "type": "text",
                                                                 "text": f"to all {k}"}), qos=1)
                async with asyncio.timeout(_TIMEOUT):
                    for member in crowd:
                        while cid not in member.got:
                            member.arrived.clear()
                            await member.arrived.wait()
                completions.append(max(m.got[cid] for m in crowd) - sent)
                rss_peak = max(rss_peak, rss_mb(server.pid))
            chatter.send_signal(signal.SIGINT)
            out, _ = await asyncio.to_thread(chatter.communicate, timeout=_TIMEOUT)
            chat = json.loads(out or "[]")
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        delivered = sum(1 for m in crowd for c in m.got if c.startswith("g-"))
    return {
        "scenario": f"group-fanout M={members}", "members": members, "messages": messages,
        "delivered": delivered, "expected": members * messages, "lost": members * messages - delivered,
        "last_member_p50_ms": round(pct(completions, 50), 2),
        "last_member_p99_ms": round(pct(completions, 99), 2),
        "last_member_max_ms": round(max(completions) * 1000, 2),
        "deliveries_per_s": round(members * messages / sum(completions), 1),
        "concurrent_1to1_p50_ms": round(pct(chat, 50), 2) if chat else None,
        "concurrent_1to1_p99_ms": round(pct(chat, 99), 2) if chat else None,
        "concurrent_1to1_messages": len(chat), "server_rss_mb": round(rss_peak, 1),
    }


async def _chat_main(port: int, token: str) -> None:
    stop, latencies = asyncio.Event(), []
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    task = asyncio.create_task(_chatter(port, token, stop, latencies))
    await stop.wait()
    await asyncio.wait_for(task, _TIMEOUT)
    print(json.dumps(latencies), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, nargs="+", default=[1000])
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--chat", nargs=2, metavar=("PORT", "TOKEN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.chat:
        asyncio.run(_chat_main(int(args.chat[0]), args.chat[1]))
        return
    raise_nofile()
    failed = False
    for m in args.members:
        result = asyncio.run(bench(m, args.messages))
        print(json.dumps(result), flush=True)
        failed |= bool(result["lost"])
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
