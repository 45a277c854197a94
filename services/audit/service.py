"""AuditService: the owner of the ``audit_log`` table, the record of administrative changes.

Who changed what, when and from where: every change made through the admin API (recorded by
``imgate/audit.py``'s middleware, refused attempts too, with their HTTP status), the command line's
user and token changes, the TLS reloads of SIGHUP, and each new callback configuration a process
starts with. The log is append-only as far as imgate goes: nothing here updates or deletes a row,
and the admin API only reads it (``GET /v1/audit``). A detail never holds a secret: fields whose
name says secret, token or password are masked (:func:`scrub`), and the callers record what a
change was about, not what it returned (a token issue records the device, not the token).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tortoise.expressions import Q

from services.audit.models import AuditEntry
from services.db import portable_sql
from services.errors import BadRequest
from services.ids import Clock
from services.transactions import transaction

MAX_PAGE = 1000  # entries per page of GET /v1/audit
MAX_DETAIL = 4096  # characters of a detail's JSON; a larger one keeps its keys and says it was cut
MAX_STRING = 256  # characters of one string in a detail
_SECRET = re.compile(r"secret|token|password|passwd|authorization|credential|api_?key", re.IGNORECASE)
_ACTOR = re.compile(r"^[A-Za-z0-9_.@:-]{1,80}$")
# pg_advisory_xact_lock key of a conditional record ("imgate.a" in ASCII): two processes starting
# at once record one new configuration once.
_PG_LOCK_KEY = 0x696D676174652E61


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    ts: int
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    source: str
    status: int | None


@dataclass(frozen=True, slots=True)
class AuditPage:
    items: list[AuditRecord]
    next: int | None  # pass as ``before`` for the next (older) page; None: this is the last


def scrub(value: Any, depth: int = 0) -> Any:
    """``value`` fit for the log: a field whose name looks secret is ``"***"``, strings are cut at
    MAX_STRING characters, lists at 50 items, nesting at 4 levels."""
    if depth > 4:
        return "…"
    if isinstance(value, dict):
        return {str(k)[:64]: "***" if _SECRET.search(str(k)) else scrub(v, depth + 1)
                for k, v in list(value.items())[:50]}
    if isinstance(value, list | tuple):
        return [scrub(v, depth + 1) for v in value[:50]]
    if isinstance(value, str):
        return value if len(value) <= MAX_STRING else value[:MAX_STRING] + "…"
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)[:MAX_STRING]


def bounded(detail: dict[str, Any] | None) -> str:
    """The detail as the JSON stored: scrubbed, at most MAX_DETAIL characters (a larger one
    becomes ``{"truncated": true, "keys": [...]}``)."""
    clean = scrub(detail or {})
    text = json.dumps(clean, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    if len(text) <= MAX_DETAIL:
        return text
    return json.dumps({"truncated": True, "keys": sorted(clean)[:50]}, ensure_ascii=False)[:MAX_DETAIL]


REDACTED = '{"redacted":"erased"}'  # an erased user's entries' detail (AuditService.redact)


class AuditService:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def record(self, actor: str, action: str, target: str = "", detail: dict[str, Any] | None = None,
                     source: str = "", status: int | None = None) -> int:
        """Append one entry; returns its id. ``detail`` is scrubbed and bounded (:func:`bounded`)."""
        row = await AuditEntry.create(ts=self._clock.now_ms(), actor=self._actor(actor), action=action[:64],
                                      target=target[:200], detail=bounded(detail), source=source[:64],
                                      status=status)
        return int(row.id)

    async def redact(self, target: str) -> int:
        """Replace the detail of every entry about ``target`` (an erased user, docs/privacy.md) with
        ``{"redacted": "erased"}``: who did what to that uid, when and from where stays (the record
        of the administration, the erasure's own entry among them); what the requests said about
        them (a name, a profile), and the detail of any entry that names the uid as a value (a block
of them, a group they were added to), goes. Returns how many entries it changed; safe to repeat."""
        about = Q(target=target) | Q(detail__contains=json.dumps(target))  # or naming it in the detail
        return int(await AuditEntry.filter(about).exclude(detail=REDACTED).update(detail=REDACTED))

    async def record_if_changed(self, actor: str, action: str, target: str, detail: dict[str, Any] | None = None,
                                source: str = "") -> bool:
        """Append an entry unless the newest ``action`` entry has this ``target`` already (a
        configuration recorded by its digest: each process starting with it records it only if
        it changed). One statement, under a lock on PostgreSQL: two processes starting at once
        record it once. True if recorded."""
        values = [self._clock.now_ms(), self._actor(actor), action[:64], target[:200], bounded(detail), source[:64],
                  action[:64], target[:200]]
        sql = ("INSERT INTO audit_log (ts, actor, action, target, detail, source) "
               "SELECT CAST(? AS BIGINT), CAST(? AS VARCHAR(80)), CAST(? AS VARCHAR(64)), CAST(? AS VARCHAR(200)), "
               "CAST(? AS TEXT), CAST(? AS VARCHAR(64)) "
               "WHERE NOT EXISTS (SELECT 1 FROM audit_log WHERE id = "
               "(SELECT MAX(id) FROM audit_log WHERE action = ?) AND target = ?)")
        async with transaction() as conn:
            if conn.capabilities.dialect == "postgres":
                await conn.execute_query("SELECT pg_advisory_xact_lock($1)", [_PG_LOCK_KEY])
                # The id it returns says whether a row went in (tortoise's count of an INSERT on
                # asyncpg is the status's OID field, always 0).
                return bool(await conn.execute_query_dict(portable_sql(conn, sql + " RETURNING id"), values))
            count, _ = await conn.execute_query(sql, values)
        return bool(count)

    async def page(self, *, before: int | None = None, limit: int = 100, actor: str | None = None,
                   action: str | None = None, target: str | None = None, since: int | None = None,
                   until: int | None = None) -> AuditPage:
        """Entries newest first, ``limit`` (1-MAX_PAGE) at a time, older than the entry
        ``before`` (the previous page's ``next``). Filters: ``actor`` and ``target`` exactly,
        ``action`` as a prefix ("user." is every user change), ``since`` <= ts < ``until`` (ms).

        Raises:
            BadRequest: ``limit`` out of range.
        """
        if not 1 <= limit <= MAX_PAGE:
            msg = f"limit must be 1-{MAX_PAGE}, not {limit}"
            raise BadRequest(msg)
        query = AuditEntry.all()
        if before is not None:
            query = query.filter(id__lt=before)
        if actor is not None:
            query = query.filter(actor=actor)
        if action is not None:
            query = query.filter(action__startswith=action)
        if target is not None:
            query = query.filter(target=target)
        if since is not None:
            query = query.filter(ts__gte=since)
        if until is not None:
            query = query.filter(ts__lt=until)
        rows = await query.order_by("-id").limit(limit + 1)
        items = [AuditRecord(int(r.id), r.ts, r.actor, r.action, r.target, json.loads(r.detail), r.source, r.status)
                 for r in rows[:limit]]
        return AuditPage(items, items[-1].id if len(rows) > limit else None)

    @staticmethod
    def _actor(actor: str) -> str:
        return actor if _ACTOR.match(actor) else re.sub(r"[^A-Za-z0-9_.@:-]", "_", actor)[:80] or "unknown"
