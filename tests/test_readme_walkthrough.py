"""Runs the README's mosquitto walkthrough, its browser and encodings sections, and the admin API
example of docs/operations.md exactly as written, against ``imgate run``, and compares what they
print with the outputs the pages show.

The only change made to the text is the ports: 1884, 8091 and 8081 become free ports. It runs in
a temporary directory whose `.venv/bin/activate` puts the venv running these tests on PATH."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docblocks import ROOT, assert_shown, block, commented, shown

ADMIN_SECRET = re.search(r"^S=(\S+)$", block("docs/operations.md", "admin-api"), re.MULTILINE)


def walkthrough(name: str = "walkthrough") -> str:
    return block("README.md", name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[tuple[int, dict[str, str], str]]:
    """``imgate run`` on a free port: the port, the environment, and its start-up line."""
    port = free_port()
    assert ADMIN_SECRET, "docs/operations.md's admin-api block sets no S"
    # The WebSocket, web and admin listeners' default ports (8083, 8090, 8080) are free ones here
    # too; the admin API has the secret of docs/operations.md's example.
    env = {**os.environ, "IMGATE_DATABASE__URL": database_url, "PYTHONUNBUFFERED": "1",
           "IMGATE_MQTT__WS_PORT": str(free_port()), "IMGATE_WEB__PORT": str(free_port()),
           "IMGATE_ADMIN__PORT": str(free_port()), "IMGATE_ADMIN__SECRET": ADMIN_SECRET.group(1)}
    proc = subprocess.Popen([sys.executable, "-m", "imgate", "run", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # blocks until the server says it is up (or dies)
            if "imgate: MQTT on" in line:
                break
        else:
            pytest.fail(f"imgate run exited with {proc.wait()}")
        yield port, env, line.strip()
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0, "imgate run did not stop cleanly on SIGTERM"


def run(script: str, tmp_path: Path, env: dict[str, str]) -> str:
    """``script`` under bash -euo pipefail in ``tmp_path``, as terminal 2 would run it: its stdout."""
    # `. .venv/bin/activate` must find the venv that runs these tests.
    (tmp_path / ".venv" / "bin").mkdir(parents=True, exist_ok=True)
    (tmp_path / ".venv" / "bin" / "activate").write_text(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr + out.stdout
    return out.stdout


@pytest.mark.skipif(shutil.which("mosquitto_sub") is None, reason="needs Debian's mosquitto-clients")
def test_the_start_up_line_is_the_one_shown(server: tuple[int, dict[str, str], str]) -> None:
    """Terminal 1's line, for the listeners the README's `make run PORT=1884` has (the fixture's
    ports in its place; its admin API, which the README's run has not, left out)."""
    port, env, line = server
    [page] = [step[1] for step in commented(walkthrough("walkthrough-server")) if step[1]]
    expected = page[0].replace("1884", str(port)).replace(":8084/", f":{env['IMGATE_MQTT__WS_PORT']}/").replace(
        ":8091/", f":{env['IMGATE_WEB__PORT']}/")
    admin = f", admin API on http://127.0.0.1:{env['IMGATE_ADMIN__PORT']}/"
    assert admin in line
    assert line.replace(admin, "") == expected


@pytest.mark.skipif(shutil.which("mosquitto_sub") is None, reason="needs Debian's mosquitto-clients")
def test_walkthrough_runs_as_written(server: tuple[int, dict[str, str], str], tmp_path: Path) -> None:
    port, env, _ = server
    got = run(walkthrough().replace("1884", str(port)), tmp_path, env).strip().splitlines()
    page = walkthrough("walkthrough-output").strip().splitlines()
    if got[-1].startswith('presence/bob/laptop {"online":false'):
        # More than a second after bob's laptop left: the README gives that line too.
        later = re.search(r'`(presence/bob/laptop \{"online":false[^`]*)`', (ROOT / "README.md").read_text())
        assert later, "README shows no offline presence line"
        page[-1] = later.group(1)
    assert_shown(page, got)
    lines = dict(line.split(" ", 1) for line in got)
    ack = json.loads(lines["im/alice/in/ack"])
    assert (ack["cid"], ack["conv"], ack["seq"]) == ("c1", "d:alice:bob", 1)
    for topic in ("im/alice/in/msg", "im/bob/in/msg"):
        msg = json.loads(lines[topic])
        assert (msg["id"], msg["text"], msg["from"]) == (ack["id"], "hello bob", "alice")


@pytest.mark.skipif(shutil.which("mosquitto_sub") is None, reason="needs Debian's mosquitto-clients")
def test_the_encodings_section_runs_as_written(server: tuple[int, dict[str, str], str], tmp_path: Path) -> None:
    """"Devices that speak CBOR or MessagePack", after the walkthrough (it uses its users and
    bob's token), as written."""
    import msgpack  # type: ignore[import-untyped]

    from tests.helpers import named

    port, env, _ = server
    out = run((walkthrough() + walkthrough("encodings")).replace("1884", str(port)), tmp_path, env)
    lines = out.strip().splitlines()[-3:]  # the watch's two, then bob's
    assert_shown(walkthrough("encodings-output").strip().splitlines(), lines)
    watch = {topic: named(msgpack.unpackb(bytes.fromhex(hexed), strict_map_key=False))
             for topic, hexed in (line.split(" ", 1) for line in lines[:2])}
    ack, copy = watch["im/alice/in/ack"], watch["im/alice/in/msg"]
    assert (ack["cid"], ack["seq"], copy["text"], copy["from"], copy["id"]) == ("c2", 2, "hi", "alice", ack["id"])
    assert len(copy) == 8 and len(ack) == 5  # the maps of 8 and 5 entries the README describes
    topic, body = lines[2].split(" ", 1)
    assert topic == "im/bob/in/msg"
    assert (json.loads(body)["text"], json.loads(body)["id"]) == ("hi", ack["id"])


def test_the_browser_section_runs_as_written(server: tuple[int, dict[str, str], str], tmp_path: Path) -> None:
    """"Try it in the browser": the users, their web tokens, and the page's config.json at the
    address the README gives, as the README shows it (its ports swapped for the free ones the
    server has); the page itself is driven in Chromium by tests/test_webchat.py."""
    import urllib.request

    _, env, _ = server
    ws, web = env["IMGATE_MQTT__WS_PORT"], env["IMGATE_WEB__PORT"]
    script = walkthrough("browser")
    *tokens, config = run(script.replace("8091", web), tmp_path, env).strip().splitlines()
    assert len(tokens) == 2 and all(t.startswith("imt_") for t in tokens)
    [(_, page)] = [step for step in commented(script) if step[1]]  # the config.json the README shows
    assert json.loads(config) == json.loads(page[0].replace(":8084/", f":{ws}/"))
    with urllib.request.urlopen(f"http://127.0.0.1:{web}/", timeout=10) as answer:  # the page the README opens
        assert answer.status == 200 and b"<script" in answer.read()


def test_the_admin_api_example_runs_as_written(server: tuple[int, dict[str, str], str], tmp_path: Path) -> None:
    """docs/operations.md, "Admin HTTP API": each curl's answer is the one shown under it."""
    _, env, _ = server
    steps = commented(block("docs/operations.md", "admin-api"))
    assert sum(1 for _, page in steps if page) >= 5
    separator = "----- next"
    script = "".join(f"{command}\necho; echo '{separator}'\n" for command, _ in steps)
    out = run(script.replace("localhost:8081", f"localhost:{env['IMGATE_ADMIN__PORT']}"), tmp_path, env)
    answers = out.split(separator + "\n")
    assert len(answers) == len(steps) + 1 and answers[-1] == ""
    for (command, page), answer in zip(steps, answers, strict=False):
        got = [line for line in answer.splitlines() if line]
        assert len(got) == len(page) and all(shown(p).fullmatch(g) for p, g in zip(page, got, strict=True)), (
            f"{command}\nshown: {page}\ngot:   {got}")
