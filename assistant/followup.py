"""Is a chat question a follow-up of the earlier turns? Decided from evidence, not from a pronoun anywhere.

Without an LLM a follow-up ("Et pour un mineur ?", "Can an employer use it?") is retrieved with the recent user
questions appended (:func:`assistant.retrieval.condense_question`); a question that stands on its own must be
retrieved alone, or an unrelated earlier turn leaks into its retrieval (a topic switch). The old test - any of ~40
pronouns anywhere, or one content word - fired on 45 % of the self-contained French questions of the TRAIN and DEV
splits ("a-t-il", "faut-il", "il y a", "en France", "ce que") and missed "Et pour la photo d'un mineur ?".

The decision asks whether the question resolves without the history, from:

* **cues** in the question itself, each a named function below: a referring word outside the constructions that
  only look like one (:func:`anaphora`: inverted subjects "a-t-il", impersonal "il faut", "il y a", "is there",
  "is it possible", relative "ce que"); a continuation opener (:func:`opener`: "Et…", "And…", "What about…");
  few content words (:func:`content_words`);
* **retrieval evidence**: how well the question alone finds a passage (its best dense cosine), how much the
  history adds (the condensed question's best cosine minus that), whether both find the same passages, and how
  close the question is to the previous one.

A logistic regression over those (fitted by ``python -m bench.fit_followup`` on the TRAIN split's follow-ups, topic
switches and self-contained questions put after another case's history; weights per embedder in
``assistant/reader_weights/followup-<model>.json``) gives ``p`` = the probability that the question needs the
history; it is condensed when ``p >= threshold``. Without weights for the embedder the cues alone decide.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .text import lexical_tokens

WEIGHTS_DIR = Path(__file__).resolve().parent / "reader_weights"
FEATURES = ("anaphora", "opener", "few_words", "cos_prev", "alone_top", "gain", "overlap")

# --------------------------------------------------------------------------------------------------- cues
# constructions that contain a "referring" word but refer to nothing outside the question
_NOT_REFERRING = [re.compile(p, re.IGNORECASE) for p in (
    r"-t-(?:il|elle|on|ils|elles)\b",  # a-t-il, va-t-elle
    r"\b\w+-(?:il|elle|ils|elles|on|je|tu|nous|vous|ce)\b",  # faut-il, doit-elle, est-ce, peut-on
    r"\bqu'est-ce\b|\best-ce\b",
    r"\b(?:s')?il (?:y|faut|fallait|faudra|s'agit|suffit|existe|reste|convient|vaut|arrive|est (?:possible|"
    r"obligatoire|nécessaire|necessaire|interdit|utile|permis|conseillé|conseille|recommandé|recommande))\b",
    r"\b(?:tout )?ce (?:que|qui|qu'|dont)",  # relative: "ce que je dois", "tout ce qui"
    r"\b(?:is|are|was|were|will|would) there\b|\bthere (?:is|are|was|were)\b",  # existential "there"
    r"\b(?:is|was|will|would) it (?:be )?(?:possible|necessary|mandatory|compulsory|legal|true|allowed|ok|okay|"
    r"worth|safe|required|advisable|forbidden|free|enough)\b",
    r"\bit(?: is|'s| was) (?:possible|necessary|mandatory|compulsory|legal|true|allowed|forbidden|required)\b",
    r"\b(?:so|such) that\b|\bthat (?:is|means)\b|\bsuch as\b",
)]
# words that refer to something earlier in the conversation (after the constructions above are removed)
_REFERRING = re.compile(
    r"\b(?:it|its|they|them|their|this|these|those|he|she|his|her|him|the same|the latter|the former|such|above|"
    r"il|elle|ils|elles|lui|leur|leurs|ce|cet|cette|ces|ça|ca|cela|celui|celle|ceux|celles|ci-dessus|"
    r"ce dernier|cette dernière|ces derniers|là)\b", re.IGNORECASE)
_THAT = re.compile(r"\bthat\s*(?:[?.!,;:]|$)|\b(?:is|was|are|from|to|about|for|with|of|on|in|use|do|does|did) that\b", re.IGNORECASE)
_OPENER = re.compile(
    r"^\s*(?:et|and|or|ou|but|mais|alors|ensuite|puis|sinon|also|aussi|then|so|otherwise|what about|how about|"
    r"et si|and if|et pour|and for|et en|dans ce cas|in that case|same question|même question)\b(?![-'])", re.IGNORECASE)


def anaphora(question: str) -> float:
    """1.0 if the question holds a word that refers outside it ("it", "cette demande", "leur"), else 0.0.

    >>> anaphora("Can an employer use it?"), anaphora("Quel montant le Maroc a-t-il mobilisé ?")
    (1.0, 0.0)
    """
    text = question.replace("’", "'")
    for pattern in _NOT_REFERRING:
        text = pattern.sub(" ", text)
    return 1.0 if _REFERRING.search(text) or _THAT.search(text) else 0.0


def opener(question: str) -> float:
    """1.0 if the question opens as a continuation ("Et pour…", "And can…", "What about…")."""
    return 1.0 if _OPENER.search(question.replace("’", "'")) else 0.0


def content_words(question: str) -> int:
    """How many content words (not stop words, unstemmed) the question has."""
    return len(lexical_tokens(question, stemming=False))


def few_words(question: str) -> float:
    """1 / (1 + content words): 0.5 for one word, small for a full question."""
    return 1.0 / (1.0 + content_words(question))


def cue_rule(question: str) -> bool:
    """The decision without retrieval evidence (no fitted weights for this embedder)."""
    return bool(anaphora(question) or opener(question) or content_words(question) <= 1)


# ------------------------------------------------------------------------------------------- evidence
def top_score(scores: Sequence[float]) -> float:
    return float(max(scores)) if len(scores) else 0.0


def overlap(alone_ids: Sequence[str], condensed_ids: Sequence[str]) -> float:
    """Share of the condensed question's passages the question alone also finds (1.0: the history changes nothing)."""
    if not condensed_ids:
        return 1.0
    a = set(alone_ids)
    return sum(1 for c in condensed_ids if c in a) / len(condensed_ids)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(np.dot(a, b) / (na * nb)) if na and nb else 0.0


