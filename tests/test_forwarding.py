"""Forwarding over the real broker and bridge (issue 28, protocol §3 "Forwarding"): a send with
``forward`` copies one message, or with ``merge`` up to ten of one conversation as one
``merged`` message, into a conversation the forwarder is a member of. The copy says where it
came from (the original sender, the kind of conversation, the original time) and nothing that
lets a recipient read the source; attachments are shared, not copied, and stay readable after the
original is recalled. And the refusals a hostile user tries."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import cbor2
import httpx
import pytest

from bridge.formats import KEYS
from config.settings import Settings
from imgate.app import App
from tests.conftest import Users
from tests.helpers import Device, connect, on, tweak

UNKNOWN = "01M8QD0EV8VJGDADPWYHRAPXHE"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40  # not a real image: the server never decodes it


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return tweak(settings, "web", enabled=True, port=0)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture
async def crowd(app: App, users: Users) -> AsyncIterator[dict[str, Device]]:
    """alice, bob, carol, dave, mallory: each connected with one device."""
    names = ["alice", "bob", "carol", "dave", "mallory"]
    await users.add(*names)
    async with AsyncExitStack() as stack:
        yield {n: await stack.enter_async_context(connect(app.mqtt_port, n, "phone", await users.token(n)))
               for n in names}


async def sent(device: Device, body: dict[str, Any]) -> dict[str, Any]:
    """Send, and the ack (which must not be an error)."""
    await device.send(body)
    ack = (await device.inbox.wait_for(on("/in/ack", cid=body["cid"])))[-1].json
    assert "error" not in ack, ack
    return ack  # type: ignore[no-any-return]


async def refused(device: Device, body: dict[str, Any]) -> tuple[str, str]:
    """Send, and the error ack's (code, message)."""
    await device.send(body)
    ack = (await device.inbox.wait_for(on("/in/ack", cid=body["cid"])))[-1].json
    assert "error" in ack, ack
    return ack["error"]["code"], ack["error"]["message"]


async def text(device: Device, cid: str, text_: str, **target: str) -> dict[str, Any]:
    return await sent(device, {"cid": cid, **target, "type": "text", "text": text_})


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def upload(device: Device, http: httpx.AsyncClient, data: bytes, name: str = "cat.png") -> dict[str, Any]:
    ticket = await device.result("file.upload", {"name": name, "mime": "image/png", "size": len(data),
                                                 "sha256": sha(data)})
    assert (await http.put(ticket["url"], content=data, headers=ticket["headers"])).status_code == 201
    return {"key": ticket["key"], "mime": "image/png", "size": len(data), "sha256": sha(data), "name": name}


async def download(device: Device, http: httpx.AsyncClient, key: str) -> bytes | None:
    """The bytes ``device`` downloads through the file URL flow, or None when it gets no URL."""
    urls = (await device.result("file.url", {"keys": [key]}))["urls"]
    if key not in urls:
        return None
    r = await http.get(urls[key])
    assert r.status_code == 200, r.text
    return r.content


async def test_one_message_is_forwarded_with_its_origin_and_nothing_of_its_source(crowd: dict[str, Device]) -> None:
    alice, bob, carol, dave = crowd["alice"], crowd["bob"], crowd["carol"], crowd["dave"]
    original = await text(bob, "b1", "meet at 6", to="alice")
    g = await alice.result("group.create", {"name": "team", "members": ["carol", "dave"]})
    ack = await sent(alice, {"cid": "f1", "group": g["gid"], "forward": [original["id"]]})
    assert ack["conv"] == g["conv"] and ack["id"] != original["id"]
    for member in (carol, dave):
        got = (await member.inbox.wait_for(on("/in/msg", cid="f1")))[0]
        m = got.json
        assert (m["id"], m["conv"], m["from"], m["type"], m["text"]) == (ack["id"], g["conv"], "alice", "text",
                                                                         "meet at 6")
        assert m["forwarded"] == {"from": "bob", "kind": "direct", "ts": original["ts"]}
        # Nothing names the source: not its conversation, not its message.
        assert original["conv"].encode() not in got.payload and original["id"].encode() not in got.payload
    history = (await carol.result("history", {"conv": g["conv"]}))["messages"]
    assert history[-1]["forwarded"] == {"from": "bob", "kind": "direct", "ts": original["ts"]}
    assert history[-1]["text"] == "meet at 6"
    # The recipient cannot read the source, nor forward from it.
    assert (await carol.rpc("history", {"conv": original["conv"]}))["error"]["data"]["code"] == "not_found"
    assert (await refused(carol, {"cid": "c1", "to": "alice", "forward": [original["id"]]}))[0] == "not_found"

    # A retry with the same cid is acked as it was and delivered once.
    await alice.send({"cid": "f1", "group": g["gid"], "forward": [original["id"]]})
    acks = await alice.inbox.wait_for(on("/in/ack", cid="f1"), count=2)
    assert acks[1].json == acks[0].json
    marker = await text(alice, "after", "after the retry", group=g["gid"])
    await carol.inbox.wait_for(on("/in/msg", id=marker["id"]))
    assert len(carol.inbox.matching(on("/in/msg", cid="f1"))) == 1

    # Forwarding a forward keeps the first origin; a forwarded text is not edited (the words are bob's).
    again = await sent(carol, {"cid": "c2", "to": "dave", "forward": [ack["id"]]})
    m = (await dave.inbox.wait_for(on("/in/msg", id=again["id"])))[0].json
    assert (m["from"], m["forwarded"]) == ("carol", {"from": "bob", "kind": "direct", "ts": original["ts"]})
    edit = await alice.rpc("edit", {"id": ack["id"], "text": "meet at 7"})
    assert edit["error"]["data"]["code"] == "forbidden"
    # The forwarder recalls its copy; the original stays.
    await alice.result("recall", {"id": ack["id"]})
    assert (await bob.result("history", {"conv": original["conv"]}))["messages"][0]["text"] == "meet at 6"


