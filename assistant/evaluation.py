"""Scripted evaluation of answer quality: ``assistant eval``.

* :func:`load_cases` reads and validates a JSONL file of cases (format and
  metric definitions: the shared ``eval/README.md``); every malformed line is
  reported as ``file:line: what is wrong``.
* :func:`evaluate` runs the cases through an :class:`~assistant.pipeline.Assistant`
  and computes per-case and summary metrics (:func:`case_metrics`,
  :func:`summarize`).
* :func:`write_report` writes ``report.json``, ``report.md`` and PNG plots;
  :func:`write_comparison` the side-by-side table of several configurations.
* :class:`Judge` computes the optional LLM-judged metrics (faithfulness,
  answer relevancy) with any LangChain chat model.
* :func:`run_cli` is the command: indexing (``--docs``), configurations
  (``--config``), gates (``--fail-under`` / ``--fail-over``) and exit codes.

Retrieval metrics are computed on a ranking of ``max(k, 10)`` chunks obtained
by a second retrieval call, so ``mrr@10`` and ``ndcg@10`` always see ten
candidates, while the answer is produced exactly as ``assistant ask`` would,
from ``k`` passages. Latency is the wall time of the ``ask`` call only.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Sequence

from .config import Settings, parse_settings_string
from .text import detect_language, normalize_for_match

EXIT_OK, EXIT_FAIL, EXIT_INPUT, EXIT_GATE = 0, 1, 2, 3  # same values as assistant.cli

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
# Settings that change what is stored in the index: a configuration that changes one needs its own index.
INDEX_FIELDS = ("embedding_model", "embedding_engine", "embedding_quantize", "embedding_precision", "chunk_tokens",
                "chunk_overlap")
EMBEDDER_FIELDS = ("embedding_model", "embedding_engine", "embedding_quantize", "embedding_precision",
                   "embedding_threads", "embedding_batch_tokens")


class EvalInputError(ValueError):
    """Bad input to the evaluation (cases file, --config, --fail-under): exit code 2."""

    def __init__(self, messages: str | list[str]):
        self.messages = [messages] if isinstance(messages, str) else list(messages)
        super().__init__("\n".join(self.messages))


# =========================================================================== cases
@dataclass
class Case:
    id: str
    question: str
    answerable: bool
    facts: list[list[str]] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    line: int = 0


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _check_case(obj: Any) -> tuple[Case | None, list[str]]:
    """A case from one decoded JSON value, or the list of what is wrong with it."""
    if not isinstance(obj, dict):
        return None, [f"expected a JSON object, got {_type_name(obj)}"]
    errs: list[str] = []
    for name in ("id", "question", "answerable"):
        if name not in obj:
            errs.append(f"missing field '{name}'")
    cid, question, answerable = obj.get("id"), obj.get("question"), obj.get("answerable")
    if "id" in obj and (not isinstance(cid, str) or not cid.strip()):
        errs.append(f"field 'id' must be a non-empty string, got {_type_name(cid)}")
    if "question" in obj and (not isinstance(question, str) or not question.strip()):
        errs.append(f"field 'question' must be a non-empty string, got {_type_name(question)}"
                    + (" (empty)" if isinstance(question, str) else ""))
    if "answerable" in obj and not isinstance(answerable, bool):
        errs.append(f"field 'answerable' must be true or false, got {_type_name(answerable)}")
    is_answerable = answerable is True
    for name in ("facts", "evidence"):
        if name not in obj and is_answerable:
            errs.append(f"missing field '{name}' (required for an answerable case)")
    facts = obj.get("facts", [])
    if not (isinstance(facts, list) and all(isinstance(f, list) and f and all(isinstance(a, str) for a in f) for f in facts)):
        errs.append("field 'facts' must be a list of non-empty lists of strings (each inner list: one fact, "
                    "its alternative forms)" + (f", got {_type_name(facts)}" if not isinstance(facts, list) else ""))
        facts = []
    elif any(not normalize_for_match(a) for f in facts for a in f):
        errs.append("field 'facts' contains an empty string (it would match any answer)")
    elif is_answerable and "facts" in obj and not facts:
        errs.append("field 'facts' is empty: an answerable case needs at least one fact")
    evidence = obj.get("evidence", [])
    if not (isinstance(evidence, list) and all(isinstance(e, str) for e in evidence)):
        errs.append("field 'evidence' must be a list of strings"
                    + (f", got {_type_name(evidence)}" if not isinstance(evidence, list) else ""))
        evidence = []
    elif any(not normalize_for_match(e) for e in evidence):
        errs.append("field 'evidence' contains an empty string (it would match any chunk)")
    elif is_answerable and "evidence" in obj and not evidence:
        errs.append("field 'evidence' is empty: an answerable case needs at least one evidence string")
    history = obj.get("history", [])
    if history is None:
        history = []
    if not isinstance(history, list):
        errs.append(f"field 'history' must be a list of {{\"role\", \"content\"}} objects, got {_type_name(history)}")
    else:
        for i, turn in enumerate(history, start=1):
            if not isinstance(turn, dict) or turn.get("role") not in ("user", "assistant") or not isinstance(turn.get("content"), str):
                errs.append(f"field 'history' turn {i} must be {{\"role\": \"user\"|\"assistant\", \"content\": string}}")
                break
    if errs:
        return None, errs
    return Case(id=cid, question=question, answerable=answerable, facts=facts, evidence=evidence, history=history), []


def load_cases(path: str | Path) -> list[Case]:
    """Read and validate a JSONL file of cases.

    Blank lines are skipped. Raises :class:`EvalInputError` listing every
    problem as ``file:line: message`` (bad JSON, missing field, wrong type,
    duplicate id), or when the file is missing or holds no case.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise EvalInputError(f"{path}: cannot read the cases file ({err.strerror or err})") from None
    errors: list[str] = []
    cases: list[Case] = []
    first_line: dict[str, int] = {}
    for n, bline in enumerate(raw.split(b"\n"), start=1):
        if n == 1 and bline.startswith(b"\xef\xbb\xbf"):
            bline = bline[3:]
        try:
            line = bline.decode("utf-8")
        except UnicodeDecodeError as err:
            errors.append(f"{path}:{n}: not valid UTF-8 (byte {err.start + 1})")
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            errors.append(f"{path}:{n}: bad JSON: {err.msg} (column {err.colno})")
            continue
        except RecursionError:
            errors.append(f"{path}:{n}: bad JSON: nested too deeply")
            continue
        case, errs = _check_case(obj)
        if errs:
            errors.extend(f"{path}:{n}: {e}" for e in errs)
            continue
        assert case is not None
        case.line = n
        if case.id in first_line:
            errors.append(f"{path}:{n}: duplicate id {case.id!r} (first used on line {first_line[case.id]})")
            continue
        first_line[case.id] = n
        cases.append(case)
    if errors:
        raise EvalInputError(errors)
    if not cases:
        raise EvalInputError(f"{path}: no cases (expected one JSON object per line, see eval/README.md)")
    return cases


