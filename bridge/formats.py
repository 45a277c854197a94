"""Payload encodings (protocol "Encodings"): JSON, CBOR (RFC 8949) and MessagePack.

One data model, JSON's: maps with text keys, arrays, text, integers, finite floats, booleans and
null. A device's payloads are decoded into it (anything else, such as a CBOR byte string or tag,
is refused as bad input), and what the bridge publishes is a :class:`Body`: its JSON bytes, which
the broker converts for a device that reads CBOR or MessagePack (once per content type). The
services never see an encoding.

CBOR and MessagePack are compact: the protocol's own map keys travel as the small integers of
:data:`KEYS` (``"conv"`` is 2), except inside a ``data`` value (a custom message's own object),
whose keys stay as they were sent. A device may send either form.
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
from dataclasses import dataclass
from typing import Any, Self

import cbor2
import msgpack  # type: ignore[import-untyped]

from broker.payload import JSON, Payload
from services.ids import ENCODINGS

log = logging.getLogger("imgate.bridge")

CBOR = ENCODINGS["cbor"]
MSGPACK = ENCODINGS["msgpack"]
MAX_DEPTH = 32  # levels of maps and arrays in a decoded payload (custom data included)
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1  # what all three encodings carry as integers


# The protocol's map keys as CBOR and MessagePack carry them (protocol "Encodings"). A number,
# once given, never changes meaning; new keys take new numbers. 1-23 take one byte in CBOR.
KEYS: dict[str, int] = {name: n for n, name in enumerate((
    "id", "conv", "seq", "from", "cid", "type", "text", "ts", "to", "group", "error", "code", "message", "jsonrpc",
    "method", "params", "result", "mentions", "reply", "reply_to", "attachment", "data", "messages",
    "items", "uid", "online", "excerpt", "edited_at", "retry_after_ms", "limit", "last_seq", "read_seq", "unread",
    "last", "kind", "peer", "mentioned", "key", "mime", "size", "sha256", "name", "width", "height", "duration",
    "thumbnail", "url", "next_cursor", "cursor", "after_seq", "before_seq", "by", "emoji", "op", "recalled_by",
    "platform", "device", "gid", "members", "q", "unread_mentions", "mentions_dropped", "mention_all",
    "read", "read_count", "unread_count", "pins", "hidden", "pin", "preview", "title", "description", "image",
    "forward", "merge", "forwarded", "merged", "thread", "tseq", "replies", "root", "read_tseq", "unread_threads",
    "at", "status", "scheduled", "created", "message_id", "ttl", "expires_at", "ids", "seqs",
    "bot"),
    start=1)}
NAMES: dict[int, str] = {n: name for name, n in KEYS.items()}
OPAQUE = "data"  # its value's keys are the sender's own: never numbered


# Maps keyed by user ids or emoji: their keys are data (a user may be called "name"), not numbered.
KEYED_BY_DATA = frozenset(("presence", "profiles", "reactions"))


def compact(value: Any) -> Any:
    """``value`` with the protocol's map keys numbered (see KEYS), for CBOR and MessagePack."""
    kind = type(value)
    if kind is dict:
        keys = KEYS
        return {keys.get(k, k): (v if type(v) not in _CONTAINERS or k == OPAQUE
                                 else _data_keyed(v) if k in KEYED_BY_DATA else compact(v))
                for k, v in value.items()}
    if kind is list or kind is tuple:
        return [compact(v) if type(v) in _CONTAINERS else v for v in value]
    return value


def _data_keyed(value: Any) -> Any:
    if type(value) is dict:
        return {k: compact(v) if type(v) in _CONTAINERS else v for k, v in value.items()}
    return compact(value)


_CONTAINERS = frozenset((dict, list, tuple))
_TEXTUAL = frozenset((str, bool, type(None)))  # of the data model whatever their value


class FormatError(ValueError):
    """A payload that is not a valid value of its encoding's, or not of the JSON data model."""


