"""Scheduled sends (docs/protocol.md, "Scheduled send"): a send with ``at`` is checked as a send is,
stored here, and at its time sent through ``MessageService.send`` (its seq, and the membership,
block and contacts rules, are those of that time).

The ``scheduled_sends`` table belongs to the message service, as the message each row becomes:
``(sender, cid)`` is unique here as in ``messages``, so scheduling the same cid again answers the
same schedule, and the delivery, a send with that cid, stores one message however many passes
(or processes) try it. A row goes pending -> sending (claimed by a pass) -> sent or failed, or
pending -> cancelled; a row is marked sent only once its message is stored, and only the pass
whose mark changed it tells the sender, so the sender is told once. A pass that dies with rows
claimed leaves them "sending": the next pass sends them again (the cid makes that a retry).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from services.attachments.service import refs
from services.conversations.service import ConversationService
from services.errors import BadRequest, Conflict, Forbidden, ImError, NotFound, TooLarge, Unavailable
from services.ids import Clock, new_ulid
from services.messages.commands import ATTACHMENT_TYPES, SendCommand, StoredMessage
from services.messages.models import Message, ScheduledSend
from services.sql import AnyOf, Program, Query, json_text, run_transaction
from services.users.service import UserService

if TYPE_CHECKING:
    from services.attachments.service import AttachmentService
    from services.messages.service import MessageService, SendResult

log = logging.getLogger("imgate.scheduled")

DAY_MS = 86_400_000
_CURSOR = re.compile(r"[0-9]{1,16}:[0-9A-HJKMNP-TV-Z]{26}")  # schedule.list's: an 'at' (ms) and an id
PENDING, SENDING, SENT, FAILED, CANCELLED = "pending", "sending", "sent", "failed", "cancelled"


@dataclass(frozen=True, slots=True)
class Schedule:
    """A scheduled send as its sender sees it."""

    id: str
    sender: str
    cid: str
    conv: str
    at: int
    created: int
    state: str
    command: dict[str, Any]  # to, group, type, text, data, mentions, reply_to, thread
    message_id: str | None = None
    error: dict[str, Any] | None = None

    @classmethod
    def from_row(cls, row: ScheduledSend) -> Schedule:
        return cls(row.id, row.sender, row.cid, row.conv, row.at, row.created, row.state, row.command,
                   row.message_id, row.error)

    def send_command(self) -> SendCommand:
        c = self.command
        return SendCommand(sender=self.sender, cid=self.cid, to=c.get("to"), group=c.get("group"), type=c["type"],
                           text=c.get("text"), data=c.get("data"), mentions=tuple(c.get("mentions") or ()),
                           reply_to=c.get("reply_to"), thread=c.get("thread"))


@dataclass(frozen=True, slots=True)
class Outcome:
    """A schedule this pass delivered (``message``) or that was refused at its time (``error``):
    its sender is told."""

    schedule: Schedule
    message: StoredMessage | None = None
    error: ImError | None = None


def _error(exc: ImError) -> dict[str, Any]:
    """A failed schedule's error as kept (and told): code, message, and a refusal's reason."""
    out: dict[str, Any] = {"code": exc.code.value, "message": exc.message}
    if exc.reason is not None:
        out["reason"] = exc.reason
    return out


class ScheduledSends:
    def __init__(self, clock: Clock, users: UserService, conversations: ConversationService,
                 messages: MessageService, attachments: AttachmentService, *, max_pending: int = 100,
                 max_days: int = 30, batch: int = 100) -> None:
        """``max_pending``: a user's pending scheduled sends; ``max_days``: how far ahead ``at``
        may be; ``batch``: due sends one pass takes."""
        self._clock = clock
        self._users = users
        self._conversations = conversations
        self._messages = messages
        self._attachments = attachments
        self.max_pending = max_pending
        self.max_days = max_days
        self.batch = batch
        self._purged_at = 0  # when _purge last ran (ms)
        # The operator's before_send callback (services.hooks.before), asked at the delivery
        # (set by the composition root where it is configured): the send as the operator lets it
        # through; its refusal (Refused) fails the schedule with the operator's reason.
        self.before: Callable[[SendCommand], Awaitable[SendCommand]] | None = None

    # ---- the sender's side --------------------------------------------------------------------
    async def schedule(self, cmd: SendCommand, at: int) -> tuple[Schedule | None, bool]:
        """Store ``cmd`` to be sent at ``at`` (ms). Returns the schedule and whether it is new; a
        schedule of the same ``(sender, cid)`` is answered as it was (whatever its state). ``None``:
        a message with this cid is stored already (the caller acks it as the retry of a send).

        The row is committed before this returns (the caller may ack it).

        Raises:
            BadRequest: ``at`` not in the future or beyond the horizon; the send's own shape
                (as a send); an attachment that is not the sender's upload.
            NotFound: an unknown or disabled recipient.
            Forbidden: not a member of the group.
            TooLarge: the sender has ``max_pending`` pending scheduled sends.
        """
        existing = await ScheduledSend.get_or_none(sender=cmd.sender, cid=cmd.cid)
        if existing is not None:
            return Schedule.from_row(existing), False
        if await Message.exists(sender=cmd.sender, cid=cmd.cid):
            return None, False
        now = self._clock.now_ms()
        if at <= now:
            msg = "at: must be in the future (ms since the epoch); send without 'at' to send now"
            raise BadRequest(msg)
        if at > now + self.max_days * DAY_MS:
            msg = f"at: at most {self.max_days} days ahead"
            raise BadRequest(msg)
        self._messages._validate(cmd)  # the send's own rules (the same package)
        if cmd.to is not None:
            if len(await self._users.active_uids({cmd.sender, cmd.to})) < len({cmd.sender, cmd.to}):
                msg = f"user {cmd.to!r} does not exist"
                raise NotFound(msg)
        elif not await self._conversations.is_current_member(cmd.conv, cmd.sender):
            msg = f"you are not a member of group {cmd.group!r}"  # as a send says it (§3)
            raise Forbidden(msg)
        files = refs(cmd.data) if cmd.type in ATTACHMENT_TYPES else []
        if files:
            await self._attachments.verify(cmd.sender, files)
        file_key = thumb_key = None
        if cmd.type in ATTACHMENT_TYPES and cmd.data is not None:
            file_key, thumb_key = cmd.data.get("key"), (cmd.data.get("thumbnail") or {}).get("key")
        schedule = Schedule(new_ulid(now), cmd.sender, cmd.cid, cmd.conv, at, now, PENDING, cmd.content())
        try:
            await run_transaction(self._insert_sql(schedule, file_key, thumb_key))
        except IntegrityError:  # the same cid, scheduled meanwhile (another lane or bridge)
            return Schedule.from_row(await ScheduledSend.get(sender=cmd.sender, cid=cmd.cid)), False
        return schedule, True

    def _insert_sql(self, s: Schedule, file_key: str | None, thumb_key: str | None) -> Program[None]:
        """Count the sender's pending schedules and add one, in one transaction holding the
        sender's lock (SQLite: the write lock of BEGIN IMMEDIATE; PostgreSQL: an advisory lock
        on the sender), so the cap holds when sends of one user are scheduled at once (its
        conversations' lanes run side by side)."""
        yield Query("SELECT ?", [f"imgate.scheduled:{s.sender}"],
                    postgres="SELECT pg_advisory_xact_lock(hashtext(?))")
        count = yield Query("SELECT COUNT(*) FROM scheduled_sends WHERE sender = ? AND state = ANY(?)",
                            [s.sender, AnyOf([PENDING, SENDING])])
        if int(count[0][0]) >= self.max_pending:
            msg = f"at most {self.max_pending} scheduled messages: cancel one first"
            raise TooLarge(msg)
        yield Query("INSERT INTO scheduled_sends (id, sender, cid, conv, at, command, created, state, file_key, "
                    "thumb_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [s.id, s.sender, s.cid, s.conv, s.at, json_text(s.command), s.created, s.state, file_key,
                     thumb_key])

    async def pending(self, uid: str, *, cursor: str | None, limit: int) -> tuple[list[Schedule], str | None]:
        """``uid``'s pending scheduled sends, soonest first, a page after ``cursor`` (the previous
        page's ``next_cursor``: ``"{at}:{id}"``).

        Raises:
            BadRequest: a cursor this did not make.
        """
        query = ScheduledSend.filter(sender=uid, state=PENDING)
        if cursor is not None:
            at_text, _, after = cursor.partition(":")
            if not _CURSOR.fullmatch(cursor):  # (str.isdigit takes "²", which int() refuses)
                msg = "cursor: not a cursor of schedule.list"
                raise BadRequest(msg)
            at = int(at_text)
            query = query.filter(Q(at__gt=at) | Q(at=at, id__gt=after))
        rows = await query.order_by("at", "id").limit(limit + 1)
        page = [Schedule.from_row(r) for r in rows[:limit]]
        return page, f"{page[-1].at}:{page[-1].id}" if len(rows) > limit else None

    async def cancel(self, uid: str, schedule_id: str) -> Schedule:
        """Cancel ``uid``'s pending scheduled send.

        Raises:
            NotFound: no pending schedule ``schedule_id`` of ``uid``'s (unknown, another user's,
                sent, failed or cancelled already).
            Conflict: it is being sent now.
        """
        now = self._clock.now_ms()
        changed = await ScheduledSend.filter(id=schedule_id, sender=uid, state=PENDING).update(state=CANCELLED,
                                                                                              done_at=now)
        row = await ScheduledSend.get_or_none(id=schedule_id, sender=uid)
        if row is None or (not changed and row.state != SENDING):
            msg = f"no scheduled message {schedule_id!r}"
            raise NotFound(msg)
        if not changed:
            msg = "it is being sent now"
            raise Conflict(msg)
        return Schedule.from_row(row)

    # ---- the delivery ------------------------------------------------------------------------
    async def next_due(self) -> int | None:
        """When the soonest pending send is due (ms), if any."""
        row = await ScheduledSend.filter(state__in=[PENDING, SENDING]).order_by("at").first()
        return row.at if row is not None else None

    async def deliver_due(self, deliver: Callable[[list[SendResult]], Awaitable[None]]) -> list[Outcome]:
        """One pass: send the due scheduled sends (at most ``batch``). ``deliver`` publishes the
        messages this pass stored, before their rows are marked sent (a pass that dies between
        the two sends them again as retries: stored once, delivered once). Returns what to tell
        the senders: only the schedules whose mark this pass made."""
        now = self._clock.now_ms()
        rows = await ScheduledSend.filter(state__in=[PENDING, SENDING], at__lte=now).order_by("at", "id") \
            .limit(self.batch)
        if not rows:
            await self._purge(now)
            return []
        ids = [r.id for r in rows]
        await ScheduledSend.filter(id__in=[r.id for r in rows if r.state == PENDING], state=PENDING) \
            .update(state=SENDING)
        claimed = [Schedule.from_row(r) for r in await ScheduledSend.filter(id__in=ids, state=SENDING)
                   .order_by("at", "id")]  # cancelled meanwhile: not sent
        if not claimed:
            return []
        active = await self._users.active_uids({s.sender for s in claimed})
        results = await asyncio.gather(*(self._send(s, active) for s in claimed), return_exceptions=True)
        stored = [r for r in results if not isinstance(r, BaseException) and r.created]
        if stored:
            await deliver(stored)
        outcomes: list[Outcome] = []
        done = self._clock.now_ms()
        for s, result in zip(claimed, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, ImError) and not isinstance(result, Unavailable):
                    if await ScheduledSend.filter(id=s.id, state=SENDING).update(
                            state=FAILED, done_at=done, error=_error(result)):
                        outcomes.append(Outcome(s, error=result))
                elif not isinstance(result, Exception):
                    raise result  # cancelled: the rows stay "sending" and the next pass retries them
                else:  # the database or the committer is away: the next pass retries (as a retry)
                    log.warning("scheduled send %s not sent yet: %s", s.id, result)
                continue
            if await ScheduledSend.filter(id=s.id, state=SENDING).update(state=SENT, done_at=done,
                                                                          message_id=result.message.id):
                outcomes.append(Outcome(s, message=result.message))
        return outcomes

    async def _send(self, s: Schedule, active: set[str]) -> SendResult:
        if s.sender not in active:
            msg = "your account is disabled"
            raise Forbidden(msg)
        cmd = s.send_command()
        if self.before is not None and not await self._messages.is_stored(cmd.sender, cmd.cid):
            cmd = await self.before(cmd)  # not asked again for a retried delivery
        return await self._messages.send(cmd)

    async def _purge(self, now: int) -> None:
        """Forget sent, failed and cancelled schedules once a horizon has passed (a retry of
        their cid is then answered by the stored message, or scheduled anew): a batch at most
        once a minute."""
        if now - self._purged_at < 60_000:
            return
        self._purged_at = now
        old = await ScheduledSend.filter(state__in=[SENT, FAILED, CANCELLED], done_at__lt=now - self.max_days * DAY_MS) \
            .limit(self.batch).values_list("id", flat=True)
        if old:
            await ScheduledSend.filter(id__in=list(old)).delete()

    async def run(self, step: Callable[[], Awaitable[int]], interval_s: float) -> None:
        """Run ``step`` (a pass, leased) forever: again at once after a full batch, else after
        ``interval_s`` or at the next due time, whichever is sooner (no busy loop: a row due
        now that fails to send is retried after ``interval_s``)."""
        down = False
        while True:
            try:
                if await step() >= self.batch:
                    continue
                due = await self.next_due()
                if down:
                    log.warning("scheduled sends: back to normal")
                    down = False
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away: said once, retried every interval
                if not down:
                    log.exception("scheduled sends: a pass failed; retrying every %.1f s", interval_s)
                down = True
                due = None
            wait = interval_s
            ahead = (due - self._clock.now_ms()) / 1000 if due is not None else interval_s
            if 0 < ahead < interval_s:  # (one due already is one this pass could not send: retried later)
                wait = max(0.05, ahead)
            await asyncio.sleep(wait)  # a polling interval for due rows, not synchronisation

    # ---- privacy (services/privacy) -------------------------------------------------------------
    async def erase_sender(self, uid: str) -> int:
        """Delete every scheduled send of ``uid``'s, pending or done (a pending one is never sent:
        the account is disabled first, so one being sent now is refused); their uploads are
        released. Returns how many were pending."""
        rows = await ScheduledSend.filter(sender=uid).values_list("state", "file_key", "thumb_key")
        await ScheduledSend.filter(sender=uid).delete()
        await self._attachments.release([k for _, *keys in rows for k in keys if k])
        return sum(1 for state, *_ in rows if state in (PENDING, SENDING))

    # ---- attachments.Referrer ------------------------------------------------------------------
    async def referenced_keys(self, keys: list[str]) -> set[str]:
        """Uploads a pending scheduled send will use: not swept as unused meanwhile."""
        rows = await ScheduledSend.filter(Q(file_key__in=keys) | Q(thumb_key__in=keys),
                                          state__in=[PENDING, SENDING]).values_list("file_key", "thumb_key")
        wanted = set(keys)
        return {k for r in rows for k in r if k in wanted}

    async def readable_keys(self, uid: str, keys: list[str]) -> set[str]:
        """Nothing more than its own uploads, which the sender reads anyway."""
        return set()
