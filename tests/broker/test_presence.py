"""Server-side presence (protocol §5): online on connect, offline with last-seen on every kind of
disconnect, whether or not the client set a will."""

from __future__ import annotations

import asyncio
import signal
import time

import paho.mqtt.client as paho

from imgate.app import App
from tests.conftest import Users
from tests.helpers import Device, Received, connect
from tests.mqttraw import raw_connect


def presence_of(uid: str, device: str, online: bool):
    topic = f"presence/{uid}/{device}"
    return lambda r: r.topic == topic and r.json.get("online") is online


async def _observer(app: App, users: Users, uid: str = "bob"):
    await users.add("watcher")
    return connect(app.mqtt_port, "watcher", "phone", await users.token("watcher"),
                   subscribe=["im/watcher/in/#", f"presence/{uid}/+"])


async def _rpc_online(watcher: Device, uid: str) -> bool:
    return (await watcher.result("presence", {"uids": [uid]}))["presence"][uid]["online"]


async def _until_rpc_says(watcher: Device, uid: str, online: bool) -> None:
    """The bridge records presence asynchronously; poll the RPC until it agrees (bounded)."""
    async with asyncio.timeout(10):
        while await _rpc_online(watcher, uid) is not online:
            pass


async def test_online_on_connect_offline_on_clean_disconnect(app: App, users: Users) -> None:
    await users.add("bob")
    token = await users.token("bob", "laptop", "web")
    async with await _observer(app, users) as watcher:
        before = int(time.time() * 1000)
        async with connect(app.mqtt_port, "bob", "laptop", token):
            online = (await watcher.inbox.wait_for(presence_of("bob", "laptop", True)))[0].json
            assert online["platform"] == "web" and online["ts"] >= before
            await _until_rpc_says(watcher, "bob", True)
        offline = (await watcher.inbox.wait_for(presence_of("bob", "laptop", False)))[-1].json
        assert offline["ts"] >= online["ts"] and "platform" not in offline
        await _until_rpc_says(watcher, "bob", False)
        devices = (await watcher.result("presence", {"uids": ["bob"]}))["presence"]["bob"]["devices"]
        assert devices[0]["device"] == "laptop" and devices[0]["online"] is False


async def test_presence_is_retained_for_late_subscribers(app: App, users: Users) -> None:
    await users.add("bob")
    async with connect(app.mqtt_port, "bob", "laptop", await users.token("bob", "laptop")):
        async with await _observer(app, users) as watcher:
            got: list[Received] = await watcher.inbox.wait_for(presence_of("bob", "laptop", True))
            assert got[0].retain


async def test_offline_when_the_socket_just_drops(app: App, users: Users) -> None:
    """mosquitto_sub killed with SIGKILL: no DISCONNECT, no will."""
    await users.add("bob")
    token = await users.token("bob", "pi", "linux")
    async with await _observer(app, users) as watcher:
        proc = await asyncio.create_subprocess_exec(
            "mosquitto_sub", "-h", "127.0.0.1", "-p", str(app.mqtt_port), "-u", "bob", "-P", token,
            "-i", "bob:pi", "-t", "im/bob/in/#")
        try:
            await watcher.inbox.wait_for(presence_of("bob", "pi", True))
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        await watcher.inbox.wait_for(presence_of("bob", "pi", False))


async def test_offline_after_keepalive_expiry(app: App, users: Users) -> None:
    """A client that connects with keep-alive 1 s and then goes silent is dropped after 1.5 s."""
    await users.add("bob")
    async with await _observer(app, users) as watcher:
        conn = await raw_connect(app.mqtt_port, "bob:phone", "bob", await users.token("bob"), keepalive=1)
        assert conn.return_code == 0
        await watcher.inbox.wait_for(presence_of("bob", "phone", True))
        assert await conn.closed_by_server(10), "the broker kept a silent connection open"
        await watcher.inbox.wait_for(presence_of("bob", "phone", False))
        conn.close()


