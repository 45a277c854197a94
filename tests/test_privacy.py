"""Data export and erasure (docs/privacy.md), end to end: a real server, real MQTT clients, the
admin API and the command line. A user with everything a user can leave behind (profile and
avatar, messages with attachments in a 1:1 and groups, reactions, blocks, contacts, a pending
scheduled send, a push target with a pending push, indexed messages) is exported, then erased;
the checks look at the database table by table, the search index and the object store."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import httpx
import pytest
from tortoise import connections

from config.settings import Settings
from imgate.app import App
from tests.conftest import ADMIN_SECRET, Users
from tests.helpers import Device, connect, on, tweak, wait_event
from tests.test_attachments import PNG, upload

MARKERS = ("erinsecret", "ERINSTATUS", "Erin Secret", "erin.png", "erinhook", "Erin")  # what only erin wrote
# Where the uid may stay after an erasure (docs/privacy.md, "Erasure"): the erased row, the auth
# log, memberships (windows), the tombstones' sender, their "by", membership events and quotes
# naming them, and the uploads' tombstone rows. (Conversation ids naming them are taken out first.)
UID_MAY_STAY = {("users", "uid"), ("auth_events", "uid"), ("members", "uid"), ("messages", "sender"),
                ("messages", "data"), ("messages", "reply"), ("uploads", "owner"),
                ("audit_log", "target")}  # who did what to the uid stays; the entries' detail is redacted


@pytest.fixture
def admin_secret() -> str:
    return ADMIN_SECRET


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings = tweak(settings, "web", enabled=True, port=0)
    settings = tweak(settings, "push", webhook_secret="privacy-webhook-secret", interval_s=0.05,
                     webhook_allow=["127.0.0.1"], webhook_allow_http=True, max_attempts=100)
    if settings.database_url().startswith("postgres"):
        settings = tweak(settings, "search", backend="postgres")
    return tweak(settings, "search", interval_s=0.05)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IMGATE_DATABASE__URL": settings.database_url(),
           "IMGATE_SEARCH__BACKEND": settings.search.backend,
           "IMGATE_PRIVACY__ERASE_MESSAGES": settings.privacy.erase_messages}
    return subprocess.run([sys.executable, "-m", "imgate", "--data-dir", str(settings.data_dir), *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


async def hits(dev: Device, q: str) -> list[str]:
    return [m["text"] for m in (await dev.result("search", {"q": q}))["messages"]]


async def rows(table: str) -> list[dict[str, Any]]:
    return list(await connections.get("default").execute_query_dict(f'SELECT * FROM "{table}"'))


async def tables() -> list[str]:
    conn = connections.get("default")
    if conn.capabilities.dialect == "postgres":
        found = await conn.execute_query_dict(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        return sorted(r["table_name"] for r in found)
    found = await conn.execute_query_dict("SELECT name FROM sqlite_master WHERE type = 'table'")
    return sorted(r["name"] for r in found if not r["name"].startswith("sqlite_"))


async def until(check: Any) -> None:
    """Background work (push fan-out, indexing) follows queues: ask until it is done (bounded)."""
    async with asyncio.timeout(10):
        while not await check():
            await asyncio.sleep(0.02)  # a polling interval, not synchronisation


class Story:
    """What erin leaves behind: the fixture of both modes."""

    def __init__(self, app: App, users: Users, http: httpx.AsyncClient) -> None:
        self.app, self.users, self.http = app, users, http
        self.uploads: list[str] = []
        self.ids: dict[str, str] = {}

    async def play(self, erin: Device, bob: Device, carol: Device) -> None:
        avatar = await upload(erin, self.http, PNG, name="erin.png")
        await erin.result("profile.set", {"name": "Erin Secret", "status": "ERINSTATUS", "avatar": avatar["key"]})
        image = await upload(erin, self.http, PNG[:700], name="erin.png")
        self.uploads = [avatar["key"], image["key"]]
        self.ids["alpha"] = (await erin.send_and_ack("e1", "bob", "erinsecret alpha"))["id"]
        await erin.send({"cid": "e2", "to": "bob", "type": "image", "text": "erinsecret pic", "attachment": image})
        self.ids["pic"] = (await erin.inbox.wait_for(on("/in/ack", cid="e2")))[0].json["id"]
        self.ids["reply"] = (await bob.send_and_ack("b1", "erin", "bob answers"))["id"]
        # g1: carol's group; erin joins after carol's first words (outside erin's window).
        g1 = await carol.result("group.create", {"name": "g1", "members": ["bob"]})
        await carol.send({"cid": "c0", "group": g1["gid"], "type": "text", "text": "carol early words"})
        await carol.inbox.wait_for(on("/in/ack", cid="c0"))
        await carol.result("group.add", {"gid": g1["gid"], "members": ["erin"]})
        await erin.send({"cid": "e3", "group": g1["gid"], "type": "text", "text": "erinsecret bravo"})
        self.ids["bravo"] = (await erin.inbox.wait_for(on("/in/ack", cid="e3")))[0].json["id"]
        await carol.send({"cid": "c1", "group": g1["gid"], "type": "text", "text": "carol later words"})
        await carol.inbox.wait_for(on("/in/ack", cid="c1"))
        # g2: erin's own group: bob takes it over when erin goes.
        self.g2 = (await erin.result("group.create", {"name": "g2", "members": ["bob"]}))["gid"]
        self.g1 = g1["gid"]
        await erin.result("reaction.add", {"id": self.ids["reply"], "emoji": "👍"})
        await bob.result("reaction.add", {"id": self.ids["alpha"], "emoji": "🎉"})
        await erin.result("block.add", {"uid": "dave"})
        await erin.result("contact.request", {"uid": "carol", "text": "erinsecret hello"})
        at = int(time.time() * 1000) + 86_400_000
        await erin.send({"cid": "e4", "to": "bob", "type": "text", "text": "erinsecret later", "at": at})
        await erin.inbox.wait_for(on("/in/ack", cid="e4"))
        await erin.result("push.register", {"platform": "webhook",
                                            "token": f"http://127.0.0.1:{dead_port()}/erinhook"})
        assert sorted(await self.searched(bob)) == ["erinsecret alpha", "erinsecret bravo"]  # (text is indexed)

    async def searched(self, dev: Device) -> list[str]:
        async def found() -> bool:
            return len(await hits(dev, "erinsecret")) >= 2
        await until(found)
        return await hits(dev, "erinsecret")

    async def pending_push(self, bob: Device) -> None:
        """A push to erin's dead webhook, pending (retried): bob writes while erin is offline."""
        async def offline() -> bool:
            return not (await bob.result("presence", {"uids": ["erin"]}))["presence"]["erin"]["online"]
        await until(offline)
        await bob.send_and_ack("b2", "erin", "bob while she is away")

        async def queued() -> bool:
            return any(r["payload"] is not None for r in await rows("push_jobs"))
        await until(queued)


