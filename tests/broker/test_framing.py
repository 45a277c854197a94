"""The sans-IO framing of packets after CONNECT: no sockets, bytes in, packets or a protocol
violation out, including fuzzing with random and truncated input."""

from __future__ import annotations

import random

import pytest

from broker import framing
from broker.framing import Bare, FrameDecoder, PacketId, PacketTooLarge, ProtocolViolation, Publish, Subscribe
from tests.mqttraw import publish_packet, subscribe_packet

LIMIT = 1 << 16


def packets_of(data: bytes, *, step: int | None = None, limit: int = LIMIT) -> list[framing.Packet]:
    decoder, out = FrameDecoder(limit), []
    step = step or len(data) or 1
    for i in range(0, len(data), step):
        decoder.feed(data[i:i + step])
        while (packet := decoder.next_packet()) is not None:
            out.append(packet)
    assert decoder.buffered == 0
    return out


STREAM = (publish_packet("im/a/out/msg", b'{"x":1}', qos=1, packet_id=7)
          + publish_packet("t/\u00e9t\u00e9", b"", qos=0, retain=True)
          + subscribe_packet(["im/a/in/#", "presence/b/+"], qos=1, packet_id=3)
          + b"\xa2\x07\x00\x04\x00\x03a/b"  # UNSUBSCRIBE a/b
          + b"\x40\x02\x00\x09" + b"\x62\x02\x00\x0a" + b"\xc0\x00" + b"\xe0\x00")


def test_a_stream_splits_into_the_same_packets_however_it_arrives() -> None:
    expected = [
        Publish("im/a/out/msg", b'{"x":1}', 1, 7, False, False),
        Publish("t/\u00e9t\u00e9", b"", 0, None, True, False),
        Subscribe(3, (("im/a/in/#", 1), ("presence/b/+", 1))),
        framing.Unsubscribe(4, ("a/b",)),
        PacketId(framing.PUBACK, 9), PacketId(framing.PUBREL, 10), Bare(framing.PINGREQ), Bare(framing.DISCONNECT),
    ]
    for step in (1, 2, 3, 7, 64, None):
        assert packets_of(STREAM, step=step) == expected


def test_an_oversized_packet_is_refused_as_soon_as_its_length_is_known() -> None:
    decoder = FrameDecoder(1024)
    decoder.feed(b"\x82\xff\xff\x7f")  # SUBSCRIBE announcing 2 MiB, nothing of it sent yet
    with pytest.raises(PacketTooLarge, match="over the limit"):
        decoder.next_packet()


@pytest.mark.parametrize(("data", "why"), [
    (b"\x30\x04\x00\x02\xff\xfe", "UTF-8"),                       # topic not UTF-8
    (b"\x30\x05\x00\x03a\x00b", "U\\+0000"),                      # NUL in a topic
    (b"\x30\x04\x00\x09ab", "past the end"),                      # string longer than its packet
    (b"\x36\x05\x00\x01a\x00\x01", "QoS 3"),
    (b"\x38\x03\x00\x01a", "DUP"),                               # QoS 0 with DUP
    (b"\x32\x05\x00\x01a\x00\x00", "identifier 0"),
    (b"\x80\x06\x00\x01\x00\x01a\x01", "reserved flags"),         # SUBSCRIBE flags must be 2
    (b"\x82\x02\x00\x01", "without a filter"),
    (b"\x82\x05\x00\x01\x00\x01a", "without QoS"),
    (b"\x82\x06\x00\x01\x00\x01a\x03", "requested QoS"),
    (b"\xa2\x02\x00\x01", "without a filter"),
    (b"\x40\x03\x00\x01\x00", "2 bytes"),
    (b"\xc0\x01\x00", "with a body"),
    (b"\x10\x00", "not allowed"),                                 # a second CONNECT
    (b"\x20\x02\x00\x00", "not allowed"),                         # CONNACK from a client
    (b"\xf0\x00", "not allowed"),
    (b"\x30\xff\xff\xff\xff\x01", "longer than 4 bytes"),
])
def test_malformed_packets_are_protocol_violations(data: bytes, why: str) -> None:
    with pytest.raises(ProtocolViolation, match=why):
        packets_of(data)


def _fuzz_one(data: bytes, limit: int) -> None:
    decoder = FrameDecoder(limit)
    for i in range(0, len(data), 97):
        decoder.feed(data[i:i + 97])
        for _ in range(len(data) + 1):  # it must consume input or ask for more: never spin
            before = decoder.buffered
            if decoder.next_packet() is None:
                break
            assert decoder.buffered < before
        else:
            pytest.fail("the decoder did not stop")
        assert decoder.buffered <= limit + 5 + 97  # one packet (header + body) and one read, at most


def test_fuzz_random_and_truncated_input_only_ever_raises_protocol_violations() -> None:
    rng = random.Random(20261130)
    valid = [STREAM, publish_packet("x" * 300, b"y" * 5000, qos=1, packet_id=1),
             subscribe_packet([f"f/{i}" for i in range(200)])]
    cases = 0
    for _ in range(3000):
        kind = rng.random()
        if kind < 0.4:
            data = rng.randbytes(rng.randrange(0, 300))
        elif kind < 0.7:  # a valid stream cut short, or with a few bytes flipped
            base = rng.choice(valid)
            data = base[:rng.randrange(len(base) + 1)]
        else:
            data = bytearray(rng.choice(valid))
            for _ in range(rng.randrange(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        try:
            _fuzz_one(data, limit=rng.choice([64, 1024, LIMIT]))
        except ProtocolViolation:
            pass
        cases += 1
    assert cases == 3000
