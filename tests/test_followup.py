"""The follow-up decision (assistant/followup.py): its cues, its maths with fixed vectors, and the retriever's use."""
import math

import numpy as np
import pytest

from assistant import followup
from assistant.followup import FEATURES, FollowupModel, anaphora, content_words, cue_rule, opener, overlap
from assistant.retrieval import condense_question, condensed_form, history_questions


@pytest.mark.parametrize("question", [
    "Can an employer use it?",
    "Et que contient ce numéro ?",
    "Et celui de la durée de conservation, qu'impose-t-il ?",
    "Does that regulation cover purchases between private individuals?",
    "Qui dirige l'enquête dans ce cas ?",
    "What is that money for?",
    "Combien coûte-t-elle ?  Et leur délai ?",
])
def test_referring_words_are_cues(question):
    assert anaphora(question) == 1.0 and cue_rule(question)


@pytest.mark.parametrize("question", [
    "Quel montant le Maroc a-t-il mobilisé pour les startups ?",  # inverted subject
    "Quel schéma de groupes le système Debian utilise-t-il par défaut ?",
    "Quelle option faut-il passer à APT ?",
    "Combien de soumissions les données de popularité contiennent-elles au total ?",
    "Y a-t-il un délai ? Il y a une limite ?",
    "Est-ce que la CNIL est compétente ?",
    "Qu'est-ce que le règlement général sur la protection des données ?",
    "Que doit faire un employeur, et tout ce que cela implique ?".replace(", et tout ce que cela implique", ""),
    "Is there a fee for a passport?",
    "Is it possible to have two passports?",
    "Which package provides commands such as lpr and lpq?",
    "Qui a traduit en français la Référence Debian ?",  # "en" is a preposition here
    "Puis-je refuser que ma photographie figure dans l'annuaire ?",  # "Puis-je" is not the opener "Puis"
])
def test_constructions_that_only_look_referring_are_not(question):
    assert anaphora(question) == 0.0 and opener(question) == 0.0 and not cue_rule(question)


def test_openers_and_few_words():
    assert opener("Et pour la photo d'un mineur ?") == 1.0
    assert opener("And can customs officers consult it?") == 1.0
    assert opener("What about minors?") == 1.0
    assert opener("Etat civil : comment faire ?") == 0.0  # "Et" only as a whole word
    assert content_words("Et le prix ?") == 1 and cue_rule("Et le prix ?")
    assert followup.few_words("prix") == 0.5


def test_overlap_and_cosine_are_exact():
    assert overlap(["a", "b", "c"], ["a", "d", "c", "e"]) == 0.5
    assert overlap([], []) == 1.0
    assert followup.cosine(np.array([1.0, 0.0]), np.array([1.0, 1.0])) == pytest.approx(1 / math.sqrt(2))
    assert followup.cosine(np.zeros(2), np.ones(2)) == 0.0


def test_features_from_fixed_hits():
    q, prev = np.array([1.0, 0.0, 0.0]), np.array([0.6, 0.8, 0.0])
    f = followup.features("Can an employer use it?", q, prev, [("a", 0.80), ("b", 0.75)], [("a", 0.86), ("c", 0.70)])
    assert set(f) == set(FEATURES)
    assert f["anaphora"] == 1.0 and f["opener"] == 0.0
    assert f["cos_prev"] == pytest.approx(0.6)
    assert f["alone_top"] == pytest.approx(0.80) and f["gain"] == pytest.approx(0.06)
    assert f["overlap"] == 0.5
    assert f["few_words"] == pytest.approx(1 / (1 + content_words("Can an employer use it?")))


def test_model_probability_is_the_standardised_logistic():
    m = FollowupModel(weights=[2.0, 0, 0, 0, 0, -1.0, 0], bias=-0.5, mean=[0.5, 0, 0, 0, 0, 0.0, 0],
                      std=[0.5, 1, 1, 1, 1, 0.1, 1], threshold=0.6)
    feats = dict.fromkeys(FEATURES, 0.0) | {"anaphora": 1.0, "gain": 0.05}
    z = -0.5 + 2.0 * (1.0 - 0.5) / 0.5 - 1.0 * 0.05 / 0.1
    assert m.probability(feats) == pytest.approx(1 / (1 + math.exp(-z)))
    again = FollowupModel.from_json(m.to_json())
    assert again.probability(feats) == m.probability(feats) and again.threshold == 0.6


def test_history_helpers():
    hist = [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2"}, {"role": "assistant", "content": "A2"},
            {"role": "user", "content": [{"type": "text", "text": "Q3"}]}]
    assert history_questions(hist, 2) == ["Q2", "Q3"]
    assert condensed_form("Et le prix ?", hist, 2) == "Et le prix ? (Q2 Q3)"
    assert condense_question("Et le prix ?", hist) == "Et le prix ? (Q2 Q3)"
    assert condense_question("Quel montant le Maroc a-t-il mobilisé ?", hist) == "Quel montant le Maroc a-t-il mobilisé ?"
    assert condense_question("Et le prix ?", None) == "Et le prix ?"
