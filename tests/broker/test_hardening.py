"""The broker against the attacks of the hardening review (issue 10), each replayed with real
clients against the real broker: session take-over by a service account, ACL variable injection,
oversized and over-many subscriptions, invalid UTF-8 desynchronising the framing, a client that
never reads, and a token revoked while its login waits for a take-over."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from broker.server import EmbeddedBroker, Hub
from config.settings import Settings
from imgate.app import App, build_services, topic_acl
from services.db import Database
from services.ids import SystemClock
from tests.conftest import Users
from tests.helpers import connect, on, tweak
from tests.mqtt5raw import connect5
from tests.mqttraw import (
    RawConnection,
    publish,
    publish_packet,
    raw_connect,
    read_packet,
    subscribe,
    subscribe_many,
    subscribe_packet,
)

PASSWORD = "secret-password"
ACCOUNTS = [
    {"username": "svc:dev", "password": PASSWORD, "acl": ["readwrite devices/%u/#", "readwrite devices/%c/#"]},
    {"username": "svc:a", "password": PASSWORD, "acl": ["readwrite t/#"]},
    {"username": "svc:b", "password": PASSWORD, "acl": ["readwrite t/#"]},
]
IDENTIFIER_REJECTED = 2
GRANTED, DENIED = 1, 0x80


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[App]:
    async with App(tweak(settings, "broker", accounts=ACCOUNTS)) as running:
        yield running


async def _until_closed(conn: RawConnection) -> None:
    assert await conn.closed_by_server(10), "the server did not close the connection"


# ---- 1. a session belongs to the principal that created it ---------------------------------------

async def test_a_service_account_cannot_resume_or_take_over_a_users_session(app: App, users: Users) -> None:
    """Attack: a service account connected with client id ``bob:laptop`` and clean session 0 got
    session_present=1, bob's persistent session and alice's message to bob (and kicked bob's live
    device). Now such a client id is refused for a service account (CONNACK 2)."""
    await users.add("alice", "bob")
    bob_token = await users.token("bob", "laptop")
    async with connect(app.mqtt_port, "bob", "laptop", bob_token, clean_session=False):
        pass  # bob's laptop leaves a persistent session subscribed to its inbox
    dormant = await raw_connect(app.mqtt_port, "bob:laptop", "svc:dev", PASSWORD, clean=False)
    assert (dormant.return_code, dormant.session_present) == (IDENTIFIER_REJECTED, False)
    await _until_closed(dormant)

    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        await alice.send_and_ack("for-bob", "bob", "private")
        async with connect(app.mqtt_port, "bob", "laptop", bob_token, clean_session=False, subscribe=[]) as bob:
            # bob's session survived, with what arrived while he was away.
            await bob.inbox.wait_for(on("/in/msg", cid="for-bob"))
            live = await raw_connect(app.mqtt_port, "bob:laptop", "svc:dev", PASSWORD, clean=False)
            assert live.return_code == IDENTIFIER_REJECTED
            await _until_closed(live)
            assert not bob.disconnected.is_set()
            assert (await bob.result("conversations"))["items"][0]["conv"] == "d:alice:bob"  # still connected


async def test_another_principal_never_inherits_kicks_or_squats_a_session(app: App) -> None:
    """Two service accounts with the same client id: the second neither takes over the first's
    live connection nor resumes or discards its dormant session (and the queue in it)."""
    first = await raw_connect(app.mqtt_port, "gw-1", "svc:a", PASSWORD, clean=False)
    assert first.return_code == 0
    assert await subscribe(first, "t/private/#") == GRANTED
    intruder = await raw_connect(app.mqtt_port, "gw-1", "svc:b", PASSWORD, clean=False)
    assert intruder.return_code == IDENTIFIER_REJECTED  # first is live: refused, not a take-over
    await _until_closed(intruder)
    first.writer.write(b"\xc0\x00")  # PINGREQ: first is still connected
    assert (await read_packet(first)).kind == 13
    first.writer.write(b"\xe0\x00")  # DISCONNECT: dormant now, with its subscription
    await _until_closed(first)

    publisher = await raw_connect(app.mqtt_port, "pub-1", "svc:a", PASSWORD)
    await publish(publisher, "t/private/x", b"for svc:a only", qos=1, packet_id=1)
    assert (await read_packet(publisher)).kind == 4  # PUBACK: routed (into first's session queue)
    squatter = await raw_connect(app.mqtt_port, "gw-1", "svc:b", PASSWORD, clean=False)
    assert squatter.return_code == IDENTIFIER_REJECTED  # dormant, and still not svc:b's
    await _until_closed(squatter)
    again = await raw_connect(app.mqtt_port, "gw-1", "svc:a", PASSWORD, clean=False)
    assert (again.return_code, again.session_present) == (0, True)
    packet = await read_packet(again)  # what waited for it is still there
    assert packet.kind == 3 and packet.publish_fields()[2] == b"for svc:a only"
    for conn in (publisher, again):
        conn.close()


# ---- 2. ACL variables are never wildcards --------------------------------------------------------

@pytest.mark.parametrize("client_id", ["+", "#", "lamp/1", "a+b", "x#"])
async def test_a_client_id_cannot_inject_a_wildcard_into_the_acl(app: App, client_id: str) -> None:
    """Attack: client id ``+`` turned ``devices/%c/#`` into ``devices/+/#``, a wildcard over
    every device. Client ids with ``+``, ``#`` or ``/`` are refused for service accounts."""
    conn = await raw_connect(app.mqtt_port, client_id, "svc:dev", PASSWORD)
    assert conn.return_code == IDENTIFIER_REJECTED
    await _until_closed(conn)


