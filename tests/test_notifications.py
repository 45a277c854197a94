"""System notifications: stored, delivered once to each device, now or when it comes back."""

from __future__ import annotations

import asyncio
import itertools
import json

import httpx
import pytest

from imgate.app import App
from tests.conftest import ADMIN_SECRET, Users
from tests.helpers import connect, on


@pytest.fixture
def admin_secret() -> str:
    return ADMIN_SECRET


def notify_of(device: str):
    return lambda r: r.topic.endswith(f"/in/notify/{device}")


async def test_online_devices_each_get_it_once_on_their_own_topic(app: App, users: Users,
                                                                  api: httpx.AsyncClient) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice", "phone"),
                       clean_session=False) as phone, \
               connect(app.mqtt_port, "alice", "desk", await users.token("alice", "desk"), clean_session=False) as desk:
        async with asyncio.timeout(10):  # the bridge has recorded both devices as online
            while not all(d["online"] for d in (await phone.result("presence", {"uids": ["alice"]}))
                          ["presence"]["alice"]["devices"]) or len((await phone.result(
                              "presence", {"uids": ["alice"]}))["presence"]["alice"]["devices"]) < 2:
                pass
        r = await api.post("/v1/notifications", json={"uids": ["alice"], "body": {"title": "maintenance at 2am"}})
        assert r.status_code == 201 and r.json() == {"users": 1, "devices_now": 2}
        got = (await phone.inbox.wait_for(notify_of("phone")))[0].json
        assert got["type"] == "system" and got["body"] == {"title": "maintenance at 2am"} and got["id"] > 0
        await desk.inbox.wait_for(notify_of("desk"))
        await phone.send_and_ack("barrier", "bob")  # later traffic: no second copy anywhere
        await desk.inbox.wait_for(on("/in/msg", cid="barrier"))
        assert len(phone.inbox.matching(lambda r: "/in/notify" in r.topic)) == 1
        assert len(desk.inbox.matching(lambda r: "/in/notify" in r.topic)) == 1


async def test_a_device_that_was_away_gets_it_when_it_comes_back_and_only_once(app: App, users: Users,
                                                                               api: httpx.AsyncClient) -> None:
    await users.add("alice")
    token = await users.token("alice", "tablet")
    async with connect(app.mqtt_port, "alice", "tablet", token, clean_session=False):
        pass  # a persistent session with its subscription, then away
    r = await api.post("/v1/notifications", json={"everyone": True, "body": {"n": 1}})
    # (Whether it is handed over now, into the session's offline queue, or on the way back in
    # depends on when the bridge records the disconnect; either way the tablet gets it once.)
    assert r.json()["users"] == 1
    async with connect(app.mqtt_port, "alice", "tablet", token, clean_session=False, subscribe=[]) as tablet:
        got = (await tablet.inbox.wait_for(notify_of("tablet")))[0].json
        assert got["body"] == {"n": 1}
    async with connect(app.mqtt_port, "alice", "tablet", token, clean_session=False, subscribe=[]) as tablet:
        assert (await tablet.result("notifications", {}, on_device=True)) == {"notifications": []}
        assert tablet.inbox.matching(notify_of("tablet")) == []


async def test_clean_session_devices_pull_with_the_rpc(app: App, users: Users, api: httpx.AsyncClient) -> None:
    await users.add("bob")
    token = await users.token("bob", "web", "web")
    await api.post("/v1/notifications", json={"uids": ["bob"], "body": {"a": 1}})
    await api.post("/v1/notifications", json={"uids": ["bob"], "body": {"b": 2}})
    async with connect(app.mqtt_port, "bob", "web", token) as web:
        pulled = (await web.result("notifications", {}, on_device=True))["notifications"]
        assert [n["body"] for n in pulled] == [{"a": 1}, {"b": 2}]
        assert (await web.result("notifications", {}, on_device=True))["notifications"] == []


