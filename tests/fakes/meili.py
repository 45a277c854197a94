"""A local Meilisearch server: the part of the REST API (v1.x) that imgate's backend and the
official Python client use, with Meilisearch's response shapes and error objects, for machines
where the real server cannot run. Live tests run against a real server when MEILI_URL is set.

Implemented, after the API reference:
- ``GET /health``, ``GET /version``;
- ``POST /indexes``, ``GET /indexes/{uid}``, ``DELETE /indexes/{uid}``;
- ``GET|PATCH /indexes/{uid}/settings`` (searchable, displayed, filterable, sortable attributes;
  other known settings are stored as given);
- ``POST /indexes/{uid}/documents`` (add or replace, ``?primaryKey=``), ``POST .../documents/delete``
  (by filter), ``POST .../documents/delete-batch`` (by ids), ``DELETE .../documents``;
- ``POST /indexes/{uid}/search`` with ``q``, ``filter`` (string or array; ``=``, ``!=``, ``>``,
  ``>=``, ``<``, ``<=``, ``TO``, ``IN``, ``NOT IN``, ``EXISTS``, ``AND``, ``OR``, ``NOT``,
  parentheses), ``sort``, ``limit``, ``offset``, ``matchingStrategy`` (``all``; ``last`` and
  ``frequency`` drop query words from the end), ``attributesToRetrieve``;
- ``GET /tasks/{uid}``: writes are asynchronous tasks, processed in order by the server's own
  worker, and go ``enqueued`` → ``processing`` → ``succeeded`` or ``failed`` with an error object;
- API keys: with a master key, a missing ``Authorization`` header is a 401
  ``missing_authorization_header`` and a wrong key a 403 ``invalid_api_key``.

As in Meilisearch, string equality in filters ignores case, only the first 10 query words
count, and the last query word also matches as a prefix. Not implemented: typo tolerance,
proximity ranking (hits that match equally come in ``sort`` order, then insertion order),
facets, highlighting, pagination by page.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from imgate.http import EmbeddedHttpServer

_DOC_ID = re.compile(r"^[A-Za-z0-9_-]{1,511}$")
_WORD = re.compile(r"\w+", re.UNICODE)
_SEARCH_PARAMS = {"q", "offset", "limit", "filter", "sort", "matchingStrategy", "attributesToRetrieve",
                  "attributesToSearchOn", "showRankingScore", "hitsPerPage", "page", "facets",
                  "attributesToHighlight", "attributesToCrop", "cropLength", "highlightPreTag", "highlightPostTag",
                  "showMatchesPosition", "distinct", "rankingScoreThreshold", "locales"}
_SETTINGS = {"searchableAttributes": ["*"], "displayedAttributes": ["*"], "filterableAttributes": [],
             "sortableAttributes": [], "rankingRules": ["words", "typo", "proximity", "attribute", "sort", "exactness"],
             "stopWords": [], "synonyms": {}, "distinctAttribute": None, "typoTolerance": {"enabled": True},
             "pagination": {"maxTotalHits": 1000}, "faceting": {"maxValuesPerFacet": 100},
             "separatorTokens": [], "nonSeparatorTokens": [], "dictionary": [], "proximityPrecision": "byWord",
             "searchCutoffMs": None, "localizedAttributes": None, "facetSearch": True, "prefixSearch": "indexingTime"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error(status: int, code: str, message: str, kind: str = "invalid_request") -> JSONResponse:
    return JSONResponse({"message": message, "code": code, "type": kind,
                         "link": f"https://docs.meilisearch.com/errors#{code}"}, status_code=status)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, kind: str = "invalid_request") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.kind = status, code, message, kind

    def as_object(self) -> dict[str, str]:
        return {"message": self.message, "code": self.code, "type": self.kind,
                "link": f"https://docs.meilisearch.com/errors#{self.code}"}


# ---- filter expressions ------------------------------------------------------------------------

_TOKEN = re.compile(r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<op>!=|>=|<=|=|>|<)|(?P<punct>[()\[\],])|(?P<word>[^\s()\[\],=!<>"']+))""")


