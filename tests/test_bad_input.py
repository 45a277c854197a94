"""Garbage on the wire gets a clear error to its sender and never stalls anyone else."""

from __future__ import annotations

import json

import pytest

from imgate.app import App
from tests.conftest import Users
from tests.helpers import connect, on


@pytest.fixture(params=["auto", "mqtt"])
def bridge_transport(request: pytest.FixtureRequest) -> str:
    """Every test here runs with the in-process bridge and with the bridge over MQTT."""
    return request.param

GARBAGE: list[tuple[bytes, str, str]] = [
    (b"\x00\x01\x02 not json", "bad_request", "not UTF-8 JSON"),
    (b"{'single': 'quotes'}", "bad_request", "not UTF-8 JSON"),
    (b'"just a string"', "bad_request", "JSON object"),
    (b'{"cid": 42, "to": "bob", "type": "text", "text": "x"}', "bad_request", "cid"),
    (b'{"cid": "g-missing-type", "to": "bob", "text": "x"}', "bad_request", "type"),
    (b'{"cid": "g-wrong-type", "to": ["bob"], "type": "text", "text": "x"}', "bad_request", "to"),
    (b'{"cid": "g-unknown-user", "to": "bobb", "type": "text", "text": "x"}', "not_found", "user 'bobb' does not exist"),
    (b'{"cid": "g-no-group", "group": "nope", "type": "text", "text": "x"}', "not_found", "group 'nope'"),
    (json.dumps({"cid": "g-huge", "to": "bob", "type": "text", "text": "x" * 20000}).encode(), "too_large", "limit"),
    (b"\xff" * 100_000, "too_large", "limit"),
    # U+0000: PostgreSQL stores none (the batch it sat in failed, and every send in it).
    (json.dumps({"cid": "g-nul", "to": "bob", "type": "text", "text": "a\u0000b"}).encode(), "bad_request", "U+0000"),
    (json.dumps({"cid": "g-nul-data", "to": "bob", "type": "custom", "data": {"k": [{"\u0000": 1}]}}).encode(),
     "bad_request", "U+0000"),
]


async def test_garbage_burst_between_valid_messages(app: App, users: Users) -> None:
    await users.add("alice", "bob", "carol")
    async with connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob, \
               connect(app.mqtt_port, "carol", "phone", await users.token("carol")) as carol, \
               connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        valid = 0
        for round_ in range(3):
            for payload, _, _ in GARBAGE:
                await alice.send({"cid": f"ok-{valid}", "to": "bob", "type": "text", "text": f"valid {valid}"})
                valid += 1
                await alice.send(payload)
                # Someone else keeps talking throughout.
                await carol.send({"cid": f"c-{round_}-{valid}", "to": "bob", "type": "text", "text": "carol"})
        got = await bob.inbox.wait_for(lambda r: r.topic == "im/bob/in/msg" and r.json["from"] == "alice", count=valid)
        assert sorted(r.json["cid"] for r in got) == sorted(f"ok-{i}" for i in range(valid))
        assert [r.json["seq"] for r in got] == list(range(1, valid + 1))
        await bob.inbox.wait_for(lambda r: r.topic == "im/bob/in/msg" and r.json["from"] == "carol", count=valid)

        errors = await alice.inbox.wait_for(lambda r: r.topic.endswith("/in/ack") and "error" in r.json,
                                            count=3 * len(GARBAGE))
        # Each piece of garbage got its own error, naming its cid when it had a usable one.
        # (Errors for different conversations may interleave, so match them up, not in order.)
        expected_cids = [None, None, None, None, "g-missing-type", "g-wrong-type", "g-unknown-user",
                         "g-no-group", "g-huge", None, "g-nul", "g-nul-data"]
        remaining = [e.json for e in errors]
        for (_, code, needle), cid in list(zip(GARBAGE, expected_cids, strict=True)) * 3:
            match = next((e for e in remaining if e["cid"] == cid and e["error"]["code"] == code
                          and needle in e["error"]["message"]), None)
            assert match is not None, (cid, code, needle, remaining)
            remaining.remove(match)
        assert remaining == []


async def test_bad_rpcs_get_jsonrpc_errors_and_good_ones_still_work(app: App, users: Users) -> None:
    await users.add("alice")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        topic = "im/alice/out/rpc"
        cases = [
            (b"][", None, -32700),
            (b'{"jsonrpc":"2.0","id":"u1","method":"launch_rockets"}', "u1", -32601),
            (b'{"jsonrpc":"2.0","id":"p1","method":"history","params":{"conv":5}}', "p1", -32602),
            (b'{"jsonrpc":"2.0","id":"r1","method":"history","params":{"conv":"d:a:b","limit":"10"}}', "r1", -32602),
            (b'{"id":"v1","method":"history"}', "v1", -32600),
        ]
        for payload, _, _ in cases:
            await alice.client.publish(topic, payload, qos=1)
        replies = await alice.inbox.wait_for(on("/in/rpc"), count=len(cases))
        assert [(r.json["id"], r.json["error"]["code"]) for r in replies] == [(i, c) for _, i, c in cases]
        assert (await alice.result("conversations")) == {"items": [], "next_cursor": None}


async def test_unknown_out_topics_and_junk_events_are_ignored(app: App, users: Users) -> None:
    await users.add("alice")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        await alice.client.publish("im/alice/out/whatever", b"{}", qos=1)
        await alice.client.publish("im/alice/out/event", b"\x00garbage", qos=1)
        await alice.client.publish("im/alice/out/event", b'{"type":"read","conv":5}', qos=1)
        assert (await alice.result("conversations"))["items"] == []