def read_archive(data: bytes) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]], zipfile.ZipFile]:
    archive = zipfile.ZipFile(io.BytesIO(data))
    lines = {name.removesuffix(".jsonl"): [json.loads(line) for line in archive.read(name).decode().splitlines()]
             for name in archive.namelist() if name.endswith(".jsonl")}
    return json.loads(archive.read("manifest.json")), lines, archive


def check_archive(data: bytes, story: Story) -> dict[str, Any]:
    manifest, lines, archive = read_archive(data)
    assert manifest["format"] == 1 and manifest["uid"] == "erin"
    assert manifest["counts"] == {k: len(v) for k, v in lines.items()}
    profile = json.loads(archive.read("profile.json"))
    assert profile["uid"] == "erin" and profile["account_name"] == "Erin" and profile["erased_at"] is None
    assert profile["profile"]["name"] == "Erin Secret" and profile["profile"]["status"] == "ERINSTATUS"
    devices = lines["devices"]
    assert {(d["kind"], d.get("device")) for d in devices} >= {("token", "phone"), ("presence", "phone")}
    assert [d["token"].endswith("/erinhook") for d in devices if d["kind"] == "push_target"] == [True]
    assert all("token_hash" not in d for d in devices)
    convs = {c["conv"]: c for c in lines["conversations"]}
    assert set(convs) == {"d:bob:erin", f"g:{story.g1}", f"g:{story.g2}"}
    assert convs[f"g:{story.g2}"]["role"] == "owner" and convs["d:bob:erin"]["peer"] == "bob"
    texts = {m["text"] for m in lines["messages"]}
    assert {"erinsecret alpha", "erinsecret pic", "erinsecret bravo", "bob answers", "carol later words"} <= texts
    assert "carol early words" not in texts  # before erin's window
    assert all(set(m) >= {"conv", "seq", "id", "sender", "type", "text", "data", "ts", "edited_at", "recalled"}
               for m in lines["messages"])
    assert [(r["message_id"], r["emoji"]) for r in lines["reactions"]] == [(story.ids["reply"], "👍")]
    assert [b["blocked"] for b in lines["blocks"]] == ["dave"]
    assert [(c["from"], c["to"], c["text"]) for c in lines["contacts"]] == [("erin", "carol", "erinsecret hello")]
    uploads = {u["key"]: u for u in lines["uploads"]}
    assert set(uploads) == set(story.uploads)
    assert archive.read(uploads[story.uploads[0]]["file"]) == PNG
    assert archive.read(f"files/{story.uploads[1]}") == PNG[:700]
    return manifest


