"""RabbitMQ as the MQTT front with the auth settings it ships with (``config/rabbitmq/local.conf``:
the HTTP backend behind ``rabbitmq_auth_backend_cache``, 15 s): the attacks of issue 24 replayed
on a private node (tests/rabbitmq.py, ``shipped_rabbitmq_node``) whose auth backend is a real
``imgate api`` closing connections through the node's management API and watching its event
exchange. Also what RabbitMQ 3.10 does differently from the embedded broker (docs/protocol.md
§1-§2, docs/scale-out.md "Differences from the embedded broker"): a silent client's keep-alive."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import aio_pika
import aiomqtt
import httpx
import pytest

from config.settings import Settings
from imgate.app import App
from tests.conftest import ADMIN_SECRET
from tests.external_auth import BRIDGE, BRIDGE_PASSWORD, admin_secret_fixture, bridge_login_fixture  # noqa: F401
from tests.helpers import WAIT, connect, tweak, wait_event
from tests.rabbitmq import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    RabbitNode,
    shipped_rabbitmq_node_fixture,  # noqa: F401  (registers the shipped_rabbitmq_node fixture)
)

pytestmark = pytest.mark.timeout(180)

# docs/protocol.md's example account (docs/protocol.md "Service accounts"), and one with a single rule.
GATEWAY, GATEWAY_PASSWORD = "svc:gateway", "change-me-please"
GATEWAY_ACL = ["readwrite devices/%u/#", "read status/%c", "deny devices/%u/secret/#"]
LAMPS, LAMPS_PASSWORD = "svc.lamps", "lamps-password"
CLOSED_WITHIN = 5.0  # seconds: a connection that must go is closed within this (it takes ~0.1 s)


@pytest.fixture(name="settings")
def accounts_fixture(settings: Settings) -> Settings:
    """The bridge's login (broker.username) and two service accounts."""
    return tweak(settings, "broker", accounts=[
        {"username": GATEWAY, "password": GATEWAY_PASSWORD, "acl": GATEWAY_ACL},
        {"username": LAMPS, "password": LAMPS_PASSWORD, "acl": ["readwrite devices/%u/#"]}])


@pytest.fixture
async def front(settings: Settings, shipped_rabbitmq_node: RabbitNode) -> AsyncIterator[tuple[App, RabbitNode]]:
    """``imgate api`` as the shipped node's auth backend, with the management API and the node's
    AMQP listener (its connection events), consuming them before the test begins."""
    node = shipped_rabbitmq_node
    async with App(settings):  # migrates the database (an api process does not)
        pass
    front = tweak(tweak(settings, "rabbitmq", management_url=node.mgmt_url, management_username=ADMIN_USER,
                        management_password=ADMIN_PASSWORD),
                  "amqp", url=f"amqp://127.0.0.1:{node.amqp_port}/")
    async with App(front, role="api") as api:
        assert api.admin is not None
        await node.aset_auth_base(f"http://127.0.0.1:{api.admin.port}/auth/rabbitmq")
        watch = getattr(api, "connection_watch", None)  # (7926294 has none: the attacks replay there too)
        if watch is not None:
            await wait_event(watch.ready)
        yield api, node


def fresh_uid() -> str:
    """The node's auth cache outlives a test: each test's users are its own."""
    return f"u{secrets.token_hex(4)}"


async def token(api: App, uid: str, device: str = "phone") -> str:
    assert api.services is not None
    with suppress(Exception):
        await api.services.users.add_user(uid)
    return (await api.services.users.issue_token(uid, device)).token


