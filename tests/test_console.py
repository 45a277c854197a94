"""The operator console (imgate/console, served by the admin listener at /console) and the read
routes it uses (users by uid prefix, a user's devices, live connections, the metrics snapshot),
with its groups and audit log views on the admin API's group and audit routes:
through the real admin API with httpx, and in Debian's chromium driven by Playwright against the
real platform, with real MQTT clients (aiomqtt) as the devices it watches."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
import httpx
import pytest

from imgate.app import App
from tests.browser import chromium, needs_chromium, new_page
from tests.conftest import ADMIN_SECRET, Users
from tests.helpers import WAIT, connect, on, wait_event

DATA_ROUTES = ["/v1/stats", "/v1/connections", "/v1/connections?uid=alice", "/v1/users/alice/devices",
               "/v1/users?prefix=al"]


@pytest.fixture
def admin_secret() -> str:
    return ADMIN_SECRET


def base(app: App) -> str:
    assert app.admin is not None
    return f"http://127.0.0.1:{app.admin.port}"


async def until(probe: Callable[[], Awaitable[Any]], what: str) -> Any:
    """``probe()`` until it gives something true (the API answers from state the bridge writes as
    it goes, e.g. a device's presence), bounded by WAIT."""
    try:
        async with asyncio.timeout(WAIT):
            while not (got := await probe()):
                await asyncio.sleep(0.05)  # a polling interval; the deadline bounds the wait
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None
    return got


# ---- the API ----------------------------------------------------------------------------------

async def test_the_console_is_public_static_files_under_a_strict_csp(app: App) -> None:
    """The page and its files need no secret and hold none; they run under a CSP allowing only
    this origin's scripts, styles and API calls; nothing else is served under /console/."""
    async with httpx.AsyncClient(base_url=base(app)) as http:
        page = await http.get("/console")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert (await http.get("/console/")).text == page.text
        assert '<script type="module" src="/console/console.js">' in page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "connect-src 'self';" in csp and "default-src 'none'" in csp
        assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
        js = await http.get("/console/console.js")
        assert js.status_code == 200 and js.headers["content-type"].split(";")[0] == "text/javascript"
        assert js.headers["content-security-policy"] == csp
        assert ADMIN_SECRET not in page.text + js.text
        css = await http.get("/console/console.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        for missing in ("/console/app.py", "/console/..%2Fadmin.py", "/console/nope.js"):
            assert (await http.get(missing)).status_code == 404
        assert "/console" not in (await http.get("/openapi.json",
                                                 headers={"Authorization": f"Bearer {ADMIN_SECRET}"})).text


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
async def test_every_data_route_of_the_console_needs_the_secret(app: App, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=base(app), headers=headers) as http:
        for path in DATA_ROUTES:
            r = await http.get(path)
            assert r.status_code == 401 and r.json() == {"error": {"code": "unauthorized"}}, path


async def test_users_by_uid_prefix_in_any_case(api: httpx.AsyncClient, users: Users) -> None:
    await users.add("alice", "alan", "Albert", "a_b", "axb", "bob")
    async def uids(**params: Any) -> list[str]:
        r = await api.get("/v1/users", params=params)
        assert r.status_code == 200, r.text
        return [u["uid"] for u in r.json()["items"]]

    assert sorted(await uids(prefix="al")) == ["Albert", "alan", "alice"]
    assert sorted(await uids(prefix="AL")) == ["Albert", "alan", "alice"]
    assert await uids(prefix="a_") == ["a_b"]  # "_" is no wildcard
    assert await uids(prefix="bob") == ["bob"]
    assert await uids(prefix="zed") == []
    first = (await api.get("/v1/users", params={"prefix": "a", "limit": 2})).json()
    assert len(first["items"]) == 2 and first["next"] == first["items"][-1]["uid"]
    rest = (await api.get("/v1/users", params={"prefix": "a", "limit": 10, "after": first["next"]})).json()
    assert {u["uid"] for u in first["items"] + rest["items"]} == {"alice", "alan", "Albert", "a_b", "axb"}
    assert rest["next"] is None
    bad = await api.get("/v1/users", params={"prefix": "a%"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "prefix"


async def test_a_users_devices_with_presence_and_tokens(app: App, api: httpx.AsyncClient, users: Users) -> None:
    await users.add("alice")
    phone = await users.token("alice", "phone", "android")
    await users.token("alice", "laptop", "desktop")
    await users.token("alice", "laptop", "desktop")

    async def devices() -> dict[str, Any]:
        r = await api.get("/v1/users/alice/devices")
        assert r.status_code == 200, r.text
        return {d["device"]: d for d in r.json()["items"]}

    before = await devices()
    assert set(before) == {"laptop", "phone"}
    assert before["laptop"]["tokens"] == 2 and before["laptop"]["platform"] == "desktop"
    assert before["phone"] == {"device": "phone", "platform": "android", "online": False, "last_seen": None,
                               "tokens": 1, "last_used_at": None}
    async with connect(app.mqtt_port, "alice", "phone", phone):
        online = await until(lambda: _device_if(devices, "phone", online=True), "alice's phone online")
        assert online["last_seen"] > 0
        assert app.services is not None
        await app.services.users.token_use_written()  # (written behind the login)
        assert (await devices())["phone"]["last_used_at"] is not None
        assert (await devices())["laptop"]["online"] is False
    offline = await until(lambda: _device_if(devices, "phone", online=False), "alice's phone offline")
    assert offline["last_seen"] >= online["last_seen"]
    assert (await api.post("/v1/users/alice/tokens/revoke", json={"device": "laptop"})).json() == {"count": 2}
    assert (await devices())["laptop"]["tokens"] == 0
    missing = await api.get("/v1/users/nobody/devices")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def _device_if(devices: Callable[[], Awaitable[dict[str, Any]]], device: str, *, online: bool
                     ) -> dict[str, Any] | None:
    d = (await devices()).get(device)
    return d if d is not None and d["online"] is online else None


async def test_connections_are_the_embedded_brokers_live_sessions(app: App, api: httpx.AsyncClient,
                                                                 users: Users) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice", "phone", "android"),
                       protocol=aiomqtt.ProtocolVersion.V5) as alice, \
               connect(app.mqtt_port, "bob", "web", await users.token("bob", "web", "web")):
        r = await api.get("/v1/connections")
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["source"] == "broker" and page["total"] == 2
        assert [c["client_id"] for c in page["items"]] == ["alice:phone", "bob:web"]  # by client id
        a, b = page["items"]
        assert (a["uid"], a["device"], a["platform"], a["protocol"], a["transport"]) == \
            ("alice", "phone", "android", "5", "tcp")
        assert b["protocol"] == "3.1.1" and b["account"] is None
        assert re.fullmatch(r"127\.0\.0\.1:\d+", a["remote"]) and a["since"] > 0
        only = (await api.get("/v1/connections", params={"uid": "bob"})).json()
        assert only["total"] == 1 and [c["client_id"] for c in only["items"]] == ["bob:web"]
        first = (await api.get("/v1/connections", params={"limit": 1})).json()
        assert first["total"] == 2 and [c["client_id"] for c in first["items"]] == ["alice:phone"]
        assert (await api.get("/v1/connections", params={"limit": 0})).status_code == 400
        await api.post("/v1/users/alice/logout")
        await wait_event(alice.disconnected)
        assert [c["client_id"] for c in (await api.get("/v1/connections")).json()["items"]] == ["bob:web"]


async def test_stats_count_the_sends_and_their_ack_latency(app: App, api: httpx.AsyncClient, users: Users) -> None:
    await users.add("alice", "bob")
    before = (await api.get("/v1/stats")).json()
    assert before["role"] == "all" and before["ts"] > 0
    assert before["metrics"]["connections"] == 0
    hist = before["send_ack"]
    assert hist["le"][0] == 0.0005 and len(hist["counts"]) == len(hist["le"])
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
               connect(app.mqtt_port, "bob", "phone", await users.token("bob")):
        for i in range(5):
            await alice.send_and_ack(f"c{i}", "bob", f"hi {i}")
        after = (await api.get("/v1/stats")).json()
    m = after["metrics"]
    assert m["connections"] == 2
    assert m["bridge_sends_total"] - before["metrics"]["bridge_sends_total"] == 5
    assert after["send_ack"]["count"] - hist["count"] == 5
    assert after["send_ack"]["counts"][-1] <= after["send_ack"]["count"]  # the last finite bound, then +Inf
    assert after["send_ack"]["sum"] > hist["sum"] and after["ts"] >= before["ts"]
    assert "bridge_backlog" in m and "search_backlog" in m


# ---- in chromium ----------------------------------------------------------------------------

@needs_chromium
async def test_the_console_in_chromium(app: App, api: httpx.AsyncClient, users: Users) -> None:
    """Sign in (a wrong secret first), find a user, see their device online, revoke its token in
    the page and see the device drop, see the messages/s chart move while devices talk, change a
    group's members, and read the console's own changes in the audit log, a page at a time."""
    from playwright.async_api import expect

    await users.add("alice", "alan", "bob", "carol")
    async with chromium() as browser:
        page = await new_page(browser, f"{base(app)}/console", "console", viewport={"width": 1280, "height": 800})
        page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
        calls: list[tuple[str, str | None, str | None]] = []  # (path, Authorization, X-Imgate-Actor)
        page.on("request", lambda r: calls.append((r.url, r.headers.get("authorization"),
                                                   r.headers.get("x-imgate-actor"))) if "/v1/" in r.url else None)
        await page.get_by_test_id("signin-name").fill("ops")
        await page.get_by_test_id("signin-secret").fill("not-the-secret")
        await page.get_by_test_id("signin-submit").click()
        await expect(page.get_by_test_id("signin-error")).to_have_text("Wrong admin secret: the server refused it.")
        await expect(page.locator("#console")).to_be_hidden()
        await page.get_by_test_id("signin-secret").fill(ADMIN_SECRET)
        await page.get_by_test_id("signin-submit").click()
        await expect(page.get_by_test_id("who")).to_have_text("signed in as console:ops")
        await expect(page.get_by_test_id("role")).to_have_text("process: all")

        # Find alice by the start of her uid; her phone is online (a real MQTT client).
        token = await users.token("alice", "phone", "android")
        async with connect(app.mqtt_port, "alice", "phone", token) as phone:
            await page.get_by_test_id("user-search").fill("ali")
            await page.get_by_test_id("user-search-submit").click()
            await expect(page.get_by_test_id("user-item")).to_have_count(1)
            await page.locator('[data-testid="user-item"][data-uid="alice"] button').click()
            await expect(page.get_by_test_id("user-uid")).to_have_text("alice")
            device = page.locator('[data-testid="device"][data-device="phone"]')
            await expect(device).to_have_attribute("data-online", "true")
            await expect(device.get_by_test_id("device-presence")).to_have_text("online")
            # Revoke its token in the page: the broker drops the connection, the page shows it offline.
            await device.get_by_test_id("device-revoke").click()
            await wait_event(phone.disconnected)
            await expect(device).to_have_attribute("data-online", "false")
            await expect(device.get_by_test_id("device-presence")).to_have_text("offline")
            await expect(page.locator('[data-testid="token"][data-device="phone"]')).to_have_attribute(
                "data-state", "revoked")
            await page.screenshot(path="/tmp/console-users.png")
        listed = (await api.get("/v1/users/alice/tokens")).json()
        assert listed[0]["revoked_at"] is not None

        # Disable and enable her; issue a token for a new device (shown once).
        await page.get_by_test_id("user-toggle").click()
        await expect(page.get_by_test_id("user-state")).to_have_text("disabled")
        assert (await api.get("/v1/users/alice")).json()["disabled"] is True
        await page.get_by_test_id("user-toggle").click()
        await expect(page.get_by_test_id("user-state")).to_have_text("enabled")
        assert (await api.get("/v1/users/alice")).json()["disabled"] is False
        await page.get_by_test_id("issue-device").fill("tablet")
        await page.get_by_test_id("issue-platform").fill("ios")
        await page.get_by_test_id("issue-submit").click()
        await expect(page.get_by_test_id("issued-token")).to_have_text(re.compile(r"^imt_"))
        await expect(page.locator('[data-testid="token"][data-device="tablet"]')).to_have_attribute("data-state", "live")
        issued = await page.get_by_test_id("issued-token").text_content()
        async with connect(app.mqtt_port, "alice", "tablet", issued or ""):  # the page's token logs in
            await expect(page.locator('[data-testid="device"][data-device="tablet"]')).to_have_attribute(
                "data-online", "true")

        # Connections: bob's and carol's devices, live from the embedded broker.
        async with connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob, \
                   connect(app.mqtt_port, "carol", "phone", await users.token("carol")) as carol:
            await page.get_by_test_id("tab-connections").click()
            await expect(page.get_by_test_id("connection")).to_have_count(2)
            await expect(page.get_by_test_id("conn-summary")).to_contain_text("live, from the embedded broker")

            # The messages/s chart moves while bob sends to carol.
            await page.get_by_test_id("tab-metrics").click()
            stop = asyncio.Event()
            sender = asyncio.create_task(_sends_to(bob, "carol", stop))
            try:  # (while it sends: a second without sends is a rate of 0 and no latency)
                await page.wait_for_function(
                    "() => Number(document.querySelector('[data-testid=chart-msgs]').dataset.latest) > 0"
                    " && Number(document.querySelector('[data-testid=chart-latency]').dataset.latest) > 0",
                    timeout=WAIT * 1000)
                await page.screenshot(path="/tmp/console.png")
            finally:
                stop.set()
                sent = await sender
            assert sent > 0
            await expect(page.get_by_test_id("chart-msgs").locator("xpath=..").locator('[data-series="sent"]')
                         ).to_be_visible()
            await expect(page.locator('[data-testid="chart-connections"]')).to_have_attribute("data-latest", "2")

            # Groups: one made through the admin API shows with its members and their roles; a
            # member removed in the page disappears (and her device gets the member event), one
            # added in the page appears.
            made = await api.post("/v1/groups", json={"owner": "bob", "name": "night shift", "members": ["carol", "alan"]})
            assert made.status_code == 201, made.text
            conv = made.json()["conv"]
            await page.get_by_test_id("tab-groups").click()
            item = page.locator(f'[data-testid="group-item"][data-conv="{conv}"]')
            await expect(item).to_contain_text("night shift")
            await expect(item).to_contain_text("3 members · owner bob")
            await item.get_by_role("button").click()
            await expect(page.get_by_test_id("group-conv")).to_have_text(conv)
            members = page.get_by_test_id("group-member")
            await expect(members).to_have_count(3)
            listed_members = [(m["uid"], m["role"]) for m in (await api.get(f"/v1/groups/{conv}")).json()["members"]]
            assert listed_members[0] == ("bob", "owner") and sorted(listed_members[1:]) == [("alan", "member"),
                                                                                             ("carol", "member")]
            assert [(await m.get_attribute("data-uid"), await m.get_attribute("data-role"))
                    for m in await members.all()] == listed_members
            owner_row = page.locator('[data-testid="group-member"][data-uid="bob"]')
            await expect(owner_row.get_by_test_id("group-member-remove")).to_have_count(0)  # the owner stays
            await page.locator('[data-testid="group-member"][data-uid="carol"]').get_by_test_id(
                "group-member-remove").click()
            await expect(page.locator('[data-testid="group-member"][data-uid="carol"]')).to_have_count(0)
            await expect(members).to_have_count(2)
            removed = (await carol.inbox.wait_for(on("/in/event", type="member", event="removed")))[0].json
            assert removed["conv"] == conv and removed["removed"] == ["carol"] and removed["from"] == "bob"
            await page.get_by_test_id("group-add-uids").fill("alice")
            await page.get_by_test_id("group-add-submit").click()
            await expect(page.locator('[data-testid="group-member"][data-uid="alice"]')).to_have_attribute(
                "data-role", "member")
            await expect(item).to_contain_text("3 members · owner bob")
            await page.get_by_test_id("group-add-uids").fill("nobody")  # refused: shown, and recorded
            await page.get_by_test_id("group-add-submit").click()
            await expect(page.get_by_test_id("error")).to_contain_text("/members: 404")
            await page.get_by_test_id("error").click()
            await expect(members).to_have_count(3)
            assert [m["uid"] for m in (await api.get(f"/v1/groups/{conv}")).json()["members"]] == ["bob", "alan", "alice"]
            await page.screenshot(path="/tmp/console-groups.png")
            await page.get_by_test_id("group-member-filter").fill("carol")  # the groups a uid is in
            await page.get_by_test_id("group-filter-submit").click()
            await expect(page.get_by_test_id("group-list")).to_have_text("No groups.")
            await page.get_by_test_id("group-member-filter").fill("alice")
            await page.get_by_test_id("group-filter-submit").click()
            await expect(item).to_be_visible()

        # The audit log: the group's history (its link in the group's pane), by the console and by
        # the admin API's default actor.
        await page.get_by_test_id("group-history").click()
        await expect(page.get_by_test_id("audit-target")).to_have_value(conv)
        rows = page.get_by_test_id("audit-item")
        await expect(rows).to_have_count(4)
        assert [(await r.get_attribute("data-actor"), await r.get_attribute("data-action"),
                 await r.get_attribute("data-status")) for r in await rows.all()] == [
            ("console:ops", "group.add", "404"), ("console:ops", "group.add", "200"),
            ("console:ops", "group.remove", "200"), ("admin", "group.create", "201")]
        await expect(rows.first).to_have_class("refused")
        await expect(page.get_by_test_id("audit-end")).to_be_visible()

        # The console's own changes (actor console:ops), two a page: "Older…" pages back to the first.
        await page.get_by_test_id("audit-clear").click()
        await page.get_by_test_id("audit-actor").fill("console:ops")
        await page.get_by_test_id("audit-limit").fill("2")
        await page.get_by_test_id("audit-filter-submit").click()
        mine = (await api.get("/v1/audit", params={"actor": "console:ops", "limit": 1000})).json()["items"]
        assert [e["action"] for e in mine] == ["group.add", "group.add", "group.remove", "token.issue", "user.enable",
                                               "user.disable", "token.revoke"]
        for shown in (2, 4, 6, 7):
            await expect(rows).to_have_count(shown)
            assert [int(await r.get_attribute("data-id") or 0) for r in await rows.all()] == \
                [e["id"] for e in mine[:shown]]
            if shown < 7:
                await expect(page.get_by_test_id("audit-end")).to_be_hidden()
                await page.get_by_test_id("audit-more").click()
        await expect(page.get_by_test_id("audit-more")).to_be_hidden()
        await expect(page.get_by_test_id("audit-end")).to_be_visible()
        revoke = page.locator('[data-testid="audit-item"][data-action="token.revoke"]')
        await expect(revoke).to_have_attribute("data-actor", "console:ops")
        await expect(revoke).to_have_attribute("data-target", "alice")
        await expect(revoke).to_contain_text('{"device":"phone"}')
        await page.screenshot(path="/tmp/console-audit.png")
        await revoke.get_by_role("button", name="alice").click()  # its target opens the user
        await expect(page.get_by_test_id("user-uid")).to_have_text("alice")
        await page.get_by_test_id("tab-audit").click()
        # By action prefix: every token change, the console's and none other.
        await page.get_by_test_id("audit-limit").fill("50")
        await page.get_by_test_id("audit-clear").click()
        await expect(rows).to_have_count(8)
        await page.get_by_test_id("audit-action").fill("token.")
        await page.get_by_test_id("audit-filter-submit").click()
        await expect(rows).to_have_count(2)
        assert {await r.get_attribute("data-action") for r in await rows.all()} == {"token.revoke", "token.issue"}

        # Every API call after the sign-in carried the secret and the operator's name (the audit's who).
        signed = calls[1:]
        assert calls[0][1] == "Bearer not-the-secret" and len(signed) > 10
        assert {(auth, actor) for _, auth, actor in signed} == {(f"Bearer {ADMIN_SECRET}", "console:ops")}
        assert any("/tokens/revoke" in url for url, _, _ in signed)
        assert any(url.endswith("/members/carol") for url, _, _ in signed)  # (the conv URL-encoded)

        # Nothing of the admin secret reached the audit log.
        log = await api.get("/v1/audit", params={"limit": 1000})
        assert log.status_code == 200 and len(log.json()["items"]) == 8
        assert ADMIN_SECRET not in log.text and "not-the-secret" not in log.text

        # Sign out: the secret is gone from the tab.
        await page.get_by_test_id("signout").click()
        await expect(page.get_by_test_id("signin")).to_be_visible()
        assert await page.evaluate("() => sessionStorage.length") == 0


async def _sends_to(dev: Any, to: str, stop: asyncio.Event) -> int:
    """Messages from ``dev`` to ``to``, each acked before the next, until ``stop``."""
    n = 0
    while not stop.is_set():
        n += 1
        await dev.send_and_ack(f"load{n}", to, f"message {n}")
    return n


@needs_chromium
async def test_an_api_error_is_shown_not_a_blank_page(app: App, users: Users) -> None:
    """An API error (here a search the API refuses: the form's own check taken off) is shown
    with the call and the API's message, over the page as it was."""
    from playwright.async_api import expect

    await users.add("alice")
    async with chromium() as browser:
        page = await new_page(browser, f"{base(app)}/console", "console")
        await page.get_by_test_id("signin-name").fill("ops")
        await page.get_by_test_id("signin-secret").fill(ADMIN_SECRET)
        await page.get_by_test_id("signin-submit").click()
        await expect(page.get_by_test_id("user-item")).to_have_count(1)
        await page.get_by_test_id("user-search").fill("bad%")  # not a uid's start: the form refuses it
        await page.evaluate("() => document.querySelector('[data-testid=user-search]').removeAttribute('pattern')")
        await page.get_by_test_id("user-search-submit").click()
        await expect(page.get_by_test_id("error")).to_contain_text("GET /v1/users?limit=50&prefix=bad%25: 400")
        await expect(page.get_by_test_id("error")).to_contain_text("prefix")
