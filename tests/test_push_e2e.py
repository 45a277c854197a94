"""Push end to end: a device registers a webhook target over MQTT; a message to its user while
no device is online arrives at the webhook, signed, from the running push worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from config.settings import Settings
from imgate.app import App
from tests.conftest import Users
from tests.helpers import connect, on, webhook_receiver

SECRET = "push-webhook-secret-123"


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[str, asyncio.Queue[Any]]]:
    async with webhook_receiver(SECRET) as receiver:
        yield receiver


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[App]:
    # The intranet configuration: the test's receiver is on 127.0.0.1, over plain http.
    push = settings.push.model_copy(update={"webhook_secret": SECRET, "interval_s": 0.05,
                                            "webhook_allow": ["127.0.0.1"], "webhook_allow_http": True})
    async with App(settings.model_copy(update={"push": push})) as running:
        yield running


async def test_offline_user_gets_a_push_through_its_registered_webhook(app: App, users: Users,
                                                                     webhook: tuple[str, asyncio.Queue]) -> None:
    url, got = webhook
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        assert await bob.result("push.register", {"platform": "webhook", "token": url}) == \
            {"platform": "webhook", "registered": True}
        bad = await bob.rpc("push.register", {"platform": "pager", "token": "x"})
        assert bad["error"]["code"] == -32602
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        async with asyncio.timeout(10):  # the bridge has recorded bob's phone as offline
            while (await alice.result("presence", {"uids": ["bob"]}))["presence"]["bob"]["online"]:
                pass
        ack = await alice.send_and_ack("wake-up", "bob", "are you there?")
    push = await asyncio.wait_for(got.get(), 10)
    assert push == {"conv": "d:alice:bob", "seq": ack["seq"]}  # tickle: no content leaves the server


async def test_pushes_say_thread_reply_and_a_muted_conversation_pushes_only_mentions(
        app: App, users: Users, webhook: tuple[str, asyncio.Queue]) -> None:
    """Threads (issue 28): the payload's kind says thread_reply or mention (a plain message has
    none); in a muted conversation only a mention pushes, a thread reply does not."""
    url, got = webhook
    await users.add("alice", "bob", "carol")
    async with connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        await bob.result("push.register", {"platform": "webhook", "token": url})
    async with connect(app.mqtt_port, "carol", "phone", await users.token("carol")) as carol:
        await carol.result("push.register", {"platform": "webhook", "token": url + "?carol"})
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        async with asyncio.timeout(10):  # the bridge has recorded the phones as offline
            while any(p["online"] for p in
                      (await alice.result("presence", {"uids": ["bob", "carol"]}))["presence"].values()):
                pass
        g = await alice.result("group.create", {"name": "team", "members": ["bob", "carol"]})
        gid, conv = g["gid"], g["conv"]

        async def send(cid: str, **extra: Any) -> dict[str, Any]:
            await alice.send({"cid": cid, "group": gid, "type": "text", "text": "look", **extra})
            ack: dict[str, Any] = (await alice.inbox.wait_for(on("/in/ack", cid=cid)))[0].json
            assert "error" not in ack, ack
            return ack

        async def pushes(n: int) -> list[dict[str, Any]]:
            return [await asyncio.wait_for(got.get(), 10) for _ in range(n)]

        root = await send("root")
        assert await pushes(2) == [{"conv": conv, "seq": root["seq"]}] * 2  # plain: no kind
        reply = await send("reply", thread=root["id"])
        assert await pushes(2) == [{"conv": conv, "seq": reply["seq"], "kind": "thread_reply",
                                    "thread": root["id"]}] * 2
        # bob mutes the conversation: a thread reply pushes to carol only; a mention (in a thread
        # too) pushes to bob as well, as a mention.
        conversations = app.services.conversations  # type: ignore[union-attr]
        await conversations.set_flags(await conversations.membership(conv, "bob"), muted=True, pinned=None)
        quiet = await send("quiet", thread=root["id"])
        assert await pushes(1) == [{"conv": conv, "seq": quiet["seq"], "kind": "thread_reply", "thread": root["id"]}]
        loud = await send("loud", thread=root["id"], mentions=["bob"])
        pushed = await pushes(2)  # a push of "quiet" to bob would be among these
        assert sorted(p["kind"] for p in pushed) == ["mention", "thread_reply"]
        assert all((p["seq"], p["thread"]) == (loud["seq"], root["id"]) for p in pushed)
