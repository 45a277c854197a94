"""Cluster mode in tests: ``imgate bridge`` processes on a private RabbitMQ node (tests/rabbitmq.py),
a PostgreSQL database of their own, and ``imgate api`` in the test's process as the node's auth
backend. ``BridgeProcess`` starts one bridge as a real child process (``python -m imgate bridge``),
so a test can ``kill -9`` it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections import Counter
from pathlib import Path

import aio_pika

from tests.rabbitmq import ADMIN_PASSWORD, ADMIN_USER, RabbitNode

BRIDGE_USER, BRIDGE_PASSWORD = "bridge", "bridge-secret-for-tests"
START_TIMEOUT = 60.0
_READY = re.compile(r"^imgate bridge: .* as (\S+)$")


def bridge_env(node: RabbitNode, database_url: str, prefix: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of an ``imgate bridge`` on ``node`` (rate limits far above the tests')."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGATE_")}
    env.update({
        "IMGATE_DATABASE__URL": database_url,
        "IMGATE_AMQP__URL": f"amqp://127.0.0.1:{node.amqp_port}/",
        "IMGATE_AMQP__QUEUE_PREFIX": prefix,
        "IMGATE_AMQP__SHARDS": "8",
        "IMGATE_AMQP__MEMBERSHIP_INTERVAL_S": "0.3",
        "IMGATE_BROKER__USERNAME": BRIDGE_USER,
        "IMGATE_BROKER__PASSWORD": BRIDGE_PASSWORD,
        "IMGATE_DATA_DIR": str(data_dir),
        "IMGATE_SEARCH__BACKEND": "postgres",  # cluster mode refuses the embedded index
        "IMGATE_LOG_LEVEL": "INFO",
        "IMGATE_LIMITS__MESSAGES_PER_S": "100000", "IMGATE_LIMITS__MESSAGES_BURST": "100000",
        "IMGATE_LIMITS__RPCS_PER_S": "100000", "IMGATE_LIMITS__RPCS_BURST": "100000",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


class BridgeProcess:
    """``python -m imgate bridge`` as a child process; ``start()`` returns once it consumes."""

    def __init__(self, env: dict[str, str], name: str) -> None:
        self.env = env
        self.name = name
        self.holder = ""
        self.proc: asyncio.subprocess.Process | None = None
        self.output: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        Path(self.env["IMGATE_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "imgate", "bridge", env=self.env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(ready), name=f"test-bridge-output[{self.name}]")
        try:
            self.holder = await asyncio.wait_for(ready, START_TIMEOUT)
        except (TimeoutError, EOFError):
            await self.stop()
            raise AssertionError(f"bridge {self.name} did not start:\n" + "".join(self.output[-40:])) from None

    async def _read(self, ready: asyncio.Future[str]) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            text = line.decode(errors="replace")
            self.output.append(text)
            del self.output[:-2000]  # bounded: the last lines are what a failure report needs
            found = _READY.match(text.strip())
            if found and not ready.done():
                ready.set_result(found.group(1))
        if not ready.done():
            ready.set_exception(EOFError())

    def kill(self) -> None:
        """``kill -9``: no goodbye to RabbitMQ or the database."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)


async def active_shards(node: RabbitNode, prefix: str) -> Counter[str]:
    """How many ``{prefix}.out.*`` shards each bridge (by its holder name) is the active consumer of."""
    out = await node.actl("list_consumers", "-q", "--no-table-headers", "queue_name", "consumer_tag", "active")
    found: Counter[str] = Counter()
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0].startswith(f"{prefix}.out.") and parts[2].strip() == "true":
            found[parts[1].partition("|")[0]] += 1
    return found


async def delete_topology(node: RabbitNode, prefix: str, shards: int = 8) -> None:
    """Remove a test's queues and exchange from the session's node (the next test has its own)."""
    connection = await aio_pika.connect(f"amqp://{ADMIN_USER}:{ADMIN_PASSWORD}@127.0.0.1:{node.amqp_port}/")
    async with connection:
        channel = await connection.channel()
        for name in [f"{prefix}.out.{k}" for k in range(shards)] + [f"{prefix}.presence"]:
            await channel.queue_delete(name)
        await channel.exchange_delete(f"{prefix}.out")
