"""Attack scenarios: normal users chat in pairs at a human-ish rate (each sends one message every
100-200 ms) through a quiet phase and then while one attacker, in its own process, attacks the
server; the normal users' send -> delivery and send -> ack p99 are compared between the two
(by the time each message was first sent), and everything they sent is audited.

The attacker is one of :data:`ATTACKS`:

- ``abuse`` (issue 10): one user floods from 4 connections (QoS 0 and QoS 1 messages, history,
  conversations and search RPCs, SUBSCRIBEs), as fast as the server reads (bench.faults.flood);
- ``ping-flood``, ``property-bomb``, ``connect-bomb``, ``web-idle-fds``, ``upload-hog``
  (issue 24): see bench.faults.attackers.

Some attacks hurt something other than the chat, which the other users then measure too, in both
phases (``probes``): ``connect``: fresh MQTT logins of other users, one after another per prober
(latency to CONNACK, failures: a refusal, or no CONNACK in 5 s); ``upload``: some of the chatting
users upload a small file every 0.5 s or so (``file.upload`` and the PUT: latency, and anything
but 201 is a failure).

Targets: nothing acknowledged lost (the audit); during the attack, every p99 (delivery, and each
probe's) at most ``ratio_target`` x its quiet p99, and no probe failing. The row's p99 column is
the delivery p99 during the attack. The attack window starts when the attacker reports that its
attack is in place and lasts ``attack_s``; the quiet window ends when the attacker is started."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from bench._common import cpu_s, pct
from bench.faults.attackers import http_put
from bench.faults.audit import Row, audit, load_store
from bench.faults.client import Fleet, GoodClient, RpcError, chat, drain, repair_all
from bench.faults.mqtt import Connection, ConnectionLost, MqttError
from bench.faults.server import ROOT, RssSampler
from bench.faults.world import ack_p, check_server, delivery_p, platform, run_id

_ATTACKER_START = 60.0  # seconds for an attacker to report its attack in place
_PROBE_TIMEOUT = 5.0


@dataclass(frozen=True)
class AttackKind:
    """How to run one attacker and what else its victims measure."""

    title: str  # the row's name; {users}, {connections} and the args' names are filled in
    module: str = "bench.faults.attackers"  # python -m module [kind] --port P --uid U --tokens ... [--sinks ...]
    connections: int = 0  # the attacking user's connections (a device token each); 0: no user
    sinks: int = 0  # users it aims messages at
    nofile: int | None = None  # the server's RLIMIT_NOFILE
    probes: tuple[str, ...] = ()  # "connect", "upload"
    args: dict[str, str] = field(default_factory=dict)  # more options for the attacker (--name value)


ATTACKS: dict[str, AttackKind] = {
    "abuse": AttackKind("abuse ({users} users, {connections} flood connections)", module="bench.faults.flood",
                        connections=4, sinks=2),
    "ping-flood": AttackKind("ping-flood ({users} users; {connections} connections write PINGREQs and stray acks, "
                             "never read)", connections=2),
    "property-bomb": AttackKind("property-bomb ({users} users; 1 MiB MQTT 5 PUBLISH and SUBSCRIBE of empty user "
                                "properties)", connections=2, sinks=1),
    "connect-bomb": AttackKind("connect-bomb ({users} users; 64 KiB MQTT 5 CONNECTs of user properties from "
                               "{workers} connections, unauthenticated)", probes=("connect",), args={"workers": "8"}),
    "web-idle-fds": AttackKind("web-idle-fds ({users} users; {sockets} idle web sockets, server RLIMIT_NOFILE 1024)",
                               nofile=1024, probes=("connect",), args={"sockets": "1100"}),
    "upload-hog": AttackKind("upload-hog ({users} users; {uploads} stalled uploads)", connections=1,
                             probes=("upload",), args={"uploads": "64"}),
}


@dataclass
class AttackConfig:
    kind: str  # a key of ATTACKS
    users: int = 50  # normal users, in pairs
    interval: tuple[float, float] = (0.1, 0.2)
    warmup_s: float = 2.0
    quiet_s: float = 10.0
    attack_s: float = 10.0
    ratio_target: float = 3.0
    probers: int = 2  # "connect" probe: users logging in one after another (each its own)
    probe_every: float = 0.1  # seconds between one prober's attempts
    uploaders: int = 4  # "upload" probe: chatting users who also upload
    upload_every: float = 0.5
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Sample:
    t: float  # perf_counter when the attempt began
    seconds: float
    outcome: str  # "ok", or what went wrong


@dataclass
class Window:
    """The samples of one probe in one phase."""

    n: int
    p99_ms: float  # of the successful ones (NaN: none)
    failed: Counter[str]

    @classmethod
    def of(cls, samples: list[Sample], since: float, before: float) -> Window:
        chosen = [s for s in samples if since <= s.t < before]
        ok = [s.seconds for s in chosen if s.outcome == "ok"]
        return cls(len(chosen), pct(ok, 99), Counter(s.outcome for s in chosen if s.outcome != "ok"))

    def text(self) -> str:
        fails = sum(self.failed.values())
        p99 = "-" if math.isnan(self.p99_ms) else f"{self.p99_ms:.1f} ms"
        return f"{self.n - fails}/{self.n} ok, p99 {p99}" + (f" ({dict(self.failed)})" if fails else "")


def judge(row: Row, label: str, quiet_ms: float, attack_ms: float, target: float) -> float:
    """Fail ``row`` when the attack's p99 is over ``target`` x the quiet one; returns the ratio
    (inf when the quiet p99 is 0 or either is unknown)."""
    if math.isnan(quiet_ms) or math.isnan(attack_ms) or quiet_ms <= 0:
        ratio = float("inf")
    else:
        ratio = attack_ms / quiet_ms
    if ratio > target:
        row.fail(f"{label} p99 during the attack is {ratio:.1f}x the quiet p99 (target <= {target:g}x)")
    return ratio


def judge_probe(row: Row, label: str, quiet: Window, attack: Window, target: float) -> float:
    """Fail ``row`` for a probe that failed in either phase, or whose p99 grew over ``target`` x."""
    if quiet.failed:
        row.fail(f"{label}: {sum(quiet.failed.values())} of {quiet.n} failed in the quiet phase "
                 f"({dict(quiet.failed)})")
    if attack.failed:
        row.fail(f"{label}: {sum(attack.failed.values())} of {attack.n} failed during the attack "
                 f"({dict(attack.failed)})")
    if not attack.n:
        row.fail(f"{label}: no attempt during the attack")
    if attack.n == sum(attack.failed.values()):
        return float("inf")  # nothing to compare (and already failed)
    return judge(row, label, quiet.p99_ms, attack.p99_ms, target)


def attacker_argv(kind_name: str, port: int, web_port: int, uid: str | None, tokens: dict[str, str],
                  sinks: list[str], max_seconds: float) -> list[str]:
    """The attacker's command line (after ``python``)."""
    kind = ATTACKS[kind_name]
    argv = ["-m", kind.module]
    if kind.module == "bench.faults.attackers":
        argv += [kind_name, "--web-port", str(web_port), "--max-seconds", f"{max_seconds:g}"]
        for name, value in kind.args.items():
            argv += [f"--{name.replace('_', '-')}", value]
    argv += ["--port", str(port)]
    if uid is not None:
        argv += ["--uid", uid, "--tokens", *(f"{d}={t}" for d, t in tokens.items())]
    if sinks:
        argv += ["--sinks", *sinks]
    return argv


