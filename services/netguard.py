"""Outbound requests to URLs users give (push webhooks, link previews), guarded against
server-side request forgery (SSRF).

A URL from a user makes the server connect somewhere, so:

- ``OutboundPolicy.parse``: ``https`` only (``http`` too if the operator allows it), no userinfo,
  a host that is a DNS name or a canonical IP literal (no ``2130706433``, ``0x7f.1``, ``127.1``,
  zone ids), a port in 1-65535.
- ``OutboundPolicy.addresses``: resolves the host (every A and AAAA answer) and refuses it if any
  address is not public: loopback, private (RFC 1918, ULA), link-local, unspecified, multicast,
  reserved, CGNAT (100.64/10), documentation and benchmark ranges, and the same IPv4 ranges
  embedded in IPv6 (v4-mapped, NAT64, 6to4; Teredo is refused). The operator's allowlist (host
  names, ``*.suffix`` names, CIDR networks) lets intranet targets through.
- ``GuardedBackend``: the network backend of an httpcore client. It runs the same check at
  connect time and connects to the very addresses it checked (TLS still verifies the URL's host
  name), so a DNS answer that changes after a check (DNS rebinding) reaches nothing.

The clients on top (``services.push.webhooks.WebhookClient``, ``services.previews.fetch``) use
no proxy (the environment is not read), send no cookies, cap what they read and check every
redirect they follow (if any) with the same policy.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known NAT64 prefix: the low 32 bits are IPv4
# The IANA special-purpose ranges that are not globally reachable, listed here too so the verdict
# does not depend on the Python version's ``is_global`` (3.11's misses e.g. 192.0.0.0/24).
_SPECIAL = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
    "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
    "224.0.0.0/4", "240.0.0.0/4",
    "::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "3fff::/20", "fc00::/7", "fe80::/10",
    "fec0::/10", "ff00::/8"))
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")  # a last label that URL parsers read as IPv4
_NAME = re.compile(r"(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


class TargetRefused(Exception):
    """The target is not allowed. The message is safe to show to the user who registered
    it (it never names the addresses the host resolved to)."""


class Resolver(Protocol):
    """Resolves a host name to its addresses (A and AAAA). Raises ``OSError`` when it cannot."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]: ...


class SystemResolver:
    """The system's resolver, through the event loop's ``getaddrinfo`` (run in the loop's executor,
    so nothing blocks the loop)."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                               proto=socket.IPPROTO_TCP)
        out: list[IPAddress] = []
        for family, _, _, _, sockaddr in infos:
            if family in (socket.AF_INET, socket.AF_INET6):
                ip = ipaddress.ip_address(sockaddr[0])  # a link-local v6 answer keeps its "%zone"
                if ip not in out:
                    out.append(ip)
        return out


def is_public(ip: IPAddress) -> bool:
    """Whether ``ip`` is a globally routable unicast address (IPv4 inside IPv6 judged as IPv4)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id or ip.teredo is not None:
            return False
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
        if embedded is not None:
            return is_public(embedded)
    if any(ip.version == net.version and ip in net for net in _SPECIAL):
        return False
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                                 or ip.is_reserved or ip.is_unspecified)


def parse_allowlist(entries: Iterable[str]) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    """Split an allowlist (``push.webhook_allow``, ``previews.allow``) into host names (``name`` or ``*.suffix``, lower case, no
    trailing dot) and networks (``10.0.0.0/8``, ``fd00::/8``, a bare address). Raises ``ValueError``
    naming a bad entry."""
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for raw in entries:
        entry = raw.strip().lower().rstrip(".")
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        if not _NAME.fullmatch(entry) or _NUMERIC_LABEL.fullmatch(entry.rsplit(".", 1)[-1]):
            msg = f"{raw!r} is neither a host name (or *.domain) nor an IP network"
            raise ValueError(msg)
        names.add(entry)
    return frozenset(names), tuple(networks)


@dataclass(frozen=True, slots=True)
class OutboundUrl:
    """A checked URL, split as it will be requested."""

    url: httpx.URL
    scheme: str  # "https" | "http"
    host: str  # ASCII (IDNA), lower case, IPv6 without brackets
    port: int

    @property
    def host_key(self) -> str:
        """The host the per-host concurrency cap counts by."""
        return self.host.rstrip(".")


