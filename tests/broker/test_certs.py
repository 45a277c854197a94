"""Development certificates: what Python's ssl and mosquitto_pub accept, and ``imgate cert dev``."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import shutil
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from broker.certs import DevCerts, write_dev_certs
from broker.listeners import Listeners, ListenerSpec, Transport

IMGATE = Path(sys.executable).parent / "imgate"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return write_dev_certs(tmp_path_factory.mktemp("dev") / "certs")


async def handshake(certs: DevCerts, cafile: Path, server_hostname: str, host: str = "127.0.0.1") -> str:
    """A TLS handshake with a plain asyncio server presenting ``certs``' server certificate;
    the client verifies as ``ssl.create_default_context(cafile=...)`` does. Returns the TLS version."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certs.server_cert, certs.server_key)
    server = await asyncio.start_server(lambda r, w: w.close(), host, 0, ssl=server_ctx)
    async with server:
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection(host, port, ssl=ssl.create_default_context(cafile=str(cafile)),
                                                  server_hostname=server_hostname)
        version = writer.get_extra_info("ssl_object").version()
        writer.close()
        return str(version)


@pytest.mark.parametrize(("host", "name"), [("127.0.0.1", "localhost"), ("127.0.0.1", "127.0.0.1"),
                                            ("::1", "::1")])
async def test_python_default_verification_accepts_the_default_hosts(certs: DevCerts, host: str,
                                                                     name: str) -> None:
    assert await handshake(certs, certs.ca_cert, name, host) == "TLSv1.3"


async def test_verification_fails_for_another_name_or_another_ca(certs: DevCerts, tmp_path: Path) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch|IP address mismatch"):
        await handshake(certs, certs.ca_cert, "example.com")
    other = write_dev_certs(tmp_path / "other")
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        await handshake(certs, other.ca_cert, "localhost")


def test_certificates_and_key_files(certs: DevCerts) -> None:
    ca = x509.load_pem_x509_certificate(certs.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(certs.server_cert.read_bytes())
    assert server.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"),
                                                       ipaddress.ip_address("::1")]
    for cert in (ca, server):
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
        lifetime = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
        assert dt.timedelta(days=700) < lifetime <= dt.timedelta(days=730)
    for key_file in (certs.ca_key, certs.server_key):
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(certs.out.stat().st_mode) == 0o700
    assert stat.S_IMODE(certs.ca_cert.stat().st_mode) == 0o644


def test_custom_hosts_become_dns_and_ip_names(tmp_path: Path) -> None:
    made = write_dev_certs(tmp_path, ["Chat.Example.test", "10.1.2.3", "[fd00::1]", "*.dev.example.test",
                                      "bücher.example", "chat.example.test"])
    san = x509.load_pem_x509_certificate(made.server_cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["chat.example.test", "*.dev.example.test",
                                                     "xn--bcher-kva.example"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.1.2.3"),
                                                       ipaddress.ip_address("fd00::1")]


@pytest.mark.parametrize("hosts", [[], [""], ["bad host"], ["a/b"], ["-x.example"], ["x" * 64 + ".example"]])
def test_bad_hosts_are_refused(tmp_path: Path, hosts: list[str]) -> None:
    with pytest.raises(ValueError, match="host"):
        write_dev_certs(tmp_path / "c", hosts)
    assert not (tmp_path / "c").exists()


def test_existing_files_are_kept_unless_overwrite(tmp_path: Path) -> None:
    first = write_dev_certs(tmp_path)
    before = first.ca_cert.read_bytes()
    with pytest.raises(FileExistsError, match="ca.crt exists"):
        write_dev_certs(tmp_path)
    assert first.ca_cert.read_bytes() == before
    write_dev_certs(tmp_path, overwrite=True)
    assert first.ca_cert.read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.crt", "ca.key", "server.crt", "server.key"]


def test_cli_cert_dev(tmp_path: Path) -> None:
    out = tmp_path / "my certs"
    run = subprocess.run([str(IMGATE), "cert", "dev", "--out", str(out)], capture_output=True, text=True,
                         timeout=30, check=False)
    assert run.returncode == 0, run.stderr
    for name in ("ca.crt", "server.crt"):
        assert (out / name).is_file()
    for name in ("ca.key", "server.key"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600
    assert f"IMGATE_MQTT__TLS_CERT='{out}/server.crt' IMGATE_MQTT__TLS_KEY='{out}/server.key'" in run.stdout
    assert f"mosquitto_pub --cafile '{out}/ca.crt' -h localhost -p 8883" in run.stdout


def test_cli_cert_dev_options(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    from imgate.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["cert", "dev"]) == 0  # default: ./certs
    assert (tmp_path / "certs" / "server.key").is_file()
    assert f"IMGATE_MQTT__TLS_KEY={tmp_path}/certs/server.key" in capsys.readouterr().out
    assert main(["cert", "dev", "--host", "chat.example.test"]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["cert", "dev", "--force", "--host", "chat.example.test", "--host", "10.0.0.1"]) == 0
    assert "for chat.example.test, 10.0.0.1 to" in capsys.readouterr().out
    san = x509.load_pem_x509_certificate((tmp_path / "certs" / "server.crt").read_bytes()).extensions
    assert san.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["chat.example.test"]
    assert main(["cert", "dev", "--out", "x", "--host", "no such host"]) == 2
    assert "invalid host" in capsys.readouterr().err


async def _mqtt_accept(t: Transport, published: asyncio.Queue[bytes]) -> None:
    """Just enough of MQTT 3.1.1 for mosquitto_pub: CONNACK the CONNECT, keep each PUBLISH."""
    buf = b""
    while data := await t.read(4096):
        buf += data
        while len(buf) >= 2:
            length, shift, i = 0, 0, 1
            while buf[i] & 0x80:
                length |= (buf[i] & 0x7F) << shift
                shift, i = shift + 7, i + 1
            length |= buf[i] << shift
            if len(buf) < i + 1 + length:
                break
            packet, buf = buf[:i + 1 + length], buf[i + 1 + length:]
            if packet[0] == 0x10:
                t.write(b"\x20\x02\x00\x00")
            elif packet[0] >> 4 == 3:
                published.put_nowait(packet)


@pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="needs mosquitto_pub")
async def test_mosquitto_pub_trusts_the_dev_ca_over_the_tls_listener(certs: DevCerts, tmp_path: Path) -> None:
    published: asyncio.Queue[bytes] = asyncio.Queue()
    spec = ListenerSpec("tls", "127.0.0.1", 0, "mqtt.tls_port", cert=certs.server_cert, key=certs.server_key)
    listeners = Listeners([spec], lambda t: _mqtt_accept(t, published))
    await listeners.start()
    try:
        async def mosquitto_pub(cafile: Path) -> int:
            proc = await asyncio.create_subprocess_exec(
                "mosquitto_pub", "--cafile", str(cafile), "-h", "localhost", "-p", str(listeners.port("tls")),
                "-i", "cert-test", "-t", "dev/tls", "-m", "hello", "-q", "0",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            async with asyncio.timeout(10):
                return await proc.wait()

        assert await mosquitto_pub(certs.ca_cert) == 0
        assert (await published.get()).endswith(b"\x00\x07dev/tlshello")
        other = write_dev_certs(tmp_path / "other")
        assert await mosquitto_pub(other.ca_cert) != 0
        assert published.empty()
    finally:
        await listeners.close()
