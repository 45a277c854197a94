"""How the bridge reaches a broker: over MQTT (any broker), or in-process (the embedded one).

Both give the bridge the same two things: a stream of (topic, payload) from the subscribed
filters, and ``publish``. The bridge never sees which one it has.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiomqtt

from bridge.formats import Body
from bridge.ingress import Ingress, key_of_topic
from bridge.outbound import Topics

log = logging.getLogger("imgate.bridge")

# paho leaves Nagle's algorithm on; with delayed ACKs that costs up to 40 ms per small packet.
NODELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)

_FANOUT_SLICE = 64


Props = dict[int, Any] | None  # MQTT 5 properties by identifier
Item = tuple[str, bytes, int, Props]  # topic, payload, QoS, properties

class Transport(Protocol):
    ready: asyncio.Event  # set once subscribed for the first time

    async def run(self, filters: list[str], ingress: Ingress) -> None:
        """Subscribe and offer every message to ``ingress`` until cancelled (reconnecting). A
        QoS 1 message is acknowledged to the broker only once the ingress has taken it."""

    async def publish(self, topic: str, payload: bytes, qos: int, props: Props = None) -> None:
        """Publish; returns once the broker has it (or raises after retries). ``props``: MQTT 5
        properties (the correlation data of a reply)."""

    async def publish_many(self, items: list[Item]) -> None:
        """Publish several, written in order (a fan-out). Raises ConnectionError if one was lost."""


class LocalBus(Protocol):
    """What an in-process broker offers a local subscriber (implemented by the embedded broker):
    it offers each matching message to the sink, and for a client's PUBLISH that the sink
    refuses it waits on ``sink.room(topic)`` (not reading that client) and offers it again."""

    def attach_local(self, name: str, filters: list[str], sink: Ingress) -> None: ...

    def detach_local(self, name: str) -> None: ...

    def route(self, topic: str, payload: bytes, qos: int, props: Props = None) -> None: ...


@dataclass(frozen=True, slots=True)
class BrokerEndpoint:
    host: str
    port: int
    username: str | None
    password: str | None
    client_id: str


class MqttTransport:
    """An aiomqtt client on a persistent session (clean session = 0), QoS 1, with reconnects."""

    def __init__(self, endpoint: BrokerEndpoint, *, incoming_queue: int, max_inflight: int,
                 publish_timeout: float) -> None:
        self._endpoint = endpoint
        self._incoming_queue = incoming_queue
        self._max_inflight = max_inflight
        self._publish_timeout = publish_timeout
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._parked: dict[str, deque[tuple[str, bytes, int, int]]] = {}  # per key, waiting for ingress room
        self.dropped_qos0 = 0
        self.ready = asyncio.Event()

    async def run(self, filters: list[str], ingress: Ingress) -> None:
        attempt = 0
        ep = self._endpoint
        while True:
            client = aiomqtt.Client(
                ep.host, ep.port, username=ep.username, password=ep.password, identifier=ep.client_id,
                clean_session=False, keepalive=30, max_queued_incoming_messages=self._incoming_queue,
                max_inflight_messages=self._max_inflight, socket_options=NODELAY)
            # PUBACK only once the ingress has taken a message: what the bridge has not
            # acknowledged stays the broker's (and is redelivered after a reconnect), so the
            # number waiting here is bounded by the broker's in-flight window. Set before the
            # connection, so nothing redelivered at once is acknowledged by paho on its own.
            client._client.manual_ack_set(True)  # aiomqtt 2.5 has no option for it
            try:
                async with client:
                    # Hundreds of publishes in flight are normal here, not worth a warning each.
                    client.pending_calls_threshold = self._max_inflight * 4
                    self._client = client
                    self._parked.clear()
                    await client.subscribe([(f, 1) for f in filters])
                    attempt = 0
                    self._connected.set()
                    self.ready.set()
                    log.info("bridge connected to %s:%d as %s", ep.host, ep.port, ep.client_id)
                    async for message in client.messages:
                        payload = message.payload
                        if not isinstance(payload, bytes):
                            payload = str(payload or "").encode()
                        self._offer(client, ingress, str(message.topic), payload, message.mid, message.qos)
            except aiomqtt.MqttError as exc:
                self._connected.clear()
                self._client = None
                self._parked.clear()  # unacknowledged: the broker sends them again
                attempt += 1
                delay = backoff(attempt)
                log.warning("bridge connection lost (%s); reconnecting in %.1fs", exc, delay)
                await asyncio.sleep(delay)

    def _offer(self, client: aiomqtt.Client, ingress: Ingress, topic: str, payload: bytes, mid: int,
               qos: int) -> None:
        key = key_of_topic(topic)
        parked = self._parked.get(key)
        if parked is None and ingress.offer(topic, payload):
            self._ack(client, mid, qos)
            return
        if qos == 0:
            self.dropped_qos0 += 1  # at most once: nothing was promised
            return
        if parked is None:
            parked = self._parked[key] = deque()
            ingress.room(topic).add_done_callback(lambda _: self._drain(client, ingress, key))
        parked.append((topic, payload, mid, qos))

    def _drain(self, client: aiomqtt.Client, ingress: Ingress, key: str) -> None:
        parked = self._parked.get(key)
        if parked is None or client is not self._client:
            return  # the connection was lost meanwhile: the broker redelivers
        while parked:
            topic, payload, mid, qos = parked[0]
            if not ingress.offer(topic, payload):
                ingress.room(topic).add_done_callback(lambda _: self._drain(client, ingress, key))
                return
            parked.popleft()
            self._ack(client, mid, qos)
        del self._parked[key]

    @staticmethod
    def _ack(client: aiomqtt.Client, mid: int, qos: int) -> None:
        if qos:
            client._client.ack(mid, qos)

    async def publish(self, topic: str, payload: bytes, qos: int, props: Props = None) -> None:
        """Publish (without MQTT 5 properties: this client speaks 3.1.1), waiting out a reconnect (bounded) rather than dropping a delivery."""
        for attempt in range(1, 6):
            if self._client is None:
                try:
                    await asyncio.wait_for(self._connected.wait(), self._publish_timeout)
                except TimeoutError:
                    break
            client = self._client
            if client is None:
                continue
            try:
                await client.publish(topic, payload, qos=qos, timeout=self._publish_timeout)
                return
            except aiomqtt.MqttError as exc:
                log.warning("publish to %s failed (%s); retrying", topic, exc)
                await asyncio.sleep(0.2 * attempt)  # back-off between retries, not synchronisation
        msg = f"gave up publishing to {topic}"
        raise ConnectionError(msg)

    async def publish_many(self, items: list[Item]) -> None:
        await publish_together(self.publish, items)  # paho writes them in call order


def backoff(attempt: int) -> float:
    """Seconds before reconnect ``attempt``: full jitter, growing to 30 s."""
    return random.uniform(0, min(30.0, 0.2 * 1.5 ** min(attempt, 12)))


async def publish_together(publish: Callable[[str, bytes, int, Props], Awaitable[None]], items: list[Item]) -> None:
    """Start every publish at once (each written in call order), await the acknowledgements
    together; ConnectionError if any was lost."""
    results = await asyncio.gather(*(publish(*item) for item in items), return_exceptions=True)
    lost = [r for r in results if isinstance(r, BaseException)]
    if lost:
        msg = f"{len(lost)} of {len(items)} publishes lost: {lost[0]!r}"
        raise ConnectionError(msg)


class LocalTransport:
    """The embedded broker, in-process: the broker offers matching messages straight to the
    ingress (and stops reading a client whose user's queue is full), publishes are routed
    directly. No MQTT encoding, no socket, no PUBACK round trip for the bridge's traffic."""

    def __init__(self, bus: LocalBus, *, name: str) -> None:
        self._bus = bus
        self._name = name
        self.ready = asyncio.Event()

    async def run(self, filters: list[str], ingress: Ingress) -> None:
        self._bus.attach_local(self._name, filters, ingress)
        self.ready.set()
        try:
            await asyncio.Future()  # until cancelled: the broker feeds the ingress
        finally:
            self._bus.detach_local(self._name)
            ingress.close()

    async def publish(self, topic: str, payload: bytes, qos: int, props: Props = None) -> None:
        self._bus.route(topic, payload, qos, props)

    async def publish_many(self, items: list[Item]) -> None:
        for n, (topic, payload, qos, props) in enumerate(items, 1):
            self._bus.route(topic, payload, qos, props)
            if n % _FANOUT_SLICE == 0:
                await asyncio.sleep(0)  # a large group's fan-out lets other conversations run between slices


class EncodingTrees:
    """The encoding trees (protocol "Encodings"): what the bridge publishes to
    ``{p}/{uid}/in/…`` also goes to ``{p}-cbor/{uid}/in/…`` (and each other tree that is on),
    converted. A publish to a tree's own topic (an MQTT 5 Response Topic there) is converted to
    its encoding. Needed where the broker cannot convert per device (RabbitMQ)."""

    def __init__(self, inner: Transport, topics: Topics) -> None:
        self._inner = inner
        self._topics = topics
        self._json = topics.prefix + "/"
        self.ready = inner.ready

    async def run(self, filters: list[str], ingress: Ingress) -> None:
        await self._inner.run(filters, ingress)

    async def publish(self, topic: str, payload: bytes, qos: int, props: Props = None) -> None:
        items = self._expand([(topic, payload, qos, props)])
        if len(items) == 1:
            await self._inner.publish(*items[0])
        else:
            await self._inner.publish_many(items)

    async def publish_many(self, items: list[Item]) -> None:
        await self._inner.publish_many(self._expand(items))

    def _expand(self, items: list[Item]) -> list[Item]:
        out: list[Item] = []
        for item in items:
            topic, payload, qos, props = item
            if not isinstance(payload, Body):
                out.append(item)
                continue
            tree = self._topics.trees.get(topic.partition("/")[0])
            if tree is not None:  # a Response Topic in a tree: there only, in its encoding
                out.append((topic, payload.encoded(tree.content_type), qos, props))
                continue
            out.append(item)
            if topic.startswith(self._json):
                out.extend((copy, data, qos, props) for copy, data in self._topics.tree_copies(topic, payload))
        return out
