"""The fitted extractive reader: candidates -> features -> a calibrated scorer -> a no-answer decision.

Design (issue 11; measurements in ``docs/reader.md`` and ``bench/QUALITY.md``):

1. **Candidates** (:func:`candidates`): the sentences of the top-k passages, each with its context (the
   passage's title/section, the previous and next sentence), de-duplicated across overlapping chunks (the
   same sentence at the same offset of the same file is one candidate, kept with its best-ranked passage).
2. **Features** (:data:`FEATURES`, one named function each, unit-tested with a stub embedder): the sentence's
   cosine to the question, alone and in context, its gap to the best, passage rank and score, rarity-weighted
   coverage of the question's terms (exact, stemmed, through the cross-lingual lexicon, in context), coverage
   of the most specific terms (names, numbers, rare words), a "question entity replaced by another" signal,
   answer-type compatibility (soft), negation, length, new information.
3. **Scorer**: a logistic regression over the standardised features, fitted on the TRAIN split by
   ``python -m bench.fit_reader`` (question-grouped cross-validation); its weights are a small versioned file
   per embedder, ``assistant/reader_weights/<model>.json``. ``p_i`` = the calibrated probability that
   sentence i answers.
4. **No-answer**: ``no_answer = prod(1 - p_i)`` over the fixed, de-duplicated top ``K_NOANSWER`` candidates;
   the answer's ``confidence`` is the best sentence's ``p``; the reader abstains when it is below the
   threshold chosen on DEV for a stated precision (stored with the weights). Certain vetoes stay: a name of
   the question absent from every passage, text addressed to an AI (never quoted).

Why one file over 450 lines: the five steps above are one model whose features, weights file and
scorer must change together (a feature renamed here must match ``reader_weights/*.json`` and
``bench/fit_reader.py``); each feature is a small named function with its own unit test.
"""
from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .citations import Quote, make_citation
from .entities import asked_countries, names_other_place
from .schema import Answer, ScoredChunk
from .text import STOP, detect_language, fold_accents, sentence_spans, stem, words_of, zipf

WEIGHTS_DIR = Path(__file__).resolve().parent / "reader_weights"
MIN_CHARS = 12


# =========================================================================== candidates
@dataclass
class Candidate:
    chunk: ScoredChunk
    start: int  # offsets inside chunk.text
    end: int
    rank: int  # rank of its passage in the retrieval (0 = best)
    text: str
    prev: str = ""
    next: str = ""
    context: str = ""  # document title / section heading of the passage
    injected: bool = False
    index: int = 0  # position of the sentence in its passage (0 = first)
    features: dict = field(default_factory=dict)
    p: float = 0.0
    swapped: bool = False  # names another country and not the question's (entities.names_other_place): never quoted

    @property
    def quote(self) -> Quote:
        return Quote(self.chunk, self.start, self.end)


def candidates(chunks: list[ScoredChunk], min_chars: int = MIN_CHARS) -> list[Candidate]:
    """Sentences of the passages, de-duplicated across overlapping chunks (same file, same absolute offset or text)."""
    from .answer import _INJECTION

    out: list[Candidate] = []
    seen: set = set()
    for rank, ch in enumerate(chunks):
        meta = ch.metadata or {}
        base = int(meta.get("start", 0) or 0)
        spans = sentence_spans(ch.text)
        tainted = [(m.start(), m.end()) for m in re.finditer(r"(?:[^\n]|\n(?!\s*\n))+", ch.text)
                   if _INJECTION.search(fold_accents(m.group(0)))]
        for i, (s, e) in enumerate(spans):
            text = ch.text[s:e]
            if len(text.strip()) < min_chars:
                continue
            k1, k2 = (ch.source, base + s), (ch.source, normalise_ws(text))
            if k1 in seen or k2 in seen:
                continue
            seen.update((k1, k2))
            prev = ch.text[spans[i - 1][0]:spans[i - 1][1]] if i > 0 else ""
            nxt = ch.text[spans[i + 1][0]:spans[i + 1][1]] if i + 1 < len(spans) else ""
            inj = any(a <= s < b for a, b in tainted) or bool(_INJECTION.search(fold_accents(text)))
            out.append(Candidate(ch, s, e, rank, text, prev, nxt, str(meta.get("context", "") or ""), inj, i))
    return out


