"""The process's long-lived tasks, in one TaskGroup owned by the composition root.

The crash rule:

- A **worker** (``restart=True``: push fan-out, the push sender, the search indexer) reads its
  work from a durable queue, so restarting it loses nothing. A crash is logged with its
  traceback and the worker is started again after a back-off: 0.5 s, doubling up to 30 s, back
  to 0.5 s once it has run for a minute.
- Any other task (the bridge, the message committer, the admin HTTP server) is the platform: if
  it crashes, the process stops. Its traceback is logged, ``failed`` is set, and ``App.wait()``
  raises, so ``imgate run`` exits non-zero and the service manager restarts the process.

A task that returns ends quietly; cancelling is how everything stops (``aclose``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Self

from broker.listeners import ListenerError

log = logging.getLogger("imgate")

_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 30.0
_HEALTHY_AFTER_S = 60.0


class TaskCrashed(RuntimeError):
    """A task the process cannot run without has failed."""


class Supervisor:
    """``spawn`` named tasks into one TaskGroup; ``aclose`` cancels and awaits them all."""

    def __init__(self) -> None:
        self._group = asyncio.TaskGroup()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._entered = False
        self.failed = asyncio.Event()
        self.failure: TaskCrashed | None = None
        self.restarts: dict[str, int] = {}

    async def __aenter__(self) -> Self:
        await self._group.__aenter__()
        self._entered = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def spawn(self, name: str, factory: Callable[[], Coroutine[Any, Any, None]], *, restart: bool = False
              ) -> asyncio.Task[None]:
        """Run ``factory()`` as the task ``name`` (``restart``: a worker, see the module's rule)."""
        assert self._entered, "spawn inside `async with Supervisor()`"
        assert name not in self._tasks, f"a task named {name!r} runs already"
        body = self._worker(name, factory) if restart else self._vital(name, factory)
        task = self._group.create_task(body, name=name)
        self._tasks[name] = task
        return task

    def running(self, name: str) -> bool:
        task = self._tasks.get(name)
        return task is not None and not task.done()

    async def _vital(self, name: str, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        try:
            await factory()
        except Exception as exc:
            if isinstance(exc, ListenerError):  # a listener that could not start: said in one line where it is awaited
                log.debug("%s could not start", name, exc_info=exc)
            else:
                log.critical("%s crashed; imgate stops", name, exc_info=exc)
            if self.failure is None:
                self.failure = TaskCrashed(f"{name} crashed: {exc!r}")
                self.failure.__cause__ = exc
            self.failed.set()

    async def _worker(self, name: str, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        delay = _BACKOFF_FIRST_S
        while True:
            started = time.monotonic()
            try:
                await factory()
                return
            except Exception:
                if time.monotonic() - started >= _HEALTHY_AFTER_S:
                    delay = _BACKOFF_FIRST_S
                log.exception("%s crashed; restarting in %.1f s", name, delay)
                self.restarts[name] = self.restarts.get(name, 0) + 1
            await asyncio.sleep(delay)  # back-off before a restart, not synchronisation
            delay = min(_BACKOFF_MAX_S, delay * 2)

    async def aclose(self) -> None:
        """Cancel every task and wait for them (idempotent)."""
        if not self._entered:
            return
        self._entered = False
        for task in self._tasks.values():
            task.cancel()
        try:
            await self._group.__aexit__(None, None, None)
        except BaseExceptionGroup as group:  # only cancellations get here: the wrappers catch the rest
            log.error("tasks failed while stopping: %r", group)
