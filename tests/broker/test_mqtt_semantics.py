"""MQTT 3.1.1 behaviour of the embedded broker, with real clients (raw sockets and aiomqtt),
for service accounts configured with ACL rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiomqtt
import pytest

from config.settings import Settings
from imgate.app import App
from tests.helpers import WAIT
from tests.mqttraw import RawConnection, puback, raw_connect, read_packet, subscribe

PASSWORD = "secret-password"
ACCOUNTS = [
    {"username": "svc:a", "password": PASSWORD, "acl": ["readwrite t/#"]},
    {"username": "svc:b", "password": PASSWORD, "acl": ["readwrite t/#"]},
    {"username": "svc:gw", "password": PASSWORD,
     "acl": ["readwrite devices/%u/#", "read status/%c", "deny devices/%u/secret/#"]},
]


def with_broker(settings: Settings, **broker: Any) -> Settings:
    update = {"accounts": ACCOUNTS, **broker}
    return settings.model_copy(update={"broker": settings.broker.model_validate(
        {**settings.broker.model_dump(), **update})})


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[App]:
    async with App(with_broker(settings)) as running:
        yield running


@asynccontextmanager
async def client(app: App, username: str, client_id: str, **kwargs: Any) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client("127.0.0.1", app.mqtt_port, username=username, password=PASSWORD,
                              identifier=client_id, **kwargs) as c:
        yield c


async def next_message(c: aiomqtt.Client, timeout: float = WAIT) -> aiomqtt.Message:
    async with asyncio.timeout(timeout):
        async for m in c.messages:
            return m
    raise AssertionError("no message")


async def account(app: App, username: str, client_id: str, *, clean: bool = True) -> RawConnection:
    conn = await raw_connect(app.mqtt_port, client_id, username, PASSWORD, clean=clean)
    assert conn.return_code == 0
    return conn


async def test_delivery_qos_is_the_lower_of_publish_and_subscription(app: App) -> None:
    async with client(app, "svc:a", "sub") as sub, client(app, "svc:b", "pub") as pub:
        await sub.subscribe("t/q1", qos=1)
        await sub.subscribe("t/q0", qos=0)
        await pub.publish("t/q1", b"published at 0", qos=0)
        assert (await next_message(sub)).qos == 0
        await pub.publish("t/q0", b"published at 1", qos=1)
        assert (await next_message(sub)).qos == 0
        await pub.publish("t/q1", b"published at 1", qos=1)
        m = await next_message(sub)
        assert (m.qos, m.payload) == (1, b"published at 1")


async def test_overlapping_subscriptions_get_one_copy_at_the_highest_qos(app: App) -> None:
    async with client(app, "svc:a", "sub") as sub, client(app, "svc:b", "pub") as pub:
        await sub.subscribe("t/#", qos=0)
        await sub.subscribe("t/+", qos=1)
        await pub.publish("t/x", b"one", qos=1)
        await pub.publish("t/y/z", b"two", qos=1)  # matches only t/#
        first, second = await next_message(sub), await next_message(sub)
        assert (first.payload, first.qos) == (b"one", 1)
        assert (second.payload, second.qos) == (b"two", 0)


async def test_empty_retained_publish_clears_the_retained_message(app: App) -> None:
    async with client(app, "svc:b", "pub") as pub:
        await pub.publish("t/r", b"kept", qos=1, retain=True)
        async with client(app, "svc:a", "sub1") as sub:
            await sub.subscribe("t/r", qos=1)
            m = await next_message(sub)
            assert (m.payload, m.retain) == (b"kept", True)
        await pub.publish("t/r", b"", qos=1, retain=True)
        async with client(app, "svc:a", "sub2") as sub:
            await sub.subscribe("t/#", qos=1)
            await pub.publish("t/live", b"after", qos=1)
            m = await next_message(sub)  # the first thing it gets is live, not the cleared message
            assert (m.topic.value, m.payload, m.retain) == ("t/live", b"after", False)


async def test_persistent_session_gets_queued_messages_without_retain_flag(app: App) -> None:
    sub = await account(app, "svc:a", "sub", clean=False)
    assert await subscribe(sub, "t/off", qos=1) == 1
    sub.close()
    async with client(app, "svc:b", "pub") as pub:
        for i in range(3):
            await pub.publish("t/off", f"m{i}".encode(), qos=1)
    again = await account(app, "svc:a", "sub", clean=False)
    assert again.session_present
    got = []
    for _ in range(3):
        packet = await read_packet(again)
        _topic, packet_id, payload = packet.publish_fields()
        assert (packet.kind, packet.qos, packet.retain, packet.dup) == (3, 1, False, False)
        got.append(payload)
        await puback(again, packet_id or 0)
    assert got == [b"m0", b"m1", b"m2"]
    again.close()


async def test_unacknowledged_message_is_redelivered_with_dup_on_resume(app: App) -> None:
    sub = await account(app, "svc:a", "sub", clean=False)
    assert await subscribe(sub, "t/dup", qos=1) == 1
    async with client(app, "svc:b", "pub") as pub:
        await pub.publish("t/dup", b"ack me", qos=1)
        first = await read_packet(sub)
        topic, packet_id, payload = first.publish_fields()
        assert (first.dup, payload) == (False, b"ack me")
        sub.close()  # gone without a PUBACK
        again = await account(app, "svc:a", "sub", clean=False)
        redelivered = await read_packet(again)
        assert redelivered.publish_fields() == (topic, packet_id, b"ack me")
        assert redelivered.dup and redelivered.qos == 1 and not redelivered.retain
        await puback(again, packet_id or 0)
        # Acknowledged now: a later resume gets nothing again, only what is new.
        again.close()
        await pub.publish("t/dup", b"next", qos=1)
    third = await account(app, "svc:a", "sub", clean=False)
    packet = await read_packet(third)
    # "ack me" is not sent again. ("next" may carry DUP: it can reach the closing socket first.)
    assert packet.publish_fields()[2] == b"next"
    third.close()


@pytest.mark.parametrize(("policy", "kept"), [("drop_oldest", [5, 6, 7, 8, 9]), ("drop_newest", [0, 1, 2, 3, 4])])
async def test_offline_queue_is_bounded_by_policy_and_counts_drops(settings: Settings, policy: str,
                                                                   kept: list[int]) -> None:
    async with App(with_broker(settings, max_queued=5, queue_policy=policy)) as app:
        sub = await account(app, "svc:a", "sub", clean=False)
        assert await subscribe(sub, "t/q", qos=1) == 1
        sub.close()
        async with client(app, "svc:b", "pub") as pub:
            for i in range(10):
                await pub.publish("t/q", str(i).encode(), qos=1)
        again = await account(app, "svc:a", "sub", clean=False)
        got = []
        for _ in range(5):
            packet = await read_packet(again)
            _, packet_id, payload = packet.publish_fields()
            got.append(int(payload))
            await puback(again, packet_id or 0)
        assert got == kept
        assert app.broker is not None and app.broker.broker is not None
        assert app.broker.broker.stats.dropped_offline == 5
        again.close()


async def test_inflight_window_holds_the_rest_until_acks(settings: Settings) -> None:
    async with App(with_broker(settings, max_inflight=2)) as app:
        sub = await account(app, "svc:a", "sub")
        assert await subscribe(sub, "t/w", qos=1) == 1
        assert await subscribe(sub, "t/barrier", qos=0, packet_id=2) == 0
        async with client(app, "svc:b", "pub") as pub:
            for i in range(4):
                await pub.publish("t/w", str(i).encode(), qos=1)
            await pub.publish("t/barrier", b"b", qos=0)  # QoS 0 is not held by the window
            a, b, c = await read_packet(sub), await read_packet(sub), await read_packet(sub)
            # The window is full after two: the barrier overtakes 2 and 3, which wait for a PUBACK.
            assert [p.publish_fields()[2] for p in (a, b, c)] == [b"0", b"1", b"b"]
            await puback(sub, a.publish_fields()[1] or 0)
            assert (await read_packet(sub)).publish_fields()[2] == b"2"
        sub.close()


@pytest.mark.parametrize(("topic_filter", "granted"), [
    ("devices/svc:gw/lamp/state", 1),
    ("devices/svc:gw/+/state", 0x80),    # '+' could be 'secret': overlaps the deny rule
    ("devices/svc:gw/#", 0x80),
    ("devices/svc:gw/secret/key", 0x80),
    ("devices/other/#", 0x80),
    ("status/gw-1", 1),                   # %c
    ("status/gw-2", 0x80),
    ("#", 0x80),
])
async def test_account_acl_rules_decide_subscriptions(app: App, topic_filter: str, granted: int) -> None:
    conn = await account(app, "svc:gw", "gw-1")
    assert await subscribe(conn, topic_filter, qos=1) == granted
    conn.close()


async def test_account_acl_rules_decide_publishes(app: App) -> None:
    async with client(app, "svc:a", "watch") as watcher, client(app, "svc:gw", "gw-1") as gw, \
               client(app, "svc:b", "pub") as pub:
        await watcher.subscribe("t/#", qos=1)
        await gw.publish("t/forbidden", b"no", qos=1)  # not in svc:gw's rules: dropped
        await gw.subscribe("devices/svc:gw/lamp/state", qos=1)
        await gw.publish("devices/svc:gw/lamp/state", b"on", qos=1)  # its own namespace: routed
        m = await next_message(gw)
        assert (m.topic.value, m.payload) == ("devices/svc:gw/lamp/state", b"on")
        await pub.publish("t/allowed", b"yes", qos=1)
        m = await next_message(watcher)  # the first thing the watcher sees is the allowed one
        assert (m.topic.value, m.payload) == ("t/allowed", b"yes")


async def test_service_account_client_ids_cannot_start_with_dollar(app: App) -> None:
    conn = await raw_connect(app.mqtt_port, "$local/svc:bridge", "svc:a", PASSWORD)
    assert conn.return_code == 2


async def test_qos2_publish_is_routed_once_even_when_resent(app: App) -> None:
    from tests.mqttraw import publish, pubrel

    async with client(app, "svc:a", "sub") as sub:
        await sub.subscribe("t/two", qos=2)  # granted QoS 2: delivered with PUBREC/PUBREL/PUBCOMP (aiomqtt answers)
        pub = await account(app, "svc:b", "pub")
        await publish(pub, "t/two", b"exactly once", qos=2, packet_id=7)
        rec = await read_packet(pub)
        assert (rec.kind, rec.body) == (5, b"\x00\x07")  # PUBREC
        await publish(pub, "t/two", b"exactly once", qos=2, packet_id=7, dup=True)  # resent before PUBREL
        assert (await read_packet(pub)).kind == 5
        await pubrel(pub, 7)
        comp = await read_packet(pub)
        assert (comp.kind, comp.body) == (7, b"\x00\x07")  # PUBCOMP
        await publish(pub, "t/two", b"barrier", qos=1, packet_id=8)
        first, second = await next_message(sub), await next_message(sub)
        assert (first.payload, first.qos, second.payload) == (b"exactly once", 2, b"barrier")
        pub.close()

