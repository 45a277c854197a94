"""The sans-IO connection state machine (``broker.connection``), bytes in and out, no sockets:
its state table, the CONNECT handshake of both versions, QoS 2 reception (exactly once across
connections), topic aliases both ways, receive maximum, maximum packet size, DISCONNECT and the
protocol errors a client can commit."""

from __future__ import annotations

import enum
import itertools
from typing import Any

import pytest

from broker import codec
from broker.codec import MQTT5, MQTT311
from broker.connection import (
    NEED_DATA,
    PAUSED,
    TRANSITIONS,
    AckReceived,
    Connection,
    ConnectRequested,
    ControlReceived,
    DisconnectRequested,
    Event,
    LocalProtocolError,
    ProtocolErrorEvent,
    PublishReceived,
    ServerLimits,
    State,
    SubscribeRequested,
    UnsubscribeRequested,
)
from tests import mqtt5packets as p

TRIGGERS = sorted({trigger for _, trigger in TRANSITIONS})


def pending(conn: Connection, data: bytes = b"") -> list[Event]:
    """Feed ``data``, then pull events until NEED_DATA or PAUSED."""
    conn.receive_data(data)
    out: list[Event] = []
    while True:
        event = conn.next_event()
        if isinstance(event, enum.Enum):  # NEED_DATA or PAUSED
            assert event in (NEED_DATA, PAUSED)
            return out
        out.append(event)


def sent(conn: Connection, level: int = MQTT5) -> list[p.ServerPacket]:
    return p.parse(conn.data_to_send(), level)


def connecting(level: int = MQTT5, *, limits: ServerLimits | None = None, **connect: Any) -> Connection:
    conn = Connection(limits)
    event = conn.next_event()
    assert event is NEED_DATA
    (event,) = pending(conn, p.connect("c", level=level, **connect))
    assert isinstance(event, ConnectRequested)
    conn.client_wants(event.connect)  # as the broker does, before deciding
    assert conn.state is State.CONNECTING
    return conn


def connected(level: int = MQTT5, *, limits: ServerLimits | None = None, qos2_in: set[int] | None = None,
              **connect: Any) -> Connection:
    conn = connecting(level, limits=limits, **connect)
    conn.accept(session_present=False, qos2_in=qos2_in, keep_alive=connect.get("keep_alive", 60))
    (connack,) = sent(conn, level)
    assert connack == p.ConnAck(False, 0, connack.properties)  # type: ignore[union-attr]
    assert conn.state is State.CONNECTED
    return conn


def closed_by(how: str) -> Connection:
    if how == "refuse":
        conn = connecting()
        conn.refuse(0x87)
    elif how == "close":
        conn = connected()
        conn.close()
    elif how == "disconnect":
        conn = connected()
        assert pending(conn, p.disconnect()) == [DisconnectRequested()]
    else:
        conn = Connection()
        (event,) = pending(conn, b"GET / HTTP/1.1\r\n")
        assert isinstance(event, ProtocolErrorEvent)
    assert conn.state is State.CLOSED
    conn.data_to_send()
    return conn


# ---- the state table ----------------------------------------------------------------------------
@pytest.mark.parametrize(("state", "trigger"), list(itertools.product(State, TRIGGERS)))
def test_every_state_and_trigger_outside_the_table_is_a_local_protocol_error(state: State, trigger: str) -> None:
    conn = Connection()
    conn.state = state
    if (state, trigger) in TRANSITIONS:
        conn._fire(trigger)
        assert conn.state is TRANSITIONS[state, trigger]
    else:
        with pytest.raises(LocalProtocolError, match=f"cannot {trigger} in state {state.value}"):
            conn._fire(trigger)
        assert conn.state is state


def test_the_table_is_the_documented_one() -> None:
    a, ci, cd, x = State.AWAIT_CONNECT, State.CONNECTING, State.CONNECTED, State.CLOSED
    assert TRANSITIONS[a, "connect"] is ci and TRANSITIONS[ci, "accept"] is cd and TRANSITIONS[ci, "refuse"] is x
    assert TRANSITIONS[cd, "disconnect"] is x
    assert all(TRANSITIONS[s, "violation"] is x for s in (a, ci, cd)) and (x, "violation") not in TRANSITIONS
    assert all(TRANSITIONS[s, "close"] is x for s in State)  # closing is always allowed, and idempotent
    assert {s for s, _ in TRANSITIONS if TRANSITIONS[s, _] is not x} <= {a, ci, cd}


