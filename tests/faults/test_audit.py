"""The fault suite's accounting (bench/faults/audit.py) on hand-made data: each kind of loss and
duplicate is counted, and an MQTT redelivery of a known id is not."""

from __future__ import annotations

import json

from bench.faults.audit import Row, Store, StoredRow, audit
from bench.faults.client import Fleet, GoodClient, Sent

CONV = "d:alice:bob"


def _store(*rows: StoredRow, last: int = 2) -> Store:
    return Store(list(rows), {CONV: last}, {CONV: {"alice": (0, None), "bob": (0, None)}})


def _sent(cid: str, msg_id: str | None, seq: int) -> Sent:
    s = Sent(cid, "alice", b"{}", 0.0)
    s.id, s.conv, s.seq = msg_id, CONV, seq
    return s


def _msg(msg_id: str, seq: int, cid: str) -> dict[str, object]:
    return {"id": msg_id, "conv": CONV, "seq": seq, "from": "alice", "cid": cid, "type": "text", "text": "hi"}


def _clients(fleet: Fleet, *messages: dict[str, object]) -> list[GoodClient]:
    out = []
    for uid in ("alice", "bob"):
        c = GoodClient(fleet, uid, "token")
        for m in messages:
            c._on_message(dict(m), "live")
        out.append(c)
    return out


ROWS = (StoredRow("m1", CONV, 1, "alice", "c1", "text"), StoredRow("m2", CONV, 2, "alice", "c2", "text"))


async def test_a_clean_run_counts_everything_once() -> None:
    fleet = Fleet(1)
    clients = _clients(fleet, _msg("m1", 1, "c1"), _msg("m2", 2, "c2"), _msg("m1", 1, "c1"))  # m1 redelivered
    row = Row("t")
    audit(row, _store(*ROWS), [_sent("c1", "m1", 1), _sent("c2", "m2", 2)], clients)
    assert (row.sent, row.acked, row.stored, row.delivered, row.lost, row.duplicated) == (2, 2, 2, 4, 0, 0)
    assert row.extra["mqtt_redeliveries"] == 2 and row.ok, json.dumps(row.extra)


async def test_acked_but_not_stored_and_a_missing_seq_are_lost() -> None:
    fleet = Fleet(1)
    clients = _clients(fleet, _msg("m1", 1, "c1"))  # nobody has seq 2 after repair
    row = Row("t")
    audit(row, _store(*ROWS), [_sent("c1", "m1", 1), _sent("c2", "m2", 2), _sent("c3", "m3", 3)], clients)
    assert row.extra["acked_not_stored"] == 1  # c3 acked as m3, not in the database
    assert row.extra["missing_after_repair"] == 2  # seq 2, for alice and for bob
    assert row.lost == 3 and not row.ok


async def test_a_second_id_for_a_seq_or_a_cid_and_a_second_stored_row_are_duplicates() -> None:
    fleet = Fleet(1)
    clients = _clients(fleet, _msg("m1", 1, "c1"), _msg("m2", 2, "c2"), _msg("m9", 2, "c9"), _msg("m8", 3, "c1"))
    row = Row("t")
    store = _store(*ROWS, StoredRow("m7", CONV, 3, "alice", "c2", "text"), last=3)
    audit(row, store, [_sent("c1", "m1", 1), _sent("c2", "m2", 2)], clients)
    assert row.extra["dup_stored_cid"] == 1  # c2 stored twice
    assert row.extra["client_dup_seq"] == 2  # seq 2 with two ids, at both clients
    assert row.extra["client_dup_cid"] == 2  # c1 with two ids, at both clients
    assert row.duplicated == 5 and not row.ok


async def test_an_unacked_message_fails_the_row_without_counting_as_lost() -> None:
    fleet = Fleet(1)
    clients = _clients(fleet, _msg("m1", 1, "c1"), _msg("m2", 2, "c2"))
    row = Row("t")
    audit(row, _store(*ROWS), [_sent("c1", "m1", 1), _sent("c2", "m2", 2), _sent("c5", None, 0)], clients)
    assert row.lost == 0 and row.extra["unacked_at_end"] == 1
    assert not row.ok and "never acked" in row.failed[0]
