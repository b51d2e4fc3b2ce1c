"""Countries as ISO codes in French and English, and the swapped-place test (assistant/entities.py)."""
import pytest

from assistant.entities import countries, place_swapped


@pytest.mark.parametrize("text,codes", [
    ("How much did Qatar allocate to startups?", {"QA"}),
    ("Mme Seghrouchni a souligné que le Maroc a mobilisé une enveloppe", {"MA"}),
    ("Who is Morocco's ambassador to Qatar?", {"MA", "QA"}),  # the possessive does not hide the name
    ("aux États-Unis et au Royaume-Uni", {"US", "GB"}),  # hyphenated, accented
    ("aux Etats-Unis", {"US"}),  # unaccented as users type it
    ("en Côte d’Ivoire", {"CI"}),  # typographic apostrophe
    ("South Korea and New Zealand", {"KR", "NZ"}),  # multi-word names
    ("La Réunion est une île", {"RE"}),
    ("la réunion du conseil", set()),  # a meeting: not capitalised, not a place
    ("Maurice a dit oui", set()),  # a first name first (Mauritius in French): ambiguous, left out
    ("Le Web Summit Qatar 2026", {"QA"}),
    ("l'Union européenne et les Nations Unies", set()),  # not countries
    ("Francesca habite à Lyon", set()),  # a name that starts like one is not one
    ("", set()),
])
def test_countries(text, codes):
    assert countries(text) == codes


def test_place_swapped():
    # the demo: Qatar asked, the sentence is about Morocco
    assert place_swapped("How much did Qatar allocate to startups?",
                         "Mme Seghrouchni a souligné que le Maroc a mobilisé une enveloppe d’environ 1,3 milliard")
    # the same country across languages is not a swap
    assert not place_swapped("How much did Morocco allocate to startups?", "le Maroc a mobilisé 1,3 milliard")
    # one shared country is enough
    assert not place_swapped("Who is Morocco's ambassador to Qatar?", "l'ambassadeur du Maroc, M. Setri")
    # a sentence that names no country cannot be told apart: no veto
    assert not place_swapped("How much did Qatar allocate to startups?", "Une enveloppe de 1,3 milliard a été mobilisée.")
    # a question that asks which country or where: the other country is the answer
    assert not place_swapped("Which country is Morocco's main trading partner?", "L'Espagne est le premier partenaire.")
    assert not place_swapped("Avec quels pays le Maroc a-t-il signé ?", "Un accord a été signé avec le Sénégal.")
    assert not place_swapped("Where did Qatar invest?", "Les fonds ont été investis au Maroc.")
    assert not place_swapped("Où le Qatar a-t-il investi ?", "Les fonds ont été investis au Maroc.")
    # a question that names no country: no veto
    assert not place_swapped("Combien de startups ont été financées ?", "Le Maroc a financé 200 startups.")