REACH = {
    State.AWAIT_CONNECT: lambda: Connection(),
    State.CONNECTING: lambda: connecting(),
    State.CONNECTED: lambda: connected(),
    State.CLOSED: lambda: closed_by("close"),
}
DECISIONS = {
    "accept": lambda c: c.accept(session_present=False, keep_alive=60),
    "refuse": lambda c: c.refuse(0x87),
    "close": lambda c: c.close(),
}


@pytest.mark.parametrize(("state", "decision"), list(itertools.product(State, DECISIONS)))
def test_the_public_decisions_follow_the_table(state: State, decision: str) -> None:
    """accept/refuse/close in every reachable state: allowed exactly where the table says."""
    conn = REACH[state]()
    assert conn.state is state
    conn.data_to_send()
    if (state, decision) in TRANSITIONS:
        DECISIONS[decision](conn)
        assert conn.state is TRANSITIONS[state, decision]
    else:
        with pytest.raises(LocalProtocolError):
            DECISIONS[decision](conn)
        assert conn.state is state
        assert conn.data_to_send() == b""  # a refused decision writes nothing


def test_accept_twice_and_refuse_after_accept_are_caller_bugs() -> None:
    conn = connected()
    with pytest.raises(LocalProtocolError, match="cannot accept in state connected"):
        conn.accept(session_present=False, keep_alive=60)
    with pytest.raises(LocalProtocolError, match="cannot refuse in state connected"):
        conn.refuse(0x87)
    conn = connecting()
    conn.refuse(0x87)
    with pytest.raises(LocalProtocolError, match="cannot accept in state closed"):
        conn.accept(session_present=False, keep_alive=60)
    with pytest.raises(LocalProtocolError, match="cannot accept in state await_connect"):
        Connection().accept(session_present=False, keep_alive=60)


@pytest.mark.parametrize("how", ["refuse", "close", "disconnect", "violation"])
def test_a_closed_connection_reads_nothing_and_sends_nothing(how: str) -> None:
    conn = closed_by(how)
    conn.receive_data(p.publish("t", b"x", qos=1) + p.pingreq())
    assert conn.next_event() is PAUSED
    assert conn.send_publish("t", b"x", 0) is False
    conn.send_pubrel(1)
    conn.close()  # closing again is fine
    assert conn.data_to_send() == b"" and conn.out_bytes == 0


# ---- CONNECT ------------------------------------------------------------------------------------
@pytest.mark.parametrize("level", [MQTT311, MQTT5])
def test_connect_then_pipelined_packets_wait_for_the_decision_then_come_in_order(level: int) -> None:
    conn = Connection()
    stream = (p.connect("dev", level=level, keep_alive=30) + p.publish("a", b"1", qos=1, packet_id=1, level=level)
              + p.pingreq() + p.subscribe(2, [("s/#", 1)], level=level) + p.publish("b", b"2", level=level))
    conn.receive_data(stream[:5])
    assert conn.next_event() is NEED_DATA and conn.state is State.AWAIT_CONNECT
    conn.receive_data(stream[5:])
    event = conn.next_event()
    assert isinstance(event, ConnectRequested)
    assert (event.connect.client_id, event.connect.level, event.connect.keep_alive) == ("dev", level, 30)
    assert conn.state is State.CONNECTING and conn.level == level
    for _ in range(3):
        assert conn.next_event() is PAUSED
    assert conn.data_to_send() == b""  # not even the PINGRESP before the CONNACK
    conn.accept(session_present=True, keep_alive=30)
    events = pending(conn)
    assert [type(e) for e in events] == [PublishReceived, ControlReceived, SubscribeRequested, PublishReceived]
    assert isinstance(events[0], PublishReceived) and events[0].publish.topic == "a"
    assert events[1] == ControlReceived(codec.PINGREQ)
    assert isinstance(events[3], PublishReceived) and events[3].publish.payload == b"2"
    packets = sent(conn, level)
    assert isinstance(packets[0], p.ConnAck) and packets[0].session_present
    assert packets[1:] == [p.PingResp()]


