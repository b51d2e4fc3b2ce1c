"""Countries named in a text, in French or English, as ISO codes — so that "Morocco" and "le Maroc" are the same
place and "Qatar" another one — and the *swapped place* test built on it.

A question about one country answered by a sentence that names another country and not the asked one is the
"borrowed subject" failure (issue 11: "How much did **Qatar** allocate to startups?" answered with *le Maroc a
mobilisé 1,3 milliard de dirhams*, Qatar being named in the neighbouring sentence). Word embeddings cannot tell
it (Qatar/Maroc cosine 0.900, Morocco/Maroc 0.949: docs/reader.md), a gazetteer can: the country names are the
Unicode CLDR's, in both languages, through Babel (a maintained library), not a hand-written list.
"""
from __future__ import annotations

import re
from functools import lru_cache

from .text import fold_accents

# CLDR codes that are not one country (world regions, the EU, the UN, the euro zone, placeholders)
_NOT_COUNTRIES = {"ZZ", "EU", "EZ", "UN", "QO", "XA", "XB"}
# names that are mostly something else when capitalised: first names (fr "Maurice", "Dominique"; en "Jordan",
# "Georgia", "Chad"), the island of Jersey, the bird; a miss costs nothing (no veto), a false hit costs an answer
_AMBIGUOUS = {"maurice", "dominique", "jordan", "georgia", "chad", "jersey", "turkey", "man", "guernsey"}
# a question that asks *which* country or place: there, the sentence's other country is the answer itself
_ASKS_PLACE = re.compile(r"\b(?:pays|country|countries|nations?|states?|etats?|territoires?|territory|territories|"
                         r"regions?|where|ou)\b", re.I)
_APOS = str.maketrans({"’": "'", "ʼ": "'", "‘": "'"})


def _norm(text: str) -> str:
    return fold_accents(text).translate(_APOS)


@lru_cache(maxsize=1)
def _gazetteer() -> tuple[re.Pattern, dict[str, str]]:
    from babel import Locale

    names: dict[str, str] = {}
    for lang in ("fr", "en"):
        for code, name in Locale(lang).territories.items():
            if len(code) != 2 or not code.isalpha() or code in _NOT_COUNTRIES:
                continue
            n = _norm(name)
            for form in {n, re.sub(r"^(?:La|Le|Les|L')\s*", "", n)}:  # "La Réunion" is also "Réunion"
                if len(form) >= 4 and form.lower() not in _AMBIGUOUS and form[0].isupper():
                    names.setdefault(form, code)
    alternation = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    # capitalised as written (never "la réunion", a meeting), whole words; hyphens are part of a name
    return re.compile(rf"(?<![\w-])(?:{alternation})(?![\w-])"), names


def countries(text: str) -> set[str]:
    """ISO codes of the countries a text names, in French or English ("au Maroc", "Morocco's" -> {"MA"})."""
    if not text:
        return set()
    pattern, names = _gazetteer()
    return {names[m.group(0)] for m in pattern.finditer(_norm(text))}


def asked_countries(question: str, fallback: str = "") -> set[str]:
    """The countries a question asks about, once per question: its own, else those of ``fallback`` (the turns a
    follow-up refers to); none when it asks *which* country or *where* ("Which country is Morocco's main partner?":
    there the sentence's other country is the answer)."""
    text = question if countries(question) else (fallback or question)
    asked = countries(text)
    if not asked:
        return set()
    from .questions import PLACE, question_type

    if _ASKS_PLACE.search(_norm(text)) or question_type(text) == PLACE:
        return set()
    return asked


def names_other_place(asked: set[str], sentence: str) -> bool:
    """True when the sentence names a country and none of ``asked`` (:func:`asked_countries`): it is about another
    place than the one asked about (a certain veto for quoting it)."""
    if not asked:
        return False
    stated = countries(sentence)
    return bool(stated) and not (asked & stated)


def place_swapped(question: str, sentence: str) -> bool:
    """True when the question names a country, the sentence names a country, and none of the question's (and the
    question does not ask which country or where)."""
    return names_other_place(asked_countries(question), sentence)