def _tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr):
        if expr[pos:].strip() == "":
            break
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise ApiError(400, "invalid_search_filter", f"Was expecting a value but instead got `{expr[pos:]}`.")
        kind = m.lastgroup or ""
        text = m.group(kind)
        if kind == "str":
            text = re.sub(r"\\(.)", r"\1", text[1:-1])
        out.append((kind, text))
        pos = m.end()
    return out


class _Filter:
    """Parses a filter into a predicate over documents, checking attributes are filterable."""

    def __init__(self, expr: str, filterable: list[str]) -> None:
        self._toks = _tokens(expr)
        self._i = 0
        self._filterable = filterable
        self._expr = expr
        self.predicate = self._or()
        if self._i != len(self._toks):
            raise ApiError(400, "invalid_search_filter",
                           f"Found unexpected characters at the end of the filter: `{self._toks[self._i][1]}`.")

    def _peek(self) -> str | None:
        if self._i >= len(self._toks):
            return None
        kind, text = self._toks[self._i]
        # A quoted string is always a value; keywords are upper case only, as in Meilisearch.
        return "\0value" if kind == "str" else text

    def _take(self) -> tuple[str, str]:
        if self._i >= len(self._toks):
            raise ApiError(400, "invalid_search_filter", f"Was expecting a value but the filter ended: `{self._expr}`.")
        tok = self._toks[self._i]
        self._i += 1
        return tok

    def _or(self):
        parts = [self._and()]
        while self._peek() == "OR":
            self._i += 1
            parts.append(self._and())
        return (lambda d: any(p(d) for p in parts)) if len(parts) > 1 else parts[0]

    def _and(self):
        parts = [self._not()]
        while self._peek() == "AND":
            self._i += 1
            parts.append(self._not())
        return (lambda d: all(p(d) for p in parts)) if len(parts) > 1 else parts[0]

    def _not(self):
        if self._peek() == "NOT":
            self._i += 1
            inner = self._not()
            return lambda d: not inner(d)
        if self._peek() == "(":
            self._i += 1
            inner = self._or()
            if self._take()[1] != ")":
                raise ApiError(400, "invalid_search_filter", "Expression `(` is missing its closing `)`.")
            return inner
        return self._condition()

    def _attribute(self) -> str:
        kind, name = self._take()
        if kind not in ("word", "str"):
            raise ApiError(400, "invalid_search_filter", f"Was expecting an attribute but instead got `{name}`.")
        if name not in self._filterable:
            raise ApiError(400, "invalid_search_filter",
                           f"Attribute `{name}` is not filterable. Available filterable attributes are: "
                           f"`{', '.join(sorted(self._filterable))}`.\n1:{len(name) + 1} {self._expr}")
        return name

    def _value(self) -> str:
        kind, text = self._take()
        if kind not in ("word", "str"):
            raise ApiError(400, "invalid_search_filter", f"Was expecting a value but instead got `{text}`.")
        return text

    def _condition(self):
        attr = self._attribute()
        op = self._peek()
        if op == "NOT" and self._i + 1 < len(self._toks) and self._toks[self._i + 1][1] in ("IN", "EXISTS"):
            self._i += 1
            inner = self._condition_rest(attr)
            return lambda d: not inner(d)
        return self._condition_rest(attr)

    def _condition_rest(self, attr: str):
        op = self._peek()
        if op == "EXISTS":
            self._i += 1
            return lambda d: attr in d
        if op == "IN":
            self._i += 1
            if self._take()[1] != "[":
                raise ApiError(400, "invalid_search_filter", "Expected `[` after `IN` keyword.")
            values: list[str] = []
            while self._peek() != "]":
                values.append(self._value())
                if self._peek() == ",":
                    self._i += 1
            self._take()
            return lambda d: any(_equal(d.get(attr), v) for v in values)
        if op in ("=", "!=", ">", ">=", "<", "<="):
            self._i += 1
            value = self._value()
            if op == "=":
                return lambda d: _equal(d.get(attr), value)
            if op == "!=":
                return lambda d: not _equal(d.get(attr), value)
            number = _number(value)
            if number is None:
                return lambda d: False
            compare = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}[op]
            return lambda d: isinstance(d.get(attr), int | float) and compare(float(d[attr]), number)
        low = _number(self._value())
        if self._peek() != "TO":
            raise ApiError(400, "invalid_search_filter",
                           "Was expecting an operation `=`, `!=`, `>=`, `>`, `<=`, `<`, `IN`, `NOT IN`, `TO`, "
                           f"`EXISTS`, `NOT EXISTS`, `IS NULL`, `IS NOT NULL`, `IS EMPTY`, `IS NOT EMPTY`, "
                           f"`_geoRadius`, or `_geoBoundingBox` at `{self._expr}`.")
        self._i += 1
        high = _number(self._value())
        return lambda d: (low is not None and high is not None and isinstance(d.get(attr), int | float)
                          and low <= d[attr] <= high)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _equal(field_value: Any, literal: str) -> bool:
    """Meilisearch compares numbers as numbers and strings without regard to case."""
    if isinstance(field_value, list):
        return any(_equal(v, literal) for v in field_value)
    if isinstance(field_value, bool):
        return str(field_value).lower() == literal.lower()
    if isinstance(field_value, int | float):
        number = _number(literal)
        return number is not None and float(field_value) == number
    if isinstance(field_value, str):
        return _fold(field_value.strip()) == _fold(literal.strip())
    return False


