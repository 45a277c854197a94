"""The lean AMQP client's frames, checked against pamqp (an independent codec), and its protocol
fed RabbitMQ's bytes by hand: deliveries split anywhere, confirms with and without ``multiple``,
a Nack, a channel closed under a batch, and the acknowledgement policy of the bridge's consumers.
It runs against a real RabbitMQ in tests/test_cluster.py and tests/test_rabbitmq_live.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pamqp import commands as spec
from pamqp import frame as pframe
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from bridge.amqp import _Consumer
from bridge.amqpwire import HEARTBEAT, AmqpClosed, AmqpConnection, Channel, ack_frame, properties, publish_frames


def _frames(data: bytes) -> list[tuple[int, Any]]:
    out = []
    while data:
        used, channel, value = pframe.unmarshal(data)
        out.append((channel, value))
        data = data[used:]
    return out


def test_a_publish_is_what_pamqp_reads() -> None:
    body = bytes(range(256)) * 1100  # 281,600 bytes: three body frames at frame_max 131072
    frames = _frames(publish_frames(7, "amq.topic", "im.bob.in.msg", body, True))
    assert [type(f) for _, f in frames] == [spec.Basic.Publish, ContentHeader, ContentBody, ContentBody, ContentBody]
    assert {c for c, _ in frames} == {7}
    method, head = frames[0][1], frames[1][1]
    assert (method.exchange, method.routing_key, method.mandatory) == ("amq.topic", "im.bob.in.msg", False)
    assert head.body_size == len(body) and head.properties.delivery_mode == 2
    assert b"".join(f.value for _, f in frames[2:]) == body
    transient = _frames(publish_frames(1, "x", "k", b"", False))
    assert len(transient) == 2 and transient[1][1].properties.delivery_mode == 1  # no body frame when empty
    with pytest.raises(ValueError, match="too long"):
        publish_frames(1, "x", "k" * 256, b"", False)


def test_an_ack_is_what_pamqp_reads() -> None:
    [(channel, ack)] = _frames(ack_frame(3, 2**40 + 5, True))
    assert channel == 3 and isinstance(ack, spec.Basic.Ack) and (ack.delivery_tag, ack.multiple) == (2**40 + 5, True)
    [(_, single)] = _frames(ack_frame(3, 9, False))
    assert single.multiple is False
    assert _frames(HEARTBEAT)[0][1].name == "Heartbeat"


class _Wire:
    """A transport that keeps what the protocol writes."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written += data

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.aborted = True


def _open(loop: asyncio.AbstractEventLoop) -> tuple[AmqpConnection, _Wire]:
    conn = AmqpConnection(loop)
    wire = _Wire()
    conn.connection_made(wire)  # type: ignore[arg-type]
    return conn, wire


def _server(channel: int, *values: Any) -> bytes:
    return b"".join(pframe.marshal(v, channel) for v in values)


async def test_deliveries_arrive_whole_however_the_bytes_are_split() -> None:
    conn, _ = _open(asyncio.get_running_loop())
    channel = conn._channels[5] = Channel(conn, 5)
    got: list[tuple[int, str, bytes, bytes]] = []
    channel._consumers["ctag"] = lambda *args: got.append(args)
    bodies = [b"", b"hello", b"x" * 200_000]
    data = b""
    for n, body in enumerate(bodies, 1):
        props = spec.Basic.Properties(delivery_mode=2, headers={"pid": f"<p.{n}>"})
        data += _server(5, spec.Basic.Deliver(consumer_tag="ctag", delivery_tag=n, exchange="ex",
                                              routing_key=f"im.u{n}.out.msg"),
                        ContentHeader(body_size=len(body), properties=props))
        for start in range(0, len(body), 131_064):
            data += _server(5, ContentBody(body[start:start + 131_064]))
        data += HEARTBEAT
    for cut in (1, 7, 8, 13, 1000):  # in pieces of every size, as TCP may hand them over
        got.clear()
        for start in range(0, len(data), cut):
            conn.data_received(data[start:start + cut])
        assert [(t, k, b) for t, k, b, _ in got] == [(n, f"im.u{n}.out.msg", b) for n, b in enumerate(bodies, 1)]
        assert [properties(h).headers for *_, h in got] == [{"pid": f"<p.{n}>"} for n in (1, 2, 3)]
    assert not conn.lost


