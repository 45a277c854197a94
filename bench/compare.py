"""Compare two builds: the working tree (A) against a git revision (B), runs alternated.

    python -m bench --compare REV [--only im-1to1 fanout-raw ...] [--rounds 3] [--threshold 0.95]
                    [--pairs 10] [--window 1] [--seconds S] [--quick]

A is this checkout as it is (uncommitted changes included), run with its own ``.venv`` python.
B is ``git archive REV`` unpacked in ``.bench-cache/rev-<sha>/`` with a venv of its own
(``python -m venv`` + ``pip install -e '.[test]'``), made once per revision and reused. Each
im-1to1 and fanout-raw run A's copy of the benchmark for both sides, with B's server started from
B's tree and venv (``IMGATE_BENCH_SERVER``; B's own code prepares B's users), so only the servers
differ. The other scenarios run ``python -m bench.<module>`` with each tree as the working
directory and that tree's python (their own server and their own copy of the benchmark); only the
options both copies accept are passed, and a field one side does not report is shown as "-".
Rounds alternate A, B, A, B.

One Markdown table, one line per scenario row: each run's rate, the medians, median A / median B,
the server's CPU per message and p99 latency (medians) when reported, and a verdict. Exit status 1
when a row's median rate ratio is below ``--threshold`` ("slower"), or a run failed, lost or
duplicated messages, or could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._common import raise_nofile, run_module

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("im-1to1", "fanout-raw", "connections", "group-fanout", "group-busy", "search", "store-path")
MODULES = {"im-1to1": "bench.im_1to1", "fanout-raw": "bench.fanout_raw", "connections": "bench.connections",
           "group-fanout": "bench.group_fanout", "group-busy": "bench.group_busy", "search": "bench.search",
           "store-path": "bench.store_path"}
_READY = ".bench-ready"
# Scenarios whose generator (A's) can drive another build's server: bench._common.server_build.
SAME_GENERATOR = ("im-1to1", "fanout-raw", "group-busy")


# --- the two sides ---------------------------------------------------------------------------------

@dataclass
class Side:
    label: str  # "A" or "B"
    name: str  # what it is, for the report
    tree: Path
    python: Path

    def env(self) -> dict[str, str]:
        """The environment of this side's processes: its venv first on PATH, nothing from the other."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        venv = self.python.parent.parent
        if (venv / "pyvenv.cfg").exists():
            env["VIRTUAL_ENV"] = str(venv)
            env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        return env


def _git(*args: str, cwd: Path = ROOT) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    if out.returncode != 0:
        msg = f"git {' '.join(args)}: {out.stderr.strip() or out.stdout.strip()}"
        raise RuntimeError(msg)
    return out.stdout.strip()


