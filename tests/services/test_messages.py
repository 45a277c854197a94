"""MessageService on the real database, without MQTT: the storage invariants under concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from imgate.app import Services, build_services
from services.db import Database
from services.errors import BadRequest, NotFound
from services.ids import SystemClock
from services.messages.models import Message
from services.messages.service import SendCommand


@pytest.fixture(params=["group-commit", "one-by-one"])
async def svc(database_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Services]:
    async with Database(database_url):
        services = build_services(SystemClock())
        for uid in ("alice", "bob", "carol"):
            await services.users.add_user(uid)
        if request.param == "one-by-one":
            yield services
            return
        async with services.messages.committing():  # the group committer, as in the app
            yield services


def text(sender: str, cid: str, to: str) -> SendCommand:
    return SendCommand(sender=sender, cid=cid, to=to, group=None, type="text", text=cid, data=None)


async def test_concurrent_sends_get_gap_free_seq(svc: Services) -> None:
    sends = [text("alice" if i % 2 else "bob", f"c{i}", "bob" if i % 2 else "alice") for i in range(60)]
    results = await asyncio.gather(*(svc.messages.send(c) for c in sends))
    assert sorted(r.message.seq for r in results) == list(range(1, 61))
    assert all(r.created and r.recipients == ("alice", "bob") for r in results)


async def test_concurrent_sends_are_committed_in_batches(svc: Services) -> None:
    if not svc.messages.running:
        pytest.skip("group commit off")
    await asyncio.gather(*(svc.messages.send(text("alice", f"b{i}", "bob")) for i in range(100)))
    assert svc.messages.batches < 50, "concurrent sends should share transactions"
    assert await Message.filter(conv="d:alice:bob").count() == 100


async def test_same_cid_sent_concurrently_is_stored_once(svc: Services) -> None:
    results = await asyncio.gather(*(svc.messages.send(text("alice", "same", "bob")) for _ in range(10)))
    assert len({r.message.id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert all(r.recipients == () for r in results if not r.created)
    assert await Message.filter(sender="alice", cid="same").count() == 1
    # A failed duplicate gives its seq back: the next message is seq 2.
    assert (await svc.messages.send(text("alice", "next", "bob"))).message.seq == 2


async def test_cid_is_per_sender(svc: Services) -> None:
    a = await svc.messages.send(text("alice", "c1", "bob"))
    b = await svc.messages.send(text("bob", "c1", "alice"))
    assert a.message.id != b.message.id and (a.message.seq, b.message.seq) == (1, 2)


async def test_conversations_are_separate_sequences(svc: Services) -> None:
    ab = await svc.messages.send(text("alice", "x", "bob"))
    ac = await svc.messages.send(text("alice", "y", "carol"))
    assert (ab.message.conv, ab.message.seq) == ("d:alice:bob", 1)
    assert (ac.message.conv, ac.message.seq) == ("d:alice:carol", 1)


async def test_disabled_or_unknown_recipient_is_not_found(svc: Services) -> None:
    await svc.users.disable_user("carol")
    for to in ("carol", "nobody"):
        with pytest.raises(NotFound):
            await svc.messages.send(text("alice", f"to-{to}", to))
    assert await Message.all().count() == 0


async def test_read_marker_only_moves_forward(svc: Services) -> None:
    for i in range(3):
        await svc.messages.send(text("alice", f"m{i}", "bob"))
    bob = await svc.conversations.membership("d:alice:bob", "bob")
    assert (await svc.conversations.mark_read(bob, 2)).read_seq == 2
    back = await svc.conversations.mark_read(bob, 1)
    assert back.read_seq == 2 and not back.advanced
    with pytest.raises(BadRequest):
        await svc.conversations.mark_read(bob, -1)


async def test_notes_to_self(svc: Services) -> None:
    r = await svc.messages.send(text("alice", "note", "alice"))
    assert (r.message.conv, r.message.seq, r.recipients) == ("d:alice:alice", 1, ("alice",))
    [conv], _ = await svc.conversations.list_for("alice", 10, None)
    assert conv.unread == 0 and conv.peer == "alice"


async def test_sqlite_commits_are_fsynced(svc: Services, database_url: str) -> None:
    if not database_url.startswith("sqlite://"):
        pytest.skip("SQLite pragmas")
    from tortoise import Tortoise

    conn = Tortoise.get_connection("default")
    assert (await conn.execute_query_dict("PRAGMA journal_mode"))[0]["journal_mode"] == "wal"
    assert (await conn.execute_query_dict("PRAGMA synchronous"))[0]["synchronous"] == 2  # FULL


async def test_a_database_of_another_schema_version_is_refused(database_url: str) -> None:
    from services.db import DbInfo, SchemaMismatch

    async with Database(database_url):
        await DbInfo.filter(key="schema_version").update(value="1")
    with pytest.raises(SchemaMismatch, match="schema version 1"):
        async with Database(database_url):
            pass
    with pytest.raises(SchemaMismatch):  # the refusal changed nothing: still refused
        async with Database(database_url):
            pass


async def test_a_send_not_stored_in_time_is_unavailable_and_its_retry_is_acked(database_url: str) -> None:
    """The sender is not left waiting on a stalled database: after ``store_timeout_s`` it is told
    ``unavailable`` (no ack); its retry with the same cid gets the one stored message."""
    from services.db import portable_sql
    from services.errors import Unavailable
    from services.messages.service import MessageService
    from services.transactions import transaction

    async with Database(database_url):
        svc = build_services(SystemClock())
        for uid in ("alice", "bob"):
            await svc.users.add_user(uid)
        await svc.messages.send(text("alice", "first", "bob"))  # the conversation exists
        messages = MessageService(SystemClock(), svc.users, svc.conversations, blocks=svc.blocks, events=svc.events,
                                  attachments=svc.attachments,
                                  store_timeout_s=0.3)
        async with messages.committing():
            async with transaction() as conn:  # another writer holds the conversation (a stalled commit)
                await conn.execute_query(portable_sql(
                    conn, "UPDATE conversations SET last_ts = last_ts WHERE id = ?"), ["d:alice:bob"])
                with pytest.raises(Unavailable, match="retry with the same cid"):
                    await messages.send(text("alice", "second", "bob"))
            retried = await messages.send(text("alice", "second", "bob"))
        assert retried.message.seq == 2
        assert await Message.filter(conv="d:alice:bob", cid="second").count() == 1


async def test_an_error_inside_committing_comes_out_as_itself(database_url: str) -> None:
    from services.errors import NotFound

    async with Database(database_url):
        svc = build_services(SystemClock())
        await svc.users.add_user("alice")
        with pytest.raises(NotFound):
            async with svc.messages.committing():
                await svc.messages.send(text("alice", "c1", "nobody"))
        assert not svc.messages.running  # a send now commits alone instead of queueing for nobody
