"""Runs the walkthrough of docs/scale-out.md as written: ``make rabbitmq``, ``imgate migrate``,
``imgate api``, two ``imgate bridge`` and ``imgate worker`` from its first block (each in the
background, as in its own terminal), then its devices block and its search block as one shell
script.

The changes made to the text: the database name is a fresh one (``imgate_cluster`` becomes
``imgate_walk_…``, also given to the processes as IMGATE_DATABASE__URL, which overrides the
config file), the RabbitMQ node's data directory is a temporary one (``DATA``), and between the
devices and the search blocks the script waits until the worker has indexed the message (a
reader of the walkthrough takes longer than that to type the next command; the search block
itself runs once). What the two blocks print is compared with the outputs the page shows under
their last commands. The ports are the walkthrough's own (5673, 1885,
15673, 15676, 25673, 8080-8082): the test skips when one is taken."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import PG_DSN
from tests.docblocks import assert_shown, commented
from tests.docblocks import block as page_block
from tests.rabbitmq import installed

ROOT = Path(__file__).resolve().parent.parent
PORTS = (5673, 1885, 15673, 15676, 25673, 8080, 8081, 8082)
START = 90.0

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(os.environ.get("IMGATE_TEST_DB") == "postgres", reason="on PostgreSQL in either pass: once"),
    pytest.mark.skipif(not installed() or shutil.which("mosquitto_sub") is None or shutil.which("createdb") is None,
                       reason="needs rabbitmq-server, mosquitto-clients and createdb"),
    pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "imgate").exists(), reason="needs the checkout's .venv"),
]


PAGE = "docs/scale-out.md"


def block(name: str) -> str:
    return page_block(PAGE, name)


def taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


async def until_line(proc: asyncio.subprocess.Process, pattern: str, seen: list[str]) -> None:
    """Read ``proc``'s output until a line contains ``pattern`` (fails if it ends first)."""
    assert proc.stdout is not None
    async with asyncio.timeout(START):
        while line := await proc.stdout.readline():
            seen.append(line.decode(errors="replace"))
            if pattern in seen[-1]:
                return
    raise AssertionError(f"{pattern!r} never came:\n{''.join(seen[-30:])}")


async def drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    while await proc.stdout.readline():
        pass


@pytest.fixture
async def terminals(tmp_path: Path) -> AsyncIterator[tuple[dict[str, str], list[str]]]:
    """The first block's commands, each running (the long-lived ones in the background)."""
    busy = [p for p in PORTS if taken(p)]
    if busy:
        pytest.skip(f"the walkthrough's ports {busy} are taken")
    database = f"imgate_walk_{uuid.uuid4().hex[:10]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMGATE_", "RABBITMQ_", "ERL_"))}
    env.update({"DATA": str(tmp_path / "rabbitmq"), "IMGATE_DATABASE__URL": f"{PG_DSN}/{database}",
                "PYTHONUNBUFFERED": "1"})
    lines = [line.split("  #")[0].strip() for line in block("scale-out").splitlines() if line.strip()]
    assert lines[0].startswith("make rabbitmq") and lines[1].startswith("createdb") and len(lines) == 6
    procs: list[asyncio.subprocess.Process] = []
    drains: list[asyncio.Task[None]] = []  # held: the loop keeps only weak references to tasks
    seen: list[str] = []
    try:
        for n, line in enumerate(lines):
            command = line.replace("imgate_cluster", database)
            if n == 1:  # createdb && imgate migrate: runs to its end
                once = await asyncio.create_subprocess_exec("bash", "-c", command, cwd=ROOT, env=env,
                                                            stdout=asyncio.subprocess.PIPE,
                                                            stderr=asyncio.subprocess.STDOUT)
                out, _ = await asyncio.wait_for(once.communicate(), START)
                assert once.returncode == 0, out.decode()
                continue
            proc = await asyncio.create_subprocess_exec("bash", "-c", command, cwd=ROOT, env=env,
                                                        stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.STDOUT, start_new_session=True)
            procs.append(proc)
            ready = {0: "completed with", 2: "imgate api:", 3: "imgate bridge:", 4: "imgate bridge:",
                     5: "imgate worker: running"}[n]
            await until_line(proc, ready, seen)
            drains.append(asyncio.create_task(drain(proc)))  # keep the pipe from filling
        yield env, seen
    finally:
        for proc in reversed(procs):  # worker, bridges, api, then RabbitMQ (SIGTERM stops a node cleanly)
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 60)
                except TimeoutError:
                    os.killpg(proc.pid, signal.SIGKILL)
                    await proc.wait()
        import asyncpg

        admin = await asyncpg.connect(f"{PG_DSN}/postgres")
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await admin.close()


# Until the worker has indexed alice's message (psql fails while the table is not there yet).
INDEXED = """
until [ "$(psql -tAc "SELECT count(*) FROM search_messages WHERE text = 'hello through the cluster'" \\
           "$IMGATE_DATABASE__URL" 2>/dev/null)" = 1 ]; do :; done
"""


async def test_the_scale_out_walkthrough_runs_as_written(terminals: tuple[dict[str, str], list[str]]) -> None:
    env, seen = terminals
    script = block("scale-out-devices") + INDEXED + "echo --- search\n" + block("scale-out-search")
    proc = await asyncio.create_subprocess_exec("bash", "-euo", "pipefail", "-c", script, cwd=ROOT, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode() + "".join(seen[-20:])
    devices, _, searched = out.decode().partition("--- search\n")
    got = sorted(devices.splitlines())
    # What bob's laptop gets back, in the order the page shows or another: presence and messages
    # come through different paths in RabbitMQ.
    assert_shown(commented(block("scale-out-devices"))[-1][1], got, ordered=False)
    assert got[0].startswith('im/bob/in/msg {"id":') and '"text":"hello through the cluster"' in got[0]
    assert_shown(commented(block("scale-out-search"))[-1][1], searched.splitlines())
    [answer] = searched.splitlines()
    topic, _, body = answer.partition(" ")
    assert topic == "im/bob/in/rpc", answer
    reply = json.loads(body)
    assert reply["id"] == 1 and "error" not in reply, reply
    [hit] = reply["result"]["messages"]
    assert (hit["conv"], hit["seq"], hit["from"], hit["text"]) == ("d:alice:bob", 1, "alice",
                                                                    "hello through the cluster"), hit
    msg = json.loads(got[0].partition(" ")[2])
    assert (hit["id"], hit["ts"]) == (msg["id"], msg["ts"])  # the message Bob's laptop received