@pytest.mark.parametrize(("reason", "code"), [(0x86, 4), (0x87, 5), (0x85, 2), (0x89, 3), (0x97, 5), (0x84, 1),
                                              (0x88, 3), (0x8C, 5), (0x80, 3), (0x99, 3)])
def test_refuse_writes_the_nearest_311_return_code(reason: int, code: int) -> None:
    conn = connecting(MQTT311)
    conn.refuse(reason, why="ignored in 3.1.1")
    assert conn.data_to_send() == b"\x20\x02\x00" + bytes((code,))
    assert conn.state is State.CLOSED and conn.next_event() is PAUSED


def test_refuse_writes_an_mqtt5_reason_code_and_reason_string() -> None:
    conn = connecting(MQTT5)
    conn.refuse(0x87, why="device limit")
    assert sent(conn) == [p.ConnAck(False, 0x87, {codec.P_REASON_STRING: "device limit"})]
    conn = connecting(MQTT5)
    conn.refuse(0x86)
    assert sent(conn) == [p.ConnAck(False, 0x86)]
    assert conn.state is State.CLOSED


def test_accept_311() -> None:
    conn = connecting(MQTT311, keep_alive=0)
    conn.accept(session_present=True, keep_alive=0, assigned_client_id="ignored", extra={codec.P_USER: []})
    assert conn.data_to_send() == b"\x20\x02\x01\x00"
    assert conn.keep_alive == 0 and conn.state is State.CONNECTED


def test_accept_mqtt5_announces_the_server_limits() -> None:
    limits = ServerLimits(max_packet=1024, receive_maximum=7, topic_alias_maximum=3, max_keep_alive=0)
    conn = connecting(limits=limits)
    conn.accept(session_present=False, assigned_client_id="auto-9", session_expiry=300, keep_alive=60,
                extra={codec.P_MAXIMUM_QOS: 1, codec.P_USER: [("a", "b")]})
    assert sent(conn) == [p.ConnAck(False, 0, {
        codec.P_RECEIVE_MAXIMUM: 7, codec.P_MAXIMUM_PACKET_SIZE: 1024 + 1 + 2, codec.P_TOPIC_ALIAS_MAXIMUM: 3,
        codec.P_ASSIGNED_CLIENT_ID: "auto-9", codec.P_SESSION_EXPIRY: 300, codec.P_MAXIMUM_QOS: 1,
        codec.P_USER: [("a", "b")]})]
    assert conn.keep_alive == 60


@pytest.mark.parametrize("max_packet", [100, 127, 128, 1024, 16384, 1 << 20])
def test_a_packet_of_the_announced_maximum_packet_size_is_accepted_and_one_byte_more_is_not(max_packet: int) -> None:
    conn = connecting(limits=ServerLimits(max_packet=max_packet))
    conn.accept(session_present=False, keep_alive=60)
    (connack,) = sent(conn)
    assert isinstance(connack, p.ConnAck)
    announced = connack.properties[codec.P_MAXIMUM_PACKET_SIZE]

    def size(n: int) -> int:  # of a PUBLISH to "t" with no properties and n bytes of payload
        return 1 + len(p.varint(4 + n)) + 4 + n

    payload = next(n for n in range(announced, 0, -1) if size(n) == announced)
    fits = p.publish("t", b"x" * payload)
    assert len(fits) == announced
    (event,) = pending(conn, fits)
    assert isinstance(event, PublishReceived)
    # The smallest PUBLISH over it (at a boundary of the remaining length's size, one byte more is no packet).
    over = p.publish("t", b"x" * (payload + 1))
    assert announced < len(over) <= announced + 2
    (event,) = pending(conn, over)
    assert isinstance(event, ProtocolErrorEvent) and event.reason == 0x95


@pytest.mark.parametrize(("max_keep_alive", "asked", "granted"), [(0, 0, 0), (0, 500, 500), (120, 60, 60),
                                                                  (120, 120, 120), (120, 121, 120), (120, 0, 120)])
