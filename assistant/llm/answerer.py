"""The LLM answerer: a grounded, cited answer from a chat model, or the extractive answer with a note saying why.

This module owns :class:`LLMAnswerer`: the prompt built from ``prompts/answer_<lang>.txt`` and the packed passages
(:meth:`LLMAnswerer.prepare`), the model's answer streamed within ``llm_timeout`` seconds in total
(:class:`_DeadlineStream`), its check (markers resolved or repaired, each cited sentence checked by the
:class:`~assistant.llm.support.SupportChecker`, the fixed "not in the documents" sentence turned into an
abstention), the fallback to the extractive answer on any failure, a backend marked down for :data:`RETRY_AFTER`
seconds after a timeout or refused connection, and follow-up questions condensed by the model
(:meth:`LLMAnswerer.condense`, :func:`render_history`, :func:`clean_condensed`). Per-request data (the token
counts and raw output, :class:`Usage`) travels on the returned :class:`~assistant.schema.Answer`, never on the
shared answerer.
"""
from __future__ import annotations

import logging
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from ..answer import NOT_FOUND
from ..citations import MARKER, Quote, make_citation, renumber
from ..config import Settings
from ..retrieval import Retrieval, condense_question
from ..schema import Answer, Citation
from ..text import normalize_for_match, sentence_spans
from .backends import describe_backend, limit_kwargs, make_chat_model
from .errors import LLMConfigError, LLMError, LLMUnavailable, LLMUnusable, failure_reason, redact
from .output import append_marker, clean_output, is_abstention, message_text, normalize_markers
from .prompts import (TEMPLATE_TOKENS_PER_MESSAGE, TOKEN_SAFETY, Passage, _neutralise, _truncate_tokens, count_tokens,
                      format_passage, load_prompt, pack_passages)
from .support import SupportChecker

log = logging.getLogger("assistant.llm")

RETRY_AFTER = 30.0  # seconds an unreachable backend is not called again (answers fall back at once)


# --------------------------------------------------------------------------- calls with a deadline
class _DeadlineStream:
    """Iterate ``produce()`` in a worker thread; raise :class:`LLMError` when ``timeout`` seconds pass in total.

    The worker stops (and closes the model's stream, which drops the HTTP
    connection) at the next chunk after the deadline; it is a daemon thread,
    so a backend that never answers cannot hold the process either.
    """

    def __init__(self, produce: Callable[[], Iterator[Any]], timeout: float):
        self.produce = produce
        self.timeout = timeout
        self.queue: queue.Queue = queue.Queue()
        self.cancel = threading.Event()
        self.thread = threading.Thread(target=self._work, name="llm-call", daemon=True)

    def _work(self) -> None:
        it = None
        try:
            it = self.produce()
            for item in it:
                if self.cancel.is_set():
                    break
                self.queue.put(("item", item))
            self.queue.put(("done", None))
        except BaseException as err:  # noqa: BLE001 - handed to the caller
            self.queue.put(("error", err))
        finally:
            close = getattr(it, "close", None)
            if close:
                try:
                    close()
                except Exception:  # noqa: BLE001
                    pass

    def __iter__(self) -> Iterator[Any]:
        deadline = time.monotonic() + self.timeout
        self.thread.start()
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LLMError(f"timeout after {self.timeout:g} s")
                try:
                    kind, val = self.queue.get(timeout=left)
                except queue.Empty:
                    raise LLMError(f"timeout after {self.timeout:g} s") from None
                if kind == "item":
                    yield val
                elif kind == "done":
                    return
                else:
                    raise val
        finally:
            self.cancel.set()



# --------------------------------------------------------------------------- the answerer
@dataclass
class Prepared:
    messages: list[BaseMessage]
    passages: list[Passage]
    language: str
    prompt_tokens: int = 0


@dataclass
class Usage:
    """One model call's token counts (as the backend reports them) and raw output: ``Answer.usage``."""

    output_tokens: int | None = None
    input_tokens: int | None = None
    raw: str = ""  # the model's raw output
    extra: dict = field(default_factory=dict)


