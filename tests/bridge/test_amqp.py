"""The AMQP transport's sans-IO parts (cluster mode): topics as RabbitMQ's keys, and RabbitMQ's
connection events as presence. The transport itself runs live in tests/test_cluster.py."""

from __future__ import annotations

from typing import Any

from bridge.amqp import binding_key, connection_event, routing_key, topic_of
from bridge.outbound import Topics
from bridge.router import ConnectionClosed, Ignore, Router

PID = "<rabbit@localhost.1796080385.919.0>"
CREATED: dict[str, Any] = {  # as rabbitmq_event_exchange 3.10 sends it (headers; the body is empty)
    "variable_map": '#{<<"client_id">> => <<"alice:phone">>}', "user": "alice", "vhost": "/",
    "protocol": "{'MQTT',\"3.1.1\"}", "pid": PID, "timestamp_in_ms": 1796080397485,
    "name": "127.0.0.1:50105 -> 127.0.0.1:1883", "node": "rabbit@localhost"}


def test_topics_and_keys() -> None:
    assert routing_key("im/bob/in/msg") == "im.bob.in.msg"
    assert topic_of("im.alice.out.msg") == "im/alice/out/msg"
    assert binding_key("im/+/out/rpc/+") == "im.*.out.rpc.*"
    assert binding_key("im/+/out/#") == "im.*.out.#"


def test_a_devices_connect_and_any_close_are_events() -> None:
    assert connection_event("connection.created", CREATED) == ("created", PID, "alice:phone", 1796080397485)
    web = {**CREATED, "protocol": "{'Web MQTT',\"3.1.1\"}"}
    assert connection_event("connection.created", web) == ("created", PID, "alice:phone", 1796080397485)
    closed = {"pid": PID, "timestamp_in_ms": 5, "name": "x", "node": "n"}
    assert connection_event("connection.closed", closed) == ("closed", PID, "", 5)


def test_what_is_not_a_devices_connection_is_no_event() -> None:
    assert connection_event("connection.created", {**CREATED, "protocol": "{0,9,1}"}) is None  # AMQP (a bridge)
    assert connection_event("connection.created", {**CREATED, "user": "bob"}) is None  # not bound to its user
    assert connection_event("connection.created", {**CREATED, "variable_map": '#{<<"client_id">> => <<"svc">>}'}) \
        is None  # a service account's client id
    assert connection_event("connection.created", {**CREATED, "pid": 42}) is None
    assert connection_event("connection.created", {**CREATED, "pid": "x" * 129}) is None
    assert connection_event("connection.closed", {"pid": PID}) is None  # no time
    assert connection_event("channel.created", CREATED) is None


def test_a_close_routes_only_in_cluster_mode() -> None:
    cluster = Router(Topics("im"), max_payload=16384, max_text=8000, connection_events=True)
    assert cluster.route(f"$closed/{PID}", b'{"ts": 7}') == ConnectionClosed(PID, 7, PID)
    assert isinstance(cluster.route(f"$closed/{PID}", b'{"ts": "7"}'), Ignore)
    assert isinstance(cluster.route(f"$closed/{PID}", b"\xff" * 300), Ignore)
    assert isinstance(cluster.route("$closed/", b'{"ts": 7}'), Ignore)
    embedded = Router(Topics("im"), max_payload=16384, max_text=8000)
    assert isinstance(embedded.route(f"$closed/{PID}", b'{"ts": 7}'), Ignore)
