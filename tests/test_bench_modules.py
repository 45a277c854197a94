"""The benchmarks are not run by the suite (they live in bench/ and take minutes), but each of
their modules must at least import: a broken one was once found only when a benchmark run
failed. Importing runs no benchmark (every module keeps its work behind main())."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
MODULES = sorted(
    ".".join(path.relative_to(BENCH.parent).with_suffix("").parts)
    for path in BENCH.rglob("*.py") if path.name != "__main__.py"
)


def test_every_bench_module_is_found() -> None:
    assert "bench.serve_broker" in MODULES and "bench.im_1to1" in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_bench_module_imports(module: str) -> None:
    importlib.import_module(module)


@pytest.mark.parametrize("quick", [True, False])
def test_group_busy_is_planned_with_options_its_module_accepts(quick: bool) -> None:
    from bench.__main__ import SCENARIOS, plan
    from bench.group_busy import parse_args

    assert "group-busy" in SCENARIOS
    args = argparse.Namespace(quick=quick, seconds=None, only=["group-busy"], database_url=None, no_ejabberd=True)
    runs = plan(args)
    assert runs and all(name == "group-busy" and argv[0] == "bench.group_busy" for name, argv, _ in runs)
    loads = set()
    for _, argv, _ in runs:
        parsed = parse_args(argv[1:])
        loads |= {(parsed.members, s, w) for s in parsed.senders for w in parsed.window}
    if not quick:  # the two rows the issue-13 target is checked on
        assert {(100, 10, 10), (100, 1, 32)} <= loads


def test_group_busy_refuses_more_online_members_than_the_group_has() -> None:
    from bench.group_busy import parse_args

    assert parse_args(["--members", "11", "--senders", "10", "--online", "1"]).members == 11
    with pytest.raises(SystemExit):
        parse_args(["--members", "10", "--senders", "10", "--online", "1"])


def test_group_busy_row_and_target() -> None:
    from bench.__main__ import table

    row = {"scenario": "group-busy M=100 S=10 W=10", "msgs_per_s": 1200.0, "ack_p50_ms": 8.0, "ack_p99_ms": 20.0,
           "in_order": True, "lost": 0, "member_lost": 0, "duplicated": 0, "errors": 0, "not_stored": 0,
           "server_rss_mb": 70.0, "server_cpu_ms_per_msg": 0.9}
    good = table([row]).splitlines()[-1]
    assert "1,200 msgs/s, in seq order" in good and "| 0 / 0 / 0 |" in good and "PASS" in good
    bad = table([{**row, "in_order": False}]).splitlines()[-1]
    assert "OUT OF ORDER" in bad and "FAIL" in bad
    slow = table([{**row, "msgs_per_s": 999.0}]).splitlines()[-1]
    assert "FAIL" in slow


def test_group_busy_order_check_finds_a_gap_a_repeat_and_an_ack_out_of_send_order() -> None:
    from bench.group_busy import Client, Load

    client = Client("s0", Load())
    client.seqs = [2, 3, 4]
    client.sent = ["a", "b", "c"]
    client.acked = {"a": 2, "c": 4, "b": 3}  # answered out of order, numbered in send order: fine
    assert client.order_problems() == []
    client.seqs = [2, 3, 5, 5]
    client.acked = {"a": 2, "b": 4, "c": 3}
    assert client.order_problems() == ["s0 got seq 5 after 3", "s0 got seq 5 after 5", "s0's ack seq 3 after 4"]


async def test_im_1to1_gives_postgresql_a_history_and_statistics(database_url: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL the load starts on a database with history and statistics (a new one's
    prepared plans seq-scan ``messages``); on SQLite it starts empty, as it always has."""
    from bench import im_1to1
    from services.db import Database
    from services.sql import fetch

    monkeypatch.setattr(im_1to1, "_HISTORY", 120)
    tokens = await im_1to1._prepare(database_url, 2)
    assert sorted(tokens) == ["r0", "r1", "s0", "s1"]
    async with Database(database_url):
        stored = (await fetch("SELECT count(*) FROM messages"))[0][0]
        if database_url.startswith("sqlite"):
            assert stored == 0
        else:
            assert stored == 120
            analyzed = await fetch("SELECT reltuples FROM pg_class WHERE relname = 'messages'")  # -1: never
            assert analyzed[0][0] == 120


