"""A chat conversation as Markdown: every question, its answer, and the answer's numbered sources."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from .schema import Answer
from .ui_i18n import location_text, tr


@dataclass
class Turn:
    question: str
    answer: Answer | None = None  # None when only the text is known (e.g. a conversation from before a restart)
    text: str = ""  # the answer's text when ``answer`` is None


def _md(text: str) -> str:
    """Document text inside Markdown: no HTML, no accidental formatting."""
    out = str(text).replace("\\", "\\\\")
    for ch in "`*_[]<>#|":
        out = out.replace(ch, "\\" + ch)
    return out


def to_markdown(turns: list[Turn], title: str = "Document Q&A", now: datetime | None = None) -> str:
    """The conversation as Markdown; its own words in the current language (``ui_i18n.language``; English by default)."""
    now = now or datetime.now(timezone.utc)
    lines = [f"# {tr('export_heading', title=title)}", "", f"_{tr('exported', when=now.strftime('%Y-%m-%d %H:%M'))}_", ""]
    for i, t in enumerate(turns, start=1):
        lines += [f"## {i}. {_md(t.question)}", ""]
        a = t.answer
        if a is None:
            lines += [_md(t.text) or f"_{tr('no_answer')}_", ""]
            continue
        if a.abstained:
            lines += [f"> {_md(a.answer)}", ""]
            continue
        short = str(getattr(a, "short_answer", "") or "").strip()
        text = a.answer
        if short and text.startswith(f"**{short}**"):  # the answerer already leads with it in bold: once
            text = text[len(short) + 4:]
            lines += [f"**{_md(short)}**" + _md(text).replace("\\[", "[").replace("\\]", "]"), ""]
        else:
            if short:
                lines += [f"**{_md(short)}**", ""]
            lines += [_md(text).replace("\\[", "[").replace("\\]", "]"), ""]
        if a.citations:
            lines += [tr("export_sources"), ""]
            for c in a.citations:
                loc = location_text(c.location or {})
                lines.append(f"{int(c.n)}. `{c.source.replace('`', '')}`" + (f" — {loc}" if loc else "")
                             + f"  \n   “{_md(c.quote)}”")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
