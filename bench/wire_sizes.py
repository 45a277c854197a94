"""wire-sizes: the bytes one message and two RPCs cost on the wire, per payload encoding (issue 26)
and MQTT version, measured against a real server.

    python -m bench.wire_sizes                       # every encoding x every MQTT version
    python -m bench.wire_sizes --markdown            # ... and the tables for bench/RESULTS.md
    python -m bench.wire_sizes --encodings json cbor --protocols 3.1.1

The whole platform runs in this process (``imgate.app.App``: embedded broker, in-process bridge,
services, SQLite in a temporary directory, the MQTT listener on a free port). Each client
connects through a counting TCP proxy of its own (asyncio, 127.0.0.1) that forwards the bytes
unchanged, counts them in each direction and frames them into MQTT packets, so every packet of an
exchange is attributed to it: the numbers are what a device's link carries, MQTT framing and
PUBACKs included (TCP/IP headers not: add about 40-52 bytes per segment).

Users: alice (the sender) and bob (the receiver), one device each, whose tokens are issued with the
run's encoding (``json``, ``cbor`` or ``msgpack``; protocol.md "Encodings"). Before any run the
database gets, through the services: 29 messages between alice and bob (so the measured sends get
seq 30 to 65 with every encoding and version: two digits in JSON, two bytes in CBOR, one in
MessagePack, as protocol.md's example with seq 42), 60 between alice and carol (the history page)
and 3 with each of dave, erin and frank: alice has 5 conversations.

MQTT versions (``--protocols``): ``3.1.1``; ``5`` (MQTT 5 without topic aliases: every server
PUBLISH also carries a Content Type property); ``5+aliases`` (the CONNECT's Topic Alias Maximum is
16, so the server sends known topics as an alias alone, and the client sends its own publishes with
aliases too). Each run first does one of each exchange unmeasured (the aliases are set up there),
then measures, one exchange at a time (everything it causes has arrived, then the proxy's counts
are read; anything else on the links meanwhile is reported as ``other_bytes``):

- ``send``: alice's PUBLISH on ``im/alice/out/msg`` and the server's PUBACK;
- ``ack``: the server's PUBLISH on ``im/alice/in/ack`` and alice's PUBACK;
- ``delivery``: the server's PUBLISH on ``im/bob/in/msg`` and bob's PUBACK;
- ``conversations``: alice's JSON-RPC request on ``out/rpc`` (PUBACKed) and its answer on
  ``in/rpc`` (PUBACKed): 5 conversations, each with its last message;
- ``history``: the same for ``history`` of alice's conversation with carol, 50 messages.

The message (``case``): ``typical``, a 36-character UUID as ``cid`` (as phone apps make them) and
"see you at the station at 6?" (28 characters); ``device``, the same text with a 6-character
``cid`` (``dev-k1``: a counter, as a small device makes them); ``short``, protocol.md's example (``cid`` "k1", or k2, k3... as a cid is
unique per sender, and "hello"). Devices send compact JSON (no spaces) or, in CBOR and MessagePack,
the protocol's numbered keys (``{5: cid, 9: to, 6: "text", 7: text}``), as a constrained device
would. The sender subscribes to its ``in/ack`` and ``in/rpc`` only (a device subscribed to
``in/#`` also gets its own message on ``in/msg``: one more delivery).

Output: one JSON line per (encoding, protocol, item, case): ``c2s_bytes`` (client to server),
``s2c_bytes``, ``total_bytes``, the payloads alone (``c2s_payload``, ``s2c_payload``,
``payload_bytes``) and ``packets``; then per (protocol, case) a summary line: send + ack +
delivery in bytes for each encoding and CBOR's and MessagePack's saving over JSON in %, on the
wire and in payload. ``--markdown`` adds the tables (payloads; bytes on the wire; the summary).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import socket
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cbor2
import msgpack  # type: ignore[import-untyped]

from bridge.formats import compact
from tests import mqtt5packets as mp
from tests.helpers import named as _names  # numbered keys named

ENCODINGS = ("json", "cbor", "msgpack")
PROTOCOLS = ("3.1.1", "5", "5+aliases")
ITEMS = ("send", "ack", "delivery", "conversations", "history")
TYPICAL_TEXT = "see you at the station at 6?"
SHORT_TEXT = "hello"
HISTORY_PAGE = 50
_BOB_HISTORY = 29  # messages between alice and bob before the runs: sends get seq 30+ (see the docstring)
_CAROL_HISTORY = 60
_OTHERS = ("dave", "erin", "frank")
_ALIAS_MAXIMUM = 16  # the client's CONNECT Topic Alias Maximum with 5+aliases
_KEEPALIVE = 3600  # no PINGREQ in a run
_WAIT = 10.0
_SETTLE = 0.05  # after an exchange's last packet: anything more on the links would show up
_SEEDED = ("where are you now?", "on the train, 10 minutes", "ok, I'll wait at the exit",
           "did you get the tickets?", "yes, two for tonight", "great, see you soon!",
           "running a bit late, sorry", "no worries, take your time")

P_TOPIC_ALIAS_MAXIMUM, P_TOPIC_ALIAS = 0x22, 0x23


# -- the counting proxy --------------------------------------------------------------------------

@dataclass(frozen=True)
class Packet:
    kind: int  # mp.PUBLISH, mp.PUBACK...
    size: int  # the whole packet: fixed header, variable header, properties, payload
    packet_id: int | None = None
    topic: str = ""  # a PUBLISH's topic, its alias resolved
    payload: bytes = b""


def frames(buf: bytearray) -> Iterator[tuple[bytes, int]]:
    """The whole MQTT packets at the start of ``buf``, taken out of it: (the packet, the length of
    its fixed header). What follows them (a packet not all here yet) stays."""
    while len(buf) >= 2:
        length, shift, i = 0, 0, 1
        while True:
            if i >= len(buf):
                return  # the remaining length is not all here yet
            byte = buf[i]
            length |= (byte & 0x7F) << shift
            shift += 7
            i += 1
            if not byte & 0x80:
                break
        if len(buf) < i + length:
            return
        packet = bytes(buf[:i + length])
        del buf[:i + length]
        yield packet, i


class Stream:
    """One direction of one proxied connection: every byte counted, framed into packets."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.bytes = 0
        self.packets: list[Packet] = []
        self._buf = bytearray()
        self._aliases: dict[int, str] = {}  # MQTT 5 topic aliases set by this direction's PUBLISHes

    def feed(self, data: bytes) -> None:
        self.bytes += len(data)
        self._buf += data
        for packet, header in frames(self._buf):
            self.packets.append(self._packet(packet[0], packet[header:], len(packet)))

    def _packet(self, first: int, body: bytes, size: int) -> Packet:
        kind = first >> 4
        if kind == mp.CONNECT:  # the protocol level: 4 is 3.1.1, 5 is MQTT 5
            name_len = int.from_bytes(body[:2], "big")
            self.link.level = body[2 + name_len]
            return Packet(kind, size)
        if kind == mp.PUBLISH:
            qos = (first >> 1) & 3
            n = int.from_bytes(body[:2], "big")
            topic, pos = body[2:2 + n].decode(), 2 + n
            pid = None
            if qos:
                pid, pos = int.from_bytes(body[pos:pos + 2], "big"), pos + 2
            if self.link.level == mp.V5:
                props, pos = mp.decode_properties(body, pos)
                alias = props.get(P_TOPIC_ALIAS)
                if alias is not None:
                    if topic:
                        self._aliases[alias] = topic
                    else:
                        topic = self._aliases[alias]
            return Packet(kind, size, pid, topic, body[pos:])
        if kind in (mp.PUBACK, mp.SUBACK):
            return Packet(kind, size, int.from_bytes(body[:2], "big"))
        return Packet(kind, size)