@pytest.mark.parametrize("level", [MQTT311, MQTT5])
def test_keep_alive_over_the_maximum_or_0_is_replaced_and_announced(max_keep_alive: int, asked: int, granted: int,
                                                                    level: int) -> None:
    conn = connecting(level, limits=ServerLimits(max_keep_alive=max_keep_alive), keep_alive=asked)
    conn.accept(session_present=False, keep_alive=asked)
    # 3.1.1 cannot be told of another keep-alive: the client's own stands there.
    assert conn.keep_alive == (granted if level == MQTT5 else asked)
    (connack,) = sent(conn, level)
    assert isinstance(connack, p.ConnAck)
    if level == MQTT5:
        assert connack.properties.get(codec.P_SERVER_KEEP_ALIVE) == (granted if granted != asked else None)
    else:
        assert connack == p.ConnAck(False, 0)  # 3.1.1 cannot tell the client


@pytest.mark.parametrize(("level", "connack"), [(3, b"\x20\x02\x00\x01"), (6, b"\x20\x03\x00\x84\x00")])
def test_an_unsupported_version_gets_a_connack_it_can_read_and_closes(level: int, connack: bytes) -> None:
    conn = Connection()
    (event,) = pending(conn, p.connect("c", level=level, protocol_name="MQIsdp" if level == 3 else "MQTT"))
    assert isinstance(event, ProtocolErrorEvent) and event.reason == 0x84
    assert conn.state is State.CLOSED
    assert conn.out_bytes == len(connack)
    assert conn.data_to_send() == connack


@pytest.mark.parametrize("data", [b"GET / HTTP/1.1\r\n", p.pingreq(), p.connect("c")[:-1] + b"\x00\x00"])
def test_a_bad_first_packet_closes_without_an_answer(data: bytes) -> None:
    conn = Connection()
    (event,) = pending(conn, data)
    assert isinstance(event, ProtocolErrorEvent) and event.reason in (0x81, 0x82)
    assert conn.state is State.CLOSED and conn.data_to_send() == b""


# ---- PINGREQ, QoS 2 reception ------------------------------------------------------------------------
@pytest.mark.parametrize("level", [MQTT311, MQTT5])
def test_pingreq_is_answered_here_and_is_an_event_to_pace(level: int) -> None:
    conn = connected(level)
    # One event per packet, answered already: the shell only charges it to the connection's pace.
    assert conn.next_event() is NEED_DATA
    conn.receive_data(p.pingreq() + p.pingreq())
    assert conn.next_event() == ControlReceived(codec.PINGREQ)
    assert conn.out_bytes == 2  # one packet a call, however many a read brought
    assert pending(conn) == [ControlReceived(codec.PINGREQ)]
    assert conn.out_bytes == 4
    assert conn.data_to_send() == b"\xd0\x00\xd0\x00"


@pytest.mark.parametrize("level", [MQTT311, MQTT5])
def test_qos2_reception(level: int) -> None:
    qos2_in: set[int] = set()
    conn = connected(level, qos2_in=qos2_in)
    (event,) = pending(conn, p.publish("t", b"x", qos=2, packet_id=5, level=level))
    assert event == PublishReceived(codec.Publish("t", b"x", 2, 5, False, False))
    conn.send_pubrec(5)
    assert sent(conn, level) == [p.AckOut(p.PUBREC, 5)]
    assert qos2_in == {5}  # the set given to accept is the session's
    (event,) = pending(conn, p.publish("t", b"x", qos=2, packet_id=5, dup=True, level=level))
    assert isinstance(event, PublishReceived) and event.duplicate
    conn.send_pubrec(5)
    assert sent(conn, level) == [p.AckOut(p.PUBREC, 5)]
    # Handled here (PUBCOMP); its event says it was paid for by its PUBLISH.
    assert pending(conn, p.pubrel(5)) == [ControlReceived(codec.PUBREL, prepaid=True)]
    assert sent(conn, level) == [p.AckOut(p.PUBCOMP, 5)]
    assert qos2_in == set()
    (event,) = pending(conn, p.publish("t", b"y", qos=2, packet_id=5, level=level))  # the id is free again
    assert isinstance(event, PublishReceived) and not event.duplicate


@pytest.mark.parametrize(("level", "reason"), [(MQTT5, 0x92), (MQTT311, 0)])
def test_pubrel_of_an_unknown_id(level: int, reason: int) -> None:
    conn = connected(level)
    assert pending(conn, p.pubrel(77)) == [ControlReceived(codec.PUBREL, prepaid=False)]  # charged
    assert sent(conn, level) == [p.AckOut(p.PUBCOMP, 77, reason)]
    assert conn.state is State.CONNECTED


