"""A private ejabberd for the im-1to1 benchmark (Debian bookworm's ejabberd 23.01).

``ejabberd(users)`` runs one ejabberd node until the block ends, with everything of its own under a
temp directory: config, SQLite database, Mnesia spool, logs, HOME (so no ``~/.erlang.cookie`` of
anyone else), an Erlang node name and cookie made up for the run, a free c2s port on 127.0.0.1 and a
free distribution port (``-erl_epmd_port``, ``-start_epmd false``: no epmd at all, so neither the
system's epmd, which RabbitMQ uses, nor a system ejabberd is involved). The package's own service
is never started by us (installation goes through a policy-rc.d that denies service starts).

Storage is SQL on SQLite (``sql_type: sqlite``, ``new_sql_schema: true``, ``default_db: sql``):
the database is created from the package's ``lite.new.sql`` before the start, in WAL mode (a
persistent property of the file), and the load users are inserted into its ``users`` table
(``auth_method: sql``, ``auth_password_format: plain``, so SASL PLAIN works). ejabberd 23.01
opens SQLite itself with only ``pragma foreign_keys = on`` (ejabberd_sql:sqlite_connect) and has
no option for other pragmas, and the p1_sqlite3 driver sets none, so ``synchronous`` is SQLite's
compiled-in default: Debian's libsqlite3 is built with SQLITE_DEFAULT_SYNCHRONOUS=2 and
SQLITE_DEFAULT_WAL_SYNCHRONOUS=2, i.e. FULL. ``EjabberdServer.sqlite_pragmas`` asks the live
connection (over Erlang distribution, ``sqlite3:sql_exec`` on ejabberd's own connection) and
``ejabberd()`` refuses to run unless it says ``journal_mode=wal`` and ``synchronous=2``.

mod_mam archives every chat message with a body (``default: always``, ``db_type: sql``): the
sender's copy in its c2s process before the message is routed (user_send_packet), the receiver's
copy in the receiver's c2s process before it is written to the receiver's socket
(user_receive_packet); each is a synchronous INSERT (autocommit) on ejabberd's single SQLite
connection (``sql_pool_size`` 1, the default for sqlite).

The node runs with the schedulers' busy-waiting off (``+sbwt none +sbwtdcpu none +sbwtdio none``,
as RabbitMQ runs): spinning schedulers would count as CPU per message without doing work.

Plain c2s (no TLS, no STARTTLS), no shapers, ``max_stanza_size`` 1 MB, no mod_offline (an offline
receiver would make the sender get an error, which the benchmark counts as lost), no stream
management. Stopping: ``ejabberdctl stop`` for the private node (with its own ctl config), then
SIGTERM, then SIGKILL; always, also on error.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from bench._common import Server, _tail, _wait_listening, free_port

EJABBERDCTL = Path("/usr/sbin/ejabberdctl")
ERL = Path("/usr/bin/erl")
SCHEMA = Path("/usr/share/ejabberd/sql/lite.new.sql")
ERL_LIBS = "/usr/lib/x86_64-linux-gnu"  # where Debian puts ejabberd-23.01 (as ejabberdctl sets it)
P1_SQLITE3 = Path("/usr/lib/erlang/lib")  # p1_sqlite3-* (package erlang-p1-sqlite3)
PACKAGES = ("ejabberd", "erlang-p1-sqlite3")
DOMAIN = "localhost"
_STOP_TIMEOUT = 30.0
_CTL_TIMEOUT = 60.0
_POLICY_RC_D = Path("/usr/sbin/policy-rc.d")


def installed() -> bool:
    return EJABBERDCTL.exists() and SCHEMA.exists() and any(P1_SQLITE3.glob("p1_sqlite3-*/priv/sqlite3_drv.so"))


def installable() -> bool:
    """ejabberd is installed, or can be (we are root on a Debian with apt-get)."""
    return installed() or (os.geteuid() == 0 and shutil.which("apt-get") is not None)


def ensure_installed() -> None:
    """Install ejabberd and erlang-p1-sqlite3 with apt-get if missing. The package's own service
    must not start (its default config listens on 5222, 5280 and 1883, the system Mosquitto's
    port): when no policy-rc.d exists, one that denies every start is in place during the install;
    when a policy-rc.d exists we leave it alone, and if the package's service came up anyway it is
    stopped through the package's own init script. Nothing else of the system is touched."""
    if installed():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        msg = f"ejabberd is not installed; as root: apt-get install -y {' '.join(PACKAGES)}"
        raise RuntimeError(msg)
    own_policy = not _POLICY_RC_D.exists()
    if own_policy:
        _POLICY_RC_D.write_text("#!/bin/sh\n# bench/ejabberd.py: no service starts during its apt-get install\nexit 101\n")
        _POLICY_RC_D.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", *PACKAGES], check=True, env=env, stdout=subprocess.DEVNULL)
    finally:
        if own_policy:
            _POLICY_RC_D.unlink(missing_ok=True)
    if not own_policy:
        _stop_package_service()
    if not installed():
        msg = f"apt-get install {' '.join(PACKAGES)} finished but ejabberd is still not usable"
        raise RuntimeError(msg)


