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

Payload encodings (issue 26, imgate only: ``--encoding json cbor msgpack``, default json): for each
encoding the run's users get device tokens of that encoding (protocol "Encodings"), so the server
reads and writes their payloads in it. A sender encodes what a constrained device would: JSON
``{"cid", "to", "type", "text"}`` as above, or the CBOR / MessagePack map with the protocol's
numbered keys (``{5: cid, 9: to, 6: "text", 7: text}``); receivers and acks are decoded in it too
(key 5 is ``cid``). Each imgate row says its ``encoding``. With several encodings, each (P, W) runs
them one after the other in the order given (a fresh server each), so one sitting compares them;
name them again to alternate them again (``--encoding json cbor msgpack json cbor msgpack``). JSON
is the baseline: its generator code is today's. ejabberd has no such choice (one row per (P, W), as before); rabbitmq (cluster mode)
carries JSON only, so it refuses the others. With ``IMGATE_BENCH_SERVER`` (``bench --compare``),
tokens are made by the other build's code, passed an encoding only when it is not json: an old
build without encodings runs the json rows.

With both servers, a ratio line follows each (P, W) (one per imgate encoding, saying which):
``ratio_imgate_over_ejabberd`` (msgs/s) and ``cpu_per_msg_imgate_over_ejabberd`` (server CPU per
delivered message).

A before_send callback (issue 29, imgate only: ``--callback none allow``, default none): with
``allow``, the server's before_send endpoint is ``bench.callbacks``, a local receiver in a process
of its own that checks each signature and allows every send at once: each send then waits for one
signed HTTP round trip before it is stored, so the ack latency shows what a configured callback
adds when the operator's endpoint costs ~nothing (a real endpoint adds its own time). Those rows
say ``"callback": "allow"``; alternate the two in one sitting (``--callback none allow none allow``).