class Link:
    """One proxied connection: ``c2s`` (client to server) and ``s2c``."""

    def __init__(self, activity: asyncio.Event) -> None:
        self.level = mp.V311
        self.activity = activity
        self.c2s = Stream(self)
        self.s2c = Stream(self)

    def mark(self) -> tuple[int, int, int, int]:
        return len(self.c2s.packets), len(self.s2c.packets), self.c2s.bytes, self.s2c.bytes


class CountingProxy:
    """A TCP proxy on 127.0.0.1 to the server's MQTT port; one Link per accepted connection."""

    def __init__(self, upstream_port: int, activity: asyncio.Event) -> None:
        self.upstream_port = upstream_port
        self.links: list[Link] = []
        self.activity = activity  # set whenever something was forwarded
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        s_reader, s_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        for writer in (c_writer, s_writer):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._writers += [c_writer, s_writer]
        link = Link(self.activity)
        self.links.append(link)
        for reader, writer, stream in ((c_reader, s_writer, link.c2s), (s_reader, c_writer, link.s2c)):
            task = asyncio.create_task(self._pump(reader, writer, stream), name="wire-sizes.proxy")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: Stream) -> None:
        try:
            while data := await reader.read(65536):
                stream.feed(data)
                writer.write(data)
                self.activity.set()
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with suppress(Exception):
                writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with suppress(asyncio.CancelledError, Exception):
                await task


