"""The ``imgate`` command line, run as a real process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def imgate(tmp_path: Path, *args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IMGATE_DATABASE__URL": database_url}
    return subprocess.run([sys.executable, "-m", "imgate", "--data-dir", str(tmp_path), *args],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


def test_user_and_token_lifecycle(tmp_path: Path, database_url: str) -> None:
    run = lambda *a: imgate(tmp_path, *a, database_url=database_url)
    assert run("user", "add", "alice", "--name", "Alice").returncode == 0
    dup = run("user", "add", "alice")
    assert dup.returncode == 1 and "already exists" in dup.stderr
    issued = run("token", "issue", "alice", "--device", "phone", "--platform", "ios", "--ttl", "30d")
    assert issued.returncode == 0
    token = issued.stdout.strip()
    assert token.startswith("imt_") and len(token) > 40 and "\n" not in token
    revoked = run("token", "revoke", "alice", "--device", "phone")
    assert revoked.returncode == 0 and "revoked 1 token" in revoked.stderr
    assert run("user", "disable", "alice").returncode == 0
    after = run("token", "issue", "alice", "--device", "phone")
    assert after.returncode == 1 and "disabled" in after.stderr


@pytest.mark.parametrize(("args", "needle"), [
    (("user", "add", "bad uid"), "invalid uid"),
    (("user", "disable", "ghost"), "does not exist"),
    (("token", "issue", "ghost", "--device", "x"), "does not exist"),
    (("token", "revoke", "ghost"), "does not exist"),
    (("user", "enable", "ghost"), "does not exist"),
    (("user", "show", "ghost"), "does not exist"),
    (("token", "list", "ghost"), "does not exist"),
])
def test_service_errors_exit_1_with_a_message(tmp_path: Path, database_url: str, args: tuple[str, ...],
                                              needle: str) -> None:
    out = imgate(tmp_path, *args, database_url=database_url)
    assert out.returncode == 1 and needle in out.stderr


@pytest.mark.parametrize(("args", "needle"), [
    (("token", "issue", "alice"), "--device"),
    (("token", "issue", "alice", "--device", "d", "--ttl", "soon"), "invalid ttl"),
    (("run", "--port", "99999"), "invalid port"),
    (("frobnicate",), "invalid choice"),
])
def test_bad_arguments_exit_2(tmp_path: Path, database_url: str, args: tuple[str, ...], needle: str) -> None:
    out = imgate(tmp_path, *args, database_url=database_url)
    assert out.returncode == 2 and needle in out.stderr


def _commands() -> list[tuple[str, ...]]:
    """Every command and subcommand of the parser: (), ("run",), ("user",), ("user", "add"), ..."""
    import argparse

    from imgate.cli import build_parser

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        found = [path]
        for action in parser._actions:  # argparse lists its subparsers nowhere else
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    found += walk(child, (*path, name))
        return found

    return walk(build_parser(), ())


INTERNAL_FLAGS = ("--settings-stdin", "--lease-holder")  # imgate run's, to start its worker


@pytest.mark.parametrize("args", _commands(), ids=lambda a: " ".join(a) or "imgate")
def test_help_everywhere_without_internal_flags(tmp_path: Path, database_url: str, args: tuple[str, ...]) -> None:
    out = imgate(tmp_path, *args, "--help", database_url=database_url)
    assert out.returncode == 0 and out.stdout.startswith(" ".join(("usage: imgate", *args)))
    assert not [flag for flag in INTERNAL_FLAGS if flag in out.stdout]


def test_the_hidden_flags_still_work() -> None:
    from imgate.cli import build_parser

    assert len(_commands()) >= 18  # the walk found the subcommands (else the test above checks nothing)
    args = build_parser().parse_args(["worker", "--settings-stdin", "--lease-holder", "host:1/worker"])
    assert args.settings_stdin is True and args.lease_holder == "host:1/worker"


def test_version(tmp_path: Path, database_url: str) -> None:
    from importlib.metadata import version

    out = imgate(tmp_path, "--version", database_url=database_url)
    assert out.returncode == 0 and out.stdout == f"imgate {version('imgate')}\n" == "imgate 0.1.0\n"


def test_users_are_listed_shown_and_enabled_again(tmp_path: Path, database_url: str) -> None:
    import json

    run = lambda *a: imgate(tmp_path, *a, database_url=database_url)
    for uid, name in (("carol", "Carol C"), ("alice", "Alice"), ("bob", "")):
        assert run("user", "add", uid, "--name", name).returncode == 0
    assert run("user", "disable", "bob").returncode == 0
    table = run("user", "list")
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["UID", "NAME", "STATUS", "CREATED", "KIND"]
    assert [line.split()[0] for line in lines[1:]] == ["alice", "bob", "carol"]
    assert "Carol C" in lines[3] and lines[2].split()[1] == "disabled" and lines[1].split()[2] == "enabled"
    assert lines[1].index("enabled") == lines[3].index("enabled")  # columns line up
    disabled = run("user", "list", "--disabled")
    assert [line.split()[0] for line in disabled.stdout.splitlines()[1:]] == ["bob"]
    objects = [json.loads(line) for line in run("user", "list", "--json").stdout.splitlines()]
    assert [(u["uid"], u["name"], u["disabled"]) for u in objects] == [
        ("alice", "Alice", False), ("bob", "", True), ("carol", "Carol C", False)]
    assert set(objects[0]) == {"uid", "name", "disabled", "created_at", "kind"}  # the admin API's User
    shown = run("user", "show", "bob")
    assert shown.returncode == 0 and shown.stdout.splitlines()[:3] == ["uid      bob", "name", "status   disabled"]
    assert json.loads(run("user", "show", "bob", "--json").stdout)["disabled"] is True
    enabled = run("user", "enable", "bob")
    assert enabled.returncode == 0 and enabled.stderr.strip().endswith("enabled user bob")
    none = run("user", "list", "--disabled")
    assert none.returncode == 0 and none.stdout == "" and "no disabled users" in none.stderr
    assert run("token", "issue", "bob", "--device", "phone").returncode == 0  # refused while bob was disabled


async def test_token_list_shows_last_use_never_the_token(app: Any, tmp_path: Path, database_url: str) -> None:
    import json

    from services.users.service import hash_token
    from tests.helpers import connect

    users = app.services.users
    await users.add_user("alice")
    phone = (await users.issue_token("alice", "phone", "ios", 3600)).token
    await users.issue_token("alice", "web")
    revoked = (await users.issue_token("alice", "old")).token
    await users.revoke_tokens("alice", "old")
    async with connect(app.mqtt_port, "alice", "phone", phone):
        await users.token_use_written()
    env = {"IMGATE_DATABASE__URL": database_url}
    code, out, _ = await _imgate(tmp_path, "token", "list", "alice", env=env)
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["DEVICE", "PLATFORM", "CREATED", "LAST", "USED", "EXPIRES", "STATE"]
    cells = {row.split()[0]: row.split() for row in rows}
    assert cells.keys() == {"phone", "web", "old"}
    assert cells["phone"][1] == "ios" and cells["phone"][3] != "-" and cells["phone"][5] == "live"
    assert cells["web"][3] == "-" and cells["web"][4] == "-" and cells["old"][5] == "revoked"
    code, out, _ = await _imgate(tmp_path, "token", "list", "alice", "--json", env=env)
    listed = [json.loads(line) for line in out.splitlines()]
    assert {t["device"]: t["last_used_at"] is not None for t in listed} == {"phone": True, "web": False, "old": False}
    for text in (out, "\n".join(rows)):
        assert not [t for t in (phone, revoked) if t in text or hash_token(t) in text or t[4:] in text]


def test_a_revoke_that_matches_nothing_says_so(tmp_path: Path, database_url: str) -> None:
    """Issue 27: `--device typo` said "revoked 0 token(s)" and exited 0."""
    run = lambda *a: imgate(tmp_path, *a, database_url=database_url)
    assert run("user", "add", "alice").returncode == 0
    assert run("token", "issue", "alice", "--device", "phone").returncode == 0
    typo = run("token", "revoke", "alice", "--device", "phnoe")
    assert typo.returncode == 1 and typo.stdout == ""
    assert typo.stderr.splitlines()[-1] == ("imgate: alice has no live token for device 'phnoe': nothing revoked "
                                            "(devices with live tokens: phone)")
    assert "live" in run("token", "list", "alice").stdout.splitlines()[1]  # phone's token untouched
    assert run("token", "revoke", "alice").returncode == 0
    again = run("token", "revoke", "alice")
    assert again.returncode == 1 and again.stderr.splitlines()[-1] == "imgate: alice has no live token: nothing revoked"


def test_bad_config_fails_start_naming_the_key(tmp_path: Path, database_url: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[bridge]\nlanes = 0\n")
    out = imgate(tmp_path, "--config", str(cfg), "run", database_url=database_url)
    assert out.returncode == 2 and "bridge.lanes" in out.stderr


async def _seed_messages(tmp_path: Path, database_url: str) -> None:
    from config.settings import load_settings
    from imgate.app import build_services, open_database
    from services.ids import SystemClock
    from services.messages.service import SendCommand

    settings = load_settings(None, {"data_dir": tmp_path, "database": {"url": database_url}})
    async with open_database(settings):
        svc = build_services(SystemClock())
        for uid in ("alice", "bob"):
            await svc.users.add_user(uid)
        for i in range(3):
            await svc.messages.send(SendCommand("alice", f"c{i}", "bob", None, "text", f"hello {i}", None))


async def _imgate(tmp_path: Path, *args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """The CLI as a process, awaited (so a server in this event loop can answer it)."""
    import asyncio

    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "imgate", "--data-dir", str(tmp_path), *args,
                                                env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_search_reindex_rebuilds_the_index(tmp_path: Path, database_url: str) -> None:
    import sqlite3

    await _seed_messages(tmp_path, database_url)
    code, out, _ = await _imgate(tmp_path, "search", "reindex", env={"IMGATE_DATABASE__URL": database_url})
    assert code == 0 and "indexed 3 message(s)" in out
    with sqlite3.connect(tmp_path / "search.db") as db:
        assert sorted(t for (t,) in db.execute("SELECT text FROM messages")) == ["hello 0", "hello 1", "hello 2"]


async def test_search_reindex_on_meilisearch_and_when_it_is_down(tmp_path: Path, database_url: str) -> None:
    from tests.fakes.meili import FakeMeili

    await _seed_messages(tmp_path, database_url)
    async with FakeMeili() as meili:
        env = {"IMGATE_DATABASE__URL": database_url, "IMGATE_SEARCH__BACKEND": "meilisearch",
               "IMGATE_SEARCH__MEILI_URL": meili.url, "IMGATE_SEARCH__MEILI_API_KEY": meili.master_key or "",
               "IMGATE_SEARCH__MEILI_INDEX": "cli_test"}
        code, out, _ = await _imgate(tmp_path, "search", "reindex", env=env)
        assert code == 0 and "indexed 3 message(s)" in out
        assert sorted(d["text"] for d in meili.documents("cli_test").values()) == ["hello 0", "hello 1", "hello 2"]
        await meili.stop()
        code, _, err = await _imgate(tmp_path, "search", "reindex", env=env)
        assert code == 1
        assert "search is unavailable" in err and "Traceback" not in err


@pytest.mark.parametrize(("flag", "setting"), [("IMGATE_MQTT__PORT", "mqtt.port"),
                                               ("IMGATE_MQTT__WS_PORT", "mqtt.ws_port"),
                                               ("IMGATE_WEB__PORT", "web.port"),
                                               ("IMGATE_ADMIN__PORT", "admin.port")])
def test_run_on_a_taken_port_stops_with_one_clear_line(tmp_path: Path, database_url: str, flag: str,
                                                       setting: str) -> None:
    """Before: an amqtt traceback (MQTT), 52-58 lines and two tracebacks (the web listener, the
    admin API). Now one line naming the address, the port and the setting, and status 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "IMGATE_DATABASE__URL": database_url, "IMGATE_MQTT__PORT": "0",
               "IMGATE_MQTT__WS_PORT": "0", "IMGATE_WEB__PORT": "0", "IMGATE_ADMIN__PORT": "0",
               "IMGATE_ADMIN__SECRET": "a-secret-of-sixteen-characters", flag: str(port)}
        done = subprocess.run([sys.executable, "-m", "imgate", "--data-dir", str(tmp_path), "run"], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("imgate:")]
    assert len(errors) == 1, done.stderr
    assert f"127.0.0.1:{port}" in errors[0] and setting in errors[0]
    assert "Traceback" not in done.stderr


