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
from tests.external_auth import BRIDGE, BRIDGE_PASSWORD
from tests.helpers import ManualClock, tweak

GATEWAY, GATEWAY_PASSWORD = "svc:gateway", "change-me-please"  # docs/protocol.md's example account
WRITER, WRITER_PASSWORD = "svc.writer", "writer-password"
BRIDGE_CLIENT_ID = "bridge-7"  # bridge.client_id, configured: reserved as any "imgate-…"


@pytest.fixture
def admin_secret() -> str:
    return ADMIN_SECRET


@pytest.fixture(name="settings")
def accounts_fixture(settings: Settings) -> Settings:
    """The bridges' account (broker.username) and client id (bridge.client_id), docs/protocol.md's
    ``svc:gateway`` and a write-only account."""
    settings = tweak(settings, "bridge", client_id=BRIDGE_CLIENT_ID)
    return tweak(settings, "broker", username=BRIDGE, password=BRIDGE_PASSWORD, accounts=[
        {"username": GATEWAY, "password": GATEWAY_PASSWORD,
         "acl": ["readwrite devices/%u/#", "read status/%c", "deny devices/%u/secret/#"]},
        {"username": WRITER, "password": WRITER_PASSWORD, "acl": ["write sensors/%c"]}])


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
                         client_id="alice:phone", permission=permission) == "allow"
    assert await ask(rabbit, "/resource", username="alice", vhost="/", resource="exchange", name="amq.topic",
                     client_id="alice:phone", permission="configure") == "deny"
    assert await ask(rabbit, "/resource", username="alice", vhost="/", resource="exchange", name="amq.direct",
                     client_id="alice:phone", permission="write") == "deny"
    assert await ask(rabbit, "/resource", username="alice", vhost="/", resource="exchange", name="amq.topic",
                     permission="write") == "deny"  # not an MQTT connection of hers (users only speak MQTT)
    for permission in ("configure", "read", "write"):  # the MQTT plugin's queue for alice's subscriptions
        assert await ask(rabbit, "/resource", username="alice", vhost="/", resource="queue", client_id="alice:phone",
                         name="mqtt-subscription-alice:phoneqos1", permission=permission) == "allow"
    # Another user's, another device's (her own laptop's: only the connection's own client id), the
    # bridges' shards; and her own without the client id RabbitMQ's MQTT plugin always sends.
    for name in ("mqtt-subscription-bob:phoneqos1", "mqtt-subscription-alice:laptopqos1", "imgate.out.0",
                 "mqtt-subscription-alice:phone"):
        assert await ask(rabbit, "/resource", username="alice", vhost="/", resource="queue", name=name,
                         client_id="alice:phone", permission="read") == "deny", name
    assert await ask(rabbit, "/resource", username="alice", vhost="/", resource="queue",
                     name="mqtt-subscription-alice:phoneqos1", permission="read") == "deny"


async def test_service_accounts_get_their_own_queue_and_the_permissions_their_rules_give(
        rabbit: httpx.AsyncClient) -> None:
    """Issue 24: a service account used any ``mqtt-subscription-…`` queue not named after a user
    (the bridge's, another account's), with any permission. Now: its own client id's queue only;
    the topic exchange to read only with a read rule, to write only with a write rule."""
    def resource(username: str, client_id: str | None, kind: str, name: str, permission: str) -> dict[str, str]:
        form = {"username": username, "vhost": "/", "resource": kind, "name": name, "permission": permission}
        return form | ({"client_id": client_id} if client_id else {})

    for permission in ("configure", "write", "read"):
        assert await ask(rabbit, "/resource", **resource(GATEWAY, "hall-1", "queue", "mqtt-subscription-hall-1qos1",
                                                         permission)) == "allow"
        for name in ("mqtt-subscription-bridge-1qos1", "mqtt-subscription-hall-2qos0", "mqtt-subscription-alice:phoneqos1"):
            assert await ask(rabbit, "/resource", **resource(GATEWAY, "hall-1", "queue", name, permission)) == "deny", name
            assert await ask(rabbit, "/resource", **resource(WRITER, "w-1", "queue", name, permission)) == "deny", name
        # Over AMQP (no client id): nothing (the login is refused as well, below).
        assert await ask(rabbit, "/resource", **resource(GATEWAY, None, "queue", "mqtt-subscription-bridge-1qos1",
                                                         permission)) == "deny"
    for username, client_id, allowed in ((GATEWAY, "hall-1", {"read", "write"}), (WRITER, "w-1", {"write"})):
        for permission in ("read", "write", "configure"):
            answer = "allow" if permission in allowed else "deny"
            assert await ask(rabbit, "/resource", **resource(username, client_id, "exchange", "amq.topic",
                                                             permission)) == answer, (username, permission)
    # A user's client id is never an account's, whatever the question.
    assert await ask(rabbit, "/resource", **resource(GATEWAY, "alice:phone", "exchange", "amq.topic", "read")) == "deny"