async def until(activity: asyncio.Event, done: Callable[[], bool], what: str, timeout: float = _WAIT) -> None:
    """Until ``done()``, checked again whenever a proxy has forwarded something (bounded)."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                activity.clear()
                if done():
                    return
                await activity.wait()
    except TimeoutError:
        msg = f"timed out waiting for {what}"
        raise TimeoutError(msg) from None


# -- a small MQTT 3.1.1 / 5 client -----------------------------------------------------------------

class Client:
    """A device: QoS 1 publishes (with topic aliases when asked), subscriptions, every PUBLISH it
    gets PUBACKed at once (the 2-byte form) and kept."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, level: int, aliases: bool) -> None:
        self.reader, self.writer = reader, writer
        self.level, self.aliases = level, aliases
        self.received: list[tuple[str, bytes, dict[int, Any]]] = []
        self.arrived = asyncio.Event()
        self._acks: dict[int, asyncio.Future[None]] = {}
        self._pid = 0
        self._my_aliases: dict[str, int] = {}
        self._their_aliases: dict[int, str] = {}
        self._alias_max = 0
        self.connack: asyncio.Future[mp.ConnAck] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._read(), name="wire-sizes.client")

    @classmethod
    async def connect(cls, port: int, uid: str, device: str, token: str, level: int, *, aliases: bool) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = cls(reader, writer, level, aliases)
        props = {P_TOPIC_ALIAS_MAXIMUM: _ALIAS_MAXIMUM} if aliases else None
        writer.write(mp.connect(f"{uid}:{device}", level=level, keep_alive=_KEEPALIVE, username=uid,
                                password=token.encode(), props=props))
        connack = await asyncio.wait_for(client.connack, _WAIT)
        if connack.code:
            msg = f"{uid}: CONNACK {connack.code:#x}"
            raise RuntimeError(msg)
        client._alias_max = connack.properties.get(P_TOPIC_ALIAS_MAXIMUM, 0)
        return client

    def _next_pid(self) -> int:
        self._pid = self._pid % 65535 + 1
        return self._pid

    async def _read(self) -> None:
        buf = bytearray()
        try:
            while data := await self.reader.read(65536):
                buf += data
                for packet, _ in frames(buf):
                    self._packet(mp.parse_one(packet, self.level))
        except ConnectionError:
            pass
        finally:
            self.arrived.set()

    def _packet(self, p: mp.ServerPacket) -> None:
        if isinstance(p, mp.ConnAck):
            if not self.connack.done():
                self.connack.set_result(p)
        elif isinstance(p, mp.Pub):
            topic = p.topic
            alias = p.properties.get(P_TOPIC_ALIAS)
            if alias is not None:
                if topic:
                    self._their_aliases[alias] = topic
                else:
                    topic = self._their_aliases[alias]
            if p.qos and p.packet_id:
                self.writer.write(mp.puback(p.packet_id))
            self.received.append((topic, p.payload, p.properties))
            self.arrived.set()
        elif isinstance(p, mp.AckOut | mp.SubAck):
            fut = self._acks.pop(p.packet_id, None)
            if fut is not None and not fut.done():
                if isinstance(p, mp.SubAck) and any(code >= 0x80 for code in p.codes):
                    fut.set_exception(RuntimeError(f"SUBACK refused: {p.codes}"))
                else:
                    fut.set_result(None)

    async def _acked(self, pid: int, packet: bytes) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks[pid] = fut
        self.writer.write(packet)
        await asyncio.wait_for(fut, _WAIT)

    async def subscribe(self, *filters: str) -> None:
        pid = self._next_pid()
        await self._acked(pid, mp.subscribe(pid, [(f, 1) for f in filters], level=self.level))

    async def publish(self, topic: str, payload: bytes) -> None:
        """A QoS 1 PUBLISH, until its PUBACK."""
        props: dict[int, Any] | None = None
        if self.aliases and self.level == mp.V5:
            alias = self._my_aliases.get(topic)
            if alias is not None:
                topic, props = "", {P_TOPIC_ALIAS: alias}
            elif len(self._my_aliases) < self._alias_max:
                alias = self._my_aliases[topic] = len(self._my_aliases) + 1
                props = {P_TOPIC_ALIAS: alias}
        pid = self._next_pid()
        await self._acked(pid, mp.publish(topic, payload, qos=1, packet_id=pid, level=self.level, props=props))

    async def wait_for(self, suffix: str, pred: Callable[[Any], bool]) -> tuple[bytes, dict[int, Any]]:
        """The first received payload on a topic ending with ``suffix`` whose named body matches."""
        async with asyncio.timeout(_WAIT):
            while True:
                for topic, payload, props in self.received:
                    if topic.endswith(suffix) and pred(named(payload)):
                        return payload, props
                self.arrived.clear()
                await self.arrived.wait()

    async def close(self) -> None:
        with suppress(Exception):
            self.writer.write(mp.disconnect())
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), _WAIT)
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task


