"""Webhook push targets, guarded against server-side request forgery (SSRF) by the shared
outbound guard (``services.netguard``: the URL rules, public addresses only, the check again at
connect time); here the client that POSTs to them.

- ``WebhookClient``: one POST through a ``GuardedBackend``: no proxy (the environment is not
  read), no redirect followed, at most ``max_response_bytes`` of the answer read.
"""

from __future__ import annotations

import ssl
from typing import Self

import httpcore

from services.netguard import (
    TRANSPORT_ERRORS,
    GuardedBackend,
    OutboundPolicy,
    OutboundUrl,
    Resolver,
    SystemResolver,
    TargetRefused,
    default_ssl_context,
    is_public,
    parse_allowlist,
)

# The push module's names for the shared guard (its callers and tests use them).
WebhookPolicy = OutboundPolicy
WebhookUrl = OutboundUrl

__all__ = ["TRANSPORT_ERRORS", "GuardedBackend", "Resolver", "SystemResolver", "TargetRefused", "WebhookClient",
           "WebhookPolicy", "WebhookUrl", "default_ssl_context", "is_public", "parse_allowlist"]


class WebhookClient:
    """POSTs to checked webhook URLs over a ``GuardedBackend``: no proxy, no redirect, a capped
    answer. An async context manager (it owns a connection pool)."""

    def __init__(self, policy: WebhookPolicy, *, timeout_s: float = 3.0, connect_timeout_s: float = 1.0,
                 max_connections: int = 64, max_response_bytes: int = 4096,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.policy = policy
        self._timeouts = {"connect": connect_timeout_s, "read": timeout_s, "write": timeout_s, "pool": timeout_s}
        self._cap = max_response_bytes
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or default_ssl_context(), max_connections=max_connections,
            max_keepalive_connections=min(max_connections, 16), keepalive_expiry=30.0, retries=0,
            network_backend=GuardedBackend(policy))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def post(self, target: WebhookUrl, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """POST ``body``; returns the status and at most ``max_response_bytes`` of the answer.
        Raises ``TargetRefused`` (the host resolves to a refused address now) or one of
        ``TRANSPORT_ERRORS``."""
        url = httpcore.URL(scheme=target.url.raw_scheme, host=target.url.raw_host, port=target.url.port,
                           target=target.url.raw_path)
        raw = [(b"Host", target.url.netloc), *((k.encode(), v.encode()) for k, v in headers.items())]
        async with self._pool.stream("POST", url, headers=raw, content=body,
                                     extensions={"timeout": self._timeouts}) as response:
            data = bytearray()
            async for chunk in response.aiter_stream():
                data += chunk[: self._cap - len(data)]
                if len(data) >= self._cap:
                    break  # the rest is not read: the connection is closed, not reused
            return response.status, bytes(data)
