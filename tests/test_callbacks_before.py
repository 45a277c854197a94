"""The before_* callbacks (issue 29, docs/callbacks.md "Before") over the real broker and bridge,
against a real HTTP endpoint in the test (tests/callback_receiver.py, which checks every
request's signature): allow, refuse (the sender gets ``refused`` with the operator's reason,
nobody else anything, nothing stored), replace (the masked text is what is delivered and kept);
a timeout and a malformed answer apply ``on_failure``; edits and profile changes; scheduled sends
asked at their delivery; a black hole holds only the sends it is asked about; the outbound guard
refuses internal targets unless the operator allows them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from config.settings import Settings
from imgate.app import App
from services.errors import ImError
from tests.callback_receiver import SECRET, Hole, Receiver, allow_all, answer, black_hole, receiving
from tests.conftest import ADMIN_SECRET, Users
from tests.helpers import Device, connect, on, tweak

ALL = ["before_send", "before_edit", "before_profile"]


@pytest.fixture
def endpoint(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The endpoint's settings beyond the defaults below (tests parametrize it indirectly);
    ``"url": "hole"`` points it at a black hole, ``"localhost"`` at the receiver by that name."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as r:
        yield r


@pytest.fixture
async def hole() -> AsyncIterator[Hole]:
    async with black_hole() as h:
        yield h


@pytest.fixture
def settings_lanes(request: pytest.FixtureRequest) -> int:
    """The bridge's lanes (tests of the lanes' sharing parametrize it to 1)."""
    return int(getattr(request, "param", 256))


@pytest.fixture
def settings(settings: Settings, receiver: Receiver, hole: Hole, endpoint: dict[str, Any],
             settings_lanes: int) -> Settings:
    ep: dict[str, Any] = {"name": "policy", "url": receiver.url, "secret": SECRET, "events": ALL, "timeout_s": 5.0,
                          "on_failure": "allow", **endpoint}
    if ep["url"] == "hole":
        ep["url"] = f"http://127.0.0.1:{hole.port}/hook"
    elif ep["url"] == "localhost":
        ep["url"] = f"http://localhost:{receiver.port}/hook"
    allow = ep.pop("allow", ["127.0.0.1"])
    settings = tweak(settings, "bridge", lanes=settings_lanes)
    settings = tweak(settings, "limits", schedule_poll_s=0.05)
    return tweak(settings, "callbacks", endpoints=[ep], allow_http=True, allow=allow, max_response_bytes=16384)


@pytest.fixture
async def crowd(app: App, users: Users) -> AsyncIterator[dict[str, Device]]:
    await users.add("alice", "bob", "carol")
    async with AsyncExitStack() as stack:
        yield {n: await stack.enter_async_context(connect(app.mqtt_port, n, "phone", await users.token(n)))
               for n in ("alice", "bob", "carol")}


async def ack(device: Device, cid: str, count: int = 1, **send: Any) -> dict[str, Any]:
    await device.send({"cid": cid, "type": "text", **send})
    return (await device.inbox.wait_for(on("/in/ack", cid=cid), count=count))[-1].json  # type: ignore[no-any-return]


async def texts(device: Device, conv: str) -> dict[str, str]:
    """cid -> text of what ``history`` holds (nothing: no conversation either)."""
    response = await device.rpc("history", {"conv": conv})
    if response.get("error", {}).get("data", {}).get("code") == "not_found":
        return {}
    return {m["cid"]: m.get("text") for m in response["result"]["messages"]}


async def policy(event: dict[str, Any]) -> tuple[int, bytes]:
    """The operator: 'spam' refused, 'darn' masked, the rest allowed (a profile named 'admin'
    refused, a status masked)."""
    text = event.get("text") or ""
    if "spam" in text or event.get("name") == "admin":
        return answer("refuse", code="spam.link", message="no spam here")
    if "darn" in text:
        extra = {"mentions": []} if event.get("mentions") else {}
        return answer("replace", text=text.replace("darn", "d**n"), **extra)
    if event.get("status"):
        return answer("replace", status="(hidden)")
    return answer("allow")


async def test_allow_refuse_replace_of_direct_and_group_sends(app: App, crowd: dict[str, Device],
                                                              receiver: Receiver) -> None:
    alice, bob, carol = crowd["alice"], crowd["bob"], crowd["carol"]
    receiver.decide = policy
    ok = await ack(alice, "c1", to="bob", text="hello")
    assert ok["seq"] == 1
    refused = await ack(alice, "c2", to="bob", text="buy spam")
    assert refused["error"] == {"code": "refused", "message": "no spam here", "reason": "spam.link"}
    masked = await ack(alice, "c3", to="bob", text="darn it")
    assert masked["seq"] == 2  # the refused send took no seq
    got = await bob.inbox.wait_for(on("/in/msg", cid="c3"))
    assert got[0].json["text"] == "d**n it"
    assert [m.json["cid"] for m in bob.inbox.matching(on("/in/msg"))] == ["c1", "c3"]  # c2 never reached him
    assert await texts(bob, "d:alice:bob") == {"c1": "hello", "c3": "d**n it"}
    # What the endpoint was told: each send once, signed, with a unique event id.
    await receiver.wait_for(lambda ev: len(ev) == 3)
    first = receiver.events[0]
    assert {k: first[k] for k in ("event", "sender", "cid", "conv", "kind", "type", "text", "to")} == \
        {"event": "before_send", "sender": "alice", "cid": "c1", "conv": "d:alice:bob", "kind": "direct",
         "type": "text", "text": "hello", "to": "bob"}
    assert len({e["id"] for e in receiver.events}) == 3 and receiver.bad == []
    # A retried cid that is stored is acked as it was, without asking again.
    again = await ack(alice, "c3", count=2, to="bob", text="darn it")
    assert (again["id"], again["seq"]) == (masked["id"], 2)
    # A group: the kind says so; a replacement may drop mentions, never add one.
    gid = (await alice.result("group.create", {"name": "team", "members": ["bob", "carol"]}))["gid"]
    g = await ack(alice, "g1", group=gid, text="darn @carol", mentions=["carol"])
    assert "error" not in g and g.get("mentions_dropped") is None
    delivered = (await carol.inbox.wait_for(on("/in/msg", cid="g1")))[0].json
    assert delivered["text"] == "d**n @carol" and "mentions" not in delivered and "mentioned" not in delivered
    assert (await ack(carol, "g2", group=gid, text="spam!"))["error"]["reason"] == "spam.link"
    group_events = [e for e in receiver.events if e.get("group") == gid]
    assert [(e["cid"], e["kind"], e["conv"], e.get("mentions")) for e in group_events] == \
        [("g1", "group", f"g:{gid}", ["carol"]), ("g2", "group", f"g:{gid}", None)]
    assert len(receiver.events) == 5 and receiver.bad == []
    # A forward is asked too (allowed here), with the ids it forwards.
    await bob.send({"cid": "f1", "to": "carol", "forward": [ok["id"]]})
    forwarded = (await bob.inbox.wait_for(on("/in/ack", cid="f1")))[0].json
    assert "error" not in forwarded
    assert {k: receiver.events[-1][k] for k in ("sender", "type", "forward", "kind")} == \
        {"sender": "bob", "type": "forward", "forward": [ok["id"]], "kind": "direct"}


@pytest.mark.parametrize("admin_secret", [ADMIN_SECRET])
async def test_a_bots_sends_through_the_admin_api_are_asked_too(app: App, crowd: dict[str, Device],
                                                                receiver: Receiver, api: Any) -> None:
    """A bot's send through the admin API (docs/bots.md) passes the operator's before_send as a
    device's does: refused with the operator's reason (nothing stored or delivered), replaced."""
    bob = crowd["bob"]
    receiver.decide = policy
    assert (await api.post("/v1/bots", json={"uid": "helper"})).status_code == 201
    refused = await api.post("/v1/bots/helper/messages", json={"cid": "b1", "to": "bob", "text": "buy spam"})
    assert refused.status_code == 422
    assert refused.json()["error"] == {"code": "refused", "message": "no spam here", "reason": "spam.link"}
    masked = await api.post("/v1/bots/helper/messages", json={"cid": "b2", "to": "bob", "text": "darn bots"})
    assert masked.status_code == 201 and masked.json()["seq"] == 1  # the refused send took no seq
    got = (await bob.inbox.wait_for(on("/in/msg", cid="b2")))[0].json
    assert (got["text"], got["from"], got["bot"]) == ("d**n bots", "helper", True)
    assert [m.json["cid"] for m in bob.inbox.matching(on("/in/msg"))] == ["b2"]
    assert [(e["sender"], e["cid"]) for e in receiver.events] == [("helper", "b1"), ("helper", "b2")]


@pytest.mark.parametrize("admin_secret", [ADMIN_SECRET])
async def test_a_bots_sends_through_imgate_api_are_asked_too(settings: Settings, receiver: Receiver) -> None:
    """In cluster mode a bot's send through the admin API is made by ``imgate api`` (its own
    dispatcher): the operator's before_send is asked there too, not only in ``imgate run``."""
    import httpx

    receiver.decide = policy
    async with App(settings, role="api") as app, httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{app.admin.port}", headers={"Authorization": f"Bearer {ADMIN_SECRET}"}
    ) as api:
        assert (await api.post("/v1/users", json={"uid": "bob"})).status_code == 201
        assert (await api.post("/v1/bots", json={"uid": "helper"})).status_code == 201
        refused = await api.post("/v1/bots/helper/messages", json={"cid": "b1", "to": "bob", "text": "buy spam"})
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["reason"] == "spam.link"
        masked = await api.post("/v1/bots/helper/messages", json={"cid": "b2", "to": "bob", "text": "darn bots"})
        assert masked.status_code == 201 and masked.json()["seq"] == 1
        page = (await api.get("/v1/bots/helper/conversations/d:bob:helper/messages")).json()
        assert [m["text"] for m in page["messages"]] == ["d**n bots"]
    assert [(e["sender"], e["cid"], e["bot"]) for e in receiver.events] == [("helper", "b1", True),
                                                                          ("helper", "b2", True)]


