"""Hostile clients, round three (issue 24, findings 3, 4 and 9), replayed against the real
platform with raw clients: every packet type counts against a connection's pace, a client that
does not read its answers is cut off, properties and filters are bounded before they are decoded
and weigh in every byte bound, and a user's will is the broker's own offline presence (no
properties, at the presence rate).

Each of these tests fails on 7926294, where only PUBLISH/SUBSCRIBE/UNSUBSCRIBE were paced,
properties were decoded whatever their number, and a user's will went out with its properties on
every dropped connection."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import pytest

from broker import codec
from broker.hub import Hub
from config.settings import Settings
from imgate.app import App
from tests.broker.test_mqtt_semantics import PASSWORD, with_broker
from tests.conftest import Users
from tests.mqtt5raw import Raw5, ack_packet, connect5, connect_packet, publish_packet, subscribe_packet

WATCHER = {"username": "svc:watch", "password": PASSWORD, "acl": ["read presence/#", "readwrite t/#"]}
PUBLISHER = {"username": "svc:pub", "password": PASSWORD, "acl": ["readwrite t/#", "write im/bob/in/#"]}


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[App]:
    """The shipped per-connection pace for users (100 packets/s, burst 200); accounts unpaced."""
    s = with_broker(settings, publish_rate=100.0, publish_burst=200.0, accounts=[WATCHER, PUBLISHER])
    async with App(s) as running:
        yield running


async def _until(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Poll the server's state, bounded (there is no event to wait on)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def _hub(app: App) -> Hub:
    assert app.broker is not None and app.broker.broker is not None
    return app.broker.broker


# ---- finding 3: every packet type counts against the pace -----------------------------------------
@pytest.mark.parametrize("packet", [
    b"\xc0\x00",  # PINGREQ
    ack_packet(codec.PUBACK, 4242),  # acknowledges nothing the server sent
    ack_packet(codec.PUBREC, 4242),
    ack_packet(codec.PUBCOMP, 4242),
    ack_packet(codec.PUBREL, 4242),  # releases nothing it received
], ids=["pingreq", "puback", "pubrec", "pubcomp", "pubrel"])
async def test_a_flood_of_any_packet_type_is_paced(app: App, users: Users, packet: bytes) -> None:
    """Attack: 20,000 PINGREQs (or unsolicited acks) written at once into a socket the client
    never reads. Before, all were read and answered at once (5.8 million in 5 s stalled everybody);
    now each costs like a PUBLISH: past the burst of 200 the connection is read at 100 a second."""
    await users.add("mallory", "bob")
    mallory = await connect5(app.mqtt_port, "mallory:x", "mallory", await users.token("mallory", "x"))
    assert mallory.connack is not None and mallory.connack.reason == 0
    stats = _hub(app).stats
    assert stats.paced == 0
    mallory.send(packet * 20_000)
    await _until(lambda: stats.paced > 0)
    # Paced, not refused: the connection stays, and everybody else is served meanwhile.
    bob = await connect5(app.mqtt_port, "bob:phone", "bob", await users.token("bob"))
    bob.send(b"\xc0\x00")
    assert (await bob.read_kind(codec.PINGRESP)).kind == codec.PINGRESP
    assert not mallory.reader.at_eof()
    bob.close()
    mallory.close()


async def test_an_unpaced_accounts_pings_are_paced_all_the_same(app: App) -> None:
    """A service account without a publish rate publishes freely, but what only asks for an
    answer (PINGREQ, acknowledgements of nothing) goes at the users' pace."""
    stats = _hub(app).stats
    account = await connect5(app.mqtt_port, "pub-ping", "svc:pub", PASSWORD)
    account.send(b"\xc0\x00" * 20_000)
    await _until(lambda: stats.paced > 0)
    account.close()