@pytest.mark.parametrize("how", ["revoke", "disable"])
async def test_a_revoked_device_cannot_come_back_through_the_auth_cache(front: tuple[App, RabbitNode],
                                                                        how: str) -> None:
    """Issue 24, finding 1. The device logged in and published: RabbitMQ's cache holds its login
    and its topic answers. Revoked (or its user disabled), it is closed, reconnects at once with
    the same token and is let in from the cache without imgate being asked. Every such
    connection must be closed again at once (the quarantine of imgate/rabbitmq.py), for as long
    as the cache may answer; then the login itself is refused. (On 7926294 the reconnected device
    stayed, publishing, for good.)"""
    api, node = front
    assert node.auth_cache_ttl_ms == 15_000 and api.admin is not None
    uid = fresh_uid()
    secret = await token(api, uid)
    reader, writer, connack = await raw_login(node.mqtt_port, uid, secret)
    try:
        assert connack == CONNACK_ACCEPTED
        writer.write(publish_packet(f"im/{uid}/out/msg", b'{"cid": "before"}', packet_id=1))
        assert await asyncio.wait_for(reader.readexactly(4), WAIT) == b"\x40\x02\x00\x01"  # PUBACK
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.admin.port}",
                                     headers={"Authorization": f"Bearer {ADMIN_SECRET}"}) as admin:
            if how == "revoke":
                assert (await admin.post(f"/v1/users/{uid}/tokens/revoke", json={"device": "phone"})).json() \
                    == {"count": 1}
            else:
                assert (await admin.post(f"/v1/users/{uid}/disable")).status_code == 200
        revoked_at = time.monotonic()
        assert await server_closes(reader, WAIT), "the revocation did not close the live connection"
    finally:
        await hang_up(writer)
    # The attacker reconnects with the revoked token, again and again, until RabbitMQ refuses it.
    cache_ttl = node.auth_cache_ttl_ms / 1000
    came_back = 0
    while True:
        assert time.monotonic() - revoked_at < cache_ttl + 2 * WAIT, "the revoked token was never refused"
        reader, writer, connack = await raw_login(node.mqtt_port, uid, secret)
        try:
            if connack in (CONNACK_BAD_LOGIN, CONNACK_NOT_AUTHORIZED):
                break
            if connack != CONNACK_ACCEPTED:
                continue  # closed before its CONNACK: the quarantine was quicker
            came_back += 1  # let in from RabbitMQ's cache
            if not await server_closes(reader, CLOSED_WITHIN):
                writer.write(publish_packet(f"im/{uid}/out/msg", b'{"cid": "after"}', packet_id=1))
                puback = await asyncio.wait_for(reader.read(4), WAIT)
                pytest.fail(f"a revoked device came back through the auth cache and stays: {puback!r} "
                            f"{time.monotonic() - revoked_at:.1f} s after the {how}")
        finally:
            await hang_up(writer)
    assert came_back >= 1, "the cache never let the revoked token in: the attack was not replayed"
    # Refused by imgate itself: the cache no longer answers, and nothing lets the device back.
    with pytest.raises(aiomqtt.MqttCodeError):
        async with connect(node.mqtt_port, uid, "phone", secret, subscribe=[]):
            pass


CONNACK_ACCEPTED, CONNACK_BAD_LOGIN, CONNACK_NOT_AUTHORIZED = b"\x20\x02\x00\x00", b"\x20\x02\x00\x04", b"\x20\x02\x00\x05"