async def test_confirms_settle_batches_with_and_without_multiple() -> None:
    conn, wire = _open(asyncio.get_running_loop())
    channel = conn._channels[2] = Channel(conn, 2)
    channel._confirms = True
    first = channel.publish_many([("ex", f"k{n}", b"m", True) for n in range(3)])  # tags 1-3
    second = channel.publish_many([("ex", "k", b"m", True)])  # tag 4
    third = channel.publish_many([("ex", "k", b"m", False), ("ex", "k", b"m", False)])  # tags 5, 6
    empty = channel.publish_many([])
    assert empty.done() and empty.result() is None
    conn._flush()  # what the end of the loop's turn does
    assert [type(v) for _, v in _frames(bytes(wire.written))].count(spec.Basic.Publish) == 6
    conn.data_received(_server(2, spec.Basic.Ack(delivery_tag=2, multiple=True)))
    assert not first.done()
    conn.data_received(_server(2, spec.Basic.Ack(delivery_tag=4)))
    assert second.done() and not first.done()
    conn.data_received(_server(2, spec.Basic.Ack(delivery_tag=3)))
    assert first.done() and first.result() is None
    conn.data_received(_server(2, spec.Basic.Nack(delivery_tag=6, multiple=True)))
    with pytest.raises(AmqpClosed, match="Nack"):
        third.result()


async def test_a_channel_closed_by_rabbitmq_fails_its_batches_and_is_answered() -> None:
    conn, wire = _open(asyncio.get_running_loop())
    channel = conn._channels[4] = Channel(conn, 4)
    channel._confirms = True
    waiting = channel.publish_many([("ex", "k", b"m", True)])
    conn.data_received(_server(4, spec.Channel.Close(reply_code=404, reply_text="NOT_FOUND", class_id=0, method_id=0)))
    with pytest.raises(AmqpClosed, match="404"):
        waiting.result()
    assert not channel.is_open and 4 not in conn._channels
    conn._flush()
    assert any(isinstance(v, spec.Channel.CloseOk) for _, v in _frames(bytes(wire.written)))
    with pytest.raises(AmqpClosed):
        channel.publish_many([("ex", "k", b"m", True)])
    assert not conn.lost  # the connection goes on


async def test_garbage_from_the_server_drops_the_connection() -> None:
    conn, wire = _open(asyncio.get_running_loop())
    channel = conn._channels[1] = Channel(conn, 1)
    conn.data_received(b"\x01\x00\x01\x00\x00\x00\x04\x00\x3c\x00\x50\x00")  # no frame end marker
    assert conn.lost and wire.aborted and not channel.is_open
    conn2, _ = _open(asyncio.get_running_loop())
    conn2.data_received(b"\x03\x00\x01\x7f\xff\xff\xff")  # a frame far over frame_max: refused before it arrives
    assert conn2.lost


class _Acks:
    """A channel that records acknowledgements."""

    def __init__(self) -> None:
        self.acks: list[tuple[int, bool]] = []
        self.is_open = True

    def ack(self, tag: int, *, multiple: bool = False) -> None:
        self.acks.append((tag, multiple))


