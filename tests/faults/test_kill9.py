"""kill -9 of the real ``imgate run`` in the middle of a 1:1 and group load (bench/faults/kill9.py
at CI size): after the restart and the clients' resends and repairs, nothing acked is lost,
nothing is stored or delivered twice, and every member has every seq."""

from __future__ import annotations

from bench.faults.kill9 import Kill9Config, run_kill9
from bench.faults.world import ChatPlan


async def test_kill9_under_load_loses_and_duplicates_nothing(database_url: str) -> None:
    row = await run_kill9(Kill9Config(plan=ChatPlan(pairs=3, members=4, group_senders=2), seconds=5.0,
                                      database_url=database_url))
    report = row.json()
    assert row.sent > 50, report  # the load really ran, before and after the kill
    assert row.extra["killed_at_s"] > 0
    assert row.acked == row.stored == row.sent, report
    assert row.lost == 0, report
    assert row.duplicated == 0, report
    assert row.delivered > row.sent, report  # every member's copy (the sender's devices included)
    assert not row.failed, report
