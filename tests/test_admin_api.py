"""The admin HTTP API against the running platform: auth, every endpoint, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

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
        for method, path in [("GET", "/v1/users/alice"), ("POST", "/v1/users"), ("GET", "/metrics")]:
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


@pytest.mark.parametrize(("body", "field"), [
    ({"uid": "bad uid"}, "uid"), ({"uid": 5}, "uid"), ({}, "uid"), ({"uid": "ok", "name": "x" * 200}, "name"),
    ({"uid": "ok", "extra": 1}, "extra"),
])
async def test_validation_errors_name_the_field(api: httpx.AsyncClient, body: dict, field: str) -> None:
    r = await api.post("/v1/users", json=body)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "bad_request" and r.json()["error"]["field"] == field


async def test_not_json_is_a_clear_error(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/users", content=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_request"


async def test_tokens_issue_list_revoke_and_revoking_kicks(app: App, api: httpx.AsyncClient) -> None:
    await api.post("/v1/users", json={"uid": "bob"})
    issued = await api.post("/v1/users/bob/tokens", json={"device": "phone", "platform": "ios", "ttl_s": 3600})
    assert issued.status_code == 201
    token = issued.json()["token"]
    assert token.startswith("imt_") and issued.json()["expires_at"] is not None
    bad = await api.post("/v1/users/bob/tokens", json={"device": "no spaces"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "device"
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
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "encoding"
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
    assert r.status_code == 422 and r.json()["error"]["field"] == field
