"""The bridge's ingress on its own: per-user queues served in turn, bounded in count and bytes,
with producers told when to offer again."""

from __future__ import annotations

import asyncio

import pytest

from bridge.ingress import Ingress, IngressLimits


def topic(uid: str) -> str:
    return f"im/{uid}/out/msg"


async def take_all(ingress: Ingress, n: int) -> list[str]:
    out = []
    for _ in range(n):
        key, *_ = await asyncio.wait_for(ingress.take(), 1)
        out.append(key)
        ingress.release(key)
    return out


async def test_users_are_served_in_turn_whoever_queued_first() -> None:
    ingress = Ingress(limits=IngressLimits(key_items=100))
    for i in range(5):
        assert ingress.offer(topic("mallory"), b"m%d" % i)
    assert ingress.offer(topic("alice"), b"a")
    assert await take_all(ingress, 6) == ["mallory", "alice", "mallory", "mallory", "mallory", "mallory"]


async def test_a_full_user_is_refused_and_told_when_to_offer_again() -> None:
    ingress = Ingress(limits=IngressLimits(key_items=2, key_bytes=1 << 20))
    assert ingress.offer(topic("mallory"), b"1") and ingress.offer(topic("mallory"), b"2")
    assert not ingress.offer(topic("mallory"), b"3")
    assert ingress.offer(topic("alice"), b"a")  # others are not affected
    room = ingress.room(topic("mallory"))
    assert not room.done()
    key, *_ = await ingress.take()
    assert key == "mallory" and room.done()
    assert ingress.offer(topic("mallory"), b"3")


async def test_a_user_has_few_commands_in_the_lanes_at_once() -> None:
    ingress = Ingress(limits=IngressLimits(key_inflight=2))
    for i in range(4):
        ingress.offer(topic("mallory"), b"%d" % i)
    taken = [await ingress.take(), await ingress.take()]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ingress.take(), 0.05)  # mallory is at her 2: nothing else is ready
    ingress.offer(topic("alice"), b"a")
    assert (await ingress.take())[0] == "alice"
    ingress.release(taken[0][0])
    assert (await ingress.take())[0] == "mallory"


async def test_the_total_has_a_hard_ceiling_even_for_users_with_nothing_waiting() -> None:
    """Past ``total_bytes`` a user with nothing waiting still gets one message in, so one flood
    cannot shut the others out; but many users each adding one stop at twice the bound."""
    ingress = Ingress(limits=IngressLimits(key_bytes=1 << 20, total_bytes=10_000))
    assert ingress.offer(topic("mallory"), b"x" * 9_000)
    assert not ingress.offer(topic("mallory"), b"x" * 2_000)  # over the total, and mallory has one waiting
    accepted = [ingress.offer(topic(f"sybil{i}"), b"x" * 3_000) for i in range(10)]
    assert accepted == [True, True, True, False, False, False, False, False, False, False]
    assert ingress.waiting_bytes <= 2 * 10_000
    room = ingress.room(topic("sybil9"))  # nothing of its own waiting: woken when the total is back under
    assert not room.done()
    assert (await ingress.take())[0] == "mallory"  # 9,000 bytes less: the total is under the bound
    assert room.done() and ingress.offer(topic("sybil9"), b"x" * 3_000)


async def test_closing_tells_the_producers_waiting_for_room() -> None:
    ingress = Ingress(limits=IngressLimits(key_items=1))
    ingress.offer(topic("mallory"), b"1")
    assert not ingress.offer(topic("mallory"), b"2")
    room = ingress.room(topic("mallory"))
    ingress.close()
    with pytest.raises(ConnectionAbortedError):
        await room
    assert not ingress.offer(topic("alice"), b"a")
