"""Issue 27: every way ``imgate run`` can fail to start is one line on stderr that names the
setting to change, and status 2 (tests/test_cli.py has the data directory, the database URL, the
config file and the plain listeners' ports); and ``--port`` (``make run PORT=…``) moves every
listener left at its default, so two instances run side by side."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from broker.certs import write_dev_certs

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534


def base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGATE_")}
    env.update({"IMGATE_DATABASE__URL": f"sqlite://{tmp_path}/imgate.db", "IMGATE_MQTT__PORT": "0",
                "IMGATE_MQTT__WS_PORT": "0", "IMGATE_WEB__PORT": "0", "IMGATE_WORKERS__MODE": "inline"})
    return env


def start(env: dict[str, str], *args: str, prefix: tuple[str, ...] | list[str] = ()) -> \
        subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-m", "imgate", *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def one_line(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The run failed with status 2 and one line (besides the start-up's INFO log) holding every needle."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if " INFO " not in line]
    assert len(errors) == 1 and errors[0].startswith("imgate: "), done.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@contextmanager
def taken_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    out = tmp_path / "certs"
    write_dev_certs(out)
    return out


@pytest.mark.parametrize(("kind", "setting"), [("tls", "mqtt.tls_port"), ("wss", "mqtt.wss_port")])
def test_a_taken_tls_port_is_one_line(tmp_path: Path, certs: Path, kind: str, setting: str) -> None:
    env = base_env(tmp_path) | {"IMGATE_MQTT__TLS_CERT": str(certs / "server.crt"),
                                "IMGATE_MQTT__TLS_KEY": str(certs / "server.key")}
    with taken_port() as port:
        env[f"IMGATE_MQTT__{kind.upper()}_PORT"] = str(port)
        one_line(start(env, "--data-dir", str(tmp_path / "data"), "run"), f"127.0.0.1:{port}", setting,
                 "address already in use")


@pytest.mark.parametrize("case", ["not a certificate", "missing key", "key of another certificate"])
def test_a_bad_certificate_is_one_line(tmp_path: Path, certs: Path, case: str) -> None:
    cert, key = certs / "server.crt", certs / "server.key"
    needle = "mqtt.tls_key"
    if case == "not a certificate":
        cert.write_text("not a certificate\n")
        needle = "mqtt.tls_cert"
    elif case == "missing key":
        key = certs / "nothing.key"
    else:
        write_dev_certs(tmp_path / "other")
        key = tmp_path / "other" / "server.key"
    env = base_env(tmp_path) | {"IMGATE_MQTT__TLS_PORT": "0", "IMGATE_MQTT__TLS_CERT": str(cert),
                                "IMGATE_MQTT__TLS_KEY": str(key)}
    one_line(start(env, "--data-dir", str(tmp_path / "data"), "run"), needle)


def test_a_database_from_a_newer_imgate_is_one_line(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    assert start(env, "--data-dir", str(tmp_path / "data"), "migrate").returncode == 0
    db = sqlite3.connect(tmp_path / "imgate.db")
    db.execute("INSERT INTO aerich (version, app, content) VALUES (?, ?, ?)",
               ("99_20991231235959_from_the_future.py", "models", "{}"))
    db.commit()
    db.close()
    one_line(start(env, "--data-dir", str(tmp_path / "data"), "run"), "newer imgate", "99_20991231235959")


def unprivileged() -> list[str]:
    """The command prefix that runs imgate without privileges: as root, without the capabilities to
    listen below 1024 and to write where its permissions do not let it (setpriv, util-linux)."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--bounding-set", "-net_bind_service,-dac_override,-dac_read_search,-fowner", "--"]


def test_a_privileged_port_is_one_line(tmp_path: Path) -> None:
    start_unprivileged = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    if start_unprivileged == 0:
        pytest.skip("this kernel lets anyone listen on any port")
    port = min(start_unprivileged - 1, 1023)
    done = start(base_env(tmp_path), "--data-dir", str(tmp_path / "data"), "run", "--port", str(port),
                 prefix=unprivileged())
    one_line(done, f"127.0.0.1:{port}", "permission denied", "--port")


def test_a_data_dir_it_cannot_write_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    if os.geteuid() == 0:
        os.chown(data, NOBODY, NOBODY)  # another user's: root without CAP_DAC_OVERRIDE cannot write it
    else:
        data.chmod(0o500)
    done = start(base_env(tmp_path), "--data-dir", str(data), "run", prefix=unprivileged())
    one_line(done, str(data), "permission denied", "IMGATE_DATA_DIR")


