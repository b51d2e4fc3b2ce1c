"""Does late interaction help the reader choose its sentence?  ``python -m bench.maxsim_probe``

Issue 11, item 4 asks to measure token-level alignment over the e5 encoder's token states (MaxSim of the
question's tokens against the sentence's, as ColBERT scores) as a reader feature. This probe fits the reader's
logistic scorer on TRAIN exactly as :mod:`bench.fit_reader` does, once with the shipped features and once with
the MaxSim features added, and compares them on DEV (one run, same candidates, same retrievals):

* *selection* - the most probable sentence holds every fact (answerable DEV cases, no threshold);
* *passed* at the threshold chosen on DEV by the most-questions-passed rule, the accuracy and abstention there.

MaxSim features of a candidate sentence (token states of ``query: <question>`` and of ``passage: <sentence>``
from the packaged e5 folder through transformers, L2-normalised, special and prefix tokens dropped):
``maxsim`` = mean over question tokens of the best cosine to a sentence token, its gap to the case's best, and
``maxsim_cov`` = share of question tokens whose best cosine is above 0.9. Nothing is written but a JSON summary
(bench/work/quality/maxsim_probe.json); TEST is not touched.
"""
from __future__ import annotations

import json
import sys

import numpy as np

from .common import WORK, log
from .fit_reader import calibration, choose_threshold, choose_threshold_passed, cv_choose_c, dataset, decisions, fit
from .quality import DEFAULT_MAX_DOCS, DEFAULT_VARIANTS

EXTRA = ("maxsim", "maxsim_gap", "maxsim_cov")


class TokenStates:
    def __init__(self, folder: str):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder).eval()
        self.cache: dict[str, np.ndarray] = {}

    def states(self, texts: list[str], prefix: str) -> list[np.ndarray]:
        todo = sorted({t for t in texts if prefix + t not in self.cache}, key=len)
        n_prefix = len(self.tok(prefix.strip(), add_special_tokens=False)["input_ids"])
        for i in range(0, len(todo), 64):
            batch = todo[i:i + 64]
            enc = self.tok([prefix + t for t in batch], padding=True, truncation=True, max_length=256,
                           return_tensors="pt")
            with self.torch.inference_mode():
                h = self.model(**enc).last_hidden_state.float().numpy()
            for t, hs, m in zip(batch, h, enc["attention_mask"].numpy()):
                n = int(m.sum())
                v = hs[1 + n_prefix:n - 1]  # drop [CLS], the prefix and [SEP]
                if not len(v):
                    v = hs[:n]
                self.cache[prefix + t] = v / np.linalg.norm(v, axis=1, keepdims=True)
        return [self.cache[prefix + t] for t in texts]


def maxsim_features(q: np.ndarray, sents: list[np.ndarray]) -> np.ndarray:
    """Rows of (maxsim, gap to the best, share of question tokens matched above 0.9) for one case's sentences."""
    if not sents:
        return np.zeros((0, 3))
    best = [(q @ s.T).max(axis=1) for s in sents]
    ms = np.array([b.mean() for b in best])
    cov = np.array([(b >= 0.9).mean() for b in best])
    return np.stack([ms, ms.max() - ms, cov], axis=1)


def extra_columns(ts: TokenStates, X, cases) -> np.ndarray:
    out = np.zeros((len(X), len(EXTRA)))
    qs = ts.states([cs["case"]["question"] for cs in cases], "query: ")
    all_texts = [t for cs in cases for t in cs["texts"]]
    ts.states(all_texts, "passage: ")
    for cs, q in zip(cases, qs):
        lo, hi = cs["rows"]
        if hi > lo:
            out[lo:hi] = maxsim_features(q, ts.states(cs["texts"], "passage: "))
    return out


