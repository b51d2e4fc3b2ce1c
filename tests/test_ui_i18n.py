"""The text the server renders, in English and in French: status line, locations, confidence, upload report (no browser)."""
from __future__ import annotations

from assistant.schema import Answer, Citation
from assistant.ui import UploadResult, answer_message, clean_history, location_text, sources_html, status_html
from assistant.ui_i18n import MESSAGES, language

STATUS = {"documents": 4, "chunks": 1, "embedding_model": "multilingual-e5-small-q4"}


def test_every_message_has_both_languages():
    assert set(MESSAGES["en"]) == set(MESSAGES["fr"])
    assert all(MESSAGES["fr"][k] for k in MESSAGES["fr"])


def test_status_line_in_both_languages():
    en = status_html(STATUS)
    assert "<b>4</b> documents" in en and "<b>1</b> chunk<" in en and "embedding model <code>" in en
    fr = status_html(STATUS, "fr")
    assert "<b>4</b> documents" in fr and "<b>1</b> passage<" in fr and "modèle d&#x27;embeddings <code>" in fr
    assert "embedding model" not in fr and "chunk" not in fr
    assert "Index indisponible : boom" in status_html({"error": "boom"}, "fr")
    assert "<script>" not in status_html({**STATUS, "embedding_model": "<script>"}, "fr")


def test_location_confidence_and_source_language_in_french():
    c = Citation(n=1, source="faq/phare.pdf", location={"page": 2, "section": "Le phare", "paragraph": 3},
                 quote="Le phare date de 1881.", chunk_id="c1", passage="Le phare date de 1881.", quote_start=0)
    a = Answer(question="When was the lighthouse built?", answer="**1881** [1] — « Le phare date de 1881. »",
               abstained=False, citations=[c], language="en", confidence=0.27, short_answer="1881")
    assert location_text(c.location) == "page 2, section “Le phare”, paragraph 3"
    with language("fr"):
        assert location_text(c.location) == "page 2, section « Le phare », paragraphe 3"
        msg, panel = answer_message(a), sources_html(a)
    assert 'title="confiance 0,27"' in msg and "confiance faible" in msg
    assert "d&#x27;après la source en français" in msg
    assert "paragraphe 3" in panel and "paragraph 3" not in panel and "français" in panel
    assert "confidence" not in msg and "French" not in msg + panel


def test_short_answer_the_answerer_already_leads_with_is_shown_once_in_bold():
    """The fitted reader writes "**span** [1] — « sentence »": the span in bold once, no literal asterisks."""
    c = Citation(n=1, source="piscine.md", location={"paragraph": 5}, quote="Une entrée coûte 4,50 euros.",
                 chunk_id="c1", passage="Une entrée coûte 4,50 euros.", quote_start=0)
    a = Answer(question="Combien coûte une entrée ?", answer="**4,50 euros** [1] — « Une entrée coûte 4,50 euros. »",
               abstained=False, citations=[c], language="fr", confidence=0.8, short_answer="4,50 euros")
    msg = answer_message(a)
    assert msg.startswith("**4,50 euros** \\[1\\]")
    text = msg.split("\n\n<div", 1)[0]  # the answer text, before the confidence and the sources block
    assert text.count("4,50 euros") == 2  # the bold span and the quoted sentence, not the span twice
    assert "\\*\\*" not in msg  # no escaped (literal) asterisks
    assert clean_history([{"role": "assistant", "content": msg}]) == [{"role": "assistant", "content": a.answer}]


def test_upload_report_in_french_keeps_the_api_json_in_english():
    r = UploadResult(indexed=[{"file": "a.md", "source": "uploads/a.md", "status": "indexed"}],
                     failed=[{"file": "b.exe", "error": "unsupported file type .exe; supported: .md, .txt",
                              "_msg": ("upload_type", {"ext": ".exe", "supported": ".md, .txt"})},
                             {"file": "c.pdf", "error": "cannot read pdf: broken"}])
    fr = r.to_html("fr")
    assert "1 fichier interrogeable dès maintenant, 2 non indexés" in fr
    assert "a.md</b> — indexé" in fr and "type de fichier non pris en charge .exe" in fr
    assert "cannot read pdf: broken" in fr  # a reader's own reason is shown as it is
    en = r.to_html()
    assert "1 file searchable now, 2 not indexed" in en and "unsupported file type .exe" in en
    assert r.to_json()["failed"][0] == {"file": "b.exe", "error": "unsupported file type .exe; supported: .md, .txt"}
    assert "Aucun fichier reçu." in UploadResult().to_html("fr")


def test_conversation_export_in_french_and_the_short_answer_once():
    from datetime import datetime, timezone

    from assistant.conversation import Turn, to_markdown

    c = Citation(n=1, source="faq/phare.md", location={"section": "Le phare", "paragraph": 3},
                 quote="Le phare a été automatisé en 1994.", chunk_id="c1")
    a = Answer(question="When was it automated?", answer="**1994** [1] — « Le phare a été automatisé en 1994. »",
               abstained=False, citations=[c], language="en", short_answer="1994")
    now = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)
    en = to_markdown([Turn("When was it automated?", a), Turn("And then?", None, "")], now=now)
    assert en.startswith("# Document Q&A — conversation\n\n_Exported 2026-12-03 09:00 UTC._")
    assert "**1994** [1] — « Le phare a été automatisé en 1994. »" in en and en.count("1994") == 3  # bold once
    assert "Sources:" in en and "section “Le phare”, paragraph 3" in en and "_(no answer)_" in en
    with language("fr"):
        fr = to_markdown([Turn("When was it automated?", a), Turn("Et ensuite ?", None, "")], title="Questions", now=now)
    assert fr.startswith("# Questions — conversation\n\n_Exporté le 2026-12-03 09:00 UTC._")
    assert "Sources :" in fr and "section « Le phare », paragraphe 3" in fr and "_(pas de réponse)_" in fr
