"""EMQX 5's HTTP authentication and authorization, answered by the admin API (``/auth/emqx/…``)
from the embedded broker's logins and topic ACL. EMQX itself is not installable on this project's
machines: these are contract tests of the request and response shapes of EMQX's documentation
(HTTP authentication: a JSON body from a template, ``{"result": "allow" | "deny" | "ignore",
"is_superuser": bool}`` back with ``application/json``; HTTP authorization: ``result`` allow or
deny), and of ``config/emqx/imgate.hocon``, the configuration that makes EMQX send them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from imgate.app import App
from tests.external_auth import BRIDGE, BRIDGE_PASSWORD, admin_secret_fixture, bridge_login_fixture  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
HOCON = ROOT / "config" / "emqx" / "imgate.hocon"


@pytest.fixture
async def emqx(app: App) -> AsyncIterator[httpx.AsyncClient]:
    """The hooks as EMQX calls them: JSON posts, no admin secret."""
    assert app.admin is not None
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.admin.port}/auth/emqx") as client:
        yield client


async def result(client: httpx.AsyncClient, path: str, **body: str) -> str:
    r = await client.post(path, json=body)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    answer = r.json()
    assert answer["result"] in ("allow", "deny") and answer["is_superuser"] is False
    return str(answer["result"])


async def test_authn_logs_devices_and_accounts_in(app: App, emqx: httpx.AsyncClient) -> None:
    await app.services.users.add_user("alice")
    token = (await app.services.users.issue_token("alice", "phone")).token
    assert await result(emqx, "/authn", username="alice", password=token, clientid="alice:phone") == "allow"
    assert await result(emqx, "/authn", username="alice", password=token, clientid="alice:tablet") == "deny"
    assert await result(emqx, "/authn", username="alice", password="imt_wrong", clientid="alice:phone") == "deny"
    assert await result(emqx, "/authn", username=BRIDGE, password=BRIDGE_PASSWORD, clientid="bridge-1") == "allow"
    assert await result(emqx, "/authn", username=BRIDGE, password="nope", clientid="bridge-1") == "deny"
    # a bridge account may not take a user's client id (it would take over the user's session)
    assert await result(emqx, "/authn", username=BRIDGE, password=BRIDGE_PASSWORD, clientid="alice:phone") == "deny"


@pytest.mark.parametrize(("username", "clientid", "action", "topic", "answer"), [
    ("alice", "alice:phone", "publish", "im/alice/out/msg", "allow"),
    ("alice", "alice:phone", "publish", "im/bob/out/msg", "deny"),
    ("alice", "alice:phone", "subscribe", "im/alice/in/#", "allow"),
    ("alice", "alice:phone", "subscribe", "im/+/in/#", "deny"),
    ("alice", "alice:phone", "subscribe", "$share/g/im/alice/in/#", "allow"),  # decided on its filter
    ("alice", "alice:phone", "subscribe", "$share/g/im/+/out/#", "deny"),
    ("alice", "bob:phone", "publish", "im/alice/out/msg", "deny"),  # the client id is not alice's
    ("alice", "alice:phone", "all", "im/alice/out/msg", "deny"),
    (BRIDGE, "bridge-1", "subscribe", "$share/imgate/im/+/out/#", "allow"),  # bridge.shared_group
    (BRIDGE, "bridge-1", "publish", "im/alice/in/msg", "allow"),
    (BRIDGE, "bridge-1", "subscribe", "$share//im/+/out/#", "deny"),  # no group
])
async def test_authz_is_the_mqtt_topic_acl(emqx: httpx.AsyncClient, username: str, clientid: str, action: str,
                                           topic: str, answer: str) -> None:
    assert await result(emqx, "/authz", username=username, clientid=clientid, action=action, topic=topic) == answer


async def test_garbage_huge_and_non_object_bodies_are_denied(emqx: httpx.AsyncClient) -> None:
    for content in (b"{nope", b"[1, 2]", b'"alice"', b"\xff\xfe", b'{"username": "' + b"x" * 10_000 + b'"}',
                    b"[" * 8000):
        r = await emqx.post("/authn", content=content, headers={"Content-Type": "application/json"})
        assert r.status_code == 200 and r.json()["result"] == "deny"
    r = await emqx.post("/authz", json={"username": 5, "clientid": ["x"], "action": "publish", "topic": "t"})
    assert r.json()["result"] == "deny"


def _blocks(text: str) -> dict[str, dict[str, str]]:
    """url -> the body template of that source (a small reading of the HOCON file's shape)."""
    found = {}
    for url, body in re.findall(r'url = "([^"]+)"\s+headers \{[^}]*\}\s+body \{\n(.*?)\n\s*\}\n', text, re.DOTALL):
        found[url] = dict(re.findall(r'(\w+) = "([^"]*)"', body))
    return found


def test_the_emqx_config_sends_what_the_hooks_read() -> None:
    text = HOCON.read_text()
    blocks = _blocks(text)
    assert set(blocks) == {"http://imgate-api:8080/auth/emqx/authn", "http://imgate-api:8080/auth/emqx/authz"}
    assert blocks["http://imgate-api:8080/auth/emqx/authn"] == {
        "username": "${username}", "password": "${password}", "clientid": "${clientid}"}
    assert blocks["http://imgate-api:8080/auth/emqx/authz"] == {
        "username": "${username}", "clientid": "${clientid}", "action": "${action}", "topic": "${topic}"}
    assert text.count("method = post") == 2 and "no_match = deny" in text and "deny_action = disconnect" in text
