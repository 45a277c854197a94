"""Format conversion (protocol "Encodings"): JSON, CBOR and MessagePack per device, with real
MQTT 3.1.1 and 5 clients against the embedded broker and its in-process bridge."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiomqtt
import cbor2
import msgpack  # type: ignore[import-untyped]
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from config.settings import Settings
from imgate.app import App
from tests.conftest import Users
from tests.helpers import Device, Received, connect, named, on, tweak

V5 = aiomqtt.ProtocolVersion.V5
CBOR, MSGPACK, JSON = "application/cbor", "application/msgpack", "application/json"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return tweak(settings, "search", interval_s=0.05)


def from_cbor(data: bytes) -> Any:
    return named(cbor2.loads(data))


def from_msgpack(data: bytes) -> Any:
    return named(msgpack.unpackb(data, strict_map_key=False))


def encode(encoding: str, body: Any) -> bytes:
    if encoding == "cbor":
        return cbor2.dumps(body)
    if encoding == "msgpack":
        return bytes(msgpack.packb(body))
    return json.dumps(body).encode()


def publish_props(content_type: str) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = content_type
    return props


def connect_props(encoding: str) -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.UserProperty = [("encoding", encoding)]
    return props


async def send(dev: Device, encoding: str, body: dict[str, Any], *, content_type: str | None = None) -> None:
    await dev.client.publish(f"im/{dev.uid}/out/msg", encode(encoding, body), qos=1,
                             properties=publish_props(content_type) if content_type else None)


async def rpc(dev: Device, encoding: str, req_id: int, method: str, params: dict[str, Any]) -> Received:
    await dev.client.publish(f"im/{dev.uid}/out/rpc", encode(encoding, {"jsonrpc": "2.0", "id": req_id,
                                                                          "method": method, "params": params}), qos=1)
    return (await dev.inbox.wait_for(on("/in/rpc", id=req_id)))[0]


def ack_of(dev: Device, cid: str | None) -> Any:
    async def wait() -> Received:
        return (await dev.inbox.wait_for(on("/in/ack", cid=cid)))[-1]
    return wait()


@asynccontextmanager
async def v5(app: App, users: Users, uid: str, device: str, *, token_encoding: str = "json",
             asks: str | None = None, **kwargs: Any) -> AsyncIterator[Device]:
    token = await users.token(uid, device, encoding=token_encoding)
    async with connect(app.mqtt_port, uid, device, token, protocol=V5,
                       properties=connect_props(asks) if asks else None, **kwargs) as dev:
        yield dev


async def test_a_cbor_device_and_a_json_device_talk(app: App, users: Users) -> None:
    """MQTT 3.1.1: the token chooses. Alice's board reads and writes CBOR; Bob and Alice's own
    phone stay on JSON."""
    await users.add("alice", "bob")
    port = app.mqtt_port
    async with connect(port, "alice", "board", await users.token("alice", "board", encoding="cbor")) as board, \
               connect(port, "alice", "phone", await users.token("alice", "phone")) as phone, \
               connect(port, "bob", "phone", await users.token("bob", "phone")) as bob:
        await send(board, "cbor", {"cid": "c1", "to": "bob", "type": "text", "text": "hello from a board"})
        ack_r = await ack_of(board, "c1")
        assert ack_r.payload[0] >> 5 == 5  # a CBOR map (major type 5)
        ack = from_cbor(ack_r.payload)
        assert set(ack) == {"cid", "id", "conv", "seq", "ts"}
        assert (ack["conv"], ack["seq"]) == ("d:alice:bob", 1)
        assert isinstance(ack["seq"], int) and isinstance(ack["ts"], int) and len(ack["id"]) == 26

        expected = {"id": ack["id"], "conv": "d:alice:bob", "seq": 1, "from": "alice", "cid": "c1", "type": "text",
                    "text": "hello from a board", "ts": ack["ts"]}
        assert (await bob.inbox.wait_for(on("/in/msg", cid="c1")))[0].json == expected
        assert (await phone.inbox.wait_for(on("/in/msg", cid="c1")))[0].json == expected  # its own phone: JSON
        assert from_cbor((await board.inbox.wait_for(on("/in/msg", cid="c1")))[0].payload) == expected

        await bob.send({"cid": "b1", "to": "alice", "type": "text", "text": "hi board", "mentions": ["alice"]})
        got = await board.inbox.wait_for(on("/in/msg", cid="b1"))
        body = from_cbor(got[0].payload)
        assert (body["from"], body["text"], body["seq"], body["mentions"]) == ("bob", "hi board", 2, ["alice"])
        assert (await phone.inbox.wait_for(on("/in/msg", cid="b1")))[0].json["text"] == "hi board"
        # Everything the board got is CBOR; everything the phone got is JSON.
        assert all(from_cbor(r.payload) is not None and r.payload[0] >> 5 == 5
                   for r in board.inbox.items if r.topic.startswith("im/"))
        assert all(isinstance(r.json, dict) for r in phone.inbox.items if r.topic.startswith("im/"))


async def test_an_mqtt5_messagepack_device_labelled_by_content_type(app: App, users: Users) -> None:
    """MQTT 5: the CONNECT's User Property overrides the token (json here); every PUBLISH the
    server sends carries the Content Type, application/json included."""
    await users.add("alice", "bob")
    async with v5(app, users, "alice", "watch", asks="msgpack") as watch, \
               v5(app, users, "bob", "phone") as bob:
        await send(watch, "msgpack", {"cid": "m1", "to": "bob", "type": "text", "text": "tick"})
        ack_r = await ack_of(watch, "m1")
        assert ack_r.content_type == MSGPACK
        ack = from_msgpack(ack_r.payload)
        assert (ack["cid"], ack["seq"]) == ("m1", 1)
        got = (await bob.inbox.wait_for(on("/in/msg", cid="m1")))[0]
        assert got.content_type == JSON and got.json["text"] == "tick"

        await bob.send({"cid": "b1", "to": "alice", "type": "custom", "data": {"n": [1, 2.5, None, True], "s": "é"}})
        got = (await watch.inbox.wait_for(on("/in/msg", cid="b1")))[0]
        assert got.content_type == MSGPACK
        assert from_msgpack(got.payload)["data"] == {"n": [1, 2.5, None, True], "s": "é"}
        assert all(r.content_type == MSGPACK for r in watch.inbox.items if r.topic.startswith("im/"))


async def test_a_content_type_overrides_the_device_default_for_one_packet(app: App, users: Users) -> None:
    await users.add("alice", "bob")
    async with v5(app, users, "alice", "board", token_encoding="cbor") as board, \
               connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        # JSON, labelled: decoded as JSON, answered in the device's CBOR.
        await send(board, "json", {"cid": "j1", "to": "bob", "type": "text", "text": "as json"}, content_type=JSON)
        ack = await ack_of(board, "j1")
        assert ack.content_type == CBOR and from_cbor(ack.payload)["seq"] == 1
        # MessagePack, labelled.
        await send(board, "msgpack", {"cid": "p1", "to": "bob", "type": "text", "text": "as msgpack"},
                   content_type=MSGPACK + "; charset=binary")
        assert from_cbor((await ack_of(board, "p1")).payload)["seq"] == 2
        # Unlabelled: the device's own encoding (CBOR).
        await send(board, "cbor", {"cid": "c1", "to": "bob", "type": "text", "text": "as cbor"})
        assert from_cbor((await ack_of(board, "c1")).payload)["seq"] == 3
        texts = [r.json["text"] for r in await bob.inbox.wait_for(on("/in/msg", **{"from": "alice"}), count=3)]
        assert texts == ["as json", "as msgpack", "as cbor"]
        # A Content Type imgate has no encoding for is refused, in the device's encoding.
        await send(board, "json", {"cid": "x1", "to": "bob", "type": "text", "text": "?"}, content_type="text/xml")
        err = from_cbor((await ack_of(board, None)).payload)
        assert err["error"]["code"] == "bad_request" and "Content Type" in err["error"]["message"]


@pytest.mark.parametrize(("encoding", "garbage", "why"), [
    ("cbor", b"\xa2\x63cid", "not valid CBOR"),  # truncated
    ("cbor", b"\xff\xff", "not valid CBOR"),
    ("cbor", cbor2.dumps({"cid": "c", "to": "bob", "type": "text", "text": "x"}) + b"\x00", "extra data"),
    ("cbor", cbor2.dumps(["not", "a", "map"]), "must be a CBOR map"),
    ("cbor", cbor2.dumps({"cid": "c", "to": "bob", "type": "custom", "data": {"blob": b"\x00\x01"}}), "byte string"),
    ("cbor", cbor2.dumps({"cid": "c", "to": "bob", "type": "custom", "data": {"t": cbor2.CBORTag(1234, 5)}}),
     "tag 1234"),
    ("cbor", cbor2.dumps({999: "x"}), "999 is not a key of the protocol"),
    ("cbor", cbor2.dumps({1.5: "x"}), "key that is not text"),
    ("cbor", cbor2.dumps({"cid": "c", 5: "c"}), "'cid' given twice"),
    ("cbor", cbor2.dumps({"cid": "c", "to": "bob", "type": "custom", "data": {"x": float("nan")}}), "NaN"),
    ("cbor", b"\x81" * 200 + b"\x00", "not valid CBOR"),  # nesting
    ("cbor", cbor2.dumps({"cid": "c", "to": "bob", "type": "custom", "data": {"u": cbor2.undefined}}),
     "simple value"),
    ("cbor", bytes.fromhex("a4 05 61 63 09 63 62 6f 62 06 64 74 65 78 74 07 d8 1c 61 78"), "tag 28"),  # shareable
    ("cbor", bytes.fromhex("d9 01 00 a4 05 61 63 09 63 62 6f 62 06 64 74 65 78 74 07 61 78"), "tag 256"),  # stringref
    ("cbor", bytes.fromhex("a2 05 61 63 05 61 64"), "Duplicate map key"),  # {5: "c", 5: "d"}
    ("msgpack", b"\x82\xa3cid", "not valid MessagePack"),  # truncated
    ("msgpack", b"\xc1", "not valid MessagePack"),  # never used
    ("msgpack", bytes(msgpack.packb([1, 2])), "must be a MessagePack map"),
    ("msgpack", bytes(msgpack.packb({"cid": "c", "to": "bob", "type": "custom", "data": {"b": b"x"}})),
     "byte string"),
    ("msgpack", b"\xdd\xff\xff\xff\xff", "not valid MessagePack"),  # a 4-billion-item array, declared
])
async def test_malformed_payloads_get_a_clear_error_in_the_device_encoding(
        app: App, users: Users, encoding: str, garbage: bytes, why: str) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "board", await users.token("alice", "board", encoding=encoding)
                       ) as board, \
               connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        await board.client.publish("im/alice/out/msg", garbage, qos=1)
        err = (await board.inbox.wait_for(on("/in/ack")))[0].body
        assert err["error"]["code"] == "bad_request"
        assert why in err["error"]["message"], err
        # Nothing else is affected: the next message goes through.
        await send(board, encoding, {"cid": "ok", "to": "bob", "type": "text", "text": "fine"})
        assert (await bob.inbox.wait_for(on("/in/msg", cid="ok")))[0].json["text"] == "fine"
        assert (await ack_of(board, "ok")).body["seq"] == 1


async def test_self_described_cbor_is_cbor(app: App, users: Users) -> None:
    """RFC 8949 §3.4.6: a payload may start with the self-described CBOR tag (d9 d9 f7)."""
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "board", await users.token("alice", "board", encoding="cbor")
                       ) as board:
        await board.client.publish("im/alice/out/msg", b"\xd9\xd9\xf7" + cbor2.dumps(
            {5: "sd", 9: "bob", 6: "text", 7: "tagged"}), qos=1)
        assert from_cbor((await ack_of(board, "sd")).payload)["seq"] == 1


async def test_rpcs_are_answered_in_cbor(app: App, users: Users) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "board", await users.token("alice", "board", encoding="cbor")
                       ) as board, \
               connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        for n in range(3):
            await bob.send({"cid": f"b{n}", "to": "alice", "type": "text", "text": f"weather report {n}"})
        await board.inbox.wait_for(on("/in/msg", **{"from": "bob"}), count=3)

        page = from_cbor((await rpc(board, "cbor", 1, "history", {"conv": "d:alice:bob", "limit": 50})).payload)
        assert [m["text"] for m in page["result"]["messages"]] == [f"weather report {n}" for n in range(3)]
        convs = from_cbor((await rpc(board, "cbor", 2, "conversations", {})).payload)["result"]
        assert convs["items"][0]["conv"] == "d:alice:bob"

        async with asyncio.timeout(10):  # indexing follows the message queue: ask until it has caught up
            while True:
                found = from_cbor((await rpc(board, "cbor", 3, "search", {"q": "weather"})).payload)
                board.inbox.items.clear()
                if len(found["result"]["messages"]) == 3:
                    break

        # Errors too: an unknown method, and a parse error in the device's encoding.
        err = from_cbor((await rpc(board, "cbor", 4, "nope", {})).payload)
        assert err["error"]["code"] == -32601
        await board.client.publish("im/alice/out/rpc", b"\xa1", qos=1)
        err = from_cbor((await board.inbox.wait_for(on("/in/rpc", id=None)))[0].payload)
        assert err["error"]["code"] == -32700 and "not valid CBOR" in err["error"]["message"]


async def test_events_are_converted_and_presence_stays_json(app: App, users: Users) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "board", await users.token("alice", "board", encoding="cbor"),
                       subscribe=["im/alice/in/#", "presence/bob/+"]) as board, \
               v5(app, users, "bob", "phone") as bob:
        presence = (await board.inbox.wait_for(lambda r: r.topic == "presence/bob/phone"))[0]
        assert presence.json["online"] is True  # JSON for every reader
        await send(board, "cbor", {"cid": "c1", "to": "bob", "type": "text", "text": "x"})
        await bob.inbox.wait_for(on("/in/msg", cid="c1"))
        await bob.client.publish("im/bob/out/event", json.dumps({"type": "typing", "conv": "d:alice:bob"}))
        typing = (await board.inbox.wait_for(on("/in/event", type="typing")))[0]
        assert from_cbor(typing.payload) == {"type": "typing", "conv": "d:alice:bob", "from": "bob"}
        await bob.client.publish("im/bob/out/event", json.dumps({"type": "read", "conv": "d:alice:bob", "seq": 1}))
        read = from_cbor((await board.inbox.wait_for(on("/in/event", type="read")))[0].payload)
        assert (read["from"], read["seq"]) == ("bob", 1)
        # The board's own events, in CBOR.
        await board.client.publish("im/alice/out/event", cbor2.dumps({"type": "typing", "conv": "d:alice:bob"}))
        got = (await bob.inbox.wait_for(on("/in/event", type="typing")))[0]
        assert got.content_type == JSON and got.json["from"] == "alice"


async def test_a_session_resumed_with_another_encoding_gets_what_waited_in_it(app: App, users: Users) -> None:
    """Queued while away, converted when the device comes back reading another encoding."""
    await users.add("alice", "bob")
    token = await users.token("alice", "watch", encoding="cbor")
    expiry = Properties(PacketTypes.CONNECT)
    expiry.SessionExpiryInterval = 600
    async with connect(app.mqtt_port, "alice", "watch", token, protocol=V5, clean_session=False, properties=expiry):
        pass  # subscribed, then away
    async with connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        await bob.send_and_ack("b1", "alice", "while you were away")
    again = connect_props("msgpack")
    again.SessionExpiryInterval = 600
    async with connect(app.mqtt_port, "alice", "watch", token, protocol=V5, clean_session=False, properties=again,
                       subscribe=[]) as watch:
        got = (await watch.inbox.wait_for(on("/in/msg", cid="b1")))[0]
        assert got.content_type == MSGPACK and from_msgpack(got.payload)["text"] == "while you were away"


@pytest.mark.parametrize("asks", [["xml"], ["cbor", "msgpack"]])
async def test_an_unknown_encoding_is_refused_at_connect(app: App, users: Users, asks: list[str]) -> None:
    await users.add("alice")
    props = Properties(PacketTypes.CONNECT)
    props.UserProperty = [("encoding", e) for e in asks]
    with pytest.raises(aiomqtt.MqttCodeError) as refused:
        async with connect(app.mqtt_port, "alice", "phone", await users.token("alice"), protocol=V5, properties=props):
            pass
    assert refused.value.rc == 0x83  # implementation specific error, with a reason string


async def test_a_bad_token_encoding_is_refused(app: App) -> None:
    from services.errors import BadRequest

    assert app.services is not None
    await app.services.users.add_user("alice")
    with pytest.raises(BadRequest, match="encoding"):
        await app.services.users.issue_token("alice", "phone", encoding="xml")


async def test_encoding_trees_on_the_embedded_broker(settings: Settings) -> None:
    """mqtt.encoding_trees: a device subscribed and publishing under im-cbor/ reads and writes
    CBOR whatever its token says (the way cluster mode offers; the embedded broker has it too)."""
    async with App(tweak(settings, "mqtt", encoding_trees=["cbor"])) as app:
        assert app.services is not None
        await app.services.users.add_user("alice")
        await app.services.users.add_user("bob")
        token = (await app.services.users.issue_token("alice", "board")).token  # a JSON token
        async with connect(app.mqtt_port, "alice", "board", token, subscribe=["im-cbor/alice/in/#"]) as board, \
                   connect(app.mqtt_port, "bob", "phone", (await app.services.users.issue_token("bob", "phone")).token
                           ) as bob:
            await board.client.publish("im-cbor/alice/out/msg", cbor2.dumps({5: "c1", 9: "bob", 6: "text", 7: "x"}),
                                       qos=1)
            ack = (await board.inbox.wait_for(on("/in/ack", cid="c1")))[0]
            assert ack.topic == "im-cbor/alice/in/ack" and from_cbor(ack.payload)["seq"] == 1
            assert (await bob.inbox.wait_for(on("/in/msg", cid="c1")))[0].json["text"] == "x"
            await bob.send({"cid": "b1", "to": "alice", "type": "text", "text": "y"})
            got = (await board.inbox.wait_for(on("/in/msg", cid="b1")))[0]
            assert got.topic == "im-cbor/alice/in/msg" and from_cbor(got.payload)["text"] == "y"
            assert all(r.topic.startswith("im-cbor/") for r in board.inbox.items)
            # Another user's tree stays out of reach (the ACL knows the trees).
            granted = await board.client.subscribe("im-cbor/bob/in/#", qos=1)
            assert list(granted) == [0x80]  # refused


async def test_custom_data_nests_as_deep_in_every_encoding(app: App, users: Users) -> None:
    """Attack: a JSON sender's data nested hundreds of levels deep (JSON's decoder takes it) made
    the conversion for a CBOR reader recurse past Python's limit. Now every encoding allows a
    payload 32 levels deep, and what is allowed converts."""
    await users.add("alice", "bob")

    def nest(levels: int) -> Any:
        value: Any = 1
        for _ in range(levels):
            value = [value]
        return value

    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
               connect(app.mqtt_port, "bob", "board", await users.token("bob", "board", encoding="cbor")) as board:
        await alice.send({"cid": "deep", "to": "bob", "type": "custom", "data": {"x": nest(900)}})
        err = (await alice.inbox.wait_for(on("/in/ack", cid="deep")))[0].json["error"]
        assert err["code"] == "bad_request" and "32 levels" in err["message"]
        await alice.send({"cid": "ok", "to": "bob", "type": "custom", "data": {"x": nest(30)}})  # 32 with the maps
        got = from_cbor((await board.inbox.wait_for(on("/in/msg", cid="ok")))[0].payload)
        assert got["data"] == {"x": nest(30)}
        # The same depth in CBOR, from the board.
        await send(board, "cbor", {"cid": "b31", "to": "alice", "type": "custom", "data": {"x": nest(30)}})
        assert (await alice.inbox.wait_for(on("/in/msg", cid="b31")))[0].json["data"] == {"x": nest(30)}
        await send(board, "cbor", {"cid": "b32", "to": "alice", "type": "custom", "data": {"x": nest(31)}})
        assert "32 levels" in (await ack_of(board, None)).body["error"]["message"]


def test_every_cbor_tag_is_refused() -> None:
    """Attack: tags cbor2 decodes itself (28/29 shared values: 200 bytes that expand to 2^20
    objects; 25/256 string references: 15 KB that stored 20 MB; bignums, dates...) went past
    the tag hook. Every tag below 70,000, as the value of a key, is now refused."""
    from bridge.formats import FORMATS, FormatError

    cbor = FORMATS[CBOR]

    def tagged(tag: int) -> bytes:
        head = bytes([0xC0 | tag]) if tag < 24 else bytes([0xD8, tag]) if tag < 256 else \
            b"\xd9" + tag.to_bytes(2, "big") if tag < 65536 else b"\xda" + tag.to_bytes(4, "big")
        return b"\xa1\x05" + head

    accepted = []
    for tag in range(70_000):
        for item in (b"\x00", b"\x60", b"\x80"):
            try:
                cbor.decode(tagged(tag) + item)
            except FormatError:
                continue
            accepted.append(tag)
    assert accepted == []


@pytest.mark.parametrize(("payload", "why"), [
    (b'{"cid": "c", "to": "bob", "type": "custom", "data": {"x": NaN}}', "NaN"),
    (b'{"cid": "c", "to": "bob", "type": "custom", "data": {"x": -Infinity}}', "Infinity"),
    (b'{"cid": "c", "to": "bob", "type": "custom", "data": {"x": 1e400}}', "too large"),
    (b'{"cid": "c", "to": "bob", "type": "custom", "data": {"x": 1180591620717411303424}}', "64-bit"),
])
async def test_json_values_other_encodings_cannot_carry_are_refused(app: App, users: Users, payload: bytes,
                                                                    why: str) -> None:
    """Attack: a JSON sender's NaN or 2^70 reached CBOR readers as a tag-2 bignum or a NaN that
    their decoders refuse. JSON now refuses what the other encodings cannot carry."""
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        await alice.send(payload)
        err = (await alice.inbox.wait_for(on("/in/ack")))[0].json["error"]
        assert err["code"] == "bad_request" and why in err["message"], err


async def test_maps_keyed_by_user_ids_keep_text_keys(app: App, users: Users) -> None:
    """A uid that is also a key of the protocol ("name" is 42) stays a uid in CBOR."""
    await users.add("alice", "name")
    async with connect(app.mqtt_port, "alice", "board", await users.token("alice", "board", encoding="cbor")
                       ) as board:
        answer = cbor2.loads((await rpc(board, "cbor", 1, "presence", {"uids": ["name"]})).payload)
        assert "name" in answer[17]["presence"]  # 17: result; the uid as it is
        answer = cbor2.loads((await rpc(board, "cbor", 2, "profile.get", {"uids": ["name"]})).payload)
        assert "name" in answer[17]["profiles"]


def test_a_routed_body_lets_its_object_go_and_still_converts() -> None:
    """A queued message weighs its bytes, not a Python object of several times their size."""
    from bridge.formats import CBOR as CBOR_TYPE
    from bridge.formats import dumps

    body = dumps({"cid": "c", "text": "hello"})
    body.routed()
    assert "obj" not in body.__dict__
    assert cbor2.loads(body.convert(CBOR_TYPE) or b"") == {5: "c", 7: "hello"}