async def _start_attacker(argv: list[str]) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(sys.executable, *argv, cwd=ROOT,
                                                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                                stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), _ATTACKER_START)
    except TimeoutError:
        line = b"(nothing)"
    if line.strip() != b"READY":
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        msg = f"attacker did not start: {line!r}"
        raise RuntimeError(msg)
    return proc


async def _stop_attacker(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return {"error": "attacker did not stop"}
    lines = out.decode(errors="replace").strip().splitlines()
    try:
        stats = json.loads(lines[-1]) if lines else {}
    except ValueError:
        return {"output": lines[-1][:200]}
    return stats if isinstance(stats, dict) else {"output": str(stats)[:200]}


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


async def connect_probe(port: int, uid: str, token: str, every: float, stop: asyncio.Event,
                        samples: list[Sample]) -> None:
    """Log ``uid`` in (clean session) and out again, one attempt after another, until ``stop``."""
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            conn, code, _ = await Connection.open(port, f"{uid}:d", uid, token, clean=True, keepalive=60,
                                                  timeout=_PROBE_TIMEOUT)
        except TimeoutError:
            outcome = "no CONNACK in 5 s"
        except (OSError, MqttError) as exc:
            outcome = type(exc).__name__
        else:
            outcome = "ok" if code == 0 else f"CONNACK {code}"
            conn.disconnect()
        samples.append(Sample(t0, time.perf_counter() - t0, outcome))
        await _pause(stop, every)


async def upload_probe(client: GoodClient, every: float, stop: asyncio.Event, samples: list[Sample]) -> None:
    """``file.upload`` and the PUT of a small file, one after another, until ``stop``."""
    data = os.urandom(2048)
    declare = {"mime": "application/octet-stream", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            ticket = await client.rpc("file.upload", declare, timeout=_PROBE_TIMEOUT)
            status = await http_put(ticket["url"], ticket["headers"], data, _PROBE_TIMEOUT)
            outcome = "ok" if status == 201 else f"HTTP {status}"
        except RpcError as exc:
            outcome = f"file.upload {exc.code}"
        except TimeoutError:
            outcome = "no answer in 5 s"
        except (OSError, ConnectionLost) as exc:
            outcome = type(exc).__name__
        samples.append(Sample(t0, time.perf_counter() - t0, outcome))
        await _pause(stop, every)


async def run_attack(cfg: AttackConfig) -> Row:
    kind = ATTACKS[cfg.kind]
    run = run_id()
    pairs = max(1, cfg.users // 2)
    normal = [f"{run}a{i}" for i in range(pairs)] + [f"{run}b{i}" for i in range(pairs)]
    attacker = f"{run}x" if kind.connections else None
    devices = [f"x{k}" for k in range(kind.connections)]
    sinks = [f"{run}sink{k}" for k in range(kind.sinks)]
    probers = [f"{run}p{k}" for k in range(cfg.probers)] if "connect" in kind.probes else []
    row = Row(kind.title.format(users=2 * pairs, connections=kind.connections, **kind.args))
    uids = [*normal, *([attacker] if attacker else []), *sinks, *probers]
    async with platform(uids, env=cfg.env, extra_devices={attacker: devices} if attacker else None,
                        nofile=kind.nofile) as plat:
        server = plat.server
        async with Fleet(server.port, run=run) as fleet:
            clients = {uid: fleet.client(uid, plat.tokens[uid]) for uid in normal}
            await fleet.start_all(list(clients.values()))
            rss = RssSampler(server.pid)
            rss.start()
            t_quiet = time.perf_counter() + cfg.warmup_s
            t_planned = t_quiet + cfg.quiet_s
            horizon = t_planned + _ATTACKER_START + cfg.attack_s  # the chat is cancelled at the real end
            tasks = []
            for i in range(pairs):
                a, b = clients[f"{run}a{i}"], clients[f"{run}b{i}"]
                tasks.append(asyncio.create_task(chat(a, until=horizon, interval=cfg.interval, to=b.uid),
                                                 name=f"faults.chat.{a.uid}"))
                tasks.append(asyncio.create_task(chat(b, until=horizon, interval=cfg.interval, to=a.uid),
                                                 name=f"faults.chat.{b.uid}"))
            stop_probes = asyncio.Event()
            probes: dict[str, list[Sample]] = {p: [] for p in kind.probes}
            jobs: list[Coroutine[Any, Any, None]] = [
                connect_probe(server.port, uid, plat.tokens[uid], cfg.probe_every, stop_probes, probes["connect"])
                for uid in probers]
            if "upload" in kind.probes:
                jobs += [upload_probe(c, cfg.upload_every, stop_probes, probes["upload"])
                         for c in list(clients.values())[:cfg.uploaders]]
            probe_tasks = [asyncio.create_task(job, name="faults.probe") for job in jobs]
            await asyncio.sleep(t_planned - time.perf_counter())  # warm-up and quiet phase run
            cpu_quiet = cpu_s(server.pid)
            rss_before = rss.sample()
            argv = attacker_argv(cfg.kind, server.port, server.web_port, attacker,
                                 {d: plat.tokens[f"{attacker}:{d}"] for d in devices}, sinks,
                                 _ATTACKER_START + cfg.attack_s + 60)
            t_launch = time.perf_counter()
            try:
                proc = await _start_attacker(argv)
            finally:
                t_attack = time.perf_counter()  # the attack is in place now
            try:
                while time.perf_counter() < t_attack + cfg.attack_s and server.alive:
                    await asyncio.sleep(min(0.25, max(0.0, t_attack + cfg.attack_s - time.perf_counter())))
            finally:
                t_end = time.perf_counter()
                stats = await _stop_attacker(proc)
            cpu_attack = cpu_s(server.pid) - cpu_quiet if server.alive else float("nan")
            await rss.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            stop_probes.set()
            await asyncio.gather(*probe_tasks, return_exceptions=True)
            left = await drain(list(clients.values()), 120)
            failures = await repair_all(list(clients.values()))
            store = await load_store(plat.db_url)
            audit(row, store, list(fleet.sent.values()), list(clients.values()))
            check_server(row, server)
            quiet_d, attack_d = delivery_p(fleet, 99, t_quiet, t_planned), delivery_p(fleet, 99, t_attack, t_end)
            quiet_a = ack_p(fleet, 99, None, t_quiet, t_planned)
            attack_a = ack_p(fleet, 99, None, t_attack, t_end)
            row.p99_ms = attack_d
            ratio = judge(row, "send->delivery", quiet_d, attack_d, cfg.ratio_target)
            rss_peak = max((mb for t, mb in rss.samples if t >= t_launch), default=float("nan"))
            row.notes += [
                (f"send->delivery p99 quiet {quiet_d:.1f} ms, attack {attack_d:.1f} ms ({ratio:.1f}x; target <= "
                 f"{cfg.ratio_target:g}x)"),
                f"send->ack p99 quiet {quiet_a:.1f} ms, attack {attack_a:.1f} ms",
            ]
            extra: dict[str, Any] = {}
            for name, samples in probes.items():
                label = {"connect": "new MQTT logins", "upload": "uploads"}[name]
                qw, aw = Window.of(samples, t_quiet, t_planned), Window.of(samples, t_attack, t_end)
                pr = judge_probe(row, label, qw, aw, cfg.ratio_target)
                row.notes.append(f"{label}: quiet {qw.text()}; attack {aw.text()} ({pr:.1f}x)")
                extra[f"{name}_probe"] = {"quiet": {"n": qw.n, "p99_ms": round(qw.p99_ms, 1), "failed": qw.failed},
                                          "attack": {"n": aw.n, "p99_ms": round(aw.p99_ms, 1), "failed": aw.failed},
                                          "ratio": round(pr, 2)}
            row.notes += [
                "attacker: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.items()) if k != "seconds"),
                (f"server CPU during the attack {100 * cpu_attack / max(t_end - t_attack, 1e-9):.0f}%, "
                 f"RSS {rss_before:.0f} MB before, peak {rss_peak:.0f} MB"),
            ]
            if left:
                row.fail(f"{left} normal message(s) unacked 120 s after the load")
            if failures:
                row.fail(f"repair failed for {len(failures)} client(s): {failures[0]}")
            row.extra.update({
                "kind": cfg.kind, "users": 2 * pairs, "quiet_s": cfg.quiet_s,
                "attack_s": round(t_end - t_attack, 2), "attacker_ready_s": round(t_attack - t_launch, 2),
                "quiet_deliver_p99_ms": round(quiet_d, 1), "attack_deliver_p99_ms": round(attack_d, 1),
                "quiet_deliver_p50_ms": round(delivery_p(fleet, 50, t_quiet, t_planned), 1),
                "attack_deliver_p50_ms": round(delivery_p(fleet, 50, t_attack, t_end), 1),
                "quiet_ack_p99_ms": round(quiet_a, 1), "attack_ack_p99_ms": round(attack_a, 1),
                "ratio": round(ratio, 2), "attacker": stats, "server_rss_before_mb": round(rss_before, 1),
                "server_rss_peak_mb": round(rss_peak, 1), **extra,
            })
    return row
