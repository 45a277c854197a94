"""group-busy: one busy group conversation (issue 13: "one conversation (one sender, or a
100-member group with 10 senders) sustains at least 1,000 msgs/s with every message durable and
in seq order").

    python -m bench.group_busy --members 100 --senders 10 --window 1 10 --seconds 6
    python -m bench.group_busy --members 100 --senders 1 --window 32 --seconds 6 [--online 1] [--database-url URL]

``imgate run`` (embedded broker, bridge, services, SQLite in WAL with synchronous=FULL; the
abuse limits lifted as for im-1to1) with M users (im-1to1's users: s0, r0, s1, r1, ...). The first
member creates one group of all M with the ``group.create`` RPC. The first S members are the
senders; each connects (``bench.faults.mqtt``, MQTT 3.1.1, QoS 1), subscribes to its
``im/{uid}/in/ack`` and ``im/{uid}/in/msg`` and runs a closed loop with W messages in flight: it
publishes ``{"cid", "group": gid, "type": "text", "text"}`` on ``im/{uid}/out/msg`` and sends
the next one when an ack comes back (the ack is published once the message's transaction has
committed). ``--online N`` more members (default 1, the observer) connect and subscribe to their
``in/msg``; the others stay offline (their copies are stored, nothing is delivered to them).

Checks, after a bounded drain: every online member (senders included) got every sent message
exactly once, with ``seq`` strictly increasing by 1 from its first to its last; each sender's
acks carry increasing ``seq`` in its send order; and every acked message is in the group's
``history`` (read back over the protocol) with the acked ``seq``. Exits 1 if any fails.

Reports one JSON line per (S, W): acked msgs/s over the load, ack latency and the observer's
send -> delivery latency p50/p99, the server's CPU per acked message (its worker process
included), its main process's share of a core (``server_main_cpu_pct`` ~100: the broker's and
bridge's event loop caps the rate) and RSS, and the generator's CPU (``generator_cpu_pct`` ~100:
this process, one core, caps the rate). The generator runs on uvloop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import uvloop

from bench._common import UNLIMITED, cpu_s, imgate_platform, pct, raise_nofile, rss_mb, tree_cpu_s
from bench.faults.mqtt import Connection
from bench.im_1to1 import _prepare_for_server

_STALL = 30.0  # seconds without an ack after which a sender stops sending
_DRAIN = 30.0  # at most this long for the last acks and deliveries after the load
_RPC_TIMEOUT = 30.0


@dataclass
class Load:
    """What the whole run shares: the group, the run's cid prefix and every send time."""

    gid: str = ""
    conv: str = ""
    run_id: str = field(default_factory=lambda: os.urandom(4).hex())
    sent_at: dict[str, float] = field(default_factory=dict)  # cid -> perf_counter at send
    total_sent: int | None = None  # known once every sender has stopped