async def test_acl_variables_expand_to_the_client_itself(app: App) -> None:
    conn = await raw_connect(app.mqtt_port, "lamp-1", "svc:dev", PASSWORD)
    assert conn.return_code == 0
    assert await subscribe_many(conn, ["devices/lamp-1/#", "devices/+/#", "devices/lamp-2/state"]) == \
        [GRANTED, DENIED, DENIED]
    conn.close()


def test_an_account_name_with_a_wildcard_is_a_configuration_error() -> None:
    from config.settings import ConfigError, load_settings

    for bad in ("svc:+", "svc:#", "svc/x"):
        with pytest.raises(ConfigError, match="broker.accounts.0.username"):
            load_settings(None, {"broker": {"accounts": [{"username": bad, "password": PASSWORD}]}})


# ---- 6. memory: packet sizes, subscriptions, slow consumers ---------------------------------------

async def test_an_oversized_subscribe_is_refused_before_it_is_read(app: App, users: Users) -> None:
    """Attack: a 3.8 MiB SUBSCRIBE passed a 1 MiB limit (amqtt read it string by string). The
    announced size is checked first: the connection closes and no SUBACK ever comes."""
    await users.add("mallory")
    conn = await raw_connect(app.mqtt_port, "mallory:x", "mallory", await users.token("mallory", "x"))
    packet = subscribe_packet([f"im/mallory/in/f{i:07d}" for i in range(190_000)])
    assert len(packet) > 3.8 * (1 << 20) > 3 * app.settings.broker.max_packet_bytes
    try:
        for i in range(0, len(packet), 1 << 16):
            conn.writer.write(packet[i:i + (1 << 16)])
            await conn.writer.drain()
    except ConnectionError:
        pass  # the server closed it while we were still writing: as it should
    await _until_closed(conn)


