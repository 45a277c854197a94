"""Runs an ASGI app with uvicorn inside imgate's event loop (an async context manager)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Self

import uvicorn

from broker.listeners import ListenerError, bind_error

log = logging.getLogger("imgate.http")

_START_TIMEOUT = 10.0

# An accept loop of the caller's: (listening socket, protocol factory, connections open now).
Acceptor = Callable[[socket.socket, Callable[[], asyncio.Protocol], Callable[[], int]], Coroutine[Any, Any, None]]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the composition root owns the process's signals


class EmbeddedHttpServer:
    """``serve()`` runs in a task of the composition root's TaskGroup; ``started()`` waits until
    it listens (or raises its start-up error); ``shutdown()`` asks it to stop."""

    def __init__(self, app: Any, host: str, port: int, *, name: str = "admin API", accept: Acceptor | None = None,
                 setting: str = "admin.port", **options: Any) -> None:
        """``options``: more ``uvicorn.Config`` options (the web listener's protocol and timeouts).
        ``accept``: accept connections with this loop instead of uvicorn's (which accepts all it
        can, always): it can stop accepting, leaving connections in the kernel's backlog."""
        self.name = name
        self.setting = setting  # its port's setting ("web.port"), named when it cannot listen (its host's: "web.host")
        self._server = _Server(uvicorn.Config(app, host=host, port=port, lifespan="off", access_log=False,
                                              log_level="warning", use_colors=False, **options))
        self._done = asyncio.Event()
        self._error: BaseException | None = None
        self._accept = accept
        self._socket: socket.socket | None = None
        self._port: int | None = None
        self._accepting: asyncio.Task[None] | None = None

    async def serve(self) -> None:
        try:
            if self._accept is None:
                # Bound here, not by uvicorn: a port that cannot be bound is then one line of ours.
                sock = self._bind()  # uvicorn's from here on: it closes it
                self._port = int(sock.getsockname()[1])
                await self._server.serve(sockets=[sock])
            else:
                await self._serve_accepting(self._accept)
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            self._done.set()

    def _bind(self) -> socket.socket:
        config = self._server.config
        try:
            family = socket.getaddrinfo(config.host, config.port, type=socket.SOCK_STREAM)[0][0]
            sock = socket.create_server((config.host, config.port), family=family, backlog=config.backlog)
        except OSError as exc:
            raise bind_error(f"the {self.name}", config.host, config.port, exc, self.setting,
                             self.setting.rpartition(".")[0] + ".host") from None
        sock.setblocking(False)
        return sock

    async def _serve_accepting(self, accept: Acceptor) -> None:
        config, server = self._server.config, self._server
        sock = self._bind()
        self._socket, self._port = sock, int(sock.getsockname()[1])

        def protocol() -> asyncio.Protocol:
            made: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=server.server_state, app_state=server.lifespan.state)
            return made

        serving = asyncio.ensure_future(server.serve(sockets=[]))  # uvicorn, with no listener of its own
        try:
            while not server.started and not serving.done():
                await asyncio.wait([serving], timeout=0.01)  # uvicorn offers no start event
            if server.started and not server.should_exit:
                self._accepting = asyncio.create_task(accept(sock, protocol, lambda: len(server.server_state.connections)),
                                                      name=f"imgate.http.accept[{self.name}]")
                self._accepting.add_done_callback(self._accept_ended)
            await serving
        finally:
            self._stop_accepting()
            serving.cancel()

    def _accept_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:  # a bug: the loop survives socket errors
            log.error("the %s stopped accepting connections", self.name, exc_info=task.exception())

    def _stop_accepting(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
        if self._socket is not None:
            self._socket.close()

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
        self._stop_accepting()

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
            _, rest = group.split((OSError, ListenerError))  # a start-up error: raised by started() already
            if rest is not None:
                raise rest from None

    @property
    def port(self) -> int:
        if self._port is not None:
            return self._port
        port: int = self._server.servers[0].sockets[0].getsockname()[1]
        return port

