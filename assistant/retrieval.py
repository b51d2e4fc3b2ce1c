"""Retrieval: a question (plus chat history) -> scored chunks, by dense + BM25 search.

* :class:`~assistant.lexical.LexicalIndex` - the BM25 index (``assistant/lexical.py``; re-exported here).
* :class:`HybridRetriever` - dense search in Chroma, BM25, and a weighted
  fusion. Plain rank fusion hurts when the question and the documents are in
  different languages (BM25 then matches little but names and cognates), so
  the lexical side is weighted by how much of the question it actually
  matched and by the language relation (see ``lexical_weight``).
* :func:`condense_question` - deterministic follow-up expansion with the
  recent user turns.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from . import followup
from .health import degraded, recovered
from .lexical import LexicalIndex  # noqa: F401 - re-exported (indexer, library, tests)
from .schema import ScoredChunk
from .store import ChunkStore
from .text import STOP, detect_language, error_line, message_text, words_of

log = logging.getLogger(__name__)


def lexicon_unavailable(lexicon, settings) -> str:
    """Record (``assistant.health``) and return the message for a lexicon that does not load over a non-empty index."""
    index = "" if settings.index_dir == "index" else f" --index-dir {settings.index_dir}"
    msg = (f"cross-lingual lexicon: unavailable ({lexicon.problem or 'not loaded'}) — questions in one language no "
           f"longer find documents in the other by their words; rebuild it with `assistant index {settings.docs_dir}{index}`")
    degraded("lexicon", msg, lexicon.problem_error, index_path=settings.index_path)
    return msg


# --------------------------------------------------------------------------- follow-ups
FOLLOWUP_VERSION = "2"  # bump when the follow-up decision changes (bench.quality's cached retrievals depend on it)


def is_followup(question: str) -> bool:
    """The cue-only decision (:func:`assistant.followup.cue_rule`; the retriever adds retrieval evidence where
    fitted weights exist, see :meth:`HybridRetriever.resolve`)."""
    return followup.cue_rule(question)


def history_questions(history: list[dict] | None, turns: int = 2) -> list[str]:
    """The last ``turns`` user questions of the history."""
    users = [message_text(t.get("content"), " ") for t in (history or []) if t.get("role") == "user"]
    return [u.strip() for u in users if u.strip()][-turns:]


def condensed_form(question: str, history: list[dict] | None, turns: int = 2) -> str:
    """The question with the recent user questions it may refer to appended (the question itself without any)."""
    users = history_questions(history, turns)
    return question.strip() + " (" + " ".join(users) + ")" if users else question


def condense_question(question: str, history: list[dict] | None, turns: int = 2) -> str:
    """Standalone form of a follow-up by the cues alone: the question plus the recent user turns it refers to.

    Without an LLM, a follow-up ("What is that money for?") is expanded with the
    previous user questions, which carry the topic; self-contained questions are
    left alone. :meth:`HybridRetriever.resolve` adds the retrieval evidence (:mod:`assistant.followup`).
    """
    if not history or not is_followup(question):
        return question
    return condensed_form(question, history, turns)


# --------------------------------------------------------------------------- hybrid
@dataclass
class Retrieval:
    question: str
    standalone: str
    chunks: list[ScoredChunk]
    timings_ms: dict[str, float] = field(default_factory=dict)
    language: str = "en"
    context: str = ""  # for follow-ups: the recent turns the question refers to (user questions and last answer)
    translations: dict[str, dict[str, float]] | None = None  # question word -> corpus words (cross-lingual lexicon)
    followup: float | None = None  # with a history: the fitted probability that the question needs it (followup.py)


class HybridRetriever:
    """Dense + BM25 retrieval with confidence- and language-weighted fusion.

    >>> r = HybridRetriever(store, embedder, k=5)  # doctest: +SKIP
    >>> r.run("How much did Morocco allocate to startups?").chunks[0].source  # doctest: +SKIP
    'seeds/000_aa041678daf2c786.txt'
    """

    RRF_K = 60

    def __init__(self, store: ChunkStore, embedder, lexical: LexicalIndex | None = None, k: int = 5,
                 hybrid: str = "auto", history_turns: int = 2, lexicon=None, embed_question=None, *,
                 fusion: str = "cc", expand: bool = True, same_language_expansion: float = 0.3, candidates: int = 20):
        if hybrid not in ("auto", "on", "off"):
            raise ValueError("hybrid must be auto, on or off")
        if fusion not in ("cc", "rrf"):
            raise ValueError(f"fusion must be cc or rrf, not {fusion!r}")
        # the experiment settings (assistant.config, "experimental"): the README's measurements, `eval --config`
        self.fusion = fusion  # "cc" (convex combination of normalised scores) or "rrf" (reciprocal-rank fusion)
        self.expand = bool(expand)  # cross-lingual expansion of the BM25 query (setting xling)
        self.same_language_expansion = float(same_language_expansion)  # its weight within one language
        self.candidates = int(candidates)  # passages from each search before fusion (at least 4 k)
        self.store = store
        self.embedder = embedder
        # (question, words) -> (the question's vector, {word: vector}); a cache shared with the answerer embeds each
        # question and word once per process
        self.embed_question = embed_question or self._embed_question
        self.lexical = lexical or LexicalIndex(store)
        self.k = k
        self.hybrid = hybrid
        self.history_turns = history_turns
        if lexicon is None:
            from .lexicon import Lexicon

            lexicon = Lexicon(store.local_path("lexicon"), embedder)
        self.lexicon = lexicon
        self._gen_checked = 0.0
        self._gen_lock = threading.Lock()
        self._follower: threading.Thread | None = None  # builds a server generation's BM25 snapshot (see refresh)

    def warm_up(self) -> None:
        self.embedder.warm_up()
        self.lexical.load()
        if self.store.is_server:  # at start-up, not in a request: follow the server's generation now
            self.refresh(max_age=0, wait=True)

    def refresh(self, max_age: float = 2.0, wait: bool = False) -> None:
        """Reload the BM25 snapshot when another process (or an upload) indexed new content.

        In server mode another machine may have indexed into the shared collection: a new generation there means a
        new BM25 snapshot to build here (every chunk's text fetched and tokenised: seconds to minutes). That is never
        done inside a request: a background thread builds and publishes it, and queries meanwhile answer from the
        snapshot they have (or from the dense search alone when there is none yet). ``wait``: wait for that thread.
        """
        now = time.monotonic()
        if now - self._gen_checked >= max_age:
            with self._gen_lock:
                self._gen_checked = now
                loaded = self.lexical.load()
                if self.store.is_server:
                    gen = self.store.generation()
                    if gen and (loaded is None or loaded[0] != gen):
                        self._follow(gen)
        if wait:
            self.wait_for_refresh()

    def _follow(self, gen: int) -> None:
        """Build the snapshot of generation ``gen`` in the background (one thread at a time; called under _gen_lock)."""
        if self._follower is not None and self._follower.is_alive():
            return
        self._follower = threading.Thread(target=self._build_snapshot, args=(gen,), name="assistant-bm25-follow",
                                          daemon=True)
        self._follower.start()

    def _build_snapshot(self, gen: int) -> None:
        from .store import StoreError, index_lock

        try:
            # an indexing run on this index dir publishes its own snapshot: do not race it (next refresh retries)
            with index_lock(self.store.settings.index_path, wait=0):
                gen = self.store.generation() or gen
                cur = self.lexical.current()
                if cur is None or cur[0] != gen:
                    t0 = time.perf_counter()
                    self.lexical.build(self.store.all_ids(), generation=gen)
                    log.info("BM25 snapshot of generation %d built in the background in %.1f s", gen,
                             time.perf_counter() - t0)
                self.lexical.load()
        except StoreError as err:
            if "another indexing run" in str(err):
                log.debug("BM25 snapshot not followed now: %s", err)
            else:
                degraded("bm25-follow", f"BM25 snapshot: could not follow the Chroma server's generation {gen} "
                         f"({error_line(err, 200)}); answers use the previous snapshot", err,
                         index_path=self.store.settings.index_path)
            self._gen_checked = 0.0  # try again at the next query
        except Exception as err:  # noqa: BLE001 - a background thread: report, never raise into nothing
            degraded("bm25-follow", f"BM25 snapshot: could not follow the Chroma server's generation {gen} "
                     f"({error_line(err, 200, with_type=True)}); answers use "
                     "the previous snapshot", err, index_path=self.store.settings.index_path)
            self._gen_checked = 0.0

    def wait_for_refresh(self, timeout: float | None = None) -> bool:
        """Wait for a background snapshot build (see :meth:`refresh`); False when it is still running."""
        th = self._follower
        if th is not None:
            th.join(timeout)
            return not th.is_alive()
        return True

    def _embed_question(self, question: str, words: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        from .embeddings import encode_with_query

        qvec, vecs = encode_with_query(self.embedder, question, words)
        return qvec, dict(zip(words, vecs))

    def fuse(self, dense: list[ScoredChunk], lex_hits: list[tuple[str, float]], weight: float) -> dict[str, float]:
        """Combine the dense and BM25 rankings.

        ``cc`` (convex combination of normalised scores) keeps how much better one passage matched than the next,
        which reciprocal-rank fusion throws away (two passages one rank apart on each side tie under RRF).
        """
        fused: dict[str, float] = {}
        if self.fusion == "rrf":
            for rank, d in enumerate(dense):
                fused[d.chunk_id] = 1.0 / (self.RRF_K + rank + 1)
            if weight > 0:
                for rank, (cid, _s) in enumerate(lex_hits):
                    fused[cid] = fused.get(cid, 0.0) + weight / (self.RRF_K + rank + 1)
            return fused
        if dense:
            hi = max(d.dense_score for d in dense)
            lo = min(d.dense_score for d in dense)
            span = max(hi - lo, 1e-6)
            for d in dense:
                fused[d.chunk_id] = (d.dense_score - lo) / span
        if weight > 0 and lex_hits:
            top = max(s for _, s in lex_hits) or 1.0
            for cid, sc in lex_hits:
                fused[cid] = fused.get(cid, 0.0) + weight * sc / top
        return fused

    def lexical_weight(self, q_lang: str, coverage: float) -> float:
        """Weight of the BM25 scores in the fusion (dense scores have weight 1).

        ``auto`` weighs BM25 by the share of the question's terms its vocabulary knows (after the cross-lingual
        expansion): a question whose words the corpus never uses gets little say from BM25.
        """
        if self.hybrid == "off":
            return 0.0
        if self.hybrid == "on":
            return 1.0
        return coverage

    def resolve(self, question: str, history: list[dict] | None) -> tuple[str, float | None]:
        """The question to retrieve with: condensed with the history when it is a follow-up (see
        :mod:`assistant.followup`), and the fitted probability that it is one (None: no history, or cues only)."""
        users = history_questions(history, self.history_turns)
        if not users:
            return question, None
        condensed = condensed_form(question, history, self.history_turns)
        model = followup.load_model(getattr(self.embedder, "model_id", "") or "")
        if model is None:
            return (condensed if followup.cue_rule(question) else question), None
        feats = self.followup_features(question, users[-1], condensed)
        p = model.probability(feats)
        return (condensed if p >= model.threshold else question), p

    def followup_features(self, question: str, previous: str, condensed: str) -> dict[str, float]:
        """:func:`assistant.followup.features` of a question after ``previous``: two more dense searches."""
        q_vec = self.embed_question(question, [])[0]
        prev_vec = self.embed_question(previous, [])[0]
        c_vec = self.embed_question(condensed, [])[0]
        n = 5
        alone = [(d.chunk_id, d.score) for d in self.store.query(q_vec, n)]
        cond = [(d.chunk_id, d.score) for d in self.store.query(c_vec, n)]
        return followup.features(question, q_vec, prev_vec, alone, cond)

    def run(self, question: str, history: list[dict] | None = None, k: int | None = None) -> Retrieval:
        k = k or self.k
        t0 = time.perf_counter()
        self.refresh()
        standalone, p_followup = self.resolve(question, history)
        lang = detect_language(question)
        n_cand = max(4 * k, self.candidates)
        # the question's words, to translate into the corpus's words (both ways: EN->FR, FR->EN)
        words = [w for w in dict.fromkeys(words_of(standalone)) if w not in STOP and len(w) > 2 and not w.isdigit()]
        qvec, word_vecs = self.embed_question(standalone, words)
        t_embed = time.perf_counter()
        # one BM25 snapshot for the whole query: its live ids filter the dense hits and its index gives the lexical
        # hits, so a snapshot switch mid-query cannot mix an old version of a file with its new one
        snap = self.lexical.load()
        dense = self.store.query(qvec, n_cand)
        live = self.lexical.live_ids(snap)
        if live is not None:  # read a consistent snapshot while an indexing run writes
            dense = [d for d in dense if d.chunk_id in live]
        t_dense = time.perf_counter()
        translations = self.lexicon.translate(words, np.stack([word_vecs[w] for w in words])) if words else {}
        t_trans = time.perf_counter()
        lex_hits: list[tuple[str, float]] = []
        weight = 0.0
        if self.hybrid != "off":
            tokens = self.lexical.tokens(standalone)
            # the corpus translations of the question's words: essential when the question is in another language
            # than the documents ("allocate" -> "mobilisé"), a mild help (synonyms) within one language
            doc_lang = "fr" if self.lexical.meta(snap).get("french_share", 0.5) >= 0.5 else "en"
            extra = [t for tr in translations.values() for t in self.lexical.tokens(" ".join(list(tr)[:2]))] \
                if self.expand else []
            extra_weight = 1.0 if lang != doc_lang else self.same_language_expansion
            lex_hits, coverage = self.lexical.search(tokens, n_cand, extra, extra_weight, snapshot=snap)
            weight = self.lexical_weight(lang, coverage)
        t_lex = time.perf_counter()
        fused = self.fuse(dense, lex_hits, weight)
        order = sorted(fused, key=lambda c: -fused[c])[:k]
        by_id = {d.chunk_id: d for d in dense}
        lex_score = dict(lex_hits)
        need = [c for c in order if c not in by_id]
        if need:
            got = self.store.get(need)
            for cid, (doc, meta) in got.items():
                by_id[cid] = ScoredChunk(cid, meta.get("source", ""), doc, 0.0, meta)
        out = []
        for cid in order:
            if cid not in by_id:
                continue
            sc = by_id[cid]
            sc.score = fused[cid]
            sc.lexical_score = lex_score.get(cid)
            out.append(sc)
        t_end = time.perf_counter()
        timings = {"embed": (t_embed - t0) * 1000, "dense": (t_dense - t_embed) * 1000,
                   "translate": (t_trans - t_dense) * 1000, "lexical": (t_lex - t_trans) * 1000, "retrieve": (t_end - t0) * 1000}
        context = ""
        if standalone != question and history:
            last_answer = next((message_text(t.get("content"), " ") for t in reversed(history) if t.get("role") == "assistant"), "")
            context = standalone[len(question):] + " " + re.sub(r"\[\d+\]", "", last_answer)
        has_lexicon = self.lexicon.load()
        if not has_lexicon and live:  # an index with chunks but no word bridge: say so (once in the log, counted)
            lexicon_unavailable(self.lexicon, self.store.settings)
        elif has_lexicon and self.lexicon.problem is None:
            recovered("lexicon", self.store.settings.index_path)
        return Retrieval(question, standalone, out, timings, lang, context.strip(),
                         translations if has_lexicon else None, p_followup)
