"""ConversationService: the owner of the ``conversations`` and ``members`` tables: membership
and its visibility windows, each conversation's sequence counter, the conversation list, read
markers and unread counts. Other services ask it and get dataclasses back.

Two kinds of callers change these tables inside their own transaction (a message and its seq,
a group change and its ``member`` event): they pass the transaction's connection to
``lock`` / ``commit_seqs`` (the one sequence allocator) and the member writes below.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import cast

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q, Subquery

from services.conversations.models import Conversation, Member, Mention
from services.conversations.window import Window
from services.db import portable_sql
from services.errors import BadRequest, NotFound
from services.sql import AnyOf, Many, Program, Query, fetch, json_text, json_value, run_on

ROLES = ("owner", "admin", "member")
ALL = "@all"  # a mention of every member of a group (uids cannot contain "@")
MENTION_ALL = ("admins", "members")  # a group's setting: who may mention @all
PIN = ("members", "admins")  # a group's setting: who may pin messages (the first is the default)


@dataclass(frozen=True, slots=True)
class Membership:
    """A user's membership of one conversation (current, or former for a group it left)."""

    conv: str
    uid: str
    role: str
    joined_seq: int
    left_seq: int | None
    read_seq: int
    muted: bool
    pinned: bool

    @property
    def current(self) -> bool:
        return self.left_seq is None

    @property
    def window(self) -> Window:
        return Window(self.conv, self.joined_seq, self.left_seq)

    @classmethod
    def of(cls, m: Member) -> Membership:
        return cls(m.conv_id, m.uid, m.role, m.joined_seq, m.left_seq, m.read_seq, m.muted,  # type: ignore[attr-defined]
                   m.pinned)


@dataclass(frozen=True, slots=True)
class Recipient:
    """A current member, as push sees it."""

    uid: str
    muted: bool
    after: int = 0  # its window starts after this seq (it joined then): earlier messages are not its


@dataclass(slots=True)
class Locked:
    """Conversations locked for the caller's transaction (row locks on PostgreSQL; SQLite's
    write lock): their sequence counters and current members. ``next_seq`` numbers messages in
    the order it is called; ``ConversationService.commit_seqs`` writes the counters back."""

    last: dict[str, int]
    members: dict[str, dict[str, str]]  # conv -> {uid: role}, current members only
    kinds: dict[str, str]
    latest: dict[str, tuple[int, str, int]] = field(default_factory=dict)  # conv -> (seq, msg id, ts)
    ttls: dict[str, int] = field(default_factory=dict)  # conv -> its ttl (s), for those that have one

    def exists(self, conv: str) -> bool:
        return conv in self.last

    def members_of(self, conv: str) -> dict[str, str]:
        return self.members.get(conv, {})

    def next_seq(self, conv: str, msg_id: str, ts: int) -> int:
        seq = self.last[conv] + 1
        self.last[conv] = seq
        self.latest[conv] = (seq, msg_id, ts)
        return seq


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    conv: str
    kind: str
    peer: str | None
    last_seq: int
    read_seq: int
    last_msg_id: str | None
    last_ts: int
    name: str = ""
    muted: bool = False
    pinned: bool = False
    peer_read_seq: int | None = None  # a 1:1's: how far the other one has read (its receipts, after a reload)
    unread_mentions: int = 0  # unread messages that mention the member (by uid or @all)
    ttl: int | None = None  # disappearing messages: the conversation's ttl (s), if set

    @property
    def unread(self) -> int:
        return max(0, self.last_seq - self.read_seq)


@dataclass(frozen=True, slots=True)
class MentionRules:
    """A group's @all rules as a send reads them under the conversation's lock."""

    mention_all: str  # "admins" or "members"
    recent: tuple[int, ...]  # the times (ms) of its latest @all mentions, oldest first


@dataclass(frozen=True, slots=True)
class ReadResult:
    conv: str
    read_seq: int
    last_seq: int
    members: tuple[str, ...]  # the current members whose window holds read_seq (its receipt's audience)
    advanced: bool
    size: int  # the conversation's current members

    @property
    def unread(self) -> int:
        return max(0, self.last_seq - self.read_seq)


