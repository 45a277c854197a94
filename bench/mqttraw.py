"""A hand-built MQTT 3.1.1 CONNECT (the tests' raw client) for clients that connect and then
stay idle: cheaper than a full client when opening thousands of connections."""

from __future__ import annotations

from tests.mqttraw import connect_packet

__all__ = ["connect_packet", "parse_connack"]


def parse_connack(header: bytes) -> int:
    """Return code of a 4-byte CONNACK (0 = accepted); raises ValueError if it is not one."""
    if len(header) != 4 or header[0] != 0x20 or header[1] != 2:
        msg = f"not a CONNACK: {header!r}"
        raise ValueError(msg)
    return header[3]
