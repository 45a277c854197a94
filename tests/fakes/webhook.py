"""Third parties of webhook push: DNS (a resolver whose answers the test sets and changes), a
webhook receiver (a small HTTP/1.1 server, plain or TLS, that records what reaches it) and a
black hole (a TCP server that accepts connections and never answers)."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import hmac
import ipaddress
import socket
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.fakes.tcp import TcpServer

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_MAX_HEAD = 64 * 1024


class FakeDns:
    """A resolver answering from ``table`` (name -> addresses); an unknown name does not resolve.
    The test may change the table at any time (DNS rebinding). ``queries`` lists the names asked."""

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table: dict[str, list[str]] = dict(table or {})
        self.queries: list[str] = []

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        name = host.lower().rstrip(".")
        self.queries.append(name)
        if name not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [ipaddress.ip_address(a) for a in self.table[name]]


def tls_contexts(*names: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for ``names``: (server context, client context that trusts it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(cert_path, key_path)
        client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


@dataclass
class HookRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HookServer(TcpServer):
    """A webhook receiver on ``host`` (127.0.0.1): records each request (``requests``, and ``got`` to wait
    on), checks ``X-Imgate-Signature`` when given the ``secret`` (401 if wrong, as a real receiver
    would), answers ``status`` with ``answer`` and ``headers``. ``hold``: answer only once it is
    set. ``huge``: answer 200 with a body of that many bytes, written until the client goes
    (``written`` counts what it managed to write; ``gone`` is set when the client hung up).
    ``max_pending``: the most requests it held unanswered at once."""

    ssl_context: ssl.SSLContext | None = None
    secret: str | None = None
    host: str = "127.0.0.1"
    status: int = 200
    answer: bytes = b'{"ok":true}'
    headers: dict[str, str] = field(default_factory=dict)
    hold: asyncio.Event | None = None
    huge: int | None = None
    requests: list[HookRequest] = field(default_factory=list)
    got: asyncio.Queue[HookRequest] = field(default_factory=asyncio.Queue)
    arrived: asyncio.Queue[HookRequest] = field(default_factory=asyncio.Queue)  # before answering
    connections: int = 0
    pending: int = 0  # requests received and not answered yet
    max_pending: int = 0
    written: int = 0
    gone: asyncio.Event = field(default_factory=asyncio.Event)

    def listen_host(self) -> str:
        return self.host

    def tls(self) -> ssl.SSLContext | None:
        return self.ssl_context

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        while await self._one(reader, writer):
            pass

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_HEAD:
            return False
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        request = HookRequest(method, path, headers, body)
        self.arrived.put_nowait(request)
        self.pending += 1
        self.max_pending = max(self.max_pending, self.pending)
        try:
            if self.hold is not None:
                await self.hold.wait()
        finally:
            self.pending -= 1
        status, answer = self.status, self.answer
        if self.secret is not None:
            expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(headers.get("x-imgate-signature", ""), expected):
                status, answer = 401, b'{"error":"bad signature"}'
        if status == 200 and self.huge is not None:
            self.requests.append(request)
            self.got.put_nowait(request)
            await self._flood(writer, self.huge)
            return False
        extra = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(answer)}\r\n"
                     f"{extra}\r\n".encode() + answer)
        await writer.drain()
        if status < 300:
            self.requests.append(request)
            self.got.put_nowait(request)
        return headers.get("connection", "").lower() != "close"

    async def _flood(self, writer: asyncio.StreamWriter, size: int) -> None:
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        chunk = b"x" * 65536
        try:
            while self.written < size:
                writer.write(chunk)
                await writer.drain()
                self.written += len(chunk)
        except ConnectionError:
            self.gone.set()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.ssl_context else 'http'}://{host}:{self.port}"


class BlackHole(TcpServer):
    """A TCP server on 127.0.0.1 that accepts connections, reads what comes and never answers
    (neither HTTP nor a TLS handshake). ``accepted`` counts connections; ``open`` those still
    open; ``wait_for(n)`` waits until n were accepted."""

    def __init__(self) -> None:
        self.accepted = 0
        self.open = 0
        self._changed = asyncio.Condition()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with self._changed:
            self.accepted += 1
            self.open += 1
            self._changed.notify_all()
        try:
            while await reader.read(65536):
                pass
        finally:
            async with self._changed:
                self.open -= 1
                self._changed.notify_all()

    async def wait_for(self, accepted: int, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.accepted >= accepted)
