"""im-1to1: end-to-end 1:1 throughput and latency of a running imgate, and of ejabberd as a peer.

P sender/receiver pairs; each sender keeps W messages in flight (a closed loop: a new message
goes out when an ack comes back). Every message goes over the protocol, is stored, delivered to
the receiver and acked to the sender. Reports msgs/s, latency p50/p99 (send -> delivery and
send -> ack) and the server's RSS and CPU per message, and checks that no message was lost or
duplicated.

    python -m bench.im_1to1 --pairs 10 --window 1 --seconds 10
    python -m bench.im_1to1 --servers imgate ejabberd --pairs 10 100 --window 1 10 --seconds 6

imgate (``imgate run``: embedded broker, bridge, services, SQLite in WAL with synchronous=FULL):
the sender publishes ``{"cid", "to", ...}`` on ``im/{uid}/out/msg`` (MQTT 3.1.1, QoS 1, with our
small asyncio client ``bench.faults.mqtt``, the peer of ``bench.xmpp``: aiomqtt cost the generator
most of a core at 600 msgs/s, on the two cores it shares with the server); its *ack* is
the server's reply on ``im/{uid}/in/ack``, published once the message's transaction has committed
(fsynced) and after its ``in/msg`` deliveries were handed to the broker; it does not wait for the
receiver to get the message.

ejabberd (``bench.ejabberd``: a private ejabberd 23.01, mod_mam archiving every chat message in
SQLite, WAL, synchronous=FULL; the same pairs and the same closed loop, with our asyncio XMPP
client ``bench.xmpp``): the sender sends ``<message type='chat' to='r{i}@localhost'>`` with an
XEP-0184 receipt request; the receiver's client, on receiving it, sends the receipt back, and
that receipt is the sender's *ack*. ejabberd has no "stored" ack of its own; the receipt is the
closest peer: by then mod_mam has committed the sender's copy (in the sender's c2s process,
before routing) and the receiver's copy (in the receiver's c2s process, before writing it to the
receiver's socket), each a synchronous INSERT. So ejabberd's ack also means "delivered", and its
ack latency includes a second trip through the server (receiver -> server -> sender); imgate's
ack does not wait for the receiver. After the load the archive is read back: ``archived`` counts
the delivered messages found in their receiver's archive, ``archived_sender`` the sent messages
in their sender's archive; the run fails if a delivered message is not archived.

On PostgreSQL (``--database-url postgres://…``) the load's conversations first get a history of
``_HISTORY`` messages and the database is analyzed, as a running deployment's has both: a new,
never-analyzed database gets prepared statements whose plans were made while the tables were
nearly empty (sequential scans of ``messages``), kept until autovacuum analyzes the tables, which
is within a minute in a deployment but never within a benchmark's seconds.

With both servers, a ratio line follows each (P, W): ``ratio_imgate_over_ejabberd`` (msgs/s) and
``cpu_per_msg_imgate_over_ejabberd`` (server CPU per delivered message).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from bench._common import THIS_TREE, UNLIMITED, imgate_platform, server_build, tree_cpu_s
from bench.faults.mqtt import Connection, OnPublish

SERVERS = ("imgate", "ejabberd")
_STALL = 30.0  # seconds without an ack after which a pair stops sending
_XMPP_PASSWORD = "bench"


@dataclass
class Pair:
    n: int
    sent: dict[str, float] = field(default_factory=dict)
    delivered: dict[str, int] = field(default_factory=dict)
    acked: set[str] = field(default_factory=set)
    deliver_lat: list[float] = field(default_factory=list)
    ack_lat: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # ejabberd: error stanzas the pair's clients got


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _prepare_for_server(db_url: str, pairs: int) -> dict[str, str]:
    """The load's users and tokens, made by the code of the server under test (another build's
    schema may differ from this tree's: its own ``_prepare`` runs, in its tree)."""
    python, tree = server_build()
    if tree == THIS_TREE:
        return await _prepare(db_url, pairs)
    code = ("import asyncio, json, sys; from bench.im_1to1 import _prepare; "
            "print(json.dumps(asyncio.run(_prepare(sys.argv[1], int(sys.argv[2])))))")
    proc = await asyncio.create_subprocess_exec(python, "-c", code, db_url, str(pairs), cwd=tree,
                                                stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        msg = f"preparing the users with {python} in {tree} failed (exit {proc.returncode})"
        raise RuntimeError(msg)
    tokens: dict[str, str] = json.loads(out.decode().strip().splitlines()[-1])
    return tokens


async def _prepare(db_url: str, pairs: int) -> dict[str, str]:
    from imgate.app import build_services
    from services.db import Database
    from services.errors import Conflict
    from services.ids import SystemClock

    tokens: dict[str, str] = {}
    async with Database(db_url):
        users = build_services(SystemClock()).users
        for i in range(pairs):
            for role in ("s", "r"):
                uid = f"{role}{i}"
                with suppress(Conflict):  # a --database-url reused across scenarios
                    await users.add_user(uid)
                tokens[uid] = (await users.issue_token(uid, "bench")).token
        if not db_url.startswith("sqlite"):
            await _history(db_url, pairs)
    return tokens


_HISTORY = 20_000  # messages in the load's conversations before a PostgreSQL run


async def _history(db_url: str, pairs: int) -> None:
    """Give PostgreSQL a history and statistics (see the module's docstring)."""
    from imgate.app import build_services
    from services.ids import SystemClock
    from services.messages.commands import SendCommand
    from services.sql import fetch

    svc = build_services(SystemClock())
    have = (await fetch("SELECT count(*) FROM messages"))[0][0]
    async with svc.messages.committing():
        for start in range(have, _HISTORY, 500):
            await asyncio.gather(*(svc.messages.send(SendCommand(f"s{i % pairs}", f"history-{i}", f"r{i % pairs}", None,
                                                                 "text", "history", None))
                                   for i in range(start, min(start + 500, _HISTORY))))
    await fetch("ANALYZE")


async def _run_pair(port: int, pair: Pair, tokens: dict[str, str], window: int, stop_at: float) -> None:
    s_uid, r_uid = f"s{pair.n}", f"r{pair.n}"
    slots = asyncio.Semaphore(window)

    def on_delivery(_topic: str, payload: bytes, _qos: int, _dup: bool) -> None:
        cid = json.loads(payload)["cid"]
        pair.delivered[cid] = pair.delivered.get(cid, 0) + 1
        pair.deliver_lat.append(time.perf_counter() - pair.sent[cid])

    def on_ack(_topic: str, payload: bytes, _qos: int, _dup: bool) -> None:
        body = json.loads(payload)
        cid = body.get("cid")
        if cid in pair.sent and cid not in pair.acked and "error" not in body:
            pair.acked.add(cid)
            pair.ack_lat.append(time.perf_counter() - pair.sent[cid])
            slots.release()

    receiver = await _open(port, r_uid, tokens[r_uid], on_delivery)
    sender = await _open(port, s_uid, tokens[s_uid], on_ack)
    try:
        for client, uid, what in ((receiver, r_uid, "msg"), (sender, s_uid, "ack")):
            if (await client.subscribe([(f"im/{uid}/in/{what}", 1)]))[:1] == b"\x80":
                msg = f"{uid}: subscription to in/{what} refused"
                raise RuntimeError(msg)
        topic = f"im/{s_uid}/out/msg"
        await _closed_loop(pair, slots, stop_at, lambda cid, i: sender.publish(topic, json.dumps(
            {"cid": cid, "to": r_uid, "type": "text", "text": f"bench {i}"}).encode(), qos=1))
    finally:
        sender.disconnect()
        receiver.disconnect()


async def _closed_loop(pair: Pair, slots: asyncio.Semaphore, stop_at: float, send: Callable[[str, int], None]) -> None:
    """Until ``stop_at``: take a slot (given back by the message's ack), then ``send(cid, i)``;
    then wait (bounded) for every sent message to be acked and delivered."""
    run_id = os.urandom(4).hex()
    i = 0
    while time.perf_counter() < stop_at:
        try:
            await asyncio.wait_for(slots.acquire(), max(stop_at - time.perf_counter(), 0) + _STALL)
        except TimeoutError:
            break  # no ack for _STALL seconds: stop sending; the drain below counts what is missing
        cid = f"{run_id}-p{pair.n}-{i}"  # unique across runs sharing a database
        i += 1
        pair.sent[cid] = time.perf_counter()
        send(cid, i)
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline and (len(pair.acked) < len(pair.sent) or len(pair.delivered) < len(pair.sent)):
        await asyncio.sleep(0.05)  # a bounded drain, polled: not synchronisation


async def _open(port: int, uid: str, token: str, on_publish: OnPublish) -> Connection:
    conn, code, _ = await Connection.open(port, f"{uid}:bench", uid, token, keepalive=600, on_publish=on_publish)
    if code:
        msg = f"{uid}: CONNACK {code}"
        raise RuntimeError(msg)
    return conn


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000 if len(values) > 1 else values[0] * 1000


async def bench(pairs: int, window: int, seconds: float, database_url: str | None) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="imgate-bench-"))
    db_url = database_url or f"sqlite://{tmp / 'imgate.db'}"
    tokens = await _prepare_for_server(db_url, pairs)
    with imgate_platform(tmp, {**UNLIMITED, "IMGATE_DATABASE__URL": db_url}) as server:
        all_pairs = [Pair(n) for n in range(pairs)]
        cpu0, gen0 = tree_cpu_s(server.pid), time.process_time()
        start = time.perf_counter()
        await asyncio.gather(*(_run_pair(server.port, p, tokens, window, start + seconds) for p in all_pairs))
        elapsed = time.perf_counter() - start
        cpu, gen = tree_cpu_s(server.pid) - cpu0, time.process_time() - gen0
        rss = _rss_mb(server.pid)
        log_lines = server.log_lines
        if log_lines[0]:
            print(f"im-1to1: the server logged {log_lines[0]} line(s); last: {server.tail[-1].rstrip()}",
                  file=sys.stderr, flush=True)
    sent = sum(len(p.sent) for p in all_pairs)
    delivered = sum(len(p.delivered) for p in all_pairs)
    dupes = sum(c - 1 for p in all_pairs for c in p.delivered.values() if c > 1)
    lost = sent - delivered
    deliver = [x for p in all_pairs for x in p.deliver_lat]
    ack = [x for p in all_pairs for x in p.ack_lat]
    return {
        "scenario": f"im-1to1 P={pairs} W={window}", "db": db_url.split(":")[0],
        "sent": sent, "delivered": delivered, "lost": lost, "duplicated": dupes,
        "msgs_per_s": round(delivered / elapsed, 1),
        "deliver_p50_ms": round(_pct(deliver, 50), 2), "deliver_p99_ms": round(_pct(deliver, 99), 2),
        "ack_p50_ms": round(_pct(ack, 50), 2), "ack_p99_ms": round(_pct(ack, 99), 2),
        "server_rss_mb": round(rss, 1), "server_log_lines": log_lines[0],
        # The server's CPU per delivered message: the code path's cost, steadier than a rate when
        # the machine's speed drifts (compare builds on this, alternated, in one sitting).
        "server_cpu_ms_per_msg": round(1000 * cpu / delivered, 3) if delivered else None,
        # ~100: the load generator (this process, one core) is saturated and caps the rate.
        "generator_cpu_pct": round(100 * gen / elapsed, 1),
    }


