"""Run imgate's embedded broker alone (no bridge, no services but the user service that
authenticates tokens), for raw broker benchmarks.

Prints ``READY <port>`` on stdout once listening, then runs until SIGTERM or SIGINT and shuts
down cleanly. Service accounts ``bench-0`` .. ``bench-{N-1}`` (password ``bench``) may publish
and subscribe any topic; users log in with a device token (username = uid, password = token,
client id = ``{uid}:{device}``) that must already be in ``DIR/imgate.db``.

    python -m bench.serve_broker --port 0 --data-dir /tmp/b --accounts 200
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from contextlib import suppress
from pathlib import Path

import uvloop

from bench._common import raise_nofile


async def serve(port: int, data_dir: Path, accounts: int) -> None:
    from broker.server import EmbeddedBroker
    from imgate.app import build_services, topic_acl
    from services.db import Database
    from services.ids import SystemClock

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    data_dir.mkdir(parents=True, exist_ok=True)
    async with Database(f"sqlite://{data_dir}/imgate.db"):
        users = build_services(SystemClock()).users
        service_accounts = {f"bench-{i}": "bench" for i in range(accounts)}
        async with EmbeddedBroker(host="127.0.0.1", port=port, authenticator=users, acl=topic_acl("im"),
                                  service_accounts=service_accounts, keepalive_grace=1.5,
                                  auth_poll_interval=1.0) as eb:
            print("READY", eb.port, flush=True)
            await stop.wait()
    print("serve_broker: stopped", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="listen port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--data-dir", type=Path, required=True, help="holds imgate.db (SQLite)")
    parser.add_argument("--accounts", type=int, default=1, help="service accounts bench-0..bench-{N-1}")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args()
    raise_nofile()
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with suppress(KeyboardInterrupt):
        uvloop.run(serve(args.port, args.data_dir, args.accounts))


if __name__ == "__main__":
    main()
