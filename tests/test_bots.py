"""Bots (docs/bots.md): created by the admin API and the CLI, marked in deliveries and profiles,
sending over MQTT and through the admin API under the rules of any send, with their own message
buckets. Against the real server, with real MQTT clients and HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from imgate.app import App
from tests.conftest import ADMIN_SECRET, Users
from tests.helpers import Device, connect, on


@pytest.fixture
def admin_secret() -> str:
    return ADMIN_SECRET


async def _bot(api: httpx.AsyncClient, uid: str, **limits: Any) -> str:
    """Create the bot ``uid`` (and its token): its token."""
    r = await api.post("/v1/bots", json={"uid": uid, "name": uid.title(), **limits})
    assert r.status_code == 201, r.text
    token = await api.post(f"/v1/users/{uid}/tokens", json={"device": "srv", "platform": "bot"})
    assert token.status_code == 201
    return str(token.json()["token"])


async def test_a_bot_is_created_by_the_api_and_listed_with_its_kind(api: httpx.AsyncClient, users: Users) -> None:
    await users.add("alice")
    r = await api.post("/v1/bots", json={"uid": "echo", "name": "Echo", "messages_per_s": 2.5, "messages_burst": 7})
    assert r.status_code == 201
    assert {k: r.json()[k] for k in ("uid", "name", "kind", "messages_per_s", "messages_burst")} == \
        {"uid": "echo", "name": "Echo", "kind": "bot", "messages_per_s": 2.5, "messages_burst": 7}
    assert (await api.post("/v1/bots", json={"uid": "echo"})).status_code == 409
    assert (await api.post("/v1/bots", json={"uid": "alice"})).status_code == 409  # a user's uid
    listed = (await api.get("/v1/users")).json()["items"]
    assert [(u["uid"], u["kind"]) for u in listed] == [("alice", "user"), ("echo", "bot")]
    assert [u["uid"] for u in (await api.get("/v1/users", params={"kind": "bot"})).json()["items"]] == ["echo"]
    assert (await api.get("/v1/users/echo")).json()["kind"] == "bot"
    assert (await api.get("/v1/bots/echo")).json()["messages_burst"] == 7
    assert (await api.get("/v1/bots/alice")).status_code == 404  # a user is not a bot
    changed = await api.put("/v1/bots/echo/limits", json={"messages_per_s": 1.0})
    assert changed.status_code == 200
    assert (changed.json()["messages_per_s"], changed.json()["messages_burst"]) == (1.0, None)
    assert (await api.put("/v1/bots/alice/limits", json={})).status_code == 404
    # Tokens are issued to a bot as to a user.
    assert (await api.post("/v1/users/echo/tokens", json={"device": "srv"})).status_code == 201


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/bots", {"uid": "bad uid"}, "uid"),
    ("/v1/bots", {"uid": "b", "messages_per_s": 0}, "messages_per_s"),
    ("/v1/bots", {"uid": "b", "messages_burst": 0}, "messages_burst"),
    ("/v1/bots", {"uid": "b", "kind": "user"}, "kind"),
    ("/v1/bots/b/messages", {"to": "alice", "text": "hi"}, "cid"),
    ("/v1/bots/b/messages", {"cid": "1", "to": "alice", "type": "poem", "text": "hi"}, "type"),
    ("/v1/bots/b/messages", {"cid": "1", "to": "alice", "text": 5}, "text"),
    ("/v1/bots/b/messages", {"cid": "1", "to": "alice", "text": "hi", "from": "alice"}, "from"),
    ("/v1/bots/b/messages", {"cid": "1", "conv": "x:y", "text": "hi"}, "conv"),
])
async def test_bad_input_is_400_naming_the_field(api: httpx.AsyncClient, users: Users, path: str,
                                                  body: dict[str, Any], field: str) -> None:
    await users.add("alice")
    await _bot(api, "b")
    r = await api.post(path, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request" and r.json()["error"]["field"] == field


async def test_the_cli_adds_a_bot(tmp_path: Path, database_url: str) -> None:
    env = {**os.environ, "IMGATE_DATABASE__URL": database_url}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "imgate", "--data-dir", str(tmp_path), *args],
                              capture_output=True, text=True, env=env, timeout=60, check=False)

    added = run("user", "add", "remind", "--bot", "--name", "Reminder", "--messages-per-s", "3")
    assert added.returncode == 0 and "created bot remind" in added.stderr
    assert run("user", "add", "alice").returncode == 0
    bad = run("user", "add", "carol", "--messages-per-s", "3")  # limits are for bots
    assert bad.returncode == 1 and "for bots" in bad.stderr
    import json

    listed = {u["uid"]: u for u in map(json.loads, run("user", "list", "--json").stdout.splitlines())}
    assert listed["remind"]["kind"] == "bot" and listed["remind"]["messages_per_s"] == 3
    assert listed["alice"]["kind"] == "user" and "messages_per_s" not in listed["alice"]
    assert run("user", "list").stdout.splitlines()[2].split()[-1] == "bot"
    assert run("token", "issue", "remind", "--device", "srv").stdout.startswith("imt_")


async def test_a_bots_messages_and_profile_say_bot_over_mqtt_in_json_and_cbor(
        app: App, api: httpx.AsyncClient, users: Users) -> None:
    await users.add("alice", "bob")
    token = await _bot(api, "helper")
    async with connect(app.mqtt_port, "helper", "srv", token) as bot, \
            connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "alice", "tablet", await users.token("alice", "tablet", encoding="cbor")) as cbor, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        ack = await bot.send_and_ack("b1", "alice", "hello from a bot")
        assert ack["seq"] == 1
        got = (await alice.inbox.wait_for(on("/in/msg", cid="b1")))[0].json
        assert got["bot"] is True and got["from"] == "helper"
        assert (await cbor.inbox.wait_for(on("/in/msg", cid="b1")))[0].body["bot"] is True  # key 93
        # A user's message says nothing of the kind.
        await alice.send_and_ack("a1", "helper", "hi bot")
        mine = (await bot.inbox.wait_for(on("/in/msg", cid="a1")))[0].json
        assert "bot" not in mine
        # History and the conversation list mark it too; profiles say it.
        history = await alice.result("history", {"conv": ack["conv"]})
        assert [m.get("bot", False) for m in history["messages"]] == [True, False]
        listed = await bob.result("profile.get", {"uids": ["helper", "alice"]})
        assert listed["profiles"]["helper"]["bot"] is True and "bot" not in listed["profiles"]["alice"]
    assert (await api.get("/v1/users/helper/profile")).json()["bot"] is True
    assert (await api.get("/v1/users/alice/profile")).json()["bot"] is False


async def _group(owner: Device, *members: str) -> str:
    return str((await owner.result("group.create", {"name": "g", "members": list(members)}))["gid"])


async def test_a_send_through_the_api_is_delivered_live_and_idempotent_on_its_cid(
        app: App, api: httpx.AsyncClient, users: Users) -> None:
    await users.add("alice", "bob")
    token = await _bot(api, "helper")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "helper", "srv", token) as bot:
        r = await api.post("/v1/bots/helper/messages", json={"cid": "c1", "to": "alice", "text": "ping"})
        assert r.status_code == 201, r.text
        ack = r.json()
        assert ack["conv"] == "d:alice:helper" and ack["seq"] == 1 and ack["created"] is True and ack["live"] is True
        got = (await alice.inbox.wait_for(on("/in/msg", cid="c1")))[0].json
        assert (got["id"], got["text"], got["from"], got["bot"]) == (ack["id"], "ping", "helper", True)
        await bot.inbox.wait_for(on("/in/msg", cid="c1"))  # the bot's own devices have it too
        again = await api.post("/v1/bots/helper/messages", json={"cid": "c1", "to": "alice", "text": "ping"})
        assert again.status_code == 200 and again.json()["id"] == ack["id"] and again.json()["created"] is False
        # By conv, into a group the bot is in; the next message is seq 2 in the 1:1: c1 was stored once.
        gid = await _group(alice, "helper")
        by_conv = await api.post("/v1/bots/helper/messages", json={"cid": "c2", "conv": f"g:{gid}", "text": "hi all"})
        assert by_conv.status_code == 201 and by_conv.json()["conv"] == f"g:{gid}"
        await alice.inbox.wait_for(on("/in/msg", cid="c2", bot=True))
        custom = await api.post("/v1/bots/helper/messages",
                                json={"cid": "c3", "conv": "d:alice:helper", "type": "custom", "data": {"k": 1}})
        assert custom.status_code == 201 and custom.json()["seq"] == 2
        got = (await alice.inbox.wait_for(on("/in/msg", cid="c3")))[0].json
        assert got["data"] == {"k": 1} and got["type"] == "custom"
        assert len(alice.inbox.matching(on("/in/msg", cid="c1"))) == 1  # never twice


async def test_api_sends_follow_the_rules_of_any_send(app: App, api: httpx.AsyncClient, users: Users) -> None:
    await users.add("alice", "bob", "carol")
    await _bot(api, "helper")
    send = lambda body: api.post("/v1/bots/helper/messages", json=body)
    # Not a bot: nobody sends as a user through these routes (no impersonation).
    as_user = await api.post("/v1/bots/alice/messages", json={"cid": "x", "to": "bob", "text": "I am alice"})
    assert as_user.status_code == 404 and as_user.json()["error"]["code"] == "not_found"
    # Somebody else's 1:1 by conv: not the bot's.
    other = await send({"cid": "x1", "conv": "d:alice:bob", "text": "hi"})
    assert other.status_code == 404
    # A group the bot is not in.
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        gid = await _group(alice, "bob")
        assert (await send({"cid": "x2", "group": gid, "text": "hi"})).status_code == 403
    # Blocked by the recipient: refused as a device's send is ("not allowed").
    assert (await api.post("/v1/users/carol/blocks", json={"uid": "helper"})).status_code == 200
    blocked = await send({"cid": "x3", "to": "carol", "text": "hi"})
    assert blocked.status_code == 403 and blocked.json()["error"]["code"] == "forbidden"
    # No such user; the router's own checks (type text needs a text).
    assert (await send({"cid": "x4", "to": "nobody", "text": "hi"})).status_code == 404
    empty = await send({"cid": "x5", "to": "alice", "text": ""})
    assert empty.status_code == 400 and "text" in empty.json()["error"]["message"]
    # A disabled bot sends nothing.
    assert (await api.post("/v1/users/helper/disable")).status_code == 200
    assert (await send({"cid": "x6", "to": "alice", "text": "hi"})).status_code == 404


async def test_api_history_is_only_within_the_bots_conversations_and_windows(
        app: App, api: httpx.AsyncClient, users: Users) -> None:
    await users.add("alice", "bob")
    await _bot(api, "helper")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        gid = await _group(alice, "bob")
        for i in range(3):  # before the bot joins: outside its window
            await alice.send({"cid": f"early{i}", "group": gid, "type": "text", "text": f"early {i}"})
        await alice.inbox.wait_for(on("/in/ack", cid="early2"))
        await alice.result("group.add", {"gid": gid, "members": ["helper"]})
        await alice.send({"cid": "late", "group": gid, "type": "text", "text": "welcome"})
        await alice.inbox.wait_for(on("/in/ack", cid="late"))
        await alice.send_and_ack("dm", "bob", "private")
    convs = await api.get("/v1/bots/helper/conversations")
    assert convs.status_code == 200
    assert [c["conv"] for c in convs.json()["items"]] == [f"g:{gid}"]
    page = await api.get(f"/v1/bots/helper/conversations/g:{gid}/messages")
    assert page.status_code == 200
    assert [m["text"] for m in page.json()["messages"] if m["type"] == "text"] == ["welcome"]
    assert all(not m.get("cid", "").startswith("early") for m in page.json()["messages"])
    hidden = await api.get("/v1/bots/helper/conversations/d:alice:bob/messages")
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "not_found"
    assert (await api.get("/v1/bots/alice/conversations")).status_code == 404  # not a bot
    assert (await api.get(f"/v1/bots/helper/conversations/g:{gid}/messages", params={"limit": 0})).json()[
        "error"]["field"] == "limit"


async def test_a_bot_has_its_own_message_bucket(app: App, api: httpx.AsyncClient, users: Users) -> None:
    await users.add("alice", "bob")
    slow = await _bot(api, "slow", messages_per_s=0.001, messages_burst=2)
    fast = await _bot(api, "fast", messages_per_s=0.001, messages_burst=3)
    async with connect(app.mqtt_port, "slow", "srv", slow) as s, connect(app.mqtt_port, "fast", "srv", fast) as f, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        # One bucket for MQTT and the API: 2 messages, then rate_limited both ways.
        await s.send_and_ack("s1", "alice")
        assert (await api.post("/v1/bots/slow/messages", json={"cid": "s2", "to": "alice", "text": "x"})).status_code \
            == 201
        over = await s.send_and_ack("s3", "alice")
        assert over["error"]["code"] == "rate_limited" and over["error"]["retry_after_ms"] > 0
        api_over = await api.post("/v1/bots/slow/messages", json={"cid": "s4", "to": "alice", "text": "x"})
        assert api_over.status_code == 429 and api_over.json()["error"]["code"] == "rate_limited"
        # Another bot, and a user, are unaffected (the user has the users' limit).
        for i in range(3):
            assert "error" not in await f.send_and_ack(f"f{i}", "alice")
        assert "error" in await f.send_and_ack("f3", "alice")
        for i in range(10):
            assert "error" not in await bob.send_and_ack(f"b{i}", "alice")


async def test_api_sends_keep_the_contacts_policy(settings: Any) -> None:
    """Under ``messaging.policy = "contacts"`` a bot writes 1:1 only to its contacts, as anyone."""
    from tests.helpers import tweak

    async with App(tweak(settings, "messaging", policy="contacts")) as app, httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{app.admin.port}", headers={"Authorization": f"Bearer {ADMIN_SECRET}"},
            timeout=10) as api:
        assert app.services is not None
        await app.services.users.add_user("alice")
        await _bot(api, "helper")
        refused = await api.post("/v1/bots/helper/messages", json={"cid": "1", "to": "alice", "text": "hi"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