def test_a_port_moved_out_of_range_is_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in base_env(tmp_path).items() if k != "IMGATE_MQTT__WS_PORT"}
    one_line(start(env, "--data-dir", str(tmp_path / "data"), "run", "--port", "60000"),
             "mqtt.ws_port", "66200", "IMGATE_MQTT__WS_PORT")


def test_a_taken_port_given_by_the_flag_says_to_change_the_flag(tmp_path: Path) -> None:
    with taken_port() as port:
        line = one_line(start(base_env(tmp_path), "--data-dir", str(tmp_path / "data"), "run", "--port", str(port)),
                        f"127.0.0.1:{port}", f"another --port than {port}", "PORT=")
    assert "IMGATE_MQTT__PORT" not in line  # the flag overrides it: no use setting it
    assert line.endswith("(PORT=… under make run))"), line  # was '… under make run) to a free port)'


def test_a_taken_mqtt_port_without_the_flag_names_the_flag_too(tmp_path: Path) -> None:
    """The default 1883 taken (a system Mosquitto): the setting, and --port / make run PORT=, which
    moves the other listeners with it."""
    with taken_port() as port:
        env = base_env(tmp_path) | {"IMGATE_MQTT__PORT": str(port)}
        one_line(start(env, "--data-dir", str(tmp_path / "data"), "run"), f"127.0.0.1:{port}",
                 "set mqtt.port / IMGATE_MQTT__PORT to a free port", "--port N (PORT=N under make run)")


def test_at_log_level_debug_a_start_up_failure_shows_its_traceback(tmp_path: Path) -> None:
    """One line, and with --log-level DEBUG the traceback of what failed before it."""
    with taken_port() as port:
        env = base_env(tmp_path) | {"IMGATE_MQTT__PORT": str(port)}
        done = start(env, "--data-dir", str(tmp_path / "data"), "run", "--log-level", "DEBUG")
    assert done.returncode == 2, done.stderr
    assert "Traceback" in done.stderr and "OSError" in done.stderr, done.stderr
    assert done.stderr.rstrip().splitlines()[-1].startswith(f"imgate: cannot listen for MQTT on 127.0.0.1:{port}")



def test_an_address_given_by_the_flag_says_to_change_the_flag(tmp_path: Path) -> None:
    """--host overrides IMGATE_MQTT__HOST: no use setting it (as --port and IMGATE_MQTT__PORT)."""
    line = one_line(start(base_env(tmp_path), "--data-dir", str(tmp_path / "data"), "run", "--host", "192.0.2.1"),
                    "192.0.2.1", "give --host an address of this machine")
    assert "IMGATE_MQTT__HOST" not in line


def test_a_config_file_key_that_names_no_setting_says_the_nearest(tmp_path: Path) -> None:
    """As an IMGATE_ variable's typo does; before: pydantic's 'Extra inputs are not permitted'."""
    config = tmp_path / "imgate.toml"
    config.write_text("log_levl = \"DEBUG\"\n[mqtt]\nprot = 1885\n[webb]\nport = 9999\n")
    line = one_line(start(base_env(tmp_path), "--data-dir", str(tmp_path / "data"), "--config", str(config), "run"),
                    f"mqtt.prot (in {config}): names no setting: did you mean mqtt.port?",
                    "webb (in", "did you mean web?", "did you mean log_level?")
    assert "Extra inputs" not in line


def test_the_port_flag_leaves_the_listeners_that_are_off_where_they_are(tmp_path: Path) -> None:
    """The web listener disabled and the admin API without a secret are not moved: a --port that
    would move them past 65535 was refused for listeners that do not listen."""
    port = next(p for p in range(61000, 65000) if free_block_at(p, 0))
    env = {k: v for k, v in base_env(tmp_path).items() if k not in ("IMGATE_MQTT__PORT", "IMGATE_WEB__PORT")}
    env["IMGATE_WEB__ENABLED"] = "false"  # IMGATE_MQTT__WS_PORT=0 stays: set, so not moved
    with running([sys.executable, "-m", "imgate", "--data-dir", str(tmp_path / "data"), "run", "--port", str(port)],
                 env) as line:
        assert line.startswith(f"imgate: MQTT on 127.0.0.1:{port}, WebSocket on 127.0.0.1:"), line
        assert "chat page" not in line and "admin API" not in line, line

@pytest.mark.parametrize("url", ["postgres://[::1", "postgres://db.example:abc/imgate",
                                 "postgres://imgate@127.0.0.1:99999/imgate", "SQLITE:///var/lib/imgate/imgate.db",
                                 "sqlite://"])
