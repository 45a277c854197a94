"""The storing path alone: MessageService.send in-process (no broker, no bridge, no network), its
CPU per message, one sender after another and in groups of concurrent sends.

    python -m bench.store_path [--messages 2000] [--database-url URL]

What a send costs the services and the database layer, steadier than an end-to-end rate on a
machine whose speed drifts: compare two builds by running this in each tree, alternated, in one
sitting. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path


async def run(messages: int, database_url: str | None) -> dict[str, object]:
    from imgate.app import build_services
    from services.db import Database
    from services.ids import SystemClock
    from services.messages.commands import SendCommand

    url = database_url or f"sqlite://{Path(tempfile.mkdtemp(prefix='imgate-store-')) / 'imgate.db'}"
    async with Database(url):
        svc = build_services(SystemClock())
        stamp = time.time_ns()
        a, b = f"sa{stamp}"[-40:], f"sb{stamp}"[-40:]
        for uid in (a, b):
            await svc.users.add_user(uid)
        async with svc.messages.committing():
            for i in range(50):  # warm-up: caches, the conversation, the statement paths
                await svc.messages.send(SendCommand(a, f"w{i}", b, None, "text", "hi", None))
            wall0, cpu0 = time.perf_counter(), time.process_time()
            for i in range(messages):
                await svc.messages.send(SendCommand(a, f"c{i}", b, None, "text", "hi", None))
            one = (time.process_time() - cpu0, time.perf_counter() - wall0)
            wall0, cpu0 = time.perf_counter(), time.process_time()
            for j in range(messages // 10):
                await asyncio.gather(*(svc.messages.send(SendCommand(b, f"g{j}.{k}", a, None, "text", "hi", None))
                                       for k in range(10)))
            ten = (time.process_time() - cpu0, time.perf_counter() - wall0)
    n10 = messages // 10 * 10
    return {"scenario": f"store-path N={messages}", "db": url.split(":")[0],
            "one_at_a_time_cpu_us_per_msg": round(1e6 * one[0] / messages),
            "one_at_a_time_msgs_per_s": round(messages / one[1], 1),
            "ten_at_once_cpu_us_per_msg": round(1e6 * ten[0] / n10),
            "ten_at_once_msgs_per_s": round(n10 / ten[1], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.messages, args.database_url))), flush=True)


if __name__ == "__main__":
    main()
