"""docker-compose.yml's imgate services run commands and settings imgate accepts: every
``IMGATE_*`` variable names a setting, the environment as a whole validates, and every ``imgate``
invocation in a service's command parses. (The file is not run here: no Docker on CI.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from config.settings import Settings, load_settings
from imgate.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
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
