"""The browser chat's API (gradio_client against the app launched in-process) and its helpers."""
from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from assistant.citations import highlight_html
from assistant.schema import Answer, Citation, ScoredChunk
from assistant.ui import (ChatApp, answer_message, clean_history, create_app, launch, md_escape, md_unescape,
                          parse_auth, prepare_index, safe_filename, sniff, sources_html, store_upload)

from .conftest import SEED_FILE, free_port

SEED = "seeds/000_aa041678daf2c786.txt"
XSS = '<script>window.__pwned=1</script> <img src=x onerror="window.__pwned=2">'


# --------------------------------------------------------------------------- API against the running app
def test_api_lists_documented_endpoints(client):
    info = client.view_api(return_format="dict", print_info=False)
    names = set(info["named_endpoints"])
    assert {"/ask", "/chat", "/upload", "/status"} <= names
    assert [p["parameter_name"] for p in info["named_endpoints"]["/chat"]["parameters"]] == ["message", "history", "k", "backend"]


def test_ask_example_question_cites_the_seed(client):
    out = client.predict("How much did Morocco allocate to startups?", api_name="/ask")
    assert out["abstained"] is False
    assert "1,3 milliard" in out["answer"]
    assert "[1]" in out["answer"]
    assert out["citations"] and out["citations"][0]["source"] == SEED
    assert "1,3 milliard" in out["citations"][0]["quote"]
    assert out["citations"][0]["location"]["paragraph"] >= 1


def test_ask_in_french(client):
    out = client.predict("Quel montant le Maroc a-t-il mobilisé pour les startups ?", None, 3, "extractive", api_name="/ask")
    assert not out["abstained"] and "1,3 milliard" in out["answer"]
    assert out["citations"][0]["source"] == SEED
    assert len(out["retrieved"]) <= 3  # k is honoured


def test_ask_unanswerable_abstains(client):
    out = client.predict("What is the capital of France?", api_name="/ask")
    assert out["abstained"] is True
    assert out["citations"] == []


def test_ask_bad_question_is_a_clear_error(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="empty"):
        client.predict("   ", api_name="/ask")
    with pytest.raises(AppError, match="history"):
        client.predict("How much?", "not a list", api_name="/ask")


def test_chat_streams_answer_with_sources_and_uses_history(client):
    job = client.submit("How much did Morocco allocate to startups?", [], 5, "extractive", api_name="/chat")
    outputs = list(job)
    assert len(outputs) >= 3  # user message, growing answer, final answer with sources
    history, sources = job.result()
    assert [m["role"] for m in history] == ["user", "assistant"]
    text = history[-1]["content"][0]["text"]
    assert "1,3 milliard" in text and "\\[1\\]" in text  # markdown-escaped answer text
    assert "<details" in text and "000_aa041678daf2c786.txt" in text
    assert "<mark>" in sources and SEED in sources and "1,3 milliard" in sources
    # partial answers stream in before the final one
    partial = [o[0][-1]["content"][0]["text"] for o in outputs if o[0] and o[0][-1]["role"] == "assistant"]
    assert any("<details" not in p for p in partial)
    assert all(isinstance(o[1], str) for o in outputs)  # plain strings for API clients, not Gradio updates

    # a follow-up: "that money" only makes sense with the history the chatbot sends back
    history2, sources2 = client.predict("What is that money for?", history, 5, "extractive", api_name="/chat")
    assert len(history2) == 4
    follow = history2[-1]["content"][0]["text"]
    assert "qa-abstain" not in follow and "startups" in follow
    assert SEED in sources2


def test_chat_abstention_is_shown_as_such(client):
    history, sources = client.predict("What is the capital of France?", [], api_name="/chat")
    text = history[-1]["content"][0]["text"]
    assert text.startswith('<div class="qa-abstain">') and "Not found in the documents" in text
    assert "<details" not in text
    assert "qa-abstain-panel" in sources


def test_status_endpoint(client):
    st = client.predict(api_name="/status")
    assert st["documents"] >= 1 and st["chunks"] > 0
    assert st["embedding_model"]
    assert st["backends"][0] == "extractive"


