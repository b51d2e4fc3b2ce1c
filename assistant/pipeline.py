"""The assistant: composes the stages (index -> retrieve -> answer -> cite).

One :class:`Assistant` per process is shared by the CLI, the UI and the
evaluation; models load lazily on first use, and every method is safe to call
from several threads.
"""
from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Iterator

from .answer import ExtractiveAnswerer
from .vector_cache import VectorCache
from .config import Settings
from .embeddings import make_embedder
from .priority import PRIORITY
from .lexical import LexicalIndex
from .retrieval import HybridRetriever, Retrieval
from .schema import Answer
from .stages import Answerer, Retriever
from .store import ChunkStore, StoreError


class QuestionError(ValueError):
    """The question cannot be answered as given (empty, too long…)."""


class IndexMissingError(RuntimeError):
    pass


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")  # and lone surrogates (not encodable text)


def clean_question(question: str | None, max_chars: int) -> str:
    if question is None:
        raise QuestionError("the question is empty")
    if not isinstance(question, str):
        question = str(question)
    q = _CONTROL.sub(" ", question).strip()
    if not q:
        raise QuestionError("the question is empty")
    if len(q) > max_chars:
        raise QuestionError(f"the question is {len(q)} characters long; the maximum is {max_chars} "
                            "(ASSISTANT_MAX_QUESTION_CHARS)")
    return re.sub(r"\s+", " ", q)


