"""examples/echo-bot: the example bot, run as its own process against the real server."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx
import pytest

from imgate.app import App
from tests.conftest import ADMIN_SECRET, Users
from tests.helpers import WAIT, connect, on

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "echo-bot" / "echo_bot.py"


@pytest.fixture
def admin_secret() -> str:
    return ADMIN_SECRET


async def test_the_echo_bot_answers_a_user(app: App, api: httpx.AsyncClient, users: Users) -> None:
    await users.add("alice")
    assert (await api.post("/v1/bots", json={"uid": "echo", "name": "Echo"})).status_code == 201
    token = (await api.post("/v1/users/echo/tokens", json={"device": "srv", "platform": "bot"})).json()["token"]
    env = {**os.environ, "IMGATE_HOST": "127.0.0.1", "IMGATE_PORT": str(app.mqtt_port), "BOT_UID": "echo",
           "BOT_TOKEN": token}
    proc = await asyncio.create_subprocess_exec(sys.executable, str(SCRIPT), env=env, stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), WAIT)) == b"ready\n"
        async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as alice:
            ack = await alice.send_and_ack("a1", "echo", "hello bot")
            got = (await alice.inbox.wait_for(on("/in/msg", **{"from": "echo"})))[0].json
            assert got["text"] == "echo: hello bot" and got["bot"] is True and got["conv"] == "d:alice:echo"
            assert got["reply"]["id"] == ack["id"]
            # In a group it answers only when mentioned.
            gid = (await alice.result("group.create", {"name": "g", "members": ["echo"]}))["gid"]
            await alice.send({"cid": "g1", "group": gid, "type": "text", "text": "not for you"})
            await alice.send({"cid": "g2", "group": gid, "type": "text", "text": "@echo hi", "mentions": ["echo"]})
            answer = (await alice.inbox.wait_for(on("/in/msg", conv=f"g:{gid}", **{"from": "echo"})))[0].json
            assert answer["text"] == "echo: @echo hi"
            history = await alice.result("history", {"conv": f"g:{gid}"})
            assert [m["text"] for m in history["messages"] if m["type"] == "text"] == \
                ["not for you", "@echo hi", "echo: @echo hi"]
    finally:
        proc.terminate()
        await proc.wait()