class Client:
    """One member's connection: records this run's group messages (``in/msg``), and for a sender
    the acks (``in/ack``); answers RPCs (``in/rpc``)."""

    def __init__(self, uid: str, load: Load, *, observer: bool = False) -> None:
        self.uid = uid
        self.load = load
        self.observer = observer
        self.conn: Connection | None = None
        # in/msg
        self.seqs: list[int] = []  # this run's messages, in arrival order
        self.got: dict[str, int] = {}  # cid -> times received
        self.deliver_lat: list[float] = []  # observers only
        self.all_delivered = asyncio.Event()
        # in/ack (senders)
        self.sent: list[str] = []  # cids in send order
        self.acked: dict[str, int] = {}  # cid -> seq
        self.ack_lat: list[float] = []
        self.errors: list[str] = []
        self.answered: set[str] = set()  # cids acked or answered with an error
        self.slots: asyncio.Semaphore | None = None
        self.done_sending = False
        self.all_answered = asyncio.Event()
        # in/rpc
        self._rpc_id = 0
        self._rpcs: dict[int, asyncio.Future[dict[str, Any]]] = {}

    async def open(self, port: int, token: str, *, ack: bool, rpc: bool = False) -> None:
        conn, code, _ = await Connection.open(port, f"{self.uid}:bench", self.uid, token, keepalive=600,
                                              on_publish=self._on_publish)
        if code:
            msg = f"{self.uid}: CONNACK {code}"
            raise RuntimeError(msg)
        self.conn = conn
        kinds = ["msg"] + (["ack"] if ack else []) + (["rpc"] if rpc else [])
        codes = await conn.subscribe([(f"im/{self.uid}/in/{kind}", 1) for kind in kinds])
        if b"\x80" in codes:
            msg = f"{self.uid}: a subscription was refused ({codes.hex()})"
            raise RuntimeError(msg)

    def _on_publish(self, topic: str, payload: bytes, _qos: int, _dup: bool) -> None:
        kind = topic.rsplit("/", 1)[-1]
        body = json.loads(payload)
        if kind == "msg":
            self._on_msg(body)
        elif kind == "ack":
            self._on_ack(body)
        elif kind == "rpc":
            fut = self._rpcs.pop(body.get("id"), None)
            if fut is not None and not fut.done():
                fut.set_result(body)

    def _on_msg(self, body: dict[str, Any]) -> None:
        load = self.load
        cid = body.get("cid")
        if body.get("conv") != load.conv or not isinstance(cid, str) or not cid.startswith(load.run_id):
            return  # e.g. the group's "created" event
        n = self.got.get(cid, 0)
        self.got[cid] = n + 1
        self.seqs.append(body["seq"])
        if self.observer and not n:
            self.deliver_lat.append(time.perf_counter() - load.sent_at[cid])
        if load.total_sent is not None and len(self.got) >= load.total_sent:
            self.all_delivered.set()

    def _on_ack(self, body: dict[str, Any]) -> None:
        cid = body.get("cid")
        if not isinstance(cid, str) or cid in self.answered or self.slots is None:
            return
        sent_at = self.load.sent_at.get(cid)
        if sent_at is None:
            return
        self.answered.add(cid)
        if "error" in body:
            self.errors.append(f"{cid}: {body['error']}")
        else:
            self.acked[cid] = body["seq"]
            self.ack_lat.append(time.perf_counter() - sent_at)
        self.slots.release()
        if self.done_sending and len(self.answered) >= len(self.sent):
            self.all_answered.set()

    async def rpc(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self.conn is not None
        self._rpc_id += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._rpcs[self._rpc_id] = fut
        self.conn.publish(f"im/{self.uid}/out/rpc", json.dumps(
            {"jsonrpc": "2.0", "id": self._rpc_id, "method": method, "params": params}).encode(), qos=1)
        body = await asyncio.wait_for(fut, _RPC_TIMEOUT)
        if "error" in body:
            msg = f"{method}: {body['error']}"
            raise RuntimeError(msg)
        result: dict[str, Any] = body["result"]
        return result

    async def send_loop(self, window: int, stop_at: float) -> None:
        """Until ``stop_at``: take a slot (an ack gives it back), send; then wait (bounded) for
        the answers to everything sent."""
        assert self.conn is not None
        load, conn = self.load, self.conn
        topic = f"im/{self.uid}/out/msg"
        self.slots = slots = asyncio.Semaphore(window)
        i = 0
        while time.perf_counter() < stop_at:
            try:
                async with asyncio.timeout(max(stop_at - time.perf_counter(), 0) + _STALL):
                    await slots.acquire()
            except TimeoutError:
                break  # no ack for _STALL seconds: stop; the checks count what is missing
            cid = f"{load.run_id}-{self.uid}-{i}"  # unique across runs sharing a database
            i += 1
            self.sent.append(cid)
            load.sent_at[cid] = time.perf_counter()
            conn.publish(topic, json.dumps({"cid": cid, "group": load.gid, "type": "text",
                                            "text": f"busy {self.uid} {i}"}).encode(), qos=1)
        self.done_sending = True
        if len(self.answered) >= len(self.sent):
            self.all_answered.set()
        try:
            async with asyncio.timeout(_DRAIN):
                await self.all_answered.wait()
        except TimeoutError:
            pass  # counted below as unacked

    def order_problems(self) -> list[str]:
        """What breaks the order: a delivered seq that is not the previous one + 1; an ack whose
        seq is not above the previous ack's (in this sender's send order)."""
        problems = [f"{self.uid} got seq {b} after {a}" for a, b in pairwise(self.seqs) if b != a + 1]
        acked = [self.acked[cid] for cid in self.sent if cid in self.acked]
        problems += [f"{self.uid}'s ack seq {b} after {a}" for a, b in pairwise(acked) if b <= a]
        return problems


async def _history(client: Client) -> dict[str, int]:
    """This run's messages in the group's history (read over the protocol): cid -> seq."""
    stored: dict[str, int] = {}
    after, more = 0, True
    while more:
        page = await client.rpc("history", {"conv": client.load.conv, "after_seq": after, "limit": 200})
        for m in page["messages"]:
            cid = m.get("cid")
            if isinstance(cid, str) and cid.startswith(client.load.run_id):
                stored[cid] = m["seq"]
            after = max(after, m["seq"])
        more = bool(page["has_more"]) and bool(page["messages"])
    return stored


async def bench(members: int, senders: int, window: int, seconds: float, online: int,
                database_url: str | None) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="imgate-bench-group-busy-"))
    db_url = database_url or f"sqlite://{tmp / 'imgate.db'}"
    # im-1to1's users (made by the code of the server under test, as im-1to1 does): s0, r0, s1, ...
    tokens = await _prepare_for_server(db_url, math.ceil(members / 2))
    uids = [f"{role}{i}" for i in range(math.ceil(members / 2)) for role in ("s", "r")][:members]
    load = Load()
    owner = Client(uids[0], load)
    sending = [owner] + [Client(uid, load) for uid in uids[1:senders]]
    watching = [Client(uid, load, observer=True) for uid in uids[senders:senders + online]]
    online_clients = sending + watching
    try:
        with imgate_platform(tmp, {**UNLIMITED, "IMGATE_DATABASE__URL": db_url}) as server:
            try:
                await owner.open(server.port, tokens[owner.uid], ack=True, rpc=True)
                created = await owner.rpc("group.create", {"name": "busy", "members": uids[1:]})
                load.gid, load.conv = created["gid"], created["conv"]
                if len(created["members"]) != members:
                    msg = f"group.create made a group of {len(created['members'])}, not {members}"
                    raise RuntimeError(msg)
                await asyncio.gather(*(c.open(server.port, tokens[c.uid], ack=True) for c in sending[1:]),
                                     *(c.open(server.port, tokens[c.uid], ack=False) for c in watching))
                cpu0, main0, gen0 = tree_cpu_s(server.pid), cpu_s(server.pid), time.process_time()
                start = time.perf_counter()
                await asyncio.gather(*(c.send_loop(window, start + seconds) for c in sending))
                elapsed = time.perf_counter() - start
                gen = time.process_time() - gen0
                load.total_sent = sum(len(c.sent) for c in sending)
                for c in online_clients:
                    if len(c.got) >= load.total_sent:
                        c.all_delivered.set()
                try:
                    async with asyncio.timeout(_DRAIN):
                        await asyncio.gather(*(c.all_delivered.wait() for c in online_clients))
                except TimeoutError:
                    pass  # counted below as lost
                cpu, main_cpu = tree_cpu_s(server.pid) - cpu0, cpu_s(server.pid) - main0
                busy = time.perf_counter() - start
                rss = rss_mb(server.pid)
                stored = await _history(owner)
                log_lines = server.log_lines[0]
                if log_lines:
                    print(f"group-busy: the server logged {log_lines} line(s); last: {server.tail[-1].rstrip()}",
                          file=sys.stderr, flush=True)
            finally:
                for c in online_clients:
                    if c.conn is not None:
                        c.conn.disconnect()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the SQLite file (a --database-url is left as it is)
    sent = load.total_sent
    acked = {cid: seq for c in sending for cid, seq in c.acked.items()}
    errors = [e for c in sending for e in c.errors]
    observer = watching[0] if watching else sending[0]
    delivered = len(observer.got)
    problems = [p for c in online_clients for p in c.order_problems()]
    not_stored = [cid for cid, seq in acked.items() if stored.get(cid) != seq]
    ack = [x for c in sending for x in c.ack_lat]
    extra: dict[str, object] = {}
    if problems:
        extra["order_problems"] = problems[:5]
    if errors:
        extra["error_sample"] = errors[:5]
    return {
        "scenario": f"group-busy M={members} S={senders} W={window}", "db": db_url.split(":")[0],
        "members": members, "senders": senders, "window": window, "online": len(online_clients),
        "sent": sent, "acked": len(acked), "errors": len(errors),
        "msgs_per_s": round(len(acked) / elapsed, 1),
        "ack_p50_ms": round(pct(ack, 50), 2), "ack_p99_ms": round(pct(ack, 99), 2),
        "deliver_p50_ms": round(pct(observer.deliver_lat, 50), 2),
        "deliver_p99_ms": round(pct(observer.deliver_lat, 99), 2),
        # the observer's (--online 0: the first sender's)
        "delivered": delivered, "lost": sent - delivered,
        # every online member, senders included
        "member_lost": sum(sent - len(c.got) for c in online_clients),
        "duplicated": sum(n - 1 for c in online_clients for n in c.got.values() if n > 1),
        "in_order": not problems,
        # acked and read back from the group's history with the acked seq
        "stored": len(acked) - len(not_stored), "not_stored": len(not_stored),
        "server_rss_mb": round(rss, 1), "server_log_lines": log_lines,
        # the server's CPU (its worker process included) per acked message, until the deliveries drained
        "server_cpu_ms_per_msg": round(1000 * cpu / len(acked), 3) if acked else None,
        # the main process's (broker + bridge, one event loop) share of a core over the same time:
        # ~100 = its loop is saturated and caps the rate (the rest of server_cpu is the worker's)
        "server_main_cpu_pct": round(100 * main_cpu / busy, 1),
        # ~100: the load generator (this process, one core) is saturated and caps the rate
        "generator_cpu_pct": round(100 * gen / elapsed, 1),
        **extra,
    }


def failed(result: dict[str, object]) -> bool:
    return bool(result["lost"] or result["member_lost"] or result["duplicated"] or not result["in_order"]
                or result["errors"] or result["not_stored"] or result["acked"] != result["sent"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100, help="group size M (default 100)")
    parser.add_argument("--senders", type=int, nargs="+", default=[10],
                        help="S: the first S members send, each with its own closed loop (default 10)")
    parser.add_argument("--window", type=int, nargs="+", default=[1, 10], help="W: messages in flight per sender")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--online", type=int, default=1,
                        help="members online besides the senders, each checking what it gets (default 1)")
    parser.add_argument("--database-url", help="imgate's database (default: a fresh SQLite file)")
    args = parser.parse_args(argv)
    if min(args.senders) < 1 or min(args.window) < 1 or args.online < 0 or max(args.senders) + args.online > args.members:
        parser.error("need 1 <= S, 1 <= W, 0 <= --online and S + --online <= M")
    return args


def main() -> None:
    args = parse_args()
    raise_nofile()
    bad = False
    for s in args.senders:
        for w in args.window:
            result = uvloop.run(bench(args.members, s, w, args.seconds, args.online, args.database_url))
            print(json.dumps(result), flush=True)
            bad |= failed(result)
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
