"""Metric definitions (``eval/README.md``): per case (:func:`case_metrics`) and summary (:func:`summarize`).

:data:`METRICS` is the explicit list of the summary metrics reported (the keys
of ``summary`` in ``report.json``), each with its direction and whether it is
a fraction; :data:`COUNTS` the counts reported beside them. :func:`fmt` is how
a metric value is shown (reports, plots, gate messages).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from ..text import normalize_for_match
from .cases import Case

RETRIEVAL_DEPTH = 10  # the deepest cut-off of a retrieval metric (mrr@10, ndcg@10, hit@k curve)
HIT_KS = (1, 3, 5)

# Summary metrics: key -> (higher is better, is a fraction in [0, 1]).
METRICS: dict[str, tuple[bool, bool]] = {
    "hit@1": (True, True),
    "hit@3": (True, True),
    "hit@5": (True, True),
    "mrr@10": (True, True),
    "ndcg@10": (True, True),
    "answer_accuracy": (True, True),
    "fact_recall": (True, True),
    "abstention_accuracy": (True, True),
    "false_abstention_rate": (False, True),
    "citation_precision": (True, True),
    "latency_p50_ms": (False, False),
    "latency_p95_ms": (False, False),
    "brier": (False, True),  # answerers with a confidence (the fitted reader) only
    "ece": (False, True),  # idem
    "faithfulness": (True, True),  # LLM judge (--llm-judge) only
    "answer_relevancy": (True, True),  # LLM judge (--llm-judge) only
}
COUNTS = ("n_cases", "n_answerable", "n_unanswerable", "n_errors")
JUDGE_KEYS = ("faithfulness", "answer_relevancy")


def fmt(key: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key.startswith("latency"):
        return f"{value:.1f}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def facts_found(answer: str, facts: Sequence[Sequence[str]]) -> list[bool]:
    """For every fact, whether one of its alternative forms occurs in the answer."""
    hay = normalize_for_match(answer or "")
    return [any(normalize_for_match(a) in hay for a in alts) for alts in facts]


def relevance(texts: Sequence[str], evidence: Sequence[str]) -> list[bool]:
    """Binary relevance of ranked chunk texts: the chunk contains an evidence string."""
    needles = [normalize_for_match(e) for e in evidence]
    return [any(e in hay for e in needles) for hay in map(normalize_for_match, (t or "" for t in texts))]


def first_relevant_rank(rel: Sequence[bool], depth: int = RETRIEVAL_DEPTH) -> int | None:
    """1-based rank of the first relevant chunk within the top ``depth``, or None."""
    return next((i + 1 for i, r in enumerate(rel[:depth]) if r), None)


def ndcg_at(rel: Sequence[bool], k: int = RETRIEVAL_DEPTH) -> float:
    """nDCG@k with binary relevance.

    DCG = sum over the top k of rel_i / log2(i + 1) (i 1-based). The ideal DCG
    puts the R relevant chunks found in the top k at ranks 1..R; 0 when R = 0.
    """
    top = list(rel[:k])
    dcg = sum(1.0 / math.log2(i + 2) for i, r in enumerate(top) if r)
    n_rel = sum(1 for r in top if r)
    if not n_rel:
        return 0.0
    ideal = sum(1.0 / math.log2(i + 2) for i in range(n_rel))
    return dcg / ideal


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100), linear interpolation between closest ranks (numpy's default)."""
    vals = sorted(values)
    if not vals:
        return None
    pos = (len(vals) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)