# -- payloads ----------------------------------------------------------------------------------------

def encode(encoding: str, body: Any) -> bytes:
    """What a device sends: compact JSON, or CBOR / MessagePack with the protocol's keys numbered."""
    if encoding == "cbor":
        return cbor2.dumps(compact(body))
    if encoding == "msgpack":
        return bytes(msgpack.packb(compact(body)))
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def encoding_of(payload: bytes) -> str:
    """The encoding of a map payload, by its first byte."""
    first = payload[0]
    if first == 0x7B:  # "{"
        return "json"
    if 0xA0 <= first <= 0xBF:
        return "cbor"
    if 0x80 <= first <= 0x8F or first in (0xDE, 0xDF):
        return "msgpack"
    return "?"


def named(payload: bytes) -> Any:
    kind = encoding_of(payload)
    if kind == "cbor":
        return _names(cbor2.loads(payload))
    if kind == "msgpack":
        return _names(msgpack.unpackb(payload, strict_map_key=False))
    return json.loads(payload)


# -- one run: one encoding, one MQTT version ----------------------------------------------------

@dataclass
class Run:
    encoding: str
    protocol: str
    alice: Client
    bob: Client
    alice_link: Link
    bob_link: Link
    activity: asyncio.Event
    rows: list[dict[str, Any]] = field(default_factory=list)
    rpc_id: int = 0

    def row(self, item: str, case: str, packets: list[tuple[str, Packet]], other: int) -> dict[str, Any]:
        c2s = sum(p.size for d, p in packets if d == "c2s")
        s2c = sum(p.size for d, p in packets if d == "s2c")
        c2s_payload = sum(len(p.payload) for d, p in packets if d == "c2s")
        s2c_payload = sum(len(p.payload) for d, p in packets if d == "s2c")
        row = {"scenario": "wire-sizes", "encoding": self.encoding, "protocol": self.protocol, "item": item,
               "case": case, "c2s_bytes": c2s, "s2c_bytes": s2c, "total_bytes": c2s + s2c,
               "c2s_payload": c2s_payload, "s2c_payload": s2c_payload, "payload_bytes": c2s_payload + s2c_payload,
               "packets": len(packets)}
        if other:
            row["other_bytes"] = other  # something else crossed the links during the exchange
        self.rows.append(row)
        return row


