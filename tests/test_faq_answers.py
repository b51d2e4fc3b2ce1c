"""FAQ-style documents (a question heading, then its answer): the answer quotes the answer, never the heading.

Real embedder, real index of FAQ files in Markdown and plain text ("Q : …" then the answer).
"""
from __future__ import annotations

import pytest

from assistant.answer import question_heading
from assistant.pipeline import Assistant

FAQ_MD = """# FAQ de la mutuelle Horizon

## Comment résilier mon contrat ?

Pour résilier votre contrat, envoyez une lettre recommandée au siège de la mutuelle Horizon, 12 rue des Lilas à \
Rennes, au moins deux mois avant la date d'échéance.

## Quel est le délai de remboursement des soins ?

Les soins sont remboursés sous cinq jours ouvrés après réception de la feuille de soins électronique.
"""

FAQ_TXT = """Foire aux questions du camping des Dunes

Q : Les chiens sont-ils acceptés au camping ?
Les chiens sont acceptés au camping des Dunes, tenus en laisse, moyennant un supplément de 3 euros par nuit.

Q : À quelle heure faut-il libérer l'emplacement ?
L'emplacement doit être libéré avant midi le jour du départ.
"""

CASES = [  # (question, words of the answer sentence, the heading that must not be quoted)
    ("Comment résilier mon contrat ?", "lettre recommandée", "Comment résilier mon contrat"),
    ("Quel est le délai de remboursement des soins ?", "cinq jours ouvrés", "Quel est le délai de remboursement"),
    ("How do I cancel my contract?", "lettre recommandée", "Comment résilier mon contrat"),
    ("Les chiens sont-ils acceptés au camping ?", "tenus en laisse", "Les chiens sont-ils acceptés"),
    ("Do you accept dogs at the campsite?", "tenus en laisse", "Les chiens sont-ils acceptés"),
]


@pytest.fixture(scope="module")
def faq_assistant(tmp_path_factory, settings_factory, embedder):
    root = tmp_path_factory.mktemp("faq-answers")
    docs = root / "docs"
    docs.mkdir()
    (docs / "mutuelle.md").write_text(FAQ_MD, encoding="utf-8")
    (docs / "camping.txt").write_text(FAQ_TXT, encoding="utf-8")
    a = Assistant(settings_factory(index_dir=str(root / "index"), docs_dir=str(docs)), embedder=embedder)
    report = a.index([str(docs)], show_progress=False)
    assert report.added == 2 and not report.failed
    return a


@pytest.mark.parametrize("question,answer_words,heading", CASES)
def test_faq_answer_quotes_the_answer_not_the_question_heading(faq_assistant, question, answer_words, heading):
    ans = faq_assistant.ask(question)
    assert not ans.abstained, ans.debug
    assert ans.citations
    quotes = [c.quote for c in ans.citations]
    assert answer_words in quotes[0], quotes
    assert not any(heading in q for q in quotes), quotes
    assert heading not in ans.answer
    # the heading was retrieved with its answer (it is context), it is just never the quoted sentence
    assert any(heading in r.text or heading in str((r.metadata or {}).get("section", "")) for r in ans.retrieved)


@pytest.mark.parametrize("question,short", [
    ("Combien coûte le supplément pour un chien au camping ?", "3 euros"),
    ("How much does a dog cost per night at the campsite?", "3 euros"),
])
def test_rules_answer_gives_the_short_answer_of_an_amount(faq_assistant, question, short):
    """The default answerer names the few words that answer (the page shows them first, in bold)."""
    ans = faq_assistant.ask(question)
    assert not ans.abstained, ans.debug
    assert ans.short_answer == short
    assert short in ans.citations[0].quote


@pytest.mark.parametrize("text,sentence,expected", [
    ("Comment résilier mon contrat ?\n\nPour résilier, écrivez.", "Comment résilier mon contrat ?", True),
    ("## How do I cancel?\nSend a letter.", "How do I cancel?", True),
    ("Q : Les chiens sont-ils acceptés ?\nOui.", "Les chiens sont-ils acceptés ?", True),
    ("3. Why is the sky blue?\nBecause of scattering.", "Why is the sky blue?", True),
    ("**Is it free?**\nYes.", "Is it free?**", True),
    ("Is it free? Yes, it is free for everyone.", "Is it free?", False),  # a question inside running text
    ("Send a letter.\nIt takes two days.", "It takes two days.", False),  # a line of its own that does not ask
])
def test_question_heading(text, sentence, expected):
    start = text.index(sentence)
    assert question_heading(text, start, start + len(sentence)) is expected


@pytest.mark.parametrize("question,sentence,short", [
    ("How many books can I borrow?", "Every member may borrow up to 12 books at a time, for four weeks.", "12 books"),
    ("Combien de livres puis-je emprunter ?", "Chaque abonné peut emprunter douze livres à la fois.", "douze livres"),
    ("When was the lighthouse automated?", "Le phare a été automatisé en 1994 ; il se visite l'été.", "1994"),
    # a span the sentence goes on with ("quatre euros | cinquante") would be a wrong answer: none
    ("Combien coûte une entrée adulte ?", "Une entrée adulte coûte quatre euros cinquante.", None),
    # a span made of the question's own words says nothing ("le dimanche" for "quand … le dimanche ?"): none
    ("Quand la médiathèque est-elle ouverte le dimanche ?", "Elle est ouverte le dimanche de 14 h à 18 h.", None),
])
def test_short_answer_is_whole_and_says_something(question, sentence, short):
    from assistant.answer import _short_answer

    assert _short_answer(question, sentence) == short
