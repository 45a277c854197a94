"""The final audit: what is in the database, compared with what the clients sent, were acked and
have after repair. Definitions (also in bench/README.md, "Fault suite"):

- sent: distinct cids the clients tried to send.
- acked: distinct cids acked with an ``id``.
- stored: distinct cids found in the database (``messages`` by sender and cid).
- delivered: distinct (member, message id) pairs held by the members' clients after repair,
  over the stored messages of the sent cids; every member counts, the sender too (the protocol
  delivers a message to all of its sender's devices as well).
- lost: acked cids whose acked id is not stored, plus, per audited member and conversation,
  every seq the member may see (1..last_seq within its membership) that its client does not have
  after repair.
- duplicated: extra stored rows for one (sender, cid) or one (conv, seq); a second id acked for
  one cid; and, per client after its de-duplication by id, a second id for a (conv, seq) or for
  a (from, cid). The same id received again (MQTT redelivery) is not a duplicate.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bench._common import pct
from bench.faults.client import GoodClient, Sent


@dataclass
class StoredRow:
    id: str
    conv: str
    seq: int
    sender: str
    cid: str
    type: str


@dataclass
class Store:
    rows: list[StoredRow]
    last_seq: dict[str, int]  # conversations.last_seq
    members: dict[str, dict[str, tuple[int, int | None]]]  # conv -> uid -> (joined_seq, left_seq)


_ROWS = "SELECT id, conv, seq, sender, cid, type FROM messages"
_CONVS = "SELECT id, last_seq FROM conversations"
_MEMBERS = "SELECT conv_id, uid, joined_seq, left_seq FROM members"


def _sqlite_store(path: str) -> Store:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        rows = [StoredRow(*r) for r in db.execute(_ROWS)]
        last = dict(db.execute(_CONVS).fetchall())
        members: dict[str, dict[str, tuple[int, int | None]]] = defaultdict(dict)
        for conv, uid, joined, left in db.execute(_MEMBERS):
            members[conv][uid] = (joined, left)
    finally:
        db.close()
    return Store(rows, last, dict(members))


async def _pg_store(url: str) -> Store:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = [StoredRow(*r) for r in await conn.fetch(_ROWS)]
        last = {r[0]: r[1] for r in await conn.fetch(_CONVS)}
        members: dict[str, dict[str, tuple[int, int | None]]] = defaultdict(dict)
        for conv, uid, joined, left in await conn.fetch(_MEMBERS):
            members[conv][uid] = (joined, left)
    finally:
        await conn.close()
    return Store(rows, last, dict(members))


async def load_store(db_url: str) -> Store:
    """Read every message, conversation counter and membership straight from the database."""
    if db_url.startswith("sqlite://"):
        return await asyncio.to_thread(_sqlite_store, db_url.removeprefix("sqlite://"))
    if urlsplit(db_url).scheme in ("postgres", "postgresql", "asyncpg"):
        return await _pg_store(db_url)
    msg = f"cannot audit {db_url!r}"
    raise ValueError(msg)


@dataclass
class Row:
    """One line of the fault suite's table."""

    scenario: str
    sent: int = 0
    acked: int = 0
    stored: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    p99_ms: float | None = None
    notes: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # checks that failed besides lost/duplicated
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, line: str) -> Row:
        """The inverse of :meth:`json`."""
        d = json.loads(line)
        names = ("scenario", "sent", "acked", "stored", "delivered", "lost", "duplicated", "notes", "failed")
        row = cls(**{k: d.pop(k) for k in names})
        row.p99_ms = d.pop("p99_ms")
        d.pop("ok", None)
        row.extra = d
        return row

    @property
    def ok(self) -> bool:
        return not self.lost and not self.duplicated and not self.failed

    def fail(self, why: str) -> None:
        self.failed.append(why)

    def json(self) -> str:
        p99 = None if self.p99_ms is None or self.p99_ms != self.p99_ms else round(self.p99_ms, 1)
        return json.dumps({"scenario": self.scenario, "sent": self.sent, "acked": self.acked, "stored": self.stored,
                           "delivered": self.delivered, "lost": self.lost, "duplicated": self.duplicated,
                           "p99_ms": p99, "ok": self.ok, "failed": self.failed, "notes": self.notes, **self.extra})


