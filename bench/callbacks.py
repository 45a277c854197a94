"""A fast local before_send endpoint for ``bench.im_1to1 --callback allow`` (issue 29): what a
configured before_send costs the ack latency when the operator's endpoint itself costs ~nothing.

It runs in a process of its own (not in the load generator's event loop, whose CPU it would
take), answers every POST ``{"action": "allow"}`` at once over keep-alive HTTP/1.1 and checks
each request's signature (``services.callbacks.signing.verify``), as a real receiver must; a bad
one is answered 401 (the run then shows failures in the server's log).

    python -m bench.callbacks --port 8099 --secret SECRET   # serve (bench.im_1to1 starts it)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from bench._common import free_port
from services.callbacks.signing import SIGNATURE_HEADER, verify

_ALLOW = json.dumps({"action": "allow"}).encode()
_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(_ALLOW), _ALLOW)
_BAD = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"
_SIG = SIGNATURE_HEADER.lower().encode()


async def _serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, secret: str) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length, signature = 0, ""
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == _SIG:
                    signature = value.strip().decode()
            body = await reader.readexactly(length)
            writer.write(_OK if verify(secret, body, signature, int(time.time())) else _BAD)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _serve(port: int, secret: str) -> None:
    server = await asyncio.start_server(lambda r, w: _serve_one(r, w, secret), "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


@contextmanager
def receiver_env() -> Iterator[dict[str, str]]:
    """Run the receiver (a child process) until the block ends; yields the IMGATE_* settings
    that point a server's before_send at it."""
    port, secret = free_port(), secrets.token_hex(16)
    proc = subprocess.Popen([sys.executable, "-m", "bench.callbacks", "--port", str(port), "--secret", secret],
                            stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            msg = f"bench.callbacks did not start ({proc.wait()})"
            raise RuntimeError(msg)
        endpoint = {"name": "bench", "url": f"http://127.0.0.1:{port}/hook", "secret": secret,
                    "events": ["before_send"], "timeout_s": 2.0, "on_failure": "refuse"}
        yield {"IMGATE_CALLBACKS__ENDPOINTS": json.dumps([endpoint]), "IMGATE_CALLBACKS__ALLOW_HTTP": "true",
               "IMGATE_CALLBACKS__ALLOW": '["127.0.0.1"]'}
    finally:
        proc.terminate()
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()
    with suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port, args.secret))


if __name__ == "__main__":
    main()
