"""Login policy: how many devices of one user may be online, per user and per platform class."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from config.settings import Settings
from imgate.app import App
from tests.helpers import connect, on, wait_event
from tests.mqttraw import raw_connect


def policy(settings: Settings, **broker: Any) -> Settings:
    return settings.model_copy(update={"broker": settings.broker.model_validate(
        {**settings.broker.model_dump(), **broker})})


@pytest.fixture
async def alice_app(settings: Settings, request: pytest.FixtureRequest) -> AsyncIterator[App]:
    async with App(policy(settings, **request.param)) as app:
        assert app.services is not None
        await app.services.users.add_user("alice")
        yield app


async def token(app: App, device: str, platform: str) -> str:
    assert app.services is not None
    return (await app.services.users.issue_token("alice", device, platform)).token


@pytest.mark.parametrize("alice_app", [{"max_devices_per_class": {"phone": 1}, "on_device_limit": "kick_oldest"}],
                         indirect=True)
async def test_a_new_phone_kicks_the_oldest_phone_with_a_notice(alice_app: App) -> None:
    port = alice_app.mqtt_port
    async with connect(port, "alice", "web", await token(alice_app, "web", "web")) as web, \
               connect(port, "alice", "p1", await token(alice_app, "p1", "android")) as p1:
        async with connect(port, "alice", "p2", await token(alice_app, "p2", "ios")) as p2:
            notice = (await p1.inbox.wait_for(on("/in/notify", type="kicked")))[0].json
            assert (notice["device"], notice["by"], notice["reason"]) == ("p1", "p2", "device_limit")
            await wait_event(p1.disconnected)
            await web.inbox.wait_for(on("/in/notify", type="kicked"))  # every device learns why
            assert (await p2.result("conversations"))["items"] == []
            assert not web.disconnected.is_set()


@pytest.mark.parametrize("alice_app", [{"max_devices_per_class": {"phone": 1}}], indirect=True)
async def test_refuse_policy_turns_the_new_login_away(alice_app: App) -> None:
    port = alice_app.mqtt_port
    async with connect(port, "alice", "p1", await token(alice_app, "p1", "android")) as p1:
        refused = await raw_connect(port, "alice:p2", "alice", await token(alice_app, "p2", "android"))
        assert refused.return_code == 5
        # The same device reconnecting is a take-over, not a new device.
        again = await raw_connect(port, "alice:p1", "alice", await token(alice_app, "p1", "android"))
        assert again.return_code == 0
        await wait_event(p1.disconnected)
        again.close()


@pytest.mark.parametrize("alice_app", [{"max_devices": 2}], indirect=True)
async def test_total_device_limit(alice_app: App) -> None:
    port = alice_app.mqtt_port
    async with connect(port, "alice", "a", await token(alice_app, "a", "web")), \
               connect(port, "alice", "b", await token(alice_app, "b", "linux")):
        third = await raw_connect(port, "alice:c", "alice", await token(alice_app, "c", "ios"))
        assert third.return_code == 5
    # Once they are gone (the broker has processed their DISCONNECTs), there is room again.
    c_token = await token(alice_app, "c", "ios")
    async with asyncio.timeout(10):
        while (ok := await raw_connect(port, "alice:c", "alice", c_token)).return_code != 0:
            ok.close()
    ok.close()
