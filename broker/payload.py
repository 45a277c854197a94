"""Payloads the broker converts for each reader.

The server's own messages (the bridge's deliveries, acks and answers) are published once per
topic, yet a user's devices may each read a different content type (JSON, CBOR, ...). Such a
message's payload is a :class:`Payload`: its bytes in one content type, and a way to give the
same content in another. The broker converts once per content type and message, when a session
that reads another content type gets it, and labels what it sends with the MQTT 5 Content Type.

The broker knows content types only as strings; which exist and how they convert is the
publisher's (the bridge's). A client's own PUBLISH is plain bytes and reaches everyone as sent.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from broker.codec import P_CONTENT_TYPE, constant_properties

JSON = "application/json"  # what the server's payloads are when no reader asks for another


@cache
def label(content_type: str) -> dict[int, Any]:
    """The properties ``{Content Type: content_type}``, one shared (never changed) dict per type."""
    return constant_properties({P_CONTENT_TYPE: content_type})


class Payload(bytes):
    """Bytes in :attr:`content_type`. ``convert`` gives the same content in another content type,
    or None when it cannot (then every reader gets these bytes, labelled as they are)."""

    content_type: str = JSON

    def convert(self, content_type: str) -> bytes | None:
        return None

    def routed(self) -> None:
        """Called by the broker once it has routed the message to every subscriber: what was
        kept only for conversions during routing may go."""