async def test_edits_and_profile_changes_are_asked_too(app: App, crowd: dict[str, Device],
                                                       receiver: Receiver) -> None:
    alice, bob = crowd["alice"], crowd["bob"]
    receiver.decide = policy
    sent = await ack(alice, "c1", to="bob", text="first")
    refused = await alice.rpc("edit", {"id": sent["id"], "text": "now spam"})
    assert refused["error"]["data"] == {"code": "refused", "reason": "spam.link"}
    assert refused["error"]["code"] == 422 and refused["error"]["message"] == "no spam here"
    edited = await alice.result("edit", {"id": sent["id"], "text": "darn edit"})
    assert edited["id"] == sent["id"]
    event = (await bob.inbox.wait_for(on("/in/event", type="edit")))
    assert [e.json["text"] for e in event] == ["d**n edit"]  # the refused edit told nobody
    assert (await texts(bob, "d:alice:bob"))["c1"] == "d**n edit"
    edit_events = [e for e in receiver.events if e["event"] == "before_edit"]
    assert [(e["message"], e["conv"], e["kind"], e["text"]) for e in edit_events] == \
        [(sent["id"], "d:alice:bob", "direct", "now spam"), (sent["id"], "d:alice:bob", "direct", "darn edit")]
    # profile.set: refused, or the status masked (the name as set).
    no = await alice.rpc("profile.set", {"name": "admin"})
    assert no["error"]["data"]["reason"] == "spam.link"
    changed = await alice.result("profile.set", {"name": "Al", "status": "call me at 555"})
    assert (changed["name"], changed["status"]) == ("Al", "(hidden)")
    seen = (await bob.result("profile.get", {"uids": ["alice"]}))["profiles"]["alice"]
    assert (seen["name"], seen["status"]) == ("Al", "(hidden)")
    profile_events = [e for e in receiver.events if e["event"] == "before_profile"]
    assert [{k: e.get(k) for k in ("sender", "name", "status")} for e in profile_events] == \
        [{"sender": "alice", "name": "admin", "status": None}, {"sender": "alice", "name": "Al", "status": "call me at 555"}]
    # A replacement checked as the client's own change is: a name with a control character is refused.
    async def bad_name(event: dict[str, Any]) -> tuple[int, bytes]:
        return answer("replace", name="bad\u0007name")
    receiver.decide = bad_name
    assert (await alice.rpc("profile.set", {"name": "x"}))["error"]["data"]["code"] == "bad_request"
    assert receiver.bad == []


