"""Topic ACL (protocol §2), and retained messages replayed only to their readers (stock amqtt 0.12.1
replayed, on every connect, the retained messages matching anybody's subscription)."""

from __future__ import annotations

import json
import secrets
from contextlib import AsyncExitStack

import aiomqtt
import pytest

from broker.server import EmbeddedBroker
from imgate.app import App, build_services, topic_acl
from services.db import Database
from services.ids import SystemClock
from services.messages.models import Message
from tests.conftest import Users
from tests.helpers import Received, connect, on
from tests.mqttraw import raw_connect

DENIED = 0x80


async def test_publishing_as_another_user_is_dropped(app: App, users: Users) -> None:
    await users.add("alice", "bob", "carol")
    async with connect(app.mqtt_port, "carol", "phone", await users.token("carol")) as carol, \
               connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        forged = {"cid": "forged", "to": "carol", "type": "text", "text": "I am bob"}
        await alice.client.publish("im/bob/out/msg", json.dumps(forged), qos=1)
        # Forging a delivery straight into carol's inbox is dropped too.
        await alice.client.publish("im/carol/in/msg", json.dumps({"from": "bob", "text": "fake"}), qos=1)
        # Barrier: a legitimate message sent afterwards arrives; the forged ones never do.
        await alice.send_and_ack("real", "carol", "I am alice")
        await carol.inbox.wait_for(on("/in/msg", cid="real"))
    assert carol.inbox.matching(lambda r: b"fake" in r.payload or b"I am bob" in r.payload) == []
    assert await Message.filter(sender="bob").count() == 0


@pytest.mark.parametrize("topic_filter", [
    "im/bob/in/#", "im/bob/in/msg", "im/+/in/#", "im/#", "#", "+/bob/in/msg", "im/alice/out/#",
    "im/alice/#", "presence/+/+", "presence/#", "presence/+/phone", "$SYS/#",
])
async def test_subscriptions_outside_the_users_space_are_refused(app: App, users: Users, topic_filter: str) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice"), subscribe=[]) as alice:
        granted = await alice.client.subscribe(topic_filter, qos=1)
        assert [int(getattr(g, "value", g)) for g in granted] == [DENIED]


@pytest.mark.parametrize("topic_filter", ["im/alice/in/#", "im/alice/in/msg", "im/alice/in/+", "presence/bob/+",
                                          "presence/bob/phone"])
async def test_own_inbox_and_presence_subscriptions_are_granted(app: App, users: Users, topic_filter: str) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice"), subscribe=[]) as alice:
        granted = await alice.client.subscribe(topic_filter, qos=1)
        assert [int(getattr(g, "value", g)) for g in granted] == [1]


async def test_will_on_a_foreign_topic_is_refused_and_own_presence_will_accepted(app: App, users: Users) -> None:
    await users.add("alice")
    token = await users.token("alice")
    bad = await raw_connect(app.mqtt_port, "alice:phone", "alice", token, will=("im/alice/out/msg", b"{}"))
    assert bad.return_code == 5
    spoof = await raw_connect(app.mqtt_port, "alice:phone", "alice", token,
                              will=("presence/alice/phone", b'{"online":true}'))
    assert spoof.return_code == 5
    good = await raw_connect(app.mqtt_port, "alice:phone", "alice", token,
                             will=("presence/alice/phone", b'{"online":false,"ts":0}'))
    assert good.return_code == 0
    good.close()


async def _retained_leak_scenario(database_url: str) -> list[Received]:
    """A retained message sits on bob's inbox topic and bob subscribes to his inbox; mallory
    connects, subscribes only to her own inbox and asks for a response. Returns what mallory saw
    that was not hers."""
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(Database(database_url))
        svc = build_services(SystemClock())
        for uid in ("bob", "mallory"):
            await svc.users.add_user(uid)
        secret = secrets.token_urlsafe(16)
        broker = await stack.enter_async_context(EmbeddedBroker(
            host="127.0.0.1", port=0, authenticator=svc.users, acl=topic_acl("im"),
            service_accounts={"svc:test": secret}, keepalive_grace=1.5, auth_poll_interval=1.0))
        port = broker.port
        service = await stack.enter_async_context(
            aiomqtt.Client("127.0.0.1", port, username="svc:test", password=secret, identifier="svc-test"))
        await service.publish("im/bob/in/notify", b'{"secret":"for bob only"}', qos=1, retain=True)
        bob_token = (await svc.users.issue_token("bob", "phone")).token
        bob = await stack.enter_async_context(connect(port, "bob", "phone", bob_token))
        await bob.inbox.wait_for(lambda r: r.topic == "im/bob/in/notify")  # bob may read it

        mallory_token = (await svc.users.issue_token("mallory", "phone")).token
        mallory = await stack.enter_async_context(connect(port, "mallory", "phone", mallory_token))
        # Barrier: a round trip through the broker after connect and subscribe.
        await service.subscribe("im/mallory/out/ping", qos=1)
        await mallory.client.publish("im/mallory/out/ping", b"{}", qos=1)
        async for m in service.messages:
            if str(m.topic) == "im/mallory/out/ping":
                break
        await mallory.client.subscribe("im/mallory/in/x", qos=1)
        return mallory.inbox.matching(lambda r: not r.topic.startswith("im/mallory/"))


async def test_retained_messages_reach_only_readers(database_url: str) -> None:
    leaked = await _retained_leak_scenario(database_url)
    assert leaked == []


async def test_a_packet_over_the_size_limit_closes_the_connection(app: App, users: Users) -> None:
    from tests.mqttraw import publish

    await users.add("alice")
    token = await users.token("alice")
    conn = await raw_connect(app.mqtt_port, "alice:phone", "alice", token)
    await publish(conn, "im/alice/out/msg", b"x" * (app.settings.broker.max_packet_bytes + 1), qos=0)
    assert await conn.closed_by_server(10)
    # Others are unaffected, and alice can come back.
    async with connect(app.mqtt_port, "alice", "phone", token) as alice:
        assert (await alice.result("conversations"))["items"] == []