@pytest.mark.parametrize("level", [MQTT311, MQTT5])
def test_exactly_once_across_connections(level: int) -> None:
    """The PUBREC was sent, then the connection died: the client sends the PUBLISH again on a new
    connection; accepted with the session's set, it is a duplicate, not routed twice."""
    qos2_in: set[int] = set()
    first = connected(level, qos2_in=qos2_in)
    (event,) = pending(first, p.publish("t", b"x", qos=2, packet_id=9, level=level))
    assert not event.duplicate  # type: ignore[union-attr]
    first.send_pubrec(9)
    first.close()
    second = connected(level, qos2_in=qos2_in)
    (event,) = pending(second, p.publish("t", b"x", qos=2, packet_id=9, dup=True, level=level))
    assert isinstance(event, PublishReceived) and event.duplicate
    second.send_pubrec(9)
    assert pending(second, p.pubrel(9)) == [ControlReceived(codec.PUBREL, prepaid=True)]
    assert sent(second, level) == [p.AckOut(p.PUBREC, 9), p.AckOut(p.PUBCOMP, 9)]
    assert qos2_in == set()


def test_a_refused_pubrec_forgets_the_id_in_mqtt5() -> None:
    qos2_in: set[int] = set()
    conn = connected(qos2_in=qos2_in, limits=ServerLimits(receive_maximum=1))
    pending(conn, p.publish("t", b"x", qos=2, packet_id=3))
    conn.send_pubrec(3, 0x87)
    assert qos2_in == set() and sent(conn) == [p.AckOut(p.PUBREC, 3, 0x87)]
    (event,) = pending(conn, p.publish("t", b"x", qos=2, packet_id=4))  # the quota is free again
    assert isinstance(event, PublishReceived)


# ---- topic aliases, receive maximum ------------------------------------------------------------------
def test_topic_alias_in() -> None:
    conn = connected(limits=ServerLimits(topic_alias_maximum=2))
    events = pending(conn, p.publish("a/b", b"1", props={codec.P_TOPIC_ALIAS: 1})
                     + p.publish("", b"2", props={codec.P_TOPIC_ALIAS: 1})
                     + p.publish("c/d", b"3", props={codec.P_TOPIC_ALIAS: 1})  # redefined
                     + p.publish("", b"4", props={codec.P_TOPIC_ALIAS: 1})
                     + p.publish("e", b"5", props={codec.P_TOPIC_ALIAS: 2}))
    assert [(e.publish.topic, e.publish.payload) for e in events] == [  # type: ignore[union-attr]
        ("a/b", b"1"), ("a/b", b"2"), ("c/d", b"3"), ("c/d", b"4"), ("e", b"5")]
    assert conn.data_to_send() == b""


@pytest.mark.parametrize(("data", "reason"), [
    (p.publish("", b"x", props={codec.P_TOPIC_ALIAS: 1}), 0x82),    # never set
    (p.publish("t", b"x", props={codec.P_TOPIC_ALIAS: 3}), 0x94),   # over the maximum
    (p.publish("", b"x"), 0x82),                                     # no topic, no alias
])
def test_a_bad_topic_alias_is_a_protocol_error_with_a_disconnect(data: bytes, reason: int) -> None:
    conn = connected(limits=ServerLimits(topic_alias_maximum=2))
    (event,) = pending(conn, data)
    assert isinstance(event, ProtocolErrorEvent) and event.reason == reason
    assert sent(conn) == [p.DisconnectOut(reason)]
    assert conn.state is State.CLOSED


def test_a_topic_alias_when_the_server_allows_none() -> None:
    conn = connected(limits=ServerLimits(topic_alias_maximum=0))
    (event,) = pending(conn, p.publish("t", b"x", props={codec.P_TOPIC_ALIAS: 1}))
    assert isinstance(event, ProtocolErrorEvent) and event.reason == 0x94


def test_an_empty_topic_in_311_is_a_protocol_error_without_a_packet() -> None:
    conn = connected(MQTT311)
    (event,) = pending(conn, p.publish("", b"x", level=MQTT311))
    assert isinstance(event, ProtocolErrorEvent) and event.reason == 0x82
    assert conn.data_to_send() == b"" and conn.state is State.CLOSED


