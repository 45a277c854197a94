"""The start, stop and connection bookkeeping shared by the tests' small TCP servers (the webhook
receiver, the black hole, the previews' HTTPS site): each subclass writes only ``handle``."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Self


class TcpServer:
    """A server on a free port of ``listen_host()`` (TLS when ``tls()`` gives a context), for the
    scope of an ``async with``. Each connection runs ``handle``; a client that hangs up, a bad
    TLS handshake or a cut request ends it quietly, and leaving the ``with`` closes every
    connection still open (a held request must not keep the test waiting)."""

    port: int

    def listen_host(self) -> str:
        return "127.0.0.1"

    def tls(self) -> ssl.SSLContext | None:
        return None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._writers: set[asyncio.StreamWriter] = set()
        self._server = await asyncio.start_server(self._connected, self.listen_host(), 0, ssl=self.tls())
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self.handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
