"""Recording the admin API's changes in the audit log (services/audit), for every route at once.

``AuditMiddleware`` wraps the admin app (pure ASGI). A request is recorded when its route is a
change: any POST, PUT, PATCH or DELETE route except the external brokers' auth backends
(``/auth/…``, which are questions, not changes) and a bot's messages (``NOT_CHANGES``: traffic,
stored as messages), and the reads that hand data out
(``RECORDED_READS``: a user's export). It is recorded when the answer starts, before the client
sees it, with the status answered: a refused attempt (400, 403, 404, 409, …) is recorded too, a
request without the right admin secret (401) is not (anyone who reaches the port could fill the
log with those). What is recorded:

- actor: the ``X-Imgate-Actor`` header when it is 1-64 of ``A-Z a-z 0-9 _ . @ : -``, else ``admin``;
- action: ``ACTIONS[(method, path template)]``, else the route's ``name`` when it has a dot
  (``@app.post("/v1/bots", name="bot.create")``), else one made of the path's fixed segments
  and the method (``POST /v1/bots/{uid}/send`` -> ``bots.send.post``);
- target: ``request.state.audit_target`` when the route set it, else the first path parameter
  (``/v1/users/{uid}/…`` -> the uid), else the body's ``uid``, ``conv`` or ``key``;
- detail: the JSON body's fields (as the route read it, at most ``_MAX_BODY`` bytes), the other path
  parameters and the query, updated with ``request.state.audit`` (a dict) when the route set one;
  fields whose name says secret, token or password are masked and the whole is bounded
  (``services.audit.service.bounded``). Nothing of the answer is recorded (a token issued is not);
- source: the client's address; with ``audit.trusted_proxies``, a request from one of them is
  recorded from the last address of ``X-Forwarded-For`` that is not a trusted proxy.

A route that wants more in its entry sets ``request.state.audit = {...}`` (and may set
``request.state.audit_target``) before it answers.
"""

from __future__ import annotations

import getpass
import ipaddress
import json
import logging
import re
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from services.audit.service import AuditService

log = logging.getLogger("imgate.audit")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ACTOR_HEADER = "x-imgate-actor"
ACTOR_RE = re.compile(r"^[A-Za-z0-9_.@:-]{1,64}$")
CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NOT_RECORDED = ("/auth/",)  # RabbitMQ's and EMQX's auth backends: questions, not changes
RECORDED_READS = frozenset({"/v1/users/{uid}/export"})  # reads that hand a user's data out
# Changes that are traffic, not administration: a bot's messages sent through the API are stored as
# messages (a copy of each in the audit log would be a second, unbounded copy of the chat).
NOT_CHANGES = frozenset({("POST", "/v1/bots/{uid}/messages")})
_MAX_BODY = 16 * 1024  # bytes of a request body read for its detail (a larger one: its keys are not known)

# (method, path template) -> action: the admin API's routes, and those being added beside them.
ACTIONS: dict[tuple[str, str], str] = {
    ("POST", "/v1/users"): "user.create",
    ("POST", "/v1/users/{uid}/disable"): "user.disable",
    ("POST", "/v1/users/{uid}/enable"): "user.enable",
    ("POST", "/v1/users/{uid}/tokens"): "token.issue",
    ("POST", "/v1/users/{uid}/tokens/revoke"): "token.revoke",
    ("POST", "/v1/users/{uid}/logout"): "session.kick",
    ("POST", "/v1/users/{uid}/blocks"): "block.add",
    ("DELETE", "/v1/users/{uid}/blocks/{target}"): "block.remove",
    ("PUT", "/v1/users/{uid}/profile"): "profile.set",
    ("DELETE", "/v1/files/{key}"): "upload.take_down",
    ("POST", "/v1/notifications"): "notification.send",
    ("POST", "/v1/groups"): "group.create",
    ("POST", "/v1/groups/{conv}/members"): "group.add",
    ("DELETE", "/v1/groups/{conv}/members/{uid}"): "group.remove",
    ("PUT", "/v1/groups/{conv}/members/{uid}/role"): "group.role",
    ("GET", "/v1/users/{uid}/export"): "user.export",
    ("POST", "/v1/users/{uid}/erase"): "user.erase",
    ("POST", "/v1/bots"): "bot.create",
    ("PUT", "/v1/bots/{uid}/limits"): "bot.limits",
}


