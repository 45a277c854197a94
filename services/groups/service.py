"""GroupService: group conversations (``g:{gid}``), their members and roles.

A membership change is stored as a message of type ``member`` and takes the conversation's next
``seq``, in the same transaction that changes the member rows, under the same lock as sends. So
membership is ordered with the messages: a member sees exactly the messages after its join and
up to its removal (its own ``member`` events included).

The rules live here; the rows belong to their owners: members and the sequence counter to the
conversation service, the ``member`` message to the message service, both written in this
service's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from services.blocks.service import BlockService
from services.callbacks.outbox import Entry
from services.conversations.service import MENTION_ALL, PIN, ROLES, ConversationService, Locked
from services.errors import BadRequest, Forbidden, NotFound, TooLarge
from services.ids import UID_RE, Clock, new_ulid
from services.messages.commands import StoredMessage
from services.messages.service import MessageService
from services.transactions import transaction
from services.users.service import UserService


@dataclass(frozen=True, slots=True)
class GroupChange:
    """What a membership change stored and whom to tell."""

    gid: str
    conv: str
    event: StoredMessage  # the stored ``member`` message
    members: tuple[str, ...]  # members after the change
    notify: tuple[str, ...]  # members after the change, plus those who just left


@dataclass(frozen=True, slots=True)
class GroupInfo:
    gid: str
    conv: str
    name: str
    owner: str | None
    members: tuple[tuple[str, str], ...]  # (uid, role), owner first
    mention_all: str = "admins"  # who may mention @all: "admins" (the owner and admins) or "members"
    pin: str = PIN[0]  # who may pin and unpin messages: "members" (the default) or "admins"


@dataclass(frozen=True, slots=True)
class GroupSettings:
    """A group's settings, and whom to tell of a change (nobody when nothing changed)."""

    gid: str
    conv: str
    mention_all: str
    notify: tuple[str, ...]
    pin: str = PIN[0]


@dataclass(frozen=True, slots=True)
class GroupSummary:
    gid: str
    conv: str
    name: str
    owner: str | None
    members: int  # current members


MAX_PAGE = 1000  # groups per page of GroupService.page


def group_conv(gid: str) -> str:
    return f"g:{gid}"


