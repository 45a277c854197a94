"""The embedded broker's network listeners: sockets, TLS and WebSocket framing, nothing of MQTT.

Each accepted connection becomes a :class:`Transport` (a byte stream with a non-blocking
``write``) handed to one ``Handler`` coroutine, which runs the MQTT protocol and returns when the
connection is over. Four kinds:

- ``tcp``: ``loop.create_server`` with a lean protocol (received chunks handed to one reader, no
  StreamReader); ``write`` goes straight to the asyncio transport (the hot path).
- ``tls``: the same with an ``ssl.SSLContext`` (TLS 1.2 at least, no renegotiation).
- ``ws`` / ``wss``: the ``websockets`` package, subprotocol ``mqtt`` on one path (others: HTTP 404).
  MQTT over WebSocket is a byte stream carried in binary messages (MQTT 3.1.1 §6, MQTT 5 §6):
  one message may hold several packets or part of one, text frames close the connection. The
  writes of one event-loop turn go out as one binary message, so a burst of small packets does
  not become a burst of small frames.

Why not amqtt's ``WebSocketsReader`` / ``WebSocketsWriter`` (amqtt 0.12, ``amqtt.adapters``),
though amqtt is the broker package: the reader's ``read(n)`` waits for exactly ``n`` bytes (the
contract here is "up to n, as soon as some are there"), turns text frames into bytes instead of
refusing them, and copies its whole buffer for every message it receives; the writer's
``drain()`` resets its buffer *after* awaiting ``send``, so bytes written while a send waits for
the socket are lost, and its ``write`` cannot schedule its own flush. Making them fit means
overriding every method and reaching into their private ``_stream`` / ``_protocol``, which
would share nothing but the names. Both sit on the same ``websockets`` connection used here.

TLS handshake failures (a client that distrusts the certificate, plain TCP on the TLS port,
TLS 1.1) are asyncio's: logged by it at debug level only, and the socket closed. The WebSocket
server's per-connection log lines (connection open, rejected, malformed handshake) are debug
level too; a port scanner must not fill the log.

SIGHUP is the application's business: it calls :meth:`Listeners.reload_tls`.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal, Protocol, cast
from urllib.parse import urlsplit

from websockets.asyncio.server import Server as WsServer
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Subprotocol

log = logging.getLogger(__name__)

ListenerKind = Literal["tcp", "tls", "ws", "wss"]
KIND_NAMES: dict[str, str] = {
    "tcp": "MQTT",
    "tls": "MQTT over TLS",
    "ws": "MQTT over WebSocket",
    "wss": "MQTT over secure WebSocket",
}
_SECURE = frozenset({"tls", "wss"})
_MIN_MESSAGE = 1024
# WebSocket frames queued before the socket stops being read: memory per connection is bounded
# by about this many max_message (websockets' own default is 16).
_WS_MAX_QUEUE = 4
_TLS_SHUTDOWN_TIMEOUT = 5.0  # waiting for the peer's close_notify when the peer closes first


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    """One listening socket. ``setting`` (and the other ``*_setting``) name the configuration keys
    behind the values, so an error can say which one to change."""

    kind: ListenerKind
    host: str
    port: int  # 0: any free port
    setting: str  # the setting that chose this port, e.g. "mqtt.tls_port"
    cert: Path | None = None  # PEM certificate chain (server certificate first), for tls/wss
    key: Path | None = None  # PEM private key, unencrypted
    ws_path: str = "/mqtt"
    max_message: int = 1 << 20  # largest WebSocket message accepted
    host_setting: str = "mqtt.host"
    cert_setting: str = "mqtt.tls_cert"
    key_setting: str = "mqtt.tls_key"

    def __post_init__(self) -> None:
        if self.kind not in KIND_NAMES:
            msg = f"unknown listener kind {self.kind!r}"
            raise ValueError(msg)
        if not 0 <= self.port <= 65535:
            msg = f"{self.setting}: port {self.port} is not in 0-65535"
            raise ValueError(msg)
        if self.kind in _SECURE and (self.cert is None or self.key is None):
            msg = (f"{KIND_NAMES[self.kind]} ({self.setting}) needs a certificate and a key: "
                   f"set {self.cert_setting} and {self.key_setting}")
            raise ValueError(msg)
        if not self.ws_path.startswith("/"):
            msg = f"ws_path must start with '/': {self.ws_path!r}"
            raise ValueError(msg)
        if self.max_message < _MIN_MESSAGE:
            msg = f"max_message must be at least {_MIN_MESSAGE}"
            raise ValueError(msg)


class ListenerError(Exception):
    """A listener cannot start, or its certificate cannot be (re)loaded. The message is one line
    naming the address or file and the setting to change, e.g. ``cannot listen for MQTT over TLS
    on 127.0.0.1:8883: address already in use (set mqtt.tls_port / IMGATE_MQTT__TLS_PORT to a
    free port)``. ``setting``: the port's setting, when the port is what failed."""

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class Transport(Protocol):
    """One accepted connection, as the MQTT handler sees it: a byte stream."""

    kind: ListenerKind
    peer: str  # "host:port" ("[v6]:port") for logs

    async def read(self, n: int) -> bytes:
        """Up to ``n`` (>= 1) bytes as soon as some are there; ``b""`` at EOF or once closed."""
        ...

    def write(self, data: bytes) -> None:
        """Queue ``data``; never blocks, never raises once closed (the data is then dropped)."""
        ...

    def buffered(self) -> int:
        """Bytes written and not yet handed to the kernel: stop writing to a peer that does not read."""
        ...

    def abort(self) -> None:
        """Close now, dropping what is buffered."""
        ...

    async def close(self, timeout: float = 1.0) -> None:
        """Flush what is buffered for at most ``timeout`` seconds, then close (abort on timeout)."""
        ...

    def extra_info(self, name: str, default: Any = None) -> Any:
        """asyncio's ``get_extra_info`` of the underlying socket transport ("peername",
        "sockname", "socket", "ssl_object", "peercert", ...)."""
        ...


