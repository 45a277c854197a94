"""The sans-IO MQTT 3.1.1 and 5.0 codec (``broker.codec``): no sockets, bytes in, packets or a
protocol violation out; encoders checked against the decoders; and a fuzz test of the framing
(random, truncated and corrupted streams, for a fresh and for an established connection)."""

from __future__ import annotations

import random
import tracemalloc
from typing import Any

import pytest

from broker import codec
from broker.codec import (
    MQTT5,
    MQTT311,
    Ack,
    AuthPacket,
    Bare,
    Connect,
    Disconnect,
    FrameDecoder,
    PacketTooLarge,
    ProtocolViolation,
    Publish,
    Subscribe,
    SubscriptionRequest,
    Unsubscribe,
    UnsupportedVersion,
    Will,
)
from tests import mqtt5packets as p
from tests.mqttraw import publish_packet, subscribe_packet

LIMIT = 1 << 16
MALFORMED, PROTOCOL_ERROR, UNSUPPORTED, TOO_LARGE = 0x81, 0x82, 0x84, 0x95


def packets_of(data: bytes, *, step: int | None = None, limit: int = LIMIT, level: int | None = MQTT311
               ) -> list[codec.Packet]:
    """Every packet of ``data`` fed ``step`` bytes at a time; ``level`` None: a fresh connection."""
    decoder, out = FrameDecoder(limit, level), []
    step = step or len(data) or 1
    for i in range(0, len(data), step):
        decoder.feed(data[i:i + step])
        while (packet := decoder.next_packet()) is not None:
            out.append(packet)
    assert decoder.buffered == 0
    return out


# ---- MQTT 3.1.1 ------------------------------------------------------------------------------------
STREAM = (publish_packet("im/a/out/msg", b'{"x":1}', qos=1, packet_id=7)
          + publish_packet("t/\u00e9t\u00e9", b"", qos=0, retain=True)
          + subscribe_packet(["im/a/in/#", "presence/b/+"], qos=1, packet_id=3)
          + b"\xa2\x07\x00\x04\x00\x03a/b"  # UNSUBSCRIBE a/b
          + b"\x40\x02\x00\x09" + b"\x62\x02\x00\x0a" + b"\xc0\x00" + b"\xe0\x00")
EXPECTED = [
    Publish("im/a/out/msg", b'{"x":1}', 1, 7, False, False),
    Publish("t/\u00e9t\u00e9", b"", 0, None, True, False),
    Subscribe(3, (SubscriptionRequest("im/a/in/#", 1), SubscriptionRequest("presence/b/+", 1))),
    Unsubscribe(4, ("a/b",)),
    Ack(codec.PUBACK, 9), Ack(codec.PUBREL, 10), Bare(codec.PINGREQ), Bare(codec.DISCONNECT),
]
CONNECT_311 = p.connect("dev-1", level=MQTT311, clean=False, keep_alive=30, username="alice", password=b"s3cret",
                        will=p.WillSpec("w/t", b"gone", qos=2, retain=True))
EXPECTED_CONNECT_311 = Connect(MQTT311, "dev-1", False, 30, "alice", b"s3cret", Will("w/t", b"gone", 2, True))
STREAM_311_MORE = (p.publish("q2", b"x", qos=2, packet_id=65535, dup=True, level=MQTT311)
                   + p.subscribe(5, [("a", 0), ("b", 2)], level=MQTT311) + p.pubrec(6) + p.pubcomp(7))
EXPECTED_311_MORE = [
    Publish("q2", b"x", 2, 65535, False, True),
    Subscribe(5, (SubscriptionRequest("a", 0), SubscriptionRequest("b", 2))),
    Ack(codec.PUBREC, 6), Ack(codec.PUBCOMP, 7),
]

# ---- MQTT 5 ----------------------------------------------------------------------------------------
CONNECT_PROPS: dict[int, Any] = {
    codec.P_SESSION_EXPIRY: 3600, codec.P_RECEIVE_MAXIMUM: 20, codec.P_MAXIMUM_PACKET_SIZE: 4096,
    codec.P_TOPIC_ALIAS_MAXIMUM: 5, codec.P_REQUEST_PROBLEM_INFO: 0, codec.P_REQUEST_RESPONSE_INFO: 1,
    codec.P_AUTH_METHOD: "SCRAM-SHA-1", codec.P_AUTH_DATA: b"\x00\x01", codec.P_USER: [("k", "v"), ("k", "v2")],
}
WILL_PROPS: dict[int, Any] = {
    codec.P_WILL_DELAY: 10, codec.P_PAYLOAD_FORMAT: 1, codec.P_MESSAGE_EXPIRY: 99, codec.P_CONTENT_TYPE: "text/plain",
    codec.P_RESPONSE_TOPIC: "r/w", codec.P_CORRELATION_DATA: b"c", codec.P_USER: [("a", "b")],
}
PUBLISH_PROPS: dict[int, Any] = {
    codec.P_PAYLOAD_FORMAT: 1, codec.P_MESSAGE_EXPIRY: 60, codec.P_CONTENT_TYPE: "application/json",
    codec.P_RESPONSE_TOPIC: "r/1", codec.P_CORRELATION_DATA: b"\x01\x02", codec.P_TOPIC_ALIAS: 3,
    codec.P_USER: [("x", "y"), ("x", "z")],
}
CONNECT_5 = p.connect("dev-1", keep_alive=30, username="alice", password=b"\x00\xffpw", props=CONNECT_PROPS,
                      will=p.WillSpec("w/t", b"bye", qos=1, retain=True, props=WILL_PROPS))
