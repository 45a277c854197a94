"""Groups over the real broker and bridge: membership, roles, ordering, visibility, mentions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from config.settings import Settings
from imgate.app import App
from tests.conftest import Users
from tests.helpers import Device, connect, on, platform, tweak


@pytest.fixture
async def crowd(app: App, users: Users) -> AsyncIterator[dict[str, Device]]:
    """alice (owner-to-be), bob, carol, dave, eve: each connected with one device."""
    names = ["alice", "bob", "carol", "dave", "eve"]
    await users.add(*names)
    async with AsyncExitStack() as stack:
        yield {n: await stack.enter_async_context(connect(app.mqtt_port, n, "phone", await users.token(n)))
               for n in names}


async def make_group(owner: Device, *members: str, name: str = "team") -> dict:
    return await owner.result("group.create", {"name": name, "members": list(members)})


async def test_create_notifies_members_and_info_lists_roles(crowd: dict[str, Device]) -> None:
    alice, bob = crowd["alice"], crowd["bob"]
    g = await make_group(alice, "bob", "carol")
    assert g["conv"] == f"g:{g['gid']}" and g["seq"] == 1 and sorted(g["members"]) == ["alice", "bob", "carol"]
    event = (await bob.inbox.wait_for(on("/in/event", type="member")))[0].json
    assert (event["event"], event["conv"], event["seq"], event["from"]) == ("created", g["conv"], 1, "alice")
    assert sorted(event["added"]) == ["alice", "bob", "carol"]
    info = await bob.result("group.info", {"gid": g["gid"]})
    assert info["name"] == "team" and info["owner"] == "alice"
    assert info["members"][0] == {"uid": "alice", "role": "owner"}
    [conv] = (await bob.result("conversations"))["items"]
    assert (conv["conv"], conv["kind"], conv["name"], conv["peer"]) == (g["conv"], "group", "team", None)
    assert (await crowd["dave"].rpc("group.info", {"gid": g["gid"]}))["error"]["code"] == 404


async def test_group_message_is_stored_once_and_reaches_every_member(crowd: dict[str, Device]) -> None:
    alice, bob, carol, dave = crowd["alice"], crowd["bob"], crowd["carol"], crowd["dave"]
    g = await make_group(alice, "bob", "carol")
    await bob.send({"cid": "hello-all", "group": g["gid"], "type": "text", "text": "hi all"})
    ack = (await bob.inbox.wait_for(on("/in/ack", cid="hello-all")))[0].json
    assert (ack["conv"], ack["seq"]) == (g["conv"], 2)
    for member in (alice, bob, carol):
        got = (await member.inbox.wait_for(on("/in/msg", cid="hello-all")))[0].json
        assert (got["conv"], got["seq"], got["from"], got["text"]) == (g["conv"], 2, "bob", "hi all")
    # Barrier for dave (not a member): a 1:1 message sent after arrives; the group one never did.
    await alice.send_and_ack("dm", "dave")
    await dave.inbox.wait_for(on("/in/msg", cid="dm"))
    assert dave.inbox.matching(on("/in/msg", cid="hello-all")) == []


async def test_non_members_and_unknown_groups_get_clear_errors(crowd: dict[str, Device]) -> None:
    alice, dave = crowd["alice"], crowd["dave"]
    g = await make_group(alice, "bob")
    await dave.send({"cid": "intruder", "group": g["gid"], "type": "text", "text": "let me in"})
    err = (await dave.inbox.wait_for(on("/in/ack", cid="intruder")))[0].json["error"]
    assert err["code"] == "forbidden" and "not a member" in err["message"]
    await dave.send({"cid": "ghost", "group": "no-such-group", "type": "text", "text": "?"})
    assert (await dave.inbox.wait_for(on("/in/ack", cid="ghost")))[0].json["error"]["code"] == "not_found"
    assert (await dave.rpc("history", {"conv": g["conv"]}))["error"]["code"] == 404


async def test_joiners_see_history_from_their_join_and_leavers_up_to_their_removal(crowd: dict[str, Device]) -> None:
    alice, bob, dave = crowd["alice"], crowd["bob"], crowd["dave"]
    g = await make_group(alice, "bob")
    gid, conv = g["gid"], g["conv"]
    await alice.send({"cid": "before-dave", "group": gid, "type": "text", "text": "old news"})
    await alice.inbox.wait_for(on("/in/ack", cid="before-dave"))
    added = await alice.result("group.add", {"gid": gid, "members": ["dave"]})
    assert added["seq"] == 3 and "dave" in added["members"]
    await alice.send({"cid": "with-dave", "group": gid, "type": "text", "text": "welcome"})
    await dave.inbox.wait_for(on("/in/msg", cid="with-dave"))
    seen = [(m["seq"], m["type"]) for m in (await dave.result("history", {"conv": conv}))["messages"]]
    assert seen == [(3, "member"), (4, "text")]  # his own join event, then what came after

    removed = await alice.result("group.remove", {"gid": gid, "members": ["dave"]})
    assert removed["seq"] == 5 and "dave" not in removed["members"]
    gone = (await dave.inbox.wait_for(on("/in/event", type="member", event="removed")))[0].json
    assert gone["removed"] == ["dave"] and gone["seq"] == 5
    await alice.send({"cid": "after-dave", "group": gid, "type": "text", "text": "he is gone"})
    await bob.inbox.wait_for(on("/in/msg", cid="after-dave"))
    assert dave.inbox.matching(on("/in/msg", cid="after-dave")) == []
    seen = [m["seq"] for m in (await dave.result("history", {"conv": conv}))["messages"]]
    assert seen == [3, 4, 5]  # exactly his membership: join .. removal
    await dave.send({"cid": "still-here?", "group": gid, "type": "text", "text": "hello?"})
    assert (await dave.inbox.wait_for(on("/in/ack", cid="still-here?")))[0].json["error"]["code"] == "forbidden"
    assert all(c["conv"] != conv for c in (await dave.result("conversations"))["items"])
    # Everyone else's history has every event in order, without gaps.
    assert [m["seq"] for m in (await bob.result("history", {"conv": conv}))["messages"]] == [1, 2, 3, 4, 5, 6]


async def test_roles_decide_who_may_change_membership(crowd: dict[str, Device]) -> None:
    alice, bob, carol = crowd["alice"], crowd["bob"], crowd["carol"]
    g = await make_group(alice, "bob", "carol")
    gid = g["gid"]
    denied = await bob.rpc("group.add", {"gid": gid, "members": ["dave"]})
    assert denied["error"]["code"] == 403
    info = await alice.result("group.role", {"gid": gid, "uid": "bob", "role": "admin"})
    assert {"uid": "bob", "role": "admin"} in info["members"]
    assert "dave" in (await bob.result("group.add", {"gid": gid, "members": ["dave"]}))["members"]
    assert (await bob.rpc("group.remove", {"gid": gid, "members": ["alice"]}))["error"]["code"] == 403
    assert (await carol.rpc("group.role", {"gid": gid, "uid": "dave", "role": "admin"}))["error"]["code"] == 403
    # The owner leaves: the admin takes over.
    left = await alice.result("group.leave", {"gid": gid})
    assert "alice" not in left["members"]
    assert (await bob.result("group.info", {"gid": gid}))["owner"] == "bob"
    event = (await carol.inbox.wait_for(on("/in/event", type="member", event="left")))[0].json
    assert event["owner"] == "bob" and event["removed"] == ["alice"]


async def test_group_size_limit(settings: Settings) -> None:
    async with platform(tweak(settings, "limits", max_group_members=3), "a", "b", "c", "d") as (app, tokens):
        async with connect(app.mqtt_port, "a", "phone", tokens["a"]) as a:
            too_many = await a.rpc("group.create", {"name": "big", "members": ["b", "c", "d"]})
            assert too_many["error"]["code"] == 413 and "at most 3" in too_many["error"]["message"]
            g = await a.result("group.create", {"name": "ok", "members": ["b", "c"]})
            over = await a.rpc("group.add", {"gid": g["gid"], "members": ["d"]})
            assert over["error"]["code"] == 413


async def test_mentions_flag_the_mentioned_and_non_members_are_dropped(crowd: dict[str, Device]) -> None:
    alice, bob, carol = crowd["alice"], crowd["bob"], crowd["carol"]
    g = await make_group(alice, "bob", "carol")
    await alice.send({"cid": "ping-bob", "group": g["gid"], "type": "text", "text": "@bob look",
                      "mentions": ["bob"]})
    to_bob = (await bob.inbox.wait_for(on("/in/msg", cid="ping-bob")))[0].json
    to_carol = (await carol.inbox.wait_for(on("/in/msg", cid="ping-bob")))[0].json
    assert to_bob["mentioned"] is True and to_bob["mentions"] == ["bob"]
    assert "mentioned" not in to_carol and to_carol["mentions"] == ["bob"]
    ack = (await alice.inbox.wait_for(on("/in/ack", cid="ping-bob")))[0].json
    assert "mentions_dropped" not in ack
    # dave is not a member: his mention is dropped, the message goes, and the ack says what was dropped.
    await alice.send({"cid": "ping-dave", "group": g["gid"], "type": "text", "text": "@dave @bob",
                      "mentions": ["dave", "bob"]})
    ack = (await alice.inbox.wait_for(on("/in/ack", cid="ping-dave")))[0].json
    assert "error" not in ack and ack["mentions_dropped"] == ["dave"]
    to_bob = (await bob.inbox.wait_for(on("/in/msg", cid="ping-dave")))[0].json
    assert to_bob["mentioned"] is True and to_bob["mentions"] == ["bob"]


async def test_group_unread_counts_and_read_receipts(app: App, users: Users, crowd: dict[str, Device]) -> None:
    alice, bob = crowd["alice"], crowd["bob"]
    g = await make_group(alice, "bob")
    for i in range(3):
        await alice.send({"cid": f"g{i}", "group": g["gid"], "type": "text", "text": str(i)})
    await alice.inbox.wait_for(on("/in/ack", cid="g2"))
    [conv] = (await bob.result("conversations"))["items"]
    assert conv["unread"] == 4 and conv["last"]["cid"] == "g2"  # the created event counts too
    [mine] = (await alice.result("conversations"))["items"]
    assert mine["unread"] == 0
    async with connect(app.mqtt_port, "bob", "desk", await users.token("bob", "desk")) as bob_desk:
        assert (await bob.result("read", {"conv": g["conv"], "seq": 4}))["unread"] == 0
        await bob_desk.inbox.wait_for(on("/in/event", type="read", seq=4))
    receipt = (await alice.inbox.wait_for(on("/in/event", type="read")))[0].json  # a small group: receipts on
    assert receipt == {"type": "read", "conv": g["conv"], "from": "bob", "seq": 4}


async def test_large_groups_send_no_read_receipts(settings: Settings) -> None:
    async with platform(tweak(settings, "limits", group_receipts_max=1), "alice", "bob") as (app, tokens):
        async with connect(app.mqtt_port, "alice", "phone", tokens["alice"]) as alice, \
                   connect(app.mqtt_port, "bob", "phone", tokens["bob"]) as bob:
            g = await alice.result("group.create", {"name": "g", "members": ["bob"]})
            assert (await bob.result("read", {"conv": g["conv"], "seq": 1}))["read_seq"] == 1
            await bob.inbox.wait_for(on("/in/event", type="read"))  # bob's own devices still sync
            await bob.send_and_ack("barrier", "alice")
            await alice.inbox.wait_for(on("/in/msg", cid="barrier"))
            assert alice.inbox.matching(on("/in/event", type="read")) == []


async def test_a_removed_member_cannot_mark_read_nor_learn_the_group_state(crowd: dict[str, Device]) -> None:
    """Attack: a removed member still called ``read`` and learned the group's ``last_seq`` (its
    ``unread``), and the members got its receipts. Only current members may mark read."""
    alice, bob, carol = crowd["alice"], crowd["bob"], crowd["carol"]
    g = await make_group(alice, "bob", "carol")
    await alice.result("group.remove", {"gid": g["gid"], "members": ["bob"]})
    await alice.send({"cid": "after-bob", "group": g["gid"], "type": "text", "text": "bob is gone"})
    await carol.inbox.wait_for(on("/in/msg", cid="after-bob"))
    refused = await bob.rpc("read", {"conv": g["conv"], "seq": 10_000})
    assert refused["error"]["data"]["code"] == "not_found" and "result" not in refused
    await bob.client.publish("im/bob/out/event", b'{"type": "read", "conv": "%s", "seq": 3}' % g["conv"].encode(),
                             qos=1)
    # A current member's read goes through; nobody got a receipt from bob before it.
    assert (await carol.result("read", {"conv": g["conv"], "seq": 3}))["read_seq"] == 3
    await alice.inbox.wait_for(on("/in/event", type="read", **{"from": "carol"}))
    assert alice.inbox.matching(on("/in/event", type="read", **{"from": "bob"})) == []