def test_upload_makes_content_answerable_and_reports_bad_files(client, ui_server, tmp_path):
    from gradio_client import handle_file

    from .helpers import make_pdf

    good = tmp_path / "club.txt"
    good.write_text("Le club de voile de Brest organise des régates chaque été.\n\n"
                    "Le trésorier du club de voile de Brest s'appelle Yannick Le Goff.\n", encoding="utf-8")
    corrupt = tmp_path / "rapport.pdf"
    corrupt.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage without xref\n%%EOF\n")
    fake = tmp_path / "image.pdf"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    real_pdf = make_pdf(tmp_path / "phare.pdf", ["Introduction.", "Le phare de Kerbrat a été construit par l'ingénieur Paul Le Meur."])

    report_html, status_html, result = client.predict(
        [handle_file(str(good)), handle_file(str(corrupt)), handle_file(str(fake)), handle_file(str(real_pdf))],
        api_name="/upload")
    indexed = {f["file"]: f for f in result["indexed"]}
    failed = {f["file"]: f["error"] for f in result["failed"]}
    assert set(indexed) == {"club.txt", "phare.pdf"}
    assert set(failed) == {"rapport.pdf", "image.pdf"}
    assert "pdf" in failed["rapport.pdf"].lower()
    assert "not a PDF" in failed["image.pdf"]
    assert "✗" in report_html and "rapport.pdf" in report_html and "club.txt" in report_html
    assert "documents" in status_html
    # stored in the uploads folder; files that could not be indexed are not kept
    assert sorted(p.name for p in ui_server.uploads.iterdir()) == ["club.txt", "phare.pdf"]

    out = client.predict("Qui est le trésorier du club de voile de Brest ?", api_name="/ask")
    assert not out["abstained"] and "Yannick Le Goff" in out["answer"]
    src = out["citations"][0]["source"]
    assert src.endswith("club.txt") and Path(src).resolve().parent == ui_server.uploads.resolve()

    out = client.predict("Qui a construit le phare de Kerbrat ?", api_name="/ask")
    assert not out["abstained"] and "Paul Le Meur" in out["answer"]
    assert out["citations"][0]["location"].get("page") == 2

    # the same file again: recognised, not duplicated
    _, _, again = client.predict([handle_file(str(good))], api_name="/upload")
    assert again["indexed"] == [{"file": "club.txt", "source": indexed["club.txt"]["source"], "status": "already indexed"}]
    assert len(list(ui_server.uploads.iterdir())) == 2


def test_upload_limits_and_hostile_names(client, ui_server, tmp_path):
    from gradio_client import handle_file

    files = []
    for i in range(6):  # the fixture allows 4 per upload
        p = tmp_path / f"note{i}.txt"
        p.write_text(f"Note numéro {i} : le code du casier {i} est {1000 + i}.", encoding="utf-8")
        files.append(p)
    _, _, result = client.predict([handle_file(str(p)) for p in files], api_name="/upload")
    assert [f["file"] for f in result["indexed"]] == [f"note{i}.txt" for i in range(4)]
    assert [f["file"] for f in result["failed"]] == ["note4.txt", "note5.txt"]
    assert all("at most 4 files" in f["error"] for f in result["failed"])

    big = tmp_path / "big.txt"
    big.write_text("grand fichier. " * 90_000, encoding="utf-8")  # ~1.3 MB > 1 MB limit
    hostile = tmp_path / "x<img src=y onerror=alert(1)>.md"
    hostile.write_text("# Titre\n\nLe mot de passe du wifi de la salle B est « marée-haute ».", encoding="utf-8")
    _, _, result = client.predict([handle_file(str(big)), handle_file(str(hostile))], api_name="/upload")
    assert "limit is 1 MB" in result["failed"][0]["error"]  # ours (Gradio itself refuses only above 3 MB)
    with pytest.raises(ValueError, match="maximum file size"):
        huge = tmp_path / "huge.txt"
        huge.write_bytes(b"a" * (3 * 1024 * 1024 + 10))
        client.predict([handle_file(str(huge))], api_name="/upload")
    (stored,) = [f["file"] for f in result["indexed"]]
    assert "<" not in stored and ">" not in stored and stored.endswith(".md")
    assert (ui_server.uploads / stored).is_file()