async def test_acks_of_what_the_server_sent_are_not_charged(app: App, users: Users) -> None:
    """A receiver acknowledging 500 deliveries (more than the burst of 200) is not slowed: each
    ack was paid for by the message it acknowledges. (Its unsolicited acks are: see above.)"""
    await users.add("bob")
    stats = _hub(app).stats
    bob = await connect5(app.mqtt_port, "bob:phone", "bob", await users.token("bob"))
    bob.send(subscribe_packet(1, [("im/bob/in/feed", 1)]))
    assert (await bob.read_kind(codec.SUBACK)).codes == [1]
    publisher = await connect5(app.mqtt_port, "pub-1", "svc:pub", PASSWORD)  # an account: unpaced
    publisher.send(b"".join(publish_packet("im/bob/in/feed", b"%d" % i, qos=1, packet_id=i + 1) for i in range(500)))
    got = 0
    while got < 500:
        packet = await bob.read_kind(codec.PUBLISH)
        assert packet.packet_id
        bob.send(ack_packet(codec.PUBACK, packet.packet_id))
        got += 1
    bob.send(b"\xc0\x00")  # answered after every PUBACK before it was handled
    await bob.read_kind(codec.PINGRESP)
    assert stats.paced == 0
    bob.close()
    publisher.close()


# ---- unread output ---------------------------------------------------------------------------------
@pytest.fixture
async def small(settings: Settings) -> AsyncIterator[App]:
    """Unpaced accounts, and the smallest unread-output bound the settings allow."""
    s = with_broker(settings, accounts=[WATCHER, PUBLISHER], max_packet_bytes=1024, max_inflight_bytes=1024,
                    max_unread_bytes=(1 << 20) + 3 * 1024)
    async with App(s) as running:
        yield running


async def test_a_client_that_does_not_read_its_answers_is_cut_off(small: App) -> None:
    """Attack: an unpaced client writes PINGREQs and never reads a PINGRESP. Before, the server
    buffered the answers without end (12-13 MB in 5 s); now, past ``broker.max_unread_bytes``, the
    connection is aborted."""
    app = small
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", app.mqtt_port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(connect_packet("flood-1", "svc:pub", PASSWORD))  # an account: unpaced
    stats = _hub(app).stats
    pings = b"\xc0\x00" * 32768
    cut = False
    try:
        for _ in range(2000):  # at most 128 MiB of PINGREQs: 64 MiB of answers
            writer.write(pings)
            await writer.drain()
            if stats.unread_cutoffs:
                cut = True
                break
    except ConnectionError:
        cut = True
    finally:
        writer.close()
    await _until(lambda: stats.unread_cutoffs == 1)
    assert cut
    del reader


# ---- finding 4: property bombs -------------------------------------------------------------------
def _raw(first: int, body: bytes) -> bytes:
    return bytes((first,)) + codec.remaining_length(len(body)) + body


def _publish_with_props(topic: str, props: bytes, payload: bytes = b"{}", packet_id: int = 1) -> bytes:
    t = topic.encode()
    body = len(t).to_bytes(2, "big") + t + packet_id.to_bytes(2, "big") + codec.remaining_length(len(props)) + props
    return _raw(0x32, body + payload)  # QoS 1


EMPTY_USER_PROPERTY = b"\x26\x00\x00\x00\x00"


async def _refused(conn: Raw5, reason: int = 0x97) -> None:
    got = await conn.read_kind(codec.DISCONNECT)
    assert got.reason == reason, got
    assert await conn.closed()


async def test_a_publish_of_209000_user_properties_is_refused_before_decoding(app: App, users: Users) -> None:
    """Attack: a 1 MiB PUBLISH of ~209,000 empty User Properties cost 0.2-0.37 s of decoding and
    13.5 MB of objects, whatever its topic. Its property length alone is over the limit now."""
    await users.add("mallory")
    mallory = await connect5(app.mqtt_port, "mallory:x", "mallory", await users.token("mallory", "x"))
    mallory.send(_publish_with_props("im/mallory/out/msg", EMPTY_USER_PROPERTY * 209_000))
    await _refused(mallory)