EXPECTED_CONNECT_5 = Connect(MQTT5, "dev-1", True, 30, "alice", b"\x00\xffpw",
                             Will("w/t", b"bye", 1, True, WILL_PROPS), CONNECT_PROPS)
STREAM_5 = (p.publish("im/a/out/msg", b'{"x":1}', qos=1, packet_id=7, props=PUBLISH_PROPS)
            + p.publish("t/\u00e9t\u00e9", retain=True)
            + p.publish("", b"q", qos=2, packet_id=8, dup=True, props={codec.P_TOPIC_ALIAS: 3})
            + p.subscribe(3, [("a/#", p.options(1, no_local=True)),
                              ("$share/g/b", p.options(2, retain_as_published=True, retain_handling=2)),
                              ("c", p.options(0, retain_handling=1))],
                          props={codec.P_SUBSCRIPTION_ID: codec.MAX_VARINT, codec.P_USER: [("u", "v")]})
            + p.subscribe(4, [("d", 1)])
            + p.unsubscribe(5, ["a/#", "c"], props={codec.P_USER: [("u", "v")]})
            + p.unsubscribe(6, ["e"])
            + p.puback(9) + p.puback(10, 0x10) + p.pubrec(11, 0x80, props={codec.P_REASON_STRING: "no"})
            + p.pubrel(12, 0x92) + p.pubcomp(13, 0, props={codec.P_USER: [("n", "m")]})
            + p.pingreq()
            + p.auth(0x18, props={codec.P_AUTH_METHOD: "SCRAM-SHA-1", codec.P_AUTH_DATA: b"\xff"})
            + p.packet(0xF0, b"")  # AUTH with no body: reason 0
            + p.disconnect(0x04, props={codec.P_SESSION_EXPIRY: 0, codec.P_REASON_STRING: "bye",
                                        codec.P_SERVER_REFERENCE: "elsewhere", codec.P_USER: [("w", "x")]})
            + p.packet(0xE0, b"\x8b")  # reason only
            + p.disconnect())
EXPECTED_5 = [
    Publish("im/a/out/msg", b'{"x":1}', 1, 7, False, False, PUBLISH_PROPS),
    Publish("t/\u00e9t\u00e9", b"", 0, None, True, False),
    Publish("", b"q", 2, 8, False, True, {codec.P_TOPIC_ALIAS: 3}),  # the codec does not resolve aliases
    Subscribe(3, (SubscriptionRequest("a/#", 1, no_local=True),
                  SubscriptionRequest("$share/g/b", 2, retain_as_published=True, retain_handling=2),
                  SubscriptionRequest("c", 0, retain_handling=1)),
              {codec.P_SUBSCRIPTION_ID: codec.MAX_VARINT, codec.P_USER: [("u", "v")]}),
    Subscribe(4, (SubscriptionRequest("d", 1),)),
    Unsubscribe(5, ("a/#", "c"), {codec.P_USER: [("u", "v")]}),
    Unsubscribe(6, ("e",)),
    Ack(codec.PUBACK, 9), Ack(codec.PUBACK, 10, 0x10), Ack(codec.PUBREC, 11, 0x80, {codec.P_REASON_STRING: "no"}),
    Ack(codec.PUBREL, 12, 0x92), Ack(codec.PUBCOMP, 13, 0, {codec.P_USER: [("n", "m")]}),
    Bare(codec.PINGREQ),
    AuthPacket(0x18, {codec.P_AUTH_METHOD: "SCRAM-SHA-1", codec.P_AUTH_DATA: b"\xff"}),
    AuthPacket(0),
    Disconnect(0x04, {codec.P_SESSION_EXPIRY: 0, codec.P_REASON_STRING: "bye", codec.P_SERVER_REFERENCE: "elsewhere",
                      codec.P_USER: [("w", "x")]}),
    Disconnect(0x8B),
    Disconnect(0),
]
STEPS = (1, 2, 3, 7, 64, None)


@pytest.mark.parametrize("step", STEPS)
def test_a_311_stream_splits_into_the_same_packets_however_it_arrives(step: int | None) -> None:
    assert packets_of(STREAM, step=step) == EXPECTED
    assert packets_of(STREAM_311_MORE, step=step) == EXPECTED_311_MORE
    assert packets_of(CONNECT_311 + STREAM + STREAM_311_MORE, step=step, level=None) == [
        EXPECTED_CONNECT_311, *EXPECTED, *EXPECTED_311_MORE]


@pytest.mark.parametrize("step", STEPS)
def test_an_mqtt5_stream_splits_into_the_same_packets_however_it_arrives(step: int | None) -> None:
    assert packets_of(STREAM_5, step=step, level=MQTT5) == EXPECTED_5
    assert packets_of(CONNECT_5 + STREAM_5, step=step, level=None) == [EXPECTED_CONNECT_5, *EXPECTED_5]


def test_the_decoder_takes_the_level_of_the_connect() -> None:
    for data, level in ((CONNECT_311, MQTT311), (CONNECT_5, MQTT5)):
        decoder = FrameDecoder(LIMIT)
        assert decoder.level is None
        decoder.feed(data)
        assert isinstance(decoder.next_packet(), Connect)
        assert decoder.level == level