async def test_a_replaced_text_is_checked_as_a_send_is(app: App, crowd: dict[str, Device], receiver: Receiver
                                                       ) -> None:
    async def longer(event: dict[str, Any]) -> tuple[int, bytes]:
        return answer("replace", text="x" * (app.settings.limits.max_text + 1))
    receiver.decide = longer
    assert (await ack(crowd["alice"], "c1", to="bob", text="short"))["error"]["code"] == "too_large"
    assert await texts(crowd["bob"], "d:alice:bob") == {}


@pytest.mark.parametrize("endpoint", [{"url": "hole", "timeout_s": 0.3, "on_failure": "allow"},
                                      {"url": "hole", "timeout_s": 0.3, "on_failure": "refuse"}], indirect=True)
async def test_a_timeout_applies_the_failure_policy(app: App, crowd: dict[str, Device], endpoint: dict[str, Any],
                                                    hole: Hole) -> None:
    alice, bob = crowd["alice"], crowd["bob"]
    result = await ack(alice, "c1", to="bob", text="hello")
    assert hole.accepted == 1  # it was asked (and never answered)
    if endpoint["on_failure"] == "allow":  # fail open: sent as it was
        assert result["seq"] == 1
        assert (await bob.inbox.wait_for(on("/in/msg", cid="c1")))[0].json["text"] == "hello"
    else:  # fail closed: refused, nothing stored
        assert result["error"]["code"] == "refused" and result["error"]["reason"] == "callback_unavailable"
        assert await texts(bob, "d:alice:bob") == {}


