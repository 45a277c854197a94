"""Webhook push targets against SSRF (issue 10, hole 3): what a user may register, what the
sender connects to (DNS rebinding, TLS names, redirects, proxies, huge answers), and the cap on
targets per user. DNS answers come from the system resolver, or from a fake DNS where the test
needs names it controls."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from config.settings import ConfigError, load_settings
from imgate.app import Services, build_push, build_services
from services.db import Database
from services.errors import BadRequest, TooLarge
from services.messages.service import SendCommand
from services.push.models import PushJob, PushTarget
from services.push.providers import WebhookProvider
from services.push.service import PushService
from services.push.webhooks import WebhookClient, WebhookPolicy, is_public
from tests.fakes.webhook import FakeDns, HookServer, tls_contexts
from tests.helpers import ManualClock

SECRET = "webhook-secret-for-ssrf-tests"
PUBLIC = "93.184.215.14"  # a public address (no connection is made to it)
CIDS = itertools.count()


@dataclass
class Rig:
    svc: Services
    clock: ManualClock
    dns: FakeDns


@pytest.fixture
async def rig(database_url: str) -> AsyncIterator[Rig]:
    clock = ManualClock(1_800_000_000_000)
    async with Database(database_url):
        svc = build_services(clock)
        for uid in ("alice", "bob"):
            await svc.users.add_user(uid)
        yield Rig(svc, clock, FakeDns())


def service(svc: Services, policy: WebhookPolicy, client: WebhookClient | None = None, **kw: Any) -> PushService:
    providers: dict[str, Any] = {"webhook": WebhookProvider(client, SECRET)} if client is not None else {}
    return build_push(svc, ManualClock(1_800_000_000_000), providers, webhooks=policy, rng=random.Random(1), **kw)


async def push_to_bob(rig: Rig, push: PushService) -> None:
    """alice writes to bob (offline): his targets get a push, sent now, all sends awaited."""
    await rig.svc.messages.send(SendCommand("alice", f"m{next(CIDS)}", "bob", None, "text", "hi", None))
    await push.fan_out()
    await push.send_due()
    await push.drain()


# Every one of these reaches the machine itself or its networks. The policy allows plain http,
# so it is the host that is refused, after real resolution where there is a name.
INTERNAL = [
    "http://localhost/hook", "http://LOCALHOST./hook", "http://127.0.0.1/", "http://127.0.0.1:8080/admin",
    "http://127.254.0.1/", "http://[::1]/", "http://[::]/", "http://0.0.0.0/", "http://10.0.0.1/",
    "http://172.16.5.4/", "http://192.168.1.1/", "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/", "http://224.0.0.1/", "http://255.255.255.255/", "http://240.0.0.1/",
    "http://198.18.0.1/", "http://192.0.0.8/", "http://[fe80::1]/", "http://[fd00::1]/", "http://[fc00::1]/",
    "http://[fec0::1]/", "http://[ff02::1]/",
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/", "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:10.0.0.1]/", "http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::]/",  # NAT64, 6to4
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
    "http://2130706433/", "http://0x7f000001/", "http://017700000001/", "http://127.1/", "http://0x7f.1/",
    "http://0177.0.0.1/", "http://127.0.0.1.:80/", "http://127。0。0。1/",
    "http://[fe80::1%25eth0]/", "http://127.0.0.1:99999/",
    "http://user:pw@example.com/", "http://example.com@127.0.0.1/", "http://example.com\\@127.0.0.1/",
    "ftp://example.com/", "file:///etc/passwd", "gopher://127.0.0.1:6379/_", "http:///nohost", "//127.0.0.1/",
]


@pytest.mark.parametrize("url", INTERNAL)
async def test_internal_targets_are_refused_at_registration(rig: Rig, url: str) -> None:
    push = service(rig.svc, WebhookPolicy(allow_http=True))  # the system resolver
    with pytest.raises(BadRequest) as refused:
        await push.register("bob", "webhook", url)
    assert "webhook" in refused.value.message
    assert "127.0.0" not in refused.value.message and "::1" not in refused.value.message  # nothing revealed
    assert await PushTarget.all().count() == 0


def test_the_address_rules() -> None:
    import ipaddress

    public = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::"]
    private = ["127.0.0.1", "10.1.1.1", "100.127.255.254", "169.254.0.1", "0.0.0.0", "::", "::1", "fe80::1",
               "fd12::1", "ff05::1", "224.1.1.1", "::ffff:192.168.0.1", "::7f00:1", "2001:db8::1", "203.0.113.9"]
    assert all(is_public(ipaddress.ip_address(a)) for a in public)
    assert not any(is_public(ipaddress.ip_address(a)) for a in private)


async def test_https_only_unless_the_operator_allows_http(rig: Rig) -> None:
    rig.dns.table["hooks.example"] = [PUBLIC]
    strict = service(rig.svc, WebhookPolicy(resolver=rig.dns))
    with pytest.raises(BadRequest, match="https"):
        await strict.register("bob", "webhook", "http://hooks.example/push")
    await strict.register("bob", "webhook", "https://hooks.example/push")
    await service(rig.svc, WebhookPolicy(allow_http=True, resolver=rig.dns)).register("bob", "webhook", "http://hooks.example/p")
    assert await PushTarget.filter(uid="bob").count() == 2


async def test_every_address_of_a_name_must_be_public(rig: Rig) -> None:
    rig.dns.table.update({"mixed.example": [PUBLIC, "127.0.0.1"], "v6.example": [PUBLIC, "::ffff:10.0.0.1"],
                          "internal.example": ["10.1.2.3"], "meta.example": ["169.254.169.254"]})
    push = service(rig.svc, WebhookPolicy(resolver=rig.dns))
    for name in ("mixed.example", "v6.example", "internal.example", "meta.example"):
        with pytest.raises(BadRequest, match="public host"):
            await push.register("bob", "webhook", f"https://{name}/hook")
    with pytest.raises(BadRequest, match="does not resolve"):
        await push.register("bob", "webhook", "https://nxdomain.example/hook")
    assert await PushTarget.all().count() == 0


async def test_the_operator_allowlist_lets_intranet_targets_through(rig: Rig) -> None:
    rig.dns.table.update({"hooks.corp.example": ["10.1.2.3"], "a.svc.corp.example": ["fd00::5"],
                          "other.example": ["10.9.9.9"]})
    push = service(rig.svc, WebhookPolicy(resolver=rig.dns, allow=["hooks.corp.example", "*.svc.corp.example", "192.168.0.0/16"]))
    await push.register("bob", "webhook", "https://hooks.corp.example/push")
    await push.register("bob", "webhook", "https://a.svc.corp.example/push")
    await push.register("bob", "webhook", "https://192.168.7.7:8443/push")
    await push.register("bob", "webhook", "https://[::ffff:192.168.7.7]/push")  # the same network, v4-mapped
    for refused in ("https://other.example/", "https://10.1.2.3/", "https://svc.corp.example/", "http://hooks.corp.example/"):
        with pytest.raises(BadRequest):
            await push.register("bob", "webhook", refused)
    assert await PushTarget.filter(uid="bob").count() == 4
    with pytest.raises(ConfigError, match="webhook_allow"):
        load_settings(None, {"push": {"webhook_allow": ["http://10.0.0.0/8"]}})
    assert load_settings(None, {"push": {"webhook_allow": ["10.0.0.0/8", "*.corp.example"]}}).push.webhook_allow


async def test_at_most_max_targets_per_user(rig: Rig) -> None:
    rig.dns.table["hooks.example"] = [PUBLIC]
    push = service(rig.svc, WebhookPolicy(resolver=rig.dns), max_targets_per_user=10)
    for i in range(8):
        await push.register("bob", "fcm", f"phone-{i}")
    await push.register("bob", "apns", "abcdef")
    await push.register("bob", "webhook", "https://hooks.example/bob")
    await push.register("bob", "webhook", "https://hooks.example/bob")  # again: harmless, still 10
    with pytest.raises(TooLarge, match="at most 10 push targets"):
        await push.register("bob", "fcm", "phone-11")
    with pytest.raises(TooLarge):
        await push.register("bob", "webhook", "https://hooks.example/another")
    assert await PushTarget.filter(uid="bob").count() == 10
    await push.register("alice", "fcm", "phone-0")  # a cap per user
    await push.unregister("bob", "fcm", "phone-0")
    await push.register("bob", "fcm", "phone-11")
    assert await PushTarget.filter(uid="bob").count() == 10


@pytest.mark.parametrize("rebound", [["127.0.0.1"], [PUBLIC, "127.0.0.1"], ["::ffff:127.0.0.1"], ["0.0.0.0"]])
async def test_dns_rebinding_after_registration_reaches_nothing(rig: Rig, rebound: list[str]) -> None:
    """The name is public when registered, then answers with the local receiver's address: the
    sender resolves and checks again at connect time, connects to nothing, removes the target."""
    async with HookServer(secret=SECRET) as local:
        rig.dns.table["rebind.example"] = [PUBLIC]
        policy = WebhookPolicy(allow_http=True, resolver=rig.dns)
        async with WebhookClient(policy) as client, service(rig.svc, policy, client) as push:
            await push.register("bob", "webhook", f"http://rebind.example:{local.port}/hook")
            rig.dns.table["rebind.example"] = rebound
            await push_to_bob(rig, push)
            assert local.connections == 0 and local.requests == []
            assert await PushTarget.filter(uid="bob").count() == 0 and await PushJob.all().count() == 0
            assert push.stats.invalid_targets == 1 and push.stats.sent == 0
            assert rig.dns.queries.count("rebind.example") == 2  # registration, then connect time


async def test_a_target_refused_since_registration_is_removed_before_connecting(rig: Rig) -> None:
    """The operator tightened the policy (no more http, a network taken off the allowlist)."""
    async with HookServer(secret=SECRET) as local:
        loose = WebhookPolicy(allow_http=True, allow=["127.0.0.1"])
        await service(rig.svc, loose).register("bob", "webhook", f"{local.url}/hook")
        async with WebhookClient(WebhookPolicy(allow_http=True)) as client, \
                service(rig.svc, WebhookPolicy(allow_http=True), client) as push:
            await push_to_bob(rig, push)
        assert local.connections == 0 and await PushTarget.all().count() == 0


async def test_the_connection_goes_to_the_checked_address_and_tls_checks_the_name(rig: Rig) -> None:
    server_tls, client_tls = tls_contexts("hooks.example")
    async with HookServer(ssl_context=server_tls, secret=SECRET) as hook:
        # Both names resolve to the receiver (allowed as an intranet network); its certificate
        # names only hooks.example.
        rig.dns.table.update({"hooks.example": ["127.0.0.1"], "impostor.example": ["127.0.0.1"]})
        policy = WebhookPolicy(resolver=rig.dns, allow=["127.0.0.0/8"])
        async with WebhookClient(policy, ssl_context=client_tls) as client, service(rig.svc, policy, client) as push:
            await push.register("bob", "webhook", f"https://hooks.example:{hook.port}/push")
            await push_to_bob(rig, push)
            (request,) = hook.requests
            assert request.headers["host"] == f"hooks.example:{hook.port}" and request.path == "/push"
            await push.unregister("bob", "webhook", f"https://hooks.example:{hook.port}/push")
            await push.register("bob", "webhook", f"https://impostor.example:{hook.port}/push")
            await push_to_bob(rig, push)
            job = await PushJob.get()
            assert job.attempts == 1 and "certificate" in (job.last_error or "").lower()
            assert len(hook.requests) == 1  # the handshake failed: nothing was posted


async def test_an_allowed_ipv6_literal_is_posted_to_with_its_host_header(rig: Rig) -> None:
    async with HookServer(host="::1", secret=SECRET) as hook:
        policy = WebhookPolicy(allow_http=True, allow=["::1"])
        async with WebhookClient(policy) as client, service(rig.svc, policy, client) as push:
            await push.register("bob", "webhook", f"{hook.url}/hook")
            await push_to_bob(rig, push)
        (request,) = hook.requests
        assert request.headers["host"] == f"[::1]:{hook.port}" and push.stats.sent == 1


async def test_no_redirect_no_proxy_from_the_environment(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    async with HookServer() as elsewhere, HookServer() as proxy:
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.setenv(var, proxy.url)
        async with HookServer(status=307, headers={"Location": f"{elsewhere.url}/steal"}) as hook:
            policy = WebhookPolicy(allow_http=True, allow=["127.0.0.1"])
            async with WebhookClient(policy) as client, service(rig.svc, policy, client) as push:
                await push.register("bob", "webhook", f"{hook.url}/hook")
                await push_to_bob(rig, push)
            assert hook.connections == 1 and proxy.connections == 0 and elsewhere.connections == 0
            assert await PushJob.all().count() == 0 and push.stats.dropped == 1  # a 3xx is not a success


async def test_a_huge_answer_is_not_read(rig: Rig) -> None:
    size = 256 * 1024 * 1024
    async with HookServer(huge=size) as hook:
        policy = WebhookPolicy(allow_http=True, allow=["127.0.0.1"])
        async with WebhookClient(policy, max_response_bytes=4096) as client:
            status, answer = await client.post(policy.parse(f"{hook.url}/hook"), b"{}", {})
            assert status == 200 and len(answer) == 4096
        async with asyncio.timeout(10):
            await hook.gone.wait()  # we hung up: it could not write the rest
        assert hook.written < size // 4
