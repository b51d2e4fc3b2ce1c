"""Is a cited sentence supported by the passage it cites?

This module owns the check of the model's claims against the passages (:class:`SupportChecker`, returning a
:class:`Support` per citation): accent-folded, stemmed word overlap with the best sentence or pair of sentences of
the passage (:func:`claim_tokens`), multilingual embedding similarity with its best sentence through the shared
embedder, which carries the check across languages, and the numbers of the sentence, normalised across decimal
and thousands separators (:func:`numbers`), which must all occur in the passages cited. The thresholds
(:data:`LEXICAL_SUPPORT`, :data:`SEMANTIC_SUPPORT`) are calibrated on multilingual-e5-small.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..citations import MARKER
from ..text import lexical_tokens, sentence_spans
from .errors import first_line
from .prompts import Passage

# support of a cited sentence by its passage (calibrated on multilingual-e5-small, English answers over French
# text: translations of a passage sentence score 0.87-0.92, unrelated claims about the same topic 0.75-0.84)
LEXICAL_SUPPORT = 0.5
SEMANTIC_SUPPORT = 0.85


_NUMBER = re.compile(r"\d{1,3}(?:[\u202f\u00a0 ]\d{3}(?!\d))+(?:[.,]\d+)?|\d+(?:[.,]\d+)*")


def _number(raw: str) -> str:
    parts = re.split(r"[.,\u202f\u00a0 ]", raw)
    if len(parts) > 1 and all(len(p) == 3 for p in parts[1:]):
        value = "".join(parts)  # thousands separators: "1 300", "1,300", "50.000"
    elif len(parts) > 1:
        value = "".join(parts[:-1]) + "." + parts[-1]  # decimal comma or point: "1,3", "1.3"
    else:
        value = raw
    whole, _, frac = value.partition(".")
    whole = whole.lstrip("0") or "0"
    frac = frac.rstrip("0")
    return f"{whole}.{frac}" if frac else whole


def numbers(text: str) -> set[str]:
    """Numbers in ``text`` (citation markers ignored), normalised: '1,3' and '1.3' -> '1.3'; '1 300', '1,300' -> '1300'."""
    return {_number(m) for m in _NUMBER.findall(MARKER.sub(" ", text))}


@dataclass
class Support:
    lexical: float  # share of the sentence's content words found in the best sentence (or pair) of the passage
    semantic: float  # best embedding similarity with one sentence of the passage (0 without an embedder)
    covered: set[str]  # the sentence's content words the best window covers
    numbers: set[str]  # numbers of the passage
    span: tuple[int, int]  # best-matching sentence of the passage (offsets in chunk.text)

    @property
    def score(self) -> float:
        return max(self.lexical, self.semantic)


def claim_tokens(sentence: str) -> set[str]:
    return set(lexical_tokens(MARKER.sub(" ", sentence)))


class SupportChecker:
    """Is an answer sentence supported by the passages it cites?

    Evidence: accent-folded, stemmed word overlap with the best sentence (or
    pair of sentences) of each passage; multilingual embedding similarity with
    its best sentence (through the shared embedder, when there is one), which
    carries the check across languages; and every number of the sentence must
    occur in the cited passages.
    """

    def __init__(self, cache=None):
        self.cache = cache  # answer.VectorCache (the shared embedder), or None for lexical only

    def _vectors(self, texts: list[str]):
        if self.cache is None or not texts:
            return None
        try:
            return self.cache.sentence_vectors(texts)
        except Exception as err:  # noqa: BLE001 - the embedder is optional here
            from ..health import degraded

            degraded("support-vectors", "LLM support check: running without sentence vectors "
                     f"({type(err).__name__}: {first_line(str(err))[:150]}); citations are "
                     "checked by word overlap only (paraphrases and translations are not recognised)", err)
            return None

    def check(self, sentence: str, passage: Passage) -> Support:
        claim = MARKER.sub(" ", sentence).strip()
        text = passage.text
        spans = sentence_spans(text) or [(0, len(text))]
        ctoks = claim_tokens(claim)
        windows = spans + [(spans[i][0], spans[i + 1][1]) for i in range(len(spans) - 1)]
        covered = [ctoks & set(lexical_tokens(text[s:e])) for s, e in windows]
        lex = [len(c) / len(ctoks) if ctoks else 0.0 for c in covered]
        sem = [0.0] * len(spans)
        vecs = self._vectors([claim] + [text[s:e] for s, e in spans])
        if vecs is not None:
            for i, v in enumerate(vecs[1:]):
                sem[i] = float(v @ vecs[0])
        best_w = max(range(len(windows)), key=lambda i: lex[i])
        # the quote is one sentence: the best by either measure
        best_s = max(range(len(spans)), key=lambda i: (max(lex[i], sem[i]), lex[i] + sem[i]))
        return Support(lex[best_w], max(sem), covered[best_w], numbers(text), spans[best_s])

    def judge(self, sentence: str, sups: dict[int, Support]) -> dict[int, bool]:
        """For one sentence and the passages it cites: is each citation supported?

        Numbers must occur in the cited passages together; a citation is
        supported by its own overlap or similarity, or when the cited passages
        together cover the sentence and this one contributes to it.
        """
        ctoks = claim_tokens(sentence)
        nums_ok = numbers(sentence) <= set().union(*(s.numbers for s in sups.values()))
        union = set().union(*(s.covered for s in sups.values()))
        together = len(union) / len(ctoks) if ctoks else 0.0
        return {n: nums_ok and (s.lexical >= LEXICAL_SUPPORT or s.semantic >= SEMANTIC_SUPPORT
                                or (together >= LEXICAL_SUPPORT and s.lexical >= 0.2))
                for n, s in sups.items()}
