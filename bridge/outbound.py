"""What the bridge publishes: topic names, publishes, and the error replies every wire path
builds the same way (acks and JSON-RPC errors, from the one error table)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bridge.formats import FORMAT_NAMED, Body, Format, dumps
from services.errors import WIRE, ErrorCode, ImError

# MQTT 5 property identifiers: a payload's Content Type; request/response (MQTT 5 §4.10).
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09



@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int = 1
    props: dict[int, Any] | None = None  # MQTT 5 properties (a reply's correlation data)


@dataclass(frozen=True, slots=True)
class ReplyTo:
    """Where an MQTT 5 request asked for its reply: its Response Topic (kept only where the
    requester may read it: its own ``{p}/{uid}/in/rpc`` or below) and its Correlation Data."""

    topic: str | None
    correlation: bytes | None

    def apply(self, pub: Publish) -> Publish:
        props = {CORRELATION_DATA: self.correlation} if self.correlation is not None else None
        return Publish(self.topic or pub.topic, pub.payload, pub.qos, props)


class Topics:
    """Topic names for one prefix, and its encoding trees (``{prefix}-cbor``...: protocol
    "Encodings"), which have the same levels."""

    def __init__(self, prefix: str, trees: Sequence[str] = ()) -> None:
        self.prefix = prefix
        self.trees: dict[str, Format] = {f"{prefix}-{name}": FORMAT_NAMED[name] for name in dict.fromkeys(trees)}
        self.prefixes = (prefix, *self.trees)

    def inbox(self, uid: str, kind: str) -> str:
        return f"{self.prefix}/{uid}/in/{kind}"

    def device_notify(self, uid: str, device: str) -> str:
        """Delivered by the broker to that one device only (protocol §7)."""
        return f"{self.prefix}/{uid}/in/notify/{device}"

    def device_limit_notice(self, uid: str, device: str, by: str) -> list[tuple[str, bytes]]:
        """What a device disconnected by the device policy is told first (protocol §7): on the
        user's notify topic (and its copies in the encoding trees), so the kicked device and the
        others see why."""
        notice = {"type": "kicked", "device": device, "reason": "device_limit", "by": by,
                  "ts": time.time_ns() // 1_000_000}
        body, topic = dumps(notice), self.inbox(uid, "notify")
        return [(topic, body), *self.tree_copies(topic, body)]

    def tree_copies(self, topic: str, body: Body) -> list[tuple[str, bytes]]:
        """``body``, published on ``topic`` (under ``{prefix}/``), as each encoding tree has it."""
        rest = topic[len(self.prefix):]
        return [(prefix + rest, body.encoded(fmt.content_type)) for prefix, fmt in self.trees.items()]

    def subscriptions(self, shared_group: str | None = None) -> list[str]:
        filters = [f"{p}/+/out/{kind}" for p in self.prefixes for kind in ("msg", "rpc", "rpc/+", "event")]
        filters.append("presence/+/+")
        if shared_group:
            return [f"$share/{shared_group}/{f}" for f in filters]
        return filters


def ack_error(topics: Topics, uid: str, cid: str | None, code: ErrorCode, message: str, *,
              retry_after_ms: int | None = None, reason: str | None = None) -> Publish:
    error: dict[str, Any] = {"code": code.value, "message": message}
    if retry_after_ms is not None:
        error["retry_after_ms"] = retry_after_ms
    if reason is not None:
        error["reason"] = reason
    return Publish(topics.inbox(uid, "ack"), dumps({"cid": cid, "error": error}))


def rpc_error(topics: Topics, uid: str, req_id: Any, code: int, message: str, app: ErrorCode | None = None, *,
              retry_after_ms: int | None = None, reply_to: ReplyTo | None = None,
              reason: str | None = None) -> Publish:
    error: dict[str, Any] = {"code": code, "message": message}
    if app is not None:
        error["data"] = {"code": app.value}
        if retry_after_ms is not None:
            error["data"]["retry_after_ms"] = retry_after_ms
        if reason is not None:
            error["data"]["reason"] = reason
    pub = Publish(topics.inbox(uid, "rpc"), dumps({"jsonrpc": "2.0", "id": req_id, "error": error}))
    return reply_to.apply(pub) if reply_to is not None else pub


def error_reply(topics: Topics, uid: str, exc: ImError, *, cid: str | None = None, rpc_id: Any = None,
                rpc: bool = False, reply_to: ReplyTo | None = None) -> Publish:
    """A service error, told on the wire it came from: an ack (``rpc`` False) or a JSON-RPC error
    whose code comes from the one table (``services.errors.WIRE``)."""
    if rpc:
        return rpc_error(topics, uid, rpc_id, WIRE[exc.code].rpc, exc.message, exc.code,
                         retry_after_ms=exc.retry_after_ms, reply_to=reply_to, reason=exc.reason)
    return ack_error(topics, uid, cid, exc.code, exc.message, retry_after_ms=exc.retry_after_ms, reason=exc.reason)
