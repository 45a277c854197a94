"""History search, the same suite on every backend: the embedded engine, Meilisearch through a
local server implementing its REST API (tests/fakes/meili.py), a real Meilisearch when
MEILI_URL (and MEILI_MASTER_KEY) are set, and the PostgreSQL table when the test database is
PostgreSQL (IMGATE_TEST_DB=postgres). CJK, English and mixed text, filters, visibility,
recall, outage and catch-up, and a rebuild from the database."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from imgate.app import App
from tests.conftest import Users
from tests.fakes.meili import FakeMeili
from tests.helpers import Device, connect, platform, tweak

BACKENDS = (["embedded", "meilisearch"] + (["meilisearch-live"] if os.environ.get("MEILI_URL") else [])
            + (["postgres"] if os.environ.get("IMGATE_TEST_DB") == "postgres" else []))


@dataclass
class Backend:
    name: str
    search: dict[str, Any]  # the [search] settings
    fake: FakeMeili | None = None


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param in ("embedded", "postgres"):
        yield Backend(request.param, {"backend": request.param})
        return
    index = f"imgate_test_{uuid.uuid4().hex[:12]}"
    if request.param == "meilisearch":
        async with FakeMeili() as fake:
            yield Backend("meilisearch", {"backend": "meilisearch", "meili_url": fake.url,
                                          "meili_api_key": fake.master_key, "meili_index": index}, fake)
        return
    import meilisearch

    url, key = os.environ["MEILI_URL"], os.environ.get("MEILI_MASTER_KEY")
    yield Backend("meilisearch-live", {"backend": "meilisearch", "meili_url": url, "meili_api_key": key,
                                       "meili_index": index})
    await asyncio.to_thread(lambda: meilisearch.Client(url, key).delete_index(index))


def search_settings(settings: Settings, backend: Backend, **changes: Any) -> Settings:
    return tweak(settings, "search", **{"interval_s": 0.05, **backend.search, **changes})


@pytest.fixture
async def app(settings: Settings, backend: Backend) -> AsyncIterator[App]:
    async with App(search_settings(settings, backend)) as running:
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
                          ("c4", "日本語のテキストです"), ("c5", "nothing relevant"), ("c6", "Café crème, hellos")]:
            await alice.send_and_ack(cid, "bob", text)
        # The indexer takes the queue in order: once the last message is found, all are indexed.
        assert await until_indexed(bob, "cafe", 1) == ["Café crème, hellos"]
        assert await hits(bob, "世界") == ["你好世界"]
        assert await hits(bob, "界") == ["你好世界"]
        assert await hits(bob, "hello") == ["Hello World, how are you?"]  # whole words: not "hellos"
        assert await hits(bob, "cafe") == ["Café crème, hellos"]  # diacritics aside
        assert await hits(bob, "CAFÉ Crème") == ["Café crème, hellos"]
        assert await hits(bob, "好世") == ["你好世界"]
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


async def test_the_case_of_an_id_never_widens_the_view(app: App, users: Users) -> None:
    """Meilisearch's filters ignore case; "d:Alice:bob" must not leak to alice (nor ``from``
    "alice" match Alice)."""
    await users.add("alice", "Alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
               connect(app.mqtt_port, "Alice", "phone", await users.token("Alice")) as big_alice, \
               connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        await big_alice.send_and_ack("x", "bob", "secret plans")
        await alice.send_and_ack("y", "bob", "public plans")
        assert sorted(await until_indexed(bob, "plans", 2)) == ["public plans", "secret plans"]
        assert await hits(alice, "plans") == ["public plans"]
        assert await hits(bob, "plans", **{"from": "alice"}) == ["public plans"]
        assert await hits(alice, "plans", conv="d:Alice:bob") == []


async def test_an_indexer_that_was_down_catches_up(settings: Settings, backend: Backend) -> None:
    """Messages stored while no indexer ran (a process whose indexer never got to them, then
    stopped) are indexed by the next process, from the durable queue."""
    from imgate.app import build_services, open_database
    from services.ids import SystemClock
    from services.messages.service import SendCommand

    async with open_database(settings):
        svc = build_services(SystemClock())
        for uid in ("alice", "bob"):
            await svc.users.add_user(uid)
        async with svc.messages.committing():
            for i in range(30):
                await svc.messages.send(SendCommand("alice", f"m{i}", "bob", None, "text", f"catchup message {i}", None))
        token = (await svc.users.issue_token("alice", "phone")).token
    async with App(search_settings(settings, backend)) as app, \
               connect(app.mqtt_port, "alice", "phone", token) as alice:
        assert len(await until_indexed(alice, "catchup", 30, limit=100)) == 30


async def test_meilisearch_outage_messaging_goes_on_and_indexing_catches_up(
        settings: Settings, backend: Backend) -> None:
    if backend.fake is None:
        pytest.skip("needs a Meilisearch this test can stop and start (the local server)")
    meili, index = backend.fake, backend.search["meili_index"]
    await meili.stop()  # down before imgate starts: start-up must not wait for it
    async with platform(search_settings(settings, backend), "alice", "bob") as (app, tokens), \
               connect(app.mqtt_port, "alice", "phone", tokens["alice"]) as alice, \
               connect(app.mqtt_port, "bob", "phone", tokens["bob"]) as bob:
        first = await alice.send_and_ack("m1", "bob", "outage first")
        assert first["seq"] == 1
        [got] = await bob.inbox.wait_for(lambda r: r.topic.endswith("/in/msg"))
        assert b"outage first" in got.payload
        down = await bob.rpc("search", {"q": "outage"})
        assert down["error"]["code"] == 503
        assert down["error"]["data"]["code"] == "unavailable"
        assert "search is unavailable" in down["error"]["message"]

        await meili.start()
        assert await until_indexed(bob, "outage", 1) == ["outage first"]

        await meili.stop()
        await alice.send_and_ack("m2", "bob", "outage second")
        await alice.result("recall", {"id": first["id"]})  # a recall during the outage
        history = await bob.result("history", {"conv": "d:alice:bob"})
        assert [m.get("text") for m in history["messages"]] == [None, "outage second"]
        assert (await bob.rpc("search", {"q": "outage"}))["error"]["code"] == 503
        metrics = await app.metrics()
        assert metrics["search_backlog"] >= 2  # the new message and the recall wait
        assert metrics["search_up"] == 0

        await meili.start()
        assert await until_indexed(bob, "outage", 1) == ["outage second"]
        assert (await app.metrics())["search_up"] == 1
        # The recall reached the index itself (the indexer removes before it adds, in one pass).
        assert first["id"] not in meili.documents(index)
        assert len(meili.documents(index)) == 1


async def test_the_backend_is_chosen_by_configuration(settings: Settings, backend: Backend) -> None:
    from imgate.app import build_search, build_services
    from services.ids import SystemClock
    from services.search.embedded import EmbeddedSearch
    from services.search.meili import MeiliSearch
    from services.search.postgres import PostgresSearch

    search = build_search(search_settings(settings, backend), build_services(SystemClock()))
    expected = {"embedded": EmbeddedSearch, "postgres": PostgresSearch}.get(backend.name, MeiliSearch)
    assert type(search.backend) is expected
    search.close()


async def test_a_user_in_very_many_conversations(settings: Settings, backend: Backend) -> None:
    """Visibility for 40,000 conversations (more than SQLite's 32,766 parameters, and than
    PostgreSQL's 32,767), whole ones and groups joined late, still works."""
    if backend.name not in ("embedded", "postgres"):
        pytest.skip("the limits are SQLite's and PostgreSQL's")
    from imgate.app import open_database
    from services.search.base import Doc, SearchBackend, Window
    from services.search.embedded import EmbeddedSearch
    from services.search.postgres import PostgresSearch
    from services.search.terms import query_terms

    async with open_database(settings):
        index: SearchBackend = EmbeddedSearch(settings.data_dir / "many.db") if backend.name == "embedded" \
            else PostgresSearch()
        try:
            await index.add([Doc("a", "d:x:y", 1, "x", 1, "needle"), Doc("b", "d:x:z", 1, "x", 1, "needle"),
                             *(Doc(f"g{seq}", "g:late", seq, "x", seq, "needle") for seq in range(1, 6))])
            # (The embedded engine passes each partial window as parameters: a few hundred here.)
            late = 20_000 if backend.name == "postgres" else 300
            many = [Window(f"d:q:{i}", 0, None) for i in range(40_000 - late)] + [
                Window(f"g:q:{i}", i % 7 + 1, i % 3 or None) for i in range(late)]
            windows = [*many, Window("d:x:y", 0, None), Window("g:late", 1, 2), Window("g:late", 3, None)]
            found = await index.search(query_terms("needle"), windows, sender=None, since=None, until=None, limit=10)
            assert sorted(d.id for d in found) == ["a", "g2", "g4", "g5"]
        finally:
            index.close()


async def test_the_postgres_index_is_created_once_by_any_number_of_processes(settings: Settings,
                                                                             backend: Backend) -> None:
    """Workers starting together each create the table if it is missing: one does, the others
    wait for it (an advisory lock) instead of failing on CREATE TABLE's race; documents are
    replaced by id, their terms folded (case, diacritics) and CJK split as the embedded engine does."""
    if backend.name != "postgres":
        pytest.skip("the PostgreSQL backend's table")
    from imgate.app import open_database
    from services.search.base import Doc, Window
    from services.search.postgres import PostgresSearch, doc_terms
    from services.search.terms import query_terms
    from services.sql import fetch

    assert doc_terms("Café 你好世界 café") == ["cafe", "你", "好", "世", "界", "你好", "好世", "世界"]
    async with open_database(settings):
        first, second = PostgresSearch(), PostgresSearch()
        await asyncio.gather(*(index.start() for index in (first, second, PostgresSearch(), PostgresSearch())))
        await first.add([Doc("m1", "d:a:b", 1, "a", 10, "Crème brûlée")])
        await second.add([Doc("m1", "d:a:b", 1, "a", 10, "你好世界")])  # replaced, not doubled
        whole = [Window("d:a:b", 0, None)]

        async def ids(q: str) -> list[str]:
            return [d.id for d in await first.search(query_terms(q), whole, sender=None, since=None, until=None,
                                                     limit=10)]

        assert await ids("世界") == ["m1"] and await ids("界") == ["m1"] and await ids("creme") == []
        await first.add([Doc("m2", "d:a:b", 2, "a", 20, "Crème brûlée"), Doc("m3", "d:a:b", 3, "b", 30, "creme")])
        assert await ids("CREME") == ["m3", "m2"]  # the newest first
        assert await ids("crème brulee") == ["m2"]
        assert [tuple(r) for r in await fetch("SELECT terms FROM search_messages WHERE id = 'm2'")] == [
            (["creme", "brulee"],)]
        await second.remove(["m3"])
        assert await ids("creme") == ["m2"]
        await second.clear()
        assert await ids("creme") == []


async def test_closing_the_embedded_index_waits_for_the_job_its_thread_is_running(tmp_path: Any) -> None:
    """Found when the broker got faster: the indexer was cancelled at shutdown while its worker
    thread was still writing, and close() pulled the SQLite connection from under it (the test
    process died of a segmentation fault). Now the connection closes once that job is done, and
    a job that had not started yet finds the index closed. Tried at several moments of the job."""
    from services.search.base import Doc
    from services.search.embedded import EmbeddedSearch

    class Watched(list[Doc]):
        """The documents, telling when the worker thread starts reading them (the job is under way)."""

        def __init__(self, items: list[Doc]) -> None:
            super().__init__(items)
            self.read = threading.Event()

        def __iter__(self) -> Iterator[Doc]:
            self.read.set()
            return super().__iter__()

    docs = [Doc(f"m{i}", "d:a:b", i, "a", i, f"word{i} " * 20) for i in range(5_000)]
    outcomes = set()
    for turns in range(12):
        index = EmbeddedSearch(tmp_path / f"closing-{turns}.db")
        await index.start()
        opened = index._inflight
        watched = Watched(docs)
        indexing = asyncio.create_task(index.add(watched))
        while index._inflight is opened:  # until the job is handed to the worker thread
            await asyncio.sleep(0)
        job = index._inflight
        assert job is not None
        if turns >= 10:  # the last two: close once the thread is inside the job, however busy the machine
            assert await asyncio.to_thread(watched.read.wait, 30)
        for _ in range(turns * turns):  # the thread gets further into the job each time
            await asyncio.sleep(0)
        indexing.cancel()
        index.close()
        await asyncio.wait({job})
        error = job.exception()
        assert error is None or "closed" in str(error), error  # never a write on a closed connection
        outcomes.add("written" if error is None else "not started")
        with pytest.raises(RuntimeError, match="closed"):
            await index.add(docs[:1])
    assert "written" in outcomes  # some jobs were under way when close() came


async def test_hits_say_which_thread_they_are_in(app: App, users: Users) -> None:
    """Threads (issue 28): a thread reply's hit carries its root's id, in every backend."""
    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
               connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        root = await alice.send_and_ack("root", "bob", "the kiwifruit question")
        await bob.send({"cid": "reply", "to": "alice", "type": "text", "text": "kiwifruit is fine",
                        "thread": root["id"]})
        await until_indexed(bob, "kiwifruit", 2)
        found = {h["text"]: h for h in (await bob.result("search", {"q": "kiwifruit"}))["messages"]}
        assert found["kiwifruit is fine"]["thread"] == root["id"]
        assert "thread" not in found["the kiwifruit question"]


async def test_an_index_made_before_threads_gets_the_column(tmp_path: Path) -> None:
    import sqlite3

    from services.search.base import Doc, Window
    from services.search.embedded import EmbeddedSearch

    path = tmp_path / "search.db"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE messages (rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, conv TEXT NOT NULL,
            seq INTEGER NOT NULL, sender TEXT NOT NULL, ts INTEGER NOT NULL, text TEXT NOT NULL);
        CREATE VIRTUAL TABLE message_terms USING fts5(terms, tokenize = 'unicode61 remove_diacritics 2');""")
    old.close()
    index = EmbeddedSearch(path)
    try:
        await index.add([Doc("m1", "d:a:b", 1, "a", 1, "walnut", "r0"), Doc("m2", "d:a:b", 2, "a", 2, "walnut")])
        found = await index.search(["walnut"], [Window("d:a:b", 0, None)], sender=None, since=None, until=None,
                                   limit=10)
        assert {d.id: d.thread for d in found} == {"m1": "r0", "m2": None}
    finally:
        index.close()
