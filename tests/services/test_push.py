"""PushService against local FCM and webhook servers that speak the real APIs."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from imgate.app import Services, build_push, build_services
from imgate.http import EmbeddedHttpServer
from services.db import Database
from services.messages.service import SendCommand
from services.presence.service import PresenceService
from services.push.models import PushJob, PushTarget
from services.push.providers import FcmProvider, WebhookProvider
from services.push.service import PushService
from services.push.webhooks import WebhookClient, WebhookPolicy
from tests.fakes.fcm import FakeFcm
from tests.helpers import ManualClock

HOOK_SECRET = "webhook-secret"
# The intranet configuration: the local receivers are on 127.0.0.1, over plain http.
INTRANET = WebhookPolicy(allow_http=True, allow=["127.0.0.1"])


@dataclass
class Rig:
    svc: Services
    push: PushService
    fcm: FakeFcm
    hooks: list[dict]
    hook_url: str
    clock: ManualClock


@pytest.fixture
async def rig(database_url: str) -> AsyncIterator[Rig]:
    hooks: list[dict] = []

    async def gone(_: Request) -> JSONResponse:
        return JSONResponse({"error": "no such endpoint"}, status_code=410)

    async def hook(request: Request) -> JSONResponse:
        body = await request.body()
        expected = "sha256=" + hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("x-imgate-signature", ""), expected):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        hooks.append(json.loads(body))
        return JSONResponse({"ok": True})

    fcm = FakeFcm()
    clock = ManualClock(1_800_000_000_000)
    async with Database(database_url), \
               EmbeddedHttpServer(fcm.app, "127.0.0.1", 0) as fcm_http, \
               EmbeddedHttpServer(Starlette(routes=[Route("/hook", hook, methods=["POST"]),
                                                   Route("/gone", gone, methods=["POST"])]), "127.0.0.1", 0) as hook_http, \
               httpx.AsyncClient(timeout=5) as client, WebhookClient(INTRANET) as hook_client:
        fcm.base_url = f"http://127.0.0.1:{fcm_http.port}"
        svc = build_services(clock)
        async with build_push(svc, clock, {"fcm": FcmProvider(client, fcm.service_account(), base_url=fcm.base_url),
                                           "webhook": WebhookProvider(hook_client, HOOK_SECRET)},
                              max_attempts=4, rng=random.Random(1), webhooks=INTRANET) as push:
            for uid in ("alice", "bob", "carol"):
                await svc.users.add_user(uid)
            yield Rig(svc, push, fcm, hooks, f"http://127.0.0.1:{hook_http.port}/hook", clock)


async def send_due(push: PushService) -> int:
    """One pass of the sender, and the sends it started."""
    started = await push.send_due()
    await push.drain()
    return started


async def send(rig: Rig, cid: str, to: str | None = None, group: str | None = None, mentions: tuple = ()) -> None:
    await rig.svc.messages.send(SendCommand("alice", cid, to, group, "text", f"hello {cid}", None, mentions))


async def test_push_only_to_users_with_no_device_online(rig: Rig) -> None:
    await rig.push.register("bob", "fcm", "bob-phone")
    await rig.push.register("carol", "webhook", rig.hook_url)
    presence = PresenceService()
    await presence.record("carol", "desk", online=True, platform="web", ts=1)
    await send(rig, "m1", to="bob")
    await send(rig, "m2", to="carol")
    assert await rig.push.fan_out() == 2
    assert await send_due(rig.push) == 1
    assert rig.fcm.received == [{"token": "bob-phone", "data": {"conv": "d:alice:bob", "seq": "1"}}]
    assert rig.hooks == []  # carol is online: no push
    assert await PushJob.all().count() == 0 and await rig.push.fan_out() == 0  # nothing twice


async def test_muted_conversations_push_only_mentions(rig: Rig) -> None:
    await rig.push.register("bob", "webhook", rig.hook_url)
    g = await rig.svc.groups.create("alice", "team", ["bob"])
    await rig.svc.conversations.set_flags(await rig.svc.conversations.membership(g.conv, "bob"), muted=True,
                                          pinned=None)
    await send(rig, "quiet", group=g.gid)
    await send(rig, "loud", group=g.gid, mentions=("bob",))
    await rig.push.fan_out()
    await send_due(rig.push)
    assert rig.hooks == [{"conv": g.conv, "seq": 3, "kind": "mention", "mentioned": True}]


async def test_a_thread_reply_pushes_as_one_to_fcm_and_not_through_mute(rig: Rig) -> None:
    """Threads (issue 28): FCM's data (strings) says kind thread_reply and the thread; a muted
    member gets no push of it."""
    await rig.push.register("bob", "fcm", "bob-phone")
    await rig.push.register("carol", "webhook", rig.hook_url)
    g = await rig.svc.groups.create("alice", "team", ["bob", "carol"])
    await rig.svc.conversations.set_flags(await rig.svc.conversations.membership(g.conv, "carol"), muted=True,
                                          pinned=None)
    root = await rig.svc.messages.send(SendCommand("alice", "root", None, g.gid, "text", "root", None))
    await rig.svc.messages.send(SendCommand("alice", "in", None, g.gid, "text", "reply", None,
                                            thread=root.message.id))
    await rig.push.fan_out()
    await send_due(rig.push)
    assert sorted(rig.fcm.received, key=lambda r: r["data"]["seq"]) == [  # sent concurrently
        {"token": "bob-phone", "data": {"conv": g.conv, "seq": "2"}},
        {"token": "bob-phone", "data": {"conv": g.conv, "seq": "3", "kind": "thread_reply",
                                        "thread": root.message.id}}]
    assert rig.hooks == []  # carol muted the group


async def test_muted_conversations_push_at_all_but_not_a_blockers_mention(rig: Rig) -> None:
    """@all overrides mute as a mention by uid does; a member who blocks the sender is not mentioned
    by it (its mute holds, and an unmuted one's push does not say ``mentioned``)."""
    await rig.push.register("bob", "webhook", rig.hook_url)
    await rig.push.register("carol", "fcm", "carol-phone")
    g = await rig.svc.groups.create("alice", "team", ["bob", "carol"])
    for uid in ("bob", "carol"):
        await rig.svc.conversations.set_flags(await rig.svc.conversations.membership(g.conv, uid), muted=True,
                                              pinned=None)
    await rig.svc.blocks.add("carol", "alice")
    await send(rig, "quiet", group=g.gid)
    await send(rig, "everyone", group=g.gid, mentions=("@all",))
    await send(rig, "carol?", group=g.gid, mentions=("carol",))
    await rig.push.fan_out()
    await send_due(rig.push)
    assert rig.hooks == [{"conv": g.conv, "seq": 3, "kind": "mention", "mentioned": True}]
    assert rig.fcm.received == []  # carol blocks alice: neither @all nor her name wakes her muted phone
    await rig.svc.conversations.set_flags(await rig.svc.conversations.membership(g.conv, "carol"), muted=False,
                                          pinned=None)
    await send(rig, "carol!", group=g.gid, mentions=("carol",))
    await rig.push.fan_out()
    await send_due(rig.push)
    assert rig.fcm.received == [{"token": "carol-phone", "data": {"conv": g.conv, "seq": "5"}}]


async def test_retries_back_off_with_jitter_then_drop(rig: Rig) -> None:
    await rig.push.register("bob", "fcm", "busy-phone")
    rig.fcm.busy["busy-phone"] = 2  # two 429s, then success
    await send(rig, "m", to="bob")
    await rig.push.fan_out()
    assert await send_due(rig.push) == 1  # 429
    job = await PushJob.get()
    assert job.attempts == 1 and 500 <= job.next_at - rig.clock.ms <= 1000  # base 1 s, jitter 0.5-1x
    assert await send_due(rig.push) == 0  # not due yet
    rig.clock.ms = job.next_at
    assert await send_due(rig.push) == 1  # 429 again: twice the delay
    job = await PushJob.get()
    assert job.attempts == 2 and 1000 <= job.next_at - rig.clock.ms <= 2000
    rig.clock.ms = job.next_at
    await send_due(rig.push)
    assert rig.fcm.received[0]["token"] == "busy-phone" and await PushJob.all().count() == 0
    # Always failing: dropped after max_attempts (4), counted.
    await rig.push.register("carol", "fcm", "down")
    rig.fcm.busy["down"] = 100
    await rig.svc.messages.send(SendCommand("bob", "x", "carol", None, "text", "x", None))
    await rig.push.fan_out()
    for _ in range(4):
        job = await PushJob.get()
        rig.clock.ms = job.next_at
        await send_due(rig.push)
    assert await PushJob.all().count() == 0 and rig.push.stats.dropped == 1


async def test_invalid_tokens_are_removed(rig: Rig) -> None:
    await rig.push.register("bob", "fcm", "gone-phone")
    await rig.push.register("bob", "fcm", "good-phone")
    rig.fcm.unregistered.add("gone-phone")
    await send(rig, "m", to="bob")
    await rig.push.fan_out()
    await send_due(rig.push)
    assert [t.token for t in await PushTarget.filter(uid="bob")] == ["good-phone"]
    assert [m["token"] for m in rig.fcm.received] == ["good-phone"] and rig.push.stats.invalid_targets == 1


async def test_a_webhook_that_is_gone_is_removed(rig: Rig) -> None:
    await rig.push.register("bob", "webhook", rig.hook_url.replace("/hook", "/gone"))
    await send(rig, "m", to="bob")
    await rig.push.fan_out()
    await send_due(rig.push)
    assert await PushTarget.filter(uid="bob").count() == 0 and rig.push.stats.invalid_targets == 1


async def test_queued_pushes_survive_a_restart(rig: Rig, database_url: str) -> None:
    await rig.push.register("bob", "webhook", rig.hook_url)
    await send(rig, "before-crash", to="bob")
    await rig.push.fan_out()  # queued, not sent: the process "dies" here
    async with WebhookClient(INTRANET) as client, \
            build_push(rig.svc, rig.clock, {"webhook": WebhookProvider(client, HOOK_SECRET)}, webhooks=INTRANET) as fresh:
        assert await send_due(fresh) == 1
    assert rig.hooks == [{"conv": "d:alice:bob", "seq": 1}]


async def test_register_validation(rig: Rig) -> None:
    from services.errors import BadRequest, NotFound

    with pytest.raises(BadRequest):
        await rig.push.register("bob", "pager", "x")
    with pytest.raises(BadRequest):
        await rig.push.register("bob", "webhook", "ftp://nope")
    with pytest.raises(NotFound):
        await rig.push.unregister("bob", "fcm", "never-registered")


async def test_apns_over_http2_with_token_auth_badge_and_invalid_tokens(database_url: str) -> None:
    import socket

    from services.push.providers import ApnsProvider
    from tests.fakes.apns import KEY_ID, TEAM, TOPIC, FakeApns, serve_apns

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fake = FakeApns(unregistered={"dead0dead"}, busy={"abc123": 1})
    clock = ManualClock(1_800_000_000_000)
    async with Database(database_url), serve_apns(fake, port) as tls, \
               httpx.AsyncClient(http2=True, verify=tls, timeout=5) as client:
        svc = build_services(clock)
        for uid in ("alice", "bob"):
            await svc.users.add_user(uid)
        apns = ApnsProvider(client, key_pem=fake.key_pem, key_id=KEY_ID, team_id=TEAM, topic=TOPIC,
                            base_url=f"https://127.0.0.1:{port}")
        async with build_push(svc, clock, {"apns": apns}) as push:
            await push.register("bob", "apns", "abc123")
            await push.register("bob", "apns", "dead0dead")
            for i in range(3):
                await svc.messages.send(SendCommand("alice", f"m{i}", "bob", None, "text", "hi", None))
            await push.fan_out()
            await send_due(push)  # the first to abc123 gets a 429 and is retried later
            assert push.stats.retried == 1
            clock.ms += 3_600_000
            await send_due(push)
            assert [t.token for t in await PushTarget.filter(uid="bob")] == ["abc123"]  # the dead one is gone
    assert sorted(b["seq"] for _, b in fake.received) == [1, 2, 3]
    headers, body = next((h, b) for h, b in fake.received if b["seq"] == 3)
    assert headers["apns-topic"] == TOPIC and headers["apns-push-type"] == "background"
    assert headers["apns-priority"] == "5" and headers["apns-collapse-id"] == "d:alice:bob"
    assert body == {"aps": {"badge": 3, "content-available": 1}, "conv": "d:alice:bob", "seq": 3}
    assert push.stats.invalid_targets == 1 and push.stats.sent == 3


async def test_concurrent_sends_share_one_fcm_access_token(rig: Rig) -> None:
    for i in range(5):
        await rig.push.register("bob", "fcm", f"phone-{i}")
    await send(rig, "m", to="bob")
    await rig.push.fan_out()
    assert await send_due(rig.push) == 5  # started together
    assert sorted(m["token"] for m in rig.fcm.received) == [f"phone-{i}" for i in range(5)]
    assert len(rig.fcm._tokens) == 1  # one OAuth2 token request, not one per send


async def test_an_edit_is_not_pushed_again(rig: Rig) -> None:
    """An edit queues an event for the search index; push fan-out skips it (the message was
    pushed when it was sent)."""
    await rig.push.register("bob", "fcm", "bob-phone")
    await send(rig, "m1", to="bob")
    await rig.push.fan_out()
    await send_due(rig.push)
    assert len(rig.fcm.received) == 1
    message = (await rig.svc.messages.history(await rig.svc.conversations.membership("d:alice:bob", "alice"),
                                              after_seq=None, before_seq=None, limit=1)).messages[0]
    rig.clock.ms += 1_000
    await rig.svc.messages.edit("alice", message.id, "hello, edited")
    assert await rig.push.fan_out() == 1  # the edit's event, taken
    assert await send_due(rig.push) == 0 and len(rig.fcm.received) == 1  # and nothing pushed again


async def test_a_member_added_before_the_fan_out_gets_no_push_of_what_came_before(rig: Rig) -> None:
    """A push is for the members whose window holds the message: one added to the group after it,
    before the fan-out got to it (a backlog, the push worker down a while), gets none of it (under
    push.policy = "preview" it would carry the text of a message from before it joined)."""
    await rig.push.register("bob", "webhook", rig.hook_url)
    await rig.push.register("carol", "webhook", rig.hook_url + "?carol")
    g = await rig.svc.groups.create("alice", "team", ["bob"])
    await send(rig, "before", group=g.gid)
    await rig.svc.groups.add("alice", g.gid, ["carol"])
    await send(rig, "after", group=g.gid)
    await rig.push.fan_out()
    await send_due(rig.push)
    assert sorted(h["seq"] for h in rig.hooks) == [2, 4, 4]  # bob: both; carol: only the one after she joined