async def _run_pair_xmpp(port: int, domain: str, pair: Pair, window: int, stop_at: float) -> None:
    """The same closed loop as ``_run_pair``, over XMPP: the ack is the receiver's XEP-0184 receipt."""
    from bench.xmpp import Message, XMPPClient

    s_uid, r_uid = f"s{pair.n}", f"r{pair.n}"
    slots = asyncio.Semaphore(window)

    def on_delivery(m: Message) -> None:
        if m.error is not None:
            pair.errors.append(f"receiver: {m.error} for {m.id}")
            return
        if m.body is None or m.id not in pair.sent:
            return
        pair.delivered[m.id] = pair.delivered.get(m.id, 0) + 1
        pair.deliver_lat.append(time.perf_counter() - pair.sent[m.id])
        receiver.send_receipt(m)

    def on_ack(m: Message) -> None:
        if m.error is not None:  # e.g. service-unavailable: the receiver was not available
            pair.errors.append(f"sender: {m.error} for {m.id}")
            return
        cid = m.receipt_for
        if cid in pair.sent and cid not in pair.acked:
            pair.acked.add(cid)
            pair.ack_lat.append(time.perf_counter() - pair.sent[cid])
            slots.release()

    receiver = XMPPClient("127.0.0.1", port, r_uid, domain, _XMPP_PASSWORD, on_message=on_delivery)
    sender = XMPPClient("127.0.0.1", port, s_uid, domain, _XMPP_PASSWORD, on_message=on_ack)
    try:
        # Both available (initial presence reflected back): messages to the bare JID reach r{i}.
        await receiver.connect()
        await sender.connect()
        to = f"{r_uid}@{domain}"
        # body = cid: the archive check finds it in the txt column
        await _closed_loop(pair, slots, stop_at, lambda cid, _i: sender.send_message(to, cid, cid))
    finally:
        await asyncio.gather(sender.close(), receiver.close())


