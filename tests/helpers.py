"""Test helpers: real MQTT clients (aiomqtt) with an inbox you can wait on, never sleep on."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import cbor2
import msgpack  # type: ignore[import-untyped]

WAIT = 10.0  # seconds: generous, only reached when a test is failing


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool = False
    content_type: str | None = None  # MQTT 5: the PUBLISH's Content Type

    @property
    def json(self) -> Any:
        return json.loads(self.payload)

    @property
    def body(self) -> Any:
        """The payload decoded by its encoding: its Content Type (MQTT 5), else the first byte
        (a JSON object starts with "{", a CBOR map with 0xa0-0xbf, a MessagePack map with
        0x80-0x8f, 0xde or 0xdf)."""
        first = self.payload[:1]
        if self.content_type == "application/cbor" or (self.content_type is None and b"\xa0" <= first <= b"\xbf"):
            return named(cbor2.loads(self.payload))
        if self.content_type == "application/msgpack" or (
                self.content_type is None and (b"\x80" <= first <= b"\x8f" or first in (b"\xde", b"\xdf"))):
            return named(msgpack.unpackb(self.payload, strict_map_key=False))
        return json.loads(self.payload)


def named(value: Any) -> Any:
    """A CBOR or MessagePack payload's numbered map keys named (protocol "Encodings"), except
    inside ``data``."""
    from bridge.formats import KEYED_BY_DATA, NAMES

    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            name = NAMES.get(k, k) if isinstance(k, int) else k
            if name == "data":
                out[name] = v
            elif name in KEYED_BY_DATA and isinstance(v, dict):  # keyed by uids or emoji: text keys
                out[name] = {key: named(item) for key, item in v.items()}
            else:
                out[name] = named(v)
        return out
    if isinstance(value, list):
        return [named(v) for v in value]
    return value


@dataclass
class Inbox:
    """Everything a client received, in order, with waiters."""

    items: list[Received] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def add(self, item: Received) -> None:
        async with self._changed:
            self.items.append(item)
            self._changed.notify_all()

    async def wait_for(self, pred: Callable[[Received], bool], *, count: int = 1, timeout: float = WAIT
                       ) -> list[Received]:
        """Wait until ``count`` received items match ``pred``; returns them."""
        async def ready() -> list[Received]:
            async with self._changed:
                await self._changed.wait_for(lambda: len([i for i in self.items if pred(i)]) >= count)
                return [i for i in self.items if pred(i)]
        try:
            return await asyncio.wait_for(ready(), timeout)
        except TimeoutError:
            seen = "\n  ".join(f"{i.topic} {i.payload[:200]!r}" for i in self.items[-20:])
            msg = f"timed out waiting for {count} matching message(s); last received:\n  {seen}"
            raise AssertionError(msg) from None

    def matching(self, pred: Callable[[Received], bool]) -> list[Received]:
        return [i for i in self.items if pred(i)]


def on(suffix: str, **fields_: Any) -> Callable[[Received], bool]:
    """Predicate: topic ends with ``suffix`` and the payload (JSON, CBOR or MessagePack) has
    these field values."""
    def pred(r: Received) -> bool:
        if not r.topic.endswith(suffix):
            return False
        try:
            body = r.body
        except (ValueError, cbor2.CBORError):
            return False
        return isinstance(body, dict) and all(body.get(k) == v for k, v in fields_.items())
    return pred


class Device:
    """One connected device of one user, speaking the imgate protocol."""

    _ids = itertools.count(1)

    def __init__(self, client: aiomqtt.Client, uid: str, prefix: str = "im", device: str = "") -> None:
        self.client = client
        self.uid = uid
        self.device = device
        self.prefix = prefix
        self.inbox = Inbox()
        self.disconnected = asyncio.Event()  # set when the broker drops the connection

    async def send(self, payload: dict[str, Any] | bytes | str, qos: int = 1) -> None:
        data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
        await self.client.publish(f"{self.prefix}/{self.uid}/out/msg", data, qos=qos)

    async def send_and_ack(self, cid: str, to: str, text: str = "hi") -> dict[str, Any]:
        await self.send({"cid": cid, "to": to, "type": "text", "text": text})
        return (await self.inbox.wait_for(on("/in/ack", cid=cid)))[-1].json

    async def rpc(self, method: str, params: dict[str, Any] | None = None, *, on_device: bool = False
                  ) -> dict[str, Any]:
        """A JSON-RPC request on ``out/rpc`` (or ``out/rpc/{device}``, which says which device asks)."""
        req_id = next(self._ids)
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": req_id, "method": method}
        if params is not None:
            body["params"] = params
        topic = f"{self.prefix}/{self.uid}/out/rpc" + (f"/{self.device}" if on_device else "")
        await self.client.publish(topic, json.dumps(body), qos=1)
        return (await self.inbox.wait_for(on("/in/rpc", id=req_id)))[0].json

    async def result(self, method: str, params: dict[str, Any] | None = None, *, on_device: bool = False) -> Any:
        response = await self.rpc(method, params, on_device=on_device)
        assert "result" in response, response
        return response["result"]


@asynccontextmanager
async def connect(port: int, uid: str, device: str, token: str, *, subscribe: list[str] | None = None,
                  clean_session: bool = True, keepalive: int = 30, host: str = "127.0.0.1",
                  **client_kwargs: Any) -> AsyncIterator[Device]:
    """Connect a device with aiomqtt and collect everything it receives. ``client_kwargs`` go to
    aiomqtt.Client (``protocol=ProtocolVersion.V5``, ``tls_context``, ``transport="websockets"``...)."""
    if client_kwargs.get("protocol") == aiomqtt.ProtocolVersion.V5:
        client_kwargs.setdefault("clean_start", clean_session)
    else:
        client_kwargs["clean_session"] = clean_session
    async with aiomqtt.Client(host, port, username=uid, password=token, identifier=f"{uid}:{device}",
                              keepalive=keepalive, **client_kwargs) as client:
        dev = Device(client, uid, device=device)

        async def reader() -> None:
            try:
                async for m in client.messages:
                    payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
                    ctype = getattr(m.properties, "ContentType", None) if m.properties is not None else None
                    await dev.inbox.add(Received(str(m.topic), payload, bool(m.retain), ctype))
            except aiomqtt.MqttError:
                dev.disconnected.set()

        task = asyncio.create_task(reader(), name=f"test-reader[{uid}:{device}]")
        try:
            for topic in subscribe if subscribe is not None else [f"im/{uid}/in/#"]:
                await client.subscribe(topic, qos=1)
            yield dev
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self, now_ms: int) -> None:
        self.ms = now_ms

    def now_ms(self) -> int:
        return self.ms


async def wait_event(event: asyncio.Event, timeout: float = WAIT) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        raise AssertionError("event did not happen in time") from None


def tweak(settings: Any, section: str, **changes: Any) -> Any:
    """``settings`` with some keys of one section changed (settings are frozen)."""
    part = getattr(settings, section)
    return settings.model_copy(update={section: part.model_validate({**part.model_dump(), **changes})})


async def mosquitto_subscribed(proc: Any) -> None:
    """Until a ``mosquitto_sub -d`` process has its SUBACK (its debug output says so; run it under
    ``stdbuf -oL``, or its output waits in a buffer until it exits)."""
    async with asyncio.timeout(WAIT):
        while b"received SUBACK" not in await proc.stdout.readline():
            pass


@asynccontextmanager
async def platform(settings: Any, *uids: str, device: str = "phone", clock: Any = None
                   ) -> AsyncIterator[tuple[Any, dict[str, str]]]:
    """Start the platform with ``settings`` (and ``clock``), create ``uids`` and one device token each."""
    from imgate.app import App

    async with App(settings, clock=clock) as app:
        assert app.services is not None
        tokens = {}
        for uid in uids:
            await app.services.users.add_user(uid)
            tokens[uid] = (await app.services.users.issue_token(uid, device)).token
        yield app, tokens


@asynccontextmanager
async def webhook_receiver(secret: str) -> AsyncIterator[tuple[str, asyncio.Queue[Any]]]:
    """A push webhook on 127.0.0.1 that checks each POST's signature: (its URL, the bodies it got)."""
    import hashlib
    import hmac

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from imgate.http import EmbeddedHttpServer

    got: asyncio.Queue[Any] = asyncio.Queue()

    async def hook(request: Request) -> JSONResponse:
        body = await request.body()
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert request.headers["x-imgate-signature"] == signature
        await got.put(json.loads(body))
        return JSONResponse({})

    async with EmbeddedHttpServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])]), "127.0.0.1", 0) as http:
        yield f"http://127.0.0.1:{http.port}/hook", got
