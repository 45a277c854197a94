"""Fixtures shared by the tests of the auth endpoints external brokers ask (RabbitMQ, EMQX): the
admin API on (the endpoints are served by it), and the bridge's own login to the external broker
set (``broker.username``: full access). Import them into a test module with
``from tests.external_auth import admin_secret_fixture, bridge_login_fixture  # noqa: F401``."""

from __future__ import annotations

import pytest

from config.settings import Settings
from tests.conftest import ADMIN_SECRET
from tests.helpers import tweak

BRIDGE, BRIDGE_PASSWORD = "bridge", "bridge-secret-for-tests"


@pytest.fixture(name="admin_secret")
def admin_secret_fixture() -> str:
    return ADMIN_SECRET


@pytest.fixture(name="settings")
def bridge_login_fixture(settings: Settings) -> Settings:
    return tweak(settings, "broker", username=BRIDGE, password=BRIDGE_PASSWORD)
