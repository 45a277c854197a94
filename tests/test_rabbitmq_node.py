"""The private RabbitMQ node of tests/rabbitmq.py, proven with real clients: MQTT (aiomqtt, over TCP
and Web MQTT) logging in through RabbitMQ's HTTP auth backend against a small real auth server started
here, the auth base switched on the running node, and the management API closing a connection."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiomqtt
import httpx
import pytest
from paho.mqtt.reasoncodes import ReasonCode

from tests.fakes.tcp import TcpServer
from tests.helpers import WAIT, connect
from tests.rabbitmq import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    RabbitNode,
    RabbitNodeError,
    installed,
    rabbitmq_node_fixture,  # noqa: F401  (registers the rabbitmq_node fixture)
)

Decide = Callable[[str, dict[str, str]], str]


@dataclass
class AuthRequest:
    method: str
    path: str  # "user", "vhost", "resource" or "topic"
    form: dict[str, str]


@dataclass
class AuthServer(TcpServer):
    """RabbitMQ's HTTP auth backend's server: answers the POSTs to ``/auth/rabbitmq/{user,vhost,
    resource,topic}`` with ``decide(path, form)`` ("allow", "deny", "allow tag..."), records them."""

    decide: Decide
    requests: list[AuthRequest] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/auth/rabbitmq"

    def on(self, path: str) -> list[AuthRequest]:
        return [r for r in self.requests if r.path == path]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:  # issue 14: without it, each answer waits on Nagle + delayed ACK
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            path = target.split("?", 1)[0].rsplit("/", 1)[-1]
            form = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
            self.requests.append(AuthRequest(method, path, form))
            answer = self.decide(path, form).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer))
            await writer.drain()


def alice_only(path: str, form: dict[str, str]) -> str:
    if path == "user":
        return "allow" if (form.get("username"), form.get("password")) == ("alice", "secret") else "deny"
    return "allow"


def deny_all(path: str, form: dict[str, str]) -> str:
    return "deny"


@contextlib.asynccontextmanager
async def auth_server(node: RabbitNode, decide: Decide) -> AsyncIterator[AuthServer]:
    """An auth server on a free port, with the node pointed at it."""
    async with AuthServer(decide) as server:
        await node.aset_auth_base(server.base)
        yield server


async def refused(node: RabbitNode, username: str, password: str) -> aiomqtt.MqttCodeError:
    """The CONNACK's refusal of this login (fails the test if the login is accepted)."""
    with pytest.raises(aiomqtt.MqttCodeError) as caught:
        async with connect(node.mqtt_port, username, "phone", password, subscribe=[]):
            pass
    return caught.value


def bad_login(error: aiomqtt.MqttCodeError) -> bool:
    """CONNACK return code 4, "bad user name or password" (paho reports it as reason code 134)."""
    code = error.rc.value if isinstance(error.rc, ReasonCode) else error.rc
    return code == 134 and "Bad user name or password" in str(error)


def test_node_is_private_and_its_listeners_answer(rabbitmq_node: RabbitNode) -> None:
    node = rabbitmq_node
    assert node.running and node.dir is not None
    assert node.nodename.startswith("imgate-test-") and node.nodename.endswith("@localhost")
    ports = {node.amqp_port, node.mqtt_port, node.web_mqtt_port, node.mgmt_port, node.dist_port}
    assert len(ports) == 5 and not ports & {5672, 1883, 15672, 15675, 25672}
    status = node.ctl("status")
    assert f"Node name: {node.nodename}" in status
    assert str(node.dir / "rabbitmq.conf") in status and "/etc/rabbitmq" not in status
    for plugin in ("rabbitmq_mqtt", "rabbitmq_web_mqtt", "rabbitmq_auth_backend_http",
                   "rabbitmq_auth_backend_cache", "rabbitmq_event_exchange", "rabbitmq_management"):
        assert f" * {plugin}\n" in status
    # Erlang distribution on its own port (registered with the machine's epmd next to the system node).
    names = subprocess.run(["epmd", "-names"], capture_output=True, text=True, check=True).stdout
    assert f"name {node.nodename.split('@')[0]} at port {node.dist_port}\n" in names
    # Its listeners: each protocol on its own port, bound to loopback only (the listener records of the
    # HTTP ones say "::", the sockets are on 127.0.0.1).
    listeners = node.ctl("eval", "lists:sort([{P, Port} || "
                         "{listener, _, P, _, _, Port, _} <- rabbit_networking:active_listeners()]).")
    assert listeners.split() == (f"[{{amqp,{node.amqp_port}}}, {{clustering,{node.dist_port}}}, "
                                 f"{{http,{node.mgmt_port}}}, {{'http/web-mqtt',{node.web_mqtt_port}}}, "
                                 f"{{mqtt,{node.mqtt_port}}}]").split()
    for port in sorted(ports):
        bound = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True)
        assert bound.stdout.split()[3] == f"127.0.0.1:{port}", bound.stdout
    env = node.ctl("eval", "{application:get_env(rabbit, auth_backends), "
                           "application:get_env(rabbitmq_mqtt, allow_anonymous)}.")
    assert env.strip() == "{{ok,[rabbit_auth_backend_http,rabbit_auth_backend_internal]},{ok,false}}"