Handler = Callable[[Transport], Awaitable[None]]


def _env(setting: str) -> str:
    return "IMGATE_" + setting.upper().replace(".", "__")


def _hostport(host: str, port: int | str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _peer(addr: Any) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        return _hostport(str(addr[0]), addr[1])
    return str(addr or "?")


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


_LINGER_BYTES = 1 << 20  # read and dropped at most, while closing, before the connection is cut


_READ_HIGH = 128 * 1024  # bytes received and not yet read: above this the socket is not read
_READ_LOW = 64 * 1024  # ... until what is buffered is down to this (asyncio's StreamReader's marks)


class _StreamProtocol(asyncio.Protocol):
    """TCP or TLS, received: the chunks the socket gave, for one reader, with asyncio's
    StreamReader's flow control but none of its buffer copies, and one future per wait. It
    starts the connection's handler when the connection is made."""

    def __init__(self, kind: ListenerKind, start: Callable[[_StreamProtocol], Coroutine[Any, Any, None]]) -> None:
        self.kind: ListenerKind = kind
        self._start = start
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = False
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self.transport: asyncio.Transport | None = None
        self.over_ssl = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are asyncio's in all but the class: no isinstance).
        self.transport = cast("asyncio.Transport", transport)
        self.over_ssl = self.transport.get_extra_info("sslcontext") is not None
        self._task = asyncio.get_running_loop().create_task(self._start(self))  # held here, like asyncio's

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._size > _READ_HIGH and not self._paused and self.transport is not None:
            try:
                self.transport.pause_reading()
            except NotImplementedError:
                return
            self._paused = True

    def eof_received(self) -> bool:
        self._wake_eof()
        return not self.over_ssl  # plain TCP: stay open for writing (a half-close), as asyncio's streams do

    def connection_lost(self, exc: Exception | None) -> None:
        self._wake_eof()
        if not self.closed.done():
            self.closed.set_result(None)

    def _wake_eof(self) -> None:
        self._eof = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self, n: int) -> bytes:
        chunks = self._chunks
        while not chunks:
            if self._eof:
                return b""
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        data = chunks.popleft()
        if len(data) > n:
            chunks.appendleft(data[n:])
            data = data[:n]
        elif chunks and len(data) + len(chunks[0]) <= n:
            parts = [data]
            size = len(data)
            while chunks and size + len(chunks[0]) <= n:
                size += len(chunks[0])
                parts.append(chunks.popleft())
            data = b"".join(parts)
        self._size -= len(data)
        if self._paused and self._size <= _READ_LOW and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data