@pytest.mark.parametrize("endpoint", [{"on_failure": "refuse"}], indirect=True)
async def test_a_malformed_answer_is_a_failure(app: App, crowd: dict[str, Device], receiver: Receiver) -> None:
    bad: list[tuple[int, bytes]] = [
        (200, b"not json"), (200, b"[]"), answer("maybe"), answer("refuse", code="Not A Code!"),
        answer("refuse"), answer("allow", extra=1), answer("replace"), answer("replace", name="x"),
        answer("replace", text="x", mentions=["mallory"]),  # a mention the sender did not make
        (500, json.dumps({"action": "allow"}).encode()), answer("replace", text="x" * 20000),  # past max_response_bytes
        (200, b'{"action": "allow", "action": "allow"} trailing'),
    ]
    answers = iter(bad)

    async def next_answer(event: dict[str, Any]) -> tuple[int, bytes]:
        return next(answers)
    receiver.decide = next_answer
    for i in range(len(bad)):
        result = await ack(crowd["alice"], f"c{i}", to="bob", text="hello", mentions=["bob"])
        assert result.get("error", {}).get("reason") == "callback_unavailable", (bad[i], result)
    receiver.decide = allow_all
    assert (await ack(crowd["alice"], "ok", to="bob", text="hello"))["seq"] == 1  # the only one stored
    assert app.bridge is not None and app.bridge.dispatcher.before is not None
    assert app.bridge.dispatcher.before.stats.failures == len(bad)
    metrics = await app.metrics()
    assert (metrics["callbacks_before_failures_total"], metrics["callbacks_before_allowed_total"]) == (len(bad), 1)


