"""The one RPC registry (bridge/rpc.py): every method declared once, and each declaration is
what the router, the throttle and the dispatcher act on."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.handlers import Dispatcher
from bridge.ratelimit import Rate, RateLimits, Throttle
from bridge.router import Reply, Router, Rpc, Topics
from bridge.rpc import METHODS, Lane, Limit
from imgate.app import Services, build_services
from services.db import Database
from services.ids import SystemClock

from ..helpers import ManualClock

ROOT = Path(__file__).resolve().parents[2]
TOPICS = Topics("im")
ROUTER = Router(TOPICS, max_payload=4096, max_text=100)


def documented_methods() -> set[str]:
    """The method names in the first column of protocol §4's table."""
    section = (ROOT / "docs" / "protocol.md").read_text().split("## 4. RPC", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([a-z._]+)`", line.split("|")[1]))
    return names


def test_every_declared_method_is_documented_and_every_documented_one_declared() -> None:
    assert set(METHODS) == documented_methods()


def test_the_router_takes_params_lanes_and_the_device_rule_from_the_registry() -> None:
    for name, method in METHODS.items():
        cmd = ROUTER.route("im/alice/out/rpc", json.dumps({"jsonrpc": "2.0", "id": 1, "method": name,
                                                           "params": {}}).encode())
        # Every declared method is routed: to its params model (these params are mostly invalid).
        if isinstance(cmd, Reply):
            code = json.loads(cmd.publish.payload)["error"]["code"]
            assert code == -32602, (name, code)
        else:
            assert isinstance(cmd, Rpc) and isinstance(cmd.params, method.params) and not method.own_device
    group = ROUTER.route("im/alice/out/rpc", b'{"jsonrpc":"2.0","id":1,"method":"group.info","params":{"gid":"g1"}}')
    assert isinstance(group, Rpc) and METHODS["group.info"].lane == Lane.GROUP and group.lane_key == "g:g1"
    own = ROUTER.route("im/alice/out/rpc/phone", b'{"jsonrpc":"2.0","id":1,"method":"notifications","params":{}}')
    assert isinstance(own, Rpc) and own.device == "phone"
    unknown = ROUTER.route("im/alice/out/rpc", b'{"jsonrpc":"2.0","id":1,"method":"nope","params":{}}')
    assert isinstance(unknown, Reply) and json.loads(unknown.publish.payload)["error"]["code"] == -32601


def test_membership_methods_name_a_conversation_and_group_lanes_a_group() -> None:
    for method in METHODS.values():
        assert not method.membership or "conv" in method.params.model_fields
        assert method.lane != Lane.GROUP or "gid" in method.params.model_fields
    assert {m.name for m in METHODS.values() if m.membership} == {"history", "read", "conversation.settings", "pinned",
                                                                      "threads", "thread.read"}


def test_the_throttle_takes_the_rate_limit_class_from_the_registry() -> None:
    assert METHODS["search"].limit == Limit.SEARCH and METHODS["read"].limit == Limit.READ
    throttle = Throttle(TOPICS, ManualClock(0), RateLimits(rpcs=Rate(100, 100), searches=Rate(1, 1)))
    search = ROUTER.route("im/alice/out/rpc", b'{"jsonrpc":"2.0","id":1,"method":"search","params":{"q":"x"}}')
    history = ROUTER.route("im/alice/out/rpc", b'{"jsonrpc":"2.0","id":2,"method":"history","params":{"conv":"c"}}')
    assert throttle.check("alice", search) is search
    refused = throttle.check("alice", search)
    assert isinstance(refused, Reply)
    error = json.loads(refused.publish.payload)["error"]
    assert (error["code"], error["data"]["code"]) == (429, "rate_limited") and error["data"]["retry_after_ms"] > 0
    assert throttle.check("alice", history) is history  # another class: the search bucket is not its


@pytest.fixture
async def services(database_url: str) -> AsyncIterator[Services]:
    async with Database(database_url):
        svc = build_services(SystemClock())
        for uid in ("alice", "bob", "carol"):
            await svc.users.add_user(uid)
        yield svc


def dispatcher(svc: Services) -> Dispatcher:
    return Dispatcher(TOPICS, messages=svc.messages, conversations=svc.conversations, presence=svc.presence,
                      groups=svc.groups, reactions=svc.reactions, blocks=svc.blocks, profiles=svc.profiles,
                      contacts=svc.contacts, attachments=svc.attachments, notifications=svc.notifications,
                      push=None, search=None)


async def call(d: Dispatcher, uid: str, method: str, params: dict[str, object]) -> dict[str, object]:
    cmd = ROUTER.route(f"im/{uid}/out/rpc", json.dumps({"jsonrpc": "2.0", "id": 7, "method": method,
                                                        "params": params}).encode())
    assert isinstance(cmd, Rpc), cmd
    pubs = await d.handle(cmd)
    answer: dict[str, object] = json.loads(pubs[0].payload)
    return answer


async def test_a_part_that_is_not_running_is_unavailable_not_forbidden(services: Services) -> None:
    d = dispatcher(services)
    for method, params in (("push.register", {"platform": "fcm", "token": "t"}), ("search", {"q": "hello"})):
        error = (await call(d, "alice", method, params))["error"]
        assert error == {"code": 503, "message": f"{method.split('.')[0]} is not available",
                         "data": {"code": "unavailable"}}


async def test_a_membership_method_answers_not_found_to_a_non_member(services: Services) -> None:
    from services.messages.commands import SendCommand

    await services.messages.send(SendCommand("alice", "c1", "bob", None, "text", "hi", None))
    d = dispatcher(services)
    for method, params in (("history", {"conv": "d:alice:bob"}), ("read", {"conv": "d:alice:bob", "seq": 1}),
                           ("conversation.settings", {"conv": "d:alice:bob", "muted": True})):
        assert (await call(d, "carol", method, params))["error"] == {
            "code": 404, "message": "conversation 'd:alice:bob' not found", "data": {"code": "not_found"}}
        assert "result" in await call(d, "bob", method, params)
