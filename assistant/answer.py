"""Answering without an LLM: grounded sentence extraction with citations, or abstention.

The retrieved chunks are split into sentences and each sentence is scored
against the question with three kinds of evidence:

* **what the question asks for** - an amount ("how much", "combien"), a count,
  a person ("who", "qui"), a date ("when", "quand"), a place ("where", "où"),
  an ordinal ("which edition"); a sentence that lacks it cannot answer;
* **the question's key terms**, matched exactly (accent-folded, lightly
  stemmed) or through their translation: single words are embedded by the same
  multilingual model, which maps "Morocco"->"Maroc" or "ambassador"->"ambassadeur"
  with cosine > 0.9 while unrelated words stay below;
* **meaning** - the embedding similarity of the question and the sentence.

Retrieval similarity alone cannot tell an unanswerable question from an
answerable one (on the seeds an unanswerable question scores a top-1 cosine of
0.905, above every answerable one), so abstention is decided from the evidence:
the best sentence must provide the kind of answer asked for and cover enough of
the question's key terms, and every name in the question must occur in the
retrieved passages. Text in documents is only ever quoted, never obeyed.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field

import numpy as np

from .citations import Quote, make_citation, renumber
from .entities import asked_countries, names_other_place
from .retrieval import Retrieval
from .schema import Answer, ScoredChunk
from .text import STOP, detect_language, fold_accents, lexical_tokens, sentence_spans, stem, words_of
# what a question asks lives in assistant.questions, the vector cache in assistant.vector_cache (re-exported here)
from .questions import _ATTRIBUTES, _NUMWORD, AMOUNT, COUNT, DATE, MEASURE, Term, has_type, key_terms, question_type
from .vector_cache import VectorCache  # noqa: F401
from .sentences import JOIN_MAX  # the join of an announcing sentence and its command, stored as one vector too

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- the answerer
# Text addressed to an AI rather than to a reader. A paragraph containing it is untrusted as a whole: none of its
# sentences is quoted as an answer (documents are data, never instructions).
_INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|oublie[zr]?|ignore[zr]?)\b.{0,40}\b(?:instructions?|consignes?|prompts?|rules|regles|directives?)\b"
    r"|\b(?:system prompt|prompt systeme|you are (?:an? )?(?:ai|assistant|chatbot|language model)|as an ai\b"
    r"|tu es un assistant|vous etes un assistant|en tant qu'ia)\b"
    r"|\b(?:answer|respond|reply) (?:every|all|each|any) (?:question|query)|\b(?:say|answer|respond) (?:that|this) instead\b"
    r"|\breponds? (?:a )?(?:toutes|chaque) (?:les )?questions?|\b(?:new|nouvelles?) instructions?\b", re.I)
NOT_FOUND = {
    "en": "The documents do not contain the answer to this question.",
    "fr": "Les documents ne contiennent pas la réponse à cette question.",
}


@dataclass
class Candidate:
    quote: Quote
    rank: int  # rank of its chunk in the retrieval
    text: str
    folded_words: list[str] = field(default_factory=list)
    coverage: float = 0.0
    dense: float = 0.0
    type_ok: bool = True
    score: float = 0.0
    matched: dict = field(default_factory=dict)
    injected: bool = False
    focus_ok: bool = True
    phrase_ok: bool = False
    neighbours: set = field(default_factory=set)  # words of the previous and next sentences of the same passage
    heading: bool = False  # a question heading of a FAQ ("Comment résilier mon contrat ?"): context, never the quote
    place_ok: bool = True  # False: the sentence names another country and not the question's (entities.names_other_place)


class ExtractiveAnswerer:
    """Answer by quoting the best supporting sentences, with ``[n]`` citations.

    >>> ans = ExtractiveAnswerer(embedder).run(retrieval)  # doctest: +SKIP
    >>> ans.answer  # doctest: +SKIP
    '… 1,3 milliard de dirhams … [1]'
    """

    # Two words are taken as translations when their embeddings' cosine is high in absolute terms and stands out
    # from the term's ten nearest words (countries, for example, are all ~0.91 from each other). Calibrated for
    # multilingual-e5 on English/French pairs: Morocco/Maroc 0.949 (+0.035), ambassador/ambassadeur 0.951 (+0.047),
    # versus Spain/Morocco 0.907 (+0.019), fund/fondée 0.909, money/pays 0.905.
    TRANSLATION_SIM = 0.92
    TRANSLATION_MARGIN = 0.02

    def __init__(self, embedder, threshold: float = 0.4, max_sentences: int = 2, cache: VectorCache | None = None,
                 lexicon=None, vocabulary=None, tokens=None, threshold_xling: float | None = None):
        self.embedder = embedder
        self.lexicon = lexicon
        self.vocabulary = vocabulary  # callable -> the corpus's BM25 vocabulary (stems), or None when unknown
        self.tokens = tokens or lexical_tokens  # text -> BM25 tokens, by the tokeniser of that vocabulary
        self.threshold = threshold
        self.threshold_xling = threshold_xling  # None: the same threshold for every language pair
        self.max_sentences = max(1, min(3, max_sentences))
        self.cache = cache or VectorCache(embedder)

    def _threshold_for(self, cand, lang: str) -> float:
        """The evidence a sentence needs: less when the question and the passage are in different languages, where
        term coverage only counts the lexicon's translations and so under-reads the same evidence (fitted on
        TRAIN and DEV: docs/reader.md)."""
        if self.threshold_xling is None or detect_language(cand.quote.chunk.text) == lang:
            return self.threshold
        return self.threshold_xling

    # ------------------------------------------------------------------
    def run(self, retrieval: Retrieval) -> Answer:
        t0 = time.perf_counter()
        question = retrieval.question
        lang = retrieval.language or detect_language(question)
        kind = question_type(question)
        # terms of the question itself weigh fully; those a follow-up borrows from the conversation help but weigh
        # less, and so do words the follow-up points back to ("that money")
        terms = key_terms(question)
        if retrieval.context:
            for t in terms:
                if t.key in _anaphoric(question):
                    t.weight *= 0.5
            own = {t.key for t in terms}
            for t in key_terms(retrieval.context):
                if t.key not in own:
                    t.weight *= 0.4
                    own.add(t.key)
                    terms.append(t)
        counted = _counted_noun(question) if kind == COUNT else None
        cands = self._candidates(retrieval.chunks)
        answer = Answer(question=question, answer="", abstained=True, retrieved=retrieval.chunks,
                        standalone_question=retrieval.standalone, language=lang)
        if not cands:
            return self._abstain(answer, t0, "nothing retrieved")
        trans = self._score(cands, terms, kind, counted, retrieval.standalone, retrieval.translations)
        # per answer (thread-safe): `ask --explain` and the fitted reader's rule features read them
        answer.diagnostics.update(terms=terms, kind=kind, candidates=cands)
        # every name in the question must appear somewhere in what was retrieved
        context_words = {w for c in cands for w in c.folded_words}
        # the passages' document titles and section headings are part of their context ("the Debian Reference")
        context_words |= {w for ch in retrieval.chunks for w in words_of((ch.metadata or {}).get("context", ""))}
        missing_names = [t for t in terms if t.proper and t.weight >= 1.0 and not self._credit(t, context_words, trans)]
        # a product or command name the question depends on must at least exist in the corpus ("usrmerge")
        missing_names += [t for t in terms if t.rare and not t.proper and t.weight >= 1.0
                          and not self._credit(t, context_words, trans) and not self._in_corpus(t)]
        best = max(cands, key=lambda c: c.score)
        # the country asked about: the question's own, else the one of the turns a follow-up refers to
        asked_places = asked_countries(question, retrieval.standalone or question)
        for c in cands:
            c.place_ok = not names_other_place(asked_places, c.text)
        usable = [c for c in cands if c.type_ok and not c.injected and not c.heading and c.place_ok
                  and c.coverage >= self._threshold_for(c, lang)]
        attribute = [t for t in terms if t.focus and t.key in _ATTRIBUTES]
        if attribute and kind in (None, COUNT):
            usable = [c for c in usable if c.focus_ok]
        if missing_names or not usable:
            swapped = not best.place_ok and best.coverage >= self._threshold_for(best, lang)
            why = ("names not found: " + ", ".join(t.surface for t in missing_names)) if missing_names else \
                  "the sentences that would answer name another country than the question's" if swapped else \
                  f"no sentence gives the {kind or 'answer'} with enough of the question's terms (best coverage {best.coverage:.2f})"
            return self._abstain(answer, t0, why)
        usable.sort(key=lambda c: -c.score)
        chosen = [usable[0]]
        for c in usable[1:]:
            if len(chosen) >= self.max_sentences:
                break
            if c.score >= 0.92 * usable[0].score and c.quote.text not in {x.quote.text for x in chosen}:
                new_terms = set(c.matched) - set().union(*(x.matched for x in chosen))
                if new_terms or kind is None and c.coverage >= usable[0].coverage:
                    chosen.append(c)
        chosen.sort(key=lambda c: -c.score)  # the best supported sentence first
        citations = []
        parts = []
        for i, c in enumerate(chosen, start=1):
            citations.append(make_citation(i, c.quote))
            parts.append(with_marker(c.quote.text, i))
        text, citations, _ = renumber(" ".join(parts), citations)
        answer.answer = text
        answer.abstained = False
        answer.citations = citations
        if kind in (AMOUNT, COUNT, DATE, MEASURE):  # the few words that answer, for the page to show first ("1994")
            answer.short_answer = _short_answer(question, chosen[0].quote.text)
        answer.timings_ms["answer"] = (time.perf_counter() - t0) * 1000
        answer.note = ""
        return answer

    # ------------------------------------------------------------------
    def _abstain(self, answer: Answer, t0: float, why: str) -> Answer:
        answer.answer = NOT_FOUND.get(answer.language, NOT_FOUND["en"])
        answer.abstained = True
        answer.citations = []
        answer.timings_ms["answer"] = (time.perf_counter() - t0) * 1000
        answer.debug = why
        return answer

    def _candidates(self, chunks: list[ScoredChunk]) -> list[Candidate]:
        out: list[Candidate] = []
        seen: set[tuple] = set()
        for rank, ch in enumerate(chunks):
            base = int((ch.metadata or {}).get("start", 0) or 0)
            spans = sentence_spans(ch.text)
            # paragraphs of this passage that talk to the assistant: [start, end) ranges
            tainted = [(m.start(), m.end()) for m in re.finditer(r"(?:[^\n]|\n(?!\s*\n))+", ch.text)
                       if _INJECTION.search(fold_accents(m.group(0)))]
            for i, (s, e) in enumerate(spans):
                if i + 1 < len(spans) and _introduces(ch.text[s:e]) and spans[i + 1][1] - spans[i + 1][0] <= JOIN_MAX:
                    e = spans[i + 1][1]  # "… with the following command:" + the command itself
                text = ch.text[s:e]
                key = (ch.source, base + s, text)
                if key in seen or len(text) < 12:
                    continue
                seen.add(key)
                cand = Candidate(Quote(ch, s, e), rank, text, words_of(text))
                prev_s = spans[i - 1] if i > 0 else None
                next_s = spans[i + 1] if i + 1 < len(spans) else None
                if not text.lstrip().startswith("|"):  # table rows are separate records, not running text
                    cand.neighbours = {w for sp in (prev_s, next_s) if sp for w in words_of(ch.text[sp[0]:sp[1]])}
                cand.injected = any(a <= s < b for a, b in tainted) or bool(_INJECTION.search(fold_accents(text)))
                cand.heading = question_heading(ch.text, s, e, (ch.metadata or {}).get("section", ""))
                out.append(cand)
        return out

    @staticmethod
    def _credit(t: Term, words: set[str], trans: dict[str, dict[str, float]]) -> float:
        if t.key in words or any(stem(w) == t.stem for w in words):
            return 1.0
        if any(w.startswith(t.key) and w[len(t.key):].isdigit() for w in words):
            return 1.0  # "RFC" ~ "rfc1321", "CP" ~ "cp437"
        if t.rare:
            return 0.0  # product and command names are not translated
        best = max((s for w, s in trans[t.key].items() if w in words), default=0.0)
        return 0.9 * best

    def _in_corpus(self, t: Term) -> bool:
        if self.vocabulary is None:
            return False
        vocab = self.vocabulary()
        return vocab is None or all(tok in vocab for tok in self.tokens(t.key))

    def _together(self, phrase: list[Term], words: list[str], trans: dict[str, dict[str, float]], window: int = 4) -> bool:
        """Do all words of the "which X" phrase occur close together ("Qatari minister" ~ "ministre qatari")?"""
        positions = []
        for t in phrase:
            pos = [i for i, w in enumerate(words) if self._credit(t, {w}, trans) >= 0.8]
            if not pos:
                return False
            positions.append(pos)
        first = positions[0]
        return any(all(any(abs(p - q) <= window for q in other) for other in positions[1:]) for p in first)

    def _score(self, cands: list[Candidate], terms: list[Term], kind: str | None, counted: str | None,
               query: str, lexicon: dict[str, dict[str, float]] | None = None) -> dict[str, dict[str, float]]:
        """Score candidates in place; returns the translations found for each question term."""
        # 1. term matches: exact/stem, else translation through word embeddings
        vocab = sorted({w for c in cands for w in c.folded_words if len(w) > 2 and w not in STOP})
        stems = {w: stem(w) for w in vocab}
        # a term may occur verbatim in one sentence and translated in another ("Morocco"/"Maroc"): look up all
        trans: dict[str, dict[str, float]] = {t.key: {} for t in terms}
        if self.lexicon is not None and self.lexicon.load():
            # translations against the whole corpus vocabulary (the retriever already looked most of them up)
            known = dict(lexicon or {})
            missing = [t.key for t in terms if t.key not in known]
            if missing:
                known.update(self.lexicon.translate(missing))
            for t in terms:
                trans[t.key] = {w: s for w, s in known.get(t.key, {}).items() if stem(w) != t.stem}
        elif terms and vocab:
            vecs = self.cache.word_vectors([t.key for t in terms] + vocab)
            V = np.stack([vecs[w] for w in vocab])
            for t in terms:
                sims = V @ vecs[t.key]
                near = np.sort(sims)[-10:].mean()
                ok = (sims >= self.TRANSLATION_SIM) & (sims - near >= self.TRANSLATION_MARGIN)
                for j in np.nonzero(ok)[0]:
                    if stems[vocab[j]] != t.stem:
                        trans[t.key][vocab[j]] = float(sims[j])
        total = sum(t.weight for t in terms) or 1.0
        focus = [t for t in terms if t.focus]
        phrase = [t for t in terms if t.phrase]
        question_words = {t.key for t in terms} | {t.stem for t in terms}
        # 2. meaning: question vs sentence embeddings
        qv = self.cache.query_vector(query)
        svs = self.cache.sentence_vectors([c.text for c in cands])
        chunk_words: dict[str, set[str]] = {}
        source_words: dict[str, set[str]] = {}
        for c in cands:
            chunk_words.setdefault(c.quote.chunk.chunk_id, set()).update(c.folded_words)
            source_words.setdefault(c.quote.chunk.source, set()).update(c.folded_words)
        for c, sv in zip(cands, svs):
            c.dense = float(sv @ qv)
            words = set(c.folded_words)
            got = 0.0
            for t in terms:
                credit = self._credit(t, words, trans)
                if not credit and c.neighbours:
                    # the term is in the sentence before or after ("… the smartd daemon. Install smartmontools.")
                    credit = 0.6 * self._credit(t, c.neighbours, trans)
                if not credit and t.proper:
                    # a name nearby: same passage (the sentence may say "she"), same document
                    credit = 0.6 * self._credit(t, chunk_words[c.quote.chunk.chunk_id], trans) or \
                        0.4 * self._credit(t, source_words[c.quote.chunk.source], trans)
                if credit:
                    c.matched[t.key] = credit
                    got += t.weight * credit
            c.coverage = got / total if terms else 0.0
            c.type_ok = has_type(c.text, kind, counted, known=question_words)
            c.focus_ok = not focus or any(self._credit(t, words, trans) >= 0.8 for t in focus)
            c.phrase_ok = len(phrase) > 1 and self._together(phrase, c.folded_words, trans)
            if len(phrase) > 1 and not c.phrase_ok:
                # a modifier of "which X" counts only where it qualifies X ("Qatari minister", not "Conseil du Qatar")
                for t in phrase:
                    if not t.focus and t.key in c.matched:
                        got -= 0.5 * t.weight * c.matched[t.key]
                        c.matched[t.key] *= 0.5
                c.coverage = got / total
        dmax = max(c.dense for c in cands)
        dmin = min(c.dense for c in cands)
        span = max(dmax - dmin, 1e-6)
        for c in cands:
            rel = (c.dense - dmin) / span  # 0..1 within this question's candidates
            c.score = (0.5 * c.coverage + 0.3 * rel + 0.2 * c.dense + (0.15 if c.type_ok else -0.5)
                       - (0 if c.focus_ok else 0.15) + (0.2 if c.phrase_ok else 0) - 0.01 * c.rank)
            if c.injected:
                c.score -= 1.0
        return trans


_ASKS = re.compile(r"[?？]\s*[»\"”’)*_]*\s*$")
_HEADING_LEAD = re.compile(r"\s*(?:[#>*_\-•]+\s*)*(?:(?:\d+[.)]|Q\s*\d*\s*[:.)-]|Question\s*\d*\s*:)\s*)?[*_]*", re.I)


def question_heading(text: str, start: int, end: int, section: str = "") -> bool:
    """Is ``text[start:end]`` a question standing as a heading: a line of its own that asks ("## Comment résilier
    mon contrat ?", "Q: How do I cancel?"), or the passage's section title when it asks? In a FAQ its answer is the
    paragraph below; the question itself never answers (it still lends its words to the next sentence)."""
    sentence = text[start:end].strip()
    if not _ASKS.search(sentence):
        return False
    if section and " ".join(sentence.split()) == " ".join(str(section).split()):
        return True
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    before = text[line_start:start]
    after = text[end:] if line_end < 0 else text[end:line_end]
    return _HEADING_LEAD.fullmatch(before) is not None and not after.strip()


_CONTINUES = re.compile(r"\s*(?:\d|" + _NUMWORD + r"\b)", re.I)


def _short_answer(question: str, sentence: str) -> str | None:
    """The reader's short span of an amount, count or date, when it is whole and says something: not one that the
    sentence goes on with a number ("quatre euros | cinquante"), nor one made of the question's words ("dimanche")."""
    from .reader import short_span

    span = short_span(question, sentence)
    if not span:
        return None
    end = sentence.find(span) + len(span)
    if end < len(span) or _CONTINUES.match(fold_accents(sentence[end:])):
        return None
    asked = {stem(w) for w in words_of(question)}
    if not any(ch.isdigit() for ch in span) and all(stem(w) in asked or w in STOP for w in words_of(span)):
        return None
    return span


_DEMONSTRATIVE = re.compile(r"\b(?:that|this|these|those|the same|ce|cet|cette|ces|ledit|ladite)\s+([^\W\d_][\w'-]*)", re.I)


def _anaphoric(question: str) -> set[str]:
    """Words a follow-up points back to: "that money" -> {"money"}."""
    return {fold_accents(m.group(1)).lower() for m in _DEMONSTRATIVE.finditer(question)}


_FORWARD = re.compile(r"(?::\s*$|\b(?:suivante?s?|ci-dessous|comme suit|following|below|as follows)\b)", re.I)


def _introduces(sentence: str) -> bool:
    """Does the sentence announce what comes next ("… with the following command:")?"""
    return bool(_FORWARD.search(sentence))


_AUX = frozenset("did do does are were was is have has had will can could would should".split())


def with_marker(sentence: str, n: int) -> str:
    """'… startups.' -> '… startups [1].' (the marker goes before the closing punctuation)."""
    s = sentence.rstrip()
    m = re.search(r"([.!?…]+[»\"”’)]*|[:;])$", s)
    if m:
        return f"{s[:m.start()].rstrip()} [{n}]{m.group(0)}"
    return f"{s} [{n}]"


def _counted_noun(question: str) -> str | None:
    """The noun being counted: "how many Moroccan startups did…" -> stem("startups")."""
    q = fold_accents(question).lower().replace("’", "'")
    m = re.search(r"\bhow many\s+(.*)", q)
    if m:
        noun = None
        for w in re.findall(r"[a-z]+", m.group(1)):
            if w in _AUX:
                break
            if w not in STOP:
                noun = w
        return stem(noun) if noun else None
    m = re.search(r"\bcombien\s+(?:de|d')\s*([a-z]+)", q)
    return stem(m.group(1)) if m else None