@pytest.mark.parametrize("endpoint", [{"timeout_s": 30.0}], indirect=True)
@pytest.mark.parametrize("settings_lanes", [1], indirect=True)
async def test_a_held_answer_holds_only_the_sends_it_decides(app: App, crowd: dict[str, Device],
                                                             receiver: Receiver, settings_lanes: int) -> None:
    """The endpoint holds alice's sends to bob (it answers them when the test says): bob's sends,
    in another conversation on the same lane (one lane here), and alice's own in another
    conversation, are asked, stored and acked meanwhile; hers to bob then keep their order."""
    alice, bob = crowd["alice"], crowd["bob"]
    release = asyncio.Event()

    async def hold_alice_to_bob(event: dict[str, Any]) -> tuple[int, bytes]:
        if event["sender"] == "alice" and event.get("to") == "bob":
            await release.wait()
        return answer("allow")
    receiver.decide = hold_alice_to_bob
    for i in range(3):
        await alice.send({"cid": f"a{i}", "to": "bob", "type": "text", "text": f"a{i}"})
    await receiver.wait_for(lambda ev: sum(e["sender"] == "alice" for e in ev) == 3)  # all three asked at once
    for i in range(20):  # bob's sends go through meanwhile, on the same lane
        assert (await ack(bob, f"b{i}", to="carol", text=f"b{i}"))["seq"] == i + 1
    assert (await ack(alice, "x", to="carol", text="other conversation"))["seq"] == 1  # hers elsewhere too
    assert alice.inbox.matching(on("/in/ack", cid="a0")) == []  # still held
    release.set()
    acks = [(await alice.inbox.wait_for(on("/in/ack", cid=f"a{i}")))[0].json for i in range(3)]
    assert [a["seq"] for a in acks] == [1, 2, 3]  # in the order sent
    from_alice = await bob.inbox.wait_for(lambda r: on("/in/msg")(r) and r.json["cid"].startswith("a"), count=3)
    assert [m.json["cid"] for m in from_alice] == ["a0", "a1", "a2"]


@pytest.mark.parametrize("endpoint", [{"url": "hole", "timeout_s": 0.5, "on_failure": "allow"}], indirect=True)
@pytest.mark.parametrize("settings_lanes", [1], indirect=True)
async def test_a_black_hole_delays_each_send_its_timeout_and_no_more(
        app: App, crowd: dict[str, Device], hole: Hole, settings_lanes: int) -> None:
    """Every send waits for the black hole's timeout (fail open), and they wait together, not one
    after the other: twenty sends of two users, on one lane, held twenty connections to the black
    hole open at once (serialised, it would have seen one at a time)."""
    alice, bob = crowd["alice"], crowd["bob"]
    for i in range(10):
        await alice.send({"cid": f"a{i}", "to": "bob", "type": "text", "text": "x"})
        await bob.send({"cid": f"b{i}", "to": "carol", "type": "text", "text": "y"})
    for i in range(10):
        assert (await alice.inbox.wait_for(on("/in/ack", cid=f"a{i}")))[0].json["seq"] == i + 1
        assert (await bob.inbox.wait_for(on("/in/ack", cid=f"b{i}")))[0].json["seq"] == i + 1
    assert hole.accepted == 20 and hole.max_open == 20
    assert app.bridge is not None and app.bridge.dispatcher.before is not None
    assert app.bridge.dispatcher.before.stats.failures == 20


