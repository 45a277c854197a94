"""What the broker needs to authenticate users: an interface and its types, owned by the broker.
The user service implements it (``services.users.service.UserService``); the broker imports
nothing of the services."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol


class AuthFailure(str, Enum):
    """Why a CONNECT was refused; the broker maps it to a reason code (``broker.gate``)."""

    BAD_FORMAT = "bad_format"  # the CONNECT asks for a payload format there is none of: 0x83 (a reason string says)

    BAD_CREDENTIALS = "bad_credentials"  # MQTT 5 0x86, 3.1.1 CONNACK 4
    NOT_AUTHORIZED = "not_authorized"  # 0x87, CONNACK 5
    IDENTIFIER_REJECTED = "identifier_rejected"  # 0x85, CONNACK 2


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a connection is: the result of a successful authentication."""

    uid: str
    device: str
    platform: str
    token_id: int
    expires_at: int | None
    content_type: str | None = None  # what the device reads and writes (None: payloads as published)


@dataclass(frozen=True, slots=True)
class AuthChange:
    """A revocation (one device, or all with ``device=None``) or a disabled user."""

    id: int
    uid: str
    device: str | None
    kind: str
    ts: int = 0  # when it was made (ms)


class Authenticator(Protocol):
    """Implemented by :class:`services.users.service.UserService`."""

    async def authenticate(self, username: str | None, password: str | None, client_id: str | None,
                           user_properties: Sequence[tuple[str, str]] = ()) -> Identity | AuthFailure:
        """``user_properties``: the MQTT 5 CONNECT's User Properties (a device's choices, such as
        its payload encoding)."""

    async def auth_changes_since(self, after_id: int, limit: int = 500) -> list[AuthChange]: ...

    async def last_auth_change_id(self) -> int: ...