def _stop_package_service() -> None:
    """Stop the system ejabberd service if the package's postinst just started it (only that one:
    it is not one of the machine's services, we just installed it)."""
    if Path("/run/systemd/system").exists():
        active = subprocess.run(["systemctl", "is-active", "--quiet", "ejabberd"], check=False, timeout=60)
        if active.returncode == 0:
            subprocess.run(["systemctl", "stop", "ejabberd"], check=False, capture_output=True, timeout=120)
        return
    pid_file = Path("/run/ejabberd/ejabberd.pid")  # EJABBERD_PID_PATH in /etc/default/ejabberd
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return  # not running
    subprocess.run(["/etc/init.d/ejabberd", "stop"], check=False, capture_output=True, timeout=120)


def _config(port: int, db: Path) -> str:
    return f"""\
# bench/ejabberd.py: a private node for the im-1to1 benchmark
hosts:
  - {DOMAIN}
loglevel: warning
log_rotate_count: 0
new_sql_schema: true
default_db: sql
sql_type: sqlite
sql_database: "{db}"
sql_pool_size: 1
auth_method: sql
auth_password_format: plain
listen:
  -
    port: {port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: 1048576
    shaper: none
    access: c2s
    starttls: false
    starttls_required: false
    backlog: 1024
acl:
  local:
    user_regexp: ""
access_rules:
  c2s:
    allow: all
shaper_rules:
  max_user_sessions: 10
api_permissions:
  "console commands":
    from:
      - ejabberd_ctl
    who: all
    what: "*"
modules:
  mod_mam:
    db_type: sql
    default: always
    assume_mam_usage: false
  mod_disco: {{}}
"""


def _create_database(db: Path, users: dict[str, str]) -> None:
    """The schema ejabberd itself would create (lite.new.sql), in WAL mode, with the users."""
    con = sqlite3.connect(db)
    try:
        mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            msg = f"could not put {db} in WAL mode (got {mode})"
            raise RuntimeError(msg)
        con.executescript(SCHEMA.read_text())
        con.executemany("INSERT INTO users (username, server_host, password) VALUES (?, ?, ?)",
                        [(u, DOMAIN, p) for u, p in users.items()])
        con.commit()
    finally:
        con.close()