# =========================================================================== metrics
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


# =========================================================================== LLM judge
def parse_json_object(text: str) -> dict:
    """The first JSON object in a model's reply (tolerates code fences and prose around it)."""
    text = text or ""
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            obj, _end = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    raise ValueError("the judge's reply holds no JSON object")


def _content(message: Any) -> str:
    content = getattr(message, "content", message)
    if isinstance(content, list):
        return "".join(c.get("text", "") if isinstance(c, dict) else str(c) for c in content)
    return str(content)


def _truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in {"1", "true", "yes", "supported", "y"}
    return bool(v)


class Judge:
    """LLM-judged metrics in the RAGAS sense, with any LangChain ``BaseChatModel``.

    * **faithfulness**: the model splits the answer into atomic statements and
      marks each as supported or not by the cited passages; score = supported /
      statements.
    * **answer relevancy**: the model writes ``n_questions`` questions the
      answer responds to (and flags a non-committal answer); score = mean cosine
      similarity between the embedded original question and the generated ones
      (0 for a non-committal answer). Without an embedder, the share of
      generated questions equal to the original (normalised) is used.

    Prompts: ``prompts/judge_faithfulness.txt``, ``prompts/judge_relevancy.txt``
    (the ``--- system ---`` / ``--- user ---`` format of :func:`assistant.llm.load_prompt`).
    """

    def __init__(self, chat_model, embedder=None, prompts_dir: str | Path | None = None, n_questions: int = 3,
                 settings: Settings | None = None):
        from .llm import load_prompt

        self.model = chat_model
        self.embedder = embedder
        self.n_questions = n_questions
        self.settings = settings
        self.faithfulness_prompt = load_prompt("judge_faithfulness", directory=prompts_dir)
        self.relevancy_prompt = load_prompt("judge_relevancy", directory=prompts_dir)

    def _ask(self, prompt, **values: str) -> dict:
        from langchain_core.messages import HumanMessage, SystemMessage

        system, user = prompt.render(**values)
        reply = self.model.invoke(([SystemMessage(content=system)] if system else []) + [HumanMessage(content=user)])
        return parse_json_object(_content(reply))

    def faithfulness(self, question: str, answer: str, contexts: Sequence[str]) -> tuple[float, list[dict]]:
        ctx = "\n\n".join(f"[{i}] {c.strip()}" for i, c in enumerate(contexts, start=1)) or "(no passage)"
        data = self._ask(self.faithfulness_prompt, question=question, answer=answer, contexts=ctx)
        statements = data.get("statements")
        if not isinstance(statements, list) or not statements:
            raise ValueError("the judge returned no statements")
        verdicts = [{"statement": str(st.get("statement", "")), "supported": _truthy(st.get("verdict", st.get("supported")))}
                    for st in statements if isinstance(st, dict)]
        if not verdicts:
            raise ValueError("the judge returned no usable statements")
        return sum(v["supported"] for v in verdicts) / len(verdicts), verdicts

    def relevancy(self, question: str, answer: str) -> tuple[float, list[str]]:
        language = "French" if detect_language(question) == "fr" else "English"  # compare like with like
        data = self._ask(self.relevancy_prompt, answer=answer, n=str(self.n_questions), language=language)
        raw = data.get("questions")
        questions = [str(q).strip() for q in raw if str(q).strip()] if isinstance(raw, list) else []
        if not questions:
            raise ValueError("the judge returned no questions")
        if _truthy(data.get("noncommittal", 0)):
            return 0.0, questions
        if self.embedder is None:
            target = normalize_for_match(question)
            return sum(normalize_for_match(q) == target for q in questions) / len(questions), questions
        import numpy as np

        vecs = np.asarray(self.embedder.encode([question] + questions, is_query=True), dtype=np.float32)
        sims = vecs[1:] @ vecs[0]  # the embedders return L2-normalised vectors
        return max(0.0, float(sims.mean())), questions

    def score(self, question: str, answer: str, contexts: Sequence[str]) -> dict[str, Any]:
        """Both metrics for one answer; a failure of either is recorded (without secrets), never raised."""
        from .llm import failure_reason

        out: dict[str, Any] = {}
        errors = []
        try:
            out["faithfulness"], out["judge_statements"] = self.faithfulness(question, answer, contexts)
        except Exception as err:  # noqa: BLE001 - a judge failure must not stop the evaluation
            out["faithfulness"] = None
            errors.append(f"faithfulness: {failure_reason(err, self.settings or Settings())}")
        try:
            out["answer_relevancy"], out["judge_questions"] = self.relevancy(question, answer)
        except Exception as err:  # noqa: BLE001
            out["answer_relevancy"] = None
            errors.append(f"relevancy: {failure_reason(err, self.settings or Settings())}")
        if errors:
            out["judge_error"] = "; ".join(errors)
        return out


