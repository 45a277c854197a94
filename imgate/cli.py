"""``imgate`` command line: run the platform, manage users and device tokens."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sqlite3
import stat
import sys
import tempfile
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit

from broker.listeners import ListenerError
from config.settings import MOVED_WITH_PORT, ConfigError, Settings, load_settings, move_listeners
from imgate.tasks import TaskCrashed
from services.db import DatabaseUnavailable, SchemaMismatch, redact_url
from services.errors import ImError
from services.files import private_dir

T = TypeVar("T")

if TYPE_CHECKING:
    from services.users.service import TokenInfo, UserInfo, UserService

_TTL = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int:
    """``3600``, ``90s``, ``15m``, ``12h`` or ``30d`` -> seconds."""
    match = _TTL.match(text.strip())
    if not match or int(match.group(1)) <= 0:
        msg = f"invalid ttl {text!r}: use a positive number with an optional unit s, m, h or d (e.g. 30d)"
        raise argparse.ArgumentTypeError(msg)
    return int(match.group(1)) * _UNITS[match.group(2)]


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        msg = f"invalid port {text!r}: use 0-65535 (0 picks a free port)"
        raise argparse.ArgumentTypeError(msg)
    return int(text)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("imgate")
    except PackageNotFoundError:  # a source tree that was not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: an option given before the subcommand is not reset by the subcommand's default.
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="TOML settings file (default: $IMGATE_CONFIG)")
    common.add_argument("--data-dir", metavar="DIR", default=argparse.SUPPRESS,
                        help="data directory (default: ./data or $IMGATE_DATA_DIR)")

    parser = argparse.ArgumentParser(prog="imgate", description="MQTT-native instant messaging.",
                                     parents=[common])
    parser.add_argument("--version", action="version", version=f"imgate {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", parents=[common], help="run broker + bridge + services",
                         description="Run the platform: embedded MQTT broker, bridge and services.")
    run.add_argument("--host", help="MQTT listen address (default 127.0.0.1)")
    run.add_argument("--port", type=_port,
                     help="MQTT listen port (default 1883); the WebSocket, web page and admin listeners left at their "
                          "default ports move with it (--port 1884: 8084, 8091, 8081), so two instances can run "
                          "side by side; 0 gives each a free port")
    run.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    api = sub.add_parser("api", parents=[common], help="run the admin API and RabbitMQ's auth backend alone",
                         description="Run the admin HTTP API and the auth endpoints an external MQTT broker "
                                     "(RabbitMQ's HTTP auth backend) asks, without broker or bridge: any number, "
                                     "behind a load balancer. Needs admin.secret.")
    api.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    bridge = sub.add_parser("bridge", parents=[common], help="run one bridge on RabbitMQ (cluster mode)",
                            description="Run a bridge that consumes the clients' traffic from RabbitMQ over AMQP "
                                        "(amqp.url) and stores it in PostgreSQL: any number, each taking its share "
                                        "of the sender shards. Presence comes from RabbitMQ's event exchange.")
    bridge.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    worker = sub.add_parser("worker", parents=[common], help="run the background work alone (push, search indexing)",
                            description="Run push fan-out and sending and search indexing, without broker or "
                                        "bridge (imgate run starts one itself unless workers.mode is inline).")
    # imgate run's own, hidden from --help: the name its worker holds its leases under (so a
    # restarted one takes them back at once), and its settings as one JSON line on stdin (the
    # worker stops at its end).
    worker.add_argument("--lease-holder", help=argparse.SUPPRESS)
    worker.add_argument("--settings-stdin", action="store_true", help=argparse.SUPPRESS)

    user = sub.add_parser("user", help="manage users", description="Manage users.")
    user_sub = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = user_sub.add_parser("add", parents=[common], help="create a user (or a bot)",
                              description="Create a user; with --bot a bot (docs/bots.md), which gets tokens "
                                          "as a user does.")
    add.add_argument("uid", help="1-64 characters of A-Z a-z 0-9 _ -")
    add.add_argument("--name", default="", help="display name")
    add.add_argument("--bot", action="store_true", help="a user of kind bot (the admin API's POST /v1/bots)")
    add.add_argument("--messages-per-s", type=float, default=None,
                     help="a bot's own message rate (default: limits.bot_messages_per_s)")
    add.add_argument("--messages-burst", type=int, default=None,
                     help="a bot's own message burst (default: limits.bot_messages_burst)")
    disable = user_sub.add_parser("disable", parents=[common], help="disable a user and disconnect them",
                                  description="Disable a user; their live connections are dropped.")
    disable.add_argument("uid")
    enable = user_sub.add_parser("enable", parents=[common], help="enable a disabled user again",
                                 description="Enable a disabled user again: their tokens that were not revoked "
                                             "work again.")
    enable.add_argument("uid")
    listing = user_sub.add_parser("list", parents=[common], help="list the users",
                                  description="List the users in uid order: a table (UID, NAME, STATUS, CREATED "
                                              "in UTC, KIND), or with --json one JSON object a line (uid, name, "
                                              "disabled, created_at in ms since the epoch, kind), the admin API's "
                                              "User.")
    listing.add_argument("--disabled", action="store_true", help="only the disabled users")
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    show = user_sub.add_parser("show", parents=[common], help="show a user and their tokens",
                               description="Show a user (name, status, created) and how many live tokens they "
                                           "have; with --json the admin API's User object.")
    show.add_argument("uid")
    show.add_argument("--json", action="store_true", help="one JSON object")
    export = user_sub.add_parser("export", parents=[common], help="write a user's data archive (GDPR art. 15)",
                                 description="Write the user's data to a zip archive (docs/privacy.md): profile, "
                                             "devices, conversations, the messages they sent and received, "
                                             "reactions, blocks, contacts and their uploads' files.")
    export.add_argument("uid")
    export.add_argument("--out", type=Path, required=True, metavar="FILE", help="the archive to write (a zip)")
    erase = user_sub.add_parser("erase", parents=[common], help="erase a user's account (GDPR art. 17)",
                                description="Erase the account: tokens and connections go, then profile, "
                                            "devices, their messages (tombstones, or kept: privacy.erase_messages), "
                                            "uploads, search entries, pending pushes (docs/privacy.md). Final; "
                                            "running it again finishes an interrupted erasure.")
    erase.add_argument("uid")
    erase.add_argument("--yes", action="store_true", help="do not ask to confirm by typing the uid")

    token = sub.add_parser("token", help="manage device tokens", description="Manage device access tokens.")
    token_sub = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    issue = token_sub.add_parser("issue", parents=[common], help="issue a device token (printed once)",
                                 description="Issue an access token for one device of a user. The token is "
                                             "printed once on stdout; only its hash is stored.")
    issue.add_argument("uid")
    issue.add_argument("--device", required=True, help="device id: 1-32 characters of A-Z a-z 0-9 _ -")
    issue.add_argument("--platform", default="", help="e.g. android, ios, web, desktop")
    issue.add_argument("--ttl", type=parse_ttl, help="lifetime, e.g. 3600, 15m, 12h, 30d (default: no expiry)")
    issue.add_argument("--encoding", choices=("json", "cbor", "msgpack"), default="json",
                       help="the device's payload encoding (default: json; docs/protocol.md, \"Encodings\")")
    revoke = token_sub.add_parser("revoke", parents=[common], help="revoke tokens and disconnect",
                                  description="Revoke a user's tokens (all, or one device's); "
                                              "live connections using them are dropped.")
    revoke.add_argument("uid")
    revoke.add_argument("--device", help="only this device (default: every device)")
    tokens = token_sub.add_parser("list", parents=[common], help="list a user's tokens (never the secrets)",
                                  description="List a user's device tokens, newest first: DEVICE, PLATFORM, "
                                              "CREATED, LAST USED (to the minute), EXPIRES (UTC) and STATE (live, "
                                              "expired, revoked). The tokens themselves are not stored, so never "
                                              "shown. With --json one JSON object a line (the admin API's Token).")
    tokens.add_argument("uid")
    tokens.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    sub.add_parser("migrate", parents=[common], help="bring the database schema up to date",
                   description="Apply the database migrations this imgate has and the database lacks (`imgate "
                               "run` does it too at start-up); prints each one applied. Safe to run twice, and "
                               "while another imgate starts (they take turns).")
    search = sub.add_parser("search", help="manage the search index", description="Manage the search index.")
    search_sub = search.add_subparsers(dest="action", required=True, metavar="ACTION")
    search_sub.add_parser("reindex", parents=[common], help="rebuild the search index from the database",
                          description="Rebuild the search index from the stored messages (run it while imgate "
                                      "is stopped, or accept that messages stored meanwhile are indexed twice).")
    sub.add_parser("openapi", help="print the admin API's OpenAPI document",
                   description="Print the admin HTTP API's OpenAPI document (JSON).")
    cert = sub.add_parser("cert", help="make TLS certificates", description="Make TLS certificates.")
    cert_sub = cert.add_subparsers(dest="action", required=True, metavar="ACTION")
    dev = cert_sub.add_parser("dev", help="make a development CA and a server certificate",
                              description="Make a private development CA (ca.crt, ca.key) and a server certificate "
                                          "it signs (server.crt, server.key; EC P-256, valid about 2 years) for "
                                          "the MQTT over TLS and secure WebSocket listeners. Clients trust ca.crt. "
                                          "Not for production.")
    dev.add_argument("--out", metavar="DIR", type=Path, default=Path("certs"),
                     help="where to write the four files (default: ./certs)")
    dev.add_argument("--host", dest="hosts", metavar="NAME", action="append",
                     help="a host name or IP address clients connect to; repeat for several "
                          "(default: localhost, 127.0.0.1 and ::1)")
    dev.add_argument("--force", action="store_true",
                     help="replace existing files (a new CA: clients must be given the new ca.crt)")
    return parser


def _cert_dev(args: argparse.Namespace) -> int:
    import shlex

    from broker.certs import DEFAULT_HOSTS, write_dev_certs

    try:
        made = write_dev_certs(args.out, args.hosts or DEFAULT_HOSTS, overwrite=args.force)
    except ValueError as exc:
        print(f"imgate: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"imgate: {exc}", file=sys.stderr)
        return 1
    q = {name: shlex.quote(str(getattr(made, name).resolve()))
         for name in ("out", "ca_cert", "ca_key", "server_cert", "server_key")}
    host = made.hosts[0]
    print(f"wrote a development CA and a server certificate for {', '.join(made.hosts)} to {q['out']}:\n"
          f"  {q['ca_cert']}  the CA certificate: clients trust it (--cafile)\n"
          f"  {q['ca_key']}  the CA key (0600): keep it, it signs more certificates\n"
          f"  {q['server_cert']}  the server certificate (valid until {made.not_after:%Y-%m-%d})\n"
          f"  {q['server_key']}  its key (0600)\n"
          f"Serve MQTT over TLS on 8883 with them (or set mqtt.tls_port, tls_cert and tls_key in the config file):\n"
          f"  IMGATE_MQTT__TLS_PORT=8883 IMGATE_MQTT__TLS_CERT={q['server_cert']} "
          f"IMGATE_MQTT__TLS_KEY={q['server_key']} imgate run\n"
          f"and connect, e.g.:\n"
          f"  mosquitto_pub --cafile {q['ca_cert']} -h {shlex.quote(host)} -p 8883 -i alice:shell -u alice "
          f"-P \"$TOKEN\" -t im/alice/out/msg -m '{{\"cid\":\"c1\",\"to\":\"bob\",\"type\":\"text\",\"text\":\"hi\"}}'",
          flush=True)
    return 0


def openapi_document() -> dict[str, Any]:
    from imgate.admin import AdminContext, build_admin_app

    async def _never(*_: Any) -> Any:
        raise NotImplementedError

    from broker.external_auth import ExternalAuth
    from broker.gate import Gate
    from imgate.app import topic_acl

    # Nothing here is called: the document only needs the routes.
    auth = ExternalAuth(Gate(cast("Any", None), [], {}), topic_acl("im"))
    ctx = AdminContext(users=None, kick=_never, health=_never, metrics=_never, notify=_never, external_auth=auth)
    return build_admin_app(ctx, "x" * 16).openapi()


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    mqtt: dict[str, Any] = {}
    if getattr(args, "host", None):
        mqtt["host"] = args.host
    if mqtt:
        overrides["mqtt"] = mqtt
    if getattr(args, "log_level", None):
        overrides["log_level"] = args.log_level
    settings = load_settings(getattr(args, "config", None), overrides)
    if getattr(args, "port", None) is not None:
        settings = move_listeners(settings, args.port)
    _check_database_url(settings.database.url)
    _check_data_dir(settings.data_dir)
    return settings


def _check_database_url(url: str | None) -> None:
    """A URL the database layer can open (the settings check only its scheme): else one line
    naming the setting, without the URL (it may hold a password).

    Raises:
        ConfigError: it does not parse, or has no path, or an upper-case ``SQLITE://``.
    """
    if url is None:
        return
    scheme, _, rest = url.partition("://")
    where = "database.url (IMGATE_DATABASE__URL)"
    if scheme.lower() == "sqlite":
        if scheme != "sqlite":
            msg = f"{where}: write its scheme as sqlite://, in lower case"
            raise ConfigError(msg)
        if not rest:
            msg = f"{where}: sqlite:// needs the database file's path, e.g. sqlite:///var/lib/imgate/imgate.db"
            raise ConfigError(msg)
        return
    try:
        urlsplit(url).port  # noqa: B018 - raises on a port that is not a number or out of range
    except ValueError as exc:
        msg = f"{where}: not a valid URL ({exc}): use postgres://USER:PASSWORD@HOST:PORT/DB"
        raise ConfigError(msg) from None


def _check_data_dir(path: Path) -> None:
    """The data directory is one imgate can create, write and sync a file in (not a file, not
    read-only, not on a full disk): else one line naming it and how to choose another.

    Raises:
        ConfigError: it is not usable.
    """
    where = "set --data-dir / IMGATE_DATA_DIR / data_dir to a writable directory"
    if path.exists() and not path.is_dir():
        msg = f"the data directory {path} is not a directory ({where})"
        raise ConfigError(msg)
    try:
        private_dir(path)
        # A new file of a random name (O_EXCL): in a shared directory (/tmp) a link planted under
        # a predictable name would have had its target truncated.
        fd, probe = tempfile.mkstemp(prefix=".imgate-probe-", dir=path)
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            with suppress(OSError):
                os.unlink(probe)
    except OSError as exc:
        why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        msg = f"the data directory {path} is not usable: {why} ({where})"
        raise ConfigError(msg) from None


class DataDirInUse(Exception):
    """Another ``imgate run`` holds the data directory (or its lock file cannot be used)."""


def _lock_data_dir(path: Path) -> int:
    """One ``imgate run`` per data directory: two would share one SQLite database and the broker's
    files while neither delivers what the other's clients send. The lock (``flock`` on
    ``imgate.lock``) goes with the process, kill -9 included. Returns the descriptor holding it.

    Raises:
        DataDirInUse: another process holds it (names it and the setting to change).
    """
    import fcntl

    lock = path / "imgate.lock"
    # Not through a link: in a shared directory (/tmp) one planted under this name would have had
    # its target truncated and overwritten with our pid.
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        why = "a symbolic link" if lock.is_symlink() else os.strerror(exc.errno).lower() if exc.errno else str(exc)
        msg = (f"the data directory's lock file {lock} cannot be used: {why} (remove it, or set --data-dir / "
               f"IMGATE_DATA_DIR)")
        raise DataDirInUse(msg) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        msg = (f"the data directory's lock file {lock} is not a file of its own (a hard link?): remove it, or set "
               f"--data-dir / IMGATE_DATA_DIR")
        raise DataDirInUse(msg)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        msg = (f"the data directory {path} is in use by another imgate run (pid {holder}): give this one its own "
               f"(--data-dir / IMGATE_DATA_DIR; ARGS='--data-dir DIR' under make run)")
        raise DataDirInUse(msg) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


# The user, token and search commands create an empty database but never migrate one: a newer
# imgate's CLI must not change the schema under an older imgate that is still running.
async def _with_users(settings: Settings, action: Callable[[UserService], Awaitable[str | None]]) -> str | None:
    from imgate.app import build_services, open_database
    from services.callbacks.outbox import CallbackOutbox
    from services.ids import SystemClock

    private_dir(settings.data_dir)
    async with open_database(settings, upgrade=False):
        # (the user events of a change made here reach the callbacks' outbox too: the worker sends them)
        return await action(build_services(SystemClock(), outbox=CallbackOutbox.of(settings.callbacks.endpoints)).users)


async def record_cli(action: str, target: str, detail: dict[str, Any] | None = None) -> None:
    """Record a change made by a command in the audit log, as ``cli:{os user}@{host}`` from
    ``cli``; call it inside :func:`_with_users` (the database is open) once the change is made."""
    from imgate.audit import cli_actor
    from services.audit.service import AuditService
    from services.ids import SystemClock

    await AuditService(SystemClock()).record(cli_actor(), action, target, detail, "cli")
async def _privacy(settings: Settings, args: argparse.Namespace) -> str:
    """``imgate user export`` and ``imgate user erase``: the services with the object store (an
    export copies the uploads, an erasure deletes them) and, for an erasure, the search index."""
    from imgate.app import build_privacy, build_search, build_services, open_attachments, open_database
    from services.ids import SystemClock

    private_dir(settings.data_dir)
    clock = SystemClock()
    async with open_database(settings, upgrade=False):
        attachments = await open_attachments(settings, clock, "")
        try:
            svc = build_services(clock, attachments=attachments)
            if args.action == "export":
                counts = await build_privacy(settings, svc, None, clock).export(args.uid, args.out)
                await record_cli("user.export", args.uid, {"out": str(args.out), **counts})
                return f"wrote {args.out}: " + ", ".join(f"{n} {name}" for name, n in counts.items())
            search = build_search(settings, svc)
            try:
                done = await build_privacy(settings, svc, search, clock).erase(args.uid)
            finally:
                search.close()
            await record_cli("user.erase", done.uid, {"messages": done.messages, "groups_left": done.groups_left,
                                                      "uploads_deleted": done.uploads_deleted})
            return (f"erased user {done.uid}: {done.messages} message(s) tombstoned, {done.groups_left} group(s) "
                    f"left, {done.uploads_deleted} upload(s) deleted, {done.pushes_dropped} push(es) dropped, "
                    f"{done.scheduled_cancelled} scheduled send(s) cancelled")
        finally:
            await attachments.close()


def _confirmed(uid: str) -> bool:
    """The operator typed the uid again (an erasure is final)."""
    if not sys.stdin.isatty():
        print("imgate: erasing is final: add --yes (or run it in a terminal to confirm)", file=sys.stderr)
        return False
    answer = input(f"Erase {uid} for good? Type the uid to confirm: ")
    return answer.strip() == uid


async def _reindex(settings: Settings) -> int:
    from imgate.app import build_search, build_services, open_database
    from services.ids import SystemClock

    async with open_database(settings, upgrade=False):
        search = build_search(settings, build_services(SystemClock()))
        try:
            return await search.reindex()
        finally:
            search.close()


async def _migrate(settings: Settings) -> list[str]:
    from imgate.app import open_database

    private_dir(settings.data_dir)
    async with open_database(settings) as db:
        done = db.migrations
        where = db.display_url
        if done.applied or done.stamped:
            await record_cli("schema.migrate", "", {"applied": done.applied, "stamped": done.stamped,
                                                    "created": done.created, "current": done.current})
    lines = []
    if done.created:
        lines.append(f"created the database at {where}")
    if done.stamped:
        lines.append(f"adopted the database at {where} (schema version 2) as {done.stamped}")
    lines += [f"applied {version}" for version in done.applied]
    if not done.applied and not done.stamped and not done.created:
        lines.append(f"the database at {where} is up to date")
    lines.append(f"schema at {done.current}")
    return lines


def _stop_on_signals() -> asyncio.Event:
    """Set on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def _api(settings: Settings) -> None:
    from imgate.app import App

    stop = _stop_on_signals()
    async with App(settings, role="api") as app:
        assert app.admin is not None
        print(f"imgate api: http://{settings.admin.host}:{app.admin.port}", flush=True)
        await app.wait(stop)


