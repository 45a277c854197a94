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


async def test_the_data_files_are_private(tmp_path) -> None:
    """Attack: the database and search files were created 0644 (readable by every local user).
    The data directory imgate creates is 0700; the database, its WAL and the search index 0600;
    the attachments' directory (and its signing key) likewise."""
    import stat

    from config.settings import load_settings
    from imgate.app import App

    data = tmp_path / "data"
    settings = load_settings(None, {"data_dir": data, "mqtt": {"port": 0, "ws_port": 0}, "web": {"port": 0}})
    async with App(settings) as app:
        assert app.search is not None
        await app.search.index_pending()  # opens the search index
        files = sorted(p.name for p in data.iterdir())
        assert {"imgate.db", "search.db", "files"} <= set(files)
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        for name in files:
            assert stat.S_IMODE((data / name).stat().st_mode) == (0o700 if name == "files" else 0o600), name
        assert stat.S_IMODE((data / "files" / ".signing-key").stat().st_mode) == 0o600