def features(question: str, q_vec: np.ndarray, prev_vec: np.ndarray, alone: Sequence[tuple[str, float]],
             condensed: Sequence[tuple[str, float]]) -> dict[str, float]:
    """The decision's features; ``alone`` / ``condensed`` are the (chunk id, dense cosine) hits of the question
    alone and of the question with the history appended."""
    a_top = top_score([s for _, s in alone])
    return {
        "anaphora": anaphora(question),
        "opener": opener(question),
        "few_words": few_words(question),
        "cos_prev": cosine(q_vec, prev_vec),
        "alone_top": a_top,
        "gain": top_score([s for _, s in condensed]) - a_top,
        "overlap": overlap([c for c, _ in alone], [c for c, _ in condensed]),
    }


# ---------------------------------------------------------------------------------------------- model
@dataclass
class FollowupModel:
    """Standardised logistic regression: ``p = sigmoid(b + sum w_i (x_i - mean_i) / std_i)``."""

    weights: list[float]
    bias: float
    mean: list[float]
    std: list[float]
    threshold: float = 0.5
    features: tuple[str, ...] = FEATURES
    meta: dict = field(default_factory=dict)

    def probability(self, feats: dict[str, float]) -> float:
        z = self.bias + sum(w * (feats[f] - m) / (s or 1.0)
                            for f, w, m, s in zip(self.features, self.weights, self.mean, self.std))
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    @classmethod
    def from_json(cls, d: dict) -> "FollowupModel":
        return cls([float(x) for x in d["weights"]], float(d["bias"]), [float(x) for x in d["mean"]],
                   [float(x) for x in d["std"]], float(d.get("threshold", 0.5)), tuple(d["features"]), d.get("meta", {}))

    def to_json(self) -> dict:
        return {"features": list(self.features), "weights": self.weights, "bias": self.bias, "mean": self.mean,
                "std": self.std, "threshold": self.threshold, "meta": self.meta}


def weights_path(model_id: str) -> Path:
    return WEIGHTS_DIR / ("followup-" + re.sub(r"[^\w.-]+", "_", model_id).strip("_") + ".json")


_LOADED: dict[str, FollowupModel | None] = {}


def load_model(model_id: str) -> FollowupModel | None:
    """The fitted decision for this embedder, or None (then :func:`cue_rule` decides)."""
    if model_id not in _LOADED:
        p = weights_path(model_id)
        model = None
        if p.is_file():
            model = FollowupModel.from_json(json.loads(p.read_text(encoding="utf-8")))
            if tuple(model.features) != FEATURES:  # weights of another feature set: not usable
                model = None
        _LOADED[model_id] = model
    return _LOADED[model_id]

