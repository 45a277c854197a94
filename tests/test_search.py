"""History search on the embedded engine: CJK, English and mixed text, filters, visibility,
recall, and a rebuild from the database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from config.settings import Settings
from imgate.app import App
from tests.conftest import Users
from tests.helpers import Device, connect, tweak


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[App]:
    async with App(tweak(settings, "push", interval_s=0.05)) as running:
        yield running


async def hits(dev: Device, q: str, **params: Any) -> list[str]:
    return [m["text"] for m in (await dev.result("search", {"q": q, **params}))["messages"]]


async def until_indexed(dev: Device, q: str, expected: int, **params: Any) -> list[str]:
    """Indexing follows the message queue asynchronously: ask until it has caught up (bounded)."""
    async with asyncio.timeout(10):
        while len(found := await hits(dev, q, **params)) < expected:
            pass
    return found


async def test_cjk_english_and_mixed_text(app: App, users: Users) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
               connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        for cid, text in [("c1", "你好世界"), ("c2", "Hello World, how are you?"), ("c3", "我们用中文text混合写"),
                          ("c4", "日本語のテキストです"), ("c5", "nothing relevant")]:
            await alice.send_and_ack(cid, "bob", text)
        assert await until_indexed(bob, "世界", 1) == ["你好世界"]
        assert await hits(bob, "界") == ["你好世界"]
        assert await hits(bob, "hello") == ["Hello World, how are you?"]
        assert await hits(bob, "WORLD hello") == ["Hello World, how are you?"]
        assert await hits(bob, "中文") == ["我们用中文text混合写"]
        assert await hits(bob, "text 混合") == ["我们用中文text混合写"]
        assert await hits(bob, "テキスト") == ["日本語のテキストです"]
        assert await hits(bob, "世 界 hello") == []  # every term must match
        assert await hits(alice, "世界") == ["你好世界"]  # the sender finds it too


async def test_filters_by_conversation_sender_and_time(app: App, users: Users) -> None:
    await users.add("alice", "bob", "carol")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
               connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        a = await alice.send_and_ack("a1", "bob", "meeting notes from alice")
        b = await bob.send_and_ack("b1", "alice", "meeting notes from bob")
        await alice.send_and_ack("a2", "carol", "meeting with carol")
        assert len(await until_indexed(alice, "meeting", 3)) == 3
        assert sorted(await hits(alice, "meeting", conv="d:alice:bob")) == ["meeting notes from alice",
                                                                             "meeting notes from bob"]
        assert await hits(alice, "meeting", **{"from": "bob"}) == ["meeting notes from bob"]
        since_b = await hits(alice, "notes", since=b["ts"])
        assert "meeting notes from bob" in since_b
        assert ("meeting notes from alice" in since_b) == (a["ts"] >= b["ts"])
        assert await hits(alice, "notes", until=a["ts"]) == []
        bad = await alice.rpc("search", {"q": "x", "since": "yesterday"})
        assert bad["error"]["code"] == -32602


async def test_users_only_find_what_they_may_see(app: App, users: Users) -> None:
    await users.add("alice", "bob", "eve", "dave")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
               connect(app.mqtt_port, "eve", "phone", await users.token("eve")) as eve, \
               connect(app.mqtt_port, "dave", "phone", await users.token("dave")) as dave:
        await alice.send_and_ack("secret", "bob", "the password is swordfish")
        g = await alice.result("group.create", {"name": "g", "members": ["eve"]})
        await alice.send({"cid": "g-before", "group": g["gid"], "type": "text", "text": "swordfish before dave"})
        await alice.result("group.add", {"gid": g["gid"], "members": ["dave"]})
        await alice.send({"cid": "g-after", "group": g["gid"], "type": "text", "text": "swordfish after dave"})
        await alice.result("group.remove", {"gid": g["gid"], "members": ["dave"]})
        await alice.send({"cid": "g-gone", "group": g["gid"], "type": "text", "text": "swordfish without dave"})
        await alice.inbox.wait_for(lambda r: r.topic.endswith("/in/ack") and b"g-gone" in r.payload)
        assert len(await until_indexed(alice, "swordfish", 4)) == 4
        assert sorted(await hits(eve, "swordfish")) == ["swordfish after dave", "swordfish before dave",
                                                         "swordfish without dave"]
        assert await hits(dave, "swordfish") == ["swordfish after dave"]  # from his join to his removal
        assert await hits(eve, "password") == []  # not her conversation
        assert await hits(eve, "swordfish", conv="d:alice:bob") == []  # a filter cannot widen the view


async def test_recalled_messages_disappear_and_reindex_rebuilds(app: App, users: Users) -> None:
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        oops = await alice.send_and_ack("oops", "bob", "wrong recipient banana")
        await alice.send_and_ack("ok", "bob", "right banana")
        assert len(await until_indexed(alice, "banana", 2)) == 2
        await alice.result("recall", {"id": oops["id"]})
        assert await hits(alice, "banana") == ["right banana"]
        assert app.search is not None
        assert await app.search.reindex() == 1  # the recalled one is a tombstone: not indexed
        assert await hits(alice, "banana") == ["right banana"]


@pytest.mark.parametrize(("params", "code"), [({"q": ""}, -32602), ({"q": "x" * 201}, -32602),
                                               ({"q": "!!! ???"}, -32602), ({}, -32602),
                                               ({"q": "ok", "limit": 1000}, -32602)])
async def test_bad_queries(app: App, users: Users, params: dict, code: int) -> None:
    await users.add("alice")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        assert (await alice.rpc("search", params))["error"]["code"] == code