@dataclass
class EjabberdServer(Server):
    """A running private ejabberd: ``pid`` is its beam.smp (CPU and RSS are read from it)."""

    domain: str
    database: Path
    node: str
    cookie: str
    dist_port: int
    tmp: Path

    def rpc(self, expr: str) -> str:
        """Evaluate an Erlang expression on the node (``Node`` is bound to it) from a hidden
        client node, as the node's own ejabberdctl would connect; returns what it printed."""
        client = f"bench-rpc-{secrets.token_hex(3)}@localhost"
        code = f"Node = '{self.node}', io:format(\"~p~n\", [{expr}]), halt()."
        out = subprocess.run(
            [str(ERL), "-sname", client, "-hidden", "-noinput",  # the cookie: HOME/.erlang.cookie
             "-erl_epmd_port", str(self.dist_port), "-start_epmd", "false", "-dist_listen", "false",
             "-eval", code],
            capture_output=True, text=True, timeout=_CTL_TIMEOUT, env=_erl_env(self.tmp), check=False)
        if out.returncode != 0:
            msg = f"rpc to {self.node} failed ({out.returncode}): {out.stderr or out.stdout}"
            raise RuntimeError(msg)
        return out.stdout.strip()

    def sqlite_pragmas(self) -> dict[str, str]:
        """journal_mode and synchronous as ejabberd's own SQLite connection has them. ejabberd opens
        its SQL pool at the first query, so one (``select 1``) goes first."""
        host = f'<<"{self.domain}">>'
        conn = f"ejabberd_sqlite_{self.domain}"
        text = self.rpc(
            f'{{rpc:call(Node, ejabberd_sql, sql_query, [{host}, [<<"select 1">>]], 10000), '
            f'rpc:call(Node, sqlite3, sql_exec, [{conn}, "pragma journal_mode"], 10000), '
            f'rpc:call(Node, sqlite3, sql_exec, [{conn}, "pragma synchronous"], 10000)}}')
        rows = re.findall(r"\{rows,\s*\[\{\s*(?:<<\")?([^\"}>]+)", text)
        if len(rows) != 2:
            msg = f"could not read ejabberd's SQLite pragmas: {text}"
            raise RuntimeError(msg)
        return {"journal_mode": rows[0].strip(), "synchronous": rows[1].strip()}


def _erl_env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "HOME": str(tmp), "ERL_LIBS": ERL_LIBS, "ERL_CRASH_DUMP": str(tmp / "log" / "erl_crash.dump"),
            "ERL_CRASH_DUMP_BYTES": "0"}


def _ctl(server: EjabberdServer, *args: str) -> subprocess.CompletedProcess[str]:
    """The package's ejabberdctl, pointed at the private node by its own ctl config (run as root
    it switches to the ejabberd user, which is why the temp dir is world-readable)."""
    t = server.tmp
    return subprocess.run(
        [str(EJABBERDCTL), "--config-dir", str(t), "--config", str(t / "ejabberd.yml"),
         "--ctl-config", str(t / "ejabberdctl.cfg"), "--spool", str(t / "spool"), "--logs", str(t / "log"),
         "--node", server.node, *args],
        capture_output=True, text=True, timeout=_CTL_TIMEOUT, check=False, env={**os.environ, "HOME": str(t)})


def _stop(proc: subprocess.Popen[bytes], server: EjabberdServer | None) -> None:
    if proc.poll() is None and server is not None:
        try:
            out = _ctl(server, "stop")
            if out.returncode != 0:
                print(f"bench: ejabberdctl stop failed ({out.returncode}): {out.stdout}{out.stderr}", file=sys.stderr)
        except (OSError, subprocess.TimeoutExpired) as exc:
            print(f"bench: ejabberdctl stop failed: {exc!r}", file=sys.stderr)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=_STOP_TIMEOUT)
    if proc.poll() is None:
        proc.terminate()  # OTP 25: SIGTERM is init:stop()
        try:
            proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=_STOP_TIMEOUT)


