"""Identifiers, validation patterns and the injectable clock."""

from __future__ import annotations

import os
import re
import time
from typing import Protocol

UID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DEVICE_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class Clock(Protocol):
    """Wall-clock milliseconds since the epoch (injected so tests can control time)."""

    def now_ms(self) -> int: ...


class SystemClock:
    """The real clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


def new_ulid(now_ms: int) -> str:
    """A ULID: 48 bits of milliseconds, 80 random bits, Crockford base32 (26 chars, sortable)."""
    value = (now_ms & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def direct_conv_id(a: str, b: str) -> str:
    """The 1:1 conversation id: ``d:{a}:{b}`` with the two uids sorted."""
    x, y = sorted((a, b))
    return f"d:{x}:{y}"


# A device's payload encodings (protocol "Encodings"): its token's, or its MQTT 5 CONNECT's User
# Property "encoding"; each with the MQTT 5 Content Type that labels it.
ENCODINGS = {"json": "application/json", "cbor": "application/cbor", "msgpack": "application/msgpack"}
