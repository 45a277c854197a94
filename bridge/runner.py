"""The bridge's IO shell: a transport (MQTT or in-process), worker lanes.

Inbound messages are routed (sans-IO) as they arrive and queued on a lane chosen by
conversation (sends) or uid (everything else), so one conversation is handled in order while
others run in parallel. Every queue is bounded; a full lane applies back-pressure to the reader.
"""

from __future__ import annotations

import asyncio
import logging
import zlib

from bridge.handlers import Dispatcher
from bridge.router import Command, Publish, Router
from bridge.transport import Transport

log = logging.getLogger("imgate.bridge")


class Bridge:
    """Owns the transport's run loop and the lane workers. ``run()`` until cancelled."""

    def __init__(self, transport: Transport, router: Router, dispatcher: Dispatcher, *, lanes: int,
                 lane_queue: int, shared_group: str | None = None) -> None:
        self._transport = transport
        self._router = router
        self._dispatcher = dispatcher
        self._lanes: list[asyncio.Queue[Command]] = [asyncio.Queue(maxsize=lane_queue) for _ in range(lanes)]
        self._shared_group = shared_group
        self.ready = transport.ready
        self.dispatcher = dispatcher

    @property
    def backlog(self) -> int:
        """Commands waiting in the lanes: the bridge's lag."""
        return sum(q.qsize() for q in self._lanes)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for i, lane in enumerate(self._lanes):
                tg.create_task(self._work(lane), name=f"imgate.bridge.lane[{i}]")
            filters = self._router.topics.subscriptions(self._shared_group)
            tg.create_task(self._transport.run(filters, self._enqueue), name="imgate.bridge.transport")

    async def _enqueue(self, topic: str, payload: bytes) -> None:
        try:
            cmd = self._router.route(topic, payload)
        except Exception:  # the router is pure and tested; a bug in it must not stop the bridge
            log.exception("could not route a message on %s", topic)
            return
        await self._lanes[self._lane_of(cmd.lane_key)].put(cmd)

    async def publish_many(self, pubs: list[Publish]) -> None:
        """Publish from outside the lanes (the admin API's notifications)."""
        if pubs:
            await self._transport.publish_many([(p.topic, p.payload, p.qos) for p in pubs])

    def _lane_of(self, key: str) -> int:
        return zlib.crc32(key.encode()) % len(self._lanes)

    async def _work(self, lane: asyncio.Queue[Command]) -> None:
        while True:
            cmd = await lane.get()
            try:
                # A command's publishes go out together (written in order, acked in any order);
                # the lane takes its next command once they are all acknowledged.
                pubs = await self._dispatcher.handle(cmd)
                if len(pubs) == 1:
                    await self._publish(pubs[0])
                elif pubs:
                    await self._transport.publish_many([(p.topic, p.payload, p.qos) for p in pubs])
            except ConnectionError:
                log.exception("deliveries lost for %r", type(cmd).__name__)
            except Exception:
                log.exception("bridge lane failed on %r", type(cmd).__name__)

    async def _publish(self, pub: Publish) -> None:
        try:
            await self._transport.publish(pub.topic, pub.payload, pub.qos)
        except ConnectionError:
            log.exception("delivery lost: %s", pub.topic)
