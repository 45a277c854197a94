"""The bridge on RabbitMQ over AMQP (cluster mode: ``imgate bridge``, any number of processes).

RabbitMQ's MQTT plugin publishes what clients send to ``amq.topic`` (``amqp.exchange``) with the
topic as the routing key (``im/alice/out/msg`` → ``im.alice.out.msg``). Every bridge declares,
idempotently:

- ``{prefix}.out``, a consistent-hash exchange bound to that exchange with the bridge's filters
  (``im.*.out.msg`` …): it sends each routing key, so each sender's topic, to one of ``shards``
  quorum queues ``{prefix}.out.{k}``. One sender's messages stay in one queue, in order.
- The shard queues have a single active consumer: every bridge consumes every shard, RabbitMQ
  delivers a shard to one of them at a time and, when that one goes (``kill -9`` included), to the
  next one waiting, starting with what the first one had not acknowledged, in order. Nothing is
  lost; a message handled but not acknowledged is handled again, and its ``cid`` makes that a
  no-op for the store (acked again, not delivered again: protocol §3).
- ``{prefix}.presence``, a quorum queue with a single active consumer bound to
  ``amq.rabbitmq.event`` for ``connection.created`` and ``connection.closed``: presence (below).
- Every queue is bounded in messages and bytes with ``x-overflow = reject-publish``: past its
  bounds (no bridge running, say) RabbitMQ withholds the device's PUBACK and the device keeps its
  message; nothing is dropped.

A delivery is acknowledged only once its command has finished: stored, and its acks and
deliveries confirmed by RabbitMQ (publisher confirms), or answered with an error (the ingress's
``Receipt``). Deliveries are published to the same exchange with the inbox topic as routing key,
persistent when QoS 1, so MQTT subscribers get them at QoS 1.

Sharing the shards: each bridge says it is alive every ``membership_interval_s`` (``members``:
a heartbeat in the database) and prefers shard ``k`` when ``k % live == its rank``. It registers
on its preferred shards first; a bridge that receives on a shard it does not prefer while another
consumer waits there closes that shard's channel and registers again at the back of the line, so
the shard moves to the waiting bridge (its unacknowledged deliveries with it, as on a crash).

Presence: a connection event's ``pid`` names the connection; ``connection.created`` of an MQTT
client ``{uid}:{device}`` becomes that device's online presence (remembering the ``pid`` in the
presence table and here), ``connection.closed`` its offline presence: by uid when this bridge saw
the connection open (so the two stay in order in the uid's lane), else through ``$closed/{pid}``
(the presence table knows whose it was). The bridge publishes each change on
``presence/{uid}/{device}`` (not retained: RabbitMQ retains only what MQTT clients publish).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any

from pamqp import commands as spec
from pamqp.common import FieldValue

from bridge.amqpwire import AmqpClosed, AmqpConnection, Channel, connect, properties
from bridge.ingress import Ingress, key_of_topic
from bridge.router import CLOSED_PREFIX
from bridge.transport import Item, Props, backoff

log = logging.getLogger("imgate.bridge.amqp")

EVENT_EXCHANGE = "amq.rabbitmq.event"
_REHAND = 10  # heartbeats between hand-overs of an idle shard this bridge does not prefer
_MAX_PIDS = 500_000  # connections remembered for their close (the rest go by the presence table)
_CLIENT_ID = re.compile(r'<<"client_id">>\s*=>\s*<<"([A-Za-z0-9_-]{1,64}):([A-Za-z0-9_-]{1,32})">>')

Members = Callable[[], Awaitable[list[str]]]  # say this bridge is alive; the live bridges, sorted


def routing_key(topic: str) -> str:
    """An MQTT topic as RabbitMQ's routing key (imgate's topic levels never contain a dot)."""
    return topic.replace("/", ".")


def binding_key(topic_filter: str) -> str:
    """An MQTT filter as a topic exchange's binding key."""
    return ".".join("*" if level == "+" else level for level in topic_filter.split("/"))


def topic_of(key: str) -> str:
    return key.replace(".", "/")