def _window(link: Link, mark: tuple[int, int, int, int]) -> tuple[list[tuple[str, Packet]], int]:
    """The packets since ``mark`` (with their direction), and the bytes since it not in whole packets."""
    c2s, s2c = link.c2s.packets[mark[0]:], link.s2c.packets[mark[1]:]
    framed = sum(p.size for p in c2s) + sum(p.size for p in s2c)
    counted = link.c2s.bytes - mark[2] + link.s2c.bytes - mark[3]
    return [("c2s", p) for p in c2s] + [("s2c", p) for p in s2c], counted - framed


def _exchange(window: list[tuple[str, Packet]], direction: str, suffix: str) -> list[tuple[str, Packet]]:
    """A QoS 1 PUBLISH sent in ``direction`` on a topic ending with ``suffix``, and its PUBACK."""
    back = "s2c" if direction == "c2s" else "c2s"
    pubs = [p for d, p in window if d == direction and p.kind == mp.PUBLISH and p.topic.endswith(suffix)]
    if len(pubs) != 1:
        msg = f"expected one PUBLISH {direction} on *{suffix}, got {len(pubs)}"
        raise RuntimeError(msg)
    acks = [p for d, p in window if d == back and p.kind == mp.PUBACK and p.packet_id == pubs[0].packet_id]
    if len(acks) != 1:
        msg = f"expected the PUBACK of the PUBLISH on *{suffix}, got {len(acks)}"
        raise RuntimeError(msg)
    return [(direction, pubs[0]), (back, acks[0])]


def _has(window: list[tuple[str, Packet]], direction: str, suffix: str) -> bool:
    try:
        _exchange(window, direction, suffix)
    except RuntimeError:
        return False
    return True


async def _send(run: Run, cid: str, text: str, *, case: str | None) -> None:
    """alice sends ``text`` to bob; until its ack and delivery (and their PUBACKs) have crossed the
    proxies. ``case``: measured, with that name; None: not measured."""
    a_mark, b_mark = run.alice_link.mark(), run.bob_link.mark()
    body = {"cid": cid, "to": "bob", "type": "text", "text": text}
    await run.alice.publish("im/alice/out/msg", encode(run.encoding, body))
    ack, _ = await run.alice.wait_for("/in/ack", lambda b: b.get("cid") == cid)
    got, _ = await run.bob.wait_for("/in/msg", lambda b: b.get("cid") == cid)
    ack_body, got_body = named(ack), named(got)
    if "error" in ack_body or got_body.get("text") != text or got_body.get("from") != "alice":
        msg = f"{run.encoding} {run.protocol}: unexpected ack {ack_body} or delivery {got_body}"
        raise RuntimeError(msg)
    for payload in (ack, got):
        if encoding_of(payload) != run.encoding:
            msg = f"{run.encoding} {run.protocol}: the server sent {encoding_of(payload)}: {payload[:40]!r}"
            raise RuntimeError(msg)

    def complete() -> bool:
        a, _ = _window(run.alice_link, a_mark)
        b, _ = _window(run.bob_link, b_mark)
        return (_has(a, "c2s", "/out/msg") and _has(a, "s2c", "/in/ack") and _has(b, "s2c", "/in/msg"))

    await until(run.activity, complete, f"{run.encoding} {run.protocol}: send {cid}")
    await asyncio.sleep(_SETTLE)
    if case is None:
        return
    a, a_rest = _window(run.alice_link, a_mark)
    b, b_rest = _window(run.bob_link, b_mark)
    send, acked, delivered = _exchange(a, "c2s", "/out/msg"), _exchange(a, "s2c", "/in/ack"), \
        _exchange(b, "s2c", "/in/msg")
    other = a_rest + b_rest + sum(p.size for _, p in a + b) - sum(p.size for _, p in send + acked + delivered)
    seq = ack_body.get("seq")
    for item, packets in (("send", send), ("ack", acked), ("delivery", delivered)):
        run.row(item, case, packets, other if item == "send" else 0)["seq"] = seq