def title_columns(embedder, cache, cases, titles=None) -> np.ndarray:
    """(cosine of the question to the passage's title/section heading, its gap to the case's best) per row.

    ``titles(case) -> one title per candidate`` (default: the candidates' contexts; ``bench.title_probe`` falls
    back to the file name)."""
    titles = titles or (lambda cs: cs["contexts"])
    rows = sum(cs["rows"][1] - cs["rows"][0] for cs in cases)
    out = np.zeros((rows, 2))
    per_case = [titles(cs) for cs in cases]
    ctxs = sorted({c for ts in per_case for c in ts if c})
    vecs = dict(zip(ctxs, embedder.encode(ctxs))) if ctxs else {}
    for cs, ts in zip(cases, per_case):
        lo, hi = cs["rows"]
        if hi == lo:
            continue
        q = cache.query_vector(cs["case"]["question"])
        sims = np.array([float(vecs[c] @ q) if c else 0.0 for c in ts])
        out[lo:hi, 0] = sims
        out[lo:hi, 1] = sims.max() - sims
    return out


def evaluate(X, y, g, Xd, cases_d, name: str) -> dict:
    C, _ = cv_choose_c(X, y, g)
    mean, scale, coef, b = fit(X, y, g, C)
    pd = 1 / (1 + np.exp(-(((Xd - mean) / scale) @ coef + b)))
    dec = decisions(pd, cases_d)
    t, curve = choose_threshold(dec, 0.8)
    t = choose_threshold_passed(dec, curve)
    at = next(c for c in curve if c["threshold"] == t)
    answerable = [d for d in dec if d[2]]
    sel = sum(1 for d in answerable if d[1]) / len(answerable)
    res = {"features": name, "C": C, "dev_selection": round(sel, 4), "threshold": t,
           "dev_accuracy": round(at["accuracy"], 4), "dev_abstention": at["abstention_accuracy"],
           "dev_coverage": round(at["coverage"], 4), **calibration(dec)}
    log(f"{name}: {res}")
    return res


def main(argv=None) -> int:
    from assistant.answer import VectorCache
    from assistant.config import Settings
    from assistant.embeddings import make_embedder
    from assistant.packaged_models import e5_small_folder

    from assistant.reader import FEATURES, weights_for

    embedder = make_embedder(Settings.from_env())
    cache = VectorCache(embedder)
    cols = [FEATURES.index(f) for f in weights_for(embedder).features]  # the shipped fit's features
    X, y, g, train = dataset("train", DEFAULT_VARIANTS, DEFAULT_MAX_DOCS, embedder, cache)
    Xd, yd, gd, dev = dataset("dev", DEFAULT_VARIANTS, DEFAULT_MAX_DOCS, embedder, cache)
    Xd_all = Xd
    X, Xd = X[:, cols], Xd[:, cols]
    ts = TokenStates(str(e5_small_folder()))
    E, Ed = extra_columns(ts, X, train), extra_columns(ts, Xd, dev)
    T, Td = title_columns(embedder, cache, train), title_columns(embedder, cache, dev)
    results = [evaluate(X, y, g, Xd, dev, "shipped"),
               evaluate(np.hstack([X, E]), y, g, np.hstack([Xd, Ed]), dev, "shipped + maxsim"),
               evaluate(np.hstack([X, T]), y, g, np.hstack([Xd, Td]), dev, "shipped + title"),
               evaluate(np.hstack([X, E, T]), y, g, np.hstack([Xd, Ed, Td]), dev, "shipped + maxsim + title")]
    results.append(listwise_probe(X, y, train, Xd, yd, dev, "shipped"))
    results.append(listwise_probe(np.hstack([X, E, T]), y, train, np.hstack([Xd, Ed, Td]), yd, dev,
                                  "shipped + maxsim + title"))
    results.append(boosted_probe(np.hstack([X, E, T]), y, g, np.hstack([Xd, Ed, Td]), yd, dev,
                                 "shipped + maxsim + title"))
    # single signals, no fit: the case's sentence with the highest value
    for name, scores in (("maxsim", Ed[:, 0]), ("title/section cosine", Td[:, 0]),
                         ("sentence cosine", Xd_all[:, FEATURES.index("cos")])):
        results.append({"features": f"{name} alone (argmax)", "dev_selection": round(selection_rate(scores, yd, dev), 4)})
    out = WORK / "quality" / "maxsim_probe.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    for r in results:
        print(r)
    return 0



