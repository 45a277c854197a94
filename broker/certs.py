"""Development TLS certificates: a private CA and a server certificate it signs.

For trying the TLS and secure WebSocket listeners without a public CA: clients trust ``ca.crt``
(``mosquitto_pub --cafile ca.crt``, ``ssl.create_default_context(cafile=...)``) and the server
presents ``server.crt``. Not for production: the CA key sits next to the certificates.

The certificates carry what strict verifiers ask for (Python 3.13's ``VERIFY_X509_STRICT``,
browsers, Apple's 825-day rule): critical basic constraints and key usage, subject and authority
key identifiers, serverAuth extended key usage and every name in SubjectAltName (the common name
is ignored by modern clients).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
VALIDITY = dt.timedelta(days=730)  # under the 825 days Apple accepts for a private CA
_BACKDATE = dt.timedelta(hours=1)  # clients whose clock is a little behind still accept it
_MAX_HOSTS = 100
_MAX_HOST_LEN = 253


@dataclass(frozen=True, slots=True)
class DevCerts:
    """Where :func:`write_dev_certs` put the files (keys are 0600)."""

    out: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    hosts: tuple[str, ...]
    not_after: dt.datetime  # both certificates expire then


def write_dev_certs(out: Path, hosts: Sequence[str] = DEFAULT_HOSTS, *, overwrite: bool = False) -> DevCerts:
    """Create ``ca.crt``/``ca.key`` and ``server.crt``/``server.key`` (EC P-256, ~2 years) in ``out``.

    The server certificate names every host in SubjectAltName: IP addresses as IP entries, the
    others as DNS names (``*.example.test`` wildcards allowed; non-ASCII names IDNA-encoded).
    ``out`` is created 0700 if missing.

    Raises:
        ValueError: no host, too many, or one that is not a host name or IP address.
        FileExistsError: one of the four files exists and ``overwrite`` is false (a new CA would
            make the clients that trust the old one fail).
        OSError: the directory or a file cannot be written.
    """
    names = _parse_hosts(hosts)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    paths = DevCerts(out=out, ca_cert=out / "ca.crt", ca_key=out / "ca.key", server_cert=out / "server.crt",
                     server_key=out / "server.key", hosts=tuple(host for host, _ in names), not_after=now + VALIDITY)
    if not overwrite:
        for path in (paths.ca_cert, paths.ca_key, paths.server_cert, paths.server_key):
            if path.exists():
                msg = f"{path} exists (pass overwrite / --force to replace the dev CA and certificate)"
                raise FileExistsError(msg)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "imgate development"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "imgate dev CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(paths.not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ca_ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    common_name = names[0][0][:64]  # CN is at most 64 characters; SAN carries the full names
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "imgate development"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(paths.not_after)
        .add_extension(x509.SubjectAlternativeName([general for _, general in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    # Keys first: a crash in between leaves no certificate whose key is missing.
    _write(paths.ca_key, _key_pem(ca_key), private=True)
    _write(paths.server_key, _key_pem(server_key), private=True)
    _write(paths.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM), private=False)
    _write(paths.server_cert, server_cert.public_bytes(serialization.Encoding.PEM), private=False)
    return paths


def _parse_hosts(hosts: Sequence[str]) -> list[tuple[str, x509.GeneralName]]:
    if isinstance(hosts, str):  # a single name passed where a list belongs would become its letters
        hosts = [hosts]
    seen: set[str] = set()
    names: list[tuple[str, x509.GeneralName]] = []
    for raw in hosts:
        host = raw.strip().lower()
        if host.startswith("[") and host.endswith("]"):  # "[::1]" as written in URLs
            host = host[1:-1]
        if host in seen:
            continue
        seen.add(host)
        if not host or len(host) > _MAX_HOST_LEN:
            msg = f"invalid host {raw!r}: use a host name or an IP address"
            raise ValueError(msg)
        try:
            names.append((host, x509.IPAddress(ipaddress.ip_address(host))))
            continue
        except ValueError:
            pass
        names.append((host, x509.DNSName(_dns_name(raw, host))))
    if not names:
        msg = "no host: give at least one host name or IP address"
        raise ValueError(msg)
    if len(names) > _MAX_HOSTS:
        msg = f"too many hosts ({len(names)}; at most {_MAX_HOSTS})"
        raise ValueError(msg)
    return names


def _dns_name(raw: str, host: str) -> str:
    labels = host.rstrip(".").split(".")
    out: list[str] = []
    for i, label in enumerate(labels):
        if label == "*" and i == 0 and len(labels) > 2:
            out.append(label)
            continue
        try:
            ascii_label = label.encode("idna").decode("ascii") if not label.isascii() else label
        except UnicodeError as exc:
            msg = f"invalid host {raw!r}: {exc}"
            raise ValueError(msg) from exc
        if not ascii_label or len(ascii_label) > 63 or not all(c.isalnum() or c in "-_" for c in ascii_label) \
                or ascii_label.startswith("-") or ascii_label.endswith("-"):
            msg = f"invalid host {raw!r}: use a host name (letters, digits, '-', dots) or an IP address"
            raise ValueError(msg)
        out.append(ascii_label)
    return ".".join(out)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, *, private: bool) -> None:
    """Write ``data`` to ``path`` by rename, so a reader (a reload) never sees half a file; a
    private file is 0600 from its creation, never readable by others even for a moment."""
    mode = 0o600 if private else 0o644
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # the umask may have taken bits away, or a stale tmp had other bits
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


__all__ = ["DEFAULT_HOSTS", "VALIDITY", "DevCerts", "write_dev_certs"]
