"""imgate's embedded MQTT broker, put together: listeners (``broker.listeners``), one shell per
connection (``broker.link``) around the sans-IO protocol core (``broker.connection``), the hub
that keeps sessions (``broker.hub``), the gate that logs clients in (``broker.gate``) and the
router (``broker.routing``). This module owns their lifecycle and the revocation watcher.

amqtt, the broker package the owner chose, could not host MQTT 5 nor a protocol core without
overriding its private methods, and its WebSocket adapters do not fit a byte-stream reader (see
``broker.listeners``): imgate does the protocol and the transports itself (see docs/architecture.md, "The
embedded broker").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Protocol, Self

from broker.acl import TopicAcl
from broker.auth import Authenticator
from broker.gate import DevicePolicy, ServiceAccount
from broker.hub import ClientLimits, DeliveryLimits, DeviceNotice, Hub
from broker.listeners import ListenerKind, Listeners, ListenerSpec
from broker.routing import LocalSink

log = logging.getLogger("imgate.broker")

__all__ = ["ClientLimits", "DeliveryLimits", "DevicePolicy", "EmbeddedBroker", "Hub", "ListenerSpec", "LocalSink",
           "ServiceAccount"]


class Clock(Protocol):
    """Wall-clock milliseconds (the composition root passes the platform's clock)."""

    def now_ms(self) -> int: ...


class _SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


def raise_file_limit() -> None:
    """One socket per client: lift the soft open-files limit to the hard one."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        log.warning("could not raise the open-files limit")


class EmbeddedBroker:
    """Lifecycle of the embedded broker and its revocation watcher (an async context manager).
    ``broker`` is the :class:`Hub` (sessions, kicks, stats)."""

    def __init__(self, *, host: str, port: int, authenticator: Authenticator, acl: TopicAcl,
                 service_accounts: Mapping[str, str], keepalive_grace: float, auth_poll_interval: float,
                 accounts: Sequence[ServiceAccount] = (), limits: DeliveryLimits | None = None,
                 devices: DevicePolicy | None = None, clients: ClientLimits | None = None, clock: Clock | None = None,
                 presence_interval_ms: int = 1000, session_expiry_s: int = 7 * 86400,
                 hub_cls: type[Hub] = Hub, accept_users: bool = True, listeners: Sequence[ListenerSpec] = (),
                 device_notice: DeviceNotice | None = None) -> None:
        """``accept_users=False``: users (and configured accounts) are refused (server busy)
        until ``broker.accepting`` is set, once whatever consumes their messages is attached.
        ``listeners``: more listeners (TLS, WebSocket) beside plain TCP on ``host:port``."""
        self._accept_users = accept_users
        self._clock = clock or _SystemClock()
        self._authenticator = authenticator
        self._poll = auth_poll_interval
        self.broker = hub_cls(authenticator=authenticator, acl=acl, service_accounts=service_accounts,
                              accounts=accounts, keepalive_grace=keepalive_grace, limits=limits, devices=devices,
                              clients=clients, session_expiry_s=session_expiry_s,
                              presence_interval_ms=presence_interval_ms, device_notice=device_notice)
        max_packet = (clients or ClientLimits()).max_packet
        specs = [ListenerSpec("tcp", host, port, "mqtt.port", max_message=max_packet + 8), *listeners]
        self.specs = specs
        self.listeners = Listeners(specs, self.broker.serve)
        self._watcher: asyncio.Task[None] | None = None
        # The broker's own task (the auth watcher; its loop logs and survives a failing pass).
        self._tasks = asyncio.TaskGroup()

    async def __aenter__(self) -> Self:
        raise_file_limit()
        self.broker.accepting = self._accept_users
        last_change = await self._authenticator.last_auth_change_id()
        await self.listeners.start()
        await self._tasks.__aenter__()
        self._watcher = self._tasks.create_task(self._watch_auth(last_change), name="imgate.broker.auth-watcher")
        log.info("embedded broker listening on %s", ", ".join(
            f"{s.kind} {s.host}:{self.listeners.port(s.kind)}" for s in self.specs))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await self._tasks.__aexit__(None, None, None)
        self.listeners.stop_accepting()
        await self.broker.close()
        await self.listeners.close()

    @property
    def serving(self) -> bool:
        return self._watcher is not None and not self._watcher.done()

    @property
    def port(self) -> int:
        return self.listeners.port("tcp")

    def port_of(self, kind: ListenerKind) -> int:
        return self.listeners.port(kind)

    async def stop_clients(self) -> None:
        """The first step of a graceful stop: accept no more connections and end every client
        connection (their wills and presence go out), so nothing more is acknowledged."""
        self.listeners.stop_accepting()
        await self.broker.stop_clients()

    async def _watch_auth(self, after_id: int) -> None:
        """Apply revocations and disables made by any process (CLI, admin API) to live sessions."""
        while True:
            try:
                for change in await self._authenticator.auth_changes_since(after_id):
                    after_id = change.id
                    await self.broker.apply_auth_change(change)
                await self.broker.kick_expired(self._clock.now_ms())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("auth watcher pass failed; retrying")
            await asyncio.sleep(self._poll)
