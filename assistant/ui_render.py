"""What the browser chat shows of an answer: escaped markdown, chat messages, the sources panel, the status line.

Owns the escaping of document text (:func:`md_escape` and its inverse), message content to text
(:func:`clean_history`: the chat history sent back by the browser as plain ``{role, content}`` turns),
the answer message (short answer, confidence, language note, notes, collapsible sources), the sources
panel with the cited sentence highlighted, the error box, the index status line, and the page's CSS
for those ``qa-*`` classes.

Security model: document text (answers are quotes, passages, file names) is
untrusted. Everything taken from a document is escaped before it reaches
the browser: chat messages are markdown in which every HTML and markdown
special character of document text is escaped (:func:`md_escape`), and the
HTML fragments (sources, upload reports) escape text with :func:`html.escape`
or :func:`assistant.citations.highlight_html`. Gradio's own sanitizer is a
second line of defence, not the only one; ``gr.HTML`` does not sanitize at all.
"""
import html
import re
from typing import Any

from .citations import highlight_html
from .schema import Answer
from .ui_i18n import language, location_text, number, tr

__all__ = ["md_escape", "md_unescape", "clean_history", "short_answer", "confidence", "source_language",
           "sources_html", "answer_message", "error_message", "status_html", "location_text", "LANGUAGE_NAMES", "CSS"]

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


# --------------------------------------------------------------------------- the page's stylesheet for these classes
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
