"""Fit the reader's scorer: ``python -m bench.fit_reader [--variants ...] [--precision 0.8]``.

1. For every TRAIN case of the corpus variants, retrieve (the product's retriever, k = 5; cached by
   :mod:`bench.quality`), build the reader's candidates and features (:mod:`assistant.reader`), and label a
   candidate 1 when the sentence holds every fact of the case (normalised matching, ``../shared/eval/README.md``);
   unanswerable cases give negatives only.
2. Choose the regularisation C by question-grouped 5-fold cross-validation (log-loss of the held-out folds), then
   fit a logistic regression on all of TRAIN (scikit-learn, standardised features, deterministic solver).
3. On DEV, choose the abstention threshold on the best sentence's probability: by default (``--threshold-rule
   passed``) the one at which the most DEV questions pass - answered right, or abstained when unanswerable: what a
   user sees -; with ``--threshold-rule precision``, the lowest at which the answered DEV questions are correct
   with at least ``--precision`` (answering an unanswerable one counts as wrong). Report Brier score and ECE of
   the chosen sentences.
4. Write ``assistant/reader_weights/<embedder model_id>.json``. Same data, same file: the fit is deterministic.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

import numpy as np

from .common import WORK, log
from .quality import DEFAULT_MAX_DOCS, DEFAULT_VARIANTS, read_cases, retrievals, top, variant_assistant, variant_files

VERSION = 1


def label(case: dict, text: str) -> int:
    from assistant.evaluation import facts_found

    return int(bool(case["answerable"]) and all(facts_found(text, case["facts"])))


def dataset(split: str, variants, max_docs: dict, embedder=None, cache=None, n_cloze: int = 150):
    """(X, y, group index per row, per-case list of (case, candidate row range, vetoed))."""
    from assistant.answer import VectorCache
    from assistant.config import Settings
    from assistant.embeddings import make_embedder
    from assistant.reader import FEATURES, Reader

    embedder = embedder or make_embedder(Settings.from_env())
    cache = cache or VectorCache(embedder)
    Xs, ys, gs, cases_out = [], [], [], []
    for variant in variants:
        files = variant_files(variant, max_docs.get(variant))
        if split == "cloze":
            from .cloze import make

            cases = make({s: read_cases(s, variant) for s in ("train", "dev", "test")}, files, n_cloze, variant)
        else:
            cases = read_cases(split, variant)
        if not cases or not files:
            continue
        a, _ = variant_assistant(variant, files, embedder=embedder, cache=cache)
        rs = retrievals(a, variant, len(files), split, cases)
        reader = Reader(a.embedder, cache=a.cache, lexicon=a.lexicon, vocabulary=a.lexical.vocabulary, weights=None,
                        rules=a.extractive)
        for c, r in zip(cases, rs):
            r5 = top(r, a.settings.k)
            cands, X = reader.score(r5)
            trans = reader.translations(r5, [])
            vetoed = bool(reader.missing_names(r5, cands, trans)) if cands else True
            lo = sum(len(x) for x in Xs)
            if len(cands):
                Xs.append(X)
                ys.append(np.array([label(c, k.text) for k in cands]))
                gs.append(np.full(len(cands), len(cases_out)))
            cases_out.append({"case": c, "rows": (lo, lo + len(cands)), "vetoed": vetoed,
                              "injected": [k.injected for k in cands], "texts": [k.text for k in cands],
                              "contexts": [k.context for k in cands], "sources": [k.chunk.source for k in cands]})
        log(f"{variant}/{split}: {len(cases)} cases featurised")
    X = np.vstack(Xs) if Xs else np.zeros((0, len(FEATURES)))
    return X, np.concatenate(ys) if ys else np.zeros(0), np.concatenate(gs) if gs else np.zeros(0), cases_out


def fit(X, y, groups, C: float):
    from sklearn.linear_model import LogisticRegression

    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale < 1e-9] = 1.0
    m = LogisticRegression(C=C, max_iter=2000, solver="lbfgs")
    m.fit((X - mean) / scale, y)
    return mean, scale, m.coef_[0], float(m.intercept_[0])


def cv_choose_c(X, y, groups, grid=(0.01, 0.03, 0.1, 0.3, 1.0, 3.0)):
    from sklearn.model_selection import GroupKFold

    gkf = GroupKFold(n_splits=5)
    scores = {}
    for C in grid:
        ll = []
        for tr, te in gkf.split(X, y, groups):
            mean, scale, coef, b = fit(X[tr], y[tr], groups[tr], C)
            p = 1 / (1 + np.exp(-(((X[te] - mean) / scale) @ coef + b)))
            p = np.clip(p, 1e-6, 1 - 1e-6)
            ll.append(-np.mean(y[te] * np.log(p) + (1 - y[te]) * np.log(1 - p)))
        scores[C] = float(np.mean(ll))
    return min(scores, key=scores.get), scores


def decisions(p_all: np.ndarray, cases: list[dict]):
    """Per case: (best probability, correct if answered, answerable, vetoed)."""
    out = []
    for cs in cases:
        lo, hi = cs["rows"]
        p = p_all[lo:hi].copy()
        p[np.array(cs["injected"], dtype=bool)] = 0.0 if hi > lo else p
        if hi == lo:
            out.append((0.0, False, cs["case"]["answerable"], True))
            continue
        j = int(np.argmax(p))
        correct = label(cs["case"], cs["texts"][j]) == 1
        out.append((float(p[j]), correct, cs["case"]["answerable"], cs["vetoed"]))
    return out


def choose_threshold(dec, precision: float) -> tuple[float, list[dict]]:
    """Lowest threshold at which answered questions are correct with >= precision; the risk-coverage curve."""
    curve = []
    for t in np.round(np.arange(0.0, 1.0, 0.01), 2):
        answered = [(p, ok) for p, ok, ans, veto in dec if p >= t and not veto]
        n_ans = sum(1 for _, _, a, _ in dec if a)
        correct = sum(1 for _, ok in answered if ok)
        una = [1 for p, ok, a, veto in dec if not a]
        una_abst = sum(1 for p, ok, a, veto in dec if not a and (p < t or veto))
        curve.append({"threshold": float(t), "coverage": len(answered) / len(dec) if dec else 0,
                      "precision": correct / len(answered) if answered else 1.0,
                      "accuracy": correct / n_ans if n_ans else None,
                      "abstention_accuracy": una_abst / len(una) if una else None})
    ok = [c for c in curve if c["precision"] >= precision]
    return (ok[0]["threshold"] if ok else 0.99), curve


def choose_threshold_passed(dec, curve: list[dict]) -> float:
    """The threshold at which the most questions pass (right answer, or abstention on an unanswerable one); the
    lowest such threshold on a tie."""
    def passed(t: float) -> int:
        return sum(1 for p, ok, a, veto in dec if (a and ok and p >= t and not veto) or (not a and (p < t or veto)))

    scores = {c["threshold"]: passed(c["threshold"]) for c in curve}
    return max(scores, key=lambda t: (scores[t], -t))


def calibration(dec, bins: int = 10) -> dict:
    """Brier score and ECE of the chosen sentence's probability against its correctness."""
    p = np.array([d[0] for d in dec])
    y = np.array([float(d[1]) for d in dec])
    if not len(p):
        return {"brier": None, "ece": None}
    ece = 0.0
    for b in range(bins):
        m = (p >= b / bins) & ((p < (b + 1) / bins) if b < bins - 1 else (p <= 1))
        if m.any():
            ece += m.mean() * abs(p[m].mean() - y[m].mean())
    return {"brier": round(float(np.mean((p - y) ** 2)), 4), "ece": round(float(ece), 4)}


