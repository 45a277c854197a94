"""Runs an ASGI app with uvicorn inside imgate's event loop (an async context manager)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any, Self

import uvicorn

_START_TIMEOUT = 10.0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the composition root owns the process's signals


class EmbeddedHttpServer:
    def __init__(self, app: Any, host: str, port: int) -> None:
        self._server = _Server(uvicorn.Config(app, host=host, port=port, lifespan="off", access_log=False,
                                              log_level="warning"))
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._server.serve(), name="imgate.admin.http")
        async with asyncio.timeout(_START_TIMEOUT):
            while not self._server.started:
                if self._task.done():
                    self._task.result()  # raises the start-up error (e.g. port in use)
                    msg = "admin HTTP server stopped at start"
                    raise RuntimeError(msg)
                await asyncio.sleep(0.01)  # uvicorn offers no start event; bounded by the timeout
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def port(self) -> int:
        return self._server.servers[0].sockets[0].getsockname()[1]
