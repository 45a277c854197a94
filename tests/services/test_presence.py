"""The presence service's connection-aware updates (cluster mode: RabbitMQ names connections,
and tells only the name when one closes); on the real database, both dialects."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.db import Database
from services.presence.service import PresenceService


@pytest.fixture
async def presence(database_url: str) -> AsyncIterator[PresenceService]:
    async with Database(database_url):
        yield PresenceService()


async def online(presence: PresenceService, uid: str) -> dict[str, bool]:
    return {d.device: d.online for d in (await presence.lookup([uid]))[uid]}


async def test_a_close_takes_offline_only_the_connection_it_names(presence: PresenceService) -> None:
    assert await presence.record("alice", "phone", online=True, platform="ios", ts=10, conn="<c1>")
    assert await presence.record("alice", "desk", online=True, platform="web", ts=11, conn="<c2>")
    gone = await presence.connection_closed("<c1>", 20)
    assert [(d.uid, d.device, d.online, d.ts) for d in gone] == [("alice", "phone", False, 20)]
    assert await online(presence, "alice") == {"phone": False, "desk": True}
    assert await presence.connection_closed("<c1>", 21) == []  # told twice: nothing more


async def test_a_device_that_reconnected_stays_online_when_its_old_connection_closes(presence: PresenceService) -> None:
    await presence.record("alice", "phone", online=True, platform="ios", ts=10, conn="<old>")
    await presence.record("alice", "phone", online=True, platform="ios", ts=12, conn="<new>")  # a take-over
    assert await presence.connection_closed("<old>", 13) == []
    assert not await presence.record("alice", "phone", online=False, platform="", ts=13, conn="<old>")
    assert await online(presence, "alice") == {"phone": True}
    assert await presence.record("alice", "phone", online=False, platform="", ts=14, conn="<new>")
    assert await online(presence, "alice") == {"phone": False}


async def test_a_close_older_than_the_stored_state_changes_nothing(presence: PresenceService) -> None:
    await presence.record("alice", "phone", online=True, platform="ios", ts=50, conn="<c1>")
    assert await presence.connection_closed("<c1>", 40) == []
    assert await online(presence, "alice") == {"phone": True}