class _StreamTransport:
    """TCP or TLS. ``write`` is the asyncio transport's, behind one check."""

    __slots__ = ("_aborted", "_protocol", "_transport", "kind", "peer")

    def __init__(self, kind: ListenerKind, protocol: _StreamProtocol) -> None:
        assert protocol.transport is not None
        self.kind: ListenerKind = kind
        self._aborted = False
        self._protocol = protocol
        self._transport = protocol.transport
        self.peer = _peer(self._transport.get_extra_info("peername"))

    async def read(self, n: int) -> bytes:
        if n < 1:  # read(0) would look like EOF, read(-1) would read until EOF, unbounded
            msg = f"read needs n >= 1, not {n}"
            raise ValueError(msg)
        return await self._protocol.read(n)  # a reset or TLS error ends the stream: b""

    def write(self, data: bytes) -> None:
        transport = self._transport
        # A closed asyncio transport drops writes but logs a warning for each after the fifth.
        if not transport.is_closing():
            transport.write(data)

    def buffered(self) -> int:
        # Aborted: what was buffered is dropped (uvloop frees it a loop turn later).
        return 0 if self._aborted else self._transport.get_write_buffer_size()

    def abort(self) -> None:
        self._aborted = True
        self._transport.abort()

    async def close(self, timeout: float = 1.0) -> None:
        transport = self._transport
        try:
            async with asyncio.timeout(timeout):
                if not transport.is_closing() and transport.can_write_eof():
                    await self._linger()
                if not transport.is_closing():
                    transport.close()  # sends what is buffered (TLS: then close_notify), then closes
                await self._protocol.closed
        except TimeoutError:
            self.abort()
        except OSError:
            pass  # the connection ended with an error: it is closed either way

    async def _linger(self) -> None:
        """A lingering close (plain TCP): bytes the client sent that the server never read make
        the kernel answer the close with a reset, and a reset can destroy the last packets sent
        to the client before it reads them (an MQTT 5 DISCONNECT and its reason). So: send what
        is buffered and a FIN, then read and drop what comes until the client closes too
        (bounded by the caller's timeout and by _LINGER_BYTES)."""
        self._transport.write_eof()
        dropped = 0
        while dropped < _LINGER_BYTES:
            chunk = await self._protocol.read(65536)
            if not chunk:
                return
            dropped += len(chunk)

    def extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


class _WsTransport:
    """WebSocket: received binary messages are a byte stream; writes are coalesced.

    ``write`` appends to a buffer and schedules one flush per event-loop turn (``call_soon``),
    which frames the whole buffer as one binary message, synchronously, as ``websockets.broadcast``
    does (sans-IO ``protocol.send_binary`` + ``send_data``): no task per connection, no await on
    the write path. The asyncio transport's buffer is not capped here: ``buffered()`` reports it
    (plus what waits for the flush) and the broker stops writing to a client that does not read.
    """

    __slots__ = ("_buf", "_close_timeout", "_closing", "_conn", "_eof", "_flush_handle", "_loop", "_rbuf",
                 "_rpos", "_transport", "kind", "peer")

    def __init__(self, kind: ListenerKind, conn: ServerConnection, close_timeout: float) -> None:
        self.kind: ListenerKind = kind
        self.peer = _peer(conn.remote_address)
        self._conn = conn
        self._transport = conn.transport
        self._loop = asyncio.get_running_loop()
        self._close_timeout = close_timeout
        self._buf = bytearray()
        self._flush_handle: asyncio.Handle | None = None
        self._closing = False
        self._rbuf = b""
        self._rpos = 0
        self._eof = False

    async def read(self, n: int) -> bytes:
        if n < 1:
            msg = f"read needs n >= 1, not {n}"
            raise ValueError(msg)
        if self._rbuf:  # the rest of a message longer than an earlier n
            start, rest = self._rpos, self._rbuf
            if len(rest) - start <= n:
                self._rbuf, self._rpos = b"", 0  # let the message go
                return rest[start:]
            self._rpos = start + n
            return rest[start:start + n]
        while not self._eof:
            try:
                message = await self._conn.recv()
            except ConnectionClosed:
                self._eof = True
                break
            if isinstance(message, str):  # MQTT-6.0.0-1: anything but binary frames closes the connection
                self._eof = True
                await self._shutdown(self._close_timeout, CloseCode.UNSUPPORTED_DATA, "MQTT needs binary frames")
                break
            if not message:
                continue  # an empty message is not EOF
            if len(message) <= n:
                return message
            self._rbuf, self._rpos = message, n
            return message[:n]
        return b""

    def write(self, data: bytes) -> None:
        if self._closing:
            return
        self._buf += data
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        if not self._buf:
            return
        conn = self._conn
        if self._closing or conn.protocol.state is not State.OPEN:
            self._buf.clear()  # closed or closing: writes are dropped
            return
        data, self._buf = self._buf, bytearray()
        try:
            conn.protocol.send_binary(bytes(data))
            conn.send_data()
        except (OSError, WebSocketException) as exc:  # the connection is over
            log.debug("%s: write failed: %s", self.peer, _one_line(exc))
            self.abort()

    def buffered(self) -> int:
        return len(self._buf) + self._transport.get_write_buffer_size()

    def abort(self) -> None:
        self._closing = True
        self._buf.clear()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._transport.abort()

    async def close(self, timeout: float = 1.0) -> None:
        await self._shutdown(timeout, CloseCode.NORMAL_CLOSURE, "")

    async def _shutdown(self, timeout: float, code: int, reason: str) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush()
        self._closing = True
        try:
            async with asyncio.timeout(timeout):
                # Queues the close frame after what is buffered, waits until the socket has taken
                # it all, then for the client's close frame and the end of the TCP connection.
                await self._conn.close(code, reason)
        except TimeoutError:
            self.abort()

    def extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


