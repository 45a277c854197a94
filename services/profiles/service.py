"""ProfileService: the owner of the ``profiles`` table: each user's display name, avatar and
status text, read in batches by anyone, set by the user (or an operator); a change is told to the
user's contacts (the peers of its 1:1 conversations, which the conversation service knows)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import IntegrityError

from services.conversations.service import ConversationService
from services.errors import NotFound
from services.ids import Clock
from services.profiles.models import Profile
from services.users.service import UserService


@dataclass(frozen=True, slots=True)
class ProfileInfo:
    uid: str
    name: str
    avatar: str
    status: str
    updated_at: int


class ProfileService:
    def __init__(self, clock: Clock, users: UserService, conversations: ConversationService) -> None:
        self._clock = clock
        self._users = users
        self._conversations = conversations

    async def get(self, uids: list[str]) -> dict[str, ProfileInfo]:
        """The profiles of the active users among ``uids`` (one without a profile yet: empty fields)."""
        active = await self._users.active_uids(set(uids))
        rows = {r.uid: r for r in await Profile.filter(uid__in=list(active))} if active else {}
        out: dict[str, ProfileInfo] = {}
        for uid in uids:
            if uid in active:
                r = rows.get(uid)
                out[uid] = ProfileInfo(uid, r.name, r.avatar, r.status, r.updated_at) if r \
                    else ProfileInfo(uid, "", "", "", 0)
        return out

    async def set(self, uid: str, *, name: str | None = None, avatar: str | None = None,
                  status: str | None = None) -> tuple[ProfileInfo, list[str]]:
        """Change the fields given. Returns the profile and the contacts to tell.

        Raises:
            NotFound: no such (active) user.
        """
        if not await self._users.active_uids({uid}):
            msg = f"user {uid!r} does not exist"
            raise NotFound(msg)
        changes: dict[str, Any] = {k: v for k, v in (("name", name), ("avatar", avatar), ("status", status))
                                   if v is not None}
        now = self._clock.now_ms()
        if not await Profile.filter(uid=uid).update(**changes, updated_at=now):
            try:
                await Profile.create(uid=uid, **changes, updated_at=now)
            except IntegrityError:  # created concurrently (another device)
                await Profile.filter(uid=uid).update(**changes, updated_at=now)
        r = await Profile.get(uid=uid)
        return ProfileInfo(uid, r.name, r.avatar, r.status, r.updated_at), await self._conversations.direct_peers(uid)