def test_connect_variants() -> None:
    # MQTT 5 allows a password without a user name; an empty client id; no will, no properties.
    (c,) = packets_of(p.connect("", password=b"pw"), level=None)
    assert isinstance(c, Connect) and c == Connect(MQTT5, "", True, 60, None, b"pw")
    assert c.password_text == "pw"
    (c,) = packets_of(p.connect("x", level=MQTT311, keep_alive=0), level=None)
    assert isinstance(c, Connect) and c == Connect(MQTT311, "x", True, 0) and c.password_text is None
    # One user property given many times is allowed, in order.
    pairs = [("k", str(i)) for i in range(5)] + [("k", "0")]
    (c,) = packets_of(p.connect("x", props={codec.P_USER: pairs}), level=None)
    assert isinstance(c, Connect) and c.properties == {codec.P_USER: pairs}


def test_an_oversized_packet_is_refused_as_soon_as_its_length_is_known() -> None:
    decoder = FrameDecoder(1024, MQTT311)
    decoder.feed(b"\x82\xff\xff\x7f")  # SUBSCRIBE announcing 2 MiB, nothing of it sent yet
    with pytest.raises(PacketTooLarge, match="over the limit") as info:
        decoder.next_packet()
    assert info.value.reason == TOO_LARGE
    assert decoder.buffered == 4


def test_a_packet_of_exactly_the_limit_is_accepted_and_one_byte_more_is_not() -> None:
    fits = p.publish("t", b"x" * (1024 - 3), level=MQTT311)  # remaining length 1024
    assert len(packets_of(fits, limit=1024)) == 1
    with pytest.raises(PacketTooLarge):
        packets_of(p.publish("t", b"x" * (1024 - 2), level=MQTT311), limit=1024)


def test_a_connect_over_64_kib_is_refused_as_soon_as_its_length_is_known() -> None:
    decoder = FrameDecoder(1 << 24)  # a large limit for later packets; a CONNECT gets 64 KiB
    header = b"\x10" + p.varint(codec.MAX_CONNECT + 1)
    for i, byte in enumerate(header[:-1]):
        decoder.feed(bytes((byte,)))
        assert decoder.next_packet() is None, i
    decoder.feed(header[-1:])
    with pytest.raises(PacketTooLarge) as info:
        decoder.next_packet()
    assert info.value.reason == TOO_LARGE
    assert decoder.buffered == len(header)
    # 64 KiB itself is fine: 19 bytes of header, client id and user name, then the password.
    big = p.connect("c", username="u", password=b"x" * (codec.MAX_CONNECT - 19))
    assert len(big) == 4 + codec.MAX_CONNECT
    (connect,) = packets_of(big, limit=1 << 24, level=None)
    assert isinstance(connect, Connect) and connect.password == b"x" * (codec.MAX_CONNECT - 19)


@pytest.mark.parametrize("data", [b"GET / HTTP/1.1\r\n", b"\x16\x03\x01\x02\x00", b"\x30", b"\x11", b"\xc0\x00"])
def test_a_first_packet_that_is_not_a_connect_is_refused_on_its_first_byte(data: bytes) -> None:
    decoder = FrameDecoder(LIMIT)
    decoder.feed(data[:1])
    with pytest.raises(ProtocolViolation, match="not a CONNECT") as info:
        decoder.next_packet()
    assert info.value.reason == PROTOCOL_ERROR
    with pytest.raises(ProtocolViolation, match="not a CONNECT"):
        codec.decode_connect(data[0], data[2:])


@pytest.mark.parametrize(("name", "level"), [("MQTT", 3), ("MQIsdp", 3), ("MQTT", 6), ("MQTT", 0), ("XMPP", 4)])
def test_an_unsupported_protocol_version_is_its_own_violation(name: str, level: int) -> None:
    data = p.connect("c", level=level, protocol_name=name)
    with pytest.raises(UnsupportedVersion) as info:
        packets_of(data, level=None)
    assert info.value.reason == UNSUPPORTED and info.value.level == level
    assert isinstance(info.value, ProtocolViolation)


def _c(flags: int, rest: bytes = b"\x00\x01c", level: int = MQTT311) -> bytes:
    """A CONNECT with these flags, keep-alive 60 and ``rest`` after the variable header's start."""
    return p.packet(0x10, p.s("MQTT") + bytes((level, flags)) + b"\x00\x3c" + rest)


def _p5(props: bytes, topic: bytes = b"\x00\x01t", tail: bytes = b"") -> bytes:
    """An MQTT 5 QoS 0 PUBLISH with a raw property block."""
    return p.packet(0x30, topic + props + tail)


def _raw(*props: bytes) -> bytes:
    block = b"".join(props)
    return p.varint(len(block)) + block


