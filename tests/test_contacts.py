"""The contacts policy (issue 15): with ``messaging.policy = "contacts"`` a 1:1 message needs the
two users to be contacts (``contact.request``, then ``contact.accept``), as OpenIM's friend mode;
a blocked user's request never reaches the blocker. With the default ``open`` policy anyone may
write, and contact requests work all the same."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from config.settings import Settings
from imgate.app import App
from tests.conftest import Users
from tests.helpers import connect, on, tweak


@pytest.fixture
async def contacts_app(settings: Settings) -> AsyncIterator[App]:
    async with App(tweak(settings, "messaging", policy="contacts")) as running:
        yield running


async def test_strangers_need_an_accepted_request_to_talk(contacts_app: App, users: Users) -> None:
    app = contacts_app
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        await alice.send({"cid": "c1", "to": "bob", "type": "text", "text": "hi"})
        assert (await alice.inbox.wait_for(on("/in/ack", cid="c1")))[0].json["error"] == {
            "code": "forbidden", "message": "not allowed"}
        assert "error" not in await alice.send_and_ack("self", "alice", "notes to self")  # always allowed

        assert await alice.result("contact.request", {"uid": "bob", "text": "it's alice"}) == {
            "uid": "bob", "contact": False}
        event = (await bob.inbox.wait_for(on("/in/event", type="contact")))[0].json
        assert event == {"type": "contact", "op": "request", "from": "alice", "text": "it's alice"}
        listed = await bob.result("contact.list", {})
        assert listed["contacts"] == [] and [i["uid"] for i in listed["incoming"]] == ["alice"]
        assert (await alice.result("contact.list", {}))["outgoing"] == ["bob"]

        assert await bob.result("contact.accept", {"uid": "alice"}) == {"uid": "alice", "contact": True}
        accepted = (await alice.inbox.wait_for(on("/in/event", type="contact", op="accept")))[0].json
        assert accepted["from"] == "bob"
        assert (await alice.result("contact.list", {}))["contacts"] == ["bob"]
        assert "error" not in await alice.send_and_ack("c2", "bob", "hello, contact")
        assert "error" not in await bob.send_and_ack("c3", "alice", "hello back")

        # Ending the contact closes the 1:1 again.
        await bob.result("contact.decline", {"uid": "alice"})
        await alice.send({"cid": "c4", "to": "bob", "type": "text", "text": "still there?"})
        assert (await alice.inbox.wait_for(on("/in/ack", cid="c4")))[0].json["error"]["code"] == "forbidden"


async def test_crossed_requests_make_contacts_and_a_blocked_request_stays_hidden(
        contacts_app: App, users: Users) -> None:
    app = contacts_app
    await users.add("alice", "bob", "mallory")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob, \
            connect(app.mqtt_port, "mallory", "phone", await users.token("mallory")) as mallory:
        await alice.result("contact.request", {"uid": "bob"})
        assert await bob.result("contact.request", {"uid": "alice"}) == {"uid": "alice", "contact": True}
        assert "error" not in await bob.send_and_ack("x", "alice", "we crossed")

        await alice.result("block.add", {"uid": "mallory"})
        assert await mallory.result("contact.request", {"uid": "alice"}) == {"uid": "alice", "contact": False}
        assert (await alice.result("contact.list", {}))["incoming"] == []  # kept from alice
        assert alice.inbox.matching(on("/in/event", type="contact", op="request")) == []
        assert (await alice.rpc("contact.accept", {"uid": "mallory"}))["error"]["data"]["code"] == "not_found"
        for params, code in (({"uid": "mallory"}, "bad_request"), ({"uid": "ghost"}, "not_found")):
            assert (await mallory.rpc("contact.request", params))["error"]["data"]["code"] == code


async def test_the_open_policy_lets_anyone_write(app: App, users: Users) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        assert "error" not in await alice.send_and_ack("c1", "bob", "hi")
