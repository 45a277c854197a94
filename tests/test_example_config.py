from pathlib import Path

from config.settings import Settings, load_settings

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "imgate.example.toml"


def test_example_config_loads_and_matches_the_defaults() -> None:
    assert load_settings(EXAMPLE).model_dump() == Settings().model_dump()
