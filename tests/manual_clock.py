"""Fixtures for tests on a clock they move by hand: ``clock`` (a ManualClock at now) and ``app``
(the platform on that clock). Import them into a test module with
``from tests.manual_clock import clock_fixture, manual_app_fixture  # noqa: F401``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from config.settings import Settings
from imgate.app import App
from tests.helpers import ManualClock


@pytest.fixture(name="clock")
def clock_fixture() -> ManualClock:
    return ManualClock(time.time_ns() // 1_000_000)


@pytest.fixture(name="app")
async def manual_app_fixture(settings: Settings, clock: ManualClock) -> AsyncIterator[App]:
    async with App(settings, clock=clock) as running:
        yield running
