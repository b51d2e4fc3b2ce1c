"""Browser chat (Gradio 6): ask in English or French, read cited answers, add, list and remove documents, rate answers.

This module owns the page: :func:`create_app` (the Gradio Blocks layout, its events and API endpoints, thin
handlers over :class:`~assistant.ui_app.ChatApp`) and the server (:func:`launch`, :func:`serve`, :func:`prepare_index`,
theme, login, upload and file-route limits). ``python app.py`` / ``assistant serve`` call :func:`serve`; tests build
the app with :func:`create_app` and start it with :func:`launch`. The rest is in ``ui_app`` (state and logic, no
Gradio), ``ui_render`` (escaping, the HTML of answers, sources and status: the security model is described there),
``ui_uploads``, ``ui_panels`` (library, viewer) and ``ui_i18n`` (the page's words); assistant.ui re-exports them.

API (``gradio_client``), see docs/ui.md:

* ``/ask``    (question, history, k, backend) -> ``Answer.to_json()``
* ``/chat``   (message, history, k, backend) -> streams (history, sources HTML)
* ``/upload`` (files) -> (report HTML, status HTML, report JSON)
* ``/status`` () -> index status JSON
* ``/documents`` () -> the library; ``/remove_document``, ``/reindex_document`` (document id or source);
  ``/document`` (document, chunk_id) -> the document's text and the chunk's place in it (assistant.library)
* ``/feedback`` (question, answer JSON, "up"/"down", correction, history) -> stored feedback (assistant.feedback)
* ``/export`` (chat history) -> the conversation as Markdown (assistant.conversation)
"""
import html
import logging
from pathlib import Path

# no analytics calls: assistant/__init__ runs assistant.offline (GRADIO_ANALYTICS_ENABLED=False) before any
# submodule, so before gradio is imported here
from .config import Settings, server_address
from .ui_app import ANSWER_CACHE, ChatApp
from .ui_i18n import language, location_text, request_language, tr
from .ui_panels import OPEN_JS
from .ui_render import (CSS, LANGUAGE_NAMES, _content_text, answer_message, clean_history, confidence, error_message,
                        md_escape, md_unescape, short_answer, source_language, sources_html, status_html)
from .ui_uploads import UploadResult, _public_report, safe_filename, sniff, store_upload, upload_hard_limit

# the names the rest of the project imports from assistant.ui (they live in the modules above)
__all__ = ["ChatApp", "create_app", "launch", "serve", "prepare_index", "theme", "parse_auth", "upload_hard_limit",
           "blocked_paths", "TITLE", "QUEUE_MAX_SIZE", "SOURCES_PLACEHOLDER", "SOURCES_SEARCHING", "CSS", "ANSWER_CACHE",
           "LANGUAGE_NAMES", "md_escape", "md_unescape", "clean_history", "answer_message", "sources_html",
           "status_html", "error_message", "short_answer", "confidence", "source_language", "location_text",
           "UploadResult", "safe_filename", "sniff", "store_upload"]

log = logging.getLogger("assistant.ui")

TITLE = "Document Q&A"
QUEUE_MAX_SIZE = 64  # requests waiting beyond this get "queue full" instead of waiting forever
# example questions come from the indexed corpus (assistant/examples.py; seeds/.examples for the demo)
SOURCES_PLACEHOLDER = '<div class="qa-muted">The sources of the latest answer appear here: file, location and the passage with the cited sentence highlighted.</div>'
SOURCES_SEARCHING = '<div class="qa-muted">Searching the documents…</div>'


