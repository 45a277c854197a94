"""The platform over TLS, WebSocket and secure WebSocket, with real clients: Debian's mosquitto
clients and paho (through aiomqtt), MQTT 3.1.1 and 5. The listener layer has its own tests
(test_listeners.py); these show the IM protocol working end to end on each transport."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from broker.certs import DevCerts, write_dev_certs
from config.settings import Settings
from imgate.app import App
from tests.conftest import Users
from tests.helpers import WAIT, connect, mosquitto_subscribed, on


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return write_dev_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def other_ca(tmp_path: Path) -> Path:
    return write_dev_certs(tmp_path / "other").ca_cert


@pytest.fixture
async def app(settings: Settings, certs: DevCerts) -> AsyncIterator[App]:
    mqtt = settings.mqtt.model_validate({**settings.mqtt.model_dump(), "tls_port": 0, "ws_port": 0, "wss_port": 0,
                                          "tls_cert": certs.server_cert, "tls_key": certs.server_key})
    async with App(settings.model_copy(update={"mqtt": mqtt})) as running:
        yield running


def port(app: App, kind: str) -> int:
    assert app.broker is not None
    return app.broker.port_of(kind)  # type: ignore[arg-type]


def trusting(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


async def run(*cmd: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def test_mosquitto_clients_over_tls(app: App, users: Users, certs: DevCerts, other_ca: Path) -> None:
    """mosquitto_pub sends a message over TLS (trusting the dev CA); bob, on mosquitto_sub over
    TLS too, receives it. With another CA, mosquitto_pub is refused."""
    await users.add("alice", "bob")
    tls = port(app, "tls")
    sub = await asyncio.create_subprocess_exec(
        "stdbuf", "-oL", "mosquitto_sub", "-h", "localhost", "-p", str(tls), "--cafile", str(certs.ca_cert), "-i", "bob:phone",
        "-u", "bob", "-P", await users.token("bob"), "-t", "im/bob/in/msg", "-q", "1", "-C", "1", "-W", "10", "-d",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    await mosquitto_subscribed(sub)  # else the message could be routed before bob listens
    code, out = await run("mosquitto_pub", "-h", "localhost", "-p", str(tls), "--cafile", str(certs.ca_cert),
                          "-i", "alice:phone", "-u", "alice", "-P", await users.token("alice"),
                          "-t", "im/alice/out/msg", "-q", "1",
                          "-m", '{"cid":"over-tls","to":"bob","type":"text","text":"hello over TLS"}')
    assert code == 0, out
    stdout, stderr = await asyncio.wait_for(sub.communicate(), WAIT)
    assert sub.returncode == 0, stderr
    assert b'"text":"hello over TLS"' in stdout

    code, out = await run("mosquitto_pub", "-h", "localhost", "-p", str(tls), "--cafile", str(other_ca),
                          "-i", "alice:phone", "-u", "alice", "-P", await users.token("alice"),
                          "-t", "im/alice/out/msg", "-m", "{}")
    assert code != 0
    assert "certificate verify failed" in out.lower() or "tls" in out.lower(), out


async def test_paho_over_tls_and_a_wrong_ca_is_refused(app: App, users: Users, certs: DevCerts,
                                                       other_ca: Path) -> None:
    await users.add("alice")
    token = await users.token("alice")
    async with connect(port(app, "tls"), "alice", "phone", token, host="localhost",
                       tls_context=trusting(certs.ca_cert)) as alice:
        assert (await alice.rpc("conversations"))["result"]["items"] == []
    with pytest.raises(aiomqtt.MqttError):
        async with connect(port(app, "tls"), "alice", "phone", token, host="localhost",
                           tls_context=trusting(other_ca)):
            pass


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
@pytest.mark.parametrize("version", [aiomqtt.ProtocolVersion.V311, aiomqtt.ProtocolVersion.V5], ids=["v311", "v5"])
async def test_im_over_websocket(app: App, users: Users, certs: DevCerts, secure: bool,
                                 version: aiomqtt.ProtocolVersion) -> None:
    """A browser's path: MQTT over WebSocket at /mqtt (and over TLS), both protocol versions;
    alice sends, bob receives and both get what the protocol promises."""
    await users.add("alice", "bob")
    kind = "wss" if secure else "ws"
    extra = {"transport": "websockets", "websocket_path": "/mqtt", "protocol": version}
    if secure:
        extra["tls_context"] = trusting(certs.ca_cert)
    async with connect(port(app, kind), "alice", "phone", await users.token("alice"), host="localhost",
                       **extra) as alice, \
            connect(port(app, kind), "bob", "phone", await users.token("bob"), host="localhost", **extra) as bob:
        ack = await alice.send_and_ack("ws-1", "bob", "hello over WebSocket")
        assert ack["seq"] == 1
        got = await bob.inbox.wait_for(on("/in/msg", cid="ws-1"))
        assert got[0].json["text"] == "hello over WebSocket"


async def test_a_wrong_websocket_path_is_refused(app: App, users: Users) -> None:
    await users.add("alice")
    with pytest.raises(aiomqtt.MqttError):
        async with connect(port(app, "ws"), "alice", "phone", await users.token("alice"),
                           transport="websockets", websocket_path="/not-mqtt"):
            pass
