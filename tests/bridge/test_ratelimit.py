"""Per-user rate limits, sans-IO: token buckets and the policy applied to routed commands."""

from __future__ import annotations

import json

import pytest

from bridge.ratelimit import Rate, RateLimits, Throttle, TokenBucket
from bridge.router import Ignore, Reply, Router, Rpc, Send, Topics
from tests.helpers import ManualClock


def test_bucket_refills_over_time_and_says_how_long_to_wait() -> None:
    clock = ManualClock(0)
    bucket = TokenBucket(clock, Rate(2, 2), max_keys=2)
    assert [bucket.take("a") for _ in range(3)] == [0, 0, 500]  # the third: one token in 500 ms
    clock.ms += 250
    assert bucket.take("a") == 250  # half a token earned; nothing taken by a refused call
    clock.ms += 250
    assert bucket.take("a") == 0
    assert bucket.take("a") == 500
    assert bucket.take("b") == 0 and bucket.take("c") == 0  # "a" is forgotten (bounded): a fresh bucket
    assert bucket.take("a") == 0


def test_a_rate_must_make_sense() -> None:
    with pytest.raises(ValueError, match="per_second"):
        Rate(0, 1)
    with pytest.raises(ValueError, match="burst"):
        Rate(1, 0.5)


@pytest.fixture
def rig() -> tuple[ManualClock, Router, Throttle]:
    clock = ManualClock(1_000_000)
    topics = Topics("im")
    limits = RateLimits(messages=Rate(1, 2), rpcs=Rate(1, 3), searches=Rate(1, 1), push_registers=Rate(1, 1),
                        typing=Rate(1, 1), error_replies=Rate(1, 3))
    return clock, Router(topics, max_payload=4096, max_text=100), Throttle(topics, clock, limits)


def _send(router: Router, uid: str, cid: str) -> Send:
    cmd = router.route(f"im/{uid}/out/msg", json.dumps({"cid": cid, "to": "bob", "type": "text",
                                                        "text": "hi"}).encode())
    assert isinstance(cmd, Send)
    return cmd


def test_messages_over_the_limit_get_a_rate_limited_ack_with_retry_after(rig) -> None:
    clock, router, throttle = rig
    assert all(isinstance(throttle.check("alice", _send(router, "alice", f"c{i}")), Send) for i in range(2))
    refused = throttle.check("alice", _send(router, "alice", "c2"))
    assert isinstance(refused, Reply) and refused.publish.topic == "im/alice/in/ack"
    assert json.loads(refused.publish.payload) == {"cid": "c2", "error": {
        "code": "rate_limited", "message": "too many messages: retry in 1000 ms", "retry_after_ms": 1000}}
    assert isinstance(throttle.check("carol", _send(router, "carol", "c0")), Send)  # per user
    clock.ms += 1000
    assert isinstance(throttle.check("alice", _send(router, "alice", "c2")), Send)


def test_rpcs_share_a_bucket_and_search_has_its_own_on_top(rig) -> None:
    _, router, throttle = rig

    def rpc(method: str, params: dict, req_id: int | None = 1) -> Rpc:  # type: ignore[type-arg]
        body = {"jsonrpc": "2.0", "method": method, "params": params, **({"id": req_id} if req_id else {})}
        cmd = router.route("im/alice/out/rpc", json.dumps(body).encode())
        assert isinstance(cmd, Rpc)
        return cmd

    assert isinstance(throttle.check("alice", rpc("search", {"q": "x"})), Rpc)
    refused = throttle.check("alice", rpc("search", {"q": "y"}, req_id=7))
    assert isinstance(refused, Reply)
    body = json.loads(refused.publish.payload)
    assert body["id"] == 7 and body["error"]["code"] == 429
    assert body["error"]["data"] == {"code": "rate_limited", "retry_after_ms": 1000}
    assert isinstance(throttle.check("alice", rpc("history", {"conv": "d:alice:bob"})), Rpc)
    # A notification (no id) over the limit is dropped: there is nobody to answer.
    assert isinstance(throttle.check("alice", rpc("history", {"conv": "d:alice:bob"}, req_id=None)), Ignore)


def test_error_replies_are_limited_too_so_a_flood_of_garbage_costs_little(rig) -> None:
    _, router, throttle = rig
    answers = [throttle.check("mallory", router.route("im/mallory/out/msg", b"not json")) for _ in range(10)]
    assert [isinstance(a, Reply) for a in answers] == [True] * 3 + [False] * 7
    assert all(isinstance(a, Ignore) for a in answers[3:])
    assert throttle.silenced == 7


def test_a_bots_messages_take_its_own_bucket_or_the_bots_default() -> None:
    from services.users.bots import BotDirectory, BotLimits

    clock = ManualClock(1_000_000)
    bots = BotDirectory()
    bots.note("slow", BotLimits(1.0, 1))
    bots.note("plain", BotLimits())  # no bucket of its own: the bots' default
    throttle = Throttle(Topics("im"), clock, RateLimits(messages=Rate(1, 5), bot_messages=Rate(1, 3)), bots)
    taken = {uid: [throttle.message_wait(uid) for _ in range(6)] for uid in ("slow", "plain", "alice")}
    assert taken["slow"] == [0, 1000, 1000, 1000, 1000, 1000]
    assert taken["plain"] == [0, 0, 0, 1000, 1000, 1000]
    assert taken["alice"] == [0, 0, 0, 0, 0, 1000]  # a user: the users' bucket
    clock.ms += 1000
    bots.note("slow", BotLimits(1.0, 2))  # its limits changed: a bucket of the new size, full
    assert [throttle.message_wait("slow") for _ in range(3)] == [0, 0, 1000]
