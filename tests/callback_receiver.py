"""An operator's callback endpoint for the tests: a real HTTP/1.1 server on a free port of
127.0.0.1 that checks each request's signature (``services.callbacks.signing.verify``) and answers
what the test's ``decide`` says; and a black hole (accepts TCP, never answers)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from services.callbacks.signing import EVENT_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER, verify

SECRET = "callback-secret-for-the-tests"
Decide = Callable[[dict[str, Any]], Awaitable[tuple[int, bytes]]]


def answer(action: str, **fields: Any) -> tuple[int, bytes]:
    return 200, json.dumps({"action": action, **fields}).encode()


async def allow_all(event: dict[str, Any]) -> tuple[int, bytes]:
    return answer("allow")


@dataclass
class Receiver:
    """Every event received (in arrival order), how many were badly signed, and a condition to
    wait on."""

    decide: Decide = allow_all
    secret: str = SECRET
    port: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)  # what was wrong with a request (none expected)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def wait_for(self, pred: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(lambda: pred(self.events))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, v in
                           (line.split(":", 1) for line in lines[1:] if ":" in line)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                event = json.loads(body)
                if not lines[0].startswith("POST /hook "):
                    self.bad.append(f"request line {lines[0]!r}")
                if not verify(self.secret, body, headers.get(SIGNATURE_HEADER.lower(), ""), int(time.time())):
                    self.bad.append(f"signature of {event.get('id')}")
                if headers.get(EVENT_ID_HEADER.lower()) != event.get("id") or \
                        headers.get(EVENT_HEADER.lower()) != event.get("event"):
                    self.bad.append(f"headers of {event.get('id')}")
                async with self.changed:
                    self.events.append(event)
                    self.changed.notify_all()
                status, out = await self.decide(event)
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(out)}\r\n\r\n".encode() + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def receiving(decide: Decide = allow_all) -> AsyncIterator[Receiver]:
    receiver = Receiver(decide)
    server = await asyncio.start_server(receiver._serve, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        with suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1)


@dataclass
class Hole:
    """A black hole's port, the connections it accepted, and the most it held open at once."""

    port: int = 0
    accepted: int = 0
    open: int = 0
    max_open: int = 0


@asynccontextmanager
async def black_hole() -> AsyncIterator[Hole]:
    """A server that accepts connections, reads what comes and never answers."""
    hole = Hole()
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hole.accepted += 1
        hole.open += 1
        hole.max_open = max(hole.max_open, hole.open)
        held.append(writer)
        try:
            while await reader.read(65536):  # until the client gives up and closes
                pass
        except ConnectionError:
            pass
        finally:
            hole.open -= 1

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    hole.port = server.sockets[0].getsockname()[1]
    try:
        yield hole
    finally:
        for w in held:
            w.close()
        server.close()
