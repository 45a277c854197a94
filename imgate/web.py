"""imgate's own web listener (``[web]``): the web chat page, and the embedded attachment store's
uploads and downloads.

- ``GET /`` and the page's files: ``imgate/webchat/`` as it is (no build step: plain ES modules,
  ``app.js`` the page and ``imclient.js`` the protocol), with a strict Content-Security-Policy
  (scripts and styles from this origin only, no inline script).
- ``GET /config.json``: what the page needs to connect: the broker's WebSocket URL and the
  topic prefix (the page hard-codes neither).
- ``PUT /files/{key}?…``: an upload, checked against its signed URL (declared size, type and
  SHA-256; expiry). ``GET /files/{key}?…``: a download, checked against its signed URL *and*
  asked again whether the user it was given to may still read the object (a member removed
  since the URL was made gets 403).

Uploads are bounded (issue 24): at most ``web.max_uploads`` PUTs are received at once and
``web.max_uploads_per_user`` of one user (the uploader the upload was declared by), and a PUT
bringing fewer than ``web.min_upload_rate`` bytes a second over ``web.upload_rate_window_s``, or
still unfinished its declared size at that rate and one window after it began, is cut (408): a
user stalling uploads holds a few slots for one window, not all of them for the URL's life, and
one trickling at the floor holds each for its size / ``web.min_upload_rate`` at most. The
connections themselves are bounded in ``imgate.webconn``.

Downloads are served with ``X-Content-Type-Options: nosniff`` and a sandboxing CSP, and every type
but images, audio and video as ``Content-Disposition: attachment``: an uploaded HTML or SVG file
never runs as a page of this origin (where the chat page keeps its session).
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from services.attachments.local import LocalStore, PutSpec, Refused
from services.attachments.service import AttachmentService
from services.attachments.store import ObjectInfo, inline
from services.ids import Clock

log = logging.getLogger("imgate.web")

PAGE_DIR = Path(__file__).parent / "webchat"
# The page's ES modules (app.js imports imclient.js) only run when served as JavaScript (and
# nosniff forbids guessing): the system's MIME table may say otherwise for .js (some map it to
# text/plain), so the standard type is set here.
mimetypes.add_type("text/javascript", ".js")
# {files}: where attachments are PUT and read (web.public_url, the S3 endpoint); {mqtt}: the broker.
_PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data: {files}; "
             "connect-src 'self' {mqtt} {files}; object-src 'none'; base-uri 'none'; "
             "form-action 'none'; frame-ancestors 'none'")
_FILE_CSP = "default-src 'none'; sandbox"
_SLACK_MS = 60_000  # an upload may finish this long after its URL expired (it began before)
_HOST_RE = re.compile(r"^[A-Za-z0-9.-]{1,253}$")  # a host name or IPv4 address as the page was loaded
_CORS = {"Access-Control-Allow-Origin": "*"}
_CLOSE = {"Connection": "close"}  # a PUT refused or cut: the rest of its body goes with the connection


@dataclass
class UploadSlots:
    """PUTs being received (each holds a file, a connection and a thread hop per chunk): at most
    ``total`` at once, ``per_user`` of one uploader."""

    total: int = 64
    per_user: int = 4
    held: Counter[str] = field(default_factory=Counter)

    @contextmanager
    def take(self, uid: str) -> Iterator[None]:
        """One slot for ``uid``'s PUT while the block runs. Raises Refused: 503 none left, 429
        ``uid`` holds its share."""
        if self.held.total() >= self.total:
            raise Refused(503, "too many uploads at once: try again shortly")
        if self.held[uid] >= self.per_user:
            raise Refused(429, f"{self.per_user} of your uploads are being received: finish one first")
        self.held[uid] += 1
        try:
            yield
        finally:
            self.held[uid] -= 1
            if not self.held[uid]:
                del self.held[uid]


@dataclass(frozen=True)
class UploadPace:
    """A PUT must bring ``min_rate`` x ``window_s`` bytes (or the rest of its body) in each
    window of ``window_s`` seconds, the first from when its body is awaited (0: no floor)."""

    min_rate: int = 1024
    window_s: float = 30.0


@dataclass
class WebContext:
    """What the listener serves from; the composition root fills ``attachments`` once it is open
    (until then, /files answers 503)."""

    clock: Clock
    mqtt_url: Callable[[str], str | None]  # the page's MQTT URL, given the host the page was loaded from
    topic_prefix: str
    limits: dict[str, int]
    files_origins: str = ""  # where the page PUTs and reads attachments (its CSP allows them)
    attachments: AttachmentService | None = None
    slots: UploadSlots = field(default_factory=UploadSlots)
    pace: UploadPace = UploadPace()

    @property
    def store(self) -> LocalStore | None:
        """The embedded store, whose files this listener serves (None on S3, or not open yet)."""
        store = self.attachments.store if self.attachments is not None else None
        return store if isinstance(store, LocalStore) else None


def _error(status: int, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status, headers=headers)


async def _paced(chunks: AsyncIterator[bytes], deadline: asyncio.Timeout, end: float, pace: UploadPace
                 ) -> AsyncIterator[bytes]:
    """``chunks``, moving ``deadline`` a window on each time a window's bytes are in (never past ``end``)."""
    loop = asyncio.get_running_loop()
    due, got = pace.min_rate * pace.window_s, 0
    if pace.min_rate:
        deadline.reschedule(min(end, loop.time() + pace.window_s))
    async for chunk in chunks:
        got += len(chunk)
        if pace.min_rate and got >= due:
            got = 0
            deadline.reschedule(min(end, loop.time() + pace.window_s))
        yield chunk