def test_a_database_url_that_cannot_be_opened_is_one_line(tmp_path: Path, url: str) -> None:
    """Before: a ValueError (or tortoise's KeyError) traceback and status 1."""
    env = base_env(tmp_path) | {"IMGATE_DATABASE__URL": url}
    one_line(start(env, "--data-dir", str(tmp_path / "data"), "run"), "database.url", "IMGATE_DATABASE__URL")


@pytest.mark.parametrize("what", ["a directory", "another file"])
def test_a_sqlite_url_on_something_else_is_one_line_and_leaves_it_as_it_was(tmp_path: Path, what: str) -> None:
    """Before: a traceback, and the file (``database.url = "sqlite:///etc/passwd"``) made 0600
    before SQLite found it was no database."""
    target = tmp_path / "other"
    if what == "a directory":
        target.mkdir(mode=0o755)
    else:
        target.write_text("root:x:0:0:root:/root:/bin/bash\n")
    target.chmod(0o755 if what == "a directory" else 0o644)
    env = base_env(tmp_path) | {"IMGATE_DATABASE__URL": f"sqlite://{target}"}
    one_line(start(env, "--data-dir", str(tmp_path / "data"), "run"), str(target), "not an SQLite database",
             "IMGATE_DATABASE__URL")
    assert stat.S_IMODE(target.stat().st_mode) == (0o755 if what == "a directory" else 0o644)
    if what == "another file":
        assert target.read_text() == "root:x:0:0:root:/root:/bin/bash\n"


def test_a_disk_that_fills_up_while_migrating_is_one_line(tmp_path: Path) -> None:
    """Room for the data directory's probe but not for the database: SQLite's 'database or disk
    is full' in one line (before: a traceback, status 1)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    data = tmp_path / "data"
    data.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100k,mode=0700", "tmpfs", str(data)], check=True)
    try:
        env = {k: v for k, v in base_env(tmp_path).items() if k != "IMGATE_DATABASE__URL"}
        one_line(start(env, "--data-dir", str(data), "run"), "database or disk is full", "free some space")
    finally:
        subprocess.run(["umount", str(data)], check=False)


@pytest.mark.parametrize("what", ["a symbolic link", "a hard link", "a directory"])
def test_a_lock_file_that_is_not_its_own_is_refused_and_left_alone(tmp_path: Path, what: str) -> None:
    """The lock is opened by a name anyone could plant in a shared data directory (/tmp): before,
    a link's target was truncated and overwritten with the pid, and a directory was a traceback."""
    data, victim = tmp_path / "data", tmp_path / "victim"
    data.mkdir(mode=0o700)
    victim.write_text("precious\n")
    lock = data / "imgate.lock"
    if what == "a symbolic link":
        lock.symlink_to(victim)
    elif what == "a hard link":
        os.link(victim, lock)
    else:
        lock.mkdir()
    one_line(start(base_env(tmp_path), "--data-dir", str(data), "run"), str(lock), "--data-dir")
    assert victim.read_text() == "precious\n"


def started(proc: subprocess.Popen[str]) -> str:
    """The start-up line (or a failure with what the process said)."""
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("imgate: MQTT on"):
            return line.strip()
    pytest.fail(f"no start-up line; status {proc.wait()}:\n{''.join(seen)}")


@contextmanager
def running(args: list[str], env: dict[str, str], cwd: Path | None = None) -> Iterator[str]:
    proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        yield started(proc)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=30)
        # make itself dies of the signal; imgate stops cleanly on it.
        assert code == (-signal.SIGTERM if args[0] == "make" else 0), "did not stop cleanly on SIGTERM"