MALFORMED_311 = [
    (b"\x30\x04\x00\x02\xff\xfe", "UTF-8"),                       # topic not UTF-8
    (b"\x30\x06\x00\x04\xed\xa0\x80a", "UTF-8"),                  # a surrogate
    (b"\x30\x05\x00\x02\xc0\xafb", "UTF-8"),                      # an overlong '/'
    (b"\x30\x05\x00\x03a\x00b", "U\\+0000"),                      # NUL in a topic
    (b"\x30\x04\x00\x09ab", "past the end"),                      # string longer than its packet
    (b"\x30\x01\x00", "past the end"),                            # half a length
    (b"\x32\x04\x00\x01a\x00", "past the end"),                   # half a packet id
    (b"\x36\x05\x00\x01a\x00\x01", "QoS 3"),
    (b"\x38\x03\x00\x01a", "DUP"),                                # QoS 0 with DUP
    (b"\x32\x05\x00\x01a\x00\x00", "identifier 0"),
    (b"\x80\x06\x00\x01\x00\x01a\x01", "reserved flags"),         # SUBSCRIBE flags must be 2
    (b"\x82\x02\x00\x01", "without a filter"),
    (b"\x82\x05\x00\x01\x00\x01a", "without options"),
    (b"\x82\x06\x00\x01\x00\x01a\x03", "requested QoS"),
    (b"\x82\x06\x00\x01\x00\x01a\x04", "requested QoS byte"),    # 3.1.1: the upper bits are reserved
    (b"\x82\x06\x00\x00\x00\x01a\x01", "identifier 0"),
    (b"\xa2\x02\x00\x01", "without a filter"),
    (b"\xa0\x05\x00\x01\x00\x01a", "reserved flags"),
    (b"\x40\x03\x00\x01\x00", "2 bytes"),
    (b"\x40\x01\x00", "past the end"),
    (b"\x60\x02\x00\x01", "reserved flags"),                      # PUBREL flags must be 2
    (b"\x42\x02\x00\x01", "reserved flags"),
    (b"\xc0\x01\x00", "with a body"),
    (b"\xe0\x01\x00", "with a body"),                             # 3.1.1 DISCONNECT has none
    (b"\x10\x00", "not allowed"),                                 # a second CONNECT
    (b"\x20\x02\x00\x00", "not allowed"),                         # CONNACK from a client
    (b"\x90\x03\x00\x01\x00", "not allowed"),                     # SUBACK
    (b"\xd0\x00", "not allowed"),                                 # PINGRESP
    (b"\x00\x00", "not allowed"),                                 # type 0 is reserved
    (b"\xf0\x00", "not allowed"),                                 # AUTH is MQTT 5 only
    (b"\x30\xff\xff\xff\xff\x01", "longer than 4 bytes"),
]


@pytest.mark.parametrize(("data", "why"), MALFORMED_311)
def test_malformed_311_packets_are_protocol_violations(data: bytes, why: str) -> None:
    with pytest.raises(ProtocolViolation, match=why) as info:
        packets_of(data)
    assert info.value.reason in (MALFORMED, PROTOCOL_ERROR)