def _fold(text: str) -> str:
    """Meilisearch's normalisation of words and facet values: lower case, no diacritics."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(ch))


def _filter(value: Any, filterable: list[str]):
    """``filter``: a string, or an array whose items are ANDed; an inner array is ORed."""
    if value is None:
        return lambda d: True
    if isinstance(value, str):
        return _Filter(value, filterable).predicate if value.strip() else (lambda d: True)
    if isinstance(value, list):
        parts = []
        for item in value:
            if isinstance(item, list):
                ors = [_Filter(x, filterable).predicate for x in item if isinstance(x, str)]
                parts.append(lambda d, ors=ors: any(p(d) for p in ors))
            elif isinstance(item, str):
                parts.append(_filter(item, filterable))
            else:
                raise ApiError(400, "invalid_search_filter",
                               f"Invalid value type at `.filter`: expected a string or an array, but found: `{item}`")
        return lambda d: all(p(d) for p in parts)
    raise ApiError(400, "invalid_search_filter",
                   f"Invalid value type at `.filter`: expected a string or an array, but found: `{json.dumps(value)}`")


class _AnyAttribute(list):  # type: ignore[type-arg]
    """Every attribute is filterable (for a syntax-only check)."""

    def __contains__(self, item: object) -> bool:
        return True


# ---- the server --------------------------------------------------------------------------------

def _words(value: Any) -> list[str]:
    if isinstance(value, str):
        return _WORD.findall(_fold(value))
    if isinstance(value, list):
        return [w for v in value for w in _words(v)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [str(value)]
    return []


@dataclass
class _Index:
    uid: str
    primary_key: str | None
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    settings: dict[str, Any] = field(default_factory=lambda: json.loads(json.dumps(_SETTINGS)))
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"uid": self.uid, "primaryKey": self.primary_key, "createdAt": self.created_at,
                "updatedAt": self.updated_at}


class FakeMeili:
    """``async with FakeMeili() as meili:`` serves on ``meili.url``. ``await meili.stop()`` and
    ``await meili.start()`` take it down and bring it back on the same port, keeping its data (a
    restarted server keeps its disk)."""

    def __init__(self, master_key: str | None = "test-master-key") -> None:
        self.master_key = master_key
        self.indexes: dict[str, _Index] = {}
        self.tasks: list[dict[str, Any]] = []
        self.searches = 0
        self._ops: dict[int, tuple[str, Any]] = {}
        self._uids = itertools.count(0)
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._http: EmbeddedHttpServer | None = None
        self.port = 0
        self.app = Starlette(routes=[
            Route("/health", self._health, methods=["GET"]),
            Route("/version", self._version, methods=["GET"]),
            Route("/indexes", self._create_index, methods=["POST"]),
            Route("/indexes/{uid}", self._index, methods=["GET", "DELETE"]),
            Route("/indexes/{uid}/settings", self._settings, methods=["GET", "PATCH"]),
            Route("/indexes/{uid}/documents", self._documents, methods=["POST", "DELETE"]),
            Route("/indexes/{uid}/documents/delete", self._delete_by_filter, methods=["POST"]),
            Route("/indexes/{uid}/documents/delete-batch", self._delete_batch, methods=["POST"]),
            Route("/indexes/{uid}/search", self._search, methods=["POST"]),
            Route("/tasks/{uid:int}", self._task, methods=["GET"]),
        ])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        self._worker = asyncio.create_task(self._work(), name="fake-meili.tasks")
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def start(self) -> None:
        self._http = await EmbeddedHttpServer(self.app, "127.0.0.1", self.port).__aenter__()
        self.port = self._http.port

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.__aexit__(None, None, None)
            self._http = None

    def documents(self, index: str) -> dict[str, dict[str, Any]]:
        return self.indexes[index].docs if index in self.indexes else {}

    # -- plumbing

    def _auth(self, request: Request) -> JSONResponse | None:
        if self.master_key is None:
            return None
        header = request.headers.get("authorization", "")
        if not header:
            return _error(401, "missing_authorization_header",
                          "The Authorization header is missing. It must use the bearer authorization method.", "auth")
        if header != f"Bearer {self.master_key}":
            return _error(403, "invalid_api_key", "The provided API key is invalid.", "auth")
        return None

    async def _body(self, request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw) if raw else None
        except json.JSONDecodeError as exc:
            raise ApiError(400, "malformed_payload",
                           f"The json payload provided is malformed. `{exc.msg}`.") from exc

    def _enqueue(self, index_uid: str | None, kind: str, op: tuple[str, Any], details: dict[str, Any]) -> JSONResponse:
        uid = next(self._uids)
        task = {"uid": uid, "batchUid": None, "indexUid": index_uid, "status": "enqueued", "type": kind,
                "canceledBy": None, "details": details, "error": None, "duration": None, "enqueuedAt": _now(),
                "startedAt": None, "finishedAt": None}
        self.tasks.append(task)
        self._ops[uid] = op
        self._wake.set()
        return JSONResponse({"taskUid": uid, "indexUid": index_uid, "status": "enqueued", "type": kind,
                             "enqueuedAt": task["enqueuedAt"]}, status_code=202)

    async def _work(self) -> None:
        """Process tasks in order, as Meilisearch's scheduler does."""
        done = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            while done < len(self.tasks):
                task = self.tasks[done]
                task["status"], task["startedAt"], task["batchUid"] = "processing", _now(), task["uid"]
                await asyncio.sleep(0)  # a poll may see it processing
                try:
                    self._apply(task)
                    task["status"] = "succeeded"
                except ApiError as exc:
                    task["status"], task["error"] = "failed", exc.as_object()
                except Exception as exc:  # noqa: BLE001 - a bug here must fail the task, not stop the queue
                    task["status"] = "failed"
                    task["error"] = ApiError(500, "internal", f"fake: {exc!r}", "internal").as_object()
                task["finishedAt"] = _now()
                task["duration"] = "PT0.001S"
                self._ops.pop(task["uid"], None)
                done += 1

    def _apply(self, task: dict[str, Any]) -> None:
        name, arg = self._ops[task["uid"]]
        uid = task["indexUid"]
        if name == "create":
            if uid in self.indexes:
                raise ApiError(409, "index_already_exists", f"Index `{uid}` already exists.")
            self.indexes[uid] = _Index(uid, arg)
            return
        if name == "delete_index":
            if self.indexes.pop(uid, None) is None:
                raise ApiError(404, "index_not_found", f"Index `{uid}` not found.")
            return
        index = self.indexes.get(uid)
        if index is None:
            if name not in ("add", "settings"):
                raise ApiError(404, "index_not_found", f"Index `{uid}` not found.")
            index = self.indexes[uid] = _Index(uid, None)  # both create a missing index
        index.updated_at = _now()
        if name == "settings":  # null resets a setting to its default
            index.settings.update({k: (json.loads(json.dumps(_SETTINGS[k])) if v is None else v)
                                   for k, v in arg.items()})
        elif name == "add":
            docs, primary_key = arg
            key = index.primary_key or primary_key
            if key is None:
                candidates = [k for k in (docs[0] if docs else {}) if k.lower().endswith("id")]
                if len(candidates) != 1:
                    raise ApiError(400, "index_primary_key_no_candidate_found",
                                   "The primary key inference failed as the engine did not find any field ending "
                                   "with `id` in its name. Please specify the primary key manually using the "
                                   "`primaryKey` query parameter.")
                key = candidates[0]
            for doc in docs:
                if key not in doc:
                    raise ApiError(400, "missing_document_id",
                                   f"Document doesn't have a `{key}` attribute: `{json.dumps(doc)}`.")
                value = doc[key]
                if not ((isinstance(value, int) and not isinstance(value, bool)) or
                        (isinstance(value, str) and _DOC_ID.match(value))):
                    raise ApiError(400, "invalid_document_id",
                                   f"Document identifier `{json.dumps(value)}` is invalid. A document identifier can "
                                   "be of type integer or string, only composed of alphanumeric characters "
                                   "(a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes.")
            index.primary_key = key
            for doc in docs:
                index.docs[str(doc[key])] = doc
            task["details"]["indexedDocuments"] = len(docs)
        elif name == "delete_ids":
            before = len(index.docs)
            for i in arg:
                index.docs.pop(str(i), None)
            task["details"]["deletedDocuments"] = before - len(index.docs)
        elif name == "delete_filter":
            try:
                keep = _filter(arg, self._filterable(index))
            except ApiError as exc:
                raise ApiError(400, "invalid_document_filter", exc.message) from exc
            gone = [k for k, d in index.docs.items() if keep(d)]
            for k in gone:
                del index.docs[k]
            task["details"]["deletedDocuments"] = len(gone)
        elif name == "clear":
            task["details"]["deletedDocuments"] = len(index.docs)
            index.docs.clear()

    @staticmethod
    def _filterable(index: _Index) -> list[str]:
        return [a for a in index.settings["filterableAttributes"] if isinstance(a, str)]

    async def _handle(self, request: Request, fn) -> Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        try:
            return await fn()
        except ApiError as exc:
            return _error(exc.status, exc.code, exc.message, exc.kind)

    # -- routes

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "available"})

    async def _version(self, request: Request) -> Response:
        async def run() -> Response:
            return JSONResponse({"commitSha": "fake", "commitDate": "2026-01-01T00:00:00Z", "pkgVersion": "1.12.0"})
        return await self._handle(request, run)

    async def _create_index(self, request: Request) -> Response:
        async def run() -> Response:
            body = await self._body(request)
            if not isinstance(body, dict) or not isinstance(body.get("uid"), str):
                raise ApiError(400, "missing_index_uid", "Missing field `uid`")
            if not _DOC_ID.match(body["uid"]) or len(body["uid"]) > 400:
                raise ApiError(400, "invalid_index_uid", f"`{body['uid']}` is not a valid index uid.")
            return self._enqueue(body["uid"], "indexCreation", ("create", body.get("primaryKey")),
                                 {"primaryKey": body.get("primaryKey")})
        return await self._handle(request, run)

    def _existing(self, uid: str) -> _Index:
        if uid not in self.indexes:
            raise ApiError(404, "index_not_found", f"Index `{uid}` not found.")
        return self.indexes[uid]

    async def _index(self, request: Request) -> Response:
        uid = request.path_params["uid"]

        async def run() -> Response:
            if request.method == "GET":
                return JSONResponse(self._existing(uid).describe())
            return self._enqueue(uid, "indexDeletion", ("delete_index", None), {"deletedDocuments": None})
        return await self._handle(request, run)

    async def _settings(self, request: Request) -> Response:
        uid = request.path_params["uid"]

        async def run() -> Response:
            if request.method == "GET":
                return JSONResponse(self._existing(uid).settings)
            body = await self._body(request)
            if not isinstance(body, dict):
                raise ApiError(400, "bad_request", "Invalid value type: expected an object")
            for key, value in body.items():
                if key not in _SETTINGS:
                    raise ApiError(400, "bad_request", f"Unknown field `{key}`: expected one of "
                                   + ", ".join(f"`{k}`" for k in _SETTINGS))
                if key.endswith("Attributes") and value is not None and not isinstance(value, list):
                    code = "invalid_settings_" + re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
                    raise ApiError(400, code, f"Invalid value type at `.{key}`: expected an array")
            return self._enqueue(uid, "settingsUpdate", ("settings", body), dict(body))
        return await self._handle(request, run)

    async def _documents(self, request: Request) -> Response:
        uid = request.path_params["uid"]

        async def run() -> Response:
            if request.method == "DELETE":
                return self._enqueue(uid, "documentDeletion", ("clear", None),
                                     {"providedIds": 0, "deletedDocuments": None, "originalFilter": None})
            body = await self._body(request)
            docs = [body] if isinstance(body, dict) else body
            if not isinstance(docs, list) or not all(isinstance(d, dict) for d in docs):
                raise ApiError(400, "malformed_payload", "The json payload provided is malformed. "
                               "`Couldn't serialize document value: data are neither an object nor a list of objects`.")
            primary_key = request.query_params.get("primaryKey")
            return self._enqueue(uid, "documentAdditionOrUpdate", ("add", (docs, primary_key)),
                                 {"receivedDocuments": len(docs), "indexedDocuments": None})
        return await self._handle(request, run)

    async def _delete_batch(self, request: Request) -> Response:
        uid = request.path_params["uid"]

        async def run() -> Response:
            body = await self._body(request)
            if not isinstance(body, list):
                raise ApiError(400, "bad_request", "Invalid value type: expected an array")
            return self._enqueue(uid, "documentDeletion", ("delete_ids", body),
                                 {"providedIds": len(body), "deletedDocuments": None, "originalFilter": None})
        return await self._handle(request, run)

    async def _delete_by_filter(self, request: Request) -> Response:
        uid = request.path_params["uid"]

        async def run() -> Response:
            body = await self._body(request)
            if not isinstance(body, dict) or "filter" not in body:
                raise ApiError(400, "missing_document_filter", "Missing field `filter`")
            try:  # syntax is checked at once; attributes when the task runs
                _filter(body["filter"], _AnyAttribute())
            except ApiError as exc:
                raise ApiError(400, "invalid_document_filter", exc.message) from exc
            return self._enqueue(uid, "documentDeletion", ("delete_filter", body["filter"]),
                                 {"providedIds": 0, "deletedDocuments": None,
                                  "originalFilter": json.dumps(body["filter"])})
        return await self._handle(request, run)

    async def _task(self, request: Request) -> Response:
        uid = request.path_params["uid"]

        async def run() -> Response:
            if not 0 <= uid < len(self.tasks):
                raise ApiError(404, "task_not_found", f"Task `{uid}` not found.")
            return JSONResponse(self.tasks[uid])
        return await self._handle(request, run)

    async def _search(self, request: Request) -> Response:
        uid = request.path_params["uid"]

        async def run() -> Response:
            index = self._existing(uid)
            body = await self._body(request) or {}
            if not isinstance(body, dict):
                raise ApiError(400, "bad_request", "Invalid value type: expected an object")
            for key in body:
                if key not in _SEARCH_PARAMS:
                    raise ApiError(400, "bad_request", f"Unknown field `{key}`: expected one of "
                                   + ", ".join(f"`{k}`" for k in sorted(_SEARCH_PARAMS)))
            q = body.get("q") or ""
            if not isinstance(q, str):
                raise ApiError(400, "invalid_search_q", f"Invalid value type at `.q`: expected a string, but found `{q}`")
            limit, offset = body.get("limit", 20), body.get("offset", 0)
            for name, value in (("limit", limit), ("offset", offset)):
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ApiError(400, f"invalid_search_{name}",
                                   f"Invalid value type at `.{name}`: expected a positive integer, but found `{value}`")
            strategy = body.get("matchingStrategy", "last")
            if strategy not in ("last", "all", "frequency"):
                raise ApiError(400, "invalid_search_matching_strategy",
                               f"Unknown value `{strategy}` at `.matchingStrategy`: expected one of `last`, `all`, "
                               "`frequency`.")
            keep = _filter(body.get("filter"), self._filterable(index))
            sort = self._sort(index, body.get("sort"))
            self.searches += 1
            hits = self._match(index, _words(q)[:10], prefix_last=not q.endswith(" "), strategy=strategy, keep=keep)
            for attr, desc in reversed(sort):  # documents without the field come last either way
                present = [d for d in hits if d.get(attr) is not None]
                present.sort(key=lambda d, a=attr: d[a], reverse=desc)
                hits = present + [d for d in hits if d.get(attr) is None]
            hits.sort(key=lambda d: -d["_words"])
            total = len(hits)
            page = hits[offset:offset + limit]
            return JSONResponse({"hits": [self._display(index, d, body.get("attributesToRetrieve")) for d in page],
                                 "query": q, "processingTimeMs": 0, "limit": limit, "offset": offset,
                                 "estimatedTotalHits": total})
        return await self._handle(request, run)

    @staticmethod
    def _sort(index: _Index, sort: Any) -> list[tuple[str, bool]]:
        if sort is None:
            return []
        if not isinstance(sort, list) or not all(isinstance(s, str) for s in sort):
            raise ApiError(400, "invalid_search_sort", "Invalid value type at `.sort`: expected an array")
        out = []
        for item in sort:
            attr, _, direction = item.rpartition(":")
            if direction not in ("asc", "desc") or not attr:
                raise ApiError(400, "invalid_search_sort",
                               f"Invalid syntax for the sort parameter: expected expression ending by `:asc` or "
                               f"`:desc`, found `{item}`.")
            if attr not in index.settings["sortableAttributes"]:
                raise ApiError(400, "invalid_search_sort",
                               f"Attribute `{attr}` is not sortable. Available sortable attributes are: "
                               f"`{', '.join(index.settings['sortableAttributes'])}`.")
            out.append((attr, direction == "desc"))
        return out

    @staticmethod
    def _match(index: _Index, words: list[str], *, prefix_last: bool, strategy: str, keep) -> list[dict[str, Any]]:
        searchable = index.settings["searchableAttributes"]
        out = []
        for doc in index.docs.values():
            if not keep(doc):
                continue
            attrs = doc.keys() if searchable == ["*"] else [a for a in searchable if a in doc]
            tokens = {t for a in attrs for t in _words(doc[a])}

            last = len(words) - 1
            matched = [w in tokens or (prefix_last and i == last and any(t.startswith(w) for t in tokens))
                       for i, w in enumerate(words)]
            if strategy == "all":
                count = len(words) if all(matched) else -1
            else:  # last / frequency: words are dropped from the end until one matches
                count = next((n for n in range(len(words), 0, -1) if all(matched[:n])), 0 if not words else -1)
            if count >= 0:
                out.append({**doc, "_words": count})
        return out

    @staticmethod
    def _display(index: _Index, doc: dict[str, Any], retrieve: Any) -> dict[str, Any]:
        shown = index.settings["displayedAttributes"]
        keys = [k for k in doc if k != "_words" and (shown == ["*"] or k in shown)]
        if isinstance(retrieve, list) and retrieve != ["*"]:
            keys = [k for k in keys if k in retrieve]
        return {k: doc[k] for k in keys}
