"""RabbitMQ's HTTP auth backend questions, answered by the admin API (``/auth/rabbitmq/…``) from
the embedded broker's own logins and topic ACL (``broker.external_auth``). The live exchange
with a RabbitMQ node is in tests/test_rabbitmq_live.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from config.settings import Settings
from imgate.app import App
from tests.conftest import ADMIN_SECRET


@pytest.fixture
def admin_secret() -> str:
    return ADMIN_SECRET


@pytest.fixture
async def rabbit(app: App) -> httpx.AsyncClient:
    """The auth backend as RabbitMQ calls it: form posts, no admin secret."""
    assert app.admin is not None
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.admin.port}/auth/rabbitmq") as client:
        yield client  # type: ignore[misc]


async def ask(client: httpx.AsyncClient, path: str, **form: str) -> str:
    r = await client.post(path, data=form)
    assert r.status_code == 200
    assert r.text in ("allow", "deny")
    return r.text


async def test_user_logins_are_the_embedded_brokers(app: App, rabbit: httpx.AsyncClient) -> None:
    await app.services.users.add_user("alice")
    token = (await app.services.users.issue_token("alice", "phone")).token
    assert await ask(rabbit, "/user", username="alice", password=token, vhost="/", client_id="alice:phone") == "allow"
    # a wrong or missing token, another user's name, the client id of another device or user
    assert await ask(rabbit, "/user", username="alice", password=token + "x", client_id="alice:phone") == "deny"
    assert await ask(rabbit, "/user", username="alice", client_id="alice:phone") == "deny"
    assert await ask(rabbit, "/user", username="bob", password=token, client_id="bob:phone") == "deny"
    assert await ask(rabbit, "/user", username="alice", password=token, client_id="alice:laptop") == "deny"
    assert await ask(rabbit, "/user", username="alice", password=token, client_id="bob:phone") == "deny"
    assert await ask(rabbit, "/user", username="alice", password=token) == "deny"  # AMQP: users only speak MQTT
    await app.services.users.revoke_tokens("alice", "phone")
    assert await ask(rabbit, "/user", username="alice", password=token, client_id="alice:phone") == "deny"


async def test_vhost_and_resources(rabbit: httpx.AsyncClient) -> None:
    assert await ask(rabbit, "/vhost", username="alice", vhost="/") == "allow"
    assert await ask(rabbit, "/vhost", username="alice", vhost="other") == "deny"
    for permission in ("read", "write"):
        assert await ask(rabbit, "/resource", username="alice", vhost="/", resource="exchange", name="amq.topic",
                         permission=permission) == "allow"
    assert await ask(rabbit, "/resource", username="alice", vhost="/", resource="exchange", name="amq.topic",
                     permission="configure") == "deny"
    assert await ask(rabbit, "/resource", username="alice", vhost="/", resource="exchange", name="amq.direct",
                     permission="write") == "deny"
    for permission in ("configure", "read", "write"):  # the MQTT plugin's queue for alice's subscriptions
        assert await ask(rabbit, "/resource", username="alice", vhost="/", resource="queue",
                         name="mqtt-subscription-alice:phoneqos1", permission=permission) == "allow"
    for name in ("mqtt-subscription-bob:phoneqos1", "imgate.out.0", "mqtt-subscription-alice:phone"):
        assert await ask(rabbit, "/resource", username="alice", vhost="/", resource="queue", name=name,
                         permission="read") == "deny", name


@pytest.mark.parametrize(("permission", "key", "answer"), [
    ("write", "im.alice.out.msg", "allow"),  # im/alice/out/msg
    ("write", "im.bob.out.msg", "deny"),  # another user's topic
    ("write", "im.alice.in.msg", "deny"),  # the server's topic
    ("read", "im.alice.in.msg", "allow"),
    ("read", "im.alice.in.#", "allow"),
    ("read", "im.*.in.#", "deny"),  # a wildcard in the uid level
    ("read", "im.bob.in.msg", "deny"),
    ("read", "#", "deny"),
    ("read", "presence.bob.*", "allow"),  # presence/bob/+: one concrete uid
    ("read", "presence.*.*", "deny"),
    ("configure", "im.alice.out.msg", "deny"),
])
async def test_topics_follow_the_mqtt_acl(rabbit: httpx.AsyncClient, permission: str, key: str, answer: str) -> None:
    form = {"username": "alice", "vhost": "/", "resource": "topic", "name": "amq.topic", "permission": permission,
            "routing_key": key, "variable_map.client_id": "alice:phone", "variable_map.username": "alice"}
    assert await ask(rabbit, "/topic", **form) == answer


async def test_topic_checks_need_a_matching_client_id_and_exchange(rabbit: httpx.AsyncClient) -> None:
    form = {"username": "alice", "vhost": "/", "resource": "topic", "name": "amq.topic", "permission": "write",
            "routing_key": "im.alice.out.msg"}
    assert await ask(rabbit, "/topic", **form, **{"variable_map.client_id": "alice:phone"}) == "allow"
    assert await ask(rabbit, "/topic", **form, **{"variable_map.client_id": "bob:phone"}) == "deny"
    assert await ask(rabbit, "/topic", **form) == "deny"  # no client id: not one of our MQTT logins
    assert await ask(rabbit, "/topic", **{**form, "name": "other"}, **{"variable_map.client_id": "alice:phone"}) \
        == "deny"


async def test_garbage_and_huge_forms_are_denied(rabbit: httpx.AsyncClient) -> None:
    huge = {"username": "alice", "password": "imt_" + "x" * 10_000, "client_id": "alice:phone"}
    assert await ask(rabbit, "/user", **huge) == "deny"
    r = await rabbit.post("/user", content=b"\xff\xfe=\x00", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.text == "deny"
    assert await ask(rabbit, "/topic") == "deny"


async def test_the_api_role_serves_the_admin_api_and_the_auth_backend_alone(settings: Settings) -> None:
    """``imgate api``: no broker, no bridge; the database, the admin API and the auth backend."""
    async with App(settings) as full:  # migrates the database (an api process does not) and adds a user
        await full.services.users.add_user("carol")
        token = (await full.services.users.issue_token("carol", "tab")).token
    async with App(settings, role="api") as api:
        assert api.broker is None and api.bridge is None and api.admin is not None
        base = f"http://127.0.0.1:{api.admin.port}"
        async with httpx.AsyncClient(base_url=base) as client:
            health = await client.get("/healthz")
            assert health.status_code == 200 and health.json() == {"ok": True, "checks": {"database": True}}
            assert await ask(client, "/auth/rabbitmq/user", username="carol", password=token,
                             client_id="carol:tab") == "allow"
            assert await ask(client, "/auth/rabbitmq/user", username="carol", password="imt_nope",
                             client_id="carol:tab") == "deny"
            notified = await client.post("/v1/notifications", json={"body": {"hi": 1}, "uids": ["carol"]},
                                         headers={"Authorization": f"Bearer {ADMIN_SECRET}"})
            assert notified.status_code == 201 and notified.json() == {"users": 1, "devices_now": 0}


def test_the_api_role_needs_the_admin_secret(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "imgate", "--data-dir", str(tmp_path), "api"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "imgate api needs admin.secret" in done.stderr


def test_the_bridges_account_may_bind_to_the_event_exchange() -> None:
    """Cluster mode's bridges (the internal account, broker.username) bind a queue to
    ``amq.rabbitmq.event`` for presence: a topic question on another exchange than amq.topic."""
    from typing import Any, cast

    from broker.external_auth import ExternalAuth
    from broker.gate import Gate
    from imgate.app import topic_acl

    auth = ExternalAuth(Gate(cast("Any", None), [], {"bridge": "secret"}), topic_acl("im"), internal={"bridge"})
    assert auth.topic("bridge", "/", "amq.rabbitmq.event", "read", "connection.created", None)
    assert auth.topic("bridge", "/", "amq.topic", "read", "im.*.out.#", None)
    assert not auth.topic("bridge", "other", "amq.rabbitmq.event", "read", "connection.created", None)
    assert not auth.topic("alice", "/", "amq.rabbitmq.event", "read", "connection.created", "alice:phone")