async def test_properties_are_capped_in_count_and_bytes(app: App, users: Users) -> None:
    """``broker.max_properties`` (32) and ``broker.max_property_bytes`` (8 KiB): at the limit a
    PUBLISH is taken; one more property, or one more byte, closes the connection (0x97)."""
    await users.add("mallory")
    token = await users.token("mallory", "x")
    ok = await connect5(app.mqtt_port, "mallory:x", "mallory", token)
    ok.send(_publish_with_props("t/nobody", EMPTY_USER_PROPERTY * 32))  # denied topic: PUBACK 0x87
    assert (await ok.read_kind(codec.PUBACK)).reason == 0x87
    big = b"\x26\x00\x01k" + (8192 - 6).to_bytes(2, "big") + b"v" * (8192 - 6)  # 8,192 bytes: one property
    ok.send(_publish_with_props("t/nobody", big, packet_id=2))
    assert (await ok.read_kind(codec.PUBACK)).reason == 0x87
    ok.send(_publish_with_props("t/nobody", EMPTY_USER_PROPERTY * 33, packet_id=3))
    await _refused(ok)
    again = await connect5(app.mqtt_port, "mallory:x", "mallory", token)
    over = b"\x26\x00\x01k" + (8192 - 5).to_bytes(2, "big") + b"v" * (8192 - 5)
    again.send(_publish_with_props("t/nobody", over))
    await _refused(again)


async def test_a_subscribe_of_262000_filters_is_refused_before_decoding_them(app: App, users: Users) -> None:
    """Attack: a SUBSCRIBE of ~262,000 one-character filters cost ~0.9 s. At most
    ``broker.max_filters_per_packet`` (64) are decoded; the 65th closes the connection. So does an
    UNSUBSCRIBE of as many."""
    await users.add("mallory")
    token = await users.token("mallory", "x")
    mallory = await connect5(app.mqtt_port, "mallory:x", "mallory", token)
    body = (1).to_bytes(2, "big") + b"\x00" + b"\x00\x01a\x00" * 262_000
    mallory.send(_raw(0x82, body))
    await _refused(mallory)
    again = await connect5(app.mqtt_port, "mallory:x", "mallory", token)
    again.send(subscribe_packet(1, [(f"im/mallory/in/{i}", 1) for i in range(64)]))
    assert len((await again.read_kind(codec.SUBACK)).codes) == 64
    again.send(_raw(0xA2, (2).to_bytes(2, "big") + b"\x00" + b"\x00\x01a" * 65))
    await _refused(again)


async def test_a_connect_full_of_user_properties_is_refused_before_login(app: App) -> None:
    """Attack: before any credentials, a 64 KiB CONNECT of User Properties cost ~30 ms to decode.
    Now it is answered CONNACK 0x97 (quota exceeded) as soon as its property length is read."""
    props = EMPTY_USER_PROPERTY * 13_000
    variable = b"\x00\x04MQTT\x05\x02\x00\x3c" + codec.remaining_length(len(props)) + props
    payload = b"\x00\x05bomb1"
    reader, writer = await asyncio.open_connection("127.0.0.1", app.mqtt_port)
    writer.write(_raw(0x10, variable + payload))
    conn = Raw5(reader, writer)
    connack = await conn.read()
    assert (connack.kind, connack.reason) == (codec.CONNACK, 0x97), connack
    assert await conn.closed()


