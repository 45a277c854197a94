from imgate.app import App
from tests.conftest import Users
from tests.helpers import connect, on


async def test_alice_sends_bob_receives(app: App, users: Users) -> None:
    await users.add("alice", "bob")
    ta, tb = await users.token("alice"), await users.token("bob", "laptop", "web")
    async with connect(app.mqtt_port, "bob", "laptop", tb) as bob, \
               connect(app.mqtt_port, "alice", "phone", ta) as alice:
        ack = await alice.send_and_ack("c1", "bob", "hello")
        assert ack["seq"] == 1 and ack["conv"] == "d:alice:bob"
        got = (await bob.inbox.wait_for(on("/in/msg", cid="c1")))[0].json
        assert got["text"] == "hello" and got["from"] == "alice" and got["id"] == ack["id"]
