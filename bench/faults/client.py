"""The good client of docs/protocol.md, used by every fault scenario.

A :class:`GoodClient` is one device of one user. It

- keeps its connection up: reconnects with backoff after any loss, re-subscribes
  ``{p}/{uid}/in/#`` when the session was not resumed (``session present`` = 0);
- sends a message as a QoS 1 PUBLISH of ``{"cid", "to"|"group", "type": "text", "text"}`` on
  ``{p}/{uid}/out/msg`` and keeps it until an ack with an ``id`` arrives on ``{p}/{uid}/in/ack``;
  an unacked message is sent again with the same ``cid`` after every reconnect and after
  ``resend_after`` seconds without an ack; an ack with ``error.code`` ``rate_limited`` is retried
  after its ``retry_after_ms``, ``internal``/``unavailable`` after a backoff; any other error is
  final (the message is *rejected*);
- de-duplicates received messages by ``id`` (an MQTT redelivery of a known id is counted, not
  delivered again) and notices real duplicates: a second ``id`` for a ``(conv, seq)`` it already
  has, or for a ``(from, cid)`` it already has;
- tracks, per conversation, the seqs it has; :meth:`GoodClient.repair` asks ``conversations`` for
  each ``last_seq`` and fetches what is missing with ``history`` (``after_seq`` = the highest
  contiguous seq), after each reconnect and when a scenario ends.

A :class:`Fleet` owns the clients of a scenario: one timer task for every client's resends and
keep-alive pings (not a task per client), the registry of every message sent (by ``cid``), and
the send -> delivery latencies.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Self

from bench.faults.mqtt import Connection, ConnectionLost, MqttError

RETRYABLE_ACK = ("internal", "unavailable")
RETRYABLE_RPC = (-32603, 429, 503)
_TICK = 0.05


@dataclass(eq=False)
class Sent:
    """One client message (one cid), with what happened to it."""

    cid: str
    sender: str
    payload: bytes
    first: float  # perf_counter of the first attempt
    attempts: int = 0
    next_try: float = float("inf")  # monotonic; inf = only on (re)connect
    errors: Counter[str] = field(default_factory=Counter)
    id: str | None = None  # from the first ack with an id
    conv: str | None = None
    seq: int | None = None
    acked_at: float | None = None  # perf_counter
    rejected: str | None = None  # a final error code
    reacks: int = 0  # further acks with the same id (retries answered from the store)
    ack_conflicts: int = 0  # further acks with another id or seq: a real duplicate


class RpcError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        data = error.get("data")
        if not isinstance(data, dict):
            data = {}
        self.app_code = data.get("code")
        self.retry_after_ms = data.get("retry_after_ms")


class Fleet:
    """The clients of one scenario against one server port. ``async with Fleet(port) as fleet``."""

    def __init__(self, port: int, *, run: str | None = None, prefix: str = "im", resend_after: float = 10.0,
                 connect_concurrency: int = 100, reconnect_min: float = 0.1, reconnect_max: float = 2.0,
                 ports: list[int] | None = None) -> None:
        """``ports``: the MQTT ports of several nodes of one cluster (``port`` is then unused): the
        n-th client connects to ``ports[n % len(ports)]`` (retrying it until a first connection:
        a refusal while the nodes are busy must not move it off its node before the fault) and,
        once connected, after a lost connection or a failure to the next one, as an app given a
        list of hosts does."""
        self.port = port
        self.ports = ports or [port]
        self.run = run or os.urandom(3).hex()
        self.prefix = prefix
        self.resend_after = resend_after
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.connect_gate = asyncio.Semaphore(connect_concurrency)
        self.clients: list[GoodClient] = []
        self.sent: dict[str, Sent] = {}
        # (first send perf_counter, send -> delivery seconds, recipient uid, sender uid) of live
        # deliveries to members other than the sender.
        self.deliveries: list[tuple[float, float, str, str]] = []
        self.on_delivery: Callable[[GoodClient, dict[str, Any], str], None] | None = None
        # Called for PUBLISHes outside the client's own {p}/{uid}/in/ (e.g. presence).
        self.on_other: Callable[[GoodClient, str, dict[str, Any]], None] | None = None
        self._tick: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._tick = asyncio.create_task(self._timer(), name="faults.fleet.timer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_all()
        if self._tick is not None:
            self._tick.cancel()
            with suppress(asyncio.CancelledError):
                await self._tick

    def client(self, uid: str, token: str, device: str = "d", **kwargs: Any) -> GoodClient:
        c = GoodClient(self, uid, token, device, **kwargs)
        self.clients.append(c)
        return c

    async def start_all(self, clients: list[GoodClient] | None = None, timeout: float = 120.0) -> None:
        """Start clients and wait until every one is connected and subscribed.

        Raises:
            TimeoutError: some did not connect in time (the message says how many).
        """
        group = clients if clients is not None else self.clients
        for c in group:
            c.start()
        await wait_connected(group, timeout)

    async def stop_all(self) -> None:
        await asyncio.gather(*(c.stop() for c in self.clients), return_exceptions=True)

    async def _timer(self) -> None:
        last_ping = time.monotonic()
        while True:
            await asyncio.sleep(_TICK)
            now = time.monotonic()
            for c in self.clients:
                if c.pending and c.conn is not None:
                    c.resend_due(now)
            if now - last_ping >= 1.0:
                last_ping = now
                for c in self.clients:
                    c.ping_if_idle(now)


async def wait_connected(clients: list[GoodClient], timeout: float) -> None:
    """Wait (bounded) until every client is connected and subscribed.

    Raises:
        TimeoutError: with how many are still not connected and their failure kinds.
    """
    try:
        async with asyncio.timeout(timeout):
            for c in clients:
                await c.connected.wait()
    except TimeoutError:
        missing = [c for c in clients if not c.connected.is_set()]
        kinds: Counter[str] = Counter()
        for c in missing:
            kinds.update(c.connect_failures)
        msg = f"{len(missing)} of {len(clients)} clients not connected after {timeout:.0f}s; failures: {dict(kinds)}"
        raise TimeoutError(msg) from None


class GoodClient:
    """One device of one user behaving as docs/protocol.md asks of a client (see the module)."""

    def __init__(self, fleet: Fleet, uid: str, token: str, device: str = "d", *, clean: bool = False,
                 keepalive: int = 60, repair_on_reconnect: bool = True, extra_filters: tuple[str, ...] = ()) -> None:
        self.fleet = fleet
        self.uid = uid
        self.token = token
        self.device = device
        self.clean = clean
        self.keepalive = keepalive
        self.repair_on_reconnect = repair_on_reconnect
        self.filters = [(f"{fleet.prefix}/{uid}/in/#", 1), *((f, 1) for f in extra_filters)]
        self._topics = {k: f"{fleet.prefix}/{uid}/in/{k}" for k in ("msg", "ack", "rpc", "event")}
        self._out_msg = f"{fleet.prefix}/{uid}/out/msg"
        self._node = len(fleet.clients)  # index in fleet.ports of the node tried next
        self.nodes: list[int] = []  # the port of each successful connect, in order
        self.conn: Connection | None = None
        self.connected = asyncio.Event()
        self.pending: dict[str, Sent] = {}
        self.acked: dict[str, Sent] = {}
        self.rejected: dict[str, Sent] = {}
        self.room = asyncio.Event()  # set when pending shrinks (a load generator waits on it)
        self.room.set()
        # What this client has, per conversation: seq -> id; every id -> (conv, seq).
        self.convs: dict[str, dict[int, str]] = {}
        self.ids: dict[str, tuple[str, int]] = {}
        self._hwm: dict[str, int] = {}
        self._by_cid: dict[tuple[str, str], str] = {}
        self.last_seq: dict[str, int] = {}  # from the last conversations RPC
        self.live = 0  # distinct ids received on in/msg or in/event
        self.repaired = 0  # distinct ids first seen in a history page
        self.redelivered = 0  # in/msg copies of an id already delivered (MQTT redelivery; not a duplicate)
        self.dup_seq = 0  # a second id for a (conv, seq)
        self.dup_cid = 0  # a second id for a (from, cid)
        self.crossed = 0  # messages of a conversation this user is not in, or on another user's topic
        self.ack_errors: Counter[str] = Counter()
        self.rpc_errors: Counter[str] = Counter()
        self.connect_failures: Counter[str] = Counter()
        self.connect_latency: list[float] = []  # seconds, per successful connect (TCP + CONNACK)
        self.session_present: list[bool] = []  # per successful connect
        self.subscribe_refused = 0
        self.connects = 0
        self._n = itertools.count()
        self._rpc_ids = itertools.count(1)
        self._rpcs: dict[int, asyncio.Future[Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self._repair_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._hold = asyncio.Event()  # set: do not reconnect until released
        self._released = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"faults.client.{self.uid}:{self.device}")

    async def stop(self) -> None:
        """Disconnect cleanly and stop reconnecting."""
        self._stopping = True
        self._released.set()
        if self.conn is not None:
            self.conn.disconnect()
        for task in (self._repair_task, self._task):
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError, Exception):
                    await task
        self._task = None

    def drop(self, *, hold: bool = False) -> None:
        """Lose the connection abruptly (TCP RST, no DISCONNECT). With ``hold``, stay offline
        until :meth:`release`."""
        if hold:
            self._hold.set()
            self._released.clear()
        if self.conn is not None:
            self.conn.abort()

    def release(self) -> None:
        self._hold.clear()
        self._released.set()

    async def _run(self) -> None:
        fleet = self.fleet
        backoff = fleet.reconnect_min
        while not self._stopping:
            if self._hold.is_set():
                await self._released.wait()
                continue
            try:
                async with fleet.connect_gate:
                    t0 = time.perf_counter()
                    if self.nodes:  # once connected somewhere, a loss or a failure tries the next node
                        self._node += 1
                    port = fleet.ports[self._node % len(fleet.ports)]  # until then, its own first node
                    conn, code, present = await Connection.open(
                        port, f"{self.uid}:{self.device}", self.uid, self.token, clean=self.clean,
                        keepalive=self.keepalive, on_publish=self._on_publish)
            except (OSError, TimeoutError, MqttError) as exc:
                self.connect_failures[type(exc).__name__] += 1
                await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, fleet.reconnect_max)
                continue
            if code != 0:
                self.connect_failures[f"connack_{code}"] += 1
                await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, fleet.reconnect_max)
                continue
            self.connect_latency.append(time.perf_counter() - t0)
            self.session_present.append(present)
            self.nodes.append(port)
            backoff = fleet.reconnect_min
            self.conn = conn
            try:
                if not present:
                    codes = await conn.subscribe(self.filters)
                    self.subscribe_refused += sum(1 for c in codes if c == 0x80)
                self.connects += 1
                self.connected.set()
                for s in list(self.pending.values()):  # resend everything unacked, same cid
                    self._transmit(s)
                if self.connects > 1 and self.repair_on_reconnect and not self._stopping:
                    self._start_repair()
                await conn.closed.wait()
            except (ConnectionLost, TimeoutError) as exc:
                self.connect_failures[f"subscribe_{type(exc).__name__}"] += 1
                conn.abort()
            finally:
                self.connected.clear()
                self.conn = None
                for fut in self._rpcs.values():
                    if not fut.done():
                        fut.set_exception(ConnectionLost("connection lost during the RPC"))
            if not self._stopping and not self._hold.is_set():
                await asyncio.sleep(fleet.reconnect_min * random.uniform(0.5, 1.5))

    def _start_repair(self) -> None:
        if self._repair_task is not None and not self._repair_task.done():
            return

        async def repair() -> None:
            with suppress(TimeoutError, ConnectionLost, RpcError):
                await self.repair(timeout=60.0)

        self._repair_task = asyncio.create_task(repair(), name=f"faults.client.{self.uid}.repair")

    # -- sending ---------------------------------------------------------------------------

    def send(self, text: str, *, to: str | None = None, group: str | None = None, cid: str | None = None) -> Sent:
        """Queue one message (exactly one of ``to`` or ``group``) and send it when connected."""
        cid = cid or f"{self.fleet.run}-{self.uid}-{next(self._n)}"
        body: dict[str, Any] = {"cid": cid, "type": "text", "text": text}
        if group is not None:
            body["group"] = group
        else:
            body["to"] = to
        s = Sent(cid, self.uid, json.dumps(body).encode(), time.perf_counter())
        self.fleet.sent[cid] = s
        self.pending[cid] = s
        self._transmit(s)
        return s

    def _transmit(self, s: Sent) -> None:
        conn = self.conn
        if conn is None or not self.connected.is_set():
            s.next_try = float("inf")  # sent again on (re)connect
            return
        try:
            conn.publish(self._out_msg, s.payload, qos=1)
        except ConnectionLost:
            s.next_try = float("inf")
            return
        s.attempts += 1
        s.next_try = time.monotonic() + self.fleet.resend_after

    def resend_due(self, now: float) -> None:
        for s in list(self.pending.values()):
            if s.next_try <= now:
                self._transmit(s)

    def ping_if_idle(self, now: float) -> None:
        conn = self.conn
        if conn is not None and conn.is_open and now - conn.last_write > self.keepalive / 2:
            with suppress(ConnectionLost):
                conn.ping()

    # -- receiving -------------------------------------------------------------------------

    def _on_publish(self, topic: str, payload: bytes, qos: int, dup: bool) -> None:
        try:
            body = json.loads(payload)
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        if topic == self._topics["msg"]:
            self._on_message(body, "live")
        elif topic == self._topics["ack"]:
            self._on_ack(body)
        elif topic == self._topics["rpc"]:
            fut = self._rpcs.get(body.get("id"))  # type: ignore[arg-type]
            if fut is not None and not fut.done():
                fut.set_result(body)
        elif topic == self._topics["event"]:
            if body.get("type") == "member" and "seq" in body and "id" in body:
                self._on_message(body, "live")
        elif topic.startswith(f"{self.fleet.prefix}/") and not topic.startswith(f"{self.fleet.prefix}/{self.uid}/"):
            self.crossed += 1
        elif self.fleet.on_other is not None and not topic.startswith(f"{self.fleet.prefix}/"):
            self.fleet.on_other(self, topic, body)

    def _on_message(self, m: dict[str, Any], via: str) -> None:
        mid, conv, seq = m.get("id"), m.get("conv"), m.get("seq")
        if not isinstance(mid, str) or not isinstance(conv, str) or not isinstance(seq, int):
            return
        if mid in self.ids:
            if via == "live":
                self.redelivered += 1
            return
        if not _in_conv(conv, self.uid):
            self.crossed += 1
        by_seq = self.convs.setdefault(conv, {})
        if seq in by_seq:
            self.dup_seq += 1
        else:
            by_seq[seq] = mid
            hwm = self._hwm.get(conv, 0)
            while hwm + 1 in by_seq:
                hwm += 1
            self._hwm[conv] = hwm
        self.ids[mid] = (conv, seq)
        cid, sender = m.get("cid"), m.get("from")
        if m.get("type", "member") != "member" and isinstance(cid, str) and isinstance(sender, str):
            other = self._by_cid.setdefault((sender, cid), mid)
            if other != mid:
                self.dup_cid += 1
        now = time.perf_counter()
        if via == "live":
            self.live += 1
            s = self.fleet.sent.get(cid) if isinstance(cid, str) else None
            if s is not None and sender != self.uid:
                self.fleet.deliveries.append((s.first, now - s.first, self.uid, s.sender))
        else:
            self.repaired += 1
        if self.fleet.on_delivery is not None:
            self.fleet.on_delivery(self, m, via)

    def _on_ack(self, body: dict[str, Any]) -> None:
        cid = body.get("cid")
        s = self.pending.get(cid) or self.acked.get(cid) or self.rejected.get(cid)  # type: ignore[arg-type]
        if s is None:
            return  # another device's send, or a null cid
        error = body.get("error")
        if error is None:
            if s.id is None:
                s.id, s.conv, s.seq = body.get("id"), body.get("conv"), body.get("seq")
                s.acked_at = time.perf_counter()
                self.pending.pop(s.cid, None)
                self.rejected.pop(s.cid, None)
                self.acked[s.cid] = s
                self.room.set()
            elif s.id != body.get("id") or s.seq != body.get("seq"):
                s.ack_conflicts += 1
            else:
                s.reacks += 1
            return
        code = str(error.get("code")) if isinstance(error, dict) else "?"
        s.errors[code] += 1
        self.ack_errors[code] += 1
        if s.id is not None:
            return  # an error for an earlier attempt of a message since acked
        now = time.monotonic()
        if code == "rate_limited":
            retry = error.get("retry_after_ms")
            s.next_try = now + (retry / 1000 if isinstance(retry, (int, float)) and retry >= 0 else 1.0)
        elif code in RETRYABLE_ACK:
            s.next_try = now + min(5.0, 0.2 * 2 ** min(sum(s.errors.values()), 5))
        else:
            s.rejected = code
            self.pending.pop(s.cid, None)
            self.rejected[s.cid] = s
            self.room.set()

    # -- RPC and repair ----------------------------------------------------------------------

    async def rpc(self, method: str, params: dict[str, Any], timeout: float = 15.0) -> Any:
        """One JSON-RPC call; returns its result.

        Raises:
            RpcError: the server answered with an error.
            TimeoutError: no connection or no answer within ``timeout``.
            ConnectionLost: the connection dropped before the answer.
        """
        async with asyncio.timeout(timeout):
            await self.connected.wait()
            conn = self.conn
            if conn is None:
                raise ConnectionLost("not connected")
            rid = next(self._rpc_ids)
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._rpcs[rid] = fut
            try:
                conn.publish(f"{self.fleet.prefix}/{self.uid}/out/rpc",
                             json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}).encode(),
                             qos=1)
                body = await fut
            finally:
                self._rpcs.pop(rid, None)
        if "error" in body:
            self.rpc_errors[str(body["error"].get("code"))] += 1
            raise RpcError(body["error"])
        return body.get("result")

    async def rpc_retry(self, method: str, params: dict[str, Any], timeout: float = 60.0) -> Any:
        """:meth:`rpc`, retried on internal/unavailable/rate-limited errors, timeouts and lost
        connections until ``timeout``.

        Raises:
            RpcError: a final error (not retryable).
            TimeoutError: still failing at the deadline.
        """
        deadline = time.monotonic() + timeout
        delay = 0.2
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                msg = f"{method} from {self.uid} kept failing for {timeout:.0f}s"
                raise TimeoutError(msg)
            try:
                return await self.rpc(method, params, timeout=min(15.0, left))
            except RpcError as exc:
                if exc.code not in RETRYABLE_RPC:
                    raise
                wait = exc.retry_after_ms / 1000 if isinstance(exc.retry_after_ms, (int, float)) else delay
            except (TimeoutError, ConnectionLost):
                wait = delay
            await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 2.0)

    def hwm(self, conv: str) -> int:
        """The highest seq up to which this client has every message of ``conv``."""
        return self._hwm.get(conv, 0)

    async def repair(self, timeout: float = 60.0) -> None:
        """Catch up as docs/protocol.md §6 says: ``conversations`` for each ``last_seq``, then
        ``history`` after the highest contiguous seq, page by page.

        Raises:
            TimeoutError: the RPCs kept failing past ``timeout``.
            RpcError: a final RPC error.
        """
        deadline = time.monotonic() + timeout
        items: dict[str, int] = {}
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 200}
            if cursor:
                params["cursor"] = cursor
            page = await self.rpc_retry("conversations", params, max(1.0, deadline - time.monotonic()))
            for item in page["items"]:
                items[item["conv"]] = item["last_seq"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        for conv, last in items.items():
            self.last_seq[conv] = last
            after = self.hwm(conv)
            while after < last:
                hist = await self.rpc_retry("history", {"conv": conv, "after_seq": after, "limit": 200},
                                            max(1.0, deadline - time.monotonic()))
                msgs = hist["messages"]
                for m in msgs:
                    self._on_message(m, "repair")
                if not msgs or not hist["has_more"]:
                    break
                after = msgs[-1]["seq"]


def _in_conv(conv: str, uid: str) -> bool:
    if conv.startswith("d:"):
        return uid in conv[2:].split(":")
    return conv.startswith("g:")  # group membership is checked by the audit


async def drain(clients: list[GoodClient], timeout: float) -> int:
    """Wait (bounded polling) until no client has an unacked message; returns how many remain."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(c.pending for c in clients):
            return 0
        await asyncio.sleep(0.05)
    return sum(len(c.pending) for c in clients)


