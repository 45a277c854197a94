"""ProfileService: the owner of the ``profiles`` table: each user's display name, avatar and
status text, read in batches by anyone, set by the user (or an operator); a change is told to the
user's contacts (the peers of its 1:1 conversations, which the conversation service knows).

The name a profile shows is the one the user set, else the account name the operator gave
(``imgate user add --name``, the user service's): a user is "Ann" from the start, not "ann",
and clearing the profile's name goes back to it."""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import IntegrityError

from services.attachments.service import AttachmentService
from services.attachments.store import KEY_RE
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


# profile.set refuses them (controls, bidirectional overrides and isolates); an account name may have them
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def _info(uid: str, row: Profile | None, account_name: str) -> ProfileInfo:
    """The profile as shown: its name, else the account name (a user without a profile row has
    only that, and ``updated_at`` 0), without control characters, as a name profile.set takes."""
    account_name = _CONTROL.sub("", account_name)
    if row is None:
        return ProfileInfo(uid, account_name, "", "", 0)
    return ProfileInfo(uid, row.name or account_name, row.avatar, row.status, row.updated_at)


class ProfileService:
    def __init__(self, clock: Clock, users: UserService, conversations: ConversationService, *,
                 attachments: AttachmentService) -> None:
        self._clock = clock
        self._attachments = attachments
        self._users = users
        self._conversations = conversations

    async def get(self, uids: list[str]) -> dict[str, ProfileInfo]:
        """The profiles of the active users among ``uids`` (one without a profile yet: empty fields)."""
        accounts = await self._users.account_names(set(uids))
        rows = {r.uid: r for r in await Profile.filter(uid__in=list(accounts))} if accounts else {}
        return {uid: _info(uid, rows.get(uid), accounts[uid]) for uid in uids if uid in accounts}

    async def set(self, uid: str, *, name: str | None = None, avatar: str | None = None,
                  status: str | None = None) -> tuple[ProfileInfo, list[str]]:
        """Change the fields given. Returns the profile and the contacts to tell.

        Raises:
            NotFound: no such (active) user.
            BadRequest: the avatar is an attachment key that is not an uploaded image of ``uid``'s
                (an avatar is readable by everyone: nobody may publish another's upload as one).
        """
        accounts = await self._users.account_names({uid})
        if uid not in accounts:
            msg = f"user {uid!r} does not exist"
            raise NotFound(msg)
        if avatar is not None and KEY_RE.match(avatar):
            await self._attachments.verify_avatar(uid, avatar)
        old = await Profile.get_or_none(uid=uid) if avatar is not None else None
        changes: dict[str, Any] = {k: v for k, v in (("name", name), ("avatar", avatar), ("status", status))
                                   if v is not None}
        now = self._clock.now_ms()
        if not await Profile.filter(uid=uid).update(**changes, updated_at=now):
            try:
                await Profile.create(uid=uid, **changes, updated_at=now)
            except IntegrityError:  # created concurrently (another device)
                await Profile.filter(uid=uid).update(**changes, updated_at=now)
        r = await Profile.get(uid=uid)
        if old is not None and old.avatar != r.avatar and KEY_RE.match(old.avatar):
            await self._attachments.release([old.avatar])  # the old avatar's upload, unless used elsewhere
        return _info(uid, r, accounts[uid]), await self._conversations.direct_peers(uid)

    async def referenced_keys(self, keys: list[str]) -> builtins.set[str]:
        """The upload keys among ``keys`` that are avatars (attachments.Referrer)."""
        return {str(a) for a in await Profile.filter(avatar__in=keys).values_list("avatar", flat=True)}

    async def readable_keys(self, uid: str, keys: list[str]) -> builtins.set[str]:
        """Avatars are public: everyone may download them (attachments.Referrer)."""
        return await self.referenced_keys(keys)

    # ---- privacy (services/privacy) ------------------------------------------------------------
    @staticmethod
    async def export_user(uid: str) -> dict[str, Any] | None:
        """The user's own profile (None: never set), as the archive's profile record."""
        r = await Profile.get_or_none(uid=uid)
        return None if r is None else {"name": r.name, "avatar": r.avatar, "status": r.status,
                                       "updated_at": r.updated_at}

    async def erase_user(self, uid: str) -> int:
        """Delete the user's profile; its avatar upload is released (deleted unless used
        elsewhere). Returns how many rows went."""
        row = await Profile.get_or_none(uid=uid)
        if row is None:
            return 0
        await Profile.filter(uid=uid).delete()
        if KEY_RE.match(row.avatar):
            await self._attachments.release([row.avatar])
        return 1
