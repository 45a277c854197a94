"""examples/c-device: the C device (libmosquitto + libcbor) built with its Makefile and run.

Against a real ``imgate run`` (started as the README walkthrough test does): alice's board logs in
with a CBOR token and talks with bob, whose laptop speaks JSON. Against a plain MQTT broker (amqtt,
no imgate behind it) the test plays the server's part byte by byte: what the device encodes, and
how it takes malformed, truncated, chunked and unexpected CBOR. In CBOR the protocol's map keys are
numbers (docs/protocol.md, "Encodings"): the device sends them so and reads numbers or names.

The example is built into a temporary directory (``make BUILD_DIR=``), so the checkout stays clean.
Debian's libmosquitto-dev and libcbor-dev come from ``make deps-system``."""

from __future__ import annotations

import asyncio
import json
import queue
import re
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from tests.test_readme_walkthrough import free_port, server  # noqa: F401 (server: the imgate run fixture)

ROOT = Path(__file__).resolve().parent.parent
WAIT = 30.0  # seconds: only reached when a test is failing
ULID = r"[0-9A-HJKMNP-TV-Z]{26}"


@pytest.fixture(scope="module")
def device_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build = tmp_path_factory.mktemp("c-device")
    out = subprocess.run(["make", "-C", str(ROOT / "examples" / "c-device"), f"BUILD_DIR={build}"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    return build / "imgate-device"


class Client:
    """A paho MQTT 3.1.1 client whose deliveries land in a queue; connecting and subscribing wait
    for the CONNACK and the SUBACK."""

    def __init__(self, port: int, client_id: str, username: str | None = None, password: str | None = None,
                 subscribe: str = "") -> None:
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.acks: queue.Queue[Any] = queue.Queue()
        self.mqtt = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
        if username is not None:
            self.mqtt.username_pw_set(username, password)
        self.mqtt.on_connect = lambda _c, _u, _f, rc, _p: self.acks.put(rc)
        self.mqtt.on_subscribe = lambda _c, _u, _m, codes, _p: self.acks.put(codes[0])
        self.mqtt.on_message = lambda _c, _u, m: self.messages.put(m)
        self.mqtt.connect("127.0.0.1", port, keepalive=30)
        self.mqtt.loop_start()
        assert self.acks.get(timeout=WAIT) == 0, "refused"
        if subscribe:
            self.mqtt.subscribe(subscribe, qos=1)
            assert self.acks.get(timeout=WAIT).value == 1, f"subscribing {subscribe} refused"

    def publish(self, topic: str, payload: bytes | str) -> None:
        self.mqtt.publish(topic, payload, qos=1).wait_for_publish(timeout=WAIT)

    def next(self, topic: str) -> paho.MQTTMessage:
        """The next delivery on ``topic`` (others are passed over)."""
        while True:
            m = self.messages.get(timeout=WAIT)
            if m.topic == topic:
                return m

    def close(self) -> None:
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


def finished(proc: subprocess.Popen[str]) -> tuple[int, list[str], str]:
    """The device's exit code, its stdout lines and its stderr."""
    try:
        out, err = proc.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the device did not exit: {out}{err}")
    return proc.returncode, out.splitlines(), err


# ---- against imgate run ------------------------------------------------------------------------

def test_board_talks_cbor_with_a_json_laptop(server: tuple[int, dict[str, str], str],  # noqa: F811
                                             device_bin: Path, tmp_path: Path) -> None:
    port, env, _ = server

    def imgate(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "imgate", *args], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, f"imgate {' '.join(args)}: {out.stderr}"
        return out.stdout.strip()

    imgate("user", "add", "alice")
    imgate("user", "add", "bob")
    board = imgate("token", "issue", "alice", "--device", "board", "--encoding", "cbor")
    laptop = imgate("token", "issue", "bob", "--device", "laptop")
    bob = Client(port, "bob:laptop", "bob", laptop, subscribe="im/bob/in/#")
    try:
        proc = subprocess.Popen([str(device_bin), "127.0.0.1", str(port), "alice", "board", board, "bob",
                                 "hello from C"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            got = json.loads(bob.next("im/bob/in/msg").payload)
            bob.publish("im/bob/out/msg", json.dumps({"cid": "b1", "to": "alice", "type": "text", "text": "hi board"}))
            code, lines, err = finished(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert json.loads(bob.next("im/bob/in/ack").payload)["seq"] == 2
    finally:
        bob.close()
    assert code == 0, err
    assert len(lines) == 2, lines
    ack = re.fullmatch(rf"ack id=({ULID}) seq=1 conv=d:alice:bob", lines[0])
    assert ack, lines
    assert lines[1] == "msg from=bob seq=2 text=hi board"
    # The server read every field of the board's numbered map ({5: cid, 9: "bob", 6: ..., 7: ...}):
    # bob's JSON copy is the whole message, under the names.
    assert re.fullmatch(rf"c-{proc.pid}-\d+", got.pop("cid")), got
    assert isinstance(got.pop("ts"), int), got
    assert got == {"id": ack.group(1), "conv": "d:alice:bob", "seq": 1, "from": "alice", "type": "text",
                   "text": "hello from C"}


def test_board_with_a_wrong_token_says_it_was_refused(server: tuple[int, dict[str, str], str],  # noqa: F811
                                                      device_bin: Path, tmp_path: Path) -> None:
    port, env, _ = server
    subprocess.run([sys.executable, "-m", "imgate", "user", "add", "alice"], cwd=tmp_path, env=env,
                   capture_output=True, timeout=60, check=True)
    proc = subprocess.run([str(device_bin), "127.0.0.1", str(port), "alice", "board", "imt_not-a-real-token",
                           "bob", "hi"], capture_output=True, text=True, timeout=WAIT, check=False)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "login refused" in proc.stderr and "bad user name or password" in proc.stderr.lower(), proc.stderr
    assert "CONNACK return code 4" in proc.stderr


# ---- against a plain broker: the test plays the server ----------------------------------------

# The protocol's map keys this test writes, by their CBOR numbers (docs/protocol.md, "Encodings").
KEYS = {"id": 1, "conv": 2, "seq": 3, "from": 4, "cid": 5, "type": 6, "text": 7, "ts": 8, "to": 9, "error": 11,
        "code": 12, "message": 13, "mentions": 18, "reply": 19, "attachment": 21, "data": 22, "excerpt": 27,
        "size": 40, "sha256": 41}


def numbered(value: Any) -> Any:
    """``value`` with the protocol's map keys as their numbers, as the server sends them; the keys
    inside a ``data`` value, and keys not in the table, stay text."""
    if isinstance(value, dict):
        return {KEYS.get(k, k): v if k == "data" else numbered(v) for k, v in value.items()}
    if isinstance(value, list):
        return [numbered(v) for v in value]
    return value


def test_the_key_numbers_are_the_servers() -> None:
    from bridge.formats import KEYS as SERVER_KEYS

    assert {k: SERVER_KEYS[k] for k in KEYS} == KEYS

def cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for info, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if n < 1 << 8 * struct.calcsize(fmt):
            return bytes([major << 5 | info]) + struct.pack(fmt, n)
    raise ValueError(n)


def cbor(value: Any) -> bytes:
    """CBOR (RFC 8949) of ``value``, definite lengths; this test also writes what a library would
    not (chunked strings, indefinite maps, trailing bytes) by hand."""
    if value is None:
        return b"\xf6"
    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return cbor_head(0, value) if value >= 0 else cbor_head(1, -1 - value)
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, bytes):
        return cbor_head(2, len(value)) + value
    if isinstance(value, str):
        return cbor_head(3, len(value.encode())) + value.encode()
    if isinstance(value, list):
        return cbor_head(4, len(value)) + b"".join(cbor(v) for v in value)
    if isinstance(value, dict):
        return cbor_head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(value)


def device_map(data: bytes | bytearray) -> dict[int, str]:
    """Decodes what the device sends: one definite-length map of unsigned integer keys and definite
    text strings, no more."""
    pos = 0

    def head(major: int) -> int:
        nonlocal pos
        first = data[pos]
        assert first >> 5 == major, f"byte {pos}: major type {first >> 5}, not {major}"
        info, pos = first & 31, pos + 1
        if info < 24:
            return info
        size = {24: 1, 25: 2, 26: 4, 27: 8}[info]  # 31 (indefinite) is a KeyError: not allowed
        pos += size
        return int.from_bytes(data[pos - size:pos], "big")

    def text() -> str:
        nonlocal pos
        n = head(3)
        pos += n
        assert pos <= len(data), "truncated"
        return data[pos - n:pos].decode()

    out = {}
    for _ in range(head(5)):
        key = head(0)
        out[key] = text()
    assert pos == len(data), "trailing bytes"
    return out


@pytest.fixture
def plain_broker() -> Iterator[int]:
    """A plain MQTT broker (amqtt, anonymous logins) on a free port, in a thread of its own."""
    from amqtt.broker import Broker

    port = free_port()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="plain-broker")
    thread.start()

    async def start() -> Broker:
        broker = Broker({"listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
                         "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}})
        await broker.start()
        return broker

    try:
        broker = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=WAIT)
        try:
            yield port
        finally:
            asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(timeout=WAIT)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=WAIT)
        loop.close()


@pytest.fixture
def fake_server(plain_broker: int) -> Iterator[Client]:
    """The server's side: reads alice's out/msg, writes her in/ topics."""
    client = Client(plain_broker, "fake-server", subscribe="im/alice/out/msg")
    yield client
    client.close()


def start_board(device_bin: Path, port: int, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(device_bin), *args, "127.0.0.1", str(port), "alice", "board", "imt_x", "bob",
                             "hello from C"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_board_encodes_its_message_and_survives_what_it_reads(device_bin: Path, plain_broker: int,
                                                              fake_server: Client) -> None:
    proc = start_board(device_bin, plain_broker)
    sent = fake_server.next("im/alice/out/msg").payload
    message = device_map(sent)
    cid = message[5]
    assert re.fullmatch(rf"c-{proc.pid}-\d+", cid)
    # {5 (cid): cid, 9 (to): "bob", 6 (type): "text", 7 (text): "hello from C"}, byte for byte as the
    # protocol's example of a send (a4 05 62 6b 31 09 63 62 6f 62 06 64 74 65 78 74 07 65 ...)
    assert sent == (bytes.fromhex("a4 05") + cbor(cid) + bytes.fromhex("09 63 62 6f 62 06 64 74 65 78 74 07")
                    + cbor("hello from C")), sent.hex(" ")

    def msg(payload: bytes) -> None:
        fake_server.publish("im/alice/in/msg", payload)

    def chunked(*parts: str) -> bytes:  # an indefinite-length text string
        return b"\x7f" + b"".join(cbor(p) for p in parts) + b"\xff"

    stored = {"id": "01M8EBYPMKG8081TNFKXCRQ5FX", "conv": "d:alice:bob", "seq": 1, "from": "alice", "cid": cid,
              "type": "text", "text": "hello from C", "ts": 1795778632339}
    bobs = numbered({**stored, "from": "bob"})
    junk = (b"", b"\xff", b"\x1c", cbor(numbered(stored))[:20], cbor([4, "bob"]), cbor("bob"),
            cbor(numbered({**stored, "from": 5})), cbor({**bobs, 3: -1}), cbor({**bobs, 3: "2"}),
            cbor({**bobs, 6: None}),
            cbor({"4": "bob", "3": 2, "6": "text"}),  # numbers as text are not names
            cbor({-5: "bob", 40: "bob", b"from": "bob", 4.0: "bob", 3: 2, 6: "text"}),  # no key 4 nor "from"
            cbor({**bobs, "from": "bob"}),  # "from" twice, by number and by name
            cbor({3: 2, 6: "text", 22: {"from": "bob"}}),  # inside data, "from" is not the protocol's
            cbor(bobs) + b"\x00",  # trailing bytes
            b"\x81" * 3000 + b"\x00",  # nested deeper than libcbor builds
            b"\xa1" + cbor("x") * 70000)  # over the size the device reads
    for payload in junk:
        msg(payload)
    msg(cbor(numbered(stored)))  # its own message: not printed
    fake_server.publish("im/alice/in/event", cbor(numbered({"type": "typing"})))
    fake_server.publish("im/alice/in/ack", cbor({5: "another-device", 1: "X", 2: "c", 3: 9}))
    fake_server.publish("im/alice/in/ack", cbor({5: cid, 1: 7, 2: "d:alice:bob", 3: 1}))  # an id not text
    # Names instead of numbers, in an indefinite-length map, with a chunked cid: read all the same.
    fake_server.publish("im/alice/in/ack", b"\xbf" + cbor("cid") + chunked(cid[:3], cid[3:]) + cbor("id")
                        + cbor(stored["id"]) + cbor("conv") + cbor("d:alice:bob") + cbor("seq") + cbor(1)
                        + cbor("ts") + cbor(1795778632339) + b"\xff")
    reply = {"id": "01M8EBYPMKG8081TNFKXCRQ5FY", "conv": "d:alice:bob", "seq": 2, "from": "bob", "cid": "b1",
             "type": "text", "text": "hi\nboard", "ts": 1795778632400, "mentions": ["alice"],
             "reply": {"id": stored["id"], "seq": 1, "from": "alice", "type": "text", "excerpt": "hello"},
             "attachment": {"size": 2**40, "sha256": b"\x00" * 32, "ratio": 1.5, "tags": [None, True, -3]},
             "data": {"from": "mallory", "seq": "x", "text": 5}}
    msg(cbor(numbered(reply)))
    code, lines, err = finished(proc)
    assert code == 0, err
    assert lines == [f"ack id={stored['id']} seq=1 conv=d:alice:bob", r"msg from=bob seq=2 text=hi\nboard"]
    assert err.count("ignoring") == len(junk) + 1, err  # and the ack whose id is a number
    assert "truncated" in err and "trailing bytes" in err and "nested too deeply" in err, err


@pytest.mark.parametrize("keys", ["numbers", "names"])
def test_board_prints_an_error_ack(device_bin: Path, plain_broker: int, fake_server: Client, keys: str) -> None:
    proc = start_board(device_bin, plain_broker)
    fake_server.next("im/alice/out/msg")
    error = {"cid": None, "error": {"code": "bad_request", "message": "payload is not a CBOR map"}}
    fake_server.publish("im/alice/in/ack", cbor(numbered(error) if keys == "numbers" else error))
    code, lines, err = finished(proc)
    assert (code, lines, err) == (1, [], "error bad_request: payload is not a CBOR map\n")


def test_board_times_out(device_bin: Path, plain_broker: int, fake_server: Client) -> None:
    proc = start_board(device_bin, plain_broker, "-t", "1")
    fake_server.next("im/alice/out/msg")  # and no answer
    code, lines, err = finished(proc)
    assert (code, lines) == (2, [])
    assert "timed out after 1 s waiting for the ack" in err, err


def test_board_explains_its_arguments(device_bin: Path) -> None:
    bad = subprocess.run([str(device_bin), "127.0.0.1", "1883"], capture_output=True, text=True, timeout=WAIT,
                         check=False)
    assert bad.returncode == 64 and bad.stderr.startswith("usage: imgate-device"), bad.stderr
    port = free_port()  # nothing listens there
    refused = subprocess.run([str(device_bin), "127.0.0.1", str(port), "alice", "board", "t", "bob", "hi"],
                             capture_output=True, text=True, timeout=WAIT, check=False)
    assert refused.returncode == 1
    assert f"cannot connect to 127.0.0.1:{port}: Connection refused" in refused.stderr