S_EXPIRY = b"\x11\x00\x00\x00\x01"
USER_KV = b"\x26\x00\x01k\x00\x01v"
MALFORMED_5 = [
    # (packet, match, reason)
    (p.publish("t", props={codec.P_SESSION_EXPIRY: 1}), "not allowed here", PROTOCOL_ERROR),
    (p.publish("t", props={codec.P_SUBSCRIPTION_ID: 1}), "not allowed here", PROTOCOL_ERROR),
    (p.subscribe(1, [("a", 0)], props={codec.P_TOPIC_ALIAS: 1}), "not allowed here", PROTOCOL_ERROR),
    (p.unsubscribe(1, ["a"], props={codec.P_SUBSCRIPTION_ID: 1}), "not allowed here", PROTOCOL_ERROR),
    (p.puback(1, 0, props={codec.P_CONTENT_TYPE: "x"}), "not allowed here", PROTOCOL_ERROR),
    (p.disconnect(0, props={codec.P_WILL_DELAY: 1}), "not allowed here", PROTOCOL_ERROR),
    (p.auth(0x18, props={codec.P_SESSION_EXPIRY: 1}), "not allowed here", PROTOCOL_ERROR),
    (_p5(_raw(b"\x7f\x00")), "not allowed here", PROTOCOL_ERROR),                     # no such property
    (_p5(_raw(b"\x03\x00\x01a", b"\x03\x00\x01b")), "given twice", PROTOCOL_ERROR),
    (p.packet(0x82, b"\x00\x01" + _raw(b"\x0b\x01", b"\x0b\x02") + b"\x00\x01a\x00"), "given twice", PROTOCOL_ERROR),
    (_p5(b"\x80\x00"), "shortest form", MALFORMED),                                  # property length 0 in 2 bytes
    (p.packet(0x82, b"\x00\x01" + _raw(b"\x0b\x81\x00") + b"\x00\x01a\x00"), "shortest form", MALFORMED),
    (_p5(_raw(b"\x81\x00\x00")), "shortest form", MALFORMED),                         # property id 1 in 2 bytes
    (_p5(b"\xff\xff\xff\xff\x01"), "longer than 4 bytes", MALFORMED),
    (p.packet(0x82, b"\x00\x01" + _raw(b"\x0b\xff\xff\xff\xff\x01") + b"\x00\x01a\x00"), "longer than 4", MALFORMED),
    (_p5(b"\x02\x03\x00\x05hello"), "runs past its properties", MALFORMED),          # a string past the block
    (_p5(b"\x01\x01", tail=b"x"), "runs past its properties", MALFORMED),            # a byte past the block
    (_p5(b"\x03\x02\x00\x00\x00", tail=b"x"), "runs past its properties", MALFORMED),  # a u16 past the block
    (_p5(b"\x02" + USER_KV), "past their length", MALFORMED),                        # a pair past the block
    (_p5(b"\x09\x01\x00\x00\x00"), "past the end", MALFORMED),                       # a u32 past the packet
    (_p5(b"\x05\x01"), "past the end of their packet", MALFORMED),
    (p.packet(0x30, b"\x00\x01t"), "past the end", MALFORMED),                        # no property length at all
    (_p5(_raw(b"\x26\x00\x01\xff\x00\x01v")), "UTF-8", MALFORMED),                   # a user property not UTF-8
    (p.puback(1, 0x05), "reason", PROTOCOL_ERROR),
    (p.pubrec(1, 0x92), "reason", PROTOCOL_ERROR),                                    # 0x92 is PUBREL/PUBCOMP's
    (p.pubrel(1, 0x10), "reason", PROTOCOL_ERROR),
    (p.pubcomp(1, 0x80), "reason", PROTOCOL_ERROR),
    (p.disconnect(0x05), "DISCONNECT reason", PROTOCOL_ERROR),
    (p.disconnect(0x84), "DISCONNECT reason", PROTOCOL_ERROR),                        # a server-only reason
    (p.packet(0x40, b"\x00\x01\x00\x00\xff"), "bytes after the end", MALFORMED),
    (p.packet(0xE0, b"\x00\x00\xff"), "bytes after the end of DISCONNECT", MALFORMED),
    (p.packet(0xF0, b"\x18\x00\xff"), "bytes after the end of AUTH", MALFORMED),
    (p.packet(0xF2, b""), "reserved flags", MALFORMED),
    (p.subscribe(1, [("a", 0x40)]), "SUBSCRIBE options", MALFORMED),
    (p.subscribe(1, [("a", 0x80)]), "SUBSCRIBE options", MALFORMED),
    (p.subscribe(1, [("a", 0x31)]), "SUBSCRIBE options", PROTOCOL_ERROR),
    (p.subscribe(1, [("a", 0x03)]), "QoS 3", MALFORMED),
    (p.subscribe(1, []), "without a filter", PROTOCOL_ERROR),
    (p.unsubscribe(1, []), "without a filter", PROTOCOL_ERROR),
    (p.subscribe(1, [("a", 0)], props={codec.P_SUBSCRIPTION_ID: 0}), "must not be 0", PROTOCOL_ERROR),
    (p.publish("t", props={codec.P_PAYLOAD_FORMAT: 2}), "0 or 1", PROTOCOL_ERROR),
    (p.publish("t", props={codec.P_TOPIC_ALIAS: 0}), "must not be 0", PROTOCOL_ERROR),
    (p.publish("t", props={codec.P_RESPONSE_TOPIC: "a/+"}), "response topic", PROTOCOL_ERROR),
    (p.publish("t", props={codec.P_RESPONSE_TOPIC: "a/#"}), "response topic", PROTOCOL_ERROR),
    (p.publish("t", props={codec.P_RESPONSE_TOPIC: ""}), "response topic", PROTOCOL_ERROR),
    (p.publish("t", qos=1, packet_id=0), "identifier 0", PROTOCOL_ERROR),
]
MALFORMED_CONNECT = [
    (_c(0x03), "reserved flag", MALFORMED),
    (_c(0x12), "without a will", MALFORMED),                                          # will QoS 2, no will
    (_c(0x22), "without a will", MALFORMED),                                          # will retain, no will
    (_c(0x1E, b"\x00\x01c\x00\x01t\x00\x00"), "will QoS 3", MALFORMED),
    (_c(0x42, b"\x00\x01c\x00\x02pw"), "password without user name", MALFORMED),
    (_c(0x02, b"\x00\x01cX"), "bytes after the end", MALFORMED),
    (_c(0x02, b"\x00\x05c"), "past the end", MALFORMED),
    (_c(0x06, b"\x00\x01c\x00\x01t"), "past the end", MALFORMED),                      # will without a payload
    (_c(0x82, b"\x00\x01c"), "past the end", MALFORMED),                               # user name flag, no name
    (p.packet(0x10, p.s("MQTT")), "without protocol level", MALFORMED),
    (p.packet(0x10, p.s("MQTT") + b"\x04"), "without flags", MALFORMED),
    (p.packet(0x10, p.s("MQTT") + b"\x04\x02\x00"), "past the end", MALFORMED),        # half a keep-alive
    (p.packet(0x10, b""), "past the end", MALFORMED),
    (p.connect("c", props={codec.P_RECEIVE_MAXIMUM: 0}), "must not be 0", PROTOCOL_ERROR),
    (p.connect("c", props={codec.P_MAXIMUM_PACKET_SIZE: 0}), "must not be 0", PROTOCOL_ERROR),
    (p.connect("c", props={codec.P_REQUEST_PROBLEM_INFO: 2}), "0 or 1", PROTOCOL_ERROR),
    (p.connect("c", props={codec.P_REQUEST_RESPONSE_INFO: 7}), "0 or 1", PROTOCOL_ERROR),
    (p.connect("c", props={codec.P_TOPIC_ALIAS: 1}), "not allowed here", PROTOCOL_ERROR),
    (p.connect("c", props={codec.P_WILL_DELAY: 1}), "not allowed here", PROTOCOL_ERROR),  # a will property
    (p.connect("c", will=p.WillSpec("w", b"", props={codec.P_SESSION_EXPIRY: 1})), "not allowed here",
     PROTOCOL_ERROR),
    (p.connect("c", will=p.WillSpec("w", b"", props={codec.P_RESPONSE_TOPIC: "r/#"})), "response topic",
     PROTOCOL_ERROR),
    (p.connect("c", will=p.WillSpec("w", b"", props={codec.P_PAYLOAD_FORMAT: 2})), "0 or 1", PROTOCOL_ERROR),
    (_c(0x02, b"\x80\x00\x00\x01c", MQTT5), "shortest form", MALFORMED),               # property length in 2 bytes
]


@pytest.mark.parametrize(("data", "why", "reason"), MALFORMED_5)
def test_malformed_mqtt5_packets_are_protocol_violations_with_their_reason(data: bytes, why: str, reason: int) -> None:
    with pytest.raises(ProtocolViolation, match=why) as info:
        packets_of(data, level=MQTT5)
    assert info.value.reason == reason