async def raw_login(port: int, uid: str, secret: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A raw MQTT 3.1.1 login as ``{uid}:phone``: the streams and the CONNACK (b"" when the server
    closed the connection before answering)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(connect_packet(uid, f"{uid}:phone", secret, keepalive=60))
    try:
        return reader, writer, await asyncio.wait_for(reader.readexactly(4), WAIT)
    except (asyncio.IncompleteReadError, ConnectionError):
        return reader, writer, b""


async def server_closes(reader: asyncio.StreamReader, within: float) -> bool:
    """Does the server close the connection (FIN or RST) within ``within`` seconds, sending nothing?"""
    try:
        return await asyncio.wait_for(reader.read(1), within) == b""
    except ConnectionError:
        return True
    except TimeoutError:
        return False


async def hang_up(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with suppress(ConnectionError):
        await writer.wait_closed()


@asynccontextmanager
async def bridge_session_away(api: App, node: RabbitNode, bridge_id: str) -> AsyncIterator[None]:
    """The bridges' MQTT session ``bridge_id`` (clean_session=False, ``im/+/out/#``) away, a user's
    message waiting in its queue (``mqtt-subscription-{bridge_id}qos1``) during the block; after
    it, that message is still there for the bridge's session, which is ended."""
    uid = fresh_uid()
    async with aiomqtt.Client("127.0.0.1", node.mqtt_port, username=BRIDGE, password=BRIDGE_PASSWORD,
                              identifier=bridge_id, clean_session=False) as bridge:
        await bridge.subscribe("im/+/out/#", qos=1)
    async with connect(node.mqtt_port, uid, "phone", await token(api, uid), subscribe=[]) as phone:
        await phone.client.publish(f"im/{uid}/out/msg", b'{"cid": "c1", "text": "private"}', qos=1)
    yield
    async with aiomqtt.Client("127.0.0.1", node.mqtt_port, username=BRIDGE, password=BRIDGE_PASSWORD,
                              identifier=bridge_id, clean_session=False) as bridge:
        async with asyncio.timeout(WAIT):
            async for message in bridge.messages:
                assert str(message.topic) == f"im/{uid}/out/msg" and b"private" in bytes(message.payload)
                break
    async with aiomqtt.Client("127.0.0.1", node.mqtt_port, username=BRIDGE, password=BRIDGE_PASSWORD,
                              identifier=bridge_id, clean_session=True):
        pass  # ends the session (its queue goes)


async def test_a_service_account_cannot_read_the_bridges_queue_over_amqp(front: tuple[App, RabbitNode]) -> None:
    """Issue 24, finding 2. The bridge's MQTT session (``im/+/out/#``, as with ``bridge.transport
    = "mqtt"``) is away; a user's message waits in its queue, ``mqtt-subscription-{client id}qos1``.
    A service account whose only rule is ``readwrite devices/%u/#`` logs in over AMQP and takes
    the message with basic.get (7926294 let it: any queue not named after a user's client id).
    Its AMQP login must be refused."""
    api, node = front
    bridge_id = f"bridge-{secrets.token_hex(3)}"
    async with bridge_session_away(api, node, bridge_id):
        with pytest.raises(aio_pika.exceptions.ProbableAuthenticationError):
            attacker = await aio_pika.connect(f"amqp://{LAMPS}:{LAMPS_PASSWORD}@127.0.0.1:{node.amqp_port}/",
                                              timeout=WAIT)
            async with attacker:
                channel = await attacker.channel()
                waiting = await channel.get_queue(f"mqtt-subscription-{bridge_id}qos1", ensure=False)
                got = await waiting.get(no_ack=True, fail=False)
                pytest.fail(f"a service account logged in over AMQP and read {got.body if got else None!r}")


async def test_a_service_account_cannot_take_the_bridges_mqtt_session(front: tuple[App, RabbitNode]) -> None:
    """The bridge's MQTT session (``imgate-…``, clean_session=False, ``im/+/out/#``) is away and
    a user's message waits in its queue. A service account connecting over MQTT with the
    bridge's client id would take the session over and consume that queue (its own client id's
    queue, for the resource question): its login must be refused, and the message stay."""
    api, node = front
    bridge_id = f"imgate-bridge-{secrets.token_hex(3)}"  # the node's cache outlives a test: its own id
    async with bridge_session_away(api, node, bridge_id):
        with pytest.raises(aiomqtt.MqttCodeError):
            async with aiomqtt.Client("127.0.0.1", node.mqtt_port, username=LAMPS, password=LAMPS_PASSWORD,
                                      identifier=bridge_id, clean_session=False) as attacker:
                async with asyncio.timeout(WAIT):
                    async for message in attacker.messages:
                        pytest.fail(f"a service account took the bridge's session and read {message.payload!r}")


async def test_a_device_on_a_fresh_token_is_not_closed_again_when_its_old_token_expires(
        front: tuple[App, RabbitNode]) -> None:
    """A device refreshes its token before the old one expires and reconnects with the new one.
    When the old one expires, its user's connections are closed once (the management API closes
    per user); the device reconnects with its new token and stays. (Before, every expiry was
    quarantined: each reconnection of the user's devices was closed again for the cache's TTL
    and 2 s.) A token that would expire within that window is refused at login instead."""
    api, node = front
    assert api.services is not None
    cache_ttl_s = node.auth_cache_ttl_ms / 1000
    window_s = api.settings.rabbitmq.auth_cache_ttl_s + 2
    assert cache_ttl_s <= api.settings.rabbitmq.auth_cache_ttl_s
    users = api.services.users
    other = fresh_uid()  # (its token's expiry would close its user's connections: another user)
    await token(api, other)
    doomed = (await users.issue_token(other, "phone", ttl_s=int(window_s) - 1)).token
    reader, writer, connack = await raw_login(node.mqtt_port, other, doomed)
    await hang_up(writer)
    assert connack in (CONNACK_BAD_LOGIN, CONNACK_NOT_AUTHORIZED, b""), "a token within the window was let in"
    uid = fresh_uid()
    await token(api, uid)
    old = await users.issue_token(uid, "phone", ttl_s=int(window_s) + 3)
    reader, writer, connack = await raw_login(node.mqtt_port, uid, old.token)
    await hang_up(writer)
    assert connack == CONNACK_ACCEPTED
    new = (await users.issue_token(uid, "phone", ttl_s=3600)).token
    reader, writer, connack = await raw_login(node.mqtt_port, uid, new)
    try:
        assert connack == CONNACK_ACCEPTED
        # The old token expires: closed once (within broker.auth_poll_interval of its expiry).
        assert old.expires_at is not None
        assert await server_closes(reader, (old.expires_at - api.clock.now_ms()) / 1000 + WAIT)
    finally:
        await hang_up(writer)
    reader, writer, connack = await raw_login(node.mqtt_port, uid, new)
    try:
        assert connack == CONNACK_ACCEPTED
        assert not await server_closes(reader, CLOSED_WITHIN), "the device on its new token was closed again"
        writer.write(publish_packet(f"im/{uid}/out/msg", b'{"cid": "fresh"}', packet_id=1))
        assert await asyncio.wait_for(reader.readexactly(4), WAIT) == b"\x40\x02\x00\x01"  # PUBACK
    finally:
        await hang_up(writer)


async def test_the_readme_service_account_works_through_rabbitmq(front: tuple[App, RabbitNode]) -> None:
    """``svc:gateway`` with the documented rules (docs/protocol.md "Service accounts") over MQTT:
    it reads and writes ``devices/svc:gateway/…`` and reads ``status/{its client id}``; a
    publish its deny rule covers closes the connection (RabbitMQ's way of refusing); over AMQP
    it is refused, as every service account but the bridges'."""
    _, node = front
    hub = f"hall-{secrets.token_hex(3)}"
    async with aiomqtt.Client("127.0.0.1", node.mqtt_port, username=GATEWAY, password=GATEWAY_PASSWORD,
                              identifier=hub) as gateway:
        await gateway.subscribe(f"devices/{GATEWAY}/lamp/state", qos=1)
        await gateway.subscribe(f"status/{hub}", qos=1)
        await gateway.publish(f"devices/{GATEWAY}/lamp/state", b"on", qos=1)
        async with asyncio.timeout(WAIT):
            async for message in gateway.messages:
                assert str(message.topic) == f"devices/{GATEWAY}/lamp/state" and message.payload == b"on"
                break
    async with aiomqtt.Client("127.0.0.1", node.mqtt_port, username=GATEWAY, password=GATEWAY_PASSWORD,
                              identifier=hub) as gateway:
        with pytest.raises(aiomqtt.MqttError):
            await gateway.publish(f"devices/{GATEWAY}/secret/key", b"x", qos=1, timeout=WAIT)
    # A SUBSCRIBE the ACL refuses (+ could be "secret") gets no SUBACK 0x80 there: the connection closes.
    async with aiomqtt.Client("127.0.0.1", node.mqtt_port, username=GATEWAY, password=GATEWAY_PASSWORD,
                              identifier=hub) as gateway:
        with pytest.raises(aiomqtt.MqttError):
            await gateway.subscribe(f"devices/{GATEWAY}/+/state", qos=1, timeout=WAIT)
    with pytest.raises(aio_pika.exceptions.ProbableAuthenticationError):
        await aio_pika.connect(f"amqp://{GATEWAY}:{GATEWAY_PASSWORD}@127.0.0.1:{node.amqp_port}/", timeout=WAIT)


def _field(b: bytes) -> bytes:
    return len(b).to_bytes(2, "big") + b


def connect_packet(username: str, client_id: str, password: str, *, keepalive: int) -> bytes:
    """An MQTT 3.1.1 CONNECT, clean session, with username and password (under 128 bytes)."""
    body = _field(b"MQTT") + bytes([4, 0xC2]) + keepalive.to_bytes(2, "big") \
        + _field(client_id.encode()) + _field(username.encode()) + _field(password.encode())
    assert len(body) < 128
    return bytes([0x10, len(body)]) + body


def publish_packet(topic: str, payload: bytes, *, packet_id: int) -> bytes:
    """An MQTT 3.1.1 PUBLISH at QoS 1 (under 128 bytes)."""
    body = _field(topic.encode()) + packet_id.to_bytes(2, "big") + payload
    assert len(body) < 128
    return bytes([0x32, len(body)]) + body


def _silent_client(port: int, uid: str, secret: str, keepalive: int) -> float:
    """A raw MQTT 3.1.1 client: CONNECT with ``keepalive`` seconds, then silence. Seconds from the
    CONNACK until the server closes the socket."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(connect_packet(uid, f"{uid}:phone", secret, keepalive=keepalive))
        assert sock.recv(4) == b"\x20\x02\x00\x00"  # CONNACK, accepted
        began = time.monotonic()
        sock.settimeout(keepalive * 6)
        try:
            assert sock.recv(1) == b""  # closed by the server (a timeout here fails the test)
        except ConnectionResetError:
            pass  # closed by the server, abruptly
        return time.monotonic() - began


async def test_a_silent_client_is_dropped_after_two_to_three_keep_alives(front: tuple[App, RabbitNode]) -> None:
    """RabbitMQ 3.10 drops a client that sends nothing after 2-3 keep-alive periods, not 1.5 as
    the embedded broker (docs/protocol.md §1): documented in docs/scale-out.md, "Differences from the embedded broker"."""
    api, node = front
    uid = fresh_uid()
    secret = await token(api, uid)
    waited = await asyncio.to_thread(_silent_client, node.mqtt_port, uid, secret, 2)
    assert 2 * 2 - 0.5 <= waited <= 3 * 2 + 1, waited
