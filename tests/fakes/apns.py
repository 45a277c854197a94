"""A local APNs provider API: HTTP/2 over TLS (hypercorn), checking requests as Apple does
(HTTP/2, path, apns-topic/push-type/priority headers, the ES256 provider token and its kid/iss,
the aps body) and answering with APNs' success and error shapes."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TEAM, KEY_ID, TOPIC = "TEAM123456", "KEY1234567", "com.example.imgate"


def _reason(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"reason": reason}, status_code=status)


@dataclass
class FakeApns:
    unregistered: set[str] = field(default_factory=set)
    busy: dict[str, int] = field(default_factory=dict)  # token -> how many 429s first
    received: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        self._public = key.public_key()
        self.key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()).decode()
        self.app = Starlette(routes=[Route("/3/device/{token}", self._push, methods=["POST"])])

    async def _push(self, request: Request) -> Response:
        if request.scope.get("http_version") != "2":
            return _reason(400, "BadProtocol")  # APNs speaks HTTP/2 only
        auth = request.headers.get("authorization", "")
        try:
            header = jwt.get_unverified_header(auth.removeprefix("bearer "))
            claims = jwt.decode(auth.removeprefix("bearer "), self._public, algorithms=["ES256"])
        except jwt.PyJWTError:
            return _reason(403, "InvalidProviderToken")
        if header.get("kid") != KEY_ID or claims.get("iss") != TEAM:
            return _reason(403, "InvalidProviderToken")
        if request.headers.get("apns-topic") != TOPIC:
            return _reason(400, "BadTopic")
        if request.headers.get("apns-push-type") not in ("alert", "background"):
            return _reason(400, "InvalidPushType")
        if request.headers.get("apns-priority") not in ("5", "10"):
            return _reason(400, "BadPriority")
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("aps"), dict):
            return _reason(400, "PayloadEmpty")
        token = request.path_params["token"]
        if token in self.unregistered:
            return JSONResponse({"reason": "Unregistered", "timestamp": 1700000000000}, status_code=410)
        if not all(c in "0123456789abcdef" for c in token):
            return _reason(400, "BadDeviceToken")
        if self.busy.get(token, 0) > 0:
            self.busy[token] -= 1
            return _reason(429, "TooManyRequests")
        self.received.append((dict(request.headers), body))
        return Response(status_code=200, headers={"apns-id": str(uuid.uuid4()).upper()})


def _certificate(tmp: Path) -> tuple[Path, Path, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    client_ctx = ssl.create_default_context(cafile=str(cert_path))
    return cert_path, key_path, client_ctx


@asynccontextmanager
async def serve_apns(fake: FakeApns, port: int) -> AsyncIterator[ssl.SSLContext]:
    """Serve ``fake`` on https://127.0.0.1:port (HTTP/2); yields an SSL context that trusts it."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    with tempfile.TemporaryDirectory() as tmp:
        cert, key, client_ctx = _certificate(Path(tmp))
        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.certfile, config.keyfile = str(cert), str(key)
        config.alpn_protocols = ["h2"]
        config.accesslog = config.errorlog = None
        stop = asyncio.Event()
        task = asyncio.create_task(serve(fake.app, config, shutdown_trigger=stop.wait), name="fake-apns")
        try:
            async with asyncio.timeout(10):  # until it accepts TLS connections
                while True:
                    try:
                        _, writer = await asyncio.open_connection("127.0.0.1", port)
                        writer.close()
                        break
                    except OSError:
                        await asyncio.sleep(0.02)  # bounded start-up poll of a third-party server
            yield client_ctx
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