@pytest.mark.parametrize(("data", "why", "reason"), MALFORMED_CONNECT)
def test_malformed_connects_are_protocol_violations_with_their_reason(data: bytes, why: str, reason: int) -> None:
    with pytest.raises(ProtocolViolation, match=why) as info:
        packets_of(data, level=None)
    assert info.value.reason == reason
    assert not isinstance(info.value, UnsupportedVersion)


def test_the_same_packets_are_fine_in_their_valid_form() -> None:
    """The malformed cases differ from valid packets only in what they are refused for."""
    assert packets_of(_c(0x02), level=None) == [Connect(MQTT311, "c", True, 60)]
    assert packets_of(_c(0x02, b"\x00\x00\x01c", MQTT5), level=None) == [Connect(MQTT5, "c", True, 60)]
    assert packets_of(_c(0x36, b"\x00\x01c\x00\x01t\x00\x00"), level=None) == [
        Connect(MQTT311, "c", True, 60, will=Will("t", b"", 2, True))]
    assert packets_of(_p5(_raw(b"\x03\x00\x01a")), level=MQTT5) == [
        Publish("t", b"", 0, None, False, False, {codec.P_CONTENT_TYPE: "a"})]
    assert packets_of(_p5(_raw(USER_KV, USER_KV)), level=MQTT5) == [
        Publish("t", b"", 0, None, False, False, {codec.P_USER: [("k", "v"), ("k", "v")]})]
    assert packets_of(p.subscribe(1, [("a", 0x2A)]), level=MQTT5) == [
        Subscribe(1, (SubscriptionRequest("a", 2, False, True, 2),))]
    assert packets_of(p.publish("t", props={codec.P_PAYLOAD_FORMAT: 0, codec.P_RESPONSE_TOPIC: "r"}), level=MQTT5) == [
        Publish("t", b"", 0, None, False, False, {codec.P_PAYLOAD_FORMAT: 0, codec.P_RESPONSE_TOPIC: "r"})]
    for reason in (0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99):
        assert packets_of(p.puback(1, reason), level=MQTT5) == [Ack(codec.PUBACK, 1, reason)]
        assert packets_of(p.pubrec(1, reason), level=MQTT5) == [Ack(codec.PUBREC, 1, reason)]
    assert packets_of(p.pubrel(1, 0x92) + p.pubcomp(2, 0x92), level=MQTT5) == [
        Ack(codec.PUBREL, 1, 0x92), Ack(codec.PUBCOMP, 2, 0x92)]


def test_decode_rejects_what_a_client_may_not_send_after_connect() -> None:
    for first in (0x10, 0x20, 0x90, 0xB0, 0xD0):
        with pytest.raises(ProtocolViolation, match="not allowed") as info:
            codec.decode(first, b"", MQTT5)
        assert info.value.reason == PROTOCOL_ERROR
    assert codec.decode(0xF0, b"", MQTT5) == AuthPacket(0)
    with pytest.raises(ProtocolViolation, match="not allowed"):
        codec.decode(0xF0, b"", MQTT311)


# ---- encoders ------------------------------------------------------------------------------------
ALL_PROPERTIES: dict[int, Any] = {
    codec.P_PAYLOAD_FORMAT: 1, codec.P_MESSAGE_EXPIRY: 0xFFFFFFFF, codec.P_CONTENT_TYPE: "text/\u00e9",
    codec.P_RESPONSE_TOPIC: "r/t", codec.P_CORRELATION_DATA: b"\x00\xff", codec.P_SUBSCRIPTION_ID: 16384,
    codec.P_SESSION_EXPIRY: 7, codec.P_ASSIGNED_CLIENT_ID: "auto-1", codec.P_SERVER_KEEP_ALIVE: 65535,
    codec.P_AUTH_METHOD: "m", codec.P_AUTH_DATA: b"", codec.P_REQUEST_PROBLEM_INFO: 0, codec.P_WILL_DELAY: 1,
    codec.P_REQUEST_RESPONSE_INFO: 1, codec.P_RESPONSE_INFO: "ri", codec.P_SERVER_REFERENCE: "s:1",
    codec.P_REASON_STRING: "why", codec.P_RECEIVE_MAXIMUM: 1, codec.P_TOPIC_ALIAS_MAXIMUM: 0,
    codec.P_TOPIC_ALIAS: 2, codec.P_MAXIMUM_QOS: 1, codec.P_RETAIN_AVAILABLE: 0, codec.P_USER: [("a", "1"), ("a", "")],
    codec.P_MAXIMUM_PACKET_SIZE: 1 << 20, codec.P_WILDCARD_SUB_AVAILABLE: 1, codec.P_SUB_ID_AVAILABLE: 0,
    codec.P_SHARED_SUB_AVAILABLE: 1,
}


def test_every_property_type_round_trips() -> None:
    assert set(ALL_PROPERTIES) == set(codec._PROPERTY_TYPES) == set(p.PROPERTY_TYPES)
    encoded = codec.encode_properties(ALL_PROPERTIES)
    decoded, end = p.decode_properties(encoded)
    assert end == len(encoded)
    assert decoded == {**ALL_PROPERTIES, codec.P_SUBSCRIPTION_ID: [16384]}
    # And through the codec's own property reader, every property allowed.
    props, end = codec._properties(encoded, 0, frozenset(ALL_PROPERTIES))
    assert end == len(encoded) and props == ALL_PROPERTIES
    assert codec.encode_properties(None) == codec.encode_properties({}) == b"\x00"