# --------------------------------------------------------------------------- start-up, auth
def test_prepare_index_is_incremental_and_lazy(ui_server, settings_factory, tmp_path):
    """With a built index, start-up does not load the model and builds nothing."""
    import shutil

    from assistant.embeddings import make_embedder
    from assistant.pipeline import Assistant

    index_dir = tmp_path / "index"
    shutil.copytree(ui_server.settings.index_dir, index_dir, ignore=shutil.ignore_patterns(".index.lock", "uploads"))
    settings = settings_factory(index_dir=str(index_dir), upload_dir=str(tmp_path / "uploads"))
    lazy = make_embedder(settings)
    app = ChatApp(settings, Assistant(settings, embedder=lazy))
    t0 = time.perf_counter()
    prepare_index(app)
    demo = create_app(settings, app.assistant)
    elapsed = time.perf_counter() - t0
    assert not lazy._ready, "start-up loaded the embedding model"
    assert app.assistant.has_index()
    print(f"start-up work with a built index: {elapsed:.2f}s")
    demo.close()


def test_prepare_index_builds_a_missing_index(settings_factory, embedder, tmp_path):
    from assistant.pipeline import Assistant

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("La bibliothèque de Quimper ouvre à neuf heures le samedi.", encoding="utf-8")
    settings = settings_factory(index_dir=str(tmp_path / "index"), docs_dir=str(docs))
    app = ChatApp(settings, Assistant(settings, embedder=embedder))
    assert not app.assistant.has_index()
    prepare_index(app)
    assert app.status()["documents"] == 1


class _StubAssistant:
    """Enough of Assistant for the UI plumbing (no model, no store)."""

    def __init__(self):
        self.embedder = SimpleNamespace(model_id="stub")
        self.indexed: list = []

    def backends(self):
        return ["extractive", "llm:stub"]

    def status(self):
        return {"embedding_model": "stub", "store": "none", "documents": 0, "chunks": 0}

    def index(self, paths, progress=None, show_progress=False):
        self.indexed.extend(paths)
        return SimpleNamespace(failed=[], to_json=lambda: {"files": {"added": len(paths), "failed": []}, "chunks": {}})


@pytest.mark.parametrize("error, title", [
    ("store", "The document index is unavailable"),
    ("missing", "No documents indexed yet"),
    ("question", "Cannot ask this question"),
    ("bug", "Something went wrong"),
])
def test_chat_errors_are_one_clear_message(settings_factory, tmp_path, error, title):
    from assistant.pipeline import IndexMissingError, QuestionError
    from assistant.store import StoreError

    exc = {"store": StoreError("cannot open the vector store: disk <full>"), "missing": IndexMissingError("no index yet"),
           "question": QuestionError("the question is 2001 characters long"), "bug": KeyError("boom")}[error]

    class Failing(_StubAssistant):
        def require_index(self):
            if error in ("store", "missing"):
                raise exc

        def stream(self, *a, **kw):
            raise exc
            yield  # pragma: no cover

    app = ChatApp(settings_factory(index_dir=str(tmp_path / "index")), Failing())
    steps = list(app.respond("Une question ?", []))
    history, panel = steps[-1]
    text = history[-1]["content"]
    assert history[0] == {"role": "user", "content": "Une question ?"}
    assert text.startswith('<div class="qa-error">') and title in text
    assert "Traceback" not in text and "<full>" not in text
    assert "qa-muted" in panel
    assert clean_history(history) == [{"role": "user", "content": "Une question ?"}]


def test_auth_is_required_when_configured(settings_factory, tmp_path):
    from gradio_client import Client

    settings = settings_factory(index_dir=str(tmp_path / "index"), auth="alice:s3cret pass")
    demo = create_app(settings, _StubAssistant())
    _, url, _ = launch(demo, settings, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        with pytest.raises(Exception):
            Client(url, verbose=False, analytics_enabled=False)
        c = Client(url, auth=("alice", "s3cret pass"), verbose=False, analytics_enabled=False)
        assert c.predict(api_name="/status")["backends"] == ["extractive", "llm:stub"]
        c.close()
    finally:
        demo.close()


def test_parse_auth():
    assert parse_auth("") is None
    assert parse_auth("u:p:with:colons") == ("u", "p:with:colons")
    for bad in ("nopassword", ":p", "u:"):
        with pytest.raises(ValueError, match="user:password"):
            parse_auth(bad)


def test_backend_choice_and_queue_are_configured(settings_factory, tmp_path):
    settings = settings_factory(index_dir=str(tmp_path / "index"), concurrency=3, answerer="llm")
    demo = create_app(settings, _StubAssistant())
    assert demo.chat_app.default_backend() == "llm:stub"
    assert demo._queue.default_concurrency_limit == 3 and demo._queue.max_size
    dropdown = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "backend")
    assert dropdown.visible and [c[1] for c in dropdown.choices] == ["extractive", "llm:stub"]


