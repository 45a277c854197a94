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
    """``serve()`` runs in a task of the composition root's TaskGroup; ``started()`` waits until
    it listens (or raises its start-up error); ``shutdown()`` asks it to stop."""

    def __init__(self, app: Any, host: str, port: int, *, name: str = "admin API", **options: Any) -> None:
        """``options``: more ``uvicorn.Config`` options (the web listener's protocol and timeouts)."""
        self.name = name
        self._server = _Server(uvicorn.Config(app, host=host, port=port, lifespan="off", access_log=False,
                                              log_level="warning", **options))
        self._done = asyncio.Event()
        self._error: BaseException | None = None

    async def serve(self) -> None:
        try:
            await self._server.serve()
        except SystemExit:  # uvicorn's answer to a port it cannot bind (it logged why)
            config = self._server.config
            self._error = OSError(f"the {self.name} could not listen on {config.host}:{config.port}")
            raise self._error from None
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            self._done.set()

    async def started(self) -> None:
        async with asyncio.timeout(_START_TIMEOUT):
            while not self._server.started:
                if self._done.is_set():
                    if self._error is not None and not isinstance(self._error, asyncio.CancelledError):
                        raise self._error  # the start-up error (e.g. port in use)
                    msg = f"the {self.name} stopped at start"
                    raise RuntimeError(msg)
                await asyncio.sleep(0.01)  # uvicorn offers no start event; bounded by the timeout

    async def shutdown(self) -> None:
        """Ask ``serve()`` to stop: it lets the requests in flight finish and closes its port."""
        self._server.should_exit = True

    async def stopped(self, timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) until ``serve()`` has returned."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._done.wait()

    # Standalone (tests' fake clouds): ``async with EmbeddedHttpServer(...) as server``, serving
    # in a TaskGroup of its own.
    async def __aenter__(self) -> Self:
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._group.create_task(self.serve(), name="imgate.http")
        try:
            await self.started()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()
        try:
            await self._group.__aexit__(None, None, None)
        except BaseExceptionGroup as group:
            _, rest = group.split(OSError)  # a start-up error: raised by started() already
            if rest is not None:
                raise rest from None

    @property
    def port(self) -> int:
        port: int = self._server.servers[0].sockets[0].getsockname()[1]
        return port