async def test_several_messages_merge_into_one_in_their_conversations_order(crowd: dict[str, Device]) -> None:
    alice, bob, carol = crowd["alice"], crowd["bob"], crowd["carol"]
    g = await alice.result("group.create", {"name": "team", "members": ["bob"]})
    m1 = await text(alice, "m1", "first", group=g["gid"])
    m2 = await text(bob, "m2", "second", group=g["gid"])
    m3 = await sent(bob, {"cid": "m3", "group": g["gid"], "type": "custom", "data": {"lat": 52.5, "lon": 13.4}})
    # Out of order, one id twice: the merge is in the conversation's order, each message once.
    ack = await sent(alice, {"cid": "f1", "to": "carol", "forward": [m3["id"], m1["id"], m2["id"], m1["id"]],
                             "merge": True})
    got = (await carol.inbox.wait_for(on("/in/msg", cid="f1")))[0]
    m = got.json
    assert (m["type"], m["from"], m["id"]) == ("merged", "alice", ack["id"])
    assert "text" not in m and "data" not in m and "forwarded" not in m
    assert m["merged"] == {"kind": "group", "messages": [
        {"from": "alice", "type": "text", "text": "first", "ts": m1["ts"]},
        {"from": "bob", "type": "text", "text": "second", "ts": m2["ts"]},
        {"from": "bob", "type": "custom", "data": {"lat": 52.5, "lon": 13.4}, "ts": m3["ts"]}]}
    for source in (g["conv"], m1["id"], m2["id"], m3["id"], g["gid"]):
        assert source.encode() not in got.payload
    assert (await carol.result("history", {"conv": ack["conv"]}))["messages"][-1]["merged"] == m["merged"]
    # A merged message is forwarded alone (not merged again); its copy keeps its messages.
    again = await sent(carol, {"cid": "c1", "to": "bob", "forward": [ack["id"]]})
    m = (await bob.inbox.wait_for(on("/in/msg", id=again["id"])))[0].json
    assert m["type"] == "merged" and m["merged"]["messages"][0]["text"] == "first"
    assert m["forwarded"] == {"from": "alice", "kind": "direct", "ts": ack["ts"]}
    code, message = await refused(carol, {"cid": "c2", "to": "bob", "forward": [ack["id"]], "merge": True})
    assert code == "bad_request" and "merged again" in message
    # A merge of one message is a card of one.
    one = await sent(alice, {"cid": "f2", "to": "carol", "forward": [m2["id"]], "merge": True})
    m = (await carol.inbox.wait_for(on("/in/msg", id=one["id"])))[0].json
    assert [i["text"] for i in m["merged"]["messages"]] == ["second"]


