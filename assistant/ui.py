"""Browser chat (Gradio 6): ask in English or French, read cited answers, add, list and remove documents, rate answers.

``python app.py`` / ``assistant serve`` call :func:`serve`; tests build the app
with :func:`create_app` and start it with :func:`launch`.

Security model: document text (answers are quotes, passages, file names) is
untrusted. Everything taken from a document is escaped here before it reaches
the browser: chat messages are markdown in which every HTML and markdown
special character of document text is escaped (:func:`md_escape`), and the
HTML fragments (sources, upload reports) escape text with :func:`html.escape`
or :func:`assistant.citations.highlight_html`. Gradio's own sanitizer is a
second line of defence, not the only one; ``gr.HTML`` does not sanitize at all.

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
import hashlib
import html
import logging
import os
import re
import threading
import unicodedata
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no telemetry calls

from .citations import highlight_html  # noqa: E402
from .config import Settings  # noqa: E402
from .loaders import SUPPORTED, kind_of  # noqa: E402
from .offline import file_sha256  # noqa: E402
from .schema import Answer  # noqa: E402
from .ui_i18n import language, location_text, number, request_language, tr  # noqa: E402
from .ui_panels import OPEN_JS  # noqa: E402

log = logging.getLogger("assistant.ui")

TITLE = "Document Q&A"
QUEUE_MAX_SIZE = 64  # requests waiting beyond this get "queue full" instead of waiting forever
# example questions come from the indexed corpus (assistant/examples.py; seeds/.examples for the demo)
SOURCES_PLACEHOLDER = '<div class="qa-muted">The sources of the latest answer appear here: file, location and the passage with the cited sentence highlighted.</div>'
SOURCES_SEARCHING = '<div class="qa-muted">Searching the documents…</div>'


# --------------------------------------------------------------------------- escaping
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$=:^])")
_MD_UNESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|~$=:^])")


def md_escape(text: str) -> str:
    """Document text as markdown that renders literally: no HTML, no markdown syntax.

    Markdown punctuation gets a backslash, then ``< > & " '`` become HTML
    entities, so ``<script>`` shows as text and ``**x**``/``[a](b)`` stay literal.
    """
    text = re.sub(r"(?m)^[ \t]+", "", str(text))  # indentation would make a code block, which shows entities raw
    return html.escape(_MD_SPECIAL.sub(r"\\\1", text), quote=True)


def md_unescape(text: str) -> str:
    """Inverse of :func:`md_escape` (history sent back by the browser -> plain text)."""
    return _MD_UNESCAPE.sub(r"\1", html.unescape(text))


def _one_line(fragment: str) -> str:
    """An HTML fragment without blank lines, so that markdown keeps it as one raw HTML block."""
    return re.sub(r"\s*\n\s*", " ", fragment)


_SURROGATES = re.compile("[\ud800-\udfff]")  # a JSON client can send lone surrogates: not encodable, never echoed


def _content_text(content: Any) -> str:
    """Text of a chat message content (a string or Gradio 6's list of typed blocks)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return _SURROGATES.sub("\ufffd", content)
    if isinstance(content, dict):
        if content.get("type") in (None, "text"):
            return _content_text(str(content.get("text") or content.get("content") or ""))
        return ""
    if isinstance(content, (list, tuple)):
        return "\n".join(t for t in (_content_text(c) for c in content) if t)
    return _content_text(str(content))


_BOXES = ('<div class="qa-abstain">', '<div class="qa-error">')
_EXTRAS = re.compile(r'\n\n(?=<(?:div|details) class="qa-)')  # where the answer text ends in a chat message
_SHORT_LINE = re.compile(r"^\*\*(?:[^*\\\n]|\\.)+\*\*\n\n")  # the short answer line of answer_message


def clean_history(history: list | None) -> list[dict]:
    """Chat history as the Assistant expects it: ``{role, content}`` with plain text.

    Assistant messages keep only the answer text (not the notes and sources
    block that :func:`answer_message` appends); abstentions and errors are
    dropped, since they carry nothing a follow-up could refer to.
    """
    out: list[dict] = []
    for msg in history or []:
        if not isinstance(msg, dict):
            continue
        role = msg.get("role")
        text = _content_text(msg.get("content"))
        if role == "user":
            q = md_unescape(text).strip()
            if q:
                out.append({"role": "user", "content": q})
        elif role == "assistant":
            if text.lstrip().startswith(_BOXES):  # abstention / error: nothing a follow-up can refer to
                continue
            text = _SHORT_LINE.sub("", text.lstrip(), count=1)  # the bold short answer is ours: document ** is escaped
            ans = md_unescape(_EXTRAS.split(text, 1)[0]).strip()
            if ans:
                out.append({"role": "assistant", "content": ans})
    return out


# --------------------------------------------------------------------------- rendering
def _file_label(source: str) -> tuple[str, str]:
    name = re.split(r"[\\/]", source)[-1] or source
    return name, source


LANGUAGE_NAMES = {"en": "English", "fr": "French"}


def short_answer(answer: Answer) -> str:
    """The answerer's short answer (the few words that answer), or "" when it gives none."""
    return str(getattr(answer, "short_answer", "") or "").strip()


def confidence(answer: Answer) -> tuple[str, float | None]:
    """(label, number) of the answer's confidence: high / medium / low, or ("", None) when the answerer gives none."""
    raw = getattr(answer, "confidence", None)
    if raw is None or raw == "":
        return "", None
    if isinstance(raw, dict):
        raw = raw.get("score", raw.get("value", raw.get("label")))
    if isinstance(raw, str) and raw.strip().lower() in ("high", "medium", "low"):
        return raw.strip().lower(), None
    try:
        x = float(raw)
    except (TypeError, ValueError):
        return "", None
    return ("high" if x >= 0.7 else "medium" if x >= 0.4 else "low"), x


def source_language(citation) -> str:
    from .text import detect_language

    return detect_language(citation.passage or citation.quote or "")


def _lang_note(answer: Answer) -> str:
    """ "from the French source" when the cited passages are not in the question's language."""
    if answer.abstained or not answer.citations:
        return ""
    asked = getattr(answer, "language", "") or ""
    langs = list(dict.fromkeys(source_language(c) for c in answer.citations))
    other = [lang for lang in langs if lang != asked]
    if not asked or not other:
        return ""
    names = tr("and").join(tr(f"lang_{lang}") if lang in LANGUAGE_NAMES else lang for lang in other)
    return tr("from_sources" if len(answer.citations) > 1 and len(other) == len(langs) else "from_source", names=names)


def _highlight(citation, short: str) -> str:
    """The passage, escaped, the cited sentence in <mark>, the short answer in bold inside it."""
    if not short:
        return highlight_html(citation)
    passage, quote = citation.passage or citation.quote, citation.quote
    start = citation.quote_start
    if start < 0 or passage[start:start + len(quote)] != quote:
        start = passage.find(quote)
    if start < 0:
        return highlight_html(citation)
    end = start + len(quote)
    i = quote.lower().find(short.lower())
    if i < 0:
        return highlight_html(citation)
    inner = (html.escape(quote[:i]) + '<strong class="qa-short-mark">' + html.escape(quote[i:i + len(short)])
             + "</strong>" + html.escape(quote[i + len(short):]))
    return (html.escape(passage[:start]) + "<mark>" + inner + "</mark>" + html.escape(passage[end:])).replace("\n\n", "<br><br>")


def _open_button(c) -> str:
    loc = c.location or {}
    start = loc.get("char_start", -1)
    return (f'<button type="button" class="qa-open" data-source="{html.escape(c.source, quote=True)}" '
            f'data-chunk="{html.escape(c.chunk_id, quote=True)}" data-start="{int(start) if start is not None else -1}" '
            f'data-len="{len(c.quote)}" title="{html.escape(tr("open_title"), quote=True)}">{html.escape(tr("open"))}</button>')


def sources_html(answer: Answer, openable: bool = True) -> str:
    """The sources panel for one answer: every ``[n]`` with file, location and highlighted passage.

    ``openable``: with an "Open at passage" button (the sources panel; the chat's sanitizer drops the button's data)."""
    if answer.abstained:
        consulted = sorted({_file_label(r.source)[0] for r in answer.retrieved if r.source})
        extra = ""
        if consulted:
            extra = ('<div class="qa-muted">' + html.escape(tr("consulted"))
                     + ", ".join(html.escape(n) for n in consulted[:8]) + (" …" if len(consulted) > 8 else "") + "</div>")
        return (f'<div class="qa-abstain-panel"><strong>{html.escape(tr("no_answer_title"))}</strong>'
                f'<div>{html.escape(tr("no_answer_body"))}</div>' + extra + "</div>")
    if not answer.citations:
        return f'<div class="qa-muted">{html.escape(tr("no_citation"))}</div>'
    short = short_answer(answer)
    asked = getattr(answer, "language", "") or ""
    parts = ['<div class="qa-sources">']
    for c in answer.citations:
        name, path = _file_label(c.source)
        loc = location_text(c.location or {})
        lang = source_language(c)
        lang_tag = (f' <span class="qa-lang-tag">{html.escape(tr(f"lang_{lang}") if lang in LANGUAGE_NAMES else lang)}</span>'
                    if asked and lang != asked else "")
        warn = "" if c.supported else f'<div class="qa-warn">{html.escape(tr("unmatched"))}</div>'
        parts.append(
            f'<div class="qa-source" data-n="{int(c.n)}">'
            f'<div class="qa-source-head"><span class="qa-num">[{int(c.n)}]</span> '
            f'<span class="qa-file">{html.escape(name)}</span>{lang_tag}{" " + _open_button(c) if openable else ""}</div>'
            f'<div class="qa-loc">{html.escape(path)}{" · " + html.escape(loc) if loc else ""}</div>'
            f'{warn}<div class="qa-passage">{_highlight(c, short)}</div></div>')
    parts.append("</div>")
    return "".join(parts)


def _meta_html(answer: Answer) -> str:
    """Confidence label (the number on hover) and the source-language note, under the answer."""
    bits = []
    label, x = confidence(answer)
    if label:
        title = f' title="{html.escape(tr("confidence_title", x=number(x)), quote=True)}"' if x is not None else ""
        bits.append(f'<span class="qa-conf qa-conf-{label}"{title}>{html.escape(tr("confidence", label=tr(label)))}</span>')
    note = _lang_note(answer)
    if note:
        bits.append(f'<span class="qa-lang">{html.escape(note)}</span>')
    return f'<div class="qa-meta">{" · ".join(bits)}</div>' if bits else ""


def _note_html(answer: Answer) -> str:
    bits = []
    if answer.note:
        bits.append(f'<div class="qa-note">ⓘ {html.escape(answer.note)}</div>')
    if answer.unsupported:
        nums = ", ".join(f"[{int(n)}]" for n in answer.unsupported)
        bits.append(f'<div class="qa-note">{html.escape(tr("unsupported", nums=nums))}</div>')
    return "".join(bits)


def answer_message(answer: Answer) -> str:
    """The final chat message of an answer: escaped answer text, note, collapsible sources."""
    if answer.abstained:
        return _one_line(f'<div class="qa-abstain"><strong>{html.escape(tr("not_found_title"))}</strong><br>'
                         f"{html.escape(answer.answer)}{_note_html(answer)}</div>")
    text = md_escape(answer.answer)
    short = short_answer(answer)
    lead = f"**{short}**"
    if short and answer.answer.startswith(lead):
        # the answerer already leads with the short answer in bold ("**span** [1] — « … »"): ours, not the
        # document's, so it stays bold; the rest is escaped (and clean_history gives back answer.answer)
        rest = answer.answer[len(lead):]
        space = rest[:len(rest) - len(rest.lstrip(" "))]  # md_escape drops a line's leading spaces
        text = f"**{md_escape(short)}**{space}" + md_escape(rest.lstrip(" "))
    elif short:  # the few words that answer, first, in bold (clean_history drops this line again)
        text = f"**{md_escape(short)}**\n\n{text}"
    extra = _meta_html(answer) + _note_html(answer)
    if answer.citations:
        extra += (f'<details class="qa-details"><summary>{html.escape(tr("sources_n", n=len(answer.citations)))}</summary>'
                  f"{sources_html(answer, openable=False)}</details>")
    return text + ("\n\n" + _one_line(extra) if extra else "")


ANSWER_CACHE = 2000  # answers kept in memory for feedback and export (the chat sends back only their text)


def _message_key(text: str) -> str:
    return hashlib.blake2b(str(text).strip().encode("utf-8", "replace"), digest_size=16).hexdigest()


def error_message(title: str, detail: str) -> str:
    return _one_line(f'<div class="qa-error"><strong>⚠ {html.escape(title)}</strong><br>{html.escape(detail)}</div>')


def _count(n: Any, key: str) -> str:
    n = int(n or 0)
    return html.escape(tr(key + ("_1" if n == 1 else ""), n="\x00")).replace("\x00", f"<b>{n}</b>")


def status_html(status: dict, lang: str | None = None) -> str:
    """The index status line (documents, chunks, embedding model, degraded notes), in ``lang`` (default: the current)."""
    if lang is not None:
        with language(lang):
            return status_html(status)
    if status.get("error"):
        return (f'<div class="qa-status qa-status-error">'
                f'{html.escape(tr("index_unavailable", error=str(status["error"])))}</div>')
    model = tr("embedding_model", model="\x00")
    model = html.escape(model).replace("\x00", f'<code>{html.escape(str(status.get("embedding_model", "?")))}</code>')
    return ('<div class="qa-status">'
            f'<span>{_count(status.get("documents", 0), "n_documents")}</span> · '
            f'<span>{_count(status.get("chunks", 0), "n_chunks")}</span> · '
            f'<span>{model}</span>'
            + "".join(f'<div class="qa-status-degraded">⚠ {html.escape(str(d))}</div>' for d in status.get("degraded") or [])
            + '</div>')


# --------------------------------------------------------------------------- uploads
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BINARY_MAGIC = (b"%PDF", b"PK\x03\x04", b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"\x7fELF", b"MZ", b"\xd0\xcf\x11\xe0")


def safe_filename(name: str) -> str:
    """A file name safe to create inside the uploads folder: no folders, no control characters, no dot files.

    Only the last path component is kept (``../../etc/passwd.txt`` -> ``passwd.txt``, Windows paths too),
    NUL and control characters go, other unusual characters become ``_``, the extension is lower-cased
    and the name is kept well under the file system's 255-byte limit.
    """
    name = unicodedata.normalize("NFC", str(name or ""))
    name = name.replace("\x00", "")
    name = re.split(r"[\\/]", name)[-1]
    name = _CONTROL.sub("", name)
    name = re.sub(r"[^\w.\- ()+,@]+", "_", name)  # \w is Unicode: accented names stay readable
    name = re.sub(r"\s+", " ", name).strip(" ._")
    stem, ext = os.path.splitext(name)
    if not stem:
        stem, ext = (ext.lstrip(".") or "upload"), ""
    ext = ext.lower()[:12]
    while len(stem.encode("utf-8")) > 150:
        stem = stem[:-1]
    return stem.rstrip(" .") + ext


def sniff(path: Path, kind: str) -> str | None:
    """Why the content does not match the extension (None when it does)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8192)
    except OSError as err:
        return f"cannot read the upload: {err.strerror or err}"
    if not head.strip():
        return "empty file"
    if kind == "pdf":
        return None if head.lstrip()[:5].startswith(b"%PDF") else "not a PDF: the content does not start with %PDF"
    if kind == "docx":
        try:
            with zipfile.ZipFile(path) as zf:
                if "word/document.xml" not in zf.namelist():
                    return "not a Word document: the .docx archive has no word/document.xml"
        except (zipfile.BadZipFile, OSError):
            return "not a Word document: the .docx file is not a valid zip archive"
        return None
    # txt, md, html: text, not a binary format renamed
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None
    if head.startswith(_BINARY_MAGIC) or b"\x00" in head:
        return f"binary content, not a .{kind} text file"
    return None


@dataclass
class UploadResult:
    indexed: list[dict] = field(default_factory=list)  # {file, source, status}
    failed: list[dict] = field(default_factory=list)  # {file, error}
    report: dict | None = None

    def to_json(self) -> dict:
        def public(rows: list[dict]) -> list[dict]:
            return [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]

        return {"indexed": public(self.indexed), "failed": public(self.failed), "report": self.report}

    def to_html(self, lang: str | None = None) -> str:
        """The per-file report, in ``lang`` (default: the current language); the reasons the app itself gives are
        translated (``_msg``: key and values), those of the readers are shown as they are."""
        if lang is not None:
            with language(lang):
                return self.to_html()

        def reason(f: dict) -> str:
            msg = f.get("_msg")
            return tr(msg[0], **msg[1]) if msg else str(f.get("error", ""))

        rows = []
        for f in self.indexed:
            status = {"indexed": tr("upload_indexed"), "already indexed": tr("upload_already")}.get(f["status"], f["status"])
            rows.append(f'<li class="qa-ok">✓ <b>{html.escape(f["file"])}</b> — {html.escape(status)}</li>')
        for f in self.failed:
            rows.append(f'<li class="qa-bad">✗ <b>{html.escape(f["file"])}</b> — {html.escape(reason(f))}</li>')
        if not rows:
            return f'<div class="qa-muted">{html.escape(tr("upload_none"))}</div>'
        n_ok, n_bad = len(self.indexed), len(self.failed)
        head = (tr("upload_head_1") if n_ok == 1 else tr("upload_head", n=n_ok)) + (
            "" if not n_bad else tr("upload_failed_1") if n_bad == 1 else tr("upload_failed", n=n_bad))
        return f'<div class="qa-upload"><div>{html.escape(head)}</div><ul>{"".join(rows)}</ul></div>'


def _public_report(report: dict) -> dict:
    """IndexReport JSON without server paths (failures are listed per file in UploadResult.failed).

    Also, gradio_client would take any ``{"path": ...}`` dict in an output for a file to download.
    """
    files = dict(report.get("files", {}))
    files["failed"] = len(files.get("failed") or [])
    if "ignored" in files:
        files["ignored"] = len(files["ignored"])
    return {**report, "files": files}


def _upload_name(item: Any) -> tuple[Path | None, str]:
    """(server path, original name) of a Gradio upload (a path string or a FileData-like object)."""
    if item is None:
        return None, ""
    if isinstance(item, (str, Path)):
        p = Path(item)
        return p, p.name
    if isinstance(item, dict):
        p = item.get("path") or item.get("name")
        return (Path(p) if p else None), str(item.get("orig_name") or (Path(p).name if p else ""))
    p = getattr(item, "path", None) or getattr(item, "name", None)
    return (Path(p) if p else None), str(getattr(item, "orig_name", None) or (Path(p).name if p else ""))


def store_upload(src: Path, name: str, uploads: Path) -> tuple[Path, bool]:
    """Copy ``src`` into ``uploads`` as ``name`` (suffixed on a clash); returns (path, created).

    An identical file already there is reused rather than duplicated.
    """
    uploads.mkdir(parents=True, exist_ok=True)
    root = uploads.resolve()
    stem, ext = os.path.splitext(name)
    digest = file_sha256(src)
    for i in range(1, 1000):
        candidate = root / (name if i == 1 else f"{stem}-{i}{ext}")
        if candidate.resolve().parent != root or candidate.is_symlink():
            raise ValueError("refused: file name escapes the uploads folder")
        if candidate.exists():
            if candidate.is_file() and file_sha256(candidate) == digest:
                return candidate, False
            continue
        try:  # O_EXCL: claims the name atomically, even against a concurrent upload; never follows a link
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except FileExistsError:
            continue
        try:
            with os.fdopen(fd, "wb") as out, open(src, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    out.write(block)
        except BaseException:
            candidate.unlink(missing_ok=True)
            raise
        return candidate, True
    raise ValueError("too many files with this name in the uploads folder")


# --------------------------------------------------------------------------- the app logic
class ChatApp:
    """What the UI and the API endpoints call (testable without a browser)."""

    def __init__(self, settings: Settings | None = None, assistant=None):
        from .pipeline import Assistant

        self.settings = settings or Settings.from_env()
        self.assistant = assistant or Assistant(self.settings)
        self._warm_lock = threading.Lock()
        self._warm_started = False
        self._answers: "OrderedDict[str, tuple[str, list[dict], Answer]]" = OrderedDict()  # message key -> answer
        self._answers_lock = threading.Lock()

    # --- library, feedback, examples, export (assistant.library / .feedback / .examples / .conversation) ---
    @property
    def library(self):
        from .library import Library

        return Library(self.assistant)

    @property
    def feedback(self):
        from .feedback import FeedbackStore

        return FeedbackStore.for_settings(self.settings)

    def examples(self) -> list[str]:
        """Example questions from the indexed corpus (see assistant.examples); none when it cannot tell."""
        from . import examples

        try:
            return examples.load(self.assistant)
        except Exception:  # noqa: BLE001 - the page works without examples
            log.debug("examples failed", exc_info=True)
            return []

    def documents(self) -> list[dict]:
        return [d.to_json() for d in self.library.documents()]

    def _remember(self, message: str, question: str, prior: list[dict], answer: Answer) -> None:
        key = _message_key(message)
        with self._answers_lock:
            self._answers[key] = (question, prior, answer)
            self._answers.move_to_end(key)
            while len(self._answers) > ANSWER_CACHE:
                self._answers.popitem(last=False)

    def recall(self, message: Any) -> tuple[str, list[dict], Answer] | None:
        """(question, earlier turns, Answer) of an assistant message this process produced, if still cached."""
        with self._answers_lock:
            return self._answers.get(_message_key(_content_text(message)))

    def turns(self, history: list | None) -> list:
        """The chat as (question, Answer or text) turns, for the Markdown export."""
        from .conversation import Turn

        out: list[Turn] = []
        for msg in history or []:
            if not isinstance(msg, dict):
                continue
            if msg.get("role") == "user":
                out.append(Turn(md_unescape(_content_text(msg.get("content"))).strip()))
            elif msg.get("role") == "assistant" and out:
                hit = self.recall(msg.get("content"))
                if hit:
                    out[-1].answer = hit[2]
                else:
                    text = _content_text(msg.get("content"))
                    out[-1].text = re.sub(r"<[^>]+>", " ", md_unescape(_EXTRAS.split(text, 1)[0])).strip()
        return [t for t in out if t.question]

    def rate(self, history: list | None, index: Any, liked: Any) -> dict:
        """Record a 👍/👎 on the assistant message at ``index`` of the chat; returns the feedback JSON."""
        from .feedback import FeedbackError

        history = list(history or [])
        i = index[0] if isinstance(index, (list, tuple)) else index
        try:
            i = int(i)
            msg = history[i]
        except (TypeError, ValueError, IndexError):
            raise FeedbackError("no such message") from None
        if not isinstance(msg, dict) or msg.get("role") != "assistant":
            raise FeedbackError("only answers can be rated")
        rating = "up" if liked is True or str(liked).lower() in ("like", "true", "up") else "down"
        hit = self.recall(msg.get("content"))
        if hit:
            question, prior, answer = hit
            data = answer.to_json()
            data["short_answer"] = short_answer(answer)
        else:  # not produced by this process (e.g. before a restart): what the page shows
            earlier = clean_history(history[:i])
            question = next((t["content"] for t in reversed(earlier) if t["role"] == "user"), "")
            prior = earlier[:-1] if earlier and earlier[-1]["role"] == "user" else earlier
            text = _content_text(msg.get("content"))
            abstained = text.lstrip().startswith('<div class="qa-abstain">')
            data = {"answer": re.sub(r"<[^>]+>", " ", md_unescape(_EXTRAS.split(text, 1)[0])).strip(),
                    "abstained": abstained, "citations": []}
        return self.feedback.add(rating, question, data, history=prior).to_json()

    # --- settings ---------------------------------------------------------------
    def backends(self) -> list[str]:
        return self.assistant.backends()

    def default_backend(self) -> str:
        names = self.backends()
        if self.settings.answerer == "llm" and len(names) > 1:
            return names[1]
        return names[0]

    def _k(self, k: Any) -> int | None:
        try:
            return max(1, min(50, int(k))) if k not in (None, "") else None
        except (TypeError, ValueError):
            return None

    def _backend(self, backend: Any) -> str | None:
        return backend if isinstance(backend, str) and backend in self.backends() else None

    # --- asking -----------------------------------------------------------------
    def ask(self, question: str, history: list | None = None, k: Any = None, backend: Any = None) -> Answer:
        """Raises QuestionError, IndexMissingError or StoreError with a one-line message."""
        self.assistant.require_index()
        return self.assistant.ask(question, history=clean_history(history) or None, k=self._k(k),
                                  backend=self._backend(backend))

    def respond(self, message: Any, history: list | None, k: Any = None, backend: Any = None,
                lang: str = "en") -> Iterator[tuple]:
        """Stream (history, sources HTML): the question at once, the growing answer, then the final message
        with its sources (``None`` for the sources, on an empty message only, means "leave the panel as it is").
        ``lang``: the language of the page's own words in the HTML ("en" or "fr"; answers keep theirs)."""
        from .pipeline import IndexMissingError, QuestionError
        from .store import StoreError

        question = _content_text(message).strip()
        history = list(history or [])
        if not question:
            yield history, None
            return
        prior = clean_history(history)
        history.append({"role": "user", "content": md_escape(question)})
        with language(lang):
            searching = f'<div class="qa-muted">{html.escape(tr("searching"))}</div>'
            placeholder = f'<div class="qa-muted">{html.escape(tr("sources_placeholder"))}</div>'
        yield history, searching
        try:
            self.assistant.require_index()
            final = None
            for item in self.assistant.stream(question, history=prior or None, k=self._k(k), backend=self._backend(backend)):
                if isinstance(item, Answer):
                    final = item
                elif item:
                    yield history + [{"role": "assistant", "content": md_escape(item)}], searching
            if final is None:
                raise RuntimeError("the answerer returned nothing")
            with language(lang):
                message, panel = answer_message(final), sources_html(final)
            self._remember(message, question, prior, final)
            yield history + [{"role": "assistant", "content": message}], panel
            return
        except QuestionError as err:
            title, detail = "err_question", str(err)
        except IndexMissingError as err:
            title, detail = "err_no_index", str(err)
        except StoreError as err:
            title, detail = "err_store", str(err)
        except Exception as err:  # noqa: BLE001 - the browser gets one clear line; the log gets the traceback
            log.exception("chat failed")
            title, detail = "err_other", str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        with language(lang):
            title = tr(title)
        yield history + [{"role": "assistant", "content": error_message(title, detail)}], placeholder

    # --- uploads ----------------------------------------------------------------
    def add_files(self, files: list | None, progress: Callable[[str, int, int], None] | None = None) -> UploadResult:
        """Validate, copy into the uploads folder and index; one bad file never stops the others."""
        from .loaders import display_path
        from .store import StoreError

        items = [_upload_name(f) for f in (files or []) if f is not None]
        rows: list[tuple[int, str, dict]] = []  # (position in the upload, "ok"/"bad", row) -> report in upload order
        limit = max(1, int(self.settings.upload_max_files))
        for i, (_, name) in enumerate(items[limit:], start=limit):
            rows.append((i, "bad", {"file": safe_filename(name) or "?", "error":
                                    f"not indexed: at most {limit} files per upload (ASSISTANT_UPLOAD_MAX_FILES)",
                                    "_msg": ("upload_too_many", {"limit": limit})}))
        max_bytes = int(float(self.settings.upload_max_mb) * 1024 * 1024)
        saved: list[tuple[int, Path, bool]] = []
        for i, (src, orig) in enumerate(items[:limit]):
            name = safe_filename(orig)
            error, msg = None, None  # msg: the reason's key and values in ui_i18n, for the page
            kind = kind_of(name)
            if src is None or not src.is_file():
                error, msg = "the upload did not arrive; try again", ("upload_lost", {})
            elif kind is None:
                ext, supported = os.path.splitext(name)[1] or "(none)", ", ".join(sorted(SUPPORTED))
                error = f"unsupported file type {ext}; supported: {supported}"
                msg = ("upload_type", {"ext": ext, "supported": supported})
            elif src.stat().st_size > max_bytes:
                mb, limit_mb = f"{src.stat().st_size / 1048576:.1f}", f"{float(self.settings.upload_max_mb):g}"
                error = f"file is {mb} MB; the limit is {limit_mb} MB (ASSISTANT_UPLOAD_MAX_MB)"
                msg = ("upload_size", {"mb": mb, "limit": limit_mb})
            else:
                error = sniff(src, kind)
            if error is None:
                try:
                    path, created = store_upload(src, name, self.settings.uploads_path)
                    saved.append((i, path, created))
                    continue
                except (OSError, ValueError) as err:
                    error = f"cannot store the upload: {getattr(err, 'strerror', None) or err}"
            rows.append((i, "bad", {"file": name or "?", "error": error, **({"_msg": msg} if msg else {})}))
        result = UploadResult()
        if saved:
            failed: dict[str, str] = {}
            try:
                report = self.assistant.index([p for _, p, _ in saved], progress=progress, show_progress=False)
                result.report = _public_report(report.to_json())
                failed = {str(Path(f["path"]).resolve()): f["error"] for f in report.failed}
            except StoreError as err:
                failed = {str(p.resolve()): str(err) for _, p, _ in saved}
            except Exception as err:  # noqa: BLE001 - report it on every file of the batch, keep serving
                log.exception("indexing uploads failed")
                failed = {str(p.resolve()): f"indexing failed: {str(err).splitlines()[0][:200] if str(err) else type(err).__name__}"
                          for _, p, _ in saved}
            for i, path, created in saved:
                err = failed.get(str(path.resolve()))
                if err:
                    rows.append((i, "bad", {"file": path.name, "error": err}))
                    if created:  # keep the uploads folder to what is searchable
                        path.unlink(missing_ok=True)
                else:
                    rows.append((i, "ok", {"file": path.name, "source": display_path(path),
                                           "status": "indexed" if created else "already indexed"}))
        for _, kind_, row in sorted(rows, key=lambda r: r[0]):
            (result.indexed if kind_ == "ok" else result.failed).append(row)
        return result

    def refresh_examples_soon(self) -> None:
        """After the corpus changed: check the new candidate examples in the background (once the model is loaded)."""
        if not getattr(self.assistant.embedder, "_ready", True):
            return  # the warm-up thread checks them when the model has loaded

        def run():
            try:
                from . import examples

                examples.verify(self.assistant)
            except Exception:  # noqa: BLE001
                log.debug("checking the examples failed", exc_info=True)

        threading.Thread(target=run, name="assistant-examples", daemon=True).start()

    def warm_up_soon(self) -> None:
        """Load the models in the background, once: called when a page opens, so that they load while the
        visitor types the first question rather than at start-up (which stays fast) or on the first answer."""
        with self._warm_lock:
            if self._warm_started:
                return
            self._warm_started = True

        def run():
            try:
                self.assistant.warm_up()
            except Exception:  # noqa: BLE001 - the first question reports the problem clearly
                log.debug("warm-up failed", exc_info=True)
                return
            try:  # keep the corpus's example questions to those the assistant answers (cached per index version)
                from . import examples

                examples.verify(self.assistant)
            except Exception:  # noqa: BLE001
                log.debug("checking the examples failed", exc_info=True)

        threading.Thread(target=run, name="assistant-warm-up", daemon=True).start()

    def status(self) -> dict:
        try:
            return self.assistant.status()
        except Exception as err:  # noqa: BLE001
            return {"embedding_model": getattr(self.assistant.embedder, "model_id", "?"), "documents": 0, "chunks": 0,
                    "error": str(err).splitlines()[0][:200] if str(err) else type(err).__name__}


# --------------------------------------------------------------------------- Gradio
CSS = """
.qa-muted { color: var(--body-text-color-subdued); font-size: 0.92em; }
.qa-status { font-size: 0.92em; color: var(--body-text-color-subdued); }
.qa-status-error { color: #b91c1c; }
.qa-sources { display: flex; flex-direction: column; gap: 10px; }
.qa-source { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px; background: var(--background-fill-secondary); }
.qa-source-head { font-weight: 600; }
.qa-num { color: var(--color-accent); margin-right: 2px; }
.qa-loc { font-size: 0.85em; color: var(--body-text-color-subdued); margin: 2px 0 6px; word-break: break-all; }
.qa-passage { font-size: 0.93em; line-height: 1.45; white-space: normal; }
.qa-passage mark, .qa-details mark { background: #fde68a; color: inherit; padding: 0 2px; border-radius: 3px; }
.qa-abstain, .qa-abstain-panel { border-left: 4px solid #d97706; background: rgba(217, 119, 6, 0.10); padding: 8px 12px; border-radius: 6px; }
.qa-error { border-left: 4px solid #dc2626; background: rgba(220, 38, 38, 0.10); padding: 8px 12px; border-radius: 6px; }
.qa-note, .qa-warn { font-size: 0.9em; color: #92400e; margin-top: 6px; }
.qa-details { margin-top: 8px; font-size: 0.95em; }
.qa-details summary { cursor: pointer; color: var(--color-accent); }
.qa-upload ul { margin: 4px 0 0 0; padding-left: 1.1em; }
.qa-ok { color: #166534; } .qa-bad { color: #b91c1c; }
.qa-short-mark { font-weight: 700; text-decoration: underline; text-decoration-thickness: 2px; }
.qa-meta { font-size: 0.85em; color: var(--body-text-color-subdued); margin-top: 4px; }
.qa-conf { border-radius: 999px; padding: 1px 8px; border: 1px solid currentColor; cursor: help; }
.qa-conf-high { color: #166534; } .qa-conf-medium { color: #92400e; } .qa-conf-low { color: #b91c1c; }
.qa-lang, .qa-lang-tag { font-style: italic; }
.qa-lang-tag { font-size: 0.8em; font-weight: 400; color: var(--body-text-color-subdued); }
.qa-open { float: right; font-size: 0.8em; font-weight: 400; color: var(--color-accent); background: none; border: none;
           cursor: pointer; padding: 0; }
.qa-open:hover { text-decoration: underline; }
.qa-library table { width: 100%; border-collapse: collapse; font-size: 0.85em; margin-top: 6px; }
.qa-library th, .qa-library td { text-align: left; padding: 3px 6px; border-bottom: 1px solid var(--border-color-primary); }
.qa-doc-name { word-break: break-all; }
.qa-library td:nth-child(2), .qa-library td:nth-child(3), .qa-library td:nth-child(6) { white-space: nowrap; }
#doc-viewer .qa-doc-text { white-space: pre-wrap; max-height: 420px; overflow-y: auto; font-size: 0.92em; line-height: 1.45;
                           border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 8px 10px; }
#doc-viewer .qa-region { background: rgba(253, 230, 138, 0.35); }
#doc-viewer mark.qa-target { background: #fde68a; color: inherit; padding: 0 2px; border-radius: 3px; }
#doc-viewer .qa-page { font-size: 0.8em; color: var(--body-text-color-subdued); border-top: 1px dashed var(--border-color-primary);
                       margin: 8px 0 4px; white-space: normal; }
"""


def create_app(settings: Settings | None = None, assistant=None):
    """The Gradio Blocks app (queue configured; not launched)."""
    import gradio as gr

    app = ChatApp(settings, assistant)
    settings = app.settings
    backends = app.backends()

    def respond(message: str, history: list, k: float, backend: str, evt: gr.EventData, request: gr.Request):
        """Streaming chat: yields the chat history (OpenAI-style messages) and the sources HTML of the answer."""
        data = getattr(evt, "_data", None)
        if not _content_text(message).strip() and isinstance(data, dict) and isinstance(data.get("value"), dict):
            message = data["value"].get("text") or ""  # a click on an example question
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


def upload_hard_limit(settings: Settings) -> int:
    """Bytes Gradio itself accepts per uploaded file.

    Above ``upload_max_mb`` but bounded: a file between the two limits gets our per-file message and the
    other files of the upload still index; a huge one is refused by Gradio before it fills the disk.
    """
    return int((2 * float(settings.upload_max_mb) + 1) * 1024 * 1024)


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

    host = host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    port = int(port or os.environ.get("GRADIO_SERVER_PORT") or 7860)
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
