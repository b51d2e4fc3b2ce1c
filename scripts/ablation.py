#!/usr/bin/env python
"""Retrieval ablation: which parts of the hybrid retriever earn their place (the README's retrieval table).

    python scripts/ablation.py CASES.jsonl:INDEX_DIR [CASES.jsonl:INDEX_DIR ...]

Each INDEX_DIR must already be built (`assistant index FOLDER --index-dir INDEX_DIR`). Variants are switched
with the experiment variables read by assistant.retrieval, in a fresh process each, so nothing leaks between them.
Prints a markdown table of hit@1, hit@5 and MRR@10 on the answerable cases, split by question language.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

VARIANTS = [
    ("dense only", {"ASSISTANT_HYBRID": "off"}),
    ("dense + BM25, reciprocal-rank fusion", {"ASSISTANT_HYBRID": "on", "ASSISTANT_FUSION": "rrf", "ASSISTANT_XLING": "0"}),
    ("dense + BM25, score fusion", {"ASSISTANT_HYBRID": "on", "ASSISTANT_FUSION": "cc", "ASSISTANT_XLING": "0"}),
    ("+ BM25 weighted by term coverage", {"ASSISTANT_HYBRID": "auto", "ASSISTANT_FUSION": "cc", "ASSISTANT_XLING": "0"}),
    ("+ cross-lingual expansion (default)", {"ASSISTANT_HYBRID": "auto", "ASSISTANT_FUSION": "cc", "ASSISTANT_XLING": "1"}),
]

CHILD = r"""
import json, sys
from assistant.config import Settings
from assistant.pipeline import Assistant
from assistant.text import normalize_for_match as N
cases_path, index_dir = sys.argv[1], sys.argv[2]
a = Assistant(Settings.from_env(index_dir=index_dir, k=10))
rows = []
for line in open(cases_path, encoding="utf-8"):
    c = json.loads(line)
    if not c["answerable"]:
        continue
    r = a.retrieve(c["question"], c.get("history") or None)
    rel = [any(N(e) in N(ch.text) for e in c["evidence"]) for ch in r.chunks]
    first = next((i for i, x in enumerate(rel) if x), None)
    rows.append({"lang": r.language, "first": first})
print(json.dumps(rows))
"""


def run(cases: str, index_dir: str, env: dict) -> list[dict]:
    full = {**os.environ, **env}
    out = subprocess.run([sys.executable, "-c", CHILD, cases, index_dir], capture_output=True, text=True, env=full, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def metrics(rows: list[dict]) -> str:
    n = len(rows) or 1
    h1 = sum(r["first"] == 0 for r in rows) / n
    h5 = sum(r["first"] is not None and r["first"] < 5 for r in rows) / n
    mrr = sum(1 / (r["first"] + 1) for r in rows if r["first"] is not None) / n
    return f"{h1:.2f} / {h5:.2f} / {mrr:.2f}"


def main() -> None:
    sets = [arg.split(":", 1) for arg in sys.argv[1:]]
    header = "| variant | " + " | ".join(f"{os.path.basename(c)} all · EN · FR" for c, _ in sets) + " |"
    print(header)
    print("|---|" + "---|" * len(sets))
    for name, env in VARIANTS:
        cells = []
        for cases, index_dir in sets:
            rows = run(cases, index_dir, env)
            en = [r for r in rows if r["lang"] == "en"]
            fr = [r for r in rows if r["lang"] == "fr"]
            cells.append(f"{metrics(rows)} · {metrics(en)} · {metrics(fr)}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    print("\ncells: hit@1 / hit@5 / MRR@10 on the answerable cases (all questions · English · French)")


if __name__ == "__main__":
    main()
