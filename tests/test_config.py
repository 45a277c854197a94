"""Settings: defaults < TOML file < environment < command-line overrides; bad values name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import ConfigError, load_settings


def test_defaults() -> None:
    s = load_settings(None)
    assert (s.mqtt.host, s.mqtt.port, s.mqtt.topic_prefix) == ("127.0.0.1", 1883, "im")
    assert s.limits.max_payload == 16 * 1024
    assert s.database_url().startswith("sqlite://") and s.database_url().endswith("data/imgate.db")


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "imgate.toml"
    cfg.write_text('[mqtt]\nport = 2000\ntopic_prefix = "chat"\n[limits]\nmax_payload = 4096\n')
    s = load_settings(cfg)
    assert (s.mqtt.port, s.mqtt.topic_prefix, s.limits.max_payload) == (2000, "chat", 4096)
    monkeypatch.setenv("IMGATE_MQTT__PORT", "3000")
    s = load_settings(cfg)
    assert (s.mqtt.port, s.mqtt.topic_prefix) == (3000, "chat")
    s = load_settings(cfg, {"mqtt": {"port": 4000}})
    assert (s.mqtt.port, s.mqtt.topic_prefix) == (4000, "chat")
    monkeypatch.setenv("IMGATE_CONFIG", str(cfg))
    assert load_settings().limits.max_payload == 4096


@pytest.mark.parametrize(("toml", "key"), [
    ("[mqtt]\nport = 70000\n", "mqtt.port"),
    ("[mqtt]\nport = \"abc\"\n", "mqtt.port"),
    ("[mqtt]\ntopic_prefix = \"a/b\"\n", "mqtt.topic_prefix"),
    ("[limits]\nmax_payload = 1\n", "limits.max_payload"),
    ("[mqtt]\nprot = 1\n", "mqtt.prot"),
    ("[database]\nsqlite_synchronous = \"OFF\"\n", "database.sqlite_synchronous"),
])
def test_invalid_values_name_the_key(tmp_path: Path, toml: str, key: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert key in str(err.value)


def test_invalid_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGATE_BRIDGE__LANES", "zero")
    with pytest.raises(ConfigError) as err:
        load_settings(None)
    assert "bridge.lanes" in str(err.value) and "IMGATE_BRIDGE__LANES" in str(err.value)


def test_missing_or_malformed_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "broken.toml"
    bad.write_text("[mqtt\nport=")
    with pytest.raises(ConfigError):
        load_settings(bad)


def test_the_websocket_and_web_listeners_are_on_by_default_and_can_be_turned_off(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings(None)
    assert (s.mqtt.ws_port, s.web.enabled, s.web.host, s.web.port) == (8083, True, "127.0.0.1", 8090)
    cfg = tmp_path / "imgate.toml"
    cfg.write_text('[mqtt]\nws_port = "off"\n[web]\nenabled = false\n')
    s = load_settings(cfg)
    assert (s.mqtt.ws_port, s.web.enabled) == (None, False)
    monkeypatch.setenv("IMGATE_MQTT__TLS_PORT", "off")
    assert load_settings(None).mqtt.tls_port is None


def test_unused_uploads_outlive_their_upload_urls(tmp_path: Path) -> None:
    cfg = tmp_path / "imgate.toml"
    cfg.write_text("[files]\nupload_ttl_s = 3600\norphan_after_s = 600\n")
    with pytest.raises(ConfigError, match="files.orphan_after_s must be longer than files.upload_ttl_s and a minute"):
        load_settings(cfg)
    cfg.write_text('[files]\nbackend = "s3"\n')
    with pytest.raises(ConfigError, match="needs files.s3_bucket"):
        load_settings(cfg)
