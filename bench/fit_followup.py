"""Fit the follow-up decision (:mod:`assistant.followup`) on the TRAIN split; report DEV and TEST (aggregates).

Usage (from the repository root, after ``python -m bench.splits``)::

    python -m bench.fit_followup            # fit on TRAIN, write assistant/reader_weights/followup-<model>.json
    python -m bench.fit_followup --no-write # measure only

Cases, per split (never mixed):

* **follow-ups** (``kind=followup``, label 1): the question needs its history;
* **topic switches** (``kind=topic-switch``, label 0): the history is about something else;
* **self-contained questions after another question** (label 0): every answerable or unanswerable case of the
  split without a history, put after the question of another case of the same corpus and split that answers
  from another document (drawn by hash) - what a user does when changing topic.

Features are :func:`assistant.followup.features` computed by the product's own retriever over the variant's
index (the indexes of ``bench.quality``). The fit is a class-balanced, L2-regularised logistic regression
(scikit-learn); the threshold is the one that maximises balanced accuracy in a question-grouped 5-fold
cross-validation on TRAIN. Printed: balanced accuracy, follow-ups kept, switches left alone, for the fitted
decision, the cue-only rule and the old pronoun regex, per split (TEST: aggregates only).
"""
from __future__ import annotations

import argparse
import json
import re
import time

import numpy as np

from .quality import DEFAULT_MAX_DOCS, DEFAULT_VARIANTS, _unit, read_cases, variant_assistant, variant_files
from .common import log

OLD_REGEX = re.compile(  # the detector before 2026-12-06, for the comparison
    r"\b(that|this|these|those|it|its|they|them|their|there|he|she|his|her|him|the same|above|"
    r"ce|cet|cette|ces|ça|cela|celui|celle|ceux|celles|il|elle|ils|elles|leur|leurs|lui|y|en|là|dernier|dernière)\b",
    re.IGNORECASE)


def old_rule(question: str) -> bool:
    from assistant.text import lexical_tokens

    return bool(OLD_REGEX.search(question)) or len(lexical_tokens(question, stemming=False)) <= 1


def _h(*parts: str) -> float:
    """A deterministic draw in [0, 1) (bench.quality's salted hash)."""
    return _unit("followup-v1", "|".join(parts))


def labelled_cases(split: str, variant: str) -> list[dict]:
    """(question, history, label, group) of one split and variant; see the module docstring."""
    cases = read_cases(split, variant)
    out = []
    for c in cases:
        if c["kind"] in ("followup", "topic-switch") and c.get("history"):
            out.append({"question": c["question"], "history": c["history"], "label": int(c["kind"] == "followup"),
                        "kind": c["kind"], "group": c.get("source") or c["id"], "evidence": c.get("evidence") or []})
    alone = [c for c in cases if not c.get("history") and c["kind"] in ("fr-fr", "en-fr", "unanswerable")]
    for c in alone:
        others = [o for o in alone if o["id"] != c["id"] and (o.get("source") or o["id"]) != (c.get("source") or c["id"])]
        if not others:
            continue
        o = min(others, key=lambda o: _h(c["id"], o["id"]))
        hist = [{"role": "user", "content": o["question"]}, {"role": "assistant", "content": "…"}]
        out.append({"question": c["question"], "history": hist, "label": 0, "kind": "switch-synthetic",
                    "group": c.get("source") or c["id"], "evidence": c.get("evidence") or []})
    return out


def featurise(split: str, variants, max_docs: dict, embedder, cache) -> list[dict]:
    from assistant.evaluation.metrics import relevance
    from assistant.followup import FEATURES
    from assistant.retrieval import condensed_form, history_questions

    rows = []
    for variant in variants:
        files = variant_files(variant, max_docs.get(variant))
        cases = labelled_cases(split, variant)
        if not files or not cases:
            continue
        a, _ = variant_assistant(variant, files, embedder=embedder, cache=cache)
        r = a.retriever
        t0 = time.perf_counter()
        for c in cases:
            users = history_questions(c["history"], r.history_turns)
            f = r.followup_features(c["question"], users[-1], condensed_form(c["question"], c["history"], r.history_turns))
            hits = {}
            if c["evidence"]:  # hit@5 of each reading: the question alone, and condensed with the history
                for reading, text in (("alone", c["question"]),
                                      ("condensed", condensed_form(c["question"], c["history"], r.history_turns))):
                    chunks = r.run(text, None).chunks[:5]
                    hits[reading] = any(relevance([ch.text for ch in chunks], c["evidence"]))
            rows.append({**c, "variant": variant, "x": [f[k] for k in FEATURES], "hits": hits})
        log(f"{variant}/{split}: {len(cases)} cases featurised ({time.perf_counter() - t0:.0f} s)")
    return rows