def test_receive_maximum_exceeded() -> None:
    conn = connected(limits=ServerLimits(receive_maximum=2))
    events = pending(conn, p.publish("t", qos=1, packet_id=1) + p.publish("t", qos=2, packet_id=2)
                     + p.publish("t") + p.publish("t"))  # QoS 0 does not count
    assert len(events) == 4
    conn.send_puback(1)
    (event,) = pending(conn, p.publish("t", qos=1, packet_id=3))  # a slot was freed
    assert isinstance(event, PublishReceived)
    conn.send_pubrec(2)  # QoS 2 counts until PUBREL
    (event,) = pending(conn, p.publish("t", qos=1, packet_id=4))
    assert event == ProtocolErrorEvent(0x93, event.message)  # type: ignore[union-attr]
    assert sent(conn) == [p.AckOut(p.PUBACK, 1), p.AckOut(p.PUBREC, 2), p.DisconnectOut(0x93)]


def test_receive_maximum_counts_pubrel_and_a_retransmission_once() -> None:
    qos2_in = {1, 2}  # from the previous connection: PUBREC sent, PUBREL not yet received
    conn = connected(limits=ServerLimits(receive_maximum=2), qos2_in=qos2_in)
    # The client resends the PUBLISH whose PUBREC it missed: a duplicate, within the quota.
    (event,) = pending(conn, p.publish("t", qos=2, packet_id=2, dup=True))
    assert isinstance(event, PublishReceived) and event.duplicate
    conn.send_pubrec(2)
    assert pending(conn, p.pubrel(1)) == [ControlReceived(codec.PUBREL, prepaid=True)]
    (event,) = pending(conn, p.publish("t", qos=1, packet_id=3))  # PUBREL freed a slot
    assert isinstance(event, PublishReceived) and not event.duplicate
    (event,) = pending(conn, p.publish("t", qos=1, packet_id=4))
    assert isinstance(event, ProtocolErrorEvent) and event.reason == 0x93


# ---- DISCONNECT, AUTH, errors ----------------------------------------------------------------------
def test_disconnect_311() -> None:
    conn = connected(MQTT311)
    assert pending(conn, p.disconnect() + p.publish("late", level=MQTT311)) == [DisconnectRequested()]
    assert conn.state is State.CLOSED and conn.next_event() is PAUSED


@pytest.mark.parametrize(("data", "expected"), [
    (p.disconnect(), DisconnectRequested()),
    (p.disconnect(0x04), DisconnectRequested(0x04, None, send_will=True)),
    (p.disconnect(0x00, props={codec.P_SESSION_EXPIRY: 0}), DisconnectRequested(0, 0)),
    (p.disconnect(0x80, props={codec.P_SESSION_EXPIRY: 50, codec.P_REASON_STRING: "bye"}),
     DisconnectRequested(0x80, 50)),
])
def test_disconnect_mqtt5(data: bytes, expected: DisconnectRequested) -> None:
    conn = connected(props={codec.P_SESSION_EXPIRY: 10})
    assert pending(conn, data) == [expected]
    assert conn.state is State.CLOSED and conn.data_to_send() == b""


def test_a_session_expiry_set_at_disconnect_when_the_connect_had_0_is_a_protocol_error() -> None:
    conn = connected(props={codec.P_SESSION_EXPIRY: 0})
    (event,) = pending(conn, p.disconnect(0, props={codec.P_SESSION_EXPIRY: 60}))
    assert isinstance(event, ProtocolErrorEvent) and event.reason == 0x82
    assert sent(conn) == [p.DisconnectOut(0x82)]
    conn = connected()  # no session expiry in the CONNECT is 0 too
    (event,) = pending(conn, p.disconnect(0, props={codec.P_SESSION_EXPIRY: 60}))
    assert isinstance(event, ProtocolErrorEvent) and event.reason == 0x82
    conn = connected()
    assert pending(conn, p.disconnect(0, props={codec.P_SESSION_EXPIRY: 0})) == [DisconnectRequested(0, 0)]


def test_auth_is_a_protocol_error() -> None:
    conn = connected()
    (event,) = pending(conn, p.auth(0x18, props={codec.P_AUTH_METHOD: "SCRAM-SHA-1"}))
    assert isinstance(event, ProtocolErrorEvent) and event.reason == 0x82
    assert sent(conn) == [p.DisconnectOut(0x82)] and conn.state is State.CLOSED


