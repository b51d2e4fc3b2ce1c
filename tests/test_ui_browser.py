"""The browser chat in a real browser: Debian's Chromium driven by Playwright (never `playwright install`)."""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("ASSISTANT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
ANSWER_TIMEOUT = 120_000  # ms; the first question may wait for the model on a busy machine
SEED_NAME = "000_aa041678daf2c786.txt"
PAYLOAD = '<script>window.__pwned=1</script> <img src=x onerror="window.__pwned=2">'


@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium chromium-driver)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def open_page(chromium, url: str, locale: str | None = None, dialogs: bool = False):
    """A page of the app in a new browser context (``locale``: the browser's language), loaded until it has asked
    for the index status; with ``dialogs``, alerts are dismissed and their messages kept in ``page.dialogs``."""
    context = chromium.new_context(viewport={"width": 1360, "height": 900}, **({"locale": locale} if locale else {}))
    try:
        pg = context.new_page()
        if dialogs:
            pg.dialogs = []
            pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
        pg.set_default_timeout(30_000)
        pg.goto(url, wait_until="networkidle")
        pg.wait_for_selector("#index-status .qa-status b")  # the page loaded and asked for the index status
        yield pg
    finally:
        context.close()


def export_markdown(page, panel: str) -> str:
    """Open the export panel (its label in the page's language), export the conversation, return the Markdown."""
    page.get_by_text(panel, exact=True).click()
    page.locator("#export").click()
    link = page.locator("#export-file a").first
    link.wait_for(timeout=ANSWER_TIMEOUT)
    with page.expect_download() as dl:
        link.click()
    return Path(dl.value.path()).read_text(encoding="utf-8")


@pytest.fixture()
def page(chromium, ui_server):
    with open_page(chromium, ui_server.url, dialogs=True) as pg:
        yield pg


def ask(page, question: str) -> None:
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")
    # the box empties at once and the question shows in the chat
    page.wait_for_function("document.querySelector('#question textarea').value === ''")
    page.get_by_text(question, exact=True).last.wait_for()


def wait_for_sources(page, text: str) -> None:
    page.wait_for_function(
        "t => { const s = document.querySelector('#sources'); return s && (s.querySelector('.qa-source') || "
        "s.querySelector('.qa-abstain-panel')) && s.innerText.includes(t); }", arg=text, timeout=ANSWER_TIMEOUT)


def test_chat_answers_with_visible_sources(page, artifacts):
    assert re.search(r"\d+ documents? · \d+ chunks? · embedding model", page.locator("#index-status").inner_text())
    ask(page, "How much did Morocco allocate to startups?")
    wait_for_sources(page, SEED_NAME)
    chat = page.locator("#chatbot")
    assert "1,3 milliard" in chat.inner_text()
    assert re.search(r"\[1\]", chat.inner_text())
    source = page.locator("#sources .qa-source").first
    assert source.is_visible()
    assert SEED_NAME in source.locator(".qa-file").inner_text()
    assert "paragraph" in source.locator(".qa-loc").inner_text()
    mark = source.locator("mark")
    assert mark.is_visible() and "1,3 milliard" in mark.inner_text()
    page.screenshot(path=str(artifacts / "chat.png"), full_page=True)
    # the collapsible sources block under the answer opens on click
    details = chat.locator("details.qa-details").last
    assert not details.locator("mark").is_visible()
    details.locator("summary").click()
    assert details.locator("mark").is_visible() and SEED_NAME in details.inner_text()


def test_example_click_follow_up_and_abstention(page, artifacts):
    page.get_by_text("Quel montant le Maroc a-t-il mobilisé pour les startups ?").first.click()
    wait_for_sources(page, SEED_NAME)
    assert "1,3 milliard" in page.locator("#chatbot").inner_text()

    ask(page, "What is that money for?")  # a follow-up: needs the history
    page.wait_for_function("document.querySelectorAll('#chatbot details.qa-details').length >= 2", timeout=ANSWER_TIMEOUT)

    ask(page, "What is the capital of France?")
    page.wait_for_selector("#chatbot .qa-abstain", timeout=ANSWER_TIMEOUT)
    wait_for_sources(page, "No answer found")
    box = page.locator("#chatbot .qa-abstain").last
    assert box.is_visible() and "Not found in the documents" in box.inner_text()
    assert page.locator("#sources .qa-source").count() == 0
    # visibly different from an answer: a coloured box, not plain text
    assert box.evaluate("e => getComputedStyle(e).borderLeftStyle") == "solid"
    page.screenshot(path=str(artifacts / "abstention.png"), full_page=True)


def test_uploaded_document_is_searchable_and_rendered_as_text(page, ui_server, artifacts, tmp_path):
    doc = tmp_path / "phare.txt"
    doc.write_text("Rapport interne sur les phares.\n\n"
                   f"Le gardien du phare de Kerbrat {PAYLOAD} s'appelle Gwenaël Morvan depuis 2011.\n\n"
                   "Le **phare** a [un lien](javascript:window.__pwned=3) et du `code`.\n", encoding="utf-8")
    broken = tmp_path / "scan.pdf"
    broken.write_bytes(b"%PDF-1.4\ncorrupted beyond repair\n")
    page.get_by_text("Add documents").click()
    page.locator("#upload-files input[type=file]").set_input_files([str(doc), str(broken)])
    page.wait_for_selector("#upload-report .qa-upload", timeout=ANSWER_TIMEOUT)
    report = page.locator("#upload-report").inner_text()
    assert re.search(r"✓\s*phare\.txt", report)
    assert re.search(r"✗\s*scan\.pdf\s*—\s*\S", report)  # a clear reason after the name
    page.wait_for_function("document.querySelector('#index-status').innerText.match(/\\d+ documents? /)")

    ask(page, "Comment s'appelle le gardien du phare de Kerbrat ?")
    wait_for_sources(page, "phare.txt")
    chat_text = page.locator("#chatbot").inner_text()
    sources_text = page.locator("#sources").inner_text()
    assert "Gwenaël Morvan" in chat_text
    # the markup is shown literally, in the answer and in the passage
    for shown in (chat_text, sources_text):
        assert "<script>window.__pwned=1</script>" in shown
        assert '<img src=x onerror="window.__pwned=2">' in shown
    assert "**phare**" in sources_text and "[un lien](javascript:window.__pwned=3)" in sources_text
    # ... and nothing ran or was injected
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.dialogs == []
    for area in ("#chatbot", "#sources", "#upload-report"):
        assert page.locator(f"{area} script, {area} img[src='x'], {area} [onerror], {area} a[href^='javascript']").count() == 0
    page.locator("#chatbot details.qa-details").last.locator("summary").click()
    assert page.locator("#chatbot script, #chatbot [onerror]").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    page.screenshot(path=str(artifacts / "untrusted-document.png"), full_page=True)