def test_a_closed_pipe_ends_a_command_with_one_line() -> None:
    """`imgate openapi | head`: the reader leaves early. Before: a BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "imgate", "openapi"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before it writes: it is still importing
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 2
    assert "broken pipe" in err and "Traceback" not in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize(("loop", "module"), [("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_the_event_loop_is_the_configured_one(loop: str, module: str) -> None:
    import asyncio

    from config.settings import Settings
    from imgate.cli import _arun

    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert _arun(Settings(event_loop=loop), which()).split(".")[0] == module  # type: ignore[arg-type]


def _worker_runs_until_sigterm(tmp_path: Path, database_url: str, **env: str) -> None:
    """``imgate worker`` on a migrated database says it runs, and exits 0 on SIGTERM."""
    import signal

    assert imgate(tmp_path, "migrate", database_url=database_url).returncode == 0
    worker = subprocess.Popen([sys.executable, "-m", "imgate", "--data-dir", str(tmp_path), "worker"],
                              env={**os.environ, "IMGATE_DATABASE__URL": database_url, **env},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().startswith("imgate worker: running")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_a_standalone_worker_runs_until_sigterm(tmp_path: Path, database_url: str) -> None:
    _worker_runs_until_sigterm(tmp_path, database_url)



def _refusal(done: subprocess.CompletedProcess[str], status: int = 2) -> str:
    """The one line a refused start-up prints (nothing else on either stream, no traceback), with
    status 2 as every start-up failure (a command such as search reindex: 1)."""
    assert done.returncode == status, done.stderr
    assert done.stdout == "" and len(done.stderr.splitlines()) == 1, done.stderr
    return done.stderr.strip()


@pytest.mark.parametrize("role", ["bridge", "worker"])
def test_cluster_mode_refuses_the_embedded_search_index_in_one_line(tmp_path: Path, database_url: str,
                                                                    role: str) -> None:
    """Each machine's bridges and workers would index and search a data_dir of their own."""
    env = {**os.environ, "IMGATE_DATABASE__URL": database_url, "IMGATE_AMQP__URL": "amqp://127.0.0.1:1/"}
    env.pop("IMGATE_SEARCH__BACKEND", None)
    done = subprocess.run([sys.executable, "-m", "imgate", "--data-dir", str(tmp_path), role], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert _refusal(done) == ("imgate: search.backend = embedded keeps its index in data_dir, which other machines "
                              "cannot reach; set IMGATE_SEARCH__BACKEND=postgres (or meilisearch) in cluster mode")
    assert not (tmp_path / "search.db").exists()


@pytest.mark.parametrize("args", [("run",), ("worker",), ("search", "reindex")])
def test_the_postgres_search_backend_on_sqlite_is_refused_in_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    env = {**os.environ, "IMGATE_DATABASE__URL": f"sqlite://{tmp_path / 'imgate.db'}",
           "IMGATE_SEARCH__BACKEND": "postgres", "IMGATE_MQTT__PORT": "0", "IMGATE_WEB__ENABLED": "false"}
    done = subprocess.run([sys.executable, "-m", "imgate", "--data-dir", str(tmp_path), *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert _refusal(done, 1 if args[0] == "search" else 2) == (
        "imgate: search.backend = postgres keeps its index in the PostgreSQL database, but "
        "database.url is SQLite; set IMGATE_DATABASE__URL to a postgres:// URL, or IMGATE_SEARCH__BACKEND=embedded")


@pytest.mark.parametrize(("role", "line"), [
    ("api", "imgate: imgate api needs admin.secret (IMGATE_ADMIN__SECRET)"),
    ("bridge", "imgate: imgate bridge needs amqp.url (RabbitMQ) and a PostgreSQL database.url"),
])
def test_a_server_refused_by_its_settings_exits_2(tmp_path: Path, role: str, line: str) -> None:
    """Issue 27: every start-up failure is status 2 (these were 1, as a command's failure)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGATE_")}
    env |= {"IMGATE_DATABASE__URL": f"sqlite://{tmp_path / 'imgate.db'}", "IMGATE_ADMIN__PORT": "0",
            "IMGATE_WEB__ENABLED": "false"}
    done = subprocess.run([sys.executable, "-m", "imgate", "--data-dir", str(tmp_path), role], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.splitlines()[-1] == line, done.stderr


def test_a_cluster_worker_on_the_postgres_search_backend_runs(tmp_path: Path, database_url: str) -> None:
    """What the refusal asks for works: ``imgate worker`` with amqp.url and search.backend =
    postgres starts (the worker needs no RabbitMQ), with no index in data_dir."""
    if database_url.startswith("sqlite"):
        pytest.skip("the postgres backend needs PostgreSQL (IMGATE_TEST_DB=postgres)")
    _worker_runs_until_sigterm(tmp_path, database_url, IMGATE_AMQP__URL="amqp://127.0.0.1:1/",
                               IMGATE_SEARCH__BACKEND="postgres")
    assert not (tmp_path / "search.db").exists()


@pytest.mark.parametrize("case", ["data dir is a file", "data dir under a file", "data dir on a full disk",
                                  "unknown section", "unknown key", "unsupported database", "config does not parse",
                                  "web host not on this machine", "database unreachable"])
def test_start_up_failures_are_one_line_naming_the_setting(tmp_path: Path, case: str) -> None:
    """Issue 27: each of these ended in a traceback (or, for a typo in a variable's name, in
    nothing: the setting was silently ignored). Now one line on stderr, naming what to change,
    and status 2."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGATE_")}
    env.update({"IMGATE_DATABASE__URL": f"sqlite:///{tmp_path}/imgate.db", "IMGATE_MQTT__PORT": "0",
                "IMGATE_MQTT__WS_PORT": "0", "IMGATE_WEB__PORT": "0"})
    data_dir, args, names = tmp_path / "data", [], ""
    if case == "data dir is a file":
        data_dir.write_text("")
        names = "IMGATE_DATA_DIR"
    elif case == "data dir under a file":
        (tmp_path / "file").write_text("")
        data_dir = tmp_path / "file" / "data"
        names = "IMGATE_DATA_DIR"
    elif case == "data dir on a full disk":
        if os.geteuid() != 0 or not Path("/bin/mount").exists():
            pytest.skip("mounting a small tmpfs needs root")
        data_dir.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(data_dir)], check=True)
        subprocess.run(["dd", "if=/dev/zero", f"of={data_dir}/fill", "bs=4k", "count=100"], capture_output=True,
                       check=False)  # fills it: "no space left on device"
        names = "no space left"
    elif case == "unknown section":
        env["IMGATE_WEBB__PORT"] = "9999"
        names = "did you mean IMGATE_WEB__PORT"
    elif case == "unknown key":
        env["IMGATE_MQTT__PROT"] = "1885"
        names = "did you mean IMGATE_MQTT__PORT"
    elif case == "unsupported database":
        env["IMGATE_DATABASE__URL"] = "mysql://root@localhost/imgate"
        names = "IMGATE_DATABASE__URL"
    elif case == "web host not on this machine":
        env["IMGATE_WEB__HOST"] = "192.0.2.1"  # TEST-NET-1 (RFC 5737): never this machine's
        names = "IMGATE_WEB__HOST"
    elif case == "database unreachable":
        with socket.socket() as closed:  # a port nothing listens on
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        env["IMGATE_DATABASE__URL"] = f"postgres://postgres@127.0.0.1:{port}/imgate"
        names = f"127.0.0.1:{port}"
    elif case == "config does not parse":
        (tmp_path / "imgate.toml").write_text("[mqtt\nport = 1\n")
        args = ["--config", str(tmp_path / "imgate.toml")]
        names = "imgate.toml"
    try:
        done = subprocess.run([sys.executable, "-m", "imgate", "--data-dir", str(data_dir), *args, "run"], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
    finally:
        if case == "data dir on a full disk":
            subprocess.run(["umount", str(data_dir)], check=False)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if " INFO " not in line]  # the start-up's own log
    assert len(errors) == 1 and errors[0].startswith("imgate: ") and names in errors[0], done.stderr