async def test_login_through_the_http_backend_and_round_trip(rabbitmq_node: RabbitNode) -> None:
    async with auth_server(rabbitmq_node, alice_only) as auth:
        async with connect(rabbitmq_node.mqtt_port, "alice", "phone", "secret", subscribe=["t/alice/#"]) as alice:
            await alice.client.publish("t/alice/hello", b"round trip", qos=1)
            got = await alice.inbox.wait_for(lambda r: r.topic == "t/alice/hello")
            assert got[0].payload == b"round trip"
        assert {r.method for r in auth.requests} == {"POST"}  # auth_http.http_method = post
        # What RabbitMQ 3.10 posts (form fields, exactly; our real endpoint relies on them). The user
        # path gets the MQTT client id; the others also get the tags the user path granted ("allow"
        # alone: none).
        assert [r.form for r in auth.on("user")] == [
            {"username": "alice", "password": "secret", "vhost": "/", "client_id": "alice:phone"}]
        assert [r.form for r in auth.on("vhost")] == [
            {"username": "alice", "vhost": "/", "ip": "127.0.0.1", "tags": "", "client_id": "alice:phone"}]
        alice_is = {"username": "alice", "vhost": "/", "tags": ""}
        queue = "mqtt-subscription-alice:phoneqos1"  # the subscriber's queue (QoS 1, clean session)
        assert {tuple(sorted(r.form.items())) for r in auth.on("resource")} == {
            tuple(sorted({**alice_is, "client_id": "alice:phone", "resource": kind, "name": name,
                          "permission": permission}.items()))
            for kind, name, permission in [("queue", queue, "configure"), ("queue", queue, "read"),
                                           ("queue", queue, "write"), ("exchange", "amq.topic", "read"),
                                           ("exchange", "amq.topic", "write")]}
        # Topic checks: the SUBSCRIBE (read; the filter's wildcards in the binding key), then the first
        # PUBLISH (write; asked by the MQTT connection and again by its AMQP channel), never per delivery.
        topics = auth.on("topic")
        assert list(dict.fromkeys((t.form["permission"], t.form["routing_key"]) for t in topics)) == [
            ("read", "t.alice.#"), ("write", "t.alice.hello")]
        for t in topics:
            assert t.form == {**alice_is, "resource": "topic", "name": "amq.topic",
                              "permission": t.form["permission"], "routing_key": t.form["routing_key"],
                              "variable_map.client_id": "alice:phone", "variable_map.username": "alice",
                              "variable_map.vhost": "/"}
        assert {r.path for r in auth.requests} == {"user", "vhost", "resource", "topic"}


async def test_wrong_password_is_refused(rabbitmq_node: RabbitNode) -> None:
    async with auth_server(rabbitmq_node, alice_only) as auth:
        error = await refused(rabbitmq_node, "alice", "wrong")
        assert bad_login(error)
        assert [r.form["password"] for r in auth.on("user")] == ["wrong"]
        assert auth.on("vhost") == []  # refused at the login: nothing further asked
        assert bad_login(await refused(rabbitmq_node, "mallory", "secret"))
        assert [r.form["username"] for r in auth.on("user")] == ["alice", "mallory"]