def cli_actor() -> str:
    """The actor of a command-line change: ``cli:{os user}@{host}``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"[:80]


def action_of(method: str, template: str, name: str | None) -> str:
    """The action of a route (see the module's docstring)."""
    known = ACTIONS.get((method, template))
    if known is not None:
        return known
    if name and "." in name:
        return name[:64]
    fixed = [part for part in template.strip("/").split("/") if part and not part.startswith("{") and part != "v1"]
    return ".".join([*fixed, method.lower()])[:64]


def parse_networks(values: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """``audit.trusted_proxies``: addresses or networks (raises ValueError naming a bad one)."""
    return [ipaddress.ip_network(v, strict=False) for v in values]


def source_of(scope: Scope, headers: dict[str, str],
              trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> str:
    """The client's address: the peer, or behind a trusted proxy the last address of
    ``X-Forwarded-For`` that is not one."""
    client = scope.get("client")
    peer = str(client[0]) if client else ""
    if not trusted or not _within(peer, trusted):
        return peer
    for hop in reversed([h.strip() for h in headers.get("x-forwarded-for", "").split(",") if h.strip()]):
        if not _within(hop, trusted):
            return hop[:64]
    return peer


def _within(address: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in n for n in networks)


class AuditMiddleware:
    """Records each change made through the app it wraps (the module's docstring says what)."""

    def __init__(self, app: ASGIApp, audit: AuditService,
                 trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> None:
        self.app = app
        self.audit = audit
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method", "")
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(NOT_RECORDED) or method not in (*CHANGES, "GET"):
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        body = bytearray()
        whole = True

        async def receiving() -> Message:
            nonlocal whole
            message = await receive()
            if message["type"] == "http.request" and whole:
                chunk = message.get("body", b"")
                if len(body) + len(chunk) > _MAX_BODY:
                    whole = False
                else:
                    body.extend(chunk)
            return message

        recorded = False

        async def sending(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start" and not recorded:
                recorded = True
                await self._record(scope, method, int(message["status"]), bytes(body) if whole else None)
            await send(message)

        try:
            await self.app(scope, receiving, sending)
        except Exception:
            if not recorded:
                recorded = True
                await self._record(scope, method, 500, bytes(body) if whole else None)
            raise

    async def _record(self, scope: Scope, method: str, status: int, body: bytes | None) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None)
        methods = getattr(route, "methods", None) or set()
        if template is None or method not in methods or status == 401:
            return  # no route (404, 405), or not past the admin secret
        if (method == "GET" and template not in RECORDED_READS) or (method, template) in NOT_CHANGES:
            return
        try:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            given = headers.get(ACTOR_HEADER, "")
            actor = given if ACTOR_RE.match(given) else "admin"
            params = {str(k): str(v) for k, v in (scope.get("path_params") or {}).items()}
            fields = _fields(body, headers.get("content-type", ""))
            state = scope.get("state") or {}
            target = state.get("audit_target")
            if not isinstance(target, str):
                first = next(iter(params.values()), None)
                target = first if first is not None else next(
                    (str(fields[k]) for k in ("uid", "conv", "key") if isinstance(fields.get(k), str)), "")
            detail: dict[str, Any] = dict(fields)
            detail.update({k: v for i, (k, v) in enumerate(params.items()) if i > 0})
            query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            if query:
                detail["query"] = dict(query[:20])  # by name, so a secret-named parameter is masked too
            extra = state.get("audit")
            if isinstance(extra, dict):
                detail.update(extra)
            if body is None:
                detail["body_not_recorded"] = f"larger than {_MAX_BODY} bytes"
            await self.audit.record(actor, action_of(method, template, getattr(route, "name", None)), target,
                                    detail, source_of(scope, headers, self.trusted), status)
        except Exception:  # the change is made (or refused) already: the answer goes out, the failure is logged
            log.exception("could not record %s %s in the audit log", method, template)


def _fields(body: bytes | None, content_type: str) -> dict[str, Any]:
    if not body or "json" not in content_type:
        return {}
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {"body": value}