@dataclass(frozen=True, slots=True)
class ReadBy:
    """One page of who has read a message and who has not, in uid order, and how many there are
    of each in all (the whole list, not the page)."""

    read: tuple[str, ...]
    unread: tuple[str, ...]
    next_cursor: str | None  # the page's last uid; None on the last page
    read_count: int
    unread_count: int


def peer_of(conv: str, uid: str) -> str | None:
    """The other member of a 1:1 conversation (``d:a:b``), or None for groups."""
    if not conv.startswith("d:"):
        return None
    a, _, b = conv[2:].partition(":")
    return b if a == uid else a


def _encode_cursor(last_ts: int, conv: str) -> str:
    return f"{last_ts}|{conv}"


def _decode_cursor(cursor: str) -> tuple[int, str]:
    ts, sep, conv = cursor.partition("|")
    if not sep or not (ts.isascii() and ts.isdigit()) or len(ts) > 16 or not conv:  # within SQL's BIGINT
        msg = "invalid cursor"
        raise BadRequest(msg)
    return int(ts), conv


class ConversationService:
    """Conversations and members."""

    def __init__(self, known_max: int = 100_000) -> None:
        # 1:1 conversations never change members: once one is known to exist, it always will.
        self._known: OrderedDict[str, None] = OrderedDict()
        self._known_max = known_max

    async def ensure_direct(self, conv: str, members: set[str], now_ms: int) -> None:
        """Create the 1:1 conversation and its members if missing (idempotent, race-safe)."""
        if not self.direct_known(conv):
            await run_on(connections.get("default"), self.ensure_direct_sql(conv, members, now_ms))
            self.remember_direct([conv])

    def direct_known(self, conv: str) -> bool:
        """The 1:1 conversation is known to exist (``ensure_direct_sql`` is not needed)."""
        if conv in self._known:
            self._known.move_to_end(conv)
            return True
        return False

    def remember_direct(self, convs: Iterable[str]) -> None:
        """These 1:1 conversations exist (their ``ensure_direct_sql`` has committed)."""
        for conv in convs:
            self._known[conv] = None
        while len(self._known) > self._known_max:
            self._known.popitem(last=False)

    @staticmethod
    def ensure_direct_sql(conv: str, members: set[str], now_ms: int) -> Program[None]:
        """Create the 1:1 conversation and its members if missing, in the caller's transaction
        (idempotent and race-safe: an existing row is left as it is)."""
        yield Query("INSERT INTO conversations (id, kind, last_seq, last_ts, created_at, name) "
                    "VALUES (?, 'direct', 0, 0, ?, '') ON CONFLICT DO NOTHING", [conv, now_ms])
        yield Many("INSERT INTO members (conv_id, uid, read_seq, joined_seq, role, muted, pinned) "
                   "VALUES (?, ?, 0, 0, 'member', ?, ?) ON CONFLICT DO NOTHING",
                   [(conv, uid, False, False) for uid in sorted(members)])

    async def members(self, conv: str) -> list[str]:
        """Current members (former group members excluded)."""
        return cast("list[str]", list(await Member.filter(conv_id=conv, left_seq=None).values_list("uid", flat=True)))

    async def audience(self, conv: str, seq: int) -> tuple[str, ...]:
        """The current members whose window holds ``seq``: who is told of a change to that message
        (an edit, a reaction, a recall), so a member added later learns nothing of what came before."""
        return self._seeing(await self._current(conv), seq)

    async def audiences(self, conv: str, seqs: list[int]) -> dict[int, tuple[str, ...]]:
        """``audience`` of several messages of one conversation, by seq (one query)."""
        current = await self._current(conv)
        return {seq: self._seeing(current, seq) for seq in seqs}

    @staticmethod
    async def _current(conv: str) -> list[Membership]:
        return [Membership.of(m) for m in await Member.filter(conv_id=conv, left_seq=None)]

    @staticmethod
    def _seeing(members: list[Membership], seq: int) -> tuple[str, ...]:
        return tuple(m.uid for m in members if m.window.contains(seq))

    @staticmethod
    async def read_by(conv: str, seq: int, *, leave_out: Iterable[str], after: str | None, limit: int) -> ReadBy:
        """Who of the members whose window holds ``seq`` (current ones, and former ones who left
        at or after it) has read it (``read_seq >= seq``) and who has not, but ``leave_out``: a
        page of at most ``limit`` members in uid order after the uid ``after``, and the totals.
        Two queries on the (conv_id, uid) index, whatever the group's size; read markers keep no
        time, so there is none per reader."""
        where = "conv_id = ? AND joined_seq < ? AND (left_seq IS NULL OR left_seq >= ?) AND NOT (uid = ANY(?))"
        args: list[object] = [conv, seq, seq, AnyOf(sorted(set(leave_out)))]
        page = await fetch(f"SELECT uid, read_seq FROM members WHERE {where}{' AND uid > ?' if after else ''} "
                           "ORDER BY uid LIMIT ?", [*args, *([after] if after else []), limit + 1])
        totals = await fetch("SELECT COUNT(*), COALESCE(SUM(CASE WHEN read_seq >= ? THEN 1 ELSE 0 END), 0) "
                             f"FROM members WHERE {where}", [seq, *args])
        count, read = int(totals[0][0]), int(totals[0][1])
        rows = page[:limit]
        return ReadBy(read=tuple(str(u) for u, r in rows if r >= seq), unread=tuple(str(u) for u, r in rows if r < seq),
                      next_cursor=str(rows[-1][0]) if len(page) > limit else None, read_count=read,
                      unread_count=count - read)

    async def direct_peers(self, uid: str) -> list[str]:
        """The users ``uid`` has a 1:1 conversation with (its contacts), sorted."""
        convs = await Member.filter(uid=uid, conv_id__startswith="d:").values_list("conv_id", flat=True)
        peers = {p for conv in cast("list[str]", convs) for p in conv.split(":")[1:] if p != uid}
        return sorted(peers)

    async def membership(self, conv: str, uid: str) -> Membership:
        """The caller's membership (current, or former: a former group member still reads up to
        its removal).

        Raises:
            NotFound: the conversation does not exist or the caller is not a member (the two are
                not told apart, so conversation ids do not leak).
        """
        member = await Member.get_or_none(conv_id=conv, uid=uid)
        if member is None:
            msg = f"conversation {conv!r} not found"
            raise NotFound(msg)
        return Membership.of(member)

    async def windows(self, uid: str, conv: str | None = None) -> list[Window]:
        """What ``uid`` may see, per conversation (of one, or all of them)."""
        query = Member.filter(uid=uid)
        if conv is not None:
            query = query.filter(conv_id=conv)
        return [Membership.of(m).window for m in await query]

    @staticmethod
    async def windows_in(uid: str, convs: Iterable[str]) -> list[Window]:
        """``windows`` of these conversations only (one query on the members' key)."""
        wanted = sorted(set(convs))
        return [Membership.of(m).window for m in await Member.filter(uid=uid, conv_id__in=wanted)] if wanted else []

    @staticmethod
    def _gone(conv: str) -> NotFound:
        return NotFound(f"conversation {conv!r} not found")

    def _require_current(self, member: Membership) -> None:
        if not member.current:  # a former group member learns nothing more of it
            raise self._gone(member.conv)

    async def mark_read(self, member: Membership, seq: int) -> ReadResult:
        """Move the read marker forward (never backward), capped at the last seq.

        Raises:
            BadRequest: seq is negative.
            NotFound: not a current member.
        """
        if seq < 0:
            msg = "seq must be >= 0"
            raise BadRequest(msg)
        self._require_current(member)
        conv = member.conv
        row = await Conversation.get(id=conv)
        target = min(seq, row.last_seq)
        mine = Member.filter(conv_id=conv, uid=member.uid, left_seq=None)  # (removed meanwhile: no row)
        advanced = bool(await mine.filter(read_seq__lt=target).update(read_seq=target))
        read_seq = target
        if not advanced:  # at or past target already (maybe moved since ``member`` was read), or removed
            now = await mine.first().values_list("read_seq", flat=True)
            if now is None:
                raise self._gone(conv)
            read_seq = max(target, cast("int", now))
        current = await self._current(conv)
        return ReadResult(conv, read_seq, row.last_seq, self._seeing(current, read_seq), advanced, len(current))

    async def set_flags(self, member: Membership, *, muted: bool | None, pinned: bool | None) -> tuple[bool, bool]:
        """Mute or pin a conversation for its member; returns (muted, pinned).

        Raises:
            NotFound: not a current member.
        """
        self._require_current(member)
        changes = {k: v for k, v in (("muted", muted), ("pinned", pinned)) if v is not None}
        if changes and not await Member.filter(conv_id=member.conv, uid=member.uid, left_seq=None).update(**changes):
            raise self._gone(member.conv)  # removed since ``member`` was read
        return changes.get("muted", member.muted), changes.get("pinned", member.pinned)

    async def is_current_member(self, conv: str, uid: str) -> bool:
        return await Member.exists(conv_id=conv, uid=uid, left_seq=None)

    async def recipients(self, convs: Iterable[str]) -> dict[str, list[Recipient]]:
        """The current members of each conversation, with their mute flag and where their window
        starts (for push)."""
        out: dict[str, list[Recipient]] = {}
        wanted = list(set(convs))
        if wanted:
            for conv, uid, muted, joined in await Member.filter(conv_id__in=wanted, left_seq=None).values_list(
                    "conv_id", "uid", "muted", "joined_seq"):
                out.setdefault(conv, []).append(Recipient(uid, muted, joined))
        return out

    @staticmethod
    async def unread_total(uid: str) -> int:
        """The user's unread messages over all its current conversations (an APNs badge)."""
        conn = connections.get("default")
        rows = await conn.execute_query_dict(portable_sql(
            conn, "SELECT COALESCE(SUM(c.last_seq - m.read_seq), 0) AS unread FROM members m "
                  "JOIN conversations c ON c.id = m.conv_id WHERE m.uid = ? AND m.left_seq IS NULL"), [uid])
        return int(rows[0]["unread"] or 0)

    async def group(self, conv: str) -> tuple[str, str | None, dict[str, str], str, str] | None:
        """A group's name, owner, current members with their roles, who may mention @all and who
        may pin messages (None: no such group)."""
        row = await Conversation.get_or_none(id=conv, kind="group")
        if row is None:
            return None
        members = dict(await Member.filter(conv_id=conv, left_seq=None).values_list("uid", "role"))
        return row.name, row.owner, members, row.mention_all or "admins", row.pin or PIN[0]

    async def groups(self, *, after: str | None = None, limit: int = 100,
                     member: str | None = None) -> list[tuple[str, str, str | None, int]]:
        """Groups in id order after ``after``, at most ``limit``: (conv, name, owner, current
        member count); ``member``: only the groups ``member`` is in now."""
        query = Conversation.filter(kind="group")
        if after is not None:
            query = query.filter(id__gt=after)
        if member is not None:
            query = query.filter(id__in=Subquery(Member.filter(uid=member, left_seq=None).values("conv_id")))
        rows = await query.order_by("id").limit(limit).values_list("id", "name", "owner")
        ids = [str(r[0]) for r in rows]
        counts: dict[str, int] = {}
        if ids:
            from tortoise.functions import Count

            counted = await Member.filter(conv_id__in=ids, left_seq=None).annotate(n=Count("id")) \
                .group_by("conv_id").values_list("conv_id", "n")
            counts = {str(c): int(n) for c, n in counted}
        return [(str(i), str(name), owner, counts.get(str(i), 0)) for i, name, owner in rows]

    # ---- inside a caller's transaction: the sequence allocator -------------------------------
    @classmethod
    async def lock(cls, conn: BaseDBAsyncClient, convs: Iterable[str]) -> Locked:
        """Lock conversations for the transaction on ``conn`` (in id order, so two lockers never
        deadlock) and read their counters and current members. Sends and group changes both
        take their seqs here, so membership is ordered with the messages."""
        return await run_on(conn, cls.lock_sql(convs))

    @staticmethod
    def lock_sql(convs: Iterable[str]) -> Program[Locked]:
        """``lock`` as a program, for a caller's transaction program."""
        wanted = sorted(set(convs))
        if not wanted:
            return Locked({}, {}, {})
        # One statement: the counters (locked, in id order: no deadlock between two batches)
        # with their current members.
        rows = yield Query("SELECT conversations.id, conversations.kind, conversations.last_seq, members.uid, members.role, "
                           "conversations.ttl "
                           "FROM conversations LEFT JOIN members "
                           "ON members.conv_id = conversations.id AND members.left_seq IS NULL "
                           "WHERE conversations.id = ANY(?) ORDER BY conversations.id",
                           [AnyOf(wanted)], for_update="conversations")
        last: dict[str, int] = {}
        kinds: dict[str, str] = {}
        members: dict[str, dict[str, str]] = {}
        ttls: dict[str, int] = {}
        for conv, kind, last_seq, uid, role, ttl in rows:
            last[conv] = last_seq
            kinds[conv] = kind
            if uid is not None:
                members.setdefault(conv, {})[uid] = role
            if ttl:  # disappearing messages: read with the lock a send takes anyway (no statement more)
                ttls[conv] = ttl
        return Locked(last, members, kinds, ttls=ttls)

    @staticmethod
    def windows_sql(pairs: set[tuple[str, str]]) -> Program[dict[tuple[str, str], Window]]:
        """The windows of these (conv, uid) members, in the caller's transaction (a batch of sends
        with replies: the quoted message must be in the sender's window)."""
        if not pairs:
            return {}
        rows = yield Query("SELECT conv_id, uid, joined_seq, left_seq FROM members WHERE conv_id = ANY(?) AND uid = ANY(?)",
                           [AnyOf(sorted({c for c, _ in pairs})), AnyOf(sorted({u for _, u in pairs}))])
        return {(r[0], r[1]): Window(r[0], r[2], r[3]) for r in rows if (r[0], r[1]) in pairs}

    @classmethod
    async def commit_seqs(cls, conn: BaseDBAsyncClient, locked: Locked) -> None:
        """Write back the counters ``locked`` handed out (and each conversation's last message)."""
        await run_on(conn, cls.commit_seqs_sql(locked))

    @staticmethod
    def commit_seqs_sql(locked: Locked) -> Program[None]:
        if locked.latest:
            yield Many("UPDATE conversations SET last_seq = ?, last_ts = ?, last_msg_id = ? WHERE id = ?",
                       [(seq, ts, msg_id, conv) for conv, (seq, msg_id, ts) in locked.latest.items()])

    @staticmethod
    def mark_sent_read_sql(marks_: dict[tuple[str, str], int]) -> Program[None]:
        """Senders have read up to their own messages: own messages are never unread."""
        if marks_:
            yield Many("UPDATE members SET read_seq = ? WHERE conv_id = ? AND uid = ? AND read_seq < ?",
                       [(seq, conv, uid, seq) for (conv, uid), seq in marks_.items()])

    # ---- mentions (written with their message, counted by ``list_for``) -----------------------
    @staticmethod
    def mention_rules_sql(convs: set[str]) -> Program[dict[str, MentionRules]]:
        """The @all rules of these groups, in the caller's transaction (their rows are locked).
        Read only for a batch with an @all mention: a plain send reads nothing more."""
        rows = yield Query("SELECT id, mention_all, mention_all_recent FROM conversations WHERE id = ANY(?)",
                           [AnyOf(sorted(convs))])
        return {r[0]: MentionRules(r[1] or "admins", tuple(json_value(r[2]) or ())) for r in rows}

    @staticmethod
    def mention_all_recent_sql(recent: dict[str, list[int]]) -> Program[None]:
        """Record the groups' latest @all mentions (the caller holds their locks)."""
        if recent:
            yield Many("UPDATE conversations SET mention_all_recent = ? WHERE id = ?",
                       [(json_text(times), conv) for conv, times in sorted(recent.items())])

    @staticmethod
    def mentions_sql(rows: list[tuple[str, int, str]]) -> Program[None]:
        """Store who the batch's messages mention: (conv, seq, uid) rows, in the message's transaction."""
        if rows:
            yield Many("INSERT INTO mentions (conv, seq, uid) VALUES (?, ?, ?)", rows)

    @staticmethod
    def unmention_sql(conv: str, seq: int) -> Program[None]:
        """A recalled message mentions nobody any more."""
        yield Query("DELETE FROM mentions WHERE conv = ? AND seq = ?", [conv, seq])

    @staticmethod
    async def mentioned(messages: list[tuple[str, int]], uid: str | None = None) -> dict[tuple[str, int], set[str]]:
        """Who each of these (conv, seq) messages mentions (push: a mention overrides mute); with
        ``uid``, only whether they mention ``uid`` (history's ``mentioned``: one index range)."""
        if not messages:
            return {}
        wanted = set(messages)
        where = "uid = ? AND " if uid is not None else ""
        rows = await fetch(f"SELECT conv, seq, uid FROM mentions WHERE {where}conv = ANY(?) AND seq = ANY(?)",
                           [*([uid] if uid is not None else []), AnyOf(sorted({c for c, _ in wanted})),
                            AnyOf(sorted({q for _, q in wanted}))])
        out: dict[tuple[str, int], set[str]] = {}
        for conv, seq, who in rows:
            if (conv, seq) in wanted:
                out.setdefault((conv, seq), set()).add(who)
        return out

    @staticmethod
    async def unread_mentions(uid: str, convs: list[str]) -> dict[str, int]:
        """Per conversation, the mentions of ``uid`` above its read marker (one query for a page of
        the list, on the (uid, conv, seq) index: the unread ones only, never the conversation's
        messages)."""
        if not convs:
            return {}
        rows = await fetch("SELECT x.conv, COUNT(*) FROM mentions x JOIN members m ON m.conv_id = x.conv "
                           "AND m.uid = x.uid WHERE x.uid = ? AND x.conv = ANY(?) AND x.seq > m.read_seq "
                           "AND m.left_seq IS NULL GROUP BY x.conv", [uid, AnyOf(sorted(convs))])
        return {str(r[0]): int(r[1]) for r in rows}

    @staticmethod
    async def set_group_settings(conn: BaseDBAsyncClient, conv: str, *, mention_all: str | None = None,
                                 pin: str | None = None) -> None:
        """Change a group's settings (those given), in the caller's transaction."""
        values = {k: v for k, v in (("mention_all", mention_all), ("pin", pin)) if v is not None}
        if values:
            await Conversation.filter(id=conv).using_db(conn).update(**values)

    @staticmethod
    def set_ttl_sql(conv: str, ttl: int | None) -> Program[None]:
        """Set a conversation's ttl (disappearing messages), in the caller's transaction (its row
        locked: services/messages/expiry.py decides who may)."""
        yield Query("UPDATE conversations SET ttl = ? WHERE id = ?", [ttl, conv])

    @staticmethod
    def pin_rule_sql(conv: str) -> Program[str]:
        """Who may pin in this conversation ("members" or "admins"; a 1:1's members), in the
        caller's transaction (its row locked)."""
        rows = yield Query("SELECT pin FROM conversations WHERE id = ?", [conv])
        return (rows[0][0] if rows else None) or PIN[0]

    # ---- group rows (the group service's rules decide; these only write) ---------------------
    @staticmethod
    async def create_group(conn: BaseDBAsyncClient, conv: str, name: str, owner: str, now: int) -> None:
        await Conversation.create(using_db=conn, id=conv, kind="group", name=name, owner=owner, created_at=now)

    @staticmethod
    async def join(conn: BaseDBAsyncClient, conv: str, roles: dict[str, str], *, after_seq: int,
                   read: dict[str, int] | None = None) -> None:
        """Make ``roles``' users members from ``after_seq`` on (former members come back)."""
        read = read or {}
        uids = list(roles)
        existing = set(cast("list[str]", await Member.filter(conv_id=conv, uid__in=uids).using_db(conn).values_list(
            "uid", flat=True)))
        returning: dict[tuple[str, int], list[str]] = {}
        for uid in existing:
            returning.setdefault((roles[uid], read.get(uid, after_seq)), []).append(uid)
        for (role, read_seq), who in returning.items():
            await Member.filter(conv_id=conv, uid__in=who).using_db(conn).update(
                joined_seq=after_seq, left_seq=None, role=role, read_seq=read_seq)
        await Member.bulk_create([Member(conv_id=conv, uid=u, role=r, joined_seq=after_seq, read_seq=read.get(u, 0))
                                  for u, r in roles.items() if u not in existing], using_db=conn)

    @staticmethod
    async def leave(conn: BaseDBAsyncClient, conv: str, uids: list[str], *, at_seq: int) -> None:
        await Member.filter(conv_id=conv, uid__in=uids, left_seq=None).using_db(conn).update(
            left_seq=at_seq, role="member")

    @staticmethod
    async def set_role(conn: BaseDBAsyncClient, conv: str, uid: str, role: str) -> None:
        await Member.filter(conv_id=conv, uid=uid, left_seq=None).using_db(conn).update(role=role)
        if role == "owner":
            await Conversation.filter(id=conv).using_db(conn).update(owner=uid)

    @staticmethod
    async def seniority(conn: BaseDBAsyncClient, conv: str, uids: Iterable[str]) -> list[tuple[str, str]]:
        """(uid, role) of these members, longest-standing first."""
        rows = await Member.filter(conv_id=conv, uid__in=list(uids)).using_db(conn).order_by("id").values_list(
            "uid", "role")
        return [(cast("str", u), cast("str", r)) for u, r in rows]

    async def list_for(self, uid: str, limit: int, cursor: str | None) -> tuple[list[ConversationSummary], str | None]:
        """The user's conversations, most recently active first, paged by an opaque cursor."""
        query = Member.filter(uid=uid, left_seq=None).select_related("conv")
        if cursor:
            ts, conv = _decode_cursor(cursor)
            query = query.filter(Q(conv__last_ts__lt=ts) | Q(conv__last_ts=ts, conv_id__lt=conv))
        rows = await query.order_by("-conv__last_ts", "-conv_id").limit(limit + 1)
        peers = {m.conv.id: peer_of(m.conv.id, uid) for m in rows[:limit] if m.conv.id.startswith("d:")}
        peer_reads = {(str(c), str(u)): int(r) for c, u, r in await Member.filter(
            conv_id__in=list(peers), uid__in=list({p for p in peers.values() if p})).values_list(
            "conv_id", "uid", "read_seq")} if peers else {}
        items = [
            ConversationSummary(
                conv=m.conv.id, kind=m.conv.kind, peer=peer_of(m.conv.id, uid), last_seq=m.conv.last_seq,
                read_seq=m.read_seq, last_msg_id=m.conv.last_msg_id, last_ts=m.conv.last_ts, name=m.conv.name,
                muted=m.muted, pinned=m.pinned,
                peer_read_seq=peer_reads.get((m.conv.id, peers[m.conv.id] or "")) if m.conv.id in peers else None,
                ttl=m.conv.ttl,
            )
            for m in rows[:limit]
        ]
        # Only conversations with something unread can have unread mentions: no query without one.
        counts = await self.unread_mentions(uid, [i.conv for i in items if i.unread])
        if counts:
            items = [replace(i, unread_mentions=counts[i.conv]) if i.conv in counts else i for i in items]
        next_cursor = _encode_cursor(items[-1].last_ts, items[-1].conv) if len(rows) > limit else None
        return items, next_cursor

    # ---- privacy (services/privacy) ------------------------------------------------------------
    @staticmethod
    async def export_user(uid: str) -> list[dict[str, object]]:
        """The user's memberships (current and former) and what they saw of each conversation,
        as records of the export archive: one per conversation."""
        rows = await Member.filter(uid=uid).select_related("conv").order_by("conv_id")
        return [{"conv": m.conv.id, "kind": m.conv.kind, "name": m.conv.name, "peer": peer_of(m.conv.id, uid),
                 "role": m.role, "joined_seq": m.joined_seq, "left_seq": m.left_seq, "read_seq": m.read_seq,
                 "muted": m.muted, "pinned": m.pinned} for m in rows]

    @staticmethod
    async def current_groups(uid: str) -> list[str]:
        """The groups (conversation ids) ``uid`` is a current member of."""
        rows = await Member.filter(uid=uid, left_seq=None, conv_id__startswith="g:").values_list("conv_id", flat=True)
        return sorted(str(c) for c in rows)

    @staticmethod
    async def erase_user(uid: str) -> int:
        """Forget what the user's memberships keep of them: their mentions (the rows counting
        them as mentioned) and their 1:1s' flags. The member rows stay (a former member's window,
        a 1:1's peer read marker). Returns how many mention rows went."""
        await Member.filter(uid=uid).update(muted=False, pinned=False)
        return int(await Mention.filter(uid=uid).delete())
