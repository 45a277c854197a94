"""The admin HTTP API, for the app's own backend: users, device tokens, sessions, health, metrics.

FastAPI on uvicorn, run inside imgate's event loop: pydantic models give request validation
with the failing field named, and the OpenAPI document comes from the same code (checked in as
``docs/admin-openapi.json``). Every route except ``/healthz`` needs ``Authorization: Bearer
<admin.secret>`` (compared in constant time; a wrong or missing secret is a 401 whose body says only ``unauthorized``).
Errors are ``{"error": {"code", "message", "field"?}}``, their HTTP status from the one table
(``services.errors.WIRE``): a request that fails validation is ``bad_request`` (400) like any
other, its message naming each failing field and ``field`` the first.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import mimetypes
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as Path_
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from bridge.wire import AVATAR_PATTERN
from broker.external_auth import ExternalAuth
from services.errors import WIRE, ErrorCode, ImError
from services.ids import DEVICE_RE, UID_RE
from services.users.service import MAX_PAGE

_HTTP_STATUS = {code: wire.http for code, wire in WIRE.items()}  # the one table: services.errors.WIRE
MAX_INT = 1 << 53  # a query's id, seq or time at most (past a database's integers: a 500, not an answer)


@dataclass
class AdminContext:
    """What the API needs from the running platform (built by the composition root)."""

    users: Any  # UserService
    kick: Callable[[str, str | None, str], Awaitable[int]]  # (uid, device, reason) -> count
    health: Callable[[], Awaitable[dict[str, bool]]]
    metrics: Callable[[], Awaitable[bytes]]  # the Prometheus text exposition (imgate.metrics.Metrics.render)
    notify: Callable[[dict[str, Any], list[str] | None], Awaitable[tuple[int, int]]]
    external_auth: ExternalAuth  # what RabbitMQ's and EMQX's HTTP auth ask (/auth/...)
    blocks: Any = None  # BlockService (the block list endpoints)
    profiles: Any = None  # ProfileService (the profile endpoints)
    attachments: Any = None  # AttachmentService (the upload endpoints)
    presence: Any = None  # PresenceService (a user's devices, online or not)
    # (uid or None, limit) -> the live connections (imgate.app.App.connections)
    connections: Callable[[str | None, int], Awaitable[dict[str, Any]]] | None = None
    stats: Callable[[], Awaitable[dict[str, Any]]] | None = None  # this process's metrics (App.stats)
    audit: Any = None  # AuditService: every change through this API recorded (imgate/audit.py); GET /v1/audit
    trusted_proxies: list[str] = field(default_factory=list)  # admin.trusted_proxies (the audit's source)
    groups: Any = None  # GroupService (the group endpoints)
    # A group change made here, to its online members (imgate run: through the bridge; imgate api:
    # none, the member event is stored and each device gets it when it syncs).
    group_changed: Callable[[Any], Awaitable[None]] | None = None
    bots: Any = None  # imgate.bots.BotActions (sending and reading as a bot)
    privacy: Any = None  # PrivacyService (export and erasure, docs/privacy.md)
    exports_dir: Path | None = None  # where an export is written before it is streamed (data_dir/exports)


_FORM_MAX = 8192  # bytes of an auth backend's form: a token, a client id, a routing key


async def _small_body(request: Request) -> bytes | None:
    """The request's body, or None when it is larger than _FORM_MAX."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _FORM_MAX:
            return None
    return body


async def _form(request: Request) -> dict[str, str] | None:
    """A small ``application/x-www-form-urlencoded`` body (None when too large or undecodable)."""
    body = await _small_body(request)
    if body is None:
        return None
    try:
        return {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True, max_num_fields=32).items()}
    except (UnicodeDecodeError, ValueError):
        return None


async def _json_fields(request: Request) -> dict[str, str] | None:
    """A small JSON object's string fields (None when too large, not JSON, or not an object)."""
    body = await _small_body(request)
    if body is None:
        return None
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: '[[[[…' nested deep
        return None
    if not isinstance(value, dict):
        return None
    return {k: v for k, v in value.items() if isinstance(v, str)}


def _answer(allowed: bool) -> PlainTextResponse:
    return PlainTextResponse("allow" if allowed else "deny")


