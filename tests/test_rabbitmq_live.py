"""RabbitMQ as the MQTT front, live: a private RabbitMQ node (tests/rabbitmq.py) whose HTTP auth
backend is imgate's admin API (``/auth/rabbitmq/…``). Devices log in with their tokens, the
client id binding and the topic ACL hold, and a message published by the bridge's account
reaches a device through RabbitMQ."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import suppress

import aiomqtt
import httpx
import pytest

from config.settings import Settings
from imgate.app import App
from services.errors import Conflict
from tests.conftest import ADMIN_SECRET
from tests.external_auth import BRIDGE, BRIDGE_PASSWORD, admin_secret_fixture, bridge_login_fixture  # noqa: F401
from tests.helpers import WAIT, connect, on, wait_event
from tests.rabbitmq import ADMIN_PASSWORD, ADMIN_USER, RabbitNode, rabbitmq_node_fixture  # noqa: F401


@pytest.fixture
async def fronted(app: App, rabbitmq_node: RabbitNode) -> AsyncIterator[tuple[App, RabbitNode]]:
    """The app, and the node asking its admin API."""
    assert app.admin is not None
    await rabbitmq_node.aset_auth_base(f"http://127.0.0.1:{app.admin.port}/auth/rabbitmq")
    yield app, rabbitmq_node


async def token(app: App, uid: str, device: str = "phone") -> str:
    """A new token of ``uid``'s device (the user made on first use)."""
    with suppress(Conflict):
        await app.services.users.add_user(uid)
    return (await app.services.users.issue_token(uid, device)).token


async def refused(node: RabbitNode, uid: str, device: str, password: str) -> aiomqtt.MqttCodeError:
    with pytest.raises(aiomqtt.MqttCodeError) as caught:
        async with connect(node.mqtt_port, uid, device, password, subscribe=[]):
            pass
    return caught.value


async def test_a_device_logs_in_with_its_token_and_gets_the_bridges_publish(fronted: tuple[App, RabbitNode]) -> None:
    app, node = fronted
    alice = await token(app, "alice")
    async with connect(node.mqtt_port, "alice", "phone", alice, subscribe=["im/alice/in/#"]) as phone, \
            aiomqtt.Client("127.0.0.1", node.mqtt_port, username=BRIDGE, password=BRIDGE_PASSWORD,
                           identifier="bridge-1") as bridge:
        await bridge.publish("im/alice/in/msg", b'{"text": "through RabbitMQ"}', qos=1)
        got = await phone.inbox.wait_for(lambda r: r.topic == "im/alice/in/msg")
        assert got[0].payload == b'{"text": "through RabbitMQ"}'


async def test_wrong_tokens_and_other_client_ids_are_refused(fronted: tuple[App, RabbitNode]) -> None:
    app, node = fronted
    alice = await token(app, "alice")
    await refused(node, "alice", "phone", alice + "x")  # not the token
    await refused(node, "alice", "laptop", alice)  # the token of another device
    await refused(node, "bob", "phone", alice)  # another user's name
    await refused(node, BRIDGE, "x", "wrong")  # the bridge's name, not its password
    await app.services.users.revoke_tokens("alice", "phone")
    await refused(node, "alice", "phone", alice)  # revoked
    async with connect(node.mqtt_port, "alice", "phone", await token(app, "alice"), subscribe=[]):
        pass  # a new token of the same device logs in


@pytest.mark.parametrize("action", ["publish to another user's topic", "subscribe to every user's inbox"])
async def test_the_topic_acl_closes_a_device_that_oversteps(fronted: tuple[App, RabbitNode], action: str) -> None:
    """RabbitMQ closes the connection of a publish or subscription its auth backend denies; the
    bridge's account, subscribed to every user's out topics, never sees the forged message."""
    app, node = fronted
    alice = await token(app, "alice")
    async with aiomqtt.Client("127.0.0.1", node.mqtt_port, username=BRIDGE, password=BRIDGE_PASSWORD,
                              identifier="bridge-2") as bridge:
        await bridge.subscribe("im/+/out/#", qos=1)
        async with connect(node.mqtt_port, "alice", "phone", alice, subscribe=[]) as phone:
            # No PUBACK or SUBACK comes back: the connection is closed instead.
            if action.startswith("publish"):
                step = phone.client.publish("im/bob/out/msg", b'{"cid": "forged"}', qos=1)
            else:
                step = phone.client.subscribe("im/+/in/#", qos=1)
            overstep = asyncio.create_task(step)
            await wait_event(phone.disconnected)
            overstep.cancel()
            with suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await overstep
            # The device's own topic still goes through (a fresh login), and is all the bridge gets.
        async with connect(node.mqtt_port, "alice", "phone", alice, subscribe=[]) as again:
            await again.client.publish("im/alice/out/msg", b'{"cid": "own"}', qos=1)
        async with asyncio.timeout(WAIT):
            async for message in bridge.messages:
                assert str(message.topic) == "im/alice/out/msg" and message.payload == b'{"cid": "own"}'
                break