async def test_only_the_bridges_account_logs_in_over_amqp(rabbit: httpx.AsyncClient) -> None:
    """An AMQP login (no client id) could name any queue: only the bridges' own account gets one.
    Over MQTT the service accounts log in as before (docs/protocol.md's ``svc:gateway`` included)."""
    assert await ask(rabbit, "/user", username=BRIDGE, password=BRIDGE_PASSWORD, vhost="/") == "allow"
    assert await ask(rabbit, "/user", username=GATEWAY, password=GATEWAY_PASSWORD, vhost="/") == "deny"
    assert await ask(rabbit, "/user", username=WRITER, password=WRITER_PASSWORD, vhost="/") == "deny"
    assert await ask(rabbit, "/user", username=GATEWAY, password=GATEWAY_PASSWORD, vhost="/",
                     client_id="hall-1") == "allow"
    assert await ask(rabbit, "/user", username=WRITER, password=WRITER_PASSWORD, vhost="/", client_id="w-1") == "allow"


async def test_no_service_account_takes_a_bridges_client_id(app: App, rabbit: httpx.AsyncClient) -> None:
    """A service account connecting with the bridge's client id (``imgate-bridge`` by default)
    took over the bridge's durable session on RabbitMQ and consumed its
    ``mqtt-subscription-imgate-bridgeqos1`` queue, bound to ``im/+/out/#``: every user's
    messages. Now a bridge's client id (``bridge.client_id``, and any ``imgate-…``) is refused to
    every account but the bridges' own, at login and in every resource and topic answer."""
    for client_id in ("imgate-bridge", "imgate-bridge-emqx-1", "imgate-", BRIDGE_CLIENT_ID):
        for username, password in ((GATEWAY, GATEWAY_PASSWORD), (WRITER, WRITER_PASSWORD)):
            assert await ask(rabbit, "/user", username=username, password=password, vhost="/",
                             client_id=client_id) == "deny", (username, client_id)
        for permission in ("configure", "write", "read"):
            for name in (f"mqtt-subscription-{client_id}qos1", f"mqtt-subscription-{client_id}qos0"):
                assert await ask(rabbit, "/resource", username=GATEWAY, vhost="/", resource="queue", name=name,
                                 client_id=client_id, permission=permission) == "deny", (name, permission)
        for permission in ("read", "write"):
            assert await ask(rabbit, "/resource", username=GATEWAY, vhost="/", resource="exchange",
                             name="amq.topic", client_id=client_id, permission=permission) == "deny"
        # Topics its rules would give it under any other client id (``read status/%c``).
        for key, permission in ((f"status.{client_id}", "read"), (f"devices.{GATEWAY}.lamp", "write")):
            form = {"username": GATEWAY, "vhost": "/", "resource": "topic", "name": "amq.topic",
                    "permission": permission, "routing_key": key, "variable_map.client_id": client_id}
            assert await ask(rabbit, "/topic", **form) == "deny", (client_id, key)
            assert await ask(rabbit, "/topic", **{**form, "routing_key": key.replace(client_id, "hall-1"),
                                                  "variable_map.client_id": "hall-1"}) == "allow", key
    # Client ids that only look alike are the account's own; the bridges' account keeps its own.
    for client_id in ("imgate", "my-imgate-bridge", "bridge-70"):
        assert await ask(rabbit, "/user", username=GATEWAY, password=GATEWAY_PASSWORD, vhost="/",
                         client_id=client_id) == "allow", client_id
    for client_id in (BRIDGE_CLIENT_ID, "imgate-bridge"):
        assert await ask(rabbit, "/user", username=BRIDGE, password=BRIDGE_PASSWORD, vhost="/",
                         client_id=client_id) == "allow"
        assert await ask(rabbit, "/resource", username=BRIDGE, vhost="/", resource="queue", client_id=client_id,
                         name=f"mqtt-subscription-{client_id}qos1", permission="read") == "allow"
    # EMQX asks the same decisions.
    assert app.admin is not None
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.admin.port}/auth/emqx") as emqx:
        for body, answer in (({"username": GATEWAY, "password": GATEWAY_PASSWORD, "clientid": "imgate-bridge"}, "deny"),
                             ({"username": GATEWAY, "password": GATEWAY_PASSWORD, "clientid": "hall-1"}, "allow")):
            r = await emqx.post("/authn", json=body)
            assert r.status_code == 200 and r.json()["result"] == answer, body
        r = await emqx.post("/authz", json={"username": GATEWAY, "clientid": "imgate-bridge", "action": "subscribe",
                                            "topic": "status/imgate-bridge"})
        assert r.status_code == 200 and r.json()["result"] == "deny"


