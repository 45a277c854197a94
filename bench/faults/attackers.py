"""The attackers of the attack scenarios (bench.faults.attack, issue 24), each run in its own
process so its CPU does not slow the measuring clients' event loop. Only ever 127.0.0.1; every
loop stops on SIGINT/SIGTERM or after ``--max-seconds``, whichever comes first.

- ``ping-flood``: one user on ``--tokens`` connections, each writing PINGREQs (``c0 00``) as fast
  as the server reads them and never reading its socket (a 4 KiB receive buffer, so the answers
  pile up in the server). Even connections speak MQTT 3.1.1 and send PINGREQs only; odd ones
  speak MQTT 5 and mix in unsolicited PUBACK/PUBREC/PUBREL/PUBCOMP with random packet ids (one
  packet in 8).
- ``property-bomb``: one user on ``--tokens`` MQTT 5 connections that read what they get; even
  connections send 1 MiB PUBLISHes (a typing event) carrying ~209,000 empty User Properties
  (``26 00 00 00 00`` each), odd ones 1 MiB SUBSCRIBEs of ~262,000 one-character filters
  (``00 01 'a' 00`` each), one after another as fast as the server reads.
- ``connect-bomb``: ``--workers`` connections at a time, unauthenticated: each sends one 64 KiB
  MQTT 5 CONNECT whose properties are all empty User Properties, waits (bounded) for the answer
  or the close, and starts again.
- ``web-idle-fds``: ``--sockets`` TCP connections to the web listener (``--web-port``) that
  send nothing; one the server closes is opened again.
- ``upload-hog``: one user declares ``--uploads`` uploads of ``--upload-bytes`` bytes
  (``file.upload`` over MQTT), PUTs one byte to each signed URL and stalls; when the server
  answers or closes one, it declares another and stalls again (at most ``--uploads`` more).

Prints ``READY`` once the attack is in place (or ``--ready-timeout`` later, counting
``ready_timeout``), then, when stopped, one JSON line of counts.

    python -m bench.faults.attackers KIND --port P [--web-port W] [--uid U --tokens DEV=TOKEN ...] [--sinks S ...]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

from bench._common import raise_nofile
from tests.mqttraw import _remaining_length, _s, connect_packet

HOST = "127.0.0.1"
KINDS = ("ping-flood", "property-bomb", "connect-bomb", "web-idle-fds", "upload-hog")
PACKET_LIMIT = 1 << 20  # broker.max_packet_bytes, the shipped default: the largest packet after CONNECT
CONNECT_LIMIT = 64 * 1024  # the largest CONNECT the broker reads (broker.codec.MAX_CONNECT)
EMPTY_USER_PROPERTY = b"\x26\x00\x00\x00\x00"  # identifier 0x26, name "", value ""
_CHUNK = 1 << 15  # bytes of PINGREQs per write
_RCVBUF = 4096


class Refused(Exception):
    """The server did not let the attacker in (no CONNACK 0)."""


# ---- packets ------------------------------------------------------------------------------------
def _varint(n: int) -> bytes:
    return _remaining_length(n)


def connect5(client_id: str, username: str | None = None, password: str | None = None, *,
             properties: bytes = b"", keepalive: int = 600) -> bytes:
    """An MQTT 5 CONNECT (clean start) with these raw properties."""
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = (_s("MQTT") + bytes([5, flags]) + keepalive.to_bytes(2, "big") + _varint(len(properties)) + properties
            + _s(client_id) + (_s(username) if username is not None else b"")
            + (_s(password) if password is not None else b""))
    return b"\x10" + _varint(len(body)) + body


def connect_bomb(client_id: str, limit: int = CONNECT_LIMIT) -> bytes:
    """An unauthenticated MQTT 5 CONNECT of at most ``limit`` bytes after its fixed header,
    filled with empty User Properties."""
    fixed = len(_s("MQTT")) + 4 + len(_s(client_id))  # + level, flags, keep-alive
    n = (limit - fixed - 3) // len(EMPTY_USER_PROPERTY)  # 3: the properties' length field
    return connect5(client_id, properties=EMPTY_USER_PROPERTY * n)


def publish_bomb(topic: str, payload: bytes, limit: int = PACKET_LIMIT) -> bytes:
    """An MQTT 5 QoS 0 PUBLISH of at most ``limit`` bytes after its fixed header, its properties
    all empty User Properties."""
    n = (limit - len(_s(topic)) - len(payload) - 3) // len(EMPTY_USER_PROPERTY)
    props = EMPTY_USER_PROPERTY * n
    body = _s(topic) + _varint(len(props)) + props + payload
    return b"\x30" + _varint(len(body)) + body


def subscribe_bomb(packet_id: int = 1, limit: int = PACKET_LIMIT) -> bytes:
    """An MQTT 5 SUBSCRIBE of at most ``limit`` bytes after its fixed header: one-character
    filters ``a``, QoS 0, no properties."""
    n = (limit - 3) // 4
    body = packet_id.to_bytes(2, "big") + b"\x00" + b"\x00\x01a\x00" * n
    return b"\x82" + _varint(len(body)) + body


def ping_chunk(rng: random.Random, *, acks: bool, size: int = _CHUNK) -> tuple[bytes, int, int]:
    """About ``size`` bytes of PINGREQs, with (``acks``) one unsolicited PUBACK, PUBREC, PUBREL
    or PUBCOMP with a random packet id in 8 packets; returns (bytes, PINGREQs, acks)."""
    out, pings, stray = bytearray(), 0, 0
    while len(out) < size:
        if acks and (pings + stray) % 8 == 7:
            out += bytes([rng.choice((0x40, 0x50, 0x62, 0x70)), 2]) + rng.randrange(1, 65536).to_bytes(2, "big")
            stray += 1
        else:
            out += b"\xc0\x00"
            pings += 1
    return bytes(out), pings, stray


def _local(url: str) -> tuple[str, int, str]:
    """(host, port, path?query) of an http URL on 127.0.0.1.

    Raises:
        ValueError: any other host: the suite never sends traffic off this machine.
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname != HOST:
        msg = f"not an http URL on {HOST}: {url[:80]!r}"
        raise ValueError(msg)
    return HOST, parts.port or 80, parts.path + (f"?{parts.query}" if parts.query else "")


