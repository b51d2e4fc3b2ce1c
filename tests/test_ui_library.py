"""Document library, feedback, examples and export: the API (gradio_client) over a non-demo corpus, real model and Chroma."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import FAQ_QUESTIONS, SEEDS


@pytest.fixture(scope="module")
def faq_client(faq_server):
    from gradio_client import Client

    c = Client(faq_server.url, verbose=False, analytics_enabled=False)
    try:
        yield c
    finally:
        c.close()


def _docs(client) -> dict[str, dict]:
    return {d["name"]: d for d in client.predict(api_name="/documents")["documents"]}


def test_endpoints_are_listed(faq_client):
    names = set(faq_client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/ask", "/chat", "/upload", "/status", "/documents", "/remove_document", "/reindex_document", "/document",
            "/feedback", "/export"} <= names


def test_documents_lists_every_file_with_its_details(faq_client, faq_server):
    docs = _docs(faq_client)
    assert set(docs) == {"mutuelle.md", "mediatheque.md", "piscine.md", "phare.pdf", "scan.pdf"}
    for name in ("mutuelle.md", "mediatheque.md", "piscine.md", "phare.pdf"):
        d = docs[name]
        assert d["status"] == "indexed" and d["error"] is None and d["chunks"] >= 1
        assert d["size"] == (faq_server.docs / name).stat().st_size
        assert d["indexed_at"].endswith("Z") and d["kind"] == name.rsplit(".", 1)[1]
        assert d["uploaded"] is False
    assert docs["phare.pdf"]["pages"] == 2 and docs["mutuelle.md"]["pages"] is None
    failed = docs["scan.pdf"]
    assert failed["status"] == "failed" and failed["chunks"] == 0 and "pdf" in failed["error"].lower()
    st = faq_client.predict(api_name="/status")
    assert st["documents"] == 4 and st["chunks"] == sum(d["chunks"] for d in docs.values())


def test_document_opens_at_the_cited_passage(faq_client):
    out = faq_client.predict("Qui a construit le phare de Kerbrat ?", api_name="/ask")
    assert not out["abstained"] and "Paul Le Meur" in out["answer"]
    cit = out["citations"][0]
    view = faq_client.predict(cit["source"], cit["chunk_id"], api_name="/document")
    assert view["name"] == "phare.pdf" and view["kind"] == "pdf"
    p = view["passage"]
    assert p["page"] == 2 and [x["page"] for x in view["pages"]] == [1, 2]
    start = cit["location"]["char_start"]  # the citation's offset is an offset in the document's text
    assert view["text"][start:start + len(cit["quote"])] == cit["quote"]
    assert p["start"] <= start < p["end"]
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="no document"):
        faq_client.predict("/etc/passwd", "", api_name="/document")  # only indexed documents can be read


def _index_state(assistant):
    """(manifest rows, Chroma ids, BM25 snapshot ids, cached BM25 tokens) of an index."""
    manifest = assistant.indexer.manifest
    rows = {k: (r.file_hash, r.size, r.mtime, tuple(r.chunk_ids), r.status) for k, r in manifest.files().items()}
    lex = assistant.lexical.load()
    ids = set(assistant.store.all_ids())
    cached = set(manifest.lex_tokens(sorted(ids | {i for r in rows.values() for i in r[3]})))
    return rows, ids, set(lex[2]), cached


def test_remove_deletes_exactly_the_document_and_it_stays_removed(faq_client, faq_server):
    q = "Combien de livres puis-je emprunter à la médiathèque ?"
    before = faq_client.predict(q, api_name="/ask")
    assert not before["abstained"] and "douze livres" in before["answer"]
    rows, ids, bm25, cached = _index_state(faq_server.assistant)
    target = str((faq_server.docs / "mediatheque.md").resolve())
    gone = set(rows[target][3])

    out = faq_client.predict(_docs(faq_client)["mediatheque.md"]["id"], api_name="/remove_document")
    assert out["removed"]["name"] == "mediatheque.md"
    assert "mediatheque.md" not in {d["name"] for d in out["documents"]}
    rows2, ids2, bm25_2, _ = _index_state(faq_server.assistant)
    cached2 = set(faq_server.assistant.indexer.manifest.lex_tokens(sorted(gone)))
    assert rows2 == {k: v for k, v in rows.items() if k != target}  # the other rows unchanged
    assert gone and gone <= ids and gone <= bm25 and gone <= cached
    assert ids2 == ids - gone and bm25_2 == bm25 - gone and not cached2
    assert faq_server.assistant.indexer.manifest.get_meta("state") == "clean"
    assert (faq_server.docs / "mediatheque.md").exists()  # a file of the documents folder stays on disk

    after = faq_client.predict(q, api_name="/ask")
    assert after["abstained"] is True and after["citations"] == []
    assert all("mediatheque" not in r["source"] for r in after["retrieved"])
    # the app's start-up re-indexes the folder: the removed document does not come back
    from assistant.ui import prepare_index

    prepare_index(faq_server.app)
    assert "mediatheque.md" not in _docs(faq_client)
    assert faq_client.predict(q, api_name="/ask")["abstained"] is True


def test_reindex_one_document(faq_client, faq_server):
    doc = faq_server.docs / "piscine.md"
    out = faq_client.predict(_docs(faq_client)["piscine.md"]["id"], api_name="/reindex_document")
    assert out["report"]["files"]["unchanged"] == 1 and out["report"]["files"]["added"] == 0
    doc.write_text(doc.read_text(encoding="utf-8").replace("quatre euros cinquante", "cinq euros vingt"), encoding="utf-8")
    out = faq_client.predict(_docs(faq_client)["piscine.md"]["source"], api_name="/reindex_document")  # or by source
    assert out["report"]["files"]["updated"] == 1
    ans = faq_client.predict("Quel est le tarif d'une entrée adulte à la piscine de Vannes ?", api_name="/ask")
    assert not ans["abstained"] and "cinq euros vingt" in ans["answer"]
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="no document"):
        faq_client.predict("nope", api_name="/reindex_document")


def test_uploads_land_in_the_library_and_removal_deletes_the_copy(faq_client, faq_server, tmp_path):
    from gradio_client import handle_file

    f = tmp_path / "club.txt"
    f.write_text("Le trésorier du club de voile de Brest s'appelle Yannick Le Goff.\n", encoding="utf-8")
    faq_client.predict([handle_file(str(f))], api_name="/upload")
    d = _docs(faq_client)["club.txt"]
    assert d["uploaded"] is True and d["status"] == "indexed"
    faq_client.predict(d["id"], api_name="/remove_document")
    assert "club.txt" not in _docs(faq_client) and not (faq_server.uploads / "club.txt").exists()
    assert faq_client.predict("Qui est le trésorier du club de voile de Brest ?", api_name="/ask")["abstained"]
    # uploading it again brings it back
    faq_client.predict([handle_file(str(f))], api_name="/upload")
    assert _docs(faq_client)["club.txt"]["status"] == "indexed"
    assert not faq_client.predict("Qui est le trésorier du club de voile de Brest ?", api_name="/ask")["abstained"]


def test_feedback_is_stored_and_exported_as_eval_cases(faq_client, faq_server, tmp_path):
    from assistant.evaluation import load_cases
    from assistant.feedback import FeedbackStore

    good = faq_client.predict("Faut-il porter un bonnet de bain ?", api_name="/ask")
    assert not good["abstained"]
    up = faq_client.predict("Faut-il porter un bonnet de bain ?", good, "up", api_name="/feedback")
    wrong = faq_client.predict("Comment résilier mon contrat ?", api_name="/ask")
    down = faq_client.predict("Comment résilier mon contrat ?", wrong, "down", "une lettre recommandée", api_name="/feedback")
    none = faq_client.predict("What is the capital of France?", api_name="/ask")
    faq_client.predict("What is the capital of France?", none, "up", api_name="/feedback")
    faq_client.predict("Quand ouvre la piscine ?", {"answer": "x", "abstained": True}, "down", api_name="/feedback")
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="rating"):
        faq_client.predict("q", good, "meh", api_name="/feedback")

    path = Path(faq_server.settings.index_dir) / "feedback.jsonl"
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert [x["rating"] for x in lines] == ["up", "down", "up", "down"]
    assert lines[0]["citations"][0]["quote"] == good["citations"][0]["quote"] and up["id"] == lines[0]["id"]
    assert lines[1]["correction"] == "une lettre recommandée" and down["id"] == lines[1]["id"]

    from assistant.cli import main

    out = tmp_path / "cases.jsonl"
    assert main(["feedback", "--index-dir", faq_server.settings.index_dir, "--export", str(out)]) == 0
    cases = {c.id: c for c in load_cases(out)}  # what `assistant eval --cases` reads
    assert len(cases) == 3
    c_up = cases[f"feedback-{up['id']}"]
    assert c_up.answerable and c_up.evidence == [good["citations"][0]["quote"]]
    c_down = cases[f"feedback-{down['id']}"]
    assert c_down.answerable and c_down.facts == [["une lettre recommandée"]]
    assert sum(not c.answerable for c in cases.values()) == 1  # the 👍 on an abstention
    review = [json.loads(x) for x in out.with_name("cases.review.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(review) == 1 and review[0]["review"] is True and review[0]["question"] == "Quand ouvre la piscine ?"
    assert len(FeedbackStore(path).all()) == 4


def test_feedback_cli_lists_and_eval_reads_the_export(faq_server, tmp_path, capsys):
    from assistant.cli import main

    assert main(["feedback", "--index-dir", faq_server.settings.index_dir]) == 0
    listing = capsys.readouterr().out
    assert "👍" in listing and "👎" in listing and "correction: une lettre recommandée" in listing
    cases = tmp_path / "fb.jsonl"
    assert main(["feedback", "--index-dir", faq_server.settings.index_dir, "--export", str(cases)]) == 0
    capsys.readouterr()
    run = tmp_path / "run"
    code = main(["eval", "--cases", str(cases), "--index-dir", faq_server.settings.index_dir, "--out", str(run),
                 "--no-progress"])
    assert code == 0
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    assert report["summary"]["n_cases"] == 3 and report["summary"]["abstention_accuracy"] == 1.0
    by_id = {c["id"]: c for c in report["cases"]}
    liked = next(c for c in by_id.values() if c["question"] == "Faut-il porter un bonnet de bain ?")
    assert liked["metrics"]["passed"]  # the answer the user approved is still what the assistant says
    assert any(c["question"] == "Comment résilier mon contrat ?" for c in by_id.values())  # the corrected one is scored


def test_chat_like_records_feedback_on_the_answer(faq_server):
    app = faq_server.app
    steps = list(app.respond("Quel est le délai de remboursement des soins ?", [], 5, "extractive"))
    history, _ = steps[-1]
    fb = app.rate(history, 1, True)
    assert fb["rating"] == "up" and fb["question"] == "Quel est le délai de remboursement des soins ?"
    assert fb["citations"][0]["source"].endswith("mutuelle.md") and fb["citations"][0]["quote"]
    fb2 = app.rate(history, [1, None], False)
    assert fb2["rating"] == "down"
    app.feedback.correct(fb2["id"], "sous cinq jours ouvrés")
    assert app.feedback.all()[-1].correction == "sous cinq jours ouvrés"
    from assistant.feedback import FeedbackError

    with pytest.raises(FeedbackError):
        app.rate(history, 0, True)  # a question is not an answer


def test_export_conversation_markdown_has_numbered_sources(faq_client, faq_server):
    history, _ = faq_client.predict("Qui a construit le phare de Kerbrat ?", [], 5, "extractive", api_name="/chat")
    history, _ = faq_client.predict("What is the capital of France?", history, 5, "extractive", api_name="/chat")
    md = faq_client.predict(history, api_name="/export")
    assert md.startswith("# Document Q&A — conversation")
    assert "## 1. Qui a construit le phare de Kerbrat ?" in md and "## 2. What is the capital of France?" in md
    assert "Sources:" in md and "1. `" in md and "phare.pdf` — page 2" in md and "[1]" in md
    assert "Paul Le Meur" in md


def test_examples_come_from_the_corpus(faq_server, seeds_assistant):
    from assistant import examples

    faq = examples.load(faq_server.assistant)
    assert faq and set(faq) <= set(FAQ_QUESTIONS) | {"Quel est le délai de remboursement des soins ?",
                                                    "Quels sont les horaires d'ouverture le dimanche ?"}
    assert "Combien de livres puis-je emprunter ?" not in faq  # its document was removed
    checked = examples.verify(faq_server.assistant)
    assert checked and all(not faq_server.assistant.ask(q).abstained for q in checked)
    # the demo corpus keeps its curated questions (seeds/.examples), the ones the assistant answers
    seeds = examples.verify(seeds_assistant)
    assert "How much did Morocco allocate to startups?" in seeds
    assert "Quel montant le Maroc a-t-il mobilisé pour les startups ?" in seeds
    assert not set(seeds) & set(faq)
    assert (SEEDS / ".examples").exists()


def test_answer_rendering_short_answer_confidence_and_language():
    from assistant.schema import Answer, Citation
    from assistant.ui import answer_message, clean_history, sources_html

    quote = "Une entrée coûte <b>quatre euros</b>."
    c = Citation(n=1, source="docs/tarifs.md", location={"paragraph": 2, "char_start": 8}, quote=quote, chunk_id="c1",
                 passage="Tarifs. " + quote + " Fin.", quote_start=8)
    a = Answer(question="How much is a ticket?", answer=f"{quote} [1]", abstained=False, citations=[c], language="en")
    plain = answer_message(a)
    assert "qa-conf" not in plain and not plain.startswith("**")  # nothing from the reader yet: rendered as before
    assert "from the French source" in plain
    a.short_answer, a.confidence = "<b>quatre euros</b>", 0.83
    msg = answer_message(a)
    assert msg.startswith("**&lt;b&gt;quatre euros&lt;/b&gt;**\n\n")  # bold, escaped
    assert 'title="confidence 0.83"' in msg and "high confidence" in msg
    assert clean_history([{"role": "assistant", "content": msg}]) == [{"role": "assistant", "content": a.answer}]
    panel = sources_html(a)
    assert '<mark>Une entrée coûte <strong class="qa-short-mark">&lt;b&gt;quatre euros&lt;/b&gt;</strong>.</mark>' in panel
    assert "<b>" not in panel and 'data-chunk="c1"' in panel
    a.confidence = 0.2
    assert "low confidence" in answer_message(a)
    a.language = "fr"
    assert "from the French source" not in answer_message(a)


@pytest.mark.parametrize("fail_at", ["bm25", "delete"])
def test_removal_interrupted_is_repaired_by_the_next_run(tmp_path, settings_factory, embedder, monkeypatch, fail_at):
    """A removal killed after the manifest row went (before or after the new BM25 snapshot) leaves orphan chunks the
    next indexing run deletes; the document does not come back and the others are untouched."""
    from assistant.library import Library
    from assistant.pipeline import Assistant
    from assistant.retrieval import LexicalIndex
    from assistant.store import ChunkStore

    from .conftest import write_faq_corpus

    docs = write_faq_corpus(tmp_path / "faq")
    settings = settings_factory(index_dir=str(tmp_path / "index"), docs_dir=str(docs))
    a = Assistant(settings, embedder=embedder)
    a.index([docs], show_progress=False)
    lib = Library(a)
    target = next(d for d in lib.documents() if d.name == "piscine.md")
    rows, ids, _, _ = _index_state(a)
    gone = set(rows[str((docs / "piscine.md").resolve())][3])

    class Killed(BaseException):
        pass

    def boom(*_a, **_k):
        raise Killed()

    if fail_at == "bm25":
        monkeypatch.setattr(LexicalIndex, "build", boom)
    else:
        monkeypatch.setattr(ChunkStore, "delete", boom)
    with pytest.raises(Killed):
        lib.remove(target.id)
    monkeypatch.undo()
    assert a.indexer.manifest.get_meta("state") == "indexing"
    assert gone <= set(a.store.all_ids())  # orphans left behind

    fresh = Assistant(settings, embedder=embedder)  # "the next start"
    report = fresh.index([docs], show_progress=False)
    assert report.repaired == len(gone) and report.added == 0
    rows2, ids2, bm25_2, _ = _index_state(fresh)
    assert ids2 == ids - gone and bm25_2 == ids2
    assert rows2 == {k: v for k, v in rows.items() if k != str((docs / "piscine.md").resolve())}
    assert fresh.indexer.manifest.get_meta("state") == "clean"
    assert "piscine.md" not in {d.name for d in Library(fresh).documents()}
    assert fresh.ask("Faut-il porter un bonnet de bain à la piscine de Vannes ?").abstained


def test_document_text_rebuilt_from_overlapping_chunks_is_the_extracted_text(tmp_path, settings_factory, embedder):
    from assistant.library import Library
    from assistant.loaders import DocumentLoader
    from assistant.pipeline import Assistant

    doc = tmp_path / "docs" / "long.md"
    doc.parent.mkdir()
    paras = [f"## Partie {i}\n\n" + " ".join(f"La phrase {i}.{j} parle du port de Concarneau et de ses {j} bateaux."
                                            for j in range(12)) for i in range(6)]
    doc.write_text("# Rapport\n\n" + "\n\n".join(paras) + "\n", encoding="utf-8")
    a = Assistant(settings_factory(index_dir=str(tmp_path / "index"), chunk_tokens=60, chunk_overlap=20), embedder=embedder)
    a.index([doc.parent], show_progress=False)
    lib = Library(a)
    rec = next(iter(a.indexer.manifest.files().values()))
    assert len(rec.chunk_ids) > 6  # several chunks per section, overlapping
    expected = DocumentLoader().run(doc).text
    for cid, (text, meta) in a.store.get(rec.chunk_ids).items():
        view = lib.passage(lib.documents()[0].id, cid)
        assert view["text"] == expected
        assert view["text"][view["passage"]["start"]:view["passage"]["end"]] == text


def test_library_and_viewer_escape_document_content():
    from assistant.ui_panels import document_html, library_html

    evil = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    table = library_html([{"id": '"><script>', "name": evil + ".md", "source": evil, "kind": "md", "size": 5,
                           "pages": None, "chunks": 1, "indexed_at": None, "status": "failed", "error": evil}])
    view = document_html({"name": evil, "source": evil, "kind": "pdf", "text": f"Avant. {evil} Après.",
                          "pages": [{"page": 1, "start": 0}], "passage": {"start": 0, "end": 14 + len(evil), "page": 1}}, 7, len(evil))
    for out in (table, view):
        assert "<script" not in out and "<img" not in out and "&lt;script&gt;" in out
    assert '<mark class="qa-target">&lt;img' in view


def test_feedback_file_is_bounded(tmp_path, monkeypatch):
    from assistant import feedback

    store = feedback.FeedbackStore(tmp_path / "feedback.jsonl")
    store.add("up", "Une question ?", {"answer": "Une réponse [1].", "citations": [{"n": 1, "quote": "Une réponse."}]})
    monkeypatch.setattr(feedback, "MAX_FILE_BYTES", store.path.stat().st_size + 10)
    with pytest.raises(feedback.FeedbackError, match="is full"):
        store.add("down", "Une autre question ?", {"answer": "x" * 100})
    assert len(store.all()) == 1