def test_several_subscription_identifiers_are_encoded_as_several_properties() -> None:
    encoded = codec.encode_properties({codec.P_SUBSCRIPTION_ID: [1, 128, codec.MAX_VARINT]})
    assert encoded == b"\x0a" + b"\x0b\x01" + b"\x0b\x80\x01" + b"\x0b\xff\xff\xff\x7f"
    assert p.decode_properties(encoded)[0] == {codec.P_SUBSCRIPTION_ID: [1, 128, codec.MAX_VARINT]}


@pytest.mark.parametrize("n", [0, 1, 127, 128, 16383, 16384, 2_097_151, 2_097_152, codec.MAX_VARINT])
def test_remaining_length_is_the_shortest_variable_byte_integer(n: int) -> None:
    assert codec.remaining_length(n) == p.varint(n)
    assert len(codec.remaining_length(n)) == 1 + (n > 127) + (n > 16383) + (n > 2_097_151)


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("level", [MQTT311, MQTT5])
def test_encode_publish_round_trips(qos: int, level: int) -> None:
    props = PUBLISH_PROPS if level == MQTT5 else {}
    packet_id = 513 if qos else 0
    data = codec.encode_publish("a/\u00e9".encode(), b"\x00pay", qos, packet_id, dup=bool(qos), retain=True,
                                level=level, props=codec.encode_properties(props))
    expected = Publish("a/\u00e9", b"\x00pay", qos, packet_id or None, True, bool(qos), props)
    assert packets_of(data, level=level) == [expected]
    assert p.parse_one(data, level) == p.Pub("a/\u00e9", b"\x00pay", qos, packet_id or None, bool(qos), True, props)
    big = codec.encode_publish(b"t", b"x" * 200_000, 1, 1, level=level)
    assert packets_of(big, level=level, limit=1 << 20) == [Publish("t", b"x" * 200_000, 1, 1, False, False)]


@pytest.mark.parametrize("kind", [codec.PUBACK, codec.PUBREC, codec.PUBREL, codec.PUBCOMP])
def test_encode_ack_round_trips(kind: int) -> None:
    assert codec.encode_ack(kind, 7) == p.ack(kind, 7)  # the 2-byte form, both versions
    assert codec.encode_ack(kind, 7, 0, level=MQTT5) == p.ack(kind, 7)
    assert codec.encode_ack(kind, 7, 0x92, level=MQTT311) == p.ack(kind, 7)  # 3.1.1 has no reason code
    for level in (MQTT311, MQTT5):
        assert packets_of(codec.encode_ack(kind, 65535, level=level), level=level) == [Ack(kind, 65535)]
    reason = 0x92 if kind in (codec.PUBREL, codec.PUBCOMP) else 0x10
    props = {codec.P_REASON_STRING: "r", codec.P_USER: [("k", "v")]}
    with_reason = codec.encode_ack(kind, 7, reason, level=MQTT5)
    assert len(with_reason) == 5  # no property length when there are no properties (MQTT 5 §3.4.2.2.1)
    assert packets_of(with_reason, level=MQTT5) == [Ack(kind, 7, reason)]
    with_props = codec.encode_ack(kind, 7, 0, level=MQTT5, props=props)
    assert packets_of(with_props, level=MQTT5) == [Ack(kind, 7, 0, props)]
    assert p.parse_one(with_props) == p.AckOut(kind, 7, 0, props)


def test_encode_suback_and_unsuback() -> None:
    assert codec.encode_suback(3, [0, 1, 2, 0x80]) == b"\x90\x06\x00\x03\x00\x01\x02\x80"
    assert p.parse_one(codec.encode_suback(3, [0, 1, 2, 0x80]), MQTT311) == p.SubAck(3, [0, 1, 2, 0x80])
    props = {codec.P_REASON_STRING: "partly", codec.P_USER: [("a", "b")]}
    assert p.parse_one(codec.encode_suback(3, [0x00, 0x87, 0xA2], level=MQTT5)) == p.SubAck(3, [0x00, 0x87, 0xA2])
    assert p.parse_one(codec.encode_suback(3, [1], level=MQTT5, props=props)) == p.SubAck(3, [1], props)
    assert codec.encode_unsuback(9) == codec.encode_unsuback(9, [0x11]) == b"\xb0\x02\x00\x09"
    assert p.parse_one(codec.encode_unsuback(9), MQTT311) == p.UnsubAck(9, [])
    assert p.parse_one(codec.encode_unsuback(9, [0x00, 0x11, 0x87], level=MQTT5, props=props)) == p.UnsubAck(
        9, [0x00, 0x11, 0x87], props)


def test_encode_connack_and_disconnect() -> None:
    assert codec.encode_connack(MQTT311, True, 0) == b"\x20\x02\x01\x00"
    assert codec.encode_connack(MQTT311, False, 5) == b"\x20\x02\x00\x05"
    props = {codec.P_RECEIVE_MAXIMUM: 10, codec.P_ASSIGNED_CLIENT_ID: "x", codec.P_USER: [("a", "b")]}
    assert p.parse_one(codec.encode_connack(MQTT5, True, 0, props)) == p.ConnAck(True, 0, props)
    assert p.parse_one(codec.encode_connack(MQTT5, False, 0x87)) == p.ConnAck(False, 0x87)
    assert codec.encode_disconnect(0) == b"\xe0\x00"
    assert codec.encode_disconnect(0x8E) == b"\xe0\x01\x8e"
    props = {codec.P_REASON_STRING: "moved", codec.P_SERVER_REFERENCE: "other:1883"}
    data = codec.encode_disconnect(0x9C, props)
    assert p.parse_one(data) == p.DisconnectOut(0x9C, props)
    assert packets_of(data, level=MQTT5) == [Disconnect(0x9C, props)]  # its layout is a client's too
    assert codec.PINGRESP_BYTES == b"\xd0\x00" and p.parse_one(codec.PINGRESP_BYTES) == p.PingResp()