class _SecretFirst:
    """Refuses (401) a request to a guarded path without the admin secret on its headers, before
    anything reads its body: FastAPI reads and parses a body before it runs the route's
    dependencies, so anyone who reaches the port could otherwise make the server hold a body as
    large as they send. The routes keep their own check (``authorized``); ``/healthz``, the
    OpenAPI document, the console's files and the external brokers' auth backends are open."""

    _OPEN = ("/healthz", "/openapi.json")
    _OPEN_PREFIXES = ("/console", "/auth/")

    def __init__(self, app: Callable[..., Awaitable[None]], secret: str) -> None:
        self.app = app
        self.secret = secret.encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path not in self._OPEN and not path.startswith(self._OPEN_PREFIXES):
            value = next((v for k, v in scope.get("headers", []) if k == b"authorization"), b"")
            scheme, _, given = value.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(given, self.secret):
                response = JSONResponse({"error": {"code": "unauthorized"}}, status_code=401,
                                        headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class NewUser(_Body):
    uid: str = Field(pattern=UID_RE.pattern, description="1-64 characters of A-Z a-z 0-9 _ -")
    name: str = Field("", max_length=128)


class User(BaseModel):
    uid: str
    name: str
    disabled: bool
    created_at: int
    kind: Literal["user", "bot"] = Field(description="a bot is created by POST /v1/bots (docs/bots.md)")


class UserPage(BaseModel):
    items: list[User]
    next: str | None = Field(description="pass it as `after` for the next page; null: this is the last")


class DeviceOut(BaseModel):
    device: str
    platform: str
    online: bool = Field(description="the last presence stored for the device says online")
    last_seen: int | None = Field(description="when its presence last changed (ms); null: never connected")
    tokens: int = Field(description="its tokens neither revoked nor expired")
    last_used_at: int | None = Field(description="the last login with one of its tokens, to the minute")


class DeviceList(BaseModel):
    items: list[DeviceOut]


class ConnectionOut(BaseModel):
    client_id: str
    uid: str | None = Field(description="null: a service account's connection (`account`)")
    device: str | None
    account: str | None = None
    platform: str = ""
    protocol: str | None = Field(None, description="MQTT 3.1.1 or 5 (source broker)")
    transport: str | None = Field(None, description="tcp, tls, ws or wss (source broker)")
    remote: str | None = Field(None, description="the client's address and port (source broker)")
    since: int = Field(description="broker: when it logged in (ms); presence: when it was seen coming online")


class ConnectionPage(BaseModel):
    source: Literal["broker", "presence"] = Field(
        description="broker: the embedded broker's live sessions; presence: no broker in this process "
                    "(imgate api, an external broker), the devices the presence table says are online")
    total: int = Field(description="all the connections that match, of which `items` are the first by client id")
    items: list[ConnectionOut]


class SendAck(BaseModel):
    le: list[float] = Field(description="the buckets' upper bounds in seconds (+Inf left out)")
    counts: list[float] = Field(description="cumulative counts of the sends acked within each bound")
    count: float = Field(description="all the sends acked (the +Inf bucket)")
    sum: float = Field(description="their latencies, summed, in seconds")


class Stats(BaseModel):
    ts: int = Field(description="when the snapshot was taken (ms)")
    role: str = Field(description="this process: all (imgate run), api, bridge, worker")
    metrics: dict[str, float] = Field(description="/metrics' counters (`*_total`, since the start) and gauges, "
                                                  "without the `imgate_` prefix")
    send_ack: SendAck = Field(description="the send-ack latency histogram (imgate_send_ack_seconds)")


class NewToken(_Body):
    device: str = Field(pattern=DEVICE_RE.pattern, description="1-32 characters of A-Z a-z 0-9 _ -")
    platform: str = Field("", max_length=32, description="e.g. android, ios, web, desktop")
    ttl_s: int | None = Field(None, gt=0, description="lifetime in seconds; none: no expiry")
    encoding: Literal["json", "cbor", "msgpack"] = Field(
        "json", description="the device's payload encoding (protocol \"Encodings\")")


class IssuedToken(BaseModel):
    token: str = Field(description="shown once; only its hash is stored")
    token_id: int
    uid: str
    device: str
    platform: str
    expires_at: int | None
    encoding: str


class Token(BaseModel):
    id: int
    device: str
    platform: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None
    last_used_at: int | None = Field(description="the last login with it, to the minute; null: never used")
    encoding: str


class Revoke(_Body):
    device: str | None = Field(None, pattern=DEVICE_RE.pattern, description="one device; none: all")


class NewNotification(_Body):
    body: dict[str, Any] = Field(description="the notification, delivered as is in 'body'")
    uids: list[str] | None = Field(None, max_length=100_000, description="the users; omit with everyone=true")
    everyone: bool = False


class NotificationResult(BaseModel):
    users: int = Field(description="users it was stored for")
    devices_now: int = Field(description="devices online that got it at once; the others get it on reconnect")


class Count(BaseModel):
    count: int


class BlockTarget(BaseModel):
    uid: str = Field(pattern=UID_RE.pattern)


class BlockList(BaseModel):
    blocked: list[str]


class UploadOut(BaseModel):
    key: str
    owner: str
    name: str
    mime: str
    size: int
    sha256: str
    created_at: int
    used: bool  # a message or avatar has referred to it


class ProfileOut(BaseModel):
    uid: str
    name: str
    avatar: str
    status: str
    updated_at: int
    bot: bool = Field(False, description="the user is a bot")


class ProfileIn(BaseModel):
    name: str | None = Field(None, max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")
    avatar: str | None = Field(None, max_length=512, pattern=AVATAR_PATTERN)
    status: str | None = Field(None, max_length=140, pattern=r"^[^\x00-\x1f\x7f]*$")


class ErasureOut(BaseModel):
    uid: str
    erased_at: int = Field(description="when the account was first erased (ms)")
    messages: int = Field(description="sent messages replaced by tombstones by this run (privacy.erase_messages)")
    groups_left: int
    uploads_deleted: int = Field(description="the user's uploads deleted from the object store (in all)")
    pushes_dropped: int = Field(description="pushes not yet sent that were dropped")
    scheduled_cancelled: int = Field(description="pending scheduled sends deleted")


class Health(BaseModel):
    ok: bool
    checks: dict[str, bool]


class ErrorDetail(BaseModel):
    code: str = Field(description="services.errors.ErrorCode: bad_request, not_found, conflict, ...")
    message: str | None = Field(None, description="for a person; a bad request's names each failing field")
    field: str | None = Field(None, description="the (first) failing field of a bad request, e.g. `device`, "
                                                "`limit`, or `body` when there is none")
    reason: str | None = Field(None, description="`refused`: the operator's reason code (its before_send callback)")


class Error(BaseModel):
    error: ErrorDetail


class AuditEntryOut(BaseModel):
    id: int = Field(description="the entry's place in the log; pass the last one's as `before` for older entries")
    ts: int = Field(description="ms since the epoch")
    actor: str = Field(description="X-Imgate-Actor, else `admin`; `cli:{user}@{host}`; `signal`; `imgate`")
    action: str = Field(description="e.g. user.create, token.revoke, group.add, settings.reload, callbacks.config")
    target: str = Field(description="the uid, conversation or file key it is about (empty: none)")
    detail: dict[str, Any] = Field(description="what the change was (never a secret)")
    source: str = Field(description="the client's address (`cli`, `signal`, `start-up` for the others)")
    status: int | None = Field(description="the HTTP status answered (a refused attempt too); null: not HTTP")


class AuditPageOut(BaseModel):
    items: list[AuditEntryOut]
    next: int | None = Field(description="pass it as `before` for the next (older) page; null: this is the last")


class GroupMember(BaseModel):
    uid: str
    role: str = Field(description="owner, admin or member")


class GroupOut(BaseModel):
    gid: str
    conv: str
    name: str
    owner: str | None
    members: list[GroupMember]
    mention_all: str
    pin: str


class GroupSummaryOut(BaseModel):
    gid: str
    conv: str
    name: str
    owner: str | None
    members: int = Field(description="current members")


class GroupPage(BaseModel):
    items: list[GroupSummaryOut]
    next: str | None = Field(description="pass it as `after` for the next page; null: this is the last")


class NewGroup(_Body):
    owner: str = Field(pattern=UID_RE.pattern, description="the group's owner (the member event's sender)")
    name: str = Field(min_length=1, max_length=128)
    members: list[str] = Field(default_factory=list, max_length=1000, description="uids besides the owner")


class NewMembers(_Body):
    uids: list[str] = Field(min_length=1, max_length=1000)


class NewRole(_Body):
    role: Literal["admin", "member"]


class GroupChangeOut(BaseModel):
    gid: str
    conv: str
    seq: int = Field(description="the member event's seq in the conversation")
    members: list[str] = Field(description="the members after the change")


def _field_errors(exc: RequestValidationError) -> tuple[str, str]:
    """(the message naming every failing field, the first field's name) of a validation error.
    A field is named without where it was (``device``, not ``body.device``); the whole body
    missing or not JSON is ``body``."""
    names, parts = [], []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":  # its loc is the position, not a field
            loc, msg = ["body"], f"not valid JSON ({err.get('ctx', {}).get('error', msg)})"
        elif len(loc) > 1 and loc[0] in ("body", "path", "query", "header", "cookie"):
            loc = loc[1:]  # where it was, not what it was
        name = ".".join(loc) or "body"
        names.append(name)
        parts.append(f"{name}: {msg}")
    return "; ".join(parts) or "invalid request", names[0] if names else "body"


def _documented_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """FastAPI documents a validation error as 422 with its own body; imgate answers 400 with
    ``Error`` (the table's bad_request), and 401 to a route behind the secret without it."""
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for operations in schema.get("paths", {}).values():
        for op in operations.values():
            responses = op.setdefault("responses", {})
            if responses.pop("422", None) is not None:
                responses["400"] = {"description": "Bad request: the message names each failing field", **ref}
            if op.get("security"):
                responses["401"] = {"description": "No or a wrong admin secret", **ref}
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    error = Error.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(error.pop("$defs", {}))
    components["Error"] = error
    return schema


def _error(status: int, code: str, message: str, field: str | None = None, reason: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    if reason is not None:
        body["reason"] = reason
    return JSONResponse({"error": body}, status_code=status)


def build_admin_app(ctx: AdminContext, secret: str) -> FastAPI:
    app = FastAPI(title="imgate admin API", version="1", openapi_url="/openapi.json", docs_url=None,
                  redoc_url=None)
    bearer = HTTPBearer(auto_error=False)

    async def authorized(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:  # noqa: B008
        given = credentials.credentials.encode() if credentials is not None else b""
        if not hmac.compare_digest(given, secret.encode()):
            raise StarletteHTTPException(401)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 401:
            return JSONResponse({"error": {"code": "unauthorized"}}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        return _error(exc.status_code, "not_found" if exc.status_code == 404 else "bad_request", str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, field = _field_errors(exc)
        return _error(_HTTP_STATUS[ErrorCode.BAD_REQUEST], ErrorCode.BAD_REQUEST.value, message, field)

    @app.exception_handler(ImError)
    async def _service(_: Request, exc: ImError) -> JSONResponse:
        return _error(_HTTP_STATUS[exc.code], exc.code.value, exc.message, reason=exc.reason)

    openapi = app.openapi

    def documented() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _documented_errors(openapi())
        return app.openapi_schema

    app.openapi = documented  # type: ignore[method-assign]
    guarded = [Depends(authorized)]

    @app.get("/v1/users", response_model=UserPage, dependencies=guarded, tags=["users"])
    async def list_users(
        disabled: bool | None = Query(None, description="only the disabled (true) or the enabled (false) users"),
        after: str | None = Query(None, pattern=UID_RE.pattern,
                                  description="the previous page's `next`: the users after this uid"),
        limit: int = Query(100, ge=1, le=MAX_PAGE, description=f"users per page, 1-{MAX_PAGE}"),
        prefix: str | None = Query(None, pattern=UID_RE.pattern,
                                   description="only the uids starting with this, in any case"),
        kind: Literal["user", "bot"] | None = Query(None, description="only the users, or only the bots"),
    ) -> UserPage:
        """Users in uid order, a page at a time: follow `next` (as `after`) until it is null."""
        page = await ctx.users.list_users(disabled=disabled, after=after, limit=limit, prefix=prefix, kind=kind)
        return UserPage(items=[User(**asdict(u)) for u in page.items], next=page.next)

    @app.post("/v1/users", status_code=201, response_model=User, dependencies=guarded, tags=["users"])
    async def create_user(body: NewUser) -> User:
        return User(**asdict(await ctx.users.add_user(body.uid, body.name)))

    @app.get("/v1/users/{uid}", response_model=User, dependencies=guarded, tags=["users"])
    async def get_user(uid: str) -> User:
        return User(**asdict(await ctx.users.get_user(uid)))

    @app.post("/v1/users/{uid}/disable", response_model=User, dependencies=guarded, tags=["users"])
    async def disable_user(uid: str) -> User:
        """Disable the user; every live connection of theirs is dropped."""
        await ctx.users.disable_user(uid)
        await ctx.kick(uid, None, "user disabled")
        return User(**asdict(await ctx.users.get_user(uid)))

    @app.post("/v1/users/{uid}/enable", response_model=User, dependencies=guarded, tags=["users"])
    async def enable_user(uid: str) -> User:
        """Enable a disabled user again: their tokens that were not revoked work again."""
        await ctx.users.enable_user(uid)
        return User(**asdict(await ctx.users.get_user(uid)))

    @app.post("/v1/users/{uid}/tokens", status_code=201, response_model=IssuedToken, dependencies=guarded,
              tags=["tokens"])
    async def issue_token(uid: str, body: NewToken) -> IssuedToken:
        return IssuedToken(**asdict(await ctx.users.issue_token(uid, body.device, body.platform, body.ttl_s,
                                                                         body.encoding)))

    @app.get("/v1/users/{uid}/tokens", response_model=list[Token], dependencies=guarded, tags=["tokens"])
    async def list_tokens(uid: str) -> list[Token]:
        return [Token(**asdict(t)) for t in await ctx.users.list_tokens(uid)]

    @app.post("/v1/users/{uid}/tokens/revoke", response_model=Count, dependencies=guarded, tags=["tokens"])
    async def revoke_tokens(uid: str, body: Revoke) -> Count:
        """Revoke the user's tokens (one device's, or all with `{}`); their live connections are
        dropped. `count` 0: nothing matched (no live token of that device)."""
        count = await ctx.users.revoke_tokens(uid, body.device)
        await ctx.kick(uid, body.device, "token revoked")
        return Count(count=count)

    @app.get("/v1/users/{uid}/devices", response_model=DeviceList, dependencies=guarded, tags=["users"])
    async def list_devices(uid: str) -> DeviceList:
        """The user's devices, each with a token or a stored presence: online or not, last seen,
        its live tokens."""
        tokens = await ctx.users.list_tokens(uid)  # NotFound: no such user
        seen = (await ctx.presence.lookup([uid]))[uid]
        now = time.time_ns() // 1_000_000
        devices: dict[str, DeviceOut] = {}
        for t in reversed(tokens):  # oldest first: the newest token's platform stays
            d = devices.setdefault(t.device, DeviceOut(device=t.device, platform=t.platform, online=False,
                                                       last_seen=None, tokens=0, last_used_at=None))
            d.platform = t.platform or d.platform
            if t.revoked_at is None and (t.expires_at is None or t.expires_at > now):
                d.tokens += 1
            if t.last_used_at is not None:
                d.last_used_at = max(d.last_used_at or 0, t.last_used_at)
        for p in seen:
            d = devices.setdefault(p.device, DeviceOut(device=p.device, platform=p.platform, online=False,
                                                       last_seen=None, tokens=0, last_used_at=None))
            d.online, d.last_seen, d.platform = p.online, p.ts, d.platform or p.platform
        return DeviceList(items=sorted(devices.values(), key=lambda d: d.device))

    @app.get("/v1/connections", response_model=ConnectionPage, dependencies=guarded, tags=["operations"])
    async def list_connections(
        uid: str | None = Query(None, pattern=UID_RE.pattern, description="only this user's"),
        limit: int = Query(200, ge=1, le=MAX_PAGE, description=f"at most this many, 1-{MAX_PAGE}"),
    ) -> ConnectionPage:
        """The live MQTT connections of this process's broker; in cluster mode (`imgate api`) and
        on an external broker, the devices online by the presence table (`source`)."""
        assert ctx.connections is not None
        return ConnectionPage(**await ctx.connections(uid, limit))

    @app.get("/v1/stats", response_model=Stats, dependencies=guarded, tags=["operations"])
    async def stats() -> Stats:
        """A JSON snapshot of this process's own metrics (those of `/metrics`), for the operator
        console: counters since the start (a rate is the difference of two snapshots over their
        `ts`), gauges, and the send-ack latency histogram."""
        assert ctx.stats is not None
        return Stats(**await ctx.stats())

    @app.get("/v1/users/{uid}/blocks", response_model=BlockList, dependencies=guarded, tags=["blocks"])
    async def list_blocks(uid: str) -> BlockList:
        """Whom the user blocks."""
        await ctx.users.get_user(uid)
        return BlockList(blocked=await ctx.blocks.blocked_by(uid))

    @app.post("/v1/users/{uid}/blocks", response_model=BlockList, dependencies=guarded, tags=["blocks"])
    async def add_block(uid: str, body: BlockTarget) -> BlockList:
        """The user blocks ``body.uid`` (as its ``block.add`` RPC does)."""
        await ctx.users.get_user(uid)
        await ctx.blocks.add(uid, body.uid)
        return BlockList(blocked=await ctx.blocks.blocked_by(uid))

    @app.delete("/v1/users/{uid}/blocks/{target}", response_model=BlockList, dependencies=guarded, tags=["blocks"])
    async def remove_block(uid: str, target: str) -> BlockList:
        """The user unblocks ``target``."""
        await ctx.users.get_user(uid)
        await ctx.blocks.remove(uid, target)
        return BlockList(blocked=await ctx.blocks.blocked_by(uid))

    @app.get("/v1/users/{uid}/profile", response_model=ProfileOut, dependencies=guarded, tags=["profiles"])
    async def get_profile(uid: str) -> ProfileOut:
        await ctx.users.get_user(uid)
        return ProfileOut(**asdict((await ctx.profiles.get([uid]))[uid]), bot=uid in ctx.users.bots)

    @app.put("/v1/users/{uid}/profile", response_model=ProfileOut, dependencies=guarded, tags=["profiles"])
    async def set_profile(uid: str, body: ProfileIn) -> ProfileOut:
        """Change the fields given (an operator's correction; the user's contacts are told when
        the user changes it over MQTT)."""
        await ctx.users.get_user(uid)
        profile, _ = await ctx.profiles.set(uid, name=body.name, avatar=body.avatar, status=body.status)
        return ProfileOut(**asdict(profile), bot=uid in ctx.users.bots)

    @app.get("/v1/files/{key}", response_model=UploadOut, dependencies=guarded, tags=["files"])
    async def get_upload(key: str) -> UploadOut:
        """An upload as its owner declared it."""
        r = await ctx.attachments.info(key)
        return UploadOut(key=r.key, owner=r.owner, name=r.name, mime=r.mime, size=r.size, sha256=r.sha256,
                         created_at=r.created_at, used=r.used)

    @app.delete("/v1/files/{key}", status_code=204, dependencies=guarded, tags=["files"])
    async def take_down_upload(key: str) -> Response:
        """Take an upload down (abuse, a legal request): its object is deleted whatever refers to
        it; messages keep their attachment object, and nobody gets a download URL for it."""
        await ctx.attachments.take_down(key)
        return Response(status_code=204)

    @app.get("/v1/users/{uid}/export", dependencies=guarded, tags=["privacy"], response_class=Response,
             responses={200: {"content": {"application/zip": {}},
                              "description": "the archive (docs/privacy.md), as an attachment"},
                        404: {"model": Error, "description": "no such user"},
                        429: {"model": Error, "description": "an export of this user, or too many, under way"}})
    async def export_user(uid: str = Path_(pattern=UID_RE.pattern)) -> StreamingResponse:
        """The user's data (GDPR art. 15): a zip of JSON files and lines and their uploads' files,
        described in docs/privacy.md. Heavy: one export per user at a time, `privacy.max_exports`
        at once (more: 429 `rate_limited`). Audited as an export although it is a GET."""
        assert ctx.exports_dir is not None
        async with ctx.privacy.export_file(uid, ctx.exports_dir) as path:
            f = await asyncio.to_thread(path.open, "rb")  # read on after the file's name is gone
        size = os.fstat(f.fileno()).st_size

        async def body() -> AsyncIterator[bytes]:
            try:
                while chunk := await asyncio.to_thread(f.read, 1 << 20):
                    yield chunk
            finally:
                f.close()

        return StreamingResponse(body(), media_type="application/zip", headers={
            "Content-Disposition": f'attachment; filename="imgate-export-{uid}.zip"', "Content-Length": str(size)})

    @app.post("/v1/users/{uid}/erase", response_model=ErasureOut, dependencies=guarded, tags=["privacy"])
    async def erase_user(uid: str = Path_(pattern=UID_RE.pattern)) -> ErasureOut:
        """Erase the account (GDPR art. 17; docs/privacy.md says what goes and what stays): its
        tokens and live connections go first, then each part of its data. Final; safe to repeat
        (a repeat finishes an interrupted erasure)."""
        done = await ctx.privacy.erase(uid)
        await ctx.kick(uid, None, "account erased")
        return ErasureOut(**asdict(done))

    @app.post("/v1/users/{uid}/logout", response_model=Count, dependencies=guarded, tags=["sessions"])
    async def force_logout(uid: str) -> Count:
        """Disconnect every device of the user now (tokens stay valid)."""
        await ctx.users.get_user(uid)
        return Count(count=await ctx.kick(uid, None, "logged out by the admin API"))

    @app.post("/v1/notifications", status_code=201, response_model=NotificationResult, dependencies=guarded,
              tags=["notifications"])
    async def send_notification(body: NewNotification) -> NotificationResult:
        """A system notification to some users, or everyone: stored, delivered to each device once
        on ``{p}/{uid}/in/notify/{device}``, now if online, else when it comes back."""
        if body.everyone == (body.uids is not None):
            raise ImError("give either uids or everyone=true", ErrorCode.BAD_REQUEST)
        users, devices = await ctx.notify(body.body, None if body.everyone else body.uids)
        return NotificationResult(users=users, devices_now=devices)

    _audit_routes(app, ctx, guarded)
    _group_routes(app, ctx, guarded)
    from imgate.admin_bots import bot_routes

    bot_routes(app, ctx, guarded)
    _rabbitmq_routes(app, ctx)
    _emqx_routes(app, ctx)
    _console_routes(app)
    if ctx.audit is not None:
        from imgate.audit import AuditMiddleware, parse_networks

        app.add_middleware(AuditMiddleware, audit=ctx.audit, trusted=parse_networks(ctx.trusted_proxies))
    app.add_middleware(_SecretFirst, secret=secret)  # outermost: before the body is read, or the audit

    @app.get("/healthz", response_model=Health, tags=["operations"],
             responses={503: {"model": Health, "description": "a part is down"}})
    async def healthz() -> JSONResponse:
        checks = await ctx.health()
        ok = all(checks.values())
        return JSONResponse({"ok": ok, "checks": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", response_class=PlainTextResponse, dependencies=guarded, tags=["operations"])
    async def metrics() -> PlainTextResponse:
        """Prometheus text format."""
        return PlainTextResponse(await ctx.metrics(), media_type=CONTENT_TYPE_LATEST)

    return app


CONSOLE_DIR = Path(__file__).parent / "console"
# The console's files are public (no secret in them: the operator types it, and the page sends it
# with each API call); they run under this policy: scripts, styles and API calls from this origin
# only, no inline script, no framing.
_CONSOLE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_CONSOLE_HEADERS = {"Content-Security-Policy": _CONSOLE_CSP, "X-Content-Type-Options": "nosniff",
                    "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}
mimetypes.add_type("text/javascript", ".js")  # whatever the system's table says (nosniff)


def _console_routes(app: FastAPI) -> None:
    """The operator console (``imgate/console``, no build step): ``GET /console`` and its files
    under ``/console/``, outside the OpenAPI document."""
    names = {"": "index.html", "index.html": "index.html", "console.js": "console.js", "console.css": "console.css"}

    @app.get("/console", include_in_schema=False)
    @app.get("/console/", include_in_schema=False)
    @app.get("/console/{name}", include_in_schema=False)
    async def console(name: str = "") -> FileResponse:
        if name not in names:
            raise StarletteHTTPException(404, "no such file")
        return FileResponse(CONSOLE_DIR / names[name], headers=_CONSOLE_HEADERS)


def _audit_routes(app: FastAPI, ctx: AdminContext, guarded: list[Any]) -> None:
    """The audit log, read only: no route changes or deletes an entry (a PUT, PATCH or DELETE is 405)."""
    from services.audit.service import MAX_PAGE as AUDIT_PAGE

    @app.get("/v1/audit", response_model=AuditPageOut, dependencies=guarded, tags=["audit"])
    async def audit_log(
        before: int | None = Query(None, ge=1, le=MAX_INT, description="the previous page's `next`: entries older than this id"),
        limit: int = Query(100, ge=1, le=AUDIT_PAGE, description=f"entries per page, 1-{AUDIT_PAGE}"),
        actor: str | None = Query(None, max_length=80, description="only this actor's entries"),
        action: str | None = Query(None, max_length=64, description="only actions starting so (`user.`, `group`)"),
        target: str | None = Query(None, max_length=200, description="only entries about this uid, conv or key"),
        since: int | None = Query(None, ge=0, le=MAX_INT, description="only entries at or after this time (ms)"),
        until: int | None = Query(None, ge=0, le=MAX_INT, description="only entries before this time (ms)"),
    ) -> AuditPageOut:
        """Administrative changes, newest first, a page at a time: follow `next` (as `before`)
        until it is null. The log is append-only here: nothing in this API changes an entry."""
        if ctx.audit is None:
            raise ImError("the audit log is not available in this process", ErrorCode.UNAVAILABLE)
        page = await ctx.audit.page(before=before, limit=limit, actor=actor, action=action, target=target,
                                    since=since, until=until)
        return AuditPageOut(items=[AuditEntryOut(**asdict(e)) for e in page.items], next=page.next)


_CONV = Path_(max_length=140, description="`g:{gid}` or the gid")
_MEMBER = Path_(pattern=UID_RE.pattern, description="a member's uid")


def _gid(conv: str) -> str:
    """A group's id from its conversation (``g:{gid}``) or the id itself."""
    return conv.removeprefix("g:")


def _group_routes(app: FastAPI, ctx: AdminContext, guarded: list[Any]) -> None:
    """Groups as the operator sees them. A change is made as the group's owner (the member event's
    sender) through the group service, with the rules of the RPCs (blocks, the member limit, the
    owner cannot be removed); the members online get the event at once with ``imgate run``, and
    when they sync with ``imgate api`` (cluster mode)."""
    from services.groups.service import MAX_PAGE as GROUP_PAGE

    tags: list[str | Enum] = ["groups"]

    def out(info: Any) -> GroupOut:
        return GroupOut(gid=info.gid, conv=info.conv, name=info.name, owner=info.owner,
                        members=[GroupMember(uid=u, role=r) for u, r in info.members], mention_all=info.mention_all,
                        pin=info.pin)

    async def changed(request: Request, change: Any) -> GroupChangeOut:
        request.state.audit_target = change.conv
        request.state.audit = {"seq": change.event.seq}
        if ctx.group_changed is not None:
            await ctx.group_changed(change)
        return GroupChangeOut(gid=change.gid, conv=change.conv, seq=change.event.seq, members=list(change.members))

    async def owner(request: Request, conv: str) -> tuple[str, str]:
        gid = _gid(conv)
        request.state.audit_target = f"g:{gid}"
        info = await ctx.groups.describe(gid)
        if info.owner is None:
            raise ImError("the group has no owner to act as", ErrorCode.BAD_REQUEST)
        return gid, info.owner

    @app.get("/v1/groups", response_model=GroupPage, dependencies=guarded, tags=tags)
    async def list_groups(
        after: str | None = Query(None, max_length=140, description="the previous page's `next`: groups after it"),
        limit: int = Query(100, ge=1, le=GROUP_PAGE, description=f"groups per page, 1-{GROUP_PAGE}"),
        member: str | None = Query(None, pattern=UID_RE.pattern, description="only the groups this uid is in"),
    ) -> GroupPage:
        """Groups in conversation order with their member counts, a page at a time."""
        items, after = await ctx.groups.page(after=after, limit=limit, member=member)
        return GroupPage(items=[GroupSummaryOut(**asdict(g)) for g in items], next=after)

    @app.get("/v1/groups/{conv}", response_model=GroupOut, dependencies=guarded, tags=tags)
    async def get_group(conv: str = _CONV) -> GroupOut:
        """A group and its members with their roles (owner first). `conv`: `g:{gid}` or the gid."""
        return out(await ctx.groups.describe(_gid(conv)))

    @app.post("/v1/groups", status_code=201, response_model=GroupChangeOut, dependencies=guarded, tags=tags)
    async def create_group(request: Request, body: NewGroup) -> GroupChangeOut:
        """Create a group owned by `owner` with `members`."""
        return await changed(request, await ctx.groups.create(body.owner, body.name, body.members))

    @app.post("/v1/groups/{conv}/members", response_model=GroupChangeOut, dependencies=guarded, tags=tags)
    async def add_members(request: Request, body: NewMembers, conv: str = _CONV) -> GroupChangeOut:
        """Add members (as the owner)."""
        gid, by = await owner(request, conv)
        return await changed(request, await ctx.groups.add(by, gid, body.uids))

    @app.delete("/v1/groups/{conv}/members/{uid}", response_model=GroupChangeOut, dependencies=guarded, tags=tags)
    async def remove_member(request: Request, conv: str = _CONV, uid: str = _MEMBER) -> GroupChangeOut:
        """Remove a member (as the owner; the owner cannot be removed)."""
        gid, by = await owner(request, conv)
        return await changed(request, await ctx.groups.remove(by, gid, [uid]))

    @app.put("/v1/groups/{conv}/members/{uid}/role", response_model=GroupOut, dependencies=guarded, tags=tags)
    async def set_member_role(request: Request, body: NewRole, conv: str = _CONV, uid: str = _MEMBER) -> GroupOut:
        """Make a member an admin or a plain member again (as the owner)."""
        gid, by = await owner(request, conv)
        return out(await ctx.groups.set_role(by, gid, uid, body.role))


def _rabbitmq_routes(app: FastAPI, ctx: AdminContext) -> None:
    """RabbitMQ's ``rabbitmq_auth_backend_http`` (``auth_http.http_method = post``): answers
    ``allow`` or ``deny`` (see ``broker.external_auth``). Not
    behind the admin secret (RabbitMQ sends none): serve the admin API where only the brokers and
    the operators reach it."""
    tags: list[str | Enum] = ["RabbitMQ auth backend"]
    auth = ctx.external_auth

    @app.post("/auth/rabbitmq/user", response_class=PlainTextResponse, tags=tags)
    async def rabbitmq_user(request: Request) -> PlainTextResponse:
        form = await _form(request)
        if form is None:
            return _answer(False)
        # RabbitMQ's auth cache keeps the answer: a token about to expire is refused already.
        login = await auth.login(form.get("username"), form.get("password"), form.get("client_id"), cached=True)
        return _answer(login.allowed)

    @app.post("/auth/rabbitmq/vhost", response_class=PlainTextResponse, tags=tags)
    async def rabbitmq_vhost(request: Request) -> PlainTextResponse:
        form = await _form(request)
        return _answer(form is not None and auth.vhost(form.get("vhost", "")))

    @app.post("/auth/rabbitmq/resource", response_class=PlainTextResponse, tags=tags)
    async def rabbitmq_resource(request: Request) -> PlainTextResponse:
        form = await _form(request)
        return _answer(form is not None and auth.resource(form.get("username", ""), form.get("vhost", ""),
                                                          form.get("resource", ""), form.get("name", ""),
                                                          form.get("permission", ""), form.get("client_id")))

    @app.post("/auth/rabbitmq/topic", response_class=PlainTextResponse, tags=tags)
    async def rabbitmq_topic(request: Request) -> PlainTextResponse:
        form = await _form(request)
        return _answer(form is not None and auth.topic(form.get("username", ""), form.get("vhost", ""),
                                                       form.get("name", ""), form.get("permission", ""),
                                                       form.get("routing_key", ""),
                                                       form.get("variable_map.client_id")))


class EmqxResult(BaseModel):
    result: str = Field(description="allow or deny")
    is_superuser: bool = False


def _emqx_routes(app: FastAPI, ctx: AdminContext) -> None:
    """EMQX 5's HTTP authentication and authorization (``method = post``, a JSON body whose
    template is ``config/emqx/imgate.hocon``'s): ``{"result": "allow" | "deny"}``, never a
    superuser (the authorization source decides every topic; the bridge's account has ``#``). Not
    behind the admin secret, as the RabbitMQ routes."""
    tags: list[str | Enum] = ["EMQX auth hooks"]
    auth = ctx.external_auth

    def answer(allowed: bool) -> EmqxResult:
        return EmqxResult(result="allow" if allowed else "deny")

    @app.post("/auth/emqx/authn", response_model=EmqxResult, tags=tags)
    async def emqx_authn(request: Request) -> EmqxResult:
        """The body's ``username``, ``password`` and ``clientid``: a device token and its
        ``{uid}:{device}``, or a service account."""
        body = await _json_fields(request)
        if body is None:
            return answer(False)
        login = await auth.login(body.get("username"), body.get("password"), body.get("clientid"))
        return answer(login.allowed)

    @app.post("/auth/emqx/authz", response_model=EmqxResult, tags=tags)
    async def emqx_authz(request: Request) -> EmqxResult:
        """The body's ``username``, ``clientid``, ``action`` (``publish`` or ``subscribe``) and
        ``topic``, decided with the topic ACL of docs/protocol.md §2."""
        body = await _json_fields(request)
        return answer(body is not None and auth.authorize(body.get("username", ""), body.get("clientid"),
                                                          body.get("action", ""), body.get("topic", "")))
