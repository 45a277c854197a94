"""Who may connect: credentials (service accounts, or users through the auth interface), client
id rules, and the per-user device policy. Decisions only: no sockets, no sessions (the hub acts
on the answers).
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from broker.acl import FULL_ACCESS, AclRule, Principal
from broker.auth import Authenticator, AuthFailure, Identity
from broker.connection import BAD_CREDENTIALS, CLIENT_ID_NOT_VALID, IMPLEMENTATION_SPECIFIC, NOT_AUTHORIZED

log = logging.getLogger("imgate.broker")

# A user's client id is {uid}:{device}; a service account may not take one (or a wildcard).
USER_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}:[A-Za-z0-9_-]{1,32}$")
NOT_IN_ACCOUNT_NAMES = ("+", "#", "/", "\x00")
# The bridges' client ids (bridge.client_id, "imgate-bridge" by default): no other service account
# may take one (on RabbitMQ it would take over the bridge's durable session and read its queue).
RESERVED_CLIENT_ID_PREFIX = "imgate-"
REASONS = {
    AuthFailure.BAD_CREDENTIALS: BAD_CREDENTIALS,
    AuthFailure.NOT_AUTHORIZED: NOT_AUTHORIZED,
    AuthFailure.IDENTIFIER_REJECTED: CLIENT_ID_NOT_VALID,
    AuthFailure.BAD_FORMAT: IMPLEMENTATION_SPECIFIC,
}


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """A non-user login with mosquitto-style ACL rules (``%u``/``%c`` expanded at connect).
    ``publish_rate``: its connections' PUBLISH/SUBSCRIBE packets per second (0: unlimited)."""

    username: str
    password: str
    rules: tuple[AclRule, ...] = FULL_ACCESS
    publish_rate: float = 0.0

    def __post_init__(self) -> None:
        if any(c in self.username for c in NOT_IN_ACCOUNT_NAMES):
            msg = f"service account {self.username!r}: '+', '#', '/' and NUL would become part of its ACL filters"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class DevicePolicy:
    """How many devices of one user may be online at once (0 / absent: no limit)."""

    max_devices: int = 0
    per_class: Mapping[str, int] = field(default_factory=dict)
    platform_classes: Mapping[str, str] = field(default_factory=dict)
    on_limit: str = "refuse"  # or "kick_oldest"

    def class_of(self, platform: str) -> str:
        return self.platform_classes.get(platform.lower(), platform.lower() or "other")

    def over(self, who: Principal, client_id: str, online: Mapping[str, tuple[str, int]]) -> list[str]:
        """The client ids of ``who.uid`` that must go for this login to fit (oldest first);
        ``online``: that user's live client ids -> (platform class, connection order)."""
        if not self.max_devices and not self.per_class:
            return []
        cls = self.class_of(who.platform)
        others = {cid: v for cid, v in online.items() if cid != client_id}  # a take-over is free
        victims: list[str] = []
        limit = self.per_class.get(cls, 0)
        same = sorted((v[1], cid) for cid, v in others.items() if v[0] == cls)
        if limit and len(same) >= limit:
            victims += [cid for _, cid in same[: len(same) - limit + 1]]
        remaining = sorted((v[1], cid) for cid, v in others.items() if cid not in victims)
        if self.max_devices and len(remaining) >= self.max_devices:
            victims += [cid for _, cid in remaining[: len(remaining) - self.max_devices + 1]]
        return victims


class Gate:
    """Logs a CONNECT in: a Principal, or the MQTT 5 reason code to refuse it with."""

    def __init__(self, authenticator: Authenticator, accounts: Sequence[ServiceAccount],
                 internal: Mapping[str, str], *, reserved_client_ids: Collection[str] = ()) -> None:
        self._authenticator = authenticator
        self._reserved = frozenset(reserved_client_ids)  # besides RESERVED_CLIENT_ID_PREFIX
        self.accounts = {a.username: a for a in accounts}
        # Internal accounts (the bridge over MQTT): full access, never cut off as slow consumers.
        self.internal = set(internal)
        for username, password in internal.items():
            self.accounts[username] = ServiceAccount(username, password)

    def is_account(self, username: str | None) -> bool:
        return username in self.accounts

    def reserved(self, username: str, client_id: str) -> bool:
        """Is ``client_id`` a bridge's (``RESERVED_CLIENT_ID_PREFIX``, or one given as reserved),
        which the service account ``username`` may not use? (The internal accounts may.)"""
        return username not in self.internal and \
            (client_id.startswith(RESERVED_CLIENT_ID_PREFIX) or client_id in self._reserved)

    @staticmethod
    def assign_client_id() -> str:
        """For a service account's empty client id (MQTT 3.1.1 §3.1.3.1, MQTT 5 Assigned Client Identifier)."""
        return f"auto-{secrets.token_hex(8)}"

    async def login(self, username: str | None, password: str | None, client_id: str,
                    user_properties: Sequence[tuple[str, str]] = ()) -> Principal | int:
        account = self.accounts.get(username or "")
        if account is not None:
            if password is None or not hmac.compare_digest(password.encode(), account.password.encode()):
                return BAD_CREDENTIALS
            # Not a user's {uid}:{device} (a service account must not resume or take over a
            # user's session), not '$…' (in-process subscribers), nothing that would turn into
            # a wildcard or a level when %c is expanded in its rules, not a bridge's.
            if not client_id or client_id.startswith("$") or USER_CLIENT_ID.match(client_id) \
                    or any(c in client_id for c in NOT_IN_ACCOUNT_NAMES) or self.reserved(account.username, client_id):
                return CLIENT_ID_NOT_VALID
            rules = tuple(r.expand(account.username, client_id) for r in account.rules)
            return Principal(uid=None, device=None, rules=rules, account=account.username)
        try:
            result = await self._authenticator.authenticate(username, password, client_id, user_properties)
        except Exception:
            log.exception("authentication failed with an error; refusing %s", client_id)
            return NOT_AUTHORIZED
        if isinstance(result, Identity):
            return Principal(result.uid, result.device, result.platform, result.token_id, result.expires_at,
                             content_type=result.content_type)
        return REASONS[result]

    async def still_valid(self, who: Principal, username: str | None, password: str | None, client_id: str,
                          user_properties: Sequence[tuple[str, str]] = ()) -> bool:
        """Check a user's token again (a revocation was applied while its login was under way)."""
        try:
            again = await self._authenticator.authenticate(username, password, client_id, user_properties)
        except Exception:
            log.exception("checking %s again failed; refusing it", client_id)
            return False
        return isinstance(again, Identity) and again.token_id == who.token_id

    def publish_rate(self, who: Principal, default: float) -> tuple[float, float | None]:
        """(rate, burst) of a connection's PUBLISH/SUBSCRIBE packets (rate 0: no limit)."""
        if who.account is None:
            return default, None
        rate = self.accounts[who.account].publish_rate
        return rate, max(1.0, rate)