@dataclass(frozen=True, slots=True)
class Format:
    name: str  # json, cbor, msgpack
    content_type: str
    label: str  # in error messages: "payload is not {label}"
    object_name: str  # what a top-level map is called in it: "a JSON object", "a CBOR map"

    def decode(self, data: bytes) -> Any:
        """The value ``data`` holds, in the JSON data model. Raises FormatError."""
        if self.name == "json":
            try:
                # NaN and Infinity, and integers past 64 bits, are not JSON's (nor CBOR's, nor
                # MessagePack's): the devices that read another encoding could not be given them.
                value = _JSON_DECODER.decode(data.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError) as exc:
                raise FormatError(str(exc)) from None
            if b"\\u" in data and _has_lone_surrogate(value):  # only an escape makes one ("\ud800")
                msg = "a lone UTF-16 surrogate escape (text must be Unicode characters)"
                raise FormatError(msg)
            return value
        try:
            if self.name == "cbor":
                # RFC 8949 §3.4.6: the self-described CBOR tag (55799) marks, it means nothing.
                stream = io.BytesIO(data[3:] if data[:3] == b"\xd9\xd9\xf7" else data)
                # No tag at all: cbor2 resolves some itself (shared values and string references: a
                # few hundred bytes that expand exponentially; bignums, dates...).
                value = cbor2.CBORDecoder(stream, tag_hook=_no_tag, semantic_decoders=_NO_SEMANTICS,
                                          max_depth=MAX_DEPTH + 1, allow_duplicate_keys=False).decode()
                if stream.tell() != len(stream.getbuffer()):
                    msg = "extra data after the value"
                    raise FormatError(msg)
            else:
                value = msgpack.unpackb(data, raw=False, strict_map_key=False)  # key numbers: see KEYS
        except FormatError:
            raise
        except Exception as exc:  # noqa: BLE001 (each decoder raises its own kinds: ValueError, EOF...)
            raise FormatError(str(exc)) from None
        return _plain(value, 0, numbered=True)


JSON_FORMAT = Format("json", JSON, "UTF-8 JSON", "a JSON object")
FORMATS = {
    JSON: JSON_FORMAT,
    CBOR: Format("cbor", CBOR, "valid CBOR", "a CBOR map"),
    MSGPACK: Format("msgpack", MSGPACK, "valid MessagePack", "a MessagePack map"),
}


FORMAT_NAMED = {f.name: f for f in FORMATS.values()}


def format_of(content_type: str | None) -> Format | None:
    """The format an MQTT 5 Content Type names (None: it names none imgate has). No Content Type
    at all: JSON. Parameters (``; charset=utf-8``) and case are ignored."""
    if content_type is None:
        return JSON_FORMAT
    return FORMATS.get(content_type.partition(";")[0].strip().lower())


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(value: Any) -> bool:
    """Is there a lone surrogate in ``value``'s text? (Iterative: JSON nests hundreds of levels.)"""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            if _SURROGATE.search(item) is not None:
                return True
        elif kind is dict:
            stack.extend(item.keys())
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
    return False


def _no_constant(name: str) -> Any:
    msg = f"{name} is not a JSON number"
    raise ValueError(msg)


def _finite(digits: str) -> float:
    value = float(digits)
    if not math.isfinite(value):
        msg = "a number too large for a float"
        raise ValueError(msg)
    return value


def _int64(digits: str) -> int:
    value = int(digits)
    if len(digits) > 18 and not _INT_MIN <= value <= _INT_MAX:
        msg = "an integer out of the 64-bit range"
        raise ValueError(msg)
    return value


# One decoder, made once (json.loads with hooks would build one per payload).
_JSON_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_int=_int64, parse_float=_finite)