@pytest.mark.parametrize("quick", [True, False])
def test_the_fault_suite_plans_every_attack_bounded_and_with_options_its_attacker_accepts(quick: bool) -> None:
    from bench.faults.__main__ import SCENARIOS
    from bench.faults.__main__ import plan as faults_plan
    from bench.faults.attack import ATTACKS, attacker_argv
    from bench.faults.attackers import KINDS, parse_args

    attacks = ["ping-flood", "property-bomb", "connect-bomb", "web-idle-fds", "upload-hog"]
    assert set(attacks) <= set(SCENARIOS) and set(KINDS) == set(attacks) and set(ATTACKS) == {"abuse", *attacks}
    args = argparse.Namespace(quick=quick, env=[], only=[*attacks, "abuse"], seconds=None, database_url=None,
                              clients=None, users=None)
    assert sorted(name for name, _ in faults_plan(args)) == sorted([*attacks, "abuse"])
    for name in attacks:
        kind = ATTACKS[name]
        tokens = {f"x{k}": "imt_t" for k in range(kind.connections)}
        argv = attacker_argv(name, 1883, 8090, "fx" if tokens else None, tokens, ["s"] if kind.sinks else [], 90)
        assert argv[:2] == ["-m", "bench.faults.attackers"]
        parsed = parse_args(argv[2:])
        assert parsed.kind == name and parsed.max_seconds == 90 and len(parsed.tokens) == kind.connections
    assert ATTACKS["web-idle-fds"].nofile == 1024 and parse_args(attacker_argv(
        "web-idle-fds", 1, 2, None, {}, [], 1)[2:]).sockets > 1024  # more idle sockets than the server may open


def test_the_attack_packets_are_well_formed_and_as_large_as_the_broker_allows() -> None:
    """Each attack packet decodes (built small, so that a limit on properties or filters does not
    refuse it), and the real ones fill the broker's packet limits with ~209,000 properties,
    ~262,000 filters and ~13,000 properties before CONNECT."""
    import random

    from bench.faults import attackers as at
    from broker import codec

    def split(packet: bytes) -> tuple[int, bytes]:
        length, shift, pos = 0, 0, 1
        while True:
            length |= (packet[pos] & 0x7F) << shift
            shift, pos = shift + 7, pos + 1
            if not packet[pos - 1] & 0x80:
                return packet[0], packet[pos:pos + length] if pos + length == len(packet) else b"?"

    first, body = split(at.publish_bomb("im/u/out/event", b"{}", limit=121))
    pub = codec.decode(first, body, codec.MQTT5)
    assert isinstance(pub, codec.Publish) and pub.payload == b"{}" and len(pub.properties[codec.P_USER]) == 20
    first, body = split(at.subscribe_bomb(7, limit=83))
    sub = codec.decode(first, body, codec.MQTT5)
    assert isinstance(sub, codec.Subscribe) and sub.packet_id == 7 and len(sub.filters) == 20
    first, body = split(at.connect_bomb("c", limit=118))
    con = codec.decode_connect(first, body)
    assert con.level == codec.MQTT5 and con.username is None and len(con.properties[codec.P_USER]) == 20
    for acks in (False, True):
        data, pings, stray = at.ping_chunk(random.Random(1), acks=acks, size=400)
        assert (stray > 0) == acks and len(data) == 2 * pings + 4 * stray
        pos, kinds = 0, set()
        while pos < len(data):
            size = 2 + data[pos + 1]
            kinds.add(type(codec.decode(data[pos], data[pos + 2:pos + size], codec.MQTT5)).__name__)
            pos += size
        assert kinds == ({"Bare", "Ack"} if acks else {"Bare"})

    full = {"publish": (at.publish_bomb("im/u/out/event", b"{}"), at.PACKET_LIMIT, at.EMPTY_USER_PROPERTY, 209_000),
            "subscribe": (at.subscribe_bomb(), at.PACKET_LIMIT, b"\x00\x01a\x00", 262_000),
            "connect": (at.connect_bomb("bomb0"), at.CONNECT_LIMIT, at.EMPTY_USER_PROPERTY, 13_000)}
    for name, (packet, limit, item, least) in full.items():
        assert limit - 5 < len(split(packet)[1]) <= limit and packet.count(item) > least, name


def test_an_attack_row_fails_over_the_ratio_or_when_a_probe_fails() -> None:
    from bench.faults.attack import Sample, Window, judge, judge_probe
    from bench.faults.audit import Row

    row = Row("t")
    assert judge(row, "send->delivery", 10.0, 29.0, 3.0) == pytest.approx(2.9) and row.ok
    assert judge(row, "send->delivery", 10.0, 31.0, 3.0) > 3 and not row.ok
    samples = [Sample(0.5, 0.002, "ok"), Sample(1.5, 0.003, "ok"), Sample(2.5, 5.0, "no CONNACK in 5 s")]
    quiet, attack = Window.of(samples, 0, 1), Window.of(samples, 1, 3)
    assert (attack.n, sum(attack.failed.values())) == (2, 1) and attack.p99_ms == pytest.approx(3.0)
    row = Row("t")
    judge_probe(row, "new MQTT logins", quiet, attack, 3.0)
    assert row.failed == ["new MQTT logins: 1 of 2 failed during the attack ({'no CONNACK in 5 s': 1})"]
    row = Row("t")
    assert judge_probe(row, "uploads", quiet, Window.of(samples, 1, 2), 3.0) == pytest.approx(1.5) and row.ok


