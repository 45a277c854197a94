"""search: indexing throughput and search latency over N stored messages (default 100,000).

The messages are stored through the real MessageService (group commit, durable SQLite, the
message-event queue), in 1:1 conversations and groups, from U users: English made of Zipf-
distributed words from a 5,000-word vocabulary, Chinese made of Zipf-distributed characters from
2,500 common ones (no spaces), and mixed text. Then:

- indexing: the SearchService indexer drains the queue from empty (as ``imgate run`` does),
  messages indexed per second;
- search: SearchService.search as the ``search`` RPC calls it (the caller's membership windows
  from the database, the index query, the check of the hits against the database), for several
  kinds of query, each asked by a member who can see the message it was taken from; p50/p99.

    python -m bench.search --messages 100000
    python -m bench.search --messages 100000 --backend meilisearch --meili-url http://127.0.0.1:7700 --meili-key KEY
    python -m bench.search --messages 100000 --backend postgres --database-url postgres://postgres@127.0.0.1:5432

With ``--backend postgres`` the messages and the index are in a fresh PostgreSQL database on the
server of ``--database-url`` (dropped afterwards); the other backends store the messages in
SQLite, or in that server when ``--database-url`` is given.

Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import pct
from config.settings import load_settings
from imgate.app import build_search, build_services, open_database
from services.ids import SystemClock
from services.messages.service import SendCommand

_CJK_COMMON = [chr(c) for c in range(0x4E00, 0x4E00 + 20902, 8)][:2500]  # 2,500 distinct characters


def _vocabulary(rng: random.Random, n: int) -> list[str]:
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "be", "do", "fu", "ga", "hi", "jo", "pe", "ri",
                 "su", "ta", "wo", "ze", "an", "el", "in", "or", "ul", "ch", "sh", "th", "st", "tr"]
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words, key=lambda w: (len(w), w))


class Corpus:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.words = _vocabulary(self.rng, 5000)
        self._word_w = [1 / (i + 1) for i in range(len(self.words))]
        self._char_w = [1 / (i + 1) ** 0.9 for i in range(len(_CJK_COMMON))]

    def english(self) -> str:
        return " ".join(self.rng.choices(self.words, self._word_w, k=self.rng.randint(3, 15)))

    def chinese(self) -> str:
        return "".join(self.rng.choices(_CJK_COMMON, self._char_w, k=self.rng.randint(4, 24)))

    def text(self) -> str:
        r = self.rng.random()
        if r < 0.5:
            return self.english()
        if r < 0.9:
            return self.chinese()
        return f"{self.chinese()} {self.rng.choice(self.words[:500])} {self.chinese()}"


async def store(svc: Any, corpus: Corpus, *, users: int, messages: int, groups: int,
                group_size: int) -> list[tuple[str, str, str]]:
    """Users, friendships, groups and ``messages`` messages; returns (sender, conv, text) of each."""
    rng = corpus.rng
    uids = [f"u{i}" for i in range(users)]
    for uid in uids:
        await svc.users.add_user(uid)
    friends = {u: rng.sample(uids, 20) for u in uids}
    gids = []
    for g in range(groups):
        members = rng.sample(uids, group_size)
        change = await svc.groups.create(members[0], f"group {g}", members[1:])
        gids.append((change.gid, members))
    sent: list[tuple[str, str, str]] = []
    batch: list[SendCommand] = []
    for i in range(messages):
        text = corpus.text()
        if rng.random() < 0.2:
            gid, members = rng.choice(gids)
            cmd = SendCommand(rng.choice(members), f"c{i}", None, gid, "text", text, None)
        else:
            sender = rng.choice(uids)
            to = rng.choice([f for f in friends[sender] if f != sender])
            cmd = SendCommand(sender, f"c{i}", to, None, "text", text, None)
        batch.append(cmd)
        if len(batch) == 1000 or i == messages - 1:
            results = await asyncio.gather(*(svc.messages.send(c) for c in batch))
            sent += [(c.sender, r.message.conv, c.text or "") for c, r in zip(batch, results, strict=True)]
            batch = []
    return sent


def queries(corpus: Corpus, sent: list[tuple[str, str, str]], kind: str, n: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(uid, q, filters): each taken from a message its sender can see."""
    rng = corpus.rng
    english = [s for s in sent if s[2] and s[2][0].isascii()]
    chinese = [s for s in sent if s[2] and not s[2][0].isascii() and " " not in s[2]]
    out: list[tuple[str, str, dict[str, Any]]] = []
    while len(out) < n:
        if kind in ("en-common", "en-rare", "en-2words", "en-common+conv"):
            uid, conv, text = rng.choice(english)
            words = text.split()
            rank = {w: corpus.words.index(w) for w in words} if kind != "en-2words" else {}
            if kind in ("en-common", "en-common+conv"):
                q = min(words, key=rank.__getitem__)
            elif kind == "en-rare":
                q = max(words, key=rank.__getitem__)
            else:
                q = " ".join(rng.sample(words, 2)) if len(set(words)) > 1 else words[0]
            out.append((uid, q, {"conv": conv} if kind == "en-common+conv" else {}))
        else:
            uid, conv, text = rng.choice(chinese)
            size = {"zh-1char": 1, "zh-2chars": 2, "zh-4chars": 4}[kind]
            start = rng.randrange(0, len(text) - size + 1)
            out.append((uid, text[start:start + size], {}))
    return out