async def test_a_device_registered_later_does_not_get_older_notifications(app: App, users: Users,
                                                                          api: httpx.AsyncClient) -> None:
    await users.add("carol")
    await api.post("/v1/notifications", json={"uids": ["carol"], "body": {"old": True}})
    token = await users.token("carol", "new")
    await api.post("/v1/notifications", json={"uids": ["carol"], "body": {"new": True}})
    async with connect(app.mqtt_port, "carol", "new", token) as dev:
        pulled = (await dev.result("notifications", {}, on_device=True))["notifications"]
        assert [n["body"] for n in pulled] == [{"new": True}]


@pytest.mark.parametrize(("body", "status"), [
    ({"uids": ["ghost"], "body": {"x": 1}}, 404),
    ({"uids": ["alice"], "body": {}}, 400),
    ({"uids": ["alice"], "everyone": True, "body": {"x": 1}}, 400),
    ({"body": {"x": 1}}, 400),
    ({"uids": "alice", "body": {"x": 1}}, 400),
])
async def test_bad_notification_requests(users: Users, api: httpx.AsyncClient, body: dict, status: int) -> None:
    await users.add("alice")
    r = await api.post("/v1/notifications", json=body)
    assert r.status_code == status and r.json()["error"]["message"]


async def test_a_device_cannot_take_another_devices_notifications(app: App, users: Users,
                                                                 api: httpx.AsyncClient) -> None:
    """Attack: alice's phone asked for the tablet's notifications (`device` was any name) and
    got them, so the tablet never did. The device now comes from the topic
    ``im/{uid}/out/rpc/{device}``, which only that device may publish to."""
    await users.add("alice")
    tablet_token = await users.token("alice", "tablet")
    phone_token = await users.token("alice", "phone")
    await api.post("/v1/notifications", json={"uids": ["alice"], "body": {"for": "everyone"}})
    async with connect(app.mqtt_port, "alice", "phone", phone_token) as phone:
        asked = await phone.rpc("notifications", {"device": "tablet"})  # the old way: refused
        assert asked["error"]["code"] == -32602 and "out/rpc/{device}" in asked["error"]["message"]
        asked = await phone.rpc("notifications", {"device": "tablet"}, on_device=True)  # another device's name
        assert asked["error"]["code"] == -32602
        # Publishing on the tablet's topic is not allowed: the broker drops it (no answer);
        # the phone's own request afterwards is answered, so the dropped one was handled first.
        await phone.client.publish("im/alice/out/rpc/tablet", json.dumps(
            {"jsonrpc": "2.0", "id": 99, "method": "notifications", "params": {}}), qos=1)
        mine = await phone.result("notifications", {}, on_device=True)
        assert [n["body"] for n in mine["notifications"]] == [{"for": "everyone"}]
        assert phone.inbox.matching(on("/in/rpc", id=99)) == []
    async with connect(app.mqtt_port, "alice", "tablet", tablet_token) as tablet:
        theirs = await tablet.result("notifications", {}, on_device=True)
        assert [n["body"] for n in theirs["notifications"]] == [{"for": "everyone"}]


async def test_a_cbor_device_gets_its_notifications_in_cbor(app: App, users: Users, api: httpx.AsyncClient) -> None:
    """protocol.md "Encodings": notifications too are in the device's encoding."""
    import cbor2

    from tests.helpers import named

    await users.add("erin")
    async with connect(app.mqtt_port, "erin", "board", await users.token("erin", "board", encoding="cbor")) as board:
        async with asyncio.timeout(10):  # until the bridge has recorded the device as online (asked in CBOR)
            for n in itertools.count(1):
                await board.client.publish("im/erin/out/rpc", cbor2.dumps(
                    {14: "2.0", 1: n, 15: "presence", 16: {"uids": ["erin"]}}), qos=1)
                reply = named(cbor2.loads((await board.inbox.wait_for(on("/in/rpc", id=n)))[0].payload))
                devices = reply["result"]["presence"]["erin"]["devices"]
                if devices and all(d["online"] for d in devices):
                    break
        r = await api.post("/v1/notifications", json={"uids": ["erin"], "body": {"title": "hi", "n": 2}})
        assert r.status_code == 201
        got = (await board.inbox.wait_for(notify_of("board")))[0]
        body = named(cbor2.loads(got.payload))
        assert body["type"] == "system" and body["body"] == {"title": "hi", "n": 2}