@pytest.mark.skipif(not (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").exists() and os.geteuid() == 0),
                    reason="needs root and the cgroup v1 cpu controller (this project's machines have both)")
def test_a_cpu_quota_holds_a_busy_process_to_its_share() -> None:
    """``--bridge-cpu``'s cgroup: a child that spins until it has used 0.25 s of CPU, in a group
    held to 20% of a core, needs at least about a second of wall time and is throttled; the group
    is gone afterwards. (A lower bound the kernel enforces, not a speed target.)"""
    from bench._common import CpuQuota

    quota = CpuQuota("test", 0.2)
    try:
        assert (quota.period_us, int((quota.path / "cpu.cfs_quota_us").read_text())) == (100_000, 20_000)
        spin = "import sys, time\nsys.stdin.readline()\nwhile time.process_time() < 0.25: pass"
        child = subprocess.Popen([sys.executable, "-c", spin], stdin=subprocess.PIPE)
        quota.add(child.pid)
        assert str(child.pid) in (quota.path / "cgroup.procs").read_text().split()
        started = time.monotonic()
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        child.stdin.close()
        assert child.wait(timeout=60) == 0
        assert time.monotonic() - started >= 0.8  # 0.25 s of CPU at 0.02 s per 0.1 s period
        assert quota.throttled()[0] >= 5
    finally:
        quota.close()
    assert not quota.path.exists()



async def test_wire_sizes_counts_real_bytes_and_cbor_is_smaller_than_json() -> None:
    """bench.wire_sizes against a real platform, through its counting proxies: every exchange is
    there whole, the framing adds up, protocol.md's example has protocol.md's sizes, and CBOR and
    MessagePack cost less than JSON on the wire."""
    from typing import Any

    from bench.__main__ import table
    from bench.wire_sizes import ITEMS, markdown, measure

    rows = await measure(["json", "cbor", "msgpack"], ["3.1.1", "5+aliases"])
    items = [r for r in rows if r["scenario"] == "wire-sizes"]
    assert len(items) == 3 * 2 * (len(ITEMS) + 6)  # per run: the typical, device and short messages' three, two RPCs
    for r in items:
        assert "other_bytes" not in r, r
        assert r["packets"] == (4 if r["item"] in ("conversations", "history") else 2), r
        assert r["total_bytes"] == r["c2s_bytes"] + r["s2c_bytes"] > r["payload_bytes"] > 0, r
        assert r["c2s_bytes"] > r["c2s_payload"] and r["s2c_bytes"] > r["s2c_payload"], r

    def row(encoding: str, protocol: str, item: str, case: str = "typical") -> dict[str, Any]:
        [found] = [r for r in items if (r["encoding"], r["protocol"], r["item"], r["case"])
                   == (encoding, protocol, item, case)]
        return found

    for encoding in ("json", "cbor", "msgpack"):
        # MQTT 3.1.1 framing, counted independently: PUBLISH = 1 + remaining length (1 or 2 bytes)
        # + topic + packet id + payload; PUBACK = 4 bytes
        send = row(encoding, "3.1.1", "send")
        remaining = 2 + len("im/alice/out/msg") + 2 + send["c2s_payload"]
        assert (send["c2s_bytes"], send["s2c_bytes"]) == (1 + (1 if remaining < 128 else 2) + remaining, 4)
        # an alias replaces the topic of the client's own publish
        assert row(encoding, "5+aliases", "send")["c2s_bytes"] < send["c2s_bytes"]
        assert row(encoding, "3.1.1", "history", "50 messages")["payload_bytes"] > 50 * 60
    # protocol.md "Encodings": one send, its ack and its delivery of the short example
    for encoding, sizes in (("json", (52, 95, 139)), ("cbor", (23, 60, 80)), ("msgpack", (23, 58, 78))):
        assert tuple(row(encoding, "3.1.1", item, "short")["payload_bytes"]
                     for item in ("send", "ack", "delivery")) == sizes, encoding

    summary = {(s["protocol"], s["case"]): s for s in rows if s["scenario"] == "wire-sizes summary"}
    assert set(summary) == {(p, c) for p in ("3.1.1", "5+aliases") for c in ("typical", "device", "short")}
    for (protocol, case), s in summary.items():
        for encoding in ("json", "cbor", "msgpack"):
            assert s[f"{encoding}_bytes"] == sum(row(encoding, protocol, item, case)["total_bytes"]
                                                 for item in ("send", "ack", "delivery"))
        for encoding in ("cbor", "msgpack"):
            assert s[f"{encoding}_bytes"] < s["json_bytes"] and s[f"{encoding}_payload"] < s["json_payload"], s
            assert 0 < s[f"{encoding}_saving_pct"] < s[f"{encoding}_payload_saving_pct"] < 100, s
    for encoding in ("cbor", "msgpack"):
        assert (row(encoding, "3.1.1", "history", "50 messages")["total_bytes"]
                < row("json", "3.1.1", "history", "50 messages")["total_bytes"])
    text = markdown(rows)
    assert "| send (short) | 52 | 23 | 23 |" in text and "5+aliases CBOR" in text
    assert "wire-sizes MQTT 3.1.1, typical message" in table(rows)
