"""Issue 29's admin routes (bots, groups, audit, export and erasure, the console's reads) against
hostile input: every answer is a clear 4xx naming what is wrong, never a 500, and the admin
secret is asked before anything else is done."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from imgate.app import App
from tests.conftest import ADMIN_SECRET, Users

HUGE = str(2**70)  # past any database integer


@pytest.fixture
def admin_secret() -> str:
    return ADMIN_SECRET


def bad(r: httpx.Response, field: str | None = None, status: int = 400) -> None:
    assert r.status_code == status, (r.request.url, r.status_code, r.text)
    error = r.json()["error"]
    assert error["code"] == {400: "bad_request", 404: "not_found", 409: "conflict"}[status]
    if field is not None:
        assert error.get("field") == field, r.text


async def test_numbers_past_the_databases_integers_are_refused(app: App, users: Users, api: httpx.AsyncClient) -> None:
    await users.add("bob")
    assert (await api.post("/v1/bots", json={"uid": "helper"})).status_code == 201
    for name in ("before", "since", "until"):
        bad(await api.get("/v1/audit", params={name: HUGE}), name)
    for name in ("after_seq", "before_seq"):
        bad(await api.get("/v1/bots/helper/conversations/d:bob:helper/messages", params={name: HUGE}), name)
    assert (await api.get("/v1/audit", params={"before": str(2**53)})).status_code == 200


async def test_hostile_bodies_and_paths(app: App, users: Users, api: httpx.AsyncClient) -> None:
    await users.add("bob", "carol")
    assert (await api.post("/v1/bots", json={"uid": "helper"})).status_code == 201
    raw = {"Content-Type": "application/json"}
    bad(await api.post("/v1/bots", content=b'{"uid": "b2", "messages_per_s": NaN}', headers=raw), "messages_per_s")
    bad(await api.post("/v1/bots", content=b'{"uid": "b2", "messages_burst": 1e400}', headers=raw), "messages_burst")
    bad(await api.post("/v1/bots", json={"uid": "b2", "kind": "user"}), "kind")
    bad(await api.post("/v1/bots", json={"uid": "x" * 65}), "uid")
    bad(await api.post("/v1/bots", json={"uid": "helper"}), status=409)
    bad(await api.put("/v1/bots/bob/limits", json={"messages_per_s": 1}), status=404)  # a user, not a bot
    bad(await api.put("/v1/bots/helper/limits", json={"messages_per_s": -1}), "messages_per_s")
    send = "/v1/bots/helper/messages"
    for conv in ("g:", "d:", "d:helper", "d:helper:", "d::bob", "x:bob", "d:bob:carol"):
        r = await api.post(send, json={"cid": "c1", "conv": conv, "text": "hi"})
        assert r.status_code in (400, 404), (conv, r.status_code, r.text)
    bad(await api.post(send, json={"cid": "c1", "conv": "d:bob:helper", "to": "bob", "text": "hi"}))
    bad(await api.post(send, json={"cid": "", "to": "bob", "text": "hi"}), "cid")
    big = await api.post(send, json={"cid": "c1", "to": "bob", "text": "x" * 100_000})
    assert big.status_code == 413, big.text
    deep: Any = "x"
    for _ in range(200):
        deep = {"a": deep}
    r = await api.post(send, json={"cid": "c2", "to": "bob", "type": "custom", "data": deep})
    assert 400 <= r.status_code < 500, r.text
    r = await api.post(send, content=b"[" * 100_000, headers=raw)
    assert r.status_code == 400, r.text
    bad(await api.post(send, json={"cid": "c3", "to": "bob", "text": "hi", "reply_to": "nope" * 100}))
    bad(await api.get("/v1/bots/helper/conversations", params={"cursor": "not a cursor"}))
    bad(await api.get("/v1/bots/helper/conversations", params={"limit": 0}), "limit")
    bad(await api.get("/v1/bots/helper/conversations/" + "g:" + "x" * 200 + "/messages"), "conv")
    bad(await api.get("/v1/bots/nobody/conversations"), status=404)
    # groups
    bad(await api.get("/v1/groups/g:"), status=404)
    bad(await api.get("/v1/groups/" + "x" * 5000), "conv")
    bad(await api.delete("/v1/groups/g:" + "x" * 5000 + "/members/bob"), "conv")
    bad(await api.put("/v1/groups/g:x/members/" + "x" * 5000 + "/role", json={"role": "admin"}), "uid")
    bad(await api.post("/v1/groups", json={"owner": "bob", "name": "", "members": []}), "name")
    bad(await api.post("/v1/groups", json={"owner": "bob", "name": "g", "members": ["bad uid!"]}))
    bad(await api.post("/v1/groups", json={"owner": "nobody", "name": "g"}), status=404)
    made = await api.post("/v1/groups", json={"owner": "bob", "name": "g", "members": ["carol"]})
    assert made.status_code == 201, made.text
    conv = made.json()["conv"]
    bad(await api.post(f"/v1/groups/{conv}/members", json={"uids": ["x" * 10_000]}))
    bad(await api.post(f"/v1/groups/{conv}/members", json={"uids": []}), "uids")
    bad(await api.put(f"/v1/groups/{conv}/members/carol/role", json={"role": "owner"}), "role")
    r = await api.delete(f"/v1/groups/{conv}/members/bob")  # the owner
    assert r.status_code in (400, 403), r.text
    bad(await api.get("/v1/groups", params={"limit": 100_000}), "limit")
    bad(await api.get("/v1/groups", params={"member": "bad uid!"}), "member")
    # audit, console reads, privacy
    bad(await api.get("/v1/audit", params={"limit": 0}), "limit")
    bad(await api.get("/v1/audit", params={"actor": "a" * 81}), "actor")
    bad(await api.get("/v1/connections", params={"uid": "bad uid!"}), "uid")
    bad(await api.get("/v1/users/nobody/devices"), status=404)
    bad(await api.get("/v1/users/bad%20uid/export"), "uid")
    bad(await api.get("/v1/users/nobody/export"), status=404)
    bad(await api.post("/v1/users/nobody/erase"), status=404)
    for method in ("PUT", "PATCH", "DELETE"):
        assert (await api.request(method, "/v1/audit")).status_code == 405
    # Nothing above was a 500; and every refused change is in the log with its status.
    log = (await api.get("/v1/audit", params={"limit": 1000})).json()["items"]
    assert all(e["status"] is None or e["status"] < 500 for e in log), json.dumps(log)[:2000]


async def test_the_secret_is_asked_first(app: App) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.admin.port}") as anon:
        for method, path in (("POST", "/v1/bots"), ("POST", "/v1/bots/helper/messages"), ("GET", "/v1/audit"),
                             ("POST", "/v1/groups"), ("GET", "/v1/users/bob/export"), ("POST", "/v1/users/bob/erase"),
                             ("GET", "/v1/stats"), ("GET", "/v1/connections")):
            r = await anon.request(method, path, json={"uid": "x"})
            assert r.status_code == 401, (method, path, r.text)


async def test_every_change_route_has_a_named_audit_action(api: httpx.AsyncClient) -> None:
    """Each mutating route of the admin API (docs/admin-openapi.json) has its action in
    ``imgate.audit.ACTIONS`` (or is traffic, ``NOT_CHANGES``), and each action names a real route."""
    from imgate.audit import ACTIONS, CHANGES, NOT_CHANGES, RECORDED_READS

    schema = (await api.get("/openapi.json")).json()
    routes = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    changes = {(m, p) for m, p in routes if m in CHANGES and not p.startswith("/auth/")}
    assert changes - NOT_CHANGES - set(ACTIONS) == set()
    assert set(ACTIONS) - routes == set()
    assert {("GET", p) for p in RECORDED_READS} <= set(ACTIONS)
    assert len(set(ACTIONS.values())) == len(ACTIONS)  # one route, one action


async def test_a_request_without_the_secret_is_answered_before_its_body_is_read(app: App) -> None:
    """Without the right secret a change is refused (401) on its headers: a client announcing a
    10 GB body is answered at once, not read (FastAPI reads a body before its route's dependencies)."""
    import asyncio

    for auth in ("", "Authorization: Bearer wrong-secret-0123456789\r\n"):
        reader, writer = await asyncio.open_connection("127.0.0.1", app.admin.port)  # type: ignore[union-attr]
        try:
            writer.write(f"POST /v1/users HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n"
                         "Content-Length: 10000000000\r\n\r\n{".encode())
            await writer.drain()
            async with asyncio.timeout(10):
                status = await reader.readline()
            assert status.startswith(b"HTTP/1.1 401"), status
        finally:
            writer.close()