def plot_risk_coverage(curve: list[dict], threshold: float, out) -> None:
    """Accuracy of the answered DEV questions against the share answered, as the threshold moves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([c["coverage"] for c in curve], [c["precision"] for c in curve], marker=".", label="answered correctly")
    ax.plot([c["coverage"] for c in curve], [c["abstention_accuracy"] or 0 for c in curve], linestyle="--",
            label="unanswerable abstained")
    at = next(c for c in curve if c["threshold"] == threshold)
    ax.scatter([at["coverage"]], [at["precision"]], color="red", zorder=3, label=f"threshold {threshold:.2f}")
    ax.set_xlabel("share of DEV questions answered (coverage)")
    ax.set_ylabel("fraction")
    ax.set_title("Fitted reader: risk-coverage on DEV")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    from assistant.answer import VectorCache
    from assistant.config import Settings
    from assistant.embeddings import make_embedder
    from assistant.reader import FEATURES, Weights, weights_path

    ap = argparse.ArgumentParser(prog="python -m bench.fit_reader", description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS))
    ap.add_argument("--threshold-rule", choices=("passed", "precision"), default="passed",
                    help="passed: most DEV questions passed (default); precision: lowest threshold reaching --precision")
    ap.add_argument("--precision", type=float, default=0.8, help="precision of the answered DEV questions")
    ap.add_argument("--features", nargs="+", default=list(FEATURES))
    ap.add_argument("--cloze", type=int, default=0,
                    help="cloze questions per corpus added to TRAIN (default 0: measured to lower DEV accuracy, docs/reader.md)")
    ap.add_argument("--dry-run", action="store_true", help="fit and report, write nothing")
    ap.add_argument("--out", default="", help="write the weights here instead of assistant/reader_weights/ "
                                              "(score them with bench.quality --reader-variant weights=FILE)")
    args = ap.parse_args(argv)
    embedder = make_embedder(Settings.from_env())
    cache = VectorCache(embedder)
    cols = [FEATURES.index(f) for f in args.features]
    X, y, g, train_cases = dataset("train", args.variants, DEFAULT_MAX_DOCS, embedder, cache)
    if args.cloze:
        Xc, yc, gc, cloze_cases = dataset("cloze", args.variants, DEFAULT_MAX_DOCS, embedder, cache, args.cloze)
        log(f"cloze: {len(cloze_cases)} cases, {int(yc.sum())} positive candidates")
        X, y, g = np.vstack([X, Xc]), np.concatenate([y, yc]), np.concatenate([g, gc + len(train_cases)])
        train_cases = train_cases + cloze_cases
    X = X[:, cols]
    log(f"train: {len(train_cases)} cases, {len(y)} candidates, {int(y.sum())} positive")
    C, cv = cv_choose_c(X, y, g)
    log(f"C={C} (grouped 5-fold log-loss {cv})")
    mean, scale, coef, b = fit(X, y, g, C)
    w = Weights(list(args.features), mean, scale, coef, b)
    Xd, yd, gd, dev_cases = dataset("dev", args.variants, DEFAULT_MAX_DOCS, embedder, cache)
    pd = w.probabilities(Xd) if len(Xd) else np.zeros(0)
    dec = decisions(pd, dev_cases)
    threshold, curve = choose_threshold(dec, args.precision)
    if args.threshold_rule == "passed":
        threshold = choose_threshold_passed(dec, curve)
    cal = calibration(dec)
    w.threshold = threshold
    w.meta = {"version": VERSION, "model_id": embedder.model_id, "fitted": str(date.today()),
              "trained_on": {"split": "train", "variants": args.variants, "cases": len(train_cases),
                             "candidates": int(len(y)), "positives": int(y.sum())},
              "C": C, "cv_logloss": cv, "threshold_rule": (f"lowest threshold with DEV precision >= {args.precision}"
                                 if args.threshold_rule == "precision" else "most DEV questions passed"),
              "cloze_per_corpus": args.cloze, "dev": {"cases": len(dev_cases), **cal},
              "dev_risk_coverage": curve[::5]}
    for f, c in sorted(zip(args.features, coef), key=lambda t: -abs(t[1])):
        print(f"  {f:18s} {c:+.3f}")
    print(f"threshold {threshold} (rule: {w.meta['threshold_rule']}); dev calibration {cal}")
    at = next(c for c in curve if c["threshold"] == threshold)
    print(f"dev at threshold: {at}")
    plot_risk_coverage(curve, threshold, WORK / "quality" / "risk_coverage.png")
    if not args.dry_run:
        path = Path(args.out) if args.out else weights_path(embedder.model_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(w.to_json(), indent=1) + "\n", encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
