"""Run every imgate benchmark and print a Markdown summary.

    python -m bench            # im-1to1 P=10,100 x W=1,10 on imgate and ejabberd; fanout-raw P=10,100 x
                               # W=1,10 on imgate and Mosquitto; connections N=1000,5000,10000 on imgate
                               # and Mosquitto; group-fanout M=1000; group-busy M=100 (S=10 W=1,10 and
                               # S=1 W=32); search over 100,000 stored messages; wire-sizes (bytes
                               # per message and RPC for JSON, CBOR and MessagePack on MQTT 3.1.1 and 5)
    python -m bench --quick    # a smoke run of the same scenarios (a few seconds each, small N)

Each scenario module runs as its own process (its servers are its own subprocesses) and prints
one JSON line per scenario; they are echoed as they come, then summarised in one table.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench._common import raise_nofile, run_module

SCENARIOS = ("im-1to1", "fanout-raw", "connections", "group-fanout", "group-busy", "search", "wire-sizes")


def plan(args: argparse.Namespace) -> list[tuple[str, list[str], float]]:
    """(scenario, module argv, time limit in seconds) for each scenario module to run."""
    if args.quick:
        pairs, windows, clients = ["2"], ["1", "4"], ["200"]
        seconds = args.seconds or 2.0
    else:
        pairs, windows, clients = ["10", "100"], ["1", "10"], ["1000", "5000", "10000"]
        seconds = args.seconds or 0.0
    runs: list[tuple[str, list[str], float]] = []
    n_load = len(pairs) * len(windows)
    if "im-1to1" in args.only:
        s = seconds or 10.0
        argv = ["bench.im_1to1", "--pairs", *pairs, "--window", *windows, "--seconds", str(s)]
        if args.database_url:
            argv += ["--database-url", args.database_url]
        servers, install = ["imgate"], 0.0
        if not getattr(args, "no_ejabberd", False):
            from bench.ejabberd import installable, installed

            if installable():  # the peer: a private ejabberd (apt-get installs it if missing)
                servers.append("ejabberd")
                install = 0.0 if installed() else 600.0
        argv += ["--servers", *servers]
        runs.append(("im-1to1", argv, len(servers) * n_load * (s + 120) + 60 + install))
    if "fanout-raw" in args.only:
        s = seconds or 8.0
        runs.append(("fanout-raw", ["bench.fanout_raw", "--pairs", *pairs, "--window", *windows, "--seconds", str(s)],
                     2 * n_load * (s + 90) + 60))
    if "connections" in args.only:
        runs.append(("connections", ["bench.connections", "--clients", *clients], 2 * len(clients) * 300 + 60))
    if "group-fanout" in args.only:
        members, messages = (["100"], "5") if args.quick else (["1000"], "20")
        runs.append(("group-fanout", ["bench.group_fanout", "--members", *members, "--messages", messages], 600))
    if "group-busy" in args.only:
        # one busy conversation (issue 13): a group with ten senders, then with one sender
        s = seconds or 10.0
        size, loads = (("20", [("4", ["4"]), ("1", ["16"])]) if args.quick
                       else ("100", [("10", ["1", "10"]), ("1", ["32"])]))
        for senders, busy_windows in loads:
            argv = ["bench.group_busy", "--members", size, "--senders", senders, "--window", *busy_windows,
                    "--seconds", str(s)]
            runs.append(("group-busy", argv, len(busy_windows) * (s + 120) + 60))
    if "search" in args.only:
        stored, asked = ("5000", "50") if args.quick else ("100000", "500")
        runs.append(("search", ["bench.search", "--messages", stored, "--queries", asked], 1800))
    if "wire-sizes" in args.only:  # a few seconds, the same with --quick: bytes, not rates
        runs.append(("wire-sizes", ["bench.wire_sizes"], 300))
    return runs


def _revision() -> str:
    """The commit under test (read-only; uncommitted changes are not shown)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent.parent, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "revision unknown"
    return f"HEAD {out.stdout.strip()}" if out.returncode == 0 else "revision unknown"


def _num(x: Any, unit: str = "", digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.{digits}f}{unit}"


