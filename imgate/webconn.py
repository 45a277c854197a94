"""The web listener's connections (``[web]``, issue 24): uvicorn's HTTP/1.1 protocol (h11) with
the limits uvicorn does not have.

uvicorn (0.55) times a connection out only *between* requests (``timeout_keep_alive``, armed
after a response): a socket that never sends a byte, or sends a request's headers a byte at a
time, stays open for ever. Its ``limit_concurrency`` answers 503 to requests over the limit but
keeps every socket. And the web listener shares the process's file descriptors with the MQTT
listeners: idle web sockets up to RLIMIT_NOFILE lock MQTT clients out. So, per connection:

- **Not accepted** while the listener holds ``web.max_connections`` connections (lowered at
  start so that it fits under the open-files limit with ``web.fd_reserve`` to spare): imgate's
  own accept loop stops taking connections, which wait in the kernel's backlog (no descriptor,
  no CPU; a refused-and-retried flood would cost both) until one closes. And while the process
  has fewer than ``web.fd_reserve`` descriptors left, a connection accepted is closed at once
  and the loop looks again every 0.1 s: those descriptors stay for MQTT clients (and the
  database, and uploads' files).
- **Idle**: closed after ``web.idle_timeout_s`` without a byte, from the accept on (uvicorn's
  keep-alive timer, armed at once instead of only after a first response).
- **Headers**: closed unless a request's line and headers have arrived within
  ``web.header_timeout_s`` of the accept, or of the previous response (slowloris). A request's
  body is the application's to pace (``imgate.web``: the minimum upload rate).
- **Slow readers**: closed (aborted, the rest of the answer dropped) when the server has been
  waiting to write for ``web.idle_timeout_s`` and the client has taken none of the answer
  meanwhile (asyncio pauses writing once a connection's buffered answer passes its high-water
  mark, the kernel's send buffer full, and resumes it only below the low-water mark: a slow
  reader may keep it paused long while taking its answer, and is kept; what it took is what left
  the kernel's send queue, ``TIOCOUTQ``, and asyncio's buffer). Without this, a client that
  asks for a large file (``GET /vendor/mqtt.min.js``, 342 KB, public) and never reads held its
  connection for ever: uvicorn's timers run only while it waits to read, and
  ``web.max_connections`` of them stopped the listener for everyone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from uvicorn.protocols.http.h11_impl import H11Protocol

from broker.listeners import ListenerError

log = logging.getLogger("imgate.web")

_RECHECK_S = 0.1  # out of descriptors: nothing says when some are freed elsewhere, so look again
_MIN_CONNECTIONS = 8  # below this, the web listener would be of no use: a start-up error
_WARN_EVERY_S = 60.0
try:
    import fcntl
    import termios

    _OUTQ: int | None = termios.TIOCOUTQ  # bytes in a socket's send queue, not acknowledged yet (Linux)
except (ImportError, AttributeError):  # pragma: no cover - elsewhere, asyncio's buffer alone
    _OUTQ = None


def _fd_dir() -> str | None:
    for path in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(path):
            return path
    return None


def fd_limit() -> int:
    """The process's soft RLIMIT_NOFILE (0: unknown, no limit to keep under)."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return 0
    return 0 if soft == resource.RLIM_INFINITY else int(soft)


@dataclass
class OpenFiles:
    """How many file descriptors the process has open, counted in ``/proc/self/fd`` (about 0.4 µs
    a descriptor, in memory). The count is taken again at most every ``interval_s``, or more
    rarely when it is costly (at most ``max_share`` of the time); in between, each connection the
    web listener accepted counts as one more (closes are not subtracted: it errs on refusing)."""

    interval_s: float = 0.1
    max_share: float = 0.05
    _dir: str | None = field(default_factory=_fd_dir)
    _count: int = 0
    _since: int = 0
    _next: float = 0.0

    def count(self, newest_fd: int = -1) -> int:
        """The open descriptors, at least ``newest_fd + 1`` (descriptors are allocated lowest first)."""
        now = time.monotonic()
        if self._dir is not None and now >= self._next:
            started = time.perf_counter()
            try:
                self._count, self._since = len(os.listdir(self._dir)), 0
            except OSError:  # out of descriptors to list them with: as full as it gets
                self._count, self._since = 1 << 30, 0
            cost = time.perf_counter() - started
            self._next = now + max(self.interval_s, cost / self.max_share)
        return max(self._count + self._since, newest_fd + 1)

    def opened(self) -> None:
        self._since += 1


