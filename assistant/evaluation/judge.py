"""The optional LLM judge (``--llm-judge``): :class:`Judge` (faithfulness, answer relevancy) and :func:`make_judge`."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

from ..config import Settings
from ..text import detect_language, message_text, normalize_for_match
from .cases import EvalInputError


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
        from ..llm import load_prompt

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
        return parse_json_object(message_text(reply))

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
        from ..llm import failure_reason

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
        from ..llm.backends import backend_names

        *first, last = backend_names()
        raise EvalInputError(f"--llm-judge needs an LLM backend: set ASSISTANT_LLM ({', '.join(first)} or {last})")
    from ..llm import LLMError, make_chat_model

    try:
        return Judge(make_chat_model(settings), embedder, settings=settings)
    except LLMError as err:  # misconfigured backend, missing package or prompt file
        raise EvalInputError(f"--llm-judge: {err.reason}") from None