async def repair_all(clients: list[GoodClient], timeout: float = 120.0, concurrency: int = 50) -> list[str]:
    """Repair every client (at most ``concurrency`` at once); returns the failures as text."""
    gate = asyncio.Semaphore(concurrency)
    failures: list[str] = []

    async def one(c: GoodClient) -> None:
        async with gate:
            try:
                await c.repair(timeout)
            except (TimeoutError, RpcError) as exc:
                failures.append(f"{c.uid}: {exc}")

    await asyncio.gather(*(one(c) for c in clients))
    return failures


async def chat(client: GoodClient, *, until: float, interval: tuple[float, float], to: str | None = None,
               group: str | None = None, max_pending: int = 50, text: Callable[[int], str] | None = None) -> None:
    """Send one message every ``interval`` seconds (uniform in the range) until the perf_counter
    time ``until``, like a user typing; holds off while ``max_pending`` messages are unacked."""
    n = 0
    while time.perf_counter() < until:
        while len(client.pending) >= max_pending:
            client.room.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(client.room.wait(), max(0.01, until - time.perf_counter()))
            if time.perf_counter() >= until:
                return
        client.send(text(n) if text else f"{client.uid} #{n}", to=to, group=group)
        n += 1
        await asyncio.sleep(random.uniform(*interval))