async def test_set_auth_base_takes_effect_on_the_running_node(rabbitmq_node: RabbitNode) -> None:
    node = rabbitmq_node
    async with AuthServer(alice_only) as allowing, AuthServer(deny_all) as denying:
        await node.aset_auth_base(allowing.base)
        async with connect(node.mqtt_port, "alice", "phone", "secret", subscribe=[]):
            pass
        assert len(allowing.on("user")) == 1
        await node.aset_auth_base(denying.base)
        assert node.auth_base == denying.base
        assert bad_login(await refused(node, "alice", "secret"))
        assert [r.form["username"] for r in denying.on("user")] == ["alice"]
        assert len(allowing.on("user")) == 1  # the old server was not asked again
        # And back (the sync variant), over Web MQTT this time.
        node.set_auth_base(allowing.base)
        async with aiomqtt.Client("127.0.0.1", node.web_mqtt_port, username="alice", password="secret",
                                  identifier="alice:web", transport="websockets", websocket_path="/ws") as web:
            await web.subscribe("t/alice/web", qos=1)
            await web.publish("t/alice/web", b"over websockets", qos=1)
            async with asyncio.timeout(WAIT):
                async for message in web.messages:
                    assert message.payload == b"over websockets"
                    break
        assert [r.form["client_id"] for r in allowing.on("user")] == ["alice:phone", "alice:web"]


async def test_management_api_closes_a_live_connection(rabbitmq_node: RabbitNode) -> None:
    node = rabbitmq_node
    async with auth_server(node, alice_only) as auth:
        async with connect(node.mqtt_port, "alice", "phone", "secret", subscribe=["t/alice/#"]) as alice:
            async with httpx.AsyncClient(base_url=node.mgmt_url, auth=(ADMIN_USER, ADMIN_PASSWORD),
                                         timeout=WAIT) as api:
                # The management API's statistics lag a little: poll for alice's connection.
                async with asyncio.timeout(WAIT):
                    while True:
                        listed = (await api.get("/api/connections")).raise_for_status().json()
                        mine = [c for c in listed if c.get("user") == "alice"]
                        if mine:
                            break
                        await asyncio.sleep(0.1)
                assert mine[0]["protocol"].startswith("MQTT") and mine[0]["client_properties"]
                name = urllib.parse.quote(mine[0]["name"], safe="")
                closed = await api.delete(f"/api/connections/{name}", headers={"X-Reason": "revoked"})
                assert closed.status_code == 204
            await asyncio.wait_for(alice.disconnected.wait(), WAIT)
        # The management API's guest was asked of the HTTP backend first (which denied it), then let in
        # by the internal backend (guest: loopback only).
        assert "guest" in [r.form["username"] for r in auth.on("user")]


class _Misconfigured(RabbitNode):
    def _config(self) -> str:
        return super()._config() + "mqtt.no_such_key = 1\n"


def test_a_node_that_cannot_start_says_why_and_leaves_nothing() -> None:
    if not installed():
        pytest.skip("RabbitMQ is not installed")

    def beams() -> set[str]:
        return set(subprocess.run(["pgrep", "-x", "beam.smp"], capture_output=True, text=True, check=False)
                   .stdout.split())

    before = beams()
    node = _Misconfigured()
    with pytest.raises(RabbitNodeError) as failed:
        node.start()
    # The cause, from the node's log (the first error lines: a long crash report follows them).
    assert f"{node.nodename} exited" in str(failed.value)
    assert "Conf file attempted to set unknown variable: mqtt.no_such_key" in str(failed.value)
    assert node.dir is None and not node.running
    # No Erlang VM left that was not running before (one of another test's nodes may end meanwhile:
    # a CI pass saw a teardown's node go while this ran, and an equality failed on it).
    assert beams() <= before
    names = subprocess.run(["epmd", "-names"], capture_output=True, text=True, check=False).stdout
    assert node.nodename.split("@")[0] not in names