def connection_event(kind: str, headers: dict[str, Any]) -> tuple[str, str, str, int] | None:
    """A RabbitMQ connection event as (kind, pid, client id, ms): ``created`` of an MQTT or Web
    MQTT connection (with its client id) or ``closed`` (without: RabbitMQ tells only the pid).
    None for anything else (AMQP connections, malformed events). Sans-IO, unit-tested."""
    pid, ts = headers.get("pid"), headers.get("timestamp_in_ms")
    if not isinstance(pid, str) or not 0 < len(pid) <= 128 or not isinstance(ts, int):
        return None
    if kind == "connection.closed":
        return "closed", pid, "", ts
    if kind != "connection.created" or "MQTT" not in str(headers.get("protocol", "")):
        return None
    found = _CLIENT_ID.search(str(headers.get("variable_map", "")))
    if found is None or headers.get("user") != found.group(1):
        return None  # not a device (a service account), or a client id not bound to its user
    return "created", pid, f"{found.group(1)}:{found.group(2)}", ts


class _Delivery:
    """The ingress's receipt for one delivery: acknowledged on its channel when settled, unless
    that channel has closed meanwhile (then RabbitMQ delivers it again)."""

    __slots__ = ("_consumer", "_epoch", "_tag")

    def __init__(self, consumer: _Consumer, epoch: int, tag: int) -> None:
        self._consumer, self._epoch, self._tag = consumer, epoch, tag

    def settle(self) -> None:
        self._consumer.ack(self._epoch, self._tag)