# ---- fuzz ----------------------------------------------------------------------------------------
BIG_311 = publish_packet("x" * 300, b"y" * 5000, qos=1, packet_id=1)
BIG_5 = p.publish("x" * 300, b"y" * 5000, qos=2, packet_id=1, props=PUBLISH_PROPS)
VALID: dict[int | None, list[bytes]] = {
    None: [CONNECT_311 + STREAM + STREAM_311_MORE, CONNECT_5 + STREAM_5, CONNECT_5 + BIG_5,
           p.connect("c", level=MQTT311) + BIG_311],
    MQTT311: [STREAM, STREAM_311_MORE, BIG_311, subscribe_packet([f"f/{i}" for i in range(60)])],
    MQTT5: [STREAM_5, BIG_5, p.subscribe(1, [(f"f/{i}", 0x2A) for i in range(60)],
                                         props={codec.P_SUBSCRIPTION_ID: 5})],
}
CASES_PER_MODE = 3000
REASONS = {MALFORMED, PROTOCOL_ERROR, UNSUPPORTED, TOO_LARGE}


def _fuzz_one(data: bytes, limit: int, level: int | None, read: int) -> list[codec.Packet]:
    """Decode ``data`` read by read, checking on the way that the decoder never spins and never
    holds more than one packet plus one read; returns the packets (or raises ProtocolViolation)."""
    decoder, out = FrameDecoder(limit, level), []
    for i in range(0, len(data), read):
        decoder.feed(data[i:i + read])
        for _ in range(decoder.buffered + 1):  # it must consume input (2 bytes a packet at least) or ask for more
            before = decoder.buffered
            try:
                packet = decoder.next_packet()
            except PacketTooLarge:
                assert decoder.buffered <= 5 + read  # the header (and the rest of its read), nothing more
                raise
            if packet is None:
                assert decoder.buffered == before
                break
            assert decoder.buffered < before
            out.append(packet)
        else:
            pytest.fail("the decoder did not stop")
        assert decoder.buffered <= limit + 5 + read  # one packet (header + body) and one read, at most
    return out


@pytest.mark.parametrize("level", [None, MQTT311, MQTT5], ids=["fresh", "3.1.1", "5"])
def test_fuzz_only_ever_raises_protocol_violations(level: int | None) -> None:
    rng = random.Random(20261130 + (level or 0))
    valid = VALID[level]
    full = {data: packets_of(data, level=level, limit=1 << 20) for data in valid}
    counts = {"random": 0, "truncated": 0, "flipped": 0, "violations": 0, "packets": 0}
    for _ in range(CASES_PER_MODE):
        limit, read = rng.choice([64, 1024, LIMIT]), rng.choice([1, 7, 97, 1500])
        kind = rng.random()
        if kind < 0.3:
            data = rng.randbytes(rng.randrange(0, 300))
            if level is None and rng.random() < 0.7:
                data = b"\x10" + data  # get past the first byte
            counts["random"] += 1
        elif kind < 0.65:  # a valid stream cut short: never a violation, and a prefix of its packets
            base = rng.choice(valid)
            data = base[:rng.randrange(len(base) + 1)]
            counts["truncated"] += 1
            if limit == LIMIT:
                got = _fuzz_one(data, limit, level, read)
                assert got == full[base][:len(got)]
                counts["packets"] += len(got)
                continue
        else:
            flipped = bytearray(rng.choice(valid))
            for _ in range(rng.randrange(1, 6)):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            data = bytes(flipped)
            counts["flipped"] += 1
        try:
            counts["packets"] += len(_fuzz_one(data, limit, level, read))
        except ProtocolViolation as exc:
            assert exc.reason in REASONS
            counts["violations"] += 1
    assert sum(counts[k] for k in ("random", "truncated", "flipped")) == CASES_PER_MODE
    # The cases exercised both outcomes, in quantity (about 2000 violations and 1400-3000 packets).
    assert counts["violations"] > CASES_PER_MODE // 3 and counts["packets"] > CASES_PER_MODE // 3


def test_a_packet_announcing_more_than_the_limit_is_never_buffered() -> None:
    for level, first in ((None, 0x10), (MQTT311, 0x30), (MQTT5, 0x82)):
        for announced in (1025, 1 << 20, codec.MAX_VARINT):
            decoder = FrameDecoder(1024, level)
            header = bytes((first,)) + p.varint(announced)
            decoder.feed(header)
            with pytest.raises(PacketTooLarge):
                decoder.next_packet()
            assert decoder.buffered == len(header)


def test_announcing_a_large_packet_allocates_nothing_for_it() -> None:
    """A packet within the limit is buffered as it arrives, not allocated for when announced."""
    decoder = FrameDecoder(codec.MAX_VARINT, MQTT311)
    tracemalloc.start()
    try:
        decoder.feed(b"\x30" + p.varint(codec.MAX_VARINT) + b"\x00\x01t")
        assert decoder.next_packet() is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024
    assert decoder.buffered == 8
