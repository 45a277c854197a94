"""The callbacks' HTTP client: POSTs over the shared outbound guard (``services.netguard``), lean
enough for the send path.

Each new connection goes to the addresses ``OutboundPolicy.addresses`` allows at that moment (the
connect-time check of ``GuardedBackend``: a DNS answer that changes after a check reaches nothing),
TLS verifying the URL's host name; no proxy (the environment is not read), no redirect followed,
no cookies; HTTP/1.1 with keep-alive (idle connections kept ``keepalive_s``), an answer read to at
most ``max_response_bytes``. It speaks only what a callback needs (a ``Content-Length`` or chunked
answer, or one ended by closing), in a few socket operations: the general client
(``services.push.webhooks.WebhookClient``, httpcore) costs about a millisecond of CPU a request
more, which every send would wait for.

Errors: ``TargetRefused`` (the guard), ``OSError`` (``ConnectionError``: no connection, a closed
or garbled answer; ``TimeoutError``: no connection within ``connect_timeout_s``).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque

from services.netguard import OutboundPolicy, OutboundUrl, default_ssl_context

_HEAD_LIMIT = 64 * 1024  # a status line and headers longer than this: a garbled answer
_MAX_IDLE = 64  # idle connections kept per endpoint


class _Conn:
    __slots__ = ("reader", "since", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.since = time.monotonic()

    def usable(self, keepalive_s: float) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing() and \
            time.monotonic() - self.since < keepalive_s

    def close(self) -> None:
        self.writer.close()


class _Stale(ConnectionError):
    """A kept connection was closed by the server before it answered anything (retried once)."""


class CallbackClient:
    """POSTs to callback URLs (checked ``OutboundUrl``\\ s). Close it with ``aclose``."""

    def __init__(self, policy: OutboundPolicy, *, connect_timeout_s: float = 1.0,
                 max_response_bytes: int = 64 * 1024, keepalive_s: float = 30.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.policy = policy
        self._connect_timeout = connect_timeout_s
        self._cap = max_response_bytes
        self._keepalive = keepalive_s
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], deque[_Conn]] = {}
        self.connections = 0  # opened (for the tests and metrics)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()

    async def post(self, target: OutboundUrl, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """POST ``body``; the status and at most ``max_response_bytes`` of the answer (that many:
        the answer was longer). Raises ``TargetRefused`` or ``OSError``."""
        key = (target.scheme, target.host, target.port)
        head = (f"POST {target.url.raw_path.decode('ascii')} HTTP/1.1\r\nHost: {target.url.netloc.decode('ascii')}\r\n"
                f"Content-Length: {len(body)}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
                ).encode()
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.usable(self._keepalive):
                conn.close()
                continue
            try:
                return await self._exchange(key, conn, head + body, reused=True)
            except _Stale:
                break  # closed by the server meanwhile: once more on a new connection
        conn = await self._connect(target)
        return await self._exchange(key, conn, head + body, reused=False)

    async def _connect(self, target: OutboundUrl) -> _Conn:
        addresses = await self.policy.addresses(target.host, target.port)  # TargetRefused, OSError
        tls = None
        if target.scheme == "https":
            if self._ssl is None:
                self._ssl = default_ssl_context()
            tls = self._ssl
        error: OSError | None = None
        for ip in addresses:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    reader, writer = await asyncio.open_connection(
                        str(ip), target.port, ssl=tls, server_hostname=target.host if tls else None,
                        limit=_HEAD_LIMIT)
            except OSError as exc:  # TimeoutError and ssl.SSLError too
                error = exc
                continue
            self.connections += 1
            return _Conn(reader, writer)
        assert error is not None
        raise error

    async def _exchange(self, key: tuple[str, str, int], conn: _Conn, request: bytes, *, reused: bool
                        ) -> tuple[int, bytes]:
        keep = False
        try:
            conn.writer.write(request)
            try:
                head = await conn.reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if reused and not exc.partial:
                    raise _Stale from None
                raise ConnectionError("the connection closed before an answer") from None
            except asyncio.LimitOverrunError:
                raise ConnectionError("an answer's headers are too long") from None
            status, length, chunked, keep = _parse_head(head)
            if length is not None:
                data = await conn.reader.readexactly(min(length, self._cap))
                keep = keep and length <= self._cap
            elif chunked:
                data, complete = await self._chunks(conn.reader)
                keep = keep and complete
            else:  # ended by closing
                data = await conn.reader.read(self._cap)
                keep = False
            return status, data
        except asyncio.IncompleteReadError:
            keep = False
            raise ConnectionError("the connection closed within the answer") from None
        except (asyncio.LimitOverrunError, ValueError):  # a chunk's line past the limit, a negative size
            keep = False
            raise ConnectionError("a garbled answer") from None
        except BaseException:
            keep = False
            raise
        finally:
            if keep:
                conn.since = time.monotonic()
                idle = self._idle.setdefault(key, deque())
                if len(idle) < _MAX_IDLE:
                    idle.append(conn)
                else:
                    conn.close()
            else:
                conn.close()

    async def _chunks(self, reader: asyncio.StreamReader) -> tuple[bytes, bool]:
        """A chunked body, at most ``max_response_bytes`` of it; whether it was read to its end."""
        data = bytearray()
        while True:
            line = await reader.readuntil(b"\r\n")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ConnectionError("a garbled chunked answer") from None
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
                return bytes(data), True
            if len(data) + size > self._cap:
                data += await reader.readexactly(self._cap - len(data))
                return bytes(data), False
            data += await reader.readexactly(size)
            await reader.readexactly(2)


def _parse_head(head: bytes) -> tuple[int, int | None, bool, bool]:
    """(status, Content-Length, chunked, keep-alive) of an answer's head. Raises ``ConnectionError``."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ConnectionError("not an HTTP/1.x answer")
    status = int(parts[1])
    length: int | None = None
    chunked = False
    keep = parts[0] == b"HTTP/1.1"
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            if not value.isdigit():
                raise ConnectionError("a garbled Content-Length")
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = value.endswith(b"chunked")
        elif name == b"connection":
            keep = value == b"keep-alive" or (keep and value != b"close")
    if chunked:
        length = None
    elif status in (204, 304):
        length = 0
    if status < 200:  # no 1xx is asked for (no Expect: 100-continue)
        raise ConnectionError(f"an unexpected informational answer ({status})")
    return status, length, chunked, keep