def with_announced(c: Candidate) -> Quote:
    """The candidate's quote, extended to the next sentence when it announces it ("… la commande suivante :" +
    the command): the same join the rule-based answerer quotes, whose vectors are stored too (assistant.sentences)."""
    from .sentences import sentence_spans_for_vectors

    joined = [e for s, e in sentence_spans_for_vectors(c.chunk.text) if s == c.start and e > c.end]
    return Quote(c.chunk, c.start, joined[0]) if joined else c.quote


def normalise_ws(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# =========================================================================== question terms
@dataclass
class QTerm:
    key: str  # folded, lower-case
    stem: str
    weight: float  # rarity: rare words say more about what is asked
    specific: bool  # a name, a number or a rare word
    proper: bool


def rarity_weight(word: str) -> float:
    """Rarity weight of a question word: 1 + (6 - zipf)/2, clipped to [0.5, 4] (unknown words 4)."""
    z = zipf(word)
    if z == 0:
        return 4.0
    return float(min(4.0, max(0.5, 1.0 + (6.0 - z) / 2.0)))


_QWORDS = frozenset(fold_accents(w) for w in """
what which who whom whose when where why how much many did does do is are was were be the a an of can could should
would will shall may might must have has had there it its this that these those i you we they my your our their me
quel quelle quels quelles qui quoi quand ou comment combien pourquoi lequel laquelle lesquels est-ce est sont
a-t-il a-t-elle ont-ils t-il t-elle il elle avait ete etait faut peut peuvent dois doit doivent je nous vous on
""".split())


def question_terms(question: str) -> list[QTerm]:
    """Content words of the question with their rarity weight; names, numbers and rare words are *specific*."""
    out: list[QTerm] = []
    seen = set()
    tokens = re.findall(r"[^\W_][\w'’-]*", question.replace("’", "'"))
    for i, raw in enumerate(tokens):
        word = re.sub(r"^(?:l|d|qu|n|s|c|j|m|t|jusqu|lorsqu)'", "", raw, flags=re.I)
        word = re.sub(r"'s$", "", word).strip("'-")
        for part in word.split("-") if "-" in word else [word]:
            key = fold_accents(part).lower()
            if len(key) < 2 or key in STOP or key in _QWORDS or key in seen:
                continue
            seen.add(key)
            proper = part[:1].isupper() and i > 0 or (part.isupper() and len(part) > 1)
            number = any(ch.isdigit() for ch in key)
            w = 2.0 if number else rarity_weight(key)
            rare = not number and zipf(key) < 3.0
            out.append(QTerm(key, stem(key), w, bool(proper or number or rare), bool(proper)))
    return out


def term_credit(t: QTerm, words: set[str], stems: set[str], trans: dict[str, dict[str, float]] | None) -> tuple[float, float, float]:
    """(exact, stemmed, lexicon) credit of one term in a set of words: 1/0, 1/0, best translation cosine or 0."""
    exact = 1.0 if t.key in words else 0.0
    stemmed = 1.0 if exact or t.stem in stems else 0.0
    if not stemmed and any(w.startswith(t.key) and w[len(t.key):].isdigit() for w in words):
        stemmed = 1.0  # "RFC" ~ "rfc1321"
    lex = stemmed
    if not lex and trans:
        lex = max((s for w, s in (trans.get(t.key) or {}).items() if w in words), default=0.0)
    return exact, stemmed, float(lex)


def coverage(terms: list[QTerm], words: set[str], trans=None, only_specific: bool = False) -> tuple[float, float, float]:
    """Rarity-weighted share of the question's terms found in ``words``: (exact, stemmed, through the lexicon).

    Empty term lists cover fully (1, 1, 1)."""
    ts = [t for t in terms if t.specific] if only_specific else terms
    total = sum(t.weight for t in ts)
    if not total:
        return 1.0, 1.0, 1.0
    stems = {stem(w) for w in words}
    acc = np.zeros(3)
    for t in ts:
        acc += t.weight * np.array(term_credit(t, words, stems, trans))
    return tuple(float(x) for x in acc / total)


# =========================================================================== features
_NEG = re.compile(r"\b(?:not|no|never|none|cannot|can't|don't|doesn't|isn't|aren't|won't|without|ne|n'|pas|jamais|"
                  r"aucun|aucune|ni|sans|nullement|plus aucun)\b", re.I)
_CAP = re.compile(r"(?<![.!?:]\s)(?<!^)\b[A-ZÀ-ÖØ-Þ][\w'’-]{2,}")
_NUMBER = re.compile(r"\d+(?:[.,\u202f\u00a0 ]\d+)*")


def negation(text: str) -> float:
    """1 when the text holds a negation (English or French), else 0."""
    return 1.0 if _NEG.search(fold_accents(text).replace("’", "'")) else 0.0


def length_feature(text: str) -> float:
    """log(1 + characters) / log(1000): 0 for nothing, ~1 for a 1,000-character sentence."""
    return math.log1p(len(text)) / math.log(1000)


def new_information(text: str, terms: list[QTerm]) -> float:
    """Share of the sentence's content words (not stop words) that the question does not contain."""
    words = [w for w in words_of(text) if w not in STOP and len(w) > 2]
    if not words:
        return 0.0
    keys = {t.key for t in terms} | {t.stem for t in terms}
    return sum(1 for w in words if w not in keys and stem(w) not in keys) / len(words)


def names_of(text: str) -> set[str]:
    """Capitalised words not at a sentence start (folded): the names a sentence mentions."""
    return {fold_accents(m.group(0)).lower() for m in _CAP.finditer(text)}


def entity_replaced(terms: list[QTerm], context_words: set[str], sentence: str, trans=None) -> float:
    """1 when a name of the question is missing from the sentence's context while the sentence names another
    entity the question does not mention ("Qatar" asked, "Maroc" stated), else 0."""
    proper = [t for t in terms if t.proper]
    if not proper:
        return 0.0
    stems = {stem(w) for w in context_words}
    missing = [t for t in proper if not term_credit(t, context_words, stems, trans)[2] >= 0.8]
    if not missing:
        return 0.0
    keys = {t.key for t in terms}
    others = {n for n in names_of(sentence) if n not in keys and n not in STOP}
    return 1.0 if others else 0.0


def numbers_new(text: str, question: str) -> float:
    """1 when the sentence holds a number the question does not."""
    q = set(_NUMBER.findall(question))
    return 1.0 if any(n not in q for n in _NUMBER.findall(text)) else 0.0


def answer_type_features(question: str, sentence: str, known: set[str]) -> tuple[float, float]:
    """(the question asks for a typed answer, the sentence holds one of that type) as 0/1."""
    from .answer import _counted_noun
    from .questions import COUNT, has_type, question_type

    kind = question_type(question)
    if kind is None:
        return 0.0, 0.0
    counted = _counted_noun(question) if kind == COUNT else None
    return 1.0, 1.0 if has_type(sentence, kind, counted, known=known) else 0.0


_YESNO_Q = re.compile(r"^\s*(?:est-ce|peut-on|puis-je|dois-je|faut-il|is|are|can|could|should|must|do|does|did|will|"
                      r"may|has|have)\b|\b\w+-(?:t-)?(?:il|elle|ils|elles|on|je|vous|nous)\b", re.I)
_WH = re.compile(r"\b(?:quel|quelle|quels|quelles|qui|quoi|quand|ou|comment|combien|pourquoi|lequel|laquelle|what|which|"
                 r"who|whom|whose|when|where|why|how)\b", re.I)
_YESNO_A = re.compile(r"^\W*(?:oui|non|yes|no|si)\b", re.I)


def yes_no(question: str, sentence: str) -> float:
    """1 when a yes/no question ("la CNIL est-elle compétente ?", "Can I …?") meets a sentence opening with
    yes/no ("Non, …", "Oui.", "Yes,"), else 0."""
    q = fold_accents(question).strip()
    return 1.0 if _YESNO_Q.search(q) and not _WH.search(q) and _YESNO_A.match(fold_accents(sentence)) else 0.0


def position(index: int) -> float:
    """1 / (1 + position of the sentence in its passage): 1 for the first sentence."""
    return 1.0 / (1.0 + index)


FEATURES = (
    "cos", "cos_ctx", "cos_gap", "cos_rank", "passage_rank", "passage_score", "passage_cos",
    "cov_exact", "cov_stem", "cov_lex", "cov_ctx", "cov_specific", "cov_specific_ctx", "cov_history",
    "entity_replaced", "type_asked", "type_match", "type_miss", "negation", "neg_mismatch", "length",
    "new_info", "numbers_new", "has_digit", "same_lang", "position", "doc_start", "yes_no",
    "cov_lex_gap", "passage_gap", "rule_coverage", "rule_type_ok", "rule_focus_ok", "rule_phrase_ok",
    "rule_chosen", "rule_abstained",
)
# Features that encode where answers sit in one kind of corpus (the first sentence of a FAQ answer) rather than
# what the sentence says: measured to generalise badly from the training corpora to other documents (docs/reader.md)
CORPUS_PRIORS = ("position", "doc_start", "yes_no")


def rule_features(cands: list[Candidate], rule_answer) -> None:
    """The rule-based answerer's evidence as features: per sentence its key-term coverage, whether it holds the
    asked answer type, the "which X" focus and phrase; whether the rules quoted it, and whether they abstained.

    The rules' hand-set combination is not used: the fitted weights decide how much each part counts."""
    rc = {}
    for r in getattr(rule_answer, "rule_candidates", None) or []:
        rc[(r.quote.chunk.source, int((r.quote.chunk.metadata or {}).get("start", 0) or 0) + r.quote.start)] = r
    quoted = {normalise_ws(c.quote) for c in getattr(rule_answer, "citations", [])}
    abstained = 1.0 if rule_answer is not None and rule_answer.abstained else 0.0
    for c in cands:
        r = rc.get((c.chunk.source, int((c.chunk.metadata or {}).get("start", 0) or 0) + c.start))
        f = c.features
        f["rule_coverage"] = float(r.coverage) if r else 0.0
        f["rule_type_ok"] = 1.0 if r is None or r.type_ok else 0.0
        f["rule_focus_ok"] = 1.0 if r is None or r.focus_ok else 0.0
        f["rule_phrase_ok"] = 1.0 if r is not None and r.phrase_ok else 0.0
        f["rule_chosen"] = 1.0 if any(normalise_ws(c.text) in q for q in quoted) else 0.0
        f["rule_abstained"] = abstained


def unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def featurise(question: str, cands: list[Candidate], qv: np.ndarray, svs: list[np.ndarray], trans=None,
              history: str = "") -> np.ndarray:
    """The feature matrix (one row per candidate, columns :data:`FEATURES`); also stored on each candidate."""
    terms = question_terms(question)
    hterms = [t for t in question_terms(history) if t.key not in {x.key for x in terms}] if history else []
    known = {t.key for t in terms} | {t.stem for t in terms}
    q_neg = negation(question)
    q_lang = detect_language(question)
    cos = np.array([float(sv @ qv) for sv in svs]) if svs else np.zeros(0)
    by_text = {(c.chunk.source, c.text): i for i, c in enumerate(cands)}
    order = np.argsort(-cos)
    cos_rank = np.empty(len(cands))
    cos_rank[order] = np.arange(len(cands))
    best = float(cos.max()) if len(cos) else 0.0
    chunk_words: dict[str, set[str]] = {}
    for c in cands:
        chunk_words.setdefault(c.chunk.chunk_id, set()).update(words_of(c.chunk.text))
    for i, c in enumerate(cands):
        words = set(words_of(c.text))
        ctx_words = words | set(words_of(c.prev)) | set(words_of(c.next)) | set(words_of(c.context))
        # the sentence in context: its vector plus half its neighbours' (when they are candidates too)
        vec = svs[i].copy()
        for nb in (c.prev, c.next):
            if nb:
                j = by_text.get((c.chunk.source, nb))
                if j is not None:
                    vec = vec + 0.5 * svs[j]
        ex, st, lx = coverage(terms, words, trans)
        sp = coverage(terms, words, trans, only_specific=True)[2]
        sp_ctx = coverage(terms, ctx_words | chunk_words[c.chunk.chunk_id], trans, only_specific=True)[2]
        hist = coverage(hterms, ctx_words, trans)[2] if hterms else 0.0
        t_asked, t_ok = answer_type_features(question, c.text, known)
        s_neg = negation(c.text)
        f = {
            "cos": cos[i], "cos_ctx": float(unit(vec) @ qv), "cos_gap": best - cos[i],
            "cos_rank": 1.0 / (1.0 + cos_rank[i]), "passage_rank": 1.0 / (1.0 + c.rank),
            "passage_score": float(c.chunk.score or 0.0),
            "passage_cos": float(c.chunk.dense_score) if c.chunk.dense_score is not None else 0.0,
            "cov_exact": ex, "cov_stem": st, "cov_lex": lx, "cov_ctx": coverage(terms, ctx_words, trans)[2],
            "cov_specific": sp, "cov_specific_ctx": sp_ctx, "cov_history": hist,
            "entity_replaced": entity_replaced(terms, ctx_words | chunk_words[c.chunk.chunk_id], c.text, trans),
            "type_asked": t_asked, "type_match": t_asked * t_ok, "type_miss": t_asked * (1.0 - t_ok),
            "negation": s_neg, "neg_mismatch": float(s_neg != q_neg), "length": length_feature(c.text),
            "new_info": new_information(c.text, terms), "numbers_new": numbers_new(c.text, question),
            "has_digit": 1.0 if any(ch.isdigit() for ch in c.text) else 0.0,
            "same_lang": 1.0 if detect_language(c.text) == q_lang else 0.0,
        }
        f["position"] = position(c.index)
        f["doc_start"] = 1.0 if c.index == 0 and int((c.chunk.metadata or {}).get("ordinal", 0) or 0) == 0 else 0.0
        f["yes_no"] = yes_no(question, c.text)
        c.features = f
    if cands:
        best_cov = max(c.features["cov_lex"] for c in cands)
        best_passage = max(c.features["passage_score"] for c in cands)
        for c in cands:
            c.features["cov_lex_gap"] = best_cov - c.features["cov_lex"]
            c.features["passage_gap"] = best_passage - c.features["passage_score"]
            for k in FEATURES:
                c.features.setdefault(k, 0.0)
    return matrix(cands)


def matrix(cands: list[Candidate]) -> np.ndarray:
    """The candidates' features as a matrix, columns in :data:`FEATURES` order."""
    return np.array([[c.features[k] for k in FEATURES] for c in cands], dtype=float).reshape(len(cands), len(FEATURES))


# =========================================================================== scorer
@dataclass
class Weights:
    features: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float = 0.5
    k_noanswer: int = 10
    meta: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: dict) -> "Weights":
        return cls(list(d["features"]), np.array(d["mean"], float), np.array(d["scale"], float),
                   np.array(d["coef"], float), float(d["intercept"]), float(d.get("threshold", 0.5)),
                   int(d.get("k_noanswer", 10)), {k: v for k, v in d.items() if k not in
                                                   ("features", "mean", "scale", "coef", "intercept")})

    def to_json(self) -> dict:
        return {"features": self.features, "mean": [round(float(x), 6) for x in self.mean],
                "scale": [round(float(x), 6) for x in self.scale], "coef": [round(float(x), 6) for x in self.coef],
                "intercept": round(float(self.intercept), 6), "threshold": self.threshold,
                "k_noanswer": self.k_noanswer, **self.meta}

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        """p = sigmoid(((X - mean) / scale) . coef + intercept), column order of ``features``."""
        if X.shape[0] == 0:
            return np.zeros(0)
        cols = [FEATURES.index(f) for f in self.features]
        z = ((X[:, cols] - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))