class _Consumer:
    """One queue consumed on a channel of its own (closing it hands the queue on).

    Acknowledgements are gathered and sent once per event-loop turn: the settled deliveries that
    follow on from the last one acknowledged go as one ``Basic.Ack`` with ``multiple`` (tags
    count up from 1 on each channel). Those settled beyond a delivery still being handled (one
    user's message waiting for room, say) wait for it, unless half the prefetch window is
    waiting: then they are acknowledged one by one, so one slow message never holds the shard."""

    def __init__(self, queue: str, index: int, prefetch: int) -> None:
        self.queue = queue
        self.index = index
        self.channel: Channel | None = None
        self.epoch = 0
        self.delivered = 0  # since the last balancing pass: evidence this bridge is the active one
        self.handed = True  # handed on since the bridges' shares last changed (or never needed to)
        self.backoff = 0  # handed on and came back this many times in a row
        self.skip = 0  # heartbeats to wait before handing it on again
        self._prefetch = prefetch
        self._low = 1  # every tag below it is acknowledged
        self._settled: set[int] = set()  # settled, not acknowledged
        self._singly: set[int] = set()  # acknowledged one by one, above _low
        self._flushing = False

    def opened(self, channel: Channel | None) -> int:
        """A new channel (or none): what was delivered on the last one comes again. The new epoch."""
        self.channel = channel
        self.epoch += 1
        self._low, self._settled, self._singly = 1, set(), set()
        return self.epoch

    def ack(self, epoch: int, tag: int) -> None:
        if epoch == self.epoch and self.channel is not None:
            self._settled.add(tag)
            if not self._flushing:
                self._flushing = True
                asyncio.get_running_loop().call_soon(self._flush, epoch)

    def flush(self) -> None:
        """Send the acknowledgements due now (before the channel is closed)."""
        self._flush(self.epoch)

    def _flush(self, epoch: int) -> None:
        self._flushing = False
        channel = self.channel
        if epoch != self.epoch or channel is None:
            return
        settled, singly = self._settled, self._singly
        low, top = self._low, 0
        while True:
            if low in settled:
                settled.discard(low)
                top = low
            elif low in singly:
                singly.discard(low)
            else:
                break
            low += 1
        self._low = low
        if top:
            channel.ack(top, multiple=True)  # ``top`` itself is still unacknowledged: never an unknown tag
        if len(settled) >= max(1, self._prefetch // 2):
            for tag in sorted(settled):
                channel.ack(tag)
            singly |= settled
            settled.clear()


class AmqpTransport:
    """The Transport of ``bridge.transport`` on RabbitMQ's AMQP side (see the module's text)."""

    def __init__(self, url: str | list[str], *, exchange: str, prefix: str, shards: int, prefetch: int, holder: str,
                 members: Members, interval: float, publish_timeout: float, max_messages: int = 100_000, max_bytes: int = 256 << 20,
                 max_body: int = 1 << 20) -> None:
        """``max_messages``/``max_bytes``: each queue's bounds (``x-overflow = reject-publish``:
        RabbitMQ withholds the PUBACK of what would go past them, and the client keeps it).
        ``url``: one node, or the nodes of one cluster, tried in turn (the next one first after a
        lost connection: its node may be the one gone)."""
        self._urls = [url] if isinstance(url, str) else url
        self._max_body = max_body  # a larger delivery is dropped unread, as the embedded broker refuses the packet
        self.oversize = 0
        self._node = 0  # index in _urls of the node tried next
        self._holder = holder
        self._exchange = exchange
        self._prefix = prefix
        self._prefetch = prefetch
        self._bounds: dict[str, FieldValue] = {"x-max-length": max_messages, "x-max-length-bytes": max_bytes,
                                               "x-overflow": "reject-publish"}
        self._members = members
        self._interval = interval
        self._publish_timeout = publish_timeout
        self._shards = [_Consumer(f"{prefix}.out.{k}", k, prefetch) for k in range(shards)]
        self._presence = _Consumer(f"{prefix}.presence", -1, prefetch)
        self._connection: AmqpConnection | None = None
        self._publisher: Channel | None = None
        self._renewing = asyncio.Lock()
        self._connected = asyncio.Event()
        self._parked: dict[str, deque[tuple[_Consumer, int, str, bytes, int]]] = {}
        self._pids: OrderedDict[str, str] = OrderedDict()  # connection pid -> "uid/device" (opened here)
        self.ready = asyncio.Event()
        self.handovers = 0

    # ---- consuming -------------------------------------------------------------------------
    async def run(self, filters: list[str], ingress: Ingress) -> None:
        attempt = 0
        # The clients' out topics; presence comes from the event exchange instead.
        keys = [binding_key(f) for f in filters if not f.startswith("presence/")]
        while True:
            url = self._urls[self._node % len(self._urls)]
            self._node += 1  # whatever happens to this connection, the next node is tried next
            try:
                connection = await connect(url, name=self._holder[:200], timeout=self._publish_timeout,
                                           max_body=self._max_body)
            except (ConnectionError, OSError, TimeoutError) as exc:
                if self._node % len(self._urls):  # another node of the cluster, at once
                    log.warning("RabbitMQ node %d of %d not reachable (%s); trying the next one",
                                self._node, len(self._urls), exc)
                    continue
                attempt += 1
                delay = backoff(attempt)
                log.warning("RabbitMQ not reachable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)  # back-off before reconnecting, not synchronisation
                continue
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(connection.heartbeats(), name="imgate.bridge.amqp.heartbeats")
                    await self._serve(connection, keys, ingress, tg)
                    attempt = 0
                    lost = await connection.closed
                    raise ConnectionError(str(lost))
            except* Exception as group:  # noqa: BLE001 (a channel or the connection failed: start over)
                log.warning("RabbitMQ connection lost (%r); reconnecting", group.exceptions[0])
            finally:
                connection.abort(AmqpClosed("the bridge stopped"), flush=True)
                self._connected.clear()
                self._connection = self._publisher = None
                for c in self._all():
                    c.opened(None)  # what was delivered on the lost channels comes again
                self._parked.clear()
            attempt += 1
            await asyncio.sleep(backoff(attempt))  # back-off before reconnecting, not synchronisation

    def _all(self) -> list[_Consumer]:
        return [*self._shards, self._presence]

    async def _serve(self, connection: AmqpConnection, keys: list[str], ingress: Ingress,
                     tg: asyncio.TaskGroup) -> None:
        setup = await connection.channel()
        out = f"{self._prefix}.out"
        await setup.rpc(spec.Exchange.Declare(exchange=out, exchange_type="x-consistent-hash", durable=True))
        for key in keys:
            await setup.rpc(spec.Exchange.Bind(destination=out, source=self._exchange, routing_key=key))
        args: dict[str, FieldValue] = {"x-queue-type": "quorum", "x-single-active-consumer": True, **self._bounds}
        for shard in self._shards:
            await setup.rpc(spec.Queue.Declare(queue=shard.queue, durable=True, arguments=args))
            await setup.rpc(spec.Queue.Bind(queue=shard.queue, exchange=out, routing_key="1"))  # equal weights
        await setup.rpc(spec.Queue.Declare(queue=self._presence.queue, durable=True, arguments=args))
        for event in ("connection.created", "connection.closed"):
            await setup.rpc(spec.Queue.Bind(queue=self._presence.queue, exchange=EVENT_EXCHANGE, routing_key=event))
        await setup.close()
        self._publisher = await connection.channel(confirms=True)
        self._connection = connection
        self._connected.set()
        live = await self._live()
        preferred = self._preferred(live)
        for shard in sorted(self._shards, key=lambda s: s.index not in preferred):  # preferred first
            await self._open(shard, ingress)
        await self._open(self._presence, ingress)
        tg.create_task(self._balance(ingress), name="imgate.bridge.amqp.balance")
        self.ready.set()
        log.info("bridge consuming %d shards from RabbitMQ (%d bridge(s) live, %d preferred here)",
                 len(self._shards), len(live), len(preferred))

    async def _open(self, consumer: _Consumer, ingress: Ingress) -> None:
        assert self._connection is not None
        channel = await self._connection.channel(prefetch=self._prefetch)
        epoch = consumer.opened(channel)
        on_message = self._on_event if consumer is self._presence else self._on_message

        def deliver(tag: int, key: str, body: bytes | None, header: bytes) -> None:
            if consumer.epoch == epoch:  # else arriving on a channel being closed: RabbitMQ delivers it again
                on_message(consumer, epoch, tag, key, body, header, ingress)

        def closed(done: asyncio.Future[BaseException]) -> None:
            # RabbitMQ closed this consumer's channel (a channel error, consumer_timeout, the queue
            # deleted: the consumer cancelled) while it was still ours: start over on a new
            # connection, as after a lost one, rather than leave the shard unconsumed here.
            connection = self._connection
            if consumer.channel is channel and connection is not None and not connection.lost:
                log.warning("RabbitMQ closed the channel of %s (%s); reconnecting", consumer.queue, done.result())
                connection.abort(done.result(), flush=True)

        channel.closed.add_done_callback(closed)
        # Named so an operator (and the tests) can tell which bridge holds which shard:
        # rabbitmqctl list_consumers queue_name consumer_tag active.
        await channel.consume(consumer.queue, f"{self._holder[:200]}|{consumer.queue}", deliver)

    async def _reopen(self, consumer: _Consumer, ingress: Ingress) -> None:
        """Hand the queue to the next consumer waiting (ours, unacknowledged, go with it) and
        register again at the back of the line."""
        channel = consumer.channel
        consumer.flush()  # what was settled in this turn is acknowledged before the hand-over
        consumer.opened(None)
        if channel is not None:
            await channel.close()
        self.handovers += 1
        await self._open(consumer, ingress)

    def _on_message(self, consumer: _Consumer, epoch: int, tag: int, key: str, body: bytes | None, _header: bytes,
                    ingress: Ingress) -> None:
        consumer.delivered += 1
        if body is None:  # over broker.max_packet_bytes: never read into memory, acknowledged and dropped
            self.oversize += 1
            log.warning("dropped a message over %d bytes on %s", self._max_body, topic_of(key))
            consumer.ack(epoch, tag)
            return
        self._offer(consumer, epoch, topic_of(key), body, tag, ingress)

    def _on_event(self, consumer: _Consumer, epoch: int, tag: int, key: str, _body: bytes | None, header: bytes,
                  ingress: Ingress) -> None:
        try:
            headers = properties(header).headers or {}
        except Exception:  # noqa: BLE001 (an event RabbitMQ wrote is readable; skip one that is not)
            headers = {}
        event = connection_event(key, dict(headers))
        if event is None:
            consumer.ack(epoch, tag)
            return
        kind, pid, client, ts = event
        if kind == "created":
            uid, _, device = client.partition(":")
            self._pids[pid] = f"{uid}/{device}"
            if len(self._pids) > _MAX_PIDS:
                self._pids.popitem(last=False)
            body = {"online": True, "ts": ts, "conn": pid}
            topic = f"presence/{uid}/{device}"
        elif (known := self._pids.pop(pid, None)) is not None:
            body, topic = {"online": False, "ts": ts, "conn": pid}, f"presence/{known}"
        else:
            body, topic = {"ts": ts}, f"{CLOSED_PREFIX}{pid}"
        self._offer(consumer, epoch, topic, json.dumps(body).encode(), tag, ingress)

    def _offer(self, consumer: _Consumer, epoch: int, topic: str, payload: bytes, tag: int, ingress: Ingress) -> None:
        key = key_of_topic(topic)
        parked = self._parked.get(key)
        if parked is None and ingress.offer(topic, payload, receipt=_Delivery(consumer, epoch, tag)):
            return
        if parked is None:  # bounded: at most ``prefetch`` unacknowledged per channel
            parked = self._parked[key] = deque()
            ingress.room(topic).add_done_callback(lambda _: self._drain(ingress, key))
        parked.append((consumer, epoch, topic, payload, tag))

    def _drain(self, ingress: Ingress, key: str) -> None:
        parked = self._parked.get(key)
        if parked is None:
            return
        while parked:
            consumer, epoch, topic, payload, tag = parked[0]
            if epoch != consumer.epoch:
                parked.popleft()  # its channel closed: RabbitMQ delivers it again
                continue
            if not ingress.offer(topic, payload, receipt=_Delivery(consumer, epoch, tag)):
                ingress.room(topic).add_done_callback(lambda _: self._drain(ingress, key))
                return
            parked.popleft()
        del self._parked[key]

    # ---- sharing the shards ----------------------------------------------------------------
    async def _live(self) -> list[str]:
        try:
            return await self._members()
        except Exception:  # the database is away: keep consuming as we are
            log.exception("bridge membership not renewed")
            return []

    def _preferred(self, live: list[str]) -> set[int]:
        if self._holder not in live:
            return {s.index for s in self._shards}
        rank = live.index(self._holder)
        return {s.index for s in self._shards if s.index % len(live) == rank}

    async def _balance(self, ingress: Ingress) -> None:
        """Every heartbeat: hand on each shard this bridge does not prefer when it may be the
        active consumer there: once after the shares change, whenever it receives there, and
        every ``_REHAND`` heartbeats while idle (the bridge that prefers it may have registered
        only after the last hand-over, e.g. after both reconnected). That bridge is alive (it
        said so, after registering on its shards), so it waits there and takes it; handing on a
        shard where this bridge only waits costs nothing. (A quorum queue's consumer count leaves
        out the consumers waiting behind the active one, so RabbitMQ cannot be asked.) A busy
        shard that comes back at once is handed on again after 2, 4 … 64 heartbeats."""
        last: set[int] | None = None
        beats = 0
        while True:
            await asyncio.sleep(self._interval)  # the heartbeat's period, not synchronisation
            live = await self._live()
            if not live:
                continue
            beats += 1
            preferred = self._preferred(live)
            if preferred != last:
                for shard in self._shards:
                    shard.handed, shard.backoff, shard.skip = shard.index in preferred, 0, 0
                last = preferred
            for shard in self._shards:
                busy, shard.delivered = shard.delivered, 0
                if shard.index in preferred:
                    continue
                if not busy:
                    if shard.handed and beats % _REHAND:
                        continue
                elif shard.skip > 0:
                    shard.skip -= 1
                    continue
                log.debug("handing shard %d on to the bridge that prefers it", shard.index)
                await self._reopen(shard, ingress)
                if busy and shard.handed:  # it had come back: wait longer before the next try
                    shard.backoff = min(shard.backoff + 1, 6)
                    shard.skip = 2 ** shard.backoff
                shard.handed = True

    # ---- publishing ------------------------------------------------------------------------
    async def _channel(self) -> Channel:
        if self._publisher is not None and not self._publisher.is_open:
            await self._renew(self._publisher)  # closed under a caller that gave up (it renews on failure)
        if self._publisher is None or not self._publisher.is_open:
            try:
                await asyncio.wait_for(self._connected.wait(), self._publish_timeout)
            except TimeoutError:
                pass
        channel = self._publisher
        if channel is None or not channel.is_open:
            msg = "not connected to RabbitMQ"
            raise ConnectionError(msg)
        return channel

    async def publish(self, topic: str, payload: bytes, qos: int, props: Props = None) -> None:
        """Publish to the exchange; returns once RabbitMQ confirmed it (MQTT 5 properties are
        dropped: RabbitMQ 3.10 speaks MQTT 3.1.1)."""
        await self.publish_many([(topic, payload, qos, props)])

    async def publish_many(self, items: list[Item]) -> None:
        """Written in order on one channel at once, confirmed together (``Basic.Ack`` with
        ``multiple`` settles many); ConnectionError if any was refused or lost."""
        channel = await self._channel()
        exchange = self._exchange
        confirmed = channel.publish_many([(exchange, routing_key(t), payload, qos > 0) for t, payload, qos, _ in items])
        try:
            async with asyncio.timeout(self._publish_timeout):
                await confirmed
        except TimeoutError:
            await self._renew(channel)
            msg = f"{len(items)} publishes not confirmed within {self._publish_timeout}s"
            raise ConnectionError(msg) from None
        except ConnectionError:
            await self._renew(channel)
            raise

    async def _renew(self, failed: Channel) -> None:
        """A publisher channel that had a publish refused (``Basic.Nack``) or not confirmed in
        time is replaced: on RabbitMQ 3.10 a channel can stay unable to reach a quorum queue
        whose leader moved to another node (every later publish to that device refused, for
        minutes), while a new channel reaches it at once (bench/faults/rabbit_loss.py: 4 of 10
        node-loss runs left a device without replies before this, 0 of 12 after)."""
        async with self._renewing:  # one replacement, whoever else failed on it meanwhile
            connection = self._connection
            if self._publisher is not failed or connection is None or connection.lost:
                return
            try:
                fresh = await connection.channel(confirms=True)
            except (ConnectionError, TimeoutError):
                return  # the connection is going: the next one opens a new publisher
            self._publisher = fresh
        log.info("publisher channel replaced after a refused or unconfirmed publish")
        await failed.close()



class AmqpPublisher:
    """Publishes to the exchange alone, for a process that delivers without consuming (``imgate
    api``'s sends as a bot, docs/bots.md): one connection and a confirming channel, opened when
    first needed and again after a loss (the nodes of ``url`` in turn). A Transport for
    ``EncodingTrees``; ``run`` is not for it."""

    def __init__(self, urls: list[str], *, exchange: str, timeout: float, name: str = "imgate-api") -> None:
        self._urls = urls
        self._exchange = exchange
        self._timeout = timeout
        self._name = name
        self._node = 0
        self._connection: AmqpConnection | None = None
        self._channel: Channel | None = None
        self._opening = asyncio.Lock()
        self.ready = asyncio.Event()

    async def run(self, filters: list[str], ingress: Ingress) -> None:
        msg = "a publisher does not consume"
        raise NotImplementedError(msg)

    async def _open(self) -> Channel:
        async with self._opening:
            if self._channel is not None and self._channel.is_open:
                return self._channel
            if self._connection is not None:
                await self._connection.close()
            url = self._urls[self._node % len(self._urls)]
            self._node += 1  # the next node next time: this one may be the one gone
            try:
                self._connection = await connect(url, name=self._name, timeout=self._timeout)
                self._channel = await self._connection.channel(confirms=True)
            except (AmqpClosed, OSError, TimeoutError) as exc:
                msg = f"RabbitMQ not reachable: {exc}"
                raise ConnectionError(msg) from exc
            self.ready.set()
            return self._channel

    async def publish(self, topic: str, payload: bytes, qos: int, props: Props = None) -> None:
        await self.publish_many([(topic, payload, qos, props)])

    async def publish_many(self, items: list[Item]) -> None:
        """Published and confirmed; ConnectionError if not (the channel is opened again next time)."""
        if not items:
            return
        channel = await self._open()
        try:
            confirmed = channel.publish_many([(self._exchange, routing_key(t), p, qos > 0) for t, p, qos, _ in items])
            async with asyncio.timeout(self._timeout):
                await confirmed
        except (AmqpClosed, TimeoutError) as exc:
            await channel.close()
            msg = f"{len(items)} publishes not confirmed: {exc}"
            raise ConnectionError(msg) from exc
        except ConnectionError:
            await channel.close()
            raise

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
