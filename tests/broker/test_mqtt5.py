"""MQTT 5 on the embedded broker, feature by feature, with a raw client (reason codes and
properties byte by byte) and with paho in v5 mode (aiomqtt) and mosquitto's v5 clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker import codec
from config.settings import Settings
from imgate.app import App
from tests.broker.test_mqtt_semantics import ACCOUNTS, PASSWORD, with_broker
from tests.conftest import Users
from tests.helpers import WAIT, connect, mosquitto_subscribed, on, tweak
from tests.mqtt5raw import (
    Raw5,
    ack_packet,
    connect5,
    disconnect_packet,
    publish_packet,
    subscribe_packet,
    unsubscribe_packet,
)
from tests.mqttraw import raw_connect

V5 = aiomqtt.ProtocolVersion.V5
ALL = [*ACCOUNTS, {"username": "svc:all", "password": PASSWORD, "acl": ["readwrite #", "readwrite $TopicA/#"]}]
NO_LOCAL, RAP = 0x04, 0x08


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[App]:
    s = with_broker(settings)
    s = tweak(s, "broker", accounts=ALL, max_subscriptions=5, max_keep_alive=30)
    async with App(s) as running:
        yield running


async def svc(app: App, client_id: str, username: str = "svc:a", **kwargs: object) -> Raw5:
    conn = await connect5(app.mqtt_port, client_id, username, PASSWORD, **kwargs)  # type: ignore[arg-type]
    assert conn.connack is not None and conn.connack.reason == 0, conn.connack
    return conn


async def subscribed(conn: Raw5, packet_id: int, filters: list[tuple[str, int]],
                     props: dict[int, object] | None = None) -> list[int]:
    conn.send(subscribe_packet(packet_id, filters, props))
    return (await conn.read_kind(codec.SUBACK)).codes


async def published(conn: Raw5, topic: str, payload: bytes, packet_id: int, qos: int = 1, **kw: object) -> int:
    """Publish at QoS 1/2 and return the reason code of its PUBACK / PUBREC."""
    conn.send(publish_packet(topic, payload, qos, packet_id, **kw))  # type: ignore[arg-type]
    ack = await conn.read_kind(codec.PUBACK if qos == 1 else codec.PUBREC)
    assert ack.packet_id == packet_id
    return ack.reason


# ---- CONNACK ------------------------------------------------------------------------------------------

async def test_a_refused_login_says_why(app: App, users: Users) -> None:
    await users.add("alice", "dave")
    token = await users.token("alice")
    assert app.services is not None
    await app.services.users.add_user("eve")
    eve = await users.token("eve")
    await app.services.users.disable_user("eve")
    cases = {
        "bad credentials": (connect5(app.mqtt_port, "alice:phone", "alice", "imt_wrong"), 0x86),
        "disabled": (connect5(app.mqtt_port, "eve:phone", "eve", eve), 0x87),
        "client id of another device": (connect5(app.mqtt_port, "alice:laptop", "alice", token), 0x85),
        "empty client id for a user": (connect5(app.mqtt_port, "", "alice", token), 0x85),
        "enhanced auth": (connect5(app.mqtt_port, "alice:phone", "alice", token,
                                   props={codec.P_AUTH_METHOD: "SCRAM-SHA-1"}), 0x8C),
        "bad account password": (connect5(app.mqtt_port, "gw-1", "svc:a", "nope-nope"), 0x86),
    }
    for what, (attempt, reason) in cases.items():
        conn = await attempt
        assert conn.connack is not None and conn.connack.reason == reason, what
        assert await conn.closed(), what


async def test_device_limit_refusal_is_quota_exceeded(settings: Settings) -> None:
    limited = tweak(settings, "broker", max_devices=1)
    async with App(limited) as app:
        assert app.services is not None
        await app.services.users.add_user("alice")
        first = await connect5(app.mqtt_port, "alice:phone", "alice",
                               (await app.services.users.issue_token("alice", "phone")).token)
        second = await connect5(app.mqtt_port, "alice:laptop", "alice",
                                (await app.services.users.issue_token("alice", "laptop")).token)
        assert (first.connack and first.connack.reason, second.connack and second.connack.reason) == (0, 0x97)
        first.close()


async def test_connack_announces_the_servers_limits(app: App) -> None:
    conn = await svc(app, "gw-limits", keep_alive=120)
    props = conn.connack.props if conn.connack else {}
    assert props[codec.P_RECEIVE_MAXIMUM] == 100
    assert props[codec.P_TOPIC_ALIAS_MAXIMUM] == 16
    assert props[codec.P_MAXIMUM_PACKET_SIZE] > 1 << 20
    assert props[codec.P_SERVER_KEEP_ALIVE] == 30  # asked for 120; the server allows at most 30
    conn.close()


async def test_an_empty_client_id_gets_one_for_a_service_account(app: App) -> None:
    conn = await svc(app, "")
    assigned = conn.connack.props[codec.P_ASSIGNED_CLIENT_ID] if conn.connack else None
    assert isinstance(assigned, str) and assigned.startswith("auto-")
    # 3.1.1: an empty client id with clean session is accepted for a service account [MQTT-3.1.3-6],
    # refused without clean session [MQTT-3.1.3-8] and always for a user.
    assert (await raw_connect(app.mqtt_port, "", "svc:a", PASSWORD)).return_code == 0
    assert (await raw_connect(app.mqtt_port, "", "svc:a", PASSWORD, clean=False)).return_code == 2
    conn.close()


# ---- PUBACK / SUBACK / UNSUBACK ------------------------------------------------------------------------

async def test_acknowledgements_carry_reason_codes(app: App, users: Users) -> None:
    await users.add("alice")
    alice = await connect5(app.mqtt_port, "alice:phone", "alice", await users.token("alice"))
    assert await published(alice, "im/bob/out/msg", b"{}", 1) == 0x87  # not alice's topic: refused, not routed
    assert await published(alice, "im/bob/out/msg", b"{}", 2, qos=2) == 0x87
    gw = await svc(app, "gw-1")
    assert await published(gw, "t/nobody/listens", b"x", 3) == 0x10  # no matching subscribers
    codes = await subscribed(gw, 4, [("t/ok", 2), ("other/t", 1), ("t/#/bad", 1), ("t/a", 1), ("t/b", 0),
                                     ("t/c", 1), ("t/d", 1), ("t/e", 1)])
    # granted QoS 2; not authorized; filter invalid; then the session's 5 filters are used up: quota
    assert codes == [2, 0x87, 0x8F, 1, 0, 1, 1, 0x97]
    gw.send(unsubscribe_packet(5, ["t/ok", "t/never"]))
    assert (await gw.read_kind(codec.UNSUBACK)).codes == [0x00, 0x11]
    alice.close()
    gw.close()


# ---- subscription options and identifiers -------------------------------------------------------------

async def test_no_local_keeps_a_clients_own_publishes_from_it(app: App) -> None:
    me = await svc(app, "gw-me")
    other = await svc(app, "gw-other", "svc:b")
    assert await subscribed(me, 1, [("t/room", 1 | NO_LOCAL)]) == [1]
    assert await subscribed(other, 1, [("t/room", 1)]) == [1]
    assert await published(me, "t/room", b"mine", 2) == 0
    assert (await other.read_kind(codec.PUBLISH)).payload == b"mine"
    assert await published(other, "t/room", b"theirs", 3) == 0
    got = await me.read_kind(codec.PUBLISH)
    assert got.payload == b"theirs"  # its own "mine" never came back
    me.close()
    other.close()


async def test_retain_as_published_and_retain_handling(app: App) -> None:
    pub = await svc(app, "gw-pub")
    assert await published(pub, "t/r/1", b"kept", 1, retain=True) == 0x10
    plain = await svc(app, "gw-plain", "svc:b")
    assert await subscribed(plain, 1, [("t/r/+", 1)]) == [1]  # retain handling 0: sent at once
    first = await plain.read_kind(codec.PUBLISH)
    assert (first.payload, first.retain) == (b"kept", True)
    assert await subscribed(plain, 2, [("t/r/+", 1 | (1 << 4))]) == [1]  # 1: only for a new subscription
    never = await svc(app, "gw-never", "svc:b")
    assert await subscribed(never, 1, [("t/r/+", 1 | (2 << 4))]) == [1]  # 2: never
    rap = await svc(app, "gw-rap", "svc:b")
    assert await subscribed(rap, 1, [("t/r/+", 1 | RAP | (2 << 4))]) == [1]
    assert await published(pub, "t/r/1", b"live", 2, retain=True) == 0
    for conn, retained in ((plain, False), (never, False), (rap, True)):
        got = await conn.read_kind(codec.PUBLISH)
        assert (got.payload, got.retain) == (b"live", retained)  # nothing replayed before it
    for conn in (pub, plain, never, rap):
        conn.close()


async def test_subscription_identifiers_come_with_each_message(app: App) -> None:
    sub = await svc(app, "gw-ids")
    assert await subscribed(sub, 1, [("t/ids/+", 1)], {codec.P_SUBSCRIPTION_ID: 5}) == [1]
    assert await subscribed(sub, 2, [("t/ids/a", 1)], {codec.P_SUBSCRIPTION_ID: 7}) == [1]
    pub = await svc(app, "gw-ids-pub", "svc:b")
    await published(pub, "t/ids/a", b"both", 1)
    await published(pub, "t/ids/b", b"one", 2)
    both, one = await sub.read_kind(codec.PUBLISH), await sub.read_kind(codec.PUBLISH)
    assert sorted(both.props[codec.P_SUBSCRIPTION_ID]) == [5, 7]  # one copy, both identifiers
    assert one.props[codec.P_SUBSCRIPTION_ID] == [5]
    sub.close()
    pub.close()


async def test_shared_subscriptions_deliver_each_message_to_one_member(app: App) -> None:
    members = [await svc(app, f"worker-{i}", "svc:b") for i in range(2)]
    for m in members:
        assert await subscribed(m, 1, [("$share/workers/t/jobs/+", 1)]) == [1]
    old = await raw_connect(app.mqtt_port, "worker-v3", "svc:b", PASSWORD)  # a 3.1.1 member too
    from tests.mqttraw import subscribe as subscribe311

    assert await subscribe311(old, "$share/workers/t/jobs/+") == 1
    pub = await svc(app, "boss")
    for i in range(6):
        await published(pub, f"t/jobs/{i}", b"%d" % i, i + 1)
    got = [[(await m.read_kind(codec.PUBLISH)).payload for _ in range(2)] for m in members]
    from tests.mqttraw import read_packet

    got.append([(await read_packet(old)).publish_fields()[2] for _ in range(2)])
    assert sorted(p for g in got for p in g) == [b"%d" % i for i in range(6)]  # each exactly once
    for m in (*members, pub):
        m.close()
    old.close()


# ---- properties passed through, message expiry, topic aliases ------------------------------------------

async def test_user_properties_and_content_type_reach_the_subscriber(app: App) -> None:
    sub = await svc(app, "gw-props")
    assert await subscribed(sub, 1, [("t/p", 1)]) == [1]
    pub = await svc(app, "gw-props-pub", "svc:b")
    props = {codec.P_USER: [("trace", "abc"), ("trace", "def")], codec.P_CONTENT_TYPE: "application/json",
             codec.P_PAYLOAD_FORMAT: 1, codec.P_MESSAGE_EXPIRY: 300}
    assert await published(pub, "t/p", b"{}", 2, props=props) == 0
    got = await sub.read_kind(codec.PUBLISH)
    assert got.props[codec.P_USER] == [("trace", "abc"), ("trace", "def")]
    assert (got.props[codec.P_CONTENT_TYPE], got.props[codec.P_PAYLOAD_FORMAT]) == ("application/json", 1)
    assert 299 <= got.props[codec.P_MESSAGE_EXPIRY] <= 300  # the time it has left
    sub.close()
    pub.close()


async def test_an_expired_message_is_not_delivered_after_it_expires(app: App) -> None:
    sub = await svc(app, "gw-away", props={codec.P_SESSION_EXPIRY: 60})
    assert await subscribed(sub, 1, [("t/exp", 1)]) == [1]
    sub.send(disconnect_packet())
    await sub.closed()
    pub = await svc(app, "gw-exp-pub", "svc:b")
    await published(pub, "t/exp", b"short-lived", 1, props={codec.P_MESSAGE_EXPIRY: 1})
    await published(pub, "t/exp", b"lasting", 2)
    await asyncio.sleep(1.2)  # the scenario: the subscriber stays away longer than the first message lives
    back = await svc(app, "gw-away", clean_start=False, props={codec.P_SESSION_EXPIRY: 60})
    assert back.connack is not None and back.connack.session_present
    assert (await back.read_kind(codec.PUBLISH)).payload == b"lasting"  # the expired one was dropped
    back.close()
    pub.close()


async def test_topic_aliases_in_both_directions(app: App) -> None:
    sub = await svc(app, "gw-alias", props={codec.P_TOPIC_ALIAS_MAXIMUM: 4})
    assert await subscribed(sub, 1, [("t/alias/long/topic/name", 1)]) == [1]
    pub = await svc(app, "gw-alias-pub", "svc:b")
    topic = "t/alias/long/topic/name"
    await published(pub, topic, b"one", 1, props={codec.P_TOPIC_ALIAS: 3})
    await published(pub, "", b"two", 2, props={codec.P_TOPIC_ALIAS: 3})  # the alias alone names the topic
    first, second = await sub.read_kind(codec.PUBLISH), await sub.read_kind(codec.PUBLISH)
    assert (first.topic, first.props[codec.P_TOPIC_ALIAS], first.payload) == (topic, 1, b"one")
    assert (second.topic, second.props[codec.P_TOPIC_ALIAS], second.payload) == ("", 1, b"two")
    pub.send(publish_packet("", b"unknown alias", 1, 3, props={codec.P_TOPIC_ALIAS: 9}))
    assert (await pub.read_kind(codec.DISCONNECT)).reason == 0x82
    over = await svc(app, "gw-alias-over", "svc:b")
    over.send(publish_packet(topic, b"x", 1, 1, props={codec.P_TOPIC_ALIAS: 17}))
    assert (await over.read_kind(codec.DISCONNECT)).reason == 0x94  # over the announced maximum of 16
    sub.close()


# ---- flow control -------------------------------------------------------------------------------------

async def test_receive_maximum_and_maximum_packet_size_of_the_client_are_honoured(app: App) -> None:
    sub = await svc(app, "gw-slow", props={codec.P_RECEIVE_MAXIMUM: 2, codec.P_MAXIMUM_PACKET_SIZE: 200})
    assert await subscribed(sub, 1, [("t/flow", 1)]) == [1]
    pub = await svc(app, "gw-flow-pub", "svc:b")
    await published(pub, "t/flow", b"x" * 500, 1)  # over the client's maximum packet size: not sent
    for i in range(4):
        await published(pub, "t/flow", b"%d" % i, i + 2)
    first, second = await sub.read(), await sub.read()
    assert (first.payload, second.payload) == (b"0", b"1")
    assert app.broker is not None  # every PUBLISH is acknowledged, so routed: two in flight, two waiting
    outbox = app.broker.broker.sessions["gw-slow"].outbox
    assert (len(outbox.inflight), len(outbox.queue or ())) == (2, 2)
    sub.send(ack_packet(codec.PUBACK, first.packet_id or 0))
    assert (await sub.read()).payload == b"2"
    sub.close()
    pub.close()


async def test_the_servers_limits_are_enforced(app: App) -> None:
    conn = await svc(app, "gw-big", props={codec.P_RECEIVE_MAXIMUM: 10})
    limit = conn.connack.props[codec.P_MAXIMUM_PACKET_SIZE] if conn.connack else 0
    conn.send(publish_packet("t/big", b"x" * limit, 0))
    assert (await conn.read_kind(codec.DISCONNECT)).reason == 0x95
    greedy = await svc(app, "gw-greedy")
    for i in range(1, 102):  # QoS 2, never released: past the Receive Maximum of 100
        greedy.send(publish_packet("t/greedy", b"x", 2, i))
    assert (await greedy.read_kind(codec.DISCONNECT)).reason == 0x93


# ---- sessions, wills, server disconnects -----------------------------------------------------------------

async def test_session_expiry_interval(app: App) -> None:
    gone = await svc(app, "gw-s0")
    assert await subscribed(gone, 1, [("t/s", 1)]) == [1]
    gone.send(disconnect_packet())
    await gone.closed()
    again = await svc(app, "gw-s0", clean_start=False)
    assert again.connack is not None and not again.connack.session_present  # expiry 0: ended with the connection
    kept = await svc(app, "gw-s60", clean_start=False, props={codec.P_SESSION_EXPIRY: 60})
    assert await subscribed(kept, 1, [("t/s", 1)]) == [1]
    kept.send(disconnect_packet(props={codec.P_SESSION_EXPIRY: 0}))  # ... unless the DISCONNECT ends it
    await kept.closed()
    back = await svc(app, "gw-s60", clean_start=False, props={codec.P_SESSION_EXPIRY: 60})
    assert back.connack is not None and not back.connack.session_present
    assert await subscribed(back, 1, [("t/s", 1)]) == [1]
    back.send(disconnect_packet())
    await back.closed()
    pub = await svc(app, "gw-s-pub", "svc:b")
    await published(pub, "t/s", b"while away", 1)
    resumed = await svc(app, "gw-s60", clean_start=False, props={codec.P_SESSION_EXPIRY: 60})
    assert resumed.connack is not None and resumed.connack.session_present
    assert (await resumed.read_kind(codec.PUBLISH)).payload == b"while away"
    for c in (again, resumed, pub):
        c.close()


async def test_will_delay_interval(app: App) -> None:
    watcher = await svc(app, "gw-watch", "svc:b")
    assert await subscribed(watcher, 1, [("t/will/+", 1)]) == [1]
    will = ("t/will/a", b"gone", 1, False, {codec.P_WILL_DELAY: 60})
    a = await svc(app, "gw-will-a", will=will, props={codec.P_SESSION_EXPIRY: 120})
    a.writer.transport.abort()  # dropped, not disconnected: the will is due in 60 s
    resumed = await svc(app, "gw-will-a", clean_start=False, props={codec.P_SESSION_EXPIRY: 120})
    assert resumed.connack is not None and resumed.connack.session_present  # back in time: no will
    b = await svc(app, "gw-will-b", will=("t/will/b", b"gone soon", 1, False, {codec.P_WILL_DELAY: 1}),
                  props={codec.P_SESSION_EXPIRY: 120})
    b.writer.transport.abort()
    got = await watcher.read_kind(codec.PUBLISH)
    assert (got.topic, got.payload) == ("t/will/b", b"gone soon")  # after its delay; a's never came
    resumed.close()
    watcher.close()


async def test_the_server_says_why_it_disconnects(app: App, users: Users) -> None:
    await users.add("alice")
    token = await users.token("alice")
    first = await connect5(app.mqtt_port, "alice:phone", "alice", token)
    second = await connect5(app.mqtt_port, "alice:phone", "alice", token)
    assert (await first.read_kind(codec.DISCONNECT)).reason == 0x8E  # session taken over
    assert app.broker is not None
    assert await app.broker.broker.kick("alice", "phone", reason="admin") == 1
    assert (await second.read_kind(codec.DISCONNECT)).reason == 0x98  # administrative action
    third = await connect5(app.mqtt_port, "alice:phone", "alice", token)
    assert app.services is not None
    await app.services.users.revoke_tokens("alice", "phone")
    assert (await third.read_kind(codec.DISCONNECT)).reason == 0x87  # not authorized any more
    gw = await svc(app, "gw-idle", keep_alive=1)
    assert (await gw.read_kind(codec.DISCONNECT)).reason == 0x8D  # keep-alive timeout (after 1.5 s)


# ---- QoS 2 end to end, exactly once across reconnects ------------------------------------------------

async def test_qos2_exactly_once_across_reconnects(app: App) -> None:
    sub = await svc(app, "gw-q2-sub", props={codec.P_SESSION_EXPIRY: 60})
    assert await subscribed(sub, 1, [("t/q2", 2)]) == [2]
    pub = await svc(app, "gw-q2-pub", "svc:b", props={codec.P_SESSION_EXPIRY: 60})
    assert await published(pub, "t/q2", b"once", 9, qos=2) == 0
    pub.writer.transport.abort()  # lost before its PUBREL
    pub = await svc(app, "gw-q2-pub", "svc:b", clean_start=False, props={codec.P_SESSION_EXPIRY: 60})
    assert await published(pub, "t/q2", b"once", 9, qos=2, dup=True) == 0  # resent: acknowledged, not routed
    pub.send(ack_packet(codec.PUBREL, 9))
    assert (await pub.read_kind(codec.PUBCOMP)).packet_id == 9

    got = await sub.read_kind(codec.PUBLISH)
    assert (got.payload, got.qos) == (b"once", 2)
    sub.writer.transport.abort()  # lost before its PUBREC
    sub = await svc(app, "gw-q2-sub", clean_start=False, props={codec.P_SESSION_EXPIRY: 60})
    again = await sub.read_kind(codec.PUBLISH)
    assert (again.payload, again.dup, again.packet_id) == (b"once", True, got.packet_id)
    sub.send(ack_packet(codec.PUBREC, again.packet_id or 0))
    assert (await sub.read_kind(codec.PUBREL)).packet_id == again.packet_id
    sub.writer.transport.abort()  # lost before its PUBCOMP
    sub = await svc(app, "gw-q2-sub", clean_start=False, props={codec.P_SESSION_EXPIRY: 60})
    rel = await sub.read()
    assert (rel.kind, rel.packet_id) == (codec.PUBREL, again.packet_id)  # the release again, not the message
    sub.send(ack_packet(codec.PUBCOMP, again.packet_id or 0))
    await published(pub, "t/q2", b"barrier", 10, qos=1)
    assert (await sub.read_kind(codec.PUBLISH)).payload == b"barrier"  # and "once" was delivered once
    sub.close()
    pub.close()


async def test_dollar_topics_do_not_match_leading_wildcards(app: App) -> None:
    watcher = await svc(app, "gw-hash", "svc:all")
    assert await subscribed(watcher, 1, [("#", 1), ("+/B", 1)]) == [1, 1]
    pub = await svc(app, "gw-dollar", "svc:all")
    assert await published(pub, "$TopicA/B", b"not for #", 1) == 0x10  # nobody: '#' and '+/B' do not match it
    await published(pub, "TopicA/B", b"for both", 2)
    got = await watcher.read_kind(codec.PUBLISH)
    assert (got.topic, got.payload) == ("TopicA/B", b"for both")
    watcher.close()
    pub.close()


# ---- request/response, v5 and 3.1.1 together ------------------------------------------------------------

async def test_json_rpc_over_request_response(app: App, users: Users) -> None:
    """A v5 request with a Response Topic and Correlation Data is answered on that topic with the
    same correlation data; a response topic the requester may not read is not used."""
    await users.add("alice", "bob")
    alice = await connect5(app.mqtt_port, "alice:phone", "alice", await users.token("alice"))
    bob = await connect5(app.mqtt_port, "bob:phone", "bob", await users.token("bob"))
    assert await subscribed(alice, 1, [("im/alice/in/#", 1)]) == [1]
    assert await subscribed(bob, 1, [("im/bob/in/#", 1)]) == [1]
    request = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "conversations"}).encode()
    await published(alice, "im/alice/out/rpc", request, 2,
                    props={codec.P_RESPONSE_TOPIC: "im/alice/in/rpc/phone", codec.P_CORRELATION_DATA: b"\x01req"})
    reply = await alice.read_kind(codec.PUBLISH)
    assert reply.topic == "im/alice/in/rpc/phone" and reply.props[codec.P_CORRELATION_DATA] == b"\x01req"
    assert json.loads(reply.payload)["result"]["items"] == []
    await published(alice, "im/alice/out/rpc", request, 3,
                    props={codec.P_RESPONSE_TOPIC: "im/bob/in/rpc", codec.P_CORRELATION_DATA: b"2"})
    reply = await alice.read_kind(codec.PUBLISH)
    assert reply.topic == "im/alice/in/rpc" and reply.props[codec.P_CORRELATION_DATA] == b"2"
    bad = json.dumps({"jsonrpc": "2.0", "id": 4, "method": "nope"}).encode()
    await published(alice, "im/alice/out/rpc", bad, 4,
                    props={codec.P_RESPONSE_TOPIC: "im/alice/in/rpc/x", codec.P_CORRELATION_DATA: b"3"})
    error = await alice.read_kind(codec.PUBLISH)  # errors follow the same route
    assert (error.topic, error.props[codec.P_CORRELATION_DATA]) == ("im/alice/in/rpc/x", b"3")
    assert json.loads(error.payload)["error"]["code"] == -32601
    await published(alice, "im/alice/out/msg", json.dumps(
        {"cid": "barrier", "to": "bob", "type": "text", "text": "after the replies"}).encode(), 5)
    first = await bob.read_kind(codec.PUBLISH)  # the barrier is the first thing bob gets: no reply reached him
    assert (first.topic, json.loads(first.payload)["cid"]) == ("im/bob/in/msg", "barrier")
    alice.close()
    bob.close()


async def test_a_v5_device_and_a_v311_device_talk(app: App, users: Users) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice"), protocol=V5) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        await alice.send_and_ack("v5-to-v3", "bob", "from MQTT 5")
        await bob.inbox.wait_for(on("/in/msg", cid="v5-to-v3"))
        await bob.send_and_ack("v3-to-v5", "alice", "from MQTT 3.1.1")
        got = await alice.inbox.wait_for(on("/in/msg", cid="v3-to-v5"))
        assert got[0].json["text"] == "from MQTT 3.1.1"


async def test_paho_v5_user_properties_round_trip(app: App) -> None:
    """paho in v5 mode: properties it sets reach another paho v5 client."""
    async with aiomqtt.Client("127.0.0.1", app.mqtt_port, username="svc:a", password=PASSWORD,
                              identifier="paho-sub", protocol=V5) as sub, \
            aiomqtt.Client("127.0.0.1", app.mqtt_port, username="svc:b", password=PASSWORD,
                           identifier="paho-pub", protocol=V5) as pub:
        await sub.subscribe("t/paho", qos=1)
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("k", "v")]
        props.ResponseTopic = "t/paho/reply"
        props.CorrelationData = b"c-1"
        await pub.publish("t/paho", b"hi", qos=1, properties=props)
        async with asyncio.timeout(WAIT):
            async for m in sub.messages:
                got = m.properties
                break
        assert got is not None
        assert (got.UserProperty, got.ResponseTopic, got.CorrelationData) == ([("k", "v")], "t/paho/reply", b"c-1")


async def test_mosquitto_v5_clients(app: App, users: Users) -> None:
    """mosquitto_sub -V mqttv5 receives what mosquitto_pub -V mqttv5 sends, with a user property."""
    sub = await asyncio.create_subprocess_exec(
        "stdbuf", "-oL", "mosquitto_sub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(app.mqtt_port), "-i", "mosq-sub",
        "-u", "svc:a", "-P", PASSWORD, "-t", "t/mosq", "-q", "1", "-C", "1", "-W", "10", "-F", "%t %p %P", "-d",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    await mosquitto_subscribed(sub)
    pub = await asyncio.create_subprocess_exec(
        "mosquitto_pub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(app.mqtt_port), "-i", "mosq-pub",
        "-u", "svc:b", "-P", PASSWORD, "-t", "t/mosq", "-q", "1", "-m", "hello v5",
        "-D", "publish", "user-property", "via", "mosquitto", stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(pub.communicate(), WAIT)
    assert pub.returncode == 0, err
    out, err = await asyncio.wait_for(sub.communicate(), WAIT)
    assert sub.returncode == 0, err
    assert "t/mosq hello v5 via:mosquitto" in out.decode().splitlines()