async def _rpc(run: Run, method: str, params: dict[str, Any], *, case: str | None,
               check: Callable[[Any], bool]) -> None:
    run.rpc_id += 1
    req_id = run.rpc_id
    mark = run.alice_link.mark()
    await run.alice.publish("im/alice/out/rpc", encode(run.encoding, {"jsonrpc": "2.0", "id": req_id,
                                                                       "method": method, "params": params}))
    answer, _ = await run.alice.wait_for("/in/rpc", lambda b: b.get("id") == req_id)
    body = named(answer)
    if "result" not in body or not check(body["result"]) or encoding_of(answer) != run.encoding:
        msg = f"{run.encoding} {run.protocol}: unexpected {method} answer {str(body)[:300]}"
        raise RuntimeError(msg)

    def complete() -> bool:
        w, _ = _window(run.alice_link, mark)
        return _has(w, "c2s", "/out/rpc") and _has(w, "s2c", "/in/rpc")

    await until(run.activity, complete, f"{run.encoding} {run.protocol}: {method}")
    await asyncio.sleep(_SETTLE)
    if case is None:
        return
    w, rest = _window(run.alice_link, mark)
    packets = _exchange(w, "c2s", "/out/rpc") + _exchange(w, "s2c", "/in/rpc")
    run.row(method, case, packets, rest + sum(p.size for _, p in w) - sum(p.size for _, p in packets))


@asynccontextmanager
async def _connected(port: int, tokens: dict[str, str], encoding: str, protocol: str) -> Any:
    level = mp.V311 if protocol == "3.1.1" else mp.V5
    aliases = protocol == "5+aliases"
    activity = asyncio.Event()
    proxies = [CountingProxy(port, activity), CountingProxy(port, activity)]
    clients: list[Client] = []
    try:
        ports = [await proxy.start() for proxy in proxies]
        for uid, proxy_port in zip(("alice", "bob"), ports, strict=True):
            clients.append(await Client.connect(proxy_port, uid, "phone", tokens[uid], level, aliases=aliases))
        await clients[0].subscribe("im/alice/in/ack", "im/alice/in/rpc")
        await clients[1].subscribe("im/bob/in/msg")
        yield Run(encoding, protocol, clients[0], clients[1], proxies[0].links[0], proxies[1].links[0], activity)
    finally:
        for client in clients:
            await client.close()
        for proxy in proxies:
            await proxy.close()


async def _one_run(port: int, tokens: dict[str, str], encoding: str, protocol: str, short_cid: str
                   ) -> list[dict[str, Any]]:
    async with _connected(port, tokens, encoding, protocol) as run:
        await _send(run, str(uuid.uuid4()), TYPICAL_TEXT, case=None)  # warm-up: the aliases are set up
        await _send(run, str(uuid.uuid4()), TYPICAL_TEXT, case="typical")
        await _send(run, f"dev-{short_cid}", TYPICAL_TEXT, case="device")
        await _send(run, short_cid, SHORT_TEXT, case="short")

        def five(result: Any) -> bool:
            return len(result.get("items", [])) == 1 + 1 + len(_OTHERS)

        await _rpc(run, "conversations", {}, case=None, check=five)  # warm-up
        await _rpc(run, "conversations", {}, case=f"{1 + 1 + len(_OTHERS)} conversations", check=five)
        await _rpc(run, "history", {"conv": "d:alice:carol", "limit": HISTORY_PAGE},
                   case=f"{HISTORY_PAGE} messages", check=lambda r: len(r.get("messages", [])) == HISTORY_PAGE)
        return run.rows


