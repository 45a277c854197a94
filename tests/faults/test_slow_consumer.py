"""A consumer that never reads its socket while large messages and history replies are sent to it
(bench/faults/slow.py at CI size): the server cuts it off, its memory stays bounded, and nothing
is lost: the consumer finds everything in history when it comes back."""

from __future__ import annotations

from bench.faults.slow import SlowConfig, run_slow


async def test_slow_consumer_is_cut_off_and_loses_nothing() -> None:
    row = await run_slow(SlowConfig(pairs=2, senders=3, quiet_s=2.0, load_s=5.0, settle_s=5.0, history_rpcs=40, rpc_at=0.5,
                                    rss_growth_limit_mb=64.0))
    report = row.json()
    assert row.extra["messages_to_consumer"] > 50, report
    assert row.extra["history_rpcs"] == 40, report  # sent before the cut-off
    assert row.acked == row.stored == row.sent, report
    assert row.lost == 0, report
    assert row.duplicated == 0, report
    assert row.extra["cut_off"], report
    assert row.extra["rss_peak_mb"] - row.extra["rss_start_mb"] <= 64.0, report
    assert not [f for f in row.failed if "p99" not in f], report  # latency ratios are not asserted on CI machines