def create_app(settings: Settings | None = None, assistant=None):
    """The Gradio Blocks app (queue configured; not launched)."""
    import gradio as gr

    app = ChatApp(settings, assistant)
    settings = app.settings
    backends = app.backends()

    class ChatTrigger(gr.EventData):
        """What started a /chat: a submit (no event data) or a click on an example (``example_select``: {index, value}).
        Built by Gradio as ``ChatTrigger(target, data)``, like gr.SelectData, which needs the data a submit lacks."""

        def __init__(self, target, data):
            super().__init__(target, data)
            value = data.get("value") if isinstance(data, dict) else None
            self.example: dict | None = value if isinstance(value, dict) else None  # the clicked example, if any

    def respond(message: str, history: list, k: float, backend: str, evt: ChatTrigger, request: gr.Request):
        """Streaming chat: yields the chat history (OpenAI-style messages) and the sources HTML of the answer."""
        if not _content_text(message).strip() and evt.example is not None:
            message = evt.example.get("text") or ""  # a click on an example question
        for hist, sources in app.respond(message, history, k, backend, lang=request_language(request)):
            yield hist, (gr.skip() if sources is None else sources)

    def upload(files: list[str] | None, request: gr.Request, progress=gr.Progress()):
        """Index uploaded files; returns the per-file report (HTML), the index status (HTML) and the report (JSON)."""
        lang = request_language(request)

        def say(key: str, **values) -> str:
            with language(lang):
                return tr(key, **values)

        progress(0, desc=say("progress_checking"))

        def cb(stage: str, done: int, total: int) -> None:
            if stage == "files" and total:
                progress((done, total), desc=say("progress_files"), unit="files")
            elif stage == "chunks":
                progress(None if not done else (done, None), desc=say("progress_chunks", n=done), unit="chunks")
            elif stage == "sentences" and total:  # the new passages are searchable already (assistant.indexing)
                progress((done, total), desc=say("progress_sentences"), unit="passages")

        result = app.add_files(files, progress=cb)
        app.refresh_examples_soon()
        if result.failed:
            n = len(result.failed)
            gr.Warning(say("upload_warning_1") if n == 1 else say("upload_warning", n=n))
        return result.to_html(lang), status_html(app.status(), lang), result.to_json()

    def ask(question: str, history: list[dict] | None = None, k: int | None = None, backend: str | None = None) -> dict:
        """Answer a question from the indexed documents. Returns Answer.to_json(): answer (with [n] markers), abstained, citations [{n, source, location, quote, chunk_id}], retrieved, timings_ms."""
        from .pipeline import IndexMissingError, QuestionError
        from .store import StoreError

        if history is not None and not (isinstance(history, list) and all(isinstance(t, dict) and "role" in t and "content" in t for t in history)):
            raise gr.Error("history must be a list of {role, content} objects", print_exception=False)
        try:
            return app.ask(question, history, k, backend).to_json()
        except (QuestionError, IndexMissingError, StoreError) as err:
            raise gr.Error(str(err), print_exception=False) from None

    def status() -> dict:
        """Index status: documents, chunks, embedding model, store, and the answer backends."""
        return {**app.status(), "backends": app.backends()}

    from .feedback import FeedbackError
    from .library import LibraryError
    from .ui_panels import SCROLL_JS, document_html, library_html

    def _fail(err: Exception):
        raise gr.Error(str(err), print_exception=False) from None

    def documents() -> dict:
        """The document library: {"documents": [{id, name, source, kind, size, pages, chunks, indexed_at, status, error, uploaded}]}."""
        return {"documents": app.documents()}

    def remove_document(document: str) -> dict:
        """Remove one document (by id or source) from the index: its chunks, BM25 entries and manifest row. Returns {"removed", "documents"}."""
        from .store import StoreError

        try:
            info = app.library.remove(document)
        except (LibraryError, StoreError) as err:
            _fail(err)
        app.refresh_examples_soon()
        return {"removed": info.to_json(), "documents": app.documents()}

    def reindex_document(document: str) -> dict:
        """Read one document (by id or source) again. Returns {"report", "documents"}."""
        from .store import StoreError

        try:
            report = app.library.reindex(document)
        except (LibraryError, StoreError) as err:
            _fail(err)
        return {"report": _public_report(report.to_json()), "documents": app.documents()}

    def document(document: str, chunk_id: str = "") -> dict:
        """A document's extracted text and where a chunk sits in it: {id, name, source, kind, text, pages, passage}."""
        try:
            return app.library.passage(document, chunk_id)
        except LibraryError as err:
            _fail(err)

    def feedback(question: str, answer: dict | None = None, rating: str = "up", correction: str = "",
                 history: list[dict] | None = None) -> dict:
        """Record a 👍 ("up") or 👎 ("down") on an answer (the /ask JSON), with an optional correction ("the answer is …"). Stored in <index_dir>/feedback.jsonl."""
        try:
            return app.feedback.add(rating, question, answer, history=history, correction=correction).to_json()
        except FeedbackError as err:
            _fail(err)

    def export_conversation(history: list) -> str:
        """The chat (the /chat history) as Markdown, every answer with its numbered sources."""
        from .conversation import to_markdown

        return to_markdown(app.turns(history), title=TITLE)

    def export_page(history: list, lang: str) -> str:
        """The export the page's button gives: the same, its own words in the page's language."""
        from .conversation import to_markdown

        with language(lang):
            return to_markdown(app.turns(history), title=TITLE if lang == "en" else tr("export_title"))

    def library_view(notice: str = "", lang: str = "en"):
        docs = app.documents()
        choices = [(f"{d['name']} — {d['source']}", d["id"]) for d in docs]
        with language(lang):
            table = library_html(docs)
        return table, gr.Dropdown(choices=choices, value=None), notice

    def _notice(kind: str, key: str, lang: str, **values) -> str:
        with language(lang):
            return f'<div class="{kind}">{html.escape(tr(key, **values))}</div>'

    def on_remove(doc: str | None, request: gr.Request):
        lang = request_language(request)
        if not doc:
            return (*library_view(_notice("qa-muted", "choose_first", lang), lang), status_html(app.status(), lang))
        try:
            info = app.library.remove(doc)
            app.refresh_examples_soon()
            notice = _notice("qa-ok", "removed", lang, name=info.name)
        except Exception as err:  # noqa: BLE001 - shown on the page
            notice = f'<div class="qa-bad">✗ {html.escape(str(err))}</div>'
        return (*library_view(notice, lang), status_html(app.status(), lang))

    def on_reindex(doc: str | None, request: gr.Request):
        lang = request_language(request)
        if not doc:
            return (*library_view(_notice("qa-muted", "choose_first", lang), lang), status_html(app.status(), lang))
        try:
            name = next((d["name"] for d in app.documents() if d["id"] == doc), doc)
            report = app.library.reindex(doc)
            app.refresh_examples_soon()
            if report.failed:
                notice = f'<div class="qa-bad">✗ {html.escape(name)}: {html.escape(report.failed[0]["error"])}</div>'
            else:
                with language(lang):
                    what = tr("updated" if report.added or report.updated else "unchanged")
                notice = _notice("qa-ok", "reindexed", lang, name=name, what=what)
        except Exception as err:  # noqa: BLE001
            notice = f'<div class="qa-bad">✗ {html.escape(str(err))}</div>'
        return (*library_view(notice, lang), status_html(app.status(), lang))

    def library_after_upload(request: gr.Request):
        return library_view(lang=request_language(request))[:2]

    def sources_placeholder(request: gr.Request) -> str:
        with language(request_language(request)):
            return f'<div class="qa-muted">{html.escape(tr("sources_placeholder"))}</div>'

    def on_open(req_json: str, request: gr.Request):
        import json as _json

        try:
            req = _json.loads(req_json or "{}")
            view = app.library.passage(str(req.get("source") or ""), str(req.get("chunk") or ""))
            with language(request_language(request)):
                body = document_html(view, int(req.get("start", -1)), int(req.get("len", 0)))
        except (ValueError, TypeError, LibraryError) as err:
            with language(request_language(request)):
                body = f'<div class="qa-bad">✗ {html.escape(str(err) or tr("cannot_open"))}</div>'
        return gr.Accordion(open=True), body

    def on_like(history: list, evt: gr.LikeData, request: gr.Request):
        lang = request_language(request)
        try:
            fb = app.rate(history, evt.index, evt.liked)
        except FeedbackError as err:
            gr.Warning(str(err))
            return "", gr.Row(visible=False), ""
        if fb["rating"] == "up":
            return fb["id"], gr.Row(visible=False), _notice("qa-ok", "liked", lang)
        return fb["id"], gr.Row(visible=True), _notice("qa-muted", "disliked", lang)

    def on_correct(fb_id: str, text: str, request: gr.Request):
        lang = request_language(request)
        if not fb_id or not (text or "").strip():
            return gr.Row(visible=True), _notice("qa-muted", "type_first", lang), text
        try:
            app.feedback.correct(fb_id, text)
        except FeedbackError as err:
            return gr.Row(visible=True), f'<div class="qa-bad">✗ {html.escape(str(err))}</div>', text
        return gr.Row(visible=False), _notice("qa-ok", "corrected", lang), ""

    def on_export(history: list, request: gr.Request):
        import tempfile

        md = export_page(history, request_language(request))
        folder = Path(tempfile.mkdtemp(prefix="assistant-export-"))
        path = folder / "conversation.md"
        path.write_text(md, encoding="utf-8")
        return gr.File(value=str(path), visible=True)

    from .ui_i18n import make as make_i18n

    t = make_i18n(settings.upload_max_files, settings.upload_max_mb)  # the page's text in the browser's language
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(t("intro"))
        status_box = gr.HTML('<div class="qa-status">Loading index status…</div>', label="index_status", elem_id="index-status")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="chat", show_label=False, elem_id="chatbot", height=540, layout="bubble",
                    examples=[{"text": q} for q in (app.examples() or [])] or None,
                    placeholder=t("chat_placeholder"),
                    sanitize_html=True, render_markdown=True, latex_delimiters=[], allow_tags=False,
                    line_breaks=True, buttons=["copy", "copy_all"], feedback_options=("Like", "Dislike"),
                )
                with gr.Row(visible=False, elem_id="correction-row") as correction_row:
                    correction = gr.Textbox(placeholder=t("correction_placeholder"), label="correction", show_label=False,
                                            elem_id="correction", scale=4, max_lines=3)
                    correction_btn = gr.Button(t("send_correction"), elem_id="correction-send", scale=1, size="sm")
                feedback_notice = gr.HTML("", elem_id="feedback-notice")
                # the id of the feedback a correction belongs to (a hidden box, not gr.State: state opens a heartbeat stream)
                feedback_id = gr.Textbox("", visible="hidden", elem_id="feedback-id", label="feedback id")
                msg = gr.Textbox(placeholder=t("question_placeholder"), label="message", show_label=False,
                                 elem_id="question", submit_btn=t("ask"), max_length=settings.max_question_chars,
                                 autofocus=True, lines=1, max_lines=6)
            with gr.Column(scale=2):
                gr.Markdown(t("sources"))
                sources = gr.HTML(SOURCES_PLACEHOLDER, label="sources", elem_id="sources")
                open_request = gr.Textbox("", visible="hidden", elem_id="open-request", label="open")
                with gr.Accordion(t("document"), open=False, elem_id="doc-panel") as doc_panel:
                    doc_viewer = gr.HTML('<div class="qa-muted">Click “Open at passage” on a source to read it in its '
                                         "document.</div>", elem_id="doc-viewer")
                with gr.Accordion(t("add_documents"), open=False, elem_id="upload-panel"):
                    files = gr.File(label=t("upload_label"), file_count="multiple", type="filepath",
                                    elem_id="upload-files")
                    gr.Markdown(t("limits"), elem_classes=["qa-muted"])
                    upload_report = gr.HTML("", label="report", elem_id="upload-report")
                    upload_json = gr.JSON(label="result", visible=False)
                with gr.Accordion(t("export"), open=False, elem_id="export-panel"):
                    export_btn = gr.Button(t("export_button"), elem_id="export", size="sm")
                    export_file = gr.File(label="conversation.md", visible=False, elem_id="export-file",
                                          interactive=False)
                with gr.Accordion(t("settings"), open=False, elem_id="settings-panel"):
                    k = gr.Slider(1, 20, value=settings.k, step=1, label=t("k"))
                    backend = gr.Dropdown(backends, value=app.default_backend(), label=t("backend"), elem_id="backend",
                                          visible=len(backends) > 1, interactive=True)
        # the document library, full width under the chat (its table needs the room)
        with gr.Accordion(t("documents"), open=False, elem_id="library-panel"):
            library_box = gr.HTML('<div class="qa-muted">Loading…</div>', elem_id="library")
            with gr.Row():
                library_pick = gr.Dropdown([], value=None, label=t("document"), elem_id="library-select",
                                           interactive=True, scale=4)
                remove_btn = gr.Button(t("remove"), elem_id="library-remove", variant="stop", size="sm", scale=1)
                reindex_btn = gr.Button(t("reindex"), elem_id="library-reindex", size="sm", scale=1)
            library_notice = gr.HTML("", elem_id="library-notice")

        gr.on(triggers=[msg.submit, chatbot.example_select], fn=respond, inputs=[msg, chatbot, k, backend],
              outputs=[chatbot, sources], api_name="chat", show_progress="minimal", concurrency_id="answer")
        # registered after the chat listener, whose inputs are collected first: the box empties at once
        msg.submit(lambda: "", None, msg, queue=False, api_visibility="private", show_progress="hidden")
        chatbot.clear(sources_placeholder, None, sources, queue=False, api_visibility="private")
        files.upload(upload, inputs=[files], outputs=[upload_report, status_box, upload_json], api_name="upload",
                     concurrency_limit=1, concurrency_id="indexing", show_progress="full").then(
            lambda: None, None, files, queue=False, api_visibility="private").then(
            library_after_upload, None, [library_box, library_pick], queue=False, api_visibility="private")
        gr.api(ask, api_name="ask", concurrency_id="answer")  # /chat and /ask share `concurrency` workers
        gr.api(status, api_name="status", queue=False)
        gr.api(documents, api_name="documents", queue=False)
        gr.api(remove_document, api_name="remove_document", concurrency_limit=1, concurrency_id="indexing")
        gr.api(reindex_document, api_name="reindex_document", concurrency_limit=1, concurrency_id="indexing")
        gr.api(document, api_name="document", concurrency_id="answer")
        gr.api(feedback, api_name="feedback", queue=False)
        gr.api(export_conversation, api_name="export", queue=False)

        library_out = [library_box, library_pick, library_notice, status_box]
        remove_btn.click(on_remove, [library_pick], library_out, api_visibility="private",
                         concurrency_limit=1, concurrency_id="indexing")
        reindex_btn.click(on_reindex, [library_pick], library_out, api_visibility="private",
                          concurrency_limit=1, concurrency_id="indexing")
        open_request.change(on_open, [open_request], [doc_panel, doc_viewer], api_visibility="private",
                            concurrency_id="answer").then(None, None, None, js=SCROLL_JS, api_visibility="private")
        chatbot.like(on_like, [chatbot], [feedback_id, correction_row, feedback_notice], api_visibility="private",
                     queue=False)
        correction_btn.click(on_correct, [feedback_id, correction], [correction_row, feedback_notice, correction],
                             api_visibility="private", queue=False)
        correction.submit(on_correct, [feedback_id, correction], [correction_row, feedback_notice, correction],
                          api_visibility="private", queue=False)
        export_btn.click(on_export, [chatbot], [export_file], api_visibility="private", queue=False)

        def on_page_load(request: gr.Request):
            app.warm_up_soon()
            lang = request_language(request)
            box, pick, _ = library_view(lang=lang)
            with language(lang):  # the server-rendered placeholders in the browser's language
                panels = (f'<div class="qa-muted">{html.escape(tr("sources_placeholder"))}</div>',
                          f'<div class="qa-muted">{html.escape(tr("viewer_placeholder"))}</div>')
            return (status_html(app.status(), lang), box, pick, gr.Chatbot(examples=[{"text": q} for q in app.examples()] or None),
                    *panels)

        demo.load(on_page_load, None, [status_box, library_box, library_pick, chatbot, sources, doc_viewer],
                  api_visibility="private", queue=False)

    # Queue: /chat and /ask share one pool of `concurrency` workers ("answer"; the embedder serialises the CPU work
    # anyway), uploads run one at a time in their own pool ("indexing") so that answers go on during an upload, and
    # /status bypasses the queue. Up to QUEUE_MAX_SIZE requests wait; beyond that a client gets "queue full" at once.
    demo.queue(default_concurrency_limit=max(1, int(settings.concurrency)), max_size=QUEUE_MAX_SIZE)
    demo.chat_app = app  # for tests and embedding
    demo.page_i18n = t  # launch() passes it to Gradio
    return demo