# -- the platform ------------------------------------------------------------------------------

def _settings(tmp: Path) -> Any:
    from config.settings import load_settings

    return load_settings(None, {
        "data_dir": tmp, "mqtt": {"port": 0, "ws_port": None}, "web": {"enabled": False},
        "admin": {"port": 0, "secret": None}, "database": {"url": f"sqlite://{tmp / 'imgate.db'}"},
        "workers": {"mode": "inline"}, "log_level": "WARNING",
        # a few dozen sends and RPCs in a second or two: under any per-user limit, lifted anyway
        "broker": {"publish_rate": 100_000, "publish_burst": 100_000},
        "limits": {"messages_per_s": 100_000, "messages_burst": 100_000, "rpcs_per_s": 100_000,
                   "rpcs_burst": 100_000},
    })


def _cids(n: int) -> Iterator[str]:
    """k1, k2, ... k9, ka, ... : as short as protocol.md's example, unique per sender."""
    digits = "123456789abcdefghijklmnopqrstuvwxyz"
    for i in range(n):
        yield f"k{digits[i]}" if i < len(digits) else f"k{i}"


async def _seed(services: Any) -> None:
    from services.messages.commands import SendCommand

    for uid in ("alice", "bob", "carol", *_OTHERS):
        await services.users.add_user(uid, uid.title())
    sends: list[tuple[str, str]] = []
    sends += [(("alice", "bob") if i % 2 else ("bob", "alice")) for i in range(_BOB_HISTORY)]
    sends += [(("alice", "carol") if i % 2 else ("carol", "alice")) for i in range(_CAROL_HISTORY)]
    sends += [(("alice", peer) if i % 2 else (peer, "alice")) for peer in _OTHERS for i in range(3)]
    for i, (sender, to) in enumerate(sends):  # one by one: each conversation's seq in this order
        await services.messages.send(SendCommand(sender, str(uuid.uuid4()), to, None, "text",
                                                 _SEEDED[i % len(_SEEDED)], None))


async def measure(encodings: tuple[str, ...] | list[str] = ENCODINGS,
                  protocols: tuple[str, ...] | list[str] = PROTOCOLS) -> list[dict[str, Any]]:
    """One row per (encoding, protocol, item, case), then the summary lines; against a platform
    of its own, started and stopped here."""
    from imgate.app import App

    runs = [(p, e) for p in dict.fromkeys(protocols) for e in dict.fromkeys(encodings)]  # at most 9: seq <= 65
    tmp = Path(tempfile.mkdtemp(prefix="imgate-wire-sizes-"))
    rows: list[dict[str, Any]] = []
    try:
        async with App(_settings(tmp)) as app:
            assert app.services is not None
            await _seed(app.services)
            for (protocol, encoding), short_cid in zip(runs, _cids(len(runs)), strict=True):
                tokens = {uid: (await app.services.users.issue_token(uid, "phone", encoding=encoding)).token
                          for uid in ("alice", "bob")}
                rows += await _one_run(app.mqtt_port, tokens, encoding, protocol, short_cid)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows + summaries(rows)


def _saving(x: int, base: int) -> float:
    return round(100 * (1 - x / base), 1) if base else float("nan")


