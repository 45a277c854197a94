"""ContactService: the owner of ``contact_requests``. Under ``messaging.policy = "contacts"`` (as
OpenIM's friend mode) a 1:1 message needs the two users to be contacts: one asks
(``contact.request``), the other accepts. Between two users one of whom blocks the other, a
request not yet accepted is not seen by its addressee: one from the blocked user is kept from the
blocker (stored, never shown), and the blocker's own request to the blocked user is, to the
blocked user, as if withdrawn (not listed, cannot be accepted, a request back does not meet it).
So nothing either of them sees says more than "not answered" or "withdrawn"."""

from __future__ import annotations

import builtins
from dataclasses import dataclass

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from services.blocks.service import BlockService
from services.contacts.models import ContactRequest
from services.errors import BadRequest, NotFound, TooLarge
from services.ids import Clock
from services.sql import AnyOf, Program, Query
from services.users.service import UserService

MAX_PENDING = 1000  # outgoing requests not yet answered, per user


@dataclass(frozen=True, slots=True)
class Outcome:
    accepted: bool  # they are contacts now
    notify: str | None  # whom to tell (None: nobody; a blocker is not told)


@dataclass(frozen=True, slots=True)
class ContactList:
    contacts: list[str]
    incoming: list[tuple[str, str, int]]  # (uid, text, ts) asking the caller
    outgoing: list[str]


class ContactService:
    def __init__(self, clock: Clock, users: UserService, blocks: BlockService) -> None:
        self._clock = clock
        self._users = users
        self._blocks = blocks

    async def request(self, uid: str, peer: str, text: str = "") -> Outcome:
        """``uid`` asks ``peer``; if ``peer`` had asked ``uid`` already, they are contacts.

        Raises:
            BadRequest: asking oneself.
            NotFound: no such user.
            TooLarge: too many requests waiting.
        """
        if uid == peer:
            msg = "you cannot ask yourself"
            raise BadRequest(msg)
        if not await self._users.active_uids({peer}):
            msg = f"user {peer!r} does not exist"
            raise NotFound(msg)
        blocked = bool(await self._blocks.blockers(uid, {peer}))
        if blocked:  # the blocker's request to uid is as if withdrawn; a contact already made stays one
            if await ContactRequest.exists(uid=peer, peer=uid, accepted=True):
                return Outcome(True, None)
        elif await ContactRequest.filter(uid=peer, peer=uid).update(accepted=True):
            return Outcome(True, peer)  # they had asked: contacts now
        if (asked := await ContactRequest.get_or_none(uid=uid, peer=peer)) is not None:
            return Outcome(asked.accepted, None)  # asked before: nothing new
        if await ContactRequest.filter(uid=uid, accepted=False).count() >= MAX_PENDING:
            msg = f"at most {MAX_PENDING} requests waiting for an answer"
            raise TooLarge(msg)
        try:
            await ContactRequest.create(uid=uid, peer=peer, text=text, ts=self._clock.now_ms())
        except IntegrityError:  # asked concurrently (another device)
            return Outcome(False, None)
        return Outcome(False, None if blocked else peer)

    async def accept(self, uid: str, requester: str) -> Outcome:
        """``uid`` accepts ``requester``'s request (accepting a contact already made changes nothing).

        Raises:
            NotFound: no such request, or one ``uid`` does not see: either of the two blocks the
                other (the requester's block makes its request as if withdrawn).
        """
        row = await ContactRequest.get_or_none(uid=requester, peer=uid)
        blocked = row is not None and bool(await self._blocks.related(uid, {requester}))
        if row is not None and row.accepted:
            return Outcome(True, None if blocked else requester)
        if row is None or blocked or not await ContactRequest.filter(uid=requester, peer=uid).update(accepted=True):
            msg = f"no contact request from {requester!r}"
            raise NotFound(msg)
        return Outcome(True, requester)

    async def decline(self, uid: str, other: str) -> None:
        """``uid`` declines ``other``'s request, withdraws its own, or ends the contact (idempotent)."""
        await ContactRequest.filter(Q(uid=other, peer=uid) | Q(uid=uid, peer=other)).delete()

    async def list(self, uid: str) -> ContactList:
        rows = await ContactRequest.filter(Q(uid=uid) | Q(peer=uid)).order_by("ts")
        hidden = await self._blocks.related(uid, {r.uid for r in rows if r.peer == uid and not r.accepted})
        contacts = sorted({r.peer if r.uid == uid else r.uid for r in rows if r.accepted})
        incoming = [(r.uid, r.text, r.ts) for r in rows if r.peer == uid and not r.accepted and r.uid not in hidden]
        outgoing = [r.peer for r in rows if r.uid == uid and not r.accepted]
        return ContactList(contacts, incoming, outgoing)

    @staticmethod
    def contacts_sql(pairs: set[tuple[str, str]]) -> Program[set[tuple[str, str]]]:
        """Which (a, b) of ``pairs`` are contacts, in the caller's transaction (a batch of sends)."""
        if not pairs:
            return set()
        people = AnyOf(sorted({u for p in pairs for u in p}))
        rows = yield Query("SELECT uid, peer FROM contact_requests WHERE accepted = ? AND uid = ANY(?) AND peer = ANY(?)",
                           [True, people, people])
        both = {(r[0], r[1]) for r in rows} | {(r[1], r[0]) for r in rows}
        return both & pairs

    # ---- privacy (services/privacy) ------------------------------------------------------------
    @staticmethod
    async def export_user(uid: str) -> builtins.list[dict[str, object]]:
        """The user's contact requests, made and received (accepted: contacts), as archive records."""
        rows = await ContactRequest.filter(Q(uid=uid) | Q(peer=uid)).order_by("id")
        return [{"from": r.uid, "to": r.peer, "accepted": r.accepted, "text": r.text, "ts": r.ts} for r in rows]

    @staticmethod
    async def erase_user(uid: str) -> int:
        """Delete the user's contact requests and contacts, both ways."""
        return int(await ContactRequest.filter(Q(uid=uid) | Q(peer=uid)).delete())