@pytest.mark.parametrize(("data", "data_311", "reason"), [
    (p.packet(0x30, b"\x00\x01t\x05"), p.packet(0x30, b"\x00\x05t"), 0x81),  # malformed
    (p.publish("t", props={codec.P_PAYLOAD_FORMAT: 2}), p.packet(0x32, b"\x00\x01t\x00\x00"), 0x82),
    (b"\x30" + p.varint(2000), b"\x30" + p.varint(2000), 0x95),  # over max_packet, refused on its header
])
def test_a_codec_violation_after_connect_closes_with_its_reason(data: bytes, data_311: bytes, reason: int) -> None:
    conn = connected(limits=ServerLimits(max_packet=1024))
    (event,) = pending(conn, p.publish("ok", b"before") + data)[1:]
    assert isinstance(event, ProtocolErrorEvent) and event.reason == reason
    assert sent(conn) == [p.DisconnectOut(reason)] and conn.state is State.CLOSED
    conn311 = connected(MQTT311, limits=ServerLimits(max_packet=1024))
    (event,) = pending(conn311, p.publish("ok", b"before", level=MQTT311) + data_311)[1:]
    assert isinstance(event, ProtocolErrorEvent) and event.reason == reason
    assert conn311.data_to_send() == b"" and conn311.state is State.CLOSED  # 3.1.1 has no server DISCONNECT


def test_acks_subscribe_and_unsubscribe_become_events() -> None:
    conn = connected()
    events = pending(conn, p.puback(1) + p.pubrec(2, 0x10) + p.pubcomp(3) + p.subscribe(4, [("a/+", 1)])
                     + p.unsubscribe(5, ["a/+"]))
    assert events[:3] == [AckReceived(p.PUBACK, 1), AckReceived(p.PUBREC, 2, 0x10), AckReceived(p.PUBCOMP, 3)]
    assert events[3] == SubscribeRequested(codec.Subscribe(4, (codec.SubscriptionRequest("a/+", 1),)))
    assert events[4] == UnsubscribeRequested(codec.Unsubscribe(5, ("a/+",)))


# ---- output -------------------------------------------------------------------------------------
def test_send_publish_assigns_topic_aliases_up_to_the_clients_maximum() -> None:
    conn = connected(props={codec.P_TOPIC_ALIAS_MAXIMUM: 2})
    for topic in ("a", "a", "b", "c", "b", "a", "c"):
        assert conn.send_publish(topic, b"x", 0)
    assert [(q.topic, q.properties.get(codec.P_TOPIC_ALIAS)) for q in sent(conn)] == [  # type: ignore[union-attr]
        ("a", 1), ("", 1), ("b", 2), ("c", None), ("", 2), ("", 1), ("c", None)]


def test_send_publish_without_client_aliases_sends_full_topics() -> None:
    conn = connected()  # the client announced no Topic Alias Maximum
    conn.send_publish("a", b"x", 0)
    conn.send_publish("a", b"x", 0)
    assert sent(conn) == [p.Pub("a", b"x", 0, None, False, False)] * 2


def test_send_publish_drops_what_is_over_the_clients_maximum_packet_size() -> None:
    conn = connected(props={codec.P_MAXIMUM_PACKET_SIZE: 64, codec.P_TOPIC_ALIAS_MAXIMUM: 5})
    assert conn.send_publish("big", b"x" * 64, 1, 1) is False
    assert conn.data_to_send() == b"" and conn.out_bytes == 0
    # The dropped PUBLISH did not define an alias the client never saw: the next one carries the topic.
    assert conn.send_publish("big", b"x" * 8, 1, 2) is True
    assert sent(conn) == [p.Pub("big", b"x" * 8, 1, 2, False, False, {codec.P_TOPIC_ALIAS: 1})]
    exact = 64 - len(p.publish("big", b"", qos=1, props={codec.P_TOPIC_ALIAS: 1})) + 3  # the topic is not sent
    assert conn.send_publish("big", b"y" * exact, 1, 3) is True
    assert len(conn.data_to_send()) == 64
    assert conn.send_publish("big", b"y" * (exact + 1), 1, 4) is False


