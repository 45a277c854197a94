"""One user's flood against everybody else (issue 10, hole 5), with real clients against the real
platform: per-user rate limits answered with ``rate_limited`` and ``retry_after_ms``, a fair
ingress (a flood waits in its own queue), and back-pressure instead of drops (a QoS 1 message the
broker acknowledged is never lost)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest

from config.settings import Settings
from imgate.app import App
from tests.helpers import ManualClock, connect, on, platform, tweak
from tests.mqttraw import RawConnection, publish_packet, raw_connect, read_packet


def with_default_limits(settings: Settings, **broker: object) -> Settings:
    """The shipped per-user limits (the suite's fixture lifts them), and these broker settings."""
    fresh = Settings()
    return tweak(settings.model_copy(update={"limits": fresh.limits}), "broker", **broker)


@pytest.fixture
async def defaults(settings: Settings) -> AsyncIterator[tuple[App, dict[str, str]]]:
    # The per-connection publish rate stays lifted, as if the attacker used many connections.
    async with platform(with_default_limits(settings, publish_rate=0), "alice", "bob", "mallory") as running:
        yield running


async def _flood(conn: RawConnection, packets: bytes, chunk: int = 1 << 16) -> None:
    for i in range(0, len(packets), chunk):
        conn.writer.write(packets[i:i + chunk])
        await conn.writer.drain()


async def _read_all(conn: RawConnection, pubacks: asyncio.Queue[int] | None = None) -> list[int]:
    """Read until the server or the test closes the connection; the packet types seen (the
    packet ids of PUBACKs also go to ``pubacks``)."""
    kinds = []
    try:
        while True:
            packet = await read_packet(conn, timeout=120)
            kinds.append(packet.kind)
            if packet.kind == 4 and pubacks is not None:
                pubacks.put_nowait(int.from_bytes(packet.body[:2], "big"))
    except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
        return kinds


async def _until(condition: object, timeout: float = 60) -> None:
    """Poll a condition of the server's state, bounded (there is no event to wait on)."""
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def test_a_flood_of_rpcs_cannot_drop_another_users_message(defaults: tuple[App, dict[str, str]]) -> None:
    """Attack: three connections sent 12,000 QoS 0 RPCs each; the single bridge queue filled up and
    dropped 23,803 commands, among them another user's QoS 1 send that the broker had already
    acknowledged, which was never acked by imgate. Now the flood waits in its own user's queue
    (the broker stops reading it) and is rate limited; alice's message goes through."""
    app, tokens = defaults
    request = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "conversations", "params": {}}).encode()
    # 12,000 QoS 0 requests, then one QoS 1: its PUBACK says the broker has read them all.
    flood = publish_packet("im/mallory/out/rpc", request) * 12_000 + \
        publish_packet("im/mallory/out/rpc", request, qos=1, packet_id=7)
    floods = []
    for i in range(3):
        token = (await app.services.users.issue_token("mallory", f"f{i}")).token  # type: ignore[union-attr]
        conn = await raw_connect(app.mqtt_port, f"mallory:f{i}", "mallory", token)
        floods.append(conn)
    pubacks: asyncio.Queue[int] = asyncio.Queue()
    readers = [asyncio.create_task(_read_all(c, pubacks), name=f"flood-reader-{i}") for i, c in enumerate(floods)]
    writers = [asyncio.create_task(_flood(c, flood), name=f"flood-{i}") for i, c in enumerate(floods)]
    try:
        async with connect(app.mqtt_port, "bob", "phone", tokens["bob"]) as bob, \
                   connect(app.mqtt_port, "alice", "phone", tokens["alice"]) as alice:
            ack = await alice.send_and_ack("in-the-flood", "bob", "still here")
            assert ack["seq"] == 1
            await bob.inbox.wait_for(on("/in/msg", cid="in-the-flood"))
            assert app.bridge is not None
            for _ in floods:  # the flood was read (slowly) to the end
                assert await asyncio.wait_for(pubacks.get(), 120) == 7
        ingress = app.bridge.ingress
        await _until(lambda: ingress.waiting == 0 and ingress.inflight == 0)
        # It was answered within its limits: rate_limited errors, most of them not even sent.
        throttle = app.bridge.throttle
        assert throttle.limited > 20_000 and throttle.silenced > 0
    finally:
        for conn in floods:
            conn.close()
        for task in (*writers, *readers):
            task.cancel()
        await asyncio.gather(*writers, *readers, return_exceptions=True)


