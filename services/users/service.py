"""UserService: users, device tokens, authentication and revocation."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from broker.auth import AuthChange, AuthFailure, Identity
from services.callbacks.outbox import CallbackOutbox, Entry
from services.db import portable_sql
from services.errors import BadRequest, Conflict, Forbidden, NotFound
from services.ids import DEVICE_RE, ENCODINGS, UID_RE, Clock
from services.sql import AnyOf, Program, Query, run_on
from services.transactions import transaction
from services.users.bots import KINDS, MAX_BOTS, BotDirectory, BotLimits
from services.users.models import AuthEvent, DeviceToken, User

log = logging.getLogger(__name__)

_TOKEN_PREFIX = "imt_"
# One round trip per CONNECT: the token and its user's state together.
_AUTH_SQL = (
    "SELECT t.id, t.uid, t.device, t.platform, t.expires_at, t.revoked_at, t.encoding, t.last_used_at, u.disabled, "
    "u.kind, u.messages_per_s, u.messages_burst "
    "FROM device_tokens t LEFT JOIN users u ON u.uid = t.uid WHERE t.token_hash = ?"
)
USED_EVERY_MS = 60_000  # a token's last_used_at is written at most once a minute
_USE_BATCH = 500  # tokens per UPDATE
_USE_PENDING_MAX = 100_000  # noted and not yet written; past it, "last used" is dropped (best effort)
MAX_PAGE = 1000  # users per page of list_users


def _check_limits(limits: BotLimits) -> None:
    if limits.messages_per_s is not None and not 0 < limits.messages_per_s <= 100_000:
        msg = "messages_per_s must be above 0 and at most 100000"
        raise BadRequest(msg)
    if limits.messages_burst is not None and not 1 <= limits.messages_burst <= 100_000:
        msg = "messages_burst must be 1-100000"
        raise BadRequest(msg)


def hash_token(token: str) -> str:
    """SHA-256 of a token. Tokens carry 256 random bits, so a fast hash is the right one:
    there is nothing to brute-force, and it keeps connects off a slow KDF."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    token_id: int
    uid: str
    device: str
    platform: str
    expires_at: int | None
    encoding: str = "json"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token's record, never its secret."""

    id: int
    device: str
    platform: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None
    encoding: str = "json"
    last_used_at: int | None = None  # the last login with it, to the minute (None: never used)


@dataclass(frozen=True, slots=True)
class UserInfo:
    uid: str
    name: str
    disabled: bool
    created_at: int
    kind: str = "user"  # "user" or "bot" (services/users/bots.py)
    messages_per_s: float | None = None  # a bot's own message bucket (None: the default)
    messages_burst: int | None = None

    @classmethod
    def of(cls, u: User) -> UserInfo:
        return cls(u.uid, u.name, u.disabled, u.created_at, u.kind, u.messages_per_s, u.messages_burst)


@dataclass(frozen=True, slots=True)
class UserPage:
    """A page of users in uid order; ``next``: the ``after`` of the next page (None: the last)."""

    items: list[UserInfo]
    next: str | None


