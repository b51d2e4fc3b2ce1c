"""Running the cases: :func:`evaluate` asks the assistant every case and returns an :class:`EvalResult`.

Retrieval metrics are computed on a ranking of ``max(k, 10)`` chunks obtained
by a second retrieval call, so ``mrr@10`` and ``ndcg@10`` always see ten
candidates, while the answer is produced exactly as ``assistant ask`` would,
from ``k`` passages. Latency is the wall time of the ``ask`` call only.
"""
from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from .cases import Case
from .judge import Judge
from .metrics import RETRIEVAL_DEPTH, case_metrics, hit_curve, relevance, summarize


@dataclass
class EvalResult:
    summary: dict[str, Any]
    config: dict[str, Any]
    cases: list[dict]
    meta: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    @property
    def curve(self) -> list[float | None]:
        return hit_curve(self.cases)

    def to_json(self) -> dict[str, Any]:
        return {"summary": self.summary, "config": self.config, "cases": self.cases,
                "curves": {"hit@k": self.curve}, "meta": self.meta}


def _preview(text: str, n: int = 240) -> str:
    text = re.sub(r"\s+", " ", text or "").strip()
    return text if len(text) <= n else text[: n - 1] + "…"


def evaluate(cases: Sequence[Case], assistant, *, judge: Judge | None = None, progress: bool = False,
             label: str = "") -> EvalResult:
    """Run every case through ``assistant`` and compute the metrics.

    The answer comes from ``assistant.ask(question, history)`` with the
    assistant's own ``k``. The retrieval metrics use a ranking of
    ``max(k, 10)`` chunks: ``answer.retrieved`` when it is that deep, else a
    second ``assistant.retrieve`` call (not timed).
    """
    settings = assistant.settings
    depth = max(settings.k, RETRIEVAL_DEPTH)
    t_start = time.perf_counter()
    assistant.warm_up()
    records: list[dict] = []
    bar = _progress_bar(len(cases), label or "eval", progress)
    try:
        for case in cases:
            records.append(_run_case(case, assistant, depth, judge))
            bar.update(1)
    finally:
        bar.close()
    summary = summarize(records)
    meta = {"retrieval_depth": depth, "answer_k": settings.k, "seconds": round(time.perf_counter() - t_start, 3),
            "embedder": getattr(assistant.embedder, "model_id", ""), "llm_judge": judge is not None}
    return EvalResult(summary=summary, config=settings.public_dict(), cases=records, meta=meta, name=label)


def _run_case(case: Case, assistant, depth: int, judge: Judge | None) -> dict:
    from ..pipeline import QuestionError

    rec: dict[str, Any] = {"id": case.id, "question": case.question, "answerable": case.answerable}
    if case.history:
        rec["history"] = case.history
    rec["expected"] = {"facts": case.facts, "evidence": case.evidence}
    try:
        t0 = time.perf_counter()
        answer = assistant.ask(case.question, history=case.history or None)
        wall = (time.perf_counter() - t0) * 1000
        ranked = answer.retrieved if len(answer.retrieved) >= depth else \
            assistant.retrieve(case.question, case.history or None, k=depth).chunks
    except QuestionError as err:
        rec.update(answer="", abstained=False, citations=[], retrieved=[], passages=[], timings_ms={},
                   latency_ms=None, error=str(err))
        rec["metrics"] = case_metrics(case, answer="", abstained=False, ranked_relevant=[], cited_relevant=[])
        return rec
    ranked = ranked[:depth]
    by_id = {c.chunk_id: c.text for c in answer.retrieved}
    cited: dict[str, str] = {}  # distinct cited chunks -> their text
    for c in answer.citations:
        cited.setdefault(c.chunk_id, c.passage or by_id.get(c.chunk_id) or c.quote)
    rel_ranked = relevance([c.text for c in ranked], case.evidence)
    rel_cited = dict(zip(cited, relevance(list(cited.values()), case.evidence)))
    rec["answer"] = answer.answer
    rec["abstained"] = bool(answer.abstained)
    rec["citations"] = [dict(c.to_json(), relevant=rel_cited[c.chunk_id]) for c in answer.citations]
    rec["retrieved"] = [{"rank": i, "chunk_id": c.chunk_id, "source": c.source, "score": round(float(c.score), 6),
                         "relevant": r, "preview": _preview(c.text)}
                        for i, (c, r) in enumerate(zip(ranked, rel_ranked), start=1)]
    rec["passages"] = [c.chunk_id for c in answer.retrieved]  # what the answerer was given (k passages)
    rec["timings_ms"] = {k: round(float(v), 2) for k, v in (answer.timings_ms or {}).items()}
    rec["latency_ms"] = round(wall, 2)  # the wall time of ask(): what the latency metrics use
    if getattr(answer, "confidence", None) is not None:
        rec["confidence"] = answer.confidence
    if answer.note:
        rec["note"] = answer.note
    if answer.abstained and getattr(answer, "debug", ""):
        rec["abstain_reason"] = answer.debug
    m = case_metrics(case, answer=answer.answer, abstained=bool(answer.abstained),
                     ranked_relevant=rel_ranked, cited_relevant=list(rel_cited.values()))
    if judge is not None and not answer.abstained:
        contexts = list(cited.values()) or [c.text for c in answer.retrieved]
        m.update(judge.score(case.question, answer.answer, contexts))
    rec["metrics"] = m
    return rec


def _progress_bar(total: int, desc: str, show: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="case", file=sys.stderr, disable=not show, leave=False, dynamic_ncols=True)
