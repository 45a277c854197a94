"""The attachment service against the message service on the real database: a deletion and a
send that checked the same upload a moment before, in either order, never leave a stored
message pointing at a deleted object."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from imgate.app import Services, build_services
from services.attachments.local import LocalStore, PutSpec
from services.attachments.service import AttachmentService, refs
from services.db import Database
from services.errors import BadRequest
from services.ids import SystemClock
from services.messages.service import SendCommand

DATA = b"an image"


@pytest.fixture
async def svc(database_url: str, tmp_path: Path) -> AsyncIterator[Services]:
    clock = SystemClock()
    store = LocalStore(tmp_path / "files", b"k" * 32, "http://127.0.0.1:1")
    async with Database(database_url):
        services = build_services(clock, attachments=AttachmentService(clock, store))
        for uid in ("alice", "bob", "carol"):
            await services.users.add_user(uid)
        yield services


async def uploaded(svc: Services) -> dict[str, object]:
    sha = hashlib.sha256(DATA).hexdigest()
    ticket = await svc.attachments.upload("alice", name="", mime="image/png", size=len(DATA), sha256=sha)

    async def body() -> AsyncIterator[bytes]:
        yield DATA

    store = svc.attachments.store
    assert isinstance(store, LocalStore)
    await store.write(ticket.key, body(), PutSpec(len(DATA), "image/png", sha))
    return {"key": ticket.key, "mime": "image/png", "size": len(DATA), "sha256": sha}


def image(cid: str, to: str, attachment: dict[str, object]) -> SendCommand:
    return SendCommand(sender="alice", cid=cid, to=to, group=None, type="image", text=None, data=attachment)


async def test_a_send_checked_before_a_deletion_is_refused_after_it(svc: Services) -> None:
    """verify() passed, then the upload was deleted (a recall of its only message, the sweep, a
    takedown) before the send committed: the commit refuses it."""
    a = await uploaded(svc)
    await svc.attachments.verify("alice", refs(a))  # what send() checks first
    await svc.attachments.take_down(str(a["key"]))
    [result] = await svc.messages._commit([image("late", "bob", a)])  # the send's own commit
    assert isinstance(result, BadRequest) and "deleted" in result.message


async def test_a_deletion_after_a_send_committed_keeps_the_object(svc: Services) -> None:
    """The message was stored between the deletion's first look and its tombstone: the
    deletion sees it after tombstoning and brings the upload back."""
    a = await uploaded(svc)
    first = await svc.messages.send(image("m1", "bob", a))
    second = await svc.messages.send(image("m2", "carol", a))
    # Recall m1: m2 still refers to the upload, so nothing is deleted and m2's file stays readable.
    await svc.messages.recall("alice", first.message.id)
    assert await svc.attachments.store.stat(str(a["key"])) is not None
    readable = await svc.attachments.readable("carol", [str(a["key"])])
    assert {k: r.mime for k, r in readable.items()} == {str(a["key"]): "image/png"}
    # The deletion's own re-check: a referrer that uses the key wins over the tombstone.
    assert await svc.attachments._delete([str(a["key"])]) == []
    assert await svc.attachments.accepts_upload(str(a["key"]))  # alive again, not a tombstone
    await svc.messages.recall("alice", second.message.id)
    assert await svc.attachments.store.stat(str(a["key"])) is None  # now unused: gone