async def test_export_and_erase(app: App, users: Users, api: httpx.AsyncClient, http: httpx.AsyncClient,
                                settings: Settings) -> None:
    await users.add("erin", "bob", "carol", "dave")
    story = Story(app, users, http)
    async with connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob, \
            connect(app.mqtt_port, "carol", "phone", await users.token("carol")) as carol:
        async with connect(app.mqtt_port, "erin", "phone", await users.token("erin")) as erin:
            await story.play(erin, bob, carol)
        await story.pending_push(bob)
        token = await users.token("erin", "tablet")
        async with connect(app.mqtt_port, "erin", "tablet", token) as erin:
            # ---- export: the API and the command line give the same archive ----
            r = await api.get("/v1/users/erin/export")
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == "application/zip"
            assert r.headers["content-disposition"] == 'attachment; filename="imgate-export-erin.zip"'
            manifest = check_archive(r.content, story)
            assert not list((settings.data_dir / "exports").iterdir())  # the temporary file is gone
            out = settings.data_dir / "erin.zip"
            done = cli(settings, "user", "export", "erin", "--out", str(out))
            assert done.returncode == 0, done.stderr
            assert check_archive(out.read_bytes(), story)["counts"] == manifest["counts"]
            assert out.stat().st_mode & 0o777 == 0o600  # personal data: the owner's only
            assert (await api.get("/v1/users/nobody/export")).status_code == 404

            # ---- erasure ----
            r = await api.post("/v1/users/erin/erase")
            assert r.status_code == 200, r.text
            erased = r.json()
            assert erased["messages"] == 3 and erased["groups_left"] == 2 and erased["scheduled_cancelled"] == 1
            assert erased["uploads_deleted"] == 2 and erased["pushes_dropped"] >= 1
            await wait_event(erin.disconnected)
        with pytest.raises(aiomqtt.MqttError):
            async with connect(app.mqtt_port, "erin", "tablet", token):
                pass
        again = await api.post("/v1/users/erin/erase")  # idempotent: nothing left to do
        assert again.status_code == 200 and again.json()["erased_at"] == erased["erased_at"]
        assert again.json()["messages"] == 0
        assert (await api.post("/v1/users/erin/enable")).status_code == 403

        # ---- what the others see: tombstones, the group handed over ----
        history = (await bob.result("history", {"conv": "d:bob:erin"}))["messages"]
        mine = {m["id"]: m for m in history}
        for key in ("alpha", "pic"):
            assert mine[story.ids[key]]["type"] == "recalled" and mine[story.ids[key]]["recalled_by"] == "erin"
            assert "text" not in mine[story.ids[key]]
        assert mine[story.ids["reply"]]["text"] == "bob answers"
        assert (await bob.result("group.info", {"gid": story.g2}))["owner"] == "bob"
        assert [m["uid"] for m in (await carol.result("group.info", {"gid": story.g1}))["members"]] == ["carol", "bob"]
        assert await hits(bob, "erinsecret") == []

    await nothing_of_erin_remains(app, settings, story)
    # The uid is never given again (an attempt the audit log keeps: made after the scan above).
    assert (await api.post("/v1/users", json={"uid": "erin"})).status_code == 409