class Assistant:
    """Question answering over an index of documents.

    >>> a = Assistant(Settings.from_env())  # doctest: +SKIP
    >>> a.ask("How much did Morocco allocate to startups?").citations[0].source  # doctest: +SKIP
    'seeds/000_aa041678daf2c786.txt'
    """

    def __init__(self, settings: Settings | None = None, embedder=None, cache: VectorCache | None = None, *,
                 retriever: Retriever | None = None, answerer: Answerer | None = None):
        """``retriever``/``answerer``: stages to use instead of the built-in ones (``assistant.stages``); the
        built-in ones are made from ``settings``."""
        self.settings = settings or Settings.from_env()
        self.embedder = embedder or make_embedder(self.settings)
        # this process answers questions: its indexing runs give way to them (one scheduler per process)
        PRIORITY.serve(slice_ms=self.settings.embed_slice_ms, max_wait_ms=self.settings.index_max_wait_ms)
        self.store = ChunkStore(self.settings, self.embedder)
        self.lexical = LexicalIndex(self.store, stemming=self.settings.stem)
        from .lexicon import Lexicon

        self.lexicon = Lexicon(self.store.local_path("lexicon"), self.embedder)
        self.cache = cache if cache is not None else VectorCache(self.embedder)  # share one between assistants with the same embedder
        from .sentences import method_of

        if method_of(self.settings) != "off":  # sentence vectors stored at index time (assistant.sentences)
            self.cache.attach(self.store.sentences)
        self.retriever: Retriever = retriever or HybridRetriever(self.store, self.embedder, self.lexical, k=self.settings.k, lexicon=self.lexicon,
                                         hybrid=self.settings.hybrid, history_turns=self.settings.history_turns,
                                         embed_question=self.cache.query_and_words, fusion=self.settings.fusion,
                                         expand=self.settings.xling,
                                         same_language_expansion=self.settings.same_lang_expansion,
                                         candidates=self.settings.candidates)
        self.extractive = ExtractiveAnswerer(self.embedder, threshold=self.settings.abstain_threshold,
                                             max_sentences=self.settings.max_answer_sentences, cache=self.cache,
                                             lexicon=self.lexicon, vocabulary=self.lexical.vocabulary,
                                             tokens=self.lexical.tokens,
                                             threshold_xling=self.settings.abstain_threshold_xling)
        self.rules = self.extractive
        if self.settings.reader == "fitted":  # the fitted reader (assistant.reader, docs/reader.md), when it has weights
            from .reader import Reader, weights_for

            if weights_for(self.embedder) is not None:
                self.extractive = Reader(self.embedder, cache=self.cache, lexicon=self.lexicon,
                                         vocabulary=self.lexical.vocabulary, rules=self.rules,
                                         type_veto=self.settings.reader_type_veto)
        if answerer is not None:  # the LLM answerer falls back to it too
            self.extractive = answerer
        self._llm = None
        self._llm_lock = threading.Lock()
        self._indexer = None
        self._index_lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------
    def warm_up(self) -> None:
        for stage in (self.retriever, self.extractive):
            if callable(getattr(stage, "warm_up", None)):
                stage.warm_up()

    def refresh(self, wait: bool = True) -> None:
        """Follow new index content now (the retriever's BM25 snapshot), when the retriever follows any."""
        refresh = getattr(self.retriever, "refresh", None)
        if callable(refresh):
            refresh(max_age=0, wait=wait)

    @property
    def indexer(self):
        from .indexing import Indexer

        with self._index_lock:
            if self._indexer is None:
                self._indexer = Indexer(self.settings, embedder=self.embedder, store=self.store, lexical=self.lexical,
                                        lexicon=self.lexicon)
            return self._indexer

    def index(self, paths=None, rebuild: bool = False, progress=None, show_progress: bool | None = None):
        report = self.indexer.run(paths, rebuild=rebuild, progress=progress, show_progress=show_progress)
        self.refresh()
        return report

    def has_index(self) -> bool:
        if not self.store.is_server and not (self.settings.index_path / "chroma").exists():
            return False
        try:
            return self.store.exists() and self.store.count() > 0
        except StoreError:
            raise

    def require_index(self) -> None:
        if not self.has_index():
            where = self.settings.chroma_server or self.settings.index_dir
            raise IndexMissingError(f"there is no index at {where} yet. Build it with: assistant index {self.settings.docs_dir}"
                                    + (f" --index-dir {self.settings.index_dir}" if self.settings.index_dir != "index" else ""))

    # --- answering ---------------------------------------------------------------
    @property
    def llm(self):
        if not self.settings.llm:
            return None
        with self._llm_lock:
            if self._llm is None:
                from .llm import LLMAnswerer

                self._llm = LLMAnswerer(self.settings, fallback=self.extractive)
            return self._llm

    def backends(self) -> list[str]:
        return ["extractive"] + ([f"llm:{self.settings.llm}"] if self.settings.llm else [])

    def _use_llm(self, backend: str | None) -> bool:
        if backend:
            return backend.startswith("llm") and self.llm is not None
        return self.settings.answerer == "llm" and self.llm is not None

    def retrieve(self, question: str, history: list[dict] | None = None, k: int | None = None,
                 backend: str | None = None) -> Retrieval:
        q = clean_question(question, self.settings.max_question_chars)
        if self._use_llm(backend) and history:
            standalone = self.llm.condense(q, history)
            retrieval = self.retriever.run(standalone, None, k=k)
            retrieval.question, retrieval.standalone = q, standalone
            return retrieval
        return self.retriever.run(q, history, k=k)

    def ask(self, question: str, history: list[dict] | None = None, k: int | None = None,
            backend: str | None = None) -> Answer:
        t0 = time.perf_counter()
        with PRIORITY.question():  # an indexing run in this process waits meanwhile (assistant.priority)
            retrieval = self.retrieve(question, history, k, backend)
        if self._use_llm(backend):
            answer = self.llm.run(retrieval, history)
        else:
            with PRIORITY.question():
                answer = self.extractive.run(retrieval)
        answer.timings_ms = {"retrieve": retrieval.timings_ms.get("retrieve", 0.0),
                             "answer": answer.timings_ms.get("answer", 0.0),
                             "total": (time.perf_counter() - t0) * 1000}
        return answer

    def stream(self, question: str, history: list[dict] | None = None, k: int | None = None,
               backend: str | None = None) -> Iterator[str | Answer]:
        """Yield growing answer text, then the final :class:`Answer`."""
        t0 = time.perf_counter()
        with PRIORITY.question():  # no yield inside: a generator may resume on another thread
            retrieval = self.retrieve(question, history, k, backend)
        if self._use_llm(backend):
            final = None
            for item in self.llm.stream(retrieval, history):
                if isinstance(item, Answer):
                    final = item
                else:
                    yield item
            answer = final
        else:
            with PRIORITY.question():
                answer = self.extractive.run(retrieval)
            words = re.split(r"(\s+)", answer.answer)
            acc = ""
            for i in range(0, len(words), 6):  # extractive answers arrive at once; stream them in word groups
                acc += "".join(words[i:i + 6])
                yield acc
        answer.timings_ms = {"retrieve": retrieval.timings_ms.get("retrieve", 0.0),
                             "answer": answer.timings_ms.get("answer", 0.0),
                             "total": (time.perf_counter() - t0) * 1000}
        yield answer

    # --- status ----------------------------------------------------------------
    def status(self) -> dict:
        out = {"embedding_model": self.embedder.model_id, "store": self.settings.chroma_server or
               str(Path(self.settings.index_dir) / "chroma"), "documents": 0, "chunks": 0}
        try:
            files = self.indexer.manifest.files()
            out["documents"] = sum(1 for r in files.values() if r.status == "done")
            out["chunks"] = self.store.count()
        except StoreError as err:
            out["error"] = str(err)
        out["degraded"] = self.problems(indexed=out["documents"] > 0)
        return out

    def problems(self, indexed: bool | None = None) -> list[str]:
        """The fallbacks in use or met (``assistant.health``), one line each: an unavailable cross-lingual lexicon
        over a non-empty index, reader exceptions of the last indexing run, an LLM support check without vectors…"""
        from .health import describe, recovered, states
        from .retrieval import lexicon_unavailable

        if indexed is None:
            try:
                indexed = any(r.status == "done" for r in self.indexer.manifest.files().values())
            except Exception:  # noqa: BLE001 - no manifest yet
                indexed = False
        if indexed and not self.lexicon.load():
            lexicon_unavailable(self.lexicon, self.settings)
        elif self.lexicon.load():
            recovered("lexicon", self.settings.index_path)
        return [describe(s) for s in states(self.settings.index_path)]