def scores(rows: list[dict], decide) -> dict:
    """Balanced accuracy and its two halves for a decision ``decide(row) -> bool``."""
    pos = [r for r in rows if r["label"] == 1]
    neg = [r for r in rows if r["label"] == 0]
    tpr = sum(decide(r) for r in pos) / len(pos) if pos else float("nan")
    tnr = sum(not decide(r) for r in neg) / len(neg) if neg else float("nan")
    real_neg = [r for r in neg if r["kind"] == "topic-switch"]

    def hit5(rs):  # hit@5 of the reading the decision chose, over the answerable cases
        rs = [r for r in rs if r.get("hits")]
        return round(sum(r["hits"]["condensed" if decide(r) else "alone"] for r in rs) / len(rs), 3) if rs else None

    return {"hit@5 follow-ups": hit5(pos), "hit@5 topic switches": hit5(real_neg),
            "hit@5 self-contained after another question": hit5([r for r in neg if r["kind"] == "switch-synthetic"]),
            "followups": len(pos), "switches": len(neg), "followups_condensed": round(tpr, 3),
            "switches_left_alone": round(tnr, 3), "balanced_accuracy": round((tpr + tnr) / 2, 3),
            "real_topic_switches_left_alone": round(sum(not decide(r) for r in real_neg) / len(real_neg), 3)
            if real_neg else None}


def fit(rows: list[dict], c_reg: float = 1.0):
    from sklearn.linear_model import LogisticRegression

    X = np.array([r["x"] for r in rows], dtype=np.float64)
    y = np.array([r["label"] for r in rows])
    mean, std = X.mean(0), X.std(0)
    std[std == 0] = 1.0
    clf = LogisticRegression(C=c_reg, class_weight="balanced", max_iter=1000).fit((X - mean) / std, y)
    return clf, mean, std


def cv_threshold(rows: list[dict], folds: int = 5) -> tuple[float, float]:
    """The threshold with the best balanced accuracy over question-grouped out-of-fold probabilities."""
    fold = [int(_h("fold", r["group"]) * folds) for r in rows]
    p = np.zeros(len(rows))
    for k in range(folds):
        tr = [r for r, f in zip(rows, fold) if f != k]
        te = [i for i, f in enumerate(fold) if f == k]
        if not te or len({r["label"] for r in tr}) < 2:
            continue
        clf, mean, std = fit(tr)
        X = np.array([rows[i]["x"] for i in te])
        p[te] = clf.predict_proba((X - mean) / std)[:, 1]
    y = np.array([r["label"] for r in rows])
    best = (0.5, -1.0)
    for t in np.arange(0.2, 0.81, 0.05):
        tpr = float(((p >= t) & (y == 1)).sum() / max(1, (y == 1).sum()))
        tnr = float(((p < t) & (y == 0)).sum() / max(1, (y == 0).sum()))
        if (tpr + tnr) / 2 > best[1] + 1e-9:
            best = (round(float(t), 2), (tpr + tnr) / 2)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS))
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--out", default="bench/work/followup.json")
    args = ap.parse_args(argv)

    from assistant.answer import VectorCache
    from assistant.config import Settings
    from assistant.embeddings import make_embedder
    from assistant.followup import FEATURES, FollowupModel, cue_rule, weights_path

    embedder = make_embedder(Settings.from_env())
    cache = VectorCache(embedder)
    max_docs = dict(DEFAULT_MAX_DOCS)
    data = {s: featurise(s, args.variants, max_docs, embedder, cache) for s in ("train", "dev", "test")}
    train = data["train"]
    threshold, cv_bal = cv_threshold(train)
    clf, mean, std = fit(train)
    model = FollowupModel([round(float(w), 6) for w in clf.coef_[0]], round(float(clf.intercept_[0]), 6),
                          [round(float(m), 6) for m in mean], [round(float(s), 6) for s in std], threshold, FEATURES,
                          {"fitted_on": "TRAIN split (bench/questions/SPLITS.md)", "cases": len(train),
                           "followups": sum(r["label"] for r in train), "cv_balanced_accuracy": round(cv_bal, 3),
                           "by": "python -m bench.fit_followup"})
    report = {"model": model.to_json(), "splits": {}}
    for split, rows in data.items():
        feats = lambda r: dict(zip(FEATURES, r["x"]))  # noqa: E731
        report["splits"][split] = {
            "fitted": scores(rows, lambda r: model.probability(feats(r)) >= model.threshold),
            "cues only": scores(rows, lambda r: cue_rule(r["question"])),
            "old regex": scores(rows, lambda r: old_rule(r["question"])),
            "always condense": scores(rows, lambda r: True),
            "never condense": scores(rows, lambda r: False),
        }
    print(json.dumps(report["splits"], indent=1))
    print("weights", dict(zip(FEATURES, model.weights)), "bias", model.bias, "threshold", model.threshold)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=1)
    # the featurised rows (git-ignored work file), to recompute the same aggregates for another rule offline
    with open(args.out.replace(".json", "-rows.json"), "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    if not args.no_write:
        embedder_id = getattr(embedder, "model_id", "") or ""
        weights_path(embedder_id).write_text(json.dumps(model.to_json(), indent=1) + "\n", encoding="utf-8")
        log(f"wrote {weights_path(embedder_id)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