async def test_property_bytes_count_in_a_sessions_queue(settings: Settings) -> None:
    """Attack: messages with a tiny payload and kilobytes of User Properties, queued for an
    offline session, were counted by their payload alone (24 MB queued past a 4 MiB bound). Now
    their properties weigh too: a 16 KiB queue keeps two of ten 7 KiB messages."""
    s = with_broker(settings, accounts=[WATCHER, PUBLISHER], max_queued_bytes=16 * 1024)
    async with App(s) as app:
        sub = await connect5(app.mqtt_port, "sub-1", "svc:watch", PASSWORD, clean_start=False,
                             props={codec.P_SESSION_EXPIRY: 600})
        sub.send(subscribe_packet(1, [("t/q", 1)]))
        assert (await sub.read_kind(codec.SUBACK)).codes == [1]
        sub.close()
        await _until(lambda: not _hub(app).sessions["sub-1"].connected)
        pub = await connect5(app.mqtt_port, "pub-1", "svc:pub", PASSWORD)
        heavy = {codec.P_USER: [("k", "v" * 7000)]}
        for i in range(10):
            pub.send(publish_packet("t/q", str(i).encode(), qos=1, packet_id=i + 1, props=heavy))
            assert (await pub.read_kind(codec.PUBACK)).packet_id == i + 1
        back = await connect5(app.mqtt_port, "sub-1", "svc:watch", PASSWORD, clean_start=False,
                              props={codec.P_SESSION_EXPIRY: 600})
        got = []
        back.send(publish_packet("t/end", b"end", qos=0))  # not subscribed: a PINGREQ marks the end
        back.send(b"\xc0\x00")
        while True:
            packet = await back.read()
            if packet.kind == codec.PINGRESP:
                break
            if packet.kind == codec.PUBLISH:
                got.append(packet.payload)
                if packet.packet_id:
                    back.send(ack_packet(codec.PUBACK, packet.packet_id))
        assert got == [b"8", b"9"]  # the oldest were dropped (queue_policy drop_oldest)
        back.close()
        pub.close()


# ---- finding 9: wills -------------------------------------------------------------------------------
async def _watch(app: App) -> Raw5:
    watcher = await connect5(app.mqtt_port, "watch-1", "svc:watch", PASSWORD)
    watcher.send(subscribe_packet(1, [("presence/alice/+", 1), ("t/barrier", 1)]))
    assert (await watcher.read_kind(codec.SUBACK)).codes == [1, 1]
    return watcher


async def _until_barrier(watcher: Raw5) -> list[tuple[str, bytes, dict[int, object]]]:
    """Everything routed to the watcher before now: it publishes to itself and reads up to that."""
    watcher.send(publish_packet("t/barrier", b"barrier", qos=1, packet_id=99))
    seen = []
    while True:
        packet = await watcher.read()
        if packet.kind != codec.PUBLISH:
            continue
        if packet.packet_id:
            watcher.send(ack_packet(codec.PUBACK, packet.packet_id))
        if packet.topic == "t/barrier":
            return seen
        assert packet.topic is not None
        seen.append((packet.topic, packet.payload, packet.props))


WILL_PROPS = {codec.P_CONTENT_TYPE: "text/html", codec.P_RESPONSE_TOPIC: "im/alice/in/msg",
              codec.P_USER: [("x", "y" * 4000)]}


async def test_a_users_will_goes_out_as_presence_without_its_properties(app: App, users: Users) -> None:
    """Attack: the server replaced a user's will payload but forwarded its properties (Response
    Topic, Content Type, a 60,000-character User Property) to everyone watching that user's
    presence. Now the offline presence carries none of them: only the server's own label of its
    payload (protocol "Encodings")."""
    await users.add("alice")
    watcher = await _watch(app)
    alice = await connect5(app.mqtt_port, "alice:phone", "alice", await users.token("alice"),
                           will=("presence/alice/phone", b'{"online":false}', 1, True, WILL_PROPS))
    assert alice.connack is not None and alice.connack.reason == 0
    alice.writer.transport.abort()  # dropped: the will is due
    offline: list[tuple[str, bytes, dict[int, object]]] = []
    while not offline:
        offline = [m for m in await _until_barrier(watcher) if b'"online":false' in m[1]]
    assert [m[2] for m in offline] == [{0x03: "application/json"}], offline  # Content Type
    watcher.close()