# --------------------------------------------------------------------------- listwise selection (conditional logit)
def listwise_fit(X, y, cases, lam: float):
    """Weights maximising, per answerable case with a positive candidate, log sum_{pos} softmax(Xw) (L2 lam)."""
    from scipy.optimize import minimize

    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale < 1e-9] = 1.0
    Z = (X - mean) / scale
    groups = [(cs["rows"][0], cs["rows"][1]) for cs in cases
              if cs["rows"][1] > cs["rows"][0] and y[cs["rows"][0]:cs["rows"][1]].sum() > 0]

    def loss(w):
        s = Z @ w
        total, grad = 0.0, np.zeros_like(w)
        for lo, hi in groups:
            si = s[lo:hi]
            m = si.max()
            e = np.exp(si - m)
            pos = y[lo:hi] > 0
            lse_all = m + np.log(e.sum())
            lse_pos = m + np.log(e[pos].sum())
            total += lse_all - lse_pos
            pa = e / e.sum()
            pp = np.where(pos, e, 0) / e[pos].sum()
            grad += Z[lo:hi].T @ (pa - pp)
        return total / len(groups) + lam * w @ w, grad / len(groups) + 2 * lam * w

    w = minimize(loss, np.zeros(Z.shape[1]), jac=True, method="L-BFGS-B").x
    return mean, scale, w


def selection_rate(scores, y, cases) -> float:
    """Share of the answerable cases whose highest-scoring candidate is a positive (none retrieved: wrong)."""
    ok = n = 0
    for cs in cases:
        lo, hi = cs["rows"]
        if cs["case"]["answerable"]:
            n += 1
            ok += int(hi > lo and y[lo + int(np.argmax(scores[lo:hi]))] > 0)
    return ok / max(1, n)


def selection(X, y, cases, model) -> float:
    mean, scale, w = model
    return selection_rate(((X - mean) / scale) @ w, y, cases)


def listwise_probe(X, y, train, Xd, yd, dev, name: str) -> dict:
    """lam by 5-fold grouped CV on TRAIN selection, then DEV selection."""
    idx = np.arange(len(train))
    folds = [idx[i::5] for i in range(5)]
    best = None
    for lam in (0.001, 0.01, 0.03, 0.1, 0.3, 1.0):
        accs = []
        for f in folds:
            held = set(f.tolist())
            tr = [cs for i, cs in enumerate(train) if i not in held]
            te = [cs for i, cs in enumerate(train) if i in held]
            accs.append(selection(X, y, te, listwise_fit(X, y, tr, lam)))
        acc = float(np.mean(accs))
        if best is None or acc > best[1]:
            best = (lam, acc)
    model = listwise_fit(X, y, train, best[0])
    res = {"features": name + " (listwise)", "lam": best[0], "train_cv_selection": round(best[1], 4),
           "dev_selection": round(selection(Xd, yd, dev, model), 4)}
    log(str(res))
    return res



def boosted_probe(X, y, g, Xd, yd, dev, name: str) -> dict:
    """A non-linear pointwise scorer (scikit-learn's histogram gradient boosting, shallow, class-balanced)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    m = HistGradientBoostingClassifier(max_depth=3, learning_rate=0.05, max_iter=200, l2_regularization=1.0,
                                       class_weight="balanced", random_state=0).fit(X, y)
    res = {"features": name + " (gradient boosting)",
           "dev_selection": round(selection_rate(m.predict_proba(Xd)[:, 1], yd, dev), 4)}
    log(str(res))
    return res


if __name__ == "__main__":
    sys.exit(main())
