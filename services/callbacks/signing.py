"""The signature on every callback request, and its check (for receivers and tests).

``Imgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``: the timestamp
is signed with the body, so a receiver that refuses a ``t`` further than its replay window
(``callbacks.replay_window_s``, 300 s by default) from its own clock cannot be fed an old request
again; a receiver de-duplicates on ``Imgate-Event-Id`` within that window and beyond.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Imgate-Signature"
EVENT_ID_HEADER = "Imgate-Event-Id"
EVENT_HEADER = "Imgate-Event"


def sign(secret: str, body: bytes, ts: int) -> str:
    """The ``Imgate-Signature`` header value for ``body`` sent at unix second ``ts``."""
    mac = hmac.new(secret.encode(), str(ts).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def verify(secret: str, body: bytes, header: str, now: int, window_s: int = 300) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` and its time is within ``window_s`` of ``now``."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        ts = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - ts) > window_s:
        return False
    return hmac.compare_digest(sign(secret, body, ts), f"t={ts},v1={parts.get('v1', '')}")