def _archived(database: Path, all_pairs: list[Pair]) -> tuple[int, int, int]:
    """(delivered messages in their receiver's archive, sent messages in their sender's archive,
    extra archive rows for one (user, message)), read from ejabberd's SQLite file (read-only)."""
    con = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows: dict[tuple[str, str], int] = {}
        for user, txt in con.execute("SELECT username, txt FROM archive WHERE kind = 'chat'"):
            rows[(user, txt)] = rows.get((user, txt), 0) + 1
    finally:
        con.close()
    received = sum(1 for p in all_pairs for cid in p.delivered if (f"r{p.n}", cid) in rows)
    sent = sum(1 for p in all_pairs for cid in p.sent if (f"s{p.n}", cid) in rows)
    return received, sent, sum(c - 1 for c in rows.values())


async def bench_ejabberd(pairs: int, window: int, seconds: float) -> dict[str, object]:
    from bench.ejabberd import ejabberd

    users = {f"{role}{i}": _XMPP_PASSWORD for i in range(pairs) for role in ("s", "r")}
    async with ejabberd(users) as server:
        all_pairs = [Pair(n) for n in range(pairs)]
        log_lines0 = _lines(server.log)
        cpu0, gen0 = tree_cpu_s(server.pid), time.process_time()
        start = time.perf_counter()
        await asyncio.gather(*(_run_pair_xmpp(server.port, server.domain, p, window, start + seconds)
                               for p in all_pairs))
        elapsed = time.perf_counter() - start
        cpu, gen = tree_cpu_s(server.pid) - cpu0, time.process_time() - gen0
        rss = _rss_mb(server.pid)
        log_lines = _lines(server.log) - log_lines0
        archived, archived_sender, archive_dupes = _archived(server.database, all_pairs)
        pragmas = server.sqlite_pragmas()
    sent = sum(len(p.sent) for p in all_pairs)
    delivered = sum(len(p.delivered) for p in all_pairs)
    dupes = sum(c - 1 for p in all_pairs for c in p.delivered.values() if c > 1)
    deliver = [x for p in all_pairs for x in p.deliver_lat]
    ack = [x for p in all_pairs for x in p.ack_lat]
    errors = [e for p in all_pairs for e in p.errors]
    extra: dict[str, object] = {"errors": len(errors), "error_sample": errors[:5]} if errors else {}
    return {
        "scenario": f"im-1to1 P={pairs} W={window}", "broker": "ejabberd", "db": "sqlite",
        "sent": sent, "delivered": delivered, "lost": sent - delivered, "duplicated": dupes,
        "msgs_per_s": round(delivered / elapsed, 1),
        "deliver_p50_ms": round(_pct(deliver, 50), 2), "deliver_p99_ms": round(_pct(deliver, 99), 2),
        "ack_p50_ms": round(_pct(ack, 50), 2), "ack_p99_ms": round(_pct(ack, 99), 2),
        "server_rss_mb": round(rss, 1), "server_log_lines": log_lines,
        "server_cpu_ms_per_msg": round(1000 * cpu / delivered, 3) if delivered else None,
        # ~100: the load generator (this process, one core) is saturated and caps the rate.
        "generator_cpu_pct": round(100 * gen / elapsed, 1),
        "archived": archived, "archived_sender": archived_sender, "archive_duplicates": archive_dupes,
        "sqlite_journal_mode": pragmas["journal_mode"], "sqlite_synchronous": pragmas["synchronous"], **extra,
    }