def test_a_second_run_on_one_data_dir_is_one_line(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    with running([sys.executable, "-m", "imgate", "--data-dir", str(tmp_path / "data"), "run"], env):
        one_line(start(env, "--data-dir", str(tmp_path / "data"), "run"), "in use by another imgate run",
                 "--data-dir")


def free_block_at(base: int, *offsets: int) -> bool:
    try:
        with ExitStack() as stack:
            for offset in offsets:
                stack.enter_context(socket.socket()).bind(("127.0.0.1", base + offset))
    except OSError:
        return False
    return True


def free_block(*offsets: int) -> int:
    """A port P such that P + each offset (and P + 1000 + each) is free now."""
    for _ in range(200):
        base = random.randrange(20000, 40000)
        if free_block_at(base, *offsets) and free_block_at(base + 1000, *offsets):
            return base
    pytest.fail("no free block of ports")


def test_the_port_flag_moves_every_listener_left_at_its_default(tmp_path: Path) -> None:
    """The start-up line lists every listener, the chat page and the admin API included; a port set
    in the environment stays where it is set."""
    base = free_block(0, 6197, 6207)
    env = {k: v for k, v in base_env(tmp_path).items() if not k.endswith("_PORT")}
    env |= {"IMGATE_ADMIN__SECRET": "a-secret-of-sixteen-characters", "IMGATE_MQTT__WS_PORT": "0"}
    with running([sys.executable, "-m", "imgate", "--data-dir", str(tmp_path / "data"), "run", "--port",
                  str(base)], env) as line:
        assert line.startswith(f"imgate: MQTT on 127.0.0.1:{base}, WebSocket on 127.0.0.1:"), line
        ws = int(re.search(r"WebSocket on 127\.0\.0\.1:(\d+)/mqtt", line).group(1))  # type: ignore[union-attr]
        assert ws not in (base + 6200, 8083)  # set (to 0: a free one), so not moved
        assert f"chat page on http://127.0.0.1:{base + 6207}/" in line
        assert f"admin API on http://127.0.0.1:{base + 6197}/" in line


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_two_make_runs_with_different_ports_both_start(tmp_path: Path) -> None:
    """The README's way to run a second instance: another PORT (and its own data directory)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGATE_")} | {"PYTHONUNBUFFERED": "1"}
    first = free_block(0, 6200, 6207)
    second = first + 1000  # its ports are P + 1000: checked free now too
    assert free_block_at(second, 0, 6200, 6207)
    make = ["make", "-s", "--no-print-directory", "-C", str(ROOT), "run"]
    with running([*make, f"PORT={first}", f"ARGS=--data-dir {tmp_path / 'one'}"], env) as one, \
            running([*make, f"PORT={second}", f"ARGS=--data-dir {tmp_path / 'two'}"], env) as two:
        for line, port in ((one, first), (two, second)):
            assert line.startswith(f"imgate: MQTT on 127.0.0.1:{port}, WebSocket on 127.0.0.1:{port + 6200}/mqtt, "
                                   f"chat page on http://127.0.0.1:{port + 6207}/"), line


@pytest.mark.parametrize(("variable", "meant"), [("IMGATE_MQTT_PORT", "IMGATE_MQTT__PORT"),
                                                 ("IMGATE_DATABASE_URL", "IMGATE_DATABASE__URL"),
                                                 ("IMGATE_MQTT_WSPORT", "IMGATE_MQTT__WS_PORT"),
                                                 ("IMGATE_LOGLEVEL", "IMGATE_LOG_LEVEL")])
def test_a_setting_misspelt_with_one_underscore_is_one_line(tmp_path: Path, variable: str, meant: str) -> None:
    """Before: silently ignored (the server started on the default port)."""
    env = base_env(tmp_path) | {variable: "1885"}
    one_line(start(env, "--data-dir", str(tmp_path / "data"), "run"), variable, f"did you mean {meant}?")


def test_imgate_names_that_look_like_no_setting_are_left_alone(tmp_path: Path) -> None:
    """The test suite's own variables (IMGATE_TEST_DB) and IMGATE_CONFIG are not settings."""
    env = base_env(tmp_path) | {"IMGATE_TEST_DB": "sqlite", "IMGATE_SOMETHING_ELSE": "1"}
    done = start(env, "--data-dir", str(tmp_path / "data"), "user", "add", "ann")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("source", ["file", "environment"])
def test_a_bad_value_names_where_it_was_set(tmp_path: Path, source: str) -> None:
    """Before: a bad key in the TOML file was labelled with its environment variable's name."""
    config = tmp_path / "imgate.toml"
    config.write_text("[bridge]\nlanes = 0\n" if source == "file" else "")
    env = base_env(tmp_path) | ({"IMGATE_BRIDGE__LANES": "0"} if source == "environment" else {})
    line = one_line(start(env, "--data-dir", str(tmp_path / "data"), "--config", str(config), "run"), "bridge.lanes")
    if source == "file":
        assert f"in {config}" in line and "IMGATE_BRIDGE__LANES" not in line
    else:
        assert "env IMGATE_BRIDGE__LANES" in line and str(config) not in line


def test_port_zero_gives_every_listener_a_free_port(tmp_path: Path) -> None:
    env = {k: v for k, v in base_env(tmp_path).items() if not k.endswith("_PORT")}
    with running([sys.executable, "-m", "imgate", "--data-dir", str(tmp_path / "data"), "run", "--port", "0"],
                 env) as line:
        ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", line)]
        assert len(ports) == 3 and 0 not in ports and not {1883, 8083, 8090} & set(ports), line


def test_a_shared_data_dir_is_warned_about_once(tmp_path: Path) -> None:
    """Before: three times a command (the data dir check, the database, the search index)."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    done = start(base_env(tmp_path), "--data-dir", str(data), "user", "add", "ann")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("accessible to other users") == 1, done.stderr


def test_a_sigterm_to_the_whole_group_stops_it_cleanly(tmp_path: Path) -> None:
    """systemd's default stop and `timeout` signal every process of the group: the worker child
    died of it first and the parent logged a crash (with a traceback) and restarted it. And a
    listener on every address shows a URL one can open."""
    env = base_env(tmp_path) | {"IMGATE_WORKERS__MODE": "process", "IMGATE_WEB__HOST": "0.0.0.0"}
    proc = subprocess.Popen([sys.executable, "-m", "imgate", "--data-dir", str(tmp_path / "data"), "run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    line = started(proc)
    assert re.search(r"chat page on http://127\.0\.0\.1:\d+/ \(on every address\)", line), line
    os.killpg(proc.pid, signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert "crashed" not in rest and "Traceback" not in rest, rest
    assert "imgate: stopped" in rest


def test_it_runs_with_its_output_closed(tmp_path: Path) -> None:
    """`imgate run >&-`: uvicorn's log set-up asked the missing stdout whether it is a terminal."""
    proc = subprocess.Popen(["sh", "-c", 'exec "$0" -m imgate --data-dir "$1" run >&-', sys.executable,
                             str(tmp_path / "data")], env=base_env(tmp_path) | {"IMGATE_LOG_LEVEL": "INFO"},
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # the start-up log goes to stderr
        seen.append(line)
        if "web listener on" in line:
            break
    else:
        pytest.fail(f"it did not start: {''.join(seen)}")
    proc.terminate()
    rest = proc.communicate(timeout=60)[1]
    assert proc.returncode == 0 and "Traceback" not in "".join(seen) + rest, "".join(seen) + rest


def _endpoint(**change: object) -> str:
    import json

    e: dict[str, object] = {"name": "ops", "url": "https://hooks.example.com/h", "secret": "s" * 20,
                            "events": ["after_send"]}
    return json.dumps([e | change])


@pytest.mark.parametrize(("env", "needles"), [
    ({"IMGATE_CALLBACKS__ENDPOINTS": "not json"}, ["IMGATE_CALLBACKS__ENDPOINTS is not valid JSON"]),
    ({"IMGATE_CALLBACKS__ENDPOINTS": _endpoint(secret="short")}, ["callbacks.endpoints", "secret"]),
    ({"IMGATE_CALLBACKS__ENDPOINTS": _endpoint(events=["before_lunch"])}, ["callbacks.endpoints", "events"]),
    ({"IMGATE_CALLBACKS__ENDPOINTS": _endpoint(url="ftp://hooks.example.com/h")}, ["callbacks.endpoints[0].url"]),
    ({"IMGATE_CALLBACKS__ENDPOINTS": _endpoint(url="https://10.1.2.3/h")}, ["callbacks.endpoints[0].url"]),
    ({"IMGATE_CALLBACKS__ENDPOINTS": _endpoint(timeout_s=0)}, ["callbacks.endpoints", "timeout_s"]),
    ({"IMGATE_CALLBACKS__ALLOW": '["not a host!"]'}, ["callbacks.allow"]),
    ({"IMGATE_CALLBACKS__OUTBOX__MAX_PENDING": "1"}, ["callbacks.outbox.max_pending"]),
    ({"IMGATE_LIMITS__BOT_MESSAGES_PER_S": "0"}, ["limits.bot_messages_per_s"]),
    ({"IMGATE_PRIVACY__ERASE_MESSAGES": "shred"}, ["privacy.erase_messages"]),
    ({"IMGATE_ADMIN__TRUSTED_PROXIES": '["not an address"]'}, ["admin.trusted_proxies"]),
])
def test_bad_issue_29_settings_are_one_line(tmp_path: Path, env: dict[str, str], needles: list[str]) -> None:
    """The callbacks', bots', privacy and audit settings of issue 29: one line naming the setting."""
    one_line(start(base_env(tmp_path) | env, "--data-dir", str(tmp_path / "data"), "run"), *needles)