def make_judge(settings: Settings, embedder=None) -> Judge:
    """A :class:`Judge` over the configured chat model (``assistant.llm.make_chat_model``)."""
    if not settings.llm:
        raise EvalInputError("--llm-judge needs an LLM backend: set ASSISTANT_LLM (openai, ollama, llamacpp or huggingface)")
    from .llm import LLMError, make_chat_model

    try:
        return Judge(make_chat_model(settings), embedder, settings=settings)
    except LLMError as err:  # misconfigured backend, missing package or prompt file
        raise EvalInputError(f"--llm-judge: {err.reason}") from None


# =========================================================================== running
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
    from .pipeline import QuestionError

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


# =========================================================================== formatting
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


def summary_keys(summary: dict) -> list[str]:
    """Summary keys in display order: counts, then metrics present."""
    keys = [k for k in COUNTS if k in summary] + [k for k in METRICS if k in summary]
    return keys + [k for k in summary if k not in keys]


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    out = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _facts_text(facts: Sequence[Sequence[str]]) -> str:
    return "; ".join(" or ".join(f"“{a}”" for a in alts) for alts in facts) or "(none)"


def render_markdown(result: EvalResult, plots: Sequence[str] = ()) -> str:
    s = result.summary
    meta = result.meta
    lines = [f"# Evaluation report{(' — ' + result.name) if result.name else ''}", ""]
    src = meta.get("cases_file", "")
    lines.append(f"{s['n_cases']} cases ({s['n_answerable']} answerable, {s['n_unanswerable']} unanswerable)"
                 + (f" from `{src}`" if src else "")
                 + (f", documents `{meta['docs']}`" if meta.get("docs") else "")
                 + f", index `{result.config.get('index_dir', '')}`, embedder `{meta.get('embedder', '')}`,"
                 f" k = {meta.get('answer_k')} passages for the answer, retrieval metrics on the top {meta.get('retrieval_depth')}.")
    if meta.get("started"):
        lines.append(f"Run {meta['started']}, {meta.get('seconds', 0):.1f} s.")
    lines += ["", "## Summary", "", md_table(["metric", "value"], [(k, fmt(k, s[k])) for k in summary_keys(s)]), ""]
    for p in plots:
        lines.append(f"![{Path(p).stem}]({Path(p).name})")
    if plots:
        lines.append("")
    changed = {k: v for k, v in result.config.items() if getattr(Settings, k, v) != v}
    if changed:
        lines += ["Settings different from the defaults: " + ", ".join(f"`{k}={v}`" for k, v in changed.items()) + ".", ""]
    failing = [r for r in result.cases if not r["metrics"]["passed"]]
    lines += [f"## Failing cases ({len(failing)})", ""]
    if not failing:
        lines += ["Every case passed (answerable: every fact present and no abstention; unanswerable: abstained).", ""]
    for r in failing:
        m = r["metrics"]
        lines.append(f"### `{r['id']}`")
        lines.append("")
        lines.append(f"- **Question:** {r['question']}")
        if r.get("history"):
            lines.append("- **History:** " + " / ".join(f"{t['role']}: {t['content']}" for t in r["history"]))
        if r.get("error"):
            lines.append(f"- **Error:** {r['error']}")
        if r["answerable"]:
            lines.append(f"- **Expected:** facts {_facts_text(r['expected']['facts'])}; evidence "
                         + ", ".join(f"“{e}”" for e in r["expected"]["evidence"]))
            why = "abstained" if r["abstained"] else "missing facts: " + _facts_text(m.get("missing_facts", []))
            lines.append(f"- **Got** ({why}): {r['answer'] or '(no answer)'}")
            rank = m.get("first_relevant_rank")
            lines.append(f"- **Retrieval:** " + (f"first relevant chunk at rank {rank}" if rank else
                                                  f"no relevant chunk in the top {meta.get('retrieval_depth')}"))
        else:
            lines.append("- **Expected:** abstention (the documents do not contain the answer)")
            lines.append(f"- **Got:** {r['answer'] or '(no answer)'}")
        if r.get("abstain_reason"):
            lines.append(f"- **Abstention reason:** {r['abstain_reason']}")
        for c in r.get("citations", []):
            lines.append(f"  - [{c['n']}] `{c['source']}` {'relevant' if c.get('relevant') else 'not relevant'}: “{_preview(c['quote'], 200)}”")
        top = r.get("retrieved", [])[:3]
        if top:
            lines.append("- **Top retrieved:**")
            for c in top:
                lines.append(f"  - {c['rank']}. `{c['source']}`{' (relevant)' if c['relevant'] else ''}: {c['preview']}")
        lines.append("")
    return "\n".join(lines)