def theme():
    """Soft theme with system fonts: nothing is fetched from font CDNs (the app works offline)."""
    import gradio as gr

    return gr.themes.Soft(font=["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"],
                          font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"])


def parse_auth(value: str) -> tuple[str, str] | None:
    """``"user:password"`` -> (user, password); empty -> None."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError("ASSISTANT_AUTH must be user:password")
    return user, password


def blocked_paths(settings: Settings) -> list[str]:
    """Folders Gradio's file route must never serve, whatever else it allows (its upload cache included).

    The app serves no file of its own (``allowed_paths`` is empty): sources are shown as text. The index (Chroma's
    files, the manifest, the BM25 snapshots), the uploads folder and the documents folder are blocked outright, so
    they stay private even when they sit inside Gradio's cache or the working directory.
    """
    folders = [settings.index_path, settings.uploads_path, Path(settings.docs_dir)]
    return sorted({str(Path(f).resolve()) for f in folders})


def launch(demo, settings: Settings, host: str | None = None, port: int | None = None, **kwargs):
    """Start the server (theme, css, auth and upload size limit applied); returns Gradio's (app, local_url, share_url)."""
    import gradio as gr

    host, port = server_address(host, port)
    options = dict(server_name=host, server_port=port, auth=parse_auth(settings.auth),
                   # one login page for both languages: Gradio does not translate its auth message
                   auth_message=("Log in to ask questions about the documents. · "
                                 "Connectez-vous pour interroger les documents.") if settings.auth else None,
                   max_file_size=upload_hard_limit(settings), theme=theme(),
                   css=CSS, js=OPEN_JS, footer_links=["api"], show_error=False, share=False,
                   allowed_paths=[], blocked_paths=blocked_paths(settings))
    if getattr(demo, "page_i18n", None) is not None:
        options["i18n"] = demo.page_i18n
    options.update(kwargs)
    return demo.launch(**options)


def prepare_index(app: ChatApp) -> None:
    """Build the index of ``docs_dir`` if missing, else bring it up to date (fast when nothing changed).

    The uploads folder is brought up to date too, so that it holds exactly what is searchable: an upload whose
    indexing was interrupted (the app killed mid-way) is indexed at the next start, nothing half-done remains.
    """
    docs = Path(app.settings.docs_dir)
    uploads = app.settings.uploads_path
    if not docs.exists():
        log.warning("docs folder %s does not exist; serving the existing index only", docs)
    paths = [p for p in dict.fromkeys((docs, uploads)) if p.exists()]
    if not paths:
        return
    from .store import StoreError

    try:
        building = not app.assistant.has_index()
        if building:
            print(f"Building the index of {docs} (first start)…", flush=True)
        report = app.assistant.index(paths, show_progress=None)
        if building or report.added or report.updated or report.removed or report.failed:
            print(report.summary(), flush=True)
    except StoreError as err:
        print(f"error: {err}", flush=True)


def serve(settings: Settings | None = None, host: str | None = None, port: int | None = None) -> None:
    """``python app.py`` / ``assistant serve``: index ``docs_dir`` incrementally, then serve the chat."""
    settings = settings or Settings.from_env()
    parse_auth(settings.auth)  # fail fast on a malformed value
    app = ChatApp(settings)
    prepare_index(app)
    demo = create_app(settings, app.assistant)
    launch(demo, settings, host=host, port=port)
