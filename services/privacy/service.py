"""PrivacyService: a user's data export (GDPR art. 15) and erasure (art. 17), composed from each
owning service's part (docs/privacy.md has the archive's format and, table by table, what an
erasure removes and what it keeps, and why).

Each service exports and erases its own tables; this service only orders the parts, writes the
archive and limits how many exports run at once (an export reads a user's whole history)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import zipfile
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from services.audit.service import AuditService
from services.errors import NotFound, RateLimited
from services.files import private_dir
from services.ids import Clock, new_ulid
from services.push.service import PushService

if TYPE_CHECKING:
    from services.attachments.service import AttachmentService
    from services.blocks.service import BlockService
    from services.contacts.service import ContactService
    from services.conversations.service import ConversationService
    from services.groups.service import GroupService
    from services.messages.commands import StoredMessage
    from services.messages.scheduled import ScheduledSends
    from services.messages.service import MessageService
    from services.notifications.service import NotificationService
    from services.presence.service import PresenceService
    from services.profiles.service import ProfileService
    from services.reactions.service import ReactionService
    from services.search.service import SearchService
    from services.users.service import UserService

log = logging.getLogger("imgate.privacy")

FORMAT = 1  # the archive's format version (manifest.json "format"; docs/privacy.md)
_LINES_PER_WRITE = 500  # JSON lines handed to the zip writer's thread at once
EraseMessages = Literal["tombstone", "keep"]


@dataclass(frozen=True, slots=True)
class Erasure:
    """What an erasure did (counts of this run: a second run counts only what was left)."""

    uid: str
    erased_at: int
    messages: int  # sent messages replaced by tombstones (0 with privacy.erase_messages = "keep")
    groups_left: int
    uploads_deleted: int  # the user's uploads deleted from the object store (in all, not only by this run)
    pushes_dropped: int
    scheduled_cancelled: int


def _message_record(m: StoredMessage) -> dict[str, Any]:
    return {"conv": m.conv, "seq": m.seq, "id": m.id, "sender": m.sender, "type": m.type, "text": m.text,
            "data": m.data, "ts": m.ts, "edited_at": m.edited_at, "recalled": m.type == "recalled",
            "reply": m.reply, "forwarded": m.forwarded, "thread": m.thread, "mentions": list(m.mentions)}


class _Archive:
    """A zip being written in worker threads (never on the event loop), one member at a time."""

    def __init__(self, zf: zipfile.ZipFile) -> None:
        self._zip = zf
        self.counts: dict[str, int] = {}

    @classmethod
    async def create(cls, path: Path) -> _Archive:
        def make() -> zipfile.ZipFile:
            # Personal data: the owner's only, whatever the umask (`imgate user export --out`).
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            return zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED)

        return cls(await asyncio.to_thread(make))

    async def json(self, name: str, value: Any) -> None:
        data = json.dumps(value, ensure_ascii=False, indent=2).encode()
        await asyncio.to_thread(self._zip.writestr, name, data)

    async def _member(self, name: str, chunks: AsyncIterable[bytes]) -> None:
        handle: IO[bytes] = await asyncio.to_thread(self._zip.open, name, "w", force_zip64=True)
        try:
            async for chunk in chunks:
                await asyncio.to_thread(handle.write, chunk)
        finally:
            await asyncio.to_thread(handle.close)

    async def lines(self, name: str, records: AsyncIterable[dict[str, Any]] | Iterable[dict[str, Any]]) -> int:
        """``records`` as JSON lines in ``name``; returns how many."""
        count = 0

        async def chunks() -> AsyncIterator[bytes]:
            nonlocal count
            batch: list[str] = []
            async for record in _aiter(records):
                batch.append(json.dumps(record, ensure_ascii=False))
                if len(batch) >= _LINES_PER_WRITE:
                    count += len(batch)
                    yield ("\n".join(batch) + "\n").encode()
                    batch = []
            if batch:
                count += len(batch)
                yield ("\n".join(batch) + "\n").encode()

        await self._member(name, chunks())
        self.counts[name] = count
        return count

    async def file(self, name: str, chunks: AsyncIterable[bytes]) -> None:
        await self._member(name, chunks)

    async def close(self) -> None:
        await asyncio.to_thread(self._zip.close)


async def _aiter(records: AsyncIterable[dict[str, Any]] | Iterable[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    if isinstance(records, AsyncIterable):
        async for r in records:
            yield r
    else:
        for r in records:
            yield r


class PrivacyService:
    def __init__(self, clock: Clock, *, users: UserService, presence: PresenceService,
                 conversations: ConversationService, messages: MessageService, scheduled: ScheduledSends,
                 groups: GroupService, reactions: ReactionService, blocks: BlockService, contacts: ContactService,
                 profiles: ProfileService, attachments: AttachmentService, notifications: NotificationService,
                 search: SearchService | None = None, erase_messages: EraseMessages = "tombstone",
                 max_exports: int = 2, audit: AuditService | None = None) -> None:
        """``audit``: the log whose entries about an erased user lose their detail (``redact``). ``search``: the index to remove erased messages from at once (without it, the indexer
        removes them as it follows their tombstones' events). ``max_exports``: exports running at
        once in this process (one per user at a time); more are ``rate_limited``."""
        self._clock = clock
        self._users = users
        self._presence = presence
        self._conversations = conversations
        self._messages = messages
        self._scheduled = scheduled
        self._groups = groups
        self._reactions = reactions
        self._blocks = blocks
        self._contacts = contacts
        self._profiles = profiles
        self._attachments = attachments
        self._notifications = notifications
        self._search = search
        self.erase_messages = erase_messages
        self._audit = audit
        self._max_exports = max_exports
        self._exporting: set[str] = set()

    # ---- export --------------------------------------------------------------------------------
    @asynccontextmanager
    async def _export_slot(self, uid: str) -> AsyncIterator[None]:
        if uid in self._exporting:
            msg = f"an export of {uid!r} is under way"
            raise RateLimited(msg, retry_after_ms=10_000)
        if len(self._exporting) >= self._max_exports:
            msg = f"{self._max_exports} exports are under way; try again later"
            raise RateLimited(msg, retry_after_ms=10_000)
        self._exporting.add(uid)
        try:
            yield
        finally:
            self._exporting.discard(uid)

    async def export(self, uid: str, out: Path) -> dict[str, int]:
        """Write ``uid``'s archive (docs/privacy.md) to ``out``: written beside it under another
        name, then renamed, so ``out`` is whole or absent. Returns the manifest's counts.

        Raises:
            NotFound: no such user.
            RateLimited: an export of this user, or ``max_exports`` exports, under way.
        """
        user = await self._users.get_user(uid)
        async with self._export_slot(uid):
            tmp = out.with_name(f".{out.name}.{new_ulid(self._clock.now_ms())}.part")
            try:
                archive = await _Archive.create(tmp)
                try:
                    counts = await self._write(archive, uid, user.name, user.created_at, user.disabled, user.kind)
                finally:
                    await archive.close()
                await asyncio.to_thread(os.replace, tmp, out)
            except BaseException:
                with suppress(OSError):
                    await asyncio.to_thread(tmp.unlink)
                raise
        return counts

    @asynccontextmanager
    async def export_file(self, uid: str, work_dir: Path) -> AsyncIterator[Path]:
        """``export`` to a private temporary file under ``work_dir``, deleted on exit (the API
        streams it meanwhile)."""
        await asyncio.to_thread(private_dir, work_dir)
        path = work_dir / f"{uid}-{new_ulid(self._clock.now_ms())}.zip"
        try:
            await self.export(uid, path)
            yield path
        finally:
            with suppress(OSError):
                await asyncio.to_thread(path.unlink)

    async def _write(self, archive: _Archive, uid: str, account_name: str, created_at: int,
                     disabled: bool, kind: str) -> dict[str, int]:
        generated_at = self._clock.now_ms()
        await archive.json("profile.json", {
            "uid": uid, "kind": kind, "account_name": account_name, "created_at": created_at, "disabled": disabled,
            "erased_at": await self._users.erased_at(uid), "profile": await self._profiles.export_user(uid)})
        await archive.lines("devices.jsonl", [*await self._users.export_devices(uid),
                                              *await self._presence.export_user(uid),
                                              *await PushService.export_user(uid)])
        await archive.lines("conversations.jsonl", await self._conversations.export_user(uid))
        windows = await self._conversations.windows(uid)
        await archive.lines("messages.jsonl", (_message_record(m) async for m in self._messages.export_user(windows)))
        await archive.lines("reactions.jsonl", self._reactions.export_user(uid))
        await archive.lines("blocks.jsonl", await self._blocks.export_user(uid))
        await archive.lines("contacts.jsonl", await self._contacts.export_user(uid))
        uploads = await self._attachments.export_user(uid)
        files = []
        for u in uploads:
            name = f"files/{u.key}"
            await archive.file(name, self._attachments.read(u.key))
            files.append({"key": u.key, "name": u.name, "mime": u.mime, "size": u.size, "sha256": u.sha256,
                          "created_at": u.created_at, "file": name})
        await archive.lines("uploads.jsonl", files)
        counts = {name.split(".")[0]: n for name, n in archive.counts.items()}
        await archive.json("manifest.json", {"format": FORMAT, "uid": uid, "generated_at": generated_at,
                                             "counts": counts})
        return counts

    # ---- erasure -------------------------------------------------------------------------------
    async def erase(self, uid: str) -> Erasure:
        """Erase the account (docs/privacy.md, "Erasure"): disabled and marked erased first (its
        tokens deleted, every connection dropped through the auth events), then each service
        removes its part. Every step is idempotent: an interrupted erasure finishes when run again.

        Raises:
            NotFound: no such user.
        """
        erased_at = await self._users.erase(uid)
        left = 0
        for conv in await self._conversations.current_groups(uid):
            with suppress(NotFound):  # left meanwhile
                await self._groups.leave(uid, conv[2:])
                left += 1
        messages = pushes = 0
        if self.erase_messages == "tombstone":
            async for ids in self._messages.erase_sender(uid):
                messages += len(ids)
                await self._reactions.clear_many(ids)  # a tombstone keeps no reactions (as a recall)
                pushes += await PushService.drop_messages(ids)
                if self._search is not None:
                    try:
                        await self._search.forget(ids)
                    except Exception:  # the indexer removes them when it follows the tombstones' events
                        log.warning("removing %d erased messages from the search index failed", len(ids),
                                    exc_info=True)
        scheduled = await self._scheduled.erase_sender(uid)
        await self._reactions.erase_user(uid)
        await self._blocks.erase_user(uid)
        await self._contacts.erase_user(uid)
        await self._profiles.erase_user(uid)  # (its avatar released)
        await self._presence.erase_user(uid)
        await self._notifications.erase_user(uid)
        pushes += await PushService.erase_user(uid)
        await self._conversations.erase_user(uid)
        from services.messages.threads import erase_reader

        await erase_reader(uid)
        uploads = await self._attachments.erase_owner(uid, keep_used=self.erase_messages == "keep")
        if self._audit is not None:
            await self._audit.redact(uid)
        done = Erasure(uid, erased_at, messages, left, uploads, pushes, scheduled)
        log.warning("erased user %s: %s", uid, asdict(done))
        return done