def _lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def _ratio(imgate: dict[str, object], peer: dict[str, object]) -> dict[str, object] | None:
    """imgate over ejabberd for one (P, W), when both ran on SQLite."""
    if imgate.get("db") != "sqlite" or not peer.get("msgs_per_s"):
        return None
    line: dict[str, object] = {"scenario": imgate["scenario"], "ratio_imgate_over_ejabberd":
                               round(float(imgate["msgs_per_s"]) / float(peer["msgs_per_s"]), 2)}  # type: ignore[arg-type]
    if imgate.get("server_cpu_ms_per_msg") and peer.get("server_cpu_ms_per_msg"):
        line["cpu_per_msg_imgate_over_ejabberd"] = round(
            float(imgate["server_cpu_ms_per_msg"]) / float(peer["server_cpu_ms_per_msg"]), 2)  # type: ignore[arg-type]
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, nargs="+", default=[10])
    parser.add_argument("--window", type=int, nargs="+", default=[1])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--database-url", help="imgate's database (default: a fresh SQLite file); ejabberd: always SQLite")
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=["imgate"],
                        help="imgate (default) and/or ejabberd (a private ejabberd 23.01; installed with apt-get if missing)")
    args = parser.parse_args()
    failed = False
    for p in args.pairs:
        for w in args.window:
            results: dict[str, dict[str, object]] = {}
            for server in args.servers:
                if server == "imgate":
                    result = asyncio.run(bench(p, w, args.seconds, args.database_url))
                    failed |= bool(result["lost"] or result["duplicated"])
                else:
                    try:
                        result = asyncio.run(bench_ejabberd(p, w, args.seconds))
                    except Exception as exc:  # noqa: BLE001 (report it and go on with the other runs)
                        result = {"scenario": f"im-1to1 P={p} W={w}", "broker": "ejabberd",
                                  "error": f"{type(exc).__name__}: {exc}"}
                    failed |= bool(result.get("error") or result.get("lost") or result.get("duplicated")
                                   or result.get("errors")
                                   or int(result.get("archived", 0)) < int(result.get("delivered", 0)))  # type: ignore[call-overload]
                print(json.dumps(result), flush=True)
                results[server] = result
            if "imgate" in results and "msgs_per_s" in results.get("ejabberd", {}):
                line = _ratio(results["imgate"], results["ejabberd"])
                if line is not None:
                    print(json.dumps(line), flush=True)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
