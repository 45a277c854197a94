"""docker-compose.yml's imgate services run commands and settings imgate accepts: every
``IMGATE_*`` variable names a setting, the environment as a whole validates, and every ``imgate``
invocation in a service's command parses. The cluster around them fits together: three RabbitMQ
nodes forming one cluster (config/rabbitmq/), with the plugins imgate needs, imgate api as their
auth backend on the routes it serves, TLS from the certificates volume, health checks, one bridge
account and one shard count. (The file is not run here: no Docker on CI.)"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import BaseModel

from config.settings import Settings, load_settings
from imgate.cli import build_parser, openapi_document

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
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


def _value(raw: Any) -> str:
    """Compose's ``${VAR:-default}`` as its default (the value a bare ``docker compose up`` uses)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(raw))


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


@pytest.mark.parametrize("name", sorted(IMGATE_SERVICES))
def test_every_imgate_variable_names_a_setting(name: str) -> None:
    for var in IMGATE_SERVICES[name].get("environment", {}):
        assert var.startswith("IMGATE_"), var
        section, _, key = var.removeprefix("IMGATE_").lower().partition("__")
        assert section in Settings.model_fields, f"{name}: {var}: no setting section {section!r}"
        if key:
            model = Settings.model_fields[section].annotation
            assert isinstance(model, type) and issubclass(model, BaseModel)
            assert key in model.model_fields, f"{name}: {var}: {section} has no setting {key!r}"


@pytest.mark.parametrize("name", sorted(IMGATE_SERVICES))
def test_the_environment_validates(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var, raw in IMGATE_SERVICES[name].get("environment", {}).items():
        monkeypatch.setenv(var, _value(raw))
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
    return {var: _value(raw) for var, raw in spec.get("environment", {}).items()}


def _settings(spec: dict[str, Any]) -> Settings:
    """The settings an imgate service starts with (this process's own IMGATE_* set aside)."""
    with pytest.MonkeyPatch.context() as mp:
        for var in [v for v in os.environ if v.startswith("IMGATE_")]:
            mp.delenv(var)
        for var, value in _env(spec).items():
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