async def nothing_of_erin_remains(app: App, settings: Settings, story: Story) -> None:
    """The database, table by table and column by column; the search index; the object store."""
    names = await tables()
    assert {"users", "messages", "uploads", "push_jobs", "reactions", "profiles"} <= set(names)
    left = []
    for table in names:
        if table in ("aerich", "imgate_meta"):  # the schema's bookkeeping (model source names "Erin"-like words)
            continue
        for row in await rows(table):
            for column, value in row.items():
                text = str(value)
                if any(m in text for m in MARKERS):
                    left.append((table, column, text[:120]))
                if "erin" in text.replace("d:bob:erin", "") and (table, column) not in UID_MAY_STAY:
                    left.append((table, column, text[:120]))
    assert left == [], "\n".join(map(str, left))
    user = (await connections.get("default").execute_query_dict(
        "SELECT name, disabled, erased_at FROM users WHERE uid = 'erin'"))[0]
    assert user["name"] == "" and user["disabled"] and user["erased_at"] is not None
    assert await rows("push_targets") == [] and await rows("device_tokens") != []  # (the others' tokens)
    if settings.search.backend == "embedded":
        index = sqlite3.connect(settings.data_dir / "search.db")
        try:
            assert index.execute("SELECT count(*) FROM message_terms WHERE message_terms MATCH 'erinsecret'"
                                 ).fetchone() == (0,)
            assert index.execute("SELECT count(*) FROM messages WHERE text LIKE '%erinsecret%'").fetchone() == (0,)
        finally:
            index.close()
    else:  # the postgres backend's table was in the scan above (search_messages)
        assert "search_messages" in names
    for key in story.uploads:
        assert not (settings.data_dir / "files" / key[-2:] / key).exists()


async def test_exports_are_limited(app: App, users: Users, api: httpx.AsyncClient) -> None:
    """One export per user at a time, privacy.max_exports (2) at once: more are rate_limited."""
    await users.add("erin", "bob", "carol")
    assert app.privacy is not None
    async with app.privacy._export_slot("erin"):
        r = await api.get("/v1/users/erin/export")
        assert (r.status_code, r.json()["error"]["code"]) == (429, "rate_limited")
        assert (await api.get("/v1/users/bob/export")).status_code == 200
        async with app.privacy._export_slot("bob"):
            assert (await api.get("/v1/users/carol/export")).status_code == 429
    assert (await api.get("/v1/users/erin/export")).status_code == 200


