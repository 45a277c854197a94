"""docker-compose.yml's imgate services run commands and settings imgate accepts: every
``IMGATE_*`` variable names a setting, the environment as a whole validates, and every ``imgate``
invocation in a service's command parses. The cluster around them fits together: three RabbitMQ
nodes forming one cluster (config/rabbitmq/), with the plugins imgate needs, imgate api as their
auth backend on the routes it serves, TLS from the certificates volume, health checks, one bridge
account and one shard count. The deployment is safe and whole: every secret is required
(``${VAR:?…}``, no default, no literal password) and listed in the header and .env.example,
attachments are in a MinIO bucket that devices outside the compose network reach, the
all-in-one's web port is published, and the image runs as an unprivileged user that owns its
volumes. (The file is not run here: no Docker daemon on CI. The file is read with compose's
variable substitution done here, each required secret given a made-up value; where ``docker
compose`` is installed, its own reading is checked against that one.)"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import BaseModel

from config.settings import Settings, load_settings
from imgate.cli import build_parser, openapi_document

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
# compose's variable substitution: $$ (a dollar), ${VAR}, $VAR, ${VAR:-default} / ${VAR-default}
# (the default when unset or empty / unset), ${VAR:?message} / ${VAR?message} (an error when unset
# or empty / unset).
_REFERENCE = re.compile(r"\$(?:(?P<dollar>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
                        r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


class MissingVariable(Exception):
    """A ``${VAR:?message}`` whose variable is unset or empty: compose refuses to start."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"required variable {name} is missing a value: {message}")
        self.name = name


def _references(value: str) -> Iterator[re.Match[str]]:
    """The variable references in a string (``$$`` escapes excepted)."""
    return (m for m in _REFERENCE.finditer(value) if not m["dollar"])


