"""The broker's listeners with real sockets and real clients (asyncio streams, Python ssl,
``websockets``), an echo handler in place of MQTT, every port chosen by the kernel."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import ssl
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from broker.certs import DevCerts, write_dev_certs
from broker.listeners import ListenerError, ListenerKind, Listeners, ListenerSpec, Transport

HOST = "127.0.0.1"
MQTT = [Subprotocol("mqtt")]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return write_dev_certs(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def other_certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return write_dev_certs(tmp_path_factory.mktemp("other-ca"))


def spec(kind: ListenerKind, certs: DevCerts | None = None, port: int = 0, max_message: int = 1 << 20) -> ListenerSpec:
    return ListenerSpec(kind, HOST, port, "mqtt.port" if kind == "tcp" else f"mqtt.{kind}_port",
                        cert=certs.server_cert if certs else None, key=certs.server_key if certs else None,
                        max_message=max_message)


class Echo:
    """Echoes what it reads; each connection's transport is queued for the test to look at."""

    def __init__(self) -> None:
        self.accepted: asyncio.Queue[Transport] = asyncio.Queue()
        self.ended: asyncio.Queue[Transport] = asyncio.Queue()

    async def __call__(self, t: Transport) -> None:
        self.accepted.put_nowait(t)
        try:
            while data := await t.read(65536):
                t.write(data)
        finally:
            self.ended.put_nowait(t)


@asynccontextmanager
async def running(*specs: ListenerSpec,
                  handler: Callable[[Transport], Awaitable[None]] | None = None) -> AsyncIterator[Listeners]:
    listeners = Listeners(specs, handler or Echo())
    await listeners.start()
    try:
        yield listeners
    finally:
        await listeners.close()
        for t in listeners.connections:
            t.abort()


@asynccontextmanager
async def ws_session(*specs: ListenerSpec, handler: Callable[[Transport], Awaitable[None]] | None = None,
                     max_size: int | None = 1 << 20) -> AsyncIterator[ClientConnection]:
    """Listeners running ``specs`` and a WebSocket client connected to the ws one, path /mqtt."""
    async with running(*specs, handler=handler) as listeners, \
            connect(f"ws://{HOST}:{listeners.port('ws')}/mqtt", subprotocols=MQTT, max_size=max_size) as ws:
        yield ws


def client_tls(cafile: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cafile))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def no_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.levelname} {r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]


# -- TCP ----------------------------------------------------------------------------------------


async def test_tcp_echo_with_nodelay_and_peer() -> None:
    echo = Echo()
    async with running(spec("tcp"), handler=echo) as listeners:
        reader, writer = await asyncio.open_connection(HOST, listeners.port("tcp"))
        writer.write(b"\x10\x0chello")
        assert await reader.readexactly(7) == b"\x10\x0chello"
        t = await echo.accepted.get()
        assert t.kind == "tcp"
        assert t.peer == "{}:{}".format(*writer.get_extra_info("sockname"))
        assert t.extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert t.buffered() == 0
        assert listeners.connections == {t}
        writer.close()
        assert await echo.ended.get() is t
        await writer.wait_closed()


PAYLOAD = os.urandom(4 << 20)  # more than the socket buffers take at once


async def send_and_return(t: Transport) -> None:
    t.write(PAYLOAD)  # the listener closes the connection when the handler returns


@pytest.mark.parametrize("kind", ["tcp", "tls"])
async def test_close_flushes_what_is_buffered_then_closes(kind: ListenerKind, certs: DevCerts) -> None:
    async with running(spec(kind, certs if kind == "tls" else None), handler=send_and_return) as listeners:
        tls: dict[str, Any] = {"ssl": client_tls(certs.ca_cert), "server_hostname": "localhost"} if kind == "tls" else {}
        reader, writer = await asyncio.open_connection(HOST, listeners.port(kind), **tls)
        assert await reader.read() == PAYLOAD  # everything, then EOF
        writer.close()


async def test_ws_close_flushes_what_is_buffered_then_closes() -> None:
    async with ws_session(spec("ws"), handler=send_and_return, max_size=None) as ws:
        assert await messages_until_closed(ws) == [PAYLOAD]
        assert ws.close_code == 1000


