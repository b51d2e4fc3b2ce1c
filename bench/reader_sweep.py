"""The fitted reader's no-answer decision, swept: type veto (off / abstain / repick) x threshold.

``python -m bench.reader_sweep --split train --split dev`` reuses ``bench.quality``'s cached indexes and retrievals,
runs the reader once per case and veto with no threshold (``threshold=0``), and records the chosen sentence's ``p``
and whether the answer is right. The decision at threshold *t* is then "abstain when p < t" (or when a veto
fired), so every threshold is scored without re-running anything. Prints, per split and variant, the share of
questions *passed* (answered right, or abstained when unanswerable), accuracy, wrong abstentions and abstention on
unanswerables at each threshold. TEST is refused: thresholds are chosen on DEV, TEST is reported by
``bench.quality``.
"""
from __future__ import annotations

import argparse
import json
import sys

from bench.quality import (DEFAULT_MAX_DOCS, DEFAULT_VARIANTS, QWORK, log, read_cases, retrievals, score_case, top,
                           variant_assistant, variant_files)

THRESHOLDS = [round(0.10 + 0.02 * i, 2) for i in range(14)]  # 0.10 .. 0.36
VETOES = ("off", "abstain", "repick")


def collect(split: str, variants=DEFAULT_VARIANTS) -> list[dict]:
    """One row per case and veto: {case, kind, answerable, veto, vetoed, p, correct}."""
    from assistant.answer import VectorCache
    from assistant.config import Settings
    from assistant.embeddings import make_embedder
    from assistant.reader import Reader

    embedder = make_embedder(Settings.from_env())
    cache = VectorCache(embedder)
    rows = []
    for variant in variants:
        cases = read_cases(split, variant)
        files = variant_files(variant, DEFAULT_MAX_DOCS.get(variant))
        if not cases or not files:
            continue
        a, _ = variant_assistant(variant, files, embedder=embedder, cache=cache)
        rs = retrievals(a, variant, len(files), split, cases)
        for veto in VETOES:
            reader = Reader(a.embedder, cache=a.cache, lexicon=a.lexicon, vocabulary=a.lexical.vocabulary,
                            rules=a.rules, threshold=0.0, type_veto=veto)
            for c, r in zip(cases, rs):
                out = reader.run(top(r, a.settings.k))
                m = score_case(c, top(r, a.settings.k), out)
                rows.append({"case": c["id"], "kind": c["kind"], "corpus": c["corpus"], "answerable": c["answerable"],
                             "veto": veto, "vetoed": bool(out.abstained), "p": float(out.confidence or 0.0),
                             "correct": bool(m.get("correct"))})
        for c, r in zip(cases, rs):  # the rule-based answerer (the default), for the combinations below
            out = a.rules.run(top(r, a.settings.k))
            m = score_case(c, top(r, a.settings.k), out)
            rows.append({"case": c["id"], "kind": c["kind"], "corpus": c["corpus"], "answerable": c["answerable"],
                         "veto": "rules", "vetoed": bool(out.abstained), "p": 1.0, "correct": bool(m.get("correct"))})
        log(f"{variant}/{split}: {len(cases)} cases")
    return rows


def decide(rows: list[dict], veto: str, t: float) -> dict:
    sel = [r for r in rows if r["veto"] == veto]
    ans = [r for r in sel if r["answerable"]]
    una = [r for r in sel if not r["answerable"]]
    abst = lambda r: r["vetoed"] or r["p"] < t  # noqa: E731
    right = sum(1 for r in ans if not abst(r) and r["correct"])
    return {"passed": (right + sum(1 for r in una if abst(r))) / max(1, len(sel)),
            "accuracy": right / max(1, len(ans)),
            "wrongly_abstained": sum(1 for r in ans if abst(r)) / max(1, len(ans)),
            "abstained_unanswerable": sum(1 for r in una if abst(r)) / max(1, len(una)), "n": len(sel)}


def combine(rows: list[dict], how: str, t: float) -> dict:
    """The rules decide whether to answer, the reader (no veto) which sentence: ``rules-gate`` abstains when the
    rules do; ``either`` also when the reader's p < t; ``both`` only when the rules abstain and p < t."""
    rules = {r["case"]: r for r in rows if r["veto"] == "rules"}
    out = []
    for r in rows:
        if r["veto"] != "off":
            continue
        ru = rules[r["case"]]
        if how == "rules-gate":
            ab = ru["vetoed"] or r["vetoed"]
        elif how == "either":
            ab = ru["vetoed"] or r["vetoed"] or r["p"] < t
        else:
            ab = r["vetoed"] or (ru["vetoed"] and r["p"] < t)
        out.append(dict(r, veto="combined", vetoed=ab, p=1.0))
    return decide(out, "combined", 0.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.reader_sweep", description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", action="append", choices=("train", "dev"))
    args = ap.parse_args(argv)
    out = {}
    for split in args.split or ["dev"]:
        rows = collect(split)
        out[split] = rows
        print(f"\n### {split} ({len(rows) // len(VETOES)} cases): passed / accuracy / wrongly abstained / "
              "abstained on unanswerable")
        heads = list(VETOES) + ["rules decide, reader picks", "rules or reader abstain", "rules and reader abstain"]
        print("| threshold | " + " | ".join(heads) + " |\n|---|" + "---|" * len(heads))
        for t in THRESHOLDS:
            cells = []
            for v in VETOES:
                d = decide(rows, v, t)
                cells.append(f"{d['passed']:.3f} / {d['accuracy']:.2f} / {d['wrongly_abstained']:.2f} / "
                             f"{d['abstained_unanswerable']:.2f}")
            for how in ("rules-gate", "either", "both"):
                d = combine(rows, how, t)
                cells.append(f"{d['passed']:.3f} / {d['accuracy']:.2f} / {d['wrongly_abstained']:.2f} / "
                             f"{d['abstained_unanswerable']:.2f}")
            print(f"| {t:.2f} | " + " | ".join(cells) + " |")
        d = decide(rows, "rules", 0.5)
        print(f"rules alone: {d['passed']:.3f} / {d['accuracy']:.2f} / {d['wrongly_abstained']:.2f} / "
              f"{d['abstained_unanswerable']:.2f}")
    (QWORK / "reader_sweep.json").write_text(json.dumps(out, indent=0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
