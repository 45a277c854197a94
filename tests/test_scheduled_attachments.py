"""A scheduled attachment (issue 28, protocol §3 "Scheduled send") on the embedded store: its
upload is the sender's, checked when it is scheduled; the sweep of unused uploads keeps it while
the send is pending (past ``files.orphan_after_s``), the members download it once it is sent, and
a cancelled one's upload is swept as any unsent upload."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from config.settings import Settings
from imgate.app import App
from tests.conftest import Users
from tests.helpers import ManualClock, connect, on, tweak
from tests.manual_clock import clock_fixture, manual_app_fixture  # noqa: F401
from tests.test_attachments import PNG, upload

DAY_MS = 86_400_000


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings = tweak(settings, "web", enabled=True, port=0)
    return tweak(settings, "limits", schedule_poll_s=0.05)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def scheduled(device: Any, cid: str, at: int, attachment: dict[str, Any]) -> dict[str, Any]:
    await device.send({"cid": cid, "to": "bob", "type": "image", "attachment": attachment, "at": at})
    return (await device.inbox.wait_for(on("/in/ack", cid=cid)))[0].json  # type: ignore[no-any-return]


async def test_a_scheduled_attachment_keeps_its_upload_until_sent(app: App, users: Users, clock: ManualClock,
                                                                  http: httpx.AsyncClient) -> None:
    assert app.services is not None
    await users.add("alice", "bob", "mallory")
    files = app.settings.data_dir / "files"
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob, \
            connect(app.mqtt_port, "mallory", "phone", await users.token("mallory")) as mallory:
        image = await upload(alice, http, PNG)
        # Someone else's upload is refused when scheduling, as when sending.
        stolen = await scheduled(mallory, "steal", clock.ms + DAY_MS, image)
        assert stolen["error"]["code"] == "bad_request"
        at = clock.ms + 2 * DAY_MS
        assert (await scheduled(alice, "img", at, image))["status"] == "scheduled"
        dropped = await upload(alice, http, PNG + b"2")
        cancel = await scheduled(alice, "dropped", at, dropped)
        await alice.result("schedule.cancel", {"id": cancel["id"]})
        clock.ms += DAY_MS + 1_000  # past files.orphan_after_s: unsent uploads go
        await app.services.attachments.sweep()
        assert list(files.rglob(image["key"]))  # pending: kept
        assert not list(files.rglob(dropped["key"]))  # cancelled: swept as never sent
        clock.ms = at
        got = (await bob.inbox.wait_for(on("/in/msg", cid="img")))[0].json
        assert got["attachment"]["key"] == image["key"]
        urls = await bob.result("file.url", {"keys": [image["key"]]})
        r = await http.get(urls["urls"][image["key"]])
        assert r.status_code == 200 and r.content == PNG