async def test_a_users_wills_obey_the_presence_rate(settings: Settings) -> None:
    """Attack: a will fired on every dropped connection, outside the presence rate (400 drops in
    1.1 s). Twenty take-overs of one device, each connection with a will, now announce at most one
    offline presence within ``broker.presence_min_interval_ms``."""
    s = with_broker(settings, accounts=[WATCHER, PUBLISHER], presence_min_interval_ms=60_000)
    async with App(s) as app:
        assert app.services is not None
        await app.services.users.add_user("alice")
        token = (await app.services.users.issue_token("alice", "phone")).token
        watcher = await _watch(app)
        conns = []
        for _ in range(20):  # each CONNACK comes after the previous connection has ended (take-over)
            conn = await connect5(app.mqtt_port, "alice:phone", "alice", token,
                                  will=("presence/alice/phone", b'{"online":false}', 1, False, {}))
            assert conn.connack is not None and conn.connack.reason == 0
            conns.append(conn)
        seen = await _until_barrier(watcher)
        presence = [m[1] for m in seen if m[0] == "presence/alice/phone"]
        # The first connection's online presence, then nothing within the interval: no will.
        assert len(presence) == 1 and b'"online":true' in presence[0], seen
        for conn in conns:
            conn.close()
        watcher.close()


# ---- refused logins are answered slowly -----------------------------------------------------------
async def test_a_refused_login_is_answered_after_the_refusal_delay(settings: Settings) -> None:
    """Attack: unauthenticated clients reconnecting as soon as they are refused (the connect-bomb
    of bench.faults: ~4,700 refused CONNECTs a second took a whole core). A refused login (here a
    wrong token, and an oversized CONNECT) is answered ``broker.refusal_delay_ms`` later, so such a
    client gets a few tries a second; at most ``broker.max_delayed_refusals`` wait at once, and a
    good login is never delayed."""
    s = with_broker(settings, refusal_delay_ms=60_000, max_delayed_refusals=2)
    async with App(s) as app:
        assert app.services is not None
        await app.services.users.add_user("alice")
        token = (await app.services.users.issue_token("alice", "phone")).token
        stats = _hub(app).stats
        wrong = [asyncio.create_task(connect5(app.mqtt_port, "alice:phone", "alice", "imt_wrong")) for _ in range(2)]
        await _until(lambda: stats.delayed_refusals == 2)
        # Two refusals wait (a minute): a third is answered at once, and a good login is not held.
        third = await connect5(app.mqtt_port, "alice:phone", "alice", "imt_wrong")
        assert third.connack is not None and third.connack.reason == 0x86
        good = await connect5(app.mqtt_port, "alice:phone", "alice", token)
        assert good.connack is not None and good.connack.reason == 0
        assert not any(t.done() for t in wrong)  # still waiting for their answer
        for t in wrong:
            t.cancel()
        good.close()
        third.close()


async def test_a_refused_client_that_closes_gives_its_place_up(settings: Settings) -> None:
    """Clients that send a bad CONNECT and close without waiting for the answer must not keep the
    delayed refusals' places taken (else a few hundred such connects a second would turn the
    delay off for everybody): a client that closes gives its place up at once."""
    s = with_broker(settings, refusal_delay_ms=60_000, max_delayed_refusals=1)
    async with App(s) as app:
        stats = _hub(app).stats
        reader, writer = await asyncio.open_connection("127.0.0.1", app.mqtt_port)
        writer.write(connect_packet("alice:phone", "alice", "imt_wrong"))
        await _until(lambda: stats.delayed_refusals == 1)
        writer.close()  # gone without its answer
        # Its place is free again: the next refusal waits (it would be answered at once if not).
        waiting = asyncio.create_task(connect5(app.mqtt_port, "alice:phone", "alice", "imt_wrong"))
        await _until(lambda: stats.delayed_refusals == 2)
        assert not waiting.done()
        waiting.cancel()
        del reader