# =========================================================================== plots
def _figure(w: float = 7.0, h: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg, no pyplot global state: thread-safe
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _fraction_keys(summaries: Sequence[dict]) -> list[str]:
    return [k for k, (_hib, frac) in METRICS.items() if frac and any(s.get(k) is not None for s in summaries)]


def write_plots(result: EvalResult, out: Path) -> list[Path]:
    """metrics.png (per-metric bars), hit_at_k.png (hit@k, k = 1..10), latency.png (histogram)."""
    paths = []
    s = result.summary
    keys = _fraction_keys([s])
    fig = _figure(7, 0.38 * max(len(keys), 3) + 1.2)
    ax = fig.add_subplot()
    vals = [s.get(k) or 0.0 for k in keys]
    colors = ["#4c72b0" if METRICS[k][0] else "#c44e52" for k in keys]
    ax.barh(range(len(keys)), vals, color=colors)
    ax.set_yticks(range(len(keys)), [k + ("" if METRICS[k][0] else " (lower is better)") for k in keys])
    ax.invert_yaxis()
    ax.set_xlim(0, 1.08)
    for i, k in enumerate(keys):
        ax.text(min(vals[i], 1.0) + 0.01, i, fmt(k, s.get(k)), va="center", fontsize=8)
    ax.set_title(f"Metrics{(' — ' + result.name) if result.name else ''} ({s['n_cases']} cases)")
    fig.tight_layout()
    paths.append(out / "metrics.png")
    fig.savefig(paths[-1])

    curve = result.curve
    fig = _figure(6, 4)
    ax = fig.add_subplot()
    ks = list(range(1, len(curve) + 1))
    ax.plot(ks, [c if c is not None else float("nan") for c in curve], marker="o")
    ax.set_xticks(ks)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("k (retrieved chunks)")
    ax.set_ylabel("hit@k (answerable cases)")
    ax.set_title("Relevant chunk in the top k")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    paths.append(out / "hit_at_k.png")
    fig.savefig(paths[-1])

    lat = [r["latency_ms"] for r in result.cases if r.get("latency_ms") is not None]
    fig = _figure(6, 4)
    ax = fig.add_subplot()
    if lat:
        ax.hist(lat, bins=min(30, max(5, len(lat) // 2)), color="#55a868")
        for q, style in ((50, "--"), (95, ":")):
            v = percentile(lat, q)
            ax.axvline(v, color="black", linestyle=style, label=f"p{q} = {v:.0f} ms")
        ax.legend()
    ax.set_xlabel("end-to-end latency per question (ms)")
    ax.set_ylabel("cases")
    ax.set_title("Latency")
    fig.tight_layout()
    paths.append(out / "latency.png")
    fig.savefig(paths[-1])

    rc = risk_coverage(result.cases)
    if rc:
        fig = _figure(6, 4)
        ax = fig.add_subplot()
        ax.plot([c for _, c, _ in rc], [a for _, _, a in rc], marker=".")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("share of questions answered (threshold on confidence)")
        ax.set_ylabel("answered correctly")
        ax.set_title("Risk-coverage")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        paths.append(out / "risk_coverage.png")
        fig.savefig(paths[-1])
    return paths


def write_report(result: EvalResult, out: str | Path) -> dict[str, Path]:
    """Write report.json, report.md and the plots into ``out``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(result, out)
    paths = {"json": out / "report.json", "md": out / "report.md"}
    paths["json"].write_text(json.dumps(result.to_json(), ensure_ascii=False, indent=2), encoding="utf-8")
    paths["md"].write_text(render_markdown(result, plots), encoding="utf-8")
    for p in plots:
        paths[p.stem] = p
    return paths


def comparison_rows(results: Sequence[EvalResult]) -> tuple[list[str], list[list[str]]]:
    """Metrics as rows, configurations as columns; the best value of a metric is marked with *."""
    header = ["metric"] + [r.name for r in results]
    rows = []
    keys = summary_keys(results[0].summary)
    for r in results[1:]:
        keys += [k for k in summary_keys(r.summary) if k not in keys]
    for k in keys:
        vals = [r.summary.get(k) for r in results]
        nums = {v for v in vals if v is not None}
        best = (max(nums) if METRICS[k][0] else min(nums)) if k in METRICS and len(nums) > 1 else None
        rows.append([k] + [fmt(k, v) + ("*" if best is not None and v == best else "") for v in vals])
    return header, rows


def write_comparison(results: Sequence[EvalResult], overrides: dict[str, dict], out: str | Path) -> dict[str, Path]:
    """comparison.md, comparison.json and comparison.png across configurations."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    header, rows = comparison_rows(results)
    md = ["# Configuration comparison", "", f"{results[0].summary['n_cases']} cases"
          + (f" from `{results[0].meta['cases_file']}`" if results[0].meta.get("cases_file") else "") + ".", "",
          "| configuration | settings | report |", "|---|---|---|"]
    for r in results:
        ov = ", ".join(f"`{k}={v}`" for k, v in overrides.get(r.name, {}).items()) or "(base settings)"
        md.append(f"| {r.name} | {ov} | [{r.name}/report.md]({r.name}/report.md) |")
    md += ["", md_table(header, rows), "",
           "`*` marks the best value of a metric (highest, or lowest for `false_abstention_rate` and latencies).", "",
           "![comparison](comparison.png)", ""]
    paths = {"md": out / "comparison.md", "json": out / "comparison.json", "png": out / "comparison.png"}
    paths["md"].write_text("\n".join(md), encoding="utf-8")
    data = {"configs": [{"name": r.name, "settings": overrides.get(r.name, {}), "summary": r.summary,
                         "report": f"{r.name}/report.json"} for r in results],
            "metrics": {k: {r.name: r.summary.get(k) for r in results} for k in [row[0] for row in rows]}}
    paths["json"].write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")

    keys = _fraction_keys([r.summary for r in results])
    fig = _figure(max(8, 0.9 * len(keys) + 2), 6)
    ax = fig.add_subplot(2, 1, 1)
    width = 0.8 / len(results)
    for i, r in enumerate(results):
        ax.bar([x + i * width for x in range(len(keys))], [r.summary.get(k) or 0.0 for k in keys], width, label=r.name)
    ax.set_xticks([x + width * (len(results) - 1) / 2 for x in range(len(keys))], keys, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title("Quality (false_abstention_rate: lower is better)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax2 = fig.add_subplot(2, 1, 2)
    lat_keys = ["latency_p50_ms", "latency_p95_ms"]
    for i, r in enumerate(results):
        ax2.bar([x + i * width for x in range(len(lat_keys))], [r.summary.get(k) or 0.0 for k in lat_keys], width, label=r.name)
    ax2.set_xticks([x + width * (len(results) - 1) / 2 for x in range(len(lat_keys))], lat_keys)
    ax2.set_ylabel("ms")
    ax2.set_title("Latency (lower is better)")
    fig.tight_layout()
    fig.savefig(paths["png"])
    return paths


# =========================================================================== gates
@dataclass
class Gate:
    metric: str
    value: float
    under: bool  # True: --fail-under (fails when metric < value); False: --fail-over (fails when metric > value)

    @property
    def flag(self) -> str:
        return "--fail-under" if self.under else "--fail-over"

    def check(self, summary: dict) -> str | None:
        """None when the gate passes, else why it failed."""
        got = summary.get(self.metric)
        if got is None:
            return f"{self.metric} could not be computed (no applicable cases), {self.flag} {self.metric}={self.value:g}"
        if self.under and got < self.value:
            return f"{self.metric} = {fmt(self.metric, got)} is below {self.value:g}"
        if not self.under and got > self.value:
            return f"{self.metric} = {fmt(self.metric, got)} is above {self.value:g}"
        return None


def parse_gates(under: Iterable[str], over: Iterable[str] = ()) -> list[Gate]:
    gates, errors = [], []
    known = list(METRICS) + ["n_judged", "judge_errors"]
    for specs, is_under in ((under or [], True), (over or [], False)):
        flag = "--fail-under" if is_under else "--fail-over"
        for spec in specs:
            name, sep, val = spec.partition("=")
            name = name.strip()
            if not sep:
                errors.append(f"{flag} {spec!r}: expected METRIC=VALUE, e.g. hit@1=0.8")
                continue
            if name not in known:
                errors.append(f"{flag} {spec!r}: unknown metric {name!r} (known: {', '.join(known)})")
                continue
            try:
                value = float(val)
            except ValueError:
                errors.append(f"{flag} {spec!r}: {val.strip()!r} is not a number")
                continue
            gates.append(Gate(name, value, is_under))
    if errors:
        raise EvalInputError(errors)
    return gates


# =========================================================================== configurations and indexes
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def parse_configs(specs: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``["small=chunk_tokens=100,hybrid=off", "base"]`` -> {name: typed overrides}."""
    configs: dict[str, dict[str, Any]] = {}
    errors = []
    for spec in specs:
        name, _sep, rest = spec.partition("=")
        name = name.strip()
        if not _NAME.match(name):
            errors.append(f"--config {spec!r}: the name must be letters, digits, '.', '_' or '-' (it names a folder)")
            continue
        if name in configs:
            errors.append(f"--config {spec!r}: duplicate name {name!r}")
            continue
        try:
            configs[name] = parse_settings_string(rest)
        except ValueError as err:
            errors.append(f"--config {spec!r}: {err}")
    if errors:
        raise EvalInputError(errors)
    return configs


def index_key(docs: str | Path, settings: Settings) -> str:
    """Hash of the resolved documents folder and every setting that changes the index."""
    ident = {"docs": str(Path(docs).resolve()), **{f: getattr(settings, f) for f in INDEX_FIELDS},
             "store": settings.chroma_server}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def eval_cache_dir(docs: str | Path, settings: Settings) -> Path:
    from .offline import cache_root

    return cache_root() / "eval-index" / index_key(docs, settings)


def resolve_index(settings: Settings, *, docs: str | None, index_dir: str | None, base: Settings) -> Settings:
    """Where a configuration's index lives.

    * ``--docs`` without ``--index-dir``: the cache keyed by folder + index settings;
    * ``--index-dir``: that folder, or ``<index-dir>/eval-variants/<key>`` for a
      configuration whose index settings differ from the base settings;
    * neither: the configured index (a configuration may not change index settings).
    With ``--docs`` and a Chroma server, the collection is ``eval-<key>``, never the configured one.
    """
    differs = [f for f in INDEX_FIELDS if getattr(settings, f) != getattr(base, f)]
    if docs:
        key = index_key(docs, settings)
        if index_dir:
            where = Path(index_dir) / "eval-variants" / key if differs else Path(index_dir)
        else:
            where = eval_cache_dir(docs, settings)
        changes: dict[str, Any] = {"index_dir": str(where)}
        if settings.chroma_server:
            changes["collection"] = f"eval-{key}"
        return settings.replace(**changes)
    if differs:
        raise EvalInputError(f"changing {', '.join(differs)} needs its own index: pass --docs DIR so it can be built")
    return settings


# =========================================================================== command
def _err(msg: str) -> None:
    for line in msg.splitlines():
        print(f"error: {line}", file=sys.stderr)


def _note(msg: str) -> None:
    print(msg, file=sys.stderr)


def _load_models(settings: Settings, pool: dict) -> tuple[Any, Any]:
    """The embedder (loaded once for every configuration that embeds alike) and a fresh vector cache.

    Each configuration starts with an empty word/sentence cache, as a fresh
    process would, so that latencies compare like with like.
    """
    from .answer import VectorCache
    from .embeddings import make_embedder

    key = tuple(getattr(settings, f) for f in EMBEDDER_FIELDS)
    if key not in pool:
        pool[key] = make_embedder(settings)
    return pool[key], VectorCache(pool[key])


def default_out_dir(root: str | Path = "eval-runs") -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(root) / stamp
    n = 2
    while out.exists():
        out = Path(root) / f"{stamp}-{n}"
        n += 1
    return out


def run_cli(args, settings: Settings) -> int:
    """``assistant eval`` (see docs/evaluation.md). Returns the exit code."""
    from .pipeline import Assistant, IndexMissingError
    from .store import StoreError

    show = not getattr(args, "no_progress", False) and sys.stderr.isatty()
    try:
        gates = parse_gates(getattr(args, "fail_under", None) or [], getattr(args, "fail_over", None) or [])
        for g in gates:
            if g.under and not METRICS.get(g.metric, (True,))[0]:
                _note(f"note: {g.metric} is lower-is-better; --fail-under fails only when it is below {g.value:g} "
                      f"(use --fail-over {g.metric}=VALUE to cap it)")
        configs = parse_configs(getattr(args, "config", None) or [])
        cases = load_cases(args.cases)
        docs = getattr(args, "docs", None)
        if docs and not Path(docs).exists():
            _err(f"--docs {docs}: no such file or folder")
            return EXIT_FAIL
        named = {name: settings.replace(**ov) for name, ov in configs.items()} if configs else {"": settings}
        runs = {name: resolve_index(s, docs=docs, index_dir=getattr(args, "index_dir", None), base=settings)
                for name, s in named.items()}
        use_judge = bool(getattr(args, "llm_judge", False) or settings.llm_judge)
        for name, s in runs.items():
            if s.answerer == "llm" and not s.llm:
                raise EvalInputError(f"{'config ' + repr(name) + ': ' if name else ''}answerer=llm needs an LLM backend "
                                     "(set llm=openai|ollama|llamacpp|huggingface or ASSISTANT_LLM)")
            if use_judge and not s.llm:
                raise EvalInputError("--llm-judge needs an LLM backend: set ASSISTANT_LLM (or llm=… in each --config)")
    except EvalInputError as err:
        _err(str(err))
        return EXIT_INPUT

    out = Path(args.out) if getattr(args, "out", None) else default_out_dir()
    embedders: dict[tuple, Any] = {}  # one embedder per distinct embedding settings
    results: list[EvalResult] = []
    try:
        for name, s in runs.items():
            embedder, cache = _load_models(s, embedders)
            assistant = Assistant(s, embedder=embedder, cache=cache)
            judge = make_judge(s, embedder) if use_judge else None
            label = name or "eval"
            if docs:
                report = assistant.index([docs], show_progress=show)
                where = s.chroma_server + "#" + s.collection if s.chroma_server else s.index_dir
                changed = report.added or report.updated or report.removed or report.rebuilt
                _note(f"[{label}] index {where}: " + (report.summary() if changed or report.failed
                                                       else f"up to date ({report.total} chunks)"))
                if report.total == 0:
                    _err(f"no document could be indexed from {docs}")
                    return EXIT_FAIL
            else:
                assistant.require_index()
                _check_embedder(assistant)
            result = evaluate(cases, assistant, judge=judge, progress=show, label=label)
            result.name = name
            result.meta.update(cases_file=str(args.cases), docs=str(docs or ""), started=datetime.now().isoformat(timespec="seconds"))
            write_report(result, out / name if name else out)
            results.append(result)
    except EvalInputError as err:
        _err(str(err))
        return EXIT_INPUT
    except (IndexMissingError, StoreError) as err:
        _err(f"{err}" + (" (or pass --docs DIR to index a folder first)" if isinstance(err, IndexMissingError)
                             and "--docs" not in str(err) else ""))
        return EXIT_FAIL

    if configs:
        paths = write_comparison(results, configs, out)
        header, rows = comparison_rows(results)
        print(text_table(header, rows))
        print(f"\nComparison: {paths['md']} (each configuration's report in {out}/<name>/)")
    else:
        r = results[0]
        s = r.summary
        print(f"Evaluated {s['n_cases']} cases ({s['n_answerable']} answerable, {s['n_unanswerable']} unanswerable) "
              f"in {r.meta['seconds']:.1f} s")
        print(text_table(["metric", "value"], [(k, fmt(k, s[k])) for k in summary_keys(s) if k not in COUNTS]))
        print(f"\nReport: {out / 'report.md'}")

    failed = []
    for r in results:
        for g in gates:
            why = g.check(r.summary)
            if why:
                failed.append(f"{('config ' + repr(r.name) + ': ') if r.name else ''}{why}")
    for f in failed:
        print(f"gate failed: {f}", file=sys.stderr)
    return EXIT_GATE if failed else EXIT_OK


def _check_embedder(assistant) -> None:
    """An index built by another embedder gives meaningless similarities: say so instead."""
    from .pipeline import IndexMissingError

    built = assistant.store.info().get("assistant_embedder")
    want = getattr(assistant.embedder, "model_id", None)
    if built and want and built != want:
        raise IndexMissingError(f"the index at {assistant.settings.index_dir} was built with the embedder {built!r} but the "
                             f"settings use {want!r}: re-index it, or pass --docs DIR")