async def test_attachments_are_shared_and_outlive_the_original(app: App, crowd: dict[str, Device],
                                                               http: httpx.AsyncClient) -> None:
    alice, bob, carol, mallory = crowd["alice"], crowd["bob"], crowd["carol"], crowd["mallory"]
    files = app.settings.data_dir / "files"
    image = await upload(alice, http, PNG)
    thumb = await upload(alice, http, PNG[:300], name="t.png")
    attachment = {**image, "thumbnail": {k: thumb[k] for k in ("key", "mime", "size", "sha256")}}
    original = await sent(alice, {"cid": "a1", "to": "bob", "type": "image", "text": "look", "attachment": attachment})
    g = await bob.result("group.create", {"name": "pals", "members": ["carol"]})
    # bob did not upload it, and forwards it all the same: the same keys, no bytes copied.
    ack = await sent(bob, {"cid": "f1", "group": g["gid"], "forward": [original["id"]]})
    m = (await carol.inbox.wait_for(on("/in/msg", cid="f1")))[0].json
    assert (m["type"], m["text"], m["attachment"]) == ("image", "look", attachment)
    assert await download(carol, http, image["key"]) == PNG
    assert await download(carol, http, thumb["key"]) == PNG[:300]
    assert await download(mallory, http, image["key"]) is None  # a stranger still gets no URL
    # The original is recalled: the forward still refers to the bytes, and carol still downloads.
    await alice.result("recall", {"id": original["id"]})
    assert await download(carol, http, image["key"]) == PNG
    assert await download(bob, http, thumb["key"]) == PNG[:300]
    assert list(files.rglob(image["key"]))
    # And the forward is recalled too: nothing refers to them any more, they go.
    await bob.result("recall", {"id": ack["id"]})
    assert not list(files.rglob(image["key"])) and not list(files.rglob(thumb["key"]))
    assert await download(carol, http, image["key"]) is None


async def test_a_merge_shares_several_attachments(app: App, crowd: dict[str, Device], http: httpx.AsyncClient) -> None:
    alice, bob, carol, dave = crowd["alice"], crowd["bob"], crowd["carol"], crowd["dave"]
    files = app.settings.data_dir / "files"
    one, two = await upload(alice, http, PNG, "one.png"), await upload(bob, http, PNG[:1000], "two.png")
    first = await sent(alice, {"cid": "a1", "to": "bob", "type": "image", "attachment": one})
    second = await sent(bob, {"cid": "b1", "to": "alice", "type": "file", "text": "the doc", "attachment": two})
    words = await text(bob, "b2", "both there", to="alice")
    ack = await sent(alice, {"cid": "f1", "to": "carol", "forward": [words["id"], second["id"], first["id"]],
                             "merge": True})
    m = (await carol.inbox.wait_for(on("/in/msg", cid="f1")))[0].json
    assert [(i["type"], i.get("attachment"), i.get("text")) for i in m["merged"]["messages"]] == [
        ("image", one, None), ("file", two, "the doc"), ("text", None, "both there")]
    assert await download(carol, http, one["key"]) == PNG
    assert await download(carol, http, two["key"]) == PNG[:1000]
    assert await download(dave, http, two["key"]) is None
    # carol forwards the merged message on: dave reads its files through his own conversation.
    again = await sent(carol, {"cid": "c1", "to": "dave", "forward": [ack["id"]]})
    assert await download(dave, http, two["key"]) == PNG[:1000]
    # The originals are recalled (an admin-free 1:1: each its sender): the merges keep the bytes.
    await alice.result("recall", {"id": first["id"]})
    await bob.result("recall", {"id": second["id"]})
    assert await download(carol, http, one["key"]) == PNG
    # carol's copy recalled: alice's merge still refers to them; then alice's: dave's copy does.
    await carol.result("recall", {"id": again["id"]})
    assert await download(dave, http, one["key"]) is None  # his conversation's copy is gone
    assert await download(carol, http, two["key"]) == PNG[:1000]
    await alice.result("recall", {"id": ack["id"]})
    assert not list(files.rglob(one["key"])) and not list(files.rglob(two["key"]))


