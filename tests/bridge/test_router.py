"""The sans-IO router: every kind of bad input becomes a clear reply, never an exception."""

import json

import pytest

from bridge.router import Ignore, PresenceUpdate, Reply, Router, Rpc, Send, Topics

R = Router(Topics("im"), max_payload=1024, max_text=100)


def ack(cmd) -> dict:
    assert isinstance(cmd, Reply), cmd
    assert cmd.publish.topic == "im/alice/in/ack"
    return json.loads(cmd.publish.payload)


def rpc(cmd) -> dict:
    assert isinstance(cmd, Reply), cmd
    assert cmd.publish.topic == "im/alice/in/rpc"
    return json.loads(cmd.publish.payload)


def test_valid_send_is_a_send_command_laned_by_conversation() -> None:
    cmd = R.route("im/alice/out/msg", b'{"cid":"c1","to":"bob","type":"text","text":"hi","extra":1}')
    assert isinstance(cmd, Send)
    assert (cmd.command.sender, cmd.command.cid, cmd.command.to, cmd.command.text) == ("alice", "c1", "bob", "hi")
    assert cmd.lane_key == "d:alice:bob"


@pytest.mark.parametrize(("payload", "cid", "code", "needle"), [
    (b"not json", None, "bad_request", "not UTF-8 JSON"),
    (b"\xff\xfe", None, "bad_request", "not UTF-8 JSON"),
    (b"[1,2]", None, "bad_request", "JSON object"),
    (b'{"to":"bob","type":"text","text":"x"}', None, "bad_request", "cid"),
    (b'{"cid":7,"to":"bob","type":"text","text":"x"}', None, "bad_request", "cid"),
    (b'{"cid":"c","to":"bob","type":"text"}', "c", "bad_request", "needs a non-empty 'text'"),
    (b'{"cid":"c","to":"bob","type":"text","text":5}', "c", "bad_request", "text"),
    (b'{"cid":"c","to":"bob","type":"custom"}', "c", "bad_request", "needs a 'data' object"),
    (b'{"cid":"c","to":"bob","type":"video","text":"x"}', "c", "bad_request", "type"),
    (b'{"cid":"c","type":"text","text":"x"}', "c", "bad_request", "exactly one of 'to' or 'group'"),
    (b'{"cid":"c","to":"bob","group":"g","type":"text","text":"x"}', "c", "bad_request", "exactly one"),
    (b'{"cid":"c","to":"bad uid!","type":"text","text":"x"}', "c", "bad_request", "to"),
    (json.dumps({"cid": "c", "to": "bob", "type": "text", "text": "x" * 101}).encode(), "c", "too_large", "limit is 100"),
    (json.dumps({"cid": "c", "to": "bob", "type": "text", "text": "x" * 2000}).encode(), "c", "too_large", "limit is 1024"),
    (b"x" * 10_000, None, "too_large", "limit is 1024"),
])
def test_bad_sends_get_an_error_ack(payload: bytes, cid: str | None, code: str, needle: str) -> None:
    body = ack(R.route("im/alice/out/msg", payload))
    assert body["cid"] == cid
    assert body["error"]["code"] == code
    assert needle in body["error"]["message"]


def test_rpc_request_is_parsed_with_typed_params() -> None:
    cmd = R.route("im/alice/out/rpc", b'{"jsonrpc":"2.0","id":3,"method":"history","params":{"conv":"d:a:b","limit":5}}')
    assert isinstance(cmd, Rpc) and cmd.respond
    assert cmd.method == "history" and cmd.params.limit == 5 and cmd.id == 3


def test_rpc_without_id_is_a_notification() -> None:
    cmd = R.route("im/alice/out/rpc", b'{"jsonrpc":"2.0","method":"read","params":{"conv":"d:a:b","seq":1}}')
    assert isinstance(cmd, Rpc) and not cmd.respond


@pytest.mark.parametrize(("payload", "rid", "code"), [
    (b"{nope", None, -32700),
    (b"[]", None, -32600),
    (b'{"id":1,"method":"history"}', 1, -32600),
    (b'{"jsonrpc":"1.0","id":"a","method":"history"}', "a", -32600),
    (b'{"jsonrpc":"2.0","id":2,"method":"nope"}', 2, -32601),
    (b'{"jsonrpc":"2.0","id":3,"method":"history","params":{}}', 3, -32602),
    (b'{"jsonrpc":"2.0","id":4,"method":"history","params":{"conv":"x","limit":1000}}', 4, -32602),
    (b'{"jsonrpc":"2.0","id":5,"method":"read","params":{"conv":"x","seq":"7"}}', 5, -32602),
    (b'{"jsonrpc":"2.0","id":6,"method":"presence","params":{"uids":["ok","not ok"]}}', 6, -32602),
    (b'{"jsonrpc":"2.0","id":7,"method":"history","params":[1]}', 7, -32600),
])
def test_bad_rpc_gets_a_jsonrpc_error(payload: bytes, rid, code: int) -> None:
    body = rpc(R.route("im/alice/out/rpc", payload))
    assert body["jsonrpc"] == "2.0" and body["id"] == rid
    assert body["error"]["code"] == code and body["error"]["message"]


def test_presence_topics_become_updates_and_junk_is_ignored() -> None:
    cmd = R.route("presence/bob/phone", b'{"online":true,"platform":"ios","ts":5}')
    assert isinstance(cmd, PresenceUpdate) and cmd.state.online and cmd.device == "phone"
    assert isinstance(R.route("presence/bob/phone", b"garbage"), Ignore)
    assert isinstance(R.route("elsewhere/x", b"{}"), Ignore)
    assert isinstance(R.route("im/alice/out/unknown", b"{}"), Ignore)


def test_read_event_is_a_silent_read() -> None:
    cmd = R.route("im/alice/out/event", b'{"type":"read","conv":"d:alice:bob","seq":4}')
    assert isinstance(cmd, Rpc) and cmd.method == "read" and not cmd.respond
    assert isinstance(R.route("im/alice/out/event", b'{"type":"dance"}'), Ignore)