async def test_messages_over_the_limit_are_acked_rate_limited_and_go_through_when_retried(settings: Settings) -> None:
    """On a clock the test moves: the burst (50) is stored, the rest refused and told so up to
    the error-answer burst (20; a flood is not answered in full), and a refused message sent
    again once ``retry_after_ms`` has passed goes through."""
    clock = ManualClock(1_800_000_000_000)
    async with platform(with_default_limits(settings, publish_rate=0), "alice", "bob", clock=clock) as (app, tokens), \
            connect(app.mqtt_port, "alice", "phone", tokens["alice"]) as alice:
        burst, errors_burst = app.settings.limits.messages_burst, app.settings.limits.error_replies_burst
        for i in range(burst + 40):
            await alice.send({"cid": f"m{i}", "to": "bob", "type": "text", "text": str(i)})
        acks = {r.json["cid"]: r.json for r in await alice.inbox.wait_for(on("/in/ack"), count=burst + errors_burst)}
        stored = sorted(a["seq"] for a in acks.values() if "seq" in a)
        limited = [a for a in acks.values() if "error" in a]
        assert stored == list(range(1, burst + 1))  # the burst, and nothing refused
        assert len(limited) == errors_burst
        assert all(a["error"]["code"] == "rate_limited" and a["error"]["retry_after_ms"] == 50 for a in limited)
        assert app.bridge.throttle.silenced == 40 - errors_burst
        clock.ms += limited[0]["error"]["retry_after_ms"]  # the client waits as told
        await alice.send({"cid": limited[0]["cid"], "to": "bob", "type": "text", "text": "again"})
        again = (await alice.inbox.wait_for(on("/in/ack", cid=limited[0]["cid"]), count=2))[-1].json
        assert again["seq"] == burst + 1


async def test_a_flooding_user_waits_behind_itself_not_in_front_of_others(settings: Settings) -> None:
    """mallory sends 2,000 messages as fast as her connection allows; alice, who sends one after
    the flood has started, gets her ack while most of mallory's are still to come (before, the
    flood filled the one queue every user's messages went through)."""
    lifted = tweak(settings, "broker", publish_rate=0)
    async with platform(lifted, "alice", "bob", "mallory") as (app, tokens), \
            connect(app.mqtt_port, "mallory", "phone", tokens["mallory"], subscribe=["im/mallory/in/ack"]) as mallory, \
            connect(app.mqtt_port, "alice", "phone", tokens["alice"]) as alice:
        # mallory's phone counts the acks; only the acks: with the copies of her own 1,000 messages too
        # it would need twice the session queue (broker.max_queued, 1,000), and a test reader slowed
        # by a busy machine would see the oldest dropped.
        total = 1_000  # one conversation, so one lane: a message after another (several seconds' worth)
        flood = b"".join(publish_packet("im/mallory/out/msg", json.dumps(
            {"cid": f"f{i}", "to": "bob", "type": "text", "text": "spam"}).encode(), qos=1, packet_id=i + 1)
            for i in range(total))
        conn = await raw_connect(app.mqtt_port, "mallory:flood", "mallory",
                                 (await app.services.users.issue_token("mallory", "flood")).token)  # type: ignore[union-attr]
        writer = asyncio.create_task(_flood(conn, flood), name="flood")
        reader = asyncio.create_task(_read_all(conn), name="flood-reader")
        try:
            await mallory.inbox.wait_for(on("/in/ack"), count=50)  # the flood is being handled
            await alice.send_and_ack("between", "bob", "hello")
            done = len(mallory.inbox.matching(on("/in/ack")))
            assert done < total / 2, f"alice waited for {done} of mallory's {total} messages"
            # None of them lost: every one is acked, however slow the machine, as long as acks keep coming.
            acked = -1
            while (now := len(mallory.inbox.matching(on("/in/ack")))) < total:
                assert now > acked, f"no ack for 20 s: {now} of {total} acked"
                acked = now
                with contextlib.suppress(AssertionError):  # its timeout: check for progress, wait again
                    await mallory.inbox.wait_for(on("/in/ack"), count=total, timeout=20)
        finally:
            conn.close()
            writer.cancel()
            reader.cancel()
            await asyncio.gather(writer, reader, return_exceptions=True)


async def test_a_connection_over_its_publish_rate_is_read_more_slowly_not_dropped(settings: Settings) -> None:
    slow = tweak(settings, "broker", publish_rate=50.0, publish_burst=10.0)
    async with platform(slow, "alice", "bob") as (app, tokens), \
            connect(app.mqtt_port, "alice", "phone", tokens["alice"]) as alice:
        for i in range(60):
            await alice.send({"cid": f"r{i}", "to": "bob", "type": "text", "text": str(i)})
        await alice.inbox.wait_for(on("/in/ack"), count=60)
        assert all("seq" in r.json for r in alice.inbox.matching(on("/in/ack")))  # every one stored
        assert app.broker.broker.stats.paced > 0  # beyond the burst of 10, the connection was read more slowly