async def test_close_aborts_a_client_that_does_not_read_after_the_timeout() -> None:
    closed = asyncio.get_running_loop().create_future()

    async def flood(t: Transport) -> None:
        t.write(b"x" * (32 << 20))
        assert t.buffered() > 0
        await t.close(timeout=0.05)
        t.write(b"dropped")  # never raises once closed
        closed.set_result(t.buffered())

    async with running(spec("tcp"), handler=flood) as listeners:
        reader, writer = await asyncio.open_connection(HOST, listeners.port("tcp"), limit=1024)
        async with asyncio.timeout(1):
            await asyncio.shield(closed)  # returned although the client reads nothing
        assert await closed == 0  # what was buffered is dropped
        received = 0
        with suppress(ConnectionResetError):
            while data := await reader.read(1 << 20):
                received += len(data)
        assert received < 32 << 20  # what the kernel had taken, not the 32 MiB
        writer.close()


async def test_a_failing_handler_is_logged_on_one_line_and_the_server_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    async def boom(t: Transport) -> None:
        nonlocal calls
        calls += 1
        assert await t.read(10) == b"hi"
        raise RuntimeError("bad\npacket")

    caplog.set_level(logging.INFO, logger="broker.listeners")
    async with running(spec("tcp"), handler=boom) as listeners:
        for _ in range(2):
            reader, writer = await asyncio.open_connection(HOST, listeners.port("tcp"))
            writer.write(b"hi")
            assert await reader.read(10) == b""  # closed by the listener
            writer.close()
    assert calls == 2
    failures = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(failures) == 2
    assert all("handler failed: RuntimeError: bad packet" in r.getMessage() for r in failures)
    assert all("\n" not in r.getMessage() and r.exc_info is None for r in failures)


async def test_stop_accepting_keeps_live_connections() -> None:
    async with running(spec("tcp")) as listeners:
        port = listeners.port("tcp")
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(b"a")
        assert await reader.readexactly(1) == b"a"
        listeners.stop_accepting()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(HOST, port)
        writer.write(b"b")
        assert await reader.readexactly(1) == b"b"
        writer.close()


async def test_close_frees_the_ports() -> None:
    listeners = Listeners([spec("tcp"), spec("ws")], Echo())
    await listeners.start()
    ports = (listeners.port("tcp"), listeners.port("ws"))
    await listeners.close()
    for port in ports:
        with socket.create_server((HOST, port)):
            pass


# -- TLS ----------------------------------------------------------------------------------------


async def test_tls_echo_with_a_client_trusting_the_dev_ca(certs: DevCerts) -> None:
    echo = Echo()
    async with running(spec("tls", certs), handler=echo) as listeners:
        reader, writer = await asyncio.open_connection(HOST, listeners.port("tls"), ssl=client_tls(certs.ca_cert),
                                                       server_hostname="localhost")
        writer.write(b"secret")
        assert await reader.readexactly(6) == b"secret"
        assert writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
        t = await echo.accepted.get()
        assert t.kind == "tls" and t.extra_info("ssl_object") is not None
        writer.close()