def no_answer(p: np.ndarray, k: int) -> float:
    """prod(1 - p_i) over the k most probable candidates (1 when there is none)."""
    if len(p) == 0:
        return 1.0
    top = np.sort(p)[::-1][:k]
    return float(np.prod(1.0 - top))


def weights_path(model_id: str) -> Path:
    return WEIGHTS_DIR / (re.sub(r"[^\w.-]+", "_", model_id).strip("_") + ".json")


_LOADED: dict[str, Weights | None] = {}


def weights_for(embedder) -> Weights | None:
    model_id = getattr(embedder, "model_id", "") or ""
    if model_id not in _LOADED:
        p = weights_path(model_id)
        _LOADED[model_id] = Weights.from_json(json.loads(p.read_text(encoding="utf-8"))) if p.is_file() else None
    return _LOADED[model_id]


# =========================================================================== short answer
def short_span(question: str, sentence: str) -> str | None:
    """The span the question asks for, as written in the sentence: an amount ("1,3 milliard de dirhams"), a count
    ("12 startups"), a date ("15 mars 2024") or a measure ("soixante-cinq mètres"); None for other questions or when
    the sentence has none."""
    from .answer import _counted_noun
    from .questions import AMOUNT, COUNT, DATE, MEASURE, _DETECT, counts_in, counts_noun, question_type

    kind = question_type(question)
    if kind not in (AMOUNT, COUNT, DATE, MEASURE):
        return None
    folded = fold_accents(sentence)
    if len(folded) != len(sentence):
        return None  # offsets of the folded text would not map back to the source
    if kind == COUNT:
        # a number of things, not a year and not the article "un"/"une"/"one" ("une enveloppe" counts nothing);
        # the counted noun of the question first when the sentence has it ("how many startups" -> "12 startups")
        counted = _counted_noun(question)
        counts = [m for m in counts_in(folded) if m.group(1).lower() not in ("un", "une", "one")]
        m = next((m for m in counts if counts_noun(m.group(2), counted)), counts[0] if counts else None)
    else:
        m = _DETECT[kind].search(folded)
    if not m:
        return None
    end = m.end()
    if kind == DATE:
        year = re.match(r"\s+(?:19|20)\d{2}\b", sentence[end:])  # "15 mars" + " 2024"
        end += year.end() if year else 0
    span = sentence[m.start():end].strip(" ,;:.")
    if kind == AMOUNT and re.fullmatch(r"[$€£]\s*\d", span):  # "$5" matched by its first digit: take the number
        m2 = re.match(r"[$€£]\s*\d+(?:[.,\u202f\u00a0 ]\d+)*(?:\s*(?:millions?|milliards?|billions?|m|k|bn))?",
                      sentence[m.start():], re.I)
        span = m2.group(0) if m2 else span
    return span or None