class _WsLog(logging.LoggerAdapter):  # type: ignore[type-arg]  # generic only in typeshed
    """The ``websockets`` server's logger, with what a client can cause demoted to debug: it logs
    every connection opened or rejected at info, and a malformed handshake at error with a
    traceback."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if level < logging.WARNING or msg == "opening handshake failed":
            level = logging.DEBUG
            kwargs.pop("exc_info", None)
        super().log(level, msg, *args, **kwargs)


_WS_LOG = _WsLog(logging.getLogger(f"{__name__}.websockets"), {})


def _no_password() -> bytes:
    # Without a password callback OpenSSL would prompt on the terminal for an encrypted key,
    # blocking the event loop.
    raise _EncryptedKey


class _EncryptedKey(Exception):
    pass


def _readable(path: Path, what: str, setting: str) -> None:
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError as exc:
        reason = exc.strerror.lower() if exc.strerror else _one_line(exc)
        msg = f"cannot read the TLS {what} {path}: {reason} (set {setting} / {_env(setting)})"
        raise ListenerError(msg) from exc


def _load_chain(ctx: ssl.SSLContext, spec: ListenerSpec) -> None:
    """Load ``spec``'s certificate and key into ``ctx``, or raise one line naming the bad file."""
    assert spec.cert is not None and spec.key is not None  # checked by ListenerSpec
    cert, key = spec.cert, spec.key
    _readable(cert, "certificate", spec.cert_setting)
    _readable(key, "key", spec.key_setting)
    try:  # the certificate alone first, so a bad one is not reported as a bad key
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=cert)
    except (ssl.SSLError, OSError) as exc:
        msg = (f"cannot use the TLS certificate {cert}: not a PEM certificate ({_ssl_reason(exc)}) "
               f"(set {spec.cert_setting} / {_env(spec.cert_setting)})")
        raise ListenerError(msg) from exc
    try:
        ctx.load_cert_chain(cert, key, password=_no_password)
    except _EncryptedKey as exc:
        msg = (f"cannot use the TLS key {key}: it is passphrase-protected; imgate needs an unencrypted key "
               f"(set {spec.key_setting} / {_env(spec.key_setting)})")
        raise ListenerError(msg) from exc
    except (ssl.SSLError, OSError) as exc:
        reason = _ssl_reason(exc)
        if "KEY_VALUES_MISMATCH" in reason.upper().replace(" ", "_"):
            msg = (f"cannot use the TLS key {key}: it does not belong to the certificate {cert} "
                   f"(set {spec.key_setting} / {_env(spec.key_setting)} and {spec.cert_setting})")
        elif "PEM lib" in reason or "PEM_LIB" in reason:  # what OpenSSL says for a file with no key in it
            msg = (f"cannot use the TLS key {key}: not a PEM private key "
                   f"(set {spec.key_setting} / {_env(spec.key_setting)})")
        else:
            msg = (f"cannot use the TLS key {key} with the certificate {cert}: {reason} "
                   f"(set {spec.key_setting} / {_env(spec.key_setting)})")
        raise ListenerError(msg) from exc


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason) if reason else _one_line(exc)


def _new_context(spec: ListenerSpec) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)  # renegotiation is a CPU-burning DoS vector
    _load_chain(ctx, spec)
    return ctx


def _bind_error(spec: ListenerSpec, exc: OSError) -> ListenerError:
    return bind_error(KIND_NAMES[spec.kind], spec.host, spec.port, exc, spec.setting, spec.host_setting)


