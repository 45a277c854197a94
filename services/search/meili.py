"""The Meilisearch backend, through the official ``meilisearch`` client.

One index; a document per text message: ``id, conv, seq, from, ts, text`` (and ``thread`` for a
thread reply) plus ``terms``, the
same CJK-aware terms the embedded engine indexes (services.search.terms), with each CJK term
written as an opaque run of ASCII letters, so that Meilisearch's own segmenters (jieba for
Chinese, lindera for Japanese) cannot split a character pair one way in a document and another
way in a query. Only ``terms`` is searchable and typo tolerance is off, so both backends match
the same way: ``世界`` finds ``你好世界``, one CJK character matches, and every term must match
(``matchingStrategy: all``). ``conv``, ``from``, ``seq`` and ``ts`` are filterable (the
visibility windows are a filter on ``conv`` and ``seq``; ``id`` is filterable for deletes);
``ts`` is sortable and breaks ties after relevance. Meilisearch still treats the last query word
as a prefix and reads only the first 10 query words; SearchService checks every hit against all
the query's terms, so neither widens the results.

The client is synchronous (requests): every call runs in a worker thread. Writes wait for their
Meilisearch task to succeed before they return, so the indexer moves its queue offset only past
documents the index really holds; an outage raises ``SearchUnavailable`` and the indexer retries.
Searches use their own client, so they never queue behind a large indexing batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import meilisearch
from meilisearch.errors import MeilisearchApiError, MeilisearchCommunicationError, MeilisearchTimeoutError

from services.search.base import Doc, SearchUnavailable, Window
from services.search.terms import opaque_cjk, opaque_terms

log = logging.getLogger(__name__)

T = TypeVar("T")

INDEX_SETTINGS: dict[str, Any] = {
    "searchableAttributes": ["terms"],
    "displayedAttributes": ["id", "conv", "seq", "from", "ts", "text", "thread"],
    "filterableAttributes": ["conv", "from", "id", "seq", "ts"],
    "sortableAttributes": ["ts"],
    "typoTolerance": {"enabled": False},
}
_RETRIEVE = INDEX_SETTINGS["displayedAttributes"]


def quote(value: str) -> str:
    """A filter string literal (Meilisearch escapes ``"`` and ``\\`` with a backslash)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def visibility_filter(windows: list[Window]) -> str:
    """The windows as one filter: whole conversations in an ``IN`` list, the others as ranges."""
    whole = [w.conv for w in windows if w.whole]
    parts = [f"conv IN [{', '.join(quote(c) for c in whole)}]"] if whole else []
    for w in (w for w in windows if not w.whole):
        part = f"conv = {quote(w.conv)} AND seq > {w.after}"
        if w.upto is not None:
            part += f" AND seq <= {w.upto}"
        parts.append(f"({part})")
    return " OR ".join(parts)


class TaskFailed(Exception):
    """A Meilisearch task ended ``failed`` or ``canceled``."""


class MeiliSearch:
    def __init__(self, url: str, api_key: str | None, index: str, *, timeout_s: float = 5.0,
                 task_timeout_s: float = 60.0) -> None:
        # meilisearch types its timeout as int; it hands it to requests, which takes seconds as a float.
        self._writer = meilisearch.Client(url, api_key, timeout=timeout_s)  # type: ignore[arg-type]
        self._reader = meilisearch.Client(url, api_key, timeout=timeout_s)  # type: ignore[arg-type]
        self._uid = index
        self._task_timeout_ms = int(task_timeout_s * 1000)
        self._write_lock = asyncio.Lock()  # the client's HTTP object is not thread-safe
        self._ready = False
        self.url = url

    async def _call(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(fn)
        except (MeilisearchCommunicationError, MeilisearchTimeoutError) as exc:
            msg = f"search is unavailable: Meilisearch at {self.url} did not answer ({type(exc).__name__})"
            raise SearchUnavailable(msg) from exc
        except MeilisearchApiError as exc:
            if exc.code == "index_not_found":
                self._ready = False  # deleted behind our back: the next write creates it again
            detail = exc.message.split(". Hint:")[0]  # the client appends a version hint
            msg = f"search is unavailable: Meilisearch answered {exc.status_code} {exc.code}: {detail}"
            raise SearchUnavailable(msg) from exc
        except TaskFailed as exc:
            msg = f"search is unavailable: {exc}"
            raise SearchUnavailable(msg) from exc

    def _wait(self, task_uid: int) -> None:
        task = self._writer.wait_for_task(task_uid, timeout_in_ms=self._task_timeout_ms, interval_in_ms=20)
        if task.status != "succeeded":
            error = task.error or {}
            msg = (f"Meilisearch task {task_uid} ({task.type}) {task.status}: "
                   f"{error.get('code')}: {error.get('message')}")
            raise TaskFailed(msg)

    async def _write(self, fn: Callable[[], Any]) -> None:
        async with self._write_lock:
            await self._call(fn)

    async def start(self) -> None:
        """Create the index (primary key ``id``) and apply its settings; idempotent."""
        def start() -> None:
            task = self._writer.create_index(self._uid, {"primaryKey": "id"})
            done = self._writer.wait_for_task(task.task_uid, timeout_in_ms=self._task_timeout_ms, interval_in_ms=20)
            if done.status != "succeeded" and (done.error or {}).get("code") != "index_already_exists":
                msg = f"index creation {done.status}: {done.error}"
                raise TaskFailed(msg)
            self._wait(self._writer.index(self._uid).update_settings(INDEX_SETTINGS).task_uid)
        if self._ready:
            return
        async with self._write_lock:
            if self._ready:
                return
            await self._call(start)
            self._ready = True
            log.info("search: Meilisearch index %r ready at %s", self._uid, self.url)

    async def add(self, docs: list[Doc]) -> None:
        if not docs:
            return
        await self.start()
        body = [{"id": d.id, "conv": d.conv, "seq": d.seq, "from": d.sender, "ts": d.ts, "text": d.text,
                 "terms": opaque_terms(d.text)} | ({"thread": d.thread} if d.thread is not None else {}) for d in docs]
        await self._write(lambda: self._wait(self._writer.index(self._uid).add_documents(body, "id").task_uid))

    async def remove(self, ids: list[str]) -> None:
        if ids:
            await self.start()
            expr = f"id IN [{', '.join(quote(i) for i in ids)}]"
            index = self._writer.index(self._uid)
            await self._write(lambda: self._wait(index.delete_documents(filter=expr).task_uid))

    async def clear(self) -> None:
        await self.start()
        await self._write(lambda: self._wait(self._writer.index(self._uid).delete_all_documents().task_uid))

    async def search(self, terms: list[str], windows: list[Window], *, sender: str | None, since: int | None,
                     until: int | None, limit: int) -> list[Doc]:
        if not windows or not terms:
            return []
        filters = [visibility_filter(windows)]
        if sender is not None:
            filters.append(f"from = {quote(sender)}")
        if since is not None:
            filters.append(f"ts >= {since}")
        if until is not None:
            filters.append(f"ts < {until}")
        params = {"filter": filters, "limit": limit, "matchingStrategy": "all", "sort": ["ts:desc"],
                  "attributesToRetrieve": _RETRIEVE}
        q = " ".join(opaque_cjk(t) for t in terms)
        await self.start()  # once per process: the index and its settings exist before the first query
        result = await self._call(lambda: self._reader.index(self._uid).search(q, params))
        return [Doc(h["id"], h["conv"], h["seq"], h["from"], h["ts"], h["text"], h.get("thread"))
                for h in result["hits"]]

    def close(self) -> None:
        pass  # requests opens a connection per call