async def test_what_may_not_be_forwarded(crowd: dict[str, Device]) -> None:
    alice, bob, carol, dave, mallory = (crowd[n] for n in ("alice", "bob", "carol", "dave", "mallory"))
    secret = await text(alice, "s1", "between us", to="bob")
    g = await alice.result("group.create", {"name": "team", "members": ["bob"]})
    before = await text(alice, "g1", "before carol", group=g["gid"])
    await alice.result("group.add", {"gid": g["gid"], "members": ["carol"]})
    after = await text(alice, "g2", "after carol", group=g["gid"])
    gone = await text(bob, "g3", "oops", group=g["gid"])
    await bob.result("recall", {"id": gone["id"]})
    event = next(m for m in (await carol.result("history", {"conv": g["conv"]}))["messages"] if m["type"] == "member")

    def unknown(msg_id: str) -> tuple[str, str]:
        return "not_found", f"forward: no message {msg_id!r} to forward"

    # Unknown, another's conversation, before the forwarder joined, recalled, a membership event:
    # one answer, as for an id that never was (nothing tells them apart).
    assert await refused(mallory, {"cid": "x1", "to": "dave", "forward": [UNKNOWN]}) == unknown(UNKNOWN)
    assert await refused(mallory, {"cid": "x2", "to": "dave", "forward": [secret["id"]]}) == unknown(secret["id"])
    assert await refused(carol, {"cid": "x3", "to": "dave", "forward": [before["id"]]}) == unknown(before["id"])
    assert await refused(carol, {"cid": "x4", "to": "dave", "forward": [after["id"], before["id"]],
                                 "merge": True}) == unknown(before["id"])
    assert await refused(bob, {"cid": "x5", "to": "dave", "forward": [gone["id"]]}) == unknown(gone["id"])
    assert await refused(carol, {"cid": "x6", "to": "dave", "forward": [event["id"]]}) == unknown(event["id"])
    # Messages of two conversations in one merge; more than ten; several without merge.
    code, message = await refused(alice, {"cid": "x7", "to": "dave", "forward": [secret["id"], after["id"]],
                                          "merge": True})
    assert code == "bad_request" and "one conversation" in message
    code, message = await refused(alice, {"cid": "x8", "to": "dave", "forward": [after["id"]] * 11, "merge": True})
    assert code == "bad_request" and message.startswith("forward:")
    code, message = await refused(alice, {"cid": "x9", "to": "dave", "forward": [secret["id"], after["id"]]})
    assert code == "bad_request" and "merge" in message
    # A forward carries no content of its own (a caption would be lost), and takes ids only.
    code, message = await refused(alice, {"cid": "x10", "to": "dave", "type": "text", "text": "see",
                                          "forward": [after["id"]]})
    assert code == "bad_request" and message.startswith("type:")
    code, message = await refused(alice, {"cid": "x10t", "to": "dave", "thread": after["id"], "forward": [after["id"]]})
    assert code == "bad_request" and message.startswith("thread:")
    code, message = await refused(alice, {"cid": "x10a", "to": "dave", "at": 2**40, "forward": [after["id"]]})
    assert code == "bad_request" and message.startswith("at:")
    for bad in ([], "x", [42], ["../" * 9]):
        assert (await refused(alice, {"cid": "x11", "to": "dave", "forward": bad}))[0] == "bad_request"
    # The target: a group the forwarder is not in; a 1:1 with someone who blocks it.
    other = await dave.result("group.create", {"name": "elsewhere", "members": ["mallory"]})
    assert await refused(alice, {"cid": "x12", "group": other["gid"], "forward": [after["id"]]}) == \
        ("forbidden", f"you are not a member of group {other['gid']!r}")
    await dave.result("block.add", {"uid": "alice"})
    assert await refused(alice, {"cid": "x13", "to": "dave", "forward": [after["id"]]}) == ("forbidden", "not allowed")
    # A former member reads its history still, but forwards nothing from it.
    await alice.result("group.remove", {"gid": g["gid"], "members": ["carol"]})
    assert any(m["id"] == after["id"] for m in (await carol.result("history", {"conv": g["conv"]}))["messages"])
    code, _ = await refused(carol, {"cid": "x14", "to": "bob", "forward": [after["id"]]})
    assert code == "forbidden"
    # None of the refused forwards reached anyone.
    assert not dave.inbox.matching(on("/in/msg", **{"from": "alice"}))
    assert not dave.inbox.matching(on("/in/msg", **{"from": "mallory"}))


async def test_a_cbor_device_reads_and_sends_the_new_fields_as_numbers(app: App, users: Users) -> None:
    """protocol.md "Encodings": forward, merge, forwarded and merged have numbers, sent as numbers."""
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "board", await users.token("bob", "board", encoding="cbor")) as bob:
        original = await text(alice, "a1", "hello", to="bob")
        # bob's board sends a merge with numbered keys, and gets it back as numbers.
        await bob.client.publish("im/bob/out/msg", cbor2.dumps({
            KEYS["cid"]: "f1", KEYS["to"]: "bob", KEYS["forward"]: [original["id"]], KEYS["merge"]: True}), qos=1)
        ack = cbor2.loads((await bob.inbox.wait_for(on("/in/ack", cid="f1")))[0].payload)
        assert KEYS["error"] not in ack, ack
        raw = cbor2.loads((await bob.inbox.wait_for(on("/in/msg", cid="f1")))[0].payload)
        assert raw[KEYS["type"]] == "merged"
        item = raw[KEYS["merged"]][KEYS["messages"]][0]
        assert raw[KEYS["merged"]][KEYS["kind"]] == "direct"
        assert (item[KEYS["from"]], item[KEYS["text"]], item[KEYS["ts"]]) == ("alice", "hello", original["ts"])
        await alice.send({"cid": "f2", "to": "bob", "forward": [original["id"]]})
        raw = cbor2.loads((await bob.inbox.wait_for(on("/in/msg", cid="f2")))[0].payload)
        assert raw[KEYS["forwarded"]] == {KEYS["from"]: "alice", KEYS["kind"]: "direct", KEYS["ts"]: original["ts"]}