def _side_a() -> Side:
    python = ROOT / ".venv" / "bin" / "python"
    if not python.exists():
        python = Path(sys.executable)
    head = _git("rev-parse", "--short", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return Side("A", f"working tree (HEAD {head}{' + uncommitted changes' if dirty else ''})", ROOT, python)


def _base_python(python: Path) -> str:
    """The interpreter a venv was made from (so that B runs on the same Python as A)."""
    out = subprocess.run([str(python), "-c", "import sys; print(getattr(sys, '_base_executable', sys.executable))"],
                         capture_output=True, text=True, timeout=60, check=False)
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "python3"


def _unpack(sha: str, tree: Path) -> None:
    """``git archive sha | tar -x`` into ``tree`` (through a temporary directory, so a half-written
    tree is never taken for a finished one)."""
    if (tree / _READY).exists():
        return
    tmp = tree.with_name(tree.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    print(f"compare: unpacking {sha[:12]} into {tree}", file=sys.stderr, flush=True)
    archive = subprocess.Popen(["git", "archive", "--format=tar", sha], cwd=ROOT, stdout=subprocess.PIPE)
    assert archive.stdout is not None
    untar = subprocess.run(["tar", "-x", "-C", str(tmp)], stdin=archive.stdout, check=False)
    archive.stdout.close()
    if archive.wait() != 0 or untar.returncode != 0:
        msg = f"git archive {sha} | tar -x failed"
        raise RuntimeError(msg)
    (tmp / _READY).write_text(sha + "\n")
    shutil.rmtree(tree, ignore_errors=True)
    tmp.rename(tree)


def _venv(tree: Path, base_python: str) -> Path:
    """``tree/.venv`` with the tree installed (editable, with its test extras when it has them);
    made once, reused while its ready-stamp is there."""
    venv = tree / ".venv"
    python = venv / "bin" / "python"
    if (venv / _READY).exists():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    print(f"compare: making {venv} from {base_python} (pip install -e '.[test]')", file=sys.stderr, flush=True)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if subprocess.run([*pip, "-e", ".[test]"], cwd=tree, check=False, timeout=1800).returncode != 0:
        print("compare: '.[test]' did not install; trying '.' alone", file=sys.stderr, flush=True)
        subprocess.run([*pip, "-e", "."], cwd=tree, check=True, timeout=1800)
    subprocess.run([str(python), "-c", "import imgate, aiomqtt"], cwd=tree, check=True, timeout=120)
    subprocess.run([str(python), "-m", "compileall", "-q", "bench", "broker", "bridge", "services", "config", "imgate"],
                   cwd=tree, check=False, timeout=300, stdout=subprocess.DEVNULL)
    (venv / _READY).write_text("ok\n")
    return python


def _side_b(rev: str, cache: Path, base_python: str) -> Side:
    sha = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    tree = cache / f"rev-{sha}"
    _unpack(sha, tree)
    return Side("B", f"{rev} ({sha[:12]})", tree, _venv(tree, base_python))


# --- what each scenario module is given ----------------------------------------------------------

def _wanted(scenario: str, args: argparse.Namespace) -> tuple[list[tuple[str, list[str]]], float]:
    """(option, values) to pass to the scenario's module, and its time limit in seconds."""
    pairs = [str(p) for p in args.pairs]
    windows = [str(w) for w in args.window]
    n_load = len(pairs) * len(windows)
    db = [("--database-url", [args.database_url])] if args.database_url else []
    if scenario == "im-1to1":
        s = args.seconds or (2.0 if args.quick else 10.0)
        return ([("--pairs", pairs), ("--window", windows), ("--seconds", [str(s)]), ("--servers", ["imgate"]), *db],
                n_load * (s + 120) + 60)
    if scenario == "fanout-raw":
        s = args.seconds or (2.0 if args.quick else 8.0)
        return ([("--pairs", pairs), ("--window", windows), ("--seconds", [str(s)]), ("--brokers", ["imgate"])],
                2 * n_load * (s + 90) + 60)
    if scenario == "connections":
        clients = [str(c) for c in args.clients] if args.clients else (["200"] if args.quick else ["1000"])
        return [("--clients", clients), ("--brokers", ["imgate"])], len(clients) * 300 + 60
    if scenario == "group-fanout":
        members, messages = (["100"], "5") if args.quick else ([str(args.members)], "20")
        return [("--members", members), ("--messages", [messages])], 600
    if scenario == "group-busy":
        s = args.seconds or (2.0 if args.quick else 6.0)
        return ([("--members", ["20" if args.quick else "100"]), ("--senders", ["10"]), ("--window", windows),
                 ("--seconds", [str(s)])], len(windows) * (s + 120) + 60)
    if scenario == "search":
        stored, asked = ("5000", "50") if args.quick else ("20000", "200")
        return [("--messages", [stored]), ("--queries", [asked])], 1800
    # store-path
    return [("--messages", ["500" if args.quick else "2000"]), *db], 600


def _module_options(side: Side, module: str) -> set[str] | None:
    """The long options ``python -m module`` accepts in this side's tree (from its argparse usage
    line), or None when the tree has no such module."""
    rel = Path(*module.split("."))
    if not (side.tree / rel.with_suffix(".py")).exists() and not (side.tree / rel / "__main__.py").exists():
        return None
    out = subprocess.run([str(side.python), "-m", module, "--help"], cwd=side.tree, env=side.env(),
                         capture_output=True, text=True, timeout=120, check=False)
    if out.returncode != 0:
        msg = f"{side.label}: python -m {module} --help failed:\n{out.stderr.strip()[-2000:]}"
        raise RuntimeError(msg)
    usage = out.stdout.split("\n\n", 1)[0]
    return set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", usage))


# --- running -----------------------------------------------------------------------------------

# --- rows ------------------------------------------------------------------------------------------

@dataclass
class Sample:
    """One run's numbers for one row; None where the run did not report it."""
    rate: float | None = None
    cpu: float | None = None
    p99: float | None = None
    problem: str | None = None  # lost/duplicated/failed/error


@dataclass
class Row:
    scenario: str
    name: str
    metric: str  # what `rate` is, e.g. "msgs/s"
    higher_is_better: bool = True
    cpu_unit: str = ""
    a: list[Sample] = field(default_factory=list)
    b: list[Sample] = field(default_factory=list)


def _problem(r: dict[str, Any]) -> str | None:
    if r.get("error"):
        return "error: " + str(r["error"]).splitlines()[0][:100]
    bad = [f"{k} {r[k]}" for k in ("lost", "duplicated", "failures", "member_lost", "not_stored", "errors")
           if isinstance(r.get(k), int) and r[k] > 0]
    if r.get("in_order") is False:
        bad.append("out of order")
    if isinstance(r.get("connected"), int) and isinstance(r.get("clients"), int) and r["connected"] < r["clients"]:
        bad.append(f"connected {r['connected']}/{r['clients']}")
    return ", ".join(bad) or None


def _num(r: dict[str, Any], key: str) -> float | None:
    v = r.get(key)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


# (row name suffix, metric label, rate key, higher is better, cpu key, cpu unit, p99 key)
_Spec = tuple[str, str, str, bool, str | None, str, str | None]


def _specs(r: dict[str, Any]) -> list[_Spec]:
    scen = str(r.get("scenario", ""))
    if scen.startswith("store-path"):
        return [(" one at a time", "msgs/s", "one_at_a_time_msgs_per_s", True, "one_at_a_time_cpu_us_per_msg",
                 "us", None),
                (" ten at once", "msgs/s", "ten_at_once_msgs_per_s", True, "ten_at_once_cpu_us_per_msg", "us", None)]
    if scen.startswith("connections"):
        return [("", "connects/s", "connects_per_s", True, "server_cpu_ms_per_connect", "ms", "connect_p99_ms")]
    if scen.startswith("group-fanout"):
        return [("", "deliveries/s", "deliveries_per_s", True, None, "", "last_member_p99_ms")]
    if scen.startswith("group-busy"):
        return [("", "msgs/s", "msgs_per_s", True, "server_cpu_ms_per_msg", "ms", "ack_p99_ms")]
    if scen.startswith("search-index"):
        return [("", "indexed/s", "indexed_per_s", True, None, "", None)]
    if scen.startswith("search-query"):
        return [("", "p50 ms", "p50_ms", False, None, "", "p99_ms")]
    if "server_cpu_us_per_msg" in r:  # fanout-raw
        return [("", "msgs/s", "msgs_per_s", True, "server_cpu_us_per_msg", "us", "p99_ms")]
    return [("", "msgs/s", "msgs_per_s", True, "server_cpu_ms_per_msg", "ms", "deliver_p99_ms")]


def collect(rows: dict[str, Row], scenario: str, side: str, results: list[dict[str, Any]]) -> None:
    """Add one module run's JSON lines to ``rows`` (keyed by row name)."""
    for r in results:
        if "scenario" not in r or any(k.startswith("ratio_") for k in r):  # a ratio between two servers
            continue
        name = str(r["scenario"])
        if r.get("broker") not in (None, "imgate"):
            name += f" ({r['broker']})"
        for suffix, metric, rate, higher, cpu, unit, p99 in _specs(r):
            row = rows.setdefault(name + suffix, Row(scenario, name + suffix, metric, higher, unit))
            if cpu and not row.cpu_unit:
                row.cpu_unit = unit
            sample = Sample(_num(r, rate), _num(r, cpu) if cpu else None, _num(r, p99) if p99 else None, _problem(r))
            (row.a if side == "A" else row.b).append(sample)


def _median(values: list[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return statistics.median(vs) if vs else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _fmt(v: float | None, digits: int = 1) -> str:
    if v is None:
        return "-"
    if digits == 0 or abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def _cpu_fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


@dataclass
class Verdict:
    text: str
    failed: bool


def verdict(row: Row, threshold: float, expected_runs: int) -> Verdict:
    problems = [f"{side} {s.problem}" for side, runs in (("A", row.a), ("B", row.b)) for s in runs if s.problem]
    if problems:
        return Verdict("FAILED: " + "; ".join(problems), True)
    if not row.b:
        return Verdict("no B row", False)
    if not row.a:
        return Verdict("FAILED: no A row", True)
    missing = [side for side, runs in (("A", row.a), ("B", row.b)) if len(runs) < expected_runs]
    ratio = _ratio(_median([s.rate for s in row.a]), _median([s.rate for s in row.b]))
    if ratio is None:
        return Verdict("FAILED: no rate to compare", True)
    speed = ratio if row.higher_is_better else 1 / ratio
    if speed < threshold:
        text, failed = f"slower ({(1 - speed) * 100:.0f}%)", True
    elif speed > 1 / threshold:
        text, failed = f"faster ({(speed - 1) * 100:.0f}%)", False
    else:
        text, failed = "same", False
    cpu = _ratio(_median([s.cpu for s in row.a]), _median([s.cpu for s in row.b]))
    if cpu is not None and cpu > 1 / threshold:
        text += f"; CPU/msg +{(cpu - 1) * 100:.0f}%"
    if missing:
        text += f"; fewer runs than rounds: {', '.join(missing)}"
    return Verdict(text, failed)


def table(rows: list[Row], threshold: float, expected_runs: int) -> tuple[str, bool]:
    lines = [("| scenario | metric | A runs | B runs | median A | median B | A/B | server CPU/msg A "
              "| server CPU/msg B | CPU A/B | p99 ms A | p99 ms B | verdict |"),
             "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    failed = False
    for row in rows:
        ra, rb = _median([s.rate for s in row.a]), _median([s.rate for s in row.b])
        ca, cb = _median([s.cpu for s in row.a]), _median([s.cpu for s in row.b])
        pa, pb = _median([s.p99 for s in row.a]), _median([s.p99 for s in row.b])
        unit = f" {row.cpu_unit}" if row.cpu_unit else ""
        runs_a = ", ".join(_fmt(s.rate, 0 if row.higher_is_better else 2) for s in row.a) or "-"
        runs_b = ", ".join(_fmt(s.rate, 0 if row.higher_is_better else 2) for s in row.b) or "-"
        digits = 0 if row.higher_is_better else 2
        rr, cr = _ratio(ra, rb), _ratio(ca, cb)
        v = verdict(row, threshold, expected_runs)
        failed |= v.failed
        lines.append(
            f"| {row.name} | {row.metric} | {runs_a} | {runs_b} | {_fmt(ra, digits)} | {_fmt(rb, digits)} "
            f"| {_fmt(rr, 3)} | {_cpu_fmt(ca)}{unit if ca is not None else ''} "
            f"| {_cpu_fmt(cb)}{unit if cb is not None else ''} | {_fmt(cr, 3)} | {_fmt(pa, 2)} | {_fmt(pb, 2)} "
            f"| {v.text} |")
    return "\n".join(lines), failed


# --- main --------------------------------------------------------------------------------------

def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", required=True, metavar="REV", help="git revision to compare with (B)")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, default=["im-1to1", "fanout-raw"],
                        help="scenarios (default: im-1to1 fanout-raw)")
    parser.add_argument("--rounds", type=int, default=3, help="A/B pairs of runs per scenario (default 3)")
    parser.add_argument("--threshold", type=float, default=0.95,
                        help="'slower' (exit 1) when median A / median B is below this (default 0.95)")
    parser.add_argument("--pairs", type=int, nargs="+", help="im-1to1 and fanout-raw (default 10; --quick 2)")
    parser.add_argument("--window", type=int, nargs="+", help="im-1to1 and fanout-raw (default 1; --quick 1 4)")
    parser.add_argument("--seconds", type=float, help="load duration (default 10 im-1to1, 8 fanout-raw; --quick 2)")
    parser.add_argument("--clients", type=int, nargs="+", help="connections (default 1000; --quick 200)")
    parser.add_argument("--members", type=int, default=1000, help="group-fanout (default 1000; --quick 100)")
    parser.add_argument("--database-url", help="im-1to1 and store-path (default: a fresh SQLite file per run)")
    parser.add_argument("--quick", action="store_true", help="small sizes, as python -m bench --quick")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".bench-cache",
                        help="where B's tree and venv are kept (default .bench-cache in the repo)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    args.pairs = args.pairs or ([2] if args.quick else [10])
    args.window = args.window or ([1, 4] if args.quick else [1])
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    raise_nofile()
    a = _side_a()
    try:
        b = _side_b(args.compare, args.cache_dir.resolve(), _base_python(a.python))
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        print(f"compare: cannot prepare {args.compare}: {e}", file=sys.stderr)
        return 1
    print(f"## A: {a.name}, {a.python}\n## B: {b.name}, {b.tree}", flush=True)

    plans: list[tuple[str, list[str], float]] = []
    failed = False
    for scenario in args.only:
        module = MODULES[scenario]
        try:
            opts_a = _module_options(a, module)
            # A's module drives both servers in these: B needs only the server, not the module.
            opts_b = opts_a if scenario in SAME_GENERATOR else _module_options(b, module)
        except (RuntimeError, subprocess.SubprocessError, OSError) as e:
            print(f"compare: {scenario}: {e}", file=sys.stderr)
            failed = True
            continue
        if opts_a is None or opts_b is None:
            print(f"compare: {scenario}: {module} is not in {'A' if opts_a is None else 'B'}; skipped", flush=True)
            continue
        wanted, limit = _wanted(scenario, args)
        argv = [module]
        for opt, values in wanted:
            if opt in opts_a and opt in opts_b:
                argv += [opt, *values]
            else:
                where = " and ".join(s for s, o in (("A", opts_a), ("B", opts_b)) if opt not in o)
                print(f"compare: {scenario}: {opt} not accepted by {module} in {where}; not passed", flush=True)
        plans.append((scenario, argv, limit))

    if not plans:
        print("compare: nothing to compare", flush=True)
        return 1 if failed else 0
    rows: dict[str, Row] = {}
    exit_codes: list[str] = []
    for rnd in range(1, args.rounds + 1):
        for scenario, argv, limit in plans:
            for side in (a, b):
                tag = f"{side.label} {rnd}/{args.rounds}"
                # One generator for both: A's module drives B's server (IMGATE_BENCH_SERVER), so
                # only the servers differ; other scenarios run each side's own module.
                runner = a if scenario in SAME_GENERATOR else side
                env = runner.env()
                if runner is not side:
                    env["IMGATE_BENCH_SERVER"] = f"{side.python}:{side.tree}"
                print(f"## [{tag}] {scenario}: cd {runner.tree} && {runner.python} -m {' '.join(argv)}"
                      f"{f' (server: {side.tree})' if runner is not side else ''}", flush=True)
                results, code = asyncio.run(run_module(argv, limit, python=str(runner.python), cwd=runner.tree,
                                                       env=env, tag=tag))
                collect(rows, scenario, side.label, results)
                if code != 0:
                    exit_codes.append(f"{scenario} [{tag}] exited with {code}")

    print(f"\n## {a.label} = {a.name}; {b.label} = {b.name}; {args.rounds} round(s) alternated A/B; "
          f"'slower' below {args.threshold}\n")
    text, slower = table(list(rows.values()), args.threshold, args.rounds)
    print(text)
    for line in exit_codes:
        print(f"\nFAILED: {line}")
    if not rows and plans:
        print("\nFAILED: no results")
    failed |= slower or bool(exit_codes) or (not rows and bool(plans))
    print(f"\n{'FAIL' if failed else 'OK'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