# --------------------------------------------------------------------------- uploads: names, content, limits
@pytest.mark.parametrize("raw, expected", [
    ("../../etc/passwd.txt", "passwd.txt"),
    ("/abs/path/notes.MD", "notes.md"),
    ("C:\\Users\\x\\rapport final.pdf", "rapport final.pdf"),
    ("a\x00b.txt", "ab.txt"),
    ("..", "upload"),
    (".bashrc", "bashrc"),
    ("<script>alert(1)</script>.html", "script_.html"),
    ('<img src=x onerror="alert(1)">.html', "img src_x onerror_alert(1)_.html"),
    ("été à Brest.docx", "été à Brest.docx"),
])
def test_safe_filename(raw, expected):
    assert safe_filename(raw) == expected


def test_store_upload_stays_inside_and_dedupes(tmp_path):
    uploads = tmp_path / "uploads"
    a = tmp_path / "a.txt"
    a.write_text("one", encoding="utf-8")
    b = tmp_path / "b.txt"
    b.write_text("two", encoding="utf-8")
    p1, created1 = store_upload(a, safe_filename("../../a.txt"), uploads)
    p2, created2 = store_upload(a, "a.txt", uploads)
    p3, created3 = store_upload(b, "a.txt", uploads)
    assert (p1, created1) == (uploads.resolve() / "a.txt", True)
    assert (p2, created2) == (p1, False)
    assert (p3.name, created3) == ("a-2.txt", True)
    assert sorted(p.name for p in uploads.iterdir()) == ["a-2.txt", "a.txt"]
    assert not (tmp_path / "a.txt").read_text() != "one"


def test_sniff_checks_content_not_extension(tmp_path):
    from .helpers import make_docx

    def f(name, data):
        p = tmp_path / name
        p.write_bytes(data)
        return p

    assert sniff(f("ok.pdf", b"  %PDF-1.7\n..."), "pdf") is None
    assert "not a PDF" in sniff(f("no.pdf", b"<html>hi</html>"), "pdf")
    assert sniff(make_docx(tmp_path / "ok.docx", [("Normal", "Bonjour")]), "docx") is None
    assert "not a valid zip" in sniff(f("no.docx", b"plain text"), "docx")
    import zipfile

    with zipfile.ZipFile(tmp_path / "other.docx", "w") as zf:
        zf.writestr("content.xml", "<x/>")
    assert "word/document.xml" in sniff(tmp_path / "other.docx", "docx")
    assert "binary" in sniff(f("pdf.txt", b"%PDF-1.4 binary"), "txt")
    assert "binary" in sniff(f("nul.md", b"abc\x00def"), "md")
    assert sniff(f("utf16.txt", "é".encode("utf-16")), "txt") is None
    assert sniff(f("empty.txt", b"  \n"), "txt") == "empty file"


def test_add_files_checks_everything_before_indexing(settings_factory, tmp_path):
    settings = settings_factory(index_dir=str(tmp_path / "index"), upload_dir=str(tmp_path / "up"),
                                upload_max_files=3, upload_max_mb=0.001)
    stub = _StubAssistant()
    app = ChatApp(settings, stub)
    ok = tmp_path / "ok.txt"
    ok.write_text("petit", encoding="utf-8")
    big = tmp_path / "big.txt"
    big.write_text("x" * 5000, encoding="utf-8")
    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ\x90\x00")
    extra = tmp_path / "extra.txt"
    extra.write_text("trop", encoding="utf-8")
    res = app.add_files([str(ok), str(big), {"path": str(exe), "orig_name": "../tool.exe"}, str(extra)])
    assert [f["file"] for f in res.indexed] == ["ok.txt"]
    errors = {f["file"]: f["error"] for f in res.failed}
    assert "limit is 0.001 MB" in errors["big.txt"]
    assert "unsupported file type .exe" in errors["tool.exe"]
    assert "at most 3 files" in errors["extra.txt"]
    assert [p.name for p in stub.indexed] == ["ok.txt"]
    assert app.add_files([]).to_json() == {"indexed": [], "failed": [], "report": None}