async def test_tls_refuses_a_client_with_another_ca_and_leaks_nothing(
        certs: DevCerts, other_certs: DevCerts, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    echo = Echo()
    async with running(spec("tls", certs), handler=echo) as listeners:
        port = listeners.port("tls")
        before = open_fds()
        for _ in range(5):
            with pytest.raises(ssl.SSLCertVerificationError):
                await asyncio.open_connection(HOST, port, ssl=client_tls(other_certs.ca_cert),
                                              server_hostname="localhost")
        # The good client afterwards: the failures neither reached the handler nor broke the server.
        reader, writer = await asyncio.open_connection(HOST, port, ssl=client_tls(certs.ca_cert),
                                                       server_hostname="localhost")
        writer.write(b"ok")
        assert await reader.readexactly(2) == b"ok"
        writer.close()
        await echo.ended.get()
        await writer.wait_closed()
        assert echo.accepted.qsize() == 1
        assert open_fds() <= before
    assert no_warnings(caplog) == []


def tls_1_1_only(ctx: ssl.SSLContext) -> ssl.SSLContext:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 would not even offer TLS 1.1 otherwise
    return ctx


async def test_tls_refuses_a_tls_1_1_client(certs: DevCerts, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = tls_1_1_only(client_tls(certs.ca_cert))
    # Control: this client does speak TLS 1.1 with a server that allows it...
    lax = tls_1_1_only(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    lax.load_cert_chain(certs.server_cert, certs.server_key)
    lax_server = await asyncio.start_server(lambda r, w: w.close(), HOST, 0, ssl=lax)
    async with lax_server:
        _, writer = await asyncio.open_connection(HOST, lax_server.sockets[0].getsockname()[1], ssl=client,
                                                  server_hostname="localhost")
        assert writer.get_extra_info("ssl_object").version() == "TLSv1.1"
        writer.close()
    # ... and the listener refuses it (asyncio drops the connection without an alert).
    echo = Echo()
    async with running(spec("tls", certs), handler=echo) as listeners:
        with pytest.raises(OSError) as err:
            await asyncio.open_connection(HOST, listeners.port("tls"), ssl=client, server_hostname="localhost")
        assert not isinstance(err.value, ssl.SSLCertVerificationError)
        assert echo.accepted.empty()
    assert no_warnings(caplog) == []


async def test_plain_tcp_on_the_tls_port_is_dropped_quietly(certs: DevCerts,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    echo = Echo()
    async with running(spec("tls", certs), handler=echo) as listeners:
        before = open_fds()
        for _ in range(5):
            reader, writer = await asyncio.open_connection(HOST, listeners.port("tls"))
            writer.write(b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04test")  # an MQTT CONNECT
            with suppress(ConnectionResetError):
                while await reader.read(1024):  # an alert perhaps, then the end
                    pass
            writer.close()
            with suppress(ConnectionResetError):
                await writer.wait_closed()
        assert open_fds() <= before
        assert echo.accepted.empty()
    assert no_warnings(caplog) == []


async def test_reload_tls_serves_the_new_cert_to_new_handshakes_only(certs: DevCerts, other_certs: DevCerts,
                                                                     tmp_path: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    cert, key = live / "server.crt", live / "server.key"
    shutil.copy(certs.server_cert, cert)
    shutil.copy(certs.server_key, key)
    async with running(ListenerSpec("tls", HOST, 0, "mqtt.tls_port", cert=cert, key=key)) as listeners:
        port = listeners.port("tls")
        old_r, old_w = await asyncio.open_connection(HOST, port, ssl=client_tls(certs.ca_cert),
                                                     server_hostname="localhost")
        shutil.copy(other_certs.server_cert, cert)
        shutil.copy(other_certs.server_key, key)
        listeners.reload_tls()

        new_r, new_w = await asyncio.open_connection(HOST, port, ssl=client_tls(other_certs.ca_cert),
                                                     server_hostname="localhost")
        new_w.write(b"new")
        assert await new_r.readexactly(3) == b"new"
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection(HOST, port, ssl=client_tls(certs.ca_cert), server_hostname="localhost")
        old_w.write(b"old")  # the connection made before the reload still works
        assert await old_r.readexactly(3) == b"old"

        # Bad files: an error naming the file, and the current certificate stays in service.
        key.write_text("not a key\n")
        with pytest.raises(ListenerError, match="server.key"):
            listeners.reload_tls()
        r, w = await asyncio.open_connection(HOST, port, ssl=client_tls(other_certs.ca_cert),
                                             server_hostname="localhost")
        w.write(b"still")
        assert await r.readexactly(5) == b"still"
        for writer in (old_w, new_w, w):
            writer.close()


@pytest.mark.parametrize(("damage", "needle"), [
    ("missing cert", "cannot read the TLS certificate {cert}: no such file or directory (set mqtt.tls_cert"),
    ("garbage cert", "cannot use the TLS certificate {cert}: not a PEM certificate"),
    ("missing key", "cannot read the TLS key {key}: no such file or directory (set mqtt.tls_key"),
    ("garbage key", "cannot use the TLS key {key}: not a PEM private key (set mqtt.tls_key / IMGATE_MQTT__TLS_KEY)"),
    ("other key", "cannot use the TLS key {key}: it does not belong to the certificate {cert}"),
    ("encrypted key", "cannot use the TLS key {key}: it is passphrase-protected"),
])
async def test_bad_certificate_files_name_the_file_and_the_setting(
        certs: DevCerts, other_certs: DevCerts, tmp_path: Path, damage: str, needle: str) -> None:
    from cryptography.hazmat.primitives import serialization

    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    shutil.copy(certs.server_cert, cert)
    shutil.copy(certs.server_key, key)
    if damage == "missing cert":
        cert.unlink()
    elif damage == "garbage cert":
        cert.write_text("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    elif damage == "missing key":
        key.unlink()
    elif damage == "garbage key":
        shutil.copy(certs.server_cert, key)
    elif damage == "other key":
        shutil.copy(other_certs.server_key, key)
    else:
        pem = serialization.load_pem_private_key(key.read_bytes(), None)
        key.write_bytes(pem.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.BestAvailableEncryption(b"pass phrase")))
    free = socket.create_server((HOST, 0))
    tcp_port = free.getsockname()[1]
    free.close()
    listeners = Listeners([spec("tcp", port=tcp_port), ListenerSpec("wss", HOST, 0, "mqtt.wss_port", cert=cert,
                                                                   key=key)], Echo())
    with pytest.raises(ListenerError) as err:
        await listeners.start()
    text = str(err.value)
    assert needle.format(cert=cert, key=key) in text and "\n" not in text
    with socket.create_server((HOST, tcp_port)):  # nothing was left bound
        pass


# -- bind errors --------------------------------------------------------------------------------


async def test_a_port_in_use_is_one_line_naming_host_port_and_setting(certs: DevCerts) -> None:
    with socket.create_server((HOST, 0)) as taken:
        port = taken.getsockname()[1]
        free = socket.create_server((HOST, 0))
        tcp_port = free.getsockname()[1]
        free.close()
        listeners = Listeners([spec("tcp", port=tcp_port), spec("tls", certs, port=port)], Echo())
        with pytest.raises(ListenerError) as err:
            await listeners.start()
    assert str(err.value) == (f"cannot listen for MQTT over TLS on 127.0.0.1:{port}: address already in use "
                              f"(set mqtt.tls_port / IMGATE_MQTT__TLS_PORT to a free port)")
    with socket.create_server((HOST, tcp_port)):  # the listener bound before the failure was closed
        pass


async def test_an_address_not_on_this_machine_names_the_host_setting() -> None:
    listeners = Listeners([ListenerSpec("ws", "192.0.2.1", 0, "mqtt.ws_port")], Echo())
    with pytest.raises(ListenerError) as err:
        await listeners.start()
    assert str(err.value).startswith("cannot listen for MQTT over WebSocket on 192.0.2.1:0: ")
    assert "mqtt.host / IMGATE_MQTT__HOST" in str(err.value)


# -- WebSocket ----------------------------------------------------------------------------------


async def messages_until_closed(ws: ClientConnection) -> list[bytes | str]:
    out: list[bytes | str] = []
    with suppress(ConnectionClosed):
        while True:
            out.append(await ws.recv())
    return out


async def test_ws_negotiates_mqtt_and_round_trips_bytes() -> None:
    echo = Echo()
    async with running(spec("ws"), handler=echo) as listeners:
        url = f"ws://{HOST}:{listeners.port('ws')}/mqtt"
        async with connect(url, subprotocols=MQTT, compression=None) as ws:
            assert ws.subprotocol == "mqtt"
            await ws.send(b"\x10\x02\x00\x00")
            assert await ws.recv() == b"\x10\x02\x00\x00"
            t = await echo.accepted.get()
            assert t.kind == "ws" and t.peer == "{}:{}".format(*ws.local_address[:2])


async def test_ws_wrong_path_is_404_and_no_subprotocol_is_400() -> None:
    echo = Echo()
    async with running(spec("ws"), handler=echo) as listeners:
        port = listeners.port("ws")
        with pytest.raises(InvalidStatus) as err:
            await connect(f"ws://{HOST}:{port}/other", subprotocols=MQTT)
        assert err.value.response.status_code == 404
        with pytest.raises(InvalidStatus) as err:
            await connect(f"ws://{HOST}:{port}/mqtt")
        assert err.value.response.status_code == 400
        async with connect(f"ws://{HOST}:{port}/mqtt?client=x", subprotocols=MQTT):
            pass  # a query string is fine
        assert echo.accepted.qsize() == 1


async def test_ws_is_a_byte_stream_across_messages() -> None:
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def reader(t: Transport) -> None:
        while data := await t.read(3):
            got.put_nowait(data)

    async with ws_session(spec("ws"), handler=reader) as ws:
        await ws.send(b"abcdefg")  # one message, read 3 bytes at a time
        assert [await got.get() for _ in range(3)] == [b"abc", b"def", b"g"]
        await ws.send(b"")  # an empty message is not the end of the stream
        await ws.send(b"hi")
        assert await got.get() == b"hi"


async def test_ws_writes_of_one_loop_turn_are_one_message() -> None:
    async def chatty(t: Transport) -> None:
        for part in (b"\x20\x02", b"\x00", b"\x00", b"\xd0\x00"):  # four writes, one turn
            t.write(part)
        assert t.buffered() == 6
        assert await t.read(10) == b"next"  # a later turn: a new message
        t.write(b"\x90\x03")
        t.write(b"\x00\x01\x00")

    async with ws_session(spec("ws"), handler=chatty) as ws:
        first = await ws.recv()
        await ws.send(b"next")
        rest = await messages_until_closed(ws)
        assert ws.close_code == 1000
    assert [first, *rest] == [b"\x20\x02\x00\x00\xd0\x00", b"\x90\x03\x00\x01\x00"]


async def test_ws_buffered_counts_what_a_client_that_does_not_read_leaves_behind() -> None:
    report: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()

    async def flood(t: Transport) -> None:
        t.write(b"x" * (32 << 20))
        before_flush = t.buffered()
        after = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(after.set_result, None)  # runs after the flush scheduled above
        await after
        report.set_result((before_flush, t.buffered()))
        t.abort()

    async with ws_session(spec("ws"), handler=flood):
        before_flush, after_flush = await report
    assert before_flush == 32 << 20
    assert 8 << 20 < after_flush <= 32 << 20 + 16  # framed and handed to asyncio, not taken by the kernel


async def test_ws_text_frame_closes_the_connection() -> None:
    seen: asyncio.Queue[bytes] = asyncio.Queue()

    async def reader(t: Transport) -> None:
        seen.put_nowait(await t.read(100))
        t.write(b"after close")  # dropped, no error

    async with ws_session(spec("ws"), handler=reader) as ws:
        await ws.send("CONNECT")
        assert await messages_until_closed(ws) == []
        assert ws.close_code == 1003
    assert await seen.get() == b""


async def test_ws_message_over_max_message_closes_with_1009() -> None:
    async with ws_session(spec("ws", max_message=4096), max_size=None) as ws:
        await ws.send(b"x" * 4096)
        assert await ws.recv() == b"x" * 4096
        await ws.send(b"x" * 4097)
        assert await messages_until_closed(ws) == []
        assert ws.close_code == 1009


async def test_wss_echo_with_a_client_trusting_the_dev_ca(certs: DevCerts, other_certs: DevCerts,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    echo = Echo()
    async with running(spec("wss", certs), spec("tls", certs), handler=echo) as listeners:
        url = f"wss://localhost:{listeners.port('wss')}/mqtt"
        async with connect(url, subprotocols=MQTT, ssl=client_tls(certs.ca_cert)) as ws:
            assert ws.subprotocol == "mqtt"
            await ws.send(b"\xc0\x00")
            assert await ws.recv() == b"\xc0\x00"
            t = await echo.accepted.get()
            assert t.kind == "wss" and t.extra_info("ssl_object") is not None
        with pytest.raises(ssl.SSLCertVerificationError):
            await connect(url, subprotocols=MQTT, ssl=client_tls(other_certs.ca_cert))
        # Plain HTTP and garbage on the WebSocket port: refused, quietly.
        for data in (b"GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01garbage"):
            reader, writer = await asyncio.open_connection(HOST, listeners.port("wss"))
            writer.write(data)
            writer.write_eof()
            with suppress(ConnectionResetError):
                await reader.read()
            writer.close()
    assert no_warnings(caplog) == []


async def test_ws_garbage_handshake_is_not_an_error_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    echo = Echo()
    async with running(spec("ws"), handler=echo) as listeners:
        for data in (b"\x16\x03\x01\x00\x05hello", b"GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n",
                     b"GET /mqtt HTTP/1.1\r\n" + b"X: " + b"y" * 10000 + b"\r\n\r\n"):
            reader, writer = await asyncio.open_connection(HOST, listeners.port("ws"))
            writer.write(data)
            writer.write_eof()
            with suppress(ConnectionResetError):
                answer = await reader.read()
                assert answer == b"" or answer.startswith(b"HTTP/1.1 4")
            writer.close()
        assert echo.accepted.empty()
    assert no_warnings(caplog) == []


async def test_ws_abort_and_writes_after_it() -> None:
    done = asyncio.get_running_loop().create_future()

    async def abort_then_write(t: Transport) -> None:
        t.write(b"lost")
        t.abort()  # before the flush: nothing goes out
        t.write(b"also lost")
        done.set_result((await t.read(10), t.buffered()))

    async with ws_session(spec("ws"), handler=abort_then_write) as ws:
        assert await messages_until_closed(ws) == []
        assert ws.close_code == 1006  # no close frame: aborted
    assert await done == (b"", 0)


def test_specs_are_checked() -> None:
    with pytest.raises(ValueError, match="mqtt.tls_cert and mqtt.tls_key"):
        ListenerSpec("tls", HOST, 8883, "mqtt.tls_port")
    with pytest.raises(ValueError, match="0-65535"):
        ListenerSpec("tcp", HOST, 70000, "mqtt.port")
    with pytest.raises(ValueError, match="ws_path"):
        ListenerSpec("ws", HOST, 0, "mqtt.ws_port", ws_path="mqtt")
    with pytest.raises(ValueError, match="one listener per kind"):
        Listeners([ListenerSpec("tcp", HOST, 0, "mqtt.port")] * 2, Echo())


# The settings behind the listeners (config/settings.py, MqttSettings); here until the app's
# wiring has tests of its own.
@pytest.mark.parametrize(("mqtt", "needle"), [
    ({"tls_port": 8883, "tls_cert": "c"}, "mqtt.tls_port needs mqtt.tls_cert and mqtt.tls_key (missing: mqtt.tls_key)"),
    ({"wss_port": 8884}, "mqtt.wss_port needs mqtt.tls_cert and mqtt.tls_key"),
    ({"ws_port": 1883}, "mqtt.port and mqtt.ws_port are both 1883"),
    ({"ws_path": "mqtt"}, "mqtt.ws_path (env IMGATE_MQTT__WS_PATH): must be a URL path starting with '/'"),
    ({"tls_port": 65536, "tls_cert": "c", "tls_key": "k"}, "mqtt.tls_port (env IMGATE_MQTT__TLS_PORT)"),
])
def test_listener_settings_are_checked(mqtt: dict[str, Any], needle: str) -> None:
    from config.settings import ConfigError, load_settings

    with pytest.raises(ConfigError) as err:
        load_settings(None, {"mqtt": mqtt})
    assert needle in str(err.value)


def test_listener_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from config.settings import load_settings

    assert load_settings(None).mqtt.tls_port is None  # off by default
    for key, value in {"TLS_PORT": "0", "WSS_PORT": "0", "WS_PORT": "0", "TLS_CERT": "c.pem", "TLS_KEY": "k.pem",
                       "WS_PATH": "/ws/mqtt"}.items():
        monkeypatch.setenv(f"IMGATE_MQTT__{key}", value)
    mqtt = load_settings(None).mqtt
    assert (mqtt.tls_port, mqtt.wss_port, mqtt.ws_port, mqtt.ws_path) == (0, 0, 0, "/ws/mqtt")
    assert (mqtt.tls_cert, mqtt.tls_key) == (Path("c.pem"), Path("k.pem"))