class LLMAnswerer:
    """Grounded, cited answers from a language model, with the extractive answerer as a safety net.

    >>> llm = LLMAnswerer(settings, fallback=extractive)  # doctest: +SKIP
    >>> llm.run(retrieval).backend  # doctest: +SKIP
    'llm:openai'
    """

    def __init__(self, settings: Settings, fallback, chat_model: BaseChatModel | None = None,
                 prompts_dir: str | Path | None = None):
        self.settings = settings
        self.fallback = fallback
        self.name = (settings.llm or "").strip().lower()
        self.backend = f"llm:{self.name}"
        self.prompts_dir = prompts_dir
        self._model = chat_model
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._down_reason = ""
        self.checker = SupportChecker(getattr(fallback, "cache", None))
        self._local = threading.local()  # per thread: the Usage of its last model call (see last_usage)

    @property
    def last_usage(self) -> Usage:
        """The :class:`Usage` of the last model call made by the calling thread (read-only; compatibility: an
        answer carries its own as ``Answer.usage``, which is what concurrent callers should read)."""
        usage = getattr(self._local, "usage", None)
        return usage if usage is not None else Usage()

    # --- model ------------------------------------------------------------------
    @property
    def model(self) -> BaseChatModel:
        with self._lock:
            if self._model is None:
                self._model = make_chat_model(self.settings)
            return self._model

    def _merge_system(self) -> bool:
        """Gemma chat templates have no system role (llama.cpp's drops it): send the rules in the user turn."""
        return "gemma" in (self.settings.llm_model or "").lower()

    def _messages(self, system: str, user: str) -> list[BaseMessage]:
        if not system:
            return [HumanMessage(user)]
        if self._merge_system():
            return [HumanMessage(system + "\n\n" + user)]
        return [SystemMessage(system), HumanMessage(user)]

    def _check_available(self) -> None:
        if time.monotonic() < self._down_until:
            raise LLMUnavailable(f"{self._down_reason} on a call moments ago; not retried for {RETRY_AFTER:g} s")

    def _mark(self, err: BaseException, reason: str) -> None:
        if not isinstance(err, LLMUnavailable) and reason.startswith(("timeout", "cannot connect")):
            self._down_until = time.monotonic() + RETRY_AFTER
            self._down_reason = reason

    def _stream_model(self, messages: list[BaseMessage], usage: Usage, **kwargs: Any) -> Iterator[str]:
        """Text pieces from the model within ``llm_timeout`` seconds in total (raises :class:`LLMError`); the call's
        token counts and raw output are recorded in ``usage``."""
        self._check_available()
        model = self.model
        self._local.usage = usage
        for chunk in _DeadlineStream(lambda: model.stream(messages, **kwargs), self.settings.llm_timeout):
            meta = getattr(chunk, "usage_metadata", None)
            if meta:
                usage.output_tokens = meta.get("output_tokens", usage.output_tokens)
                usage.input_tokens = meta.get("input_tokens", usage.input_tokens)
            piece = message_text(chunk)
            if piece:
                usage.raw += piece
                yield piece

    # --- prompts -----------------------------------------------------------------
    def prepare(self, retrieval: Retrieval) -> Prepared:
        lang = retrieval.language if retrieval.language in NOT_FOUND else "en"
        tpl = load_prompt("answer", lang, self.prompts_dir)
        question = retrieval.question
        standalone = ""
        if retrieval.standalone and normalize_for_match(retrieval.standalone) != normalize_for_match(question):
            label = "Question autonome" if lang == "fr" else "Standalone form"
            standalone = f"\n({label}: {_neutralise(retrieval.standalone)})"
        values = dict(question=_neutralise(question), standalone=standalone, not_found=NOT_FOUND[lang])
        system, user_empty = tpl.render(passages="", **values)
        fixed = count_tokens(system) + count_tokens(user_empty) + 2 * TEMPLATE_TOKENS_PER_MESSAGE
        ctx, out = int(self.settings.llm_context_tokens), int(self.settings.llm_max_tokens)
        margin = max(32, int(0.03 * ctx))
        budget = int(ctx - out - margin - fixed * TOKEN_SAFETY)
        passages = pack_passages(retrieval.chunks, budget)
        if retrieval.chunks and not passages:
            raise LLMConfigError(f"the context window (llm_context_tokens={ctx}) leaves no room for passages "
                                 f"after the prompt ({fixed} tokens) and the answer (llm_max_tokens={out})")
        system, user = tpl.render(passages="\n\n".join(format_passage(p.n, p.chunk, p.text) for p in passages), **values)
        prompt_tokens = count_tokens(system) + count_tokens(user) + 2 * TEMPLATE_TOKENS_PER_MESSAGE
        return Prepared(self._messages(system, user), passages, lang, prompt_tokens)

    # --- answering ---------------------------------------------------------------
    def run(self, retrieval: Retrieval, history: list[dict] | None = None) -> Answer:
        final = None
        for item in self.stream(retrieval, history):
            if isinstance(item, Answer):
                final = item
        assert final is not None
        return final

    def stream(self, retrieval: Retrieval, history: list[dict] | None = None) -> Iterator[str | Answer]:
        """Yield the growing answer text, then the checked :class:`Answer` (or the fallback answer with a note)."""
        t0 = time.perf_counter()
        if not retrieval.chunks:
            yield self._finish(self._abstained(retrieval, "nothing retrieved"), t0)
            return
        raw = ""
        usage = None
        try:
            prepared = self.prepare(retrieval)
            usage = Usage()
            for piece in self._stream_model(prepared.messages, usage):
                raw += piece
                yield clean_output(raw)
            text = clean_output(raw)
            if not text:
                raise LLMError("empty output")
            answer = self.postprocess(text, prepared, retrieval)
        except Exception as err:  # noqa: BLE001 - every failure becomes the grounded answer with a note
            reason = failure_reason(err, self.settings)
            self._mark(err, reason)
            where = describe_backend(self.settings)
            if isinstance(err, LLMUnusable):
                log.info("answer of %s not used: %s", where, reason)
                note = (f"The language model's answer ({where}) was not used: {reason}; "
                        "this is the grounded extractive answer.")
            else:
                log.warning("LLM backend %s failed: %s", where, reason)
                note = f"The language model ({where}) did not answer ({reason}); this is the grounded extractive answer."
            answer = self._fallback(retrieval, note)
            yield answer.answer
        answer.usage = usage
        yield self._finish(answer, t0)

    def _finish(self, answer: Answer, t0: float) -> Answer:
        answer.timings_ms["answer"] = (time.perf_counter() - t0) * 1000
        return answer

    def _fallback(self, retrieval: Retrieval, note: str) -> Answer:
        answer = self.fallback.run(retrieval)
        answer.note = redact(note, self.settings)
        return answer

    def _abstained(self, retrieval: Retrieval, why: str) -> Answer:
        lang = retrieval.language if retrieval.language in NOT_FOUND else "en"
        return Answer(question=retrieval.question, answer=NOT_FOUND[lang], abstained=True, citations=[],
                      retrieved=retrieval.chunks, standalone_question=retrieval.standalone, language=lang,
                      backend=self.backend, debug=why)

    def postprocess(self, text: str, prepared: Prepared, retrieval: Retrieval) -> Answer:
        """The model's text -> a checked :class:`Answer` (markers resolved, sentences checked, abstention detected).

        Raises :class:`LLMError` when nothing in the answer can be tied to a passage.
        """
        passages = {p.n: p for p in prepared.passages}
        text = normalize_markers(text)
        if is_abstention(text, len(passages)):
            answer = self._abstained(retrieval, "the model replied that the passages do not contain the answer")
            return answer
        # sentence spans (a run of markers alone belongs to the sentence before); text between them is kept as is
        spans: list[list[int]] = []
        for s, e in sentence_spans(text):
            if spans and not MARKER.sub("", text[s:e]).strip(" \t.,;:!?"):
                spans[-1][1] = e
                continue
            spans.append([s, e])
        cites: dict[int, Citation] = {}
        best_quote: dict[int, float] = {}
        out: list[str] = []
        pos = 0
        for s, e in spans:
            sent = text[s:e]
            out.append(text[pos:s])
            pos = e
            claim = MARKER.sub("", sent).strip()
            valid = [n for n in dict.fromkeys(int(x) for x in MARKER.findall(sent)) if n in passages]
            if not valid and len(re.findall(r"\w+", claim)) >= 3:
                # repair: an uncited sentence gets the passage that supports it best, if one does
                sups = {p.n: self.checker.check(claim, p) for p in passages.values()}
                n = max(sups, key=lambda k: sups[k].score)
                if self.checker.judge(claim, {n: sups[n]})[n]:
                    sent = append_marker(MARKER.sub("", sent).rstrip(), n)
                    valid = [n]
            if valid:
                sups = {n: self.checker.check(claim, passages[n]) for n in valid}
                verdict = self.checker.judge(claim, sups)
                for n in valid:
                    sup, p = sups[n], passages[n]
                    if n not in cites or sup.score > best_quote[n]:
                        c = make_citation(n, Quote(p.chunk, *sup.span))
                        c.supported = cites[n].supported if n in cites else True
                        cites[n] = c
                        best_quote[n] = sup.score
                    if not verdict[n]:
                        cites[n].supported = False
            out.append(sent)
        out.append(text[pos:])
        body = "".join(out)
        body, citations, dropped = renumber(body, list(cites.values()))
        if dropped:
            log.info("dropped citation markers that match no passage: %s", sorted(set(dropped)))
        if not citations:
            raise LLMUnusable("it cites none of the passages, so it could not be checked")
        if not any(c.supported for c in citations):
            raise LLMUnusable("none of its cited sentences is supported by the passages it cites")
        return Answer(question=retrieval.question, answer=body, abstained=False, citations=citations,
                      retrieved=retrieval.chunks, standalone_question=retrieval.standalone, language=prepared.language,
                      backend=self.backend, unsupported=[c.n for c in citations if not c.supported])

    # --- follow-ups --------------------------------------------------------------
    def condense(self, question: str, history: list[dict] | None) -> str:
        """A standalone form of a follow-up question, written by the model; the deterministic expansion
        (:func:`assistant.retrieval.condense_question`) on any failure."""
        fallback = condense_question(question, history, self.settings.history_turns)
        if not history:
            return question
        try:
            tpl = load_prompt("condense", "en", self.prompts_dir)
            system, user = tpl.render(history=_neutralise(render_history(history, self.settings.history_turns)),
                                      question=_neutralise(question))
            limit = max(32, min(160, int(self.settings.llm_max_tokens)))
            out = "".join(self._stream_model(self._messages(system, user), Usage(), **self._limit_kwargs(limit)))
            standalone = clean_condensed(out, question)
            if not standalone:
                raise LLMError("unusable condensed question")
            return standalone
        except Exception as err:  # noqa: BLE001
            reason = failure_reason(err, self.settings)
            self._mark(err, reason)
            log.info("condensing with %s failed (%s); using the deterministic expansion", self.name, reason)
            return fallback

    def _limit_kwargs(self, limit: int) -> dict[str, Any]:
        """Per-call token limit in each backend's own parameter (:func:`assistant.llm.backends.limit_kwargs`)."""
        return limit_kwargs(self.settings, lambda: self.model, limit)



def render_history(history: list[dict], turns: int = 2, max_tokens: int = 200) -> str:
    """The last ``turns`` exchanges as 'User: …' / 'Assistant: …' lines (Gradio 6 content blocks accepted)."""
    lines = []
    for t in history[-2 * max(1, turns):]:
        role = "User" if t.get("role") == "user" else "Assistant"
        text = re.sub(r"\s+", " ", MARKER.sub("", message_text(t.get("content"), " "))).strip()
        if text:
            lines.append(f"{role}: {_truncate_tokens(text, max_tokens)}")
    return "\n".join(lines)


def clean_condensed(out: str, question: str) -> str:
    """The model's standalone question, or '' when the output is not one."""
    text = clean_output(out)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return ""
    text = re.sub(r"^(?:standalone question|question autonome|question)\s*:\s*", "", lines[0], flags=re.I)
    text = text.strip().strip("\"'“”«» ").strip()
    if not text or len(text) > max(300, 3 * len(question)) or len(re.findall(r"\w+", text)) < 2:
        return ""
    if is_abstention(text) or "<" in text:
        return ""
    return text
