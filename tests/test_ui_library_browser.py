"""The chat on a non-demo corpus in a real browser (Debian's Chromium + Playwright): examples from the corpus, a citation
opening its document at the passage, 👍/👎 feedback exported as evaluation cases, the document library and removal."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .conftest import FAQ_QUESTIONS
from .test_ui_browser import (  # noqa: F401 - chromium: the fixture
    ANSWER_TIMEOUT, ask, chromium, export_markdown, open_page, wait_for_sources)

pytestmark = pytest.mark.browser


@pytest.fixture()
def page(chromium, faq_server):
    with open_page(chromium, faq_server.url) as pg:
        yield pg


def _examples(page) -> list[str]:
    page.wait_for_selector("#chatbot button.example")
    return [t.strip() for t in page.locator("#chatbot button.example").all_inner_texts()]


def test_examples_come_from_this_corpus(page, artifacts):
    shown = _examples(page)
    assert len(shown) >= 3
    assert set(shown) <= set(FAQ_QUESTIONS) | {"Quel est le délai de remboursement des soins ?",
                                              "Quels sont les horaires d'ouverture le dimanche ?"}
    assert not any("Maroc" in q or "Morocco" in q for q in shown)  # not the demo corpus's questions
    page.locator("#chatbot button.example", has_text="Quel est le tarif d'une entrée adulte ?").click()
    wait_for_sources(page, "piscine.md")
    assert "piscine.md" in page.locator("#sources .qa-file").first.inner_text()
    # an English question over the French FAQ: the answer names the source's language
    ask(page, "Who built the Kerbrat lighthouse?")
    wait_for_sources(page, "phare.pdf")
    chat = page.locator("#chatbot")
    assert "Paul Le Meur" in chat.inner_text()
    assert "from the French source" in chat.locator(".qa-meta").last.inner_text()
    page.screenshot(path=str(artifacts / "faq-chat.png"), full_page=True)


def test_citation_click_opens_the_document_at_the_passage(page, artifacts):
    ask(page, "Qui a construit le phare de Kerbrat ?")
    wait_for_sources(page, "phare.pdf")
    page.locator("#sources .qa-open").first.click()
    target = page.locator("#doc-viewer mark.qa-target")
    target.wait_for(timeout=ANSWER_TIMEOUT)
    viewer = page.locator("#doc-viewer")
    assert "Paul Le Meur" in target.inner_text()
    assert "phare.pdf" in viewer.locator(".qa-doc-head").inner_text() and "page 2" in viewer.inner_text()
    assert "Introduction générale" in viewer.inner_text()  # the whole document, not only the passage
    assert [t.strip() for t in viewer.locator(".qa-page").all_inner_texts()] == ["page 1", "page 2"]
    page.wait_for_timeout(400)  # the scroll runs after the viewer is filled
    box, mark = viewer.locator(".qa-doc-text").bounding_box(), target.bounding_box()
    assert box["y"] <= mark["y"] and mark["y"] + mark["height"] <= box["y"] + box["height"] + 1  # scrolled into view
    page.screenshot(path=str(artifacts / "faq-document.png"), full_page=True)
    # the conversation exported as Markdown, with the numbered source
    md = export_markdown(page, "Export")
    assert "## 1. Qui a construit le phare de Kerbrat ?" in md and "Paul Le Meur" in md
    assert re.search(r"^1\. `[^`]*phare\.pdf` — page 2", md, re.M)


def _feedback_lines(faq_server) -> list[dict]:
    path = Path(faq_server.settings.index_dir) / "feedback.jsonl"
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []



def test_feedback_is_recorded_and_exported_for_eval(page, faq_server, tmp_path):
    from assistant.cli import main
    from assistant.evaluation import load_cases

    before = len(_feedback_lines(faq_server))
    ask(page, "Qui a construit le phare de Kerbrat ?")
    wait_for_sources(page, "phare.pdf")
    page.locator("#chatbot button[aria-label='Like']").last.click()
    page.wait_for_function("document.querySelector('#feedback-notice').innerText.includes('recorded')")
    lines = _feedback_lines(faq_server)
    assert len(lines) == before + 1
    assert lines[-1]["rating"] == "up" and lines[-1]["question"] == "Qui a construit le phare de Kerbrat ?"
    assert "Paul Le Meur" in lines[-1]["citations"][0]["quote"]

    ask(page, "Quand la médiathèque de Lorient ferme-t-elle le dimanche ?")
    page.wait_for_function("document.querySelectorAll('#chatbot details.qa-details, #chatbot .qa-abstain').length >= 2",
                           timeout=ANSWER_TIMEOUT)
    page.locator("#chatbot button[aria-label='Dislike']").last.click()
    row = page.locator("#correction-row")
    row.wait_for(state="visible")
    page.locator("#correction textarea").fill("dix-huit heures")
    page.locator("#correction-send").click()
    page.wait_for_function("document.querySelector('#feedback-notice').innerText.includes('correction was recorded')")
    lines = _feedback_lines(faq_server)
    assert lines[-1]["rating"] == "down" and lines[-1]["correction"] == "dix-huit heures"
    assert lines[-1]["question"] == "Quand la médiathèque de Lorient ferme-t-elle le dimanche ?"

    out = tmp_path / "feedback-cases.jsonl"
    assert main(["feedback", "--index-dir", faq_server.settings.index_dir, "--export", str(out)]) == 0
    cases = {c.question: c for c in load_cases(out)}
    assert cases["Qui a construit le phare de Kerbrat ?"].answerable
    assert cases["Quand la médiathèque de Lorient ferme-t-elle le dimanche ?"].facts == [["dix-huit heures"]]
    run = tmp_path / "run"
    assert main(["eval", "--cases", str(out), "--index-dir", faq_server.settings.index_dir, "--out", str(run),
                 "--no-progress"]) == 0
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    assert report["summary"]["n_cases"] == len(cases)
    liked = next(c for c in report["cases"] if c["question"] == "Qui a construit le phare de Kerbrat ?")
    assert liked["metrics"]["passed"]


def test_library_lists_and_removes_a_document(page, faq_server, artifacts):
    q = "Combien de livres puis-je emprunter à la médiathèque de Lorient ?"
    page.get_by_text("Documents", exact=True).click()
    table = page.locator("#library table")
    table.wait_for()
    rows = {r.locator("td").first.inner_text().strip(): r.inner_text() for r in table.locator("tbody tr").all()}
    assert set(rows) == {"mutuelle.md", "mediatheque.md", "piscine.md", "phare.pdf", "scan.pdf"}
    assert re.search(r"pdf\s+1\.\d KB\s+2\s+2", rows["phare.pdf"])  # type, size, pages, chunks
    assert "✓ searchable" in rows["mediatheque.md"] and "not indexed: cannot read pdf" in rows["scan.pdf"]
    page.screenshot(path=str(artifacts / "library.png"), full_page=True)

    ask(page, q)
    wait_for_sources(page, "mediatheque.md")
    page.locator("#library-select input").click()
    page.get_by_role("option", name=re.compile(r"^mediatheque\.md")).click()
    page.locator("#library-remove").click()
    page.wait_for_function("document.querySelector('#library-notice').innerText.includes('was removed')")
    names = [t.strip() for t in table.locator("tbody tr td:first-child").all_inner_texts()]
    assert "mediatheque.md" not in names and "mutuelle.md" in names
    assert re.search(r"\b3 documents\b", page.locator("#index-status").inner_text())

    ask(page, q)
    page.wait_for_selector("#chatbot .qa-abstain", timeout=ANSWER_TIMEOUT)
    wait_for_sources(page, "No answer found")
    assert "Not found in the documents" in page.locator("#chatbot .qa-abstain").last.inner_text()
    assert (faq_server.docs / "mediatheque.md").exists()


@pytest.mark.parametrize("locale, texts", [
    ("fr-FR", {"placeholder": "Posez une question sur les documents…", "panels": ["Ajouter des documents", "Documents indexés",
                                                                              "Réglages", "Exporter"]}),
    ("en-US", {"placeholder": "Ask a question about the documents…", "panels": ["Add documents", "Documents", "Settings",
                                                                              "Export"]}),
])
def test_page_text_follows_the_browser_language(chromium, faq_server, locale, texts):
    with open_page(chromium, faq_server.url, locale=locale) as pg:
        assert pg.locator("#question textarea").get_attribute("placeholder") == texts["placeholder"]
        for label in texts["panels"]:
            assert pg.get_by_text(label, exact=True).first.is_visible(), label
        if locale.startswith("fr"):  # the text the server renders, too: panels, library, answers' frames
            assert "Les sources de la dernière réponse" in pg.locator("#sources").inner_text()
            pg.get_by_text("Documents indexés", exact=True).click()
            assert "interrogeable" in pg.locator("#library").inner_text()
            assert "taille" in pg.locator("#library thead").inner_text()
            ask(pg, "Qui a construit le phare de Kerbrat ?")
            wait_for_sources(pg, "phare.pdf")
            assert "Ouvrir au passage" in pg.locator("#sources").inner_text()
            ask(pg, "Quelle est la capitale du Pérou ?")
            pg.wait_for_selector("#chatbot .qa-abstain", timeout=ANSWER_TIMEOUT)
            assert "Absent des documents" in pg.locator("#chatbot .qa-abstain").last.inner_text()