async def test_a_bot_is_exported_as_a_bot_and_erased(app: App, users: Users, api: httpx.AsyncClient) -> None:
    """A bot's archive says its kind; an erased bot sends nothing more and its uid is not reused."""
    await users.add("bob")
    assert (await api.post("/v1/bots", json={"uid": "helper", "name": "Helper"})).status_code == 201
    sent = await api.post("/v1/bots/helper/messages", json={"cid": "h1", "to": "bob", "text": "hello"})
    assert sent.status_code == 201, sent.text
    _, lines, archive = read_archive((await api.get("/v1/users/helper/export")).content)
    profile = json.loads(archive.read("profile.json"))
    assert (profile["uid"], profile["kind"], profile["account_name"]) == ("helper", "bot", "Helper")
    assert [m["text"] for m in lines["messages"]] == ["hello"]
    human = json.loads(read_archive((await api.get("/v1/users/bob/export")).content)[2].read("profile.json"))
    assert human["kind"] == "user"
    erased = await api.post("/v1/users/helper/erase")
    assert erased.status_code == 200 and erased.json()["messages"] == 1
    again = await api.post("/v1/bots/helper/messages", json={"cid": "h2", "to": "bob", "text": "still here"})
    assert again.status_code == 404, again.text
    assert (await api.post("/v1/bots", json={"uid": "helper"})).status_code == 409
    bot = (await api.get("/v1/bots/helper")).json()
    assert (bot["disabled"], bot["name"], bot["kind"]) == (True, "", "bot")


async def test_an_interrupted_erasure_is_finished_by_the_next(app: App, users: Users, api: httpx.AsyncClient) -> None:
    """Each step is idempotent: an erasure that stopped after its first step (the account) is
    finished by running it again."""
    await users.add("erin", "bob")
    assert app.services is not None
    async with connect(app.mqtt_port, "erin", "phone", await users.token("erin")) as erin, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        sent = await erin.send_and_ack("e1", "bob", "erinsecret words")
        await erin.result("block.add", {"uid": "bob"})
        first = await app.services.users.erase("erin")  # the first step alone, as if the process died then
        await wait_event(erin.disconnected)
        assert (await bob.result("history", {"conv": "d:bob:erin"}))["messages"][0]["text"] == "erinsecret words"
        r = await api.post("/v1/users/erin/erase")
        assert r.status_code == 200 and (r.json()["erased_at"], r.json()["messages"]) == (first, 1)
        assert (await bob.result("history", {"conv": "d:bob:erin"}))["messages"][0]["type"] == "recalled"
        assert await rows("blocks") == []
        assert sent["id"] not in {h["id"] for h in (await bob.result("search", {"q": "erinsecret"}))["messages"]}


@pytest.fixture
def keep_settings(settings: Settings) -> Settings:
    return tweak(settings, "privacy", erase_messages="keep")


async def test_erase_keeping_the_messages_from_the_command_line(keep_settings: Settings,
                                                                http: httpx.AsyncClient) -> None:
    async with App(keep_settings) as app:
        assert app.services is not None
        users = Users(app.services)
        await users.add("erin", "bob")
        async with connect(app.mqtt_port, "erin", "phone", await users.token("erin")) as erin, \
                connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
            image = await upload(erin, http, PNG, name="erin.png")
            kept = (await erin.send_and_ack("e1", "bob", "kept words"))["id"]
            await erin.send({"cid": "e2", "to": "bob", "type": "image", "attachment": image})
            await erin.inbox.wait_for(on("/in/ack", cid="e2"))
            unsent = await upload(erin, http, PNG[:300], name="unsent.png")
            refused = cli(keep_settings, "user", "erase", "erin")  # not a terminal, no --yes
            assert refused.returncode == 2 and "--yes" in refused.stderr
            done = cli(keep_settings, "user", "erase", "erin", "--yes")
            assert done.returncode == 0, done.stderr
            assert "0 message(s) tombstoned" in done.stderr and "1 upload(s) deleted" in done.stderr
            await wait_event(erin.disconnected)  # the server saw the CLI's auth event
            history = {m["id"]: m for m in (await bob.result("history", {"conv": "d:bob:erin"}))["messages"]}
            assert history[kept]["text"] == "kept words"
            assert (await bob.result("file.url", {"keys": [image["key"]]}))["urls"]  # its attachment stays
            assert not (keep_settings.data_dir / "files" / unsent["key"][-2:] / unsent["key"]).exists()
            assert (await bob.result("profile.get", {"uids": ["erin"]}))["profiles"] == {}