def nested_deeper(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Do ``value``'s maps and arrays nest more than ``limit`` levels? (Iterative: any depth.)"""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is dict or kind is list:
            if depth >= limit:
                return True
            stack.extend((v, depth + 1) for v in (item.values() if kind is dict else item))
    return False


def holds_nul(value: Any) -> bool:
    """Is there a U+0000 in ``value``'s text (its strings, map keys included)? PostgreSQL stores
    none in a text or JSON column. (Iterative: any depth.)"""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            if "\x00" in item:
                return True
        elif kind is dict:
            stack.extend(item)
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
    return False


def _no_tag(decoder: Any, tag: Any) -> Any:
    msg = f"CBOR tag {tag.tag} is not supported"
    raise FormatError(msg)


def _no_semantic_tag(tag: int) -> Any:
    def refuse(decoder: Any) -> Any:
        msg = f"CBOR tag {tag} is not supported"
        raise FormatError(msg)
    return refuse


# The tags cbor2 6 decodes itself, found by probing every tag below 70,000 (a test probes again):
# each overridden by a refusal.
_SEMANTIC_TAGS = (0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 1004, 43000, 55799)
_NO_SEMANTICS = {tag: _no_semantic_tag(tag) for tag in _SEMANTIC_TAGS}


def _plain(value: Any, depth: int, *, numbered: bool) -> Any:
    """``value`` in the JSON data model (map keys given as numbers named, where ``numbered``),
    else FormatError naming what is not."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            msg = "an integer out of the 64-bit range"
            raise FormatError(msg)
        return value
    if kind is float:
        if not math.isfinite(value):
            msg = "a NaN or infinite number"
            raise FormatError(msg)
        return value
    if depth >= MAX_DEPTH:
        msg = f"more than {MAX_DEPTH} levels of nesting"
        raise FormatError(msg)
    if kind is dict:
        out = {}
        for key, item in value.items():
            name = key
            if type(key) is int and numbered:
                name = NAMES.get(key)
                if name is None:
                    msg = f"map key {key} is not a key of the protocol"
                    raise FormatError(msg)
            elif type(key) is not str:
                msg = "a map key that is not text" + (" or a key number" if numbered else "")
                raise FormatError(msg)
            if name in out:
                msg = f"map key {name!r} given twice"
                raise FormatError(msg)
            out[name] = item if type(item) in _TEXTUAL else _plain(item, depth + 1,
                                                                   numbered=numbered and name != OPAQUE)
        return out
    if kind is list:
        return [item if type(item) in _TEXTUAL else _plain(item, depth + 1, numbered=numbered) for item in value]
    if kind is bytes:
        msg = "a byte string (send binary data as text: base64 or hex)"
        raise FormatError(msg)
    msg = f"a {kind.__name__} (a tag, or a simple value: JSON's data model has none)"
    raise FormatError(msg)


class Body(Payload):
    """What the bridge publishes: the JSON bytes of ``obj``, converted on demand (once per
    content type) for a device that reads CBOR or MessagePack."""

    obj: Any
    _converted: dict[str, bytes | None]

    def convert(self, content_type: str) -> bytes | None:
        done: dict[str, bytes | None] = self.__dict__.setdefault("_converted", {})
        if content_type in done:
            return done[content_type]
        encode = _ENCODERS.get(content_type)
        data: bytes | None = None
        if encode is not None:
            obj = self.__dict__.get("obj")
            try:
                if obj is None:  # let go once routed (see routed): read back from the JSON
                    obj = json.loads(self)
                data = encode(compact(obj))
            except (ValueError, TypeError, OverflowError, RecursionError, cbor2.CBORError):
                # Something JSON took and the others cannot carry as it is (stored before the
                # JSON decoder refused it): carried as near as they can.
                try:
                    data = encode(_representable(compact(obj))) if obj is not None else None
                except Exception:  # a bug: say so, and let the device have JSON rather than nothing
                    log.exception("could not convert a payload to %s: sent as JSON", content_type)
        done[content_type] = data
        return data

    def encoded(self, content_type: str) -> bytes:
        """These contents as a payload of ``content_type`` of their own (an encoding tree's copy;
        this JSON itself if they cannot be converted)."""
        data = self.convert(content_type)
        return self if data is None else Encoded(data, content_type)

    def routed(self) -> None:
        """The broker has delivered it to everyone subscribed: the object goes (a queued message
        weighs its bytes, and those of its conversions, no more); a later conversion reads it
        back from the JSON."""
        self.__dict__.pop("obj", None)


class Encoded(Payload):
    """A payload already in ``content_type`` (an encoding tree's copy): never converted again."""

    def __new__(cls, data: bytes, content_type: str) -> Self:
        payload = super().__new__(cls, data)
        payload.content_type = content_type
        return payload


_ENCODERS = {CBOR: cbor2.dumps, MSGPACK: lambda obj: bytes(msgpack.packb(obj))}


def _representable(value: Any) -> Any:
    """``value`` with what CBOR and MessagePack cannot carry as it is replaced by its nearest:
    an integer out of the 64-bit range by a float, text with lone surrogates by U+FFFD."""
    kind = type(value)
    if kind is dict:
        return {_representable(k): _representable(v) for k, v in value.items()}
    if kind is list:
        return [_representable(v) for v in value]
    if kind is int and not _INT_MIN <= value <= _INT_MAX:
        return float(value) if abs(value) < 1e308 else (math.inf if value > 0 else -math.inf)
    if kind is str:
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return value


def dumps(obj: Any) -> Body:
    """What the bridge publishes: ``obj`` as compact JSON, convertible for other readers."""
    body = Body(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())
    body.obj = obj
    return body
