"""Issue 29: the audit log. Every change through the admin API (refused ones too, with their
status), the command line's, the SIGHUP reloads and each new callback configuration are recorded
with who, what, when and from where; ``GET /v1/audit`` pages them, and nothing changes them. And
the admin API's group routes, whose member events reach the members online."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Request

from broker.certs import write_dev_certs
from config.settings import Settings
from imgate.app import App
from imgate.audit import action_of, cli_actor
from tests.conftest import ADMIN_SECRET, Users
from tests.helpers import WAIT, connect, on, tweak
from tests.test_startup_errors import base_env, started


@pytest.fixture
def admin_secret() -> str:
    return ADMIN_SECRET


async def entries(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    r = await api.get("/v1/audit", params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_each_change_is_recorded_with_who_what_when_and_where(api: httpx.AsyncClient) -> None:
    before = int(time.time() * 1000)
    assert (await api.post("/v1/users", json={"uid": "ann", "name": "Ann"},
                           headers={"X-Imgate-Actor": "console:root"})).status_code == 201
    assert (await api.post("/v1/users/ann/disable")).status_code == 200
    assert (await api.post("/v1/users/ann/enable", headers={"X-Imgate-Actor": "bad actor!"})).status_code == 200
    assert (await api.post("/v1/users", json={"uid": "bob"})).status_code == 201
    assert (await api.post("/v1/users/ann/blocks", json={"uid": "bob"})).status_code == 200
    assert (await api.delete("/v1/users/ann/blocks/bob")).status_code == 200
    assert (await api.put("/v1/users/ann/profile", json={"status": "away"})).status_code == 200
    assert (await api.post("/v1/users/ann/logout", params={"why": "abuse", "token": "leaked"})).status_code == 200
    assert (await api.post("/v1/notifications", json={"body": {"text": "hi"}, "uids": ["ann"]})).status_code == 201
    after = int(time.time() * 1000)
    got = list(reversed(await entries(api)))
    assert [(e["actor"], e["action"], e["target"], e["status"]) for e in got] == [
        ("console:root", "user.create", "ann", 201),
        ("admin", "user.disable", "ann", 200),
        ("admin", "user.enable", "ann", 200),  # an invalid X-Imgate-Actor is not taken
        ("admin", "user.create", "bob", 201),
        ("admin", "block.add", "ann", 200),
        ("admin", "block.remove", "ann", 200),
        ("admin", "profile.set", "ann", 200),
        ("admin", "session.kick", "ann", 200),
        ("admin", "notification.send", "", 201),
    ]
    assert all(e["source"] == "127.0.0.1" and before <= e["ts"] <= after for e in got)
    assert got[0]["detail"] == {"uid": "ann", "name": "Ann"}
    assert got[4]["detail"] == {"uid": "bob"} and got[5]["detail"] == {"target": "bob"}
    assert got[7]["detail"] == {"query": {"why": "abuse", "token": "***"}}
    assert got[8]["detail"]["uids"] == ["ann"]
    assert [e["id"] for e in got] == sorted(e["id"] for e in got)


async def test_refused_attempts_are_recorded_with_their_status_unauthorized_ones_are_not(
        api: httpx.AsyncClient, app: App) -> None:
    assert (await api.post("/v1/users", json={"uid": "ann"})).status_code == 201
    assert (await api.post("/v1/users", json={"uid": "ann"})).status_code == 409
    assert (await api.post("/v1/users/nobody/disable")).status_code == 404
    assert (await api.post("/v1/users", json={"uid": "bad uid"})).status_code == 400
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.admin.port}") as anonymous:
        assert (await anonymous.post("/v1/users", json={"uid": "eve"})).status_code == 401
    assert (await api.get("/v1/users/ann")).status_code == 200  # a read: not recorded
    got = [(e["action"], e["target"], e["status"]) for e in reversed(await entries(api))]
    assert got == [("user.create", "ann", 201), ("user.create", "ann", 409), ("user.disable", "nobody", 404),
                   ("user.create", "bad uid", 400)]


async def test_secrets_never_reach_the_log(api: httpx.AsyncClient, app: App) -> None:
    await api.post("/v1/users", json={"uid": "ann"})
    issued = await api.post("/v1/users/ann/tokens", json={"device": "phone", "platform": "ios", "ttl_s": 3600})
    assert issued.status_code == 201
    token = issued.json()["token"]
    await api.post("/v1/notifications", json={"body": {"text": "x", "api_key": "k-12345678", "password": "hunter2"},
                                             "everyone": True})
    got = await entries(api)
    issue = next(e for e in got if e["action"] == "token.issue")
    assert issue["target"] == "ann"
    assert issue["detail"] == {"device": "phone", "platform": "ios", "ttl_s": 3600}
    note = next(e for e in got if e["action"] == "notification.send")
    assert note["detail"]["body"] == {"text": "x", "api_key": "***", "password": "***"}
    big = await api.post("/v1/notifications", json={"body": {"text": "x" * 20_000}, "everyone": True})
    assert big.status_code == 201  # a body too large to read for the detail: said so
    assert (await entries(api))[0]["detail"] == {"body_not_recorded": "larger than 16384 bytes"}
    # Nowhere in the table, whatever column: read it raw.
    from tortoise import connections

    _, rows = await connections.get("default").execute_query("SELECT * FROM audit_log")
    raw = json.dumps([dict(r) for r in rows])
    for secret in (token, ADMIN_SECRET, "hunter2", "k-12345678"):
        assert secret not in raw


async def test_paging_newest_first_and_the_filters(api: httpx.AsyncClient, app: App) -> None:
    for uid in ("u1", "u2", "u3", "u4", "u5"):
        await api.post("/v1/users", json={"uid": uid}, headers={"X-Imgate-Actor": "ops"})
    await api.post("/v1/users/u2/disable")
    await api.post("/v1/users/u2/tokens", json={"device": "phone"})
    seen, before = [], None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"before": before} if before else {})
        page = (await api.get("/v1/audit", params=params)).json()
        assert len(page["items"]) <= 3
        seen += page["items"]
        before = page["next"]
        if before is None:
            break
    assert [e["target"] for e in seen] == ["u2", "u2", "u5", "u4", "u3", "u2", "u1"]
    assert [e["target"] for e in await entries(api, actor="ops")] == ["u5", "u4", "u3", "u2", "u1"]
    assert [e["action"] for e in await entries(api, action="user.")] == ["user.disable"] + ["user.create"] * 5
    assert [e["action"] for e in await entries(api, action="token")] == ["token.issue"]
    assert [e["action"] for e in await entries(api, target="u2")] == ["token.issue", "user.disable", "user.create"]
    middle = seen[3]["ts"]
    assert all(e["ts"] >= middle for e in await entries(api, since=middle))
    assert all(e["ts"] < middle for e in await entries(api, until=middle))
    assert len(await entries(api, since=middle)) + len(await entries(api, until=middle)) == 7
    assert (await api.get("/v1/audit", params={"limit": 1001})).status_code == 400


async def test_the_log_is_append_only_from_the_api(api: httpx.AsyncClient) -> None:
    await api.post("/v1/users", json={"uid": "ann"})
    first = (await entries(api))[0]
    for method in ("PUT", "PATCH", "DELETE", "POST"):
        assert (await api.request(method, "/v1/audit", json={})).status_code == 405
        assert (await api.request(method, f"/v1/audit/{first['id']}", json={})).status_code in (404, 405)
    assert await entries(api) == [first]  # the refused attempts on the log are not changes: nothing added


async def test_forwarded_for_counts_only_from_a_trusted_proxy(settings: Settings) -> None:
    for trusted, expect in (([], "127.0.0.1"), (["127.0.0.0/8"], "203.0.113.7")):
        async with App(tweak(settings, "admin", trusted_proxies=trusted)) as app, httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{app.admin.port}",
                headers={"Authorization": f"Bearer {ADMIN_SECRET}"}) as api:
            uid = f"u{len(trusted)}"
            await api.post("/v1/users", json={"uid": uid}, headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.7"})
            assert (await entries(api, target=uid))[0]["source"] == expect


def test_other_routes_get_an_action_of_their_own() -> None:
    assert action_of("POST", "/v1/users", "create_user") == "user.create"
    assert action_of("GET", "/v1/users/{uid}/export", "export") == "user.export"
    assert action_of("POST", "/v1/bots/{uid}/send", "send_as_bot") == "bots.send.post"
    assert action_of("DELETE", "/v1/bots/{uid}", "delete_bot") == "bots.delete"
    assert action_of("POST", "/v1/bots/{uid}/send", "bot.send") == "bot.send"


async def test_a_route_added_later_is_recorded_with_its_own_detail(settings: Settings) -> None:
    """A route another part adds (here one made up): recorded with no work of its own, and with
    what it adds through request.state.audit."""
    from imgate import admin

    real = admin._group_routes

    def more(app: Any, ctx: Any, guarded: list[Any]) -> None:
        real(app, ctx, guarded)

        @app.post("/v1/bots/{uid}/send", dependencies=guarded)
        async def send_as_bot(request: Request, uid: str, body: dict[str, str]) -> dict[str, str]:
            request.state.audit = {"conv": "g:x", "secret_sauce": "s3"}
            return {"ok": uid}

    admin._group_routes = more  # type: ignore[assignment]
    try:
        async with App(settings) as app, httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{app.admin.port}", headers={"Authorization": f"Bearer {ADMIN_SECRET}"}
        ) as api:
            assert (await api.post("/v1/bots/helper/send", json={"text": "hi"})).status_code == 200
            got = (await entries(api))[0]
    finally:
        admin._group_routes = real  # type: ignore[assignment]
    assert (got["action"], got["target"], got["status"]) == ("bots.send.post", "helper", 200)
    assert got["detail"] == {"text": "hi", "conv": "g:x", "secret_sauce": "***"}


async def test_command_line_changes_are_recorded(api: httpx.AsyncClient, settings: Settings) -> None:
    env = {**os.environ, "IMGATE_DATABASE__URL": settings.database_url()}

    async def imgate(*args: str) -> str:
        done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "imgate", "--data-dir",
                                                        str(settings.data_dir), *args], capture_output=True,
                                       text=True, env=env, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    await imgate("user", "add", "ann", "--name", "Ann")
    token = await imgate("token", "issue", "ann", "--device", "phone", "--platform", "ios")
    await imgate("token", "revoke", "ann", "--device", "phone")
    await imgate("user", "disable", "ann")
    await imgate("user", "enable", "ann")
    await imgate("user", "list")  # a read: not recorded
    got = list(reversed(await entries(api)))
    assert [(e["action"], e["target"], e["source"], e["status"]) for e in got] == [
        ("user.create", "ann", "cli", None), ("token.issue", "ann", "cli", None),
        ("token.revoke", "ann", "cli", None), ("user.disable", "ann", "cli", None),
        ("user.enable", "ann", "cli", None)]
    assert {e["actor"] for e in got} == {cli_actor()} and cli_actor().startswith("cli:")
    assert got[1]["detail"]["device"] == "phone" and token not in json.dumps(got)
    assert got[2]["detail"] == {"device": "phone", "count": 1}


def _callbacks(url: str, secret: str = "a-signing-secret-0123456789") -> dict[str, Any]:
    return {"endpoints": [{"name": "ops", "url": url, "secret": secret, "events": ["after_send"]}]}


async def test_the_callback_configuration_is_recorded_once_per_change(settings: Settings) -> None:
    async def start(callbacks: dict[str, Any]) -> list[dict[str, Any]]:
        s = settings.model_copy(update={"callbacks": type(settings.callbacks).model_validate(callbacks)})
        async with App(s, role="api") as app, httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{app.admin.port}", headers={"Authorization": f"Bearer {ADMIN_SECRET}"}
        ) as api:
            return await entries(api, action="callbacks.config")

    assert await start({}) == []  # nothing configured, ever: nothing to say
    one = await start(_callbacks("https://hooks.example.com/a"))
    assert len(one) == 1 and one[0]["actor"] == "imgate" and one[0]["source"] == "start-up"
    endpoint = one[0]["detail"]["endpoints"][0]
    assert endpoint["url"] == "https://hooks.example.com/a" and endpoint["events"] == ["after_send"]
    assert "a-signing-secret" not in json.dumps(one) and re.fullmatch(r"[0-9a-f]{12}", endpoint["fingerprint"])
    assert await start(_callbacks("https://hooks.example.com/a")) == one  # a restart as it was: nothing new
    two = await start(_callbacks("https://hooks.example.com/a", secret="another-signing-secret-987"))
    assert len(two) == 2 and two[0]["detail"]["endpoints"][0]["fingerprint"] != endpoint["fingerprint"]
    # A token in the URL's query changes the configuration but is not written down.
    four = await start(_callbacks("https://hooks.example.com/a?key=url-token-4711"))
    assert len(four) == 3 and four[0]["detail"]["endpoints"][0]["url"] == "https://hooks.example.com/a?…"
    assert "url-token-4711" not in json.dumps(four)
    three = await start({})  # all removed: that is a change too
    assert len(three) == 4 and three[0]["detail"]["endpoints"] == []
    assert len(await start({})) == 4


async def test_two_processes_starting_at_once_record_a_configuration_once(app: App) -> None:
    assert app.services is not None
    audit = app.services.audit
    done = await asyncio.gather(*(audit.record_if_changed("imgate", "callbacks.config", "sha256:same", {"n": i})
                                  for i in range(8)))
    assert sum(done) == 1
    assert len((await audit.page(action="callbacks.config")).items) == 1


async def test_a_sighup_reload_is_recorded(tmp_path: Path, settings: Settings) -> None:
    certs = tmp_path / "certs"
    write_dev_certs(certs)
    env = base_env(tmp_path) | {"IMGATE_DATABASE__URL": settings.database_url(), "IMGATE_MQTT__TLS_PORT": "0",
                                "IMGATE_MQTT__TLS_CERT": str(certs / "server.crt"),
                                "IMGATE_MQTT__TLS_KEY": str(certs / "server.key"),
                                "IMGATE_ADMIN__SECRET": ADMIN_SECRET, "IMGATE_ADMIN__PORT": "0"}
    proc = await asyncio.to_thread(subprocess.Popen, [sys.executable, "-m", "imgate", "--data-dir",
                                                      str(tmp_path / "data"), "run"], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        line = await asyncio.to_thread(started, proc)
        port = int(re.search(r"admin API on http://127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                     headers={"Authorization": f"Bearer {ADMIN_SECRET}"}) as api:
            assert await entries(api, action="settings.") == []
            found: list[dict[str, Any]] = []
            for n in (1, 2):
                if n == 2:
                    (certs / "server.key").write_text("not a key")  # the second reload fails: recorded as such
                os.kill(proc.pid, signal.SIGHUP)
                async with asyncio.timeout(WAIT):
                    while len(found) < n:  # polling the API for the entry the signal handler queued
                        found = await entries(api, action="settings.reload")
                        await asyncio.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 30)
    assert [(e["actor"], e["source"], e["detail"]["what"], e["detail"]["ok"]) for e in found] == [
        ("signal", "signal", "tls", False), ("signal", "signal", "tls", True)]
    assert found[0]["detail"]["error"] and "error" not in found[1]["detail"]


@pytest.fixture
async def people(app: App, users: Users) -> AsyncIterator[dict[str, Any]]:
    await users.add("ann", "bob", "cat", "dan")
    async with AsyncExitStack() as stack:
        yield {n: await stack.enter_async_context(connect(app.mqtt_port, n, "phone", await users.token(n)))
               for n in ("ann", "bob", "cat")}


async def test_groups_through_the_admin_api(api: httpx.AsyncClient, people: dict[str, Any]) -> None:
    r = await api.post("/v1/groups", json={"owner": "ann", "name": "team", "members": ["bob"]},
                       headers={"X-Imgate-Actor": "console:ops"})
    assert r.status_code == 201, r.text
    conv = r.json()["conv"]
    assert r.json()["seq"] == 1 and sorted(r.json()["members"]) == ["ann", "bob"]
    created = (await people["bob"].inbox.wait_for(on("/in/event", type="member", event="created")))[0].json
    assert created["conv"] == conv and created["from"] == "ann"

    added = await api.post(f"/v1/groups/{conv}/members", json={"uids": ["cat", "dan"]})
    assert added.status_code == 200 and added.json()["seq"] == 2
    got = (await people["cat"].inbox.wait_for(on("/in/event", type="member", event="added")))[0].json
    assert got["added"] == ["cat", "dan"] and got["seq"] == 2
    assert (await api.put(f"/v1/groups/{conv}/members/bob/role", json={"role": "admin"})).json()["members"][1] == \
        {"uid": "bob", "role": "admin"}
    removed = await api.delete(f"/v1/groups/{conv}/members/cat")
    assert removed.status_code == 200 and "cat" not in removed.json()["members"]
    gone = (await people["cat"].inbox.wait_for(on("/in/event", type="member", event="removed")))[0].json
    assert gone["removed"] == ["cat"] and gone["seq"] == 3
    # The rules of the RPCs: the owner stays, a non-member is not removed, no such user is added.
    assert (await api.delete(f"/v1/groups/{conv}/members/ann")).status_code == 403
    assert (await api.delete(f"/v1/groups/{conv}/members/cat")).status_code == 400
    assert (await api.post(f"/v1/groups/{conv}/members", json={"uids": ["nobody"]})).status_code == 404
    assert (await api.get("/v1/groups/g:nothing")).status_code == 404

    info = (await api.get(f"/v1/groups/{conv}")).json()
    assert info["owner"] == "ann" and [m["uid"] for m in info["members"]] == ["ann", "bob", "dan"]
    assert (await api.get(f"/v1/groups/{conv[2:]}")).json() == info  # the gid alone too
    page = (await api.get("/v1/groups")).json()
    assert page == {"items": [{"gid": conv[2:], "conv": conv, "name": "team", "owner": "ann", "members": 3}],
                    "next": None}
    assert (await api.get("/v1/groups", params={"member": "cat"})).json()["items"] == []
    assert len((await api.get("/v1/groups", params={"member": "dan"})).json()["items"]) == 1

    log = [(e["actor"], e["action"], e["target"], e["status"]) for e in reversed(await entries(api, action="group"))]
    assert log == [("console:ops", "group.create", conv, 201), ("admin", "group.add", conv, 200),
                   ("admin", "group.role", conv, 200), ("admin", "group.remove", conv, 200),
                   ("admin", "group.remove", conv, 403), ("admin", "group.remove", conv, 400),
                   ("admin", "group.add", conv, 404)]
    removal = (await entries(api, action="group.remove"))[-1]
    assert removal["detail"] == {"uid": "cat", "seq": 3}


async def test_group_pages(api: httpx.AsyncClient, users: Users) -> None:
    await users.add("ann", "bob")
    convs = sorted([(await api.post("/v1/groups", json={"owner": "ann", "name": f"g{i}"})).json()["conv"]
                    for i in range(5)])
    seen, after = [], None
    while True:
        page = (await api.get("/v1/groups", params={"limit": 2} | ({"after": after} if after else {}))).json()
        seen += [g["conv"] for g in page["items"]]
        after = page["next"]
        if after is None:
            break
    assert seen == convs
    assert all(g["members"] == 1 for g in (await api.get("/v1/groups")).json()["items"])


async def test_imgate_migrate_records_what_it_applied(settings: Settings) -> None:
    env = {**os.environ, "IMGATE_DATABASE__URL": settings.database_url()}
    done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "imgate", "--data-dir",
                                                    str(settings.data_dir), "migrate"], capture_output=True,
                                   text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    async with App(settings) as app:
        assert app.services is not None
        [entry] = (await app.services.audit.page(action="schema.")).items
    assert (entry.action, entry.source, entry.actor) == ("schema.migrate", "cli", cli_actor())
    assert entry.detail["created"] is True and entry.detail["applied"][-1] == entry.detail["current"]