def _target(r: dict[str, Any]) -> str:
    scen = r.get("scenario", "")
    if scen.startswith("im-1to1") and r.get("broker", "imgate") != "imgate":
        return ""  # the targets are imgate's; a peer's row is for comparison
    if scen == "im-1to1 P=100 W=10" and "msgs_per_s" in r:
        return ("PASS" if r["msgs_per_s"] >= 3000 else "FAIL") + " (>= 3,000 msgs/s)"
    if scen == "im-1to1 P=10 W=1" and "deliver_p99_ms" in r:
        return ("PASS" if r["deliver_p99_ms"] <= 15 else "FAIL") + " (p99 <= 15 ms)"
    if scen in ("group-busy M=100 S=10 W=10", "group-busy M=100 S=1 W=32") and "msgs_per_s" in r:
        ok = r["msgs_per_s"] >= 1000 and r["in_order"] and not (
            r["member_lost"] or r["duplicated"] or r["errors"] or r["not_stored"])
        return ("PASS" if ok else "FAIL") + " (>= 1,000 msgs/s, stored, in order)"
    if scen == "connections N=10000" and r.get("broker") == "imgate" and "connect_s" in r:
        ok = r["connected"] == r["clients"] and r["connect_s"] <= 20 and r["server_rss_after_mb"] <= 300
        return ("PASS" if ok else "FAIL") + " (<= 20 s, <= 300 MB)"
    return ""


def _peer_note(ratio: dict[str, Any], rate: str, cpu_key: str) -> str:
    """`` (<rate>; imgate CPU/msg <x>x)`` for a peer's row."""
    cpu = f"; imgate CPU/msg {ratio[cpu_key]}x" if cpu_key in ratio else ""
    return f" ({rate}{cpu})"


def _wire_sizes(r: dict[str, Any]) -> str:
    """``send+ack+delivery on the wire: JSON 511 B, CBOR 391 B (-23.5%), ...``: a wire-sizes summary line."""
    parts = []
    for key, label in (("json", "JSON"), ("cbor", "CBOR"), ("msgpack", "MessagePack")):
        if f"{key}_bytes" in r:
            saving = f" (-{r[f'{key}_saving_pct']}%)" if f"{key}_saving_pct" in r else ""
            parts.append(f"{label} {r[f'{key}_bytes']} B{saving}")
    return "send+ack+delivery on the wire: " + ", ".join(parts)


