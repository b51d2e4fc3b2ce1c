"""The page in French (a French browser): the text the server renders is French too, not only Gradio's labels.

Status line, answer frames (short answer, confidence with its number on hover, source language), the sources'
locations, the upload report and its reasons. Debian's Chromium driven by Playwright, on the FAQ corpus.
"""
from __future__ import annotations

import re

import pytest

from .test_ui_browser import (  # noqa: F401 - chromium: the fixture
    ANSWER_TIMEOUT, ask, chromium, export_markdown, open_page, wait_for_sources)

pytestmark = pytest.mark.browser

ENGLISH = ["embedding model", "chunks", "confidence", "from the French source", "French", "Open at passage",
           "searchable", "not indexed", "No file received", "unsupported file type"]


@pytest.fixture()
def page_fr(chromium, faq_server):
    with open_page(chromium, faq_server.url, locale="fr-FR") as pg:
        yield pg


@pytest.fixture()
def with_confidence(faq_server, monkeypatch):
    """The default answerer gives no confidence: give its answers one, to see the label the page renders."""
    answerer = faq_server.assistant.extractive
    run = answerer.run

    def run_with_confidence(retrieval):
        answer = run(retrieval)
        if not answer.abstained:
            answer.confidence = 0.83
        return answer

    monkeypatch.setattr(answerer, "run", run_with_confidence)


def test_answer_and_status_in_french(page_fr, with_confidence, artifacts):
    status = page_fr.locator("#index-status").inner_text()
    assert re.search(r"\d+ documents · \d+ passages · modèle d'embeddings", status), status
    ask(page_fr, "How do I cancel my contract?")
    wait_for_sources(page_fr, "mutuelle.md")
    page_fr.locator("#chatbot details.qa-details").last.wait_for()
    chat = page_fr.locator("#chatbot").inner_text()
    sources = page_fr.locator("#sources").inner_text()
    assert "lettre recommandée" in chat
    assert "confiance élevée" in chat and "d'après la source en français" in chat
    assert page_fr.locator("#chatbot .qa-conf").last.get_attribute("title") == "confiance 0,83"
    assert re.search(r"paragraphe \d", sources) and not re.search(r"paragraph \d", sources)
    assert "Ouvrir au passage" in sources and "français" in sources
    for english in ENGLISH:
        assert english not in chat + sources, english
    page_fr.screenshot(path=str(artifacts / "french-answer.png"), full_page=True)
    # the conversation's export, its own words in French too
    md = export_markdown(page_fr, "Exporter")
    assert md.startswith("# Questions sur vos documents — conversation\n\n_Exporté le ")
    assert "## 1. How do I cancel my contract?" in md and "Sources :" in md and "paragraphe " in md


def test_upload_report_in_french(page_fr, faq_server, tmp_path):
    good = tmp_path / "horaires.txt"
    good.write_text("La mairie de Vannes est ouverte du lundi au vendredi de 8 h 30 à 17 h.\n", encoding="utf-8")
    bad = tmp_path / "outil.exe"
    bad.write_bytes(b"MZ\x90\x00 not a document")
    page_fr.get_by_text("Ajouter des documents").click()
    page_fr.locator("#upload-files input[type=file]").set_input_files([str(good), str(bad)])
    page_fr.wait_for_selector("#upload-report .qa-upload", timeout=ANSWER_TIMEOUT)
    report = page_fr.locator("#upload-report").inner_text()
    assert "1 fichier interrogeable dès maintenant, 1 non indexé" in report, report
    assert re.search(r"horaires\.txt\s*—\s*indexé", report), report
    assert "outil.exe — type de fichier non pris en charge .exe" in report, report
    for english in ENGLISH:
        assert english not in report, english
    page_fr.wait_for_function("document.querySelector('#index-status').innerText.includes('passages')")
    assert "embedding model" not in page_fr.locator("#index-status").inner_text()