async def test_subscriptions_per_session_and_filter_length_are_capped(app: App, users: Users) -> None:
    """Attack: 10,000 filters on one session (kept for 7 days by a persistent session). At most
    ``broker.max_subscriptions`` (100) are granted; a filter longer than
    ``broker.max_topic_length`` is refused. (One packet carries at most ``broker.max_filters``,
    64: see test_limits.py.)"""
    await users.add("mallory")
    conn = await raw_connect(app.mqtt_port, "mallory:x", "mallory", await users.token("mallory", "x"), clean=False)
    codes: list[int] = []
    for n in range(0, 10_000, 64):
        codes += await subscribe_many(conn, [f"im/mallory/in/f{i}" for i in range(n, min(n + 64, 10_000))],
                                      packet_id=n // 64 + 1)
    assert codes == [GRANTED] * 100 + [DENIED] * 9_900
    assert await subscribe(conn, "im/mallory/in/f7", packet_id=2) == GRANTED  # an existing one: not a new one
    assert await subscribe(conn, "im/mallory/in/" + "x" * 300, packet_id=3) == DENIED
    conn.close()


async def test_invalid_utf8_in_a_topic_closes_the_connection_and_nothing_is_smuggled(app: App, users: Users) -> None:
    """Attack: a PUBLISH whose topic is not UTF-8 was parsed with the wrong length (amqtt turned
    the bytes into their repr), so the end of its payload was read as further packets: a packet
    hidden there was executed. Now the connection is closed [MQTT-1.5.3-1]."""
    await users.add("mallory")
    token = await users.token("mallory", "x")
    topic = b"\xff" * 100
    overhead = len(str(topic).encode()) - len(topic)  # how many payload bytes amqtt left unread
    hidden = b""
    for pad in range(overhead):  # a whole PUBLISH of exactly that length, hidden at the end
        text = json.dumps({"cid": "smuggled", "to": "mallory", "type": "text", "text": "x" * pad}).encode()
        hidden = publish_packet("im/mallory/out/msg", text, qos=1)
        if len(hidden) >= overhead:
            break
    assert len(hidden) == overhead
    async with connect(app.mqtt_port, "mallory", "phone", await users.token("mallory")) as watcher:
        conn = await raw_connect(app.mqtt_port, "mallory:x", "mallory", token)
        await publish(conn, topic, b"padding" + hidden, qos=0)
        await _until_closed(conn)
        await watcher.send_and_ack("barrier", "mallory")
        assert watcher.inbox.matching(on("/in/ack", cid="smuggled")) == []


async def test_a_client_that_never_reads_is_cut_off_and_its_outbox_stays_bounded(settings: Settings,
                                                                                users_factory: Any) -> None:
    """Attack: 60 unread 3 MB history replies on a connection that never reads took the server
    from 135 to 282 MiB (outboxes were bounded in count only). Now they are bounded in bytes and
    a connected client whose outbox is full (and acknowledges nothing) is disconnected; what it
    missed stays in history."""
    limited = tweak(settings, "broker", max_queued_bytes=256 << 10, max_inflight_bytes=64 << 10, slow_consumer_s=1.0)
    async with App(limited) as app:
        users = users_factory(app)
        await users.add("alice", "bob")
        async with connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
            for i in range(30):  # notes to self: 30 messages of 8,000 characters
                await bob.send({"cid": f"big-{i}", "to": "bob", "type": "text", "text": f"{i:08d}" * 1000})
            await bob.inbox.wait_for(on("/in/ack", cid="big-29"))
        reader = await raw_connect(app.mqtt_port, "bob:tv", "bob", await users.token("bob", "tv"), clean=False,
                                   rcvbuf=4096)
        assert await subscribe(reader, "im/bob/in/rpc") == GRANTED
        assert app.broker is not None and app.broker.broker is not None
        request = {"jsonrpc": "2.0", "method": "history", "params": {"conv": "d:bob:bob", "limit": 30}}
        try:  # 60 answers of about 250 KB each, none of them read
            for i in range(60):
                await publish(reader, "im/bob/out/rpc", json.dumps({**request, "id": i}).encode())
        except ConnectionError:
            pass  # cut off already
        await _until_closed(reader)
        assert app.broker.broker.stats.slow_consumers == 1
        # What waits for the (persistent, now dormant) session is bounded in bytes: one message
        # over the window's bound (always let through) and the queue's bound.
        outbox = app.broker.broker.sessions["bob:tv"].outbox
        assert outbox.inflight_bytes + outbox.queued_bytes <= 260_000 + (256 << 10)
        # Everybody else goes on, and the history is all there.
        async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
            await alice.send_and_ack("hello", "bob", "are you there?")
            page = await alice.result("history", {"conv": "d:alice:bob"})
            assert [m["cid"] for m in page["messages"]] == ["hello"]


@pytest.fixture
def users_factory() -> Any:
    return lambda app: Users(app.services)


# ---- 7. a token revoked while its login waits ------------------------------------------------------

class _RevokeDuringTakeOver(Hub):
    """Makes the race of the review deterministic: while a login waits for the take-over of the
    previous connection (up to 5 s when that one does not read), the token is revoked and the
    revocation applied to the connections live at that moment (not yet this one)."""

    revoke: Any = None
    applied: asyncio.Event

    async def _take_over(self, old: Any) -> None:
        await super()._take_over(old)
        self.applied = asyncio.Event()
        await type(self).revoke()
        await asyncio.wait_for(self.applied.wait(), 10)

    async def kick(self, uid: str, device: str | None = None, reason: str = "", code: int = 0x98) -> int:
        count = await super().kick(uid, device, reason, code)
        if reason == "revoke" and hasattr(self, "applied"):
            self.applied.set()
        return count


async def test_a_token_revoked_while_its_login_waits_for_a_take_over_is_not_left_live(database_url: str) -> None:
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(Database(database_url))
        svc = build_services(SystemClock())
        await svc.users.add_user("alice")
        token = (await svc.users.issue_token("alice", "phone")).token
        _RevokeDuringTakeOver.revoke = lambda: svc.users.revoke_tokens("alice", "phone")
        broker = await stack.enter_async_context(EmbeddedBroker(
            host="127.0.0.1", port=0, authenticator=svc.users, acl=topic_acl("im"),
            service_accounts={"svc:test": secrets.token_urlsafe(16)}, keepalive_grace=1.5, auth_poll_interval=0.05,
            hub_cls=_RevokeDuringTakeOver))
        first = await raw_connect(broker.port, "alice:phone", "alice", token)
        assert first.return_code == 0
        # Passes the token check, waits for the take-over meanwhile the token is revoked: it is
        # checked again before it goes live, and refused (before: accepted, and left live).
        second = await raw_connect(broker.port, "alice:phone", "alice", token)
        assert second.return_code == 4
        await _until_closed(first)
        await _until_closed(second)


# ---- found in review ----------------------------------------------------------------------------

async def test_a_client_idle_for_a_while_then_busy_is_not_taken_for_a_slow_consumer(settings: Settings,
                                                                                     users_factory: Any) -> None:
    """The stall clock starts when an acknowledgement becomes due, not at the last one: a client
    that was quiet for longer than ``slow_consumer_s``, then gets a burst that fills its queue at
    once and acknowledges each message a round trip later, is not cut off."""
    limited = tweak(settings, "broker", max_queued_bytes=200_000, max_inflight_bytes=64 << 10, slow_consumer_s=1.0)
    async with App(limited) as app:
        users = users_factory(app)
        await users.add("bob")
        async with connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
            for i in range(10):
                await bob.send({"cid": f"big-{i}", "to": "bob", "type": "text", "text": f"{i:08d}" * 1000})
            await bob.inbox.wait_for(on("/in/ack", cid="big-9"))
            tv = await raw_connect(app.mqtt_port, "bob:tv", "bob", await users.token("bob", "tv"))
            assert await subscribe(tv, "im/bob/in/rpc") == GRANTED
            await asyncio.sleep(1.5)  # the scenario: quiet for longer than slow_consumer_s (not a sync)
            got: asyncio.Queue[int] = asyncio.Queue()

            async def read_and_ack_late() -> None:  # reads at once, acknowledges 300 ms later (a slow link)
                while True:
                    packet = await read_packet(tv, timeout=30)
                    if packet.kind == 3:
                        _, packet_id, _ = packet.publish_fields()
                        await got.put(0)
                        await asyncio.sleep(0.3)  # the round trip of the scenario, not a sync
                        tv.writer.write(b"\x40\x02" + (packet_id or 0).to_bytes(2, "big"))

            acker = asyncio.create_task(read_and_ack_late(), name="late-acker")
            try:
                # Four answers of ~80 KB at once: one in flight, two queued, and the fourth finds the
                # queue full (the oldest queued is dropped, as for any full queue; the client is
                # still reading, so it stays connected).
                for page in await asyncio.gather(*(bob.result("history", {"conv": "d:bob:bob", "limit": 10})
                                                   for _ in range(4))):
                    assert len(page["messages"]) == 10
                for _ in range(3):
                    await asyncio.wait_for(got.get(), 10)
            finally:
                acker.cancel()
                await asyncio.gather(acker, return_exceptions=True)
            assert app.broker is not None and app.broker.broker is not None
            assert app.broker.broker.stats.slow_consumers == 0
            assert app.broker.broker.stats.dropped_offline == 1
            tv.writer.write(b"\xc0\x00")  # still connected: PINGREQ answered
            assert (await read_packet(tv)).kind == 13
            tv.close()


async def test_connects_racing_for_one_client_id_end_with_one_live_registered_connection(app: App,
                                                                                         users: Users) -> None:
    """Five CONNECTs of one client id at once: each is answered, one stays connected, and it is
    the one the broker knows (a revocation reaches it: no orphan connection is left live)."""
    await users.add("alice")
    token = await users.token("alice")
    for clean in (False, True):
        conns = await asyncio.gather(*(raw_connect(app.mqtt_port, "alice:phone", "alice", token, clean=clean)
                                       for _ in range(5)))
        assert all(c.return_code == 0 for c in conns), [c.return_code for c in conns]
        closed = await asyncio.gather(*(c.closed_by_server(0.5) for c in conns))
        assert closed.count(False) == 1  # the others were taken over
        [live] = [c for c, gone in zip(conns, closed, strict=True) if not gone]
        assert app.broker is not None and app.broker.broker is not None
        assert [s.client_id for s, _ in app.broker.broker.connected()] == ["alice:phone"]
        await app.broker.broker.kick("alice", "phone", reason="test")
        await _until_closed(live)


async def test_a_pipelined_disconnect_is_clean_and_sends_no_will(app: App) -> None:
    """CONNECT (keep-alive 0, with a will) and DISCONNECT in one write: the DISCONNECT may be read
    before amqtt has set up its disconnect handling; it is still a clean one, so no will."""
    from tests.mqttraw import connect_packet

    watcher = await raw_connect(app.mqtt_port, "watch-1", "svc:a", PASSWORD)
    assert await subscribe(watcher, "t/#") == GRANTED
    for i in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", app.mqtt_port)
        writer.write(connect_packet(f"leaver-{i}", "svc:b", PASSWORD, keepalive=0, will=("t/will", b"gone"))
                     + b"\xe0\x00")
        assert (await asyncio.wait_for(reader.readexactly(4), 10))[:2] == b"\x20\x02"
        assert await asyncio.wait_for(reader.read(), 10) == b""  # then closed by the server
        writer.close()
    publisher = await raw_connect(app.mqtt_port, "pub-2", "svc:b", PASSWORD)
    await publish(publisher, "t/barrier", b"after", qos=1, packet_id=1)
    packet = await read_packet(watcher)  # the first thing the watcher gets is the barrier, no will
    assert packet.publish_fields()[0] == "t/barrier"
    publisher.close()
    watcher.close()


async def test_users_wait_until_the_bridge_is_attached(database_url: str) -> None:
    """Before the consumer of their messages is attached, a user's PUBLISH would be acknowledged
    and reach nobody: users are refused with CONNACK 3 (server unavailable) until then."""
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(Database(database_url))
        svc = build_services(SystemClock())
        await svc.users.add_user("alice")
        token = (await svc.users.issue_token("alice", "phone")).token
        broker = await stack.enter_async_context(EmbeddedBroker(
            host="127.0.0.1", port=0, authenticator=svc.users, acl=topic_acl("im"),
            service_accounts={"svc:test": "x" * 20}, keepalive_grace=1.5, auth_poll_interval=1.0,
            accept_users=False))
        early = await raw_connect(broker.port, "alice:phone", "alice", token)
        assert early.return_code == 3
        early5 = await connect5(broker.port, "alice:phone", "alice", token)
        assert early5.connack is not None and early5.connack.reason == 0x89  # MQTT 5: server busy
        internal = await raw_connect(broker.port, "bridge-1", "svc:test", "x" * 20)
        assert internal.return_code == 0  # the bridge itself (over MQTT) may connect
        assert broker.broker is not None
        broker.broker.accepting = True
        later = await raw_connect(broker.port, "alice:phone", "alice", token)
        assert later.return_code == 0
        for conn in (internal, later):
            conn.close()