def case_metrics(case: Case, *, answer: str, abstained: bool, ranked_relevant: Sequence[bool],
                 cited_relevant: Sequence[bool]) -> dict[str, Any]:
    """Per-case metrics.

    ``ranked_relevant``: relevance of the retrieval ranking, best first;
    ``cited_relevant``: relevance of the distinct cited chunks (see :func:`relevance`).
    """
    m: dict[str, Any] = {"answerable": case.answerable, "abstained": abstained}
    if not case.answerable:
        m["abstention_correct"] = abstained
        m["passed"] = abstained
        m["citations_total"] = len(cited_relevant)
        return m
    rel = list(ranked_relevant)
    rank = first_relevant_rank(rel)
    for k in HIT_KS:
        m[f"hit@{k}"] = rank is not None and rank <= k
    m["first_relevant_rank"] = rank
    m["rr"] = 1.0 / rank if rank else 0.0
    m["ndcg@10"] = ndcg_at(rel)
    m["relevant_retrieved"] = sum(rel[:RETRIEVAL_DEPTH])
    found = facts_found(answer, case.facts)
    m["facts_total"] = len(found)
    m["facts_found"] = sum(found)
    m["fact_recall"] = (sum(found) / len(found)) if found else 1.0
    m["missing_facts"] = [alts for alts, ok in zip(case.facts, found) if not ok]
    m["correct"] = all(found) and not abstained
    m["false_abstention"] = abstained
    m["citations_total"] = len(cited_relevant)
    m["citations_relevant"] = sum(cited_relevant)
    m["passed"] = m["correct"]
    return m


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(records: Sequence[dict]) -> dict[str, Any]:
    """Summary metrics (eval/README.md keys, plus ndcg@10 and counts) from per-case records."""
    ans = [r["metrics"] for r in records if r["metrics"]["answerable"]]
    una = [r["metrics"] for r in records if not r["metrics"]["answerable"]]
    s: dict[str, Any] = {"n_cases": len(records), "n_answerable": len(ans), "n_unanswerable": len(una),
                         "n_errors": sum(1 for r in records if r.get("error"))}
    for k in HIT_KS:
        s[f"hit@{k}"] = _mean([float(m[f"hit@{k}"]) for m in ans])
    s["mrr@10"] = _mean([m["rr"] for m in ans])
    s["ndcg@10"] = _mean([m["ndcg@10"] for m in ans])
    s["answer_accuracy"] = _mean([float(m["correct"]) for m in ans])
    s["fact_recall"] = _mean([m["fact_recall"] for m in ans])
    s["abstention_accuracy"] = _mean([float(m["abstention_correct"]) for m in una])
    s["false_abstention_rate"] = _mean([float(m["false_abstention"]) for m in ans])
    cited = sum(m["citations_total"] for m in ans)
    s["citation_precision"] = (sum(m["citations_relevant"] for m in ans) / cited) if cited else None
    lat = [r["latency_ms"] for r in records if r.get("latency_ms") is not None]
    for q in (50, 95):
        v = percentile(lat, q)
        s[f"latency_p{q}_ms"] = None if v is None else round(v, 2)
    s.update(calibration_metrics(records))
    judged = [r["metrics"] for r in records if "faithfulness" in r["metrics"] or "answer_relevancy" in r["metrics"]]
    if judged:
        for key in JUDGE_KEYS:
            s[key] = _mean([m[key] for m in judged if m.get(key) is not None])
        s["n_judged"] = len(judged)
        s["judge_errors"] = sum(1 for m in judged if m.get("judge_error"))
    return s


def _confident(records: Sequence[dict]) -> list[tuple[float, float]]:
    """(confidence, 1 if the answer is right else 0) for the answered cases that carry a confidence; answering an
    unanswerable question is wrong."""
    out = []
    for r in records:
        m = r["metrics"]
        if r.get("confidence") is None or m["abstained"]:
            continue
        out.append((float(r["confidence"]), float(bool(m.get("correct")) and m["answerable"])))
    return out


def calibration_metrics(records: Sequence[dict], bins: int = 10) -> dict[str, float]:
    """Brier score and expected calibration error (``bins`` equal-width bins) of the answers' ``confidence``;
    empty when no answer carries one (the rule-based answerer)."""
    pairs = _confident(records)
    if not pairs:
        return {}
    ece = 0.0
    for b in range(bins):
        sel = [(c, y) for c, y in pairs if b / bins <= c < (b + 1) / bins or (b == bins - 1 and c >= 1.0)]
        if sel:
            ece += len(sel) / len(pairs) * abs(sum(c for c, _ in sel) / len(sel) - sum(y for _, y in sel) / len(sel))
    return {"brier": sum((c - y) ** 2 for c, y in pairs) / len(pairs), "ece": ece}


def risk_coverage(records: Sequence[dict]) -> list[tuple[float, float, float]]:
    """(threshold, coverage = share of all cases answered, accuracy of the answered) as the confidence threshold
    rises through the answered cases' confidences."""
    pairs = sorted(_confident(records), reverse=True)
    out, right = [], 0.0
    for i, (c, y) in enumerate(pairs, start=1):
        right += y
        out.append((c, i / len(records), right / i))
    return out


def hit_curve(records: Sequence[dict], depth: int = RETRIEVAL_DEPTH) -> list[float | None]:
    """hit@k for k = 1..depth over the answerable cases."""
    ranks = [r["metrics"]["first_relevant_rank"] for r in records if r["metrics"]["answerable"]]
    if not ranks:
        return [None] * depth
    return [sum(1 for x in ranks if x is not None and x <= k) / len(ranks) for k in range(1, depth + 1)]
