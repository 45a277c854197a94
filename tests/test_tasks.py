"""The composition root's tasks: one TaskGroup, and the crash rule of imgate/tasks.py."""

from __future__ import annotations

import asyncio
import logging

import pytest

from config.settings import Settings
from imgate.app import App
from imgate.tasks import Supervisor, TaskCrashed
from tests.conftest import ADMIN_SECRET


async def test_a_crashed_worker_is_logged_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    starts = 0
    second = asyncio.Event()

    async def worker() -> None:
        nonlocal starts
        starts += 1
        if starts == 1:
            msg = "first run fails"
            raise RuntimeError(msg)
        second.set()
        await asyncio.Event().wait()

    async with Supervisor() as tasks:
        tasks.spawn("test.worker", worker, restart=True)
        await asyncio.wait_for(second.wait(), 10)  # after the 0.5 s back-off
        assert tasks.running("test.worker") and tasks.restarts == {"test.worker": 1}
        assert not tasks.failed.is_set()
    crash = [r for r in caplog.records if r.name == "imgate" and "test.worker crashed" in r.getMessage()]
    assert crash and crash[0].exc_info is not None and str(crash[0].exc_info[1]) == "first run fails"


async def test_a_vital_task_that_crashes_stops_the_app(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        msg = "the bridge's storage vanished"
        raise OSError(msg)

    async with App(settings) as app:
        app.tasks.spawn("test.vital", broken)
        with pytest.raises(TaskCrashed, match="test.vital crashed") as raised:
            await asyncio.wait_for(app.wait(), 10)
        assert isinstance(raised.value.__cause__, OSError)
    logged = [r for r in caplog.records if r.levelno == logging.CRITICAL and "test.vital" in r.getMessage()]
    assert logged and logged[0].exc_info is not None


async def test_stopping_leaves_no_task_behind(settings: Settings) -> None:
    async with App(settings) as app:
        names = {t.get_name() for t in asyncio.all_tasks()}
        assert {"imgate.bridge", "imgate.messages.committer", "imgate.push.sender", "imgate.push.worker",
                "imgate.search.indexer", "imgate.broker.auth-watcher"} <= names
        assert ("imgate.admin.http" in names) == (app.admin is not None)
        assert app.tasks.running("imgate.bridge")
    left = [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("imgate.")]
    assert left == []



@pytest.mark.parametrize("admin_secret", [ADMIN_SECRET])
async def test_the_admin_api_stops_with_the_app(settings: Settings) -> None:
    import httpx

    async with App(settings) as app:
        assert app.admin is not None
        port = app.admin.port
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/healthz")


async def test_a_queue_worker_takes_full_batches_at_once_then_waits_its_interval() -> None:
    """A pass that took a full batch goes again at once (more may be waiting); a smaller one
    waits for the interval: a busy server works the queue in batches, not a pass per message."""
    taken = [200, 200, 7]
    calls = 0
    third = asyncio.Event()

    async def step() -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            third.set()
        return taken[calls - 1] if calls <= len(taken) else 200

    worker = asyncio.create_task(App._work_loop("test", step, 200, 3600))  # an hour: only full passes go on
    try:
        await asyncio.wait_for(third.wait(), 10)  # full, full, then 7: reached without any wait
        for _ in range(20):
            await asyncio.sleep(0)  # turns of the loop in which a fourth pass would start
        assert calls == 3  # 7 < 200: it waits for the interval
    finally:
        worker.cancel()
