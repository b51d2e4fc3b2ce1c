"""Screenshots of the browser chat for docs/ui.md: an answer with its sources, and the document library.

    python scripts/ui_screenshots.py [--out docs] [--chromium /usr/bin/chromium]

Serves the app (the default answerer) over a small non-demo corpus in a temporary folder: the French FAQ corpus of the
tests (tests/conftest.py: three FAQ pages, a two-page PDF, a corrupt PDF) plus a French page on the Kerbrat lighthouse
and an English page on a media library. It asks a question in English that the French page answers, checks that the
answer is a real one with a short answer (not an abstention), opens the cited passage in its document, and saves
``ui-chat.png`` and ``ui-library.png``. Uses Debian's Chromium through Playwright (never ``playwright install``).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

QUESTIONS = ["When was the Kerbrat lighthouse automated?"]  # the answer: **1994**, from the French page
EXTRA_DOCS = {
    "phare-kerbrat.md": "# Le phare de Kerbrat\n\nLe phare de Kerbrat se dresse sur la pointe nord de l'île de Groix. "
                        "Il a été construit par l'ingénieur Paul Le Meur et allumé pour la première fois le 15 mars "
                        "1881.\n\nSa tour de granit mesure 42 mètres de haut et sa lumière porte à 30 milles nautiques. "
                        "Le phare a été automatisé en 1994 ; il se visite l'été, de juin à septembre.\n",
    "lorient-library.md": "# Lorient media library: borrowing rules\n\nEvery member of the Lorient media library may "
                          "borrow up to 12 books at a time, for four weeks. DVDs are lent for one week, at most three "
                          "at a time.\n\nMembership costs 15 euros a year for adults and is free for readers under 18.\n",
}

# the bold short answer that leads the last answer (not the <strong> marks inside its collapsed sources)
SHORT_JS = """() => {
  const d = [...document.querySelectorAll('#chatbot details.qa-details')].pop();
  let msg = d && d.parentElement;
  while (msg && !msg.querySelector(':scope > p strong, :scope > * > p strong') && msg.id !== 'chatbot') msg = msg.parentElement;
  const s = msg && [...msg.querySelectorAll('p strong')].find(e => !e.closest('details'));
  return s ? s.innerText : '';
}"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs"))
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    os.environ.pop("ASSISTANT_READER", None)  # the default answerer, as a new user gets it
    from playwright.sync_api import sync_playwright

    from assistant.config import Settings
    from assistant.pipeline import Assistant
    from assistant.ui import ChatApp, create_app, launch, prepare_index
    from tests.conftest import free_port, write_faq_corpus

    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        docs = write_faq_corpus(root / "faq")
        for name, text in EXTRA_DOCS.items():
            (docs / name).write_text(text, encoding="utf-8")
        settings = Settings.from_env(env={}, index_dir=str(root / "index"), docs_dir=str(docs),
                                     upload_dir=str(root / "uploads"))
        assistant = Assistant(settings)
        prepare_index(ChatApp(settings, assistant))
        demo = create_app(settings, assistant)
        _, url, _ = launch(demo, settings, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=args.chromium, headless=True,
                                             args=["--no-sandbox", "--headless", "--disable-gpu",
                                                   "--disable-background-networking"])
                page = browser.new_page(viewport={"width": 1360, "height": 900})
                page.set_default_timeout(120_000)
                page.goto(url, wait_until="networkidle")
                page.wait_for_selector("#index-status .qa-status b")
                for i, q in enumerate(QUESTIONS, start=1):
                    box = page.locator("#question textarea")
                    box.fill(q)
                    box.press("Enter")
                    page.wait_for_function(
                        "n => document.querySelectorAll('#chatbot details.qa-details, #chatbot .qa-abstain').length >= n",
                        arg=i)
                short = page.evaluate(SHORT_JS)
                if page.locator("#chatbot .qa-abstain").count() or not short:
                    raise SystemExit("no short answer to show: " + page.locator("#chatbot").inner_text()[-400:])
                print(f"short answer shown: {short!r}")
                page.locator("#sources .qa-open").first.click()
                page.locator("#doc-viewer mark.qa-target").wait_for()
                page.wait_for_timeout(600)
                page.evaluate("window.scrollTo(0, 0)")
                page.screenshot(path=str(out / "ui-chat.png"), full_page=True)
                page.get_by_text("Document", exact=True).click()  # fold the viewer
                page.get_by_text("Documents", exact=True).click()
                page.locator("#library table").wait_for()
                page.wait_for_timeout(400)
                page.locator("#library-panel").screenshot(path=str(out / "ui-library.png"))
                browser.close()
        finally:
            demo.close()
    print(f"wrote {out / 'ui-chat.png'} and {out / 'ui-library.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