def _substitute(value: str, env: Mapping[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        if m["dollar"]:
            return "$"
        name, op, arg = m["braced"] or m["plain"], m["op"] or "", m["arg"] or ""
        found = env.get(name)
        unset = found is None or (op.startswith(":") and found == "")
        if op.endswith("-"):
            return arg if unset else str(found)
        if op.endswith("?"):
            if unset:
                raise MissingVariable(name, arg)
            return str(found)
        assert not op, f"${{{name}{op}...}}: not a substitution this file uses"
        return found or ""

    return _REFERENCE.sub(one, value)


def _interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """The compose file as compose reads it with the variables ``env``: every string value
    substituted (keys are not)."""
    if isinstance(node, dict):
        return {key: _interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate(value, env) for value in node]
    return _substitute(node, env) if isinstance(node, str) else node


def _strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string value of a parsed YAML tree, with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


# The file as written (anchors merged, ${...} left as they are), and as compose reads it with
# every required variable given a made-up value (hex, as the header says to make them) and every
# other left to its default.
RAW = yaml.safe_load(COMPOSE_FILE.read_text())
REQUIRED = sorted({m["braced"] for _, s in _strings(RAW) for m in _references(s) if (m["op"] or "").endswith("?")})
TEST_ENV = {name: hashlib.sha256(name.encode()).hexdigest()[:32] for name in REQUIRED}
COMPOSE = _interpolate(RAW, TEST_ENV)
RABBITMQ_CONF = ROOT / "config" / "rabbitmq" / "rabbitmq.conf"
ENABLED_PLUGINS = ROOT / "config" / "rabbitmq" / "enabled_plugins"
EMQX_HOCON = ROOT / "config" / "emqx" / "imgate.hocon"
# What imgate needs of RabbitMQ: MQTT and Web MQTT for the devices, the HTTP auth backend (imgate
# api) behind the cache, the consistent-hash exchange the bridges shard on, the event exchange
# presence comes from, and the management API imgate closes revoked devices' connections through.
REQUIRED_PLUGINS = {"rabbitmq_mqtt", "rabbitmq_web_mqtt", "rabbitmq_auth_backend_http", "rabbitmq_auth_backend_cache",
                    "rabbitmq_consistent_hash_exchange", "rabbitmq_event_exchange", "rabbitmq_management"}
AUTH_PATHS = ("user", "vhost", "resource", "topic")
IMGATE_SERVICES = {name: spec for name, spec in COMPOSE["services"].items()
                   if spec.get("build") is not None or "imgate" in str(spec.get("image", ""))}


def _dockerfile() -> list[tuple[str, str]]:
    """The instructions of the Dockerfile's last stage (the image): (INSTRUCTION, arguments), lines
    continued with a backslash joined, comments left out."""
    text = re.sub(r"\\\n", "", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            instructions.append((word.upper(), rest.strip()))
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def _image_env() -> dict[str, str]:
    """The image's own environment (its ``ENV KEY=VALUE ...`` lines)."""
    env: dict[str, str] = {}
    for word, rest in _dockerfile():
        if word == "ENV":
            env.update(pair.partition("=")[::2] for pair in shlex.split(rest))
    return env


def _invocations(spec: dict[str, Any]) -> list[list[str]]:
    """Every ``imgate …`` in the service's command: the simple commands of a shell line under
    ``sh -c`` that start with ``imgate`` (after an ``exec``), or the argv given to imgate itself."""
    command = spec.get("command", [])
    parts = command if isinstance(command, list) else [command]
    if spec.get("entrypoint") != ["sh", "-c"]:
        return [list(parts)] if spec.get("entrypoint") in (None, ["imgate"]) else []
    found = []
    for simple in re.split(r";|\|\||&&", " ".join(parts)):
        words = shlex.split(simple)
        if words[:1] == ["exec"]:
            words = words[1:]
        if words[:1] == ["imgate"]:
            found.append(words[1:])
    return found


def test_the_compose_file_has_imgate_services() -> None:
    assert IMGATE_SERVICES, "no imgate service found in docker-compose.yml"


@pytest.mark.parametrize("name", [*sorted(IMGATE_SERVICES), "the image"])
def test_every_imgate_variable_names_a_setting(name: str) -> None:
    for var in IMGATE_SERVICES[name].get("environment", {}) if name in IMGATE_SERVICES else _image_env():
        assert var.startswith("IMGATE_"), var
        section, _, key = var.removeprefix("IMGATE_").lower().partition("__")
        assert section in Settings.model_fields, f"{name}: {var}: no setting section {section!r}"
        if key:
            model = Settings.model_fields[section].annotation
            assert isinstance(model, type) and issubclass(model, BaseModel)
            assert key in model.model_fields, f"{name}: {var}: {section} has no setting {key!r}"


@pytest.mark.parametrize("name", sorted(IMGATE_SERVICES))
def test_the_environment_validates(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var, value in {**_image_env(), **IMGATE_SERVICES[name].get("environment", {})}.items():
        monkeypatch.setenv(var, str(value))
    settings = load_settings(None)
    if any(argv[:1] != ["cert"] for argv in _invocations(IMGATE_SERVICES[name])):  # `imgate cert` uses no database
        assert settings.database_url().startswith("postgres://")


@pytest.mark.parametrize("name", sorted(IMGATE_SERVICES))
def test_every_imgate_command_parses(name: str) -> None:
    invocations = _invocations(IMGATE_SERVICES[name])
    assert invocations, f"{name}: no imgate command found"
    for argv in invocations:
        build_parser().parse_args(argv)  # exits (SystemExit) on an unknown command or option


def test_the_command_reader_sees_what_the_shell_runs() -> None:
    spec = {"entrypoint": ["sh", "-c"], "command": ["[ -f /x ] || imgate cert dev --out /c --host a; exec imgate run"]}
    assert _invocations(spec) == [["cert", "dev", "--out", "/c", "--host", "a"], ["run"]]
    assert _invocations({"command": ["api", "--log-level", "INFO"]}) == [["api", "--log-level", "INFO"]]


# --- the cluster around the imgate services -------------------------------------------------------


def _rabbitmq_conf(text: str) -> dict[str, str]:
    """rabbitmq.conf's ``key = value`` lines (comments are whole lines starting with ``#``)."""
    conf: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and key.strip() and value.strip(), f"rabbitmq.conf line {number}: not key = value: {line!r}"
        assert key.strip() not in conf, f"rabbitmq.conf line {number}: {key.strip()} set twice"
        conf[key.strip()] = value.strip()
    return conf


def _plugins(text: str) -> set[str]:
    """The plugins of an ``enabled_plugins`` file: an Erlang list of atoms ended by a full stop."""
    match = re.fullmatch(r"\s*\[\s*([a-z0-9_]+(?:\s*,\s*[a-z0-9_]+)*)\s*\]\s*\.\s*", text)
    assert match, f"not an Erlang list of plugin names: {text!r}"
    return {name.strip() for name in match.group(1).split(",")}


def _env(spec: dict[str, Any]) -> dict[str, str]:
    return {var: str(value) for var, value in spec.get("environment", {}).items()}


def _settings(spec: dict[str, Any]) -> Settings:
    """The settings an imgate service starts with: the image's environment and its own (this
    process's own IMGATE_* set aside)."""
    with pytest.MonkeyPatch.context() as mp:
        for var in [v for v in os.environ if v.startswith("IMGATE_")]:
            mp.delenv(var)
        for var, value in {**_image_env(), **_env(spec)}.items():
            mp.setenv(var, value)
        return load_settings(None)


def _command(spec: dict[str, Any]) -> list[str]:
    """The imgate command a service runs (the last one of a shell line: the one it execs)."""
    invocations = _invocations(spec)
    assert invocations, f"no imgate command in {spec}"
    return invocations[-1]


def _role(name: str) -> list[str]:
    """The names of the imgate services running ``imgate {role}``."""
    return sorted(n for n, spec in IMGATE_SERVICES.items() if _command(spec)[:1] == [name])


def _mounts(spec: dict[str, Any]) -> dict[str, str]:
    """A service's volumes: target -> source (a volume's name, or a path on the host)."""
    mounts = {}
    for volume in spec.get("volumes", []):
        if isinstance(volume, dict):
            mounts[volume["target"]] = str(volume.get("source", ""))
        else:
            source, target, *_ = str(volume).split(":")
            mounts[target] = source
    return mounts


def _rabbit_nodes() -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in COMPOSE["services"].items()
            if str(spec.get("image", "")).startswith("rabbitmq:")}


def _one_shots() -> set[str]:
    """Services others wait for to have *completed* (run once, then exit)."""
    return {dep for spec in COMPOSE["services"].values() for dep, cond in (spec.get("depends_on") or {}).items()
            if isinstance(cond, dict) and cond.get("condition") == "service_completed_successfully"}


def _api() -> tuple[str, dict[str, Any]]:
    apis = _role("api")
    assert len(apis) == 1, f"one imgate api service expected, found {apis}"
    return apis[0], IMGATE_SERVICES[apis[0]]


def _api_names(name: str, spec: dict[str, Any]) -> set[str]:
    """The host names the api service answers to in the compose network: its name and aliases."""
    names = {name}
    for network in (spec.get("networks") or {}).values():
        names.update((network or {}).get("aliases", []))
    return names


def _routes() -> dict[str, set[str]]:
    return {path: set(methods) for path, methods in openapi_document()["paths"].items()}


def _certs() -> tuple[str, str, str]:
    """The certificates one-shot: its name, its volume, and the directory (where that volume is
    mounted) that its ``imgate cert dev --out`` writes."""
    found = [(name, argv) for name, spec in IMGATE_SERVICES.items() for argv in _invocations(spec)
             if argv[:2] == ["cert", "dev"]]
    assert len(found) == 1, f"one service running `imgate cert dev` expected, found {found}"
    name, argv = found[0]
    out = str(build_parser().parse_args(argv).out)
    mounts = _mounts(IMGATE_SERVICES[name])
    assert out in mounts, f"{name}: `imgate cert dev --out {out}` writes outside its volumes {mounts}"
    return name, mounts[out], out


def test_rabbitmq_is_a_three_node_cluster_with_one_cookie() -> None:
    nodes = _rabbit_nodes()
    assert len(nodes) == 3, f"three RabbitMQ nodes expected, found {sorted(nodes)}"
    for name, spec in nodes.items():
        version = re.match(r"rabbitmq:(\d+)\.(\d+)", spec["image"])
        assert version, f"{name}: {spec['image']} names no RabbitMQ release line"
        assert (int(version[1]), int(version[2])) >= (3, 13), f"{name}: {spec['image']} has no MQTT 5 (3.13 and later)"
    cookies = {name: _env(spec).get("RABBITMQ_ERLANG_COOKIE") for name, spec in nodes.items()}
    assert all(cookies.values()) and len(set(cookies.values())) == 1, f"the nodes need one Erlang cookie: {cookies}"
    hostnames = {spec.get("hostname") for spec in nodes.values()}
    assert None not in hostnames and len(hostnames) == 3, f"each node needs its own fixed hostname: {hostnames}"
    conf = _rabbitmq_conf(RABBITMQ_CONF.read_text())
    assert conf.get("cluster_formation.peer_discovery_backend") == "classic_config"
    listed = {v for k, v in conf.items() if k.startswith("cluster_formation.classic_config.nodes.")}
    assert listed == {f"rabbit@{h}" for h in hostnames}, f"classic_config lists {listed}, the nodes are {hostnames}"


def test_every_node_runs_the_provided_config_and_plugins() -> None:
    for name, spec in _rabbit_nodes().items():
        mounts = _mounts(spec)
        for path, target in ((RABBITMQ_CONF, "/etc/rabbitmq/rabbitmq.conf"),
                             (ENABLED_PLUGINS, "/etc/rabbitmq/enabled_plugins")):
            assert target in mounts, f"{name}: nothing mounted at {target}"
            assert (ROOT / mounts[target]).resolve() == path, f"{name}: {target} is {mounts[target]}"


def test_the_enabled_plugins_are_the_ones_imgate_needs() -> None:
    missing = REQUIRED_PLUGINS - _plugins(ENABLED_PLUGINS.read_text())
    assert not missing, f"config/rabbitmq/enabled_plugins lacks {sorted(missing)}"


def test_imgate_api_is_the_auth_backend_behind_the_cache() -> None:
    conf = _rabbitmq_conf(RABBITMQ_CONF.read_text())
    assert conf.get("auth_backends.1") == "cache"
    assert conf.get("auth_cache.cached_backend") == "http"
    assert conf.get("auth_backends.2") == "internal"  # the management API's administrator
    assert not {k for k in conf if re.fullmatch(r"auth_backends\.([3-9]|\d\d+)(\..*)?", k)}
    assert conf.get("auth_http.http_method") == "post"  # what imgate's routes read (form bodies)


def test_the_auth_paths_are_the_api_routes() -> None:
    name, spec = _api()
    settings = _settings(spec)
    assert settings.admin.secret, f"{name}: imgate api needs admin.secret"
    assert settings.admin.host in ("0.0.0.0", "::"), f"{name}: the brokers cannot reach {settings.admin.host}"
    conf = _rabbitmq_conf(RABBITMQ_CONF.read_text())
    routes = _routes()
    served = {path for path in routes if path.startswith("/auth/rabbitmq/")}
    assert served == {f"/auth/rabbitmq/{p}" for p in AUTH_PATHS}, f"imgate api serves {served}"
    for path in AUTH_PATHS:
        url = urlsplit(conf.get(f"auth_http.{path}_path", ""))
        assert url.scheme == "http" and url.hostname in _api_names(name, spec), f"auth_http.{path}_path: {url}"
        assert url.port == settings.admin.port, f"auth_http.{path}_path: port {url.port}, api on {settings.admin.port}"
        assert url.path == f"/auth/rabbitmq/{path}" and "post" in routes[url.path], f"auth_http.{path}_path: {url}"


def test_the_tls_listeners_use_the_certificates_volume() -> None:
    certs, volume, out = _certs()
    conf = _rabbitmq_conf(RABBITMQ_CONF.read_text())
    assert conf.get("mqtt.listeners.ssl.default") == "8883"
    assert conf.get("web_mqtt.ssl.port") == "15676"
    published: set[str] = set()
    for name, spec in _rabbit_nodes().items():
        at = [target for target, source in _mounts(spec).items() if source == volume]
        assert len(at) == 1, f"{name}: the certificates volume {volume} is not mounted (once)"
        for prefix in ("ssl_options", "web_mqtt.ssl"):
            for key, file in (("cacertfile", "ca.crt"), ("certfile", "server.crt"), ("keyfile", "server.key")):
                assert conf.get(f"{prefix}.{key}") == f"{at[0]}/{file}", f"{prefix}.{key} is not {name}'s {at[0]}/{file}"
        assert (spec.get("depends_on") or {}).get(certs, {}).get("condition") == "service_completed_successfully"
        published.update(str(port).rsplit(":", 1)[-1] for port in spec.get("ports", []))
    assert {"8883", "15676"} <= published, f"the TLS listeners are not published: {published}"
    # RabbitMQ reads the key as its own user, not as root who wrote it.
    shell = " ".join(IMGATE_SERVICES[certs]["command"])
    modes = [words[1] for simple in re.split(r";|\|\||&&", shell) if (words := shlex.split(simple))[:1] == ["chmod"]
             and f"{out}/server.key" in words[2:]]
    assert modes and int(modes[-1], 8) & 0o004, f"{out}/server.key is not made readable to the brokers: {shell}"


def test_every_long_running_service_has_a_health_check() -> None:
    one_shots = _one_shots()
    assert one_shots, "no one-shot service (certs, migrate) found"
    for name in one_shots:
        assert COMPOSE["services"][name].get("restart", "no") == "no", f"{name} runs once: no restart policy"
    for name, spec in COMPOSE["services"].items():
        if name in one_shots:
            continue
        check = spec.get("healthcheck") or {}
        test = check.get("test")
        assert test and not check.get("disable") and test[0] in ("CMD", "CMD-SHELL"), f"{name}: no health check"
        if "/healthz" in " ".join(test):  # imgate's admin API: on when admin.secret is set, on its port
            settings = _settings(spec)
            assert settings.admin.secret, f"{name}: the health check asks an admin API that is off"
            assert f":{settings.admin.port}/healthz" in " ".join(test), f"{name}: not the admin port"


def test_the_schema_is_migrated_once_before_the_cluster_processes() -> None:
    migrate = _role("migrate")
    assert len(migrate) == 1 and migrate[0] in _one_shots(), f"one migrate one-shot expected: {migrate}"
    for role in ("api", "bridge", "worker"):
        assert _role(role), f"no imgate {role} service"
        for name in _role(role):
            cond = (IMGATE_SERVICES[name].get("depends_on") or {}).get(migrate[0], {})
            assert cond.get("condition") == "service_completed_successfully", f"{name} does not wait for {migrate[0]}"


def test_the_bridges_and_the_api_share_the_bridge_account() -> None:
    bridges = _role("bridge")
    assert len(bridges) >= 2, f"two bridges expected, found {bridges}"
    external = [n for n in _role("run") if not _settings(IMGATE_SERVICES[n]).broker.embedded]  # EMQX's bridge
    accounts = {}
    for name in [*bridges, _api()[0], *external]:
        broker = _settings(IMGATE_SERVICES[name]).broker
        accounts[name] = (broker.username, broker.password)
    assert all(all(account) for account in accounts.values()), f"the bridge account is not set everywhere: {accounts}"
    assert len(set(accounts.values())) == 1, f"the bridges and the api disagree on the bridge account: {accounts}"


def test_the_bridges_agree_on_the_shards() -> None:
    bridges = _role("bridge")
    assert len(bridges) >= 2, f"two bridges expected, found {bridges}"
    conf = _rabbitmq_conf(RABBITMQ_CONF.read_text())
    hosts = {spec["hostname"] for spec in _rabbit_nodes().values()} | set(_rabbit_nodes())
    shards = {}
    for name in bridges:
        amqp = _settings(IMGATE_SERVICES[name]).amqp
        urls = [urlsplit(u.strip()) for u in (amqp.url or "").split(",")]
        for url in urls:
            assert url.hostname in hosts and str(url.port) == conf.get("listeners.tcp.default"), f"{name}: {amqp.url}"
        # Every node, so that a bridge goes on from another when its node is lost.
        assert {url.hostname for url in urls} >= {spec["hostname"] for spec in _rabbit_nodes().values()}, name
        shards[name] = (amqp.shards, amqp.queue_prefix, amqp.exchange)
    assert len(set(shards.values())) == 1, f"the bridges disagree on amqp.shards/queue_prefix/exchange: {shards}"
    assert conf.get("mqtt.exchange") == next(iter(shards.values()))[2], "the bridges do not read MQTT's exchange"


def test_the_all_in_one_stays_under_the_single_profile() -> None:
    single = [n for n in _role("run") if "single" in IMGATE_SERVICES[n].get("profiles", [])]
    assert len(single) == 1, f"one `imgate run` service under the profile single expected: {single}"
    settings = _settings(IMGATE_SERVICES[single[0]])
    assert settings.broker.embedded and settings.mqtt.tls_port and settings.mqtt.wss_port
    _, volume, _ = _certs()
    at = [t for t, source in _mounts(IMGATE_SERVICES[single[0]]).items() if source == volume]
    assert at, f"{single[0]}: the certificates volume is not mounted"
    assert (str(settings.mqtt.tls_cert), str(settings.mqtt.tls_key)) == (f"{at[0]}/server.crt", f"{at[0]}/server.key")
    # The cluster is the default: every part of it starts without a profile.
    cluster = [*_rabbit_nodes(), _api()[0], *_role("bridge"), *_role("worker"), *_role("migrate"), _certs()[0]]
    profiled = {n: COMPOSE["services"][n]["profiles"] for n in cluster if COMPOSE["services"][n].get("profiles")}
    assert not profiled, f"parts of the cluster are under profiles: {profiled}"


def test_the_emqx_profile_asks_imgate_api_and_bridges_with_shared_subscriptions() -> None:
    emqx = [n for n, spec in COMPOSE["services"].items() if str(spec.get("image", "")).startswith("emqx/emqx:5.")]
    assert len(emqx) == 1, f"one EMQX 5 service expected, found {emqx}"
    spec = COMPOSE["services"][emqx[0]]
    assert spec.get("profiles") == ["emqx"]
    mounts = _mounts(spec)
    assert "/opt/emqx/etc/base.hocon" in mounts, f"{emqx[0]}: config/emqx/imgate.hocon is not its base.hocon"
    assert (ROOT / mounts["/opt/emqx/etc/base.hocon"]).resolve() == EMQX_HOCON
    name, api = _api()
    port = _settings(api).admin.port
    routes = _routes()
    urls = [urlsplit(u) for u in re.findall(r'^\s*url\s*=\s*"([^"]+)"', EMQX_HOCON.read_text(), re.MULTILINE)]
    assert sorted(u.path for u in urls) == ["/auth/emqx/authn", "/auth/emqx/authz"]
    for url in urls:
        assert url.hostname in _api_names(name, api) and url.port == port, f"EMQX cannot reach {url.geturl()}"
        assert "post" in routes[url.path]
    bridges = [n for n in _role("run") if "emqx" in IMGATE_SERVICES[n].get("profiles", [])]
    assert bridges, "no imgate bridge under the profile emqx"
    for bridge in bridges:
        settings = _settings(IMGATE_SERVICES[bridge])
        assert not settings.broker.embedded and settings.broker.host in (emqx[0], spec.get("hostname")), bridge
        assert settings.bridge.transport == "mqtt" and settings.bridge.shared_group, f"{bridge}: no $share consumer"


# --- secrets, attachments, the all-in-one's page, the image's user -------------------------------

# What names a secret: passwords, secrets, cookies, tokens and keys (not an access key's id).
SECRET_NAME = re.compile(r"PASSWORD|_PASS$|SECRET|COOKIE|TOKEN|(?<!ACCESS)(?<!TLS)_KEY$")
_REQUIRED_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):\?(?P<message>[^}]+)\}")
_URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@]+:(?P<password>[^\s@/]+)@")
S3_ROLES = ("api", "bridge", "run")  # the imgate processes that hand out attachments (worker does not)


