"""AttachmentService: the owner of the ``uploads`` table and of the object store.

An upload is declared first (``file.upload``: name, type, size, SHA-256) and gets a signed,
expiring URL to PUT the bytes to; the store refuses other sizes, types or bytes. A message (or a
profile's avatar) then refers to the upload's key; :meth:`verify` checks that the key is the
sender's own upload, that the object is there, and that its size and hash are the ones the
message states. Who may download is asked of the *referrers* (the message service: members of a
conversation holding a message with the key; the profile service: anyone, for an avatar), which
the composition root registers; the owner may always read its own uploads.

An upload is *used* once a stored message (in the message's own transaction) or a profile refers
to it. An upload no referrer uses is deleted: at once when a recall removes its last reference
(:meth:`release`), and by :meth:`sweep` when it was not used within ``orphan_after_s``. A deleted
upload's row stays as a tombstone (``gone_at``) for a day and the upload URL's life: its URL
cannot put the object back (the embedded store asks :meth:`accepts_upload`; an S3 object put back
is deleted again with the tombstone), and its bytes still count in the owner's daily quota.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from services.attachments.models import Upload
from services.attachments.store import INLINE_IMAGES, MAX_KEYS, ObjectStore, UploadTarget
from services.errors import BadRequest, NotFound, RateLimited, TooLarge, Unavailable
from services.ids import Clock, new_ulid
from services.sql import AnyOf, Program, Query, fetch

log = logging.getLogger("imgate.attachments")

_SWEEP_BATCH = 500  # uploads looked at per step of the sweep
_DAY_MS = 86_400_000
AVATAR_MAX_BYTES = 2 << 20  # an avatar is public and shown everywhere: a small png, jpeg, gif or webp

@dataclass(frozen=True, slots=True)
class FileRef:
    """What a message or profile states about an object it refers to."""

    key: str
    mime: str
    size: int
    sha256: str


def refs(attachment: dict[str, Any] | None) -> list[FileRef]:
    """The uploads an attachment object (protocol §3) refers to: its file and its thumbnail
    (an attachment given by ``url`` refers to none)."""
    out = []
    for part in (attachment or {}, (attachment or {}).get("thumbnail") or {}):
        if "key" in part:
            out.append(FileRef(part["key"], part["mime"], part["size"], part["sha256"]))
    return out


@dataclass(frozen=True, slots=True)
class Ticket:
    key: str
    target: UploadTarget


class Referrer(Protocol):
    """A service whose rows refer to upload keys."""

    async def referenced_keys(self, keys: list[str]) -> set[str]:
        """The keys among ``keys`` that something still refers to."""
        ...

    async def readable_keys(self, uid: str, keys: list[str]) -> set[str]:
        """The keys among ``keys`` that ``uid`` may download because of these rows."""
        ...


class AttachmentService:
    def __init__(self, clock: Clock, store: ObjectStore | None, *, max_bytes: int = 25 << 20,
                 upload_ttl_s: int = 900, download_ttl_s: int = 3600, orphan_after_s: int = 86400,
                 max_pending: int = 100, daily_bytes: int = 1 << 30) -> None:
        self._clock = clock
        self._store = store
        self.max_bytes = max_bytes
        self._upload_ttl_ms = upload_ttl_s * 1000
        self._download_ttl_ms = download_ttl_s * 1000
        self._orphan_after_ms = orphan_after_s * 1000
        self._tombstone_ms = max(_DAY_MS, self._upload_ttl_ms)
        self._max_pending = max_pending
        self._daily_bytes = daily_bytes
        self._referrers: list[Referrer] = []

    def add_referrer(self, referrer: Referrer) -> None:
        """Register a service whose rows refer to keys (the composition root does, once)."""
        self._referrers.append(referrer)

    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            msg = "attachments are not configured on this server"
            raise Unavailable(msg)
        return self._store

    async def upload(self, uid: str, *, name: str, mime: str, size: int, sha256: str) -> Ticket:
        """Declare an upload: its key and the signed URL to PUT exactly these bytes to.

        Raises:
            TooLarge: ``size`` is over ``limits.max_attachment_bytes``.
            RateLimited: ``uid`` has ``files.max_pending`` uploads in flight (declared within
                ``files.upload_ttl_s`` and not used yet), or has declared ``files.daily_bytes``
                in the last 24 hours (a disk is not filled at the message rate).
            Unavailable: no object store is configured.
        """
        store = self.store
        if size > self.max_bytes:
            msg = f"the file is {size} bytes; the limit is {self.max_bytes}"
            raise TooLarge(msg)
        now = self._clock.now_ms()
        in_flight = await Upload.filter(owner=uid, used=False, gone_at=None,
                                        created_at__gt=now - self._upload_ttl_ms).count()
        if in_flight >= self._max_pending:
            msg = f"{self._max_pending} uploads are in flight: send them first"
            raise RateLimited(msg, retry_after_ms=self._upload_ttl_ms)
        rows = await fetch("SELECT COALESCE(SUM(size), 0) FROM uploads WHERE owner = ? AND created_at > ?",
                           [uid, now - _DAY_MS])
        total = int(rows[0][0])
        if total + size > self._daily_bytes:
            # Room again once enough of the day's oldest uploads are a day old.
            day = await Upload.filter(owner=uid, created_at__gt=now - _DAY_MS).order_by("created_at") \
                .values_list("created_at", "size")
            freed, retry = total + size - self._daily_bytes, _DAY_MS
            for created, s in day:
                freed -= int(s)
                if freed <= 0:
                    retry = int(created) + _DAY_MS - now
                    break
            msg = f"over the upload quota of {self._daily_bytes} bytes a day"
            raise RateLimited(msg, retry_after_ms=max(1, retry))
        key = new_ulid(now) + secrets.token_hex(8)
        await Upload.create(key=key, owner=uid, name=name, mime=mime, size=size, sha256=sha256, created_at=now)
        return Ticket(key, store.upload_target(key, size=size, mime=mime, sha256=sha256,
                                               expires_at_ms=now + self._upload_ttl_ms))

    async def accepts_upload(self, key: str) -> bool:
        """May the object of ``key`` be put now? Only for a declared upload not deleted since (a
        recall, the sweep or a takedown): its URL, still valid, must not bring the bytes back."""
        return await self.uploader(key) is not None

    async def uploader(self, key: str) -> str | None:
        """Who declared the upload of ``key``, if it may be put now (:meth:`accepts_upload`)."""
        row = await Upload.get_or_none(key=key, gone_at=None)
        return row.owner if row is not None else None

    async def verify(self, uid: str, refs: list[FileRef]) -> None:
        """Check that each ref is ``uid``'s own upload, uploaded, with the stated type, size and
        hash. (The uploads become used in the transaction storing the message: :meth:`used_sql`.)

        Raises:
            BadRequest: not an upload of ``uid``'s, not uploaded (yet), or different from what
                the ref states (the message says which key, nothing about others' uploads).
        """
        if refs:
            await self._check(uid, refs, {r.key: r for r in await Upload.filter(key__in=[f.key for f in refs],
                                                                                  gone_at=None)})

    async def _check(self, uid: str, refs: list[FileRef], rows: dict[str, Upload], *, images_only: bool = False
                     ) -> None:
        """:meth:`verify` on the upload rows of ``refs`` (those not deleted), read already."""
        store = self.store
        for ref in refs:
            row = rows.get(ref.key)
            if row is None or row.owner != uid:
                msg = f"attachment {ref.key!r}: no such upload of yours"
                raise BadRequest(msg)
            if images_only and (row.mime not in INLINE_IMAGES or row.size > AVATAR_MAX_BYTES):
                msg = f"avatar {ref.key!r}: a png, jpeg, gif or webp image of at most {AVATAR_MAX_BYTES} bytes"
                raise BadRequest(msg)
            if (row.mime, row.size, row.sha256) != (ref.mime, ref.size, ref.sha256):
                msg = f"attachment {ref.key!r}: mime, size or sha256 differ from the upload's"
                raise BadRequest(msg)
            info = await store.stat(ref.key)
            if info is None:
                msg = f"attachment {ref.key!r}: not uploaded yet (PUT the bytes to the upload URL first)"
                raise BadRequest(msg)
            if (info.size, info.sha256) != (ref.size, ref.sha256):
                msg = f"attachment {ref.key!r}: the uploaded object's size or sha256 differ"
                raise BadRequest(msg)

    @staticmethod
    def live_sql(keys: set[str]) -> Program[set[str]]:
        """The keys among ``keys`` not deleted, locked until the caller's transaction ends (the
        one storing messages): a deletion waits for it, and then sees the messages it stored."""
        if not keys:
            return set()
        rows = yield Query("SELECT key FROM uploads WHERE key = ANY(?) AND gone_at IS NULL ORDER BY key",
                           [AnyOf(sorted(keys))], for_update=True)
        return {r[0] for r in rows}

    @staticmethod
    def used_sql(keys: list[str], used: bool = True) -> Program[None]:
        """Mark uploads used (a message storing them) or not (a recall: the sweep looks again),
        in the caller's transaction."""
        if keys:
            yield Query("UPDATE uploads SET used = ? WHERE key = ANY(?)", [used, AnyOf(keys)])

    async def verify_avatar(self, uid: str, key: str) -> None:
        """Check that ``key`` is a small uploaded image of ``uid``'s (a profile's avatar: public),
        and mark it used.

        Raises:
            BadRequest: it is not.
        """
        row = await Upload.get_or_none(key=key, gone_at=None)
        if row is None or row.owner != uid:
            msg = f"avatar {key!r}: no such upload of yours"
            raise BadRequest(msg)
        await self._check(uid, [FileRef(key, row.mime, row.size, row.sha256)], {key: row}, images_only=True)
        await Upload.filter(key=key).update(used=True)

    async def readable(self, uid: str, keys: list[str]) -> dict[str, Upload]:
        """The keys among ``keys`` that ``uid`` may download, with their uploads (type, name)."""
        rows = {r.key: r for r in await Upload.filter(key__in=list(set(keys)), gone_at=None)}
        allowed = {k for k, r in rows.items() if r.owner == uid}
        rest = [k for k in rows if k not in allowed]
        for referrer in self._referrers:
            if not rest:
                break
            allowed |= await referrer.readable_keys(uid, rest)
            rest = [k for k in rest if k not in allowed]
        return {k: rows[k] for k in allowed}

    async def download_urls(self, uid: str, keys: list[str]) -> tuple[dict[str, str], int]:
        """Signed download URLs of the keys ``uid`` may read (the others are left out), and when
        they expire."""
        store = self.store
        if len(keys) > MAX_KEYS:
            msg = f"at most {MAX_KEYS} keys per call"
            raise BadRequest(msg)
        expires = self._clock.now_ms() + self._download_ttl_ms
        rows = await self.readable(uid, keys)
        return {k: store.download_url(k, uid=uid, mime=r.mime, expires_at_ms=expires) for k, r in rows.items()}, expires

    async def _referenced(self, keys: list[str]) -> set[str]:
        """The keys among ``keys`` some referrer (a message, a profile) still refers to."""
        used: set[str] = set()
        for referrer in self._referrers:
            used |= await referrer.referenced_keys(keys)
        return used

    async def _delete(self, keys: list[str], *, unless_used: bool = True) -> list[str]:
        """Tombstone the uploads, then delete their objects; returns the keys deleted.

        With ``unless_used``, keys a referrer uses are kept: they are tombstoned first, then the
        referrers are asked, so a message stored meanwhile (its transaction locks the live rows
        it refers to, :meth:`live_sql`) is either refused for the tombstone or seen here, and
        its uploads come back to life."""
        now = self._clock.now_ms()
        mine = [str(k) for k in await Upload.filter(key__in=keys, gone_at=None).values_list("key", flat=True)]
        if not mine:
            return []
        await Upload.filter(key__in=mine, gone_at=None).update(gone_at=now)
        if unless_used:
            used = await self._referenced(mine)
            if used:
                await Upload.filter(key__in=list(used), gone_at=now).update(gone_at=None, used=True)
            mine = [k for k in mine if k not in used]
        if mine:
            await self.store.delete(mine)
        return mine

    async def release(self, keys: list[str]) -> int:
        """Delete the uploads among ``keys`` that nothing refers to any more (after a recall or an
        avatar change). Returns how many were deleted. A storage failure is logged, not raised
        (what asked has happened; the sweep deletes the object later)."""
        keys = list(dict.fromkeys(keys))
        if not keys or self._store is None:
            return 0
        try:
            await Upload.filter(key__in=keys).update(used=False)  # if this fails half-way, the sweep looks again
            used = await self._referenced(keys)  # (kept from the tombstone: a send of them is not refused meanwhile)
            if used:
                await Upload.filter(key__in=list(used)).update(used=True)
            return len(await self._delete([k for k in keys if k not in used]))
        except Exception:
            log.exception("deleting the unreferenced uploads %s failed; the sweep retries", keys)
            return 0

    async def info(self, key: str) -> Upload:
        """An upload as declared (the admin API).

        Raises:
            NotFound: no such upload.
        """
        row = await Upload.get_or_none(key=key, gone_at=None)
        if row is None:
            msg = f"no upload {key!r}"
            raise NotFound(msg)
        return row

    async def take_down(self, key: str) -> None:
        """Delete an upload and its object whatever refers to it (an operator's takedown): the
        messages keep their attachment object, and nobody gets a URL for it any more.

        Raises:
            NotFound: no such upload.
        """
        await self.info(key)
        await self._delete([key], unless_used=False)
        log.warning("upload %s taken down by an operator", key)

    # ---- privacy (services/privacy) -------------------------------------------------------------
    @staticmethod
    async def export_user(uid: str) -> list[Upload]:
        """The user's uploads that are still there, oldest first (the archive's files)."""
        return list(await Upload.filter(owner=uid, gone_at=None).order_by("created_at", "key"))

    def read(self, key: str) -> AsyncIterator[bytes]:
        """An upload's bytes, a chunk at a time (an export's copy)."""
        return self.store.read(key)

    async def erase_owner(self, uid: str, *, keep_used: bool) -> int:
        """Delete the user's uploads and their objects now, whatever refers to them (``keep_used``:
        but those a message still refers to), and blank the names of all of them; the rows stay
        as tombstones until the sweep purges them (so an upload URL cannot put an object back).
        Safe to run again. Returns how many of the user's uploads are deleted now (by this call or
        before: a recall, an avatar change, the erased messages' release)."""
        after = ""
        while keys := [str(k) for k in await Upload.filter(owner=uid, gone_at=None, key__gt=after)
                       .order_by("key").limit(_SWEEP_BATCH).values_list("key", flat=True)]:
            after = keys[-1]
            if self._store is None:  # (no store configured here: nothing to delete but the rows)
                await Upload.filter(key__in=keys).update(gone_at=self._clock.now_ms())
            else:
                await self._delete(keys, unless_used=keep_used)
        await Upload.filter(owner=uid, gone_at__not_isnull=True).update(name="")
        return int(await Upload.filter(owner=uid, gone_at__not_isnull=True).count())

    async def sweep(self) -> int:
        """Delete uploads that nothing used within ``orphan_after_s`` (never sent, or sent in a
        message that was refused), and the tombstones of deleted ones once their URLs are long
        dead (deleting their objects again: an S3 object put back through a live URL goes too).
        Returns how many uploads were deleted."""
        if self._store is None:
            return 0
        now = self._clock.now_ms()
        deleted = 0
        after = ""  # keys sort after ""
        while True:
            unused = Upload.filter(used=False, gone_at=None, created_at__lt=now - self._orphan_after_ms, key__gt=after)
            keys = [str(k) for k in await unused.order_by("key").limit(_SWEEP_BATCH).values_list("key", flat=True)]
            if not keys:
                break
            after = keys[-1]
            gone = await self._delete(keys)
            if gone:
                deleted += len(gone)
                log.info("deleted %d unused uploads", len(gone))
        while True:
            old = [str(k) for k in await Upload.filter(gone_at__lt=now - self._tombstone_ms)
                   .limit(_SWEEP_BATCH).values_list("key", flat=True)]
            if not old:
                return deleted
            await self._store.delete(old)
            await Upload.filter(key__in=old).delete()

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()
