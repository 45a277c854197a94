"""Where attachment bytes live: the object-store interface and its plain types.

Two implementations: :mod:`services.attachments.local` (files under ``data_dir``, served by
imgate's own web listener) and :mod:`services.attachments.s3` (S3-compatible object storage
with presigned URLs). Clients never send bytes through MQTT: they PUT them to the URL of an
:class:`UploadTarget` and GET them from a download URL, both signed and expiring.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

# An object key: a ULID (its upload's time) and 64 random bits, so keys are unguessable and the
# embedded store can use them as file names as they are.
KEY_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}[0-9a-f]{16}$")
MIME_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# Served for display in the browser; everything else is served as a download (Content-Disposition:
# attachment), so an uploaded HTML or SVG file never runs in a page of the site that serves it.
INLINE_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
MAX_KEYS = 50  # keys per file.url call


def inline(mime: str) -> bool:
    """Whether a type is shown in the browser (images, audio, video) rather than downloaded."""
    return mime in INLINE_IMAGES or mime.startswith(("audio/", "video/"))


@dataclass(frozen=True, slots=True)
class UploadTarget:
    """Where and how the client PUTs the bytes: ``method`` to ``url`` with exactly ``headers``."""

    url: str
    method: str
    headers: dict[str, str] = field(default_factory=dict)
    expires_at: int = 0  # ms since the epoch


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """A stored object as the store sees it: its size and the hex SHA-256 of its bytes."""

    size: int
    sha256: str


class ObjectStore(Protocol):
    """Signs URLs (pure computation, no I/O) and looks objects up (I/O, async)."""

    def upload_target(self, key: str, *, size: int, mime: str, sha256: str, expires_at_ms: int) -> UploadTarget:
        """A URL accepting one PUT of exactly ``size`` bytes of type ``mime`` whose SHA-256 is
        ``sha256`` (hex), until ``expires_at_ms``. Other sizes, types or bytes are refused."""
        ...

    def download_url(self, key: str, *, uid: str, mime: str, expires_at_ms: int) -> str:
        """A URL serving the object to ``uid`` until ``expires_at_ms``."""
        ...

    async def stat(self, key: str) -> ObjectInfo | None:
        """The stored object's size and SHA-256, or None when there is none (not uploaded yet)."""
        ...

    async def delete(self, keys: list[str]) -> None:
        """Delete the objects (missing ones are no error)."""
        ...

    def read(self, key: str) -> AsyncIterator[bytes]:
        """The stored object's bytes, a chunk at a time (nothing when there is none): an export
        copies them without holding a whole object in memory."""
        ...

    async def close(self) -> None:
        ...