def test_the_plain_send_route_is_unchanged_and_forwards_route_as_sends() -> None:
    """The router: a forward is a Send (ack, cid, lane and the messages bucket, as any send)."""
    import json

    from bridge.router import Reply, Router, Send, Topics

    router = Router(Topics("im"), max_payload=16384, max_text=8000)
    plain = router.route("im/alice/out/msg", json.dumps({"cid": "1", "to": "bob", "type": "text", "text": "x"}).encode())
    assert isinstance(plain, Send) and plain.command.forward == () and not plain.command.merge
    fwd = router.route("im/alice/out/msg", json.dumps({"cid": "2", "group": "g1", "forward": [UNKNOWN, UNKNOWN],
                                                      "merge": True}).encode())
    assert isinstance(fwd, Send) and fwd.command.forward == (UNKNOWN,) and fwd.command.merge
    assert fwd.lane_key == "g:g1"
    many = router.route("im/alice/out/msg", json.dumps({"cid": "3", "to": "bob", "forward": [UNKNOWN] * 11,
                                                       "merge": True}).encode())
    assert isinstance(many, Reply) and b"at most 10" in many.publish.payload


async def test_a_taken_down_upload_is_not_forwarded_and_a_retry_is_acked_as_it_was(
        app: App, crowd: dict[str, Device], http: httpx.AsyncClient) -> None:
    alice, bob, carol = crowd["alice"], crowd["bob"], crowd["carol"]
    words = await text(alice, "a0", "words", to="bob")
    image = await upload(alice, http, PNG)
    original = await sent(alice, {"cid": "a1", "to": "bob", "type": "image", "attachment": image})
    assert app.services is not None
    await app.services.attachments.take_down(image["key"])  # an operator's takedown
    code, message = await refused(bob, {"cid": "f1", "to": "carol", "forward": [original["id"]]})
    assert (code, message) == ("bad_request", f"forward: attachment {image['key']!r}: deleted")
    code, _ = await refused(bob, {"cid": "f2", "to": "carol", "forward": [words["id"], original["id"]], "merge": True})
    assert code == "bad_request"
    # A stored forward's retry is acked as it was, though its source is recalled since.
    ack = await sent(bob, {"cid": "f3", "to": "carol", "forward": [words["id"]]})
    await alice.result("recall", {"id": words["id"]})
    assert await sent(bob, {"cid": "f3", "to": "carol", "forward": [words["id"]]}) == ack
    history = (await carol.result("history", {"conv": ack["conv"]}))["messages"]
    assert [(m["id"], m["text"]) for m in history] == [(ack["id"], "words")]  # the copy stays


async def test_a_merge_stays_within_the_nesting_a_device_decodes(crowd: dict[str, Device]) -> None:
    """Attack: a custom message as deep as a send may be (31 levels in data), merged, would nest
    past the 32 levels devices decode (protocol "Encodings"): a poison card in the recipient's
    history. It is forwarded alone, not merged."""
    alice = crowd["alice"]
    deep: Any = 1
    for _ in range(31):
        deep = {"a": deep}
    sent_deep = await sent(alice, {"cid": "d1", "to": "bob", "type": "custom", "data": deep})
    code, message = await refused(alice, {"cid": "f1", "to": "carol", "forward": [sent_deep["id"]], "merge": True})
    assert code == "bad_request" and "forwarded alone" in message
    alone = await sent(alice, {"cid": "f2", "to": "carol", "forward": [sent_deep["id"]]})
    assert alone["conv"] == "d:alice:carol"
    shallower = await sent(alice, {"cid": "d2", "to": "bob", "type": "custom", "data": deep["a"]["a"]["a"]})
    merged = await sent(alice, {"cid": "f3", "to": "carol", "forward": [shallower["id"]], "merge": True})
    got = (await crowd["carol"].inbox.wait_for(on("/in/msg", id=merged["id"])))[0].json
    assert got["merged"]["messages"][0]["data"] == deep["a"]["a"]["a"]  # 28 levels: as deep as a merge goes
