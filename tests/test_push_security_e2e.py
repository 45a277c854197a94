"""Issue 10, holes 3 and 4, replayed against the running platform with real MQTT clients:

- SSRF: a user registers webhook targets on the server itself (its admin API), its networks and
  the cloud metadata address, in the forms that slip past naive checks; none is accepted.
- No cap: a user registers as many targets as it likes; now the 11th is refused (413 too_large).
- One user stalls push for everyone: webhooks that never answer (an HTTP server that accepts and
  says nothing, a TLS handshake that never completes) delayed another user's push by 30 s; now
  the other user's push arrives within about a second of the message."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from config.settings import Settings
from imgate.app import App
from services.push.models import PushTarget
from tests.conftest import Users
from tests.fakes.webhook import BlackHole, HookServer
from tests.helpers import Device, connect

SECRET = "push-webhook-secret-123"


@pytest.fixture
def admin_secret() -> str:
    return "s3cret-admin-token-for-tests"  # the admin API is on: a target for the SSRF attempts


@pytest.fixture
def push_conf() -> dict[str, Any]:
    """Push settings on top of the test's (a test parametrizes it to change them)."""
    return {}


@pytest.fixture
async def app(settings: Settings, push_conf: dict[str, Any]) -> AsyncIterator[App]:
    """Webhooks on, the worker polling often; push.register not rate-limited beyond what a test
    needs (a limit other tests cover)."""
    limits = settings.limits.model_copy(update={"push_registers_burst": 1000, "push_registers_per_s": 1000.0})
    push = settings.push.model_copy(update={"webhook_secret": SECRET, "interval_s": 0.05, **push_conf})
    async with App(settings.model_copy(update={"limits": limits, "push": push})) as running:
        yield running


async def _offline(device: Device, uid: str) -> None:
    """Wait until the bridge has recorded every device of ``uid`` as offline."""
    async with asyncio.timeout(10):
        while (await device.result("presence", {"uids": [uid]}))["presence"][uid]["online"]:
            await asyncio.sleep(0.05)  # polling a condition, bounded by the timeout


async def test_webhooks_to_the_server_and_its_networks_are_refused(app: App, users: Users) -> None:
    async with HookServer() as local:
        await users.add("bob")
        admin = app.admin.port
        urls = [
            f"http://127.0.0.1:{admin}/v1/notifications", f"https://127.0.0.1:{admin}/v1/notifications",
            f"https://localhost:{admin}/v1/users", f"https://[::1]:{admin}/", f"https://0.0.0.0:{admin}/",
            f"https://[::ffff:127.0.0.1]:{admin}/", f"https://2130706433:{admin}/", f"https://127.1:{admin}/",
            f"https://0x7f000001:{admin}/", f"{local.url}/hook", local.url.replace("http:", "https:") + "/hook",
            "https://169.254.169.254/latest/meta-data/", "https://10.0.0.1/", "https://192.168.1.1/",
            "https://100.64.0.1/", "https://[fd00::1]/", "https://[fe80::1]/", "https://user:pw@example.com/",
        ]
        async with connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
            for url in urls:
                answer = await bob.rpc("push.register", {"platform": "webhook", "token": url})
                assert answer.get("error", {}).get("code") == -32602, (url, answer)
                assert "webhook" in answer["error"]["message"] and "127.0.0.1" not in answer["error"]["message"]
        assert await PushTarget.filter(uid="bob").count() == 0
        assert local.connections == 0


async def test_at_most_ten_push_targets_per_user(app: App, users: Users) -> None:
    await users.add("bob")
    async with connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        for i in range(10):
            await bob.result("push.register", {"platform": "fcm", "token": f"fcm-token-{i}"})
        await bob.result("push.register", {"platform": "fcm", "token": "fcm-token-3"})  # again: harmless
        eleventh = await bob.rpc("push.register", {"platform": "fcm", "token": "fcm-token-10"})
        assert eleventh["error"]["code"] == 413 and eleventh["error"]["data"] == {"code": "too_large"}
        assert "at most 10" in eleventh["error"]["message"]
    assert await PushTarget.filter(uid="bob").count() == 10


@pytest.fixture
async def black_hole() -> AsyncIterator[BlackHole]:
    async with BlackHole() as hole:
        yield hole


# The intranet configuration (local receivers, plain http): "localhost" is mallory's host,
# 127.0.0.1 bob's.
@pytest.mark.parametrize("push_conf", [{"webhook_allow": ["localhost", "127.0.0.1"], "webhook_allow_http": True}])
async def test_black_hole_webhooks_do_not_delay_another_users_push(app: App, users: Users,
                                                                    black_hole: BlackHole) -> None:
    async with HookServer(secret=SECRET) as hook:
        await users.add("alice", "bob", "mallory")
        hole = f"localhost:{black_hole.port}"
        mallory_targets = [f"http://{hole}/{i}" for i in range(5)] + [f"https://{hole}/tls"]  # TLS never starts
        async with connect(app.mqtt_port, "mallory", "phone", await users.token("mallory")) as mallory:
            for url in mallory_targets:
                await mallory.result("push.register", {"platform": "webhook", "token": url})
        async with connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
            await bob.result("push.register", {"platform": "webhook", "token": f"{hook.url}/hook"})
        async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
            await _offline(alice, "mallory")
            await _offline(alice, "bob")
            await alice.send_and_ack("to-mallory", "mallory", "wake up")
            await black_hole.wait_for(1)  # mallory's pushes are stuck in the black hole
            started = time.monotonic()
            ack = await alice.send_and_ack("to-bob", "bob", "are you there?")
            try:
                request = await asyncio.wait_for(hook.got.get(), 5)
            except TimeoutError:
                raise AssertionError(f"bob's push did not arrive within 5 s ({black_hole.accepted} "
                                     "black-hole connection(s))") from None
            latency = time.monotonic() - started
            hanging = black_hole.open
        print(f"\nbob's push arrived {latency * 1000:.0f} ms after alice sent the message; "
              f"{hanging} of mallory's sends were hanging in the black hole")
        assert json.loads(request.body) == {"conv": "d:alice:bob", "seq": ack["seq"]}
        assert latency < 1.5, latency
        assert hanging >= 4  # mallory's sends were still hanging (per-host cap: 4 at once)
