"""The embedded object store: files under ``data_dir/files``, behind URLs signed with HMAC-SHA256.

Upload URLs carry what was declared (size, type, SHA-256) and a signature over it, so the web
listener (``imgate.web``) checks a PUT against the URL alone, like S3 checks a presigned URL.
Download URLs name the user they were given to: the listener asks again, at download time,
whether that user may still read the object (a member removed since gets 403 at once).

File I/O runs in threads (``asyncio.to_thread``): nothing blocks the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from services.attachments.store import KEY_RE, ObjectInfo, UploadTarget
from services.files import private_dir

_READ_CHUNK = 1 << 20  # bytes per read of an export's copy

_KEY_FILE = ".signing-key"


class Refused(Exception):
    """A request the store refuses, with the HTTP status and the reason to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PutSpec:
    size: int
    mime: str
    sha256: str
    expires_at_ms: int = 0  # the upload URL's expiry


def _sign(secret: bytes, *parts: str) -> str:
    mac = hmac.new(secret, "\n".join(parts).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def _load_key(root: Path) -> bytes:
    private_dir(root)
    path = root / _KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as f:
        key = secrets.token_bytes(32)
        f.write(key)
    return key


class LocalStore:
    """Objects as files ``root/{last two hex digits of the key}/{key}``, with a ``.json`` beside
    each holding its size, type and SHA-256 (computed while it was received)."""

    def __init__(self, root: Path, secret: bytes, base_url: str) -> None:
        self.root = root
        self._secret = secret
        self._base = base_url.rstrip("/")
        self._writing: set[str] = set()  # keys being received (a second PUT of one waits for nothing: 409)

    @classmethod
    async def open(cls, root: Path, base_url: str, secret: str | None = None) -> LocalStore:
        """The store in ``root``; without ``secret``, the signing key kept in ``root`` (made on first use)."""
        key = secret.encode() if secret is not None else await asyncio.to_thread(_load_key, root)
        if secret is not None:
            await asyncio.to_thread(private_dir, root)
        return cls(root, key, base_url)

    def path(self, key: str) -> Path:
        if not KEY_RE.match(key):  # never a path of the client's making
            msg = f"not an object key: {key!r}"
            raise ValueError(msg)
        return self.root / key[-2:] / key

    # ---- signing (no I/O) ------------------------------------------------------------------
    def upload_target(self, key: str, *, size: int, mime: str, sha256: str, expires_at_ms: int) -> UploadTarget:
        exp = str(expires_at_ms)
        sig = _sign(self._secret, "PUT", key, exp, str(size), mime, sha256)
        query = urlencode({"e": exp, "n": size, "t": mime, "h": sha256, "s": sig})
        return UploadTarget(f"{self._base}/files/{key}?{query}", "PUT", {"Content-Type": mime}, expires_at_ms)

    def download_url(self, key: str, *, uid: str, mime: str, expires_at_ms: int) -> str:
        exp = str(expires_at_ms)
        sig = _sign(self._secret, "GET", key, exp, uid, mime)
        return f"{self._base}/files/{key}?{urlencode({'u': uid, 'e': exp, 't': mime, 's': sig})}"

    def _signed(self, method: str, key: str, query: Mapping[str, str], fields: tuple[str, ...], now_ms: int,
                again: str) -> list[str]:
        """The expiry ``e`` and the values of ``fields`` a URL was signed with. Raises Refused
        (403) when the signature is wrong or expired (``again``: what to ask for a new URL)."""
        try:
            exp, values = query["e"], [query[f] for f in fields]
            good = bool(KEY_RE.match(key)) and hmac.compare_digest(
                _sign(self._secret, method, key, exp, *values).encode(), query["s"].encode())
            expired = int(exp) < now_ms
        except (KeyError, ValueError):
            good, expired = False, False
        if not good:
            raise Refused(403, "bad or missing signature")
        if expired:
            raise Refused(403, f"the URL has expired: ask {again} for a new one")
        return [exp, *values]

    def check_put(self, key: str, query: Mapping[str, str], now_ms: int) -> PutSpec:
        """The declared upload a PUT URL signs. Raises Refused (403)."""
        exp, size, mime, sha = self._signed("PUT", key, query, ("n", "t", "h"), now_ms, "file.upload")
        return PutSpec(int(size), mime, sha, int(exp))

    def check_get(self, key: str, query: Mapping[str, str], now_ms: int) -> tuple[str, str]:
        """The user and type a download URL was signed for. Raises Refused (403)."""
        _, uid, mime = self._signed("GET", key, query, ("u", "t"), now_ms, "file.url")
        return uid, mime

    # ---- objects (I/O in threads) ------------------------------------------------------------
    async def write(self, key: str, chunks: AsyncIterator[bytes], spec: PutSpec) -> ObjectInfo:
        """Receive an object: exactly ``spec.size`` bytes hashing to ``spec.sha256``, or nothing.

        Raises:
            Refused: 409 already uploaded; 413 more bytes than declared; 400 fewer, or other bytes.
        """
        final = self.path(key)
        if key in self._writing or await asyncio.to_thread(final.exists):
            raise Refused(409, "already uploaded, or being uploaded")
        self._writing.add(key)
        try:
            return await self._receive(key, final, chunks, spec)
        finally:
            self._writing.discard(key)

    async def _receive(self, key: str, final: Path, chunks: AsyncIterator[bytes], spec: PutSpec) -> ObjectInfo:
        await asyncio.to_thread(private_dir, final.parent)
        tmp = final.with_name(f".{key}.{secrets.token_hex(4)}.part")
        digest = hashlib.sha256()
        size = 0
        f = await asyncio.to_thread(open, tmp, "xb")
        try:
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > spec.size:
                        raise Refused(413, f"more than the declared {spec.size} bytes")
                    digest.update(chunk)
                    await asyncio.to_thread(f.write, chunk)
                await asyncio.to_thread(f.flush)
                await asyncio.to_thread(os.fsync, f.fileno())  # acked only once durable
            finally:
                await asyncio.to_thread(f.close)
            if size != spec.size:
                raise Refused(400, f"{size} bytes received; {spec.size} were declared")
            if digest.hexdigest() != spec.sha256:
                raise Refused(400, "the bytes' sha256 differs from the declared one")
        except BaseException:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(tmp.unlink)
            raise
        meta = json.dumps({"size": size, "sha256": spec.sha256, "mime": spec.mime})
        await asyncio.to_thread(self._commit, tmp, final, meta)
        return ObjectInfo(size, spec.sha256)

    @staticmethod
    def _commit(tmp: Path, final: Path, meta: str) -> None:
        meta_path = final.with_name(final.name + ".json")
        try:
            os.link(tmp, final)  # fails if a concurrent PUT of the same key won
        except FileExistsError:
            raise Refused(409, "already uploaded") from None
        finally:
            tmp.unlink()
        fd = os.open(meta_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(meta)

    def _stat(self, key: str) -> ObjectInfo | None:
        final = self.path(key)
        try:
            meta = json.loads(final.with_name(final.name + ".json").read_text())
            if not final.exists():
                return None
        except (OSError, ValueError):
            return None
        return ObjectInfo(int(meta["size"]), str(meta["sha256"]))

    async def stat(self, key: str) -> ObjectInfo | None:
        return await asyncio.to_thread(self._stat, key)

    def _delete(self, keys: list[str]) -> None:
        for key in keys:
            final = self.path(key)
            for p in (final, final.with_name(final.name + ".json")):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()

    async def delete(self, keys: list[str]) -> None:
        await asyncio.to_thread(self._delete, keys)

    async def read(self, key: str) -> AsyncIterator[bytes]:
        try:
            f = await asyncio.to_thread(self.path(key).open, "rb")
        except FileNotFoundError:
            return
        try:
            while chunk := await asyncio.to_thread(f.read, _READ_CHUNK):
                yield chunk
        finally:
            f.close()

    async def close(self) -> None:
        pass
