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
from tests.helpers import connect, webhook_receiver

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
