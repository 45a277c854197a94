"""One more independent MQTT client against imgate: amqtt's (its own MQTT 3.1.1 codec, session and
retry code, unrelated to paho, which aiomqtt is built on). Alice on amqtt sends to bob on amqtt,
over TCP and over WebSocket; each gets what the protocol promises (the ack, the message, the
copy), and a wrong token is refused."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from amqtt.client import ClientError, ConnectError, MQTTClient

from imgate.app import App
from tests.conftest import Users
from tests.helpers import tweak

WAIT = 10.0


@pytest.fixture
def settings(settings: Any) -> Any:
    """The WebSocket listener on a free port."""
    return tweak(settings, "mqtt", ws_port=0)


async def amqtt_client(url: str, uid: str, device: str, token: str) -> MQTTClient:
    client = MQTTClient(client_id=f"{uid}:{device}", config={"auto_reconnect": False})
    scheme, rest = url.split("://", 1)
    await client.connect(f"{scheme}://{uid}:{token}@{rest}", cleansession=True)
    return client


async def next_json(client: MQTTClient, topic_suffix: str) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        while True:
            message = await client.deliver_message()
            assert message is not None and message.publish_packet is not None
            if message.topic.endswith(topic_suffix):
                return json.loads(bytes(message.data))  # type: ignore[no-any-return]


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_amqtt_clients_chat(app: App, users: Users, transport: str) -> None:
    await users.add("alice", "bob")
    ta, tb = await users.token("alice"), await users.token("bob", "laptop")
    assert app.broker is not None
    url = f"mqtt://127.0.0.1:{app.mqtt_port}" if transport == "tcp" else \
        f"ws://127.0.0.1:{app.broker.port_of('ws')}{app.settings.mqtt.ws_path}"
    bob = await amqtt_client(url, "bob", "laptop", tb)
    alice = await amqtt_client(url, "alice", "phone", ta)
    try:
        assert await bob.subscribe([("im/bob/in/#", 1)]) == [1]
        assert await alice.subscribe([("im/alice/in/#", 1)]) == [1]
        body = {"cid": "a1", "to": "bob", "type": "text", "text": "hello from amqtt"}
        await alice.publish("im/alice/out/msg", json.dumps(body).encode(), qos=1)
        ack = await next_json(alice, "/in/ack")
        assert ack["cid"] == "a1" and ack["conv"] == "d:alice:bob" and ack["seq"] == 1
        got = await next_json(bob, "/in/msg")
        assert got["id"] == ack["id"] and got["text"] == "hello from amqtt" and got["from"] == "alice"
    finally:
        await alice.disconnect()
        await bob.disconnect()


async def test_amqtt_with_a_wrong_token_is_refused(app: App, users: Users) -> None:
    await users.add("alice")
    await users.token("alice")
    client = MQTTClient(client_id="alice:phone", config={"auto_reconnect": False})
    with pytest.raises((ConnectError, ClientError)):
        await client.connect(f"mqtt://alice:imt_wrong@127.0.0.1:{app.mqtt_port}", cleansession=True)
