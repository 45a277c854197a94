"""The Meilisearch backend on its own: settings at start-up, task handling, filters with awkward
values, errors. Against the local server implementing Meilisearch's REST API, and against a
real Meilisearch when MEILI_URL (and MEILI_MASTER_KEY) are set."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import meilisearch
import pytest

from services.search.base import Doc, SearchUnavailable, Window
from services.search.meili import INDEX_SETTINGS, MeiliSearch, visibility_filter
from services.search.terms import query_terms
from tests.fakes.meili import FakeMeili

SERVERS = ["fake"] + (["live"] if os.environ.get("MEILI_URL") else [])


@dataclass
class Server:
    url: str
    key: str | None
    fake: FakeMeili | None


@pytest.fixture(params=SERVERS)
async def server(request: pytest.FixtureRequest) -> AsyncIterator[Server]:
    if request.param == "fake":
        async with FakeMeili() as fake:
            yield Server(fake.url, fake.master_key, fake)
    else:
        yield Server(os.environ["MEILI_URL"], os.environ.get("MEILI_MASTER_KEY"), None)


@pytest.fixture
async def index(server: Server) -> AsyncIterator[str]:
    uid = f"imgate_test_{uuid.uuid4().hex[:12]}"
    yield uid
    if server.fake is None:
        await asyncio.to_thread(lambda: meilisearch.Client(server.url, server.key).delete_index(uid))


def doc(i: str, conv: str, seq: int, sender: str, text: str, ts: int = 1000) -> Doc:
    return Doc(i, conv, seq, sender, ts, text)


async def find(backend: MeiliSearch, q: str, windows: list[Window], **kw: object) -> list[str]:
    params = {"sender": None, "since": None, "until": None, "limit": 20, **kw}
    return [d.id for d in await backend.search(query_terms(q), windows, **params)]  # type: ignore[arg-type]


async def test_start_creates_the_index_with_its_settings_idempotently(server: Server, index: str) -> None:
    backend = MeiliSearch(server.url, server.key, index)
    await backend.start()
    await MeiliSearch(server.url, server.key, index).start()  # a second process: index already exists
    settings = await asyncio.to_thread(lambda: meilisearch.Client(server.url, server.key).index(index).get_settings())
    assert settings["searchableAttributes"] == INDEX_SETTINGS["searchableAttributes"]
    assert sorted(settings["filterableAttributes"]) == sorted(INDEX_SETTINGS["filterableAttributes"])
    assert settings["sortableAttributes"] == ["ts"]
    primary = await asyncio.to_thread(lambda: meilisearch.Client(server.url, server.key).get_index(index).primary_key)
    assert primary == "id"


async def test_windows_sender_and_time_filters_with_awkward_values(server: Server, index: str) -> None:
    backend = MeiliSearch(server.url, server.key, index)
    convs = ['g:quo"te', "g:back\\slash", "d:a:b"]
    await backend.add([doc(f"m{n}", conv, seq, "x", "needle", ts=1000 + seq)
                       for n, (conv, seq) in enumerate((c, s) for c in convs for s in (1, 2, 3))])
    assert sorted(await find(backend, "needle", [Window('g:quo"te', 1, 2)])) == ["m1"]
    assert sorted(await find(backend, "needle", [Window("g:back\\slash", 0, None)])) == ["m3", "m4", "m5"]
    assert sorted(await find(backend, "needle", [Window("d:a:b", 0, None), Window('g:quo"te', 2, None)])) == \
        ["m2", "m6", "m7", "m8"]
    assert sorted(await find(backend, "needle", [Window("d:a:b", 0, None)], since=1002, until=1003)) == ["m7"]
    assert await find(backend, "needle", [Window("d:a:b", 0, None)], sender="y") == []
    assert await find(backend, "needle", []) == []


async def test_cjk_terms_and_every_term_must_match(server: Server, index: str) -> None:
    backend = MeiliSearch(server.url, server.key, index)
    everything = [Window("c", 0, None)]
    await backend.add([doc("a", "c", 1, "x", "你好世界"), doc("b", "c", 2, "x", "hello world"),
                       doc("c", "c", 3, "x", "世界 hello")])
    assert sorted(await find(backend, "世界", everything)) == ["a", "c"]
    assert await find(backend, "好世", everything) == ["a"]
    assert await find(backend, "世界 hello", everything) == ["c"]
    assert await find(backend, "你好 world", everything) == []


async def test_replace_remove_and_clear(server: Server, index: str) -> None:
    backend = MeiliSearch(server.url, server.key, index)
    everything = [Window("c", 0, None)]
    await backend.add([doc("a", "c", 1, "x", "apple"), doc("b", "c", 2, "x", "apple pie")])
    await backend.add([doc("a", "c", 1, "x", "banana")])  # the same id again: replaced
    assert await find(backend, "apple", everything) == ["b"]
    await backend.remove(["b", "never-indexed"])
    assert await find(backend, "apple", everything) == []
    await backend.clear()
    assert await find(backend, "banana", everything) == []


async def test_a_wrong_key_and_a_dead_server_are_unavailable_not_crashes(server: Server, index: str) -> None:
    if server.key is None:
        pytest.skip("the server has no master key")
    with pytest.raises(SearchUnavailable, match="invalid_api_key"):
        await MeiliSearch(server.url, "not-the-key", index).start()
    with pytest.raises(SearchUnavailable, match="did not answer"):
        await MeiliSearch("http://127.0.0.1:9", server.key, index, timeout_s=1).add([doc("a", "c", 1, "x", "t")])


async def test_a_failed_task_is_an_error_not_progress(server: Server, index: str) -> None:
    """The indexer moves its offset only when add() returns: a task that fails must raise."""
    backend = MeiliSearch(server.url, server.key, index)
    with pytest.raises(SearchUnavailable, match="invalid_document_id"):
        await backend.add([doc("not a valid id!", "c", 1, "x", "t")])


def test_visibility_filter_shape() -> None:
    f = visibility_filter([Window("a", 0, None), Window("b", 0, None), Window("g", 3, None), Window("h", 1, 9)])
    assert f == 'conv IN ["a", "b"] OR (conv = "g" AND seq > 3) OR (conv = "h" AND seq > 1 AND seq <= 9)'


async def test_the_local_server_speaks_meilisearch_errors(server: Server, index: str) -> None:
    """Error objects as Meilisearch sends them: message, code, type, link."""
    if server.fake is None:
        pytest.skip("checks the local server against the documented shapes")
    import httpx

    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post(f"/indexes/{index}/search", json={"q": "x"})
        assert r.status_code == 401
        assert r.json()["code"] == "missing_authorization_header"
        auth = {"Authorization": f"Bearer {server.key}"}
        r = await http.post(f"/indexes/{index}/search", json={"q": "x"}, headers=auth)
        assert r.status_code == 404
        assert r.json() == {"message": f"Index `{index}` not found.", "code": "index_not_found",
                            "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#index_not_found"}
        await MeiliSearch(server.url, server.key, index).start()
        r = await http.post(f"/indexes/{index}/search", json={"q": "x", "filter": "text = 1"}, headers=auth)
        assert r.status_code == 400
        assert r.json()["code"] == "invalid_search_filter"
        assert "is not filterable" in r.json()["message"]
        r = await http.post(f"/indexes/{index}/search", json={"q": "x", "sort": ["seq:desc"]}, headers=auth)
        assert (r.status_code, r.json()["code"]) == (400, "invalid_search_sort")
        r = await http.post(f"/indexes/{index}/documents", content=b"[{", headers=auth)
        assert (r.status_code, r.json()["code"]) == (400, "malformed_payload")
        r = await http.get("/tasks/99999", headers=auth)
        assert (r.status_code, r.json()["code"]) == (404, "task_not_found")


async def test_filter_and_sort_semantics(server: Server, index: str) -> None:
    """The filter language as the engine evaluates it (on a real server too, when MEILI_URL is
    set: this is what keeps the local server honest)."""
    from meilisearch.errors import MeilisearchApiError

    client = meilisearch.Client(server.url, server.key)

    def setup() -> None:
        idx = client.index(index)
        for task in (client.create_index(index, {"primaryKey": "id"}),
                     idx.update_settings({"filterableAttributes": ["s", "n"], "sortableAttributes": ["n"]}),
                     idx.add_documents([{"id": "1", "s": "Alpha", "n": 1}, {"id": "2", "s": "beta", "n": 5},
                                        {"id": "3", "n": 10}, {"id": "4", "s": "gamma", "n": 7}])):
            assert client.wait_for_task(task.task_uid).status == "succeeded"

    await asyncio.to_thread(setup)

    async def ids(flt: object, **extra: object) -> list[str]:
        res = await asyncio.to_thread(lambda: client.index(index).search("", {"filter": flt, **extra}))
        return [h["id"] for h in res["hits"]]

    assert await ids("s = alpha") == ["1"]  # strings compare without regard to case
    assert sorted(await ids('s = "Alpha" OR n >= 10')) == ["1", "3"]
    assert sorted(await ids("NOT s = alpha")) == ["2", "3", "4"]
    assert sorted(await ids("n 2 TO 7")) == ["2", "4"]
    assert sorted(await ids("s IN [alpha, beta]")) == ["1", "2"]
    assert sorted(await ids("s NOT IN [alpha]")) == ["2", "3", "4"]
    assert sorted(await ids("s EXISTS")) == ["1", "2", "4"]
    assert sorted(await ids("n > 1 AND n < 10 OR s = alpha")) == ["1", "2", "4"]  # AND binds tighter
    assert sorted(await ids(["n > 1", ["s = beta", "s = gamma"]])) == ["2", "4"]  # array: AND of ORs
    assert await ids("n >= 1", sort=["n:desc"]) == ["3", "4", "2", "1"]
    for bad, code in (("n > 1 and n < 10", "invalid_search_filter"), ("id = 1", "invalid_search_filter"),
                      ("s = ", "invalid_search_filter")):
        with pytest.raises(MeilisearchApiError) as err:
            await ids(bad)
        assert (err.value.status_code, err.value.code) == (400, code)
    with pytest.raises(MeilisearchApiError) as err:
        await ids(None, sort=["s:asc"])
    assert (err.value.status_code, err.value.code) == (400, "invalid_search_sort")