def bind_error(what: str, host: str, port: int, exc: OSError, setting: str, host_setting: str) -> ListenerError:
    """The one line a listener that cannot bind says: where, why, and the setting to change
    (``setting``: its port's, e.g. ``web.port``; ``host_setting``: its address's)."""
    where = f"cannot listen for {what} on {_hostport(host, port)}"
    port_hint = f"{setting} / {_env(setting)}"
    host_hint = f"{host_setting} / {_env(host_setting)}"
    if isinstance(exc, socket.gaierror):
        return ListenerError(f"{where}: unknown host ({_one_line(exc)}) (set {host_hint} to an address "
                             f"of this machine)")
    code = exc.errno
    if code == errno.EADDRINUSE:
        return ListenerError(f"{where}: address already in use (set {port_hint} to a free port)", setting)
    if code == errno.EACCES:
        return ListenerError(f"{where}: permission denied (ports below 1024 need privileges: set {port_hint} "
                             f"to another port)", setting)
    if code == errno.EADDRNOTAVAIL:
        return ListenerError(f"{where}: address not available on this machine (set {host_hint} to an address "
                             f"of this machine)")
    reason = os.strerror(code).lower() if code else _one_line(exc)
    return ListenerError(f"{where}: {reason} (check {port_hint} and {host_hint})")


@dataclass(slots=True)
class _TlsGroup:
    """One certificate/key pair and the live context that every listener using it shares."""

    spec: ListenerSpec
    context: ssl.SSLContext
    kinds: list[str] = field(default_factory=list)


