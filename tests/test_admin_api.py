"""The admin HTTP API against the running platform: auth, every endpoint, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from config.settings import Settings
from imgate.app import App
from imgate.cli import openapi_document
from tests.conftest import ADMIN_SECRET
from tests.helpers import connect, wait_event

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def admin_secret() -> str:
    return ADMIN_SECRET


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {ADMIN_SECRET}"},
                                     {"Authorization": f"Bearer {ADMIN_SECRET}x"}])
async def test_wrong_or_missing_secret_is_401_without_detail(app: App, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.admin.port}") as client:
        for method, path in [("GET", "/v1/users/alice"), ("POST", "/v1/users"), ("GET", "/metrics"),
                             ("GET", "/v1/users"), ("POST", "/v1/users/alice/enable"),
                             ("GET", "/v1/users/alice/tokens")]:
            r = await client.request(method, path, headers=headers, json={"uid": "x"})
            assert r.status_code == 401 and r.json() == {"error": {"code": "unauthorized"}}


async def test_user_lifecycle(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/users", json={"uid": "alice", "name": "Alice"})
    assert r.status_code == 201 and r.json()["uid"] == "alice" and r.json()["disabled"] is False
    assert (await api.post("/v1/users", json={"uid": "alice"})).status_code == 409
    assert (await api.get("/v1/users/alice")).json()["name"] == "Alice"
    missing = await api.get("/v1/users/nobody")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert (await api.post("/v1/users/alice/disable")).json()["disabled"] is True
    enabled = await api.post("/v1/users/alice/enable")
    assert enabled.status_code == 200 and enabled.json()["disabled"] is False
    assert (await api.get("/v1/users/alice")).json()["disabled"] is False


@pytest.mark.parametrize(("body", "field"), [
    ({"uid": "bad uid"}, "uid"), ({"uid": 5}, "uid"), ({}, "uid"), ({"uid": "ok", "name": "x" * 200}, "name"),
    ({"uid": "ok", "extra": 1}, "extra"),
])
async def test_validation_errors_name_the_field(api: httpx.AsyncClient, body: dict, field: str) -> None:
    """A request that fails validation is bad_request with the table's status (400), as one the
    service refuses: not FastAPI's 422."""
    r = await api.post("/v1/users", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "bad_request" and r.json()["error"]["field"] == field
    assert r.json()["error"]["message"].startswith(f"{field}: ")


async def test_every_failing_field_is_named(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/users", json={"uid": "bad uid", "name": "x" * 200})
    assert r.status_code == 400 and r.json()["error"]["field"] == "uid"
    message = r.json()["error"]["message"]
    assert message.startswith("uid: ") and "; name: " in message


async def test_not_json_is_a_clear_error(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/users", content=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    assert r.json()["error"]["field"] == "body" and r.json()["error"]["message"].startswith("body: not valid JSON")


async def test_a_missing_body_is_named(api: httpx.AsyncClient) -> None:
    """Issue 27: a revoke without a body answered "Field required", naming nothing."""
    await api.post("/v1/users", json={"uid": "alice"})
    r = await api.post("/v1/users/alice/tokens/revoke")
    assert r.status_code == 400
    assert r.json() == {"error": {"code": "bad_request", "message": "body: Field required", "field": "body"}}


async def test_tokens_issue_list_revoke_and_revoking_kicks(app: App, api: httpx.AsyncClient) -> None:
    await api.post("/v1/users", json={"uid": "bob"})
    issued = await api.post("/v1/users/bob/tokens", json={"device": "phone", "platform": "ios", "ttl_s": 3600})
    assert issued.status_code == 201
    token = issued.json()["token"]
    assert token.startswith("imt_") and issued.json()["expires_at"] is not None
    bad = await api.post("/v1/users/bob/tokens", json={"device": "no spaces"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "device"
    assert (await api.post("/v1/users/ghost/tokens", json={"device": "d"})).status_code == 404
    listed = (await api.get("/v1/users/bob/tokens")).json()
    assert [(t["device"], t["platform"], t["revoked_at"]) for t in listed] == [("phone", "ios", None)]
    assert "token" not in listed[0] and token not in json.dumps(listed)
    async with connect(app.mqtt_port, "bob", "phone", token) as phone:
        r = await api.post("/v1/users/bob/tokens/revoke", json={"device": "phone"})
        assert r.json() == {"count": 1}
        await wait_event(phone.disconnected)
    assert (await api.get("/v1/users/bob/tokens")).json()[0]["revoked_at"] is not None


async def test_a_token_carries_its_devices_encoding(app: App, api: httpx.AsyncClient) -> None:
    """protocol.md "Encodings": the token's encoding is what the device reads and writes."""
    import cbor2

    from tests.helpers import named, on

    await api.post("/v1/users", json={"uid": "dora"})
    issued = await api.post("/v1/users/dora/tokens", json={"device": "board", "encoding": "cbor"})
    assert issued.status_code == 201 and issued.json()["encoding"] == "cbor"
    assert (await api.get("/v1/users/dora/tokens")).json()[0]["encoding"] == "cbor"
    bad = await api.post("/v1/users/dora/tokens", json={"device": "x", "encoding": "xml"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "encoding"
    async with connect(app.mqtt_port, "dora", "board", issued.json()["token"]) as board:
        await board.client.publish("im/dora/out/msg", cbor2.dumps({5: "n1", 9: "dora", 6: "text", 7: "note"}), qos=1)
        ack = (await board.inbox.wait_for(on("/in/ack", cid="n1")))[0]
        assert named(cbor2.loads(ack.payload))["seq"] == 1


async def test_force_logout_disconnects_every_device(app: App, api: httpx.AsyncClient) -> None:
    await api.post("/v1/users", json={"uid": "carol"})
    t1 = (await api.post("/v1/users/carol/tokens", json={"device": "a"})).json()["token"]
    t2 = (await api.post("/v1/users/carol/tokens", json={"device": "b"})).json()["token"]
    async with connect(app.mqtt_port, "carol", "a", t1) as a, connect(app.mqtt_port, "carol", "b", t2) as b:
        assert (await api.post("/v1/users/carol/logout")).json() == {"count": 2}
        await wait_event(a.disconnected)
        await wait_event(b.disconnected)
    # Tokens stay valid: carol can come back.
    async with connect(app.mqtt_port, "carol", "a", t1) as again:
        assert (await again.result("conversations"))["items"] == []


async def test_healthz_and_metrics(app: App, api: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.admin.port}") as anonymous:
        health = await anonymous.get("/healthz")  # no secret needed: for load balancers
    assert health.status_code == 200
    assert health.json() == {"ok": True, "checks": {"database": True, "bridge": True, "broker": True}}
    await api.post("/v1/users", json={"uid": "dan"})
    await api.post("/v1/users", json={"uid": "eve"})
    token = (await api.post("/v1/users/dan/tokens", json={"device": "d"})).json()["token"]
    async with connect(app.mqtt_port, "dan", "d", token) as dan:
        await dan.send_and_ack("m1", "eve")
        await dan.send({"cid": "m2", "to": "nobody", "type": "text", "text": "x"})
        await dan.inbox.wait_for(lambda r: r.topic.endswith("/in/ack") and b"m2" in r.payload)
        text = (await api.get("/metrics")).text
    values = dict(line.split(" ") for line in text.splitlines() if not line.startswith("#"))
    assert "# TYPE imgate_bridge_sends_total counter" in text
    assert float(values["imgate_connections"]) >= 1
    assert float(values["imgate_bridge_sends_total"]) == 1
    assert float(values["imgate_bridge_send_errors_total"]) == 1
    assert float(values["imgate_broker_delivered_total"]) >= 2
    assert "imgate_bridge_backlog" in values and "imgate_broker_dropped_offline_total" in values


def test_the_checked_in_openapi_document_is_current() -> None:
    checked_in = json.loads((ROOT / "docs" / "admin-openapi.json").read_text())
    assert checked_in == json.loads(json.dumps(openapi_document())), \
        "regenerate it: .venv/bin/imgate openapi > docs/admin-openapi.json"


async def test_the_api_serves_its_openapi_document(api: httpx.AsyncClient) -> None:
    served = (await api.get("/openapi.json")).json()
    assert served["paths"].keys() == openapi_document()["paths"].keys()


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/v1/users/ghost", None),
    ("POST", "/v1/users/ghost/disable", None),
    ("POST", "/v1/users/ghost/tokens", {"device": "d"}),
    ("GET", "/v1/users/ghost/tokens", None),
    ("POST", "/v1/users/ghost/tokens/revoke", {}),
    ("POST", "/v1/users/ghost/logout", None),
])
async def test_unknown_users_are_404_on_every_endpoint(api: httpx.AsyncClient, method: str, path: str,
                                                       body: dict | None) -> None:
    r = await api.request(method, path, json=body)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/users/alice/tokens", {"device": "d", "ttl_s": 0}, "ttl_s"),
    ("/v1/users/alice/tokens", {"device": "d", "platform": "x" * 40}, "platform"),
    ("/v1/users/alice/tokens/revoke", {"device": "bad device"}, "device"),
    ("/v1/notifications", {"uids": ["alice"], "body": "not an object"}, "body"),
])
async def test_bad_bodies_name_the_field(api: httpx.AsyncClient, path: str, body: dict, field: str) -> None:
    await api.post("/v1/users", json={"uid": "alice"})
    r = await api.post(path, json=body)
    assert r.status_code == 400 and r.json()["error"]["field"] == field


async def test_users_are_listed_a_page_at_a_time(api: httpx.AsyncClient) -> None:
    uids = [f"u{i:02}" for i in range(25)]
    for uid in reversed(uids):
        assert (await api.post("/v1/users", json={"uid": uid})).status_code == 201
    for uid in uids[::5]:
        await api.post(f"/v1/users/{uid}/disable")
    seen, after, pages = [], None, 0
    while True:
        page = (await api.get("/v1/users", params={"limit": 10} | ({"after": after} if after else {}))).json()
        seen += [u["uid"] for u in page["items"]]
        pages += 1
        if page["next"] is None:
            break
        assert page["next"] == seen[-1]
        after = page["next"]
    assert seen == uids and pages == 3
    disabled = (await api.get("/v1/users", params={"disabled": "true"})).json()
    assert [u["uid"] for u in disabled["items"]] == uids[::5] and disabled["next"] is None
    assert all(u["disabled"] for u in disabled["items"])
    enabled = (await api.get("/v1/users", params={"disabled": "false", "limit": 1000})).json()
    assert [u["uid"] for u in enabled["items"]] == [u for u in uids if u not in uids[::5]]
    last = (await api.get("/v1/users", params={"after": "u24"})).json()
    assert last == {"items": [], "next": None}
    exact = (await api.get("/v1/users", params={"limit": 25})).json()
    assert len(exact["items"]) == 25 and exact["next"] is None  # no empty page to fetch after a full one


@pytest.mark.parametrize(("params", "field"), [
    ({"limit": 0}, "limit"), ({"limit": -1}, "limit"), ({"limit": 1001}, "limit"),
    ({"limit": 10**30}, "limit"), ({"limit": "all"}, "limit"), ({"after": "bad uid"}, "after"),
    ({"after": "x" * 65}, "after"), ({"after": ""}, "after"), ({"disabled": "maybe"}, "disabled"),
])
async def test_bad_paging_is_a_400_naming_the_parameter(api: httpx.AsyncClient, params: dict, field: str) -> None:
    r = await api.get("/v1/users", params=params)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request" and r.json()["error"]["field"] == field
    assert r.json()["error"]["message"].startswith(f"{field}: ")


async def test_enable_undoes_disable(app: App, api: httpx.AsyncClient) -> None:
    """Issue 27: a disable could not be undone. Tokens issued before it work again; revoked ones do not."""
    assert app.services is not None
    await api.post("/v1/users", json={"uid": "erin"})
    token = (await api.post("/v1/users/erin/tokens", json={"device": "phone"})).json()["token"]
    async with connect(app.mqtt_port, "erin", "phone", token) as phone:
        # Disabled as `imgate user disable` does it (no kick of its own): the phone is dropped when
        # the broker's auth watcher applies the disable, so none is pending when erin comes back
        # (one still pending then, within broker.auth_poll_interval, would drop her once more).
        await app.services.users.disable_user("erin")
        await wait_event(phone.disconnected)
    assert (await api.get("/v1/users/erin")).json()["disabled"] is True
    refused = await api.post("/v1/users/erin/tokens", json={"device": "tablet"})
    assert refused.status_code == 404 and "disabled" in refused.json()["error"]["message"]
    r = await api.post("/v1/users/erin/enable")
    assert r.status_code == 200 and r.json()["disabled"] is False
    assert (await api.post("/v1/users/erin/enable")).json()["disabled"] is False  # twice: still enabled
    async with connect(app.mqtt_port, "erin", "phone", token) as again:
        assert (await again.result("conversations"))["items"] == []
    assert (await api.post("/v1/users/erin/tokens", json={"device": "tablet"})).status_code == 201
    ghost = await api.post("/v1/users/ghost/enable")
    assert ghost.status_code == 404 and ghost.json()["error"]["code"] == "not_found"


async def test_token_list_has_last_use_and_never_a_secret(app: App, api: httpx.AsyncClient) -> None:
    from services.users.service import hash_token

    assert app.services is not None
    await api.post("/v1/users", json={"uid": "fay"})
    token = (await api.post("/v1/users/fay/tokens", json={"device": "phone", "platform": "ios"})).json()["token"]
    await api.post("/v1/users/fay/tokens", json={"device": "web"})
    before = (await api.get("/v1/users/fay/tokens")).json()
    assert [t["last_used_at"] for t in before] == [None, None]
    started = app.clock.now_ms()
    async with connect(app.mqtt_port, "fay", "phone", token):
        await app.services.users.token_use_written()
    listed = (await api.get("/v1/users/fay/tokens"))
    by_device = {t["device"]: t for t in listed.json()}
    assert started <= by_device["phone"]["last_used_at"] <= app.clock.now_ms()
    assert by_device["web"]["last_used_at"] is None
    assert set(by_device["phone"]) == {"id", "device", "platform", "created_at", "expires_at", "revoked_at",
                                       "last_used_at", "encoding"}
    assert token not in listed.text and token.removeprefix("imt_") not in listed.text
    assert hash_token(token) not in listed.text


async def test_the_openapi_document_tells_the_errors_and_the_paging() -> None:
    doc = openapi_document()
    assert "422" not in json.dumps(doc["paths"]) and "HTTPValidationError" not in doc["components"]["schemas"]
    listing = doc["paths"]["/v1/users"]["get"]
    limit = next(p for p in listing["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 1000 and limit["schema"]["minimum"] == 1
    assert listing["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}
    assert "401" in listing["responses"] and "401" not in doc["paths"]["/healthz"]["get"]["responses"]
    assert set(doc["components"]["schemas"]["ErrorDetail"]["properties"]) == {"code", "message", "field", "reason"}
    assert "/v1/users/{uid}/enable" in doc["paths"]
    assert "last_used_at" in doc["components"]["schemas"]["Token"]["properties"]


async def test_a_tokens_last_use_is_written_at_most_once_a_minute(settings: Settings) -> None:
    """A device reconnecting in a loop costs one write a minute, not one per login."""
    from tests.helpers import ManualClock, platform

    clock = ManualClock(1_800_000_000_000)
    async with platform(settings, "gus", clock=clock) as (app, tokens):
        assert app.services is not None
        users = app.services.users

        async def log_in_at(ms: int) -> int | None:
            clock.ms = ms
            async with connect(app.mqtt_port, "gus", "phone", tokens["gus"]):
                await users.token_use_written()
            return (await users.list_tokens("gus"))[0].last_used_at

        t0 = clock.ms
        assert await log_in_at(t0) == t0
        assert await log_in_at(t0 + 59_999) == t0  # within the minute: not written again
        assert await log_in_at(t0 + 60_000) == t0 + 60_000
