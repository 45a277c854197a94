"""Profiles (issue 15): display name, avatar and status text; ``profile.get`` in batches,
``profile.set``; a change reaches the user's own devices and its contacts (its 1:1 peers) as a
``profile`` event; the admin API reads and corrects them."""

from __future__ import annotations

import httpx
import pytest

from imgate.app import App
from tests.conftest import ADMIN_SECRET, Users
from tests.helpers import connect, on


@pytest.fixture
def admin_secret() -> str:
    return ADMIN_SECRET


async def test_a_profile_change_reaches_the_contacts_and_is_read_in_batches(app: App, users: Users) -> None:
    await users.add("alice", "bob", "carol")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob, \
            connect(app.mqtt_port, "carol", "phone", await users.token("carol")) as carol:
        await alice.send_and_ack("c1", "bob", "hi")  # bob is alice's contact; carol is not
        fresh = await carol.result("profile.get", {"uids": ["alice", "ghost"]})
        # Never set: the account name (users.add names alice "Alice").
        assert fresh == {"profiles": {"alice": {"uid": "alice", "name": "Alice", "avatar": "", "status": "",
                                                "updated_at": 0}}}
        set_ = await alice.result("profile.set", {"name": "Alice A.", "status": "on holiday 🏖",
                                                  "avatar": "https://cdn.example/alice.png"})
        assert (set_["name"], set_["status"], set_["avatar"]) == ("Alice A.", "on holiday 🏖",
                                                                  "https://cdn.example/alice.png")
        for device in (alice, bob):
            event = (await device.inbox.wait_for(on("/in/event", type="profile")))[0].json
            assert event == {"type": "profile", **set_}
        partial = await alice.result("profile.set", {"status": ""})
        assert (partial["name"], partial["status"]) == ("Alice A.", "")
        got = await carol.result("profile.get", {"uids": ["alice", "bob"]})
        assert got["profiles"]["alice"] == partial and got["profiles"]["bob"]["name"] == "Bob"
        assert carol.inbox.matching(on("/in/event", type="profile")) == []  # not a contact


async def test_the_name_shown_is_the_profiles_else_the_account_name(app: App, users: Users) -> None:
    """``imgate user add ann --name Ann`` makes "Ann" what everyone sees, until ann sets a name of
    her own; clearing it goes back to "Ann". A user added without a name has an empty one (the
    client shows the uid); an account name's control characters are left out, as profile.set
    refuses them."""
    await users.services.users.add_user("ann", "Ann")
    await users.services.users.add_user("ben")
    await users.services.users.add_user("cal", "Cal\u0007\nvin\u202e")
    async with connect(app.mqtt_port, "ann", "phone", await users.token("ann")) as ann, \
            connect(app.mqtt_port, "ben", "phone", await users.token("ben")) as ben:
        await ann.send_and_ack("c1", "ben", "hi")  # ben is ann's contact: he gets her profile events
        got = (await ben.result("profile.get", {"uids": ["ann", "ben", "cal"]}))["profiles"]
        assert (got["ann"]["name"], got["ben"]["name"], got["cal"]["name"]) == ("Ann", "", "Calvin")
        own = await ann.result("profile.set", {"name": "Annie"})
        assert own["name"] == "Annie"
        assert (await ben.result("profile.get", {"uids": ["ann"]}))["profiles"]["ann"]["name"] == "Annie"
        cleared = await ann.result("profile.set", {"name": ""})
        assert cleared["name"] == "Ann"
        events = await ben.inbox.wait_for(on("/in/event", type="profile"), count=2)
        assert [e.json["name"] for e in events] == ["Annie", "Ann"]


@pytest.mark.parametrize("params", [
    {}, {"name": "x" * 65}, {"name": "bell\u0007"}, {"name": "\u202elive"}, {"status": "a\u2066b"},
    {"avatar": "javascript:alert(1)"},
    {"avatar": "data:image/png;base64,AAAA"}, {"avatar": "https://x/\"><script>"}, {"status": "s" * 141},
])
async def test_bad_profiles_are_refused(app: App, users: Users, params: dict[str, str]) -> None:
    await users.add("alice")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
        assert (await alice.rpc("profile.set", params))["error"]["code"] == -32602


async def test_operators_read_and_correct_a_profile(app: App, users: Users) -> None:
    await users.add("alice")
    assert app.admin is not None
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.admin.port}",
                                 headers={"Authorization": f"Bearer {ADMIN_SECRET}"}) as admin:
        r = await admin.put("/v1/users/alice/profile", json={"name": "Alice"})
        assert r.status_code == 200 and r.json()["name"] == "Alice"
        assert (await admin.get("/v1/users/alice/profile")).json()["name"] == "Alice"
        assert (await admin.put("/v1/users/alice/profile", json={"avatar": "javascript:x"})).status_code == 400
        assert (await admin.get("/v1/users/ghost/profile")).status_code == 404


def test_profile_changes_have_a_slow_bucket_of_their_own() -> None:
    """A profile change tells every contact (there may be thousands): 10 at once, then 0.2/s,
    whatever the message and RPC budgets."""
    from bridge.ratelimit import Throttle
    from bridge.router import Reply, Rpc, Topics
    from bridge.wire import ProfileSetParams
    from tests.helpers import ManualClock

    clock = ManualClock(0)
    throttle = Throttle(Topics("im"), clock)
    params = ProfileSetParams(status="busy")
    calls = [throttle.check("alice", Rpc("alice", n, "profile.set", params, "alice")) for n in range(11)]
    assert [isinstance(c, Reply) for c in calls] == [False] * 10 + [True]
    clock.ms += 5_000  # one more token
    assert isinstance(throttle.check("alice", Rpc("alice", 11, "profile.set", params, "alice")), Rpc)