async def _receive(ctx: WebContext, store: LocalStore, key: str, request: Request, spec: PutSpec) -> ObjectInfo:
    """The PUT's body into the store, cut when slower than ``ctx.pace`` (in a window, or over
    the whole body: its declared size at the floor rate and one window), or (a slow client does
    not hold its file and slot for ever) later than the URL's life and a minute.

    Raises:
        Refused: 408 cut; what :meth:`LocalStore.write` raises.
    """
    loop, pace = asyncio.get_running_loop(), ctx.pace
    now = loop.time()
    expires = now + max(1.0, (spec.expires_at_ms - ctx.clock.now_ms() + _SLACK_MS) / 1000)
    end = min(expires, now + spec.size / pace.min_rate + pace.window_s) if pace.min_rate else expires
    deadline = asyncio.timeout_at(end)
    try:
        async with deadline:
            return await store.write(key, _paced(request.stream(), deadline, end, pace), spec)
    except TimeoutError:
        when = deadline.when()
        if end < expires or (when is not None and when < end):
            msg = (f"the upload was slower than {pace.min_rate} bytes/s over {pace.window_s:g} s "
                   "(web.min_upload_rate): PUT it again")
            raise Refused(408, msg) from None
        raise Refused(408, "the upload took too long: ask file.upload for a new URL") from None


def origin(url: str | None) -> str:
    """``scheme://host[:port]`` of a URL ("" for none)."""
    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class _Headers(BaseHTTPMiddleware):
    def __init__(self, app: Any, ctx: WebContext) -> None:
        super().__init__(app)
        self._ctx = ctx

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")  # signed URLs never leak in a Referer
        if request.url.path.startswith("/files/"):
            response.headers.update(_CORS)
        else:
            mqtt = origin(_mqtt_url(self._ctx, request))
            response.headers.setdefault("Content-Security-Policy",
                                        _PAGE_CSP.format(mqtt=mqtt, files=self._ctx.files_origins))
            response.headers.setdefault("X-Frame-Options", "DENY")
        return response


def _mqtt_url(ctx: WebContext, request: Request) -> str | None:
    """The page's MQTT URL, on the host name the page was loaded from (when it is one)."""
    host = request.url.hostname or ""
    try:
        return ctx.mqtt_url(host if _HOST_RE.match(host) else "127.0.0.1")
    except KeyError:  # the broker's listeners are closing (shutdown)
        return None


def build_web_app(ctx: WebContext, *, chat_page: bool) -> Starlette:
    async def config(request: Request) -> JSONResponse:
        return JSONResponse({"mqtt_url": _mqtt_url(ctx, request), "topic_prefix": ctx.topic_prefix, **ctx.limits},
                            headers={"Cache-Control": "no-store"})

    async def preflight(_: Request) -> Response:
        # Signed URLs are the credential (no cookies): any origin may use them, e.g. the page
        # opened as http://localhost:8090 uploading to http://127.0.0.1:8090.
        return Response(status_code=204, headers={**_CORS, "Access-Control-Allow-Methods": "GET, PUT",
                                                  "Access-Control-Allow-Headers": "Content-Type",
                                                  "Access-Control-Max-Age": "600"})

    async def put_file(request: Request) -> Response:
        if ctx.store is None or ctx.attachments is None:
            return _error(503, "attachments are not ready")
        key = request.path_params["key"]
        try:
            spec = ctx.store.check_put(key, request.query_params, ctx.clock.now_ms())
            if request.headers.get("content-type", "").split(";")[0].strip().lower() != spec.mime:
                raise Refused(400, f"Content-Type must be {spec.mime}, as declared")
            length = request.headers.get("content-length", "")
            if not length.isdigit():
                raise Refused(411, "Content-Length is required")
            if int(length) != spec.size:
                raise Refused(413 if int(length) > spec.size else 400, f"Content-Length must be {spec.size}, as declared")
            uploader = await ctx.attachments.uploader(key)
            if uploader is None:  # deleted since (a recall, the sweep, a takedown)
                raise Refused(410, "this upload was deleted: ask file.upload for a new one")
            with ctx.slots.take(uploader):
                info = await _receive(ctx, ctx.store, key, request, spec)
        except Refused as exc:
            return _error(exc.status, exc.reason, _CLOSE)
        except ClientDisconnect:
            return _error(400, "the upload was cut off: PUT it again", _CLOSE)
        return JSONResponse({"key": key, "size": info.size, "sha256": info.sha256}, status_code=201)

    async def get_file(request: Request) -> Response:
        if ctx.store is None or ctx.attachments is None:
            return _error(503, "attachments are not ready")
        key = request.path_params["key"]
        try:
            uid, mime = ctx.store.check_get(key, request.query_params, ctx.clock.now_ms())
        except Refused as exc:
            return _error(exc.status, exc.reason)
        upload = (await ctx.attachments.readable(uid, [key])).get(key)  # still a member? (not only when signed)
        if upload is None:
            return _error(403, "not allowed")
        path = ctx.store.path(key)
        if not path.is_file():  # a stat of a local file: no I/O worth a thread
            return _error(404, "no such file")
        disposition = "inline" if inline(mime) else "attachment"
        return FileResponse(path, media_type=mime, content_disposition_type=disposition,
                            filename=upload.name or key, headers={"Content-Security-Policy": _FILE_CSP,
                                                   "Cache-Control": "private, max-age=300"})

    routes: list[Any] = [
        Route("/config.json", config, methods=["GET"]),
        Route("/files/{key}", put_file, methods=["PUT"]),
        Route("/files/{key}", get_file, methods=["GET"]),
        Route("/files/{key}", preflight, methods=["OPTIONS"]),
    ]
    if chat_page:
        routes.append(Mount("/", StaticFiles(directory=PAGE_DIR, html=True, check_dir=False), name="page"))
    return Starlette(routes=routes, middleware=[Middleware(_Headers, ctx=ctx)])
