"""Runs the README's mosquitto walkthrough exactly as written, against ``imgate run``.

The only change made to the text is the port: 1884 becomes a free port. It runs in a temporary
directory whose `.venv/bin/activate` puts the venv running these tests on PATH."""

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

ROOT = Path(__file__).resolve().parent.parent


def walkthrough(name: str = "walkthrough") -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(rf"<!-- {name}:start -->\s*```sh\n(.*?)```\s*<!-- {name}:end -->", readme, re.DOTALL)
    assert block, f"README has no {name} block"
    return block.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[tuple[int, dict[str, str]]]:
    port = free_port()
    # The WebSocket and web listeners' default ports (8083, 8090) are free ones here too.
    env = {**os.environ, "IMGATE_DATABASE__URL": database_url, "PYTHONUNBUFFERED": "1",
           "IMGATE_MQTT__WS_PORT": str(free_port()), "IMGATE_WEB__PORT": str(free_port())}
    proc = subprocess.Popen([sys.executable, "-m", "imgate", "run", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # blocks until the server says it is up (or dies)
            if "imgate: MQTT on" in line:
                break
        else:
            pytest.fail(f"imgate run exited with {proc.wait()}")
        yield port, env
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0, "imgate run did not stop cleanly on SIGTERM"


@pytest.mark.skipif(shutil.which("mosquitto_sub") is None, reason="needs Debian's mosquitto-clients")
def test_walkthrough_runs_as_written(server: tuple[int, dict[str, str]], tmp_path: Path) -> None:
    port, env = server
    script = walkthrough().replace("1884", str(port))
    # `. .venv/bin/activate` must find the venv that runs these tests.
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "activate").write_text(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr + out.stdout
    lines = dict(line.split(" ", 1) for line in out.stdout.strip().splitlines())
    ack = json.loads(lines["im/alice/in/ack"])
    assert (ack["cid"], ack["conv"], ack["seq"]) == ("c1", "d:alice:bob", 1)
    for topic in ("im/alice/in/msg", "im/bob/in/msg"):
        msg = json.loads(lines[topic])
        assert (msg["id"], msg["text"], msg["from"]) == (ack["id"], "hello bob", "alice")
    presence = json.loads(lines["presence/bob/laptop"])
    # bob's laptop left a moment ago: "offline", or still "online" within the anti-flapping
    # interval (broker.presence_min_interval_ms) after its quick reconnect.
    assert isinstance(presence["online"], bool) and presence["ts"] > 0


@pytest.mark.skipif(shutil.which("mosquitto_sub") is None, reason="needs Debian's mosquitto-clients")
def test_the_encodings_section_runs_as_written(server: tuple[int, dict[str, str]], tmp_path: Path) -> None:
    """"Devices that speak CBOR or MessagePack", after the walkthrough (it uses its users and
    bob's token), as written."""
    import msgpack  # type: ignore[import-untyped]

    from tests.helpers import named

    port, env = server
    script = (walkthrough() + walkthrough("encodings")).replace("1884", str(port))
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "activate").write_text(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr + out.stdout
    lines = out.stdout.strip().splitlines()[-3:]  # the watch's two, then bob's
    watch = {topic: named(msgpack.unpackb(bytes.fromhex(hexed), strict_map_key=False))
             for topic, hexed in (line.split(" ", 1) for line in lines[:2])}
    ack, copy = watch["im/alice/in/ack"], watch["im/alice/in/msg"]
    assert (ack["cid"], ack["seq"], copy["text"], copy["from"], copy["id"]) == ("c2", 2, "hi", "alice", ack["id"])
    topic, body = lines[2].split(" ", 1)
    assert topic == "im/bob/in/msg"
    assert (json.loads(body)["text"], json.loads(body)["id"]) == ("hi", ack["id"])


def test_the_browser_section_runs_as_written(server: tuple[int, dict[str, str]], tmp_path: Path) -> None:
    """"Try it in the browser": the users, their web tokens, and the page's config.json at the
    address the README gives (its ports swapped for the free ones the server has); the page
    itself is driven in Chromium by tests/test_webchat.py."""
    import urllib.request

    _, env = server
    ws, web = env["IMGATE_MQTT__WS_PORT"], env["IMGATE_WEB__PORT"]
    script = walkthrough("browser").replace("8090", web)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "activate").write_text(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr + out.stdout
    *tokens, config = out.stdout.strip().splitlines()
    assert len(tokens) == 2 and all(t.startswith("imt_") for t in tokens)
    assert json.loads(config) == {"mqtt_url": f"ws://127.0.0.1:{ws}/mqtt", "topic_prefix": "im",
                                  "max_attachment_bytes": 26214400, "max_text": 8000}
    with urllib.request.urlopen(f"http://127.0.0.1:{web}/", timeout=10) as page:  # the page the README opens
        assert page.status == 200 and b"<script" in page.read()
