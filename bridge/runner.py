"""The bridge's IO shell: a transport (MQTT or in-process) feeding a fair ingress, a scheduler,
and worker lanes.

Inbound messages wait in the ingress, one bounded queue per user (``bridge.ingress``); the
scheduler takes them round-robin, routes them (sans-IO), applies the per-user rate limits and
queues each command on a lane chosen by conversation (sends) or uid (everything else), so one
conversation is handled in order while others run in parallel. A user has at most
``ingress_key_inflight`` commands in the lanes at once, so a flood waits in its own queue and
never in front of other users; a full queue makes the broker stop reading that client.

With ``timings``, each send and RPC is timed from the scheduler taking it off the ingress to the
transport returning from its publishes (the sender's ack, the reply: the broker has them): the
latency a client sees less the network and the wait in the ingress, including the wait in a lane.

With the operator's ``before_*`` callbacks configured (``Dispatcher.before``), a command they
take (a send, an edit, a profile change) is not queued on its lane until the endpoint has
answered: each such command's question runs as a task of its own (bounded by the ingress: at most
``ingress_key_inflight`` per user, ``ingress_max_inflight`` in all; the HTTP requests by the
callbacks' fair limiter), and its answer (the command, replaced, or its refusal) is queued on the
lane in the order the commands were taken for that lane key (a conversation's sends keep their
order); a command of a lane key with answers pending waits behind them. So a lane never waits for
an endpoint: other conversations' commands go on while a slow endpoint is asked. Without callbacks
nothing of this runs (one ``None`` check per command).
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections import deque
from typing import Protocol

from bridge.handlers import Dispatcher
from bridge.ingress import Ingress, IngressLimits, Receipt, key_of_topic
from bridge.ratelimit import Throttle
from bridge.router import Command, Ignore, Publish, Router, Rpc, Send
from bridge.transport import Transport
from services.messages.commands import ATTACHMENT_TYPES

log = logging.getLogger("imgate.bridge")

_SEND_BATCH = 256  # sends a lane starts together (the message committer's batch)


class Timings(Protocol):
    """Where the bridge reports how long its commands took, in seconds (``imgate.metrics.Metrics``;
    the bridge knows no metrics library). Called on the hot path, once per send or RPC."""

    def observe_send(self, seconds: float) -> None: ...

    def observe_rpc(self, method: str, seconds: float) -> None: ...


_Taken = tuple[str, Command, float, Receipt | None]  # key, command, when taken, receipt


class _Held:
    """A command waiting for the before_* endpoint's answer (or behind one of its lane key's)."""

    __slots__ = ("item", "ready")

    def __init__(self, item: _Taken, ready: bool) -> None:
        self.item = item
        self.ready = ready


class Bridge:
    """Owns the transport's run loop, the scheduler and the lane workers. ``run()`` until cancelled."""

    def __init__(self, transport: Transport, router: Router, dispatcher: Dispatcher, throttle: Throttle, *,
                 lanes: int, ingress: IngressLimits | None = None, shared_group: str | None = None,
                 timings: Timings | None = None) -> None:
        self._transport = transport
        self._router = router
        self._dispatcher = dispatcher
        self._throttle = throttle
        self.ingress = Ingress(key_of_topic, ingress)
        # Unbounded asyncio queues, bounded by the ingress: at most ingress.max_inflight commands
        # are taken and not yet finished, whatever lane they wait in. Each command carries the
        # perf_counter() of its taking (0.0 without timings) and its receipt (AMQP).
        self._lanes: list[asyncio.Queue[_Taken]] = [asyncio.Queue() for _ in range(lanes)]
        self._timings = timings
        self._shared_group = shared_group
        self.ready = transport.ready
        self.dispatcher = dispatcher
        self.ignored = 0
        self._gated = dispatcher.before is not None  # before_* callbacks: commands wait for answers
        self._held: dict[str, deque[_Held]] = {}  # lane key -> its commands waiting, in taking order
        self._tg: asyncio.TaskGroup | None = None

    @property
    def backlog(self) -> int:
        """Messages received and not yet handled: the bridge's lag."""
        return self.ingress.waiting + self.ingress.inflight

    @property
    def throttle(self) -> Throttle:
        return self._throttle

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            for i, lane in enumerate(self._lanes):
                tg.create_task(self._work(lane), name=f"imgate.bridge.lane[{i}]")
            tg.create_task(self._schedule(), name="imgate.bridge.scheduler")
            filters = self._router.topics.subscriptions(self._shared_group)
            tg.create_task(self._transport.run(filters, self.ingress), name="imgate.bridge.transport")

    async def _schedule(self) -> None:
        while True:
            key, topic, payload, props, receipt = await self.ingress.take()
            taken = time.perf_counter() if self._timings is not None else 0.0
            try:
                cmd = self._throttle.check(key, self._router.route(topic, payload, props))
            except Exception:  # the router is pure and tested; a bug in it must not stop the bridge
                log.exception("could not route a message on %s", topic)
                self._finish(key, receipt)
                continue
            if isinstance(cmd, Ignore):
                self.ignored += 1
                log.debug("ignored: %s", cmd.reason)
                self._finish(key, receipt)
                continue
            if self._gated and (cmd.lane_key in self._held or self._dispatcher.gated(cmd)):
                self._hold((key, cmd, taken, receipt))
                continue
            self._lanes[self._lane_of(cmd.lane_key)].put_nowait((key, cmd, taken, receipt))

    def _hold(self, item: _Taken) -> None:
        """Queue ``item`` behind its lane key's commands waiting for answers; ask the endpoint
        about it (a task) if it is one the callbacks take."""
        cmd = item[1]
        gated = self._dispatcher.gated(cmd)
        held = _Held(item, ready=not gated)
        self._held.setdefault(cmd.lane_key, deque()).append(held)
        if gated:
            assert self._tg is not None
            self._tg.create_task(self._decide(held), name="imgate.bridge.before")
        else:
            self._release_held(cmd.lane_key)

    async def _decide(self, held: _Held) -> None:
        key, cmd, taken, receipt = held.item
        try:
            decided = await self._dispatcher.decide(cmd)  # never raises
        except asyncio.CancelledError:
            self._finish(key, receipt)
            raise
        held.item, held.ready = (key, decided, taken, receipt), True
        self._release_held(cmd.lane_key)

    def _release_held(self, lane_key: str) -> None:
        """Queue on the lane the answered commands at the head of ``lane_key``'s line."""
        line = self._held[lane_key]
        lane = self._lanes[self._lane_of(lane_key)]
        while line and line[0].ready:
            lane.put_nowait(line.popleft().item)
        if not line:
            del self._held[lane_key]

    def _finish(self, key: str, receipt: Receipt | None) -> None:
        self.ingress.release(key)
        if receipt is not None:
            receipt.settle()

    async def publish_many(self, pubs: list[Publish]) -> None:
        """Publish from outside the lanes (the admin API's notifications)."""
        if pubs:
            await self._transport.publish_many([(p.topic, p.payload, p.qos, p.props) for p in pubs])

    def _lane_of(self, key: str) -> int:
        return zlib.crc32(key.encode()) % len(self._lanes)

    async def _work(self, lane: asyncio.Queue[_Taken]) -> None:
        carry: _Taken | None = None  # taken off the lane, not a send: next
        while True:
            batch = [carry or await lane.get()]
            carry = None
            if isinstance(batch[0][1], Send) and not _checks_first(batch[0][1]):
                # Sends waiting behind this one in the lane (one busy conversation, or several
                # sharing the lane) are stored together: started in lane order, they reach the
                # message committer in that order and share its transaction, instead of a
                # transaction each while the rest wait.
                while len(batch) < _SEND_BATCH and not lane.empty():
                    item = lane.get_nowait()
                    if not isinstance(item[1], Send) or _checks_first(item[1]):
                        carry = item
                        break
                    batch.append(item)
            if len(batch) == 1:
                await self._run(*batch[0])
                continue
            try:
                # Each command's publishes go out after the previous one's, in lane order; one that
                # failed is logged and the others go on.
                results = await asyncio.gather(*(self._dispatcher.handle(cmd) for _, cmd, _, _ in batch),
                                               return_exceptions=True)
                pubs: list[Publish] = []
                done: list[float] = []
                for (_, cmd, taken, _), result in zip(batch, results, strict=True):
                    if isinstance(result, BaseException):
                        log.error("bridge lane failed on %r", type(cmd).__name__, exc_info=result)
                    else:
                        pubs += result
                        done.append(taken)
                await self._transport.publish_many([(p.topic, p.payload, p.qos, p.props) for p in pubs])
                if self._timings is not None:
                    now = time.perf_counter()
                    for taken in done:
                        self._timings.observe_send(now - taken)
            except ConnectionError:
                log.exception("deliveries lost for %d sends", len(batch))
            except Exception:
                log.exception("bridge lane failed on %d sends", len(batch))
            finally:
                for key, cmd, _, receipt in batch:
                    self._dispatcher.published(cmd)
                    self._finish(key, receipt)

    async def _run(self, key: str, cmd: Command, taken: float, receipt: Receipt | None) -> None:
        timings = self._timings
        try:
            # A command's publishes go out together (written in order, acked in any order);
            # the lane takes its next command once they are all acknowledged.
            pubs = await self._dispatcher.handle(cmd)
            if len(pubs) == 1:
                await self._publish(pubs[0])
            elif pubs:
                await self._transport.publish_many([(p.topic, p.payload, p.qos, p.props) for p in pubs])
            if timings is not None:  # a command that raised is logged below, not timed
                if isinstance(cmd, Send):
                    timings.observe_send(time.perf_counter() - taken)
                elif isinstance(cmd, Rpc):
                    timings.observe_rpc(cmd.method, time.perf_counter() - taken)
        except ConnectionError:
            log.exception("deliveries lost for %r", type(cmd).__name__)
        except Exception:
            log.exception("bridge lane failed on %r", type(cmd).__name__)
        finally:
            self._dispatcher.published(cmd)
            self._finish(key, receipt)

    async def _publish(self, pub: Publish) -> None:
        try:
            await self._transport.publish(pub.topic, pub.payload, pub.qos, pub.props)
        except ConnectionError:
            log.exception("delivery lost: %s", pub.topic)


def _checks_first(send: Send) -> bool:
    """An attachment send checks its objects (store I/O) before it queues for the committer: it
    runs alone, so the sends after it in the lane cannot overtake it (their seq follows its)."""
    return send.command.type in ATTACHMENT_TYPES