def test_send_publish_311_has_no_properties_and_no_size_limit() -> None:
    conn = connected(MQTT311)
    assert conn.send_publish("t", b"x" * 100_000, 2, 7, dup=True, retain=True, props={codec.P_USER: [("a", "b")]},
                             sub_ids=[1])
    assert sent(conn, MQTT311) == [p.Pub("t", b"x" * 100_000, 2, 7, True, True)]


def test_send_publish_carries_subscription_identifiers_and_user_properties() -> None:
    conn = connected()
    props = {codec.P_USER: [("from", "alice"), ("from", "bob")], codec.P_MESSAGE_EXPIRY: 30,
             codec.P_CONTENT_TYPE: "text/plain"}
    assert conn.send_publish("t/1", b"hi", 1, 12, retain=True, props=props, sub_ids=[3, 200, codec.MAX_VARINT])
    assert sent(conn) == [p.Pub("t/1", b"hi", 1, 12, False, True, {**props, codec.P_SUBSCRIPTION_ID: [
        3, 200, codec.MAX_VARINT]})]
    assert props == {codec.P_USER: [("from", "alice"), ("from", "bob")], codec.P_MESSAGE_EXPIRY: 30,
                     codec.P_CONTENT_TYPE: "text/plain"}  # the caller's dict is not changed


def test_send_publish_before_accept_sends_nothing() -> None:
    conn = connecting()
    assert conn.send_publish("t", b"x", 0) is False
    assert conn.data_to_send() == b""


@pytest.mark.parametrize(("level", "codes"), [(MQTT311, [0, 1, 2, 0x80, 0x80, 0x80]),
                                              (MQTT5, [0, 1, 2, 0x80, 0x87, 0xA2])])
def test_send_suback(level: int, codes: list[int]) -> None:
    conn = connected(level)
    conn.send_suback(4, [0, 1, 2, 0x80, 0x87, 0xA2])
    assert sent(conn, level) == [p.SubAck(4, codes)]


@pytest.mark.parametrize(("level", "codes"), [(MQTT311, []), (MQTT5, [0x00, 0x11])])
def test_send_unsuback(level: int, codes: list[int]) -> None:
    conn = connected(level)
    conn.send_unsuback(5, [0x00, 0x11])
    assert sent(conn, level) == [p.UnsubAck(5, codes)]


@pytest.mark.parametrize("level", [MQTT311, MQTT5])
def test_acks_sent_by_the_server(level: int) -> None:
    conn = connected(level)
    pending(conn, p.publish("t", qos=1, packet_id=1, level=level) + p.publish("t", qos=1, packet_id=2, level=level))
    conn.send_puback(1)
    conn.send_puback(2, 0x87)
    conn.send_pubrel(3)
    expected = [p.AckOut(p.PUBACK, 1), p.AckOut(p.PUBACK, 2, 0x87 if level == MQTT5 else 0), p.AckOut(p.PUBREL, 3)]
    assert sent(conn, level) == expected


def test_close_mqtt5_writes_a_disconnect_with_its_reason() -> None:
    conn = connected()
    conn.close(0x8B, why="shutting down")
    assert sent(conn) == [p.DisconnectOut(0x8B, {codec.P_REASON_STRING: "shutting down"})]
    assert conn.state is State.CLOSED
    conn.close(0x8B)
    assert conn.data_to_send() == b""  # once
    conn = connected()
    conn.close()
    assert conn.data_to_send() == b"\xe0\x00"


@pytest.mark.parametrize("make", [lambda: connected(MQTT311), lambda: connecting(MQTT5), lambda: Connection()])
def test_close_writes_nothing_for_311_or_before_the_connack(make: Any) -> None:
    conn = make()
    conn.close(0x8B, why="x")
    assert conn.data_to_send() == b"" and conn.state is State.CLOSED


def test_data_to_send_coalesces_in_order() -> None:
    conn = connected(MQTT311)
    pending(conn, p.pingreq() + p.publish("t", qos=1, packet_id=1, level=MQTT311))
    conn.send_puback(1)
    conn.send_publish("o", b"z", 0)
    conn.send_suback(2, [1])
    expected = b"\xd0\x00" + b"\x40\x02\x00\x01" + p.publish("o", b"z", level=MQTT311) + b"\x90\x03\x00\x02\x01"
    assert conn.out_bytes == len(expected)
    assert conn.data_to_send() == expected
    assert conn.data_to_send() == b"" and conn.out_bytes == 0