# --------------------------------------------------------------------------- rendering is escaped
def _answer(quote: str, passage: str, source: str = "docs/<b>evil.txt", abstained: bool = False) -> Answer:
    cit = Citation(n=1, source=source, location={"paragraph": 2, "section": "<i>S</i>"}, quote=quote, chunk_id="c1",
                   passage=passage, quote_start=passage.find(quote))
    return Answer(question="q", answer=f"{quote} [1]", abstained=abstained, citations=[] if abstained else [cit],
                  retrieved=[ScoredChunk("c1", source, passage, 1.0)], note="note <u>x</u>")


def test_answer_message_and_sources_escape_document_text():
    quote = f"Le gardien {XSS} s'appelle **Gwen** [lien](javascript:x) `code` $$x$$."
    ans = _answer(quote, "Avant.\n\n" + quote + "\n\nAprès <b>gras</b>.")
    msg = answer_message(ans)
    panel = sources_html(ans)
    for html_out in (msg, panel):
        assert "<script" not in html_out and "<img" not in html_out and "<b>" not in html_out and "<i>" not in html_out
        assert "&lt;script&gt;" in html_out
    assert "<mark>" in panel and highlight_html(ans.citations[0]) in panel
    answer_part = msg.split("\n\n", 1)[0]
    assert "\\*\\*Gwen\\*\\*" in answer_part and "\\[lien\\]" in answer_part and "\\`code\\`" in answer_part
    assert "\n\n" not in msg.split("\n\n", 1)[1]  # the HTML block has no blank line (markdown would resume inside it)
    assert "note &lt;u&gt;x&lt;/u&gt;" in msg
    assert md_unescape(answer_part) == ans.answer


def test_abstention_renders_differently():
    ans = _answer("x", "x", abstained=True)
    ans.answer = "The documents do not contain the answer <script>."
    msg = answer_message(ans)
    assert msg.startswith('<div class="qa-abstain">') and "&lt;script&gt;" in msg and "<script" not in msg
    panel = sources_html(ans)
    assert "qa-abstain-panel" in panel and "&lt;b&gt;evil.txt" in panel


def test_md_escape_round_trip_and_clean_history():
    for text in ["1,3 milliard [1].", "a\\b *c* _d_ <e> & \"f\" 'g' #h |i| ~j~ $k$", "C:\\path\\to"]:
        assert md_unescape(md_escape(text)) == text
    ans = _answer("Le Maroc a mobilisé 1,3 milliard.", "Le Maroc a mobilisé 1,3 milliard.")
    history = [
        {"role": "user", "content": md_escape("How much <b>money</b>?")},
        {"role": "assistant", "content": [{"type": "text", "text": answer_message(ans)}]},
        {"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]},
        {"role": "assistant", "content": answer_message(_answer("x", "x", abstained=True))},
        {"role": "assistant", "content": [{"type": "file", "file": {"path": "/x"}}]},
    ]
    assert clean_history(history) == [
        {"role": "user", "content": "How much <b>money</b>?"},
        {"role": "assistant", "content": "Le Maroc a mobilisé 1,3 milliard. [1]"},
        {"role": "user", "content": "Capital of France?"},
    ]


def test_app_module_and_requirements_are_consistent():
    root = SEED_FILE.parent.parent
    assert "serve(" in (root / "app.py").read_text(encoding="utf-8")
    req = (root / "requirements.txt").read_text(encoding="utf-8")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in req
    assert "torch==2.13.0" in req
    names = {line.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip().lower()
             for line in req.splitlines() if line.strip() and not line.startswith(("#", "-"))}
    assert "gradio" not in names  # Spaces install gradio at sdk_version
    import tomllib

    deps = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    wanted = {d.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip().lower() for d in deps} - {"gradio"}
    assert wanted <= names, wanted - names
    assert os.path.exists(root / "docs" / "ui.md")