class OutboundPolicy:
    """What targets are allowed: the URL rules, the address rules and the operator's allowlist.
    ``resolver`` answers DNS (default: the system's); ``resolve_timeout_s`` bounds it. ``noun``
    names the URL in the refusals' messages (they are shown to the user who gave it)."""

    def __init__(self, *, allow_http: bool = False, allow: Iterable[str] = (), resolver: Resolver | None = None,
                 resolve_timeout_s: float = 3.0, noun: str = "webhook") -> None:
        self.allow_http = allow_http
        self.noun = noun
        self._names, self._networks = parse_allowlist(allow)
        self._resolver = resolver or SystemResolver()
        self._resolve_timeout = resolve_timeout_s

    def parse(self, url: str) -> OutboundUrl:
        """Check the URL's form. Raises ``TargetRefused``."""
        try:
            parsed = httpx.URL(url)
            host = parsed.raw_host.decode("ascii").lower()
        except (httpx.InvalidURL, UnicodeError, ValueError):
            msg = f"a {self.noun} target must be a valid URL"
            raise TargetRefused(msg) from None
        schemes = ("https", "http") if self.allow_http else ("https",)
        if parsed.scheme not in schemes:
            msg = f"a {self.noun} target must be an https URL" if not self.allow_http else \
                f"a {self.noun} target must be an http(s) URL"
            raise TargetRefused(msg)
        if parsed.userinfo:
            msg = f"a {self.noun} URL must not contain a user name or password"
            raise TargetRefused(msg)
        if not host or "%" in host or not self._canonical_host(host):
            msg = f"a {self.noun} URL's host must be a DNS name or an IP address in its usual form"
            raise TargetRefused(msg)
        port = parsed.port if parsed.port is not None else (443 if parsed.scheme == "https" else 80)
        if not 1 <= port <= 65535:
            msg = f"a {self.noun} URL's port must be 1-65535"
            raise TargetRefused(msg)
        return OutboundUrl(parsed, parsed.scheme, host, port)

    @staticmethod
    def _canonical_host(host: str) -> bool:
        try:
            ipaddress.ip_address(host)  # dotted-quad IPv4 (no leading zeros) or IPv6
            return True
        except ValueError:
            pass
        # Not an IP literal: then no numeric last label, which resolvers and other URL parsers
        # would read as an IPv4 address in decimal, octal or hex (2130706433, 0x7f.1, 127.1).
        return bool(_NAME.fullmatch(host.rstrip("."))) and host[:2] != "*." and \
            not _NUMERIC_LABEL.fullmatch(host.rstrip(".").rsplit(".", 1)[-1])

    def _name_allowed(self, host: str) -> bool:
        name = host.rstrip(".")
        return name in self._names or any(name.endswith(n[1:]) for n in self._names if n.startswith("*."))

    def address_allowed(self, ip: IPAddress) -> bool:
        """Whether ``ip`` may be connected to: public, or in the operator's allowed networks."""
        return self._address_allowed(ip)

    def _address_allowed(self, ip: IPAddress) -> bool:
        if any(ip.version == net.version and ip in net for net in self._networks):
            return True
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        if mapped is not None and any(mapped in net for net in self._networks if net.version == 4):
            return True
        return is_public(ip)

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses to connect to for ``host``, every one of them allowed. Raises
        ``TargetRefused`` if one is not (or there is none), ``OSError`` if the host does not
        resolve (in time)."""
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            found = [literal]
        else:
            try:
                async with asyncio.timeout(self._resolve_timeout):
                    found = await self._resolver.resolve(host, port)
            except TimeoutError:
                msg = f"resolving {host} timed out"
                raise OSError(msg) from None
        if not found:
            msg = f"{host} has no address"
            raise OSError(msg)
        if literal is None and self._name_allowed(host):
            return found
        if not all(self._address_allowed(ip) for ip in found):
            msg = f"a {self.noun} target must be a public host (or one the operator allows)"
            raise TargetRefused(msg)
        return found

    async def check(self, url: str) -> OutboundUrl:
        """The registration check: the URL's form, then where its host resolves now. Raises
        ``TargetRefused``."""
        target = self.parse(url)
        try:
            await self.addresses(target.host, target.port)
        except OSError:
            msg = f"the {self.noun} host does not resolve"
            raise TargetRefused(msg) from None
        return target


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves and checks the host itself (``OutboundPolicy``)
    and connects to the checked addresses only, in order. ``TargetRefused`` propagates through
    httpcore as is; a host that does not resolve is an ``httpcore.ConnectError``."""

    def __init__(self, policy: OutboundPolicy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._policy.addresses(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        error: Exception | None = None
        for ip in addresses:
            try:
                return await self._inner.connect_tcp(str(ip), port, timeout=timeout, local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        msg = "no outbound request goes to a unix socket"
        raise TargetRefused(msg)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


# What a request can fail with short of an answer (for a POST, all of them are worth a retry).
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpcore.TimeoutException, httpcore.NetworkError,
                                                 httpcore.ProtocolError, httpcore.UnsupportedProtocol, OSError)


def default_ssl_context() -> ssl.SSLContext:
    """Certificate checks as httpx does them (certifi's CA bundle)."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())