class UserService:
    """Users and device tokens. Used by the CLI, the broker's authenticator and the bridge."""

    def __init__(self, clock: Clock, outbox: CallbackOutbox | None = None) -> None:
        """``outbox``: the callbacks' outbox (the ``user`` events)."""
        self._clock = clock
        self._outbox = outbox or CallbackOutbox()
        self._used: set[int] = set()  # tokens logged in with whose last_used_at is to be written
        self._used_noted = asyncio.Event()
        self._used_written = asyncio.Event()  # nothing noted is waiting to be written
        self._used_written.set()
        self.bots = BotDirectory()  # the bots this process knows (the message path's sender kinds)

    # ---- users -------------------------------------------------------------------------
    async def add_user(self, uid: str, name: str = "", *, kind: str = "user",
                       limits: BotLimits | None = None) -> UserInfo:
        """Create a user, or a bot (``kind="bot"``, with its own message bucket in ``limits``).

        Raises:
            BadRequest: the uid is not 1–64 chars of ``[A-Za-z0-9_-]``, the name is too long, the
                kind is unknown, or limits are given for a user or out of range.
            Conflict: the uid exists.
        """
        if not UID_RE.match(uid):
            msg = f"invalid uid {uid!r}: use 1-64 characters of A-Z a-z 0-9 _ -"
            raise BadRequest(msg)
        if len(name) > 128:
            msg = "name is longer than 128 characters"
            raise BadRequest(msg)
        if kind not in KINDS:
            msg = f"invalid kind {kind[:16]!r}: use {' or '.join(KINDS)}"
            raise BadRequest(msg)
        limits = limits or BotLimits()
        if kind != "bot" and limits != BotLimits():
            msg = "message limits are for bots"
            raise BadRequest(msg)
        _check_limits(limits)
        if kind == "bot" and len(self.bots) >= MAX_BOTS:
            msg = f"there are {MAX_BOTS} bots already"
            raise BadRequest(msg)
        now = self._clock.now_ms()
        try:
            async with transaction() as conn:
                user = await User.create(uid=uid, name=name, created_at=now, kind=kind,
                                         messages_per_s=limits.messages_per_s, messages_burst=limits.messages_burst,
                                         using_db=conn)
                await self._user_event(conn, uid, "created", now, name=name, kind=kind)
        except IntegrityError as exc:
            msg = f"user {uid!r} already exists"
            raise Conflict(msg) from exc
        if kind == "bot":
            self.bots.note(uid, limits)
        return UserInfo.of(user)

    async def get_user(self, uid: str) -> UserInfo:
        user = await User.get_or_none(uid=uid)
        if user is None:
            msg = f"user {uid!r} does not exist"
            raise NotFound(msg)
        return UserInfo.of(user)

    async def get_bot(self, uid: str) -> UserInfo:
        """The bot ``uid``.

        Raises:
            NotFound: no such bot (a user of kind ``user`` is not one).
        """
        user = await User.get_or_none(uid=uid, kind="bot")
        if user is None:
            msg = f"bot {uid!r} does not exist"
            raise NotFound(msg)
        self.bots.note(uid, BotLimits(user.messages_per_s, user.messages_burst))
        return UserInfo.of(user)

    async def set_bot_limits(self, uid: str, limits: BotLimits) -> UserInfo:
        """Set a bot's own message bucket (None fields: the default). Other processes apply it
        at their next refresh of the bots (``follow_bots``).

        Raises:
            BadRequest: out of range. NotFound: no such bot.
        """
        _check_limits(limits)
        if not await User.filter(uid=uid, kind="bot").update(messages_per_s=limits.messages_per_s,
                                                              messages_burst=limits.messages_burst):
            msg = f"bot {uid!r} does not exist"
            raise NotFound(msg)
        self.bots.note(uid, limits)
        return await self.get_bot(uid)

    async def refresh_bots(self) -> int:
        """Read every bot's limits into ``bots`` (one query on the kind index). Returns how many."""
        rows = await User.filter(kind="bot").order_by("uid").limit(MAX_BOTS) \
            .values_list("uid", "messages_per_s", "messages_burst")
        self.bots.replace({str(u): BotLimits(r, b) for u, r, b in rows})
        return len(rows)

    async def follow_bots(self, interval_s: float) -> None:
        """``refresh_bots`` every ``interval_s``, until cancelled (a task of every process that
        handles messages, after a first refresh: new bots of other processes, changed limits)."""
        while True:
            await asyncio.sleep(interval_s)  # a polling interval, not synchronisation
            try:
                await self.refresh_bots()
            except Exception:  # the database is away: the next pass retries
                log.warning("reading the bots failed; retrying", exc_info=True)

    async def list_users(self, *, disabled: bool | None = None, after: str | None = None,
                         limit: int = 100, prefix: str | None = None, kind: str | None = None) -> UserPage:
        """Users in uid order, ``limit`` (1-``MAX_PAGE``) at a time, from the first uid after
        ``after`` (the previous page's ``next``); ``disabled``: only the disabled (True) or the
        enabled (False) ones; ``prefix``: only the uids that start with it, in any case (the
        operator console's search; a scan of the users table on PostgreSQL).

        Raises:
            BadRequest: ``limit`` out of range, ``after`` not a uid, or ``prefix`` not the start of one.
        """
        if not 1 <= limit <= MAX_PAGE:
            msg = f"limit must be 1-{MAX_PAGE}, not {limit}"
            raise BadRequest(msg)
        if after is not None and not UID_RE.match(after):
            msg = "after must be a uid (the previous page's next)"
            raise BadRequest(msg)
        if prefix is not None and not UID_RE.match(prefix):
            msg = "prefix must be the start of a uid (1-64 of A-Z a-z 0-9 _ -)"
            raise BadRequest(msg)
        query = User.all()
        if prefix:
            query = query.filter(uid__istartswith=prefix)  # LIKE with _ and % escaped
        if disabled is not None:
            query = query.filter(disabled=disabled)
        if kind is not None:  # only the users (or the bots)
            query = query.filter(kind=kind)
        if after is not None:
            query = query.filter(uid__gt=after)
        rows = await query.order_by("uid").limit(limit + 1)
        items = [UserInfo.of(u) for u in rows[:limit]]
        return UserPage(items, items[-1].uid if len(rows) > limit else None)

    async def enable_user(self, uid: str) -> None:
        """Enable a disabled user again (their tokens that were not revoked work again; enabling an
        enabled user changes nothing).

        Raises:
            NotFound: no such user.
            Forbidden: an erased user (erasure is final).
        """
        async with transaction() as conn:
            if not await User.filter(uid=uid, erased_at=None).using_db(conn).update(disabled=False):
                await self.get_user(uid)
                msg = f"user {uid!r} was erased"
                raise Forbidden(msg)
            await self._user_event(conn, uid, "enabled", self._clock.now_ms())

    # ---- privacy (services/privacy: export and erasure) -----------------------------------
    async def erased_at(self, uid: str) -> int | None:
        """When the user was erased (None: not erased).

        Raises:
            NotFound: no such user.
        """
        user = await User.get_or_none(uid=uid)
        if user is None:
            msg = f"user {uid!r} does not exist"
            raise NotFound(msg)
        return cast("int | None", user.erased_at)

    async def export_devices(self, uid: str) -> list[dict[str, Any]]:
        """The user's device tokens as records of the export archive (never their hashes)."""
        return [{"kind": "token", **asdict(t)} for t in await self.list_tokens(uid)]

    async def erase(self, uid: str) -> int:
        """Erase the account (docs/privacy.md): the row stays, disabled, nameless and marked
        erased (the uid is never reused; others' history still names a sender); every device token
        is deleted, and a ``disable`` auth event makes every broker drop the user's connections; the
        first erasure is a ``user`` callback event (``erased``). Safe to run again. Returns the
        erasure time (ms; the first one's, when run again).

        Raises:
            NotFound: no such user.
        """
        now = self._clock.now_ms()
        async with transaction() as conn:
            first = await self.erased_at(uid)
            await User.filter(uid=uid).using_db(conn).update(disabled=True, name="", erased_at=first or now)
            await DeviceToken.filter(uid=uid).using_db(conn).delete()
            await AuthEvent.create(uid=uid, device=None, kind="disable", ts=now, using_db=conn)
            if first is None:
                await self._user_event(conn, uid, "erased", now)
        return first or now

    async def disable_user(self, uid: str) -> None:
        """Disable a user; every live connection of theirs is dropped by the broker.

        Raises:
            NotFound: no such user.
        """
        async with transaction() as conn:
            updated = await User.filter(uid=uid).using_db(conn).update(disabled=True)
            if not updated:
                msg = f"user {uid!r} does not exist"
                raise NotFound(msg)
            now = self._clock.now_ms()
            await AuthEvent.create(uid=uid, device=None, kind="disable", ts=now, using_db=conn)
            await self._user_event(conn, uid, "disabled", now)

    async def _user_event(self, conn: BaseDBAsyncClient, uid: str, event: str, now: int, **data: Any) -> None:
        """The ``user`` callback event of a change (in its transaction ``conn``; nothing when no
        endpoint takes it)."""
        if self._outbox.wants("user"):
            await self._outbox.record(conn, [Entry("user", f"user:{uid}", None, now,
                                                   {"uid": uid, "event": event, **data})], now)

    async def active_uids(self, uids: set[str]) -> set[str]:
        """The subset of ``uids`` that exist and are not disabled."""
        return await run_on(connections.get("default"), self.active_uids_sql(uids)) if uids else set()

    async def account_names(self, uids: set[str]) -> dict[str, str]:
        """The account names (``user add --name``; "" when none) of the active users among ``uids``."""
        if not uids:
            return {}
        rows = await User.filter(uid__in=sorted(uids), disabled=False).values_list("uid", "name")
        return {str(uid): str(name) for uid, name in rows}

    @staticmethod
    def active_uids_sql(uids: set[str]) -> Program[set[str]]:
        """``active_uids`` as a program (a caller's transaction reads it with its own statements)."""
        if not uids:
            return set()
        wanted = sorted(uids)
        rows = yield Query("SELECT uid FROM users WHERE uid = ANY(?) AND disabled = ?", [AnyOf(wanted), False])
        return {r[0] for r in rows}

    async def existing_uids(self, uids: list[str]) -> set[str]:
        """The subset of ``uids`` that exist (disabled or not)."""
        if not uids:
            return set()
        return set(cast("list[str]", await User.filter(uid__in=uids).values_list("uid", flat=True)))

    async def enabled_uids(self) -> list[str]:
        """Every user that is not disabled."""
        return cast("list[str]", list(await User.filter(disabled=False).values_list("uid", flat=True)))

    async def device_registered_at(self, uid: str, device: str) -> int | None:
        """When the device's first token was issued (None: not a registered device)."""
        first = await DeviceToken.filter(uid=uid, device=device).order_by("created_at").first()
        return first.created_at if first is not None else None

    # ---- tokens ------------------------------------------------------------------------
    async def issue_token(self, uid: str, device: str, platform: str = "", ttl_s: int | None = None,
                          encoding: str = "json") -> IssuedToken:
        """Issue a device token. The token is returned once; only its hash is stored.
        ``encoding``: the device's payloads (json, cbor or msgpack; protocol "Encodings").

        Raises:
            BadRequest: bad device id, platform, ttl or encoding.
            NotFound: no such user (or the user is disabled).
        """
        if not DEVICE_RE.match(device):
            msg = f"invalid device {device!r}: use 1-32 characters of A-Z a-z 0-9 _ -"
            raise BadRequest(msg)
        if len(platform) > 32:
            msg = "platform is longer than 32 characters"
            raise BadRequest(msg)
        if ttl_s is not None and ttl_s <= 0:
            msg = "ttl must be positive"
            raise BadRequest(msg)
        if encoding not in ENCODINGS:
            msg = f"invalid encoding {encoding[:32]!r}: use {', '.join(ENCODINGS)}"
            raise BadRequest(msg)
        user = await User.get_or_none(uid=uid)
        if user is None or user.disabled:
            msg = f"user {uid!r} does not exist" if user is None else f"user {uid!r} is disabled"
            raise NotFound(msg)
        token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self._clock.now_ms()
        expires_at = now + ttl_s * 1000 if ttl_s is not None else None
        row = await DeviceToken.create(
            uid=uid, device=device, platform=platform, token_hash=hash_token(token),
            created_at=now, expires_at=expires_at, encoding=encoding,
        )
        return IssuedToken(token, row.id, uid, device, platform, expires_at, encoding)

    async def list_tokens(self, uid: str) -> list[TokenInfo]:
        """The user's tokens, newest first.

        Raises:
            NotFound: no such user.
        """
        await self.get_user(uid)
        rows = await DeviceToken.filter(uid=uid).order_by("-id")
        return [TokenInfo(r.id, r.device, r.platform, r.created_at, r.expires_at, r.revoked_at, r.encoding,
                          r.last_used_at) for r in rows]

    async def revoke_tokens(self, uid: str, device: str | None = None) -> int:
        """Revoke the user's tokens (of one device, or all); live sessions are dropped.

        Returns:
            How many tokens were revoked.

        Raises:
            NotFound: no such user.
        """
        if not await User.exists(uid=uid):
            msg = f"user {uid!r} does not exist"
            raise NotFound(msg)
        now = self._clock.now_ms()
        query = DeviceToken.filter(uid=uid, revoked_at=None)
        if device is not None:
            query = query.filter(device=device)
        async with transaction() as conn:
            count = await query.using_db(conn).update(revoked_at=now)
            await AuthEvent.create(uid=uid, device=device, kind="revoke", ts=now, using_db=conn)
            await self._user_event(conn, uid, "tokens_revoked", now, device=device, count=count)
        return count

    async def authenticate(self, username: str | None, password: str | None, client_id: str | None,
                           user_properties: Sequence[tuple[str, str]] = ()) -> Identity | AuthFailure:
        """Check a CONNECT: the token must be live and belong to ``username``, and the client id
        must be ``{uid}:{device}`` for the token's device. The device's encoding is its token's,
        or the one its MQTT 5 CONNECT asks for in the User Property ``encoding``."""
        if not username or not password or not password.startswith(_TOKEN_PREFIX) or len(password) > 256:
            return AuthFailure.BAD_CREDENTIALS
        conn = connections.get("default")
        rows = await conn.execute_query_dict(portable_sql(conn, _AUTH_SQL), [hash_token(password)])
        if not rows or not hmac.compare_digest(rows[0]["uid"], username):
            return AuthFailure.BAD_CREDENTIALS
        row = rows[0]
        now = self._clock.now_ms()
        if row["revoked_at"] is not None or (row["expires_at"] is not None and row["expires_at"] <= now):
            return AuthFailure.BAD_CREDENTIALS
        if row["disabled"] is None or row["disabled"]:
            return AuthFailure.NOT_AUTHORIZED
        if client_id != f"{row['uid']}:{row['device']}":
            return AuthFailure.IDENTIFIER_REJECTED
        encoding = row["encoding"] or "json"
        asked = {value for key, value in user_properties if key == "encoding"}
        if asked:
            if len(asked) > 1 or not asked <= ENCODINGS.keys():
                return AuthFailure.BAD_FORMAT
            encoding = asked.pop()
        if row["kind"] == "bot":  # known from this login on (the message path asks no database)
            self.bots.note(row["uid"], BotLimits(row["messages_per_s"], row["messages_burst"]))
        if row["last_used_at"] is None or now - row["last_used_at"] >= USED_EVERY_MS:
            self._note_use(row["id"])
        return Identity(row["uid"], row["device"], row["platform"], row["id"], row["expires_at"],
                        ENCODINGS[encoding] if encoding != "json" else None)

    def _note_use(self, token_id: int) -> None:
        if len(self._used) < _USE_PENDING_MAX:
            self._used.add(token_id)
            self._used_noted.set()
            self._used_written.clear()

    async def record_token_use(self) -> None:
        """Write the noted logins' ``last_used_at``, until cancelled (a task of the process that
        authenticates). A login only notes its token (no IO: CONNECTs never wait for it), and only
        when the stored time is a minute old; this task writes what was noted meanwhile, in
        UPDATEs of ``_USE_BATCH`` tokens, one at a time, so a connect storm of N devices costs
        about N/500 statements, and a device reconnecting in a loop one a minute. Best effort: a
        write that fails is logged and dropped, and what is noted when the process stops is lost."""
        while True:
            await self._used_noted.wait()
            self._used_noted.clear()
            used, self._used = sorted(self._used), set()
            now = self._clock.now_ms()
            for i in range(0, len(used), _USE_BATCH):
                try:
                    await DeviceToken.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - USED_EVERY_MS),
                                             id__in=used[i:i + _USE_BATCH]).update(last_used_at=now)
                except Exception:
                    log.warning("writing the last use of %d token(s) failed", len(used[i:i + _USE_BATCH]),
                                exc_info=True)
            if not self._used:
                self._used_written.set()

    async def token_use_written(self) -> None:
        """Until every login noted so far has its ``last_used_at`` written (or its write failed)."""
        await self._used_written.wait()

    async def auth_changes_since(self, after_id: int, limit: int = 500) -> list[AuthChange]:
        """Revocations and disables logged after ``after_id``, oldest first."""
        rows = await AuthEvent.filter(id__gt=after_id).order_by("id").limit(limit)
        return [AuthChange(r.id, r.uid, r.device, r.kind, r.ts) for r in rows]

    async def expired_between(self, after_ms: int, until_ms: int, limit: int = 1000) -> list[tuple[str, str, int]]:
        """(uid, device, expires_at) of the unrevoked tokens that expired in (``after_ms``,
        ``until_ms``], oldest first: what an external broker's watcher disconnects (RabbitMQ asks
        for a login only once)."""
        rows = await DeviceToken.filter(expires_at__gt=after_ms, expires_at__lte=until_ms, revoked_at=None) \
            .order_by("expires_at").limit(limit).values_list("uid", "device", "expires_at")
        return [(str(u), str(d), int(e)) for u, d, e in rows]

    async def last_auth_change_id(self) -> int:
        row = await AuthEvent.all().order_by("-id").first()
        return row.id if row else 0