rabbitmq (cluster mode, issue 14: ``--servers rabbitmq --bridges 1 2``): RabbitMQ as the MQTT front
and ``imgate bridge`` processes consuming the sender shards from it over AMQP, on PostgreSQL (the
``--database-url`` when it is PostgreSQL, else a fresh database made on ``--pg-server`` for the
invocation and dropped at its end). One private RabbitMQ node (``tests.rabbitmq.RabbitNode``, the
auth cache on with config/rabbitmq/rabbitmq.conf's 15 s TTL) serves every run of the invocation;
per (P, W) and bridge count N: ``imgate migrate``, ``imgate api`` (the node's HTTP auth backend and
its management-API client), N ``imgate bridge`` processes on a queue prefix of the run's own
(limits lifted, log level WARNING), a wait until the N bridges are the active consumers of all the
shards between them (each of some), the same pairs and closed loop as imgate's over MQTT on the
node, then everything stopped and the run's queues and exchange deleted. Same fields as imgate's
rows, with ``"server": "rabbitmq"``, ``bridges`` and CPU per delivered message of the bridges (sum),
of RabbitMQ (its process group: beam and its helpers) and of ``imgate api``;
``server_cpu_ms_per_msg`` is their sum (PostgreSQL's CPU is counted on neither side). After a
(P, W)'s runs, one line: ``scaling_N_over_M_bridges`` (msgs/s, each bridge count over the first)
and each count's msgs/s and CPU per message over the embedded imgate's and ejabberd's rows of the
same (P, W), when they ran. This tree's imgate only (not with ``IMGATE_BENCH_SERVER``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cbor2
import msgpack  # type: ignore[import-untyped]

from bench._common import THIS_TREE, UNLIMITED, CpuQuota, imgate_platform, postgres_cpu_s, server_build, tree_cpu_s
from bench.callbacks import receiver_env
from bench.faults.mqtt import Connection, OnPublish
from bench.faults.setup import create_pg_database, drop_pg_database
from bridge.formats import KEYS

if TYPE_CHECKING:
    from tests.cluster import BridgeProcess
    from tests.rabbitmq import RabbitNode

SERVERS = ("imgate", "rabbitmq", "ejabberd")
ENCODINGS = ("json", "cbor", "msgpack")  # protocol "Encodings"
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


async def _prepare_for_server(db_url: str, pairs: int, encoding: str = "json") -> dict[str, str]:
    """The load's users and tokens, made by the code of the server under test (another build's
    schema may differ from this tree's: its own ``_prepare`` runs, in its tree; it is passed an
    encoding only when it is not json, so a build from before encodings still runs json)."""
    python, tree = server_build()
    if tree == THIS_TREE:
        return await _prepare(db_url, pairs, encoding)
    extra = [] if encoding == "json" else [encoding]
    code = ("import asyncio, json, sys; from bench.im_1to1 import _prepare; "
            "print(json.dumps(asyncio.run(_prepare(sys.argv[1], int(sys.argv[2]), *sys.argv[3:]))))")
    proc = await asyncio.create_subprocess_exec(python, "-c", code, db_url, str(pairs), *extra, cwd=tree,
                                                stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        msg = f"preparing the users with {python} in {tree} failed (exit {proc.returncode})"
        if extra:
            msg += f"; does that build have the {encoding} encoding (issue 26)?"
        raise RuntimeError(msg)
    tokens: dict[str, str] = json.loads(out.decode().strip().splitlines()[-1])
    return tokens


async def _prepare(db_url: str, pairs: int, encoding: str = "json") -> dict[str, str]:
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
                issued = (await users.issue_token(uid, "bench") if encoding == "json"
                          else await users.issue_token(uid, "bench", encoding=encoding))
                tokens[uid] = issued.token
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


def _wire(encoding: str) -> tuple[Callable[[bytes], Any], object, object]:
    """(decode, the key of ``cid``, the key of ``error``) of a payload in ``encoding``: the server
    sends CBOR and MessagePack maps with the protocol's numbered keys (``bridge.formats.KEYS``)."""
    if encoding == "cbor":
        return cbor2.loads, KEYS["cid"], KEYS["error"]
    if encoding == "msgpack":
        return partial(msgpack.unpackb, strict_map_key=False), KEYS["cid"], KEYS["error"]
    return json.loads, "cid", "error"


def _sender(encoding: str, conn: Connection, s_uid: str, r_uid: str) -> Callable[[str, int], None]:
    """``send(cid, i)``: publish message ``i`` in ``encoding`` (CBOR and MessagePack with numbered
    keys, as a constrained device sends them)."""
    topic = f"im/{s_uid}/out/msg"
    if encoding == "cbor":
        cid_k, to_k, type_k, text_k = KEYS["cid"], KEYS["to"], KEYS["type"], KEYS["text"]
        return lambda cid, i: conn.publish(topic, cbor2.dumps({cid_k: cid, to_k: r_uid, type_k: "text",
                                                                text_k: f"bench {i}"}), qos=1)
    if encoding == "msgpack":
        cid_k, to_k, type_k, text_k = KEYS["cid"], KEYS["to"], KEYS["type"], KEYS["text"]
        return lambda cid, i: conn.publish(topic, msgpack.packb({cid_k: cid, to_k: r_uid, type_k: "text",
                                                                 text_k: f"bench {i}"}), qos=1)
    # the baseline, unchanged since before encodings
    return lambda cid, i: conn.publish(topic, json.dumps(
        {"cid": cid, "to": r_uid, "type": "text", "text": f"bench {i}"}).encode(), qos=1)


async def _run_pair(port: int, pair: Pair, tokens: dict[str, str], window: int, stop_at: float,
                    encoding: str = "json") -> None:
    s_uid, r_uid = f"s{pair.n}", f"r{pair.n}"
    slots = asyncio.Semaphore(window)
    loads, cid_key, error_key = _wire(encoding)

    def on_delivery(_topic: str, payload: bytes, _qos: int, _dup: bool) -> None:
        cid = loads(payload)[cid_key]
        pair.delivered[cid] = pair.delivered.get(cid, 0) + 1
        pair.deliver_lat.append(time.perf_counter() - pair.sent[cid])

    def on_ack(_topic: str, payload: bytes, _qos: int, _dup: bool) -> None:
        body = loads(payload)
        cid = body.get(cid_key)
        if cid in pair.sent and cid not in pair.acked and error_key not in body:
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
        await _closed_loop(pair, slots, stop_at, _sender(encoding, sender, s_uid, r_uid))
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


async def bench(pairs: int, window: int, seconds: float, database_url: str | None,
                encoding: str = "json", callback: str = "none") -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="imgate-bench-"))
    db_url = database_url or f"sqlite://{tmp / 'imgate.db'}"
    tokens = await _prepare_for_server(db_url, pairs, encoding)
    with ExitStack() as stack:
        hook = stack.enter_context(receiver_env()) if callback == "allow" else {}
        server = stack.enter_context(imgate_platform(tmp, {**UNLIMITED, "IMGATE_DATABASE__URL": db_url, **hook}))
        all_pairs = [Pair(n) for n in range(pairs)]
        cpu0, gen0 = tree_cpu_s(server.pid), time.process_time()
        start = time.perf_counter()
        await asyncio.gather(*(_run_pair(server.port, p, tokens, window, start + seconds, encoding)
                               for p in all_pairs))
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
    row: dict[str, object] = {
        "scenario": f"im-1to1 P={pairs} W={window}", "db": db_url.split(":")[0], "encoding": encoding,
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
    if callback != "none":  # (a row without the key: no callback, as before the option)
        row["callback"] = callback
    return row


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


# -- rabbitmq: cluster mode (RabbitMQ + imgate bridge processes + imgate api, PostgreSQL) ---------

PG_SERVER = "postgres://postgres@127.0.0.1:5432"
_AUTH_CACHE_TTL_MS = 15_000  # config/rabbitmq/rabbitmq.conf's auth_cache.cache_ttl
_SHARDS = 8  # amqp.shards (the default)
_ACTIVE_TIMEOUT = 60.0  # for the bridges to share the shards
_API_SECRET = "imgate-bench-admin-secret"
_STOP_TIMEOUT = 15.0


def _node_class() -> type[RabbitNode]:
    """RabbitNode, with the lines of ``IMGATE_BENCH_RABBIT_CONF`` (``;``-separated) added to its
    configuration and ``IMGATE_BENCH_RABBIT_ERL_ARGS`` to its Erlang VM's arguments: how
    RabbitMQ's settings are compared (docs/scale-out.md)."""
    from tests.rabbitmq import RabbitNode

    extra = "".join(f"{line.strip()}\n" for line in os.environ.get("IMGATE_BENCH_RABBIT_CONF", "").split(";")
                    if line.strip())
    erl_args = os.environ.get("IMGATE_BENCH_RABBIT_ERL_ARGS", "").strip()

    class Node(RabbitNode):
        def _config(self) -> str:
            return super()._config() + extra

        @property
        def env(self) -> dict[str, str]:
            env = super().env
            if erl_args:
                env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] = f"{env.get('RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS', '')} {erl_args}"
            return env

    return Node if extra or erl_args else RabbitNode


def _group_cpu_s(pgid: int) -> float:
    """CPU time so far of the live processes of process group ``pgid`` and of the children they
    reaped (RabbitMQ: the start script, beam.smp, erl_child_setup, inet_gethost...), seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # state, ppid, pgrp, ...
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid:
            total += sum(int(f) for f in fields[11:15]) / tick  # utime, stime, cutime, cstime
    return total


def _rabbit_pids(node: RabbitNode) -> tuple[int, int]:
    """(beam.smp's pid, its process group) of ``node``, from the pid file the node writes."""
    assert node.dir is not None, "not started"
    pid = int((node.dir / "rabbitmq.pid").read_text().strip())
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return pid, int(fields[2])


def _imgate_env(db_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGATE_")}
    env.update({"IMGATE_DATABASE__URL": db_url, "IMGATE_DATA_DIR": str(data_dir), "IMGATE_LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1", **extra})
    return env


async def _migrate(db_url: str, data_dir: Path) -> None:
    """``imgate migrate``, as before a cluster starts."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "imgate", "migrate", cwd=THIS_TREE,
                                                env=_imgate_env(db_url, data_dir), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    if proc.returncode != 0:
        msg = f"imgate migrate exited {proc.returncode}:\n{out.decode(errors='replace')}"
        raise RuntimeError(msg)


@dataclass
class _Api:
    pid: int
    port: int
    output: list[str]


@asynccontextmanager
async def _imgate_api(node: RabbitNode, db_url: str, data_dir: Path, account: tuple[str, str]) -> AsyncIterator[_Api]:
    """``imgate api`` on a free port (it reports the port it bound): the node's HTTP auth backend
    (the bridges log in with ``account``) and its management-API client, until the block ends."""
    from tests.rabbitmq import ADMIN_PASSWORD, ADMIN_USER

    data_dir.mkdir(parents=True, exist_ok=True)
    env = _imgate_env(db_url, data_dir, IMGATE_ADMIN__PORT="0", IMGATE_ADMIN__SECRET=_API_SECRET,
                      IMGATE_BROKER__USERNAME=account[0], IMGATE_BROKER__PASSWORD=account[1],
                      IMGATE_RABBITMQ__MANAGEMENT_URL=node.mgmt_url, IMGATE_RABBITMQ__MANAGEMENT_USERNAME=ADMIN_USER,
                      IMGATE_RABBITMQ__MANAGEMENT_PASSWORD=ADMIN_PASSWORD)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "imgate", "api", cwd=THIS_TREE, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                                                start_new_session=True)
    output: list[str] = []
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def read() -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            text = line.decode(errors="replace")
            output.append(text)
            del output[:-2000]
            if text.startswith("imgate api: http://") and not ready.done():
                ready.set_result(int(text.strip().rsplit(":", 1)[1]))
        if not ready.done():
            ready.set_exception(EOFError())

    reader = asyncio.create_task(read(), name="bench.imgate-api-output")
    try:
        try:
            port = await asyncio.wait_for(ready, 60)
        except (TimeoutError, EOFError):
            msg = f"imgate api did not start (exit {proc.returncode}):\n{''.join(output[-30:])}"
            raise RuntimeError(msg) from None
        yield _Api(proc.pid, port, output)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), _STOP_TIMEOUT)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        with suppress(Exception):
            await asyncio.wait_for(reader, 5)


async def _shards_shared(node: RabbitNode, prefix: str, bridges: list[BridgeProcess], shards: int) -> dict[str, int]:
    """Until the bridges are the active consumers of all the shards between them, each of some
    (RabbitMQ's consumer list, polled, bounded); {holder: shards}."""
    from tests.cluster import active_shards

    holders = {b.holder for b in bridges}
    found: dict[str, int] = {}
    deadline = time.monotonic() + _ACTIVE_TIMEOUT
    while time.monotonic() < deadline:
        found = dict(await active_shards(node, prefix))
        if set(found) == holders and sum(found.values()) == shards:
            return found
        if any(b.proc is None or b.proc.returncode is not None for b in bridges):
            break
        await asyncio.sleep(0.5)
    logs = "".join(line for b in bridges for line in b.output[-15:])
    msg = f"the shards were not shared by {sorted(holders)} within {_ACTIVE_TIMEOUT:.0f}s: {found}\n{logs}"
    raise RuntimeError(msg)


async def _py_spy(pid: int, name: str, seconds: float) -> asyncio.subprocess.Process:
    """py-spy sampling ``pid`` for ``seconds`` into ``{profile}/{name}.txt`` (collapsed stacks,
    ``--profile``; py-spy must be installed, ``pip install py-spy``, and may need root)."""
    out = Path(os.environ["IMGATE_BENCH_PROFILE"]) / f"{name}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    return await asyncio.create_subprocess_exec(
        shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--format", "raw",
        "--nonblocking", "--rate", "200", "-o", str(out), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)


async def bench_rabbitmq(node: RabbitNode, pairs: int, window: int, seconds: float, db_url: str,
                         n_bridges: int, *, shards: int = _SHARDS, bridge_cpu: float | None = None,
                         trees: tuple[str, ...] = ()) -> dict[str, object]:
    """The imgate load on cluster mode: ``n_bridges`` ``imgate bridge`` processes on ``node``
    consuming ``shards`` shards, each under a CPU quota of ``bridge_cpu`` of a core if given;
    with ``trees``, the bridges' ``mqtt.encoding_trees`` (the devices stay on JSON: what the
    trees' copies cost)."""
    from tests.cluster import BRIDGE_PASSWORD, BRIDGE_USER, BridgeProcess, bridge_env, delete_topology

    tmp = Path(tempfile.mkdtemp(prefix="imgate-bench-cluster-"))
    prefix = f"bench{secrets.token_hex(4)}"
    bridges: list[BridgeProcess] = []
    quotas: list[CpuQuota] = []
    all_pairs = [Pair(n) for n in range(pairs)]
    profile = bool(os.environ.get("IMGATE_BENCH_PROFILE"))
    try:
        await _migrate(db_url, tmp / "migrate")
        tokens = await _prepare(db_url, pairs)
        async with _imgate_api(node, db_url, tmp / "api", (BRIDGE_USER, BRIDGE_PASSWORD)) as api:
            await node.aset_auth_base(f"http://127.0.0.1:{api.port}/auth/rabbitmq")
            for i in range(n_bridges):
                env = bridge_env(node, db_url, prefix, tmp / f"bridge{i}", **UNLIMITED, IMGATE_LOG_LEVEL="WARNING",
                                 IMGATE_AMQP__SHARDS=str(shards), IMGATE_MQTT__ENCODING_TREES=json.dumps(list(trees)))
                env.pop("IMGATE_AMQP__MEMBERSHIP_INTERVAL_S", None)  # the tests' 0.3 s: a deployment's default here
                bridges.append(BridgeProcess(env, f"bridge{i}"))
                await bridges[-1].start()
                if bridge_cpu is not None and bridges[-1].proc is not None:
                    quotas.append(CpuQuota(f"{prefix}-bridge{i}", bridge_cpu))
                    quotas[-1].add(bridges[-1].proc.pid)
            shares = await _shards_shared(node, prefix, bridges, shards)
            throttled0 = [q.throttled() for q in quotas]
            beam, pgid = _rabbit_pids(node)
            pids = [b.proc.pid for b in bridges if b.proc is not None]
            lines0, api_lines0 = [len(b.output) for b in bridges], len(api.output)
            bridge0, rabbit0, api0 = [tree_cpu_s(p) for p in pids], _group_cpu_s(pgid), tree_cpu_s(api.pid)
            pg0 = postgres_cpu_s()
            spies = [await _py_spy(pid, f"bridge{i}", seconds) for i, pid in enumerate(pids)] if profile else []
            gen0 = time.process_time()
            start = time.perf_counter()
            await asyncio.gather(*(_run_pair(node.mqtt_port, p, tokens, window, start + seconds) for p in all_pairs))
            elapsed = time.perf_counter() - start
            for spy in spies:
                await spy.wait()
            throttled = [(q.throttled()[0] - t[0], q.throttled()[1] - t[1]) for q, t in zip(quotas, throttled0, strict=True)]
            cpu_used = [tree_cpu_s(p) - c for p, c in zip(pids, bridge0, strict=True)]
            rabbit_cpu, api_cpu = _group_cpu_s(pgid) - rabbit0, tree_cpu_s(api.pid) - api0
            pg_cpu = postgres_cpu_s() - pg0
            gen = time.process_time() - gen0
            bridge_rss, rabbit_rss = sum(_rss_mb(p) for p in pids), _rss_mb(beam)
            bridge_lines = [len(b.output) - n for b, n in zip(bridges, lines0, strict=True)]
            api_lines = len(api.output) - api_lines0
            for b, n in zip(bridges, bridge_lines, strict=True):
                if n:
                    print(f"im-1to1: {b.name} logged {n} line(s); last: {b.output[-1].rstrip()}", file=sys.stderr,
                          flush=True)
            if api_lines:
                print(f"im-1to1: imgate api logged {api_lines} line(s); last: {api.output[-1].rstrip()}",
                      file=sys.stderr, flush=True)
            for b in bridges:
                await b.stop()
    finally:
        for b in bridges:
            with suppress(Exception):
                await b.stop()
        with suppress(Exception):
            await delete_topology(node, prefix, shards)
        for q in quotas:
            q.close()
        shutil.rmtree(tmp, ignore_errors=True)
    sent = sum(len(p.sent) for p in all_pairs)
    delivered = sum(len(p.delivered) for p in all_pairs)
    deliver = [x for p in all_pairs for x in p.deliver_lat]
    ack = [x for p in all_pairs for x in p.ack_lat]

    def per_msg(cpu: float) -> float | None:
        return round(1000 * cpu / delivered, 3) if delivered else None

    return {
        "scenario": f"im-1to1 P={pairs} W={window}", "server": "rabbitmq", "broker": "rabbitmq",
        "encoding_trees": list(trees),
        "bridges": n_bridges, "db": db_url.split(":")[0], "encoding": "json",
        "sent": sent, "delivered": delivered, "lost": sent - delivered,
        "duplicated": sum(c - 1 for p in all_pairs for c in p.delivered.values() if c > 1),
        "msgs_per_s": round(delivered / elapsed, 1),
        "deliver_p50_ms": round(_pct(deliver, 50), 2), "deliver_p99_ms": round(_pct(deliver, 99), 2),
        "ack_p50_ms": round(_pct(ack, 50), 2), "ack_p99_ms": round(_pct(ack, 99), 2),
        # bridges + RabbitMQ + imgate api: the whole server side but PostgreSQL, as imgate's row
        "server_cpu_ms_per_msg": per_msg(sum(cpu_used) + rabbit_cpu + api_cpu),
        "bridge_cpu_ms_per_msg": per_msg(sum(cpu_used)), "rabbit_cpu_ms_per_msg": per_msg(rabbit_cpu),
        "api_cpu_ms_per_msg": per_msg(api_cpu),
        # the machine's PostgreSQL (every postgres process): for sizing, not in server_cpu_ms_per_msg
        "pg_cpu_ms_per_msg": per_msg(pg_cpu),
        # per bridge, % of one core: ~100 means that bridge's event loop caps its shards' rate
        "bridge_cpu_pct": [round(100 * c / elapsed, 1) for c in cpu_used],
        # with --bridge-cpu: each bridge's quota (% of a core) and the share of the run it spent throttled
        **({"bridge_cpu_quota_pct": round(100 * bridge_cpu, 1),
            "bridge_throttled_pct": [round(100 * t / elapsed, 1) for _, t in throttled]} if bridge_cpu else {}),
        "shards": shards,
        "rabbit_cpu_pct": round(100 * rabbit_cpu / elapsed, 1),
        "shards_held": sorted(shares.values(), reverse=True),
        "bridge_rss_mb": round(bridge_rss, 1), "rabbit_rss_mb": round(rabbit_rss, 1),
        "bridge_log_lines": sum(bridge_lines), "api_log_lines": api_lines,
        "generator_cpu_pct": round(100 * gen / elapsed, 1),
    }


def _cluster_line(scenario: str, rows: dict[int, dict[str, object]], imgate: dict[str, object] | None,
                  ejabberd: dict[str, object] | None) -> dict[str, object] | None:
    """Scaling over the first bridge count, and each count over the embedded imgate and ejabberd
    (msgs/s, and CPU per delivered message), for one (P, W)."""
    ok = {n: r for n, r in rows.items() if r.get("msgs_per_s")}
    if not ok:
        return None

    def ratio(a: object, b: object) -> float | None:
        return round(float(a) / float(b), 2) if a and b else None  # type: ignore[arg-type]

    line: dict[str, object] = {"scenario": scenario}
    first = next(iter(ok))
    for n, r in ok.items():
        if n != first:
            line[f"scaling_{n}_over_{first}_bridges"] = ratio(r["msgs_per_s"], ok[first]["msgs_per_s"])
    for peer, name in ((imgate, "imgate"), (ejabberd, "ejabberd")):
        if peer is None or not peer.get("msgs_per_s"):
            continue
        for n, r in ok.items():
            line[f"ratio_rabbitmq_{n}_bridges_over_{name}"] = ratio(r["msgs_per_s"], peer["msgs_per_s"])
            line[f"cpu_per_msg_rabbitmq_{n}_bridges_over_{name}"] = ratio(r.get("server_cpu_ms_per_msg"),
                                                                          peer.get("server_cpu_ms_per_msg"))
        if name == "imgate":
            line["imgate_db"] = peer.get("db")
    return line


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
    line: dict[str, object] = {"scenario": imgate["scenario"], "encoding": imgate.get("encoding", "json"),
                               "ratio_imgate_over_ejabberd":
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
    parser.add_argument("--database-url", help="imgate's database (default: a fresh SQLite file); ejabberd: always "
                                               "SQLite; rabbitmq: this one when PostgreSQL")
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=["imgate"],
                        help="imgate (default), rabbitmq (cluster mode: a private RabbitMQ node and imgate bridge "
                             "processes) and/or ejabberd (a private ejabberd 23.01; installed with apt-get if missing)")
    parser.add_argument("--bridges", type=int, nargs="+", default=[1],
                        help="rabbitmq: the numbers of imgate bridge processes to run, one run each (default 1)")
    parser.add_argument("--shards", type=int, default=_SHARDS,
                        help=f"rabbitmq: amqp.shards, the sender shards the bridges share (default {_SHARDS})")
    parser.add_argument("--bridge-cpu", type=float, metavar="FRACTION",
                        help="rabbitmq: run each bridge under a CPU quota of FRACTION of one core (a cgroup v1 cpu "
                             "group; root): how scaling out is shown on a small machine")
    parser.add_argument("--encoding", nargs="+", choices=ENCODINGS, default=["json"],
                        help="imgate: the devices' payload encoding(s), one run each per (P, W), in this order "
                             "(default json; protocol.md \"Encodings\"); ejabberd: not applicable; rabbitmq: "
                             "json only")
    parser.add_argument("--callback", nargs="+", choices=("none", "allow"), default=["none"],
                        help="imgate: none, or allow: a before_send endpoint (bench.callbacks, a fast local "
                             "receiver in a process of its own) allowing every send; one run each per (P, W) "
                             "and encoding, in this order (alternate them in one sitting: none allow none allow)")
    parser.add_argument("--encoding-trees", nargs="*", choices=("cbor", "msgpack"), default=[],
                        help="rabbitmq: the bridges' mqtt.encoding_trees (the devices stay on JSON: what the "
                             "trees' extra publishes cost)")
    parser.add_argument("--pg-server", default=PG_SERVER,
                        help="rabbitmq without a PostgreSQL --database-url: the server a fresh database is made "
                             f"on for the invocation (default {PG_SERVER})")
    args = parser.parse_args()
    if "rabbitmq" in args.servers:
        if server_build()[1] != THIS_TREE:
            parser.error("--servers rabbitmq runs this tree's imgate only (IMGATE_BENCH_SERVER names another)")
        if any(n < 1 for n in args.bridges):
            parser.error("--bridges: at least 1")
        if set(args.encoding) != {"json"}:
            parser.error("--encoding: rabbitmq (cluster mode) carries JSON only (protocol.md \"Encodings\"); "
                         "run the other encodings with --servers imgate")
    failed = False
    node: RabbitNode | None = None
    cluster_db: str | None = None
    made_db = False
    try:
        for p in args.pairs:
            for w in args.window:
                scenario = f"im-1to1 P={p} W={w}"
                results: dict[str, dict[str, object]] = {}
                imgate_rows: list[dict[str, object]] = []
                cluster: dict[int, dict[str, object]] = {}
                for server in args.servers:
                    if server == "imgate":
                        for encoding in args.encoding:  # alternated in one sitting
                            for callback in args.callback:
                                result = asyncio.run(bench(p, w, args.seconds, args.database_url, encoding,
                                                           callback))
                                failed |= bool(result["lost"] or result["duplicated"])
                                print(json.dumps(result), flush=True)
                                imgate_rows.append(result)
                        results[server] = imgate_rows[0]
                        continue
                    if server == "rabbitmq":
                        for n in args.bridges:
                            try:
                                if node is None:
                                    fresh = _node_class()(auth_cache_ttl_ms=_AUTH_CACHE_TTL_MS)
                                    fresh.start()  # cleans up after itself when it fails
                                    node = fresh
                                if cluster_db is None:
                                    if args.database_url and args.database_url.startswith("postgres"):
                                        cluster_db = args.database_url
                                    else:
                                        cluster_db = asyncio.run(create_pg_database(args.pg_server, "imgate_bench"))
                                        made_db = True
                                result = asyncio.run(bench_rabbitmq(node, p, w, args.seconds, cluster_db, n,
                                                                    shards=args.shards, bridge_cpu=args.bridge_cpu,
                                                                    trees=tuple(args.encoding_trees)))
                            except Exception as exc:  # noqa: BLE001 (report it and go on with the other runs)
                                result = {"scenario": scenario, "server": "rabbitmq", "broker": "rabbitmq",
                                          "bridges": n, "error": f"{type(exc).__name__}: {exc}"}
                            failed |= bool(result.get("error") or result.get("lost") or result.get("duplicated"))
                            print(json.dumps(result), flush=True)
                            cluster[n] = result
                        continue
                    else:
                        try:
                            result = asyncio.run(bench_ejabberd(p, w, args.seconds))
                        except Exception as exc:  # noqa: BLE001 (report it and go on with the other runs)
                            result = {"scenario": scenario, "broker": "ejabberd",
                                      "error": f"{type(exc).__name__}: {exc}"}
                        failed |= bool(result.get("error") or result.get("lost") or result.get("duplicated")
                                       or result.get("errors")
                                       or int(result.get("archived", 0)) < int(result.get("delivered", 0)))  # type: ignore[call-overload]
                    print(json.dumps(result), flush=True)
                    results[server] = result
                if "msgs_per_s" in results.get("ejabberd", {}):
                    for row in imgate_rows:
                        line = _ratio(row, results["ejabberd"])
                        if line is not None:
                            print(json.dumps(line), flush=True)
                if cluster:
                    line = _cluster_line(scenario, cluster, results.get("imgate"), results.get("ejabberd"))
                    if line is not None:
                        print(json.dumps(line), flush=True)
    finally:
        if node is not None:
            node.stop()
        if made_db and cluster_db is not None:
            asyncio.run(drop_pg_database(cluster_db))
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