class Listeners:
    """The broker's listening sockets. ``start`` binds them all, ``handler`` runs per connection.

    The connection is closed when the handler returns (gracefully, ``close_timeout`` at most), or
    aborted if it raises (logged on one line; the traceback at debug level). Handlers are not
    cancelled here: at shutdown the caller ends them, e.g. by closing the transports in
    :attr:`connections`.
    """

    def __init__(self, specs: Sequence[ListenerSpec], handler: Handler, *, backlog: int = 1024,
                 handshake_timeout: float = 10.0, close_timeout: float = 1.0) -> None:
        kinds = [spec.kind for spec in specs]
        if len(set(kinds)) != len(kinds):
            msg = f"one listener per kind: {kinds}"
            raise ValueError(msg)
        self._specs = tuple(specs)
        self._handler = handler
        self._backlog = backlog
        self._handshake_timeout = handshake_timeout
        self._close_timeout = close_timeout
        self._servers: dict[str, asyncio.Server] = {}
        self._ws_servers: dict[str, WsServer] = {}
        self._tls: dict[tuple[Path, Path], _TlsGroup] = {}
        self._live: set[Transport] = set()
        self._started = False

    @property
    def connections(self) -> frozenset[Transport]:
        """The connections whose handler is running."""
        return frozenset(self._live)

    async def start(self) -> None:
        """Bind every listener (certificates are loaded first, so a bad one binds nothing).

        Raises:
            ListenerError: a port cannot be bound or a certificate/key cannot be loaded; the
                listeners already bound are closed.
            RuntimeError: already started.
        """
        if self._started:
            msg = "listeners already started"
            raise RuntimeError(msg)
        self._started = True
        try:
            for spec in self._specs:
                if spec.kind in _SECURE:
                    assert spec.cert is not None and spec.key is not None
                    group = self._tls.get((spec.cert, spec.key))
                    if group is None:
                        # File reads and key parsing: off the event loop.
                        context = await asyncio.to_thread(_new_context, spec)
                        group = self._tls[(spec.cert, spec.key)] = _TlsGroup(spec, context)
                    group.kinds.append(spec.kind)
            for spec in self._specs:
                await self._bind(spec)
        except BaseException:
            await self.close()
            raise
        for spec in self._specs:
            log.info("%s listening on %s", KIND_NAMES[spec.kind], _hostport(spec.host, self.port(spec.kind)))

    async def _bind(self, spec: ListenerSpec) -> None:
        context = self._tls[(spec.cert, spec.key)].context if spec.kind in _SECURE else None  # type: ignore[index]
        try:
            if spec.kind in ("tcp", "tls"):
                tls_args: dict[str, Any] = {}
                if context is not None:
                    tls_args = {"ssl": context, "ssl_handshake_timeout": self._handshake_timeout,
                                "ssl_shutdown_timeout": _TLS_SHUTDOWN_TIMEOUT}
                self._servers[spec.kind] = await asyncio.get_running_loop().create_server(
                    partial(_StreamProtocol, spec.kind, self._on_stream), spec.host, spec.port, backlog=self._backlog,
                    **tls_args)
            else:
                self._ws_servers[spec.kind] = await serve(
                    partial(self._on_ws, spec.kind), spec.host, spec.port,
                    ssl=context, backlog=self._backlog,
                    subprotocols=[Subprotocol("mqtt")],
                    process_request=partial(_check_path, spec.ws_path),
                    compression=None,
                    max_size=spec.max_message,
                    max_queue=_WS_MAX_QUEUE,
                    open_timeout=self._handshake_timeout,  # the TLS and HTTP handshakes together
                    close_timeout=self._close_timeout,
                    ping_interval=None,  # MQTT's keep-alive is the liveness check
                    server_header=None,
                    logger=_WS_LOG,
                )
        except OSError as exc:
            raise _bind_error(spec, exc) from exc

    def port(self, kind: ListenerKind) -> int:
        """The port ``kind`` is bound to (the chosen one when its spec said 0; with port 0 and a
        host that resolves to several addresses, e.g. "localhost", each socket gets its own port
        and this is the first one's).

        Raises:
            KeyError: no such listener is bound.
        """
        server: asyncio.Server | WsServer | None = self._servers.get(kind) or self._ws_servers.get(kind)
        sock = next(iter(server.sockets), None) if server is not None else None
        if sock is None:
            raise KeyError(kind)
        return int(sock.getsockname()[1])

    def stop_accepting(self) -> None:
        """Close the listening sockets (now: the ports are free when this returns); live
        connections go on."""
        for server in self._servers.values():
            server.close()
        for ws_server in self._ws_servers.values():
            # The asyncio server under websockets': its own close() would also close (or wait
            # for) the live connections.
            ws_server.server.close()

    async def close(self) -> None:
        """Stop accepting. Live connections are not waited for (on Python >= 3.12
        ``asyncio.Server.wait_closed`` would wait for them, which is why it is not called)."""
        self.stop_accepting()
        await asyncio.sleep(0)  # let connections accepted in this turn reach their protocol

    def reload_tls(self) -> None:
        """Read the certificates and keys again into the live TLS contexts: new handshakes
        present the new certificate, established connections keep theirs.

        Each pair is loaded into a scratch context first; only a pair that loads there replaces
        the live one, so bad files leave the old certificate in service. Reads two small local
        files on the calling thread (the event loop's, for a SIGHUP handler).

        Raises:
            ListenerError: a certificate or key cannot be loaded (names the file and setting);
                that pair keeps its old certificate.
        """
        for group in self._tls.values():
            _new_context(group.spec)  # raises, leaving the live context alone
            _load_chain(group.context, group.spec)
            log.info("TLS certificate reloaded from %s for %s", group.spec.cert,
                     ", ".join(KIND_NAMES[k] for k in group.kinds))

    async def _on_stream(self, protocol: _StreamProtocol) -> None:
        assert protocol.transport is not None
        sock = protocol.transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio sets it already (3.6+); explicit, since small MQTT packets must not wait for Nagle.
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        try:
            await self._run(_StreamTransport(protocol.kind, protocol))
        except asyncio.CancelledError:
            # Nobody awaits this task, and asyncio's done-callback (3.11.x) logs an error for a
            # cancelled one (task.exception() raises): end it normally; the connection is aborted.
            return

    async def _on_ws(self, kind: ListenerKind, conn: ServerConnection) -> None:
        await self._run(_WsTransport(kind, conn, self._close_timeout))

    async def _run(self, transport: Transport) -> None:
        self._live.add(transport)
        try:
            await self._handler(transport)
        except asyncio.CancelledError:
            transport.abort()
            raise
        except Exception as exc:
            log.warning("%s connection %s: handler failed: %s: %s", KIND_NAMES[transport.kind], transport.peer,
                        type(exc).__name__, _one_line(exc))
            log.debug("handler traceback (%s)", transport.peer, exc_info=True)
            transport.abort()
        else:
            await transport.close(self._close_timeout)
        finally:
            self._live.discard(transport)


def _check_path(ws_path: str, conn: ServerConnection, request: Request) -> Response | None:
    """HTTP 404 unless the request is for ``ws_path`` (a query string is allowed)."""
    if urlsplit(request.path).path != ws_path:
        return conn.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
    return None


__all__ = ["KIND_NAMES", "Handler", "ListenerError", "ListenerKind", "ListenerSpec", "Listeners", "Transport"]
