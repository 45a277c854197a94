"""imgate's own web listener (``[web]``): the web chat page, and the embedded attachment store's
uploads and downloads.

- ``GET /`` and the page's files: ``imgate/webchat/`` as it is (no build step), with a strict
  Content-Security-Policy (scripts and styles from this origin only, no inline script).
- ``GET /config.json``: what the page needs to connect: the broker's WebSocket URL and the
  topic prefix (the page hard-codes neither).
- ``PUT /files/{key}?…``: an upload, checked against its signed URL (declared size, type and
  SHA-256; expiry). ``GET /files/{key}?…``: a download, checked against its signed URL *and*
  asked again whether the user it was given to may still read the object (a member removed
  since the URL was made gets 403).

Downloads are served with ``X-Content-Type-Options: nosniff`` and a sandboxing CSP, and every type
but images, audio and video as ``Content-Disposition: attachment``: an uploaded HTML or SVG file
never runs as a page of this origin (where the chat page keeps its session).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
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

from services.attachments.local import LocalStore, Refused
from services.attachments.service import AttachmentService
from services.attachments.store import inline
from services.ids import Clock

log = logging.getLogger("imgate.web")

PAGE_DIR = Path(__file__).parent / "webchat"
# {files}: where attachments are PUT and read (web.public_url, the S3 endpoint); {mqtt}: the broker.
_PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data: {files}; "
             "connect-src 'self' {mqtt} {files}; object-src 'none'; base-uri 'none'; "
             "form-action 'none'; frame-ancestors 'none'")
_FILE_CSP = "default-src 'none'; sandbox"
MAX_UPLOADS = 64  # PUTs being received at once (each holds a file and a thread hop per chunk)
_SLACK_MS = 60_000  # an upload may finish this long after its URL expired (it began before)
_HOST_RE = re.compile(r"^[A-Za-z0-9.-]{1,253}$")  # a host name or IPv4 address as the page was loaded
_CORS = {"Access-Control-Allow-Origin": "*"}


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
    uploading: int = 0  # PUTs being received now

    @property
    def store(self) -> LocalStore | None:
        """The embedded store, whose files this listener serves (None on S3, or not open yet)."""
        store = self.attachments.store if self.attachments is not None else None
        return store if isinstance(store, LocalStore) else None


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


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
            if not await ctx.attachments.accepts_upload(key):  # deleted since (a recall, the sweep, a takedown)
                raise Refused(410, "this upload was deleted: ask file.upload for a new one")
            if ctx.uploading >= MAX_UPLOADS:
                raise Refused(503, "too many uploads at once: try again shortly")
            ctx.uploading += 1
            try:
                # A slow client does not hold its file and slot for ever: the URL's life, and a minute.
                async with asyncio.timeout(max(1.0, (spec.expires_at_ms - ctx.clock.now_ms() + _SLACK_MS) / 1000)):
                    info = await ctx.store.write(key, request.stream(), spec)
            finally:
                ctx.uploading -= 1
        except Refused as exc:
            return _error(exc.status, exc.reason)
        except ClientDisconnect:
            return _error(400, "the upload was cut off: PUT it again")
        except TimeoutError:
            return _error(408, "the upload took too long: ask file.upload for a new URL")
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