def table(results: list[dict[str, Any]]) -> str:
    ratios = {r["scenario"]: r for r in results if "ratio_mosquitto_over_imgate" in r}
    peer_ratios = {r["scenario"]: r for r in results if "ratio_imgate_over_ejabberd" in r}
    rows = ["| scenario | broker | result | p50 ms | p99 ms | lost / dup / failed | RSS MB | server CPU | target |",
            "| --- | --- | --- | ---: | ---: | --- | ---: | ---: | --- |"]
    for r in results:
        if "ratio_mosquitto_over_imgate" in r or "ratio_imgate_over_ejabberd" in r:
            continue
        scen = r.get("scenario", "?")
        if scen == "wire-sizes":
            continue  # one line per item and encoding: the summary lines below say it in short
        if scen == "wire-sizes summary":
            rows.append(f"| wire-sizes MQTT {r['protocol']}, {r['case']} message | imgate (in-process) | "
                        f"{_wire_sizes(r)} | - | - | - | - | - | |")
            continue
        platform = scen.startswith(("im-1to1", "group-fanout", "group-busy"))
        broker = r.get("broker", "imgate (bridge + SQLite)" if platform else "?")
        if scen.startswith("im-1to1") and broker == "ejabberd":
            broker = "ejabberd (mod_mam + SQLite)"
        if "error" in r:
            rows.append(f"| {scen} | {broker} | ERROR: {r['error'].splitlines()[0][:120]} | | | | | | {_target(r)} |")
            continue
        if scen.startswith("search-index"):
            result = (f"{r['messages']:,} messages indexed in {r['index_s']} s ({r['indexed_per_s']:,}/s); "
                      f"index {_num(r.get('index_mb'), ' MB')}")
            p50 = p99 = None
            bad, rss, cpu = "-", "-", "-"
            broker = f"search: {r['backend']}"
        elif scen.startswith("search-query"):
            result = f"{r['queries']} queries over {r['messages']:,} messages"
            if r.get("with_hits_pct") is not None:
                result += f", {r['with_hits_pct']}% with hits"
            p50, p99 = r["p50_ms"], r["p99_ms"]
            bad, rss, cpu = "-", "-", "-"
            broker = f"search: {r['backend']}"
        elif scen.startswith("group-fanout"):
            result = (f"{r['messages']} sends to {r['members']:,} members: last member in "
                      f"p50 {_num(r['last_member_p50_ms'], ' ms')} / max {_num(r['last_member_max_ms'], ' ms')}; "
                      f"1:1 meanwhile p99 {_num(r.get('concurrent_1to1_p99_ms'), ' ms')}")
            p50, p99 = r.get("last_member_p50_ms"), r.get("last_member_p99_ms")
            bad = f"{r['lost']} / - / 0"
            rss, cpu = _num(r.get("server_rss_mb")), "-"
        elif scen.startswith("group-busy"):
            result = f"{_num(r.get('msgs_per_s'), ' msgs/s', 0)}, " + ("in seq order" if r.get("in_order")
                                                                       else "**OUT OF ORDER**")
            if r.get("not_stored"):
                result += f"; **{r['not_stored']} acked but not in history**"
            p50, p99 = r.get("ack_p50_ms"), r.get("ack_p99_ms")  # send -> ack (stored)
            bad = f"{r['member_lost']} / {r['duplicated']} / {r['errors']}"  # every online member
            rss = _num(r.get("server_rss_mb"))
            cpu = _num(r.get("server_cpu_ms_per_msg"), " ms/msg", 3)
        elif scen.startswith("connections"):
            result = (f"{r['connected']:,}/{r['clients']:,} in {r['connect_s']:.2f} s "
                      f"({_num(r['connects_per_s'], '/s', 0)})")
            p50, p99 = r.get("connect_p50_ms"), r.get("connect_p99_ms")
            bad = f"0 / 0 / {r['failures']}"
            rss = (f"{_num(r['server_rss_before_mb'])} -> {_num(r['server_rss_after_mb'])} "
                   f"({_num(r['kb_per_conn'])} KB/conn)")
            cpu = f"{_num(r.get('server_cpu_ms_per_connect'), ' ms/conn', 2)}"
        else:
            result = f"{_num(r.get('msgs_per_s'), ' msgs/s', 0)}"
            if r.get("broker") == "mosquitto" and scen in ratios:
                result += _peer_note(ratios[scen], f"{ratios[scen]['ratio_mosquitto_over_imgate']}x imgate",
                                     "cpu_per_msg_imgate_over_mosquitto")
            if r.get("broker") == "ejabberd" and scen in peer_ratios:
                result += _peer_note(peer_ratios[scen], f"imgate {peer_ratios[scen]['ratio_imgate_over_ejabberd']}x "
                                     "ejabberd", "cpu_per_msg_imgate_over_ejabberd")
            if scen.startswith("im-1to1") and r.get("broker") == "ejabberd" and r.get("archived", 0) < r.get("delivered", 0):
                result += f"; **FAIL: {r['delivered'] - r.get('archived', 0)} delivered but not archived**"
            p50 = r.get("p50_ms", r.get("deliver_p50_ms"))
            p99 = r.get("p99_ms", r.get("deliver_p99_ms"))
            bad = f"{r.get('lost', '-')} / {r.get('duplicated', '-')} / 0"
            rss = _num(r.get("server_rss_mb"))
            cpu = "-" if "server_cpu_pct" not in r else (
                f"{_num(r.get('server_cpu_us_per_msg'), ' us/msg')} ({_num(r['server_cpu_pct'], '%', 0)})")
            if scen.startswith("im-1to1") and r.get("server_cpu_ms_per_msg") is not None:
                cpu = _num(r["server_cpu_ms_per_msg"], " ms/msg", 3)
        rows.append(f"| {scen} | {broker} | {result} | {_num(p50, digits=2)} | {_num(p99, digits=2)} | {bad} | {rss} "
                    f"| {cpu} | {_target(r)} |")
    return "\n".join(rows)


def main() -> None:
    if any(a == "--compare" or a.startswith("--compare=") for a in sys.argv[1:]):
        from bench.compare import main as compare  # this tree against a git revision, alternated
        sys.exit(compare(sys.argv[1:]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", metavar="REV", help="compare with git revision REV: see bench/compare.py")
    parser.add_argument("--quick", action="store_true", help="short smoke run: P=2, W=1,4, 2 s, N=200")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--seconds", type=float, help="load duration per scenario (default 10 im-1to1, 8 fanout-raw)")
    parser.add_argument("--database-url", help="im-1to1 only (default: a fresh SQLite file)")
    parser.add_argument("--no-ejabberd", action="store_true",
                        help="im-1to1 on imgate only (default: also on a private ejabberd as the peer, when installable)")
    args = parser.parse_args()
    raise_nofile()
    results: list[dict[str, Any]] = []
    failed = False
    started = time.perf_counter()
    for name, argv, limit in plan(args):
        print(f"## {name}: python -m {' '.join(argv)}", flush=True)
        out, code = asyncio.run(run_module(argv, limit))
        results += out
        failed |= code != 0
    print(f"\n## Summary ({time.perf_counter() - started:.0f} s{', --quick' if args.quick else ''}, {_revision()})\n")
    print(table(results), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