def summaries(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (protocol, case): send + ack + delivery per encoding, and the savings over JSON."""
    out: list[dict[str, Any]] = []
    keys = dict.fromkeys((r["protocol"], r["case"]) for r in rows if r["item"] == "send")
    for protocol, case in keys:
        line: dict[str, Any] = {"scenario": "wire-sizes summary", "protocol": protocol, "case": case,
                                "items": "send+ack+delivery"}
        for encoding in ENCODINGS:
            mine = [r for r in rows if (r["protocol"], r["case"], r["encoding"]) == (protocol, case, encoding)
                    and r["item"] in ("send", "ack", "delivery")]
            if len(mine) == 3:
                line[f"{encoding}_bytes"] = sum(r["total_bytes"] for r in mine)
                line[f"{encoding}_payload"] = sum(r["payload_bytes"] for r in mine)
        if "json_bytes" in line:
            for encoding in ("cbor", "msgpack"):
                if f"{encoding}_bytes" in line:
                    line[f"{encoding}_saving_pct"] = _saving(line[f"{encoding}_bytes"], line["json_bytes"])
                    line[f"{encoding}_payload_saving_pct"] = _saving(line[f"{encoding}_payload"],
                                                                     line["json_payload"])
        out.append(line)
    return out


# -- Markdown ------------------------------------------------------------------------------------

_LABEL = {"json": "JSON", "cbor": "CBOR", "msgpack": "MessagePack"}


def markdown(rows: list[dict[str, Any]]) -> str:
    items = [r for r in rows if r.get("scenario") == "wire-sizes"]
    encodings = [e for e in ENCODINGS if any(r["encoding"] == e for r in items)]
    protocols = list(dict.fromkeys(r["protocol"] for r in items))
    lines_of = list(dict.fromkeys((r["item"], r["case"]) for r in items))

    def cell(protocol: str, encoding: str, item: str, case: str, key: str) -> str:
        found = [r[key] for r in items if (r["protocol"], r["encoding"], r["item"], r["case"])
                 == (protocol, encoding, item, case)]
        return str(found[0]) if found else "-"

    out = ["Payload bytes (the same in every MQTT version):", "",
           "| item | " + " | ".join(_LABEL[e] for e in encodings) + " |",
           "| --- |" + " ---: |" * len(encodings)]
    for item, case in lines_of:
        out.append(f"| {item} ({case}) | "
                   + " | ".join(cell(protocols[0], e, item, case, "payload_bytes") for e in encodings) + " |")
    out += ["", "Bytes on the wire, both directions (MQTT framing, properties and the PUBACK included):", "",
            "| item | " + " | ".join(f"{p} {_LABEL[e]}" for p in protocols for e in encodings) + " |",
            "| --- |" + " ---: |" * (len(protocols) * len(encodings))]
    for item, case in lines_of:
        out.append(f"| {item} ({case}) | " + " | ".join(cell(p, e, item, case, "total_bytes")
                                                         for p in protocols for e in encodings) + " |")
    summary = [r for r in rows if r.get("scenario") == "wire-sizes summary"]
    if summary:
        out += ["", "One message: send + ack + delivery, bytes on the wire (payloads alone):", "",
                "| MQTT | message | " + " | ".join(_LABEL[e] for e in encodings) + " |",
                "| --- | --- |" + " ---: |" * len(encodings)]
        for s in summary:
            cells = []
            for e in encodings:
                if f"{e}_bytes" not in s:
                    cells.append("-")
                    continue
                text = f"{s[f'{e}_bytes']} ({s[f'{e}_payload']})"
                if f"{e}_saving_pct" in s:
                    text += f", -{s[f'{e}_saving_pct']}% (-{s[f'{e}_payload_saving_pct']}%)"
                cells.append(text)
            out.append(f"| {s['protocol']} | {s['case']} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encodings", nargs="+", choices=ENCODINGS, default=list(ENCODINGS))
    parser.add_argument("--protocols", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS))
    parser.add_argument("--markdown", action="store_true", help="also print the results as Markdown tables")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rows = asyncio.run(measure(args.encodings, args.protocols))
    for row in rows:
        print(json.dumps(row), flush=True)
    if args.markdown:
        print("\n" + markdown(rows), flush=True)
    if any(r.get("other_bytes") for r in rows):
        print("wire-sizes: something else crossed the links during an exchange (other_bytes)", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