def emit(row: dict[str, Any]) -> None:
    print(json.dumps(row), flush=True)


async def run(args: argparse.Namespace) -> None:
    from bench.faults.setup import create_pg_database, drop_pg_database

    if args.backend == "postgres" and not args.database_url:
        sys.exit("--backend postgres needs --database-url postgres://user@host:port (a server: a fresh database is made)")
    db_url = await create_pg_database(args.database_url, "imgate_bench_search") if args.database_url else None
    try:
        await measure(args, db_url)
    finally:
        if db_url is not None:
            await drop_pg_database(db_url)


async def index_bytes(settings: Any, tmp: str) -> int:
    if settings.search.backend == "postgres":
        from services.search.postgres import TABLE
        from services.sql import fetch

        return int((await fetch(f"SELECT pg_total_relation_size('{TABLE}')"))[0][0])
    return sum(f.stat().st_size for f in Path(tmp).glob("search.db*"))


async def measure(args: argparse.Namespace, db_url: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="imgate-bench-search-") as tmp:
        search_cfg: dict[str, Any] = {"backend": args.backend, "batch": args.batch}
        if args.backend == "meilisearch":
            search_cfg.update(meili_url=args.meili_url, meili_api_key=args.meili_key,
                              meili_index=f"imgate_bench_{os.getpid()}")
        settings = load_settings(None, {"data_dir": tmp, "search": search_cfg, "database": {"url": db_url}})
        corpus = Corpus(args.seed)
        async with open_database(settings):
            svc = build_services(SystemClock())
            async with svc.messages.committing():
                t0 = time.perf_counter()
                sent = await store(svc, corpus, users=args.users, messages=args.messages, groups=args.groups,
                                   group_size=args.group_size)
                stored_s = time.perf_counter() - t0
            search = build_search(settings, svc)
            try:
                t0 = time.perf_counter()
                indexed = 0
                while n := await search.index_pending():
                    indexed += n
                index_s = time.perf_counter() - t0
                size = await index_bytes(settings, tmp)
                emit({"scenario": f"search-index N={args.messages}", "backend": args.backend,
                      "messages": indexed, "index_s": round(index_s, 2),
                      "indexed_per_s": round(indexed / index_s), "batch": args.batch,
                      "store_msgs_per_s": round(len(sent) / stored_s),
                      "index_mb": round(size / 1e6, 1) if args.backend != "meilisearch" else None,
                      "database": "postgres" if db_url else "sqlite"})
                everything: list[float] = []
                for kind in args.kinds:
                    latencies, found = [], 0
                    for uid, q, filters in queries(corpus, sent, kind, args.queries):
                        t = time.perf_counter()
                        hits = await search.search(uid, q, limit=20, **filters)
                        latencies.append(time.perf_counter() - t)
                        found += bool(hits)
                    emit({"scenario": f"search-query {kind}", "backend": args.backend, "messages": indexed,
                          "queries": len(latencies), "with_hits_pct": round(100 * found / len(latencies), 1),
                          "p50_ms": round(pct(latencies, 50), 2), "p99_ms": round(pct(latencies, 99), 2),
                          "max_ms": round(max(latencies) * 1000, 2)})
                    everything += latencies
                emit({"scenario": "search-query all kinds", "backend": args.backend, "messages": indexed,
                      "queries": len(everything), "with_hits_pct": None, "p50_ms": round(pct(everything, 50), 2),
                      "p99_ms": round(pct(everything, 99), 2), "max_ms": round(max(everything) * 1000, 2)})
            finally:
                search.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--group-size", type=int, default=100)
    parser.add_argument("--queries", type=int, default=500, help="per kind of query")
    parser.add_argument("--kinds", nargs="+", default=["en-common", "en-rare", "en-2words", "en-common+conv",
                                                       "zh-1char", "zh-2chars", "zh-4chars"])
    parser.add_argument("--batch", type=int, default=500, help="messages per indexing step (search.batch)")
    parser.add_argument("--backend", choices=["embedded", "postgres", "meilisearch"], default="embedded")
    parser.add_argument("--database-url", help="a PostgreSQL server (postgres://user@host:port): the messages in a "
                                               "fresh database there (needed by --backend postgres)")
    parser.add_argument("--meili-url", default="http://127.0.0.1:7700")
    parser.add_argument("--meili-key")
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()
    asyncio.run(run(args))
    sys.exit(0)


if __name__ == "__main__":
    main()
