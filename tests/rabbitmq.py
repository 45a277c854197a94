"""A private RabbitMQ node for live tests of "RabbitMQ as the MQTT front" (issue 14).

``RabbitNode`` boots Debian's RabbitMQ (3.10) as its own Erlang node, run as the current user (root
here) through ``/usr/lib/rabbitmq/bin/rabbitmq-server`` (the ``/usr/sbin`` wrappers switch user):
a unique node name, free loopback ports for AMQP, MQTT, Web MQTT, the management HTTP API and Erlang
distribution, and everything else (config, plugins file, Mnesia, logs, ``HOME`` with its own Erlang
cookie, an empty ``rabbitmq-env.conf``) in a private temporary directory. The system node
(``rabbit@localhost`` on 5672) is never touched. Devices authenticate through the HTTP auth backend
(``auth_backends.1 = http``, then ``internal``) at ``{auth_base}/user|vhost|resource|topic``; the base
can be changed on the running node (``set_auth_base``), so one session node serves tests whose auth
servers listen on different ports.

Use the session fixture ``rabbitmq_node``: ``from tests.rabbitmq import rabbitmq_node_fixture  # noqa: F401``
in a test module (or in tests/conftest.py for every module), then take ``rabbitmq_node: RabbitNode`` as an
argument; it skips when RabbitMQ is not installed. Or ``RabbitNode(...).start()`` / ``.stop()`` directly.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import pytest

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
CTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
PLUGINS = ("rabbitmq_mqtt", "rabbitmq_web_mqtt", "rabbitmq_auth_backend_http", "rabbitmq_auth_backend_cache",
           "rabbitmq_consistent_hash_exchange",
           "rabbitmq_event_exchange", "rabbitmq_management")
AUTH_PATHS = ("user", "vhost", "resource", "topic")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
CTL_TIMEOUT = 30.0
# The internal user every fresh node has (administrator; the internal backend lets it in from loopback
# only): for AMQP administration and the management API (closing connections).
ADMIN_USER, ADMIN_PASSWORD = "guest", "guest"
_URL = re.compile(r"https?://[A-Za-z0-9.:\[\]/_~%-]+")  # what may go inside an Erlang string unescaped
_EPMD_PORT = 4369


# The configuration `make rabbitmq` runs (docs/scale-out.md): tests of the auth cache start a node
# with its auth settings, not with settings of their own.
SHIPPED_CONF = Path(__file__).resolve().parent.parent / "config" / "rabbitmq" / "local.conf"
_AUTH_KEYS = ("auth_backends.", "auth_cache.", "auth_http.")


def shipped_auth_settings(conf: Path) -> dict[str, str]:
    """The auth settings of a shipped RabbitMQ configuration file (``key = value`` lines whose key
    starts with ``auth_backends.``, ``auth_cache.`` or ``auth_http.``), in file order. Raises
    ValueError if it lacks one of the four HTTP backend paths or uses another HTTP method than post
    (the test node points the paths at the test's auth server and always posts)."""
    found: dict[str, str] = {}
    for line in conf.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#") and key.strip().startswith(_AUTH_KEYS):
            found[key.strip()] = value.strip()
    missing = [p for p in AUTH_PATHS if f"auth_http.{p}_path" not in found]
    if missing or found.get("auth_http.http_method") != "post":
        raise ValueError(f"{conf}: auth paths {missing} missing, or auth_http.http_method is not post")
    return found


def installed() -> bool:
    return SERVER.is_file() and CTL.is_file()


def _free_ports(n: int) -> list[int]:
    """n distinct ports free on 127.0.0.1 now (all sockets held until every port is picked)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _pgrep(*args: str) -> list[int]:
    found = subprocess.run(["pgrep", *args], capture_output=True, text=True, check=False)
    return [int(p) for p in found.stdout.split()]


class RabbitNodeError(RuntimeError):
    pass


class RabbitNode:
    """One private RabbitMQ node. ``start()`` blocks until the node runs (about 8 s) or raises
    RabbitNodeError with the log tail; ``stop()`` stops it, leaves no process of it running and
    removes its directory. Also a context manager."""

    def __init__(self, auth_base: str = "http://127.0.0.1:9/auth/rabbitmq", *, name: str | None = None,
                 auth_cache_ttl_ms: int | None = None, cookie: str | None = None,
                 auth_from: Path | None = None, mqtt_queue_type: str | None = None,
                 peers: Sequence[str] = ()) -> None:
        """``auth_base``: the HTTP auth backend's paths are ``{auth_base}/user`` etc. ``auth_cache_ttl_ms``:
        put ``rabbitmq_auth_backend_cache`` in front of the HTTP backend with this TTL (None: no cache,
        every check reaches the auth server; the plugin is enabled either way). ``auth_from``: take the
        auth settings (``auth_backends.*``, ``auth_cache.*``, ``auth_http.*``, cache TTL included) from
        this shipped configuration file instead (``SHIPPED_CONF``), only its four paths pointed at
        ``auth_base``, and the ``advanced.config`` beside it (MQTT usernames with a colon).
        ``mqtt_queue_type``: ``mqtt.durable_queue_type`` ("quorum": the queues of the devices'
        persistent sessions are replicated over the cluster, as config/rabbitmq/rabbitmq.conf
        ships; None: RabbitMQ's default, classic queues on the node the device connected to).
        ``peers``: the node names of a cluster to form as the nodes boot (classic_config peer
        discovery, as config/rabbitmq/rabbitmq.conf ships; see ``cluster``)."""
        self.auth_base = self._check_url(auth_base)
        self.shipped_auth = shipped_auth_settings(auth_from) if auth_from is not None else None
        advanced = auth_from.parent / "advanced.config" if auth_from is not None else None
        self.shipped_advanced = advanced.read_text() if advanced is not None and advanced.is_file() else None
        if self.shipped_auth is not None:
            auth_cache_ttl_ms = int(self.shipped_auth["auth_cache.cache_ttl"]) \
                if self.shipped_auth.get("auth_backends.1") == "cache" else None
        self.auth_cache_ttl_ms = auth_cache_ttl_ms
        if mqtt_queue_type not in (None, "classic", "quorum"):
            raise ValueError(f"mqtt_queue_type: classic, quorum or None, not {mqtt_queue_type!r}")
        self.mqtt_queue_type = mqtt_queue_type
        self.peers = tuple(peers)
        self.cookie = cookie or secrets.token_hex(16).upper()  # nodes of one cluster share it
        self.nodename = f"{name or 'imgate-test-' + secrets.token_hex(4)}@localhost"
        self.amqp_port = self.mqtt_port = self.web_mqtt_port = self.mgmt_port = self.dist_port = 0
        self.dir: Path | None = None
        self.start_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._epmd_before: set[int] = set()

    # -- lifecycle -----------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = START_TIMEOUT) -> None:
        if not installed():
            raise RabbitNodeError(f"RabbitMQ is not installed ({SERVER})")
        if self._proc is not None:
            raise RabbitNodeError(f"{self.nodename} is already started")
        began = time.monotonic()
        self._epmd_before = set(_pgrep("-x", "epmd"))
        for attempt in range(3):  # a port picked free may be taken before the node binds it: pick again
            try:
                self._start_once(began + timeout)
                break
            except RabbitNodeError as e:
                in_use = "eaddrinuse" in str(e).lower()
                self._kill_and_clean(grace=0)
                if not in_use or attempt == 2:
                    raise
        self.start_seconds = time.monotonic() - began

    def _start_once(self, deadline: float) -> None:
        self.amqp_port, self.mqtt_port, self.web_mqtt_port, self.mgmt_port, self.dist_port = _free_ports(5)
        self.dir = Path(tempfile.mkdtemp(prefix="imgate-rabbitmq-"))
        for sub in ("home", "mnesia", "log"):
            (self.dir / sub).mkdir()
        cookie = self.dir / "home" / ".erlang.cookie"
        cookie.write_text(self.cookie)
        cookie.chmod(0o400)
        (self.dir / "rabbitmq-env.conf").write_text("")  # Debian's /etc/rabbitmq one forces NODENAME
        (self.dir / "enabled_plugins").write_text(f"[{','.join(PLUGINS)}].\n")
        (self.dir / "rabbitmq.conf").write_text(self._config())
        if self.shipped_advanced is not None:  # the shipped node's advanced.config, as it is
            (self.dir / "advanced.config").write_text(self.shipped_advanced)
        console = (self.dir / "console.log").open("wb")
        try:
            self._proc = subprocess.Popen([str(SERVER)], env=self.env, cwd=self.dir, stdin=subprocess.DEVNULL,
                                          stdout=console, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            console.close()
        # The listeners open as the node boots (MQTT and HTTP ones with their plugins, near the end):
        # poll them (cheap), then let rabbitmqctl confirm the boot finished.
        ports = (self.amqp_port, self.mqtt_port, self.web_mqtt_port, self.mgmt_port)
        while not all(_accepts(p) for p in ports):
            if self._proc.poll() is not None:
                raise RabbitNodeError(f"{self.nodename} exited with {self._proc.returncode} while starting"
                                      f"\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RabbitNodeError(f"{self.nodename} did not open its ports {ports} in time\n{self.log_tail()}")
            time.sleep(0.1)
        left = max(1, int(deadline - time.monotonic()))
        done = self._run_ctl(["await_startup", "--timeout", str(left)], timeout=left + 15)
        if done.returncode != 0:
            raise RabbitNodeError(f"rabbitmqctl await_startup failed: {done.stdout}{done.stderr}\n{self.log_tail()}")

    @classmethod
    def cluster(cls, size: int, **kwargs: Any) -> list[RabbitNode]:
        """``size`` nodes (not started) that form one cluster as they boot: start them together
        (in threads), faster than ``join`` one by one (no restart of the joining node's app)."""
        names = [f"imgate-test-{secrets.token_hex(4)}" for _ in range(size)]
        cookie = secrets.token_hex(16).upper()
        return [cls(name=name, cookie=cookie, peers=[f"{n}@localhost" for n in names], **kwargs) for name in names]

    async def join(self, other: RabbitNode) -> None:
        """Join ``other``'s cluster (both started, with the same ``cookie``): this node's data is
        reset to the cluster's."""
        await self.actl("stop_app")
        await self.actl("join_cluster", other.nodename)
        await self.actl("start_app")
        await self.actl("await_startup")

    def kill(self) -> None:
        """``kill -9`` of the whole node (its process group: the Erlang VM and its helpers), no
        goodbye to its peers or clients. ``stop()`` afterwards reaps it and removes its directory."""
        assert self._proc is not None, "not started"
        os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait(timeout=10)  # the script (the group's leader) reaped: ``running`` is False

    def stop(self) -> None:
        """Stop the node (rabbitmqctl stop; SIGTERM then SIGKILL to its process group if that does not
        end it in time), check that none of its processes is left, remove its directory."""
        if self._proc is None:
            self._remove_dir()
            return
        if self._proc.poll() is None:
            try:
                self._run_ctl(["stop"], timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        self._kill_and_clean(grace=STOP_TIMEOUT)

    def _kill_and_clean(self, *, grace: float) -> None:
        """Wait up to ``grace`` seconds for the node's script to end, then SIGTERM and SIGKILL whatever
        of its process group is left; check that nothing of it runs; remove its directory."""
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
            for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
                if not self._pids(proc.pid):
                    break
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                end = time.monotonic() + wait
                while proc.poll() is None or self._pids(proc.pid):  # poll(): reap the script, no zombie
                    if time.monotonic() > end:
                        break
                    time.sleep(0.05)
            if proc.poll() is None:
                proc.wait(timeout=5)
            left = self._pids(proc.pid)
            if left:
                raise RabbitNodeError(f"processes of {self.nodename} still running: {left}")
        self._stop_own_epmd()
        self._remove_dir()

    def _pids(self, pgid: int) -> list[int]:
        """Live processes of this node: its process group (the script, beam, erl_child_setup...) and
        anything else whose command line names the node or its directory."""
        pids = set(_pgrep("-g", str(pgid))) | set(_pgrep("-f", re.escape(self.nodename)))
        if self.dir is not None:
            pids |= set(_pgrep("-f", re.escape(str(self.dir))))
        return sorted(pids - {os.getpid()})

    def _stop_own_epmd(self) -> None:
        """The node registers with the machine's epmd (port 4369), and starts one if none runs. One it
        started (not running before start) is stopped once no node is registered with it any more."""
        for pid in set(_pgrep("-x", "epmd")) - self._epmd_before:
            names = subprocess.run(["epmd", "-names"], capture_output=True, text=True, check=False).stdout
            if "name " not in names:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    def _remove_dir(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- configuration -------------------------------------------------------------------------------

    def _config(self) -> str:
        assert self.dir is not None
        if self.shipped_auth is not None:  # as shipped, but for the paths (below)
            backends = "".join(f"{k} = {v}\n" for k, v in self.shipped_auth.items()
                               if not k.endswith("_path") and k != "auth_http.http_method")
        elif self.auth_cache_ttl_ms is None:
            backends = "auth_backends.1 = http\nauth_backends.2 = internal\n"
        else:
            backends = (f"auth_backends.1 = cache\nauth_cache.cached_backend = http\n"
                        f"auth_cache.cache_ttl = {self.auth_cache_ttl_ms}\nauth_backends.2 = internal\n")
        paths = "".join(f"auth_http.{p}_path = {self.auth_base}/{p}\n" for p in AUTH_PATHS)
        peers = "".join(f"cluster_formation.classic_config.nodes.{i} = {name}\n" for i, name in enumerate(self.peers, 1))
        return (
            ("cluster_formation.peer_discovery_backend = classic_config\n" + peers if peers else "")
            + f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            f"{backends}"
            "auth_http.http_method = post\n"
            f"{paths}"
            f"mqtt.listeners.tcp.default = 127.0.0.1:{self.mqtt_port}\n"
            "mqtt.allow_anonymous = false\n"
            "mqtt.vhost = /\n"
            "mqtt.exchange = amq.topic\n"
            + (f"mqtt.durable_queue_type = {self.mqtt_queue_type}\n" if self.mqtt_queue_type else "")
            + "web_mqtt.tcp.ip = 127.0.0.1\n"
            f"web_mqtt.tcp.port = {self.web_mqtt_port}\n"
            "management.tcp.ip = 127.0.0.1\n"
            f"management.tcp.port = {self.mgmt_port}\n"
            "log.console = false\n"
            "log.file.level = info\n"
        )

    @property
    def env(self) -> dict[str, str]:
        """The environment of the node and of every CLI tool pointed at it."""
        assert self.dir is not None, "not started"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update({
            "HOME": str(self.dir / "home"),  # its .erlang.cookie
            "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8",  # the CLI (Elixir) wants a UTF-8 locale
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_USE_LONGNAME": "false",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),  # absent: none
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "rabbitmq.pid"),
            # What Debian's rabbitmq-env.conf sets besides the node name: distribution on loopback only.
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        })
        return env

    # -- control -------------------------------------------------------------------------------------

    def _run_ctl(self, args: list[str], timeout: float = CTL_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(CTL), "-n", self.nodename, *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def ctl(self, *args: str, timeout: float = CTL_TIMEOUT) -> str:
        """Run ``rabbitmqctl -n NODE args`` against this node (blocking); its stdout, or
        RabbitNodeError if it fails."""
        done = self._run_ctl(list(args), timeout)
        if done.returncode != 0:
            raise RabbitNodeError(f"rabbitmqctl {' '.join(args)} exited {done.returncode}: {done.stdout}{done.stderr}")
        return done.stdout

    async def actl(self, *args: str, timeout: float = CTL_TIMEOUT) -> str:
        """``ctl`` for async tests: does not block the event loop (an auth server may be serving in it)."""
        proc = await asyncio.create_subprocess_exec(str(CTL), "-n", self.nodename, *args, env=self.env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            raise RabbitNodeError(f"rabbitmqctl {' '.join(args)} exited {proc.returncode}: "
                                  f"{out.decode()}{err.decode()}")
        return out.decode()

    @staticmethod
    def _check_url(url: str) -> str:
        url = url.rstrip("/")
        if not _URL.fullmatch(url):
            raise ValueError(f"not a plain http(s) URL: {url!r}")
        return url

    def _auth_base_eval(self, url: str) -> str:
        pairs = ",".join(f'{{{p}_path,"{url}/{p}"}}' for p in AUTH_PATHS)
        # Set each path, then read them all back (the output is checked by the caller).
        return (f"[begin ok = application:set_env(rabbitmq_auth_backend_http, K, V), "
                f"{{ok, Got}} = application:get_env(rabbitmq_auth_backend_http, K), Got end "
                f"|| {{K, V}} <- [{pairs}]].")

    def _check_auth_base(self, url: str, out: str) -> None:
        missing = [p for p in AUTH_PATHS if f'"{url}/{p}"' not in out]
        if missing:
            raise RabbitNodeError(f"set_auth_base({url}): {missing} not set; rabbitmqctl eval said {out!r}")
        self.auth_base = url

    def set_auth_base(self, url: str) -> None:
        """Point the HTTP auth backend of the running node at ``{url}/user`` etc. (takes effect on the
        next check: the backend reads its paths on every request)."""
        url = self._check_url(url)
        self._check_auth_base(url, self.ctl("eval", self._auth_base_eval(url)))

    async def aset_auth_base(self, url: str) -> None:
        """``set_auth_base`` for async tests (does not block the event loop)."""
        url = self._check_url(url)
        self._check_auth_base(url, await self.actl("eval", self._auth_base_eval(url)))

    # -- diagnostics ---------------------------------------------------------------------------------

    @property
    def mgmt_url(self) -> str:
        return f"http://127.0.0.1:{self.mgmt_port}"

    def log_tail(self, lines: int = 30, first_errors: int = 12) -> str:
        """The first error lines (the cause: a crash report follows them) and the last lines of the
        node's console output and log files."""
        if self.dir is None:
            return "(no log: the node's directory is gone)"
        parts = []
        for path in [self.dir / "console.log", *sorted((self.dir / "log").glob("*.log"))]:
            if path.is_file():
                text = path.read_text(errors="replace").splitlines()
                errors = [ln for ln in text if "[error]" in ln][:first_errors]
                if errors:
                    parts.append(f"--- {path.name} (first {len(errors)} error lines)\n" + "\n".join(errors))
                parts.append(f"--- {path.name} (last {len(text[-lines:])} lines)\n" + "\n".join(text[-lines:]))
        return "\n".join(parts) or "(no log written)"


@pytest.fixture(scope="session", name="shipped_rabbitmq_node")
def shipped_rabbitmq_node_fixture() -> Iterator[RabbitNode]:
    """The ``shipped_rabbitmq_node`` fixture: a private node for the session whose auth settings are
    ``config/rabbitmq/local.conf``'s (the HTTP backend behind ``rabbitmq_auth_backend_cache``, its
    TTL included), pointed at the test's auth server with ``aset_auth_base``. Its cache outlives a
    test: tests on it use names of their own. Skips where RabbitMQ is not installed."""
    if not installed():
        pytest.skip(f"RabbitMQ is not installed ({SERVER} is absent)")
    node = RabbitNode(auth_from=SHIPPED_CONF)
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session", name="rabbitmq_node")
def rabbitmq_node_fixture() -> Iterator[RabbitNode]:
    """The ``rabbitmq_node`` fixture: one private RabbitMQ node for the session (tests point it at their
    auth server with ``set_auth_base``/``aset_auth_base``). Skips where RabbitMQ is not installed.
    Imported under this name, a test module (or conftest) gets the fixture without its test
    functions' ``rabbitmq_node`` arguments shadowing an import (ruff F811). The devices' session
    queues are quorum queues, as the shipped cluster configuration (config/rabbitmq/rabbitmq.conf)
    makes them."""
    if not installed():
        pytest.skip(f"RabbitMQ is not installed ({SERVER} is absent)")
    node = RabbitNode(mqtt_queue_type="quorum")
    node.start()
    try:
        yield node
    finally:
        node.stop()
