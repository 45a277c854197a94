"""Authentication at CONNECT (protocol §1), client-id binding, revocation and expiry."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import aiomqtt
import paho.mqtt.client as paho
import pytest

from config.settings import Settings
from imgate.app import App
from tests.conftest import Users
from tests.helpers import ManualClock, connect, wait_event
from tests.mqttraw import raw_connect

ACCEPTED, IDENTIFIER_REJECTED, BAD_CREDENTIALS, NOT_AUTHORIZED = 0, 2, 4, 5


async def test_valid_token_is_accepted(app: App, users: Users) -> None:
    await users.add("alice")
    conn = await raw_connect(app.mqtt_port, "alice:phone", "alice", await users.token("alice"))
    assert conn.return_code == ACCEPTED
    conn.close()


@pytest.mark.parametrize(("case", "expected"), [
    ("no credentials", BAD_CREDENTIALS),
    ("wrong token", BAD_CREDENTIALS),
    ("unknown user", BAD_CREDENTIALS),
    ("someone else's token", BAD_CREDENTIALS),
    ("client id of another device", IDENTIFIER_REJECTED),
    ("client id of another user", IDENTIFIER_REJECTED),
])
async def test_bad_connects_are_refused_with_the_right_code(app: App, users: Users, case: str, expected: int) -> None:
    await users.add("alice", "bob")
    token = await users.token("alice")
    username, password, client_id = {
        "no credentials": (None, None, "alice:phone"),
        "wrong token": ("alice", "imt_wrong", "alice:phone"),
        "unknown user": ("zed", token, "zed:phone"),
        "someone else's token": ("bob", token, "bob:phone"),
        "client id of another device": ("alice", token, "alice:tablet"),
        "client id of another user": ("alice", token, "bob:phone"),
    }[case]
    conn = await raw_connect(app.mqtt_port, client_id, username, password)
    assert conn.return_code == expected
    assert await conn.closed_by_server(5)


async def test_paho_sees_bad_credentials(app: App, users: Users) -> None:
    await users.add("alice")
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="alice:phone")
    client.username_pw_set("alice", "imt_not-a-real-token")
    codes: asyncio.Queue[int] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    client.on_connect = lambda _c, _u, _f, rc, _p: loop.call_soon_threadsafe(codes.put_nowait, rc.value)
    await asyncio.to_thread(client.connect, "127.0.0.1", app.mqtt_port)
    client.loop_start()
    try:
        code = await asyncio.wait_for(codes.get(), 10)
    finally:
        client.loop_stop()
        client.disconnect()
    assert code == 134  # paho's name for CONNACK 4: "Bad user name or password"


async def test_revoked_token_is_refused_and_its_live_connection_dropped(app: App, users: Users) -> None:
    await users.add("alice")
    token = await users.token("alice", "phone")
    other = await users.token("alice", "tablet")
    async with connect(app.mqtt_port, "alice", "phone", token) as phone, \
               connect(app.mqtt_port, "alice", "tablet", other) as tablet:
        assert app.services is not None
        assert await app.services.users.revoke_tokens("alice", "phone") == 1
        await wait_event(phone.disconnected)
        # Only the revoked device is dropped: the tablet still gets answers.
        assert (await tablet.result("conversations"))["items"] == []
        assert not tablet.disconnected.is_set()
    conn = await raw_connect(app.mqtt_port, "alice:phone", "alice", token)
    assert conn.return_code == BAD_CREDENTIALS


async def test_disabled_user_is_dropped_and_refused(app: App, users: Users) -> None:
    await users.add("alice")
    token = await users.token("alice")
    async with connect(app.mqtt_port, "alice", "phone", token) as phone:
        assert app.services is not None
        await app.services.users.disable_user("alice")
        await wait_event(phone.disconnected)
    conn = await raw_connect(app.mqtt_port, "alice:phone", "alice", token)
    assert conn.return_code == NOT_AUTHORIZED


async def test_revocation_from_the_cli_process_drops_the_connection(app: App, users: Users, settings: Settings) -> None:
    await users.add("alice")
    token = await users.token("alice")
    async with connect(app.mqtt_port, "alice", "phone", token) as phone:
        env = {**os.environ, "IMGATE_DATABASE__URL": settings.database_url(), "IMGATE_DATA_DIR": str(settings.data_dir)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "imgate", "token", "revoke", "alice", "--device", "phone",
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err
        assert b"revoked 1 token" in err
        await wait_event(phone.disconnected)


async def test_expired_token_is_refused_and_live_session_dropped(settings: Settings) -> None:
    import time

    clock = ManualClock(time.time_ns() // 1_000_000)
    async with App(settings, clock=clock) as app:
        assert app.services is not None
        await app.services.users.add_user("alice")
        token = (await app.services.users.issue_token("alice", "phone", "ios", ttl_s=60)).token
        async with connect(app.mqtt_port, "alice", "phone", token) as phone:
            clock.ms += 61_000
            await wait_event(phone.disconnected)
        conn = await raw_connect(app.mqtt_port, "alice:phone", "alice", token)
        assert conn.return_code == BAD_CREDENTIALS


async def test_nobody_can_take_over_or_resume_another_users_session(app: App, users: Users) -> None:
    """Stock amqtt 0.12.1 takes over (and, for clean sessions, deletes) the session of a client id
    before it checks credentials; here a refused CONNECT leaves the victim untouched."""
    await users.add("alice", "bob", "mallory")
    bob_token = await users.token("bob")
    mallory_token = await users.token("mallory")
    async with connect(app.mqtt_port, "bob", "phone", bob_token, clean_session=False) as bob:
        for username, password, clean in [("mallory", mallory_token, True), ("mallory", mallory_token, False),
                                          ("bob", "imt_guess", True), ("bob", "imt_guess", False)]:
            conn = await raw_connect(app.mqtt_port, "bob:phone", username, password, clean=clean)
            assert conn.return_code in (IDENTIFIER_REJECTED, BAD_CREDENTIALS)
            conn.close()
        # Bob is still connected, still subscribed, and still gets his messages.
        async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
            await alice.send_and_ack("x1", "bob", "still there?")
        await bob.inbox.wait_for(lambda r: r.topic == "im/bob/in/msg")
        assert not bob.disconnected.is_set()


async def test_same_device_reconnecting_takes_over_and_resumes(app: App, users: Users) -> None:
    await users.add("bob")
    token = await users.token("bob")
    async with connect(app.mqtt_port, "bob", "phone", token, clean_session=False) as first:
        second = await raw_connect(app.mqtt_port, "bob:phone", "bob", token, clean=False)
        assert second.return_code == ACCEPTED
        assert second.session_present  # the persistent session was resumed
        await wait_event(first.disconnected)
        second.close()


async def test_aiomqtt_reports_refusal(app: App, users: Users) -> None:
    await users.add("alice")
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", app.mqtt_port, username="alice", password="imt_nope",
                                  identifier="alice:phone"):
            pass


@pytest.mark.parametrize("garbage", [b"\x00\x00\x00\x00", b"GET / HTTP/1.1\r\n\r\n",
                                     b"\x10\x0c\x00\x04MQTT\x05\x02\x00\x3c\x00\x00"])
async def test_a_socket_that_does_not_speak_mqtt_is_closed(app: App, garbage: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", app.mqtt_port)
    writer.write(garbage)
    await writer.drain()
    async with asyncio.timeout(10):
        rest = await reader.read()  # until the broker closes the socket
    assert rest in (b"", b"\x20\x02\x00\x01")  # nothing, or CONNACK 1 for MQTT 5's protocol level
    writer.close()