def _mappings(node: Any) -> Iterator[dict[Any, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _mappings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _mappings(value)


def _secrets() -> list[tuple[str, str]]:
    """(what, the value as written) of every secret in the file: the values of secret-named
    variables in any environment (the x- blocks' too), and the passwords of URLs anywhere."""
    found = [(key, str(value)) for mapping in _mappings(RAW) for key, value in mapping.items()
             if isinstance(key, str) and SECRET_NAME.search(key) and not isinstance(value, dict | list)]
    found += [(where, m["password"]) for where, s in _strings(RAW) for m in _URL_PASSWORD.finditer(s)]
    return found


def _all_references() -> Iterator[tuple[str, re.Match[str]]]:
    for where, s in _strings(RAW):
        for m in _references(s):
            yield where, m


def test_every_secret_is_required_and_none_is_written_in() -> None:
    for mapping in _mappings(RAW):
        assert not isinstance(mapping.get("environment"), list), "environment as KEY=VALUE lists: use mappings"
    secrets = _secrets()
    assert len(secrets) >= 10, f"the secrets were not found: {secrets}"
    for what, value in secrets:
        assert _REQUIRED_REF.fullmatch(value), (
            f"{what}: {value!r} is not ${{VAR:?message}}: a default or a literal is a password everyone knows")
    secret_names = {m["name"] for _, value in secrets if (m := _REQUIRED_REF.fullmatch(value))}
    assert secret_names == set(REQUIRED), f"required but not secrets: {set(REQUIRED) - secret_names}"
    for where, m in _all_references():
        name = m["braced"] or m["plain"]
        assert not name.startswith("IMGATE_"), f"{where}: {name}: imgate reads IMGATE_* itself (and refuses unknown ones)"
        if name in secret_names:
            assert m["op"] == ":?" and m["arg"].strip(), f"{where}: {m[0]}: a secret with a default, or no message"


@pytest.mark.parametrize("name", REQUIRED)
def test_the_file_refuses_to_start_without_each_secret(name: str) -> None:
    for env in ({k: v for k, v in TEST_ENV.items() if k != name}, {**TEST_ENV, name: ""}):
        with pytest.raises(MissingVariable) as refused:
            _interpolate(RAW, env)
        assert refused.value.name == name


def _docker_compose() -> list[str] | None:
    """``docker compose`` (the v2 plugin), when installed: it reads the file without a daemon."""
    docker = shutil.which("docker")
    if docker is None:
        return None
    try:
        version = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [docker, "compose"] if version.returncode == 0 else None


def _compose_config(compose: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    empty = tmp_path / "empty.env"  # not the .env a developer may have beside the file
    empty.write_text("")
    profiles = sorted({p for spec in RAW["services"].values() for p in spec.get("profiles", [])})
    return subprocess.run(
        [*compose, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), "--env-file", str(empty),
         *[arg for p in profiles for arg in ("--profile", p)], "config", "--format", "json"],
        env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/"), **env},
        capture_output=True, text=True, timeout=120, check=False)


def test_docker_compose_reads_the_file_as_these_tests_do(tmp_path: Path) -> None:
    compose = _docker_compose()
    if compose is None:
        pytest.skip("no `docker compose` here")
    done = _compose_config(compose, TEST_ENV, tmp_path)
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    assert set(services) == set(COMPOSE["services"])
    for name, spec in services.items():
        theirs = {k: "" if v is None else str(v) for k, v in (spec.get("environment") or {}).items()}
        assert theirs == _env(COMPOSE["services"][name]), name
    for name in REQUIRED:
        done = _compose_config(compose, {k: v for k, v in TEST_ENV.items() if k != name}, tmp_path)
        assert done.returncode != 0 and name in done.stderr, f"docker compose starts without {name}: {done.stderr}"


def _env_example() -> dict[str, str]:
    pairs: dict[str, str] = {}
    for number, line in enumerate(ENV_EXAMPLE.read_text().splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep and key.strip() not in pairs, f".env.example line {number}: {line!r}"
            pairs[key.strip()] = value.strip()
    return pairs


def _header() -> str:
    """The compose file's opening comment."""
    lines = []
    for line in COMPOSE_FILE.read_text().splitlines():
        if not line.startswith("#") and line.strip():
            break
        lines.append(line)
    return "\n".join(lines)


def _made_with(text: str) -> set[str]:
    """The variables of the one-liner that makes the secrets (``for v in A B ...; do``)."""
    loop = re.search(r"for v in (.*?); do(.*?)done", text, re.DOTALL)
    assert loop and "openssl rand" in loop[2], "no one-liner making the secrets with openssl rand"
    return set(re.findall(r"[A-Z][A-Z0-9_]+", loop[1]))


def test_every_variable_is_listed_with_how_to_make_it() -> None:
    used = {m["braced"] or m["plain"] for _, m in _all_references()}
    defaults = {m["braced"]: m["arg"] for _, m in _all_references() if m["op"] in (":-", "-")}
    example = _env_example()
    assert set(example) == used, f".env.example lists {sorted(example)}, the file uses {sorted(used)}"
    for name in REQUIRED:
        assert example[name] == "", f".env.example gives {name} a value: placeholders only, never a secret"
    for name, default in defaults.items():
        assert example[name] == default, f".env.example: {name}={example[name]}, the file's default is {default}"
    header = _header()
    unlisted = sorted(name for name in used if not re.search(rf"\b{name}\b", header))
    assert not unlisted, f"the compose file's header does not name {unlisted}"
    for where, text in (("docker-compose.yml", header), (".env.example", ENV_EXAMPLE.read_text())):
        assert _made_with(text) == set(REQUIRED), f"{where}: the one-liner makes {_made_with(text)}, not {REQUIRED}"
    for ignore in (".gitignore", ".dockerignore"):
        patterns = (ROOT / ignore).read_text().split()
        assert ".env" in patterns or "/.env" in patterns, f"{ignore} lets .env through"


def test_the_broker_configs_hold_no_password() -> None:
    """config/rabbitmq and config/emqx hold no secret of their own: the secrets come from the
    environment (the compose file's required variables) or are imgate's placeholders."""
    for path in sorted([*(ROOT / "config" / "rabbitmq").iterdir(), *(ROOT / "config" / "emqx").iterdir()]):
        comment = "%" if path.suffix == ".config" else "#"  # Erlang terms, or rabbitmq.conf and HOCON
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split(comment, 1)[0]
            m = re.search(r"(?i)(pass(word)?|secret|cookie)\w*\s*[=:,]\s*\"?([^\"\s,}]+)", code)
            assert not m or m[3].startswith("${"), f"{path.relative_to(ROOT)} line {number}: a password: {line!r}"


def _published(spec: dict[str, Any]) -> dict[int, tuple[str, int]]:
    """A service's published ports: container port -> (host address, "" for all; host port)."""
    ports = {}
    for entry in spec.get("ports", []):
        parts = str(entry).split("/")[0].split(":")
        address, host, container = ("", parts[0], parts[0]) if len(parts) == 1 else (
            ("", *parts) if len(parts) == 2 else tuple(parts))
        ports[int(container)] = (address, int(host))
    return ports


def _names(name: str) -> set[str]:
    """What a service is reached as in the compose network: its name, host name and aliases."""
    spec = COMPOSE["services"][name]
    names = {name, spec.get("hostname", name)}
    for network in (spec.get("networks") or {}).values():
        names.update((network or {}).get("aliases", []))
    return names


def _simple_commands(script: str) -> list[list[str]]:
    """A shell script's simple commands (split at ``;``, ``&&``, ``||``, ``|`` and new lines),
    as their words; an output redirection is one word, ``>FILE``; ``2>&1`` and comments dropped."""
    commands: list[list[str]] = []
    for line in script.splitlines():
        lexer = shlex.shlex(re.sub(r"\s\d?>&\d\b", " ", line), posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words: list[str] = []
        for token in lexer:
            if token in (";", "&&", "||", "|", "&"):
                commands.append(words)
                words = []
            elif token in (">", ">>"):
                words.append(token + next(lexer))
            else:
                words.append(token)
        commands.append(words)
    return [c for c in commands if c]


def _args(command: list[str]) -> list[str]:
    """A simple command's words without its redirections."""
    return [w for w in command if not w.startswith(">")]


def _minio() -> tuple[str, dict[str, Any]]:
    servers = [(n, spec) for n, spec in COMPOSE["services"].items()
               if "minio/minio" in str(spec.get("image", "")) and n not in _one_shots()]
    assert len(servers) == 1, f"one MinIO server expected, found {[n for n, _ in servers]}"
    return servers[0]


def _minio_init() -> tuple[str, list[list[str]]]:
    """The one-shot that makes the bucket and imgate's account on it: its name, and its script's
    simple commands, with its environment's variables substituted as its shell would."""
    found = [n for n in _one_shots() if "mc mb" in " ".join(map(str, COMPOSE["services"][n].get("command", [])))]
    assert len(found) == 1, f"one one-shot running `mc mb` (the bucket) expected, found {found}"
    spec = COMPOSE["services"][found[0]]
    assert spec.get("entrypoint") == ["sh", "-c"], f"{found[0]}: not a shell script"
    env = _env(spec)
    return found[0], [[re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m[1], m[0]), w) for w in words]
                      for words in _simple_commands("\n".join(spec["command"]))]


def _s3_services() -> list[str]:
    names = [n for n in IMGATE_SERVICES if _command(IMGATE_SERVICES[n])[:1] and _command(IMGATE_SERVICES[n])[0] in S3_ROLES]
    assert {_command(IMGATE_SERVICES[n])[0] for n in names} == set(S3_ROLES), names
    return sorted(names)


def test_minio_runs_with_a_health_check_and_its_data_in_a_volume() -> None:
    name, spec = _minio()
    assert (spec.get("healthcheck") or {}).get("test"), f"{name}: no health check"
    assert _mounts(spec).get("/data") in (COMPOSE.get("volumes") or {}), f"{name}: /data is not a named volume"
    assert "/data" in [str(arg) for arg in spec.get("command", [])], f"{name}: `minio server` does not serve /data"
    assert all(w not in spec.get("command", []) for w in ("--address",)), f"{name}: S3 on another port than 9000"
    init, _ = _minio_init()
    depends = (COMPOSE["services"][init].get("depends_on") or {}).get(name, {})
    assert depends.get("condition") == "service_healthy", f"{init} does not wait for {name} to be healthy"


@pytest.mark.parametrize("name", _s3_services())
def test_imgate_keeps_attachments_in_the_minio_bucket(name: str) -> None:
    files = _settings(IMGATE_SERVICES[name]).files
    minio, spec = _minio()
    assert files.backend == "s3", f"{name}: attachments are off (files.backend {files.backend})"
    endpoint = urlsplit(files.s3_endpoint_url or "")
    assert endpoint.hostname in _names(minio) and endpoint.port == 9000, f"{name}: S3 at {files.s3_endpoint_url}"
    init, commands = _minio_init()
    cond = (IMGATE_SERVICES[name].get("depends_on") or {}).get(init, {}).get("condition")
    assert cond == "service_completed_successfully", f"{name} does not wait for {init} (the bucket)"
    bucket = files.s3_bucket
    assert any(c[:2] == ["mc", "mb"] and c[-1].endswith(f"/{bucket}") for c in commands), f"{init} makes no {bucket}"
    # imgate's own account, not MinIO's root: made with imgate's keys, given a policy on its bucket only.
    key, secret = files.s3_access_key_id, files.s3_secret_access_key
    assert key and secret and secret == TEST_ENV.get("S3_SECRET_KEY"), f"{name}: S3 keys {key}, {secret}"
    assert key != _env(spec).get("MINIO_ROOT_USER"), f"{name} uses MinIO's root account"
    commands = [_args(c) + [w for w in c if w.startswith(">")] for c in commands]  # the redirections last
    assert any(c[:4] == ["mc", "admin", "user", "add"] and c[5:7] == [key, secret] for c in commands), init
    attach = [_args(c) for c in commands if c[:4] == ["mc", "admin", "policy", "attach"] and _args(c)[-1] == key]
    assert len(attach) == 1 and attach[0][-2] == "--user", f"{init}: no policy attached to {key}"
    create = [c for c in commands if c[:4] == ["mc", "admin", "policy", "create"] and c[5] == attach[0][5]]
    assert len(create) == 1, f"{init}: the policy {attach[0][5]} is not made"
    written = [c for c in commands if c[:1] == ["printf"] and c[-1] == ">" + create[0][6]]
    assert len(written) == 1, f"{init}: the policy file {create[0][6]} is not written by printf"
    fmt, *args = written[0][1:-1]
    policy = json.loads(fmt % tuple(args))
    granted = {(action, resource) for statement in policy["Statement"] if statement["Effect"] == "Allow"
               for action in statement["Action"] for resource in statement["Resource"]}
    # HEAD, GET, PUT and DeleteObjects on its objects; and listing, without which S3 answers a
    # missing object's HEAD with 403, not 404.
    needed = {("s3:ListBucket", f"arn:aws:s3:::{bucket}")} | {
        (action, f"arn:aws:s3:::{bucket}/*") for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")}
    assert granted == needed, f"{init}: the policy grants {granted}"


@pytest.mark.parametrize("name", _s3_services())
async def test_devices_outside_the_compose_network_reach_the_attachment_urls(name: str) -> None:
    """The URLs imgate gives devices name MinIO by the address the host publishes it at, not
    by its name inside the compose network (which no device resolves)."""
    from imgate.app import open_attachments
    from services.ids import SystemClock

    settings = _settings(IMGATE_SERVICES[name])
    minio, spec = _minio()
    public = urlsplit(settings.files.s3_public_endpoint_url or "")
    assert public.hostname and public.hostname not in {n for s in COMPOSE["services"] for n in _names(s)}, public
    address, host_port = _published(spec).get(9000, ("", 0))
    assert public.port == host_port and address in ("", "0.0.0.0"), f"{minio}: 9000 is not published as {public}"
    assert public.hostname == "localhost"  # PUBLIC_HOST's default, which the development certificate names too
    attachments = await open_attachments(settings, SystemClock(), "")
    try:
        store: Any = attachments.store
        expires = int(__import__("time").time() * 1000) + 60_000
        upload = urlsplit(store.upload_target("k", size=1, mime="image/png", sha256="00" * 32, expires_at_ms=expires).url)
        download = urlsplit(store.download_url("k", uid="alice", mime="image/png", expires_at_ms=expires))
    finally:
        await attachments.close()
    for url in (upload, download):
        assert (url.scheme, url.netloc) == (public.scheme, public.netloc), url.geturl()
        assert url.path.startswith(f"/{settings.files.s3_bucket}/"), url.geturl()


def test_the_development_certificate_names_the_public_host() -> None:
    certs, _, _ = _certs()
    argv = next(a for a in _invocations(IMGATE_SERVICES[certs]) if a[:2] == ["cert", "dev"])
    hosts = build_parser().parse_args(argv).hosts
    public = urlsplit(_settings(IMGATE_SERVICES[_s3_services()[0]]).files.s3_public_endpoint_url or "").hostname
    assert public in hosts and {"localhost", "127.0.0.1"} <= set(hosts), hosts
    raw_argv = " ".join(RAW["services"][certs]["command"])
    assert "--host ${PUBLIC_HOST" in raw_argv, "the certificate does not follow PUBLIC_HOST"


def test_the_all_in_one_publishes_its_web_page_and_the_page_s_websocket() -> None:
    single = [n for n in _role("run") if "single" in IMGATE_SERVICES[n].get("profiles", [])]
    assert len(single) == 1, single
    spec = IMGATE_SERVICES[single[0]]
    settings = _settings(spec)
    assert settings.web.enabled and settings.web.chat_page, f"{single[0]}: no web chat page"
    assert settings.web.host in ("0.0.0.0", "::"), f"{single[0]}: the web listener is on {settings.web.host}"
    ports = _published(spec)
    assert settings.web.port in ports and ports[settings.web.port][0] in ("", "0.0.0.0"), (
        f"{single[0]}: the web port {settings.web.port} is not published: {ports}")
    # The page connects to the broker's WebSocket (the secure one when there is one) on the host it
    # was loaded from, at the port the broker listens on inside: published as the same number.
    ws = settings.mqtt.wss_port or settings.mqtt.ws_port
    assert ws and ports.get(ws, ("", 0))[1] == ws, f"{single[0]}: the page's WebSocket {ws} is not published as {ws}"


def test_the_image_runs_as_an_unprivileged_user_owning_its_volumes() -> None:
    instructions = _dockerfile()
    users = [rest for word, rest in instructions if word == "USER"]
    assert users, "the image runs as root: the Dockerfile has no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or (gid.isdigit() and int(gid) > 0)), (
        f"USER {users[-1]}: not a numeric, unprivileged uid (numeric: so runAsNonRoot can check it)")
    for name, spec in IMGATE_SERVICES.items():
        assert "user" not in spec, f"{name} overrides the image's user: {spec['user']}"
    # The directories the user owns, made before any VOLUME over them (a step after a VOLUME
    # changes nothing in it): named volumes start out as the image's directory, owner included.
    owned: set[str] = set()
    for word, rest in instructions:
        if word == "RUN":
            for words in _simple_commands(rest):
                installed = words[:2] == ["install", "-d"] and "-o" in words and words[words.index("-o") + 1] == uid
                chowned = words[:1] == ["chown"] and any(w.split(":")[0] == uid for w in words[1:] if w[:1] != "-")
                if installed or chowned:
                    owned.update(w for w in words if w.startswith("/"))
        elif word == "VOLUME":
            for path in (json.loads(rest) if rest.startswith("[") else rest.split()):
                assert path in owned, f"VOLUME {path}: not made and owned by {uid} before it"
    assert _image_env().get("IMGATE_DATA_DIR") in owned, "the data directory is not the user's"
    volumes = set(COMPOSE.get("volumes") or {})
    for name, spec in IMGATE_SERVICES.items():
        for entry in spec.get("volumes", []):
            source, target, *mode = str(entry).split(":")
            if source in volumes and mode != ["ro"]:
                assert target in owned, f"{name}: the volume {source} at {target} is not writable by {uid}"


def test_the_built_package_carries_the_web_page() -> None:
    """The image installs a built wheel: every file of the web chat page must be package data
    (before, the image had no page: setuptools packs modules only)."""
    import fnmatch
    import tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["imgate"]
    page = ROOT / "imgate" / "webchat"
    files = [p.relative_to(ROOT / "imgate").as_posix() for p in page.rglob("*") if p.is_file()]
    assert "webchat/index.html" in files and "webchat/vendor/mqtt.min.js" in files
    assert [f for f in files if not any(fnmatch.fnmatchcase(f, pattern) for pattern in patterns)] == []