@dataclass
class WebGuard:
    """The web listener's accept loop (:meth:`accept`): when it takes connections, and which it keeps."""

    max_connections: int  # derived: web.max_connections, lowered to fit under the open-files limit
    fd_limit: int  # 0: no limit known (no reserve kept)
    fd_reserve: int
    header_timeout_s: float
    files: OpenFiles = field(default_factory=OpenFiles)
    refused: int = 0  # connections closed at once so far (within the descriptor reserve)
    _warned_at: float = float("-inf")
    _freed: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def plan(cls, *, max_connections: int, fd_reserve: int, header_timeout_s: float,
             limit: int | None = None) -> WebGuard:
        """The guard for this process: the connection cap fits under RLIMIT_NOFILE (``limit``)
        with ``fd_reserve`` to spare, counting what is open now.

        Raises:
            ListenerError: the limit leaves the web listener fewer than a few connections (one
                line naming web.fd_reserve and the limit).
        """
        limit = fd_limit() if limit is None else limit
        files = OpenFiles()
        cap = max_connections
        if limit:
            room = limit - fd_reserve - files.count()
            if room < _MIN_CONNECTIONS:
                msg = (f"the web listener would have {max(room, 0)} connection(s): web.fd_reserve ({fd_reserve}) "
                       f"and the {files.count()} files open leave too few of the open-files limit ({limit}); "
                       "lower web.fd_reserve (IMGATE_WEB__FD_RESERVE) or raise the limit (ulimit -n)")
                raise ListenerError(msg)
            if room < cap:
                log.warning("web.max_connections (%d) lowered to %d: the open-files limit is %d, with "
                            "web.fd_reserve (%d) kept for MQTT clients", cap, room, limit, fd_reserve)
                cap = room
        return cls(cap, limit, fd_reserve, header_timeout_s, files)

    def _full(self, connections: int, fd: int = -1) -> str | None:
        """Why no connection is taken now (``fd``: one just accepted, counted), or None."""
        if connections >= self.max_connections:
            return f"{connections} connections open (web.max_connections: {self.max_connections})"
        if self.fd_limit and (used := self.files.count(fd)) > self.fd_limit - self.fd_reserve:
            return (f"{used} of {self.fd_limit} file descriptors in use (web.fd_reserve: {self.fd_reserve} kept "
                    "for MQTT clients)")
        return None

    def _warn(self, reason: str) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY_S:
            self._warned_at = now
            log.warning("web listener: not accepting connections: %s (%d closed at once so far)", reason,
                        self.refused)

    def closed(self) -> None:
        """A connection of the listener's has closed: there may be room again."""
        self._freed.set()

    async def accept(self, sock: socket.socket, protocol: Callable[[], asyncio.Protocol],
                     connections: Callable[[], int]) -> None:
        """Accept connections on ``sock`` (non-blocking, listening) while there is room, each
        served by a new ``protocol()``; ``connections()``: how many are open. Runs until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            while (reason := self._full(connections())) is not None:
                self._warn(reason)
                if connections() >= self.max_connections:
                    self._freed.clear()
                    await self._freed.wait()  # set when one of ours closes
                else:
                    await asyncio.sleep(_RECHECK_S)
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as exc:  # out of descriptors (EMFILE), or a connection gone before it was taken
                self._warn(f"accept failed: {exc}")
                await asyncio.sleep(_RECHECK_S)
                continue
            if (reason := self._full(connections(), conn.fileno())) is not None:  # within the reserve now
                conn.close()
                self.refused += 1
                self._warn(reason)
                continue
            self.files.opened()
            conn.setblocking(False)
            try:
                await loop.connect_accepted_socket(protocol, conn)
            except OSError:
                conn.close()

    def protocol(self) -> type[H11Protocol]:
        """uvicorn's ``http`` protocol class for a listener guarded by this guard."""
        return type("GuardedH11Protocol", (GuardedH11Protocol,), {"guard": self})


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with the idle, header and write timeouts (module docstring); it
    tells its :class:`WebGuard` when it closes."""

    guard: ClassVar[WebGuard]
    _head_timer: asyncio.TimerHandle | None = None
    _write_timer: asyncio.TimerHandle | None = None
    _unsent_at: int = 0  # what was not taken yet when the write timer was armed

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn arms its keep-alive timer only after a response: a socket that never sends a
        # byte would stay open. Armed from the accept on, it closes one idle for idle_timeout_s.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)
        self._arm_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head()
        self._disarm_write()
        super().connection_lost(exc)
        self.guard.closed()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:  # a request's headers are in
            self._disarm_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._arm_head()  # the next request's headers (or the end of a body nobody read) in time

    def _arm_head(self) -> None:
        self._disarm_head()
        self._head_timer = self.loop.call_later(self.guard.header_timeout_s, self._head_timed_out)

    def _disarm_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    # The transport calls these when its write buffer passes the high-water mark and when it is
    # back under the low-water mark; uvicorn's send() waits (FlowControl.drain) in between.
    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:  # the client has idle_timeout_s to take some of the answer
            self._arm_write()

    def _arm_write(self) -> None:
        self._unsent_at = self._unsent()
        self._write_timer = self.loop.call_later(self.timeout_keep_alive, self._write_timed_out)

    def _unsent(self) -> int:
        """The answer's bytes the client has not taken: in asyncio's buffer and the kernel's send queue."""
        unsent = self.transport.get_write_buffer_size()
        sock = self.transport.get_extra_info("socket")
        if _OUTQ is not None and sock is not None:
            try:
                unsent += int(struct.unpack("i", fcntl.ioctl(sock.fileno(), _OUTQ, b"\0" * 4))[0])
            except OSError:
                pass
        return unsent

    def resume_writing(self) -> None:
        super().resume_writing()
        self._disarm_write()

    def _disarm_write(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _write_timed_out(self) -> None:
        self._write_timer = None
        if self._unsent() < self._unsent_at:  # the client took some: it has another idle_timeout_s
            self._arm_write()
            return
        # close() would wait to write what is buffered, which this client does not take: abort.
        # connection_lost (soon) wakes the send() waiting to write, which then drops the rest.
        self.transport.abort()


def uvicorn_options(guard: WebGuard, idle_timeout_s: int) -> dict[str, Any]:
    """:class:`imgate.http.EmbeddedHttpServer` options of the web listener: the guard's accept
    loop and protocol, uvicorn's keep-alive timeout as the idle timeout, no WebSocket (the page
    speaks MQTT to the broker's own WebSocket listener)."""
    return {"accept": guard.accept, "http": guard.protocol(), "ws": "none", "timeout_keep_alive": idle_timeout_s}