def audit(row: Row, store: Store, sends: list[Sent], clients: list[GoodClient]) -> dict[str, Any]:
    """Fill ``row``'s counts from the database and the clients (which must have repaired);
    returns the details (also put in ``row.extra``). ``clients`` are the members whose views
    are audited: every conversation one of them is in is checked for them."""
    by_cid: dict[tuple[str, str], list[StoredRow]] = defaultdict(list)
    wanted = {(s.sender, s.cid) for s in sends}
    for r in store.rows:
        if (r.sender, r.cid) in wanted:
            by_cid[(r.sender, r.cid)].append(r)
    acked = [s for s in sends if s.id is not None]
    row.sent = len(wanted)
    row.acked = len(acked)
    row.stored = len(by_cid)
    acked_not_stored = [s.cid for s in acked if s.id not in {r.id for r in by_cid.get((s.sender, s.cid), [])}]
    rejected = Counter(s.rejected for s in sends if s.rejected)
    unresolved = [s for s in sends if s.id is None and not s.rejected]
    stored_unacked = sum(1 for s in unresolved if (s.sender, s.cid) in by_cid)
    dup_cid_rows = sum(len(v) - 1 for v in by_cid.values())
    seq_rows = Counter((r.conv, r.seq) for r in store.rows)
    audited_convs = {conv for c in clients for conv, who in store.members.items() if c.uid in who}
    dup_seq_rows = sum(n - 1 for (conv, _), n in seq_rows.items() if n > 1 and conv in audited_convs)
    ack_conflicts = sum(s.ack_conflicts for s in sends)
    client_dups = sum(c.dup_seq + c.dup_cid for c in clients)

    # Per member: every seq it may see must be there after repair.
    rows_by_conv: dict[str, dict[int, StoredRow]] = defaultdict(dict)
    for r in store.rows:
        if r.conv in audited_convs:
            rows_by_conv[r.conv][r.seq] = r
    ours = {r.id for v in by_cid.values() for r in v}
    missing = 0
    missing_examples: list[str] = []
    delivered = 0
    seq_holes = sum(1 for conv in audited_convs for seq in range(1, store.last_seq.get(conv, 0) + 1)
                    if seq not in rows_by_conv[conv])  # seqs below last_seq with no stored row at all
    for c in clients:
        for conv, who in store.members.items():
            if c.uid not in who:
                continue
            joined, left = who[c.uid]
            last = store.last_seq.get(conv, 0) if left is None else min(left, store.last_seq.get(conv, 0))
            have = c.convs.get(conv, {})
            for seq in range(joined + 1, last + 1):
                stored_row = rows_by_conv[conv].get(seq)
                if seq not in have:
                    missing += 1
                    if len(missing_examples) < 5:
                        missing_examples.append(f"{c.uid} {conv}#{seq}")
                elif stored_row is not None and stored_row.id in ours and have[seq] == stored_row.id:
                    delivered += 1
    row.delivered = delivered
    row.lost = len(acked_not_stored) + missing
    row.duplicated = dup_cid_rows + dup_seq_rows + ack_conflicts + client_dups
    details: dict[str, Any] = {
        "acked_not_stored": len(acked_not_stored), "missing_after_repair": missing,
        "dup_stored_cid": dup_cid_rows, "dup_stored_seq": dup_seq_rows, "ack_conflicts": ack_conflicts,
        "client_dup_seq": sum(c.dup_seq for c in clients), "client_dup_cid": sum(c.dup_cid for c in clients),
        "unacked_at_end": len(unresolved), "unacked_but_stored": stored_unacked, "rejected": dict(rejected),
        "seq_holes_in_store": seq_holes,
        "live": sum(c.live for c in clients), "via_repair": sum(c.repaired for c in clients),
        "mqtt_redeliveries": sum(c.redelivered for c in clients),
        "resends": sum(max(0, s.attempts - 1) for s in sends),
        "ack_errors": dict(sum((c.ack_errors for c in clients), Counter())),
    }
    if missing_examples:
        details["missing_examples"] = missing_examples
    if acked_not_stored:
        details["acked_not_stored_examples"] = acked_not_stored[:5]
    if unresolved:
        row.fail(f"{len(unresolved)} message(s) never acked ({stored_unacked} of them stored)")
    if seq_holes:
        row.fail(f"{seq_holes} seq(s) below last_seq with no stored message")
    if rejected:
        row.fail(f"rejected sends: {dict(rejected)}")
    row.extra.update(details)
    return details


def latency_ms(values: list[float], q: int = 99) -> float:
    return pct(values, q)