async def test_consumer_acks_go_together_and_a_slow_one_does_not_hold_the_shard() -> None:
    consumer = _Consumer("q", 0, prefetch=8)
    channel = _Acks()
    epoch = consumer.opened(channel)  # type: ignore[arg-type]
    for tag in (2, 1, 3):
        consumer.ack(epoch, tag)
    consumer._flush(epoch)  # what the end of the loop's turn does
    assert channel.acks == [(3, True)]  # one frame for three
    # 4 is slow: 5-7 wait for it (fewer than half the window)...
    for tag in (5, 6, 7):
        consumer.ack(epoch, tag)
    consumer._flush(epoch)
    assert channel.acks == [(3, True)]
    # ... until half the window waits: then one by one, so the window never fills behind 4.
    consumer.ack(epoch, 8)
    consumer._flush(epoch)
    assert channel.acks[1:] == [(5, False), (6, False), (7, False), (8, False)]
    # 4 and 9 settle: the multiple ack names 9, still unacknowledged (never an already-acked tag).
    consumer.ack(epoch, 9)
    consumer.ack(epoch, 4)
    consumer._flush(epoch)
    assert channel.acks[5:] == [(9, True)]
    # A settlement from the channel before a reopen is not acknowledged on the new one.
    new = _Acks()
    new_epoch = consumer.opened(new)  # type: ignore[arg-type]
    consumer.ack(epoch, 10)
    consumer._flush(new_epoch)
    assert new.acks == []


async def test_a_cancelled_rpc_takes_its_own_late_reply() -> None:
    conn, _ = _open(asyncio.get_running_loop())
    channel = conn._channels[3] = Channel(conn, 3)
    first = asyncio.ensure_future(channel.rpc(spec.Queue.Declare(queue="q")))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    second = asyncio.ensure_future(channel.rpc(spec.Exchange.Declare(exchange="x")))
    await asyncio.sleep(0)
    conn.data_received(_server(3, spec.Queue.DeclareOk(queue="q", message_count=0, consumer_count=0)))
    conn.data_received(_server(3, spec.Exchange.DeclareOk()))
    assert isinstance(await second, spec.Exchange.DeclareOk)


async def test_a_publish_that_cannot_be_written_does_not_shift_the_confirms() -> None:
    conn, _ = _open(asyncio.get_running_loop())
    channel = conn._channels[2] = Channel(conn, 2)
    channel._confirms = True
    with pytest.raises(ValueError, match="too long"):
        channel.publish_many([("ex", "k" * 300, b"m", True)])
    batch = channel.publish_many([("ex", "k", b"m", True)])
    conn.data_received(_server(2, spec.Basic.Ack(delivery_tag=1)))  # RabbitMQ numbers it 1
    assert batch.done() and batch.result() is None


async def test_a_consumer_flushes_its_acks_before_a_hand_over() -> None:
    consumer = _Consumer("q", 0, prefetch=8)
    channel = _Acks()
    epoch = consumer.opened(channel)  # type: ignore[arg-type]
    consumer.ack(epoch, 1)
    consumer.flush()  # at once, not at the end of the turn
    assert channel.acks == [(1, True)]
    consumer.opened(None)
    consumer._flush(epoch)  # the turn's scheduled flush, for the old channel, sends nothing more
    assert channel.acks == [(1, True)]


async def test_a_delivery_over_max_body_is_counted_not_kept() -> None:
    conn = AmqpConnection(asyncio.get_running_loop(), max_body=1000)
    conn.connection_made(_Wire())  # type: ignore[arg-type]
    channel = conn._channels[5] = Channel(conn, 5)
    got: list[tuple[int, bytes | None]] = []
    channel._consumers["c"] = lambda tag, _key, body, _header: got.append((tag, body))
    for tag, body in ((1, b"y" * 5000), (2, b"z" * 1000)):
        data = _server(5, spec.Basic.Deliver(consumer_tag="c", delivery_tag=tag, exchange="", routing_key="k"),
                       ContentHeader(body_size=len(body)))
        for start in range(0, len(body), 700):  # several body frames
            data += _server(5, ContentBody(body[start:start + 700]))
        conn.data_received(data)
        if tag == 1:
            assert channel._body == []  # nothing of it kept while it arrives
    assert got == [(1, None), (2, b"z" * 1000)]
