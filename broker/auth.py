"""What the broker needs from the user service, and nothing more."""

from __future__ import annotations

from typing import Protocol

from services.users.service import AuthChange, AuthFailure, Identity


class Authenticator(Protocol):
    """Implemented by :class:`services.users.service.UserService`."""

    async def authenticate(self, username: str | None, password: str | None, client_id: str | None
                           ) -> Identity | AuthFailure: ...

    async def auth_changes_since(self, after_id: int, limit: int = 500) -> list[AuthChange]: ...

    async def last_auth_change_id(self) -> int: ...


__all__ = ["AuthChange", "AuthFailure", "Authenticator", "Identity"]
