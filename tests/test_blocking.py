"""Blocking (issue 15): the blocked user cannot send to the blocker in 1:1 (answered "not
allowed", like any refusal, without saying why), does not see the blocker's presence, and cannot
add the blocker to a group; block list RPCs."""

from __future__ import annotations

import httpx
import pytest

from imgate.app import App
from tests.conftest import ADMIN_SECRET, Users
from tests.helpers import connect, on


async def test_a_blocked_user_cannot_send_add_or_watch_the_blocker(app: App, users: Users) -> None:
    await users.add("alice", "mallory", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "mallory", "phone", await users.token("mallory")) as mallory:
        assert (await mallory.send_and_ack("m1", "alice", "hi"))["seq"] == 1
        assert await alice.result("block.add", {"uid": "mallory"}) == {"uid": "mallory", "blocked": True}
        assert await alice.result("block.add", {"uid": "mallory"}) == {"uid": "mallory", "blocked": True}  # again
        assert await alice.result("block.list", {}) == {"blocked": ["mallory"]}

        await mallory.send({"cid": "m2", "to": "alice", "type": "text", "text": "let me in"})
        error = (await mallory.inbox.wait_for(on("/in/ack", cid="m2")))[0].json["error"]
        assert error == {"code": "forbidden", "message": "not allowed"}
        assert [m.json["cid"] for m in alice.inbox.matching(on("/in/msg")) if m.json["from"] == "mallory"] == ["m1"]

        seen = await mallory.result("presence", {"uids": ["alice", "bob"]})
        assert seen["presence"]["alice"] == {"online": False, "devices": []}  # alice is online, mallory cannot tell
        assert (await alice.result("presence", {"uids": ["mallory"]}))["presence"]["mallory"]["online"] is True

        response = await mallory.rpc("group.create", {"name": "trap", "members": ["alice", "bob"]})
        assert response["error"]["data"]["code"] == "forbidden" and response["error"]["message"] == "not allowed"
        group = await mallory.result("group.create", {"name": "ok", "members": ["bob"]})
        response = await mallory.rpc("group.add", {"gid": group["gid"], "members": ["alice"]})
        assert response["error"]["data"]["code"] == "forbidden"

        # The blocker still writes to the blocked one; unblocking lets the other write again.
        assert "error" not in await alice.send_and_ack("a1", "mallory", "stop it")
        assert await alice.result("block.remove", {"uid": "mallory"}) == {"uid": "mallory", "blocked": False}
        assert await alice.result("block.list", {}) == {"blocked": []}
        assert "error" not in await mallory.send_and_ack("m3", "alice", "sorry")


async def test_the_blocked_user_gets_none_of_the_blockers_presence_topics(app: App, users: Users) -> None:
    """Not only the presence RPC: the broker does not deliver ``presence/{blocker}/…`` to the
    blocked user, live or retained, while others still get it."""
    await users.add("alice", "mallory", "bob")
    watch = ["presence/alice/+"]
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        await alice.result("block.add", {"uid": "mallory"})
        async with connect(app.mqtt_port, "mallory", "phone", await users.token("mallory"),
                           subscribe=["im/mallory/in/#", *watch]) as mallory, \
                connect(app.mqtt_port, "bob", "phone", await users.token("bob"),
                        subscribe=["im/bob/in/#", *watch]) as bob:
            await bob.inbox.wait_for(on("presence/alice/phone"))  # the retained one: bob gets it
            async with connect(app.mqtt_port, "alice", "laptop", await users.token("alice", "laptop")):
                await bob.inbox.wait_for(on("presence/alice/laptop"))  # and the live one
                # Anything queued for mallory before this answer would have arrived before it.
                await mallory.result("block.list", {})
                assert mallory.inbox.matching(lambda r: r.topic.startswith("presence/alice/")) == []
            await alice.result("block.remove", {"uid": "mallory"})
            async with connect(app.mqtt_port, "alice", "tablet", await users.token("alice", "tablet")):
                await mallory.inbox.wait_for(on("presence/alice/tablet"))  # unblocked: seen again


async def test_a_refused_first_message_leaves_no_conversation(app: App, users: Users) -> None:
    """Attack: the refused send still made the 1:1 conversation, so the blocker saw an empty chat
    with the blocked user appear (the block's "not allowed" hid nothing)."""
    await users.add("bob", "carol")
    async with connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob, \
            connect(app.mqtt_port, "carol", "phone", await users.token("carol")) as carol:
        await bob.result("block.add", {"uid": "carol"})
        await carol.send({"cid": "c1", "to": "bob", "type": "text", "text": "hi?"})
        error = (await carol.inbox.wait_for(on("/in/ack", cid="c1")))[0].json["error"]
        assert error == {"code": "forbidden", "message": "not allowed"}
        assert (await bob.result("conversations", {}))["items"] == []
        assert (await carol.result("conversations", {}))["items"] == []
        assert (await carol.rpc("history", {"conv": "d:bob:carol"}))["error"]["data"]["code"] == "not_found"


async def test_blocking_oneself_or_nobody_is_refused(app: App, users: Users) -> None:
    await users.add("alice")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        assert (await alice.rpc("block.add", {"uid": "alice"}))["error"]["data"]["code"] == "bad_request"
        assert (await alice.rpc("block.add", {"uid": "ghost"}))["error"]["data"]["code"] == "not_found"
        assert (await alice.rpc("block.add", {"uid": "no/such"}))["error"]["code"] == -32602


@pytest.fixture
def admin_secret() -> str:
    return ADMIN_SECRET


async def test_operators_list_add_and_remove_blocks(app: App, users: Users) -> None:
    await users.add("alice", "mallory")
    assert app.admin is not None
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.admin.port}",
                                 headers={"Authorization": f"Bearer {ADMIN_SECRET}"}) as admin:
        r = await admin.post("/v1/users/alice/blocks", json={"uid": "mallory"})
        assert (r.status_code, r.json()) == (200, {"blocked": ["mallory"]})
        assert (await admin.get("/v1/users/alice/blocks")).json() == {"blocked": ["mallory"]}
        assert (await admin.post("/v1/users/alice/blocks", json={"uid": "ghost"})).status_code == 404
        assert (await admin.post("/v1/users/ghost/blocks", json={"uid": "alice"})).status_code == 404
        assert (await admin.post("/v1/users/alice/blocks", json={"uid": "a b"})).status_code == 400
        r = await admin.delete("/v1/users/alice/blocks/mallory")
        assert (r.status_code, r.json()) == (200, {"blocked": []})
        assert (await admin.get("/v1/users/alice/blocks", headers={"Authorization": "Bearer wrong"})).status_code == 401
