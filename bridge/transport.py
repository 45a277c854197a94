"""How the bridge reaches a broker: over MQTT (any broker), or in-process (the embedded one).

Both give the bridge the same two things: a stream of (topic, payload) from the subscribed
filters, and ``publish``. The bridge never sees which one it has.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import aiomqtt

log = logging.getLogger("imgate.bridge")

# paho leaves Nagle's algorithm on; with delayed ACKs that costs up to 40 ms per small packet.
NODELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)

OnMessage = Callable[[str, bytes], Awaitable[None]]
_FANOUT_SLICE = 64


class Transport(Protocol):
    ready: asyncio.Event  # set once subscribed for the first time

    async def run(self, filters: list[str], on_message: OnMessage) -> None:
        """Subscribe and feed every message to ``on_message`` until cancelled (reconnecting)."""

    async def publish(self, topic: str, payload: bytes, qos: int) -> None:
        """Publish; returns once the broker has it (or raises after retries)."""

    async def publish_many(self, items: list[tuple[str, bytes, int]]) -> None:
        """Publish several, written in order (a fan-out). Raises ConnectionError if one was lost."""


class LocalBus(Protocol):
    """What an in-process broker offers a local subscriber (implemented by the embedded broker)."""

    def attach_local(self, name: str, filters: list[str], deliver: Callable[[str, bytes], None]) -> None: ...

    def detach_local(self, name: str) -> None: ...

    def route(self, topic: str, data: bytes, qos: int) -> int: ...


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
        self.ready = asyncio.Event()

    async def run(self, filters: list[str], on_message: OnMessage) -> None:
        attempt = 0
        ep = self._endpoint
        while True:
            try:
                async with aiomqtt.Client(
                    ep.host, ep.port, username=ep.username, password=ep.password, identifier=ep.client_id,
                    clean_session=False, keepalive=30, max_queued_incoming_messages=self._incoming_queue,
                    max_inflight_messages=self._max_inflight, socket_options=NODELAY,
                ) as client:
                    # Hundreds of publishes in flight are normal here, not worth a warning each.
                    client.pending_calls_threshold = self._max_inflight * 4
                    self._client = client
                    await client.subscribe([(f, 1) for f in filters])
                    attempt = 0
                    self._connected.set()
                    self.ready.set()
                    log.info("bridge connected to %s:%d as %s", ep.host, ep.port, ep.client_id)
                    async for message in client.messages:
                        payload = message.payload
                        if not isinstance(payload, bytes):
                            payload = str(payload or "").encode()
                        await on_message(str(message.topic), payload)
            except aiomqtt.MqttError as exc:
                self._connected.clear()
                self._client = None
                attempt += 1
                delay = random.uniform(0, min(30.0, 0.2 * 1.5 ** min(attempt, 12)))  # noqa: S311
                log.warning("bridge connection lost (%s); reconnecting in %.1fs", exc, delay)
                await asyncio.sleep(delay)

    async def publish(self, topic: str, payload: bytes, qos: int) -> None:
        """Publish, waiting out a reconnect (bounded) rather than dropping a delivery."""
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

    async def publish_many(self, items: list[tuple[str, bytes, int]]) -> None:
        # paho writes them in call order; the acknowledgements are awaited together.
        results = await asyncio.gather(*(self.publish(*item) for item in items), return_exceptions=True)
        lost = [r for r in results if isinstance(r, BaseException)]
        if lost:
            msg = f"{len(lost)} of {len(items)} publishes lost: {lost[0]!r}"
            raise ConnectionError(msg)


class LocalTransport:
    """The embedded broker, in-process: deliveries arrive through a bounded queue, publishes are
    routed directly. No MQTT encoding, no socket, no PUBACK round trip for the bridge's traffic."""

    def __init__(self, bus: LocalBus, *, name: str, incoming_queue: int) -> None:
        self._bus = bus
        self._name = name
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(incoming_queue)
        self.dropped = 0
        self.ready = asyncio.Event()

    def _deliver(self, topic: str, payload: bytes) -> None:
        try:
            self._queue.put_nowait((topic, payload))
        except asyncio.QueueFull:
            # Like a full MQTT client queue: the message is lost here and the client, which
            # gets no ack, sends it again.
            self.dropped += 1
            log.warning("bridge queue full (%d): dropped a message on %s", self._queue.maxsize, topic)

    async def run(self, filters: list[str], on_message: OnMessage) -> None:
        self._bus.attach_local(self._name, filters, self._deliver)
        self.ready.set()
        try:
            while True:
                topic, payload = await self._queue.get()
                await on_message(topic, payload)
        finally:
            self._bus.detach_local(self._name)

    async def publish(self, topic: str, payload: bytes, qos: int) -> None:
        self._bus.route(topic, payload, qos)

    async def publish_many(self, items: list[tuple[str, bytes, int]]) -> None:
        for n, (topic, payload, qos) in enumerate(items, 1):
            self._bus.route(topic, payload, qos)
            if n % _FANOUT_SLICE == 0:
                await asyncio.sleep(0)  # a large group's fan-out lets other conversations run between slices