async def _bridge(settings: Settings) -> None:
    from imgate.app import App

    stop = _stop_on_signals()
    async with App(settings, role="bridge") as app:
        print(f"imgate bridge: {app.listening()} as {app.holder}", flush=True)
        await app.wait(stop)
    print("imgate bridge: stopped", flush=True)


async def _worker(settings: Settings, holder: str | None = None) -> None:
    from imgate.app import App

    stop = _stop_on_signals()
    async with App(settings, role="worker", holder=holder) as app:
        print("imgate worker: running (push, search indexing)", flush=True)
        await app.wait(stop)


async def _run(settings: Settings) -> None:
    from imgate.app import App

    stop = _stop_on_signals()
    loop = asyncio.get_running_loop()
    async with App(settings) as app:
        with suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGHUP, app.reload_tls)  # new certificate files, no connection dropped
        print(f"imgate: {app.listening()}, data in {settings.data_dir}", flush=True)
        await app.wait(stop)  # until SIGINT/SIGTERM, or a crash that stops the process (imgate/tasks.py)
    print("imgate: stopped", flush=True)


def _arun(settings: Settings, main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on the configured event loop (``event_loop``: uvloop by default)."""
    if settings.event_loop == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
        with suppress(ValueError):  # closed (imgate run hands its stdout to the worker)
            if sys.stdout is not None:  # None: started with stdout closed (>&-)
                sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
    except BrokenPipeError:  # `imgate openapi | head`: the reader left
        # Nothing more can be written there, nor flushed at exit without an error of its own.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        with suppress(OSError):
            print("imgate: output closed before it was all written (broken pipe)", file=sys.stderr)
        return 2
    return code


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "openapi":
        import json

        print(json.dumps(openapi_document(), indent=2, sort_keys=True))
        return 0
    if args.command == "cert":  # needs no settings (its --host is not mqtt.host)
        return _cert_dev(args)
    if args.command == "worker" and args.settings_stdin:  # started by imgate run: its settings, as they are
        from imgate.worker import read_settings, serve_worker

        # We run in a session of our own (a terminal's Ctrl-C and a signal to imgate run's group
        # are imgate run's); a SIGTERM to every process of the service (systemd's default stop)
        # is ignored too: imgate run stops us by closing our stdin (then SIGKILL if we are stuck).
        # Dying of it first made the parent report a crash and restart us.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        worker_settings = read_settings()
        logging.basicConfig(level=worker_settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            _arun(worker_settings, serve_worker(worker_settings, args.lease_holder))
        except KeyboardInterrupt:
            return 130
        return 0
    try:
        settings = _settings(args)
    except ConfigError as exc:
        print(f"imgate: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level if args.command in ("run", "worker", "api", "bridge") else "WARNING",
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "run":
            lock = _lock_data_dir(settings.data_dir)
            try:
                _arun(settings, _run(settings))
            finally:
                os.close(lock)
            return 0
        if args.command == "worker":
            _arun(settings, _worker(settings, args.lease_holder))
            return 0
        if args.command == "api":
            _arun(settings, _api(settings))
            return 0
        if args.command == "bridge":
            _arun(settings, _bridge(settings))
            return 0
        if args.command == "search":
            print(f"indexed {_arun(settings, _reindex(settings))} message(s)")
            return 0
        if args.command == "user" and args.action in ("export", "erase"):
            if args.action == "erase" and not args.yes and not _confirmed(args.uid):
                return 2
            print(_arun(settings, _privacy(settings, args)), file=sys.stderr)
            return 0
        if args.command == "migrate":
            print("\n".join(_arun(settings, _migrate(settings))), flush=True)
            return 0
        out = _arun(settings, _with_users(settings, _user_action(args)))
    except ImError as exc:
        if args.command in ("run", "api", "bridge", "worker"):  # a server's refusal to start (the settings'
            return _failed(exc, exc.message)  # combination): what serving fails of is TaskCrashed
        print(f"imgate: {exc.message}", file=sys.stderr)
        return 1
    except TaskCrashed as exc:  # its traceback is logged already
        print(f"imgate: stopped: {exc}", file=sys.stderr)
        return 1
    except DataDirInUse as exc:
        return _failed(exc, str(exc))
    except ListenerError as exc:
        return _failed(exc, _listener_hint(exc, getattr(args, "port", None), getattr(args, "host", None)))
    except (SchemaMismatch, DatabaseUnavailable) as exc:
        return _failed(exc, str(exc))
    except sqlite3.DatabaseError as exc:  # not a database, a full disk, ...: SQLite's own words
        hint = "set database.url / IMGATE_DATABASE__URL, or --data-dir / IMGATE_DATA_DIR"
        if "full" in str(exc):
            hint = f"free some space, or {hint}"
        return _failed(exc, f"cannot use the SQLite database {redact_url(settings.database_url())}: {exc}; {hint}")
    except KeyboardInterrupt:
        return 130
    if out:
        print(out)
    return 0


def _failed(exc: BaseException, line: str) -> int:
    """A start-up failure: ``line`` on stderr, status 2; its traceback only at log level DEBUG."""
    logging.getLogger("imgate").debug("what failed", exc_info=exc)
    print(f"imgate: {line}", file=sys.stderr)
    return 2


def _listener_hint(exc: ListenerError, port: int | None, host: str | None = None) -> str:
    """A port given by ``--port`` (``make run PORT=…``) is changed there: the flag overrides
    ``IMGATE_MQTT__PORT``, and moves the listeners left at their defaults with it. Without the
    flag, MQTT's port taken may just as well be moved by it (``make run PORT=…``). An address
    given by ``--host`` is changed there too (it overrides ``IMGATE_MQTT__HOST``)."""
    text = str(exc)
    if host is not None:
        text = text.replace("set mqtt.host / IMGATE_MQTT__HOST to ", "give --host ")
    if port is None:
        if exc.setting == "mqtt.port":
            return f"{text}; or run with --port N (PORT=N under make run), which moves the other listeners too"
        return text
    if exc.setting == "mqtt.port":
        return re.sub(r"set mqtt\.port / IMGATE_MQTT__PORT to (a free|another) port",
                      f"choose another --port than {port} (PORT=… under make run)", text)
    if exc.setting in {f"{section}.{key}" for section, key in MOVED_WITH_PORT}:
        return f"{text}; --port {port} put it there: another --port (PORT=… under make run) moves it too"
    return text


def _when(ms: int | None) -> str:
    """A time in ms as UTC to the second (``-``: none)."""
    from datetime import UTC, datetime

    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows])


def _token_state(token: TokenInfo, now_ms: int) -> str:
    if token.revoked_at is not None:
        return "revoked"
    return "expired" if token.expires_at is not None and token.expires_at <= now_ms else "live"


async def _list_users(users: UserService, disabled: bool, as_json: bool) -> str | None:
    """Every user (or the disabled ones), a page at a time: JSON lines as they come, or a table."""
    import json

    from services.users.service import MAX_PAGE

    rows: list[tuple[str, ...]] = []
    after: str | None = None
    while True:
        page = await users.list_users(disabled=True if disabled else None, after=after, limit=MAX_PAGE)
        if as_json:
            for user in page.items:
                print(json.dumps(_user_json(user)))
        rows += [(u.uid, u.name, "disabled" if u.disabled else "enabled", _when(u.created_at), u.kind)
                 for u in page.items]
        if page.next is None:
            break
        after = page.next
    if not rows:
        print("no disabled users" if disabled else "no users", file=sys.stderr)
        return None
    return None if as_json else _table(("UID", "NAME", "STATUS", "CREATED", "KIND"), rows)


def _user_json(user: UserInfo) -> dict[str, Any]:
    """A user as the admin API's User has it (a bot's: with its message bucket, as its Bot)."""
    out = asdict(user)
    if user.kind != "bot":
        del out["messages_per_s"], out["messages_burst"]
    return out


def _user_action(args: argparse.Namespace) -> Callable[[UserService], Awaitable[str | None]]:
    import json
    import time

    from services.errors import NotFound

    async def act(users: UserService) -> str | None:
        now_ms = int(time.time() * 1000)
        if args.command == "user" and args.action == "add":
            from services.users.bots import BotLimits

            limits = BotLimits(args.messages_per_s, args.messages_burst)
            info = await users.add_user(args.uid, args.name, kind="bot" if args.bot else "user", limits=limits)
            await record_cli("bot.create" if args.bot else "user.create", info.uid,
                             {"name": args.name, "kind": info.kind})
            print(f"created {info.kind} {info.uid}", file=sys.stderr)
            return None
        if args.command == "user" and args.action == "disable":
            await users.disable_user(args.uid)
            await record_cli("user.disable", args.uid)
            print(f"disabled user {args.uid}", file=sys.stderr)
            return None
        if args.command == "user" and args.action == "enable":
            await users.enable_user(args.uid)
            await record_cli("user.enable", args.uid)
            print(f"enabled user {args.uid}", file=sys.stderr)
            return None
        if args.command == "user" and args.action == "list":
            return await _list_users(users, args.disabled, args.json)
        if args.command == "user" and args.action == "show":
            user = await users.get_user(args.uid)
            if args.json:
                return json.dumps(_user_json(user))
            states = [_token_state(t, now_ms) for t in await users.list_tokens(args.uid)]
            n_live = states.count("live")
            return _table(("uid", user.uid), [
                ("name", user.name), ("status", "disabled" if user.disabled else "enabled"), ("kind", user.kind),
                ("created", _when(user.created_at)),
                ("tokens", f"{n_live} live, {len(states) - n_live} revoked or expired (imgate token list {user.uid})"),
            ])
        if args.command == "token" and args.action == "issue":
            issued = await users.issue_token(args.uid, args.device, args.platform, args.ttl, args.encoding)
            await record_cli("token.issue", args.uid, {"device": args.device, "platform": args.platform,
                                                       "ttl_s": args.ttl, "encoding": args.encoding})
            return issued.token
        if args.command == "token" and args.action == "list":
            tokens = await users.list_tokens(args.uid)
            if args.json:
                return "\n".join(json.dumps(asdict(t)) for t in tokens) or None
            if not tokens:
                print(f"{args.uid} has no tokens", file=sys.stderr)
                return None
            return _table(("DEVICE", "PLATFORM", "CREATED", "LAST USED", "EXPIRES", "STATE"),
                          [(t.device, t.platform or "-", _when(t.created_at), _when(t.last_used_at),
                            _when(t.expires_at), _token_state(t, now_ms)) for t in tokens])
        if args.command == "token" and args.action == "revoke":
            count = await users.revoke_tokens(args.uid, args.device)
            if count == 0:  # a typo in --device would otherwise look like success
                live = sorted({t.device for t in await users.list_tokens(args.uid)
                               if _token_state(t, now_ms) == "live"})
                which = f" for device {args.device!r}" if args.device is not None else ""
                hint = f" (devices with live tokens: {', '.join(live)})" if live and args.device is not None else ""
                msg = f"{args.uid} has no live token{which}: nothing revoked{hint}"
                raise NotFound(msg)
            await record_cli("token.revoke", args.uid, {"device": args.device, "count": count})
            print(f"revoked {count} token(s) of {args.uid}", file=sys.stderr)
            return None
        msg = f"unhandled command {args.command} {args.action}"
        raise AssertionError(msg)

    return act
