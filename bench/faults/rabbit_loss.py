"""rabbit-node-loss: cluster mode on a three-node RabbitMQ cluster of private nodes on this machine
(tests/rabbitmq.py; the shard and presence queues are quorum queues with a member on every node,
and so are the devices' session queues: ``mqtt.durable_queue_type = quorum``), ``imgate api`` as
the nodes' auth backend (its event-exchange watcher given every node), two ``imgate bridge``
processes each given every node, first one each, and good clients (bench/faults/client.py) spread
over the nodes, each given every node's MQTT port as an app is given a list of hosts.

Mid-load, ``kill -9`` of the first node: the one the first bridge, the api's watcher and a third of
the devices are connected to, and the leader of the queues the first bridge declared. The
devices reconnect to the next node and resend what was not acked (same cid), the bridges and the
watcher reconnect to the next node, RabbitMQ elects new leaders on the two nodes left.

Audit (bench/faults/audit.py), plus each sender's order: per sender and conversation, the stored
seqs follow the order the messages were first sent in. Recovery is reported from the kill: to the
first ack, to every sender's first ack (the time to recover), to every device of the lost node
connected again, to every bridge consuming again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import secrets
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.faults.audit import Row, Store, audit, load_store
from bench.faults.client import Fleet, GoodClient, drain, repair_all
from bench.faults.setup import PrivatePostgres, create_pg_database, drop_pg_database, ensure_schema, pg_wants_fresh
from bench.faults.world import ChatPlan, ChatWorld, ack_p, delivery_p, run_id, wait_until

NODES = 3
_CONSUMING = re.compile(r"bridge consuming \d+ shards")


@dataclass
class RabbitLossConfig:
    plan: ChatPlan = field(default_factory=lambda: ChatPlan(10, 10, 3))
    seconds: float = 20.0  # load duration
    kill_at: float = 0.4  # fraction of the load at which the node is killed
    bridges: int = 2
    shards: int = 8
    database_url: str | None = None  # a PostgreSQL server (a fresh database there); None: a private one
    env: dict[str, str] = field(default_factory=dict)  # extra IMGATE_* settings of the bridges
    recover_s: float = 60.0  # at most this long for the devices and the bridges to come back
    drain_s: float = 90.0


@dataclass
class _Cluster:
    nodes: list[Any]  # tests.rabbitmq.RabbitNode
    api: Any  # imgate.app.App
    bridges: list[Any]  # tests.cluster.BridgeProcess
    db_url: str
    prefix: str


def _rotated(items: list[Any], first: int) -> list[Any]:
    return items[first:] + items[:first]


async def _queues(node: Any, prefix: str) -> dict[str, tuple[str, int, str]]:
    """name -> (type, members, leader node) of the scenario's queues and the devices' session queues."""
    out = await node.actl("list_queues", "-q", "--no-table-headers", "name", "type", "members", "leader")
    found: dict[str, tuple[str, int, str]] = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and (parts[0].startswith((f"{prefix}.", "mqtt-subscription-"))):
            found[parts[0]] = (parts[1], parts[2].count("@"), parts[3].strip())
    return found


@contextlib.asynccontextmanager
async def _database(server_url: str | None) -> AsyncIterator[str]:
    """A fresh PostgreSQL database (cluster mode needs PostgreSQL): on ``server_url`` (or the
    database it names), else on a private PostgreSQL of our own."""
    async with contextlib.AsyncExitStack() as stack:
        if server_url is None:
            server_url = (await stack.enter_async_context(PrivatePostgres())).url
        if not pg_wants_fresh(server_url):
            yield server_url
            return
        url = await create_pg_database(server_url, "imgate_rabbit_loss")
        try:
            yield url
        finally:
            await drop_pg_database(url)


@contextlib.asynccontextmanager
async def _cluster(cfg: RabbitLossConfig, tmp: Path) -> AsyncIterator[_Cluster]:
    """Three RabbitMQ nodes clustered (started in parallel), the api in this process, the bridges."""
    from config.settings import load_settings
    from imgate.app import App
    from tests.cluster import BRIDGE_PASSWORD, BRIDGE_USER, BridgeProcess, bridge_env
    from tests.rabbitmq import ADMIN_PASSWORD, ADMIN_USER, RabbitNode

    nodes = RabbitNode.cluster(NODES, mqtt_queue_type="quorum")  # formed as they boot
    started = await asyncio.gather(*(asyncio.to_thread(n.start) for n in nodes), return_exceptions=True)
    try:
        failed = [r for r in started if isinstance(r, BaseException)]
        if failed:
            raise _NotFormed(str(failed[0])) from failed[0]
        status = await nodes[0].actl("cluster_status")
        if not all(n.nodename in status for n in nodes):
            msg = f"the nodes did not form one cluster: {status}"
            raise _NotFormed(msg)
        async with _database(cfg.database_url) as db_url:
            await asyncio.to_thread(ensure_schema, db_url, tmp)
            urls = [f"amqp://127.0.0.1:{n.amqp_port}/" for n in nodes]
            settings = load_settings(None, {
                "data_dir": tmp / "api", "database": {"url": db_url},
                "admin": {"port": 0, "secret": secrets.token_hex(16)},
                "broker": {"username": BRIDGE_USER, "password": BRIDGE_PASSWORD},
                # The event-exchange watcher on the node that is killed first, then the others.
                "amqp": {"url": ",".join(urls)},
                "rabbitmq": {"management_url": nodes[-1].mgmt_url, "management_username": ADMIN_USER,
                             "management_password": ADMIN_PASSWORD},
            })
            prefix = f"t{secrets.token_hex(4)}"
            async with App(settings, role="api") as api:
                assert api.admin is not None
                for node in nodes:
                    await node.aset_auth_base(f"http://127.0.0.1:{api.admin.port}/auth/rabbitmq")
                bridges = [BridgeProcess(bridge_env(nodes[i % NODES], db_url, prefix, tmp / f"bridge{i}", **{
                    "IMGATE_AMQP__URL": ",".join(_rotated(urls, i % NODES)),
                    "IMGATE_AMQP__SHARDS": str(cfg.shards), **cfg.env}),
                    f"bridge{i}") for i in range(cfg.bridges)]
                try:
                    for b in bridges:  # in turn: the first declares the queues (their leaders on its node)
                        await b.start()
                    yield _Cluster(nodes, api, bridges, db_url, prefix)
                finally:
                    await asyncio.gather(*(b.stop() for b in bridges), return_exceptions=True)
    finally:
        for node in nodes:  # throwaway nodes: killed, not stopped (seconds faster), then cleaned up
            if node.running:
                node.kill()
        await asyncio.gather(*(asyncio.to_thread(n.stop) for n in nodes), return_exceptions=True)


async def _shared(cluster: _Cluster, node: Any, shards: int, timeout: float) -> dict[str, int]:
    """Until every live bridge is the active consumer of some shards and all are taken (polled)."""
    from tests.cluster import active_shards

    holders = {b.holder for b in cluster.bridges}
    found: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = dict(await active_shards(node, cluster.prefix))
        if set(found) == holders and sum(found.values()) == shards:
            return found
        await asyncio.sleep(0.2)  # polling RabbitMQ's consumer list for a condition, bounded above
    msg = f"the shards were not shared by {sorted(holders)}: {found}"
    raise RuntimeError(msg)


async def _probe(node: Any, uids: list[str]) -> dict[str, str]:
    """Publish to each uid's ``in/probe`` (a topic the good client ignores) on a fresh connection
    to ``node`` with publisher confirms: does a new channel reach the stuck session queues?"""
    import aio_pika

    from tests.rabbitmq import ADMIN_PASSWORD, ADMIN_USER

    found: dict[str, str] = {}
    connection = await aio_pika.connect(f"amqp://{ADMIN_USER}:{ADMIN_PASSWORD}@127.0.0.1:{node.amqp_port}/")
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("amq.topic")
        for uid in uids:
            try:
                await asyncio.wait_for(exchange.publish(aio_pika.Message(b"{}"), f"im.{uid}.in.probe"), 5)
                found[uid] = "confirmed"
            except Exception as exc:  # noqa: BLE001 - what happened is the finding
                found[uid] = repr(exc)[:200]
    return found


def out_of_order(store: Store, sent: set[tuple[str, str]]) -> int:
    """Per sender and conversation, the stored messages in seq order whose send number (the
    client's cid ends with it) is lower than the one before: each sender's order broken."""
    rows: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for r in store.rows:
        if (r.sender, r.cid) in sent:
            rows[(r.sender, r.conv)].append((r.seq, int(r.cid.rsplit("-", 1)[1])))
    bad = 0
    for found in rows.values():
        found.sort()
        bad += sum(1 for (_, a), (_, b) in itertools.pairwise(found) if b < a)
    return bad


class _NotFormed(Exception):
    """The three nodes did not come up as one working cluster, before any load: a node's
    listeners did not open, or its MQTT refused every connection with CONNACK 3 (RabbitMQ 3.10's
    MQTT client-id tracking without its Ra cluster), as happens now and then when three nodes
    boot together on two cores. Not what the scenario measures: it starts again on fresh nodes."""


FORMING_ATTEMPTS = 2


async def run_rabbit_node_loss(cfg: RabbitLossConfig) -> Row:
    from tests.rabbitmq import installed

    row = Row("rabbit-node-loss")
    if not installed():
        row.notes.append("skipped: RabbitMQ is not installed")
        return row
    for attempt in range(1, FORMING_ATTEMPTS + 1):
        row = Row("rabbit-node-loss")
        run = run_id()
        tmp = Path(tempfile.mkdtemp(prefix="imgate-rabbit-loss-"))
        try:
            async with _cluster(cfg, tmp) as cluster:
                await _load_and_kill(cfg, cluster, run, row)
            return row
        except _NotFormed as e:
            if attempt == FORMING_ATTEMPTS:
                raise
            print(f"rabbit-node-loss: the cluster did not form ({str(e).splitlines()[0]}); fresh nodes", flush=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    raise AssertionError("unreachable")


async def _load_and_kill(cfg: RabbitLossConfig, cluster: _Cluster, run: str, row: Row) -> None:
    victim, survivor = cluster.nodes[0], cluster.nodes[1]
    await _shared(cluster, survivor, cfg.shards, cfg.recover_s)
    users = cluster.api.services.users
    tokens: dict[str, str] = {}
    for uid in ChatWorld.uids(run, cfg.plan):
        await users.add_user(uid)
        tokens[uid] = (await users.issue_token(uid, "d")).token
    async with Fleet(victim.mqtt_port, run=run, ports=[n.mqtt_port for n in cluster.nodes]) as fleet:
        world = ChatWorld(fleet, cfg.plan, run)
        try:
            await world.start(tokens)  # before any load or kill: the cluster as it formed
        except TimeoutError as e:
            raise _NotFormed(str(e)) from e
        clients = list(world.clients.values())
        queues = await _queues(survivor, cluster.prefix)
        start = time.perf_counter()
        tasks = world.load(start + cfg.seconds)
        await asyncio.sleep(cfg.seconds * cfg.kill_at)  # the load runs meanwhile
        on_victim = [c for c in clients if c.nodes and c.nodes[-1] == victim.mqtt_port]
        connects = {c.uid: c.connects for c in on_victim}
        acked_before = sum(1 for s in fleet.sent.values() if s.id is not None)
        unacked_at_kill = sum(1 for s in fleet.sent.values() if s.id is None)
        lines = [len(b.output) for b in cluster.bridges]
        t_kill = time.perf_counter()
        await asyncio.to_thread(victim.kill)

        def back(c: GoodClient) -> bool:
            return c.connected.is_set() and c.connects > connects[c.uid]

        async def devices_back() -> float:
            if not await wait_until(lambda: all(back(c) for c in on_victim), cfg.recover_s):
                msg = f"{sum(not back(c) for c in on_victim)} device(s) of the lost node not back"
                raise RuntimeError(msg)
            return time.perf_counter() - t_kill

        async def bridges_back() -> float:
            def consuming(i: int) -> bool:  # a bridge that lost its node says so once it consumes again
                return any(_CONSUMING.search(x) for x in cluster.bridges[i].output[lines[i]:])

            moved = [i for i, b in enumerate(cluster.bridges) if i % NODES == 0]
            if not await wait_until(lambda: all(consuming(i) for i in moved), cfg.recover_s):
                logs = "".join(x for i in moved for x in cluster.bridges[i].output[lines[i]:][-30:])
                msg = f"a bridge of the lost node did not consume again:\n{logs}"
                raise RuntimeError(msg)
            await _shared(cluster, survivor, cfg.shards, cfg.recover_s)  # and all the shards are taken
            return time.perf_counter() - t_kill

        devices_s, bridges_s = await asyncio.gather(devices_back(), bridges_back())
        await asyncio.gather(*tasks)
        left = await drain(clients, cfg.drain_s)
        if left:  # what RabbitMQ says of the stuck devices' session queues, while they are stuck
            names = [f"mqtt-subscription-{c.uid}:{c.device}qos1" for c in clients if c.pending][:5]
            found = []
            for cmd in (["list_queues", "name", "messages", "messages_unacknowledged", "consumers", "leader", "online"],
                        ["list_consumers", "queue_name", "channel_pid", "ack_required", "prefetch_count", "active"]):
                out = await survivor.actl(*cmd, "-q", "--no-table-headers")
                found += [f"{cmd[0]}: {x}" for x in out.splitlines() if any(n in x for n in names)]
            row.extra["stuck_queues"] = found
        watcher = cluster.api.connection_watch
        watcher_back = watcher is not None and await wait_until(watcher.ready.is_set, cfg.recover_s)
        failures = await repair_all(clients)
        store = await load_store(cluster.db_url)
        audit(row, store, list(fleet.sent.values()), clients)
        sent = {(s.sender, s.cid) for s in fleet.sent.values()}
        disorder = out_of_order(store, sent)
        after = [(s.sender, s.acked_at) for s in fleet.sent.values() if s.acked_at is not None and s.acked_at > t_kill]
        first_ack = min((at for _, at in after), default=None)
        per_sender: dict[str, float] = {}
        for sender, at in after:
            per_sender[sender] = min(per_sender.get(sender, at), at)
        # Every sender with something to be acked after the kill must have been, for the cluster to have recovered.
        senders = {s.sender for s in fleet.sent.values() if s.acked_at is None or s.acked_at > t_kill}
        recover = max(per_sender.values()) - t_kill if per_sender and set(per_sender) >= senders else None
        moved = [c for c in on_victim if c.nodes[-1] != victim.mqtt_port]
        leaders = sum(1 for _, _, leader in queues.values() if leader == victim.nodename)
        row.p99_ms = delivery_p(fleet, 99)
        row.extra.update({
            "nodes": NODES, "bridges": cfg.bridges, "devices": len(clients), "devices_on_lost_node": len(on_victim),
            "pairs": cfg.plan.pairs, "group_members": cfg.plan.members, "group_senders": cfg.plan.group_senders,
            "seconds": cfg.seconds, "killed_at_s": round(t_kill - start, 2),
            "acked_before_kill": acked_before, "unacked_at_kill": unacked_at_kill,
            "out_of_order": disorder,
            "first_ack_after_kill_ms": round((first_ack - t_kill) * 1000, 1) if first_ack else None,
            "recover_s": round(recover, 2) if recover is not None else None,
            "devices_back_s": round(devices_s, 2), "bridges_back_s": round(bridges_s, 2),
            "queues": {name: f"{kind}/{members}" for name, (kind, members, _) in sorted(queues.items())},
            "leaders_on_lost_node": leaders,
            "deliver_p50_ms": round(delivery_p(fleet, 50), 1), "ack_p99_ms": round(ack_p(fleet, 99), 1),
        })
        row.notes += [
            (f"killed 1 of {NODES} nodes at {t_kill - start:.1f} s: {len(on_victim)} of {len(clients)} devices, "
             f"{sum(1 for i in range(cfg.bridges) if i % NODES == 0)} of {cfg.bridges} bridges and "
             f"{leaders} of {len(queues)} queue leaders on it"),
            f"acked before the kill: {acked_before}, unacked at it: {unacked_at_kill}",
            (f"recovered (every sender acked again) {row.extra['recover_s']} s after the kill; first ack "
             f"{row.extra['first_ack_after_kill_ms']} ms; devices back {devices_s:.1f} s, bridges {bridges_s:.1f} s"),
            f"out of order: {disorder}",
        ]
        _checks(row, cfg, queues, moved, on_victim, disorder, recover, left, failures, watcher_back)
        row.extra["bridge_errors"] = {b.name: sum(" ERROR " in x for x in b.output) for b in cluster.bridges}
        if not row.ok:  # what a diagnosis starts from
            # The devices the bridges still fail to publish to at the end: can a fresh channel?
            late = [x for b in cluster.bridges for x in b.output[-200:] if "delivery lost: im/" in x]
            uids = sorted({m.group(1) for x in late[-20:] if (m := re.search(r"delivery lost: im/([\w-]+)/in/", x))})
            if uids:
                row.extra["fresh_channel_probe"] = await _probe(survivor, uids[:5])
            stuck = [c for c in clients if c.pending]
            row.extra["stuck_clients"] = {c.uid: {"pending": len(c.pending), "ports": c.nodes, "connects": c.connects,
                                                  "on_lost_node": c in on_victim} for c in stuck[:10]}
            row.extra["bridge_warnings"] = [f"{b.name}: {x.strip()[:300]}" for b in cluster.bridges
                                            for x in b.output if " WARNING " in x or " ERROR " in x][-30:]


def _checks(row: Row, cfg: RabbitLossConfig, queues: dict[str, tuple[str, int, str]], moved: list[GoodClient],
            on_victim: list[GoodClient], disorder: int, recover: float | None, left: int, failures: list[str],
            watcher_back: bool) -> None:
    not_replicated = [n for n, (kind, members, _) in queues.items() if kind != "quorum" or members != NODES]
    sessions = sum(1 for n in queues if n.startswith("mqtt-subscription-"))
    if not_replicated:
        row.fail(f"queues not quorum on all {NODES} nodes: {not_replicated[:3]}")
    if sessions < len(on_victim):
        row.fail(f"only {sessions} device session queue(s) listed")
    if len(moved) != len(on_victim) or not on_victim:
        row.fail(f"{len(on_victim) - len(moved)} of {len(on_victim)} device(s) of the lost node not moved")
    if disorder:
        row.fail(f"{disorder} message(s) stored out of their sender's order")
    if recover is None:
        row.fail("not every sender got an ack after the kill")
    if left:
        row.fail(f"{left} message(s) still unacked {cfg.drain_s:.0f} s after the load")
    if failures:
        row.fail(f"repair failed for {len(failures)} client(s): {failures[0]}")
    if not watcher_back:
        row.fail("imgate api's event-exchange watcher did not reconnect")