@asynccontextmanager
async def ejabberd(users: dict[str, str]) -> AsyncIterator[EjabberdServer]:
    """Run a private ejabberd with ``users`` (name -> password, on domain ``localhost``) until the
    block ends; yields once its c2s port accepts connections and its SQLite connection is checked."""
    ensure_installed()
    tmp = Path(tempfile.mkdtemp(prefix="imgate-bench-ejabberd-"))
    try:
        async with _node(tmp, users) as server:
            yield server
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@asynccontextmanager
async def _node(tmp: Path, users: dict[str, str]) -> AsyncIterator[EjabberdServer]:
    tmp.chmod(0o755)  # ejabberdctl (stop) runs as the ejabberd user and starts in the spool dir
    for sub in ("spool", "log", "modules"):
        (tmp / sub).mkdir(mode=0o755)
    shutil.copy("/etc/ejabberd/inetrc", tmp / "inetrc")
    port, dist_port = free_port(), free_port()
    node = f"bench-ejabberd-{secrets.token_hex(4)}@localhost"
    cookie = secrets.token_hex(16)
    db, conf = tmp / "ejabberd.db", tmp / "ejabberd.yml"
    conf.write_text(_config(port, db))
    (tmp / "ejabberdctl.cfg").write_text(
        f'ERLANG_NODE={node}\nERL_DIST_PORT={dist_port}\n'
        f'ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0 -setcookie {cookie}"\nEJABBERD_BYPASS_WARNINGS=true\n'
        f'EJABBERD_PID_PATH={tmp / "ejabberd.pid"}\nCONTRIB_MODULES_CONF_DIR={tmp / "modules"}\n')
    (tmp / "ejabberdctl.cfg").chmod(0o600)  # sourced by ejabberdctl as root, before it switches user
    cookie_file = tmp / ".erlang.cookie"  # HOME is tmp: the node and our rpc client read it from here
    cookie_file.write_text(cookie)
    cookie_file.chmod(0o400)
    _create_database(db, users)
    log, console = tmp / "log" / "ejabberd.log", tmp / "log" / "console.log"
    # What `ejabberdctl foreground` runs, but as us (root is fine for ejabberd; ejabberdctl would
    # su to the ejabberd user, reset HOME and make beam.smp a grandchild) and with our HOME/cookie.
    env = {**_erl_env(tmp), "EJABBERD_CONFIG_PATH": str(conf), "EJABBERD_LOG_PATH": str(log),
           "EJABBERD_PID_PATH": str(tmp / "ejabberd.pid"), "ERL_INETRC": str(tmp / "inetrc"),
           "ERL_MAX_PORTS": "65536", "ERL_MAX_ETS_TABLES": "1400", "CONTRIB_MODULES_PATH": str(tmp / "modules"),
           "CONTRIB_MODULES_CONF_DIR": str(tmp / "modules")}
    argv = [str(ERL), "-sname", node, "+K", "true", "+P", "250000",
            "+sbwt", "none", "+sbwtdcpu", "none", "+sbwtdio", "none",  # no spinning schedulers
            "-erl_epmd_port", str(dist_port), "-start_epmd", "false",  # no epmd
            "-kernel", "inet_dist_use_interface", "{127,0,0,1}",
            "-mnesia", "dir", f'"{tmp / "spool"}"', "-s", "ejabberd", "-noinput"]
    with console.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env,  # noqa: ASYNC220
                                cwd=tmp / "spool")
    server: EjabberdServer | None = None
    try:
        try:
            await _wait_listening(proc, port, "ejabberd", log if log.exists() else console)
        except RuntimeError as exc:
            msg = f"{exc}\nconsole:\n{_tail(console)}"
            raise RuntimeError(msg) from exc
        comm = Path(f"/proc/{proc.pid}/comm").read_text().strip()
        if comm != "beam.smp":
            msg = f"expected erl to exec beam.smp, pid {proc.pid} is {comm!r}"
            raise RuntimeError(msg)
        server = EjabberdServer("ejabberd", port, proc.pid, log, DOMAIN, db, node, cookie, dist_port, tmp)
        pragmas = await asyncio.to_thread(server.sqlite_pragmas)
        if pragmas != {"journal_mode": "wal", "synchronous": "2"}:
            msg = f"ejabberd's SQLite connection is not WAL + synchronous=FULL(2): {pragmas}"
            raise RuntimeError(msg)
        yield server
    finally:
        died = proc.poll()
        await asyncio.to_thread(_stop, proc, server)
        if died not in (None, 0):
            msg = f"ejabberd (pid {proc.pid}) exited with code {died} during the benchmark; log tail:\n{_tail(log)}"
            raise RuntimeError(msg)
