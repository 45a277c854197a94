"""Attachments on the S3 backend (files.backend = "s3"), end to end: imgate presigns, the client
PUTs to and GETs from the S3-compatible server itself (moto in server mode: what it does not
check of a presigned request is in tests/services/test_s3_store.py), and imgate checks the object
there before storing the message, and deletes it there on recall."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from config.settings import Settings
from imgate.app import App
from tests.conftest import Users
from tests.helpers import connect, on, tweak
from tests.moto_s3 import KEY_ID, REGION, SECRET, admin_fixture, bucket_fixture, endpoint_fixture  # noqa: F401
from tests.test_attachments import PNG, sha


@pytest.fixture
def settings(settings: Settings, endpoint: str, bucket: str) -> Settings:
    # The web listener stays off: with S3, imgate serves no file.
    return tweak(settings, "files", backend="s3", s3_bucket=bucket, s3_endpoint_url=endpoint, s3_region=REGION,
                 s3_access_key_id=KEY_ID, s3_secret_access_key=SECRET, s3_prefix="att")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def test_an_image_through_s3(app: App, users: Users, http: httpx.AsyncClient, endpoint: str, admin: Any,
                                   bucket: str) -> None:
    await users.add("alice", "bob", "mallory")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob, \
            connect(app.mqtt_port, "mallory", "phone", await users.token("mallory")) as mallory:
        t = await alice.result("file.upload", {"mime": "image/png", "size": len(PNG), "sha256": sha(PNG)})
        assert t["url"].startswith(f"{endpoint}/{bucket}/att/{t['key']}?")  # straight to the bucket
        assert set(t["headers"]) == {"Content-Type", "x-amz-checksum-sha256"}
        attachment = {"key": t["key"], "mime": "image/png", "size": len(PNG), "sha256": sha(PNG)}

        await alice.send({"cid": "early", "to": "bob", "type": "image", "attachment": attachment})
        early = (await alice.inbox.wait_for(on("/in/ack", cid="early")))[0].json
        assert early["error"]["code"] == "bad_request" and "not uploaded" in early["error"]["message"]

        # Other bytes of the same size: moto takes them (S3 would refuse the checksum), and imgate,
        # hashing the stored object, refuses the message.
        forged = bytes([PNG[0] ^ 1]) + PNG[1:]
        assert (await http.put(t["url"], content=forged, headers=t["headers"])).status_code == 200
        await alice.send({"cid": "forged", "to": "bob", "type": "image", "attachment": attachment})
        ack = (await alice.inbox.wait_for(on("/in/ack", cid="forged")))[0].json
        assert ack["error"]["code"] == "bad_request" and "sha256 differ" in ack["error"]["message"]

        assert (await http.put(t["url"], content=PNG, headers=t["headers"])).status_code == 200
        await alice.send({"cid": "i1", "to": "bob", "type": "image", "attachment": attachment})
        got = (await bob.inbox.wait_for(on("/in/msg", cid="i1")))[0].json
        assert got["attachment"] == attachment
        url = (await bob.result("file.url", {"keys": [t["key"]]}))["urls"][t["key"]]
        r = await http.get(url)
        assert r.status_code == 200 and r.content == PNG and r.headers["content-type"] == "image/png"
        assert (await mallory.result("file.url", {"keys": [t["key"]]}))["urls"] == {}

        await alice.result("recall", {"id": got["id"]})
        listed = admin.list_objects_v2(Bucket=bucket, Prefix="att/")
        assert listed.get("KeyCount") == 0  # the recall deleted the object in the bucket