@pytest.fixture
async def api_front(settings: Settings, rabbitmq_node: RabbitNode) -> AsyncIterator[tuple[App, RabbitNode]]:
    """``imgate api`` as RabbitMQ's auth backend, closing connections through its management API
    (the database migrated by a full app first: an api process does not migrate). This node has
    no auth cache (``rabbitmq.auth_cache_ttl_s`` 0: a token is let in until its expiry)."""
    async with App(settings):
        pass
    front = settings.model_copy(update={"rabbitmq": settings.rabbitmq.model_validate({
        "management_url": rabbitmq_node.mgmt_url, "management_username": ADMIN_USER,
        "management_password": ADMIN_PASSWORD, "auth_cache_ttl_s": 0})})
    async with App(front, role="api") as api:
        assert api.admin is not None and api.rabbit is not None
        await rabbitmq_node.aset_auth_base(f"http://127.0.0.1:{api.admin.port}/auth/rabbitmq")
        yield api, rabbitmq_node


@pytest.mark.parametrize("how", ["admin API revoke", "admin API disable", "revoked elsewhere (CLI)"])
async def test_revoking_closes_the_live_rabbitmq_connection(api_front: tuple[App, RabbitNode], how: str) -> None:
    """A live MQTT connection is not asked again by RabbitMQ: imgate closes it through the
    management API at once (the admin API), or within broker.auth_poll_interval when another
    process revoked (the watcher of the database's revocation log). The next login is refused."""
    api, node = api_front
    alice = await token(api, "alice")
    async with connect(node.mqtt_port, "alice", "phone", alice, subscribe=["im/alice/in/#"]) as phone:
        assert api.admin is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.admin.port}",
                                     headers={"Authorization": f"Bearer {ADMIN_SECRET}"}) as admin:
            if how == "admin API revoke":
                r = await admin.post("/v1/users/alice/tokens/revoke", json={"device": "phone"})
                assert r.status_code == 200 and r.json()["count"] == 1
            elif how == "admin API disable":
                assert (await admin.post("/v1/users/alice/disable")).status_code == 200
            else:
                await api.services.users.revoke_tokens("alice", "phone")  # as `imgate token revoke` does
        await wait_event(phone.disconnected)
    await refused(node, "alice", "phone", alice)


async def test_an_expiring_token_closes_its_live_rabbitmq_connection(api_front: tuple[App, RabbitNode]) -> None:
    """RabbitMQ checks a login once: imgate api closes the connection when the token expires
    (within broker.auth_poll_interval), and the next login is refused."""
    api, node = api_front
    assert api.services is not None
    with suppress(Conflict):
        await api.services.users.add_user("alice")
    short = (await api.services.users.issue_token("alice", "phone", ttl_s=2)).token
    async with connect(node.mqtt_port, "alice", "phone", short, subscribe=["im/alice/in/#"]) as phone:
        await wait_event(phone.disconnected)
    await refused(node, "alice", "phone", short)


async def test_a_1to1_exchange_through_rabbitmq_and_one_bridge(settings: Settings, rabbitmq_node: RabbitNode) -> None:
    """RabbitMQ as the whole MQTT front: devices log in through ``imgate api``, and an imgate
    bridge (``broker.embedded = false``) logs in to RabbitMQ with its account, takes the devices'
    out traffic, stores it and delivers. (Several bridges on RabbitMQ need the AMQP consumers of
    issue 14: RabbitMQ 3.10's MQTT has no shared subscriptions.)"""
    async with App(settings) as full:  # migrates the database and makes the users
        for uid in ("alice", "bob"):
            await full.services.users.add_user(uid)
    bridge_settings = settings.model_copy(update={"broker": settings.broker.model_validate({
        **settings.broker.model_dump(), "embedded": False, "host": "127.0.0.1", "port": rabbitmq_node.mqtt_port})})
    async with App(settings, role="api") as api:
        assert api.admin is not None
        await rabbitmq_node.aset_auth_base(f"http://127.0.0.1:{api.admin.port}/auth/rabbitmq")
        async with App(bridge_settings) as bridge:
            assert bridge.broker is None and bridge.bridge is not None and bridge.bridge.ready.is_set()
            alice_token, bob_token = await token(api, "alice"), await token(api, "bob")
            async with connect(rabbitmq_node.mqtt_port, "alice", "phone", alice_token) as alice, \
                    connect(rabbitmq_node.mqtt_port, "bob", "phone", bob_token) as bob:
                ack = await alice.send_and_ack("r1", "bob", "hello through RabbitMQ")
                assert ack["seq"] == 1 and "error" not in ack
                got = (await bob.inbox.wait_for(lambda r: r.topic == "im/bob/in/msg"))[-1].json
                assert (got["from"], got["text"], got["seq"]) == ("alice", "hello through RabbitMQ", 1)
                await alice.send({"cid": "r1", "to": "bob", "type": "text", "text": "hello through RabbitMQ"})
                acks = await alice.inbox.wait_for(on("/in/ack", cid="r1"), count=2)  # a retry: the stored one
                assert [a.json["seq"] for a in acks] == [1, 1]
                await alice.send_and_ack("r2", "bob", "and again")
                delivered = await bob.inbox.wait_for(lambda r: r.topic == "im/bob/in/msg", count=2)
                assert [m.json["seq"] for m in delivered] == [1, 2]  # the retry delivered nothing again