async def test_a_black_hole_beside_a_healthy_endpoint_takes_none_of_its_places(
        settings: Settings, receiver: Receiver, hole: Hole, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dead before_profile endpoint holding every place it may have does not hold up the sends
    asked of a healthy before_send endpoint: each endpoint has its own places (MAX_INFLIGHT, 2
    here), so the send is answered while the black hole still holds its calls (none timed out)."""
    import services.hooks.before as before_module

    monkeypatch.setattr(before_module, "MAX_INFLIGHT", 2)
    slow = {"name": "profiles", "url": f"http://127.0.0.1:{hole.port}/hook", "secret": SECRET,
            "events": ["before_profile"], "timeout_s": 20.0, "on_failure": "allow"}
    policy = {**settings.callbacks.endpoints[0].model_dump(), "events": ["before_send"]}
    s = tweak(settings, "callbacks", endpoints=[policy, slow])
    async with App(s) as app, AsyncExitStack() as stack:
        users = Users(app.services)  # type: ignore[arg-type]
        await users.add("alice", "bob", "carol")
        alice, bob = [await stack.enter_async_context(connect(app.mqtt_port, n, "phone", await users.token(n)))
                      for n in ("alice", "bob")]
        pending = [asyncio.create_task(alice.rpc("profile.set", {"status": f"s{i}"})) for i in range(3)]
        async with asyncio.timeout(10):
            while hole.accepted < 2:
                await asyncio.sleep(0.02)  # a polling interval, not synchronisation
        result = await ack(bob, "b1", to="carol", text="hello")
        assert result["seq"] == 1 and [e["cid"] for e in receiver.events] == ["b1"]
        assert app.bridge is not None and app.bridge.dispatcher.before is not None
        assert app.bridge.dispatcher.before.stats.failures == 0  # the black hole's calls are all still waiting
        assert not any(t.done() for t in pending)
        for t in pending:
            t.cancel()


@pytest.mark.parametrize("endpoint", [{"on_failure": "refuse", "url": "localhost", "allow": []},
                                      {"on_failure": "refuse", "url": "localhost", "allow": ["localhost"]}],
                         indirect=True)
async def test_the_guard_refuses_an_internal_host_at_connect_time_unless_allowed(
        app: App, crowd: dict[str, Device], receiver: Receiver, endpoint: dict[str, Any]) -> None:
    """A host name is checked where it resolves, at each connection: localhost (loopback) is
    refused unless ``callbacks.allow`` lists it; every call then fails (on_failure applies)."""
    result = await ack(crowd["alice"], "c1", to="bob", text="hello")
    if endpoint["allow"]:
        assert result["seq"] == 1 and len(receiver.events) == 1
    else:
        assert result["error"]["reason"] == "callback_unavailable" and receiver.events == []


async def test_an_internal_address_is_a_startup_error_unless_allowed(settings: Settings) -> None:
    refused = tweak(settings, "callbacks", allow=[])
    with pytest.raises(ImError, match=r"callbacks\.endpoints\[0\]\.url: a callback target must be a public host"):
        async with App(refused):
            pass
    plain = tweak(settings, "callbacks", allow_http=False)
    with pytest.raises(ImError, match=r"callbacks\.endpoints\[0\]\.url: a callback target must be an https URL"):
        async with App(plain):
            pass


async def test_a_scheduled_send_is_asked_at_its_delivery(app: App, crowd: dict[str, Device],
                                                         receiver: Receiver) -> None:
    alice, bob = crowd["alice"], crowd["bob"]
    receiver.decide = policy
    at = int(time.time() * 1000) + 1000
    for cid, text in (("s1", "darn later"), ("s2", "spam later")):
        scheduled = await ack(alice, cid, to="bob", text=text, at=at)
        assert scheduled["status"] == "scheduled"
    assert receiver.events == []  # not asked when scheduled
    sent = (await alice.inbox.wait_for(on("/in/event", type="scheduled", op="sent")))[0].json
    failed = (await alice.inbox.wait_for(on("/in/event", type="scheduled", op="failed")))[0].json
    assert (sent["cid"], failed["cid"]) == ("s1", "s2")
    assert failed["error"] == {"code": "refused", "message": "no spam here", "reason": "spam.link"}
    assert (await bob.inbox.wait_for(on("/in/msg", cid="s1")))[0].json["text"] == "d**n later"
    assert [e.get("scheduled") for e in receiver.events] == [True, True]


async def test_the_client_reads_what_http_servers_answer_and_reuses_connections() -> None:
    """services.callbacks.http against a real server answering each request as the test says:
    a Content-Length, a chunked and a closing answer; a longer one than the cap; a kept
    connection the server closed meanwhile (a new one, the POST not lost); the guard."""
    from services.callbacks.http import CallbackClient
    from services.netguard import OutboundPolicy, TargetRefused

    answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
               b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;x=1\r\nlo\r\n0\r\nT: 1\r\n\r\n",
               b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n" + b"x" * 5000,
               b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbye",
               b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast"]
    bodies: list[bytes] = []
    close_after = {2, 3, 4}  # the server closes after these answers (after the 2nd: one the client keeps)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                bodies.append(await reader.readexactly(length))
                writer.write(answers.pop(0))
                await writer.drain()
                if len(bodies) in close_after:
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = CallbackClient(OutboundPolicy(allow_http=True, allow=["127.0.0.1"]), max_response_bytes=1024)
    target = client.policy.parse(f"http://127.0.0.1:{port}/hook?q=1")
    try:
        assert await client.post(target, b"a", {}) == (200, b"ok")
        assert await client.post(target, b"b", {}) == (201, b"hello")
        assert client.connections == 1  # kept alive
        status, data = await client.post(target, b"c", {})
        assert (status, len(data)) == (200, 1024)  # capped
        assert await client.post(target, b"d", {}) == (200, b"bye")
        assert await client.post(target, b"e", {}) == (200, b"last")
        assert bodies == [b"a", b"b", b"c", b"d", b"e"] and client.connections == 4  # each POST once
        with pytest.raises(TargetRefused):
            await CallbackClient(OutboundPolicy(allow_http=True)).post(target, b"f", {})
    finally:
        await client.aclose()
        server.close()


@pytest.mark.parametrize("garbled", [
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nx\r\n0\r\n\r\n",  # a negative chunk
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 70_000 + b"\r\n",  # an endless size line
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + b"T" * 70_000 + b"\r\n\r\n",  # trailer
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: " + b"y" * 70_000 + b"\r\n\r\nok",  # endless headers
])
async def test_a_garbled_answer_is_a_connection_error(garbled: bytes) -> None:
    """Whatever an endpoint answers, the client raises only what the callers take for a failure
    (``OSError``), so the endpoint's on_failure applies (not an internal error)."""
    from services.callbacks.http import CallbackClient
    from services.netguard import OutboundPolicy

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(garbled)
        await writer.drain()
        await reader.read()  # until the client closes
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    client = CallbackClient(OutboundPolicy(allow_http=True, allow=["127.0.0.1"]))
    try:
        target = client.policy.parse(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook")
        with pytest.raises(ConnectionError):
            await client.post(target, b"{}", {})
    finally:
        await client.aclose()
        server.close()


async def test_the_fair_limiter_hands_places_round_robin_between_senders() -> None:
    """Three calls of alice's wait before one of bob's: bob's goes second, not fourth."""
    from services.hooks.before import FairLimiter

    limiter = FairLimiter(1)
    held = limiter.slot("carol")
    await held.__aenter__()  # the one place, taken
    order: list[str] = []
    queued = [asyncio.Event() for _ in range(4)]

    async def call(i: int, sender: str) -> None:
        queued[i].set()  # (then queued at once: nothing between this and the limiter's queue yields)
        async with limiter.slot(sender):
            order.append(f"{sender}{i}")

    tasks = [asyncio.create_task(call(i, s)) for i, s in enumerate(["alice", "alice", "alice", "bob"])]
    for e in queued:
        await e.wait()
    assert order == [] and limiter.used == 1
    await held.__aexit__(None, None, None)
    await asyncio.gather(*tasks)
    assert order == ["alice0", "bob3", "alice1", "alice2"] and limiter.used == 0
