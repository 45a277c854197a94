"""The bridge's IO shell: one aiomqtt client, worker lanes, reconnects.

Inbound messages are routed (sans-IO) in the reader and queued on a lane chosen by conversation
(sends) or uid (everything else), so one conversation is handled in order while others run in
parallel. Every queue is bounded; a full lane applies back-pressure to the reader.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import zlib
from dataclasses import dataclass

import aiomqtt

from bridge.handlers import Dispatcher
from bridge.router import Command, Publish, Router, Topics

log = logging.getLogger("imgate.bridge")

# paho leaves Nagle's algorithm on; with delayed ACKs that costs up to 40 ms per small packet.
NODELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)


@dataclass(frozen=True, slots=True)
class BrokerEndpoint:
    host: str
    port: int
    username: str | None
    password: str | None
    client_id: str


class Bridge:
    """Owns the MQTT connection and the lane workers. ``run()`` until cancelled."""

    def __init__(self, endpoint: BrokerEndpoint, router: Router, dispatcher: Dispatcher, *, lanes: int,
                 lane_queue: int, incoming_queue: int, max_inflight: int, publish_timeout: float,
                 shared_group: str | None = None) -> None:
        self._endpoint = endpoint
        self._router = router
        self._dispatcher = dispatcher
        self._lanes: list[asyncio.Queue[Command]] = [asyncio.Queue(maxsize=lane_queue) for _ in range(lanes)]
        self._incoming_queue = incoming_queue
        self._max_inflight = max_inflight
        self._publish_timeout = publish_timeout
        self._shared_group = shared_group
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self.ready = asyncio.Event()  # set once subscribed for the first time

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for i, lane in enumerate(self._lanes):
                tg.create_task(self._work(lane), name=f"imgate.bridge.lane[{i}]")
            tg.create_task(self._connection_loop(), name="imgate.bridge.connection")

    async def _connection_loop(self) -> None:
        attempt = 0
        ep = self._endpoint
        while True:
            try:
                async with aiomqtt.Client(
                    ep.host, ep.port, username=ep.username, password=ep.password, identifier=ep.client_id,
                    clean_session=False, keepalive=30, max_queued_incoming_messages=self._incoming_queue,
                    max_inflight_messages=self._max_inflight, socket_options=NODELAY,
                ) as client:
                    self._client = client
                    filters = self._router.topics.subscriptions(self._shared_group)
                    await client.subscribe([(f, 1) for f in filters])
                    attempt = 0
                    self._connected.set()
                    self.ready.set()
                    log.info("bridge connected to %s:%d as %s", ep.host, ep.port, ep.client_id)
                    async for message in client.messages:
                        payload = message.payload if isinstance(message.payload, bytes) else str(message.payload or "").encode()
                        await self._enqueue(str(message.topic), payload)
            except aiomqtt.MqttError as exc:
                self._connected.clear()
                self._client = None
                attempt += 1
                delay = random.uniform(0, min(30.0, 0.2 * 1.5 ** min(attempt, 12)))  # noqa: S311
                log.warning("bridge connection lost (%s); reconnecting in %.1fs", exc, delay)
                await asyncio.sleep(delay)

    async def _enqueue(self, topic: str, payload: bytes) -> None:
        try:
            cmd = self._router.route(topic, payload)
        except Exception:  # the router is pure and tested; a bug in it must not stop the bridge
            log.exception("could not route a message on %s", topic)
            return
        await self._lanes[self._lane_of(cmd.lane_key)].put(cmd)

    def _lane_of(self, key: str) -> int:
        return zlib.crc32(key.encode()) % len(self._lanes)

    async def _work(self, lane: asyncio.Queue[Command]) -> None:
        while True:
            cmd = await lane.get()
            try:
                for pub in await self._dispatcher.handle(cmd):
                    await self._publish(pub)
            except Exception:
                log.exception("bridge lane failed on %r", type(cmd).__name__)

    async def _publish(self, pub: Publish) -> None:
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
                await client.publish(pub.topic, pub.payload, qos=pub.qos, timeout=self._publish_timeout)
                return
            except aiomqtt.MqttError as exc:
                log.warning("publish to %s failed (%s); retrying", pub.topic, exc)
                await asyncio.sleep(0.2 * attempt)  # back-off between retries, not synchronisation
        log.error("gave up publishing to %s", pub.topic)
