"""HTML of the browser chat's document library and document viewer (everything from documents is escaped)."""
from __future__ import annotations

import html
from typing import Any

from .ui_i18n import tr

VIEW_MAX_CHARS = 200_000  # a longer document is shown around the passage

# the page's click handler (Blocks js): a click on "Open at passage" in the sources asks the server for the document
OPEN_JS = """
() => {
  document.addEventListener('click', (e) => {
    const b = e.target && e.target.closest ? e.target.closest('.qa-open') : null;
    if (!b) return;
    e.preventDefault();
    const box = document.querySelector('#open-request textarea, #open-request input');
    if (!box) return;
    box.value = JSON.stringify({source: b.dataset.source || '', chunk: b.dataset.chunk || '',
                                start: Number(b.dataset.start || -1), len: Number(b.dataset.len || 0), t: Date.now()});
    box.dispatchEvent(new Event('input', {bubbles: true}));
  });
}
"""
SCROLL_JS = """
() => {
  const go = () => { const m = document.querySelector('#doc-viewer .qa-target') || document.querySelector('#doc-viewer .qa-region');
                     if (m) { m.scrollIntoView({block: 'center'}); return true; } return false; };
  if (!go()) setTimeout(go, 300);
}
"""


def size_text(n: int) -> str:
    n = int(n or 0)
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1048576:.1f} MB"


def library_html(docs: list[dict[str, Any]]) -> str:
    """The library table: name, type, size, pages, chunks, when indexed, status (the failure reason when failed)."""
    if not docs:
        return f'<div class="qa-muted">{html.escape(tr("library_empty"))}</div>'
    n_ok = sum(1 for d in docs if d["status"] == "indexed")
    rows = []
    for d in docs:
        when = (d.get("indexed_at") or "").replace("T", " ")[:16]  # UTC, to the minute
        if d["status"] == "failed":
            status = f'<span class="qa-bad">{html.escape(tr("not_indexed", error=d.get("error") or ""))}</span>'
        elif d["status"] == "indexing":
            status = f'<span class="qa-muted">{html.escape(tr("indexing"))}</span>'
        else:
            status = f'<span class="qa-ok">{html.escape(tr("searchable"))}</span>'
        rows.append(
            f'<tr class="qa-doc" data-id="{html.escape(d["id"], quote=True)}">'
            f'<td class="qa-doc-name" title="{html.escape(d["source"], quote=True)}">{html.escape(d["name"])}'
            f'{" <span class=qa-muted>" + html.escape(tr("uploaded")) + "</span>" if d.get("uploaded") else ""}</td>'
            f'<td>{html.escape(d.get("kind") or "")}</td><td>{size_text(d.get("size", 0))}</td>'
            f'<td>{"" if d.get("pages") is None else int(d["pages"])}</td><td>{int(d.get("chunks") or 0)}</td>'
            f'<td>{html.escape(when)}</td><td>{status}</td></tr>')
    n_bad = len(docs) - n_ok
    count = (tr("library_count_1") if n_ok == 1 else tr("library_count", n=n_ok)) + (
        "" if not n_bad else tr("library_failed_1") if n_bad == 1 else tr("library_failed", n=n_bad))
    cols = "".join(f"<th>{html.escape(tr('col_' + c))}</th>"
                   for c in ("document", "type", "size", "pages", "chunks", "indexed", "status"))
    return (f'<div class="qa-library"><div class="qa-muted">{html.escape(count)}</div><table><thead><tr>{cols}</tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table></div>')


def document_html(view: dict[str, Any], start: int = -1, length: int = 0) -> str:
    """The whole document (or a window around the passage), the cited chunk shaded, the quote in <mark>."""
    text: str = view.get("text") or ""
    passage = view.get("passage") or None
    marks: list[tuple[int, int, str]] = []  # (offset, order, html) inserted before text[offset]
    if passage:
        marks += [(passage["start"], 1, '<span class="qa-region">'), (passage["end"], 0, "</span>")]
        if start >= 0 and length > 0 and passage["start"] <= start and start + length <= passage["end"]:
            marks += [(start, 2, '<mark class="qa-target">'), (start + length, -1, "</mark>")]
    if view.get("kind") == "pdf":
        for p in view.get("pages") or []:
            marks.append((p["start"], -2, f'<div class="qa-page">{html.escape(tr("page", page=int(p["page"])))}</div>'))
    lo, hi = 0, len(text)
    if len(text) > VIEW_MAX_CHARS:
        centre = passage["start"] if passage else 0
        lo = max(0, centre - VIEW_MAX_CHARS // 4)
        hi = min(len(text), lo + VIEW_MAX_CHARS)
        marks = [m for m in marks if lo <= m[0] <= hi]
    marks.sort(key=lambda m: (m[0], m[1]))
    out, pos = [], lo
    for off, _, tag in marks:
        out.append(html.escape(text[pos:off]))
        out.append(tag)
        pos = off
    out.append(html.escape(text[pos:hi]))
    where = ""
    if passage and passage.get("page") is not None:
        where = tr("passage_on_page", page=int(passage["page"]))
    cut = (f'<div class="qa-muted">{html.escape(tr("long_document"))}</div>' if (lo, hi) != (0, len(text)) else "")
    return (f'<div class="qa-doc-view"><div class="qa-doc-head"><b>{html.escape(view.get("name") or "")}</b>'
            f'<span class="qa-muted"> {html.escape(view.get("source") or "")}{html.escape(where)}</span></div>'
            f'{cut}<div class="qa-doc-text">{"".join(out)}</div></div>')