async def test_the_embedded_broker_refuses_a_bridges_client_id_to_an_account(app: App) -> None:
    """gate.py is the embedded broker's too: the same client ids are refused there (0x85)."""
    import aiomqtt

    assert app.broker is not None
    port = app.broker.port_of("tcp")
    with pytest.raises(aiomqtt.MqttCodeError) as refused:
        async with aiomqtt.Client("127.0.0.1", port, identifier="imgate-bridge", username=GATEWAY,
                                  password=GATEWAY_PASSWORD, protocol=aiomqtt.ProtocolVersion.V5, timeout=10):
            pass
    assert refused.value.rc == 0x85  # client identifier not valid
    async with aiomqtt.Client("127.0.0.1", port, identifier="hall-1", username=GATEWAY, password=GATEWAY_PASSWORD,
                              protocol=aiomqtt.ProtocolVersion.V5, timeout=10):
        pass


async def test_a_token_is_refused_before_rabbitmqs_cached_login_could_outlive_it(settings: Settings) -> None:
    """RabbitMQ's auth cache keeps a login's "allow" for ``rabbitmq.auth_cache_ttl_s``: a token
    that expires within that TTL + 2 s is refused at login, so no cached "allow" outlives it (and
    an expiry needs no quarantine: imgate/rabbitmq.py). EMQX caches no login: its answer is the
    token's own. Without a cache (TTL 0) a token is good until its expiry."""
    from imgate.rabbitmq import MARGIN_MS

    clock = ManualClock(1_000_000_000_000)
    window_ms = 15_000 + MARGIN_MS
    for ttl_s, margin_ms in ((15.0, window_ms), (0.0, 0)):
        async with App(tweak(settings, "rabbitmq", auth_cache_ttl_s=ttl_s), clock=clock) as app:
            assert app.services is not None and app.admin is not None
            users = app.services.users
            uid = f"dora{int(ttl_s)}"
            await users.add_user(uid)
            issued = await users.issue_token(uid, "phone", ttl_s=60)
            assert issued.expires_at == clock.ms + 60_000
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.admin.port}/auth") as client:
                assert await logins(client, uid, issued.token) == ("allow", "allow")
                clock.ms = issued.expires_at - margin_ms - 1  # its cached "allow" would end in time
                assert await logins(client, uid, issued.token) == ("allow", "allow")
                for clock.ms in sorted({issued.expires_at - max(margin_ms, 1), issued.expires_at - 1}):
                    assert await logins(client, uid, issued.token) == ("deny" if margin_ms else "allow", "allow")
                clock.ms = issued.expires_at
                assert await logins(client, uid, issued.token) == ("deny", "deny")
                # A new token of the same device is let in at once: the old one's expiry holds nothing.
                fresh = await users.issue_token(uid, "phone", ttl_s=3600)
                assert await logins(client, uid, fresh.token) == ("allow", "allow")


async def logins(client: httpx.AsyncClient, uid: str, token: str) -> tuple[str, str]:
    """RabbitMQ's and EMQX's answers to the login of ``{uid}:phone`` with ``token``."""
    rabbit = await ask(client, "/rabbitmq/user", username=uid, password=token, vhost="/", client_id=f"{uid}:phone")
    r = await client.post("/emqx/authn", json={"username": uid, "password": token, "clientid": f"{uid}:phone"})
    assert r.status_code == 200
    return rabbit, str(r.json()["result"])


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


def test_the_quarantine_covers_a_revoked_device_for_the_cache_ttl_and_a_margin() -> None:
    """imgate/rabbitmq.py: a connection RabbitMQ reports for a revoked device, let in from its auth
    cache, is closed until the revocation time + the cache TTL + MARGIN_MS; a disable (device
    None) covers every device; other users' and devices' connections are left alone."""
    from imgate.rabbitmq import MARGIN_MS, Quarantine

    q = Quarantine(15_000)
    q.add("alice", "phone", 1_000)
    q.add("bob", None, 2_000)
    end = 1_000 + 15_000 + MARGIN_MS
    assert q.holds("alice", "phone", 1_000) and q.holds("alice", "phone", end)
    assert q.holds("alice", "phone", 0)  # created before the revocation: its token is revoked as well
    assert not q.holds("alice", "phone", end + 1)
    assert not q.holds("alice", "laptop", 1_500) and not q.holds("carol", "phone", 1_500)
    assert q.holds("bob", "laptop", 2_000) and q.holds("bob", "tab", 2_000 + 17_000)
    assert q.active(end) == ["alice", "bob"] and q.active(end + 1) == ["bob"]
    q.add("alice", "phone", 500)  # an older change never shortens the window
    assert q.holds("alice", "phone", end)
    q.prune(end + 60_001)
    assert len(q) == 1 and not q.holds("alice", "phone", 0)