class GroupService:
    def __init__(self, clock: Clock, users: UserService, conversations: ConversationService,
                 messages: MessageService, *, max_members: int, blocks: BlockService) -> None:
        self._clock = clock
        self._blocks = blocks
        self._users = users
        self._conversations = conversations
        self._messages = messages
        self._max = max_members

    async def create(self, uid: str, name: str, members: list[str]) -> GroupChange:
        """Create a group owned by ``uid`` with ``members`` (the owner is added if missing)."""
        if not 1 <= len(name) <= 128:
            msg = "name must be 1-128 characters"
            raise BadRequest(msg)
        wanted = list(dict.fromkeys([uid, *members]))
        await self._check_users(wanted)
        await self._check_not_blocked(uid, set(wanted))
        if len(wanted) > self._max:
            msg = f"a group has at most {self._max} members; {len(wanted)} asked"
            raise TooLarge(msg)
        gid = new_ulid(self._clock.now_ms()).lower()
        conv = group_conv(gid)
        now = self._clock.now_ms()
        async with transaction() as conn:
            await self._conversations.create_group(conn, conv, name, uid, now)
            locked = await self._conversations.lock(conn, [conv])
            event = await self._event(conn, locked, conv, uid, {"event": "created", "added": wanted, "name": name},
                                      now)
            await self._conversations.join(conn, conv, {m: "owner" if m == uid else "member" for m in wanted},
                                           after_seq=event.seq - 1, read={uid: event.seq})
        return GroupChange(gid, conv, event, tuple(wanted), tuple(wanted))

    async def add(self, uid: str, gid: str, members: list[str]) -> GroupChange:
        conv = group_conv(gid)
        await self._check_users(members)
        await self._check_not_blocked(uid, set(members))
        now = self._clock.now_ms()
        async with transaction() as conn:
            locked = await self._lock(conn, conv)
            current = locked.members_of(conv)
            self._require_role(current, uid, ("owner", "admin"), "add members")
            new = [m for m in dict.fromkeys(members) if m not in current]
            if not new:
                msg = "everyone listed is already a member"
                raise BadRequest(msg)
            if len(current) + len(new) > self._max:
                msg = f"a group has at most {self._max} members; it would have {len(current) + len(new)}"
                raise TooLarge(msg)
            event = await self._event(conn, locked, conv, uid, {"event": "added", "added": new}, now)
            # Former members come back from the new join point on.
            await self._conversations.join(conn, conv, dict.fromkeys(new, "member"), after_seq=event.seq - 1,
                                           read=dict.fromkeys(new, event.seq - 1))
        after = (*current, *new)
        return GroupChange(gid, conv, event, tuple(after), tuple(after))

    async def remove(self, uid: str, gid: str, members: list[str]) -> GroupChange:
        return await self._drop(uid, gid, list(dict.fromkeys(members)), leaving=False)

    async def leave(self, uid: str, gid: str) -> GroupChange:
        return await self._drop(uid, gid, [uid], leaving=True)

    async def set_role(self, uid: str, gid: str, target: str, role: str) -> GroupInfo:
        if role not in ("admin", "member"):
            msg = "role must be 'admin' or 'member'"
            raise BadRequest(msg)
        conv = group_conv(gid)
        async with transaction() as conn:
            current = (await self._lock(conn, conv)).members_of(conv)
            self._require_role(current, uid, ("owner",), "change roles")
            if current.get(target) in (None, "owner"):
                msg = f"{target!r} is not a member whose role can change"
                raise BadRequest(msg)
            await self._conversations.set_role(conn, conv, target, role)
            await self._membership(conn, conv, uid, {"event": "role", "target": target, "role": role},
                                   self._clock.now_ms())
        return await self.info(uid, gid)

    async def info(self, uid: str, gid: str) -> GroupInfo:
        info = await self.describe(gid)
        if uid not in dict(info.members):
            msg = f"group {gid!r} not found"
            raise NotFound(msg)
        return info

    async def describe(self, gid: str) -> GroupInfo:
        """A group as the operator sees it (the admin API): any group, whoever asks.

        Raises:
            NotFound: no such group.
        """
        conv = group_conv(gid)
        group = await self._conversations.group(conv)
        if group is None:
            msg = f"group {gid!r} not found"
            raise NotFound(msg)
        name, owner, members, mention_all, pin = group
        ordered = sorted(members.items(), key=lambda kv: (ROLES.index(kv[1]), kv[0]))
        return GroupInfo(gid, conv, name, owner, tuple(ordered), mention_all, pin)

    async def page(self, *, after: str | None = None, limit: int = 100,
                   member: str | None = None) -> tuple[list[GroupSummary], str | None]:
        """Groups in conv order after ``after`` (a conv), at most ``limit`` (1-MAX_PAGE), each
        with its current member count; ``member``: only the groups that uid is in. With the
        conv to pass as ``after`` for the next page (None: this is the last).

        Raises:
            BadRequest: ``limit`` out of range.
        """
        if not 1 <= limit <= MAX_PAGE:
            msg = f"limit must be 1-{MAX_PAGE}, not {limit}"
            raise BadRequest(msg)
        rows = await self._conversations.groups(after=after, limit=limit + 1, member=member)
        items = [GroupSummary(conv[2:], conv, name, owner, count) for conv, name, owner, count in rows[:limit]]
        return items, items[-1].conv if len(rows) > limit else None

    async def settings(self, uid: str, gid: str, *, mention_all: str | None = None,
                       pin: str | None = None) -> GroupSettings:
        """A group's settings; with a value, changed (by its owner or an admin) first. Every
        current member is told of a change (``notify``).

        Raises:
            NotFound: no such group, or ``uid`` is not a member.
            Forbidden: a change asked by a plain member.
            BadRequest: an unknown value.
        """
        if mention_all is not None and mention_all not in MENTION_ALL:
            msg = f"mention_all must be one of {', '.join(MENTION_ALL)}"
            raise BadRequest(msg)
        if pin is not None and pin not in PIN:
            msg = f"pin must be one of {', '.join(PIN)}"
            raise BadRequest(msg)
        if mention_all is None and pin is None:
            info = await self.info(uid, gid)
            return GroupSettings(gid, info.conv, info.mention_all, (), info.pin)
        conv = group_conv(gid)
        async with transaction() as conn:  # under the group's lock: ordered with its sends and pins
            current = (await self._lock(conn, conv)).members_of(conv)
            self._require_role(current, uid, ("owner", "admin"), "change the group's settings")
            await self._conversations.set_group_settings(conn, conv, mention_all=mention_all, pin=pin)
        info = await self.info(uid, gid)
        return GroupSettings(gid, conv, info.mention_all, tuple(sorted(current)), info.pin)

    # ---- internals -------------------------------------------------------------------------
    async def _drop(self, uid: str, gid: str, members: list[str], *, leaving: bool) -> GroupChange:
        conv = group_conv(gid)
        now = self._clock.now_ms()
        async with transaction() as conn:
            locked = await self._lock(conn, conv)
            current = locked.members_of(conv)
            if uid not in current:
                msg = f"group {gid!r} not found"
                raise NotFound(msg)
            if not leaving:
                self._require_role(current, uid, ("owner", "admin"), "remove members")
                missing = [m for m in members if m not in current]
                if missing:
                    msg = f"{missing[0]!r} is not a member"
                    raise BadRequest(msg)
                if any(current[m] == "owner" for m in members):
                    msg = "the owner cannot be removed (the owner may leave)"
                    raise Forbidden(msg)
                if current[uid] == "admin" and any(current[m] == "admin" for m in members if m != uid):
                    msg = "only the owner removes admins"
                    raise Forbidden(msg)
            remaining = {m: r for m, r in current.items() if m not in members}
            body: dict[str, Any] = {"event": "left" if leaving else "removed", "removed": members}
            successor = None
            if current.get(uid) == "owner" and uid in members and remaining:
                # The owner leaves: the longest-standing admin, else member, takes over.
                successor = await self._successor(conn, conv, remaining)
                body["owner"] = successor
            event = await self._event(conn, locked, conv, uid, body, now)
            await self._conversations.leave(conn, conv, members, at_seq=event.seq)
            if successor is not None:
                await self._conversations.set_role(conn, conv, successor, "owner")
        return GroupChange(gid, conv, event, tuple(remaining), tuple(current))

    async def _successor(self, conn: BaseDBAsyncClient, conv: str, remaining: dict[str, str]) -> str:
        rows = await self._conversations.seniority(conn, conv, remaining)
        admins = [u for u, r in rows if r == "admin"]
        return admins[0] if admins else rows[0][0]

    async def _check_not_blocked(self, uid: str, members: set[str]) -> None:
        """``uid`` may not put into a group someone who blocks it ("not allowed", nothing more)."""
        if await self._blocks.blockers(uid, members - {uid}):
            msg = "not allowed"
            raise Forbidden(msg)

    async def _check_users(self, uids: list[str]) -> None:
        bad = [u for u in uids if not isinstance(u, str) or not UID_RE.match(u)]
        if bad:
            msg = f"invalid uid {bad[0]!r}"
            raise BadRequest(msg)
        active = await self._users.active_uids(set(uids))
        missing = [u for u in uids if u not in active]
        if missing:
            msg = f"user {missing[0]!r} does not exist"
            raise NotFound(msg)

    async def _lock(self, conn: BaseDBAsyncClient, conv: str) -> Locked:
        """Serialise with sends and other changes of this group (the conversation's lock)."""
        locked = await self._conversations.lock(conn, [conv])
        if locked.kinds.get(conv) != "group":
            msg = f"group {conv[2:]!r} not found"
            raise NotFound(msg)
        return locked

    @staticmethod
    def _require_role(current: dict[str, str], uid: str, roles: tuple[str, ...], what: str) -> None:
        if uid not in current:
            msg = "group not found"
            raise NotFound(msg)
        if current[uid] not in roles:
            msg = f"only {' or '.join(roles)}s may {what}"
            raise Forbidden(msg)

    async def _event(self, conn: BaseDBAsyncClient, locked: Locked, conv: str, uid: str, data: dict[str, Any],
                     now: int) -> StoredMessage:
        """Store a ``member`` message with the conversation's next seq (inside the caller's lock)."""
        event = await self._messages.append(conn, locked, conv, uid, "member", data, now)
        await self._conversations.commit_seqs(conn, locked)
        await self._membership(conn, conv, uid, {**data, "seq": event.seq}, now)
        return event

    async def _membership(self, conn: BaseDBAsyncClient, conv: str, uid: str, data: dict[str, Any], now: int) -> None:
        """The ``membership`` callback event of a change (in its transaction; nothing when no
        endpoint takes it)."""
        outbox = self._messages.outbox
        if outbox.wants("membership"):
            await outbox.record(conn, [Entry("membership", conv, conv, now,
                                             {"gid": conv.removeprefix("g:"), "conv": conv, "by": uid, **data})], now)