async def test_paho_client_that_stops_pinging_goes_offline_and_its_will_is_sent(app: App, users: Users) -> None:
    """The will is sent as the broker's own offline presence, once, with the server's time: a
    client cannot date its presence (a will claiming ``ts`` far in the future would pin its
    last-seen time and win over later updates), nor add its own fields."""
    await users.add("bob")
    token = await users.token("bob", "tv")
    started = time.time_ns() // 1_000_000
    future = started + 10 * 365 * 86400 * 1000
    async with await _observer(app, users) as watcher:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bob:tv")
        client.username_pw_set("bob", token)
        client.will_set("presence/bob/tv", f'{{"online":false,"ts":{future},"will":true}}'.encode(), qos=1,
                        retain=True)
        await asyncio.to_thread(client.connect, "127.0.0.1", app.mqtt_port, 1)
        client.loop_start()
        await watcher.inbox.wait_for(presence_of("bob", "tv", True))
        client.loop_stop()  # keeps the socket open but stops sending PINGREQ
        try:
            offline = await watcher.inbox.wait_for(
                lambda r: r.topic == "presence/bob/tv" and r.json.get("online") is False)
            now = time.time_ns() // 1_000_000
            assert all(started <= r.json["ts"] <= now and "will" not in r.json for r in offline), offline
            await _until_rpc_says(watcher, "bob", False)
            # One announcement, not the will and the broker's own (both were routed before this
            # answer, which comes through the same session's queue).
            await watcher.result("presence", {"uids": ["bob"]})
            assert len(watcher.inbox.matching(
                lambda r: r.topic == "presence/bob/tv" and r.json.get("online") is False)) == 1
            devices = (await watcher.result("presence", {"uids": ["bob"]}))["presence"]["bob"]["devices"]
            assert devices[0]["online"] is False and started <= devices[0]["ts"] <= now
        finally:
            sock = client.socket()
            if sock is not None:
                sock.close()


async def test_take_over_leaves_the_device_online(app: App, users: Users) -> None:
    await users.add("bob")
    token = await users.token("bob")
    async with await _observer(app, users) as watcher, connect(app.mqtt_port, "bob", "phone", token) as first:
        await watcher.inbox.wait_for(presence_of("bob", "phone", True))
        async with connect(app.mqtt_port, "bob", "phone", token) as second:
            await asyncio.wait_for(first.disconnected.wait(), 10)
            # Whatever the order of the events, the last word is "online" while second is up.
            await second.result("conversations")
            await _until_rpc_says(watcher, "bob", True)
            last = [r for r in watcher.inbox.items if r.topic == "presence/bob/phone"][-1]
            assert last.json["online"] is True


async def test_user_online_while_any_device_is(app: App, users: Users) -> None:
    await users.add("bob")
    async with await _observer(app, users) as watcher:
        async with connect(app.mqtt_port, "bob", "phone", await users.token("bob", "phone")):
            async with connect(app.mqtt_port, "bob", "desk", await users.token("bob", "desk")):
                await watcher.inbox.wait_for(presence_of("bob", "desk", True))
            await watcher.inbox.wait_for(presence_of("bob", "desk", False))
            await _until_rpc_says(watcher, "bob", True)
            devices = {d["device"]: d["online"] for d in
                       (await watcher.result("presence", {"uids": ["bob"]}))["presence"]["bob"]["devices"]}
            assert devices == {"phone": True, "desk": False}


async def test_a_flapping_device_does_not_storm_its_watchers(app: App, users: Users) -> None:
    """Ten connect/disconnect cycles in a row: watchers get a few presence messages, not twenty,
    and the last one is the state the device settled in."""
    await users.add("bob")
    token = await users.token("bob", "flappy")
    async with await _observer(app, users) as watcher:
        for _ in range(10):
            conn = await raw_connect(app.mqtt_port, "bob:flappy", "bob", token)
            assert conn.return_code == 0
            conn.close()
        await _until_rpc_says(watcher, "bob", False)
        settled = await watcher.inbox.wait_for(presence_of("bob", "flappy", False))
        seen = [r for r in watcher.inbox.items if r.topic == "presence/bob/flappy"]
        assert len(seen) <= 4, [r.json for r in seen]
        assert seen[-1].json["online"] is False and settled
