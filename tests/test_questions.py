"""What a question asks (assistant/questions.py): the question-type regexes on the cases issue 11 found mistyped."""
from __future__ import annotations

import pytest

from assistant.questions import AMOUNT, COUNT, DATE, MEASURE, PERSON, PLACE, TECH, question_type


@pytest.mark.parametrize("question, kind", [
    # "où" is a place, "ou" is "or"
    ("Où se trouve le phare d'Eckmühl ?", PLACE),
    ("ou se trouve le phare ?", PLACE),  # unaccented, opening the question
    ("Quelles informations un centre social ou socioculturel peut-il me demander ?", None),
    ("Dans quelle ville se trouve le siège ?", PLACE),
    # "how much RAM": a technical value, not money
    ("How much RAM does the installer need?", TECH),
    ("Combien d'espace disque faut-il pour installer Debian ?", TECH),
    ("How much did Morocco allocate to startups?", AMOUNT),
    # "when should I …": a condition, not a date
    ("When should I renew my passport?", None),
    ("Quand faut-il déclarer ses revenus ?", None),
    ("When was the lighthouse first lit?", DATE),
    ("Quand le phare a-t-il été allumé pour la première fois ?", DATE),
    # relative "qui"/"who" is not a person question; interrogative ones are
    ("Les personnes qui travaillent à domicile peuvent-elles déduire leurs frais ?", None),
    ("Can people who work from home deduct their costs?", None),
    ("Qui est l'ambassadeur du Maroc au Qatar ?", PERSON),
    ("TAJ : qui peut le consulter ?", PERSON),
    ("À qui s'adresser en cas de litige ?", PERSON),
    ("Par qui la carte est-elle délivrée ?", PERSON),
    ("Who founded Debian?", PERSON),
    ("Which Qatari minister did Seghrouchni meet?", PERSON),
    ("Savez-vous qui a fondé Debian ?", PERSON),
    ("Do you know who founded Debian?", PERSON),
    ("Le président de la CNIL, c'est qui ?", PERSON),
])
def test_question_type(question, kind):
    assert question_type(question) == kind


def test_cross_lingual_sentences_need_less_term_coverage():
    """The rules' evidence threshold: `abstain_threshold_xling` when the passage's language is not the question's."""
    from types import SimpleNamespace

    from assistant.answer import ExtractiveAnswerer

    def cand(cid, text):
        return SimpleNamespace(quote=SimpleNamespace(chunk=SimpleNamespace(chunk_id=cid, text=text)))

    fr = cand("a", "Le Maroc a mobilisé une enveloppe d'environ 1,3 milliard de dirhams pour les startups.")
    en = cand("b", "Morocco has allocated about 1.3 billion dirhams to its startups, the minister said.")
    rules = ExtractiveAnswerer(embedder=None, threshold=0.4, threshold_xling=0.2)
    assert rules._threshold_for(fr, "en") == 0.2 and rules._threshold_for(en, "en") == 0.4
    assert rules._threshold_for(fr, "fr") == 0.4 and rules._threshold_for(en, "fr") == 0.2
    same = ExtractiveAnswerer(embedder=None, threshold=0.4)  # no cross-lingual threshold: one for every pair
    assert same._threshold_for(fr, "en") == 0.4


@pytest.mark.parametrize("question, sentence, kind, found, span", [
    # dates before 1900, centuries, years BC; a four-digit price is no date
    ("Quand le phare a-t-il été allumé ?", "Il a été allumé pour la première fois en 1897.", DATE, True, "1897"),
    ("When was Rome founded?", "Selon la tradition, Rome est fondée en 753 av. J.-C.", DATE, True, None),
    ("Quand la cathédrale a-t-elle été construite ?", "Elle a été construite au XIIIe siècle.", DATE, True, None),
    ("Quand le phare a-t-il été allumé ?", "Le phare se visite pour 1500 euros.", DATE, False, None),
    # sizes, durations, populations: a measure with its unit, number words included
    ("Combien mesure le phare d'Eckmühl ?", "Le phare d'Eckmühl, à Penmarch, mesure soixante-cinq mètres.", MEASURE, True,
     "soixante-cinq mètres"),
    ("How tall is the Eckmühl lighthouse?", "It is sixty-five metres tall.", MEASURE, True, "sixty-five metres"),
    ("Quelle est la population de Brest ?", "Brest compte 139 602 habitants.", MEASURE, True, "139 602 habitants"),
    ("Combien de temps dure le trajet ?", "Le trajet dure environ trois heures.", MEASURE, True, "trois heures"),
    ("Combien mesure le phare d'Eckmühl ?", "Le phare d'Eckmühl est situé à Penmarch.", MEASURE, False, None),
    # compound number words count whole
    ("Combien de startups le fonds a-t-il soutenues ?", "Le fonds a soutenu soixante-dix startups.", COUNT, True,
     "soixante-dix startups"),
])
def test_typed_answers_in_sentences(question, sentence, kind, found, span):
    from assistant.questions import has_type
    from assistant.reader import short_span

    assert question_type(question) == kind
    counted = "startups" if kind == COUNT else None
    assert has_type(sentence, kind, counted, known=set()) is found
    if span:
        assert short_span(question, sentence) == span