_SOURCE_LANG = {("en", "fr"): "from the French source: ", ("fr", "en"): "d'après la source anglaise : "}


def short_answer_text(span: str, sentence: str, q_lang: str, n: int = 1) -> str:
    """"**span** [n] — « sentence »", framed as a quotation in another language when the source is one
    ("from the French source: « … »"): a source sentence is quoted, never translated."""
    frame = _SOURCE_LANG.get((q_lang, detect_language(sentence)), "")
    return f"**{span}** [{n}] — {frame}« {sentence.strip()} »"


# =========================================================================== the reader
TYPE_VETOES = ("off", "abstain", "repick")


class Reader:
    """Answer with the candidate sentence of highest calibrated probability, or abstain.

    Same interface as :class:`assistant.answer.ExtractiveAnswerer` (``run(retrieval) -> Answer``)."""

    def __init__(self, embedder, cache=None, lexicon=None, vocabulary=None, weights: Weights | None = None,
                 threshold: float | None = None, rules=None, type_veto: str = "off"):
        from .vector_cache import VectorCache

        if type_veto not in TYPE_VETOES:
            raise ValueError(f"reader_type_veto must be one of {', '.join(TYPE_VETOES)}, not {type_veto!r}")
        self.type_veto = type_veto
        self.embedder = embedder
        self.cache = cache or VectorCache(embedder)
        self.lexicon = lexicon
        self.vocabulary = vocabulary
        self.weights = weights or weights_for(embedder)
        self.threshold = threshold
        if rules is None:
            from .answer import ExtractiveAnswerer

            rules = ExtractiveAnswerer(embedder, cache=self.cache, lexicon=lexicon, vocabulary=vocabulary)
        self.rules = rules  # the rule-based answerer, whose evidence is part of the features

    def translations(self, retrieval, terms: list[QTerm]) -> dict[str, dict[str, float]]:
        known = dict(retrieval.translations or {})
        if self.lexicon is not None and self.lexicon.load():
            missing = [t.key for t in terms if t.key not in known]
            if missing:
                known.update(self.lexicon.translate(missing))
        return {k: {w: s for w, s in v.items()} for k, v in known.items()}

    def score(self, retrieval) -> tuple[list[Candidate], np.ndarray]:
        """Candidates with their features and probabilities (``p``), in retrieval order."""
        cands = candidates(retrieval.chunks)
        if not cands:
            return [], np.zeros((0, len(FEATURES)))
        question = retrieval.question
        terms = question_terms(retrieval.question + " " + (retrieval.context or ""))
        trans = self.translations(retrieval, terms)
        qv = self.cache.query_vector(retrieval.standalone or question)
        svs = self.cache.sentence_vectors([c.text for c in cands])
        # a follow-up is read as its standalone form (the question and the turns it refers to), like retrieval does
        asked = retrieval.standalone if retrieval.context and retrieval.standalone else question
        featurise(asked, cands, qv, svs, trans, history=retrieval.context or "")
        rule_features(cands, self.rules.run(retrieval))
        X = matrix(cands)
        asked_places = asked_countries(question, asked)
        for c in cands:
            c.swapped = names_other_place(asked_places, c.text)
        if self.weights is not None:
            p = self.weights.probabilities(X)
            for c, pi in zip(cands, p):
                c.p = 0.0 if c.injected or c.swapped else float(pi)
        return cands, X

    def missing_names(self, retrieval, cands: list[Candidate], trans) -> list[str]:
        """Names of the question (capitalised, not its first word, not a word of English or French: "FICOBA",
        "usrmerge") that no passage contains, even translated: a certain veto."""
        words = {w for ch in retrieval.chunks for w in words_of(ch.text)}
        words |= {w for ch in retrieval.chunks for w in words_of((ch.metadata or {}).get("context", ""))}
        stems = {stem(w) for w in words}
        return [t.key for t in question_terms(retrieval.question) if t.proper and len(t.key) >= 3 and zipf(t.key) == 0
                and not any(ch.isdigit() for ch in t.key) and term_credit(t, words, stems, trans)[2] < 0.8]

    def run(self, retrieval) -> Answer:
        from .answer import NOT_FOUND, with_marker
        from .citations import renumber

        t0 = time.perf_counter()
        lang = retrieval.language or detect_language(retrieval.question)
        answer = Answer(question=retrieval.question, answer="", abstained=True, retrieved=retrieval.chunks,
                        standalone_question=retrieval.standalone, language=lang)
        if self.weights is None:
            raise RuntimeError(f"no reader weights for {getattr(self.embedder, 'model_id', '?')} "
                               "(python -m bench.fit_reader)")
        cands, _X = self.score(retrieval)
        answer.diagnostics["scored"] = cands  # per answer: `ask --explain` shows the best of them

        def abstain(why: str, conf: float = 0.0) -> Answer:
            answer.answer = NOT_FOUND.get(lang, NOT_FOUND["en"])
            answer.abstained, answer.citations, answer.debug = True, [], why
            answer.confidence = round(conf, 4)
            answer.timings_ms["answer"] = (time.perf_counter() - t0) * 1000
            return answer

        if not cands:
            return abstain("nothing retrieved")
        terms = question_terms(retrieval.question)
        trans = self.translations(retrieval, terms)
        missing = self.missing_names(retrieval, cands, trans)
        p = np.array([c.p for c in cands])
        best = max(cands, key=lambda c: c.p)
        na = no_answer(p, self.weights.k_noanswer)
        answer.no_answer = na
        if missing:
            return abstain("names not found in any passage: " + ", ".join(missing), best.p)
        if self.type_veto != "off" and best.features.get("type_miss"):
            # the question asks for an amount / count / date and the best sentence holds none
            typed = [c for c in cands if c.features.get("type_asked") and not c.features.get("type_miss")
                     and not c.swapped and not c.injected]
            if self.type_veto == "abstain" or not typed:
                return abstain(f"the best sentence (p={best.p:.2f}) holds no answer of the kind asked", best.p)
            best = max(typed, key=lambda c: c.p)
        threshold = self.threshold if self.threshold is not None else self.weights.threshold
        if best.p < threshold:
            return abstain(f"best sentence p={best.p:.2f} < threshold {threshold:.2f} (no-answer {na:.2f})", best.p)
        quote = with_announced(best)
        cit = make_citation(1, quote)
        span = short_span(retrieval.question, best.text)
        if span:
            text, cits, _ = renumber(short_answer_text(span, quote.text, lang), [cit])
            answer.short_answer = span
        else:
            text, cits, _ = renumber(with_marker(quote.text, 1), [cit])
        answer.answer, answer.citations, answer.abstained = text, cits, False
        answer.confidence = round(best.p, 4)
        answer.debug = f"p={best.p:.2f} no-answer={na:.2f}"
        answer.timings_ms["answer"] = (time.perf_counter() - t0) * 1000
        return answer
