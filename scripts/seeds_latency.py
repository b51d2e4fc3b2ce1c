#!/usr/bin/env python
"""Warm-process latency of `ask` on the seeds corpus (issue target: retrieval p50 < 50 ms, answer < 100 ms).

    python scripts/seeds_latency.py [--index-dir DIR] [--rounds N]

Indexes seeds/ into DIR if needed, warms up once, then asks the dev questions (../shared/eval/dev.jsonl, else
eval/dev.jsonl) N rounds in one process and prints p50/p95 of the retrieve / answer / total timings the answer
object reports. The first round answers with cold caches (every sentence of the retrieved chunks embedded), the
later ones warm, which is what a running chat is.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index-dir", default="/tmp/seeds-latency-index")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    from assistant.config import Settings
    from assistant.indexing import Indexer
    from assistant.pipeline import Assistant

    settings = Settings.from_env(index_dir=a.index_dir, docs_dir=str(ROOT / "seeds"))
    Indexer(settings).run([ROOT / "seeds"], show_progress=False)
    cases = ROOT.parent / "shared" / "eval" / "dev.jsonl"
    cases = cases if cases.exists() else ROOT / "eval" / "dev.jsonl"
    qs = [json.loads(line)["question"] for line in cases.read_text(encoding="utf-8").splitlines() if line.strip()]
    asst = Assistant(settings)
    asst.ask("warm-up: how are you?")
    rounds = []
    for r in range(a.rounds):
        t = {"retrieve": [], "answer": [], "total": []}
        for q in qs:
            ans = asst.ask(q)
            for k in t:
                t[k].append(ans.timings_ms[k])
        rounds.append(t)
    for name, rs in (("first round (cold caches)", rounds[:1]), ("later rounds (warm)", rounds[1:])):
        if not rs:
            continue
        row = {k: [x for t in rs for x in t[k]] for k in rs[0]}
        print(f"{name}: " + ", ".join(f"{k} p50 {statistics.median(v):.1f} ms / p95 {pct(v, 95):.1f} ms"
                                        for k, v in row.items()) + f" ({len(row['total'])} questions)")


if __name__ == "__main__":
    main()