def put_head(url: str, headers: dict[str, str], length: int) -> tuple[int, bytes]:
    """(port, request head) of a PUT of ``length`` bytes to a signed URL on 127.0.0.1."""
    host, port, target = _local(url)
    lines = [f"PUT {target} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {length}", "Connection: close",
             *(f"{k}: {v}" for k, v in headers.items())]
    return port, ("\r\n".join(lines) + "\r\n\r\n").encode()


async def http_put(url: str, headers: dict[str, str], body: bytes, timeout: float) -> int:
    """One PUT to a signed URL on 127.0.0.1; returns the status code.

    Raises:
        TimeoutError, OSError: no answer in time, or the connection failed.
    """
    port, head = put_head(url, headers, len(body))
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(head + body)
            status = await reader.readline()
        finally:
            writer.close()
    parts = status.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


# ---- plumbing -------------------------------------------------------------------------------------
async def _recv_exact(sock: socket.socket, n: int) -> bytes:
    loop = asyncio.get_running_loop()
    out = bytearray()
    while len(out) < n:
        data = await loop.sock_recv(sock, n - len(out))
        if not data:
            raise ConnectionResetError("closed by the server")
        out += data
    return bytes(out)


async def read_packet(sock: socket.socket) -> tuple[int, bytes]:
    """One packet: (first byte, body)."""
    first = (await _recv_exact(sock, 1))[0]
    length, shift = 0, 0
    while True:
        byte = (await _recv_exact(sock, 1))[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return first, await _recv_exact(sock, length)


def _socket(rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    return sock


async def login(port: int, client_id: str, username: str, password: str, *, level: int = 4,
                rcvbuf: int | None = None, timeout: float = 15.0) -> socket.socket:
    """A raw, logged-in MQTT connection (CONNACK read, nothing else).

    Raises:
        Refused: no CONNACK 0. OSError, TimeoutError: the connection failed.
    """
    loop = asyncio.get_running_loop()
    sock = _socket(rcvbuf)
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (HOST, port))
            packet = (connect_packet(client_id, username, password, keepalive=600) if level == 4
                      else connect5(client_id, username, password))
            await loop.sock_sendall(sock, packet)
            first, body = await read_packet(sock)
        if first >> 4 != 2 or len(body) < 2 or body[1] != 0:
            msg = f"no CONNACK 0: {first:#x} {body[:4].hex()}"
            raise Refused(msg)
    except BaseException:
        sock.close()
        raise
    return sock


async def _discard(sock: socket.socket) -> None:
    """Read and drop everything (a client that does read), until the server closes."""
    loop = asyncio.get_running_loop()
    with suppress(OSError):
        while await loop.sock_recv(sock, 1 << 16):
            pass


class Attack:
    """Shared state of one attacker process: counts, the stop and ready events."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.counts: Counter[str] = Counter()
        self.stop = asyncio.Event()
        self.ready = asyncio.Event()
        self.tokens: dict[str, str] = dict(t.split("=", 1) for t in args.tokens)

    async def pause(self, seconds: float) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def connected(self, label: str, device: str, *, level: int, rcvbuf: int | None = None,
                        ) -> socket.socket | None:
        """A logged-in connection of the attacking user's ``device`` (None: failed, counted)."""
        a = self.args
        try:
            sock = await login(a.port, f"{a.uid}:{device}", a.uid, self.tokens[device], level=level, rcvbuf=rcvbuf)
        except (OSError, TimeoutError, Refused) as exc:
            self.counts[f"{label}.connect_failed.{type(exc).__name__}"] += 1
            await self.pause(0.2)
            return None
        self.counts[f"{label}.connects"] += 1
        self.ready.set()
        return sock


# ---- the attacks ------------------------------------------------------------------------------------
async def ping_flood(at: Attack, i: int, device: str) -> None:
    acks = bool(i % 2)
    label = "acks" if acks else "pings"
    rng = random.Random(i)
    chunks = [ping_chunk(rng, acks=acks) for _ in range(4)]
    loop = asyncio.get_running_loop()
    while not at.stop.is_set():
        sock = await at.connected(label, device, level=5 if acks else 4, rcvbuf=_RCVBUF)
        if sock is None:
            continue
        try:
            n = 0
            while not at.stop.is_set():  # never reads: the answers stay in the server
                data, pings, stray = chunks[n % len(chunks)]
                n += 1
                await loop.sock_sendall(sock, data)
                at.counts["pingreq_sent"] += pings
                at.counts["stray_acks_sent"] += stray
        except OSError:
            at.counts[f"{label}.disconnected_by_server"] += 1
        finally:
            sock.close()
        await at.pause(0.2)


async def property_bomb(at: Attack, i: int, device: str) -> None:
    a = at.args
    label = "subscribe" if i % 2 else "publish"
    sink = a.sinks[i % len(a.sinks)] if a.sinks else a.uid
    conv = f"d:{min(a.uid, sink)}:{max(a.uid, sink)}"
    publish = publish_bomb(f"im/{a.uid}/out/event", json.dumps({"type": "typing", "conv": conv}).encode())
    loop = asyncio.get_running_loop()
    pid = 0
    while not at.stop.is_set():
        sock = await at.connected(label, device, level=5)
        if sock is None:
            continue
        reader = asyncio.create_task(_discard(sock), name=f"attack.read.{device}")
        try:
            while not at.stop.is_set() and not reader.done():
                pid = pid % 65535 + 1
                await loop.sock_sendall(sock, subscribe_bomb(pid) if i % 2 else publish)
                at.counts[f"{label}_bombs_sent"] += 1
            if reader.done():
                at.counts[f"{label}.disconnected_by_server"] += 1
        except OSError:
            at.counts[f"{label}.disconnected_by_server"] += 1
        finally:
            reader.cancel()
            sock.close()
        await at.pause(0.2)


async def connect_bomber(at: Attack, i: int) -> None:
    loop = asyncio.get_running_loop()
    packet = connect_bomb(f"bomb{i}")
    at.ready.set()
    while not at.stop.is_set():
        sock = _socket()
        try:
            async with asyncio.timeout(10):
                await loop.sock_connect(sock, (HOST, at.args.port))
                await loop.sock_sendall(sock, packet)
                at.counts["connect_bombs_sent"] += 1
                first, body = await read_packet(sock)
            at.counts[f"answer_{first >> 4}_{body[1] if first >> 4 == 2 and len(body) > 1 else ''}"] += 1
        except TimeoutError:
            at.counts["no_answer_in_10s"] += 1
        except OSError:
            at.counts["closed_by_server"] += 1
        finally:
            sock.close()


async def idle_socket(at: Attack, tried: Callable[[], None], open_now: list[int]) -> None:
    loop = asyncio.get_running_loop()
    first = True
    while not at.stop.is_set():
        sock = _socket()
        try:
            async with asyncio.timeout(5):
                await loop.sock_connect(sock, (HOST, at.args.web_port))
        except (OSError, TimeoutError) as exc:
            at.counts[f"connect_failed.{type(exc).__name__}"] += 1
            sock.close()
            if first:
                first = False
                tried()
            await at.pause(0.5)
            continue
        at.counts["opened"] += 1
        open_now[0] += 1
        at.counts["open_peak"] = max(at.counts["open_peak"], open_now[0])
        if first:
            first = False
            tried()
        try:
            data = await loop.sock_recv(sock, 4096)  # idle: nothing is ever sent
            at.counts["answered_by_server" if data else "closed_by_server"] += 1
        except OSError:
            at.counts["reset_by_server"] += 1
        finally:
            open_now[0] -= 1
            sock.close()
        await at.pause(0.1)


async def upload_hog(at: Attack) -> None:
    from bench.faults.client import Fleet, RpcError  # an MQTT client for the file.upload RPCs

    a = at.args
    device = next(iter(at.tokens))
    data = os.urandom(a.upload_bytes)
    declare = {"mime": "application/octet-stream", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
               "name": "hog.bin"}
    budget = [2 * a.uploads]  # declarations in all: the first round and as many again
    stalled = [0]
    # Within the RPC limit (20/s, burst 50): a rate-limited RPC's error may go unanswered.
    pace = [time.monotonic(), 0]

    async def paced() -> None:
        now = time.monotonic()
        at_, pace[1] = max(now, pace[0]), pace[1] + 1
        pace[0] = at_ + (0.0 if pace[1] < 40 else 0.06)
        await asyncio.sleep(at_ - now)

    async with Fleet(a.port, run="hog") as fleet:
        client = fleet.client(a.uid, at.tokens[device], device)
        await fleet.start_all([client], timeout=30)

        async def slot() -> None:
            first = True
            while not at.stop.is_set() and budget[0] > 0:
                budget[0] -= 1
                await paced()
                try:
                    ticket = await client.rpc_retry("file.upload", declare, timeout=30)
                    port, head = put_head(ticket["url"], ticket["headers"], len(data))
                    reader, writer = await asyncio.open_connection(HOST, port)
                except (RpcError, TimeoutError, OSError) as exc:
                    at.counts[f"declare_or_connect_failed.{type(exc).__name__}"] += 1
                    await at.pause(1.0)
                    continue
                at.counts["declared"] += 1
                try:
                    writer.write(head + data[:1])  # one byte of the declared ones, then nothing
                    at.counts["puts_stalled"] += 1
                    if first:
                        first = False
                        stalled[0] += 1
                        if stalled[0] >= a.uploads:
                            at.ready.set()
                    status = await reader.readline()  # until the server answers or closes
                    parts = status.split()
                    at.counts[f"answered_{parts[1].decode()}" if len(parts) > 1 else "closed_by_server"] += 1
                except OSError:
                    at.counts["reset_by_server"] += 1
                finally:
                    writer.close()

        await asyncio.gather(*(slot() for _ in range(a.uploads)))


async def _main(args: argparse.Namespace) -> None:
    at = Attack(args)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, at.stop.set)
    loop.call_later(args.max_seconds, at.stop.set)
    devices = list(at.tokens)
    jobs: list[Coroutine[Any, Any, None]] = []
    if args.kind == "ping-flood":
        jobs = [ping_flood(at, i, d) for i, d in enumerate(devices)]
    elif args.kind == "property-bomb":
        jobs = [property_bomb(at, i, d) for i, d in enumerate(devices)]
    elif args.kind == "connect-bomb":
        jobs = [connect_bomber(at, i) for i in range(args.workers)]
    elif args.kind == "web-idle-fds":
        pending, open_now = [args.sockets], [0]

        def tried() -> None:
            pending[0] -= 1
            if not pending[0]:
                at.ready.set()

        jobs = [idle_socket(at, tried, open_now) for _ in range(args.sockets)]
    else:
        jobs = [upload_hog(at)]
    tasks = [asyncio.create_task(job) for job in jobs]
    started = time.perf_counter()
    try:
        await asyncio.wait_for(at.ready.wait(), args.ready_timeout)
    except TimeoutError:
        at.counts["ready_timeout"] += 1
    print("READY", flush=True)
    ready_s = time.perf_counter() - started
    await at.stop.wait()
    for task in tasks:
        task.cancel()
    for task in tasks:
        with suppress(asyncio.CancelledError, Exception):
            await task
    print(json.dumps({"seconds": round(time.perf_counter() - started, 2), "ready_s": round(ready_s, 2),
                      **at.counts}), flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--port", type=int, required=True, help="imgate's MQTT port on 127.0.0.1")
    parser.add_argument("--web-port", type=int, help="imgate's web listener on 127.0.0.1 (web-idle-fds)")
    parser.add_argument("--uid", help="the attacking user")
    parser.add_argument("--tokens", nargs="*", default=[], metavar="DEVICE=TOKEN", help="one connection each")
    parser.add_argument("--sinks", nargs="*", default=[], help="users a property bomb's typing events name")
    parser.add_argument("--workers", type=int, default=8, help="connect-bomb: connections at once")
    parser.add_argument("--sockets", type=int, default=1100, help="web-idle-fds: idle sockets held")
    parser.add_argument("--uploads", type=int, default=64, help="upload-hog: stalled uploads held")
    parser.add_argument("--upload-bytes", type=int, default=1024, help="upload-hog: each upload's declared size")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="stop by itself after this long")
    parser.add_argument("--ready-timeout", type=float, default=45.0)
    args = parser.parse_args(argv)
    if args.kind in ("ping-flood", "property-bomb", "upload-hog") and not (args.uid and args.tokens):
        parser.error(f"{args.kind} needs --uid and --tokens")
    if args.kind == "web-idle-fds" and not args.web_port:
        parser.error("web-idle-fds needs --web-port")
    return args


def main() -> None:
    args = parse_args()
    raise_nofile()  # web-idle-fds holds more sockets than the server may
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
