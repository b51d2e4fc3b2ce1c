"""Citations: numbered sources for ``[n]`` markers, their locations, checks and highlighting.

Every marker in an answer must resolve to exactly one entry and every entry
must be cited; :func:`renumber` enforces both for any answer text (the
extractive answerer's and an LLM's).
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass

from .schema import Citation, ScoredChunk

MARKER = re.compile(r"\[(\d{1,3})\]")


@dataclass
class Quote:
    chunk: ScoredChunk
    start: int  # offsets of the sentence inside chunk.text
    end: int

    @property
    def text(self) -> str:
        return self.chunk.text[self.start:self.end]


def location(chunk: ScoredChunk, offset: int = 0) -> dict:
    """Where a sentence sits: paragraph (1-based), page, section, character offsets in the extracted text."""
    meta = chunk.metadata or {}
    para = int(meta.get("paragraph", 1) or 1) + chunk.text[:offset].count("\n\n")
    loc: dict = {"paragraph": para}
    if meta.get("page") is not None:
        loc["page"] = int(meta["page"])
    if meta.get("section"):
        loc["section"] = meta["section"]
    start = meta.get("start")
    if start is not None:
        loc["char_start"] = int(start) + offset
    return loc


def make_citation(n: int, quote: Quote) -> Citation:
    return Citation(n=n, source=quote.chunk.source, location=location(quote.chunk, quote.start), quote=quote.text,
                    chunk_id=quote.chunk.chunk_id, passage=quote.chunk.text, quote_start=quote.start)


def format_location(loc: dict) -> str:
    parts = []
    if "page" in loc:
        parts.append(f"page {loc['page']}")
    if loc.get("section"):
        parts.append(f"section “{loc['section']}”")
    if "paragraph" in loc:
        parts.append(f"paragraph {loc['paragraph']}")
    return ", ".join(parts)


def renumber(answer: str, citations: list[Citation]) -> tuple[str, list[Citation], list[int]]:
    """Make markers and entries correspond one to one.

    Markers that point to no entry are removed (their numbers are returned);
    entries never cited are dropped; the rest are renumbered 1..n in order of
    first appearance.
    """
    by_n = {c.n: c for c in citations}
    order: list[int] = []
    dropped: list[int] = []

    def visit(m: re.Match) -> str:
        n = int(m.group(1))
        if n not in by_n:
            dropped.append(n)
            return ""
        if n not in order:
            order.append(n)
        return m.group(0)

    text = MARKER.sub(visit, answer)
    mapping = {old: i + 1 for i, old in enumerate(order)}
    text = MARKER.sub(lambda m: f"[{mapping[int(m.group(1))]}]", text)
    text = re.sub(r"[ \t]+([.,;:!?])", r"\1", re.sub(r"[ \t]{2,}", " ", text)).strip()
    out = []
    for old in order:
        c = by_n[old]
        c.n = mapping[old]
        out.append(c)
    return text, out, dropped


def check(answer: str, citations: list[Citation]) -> list[str]:
    """Problems with markers/entries (empty when every marker resolves and every entry is cited)."""
    problems = []
    nums = {int(m) for m in MARKER.findall(answer)}
    entries = {c.n for c in citations}
    for n in sorted(nums - entries):
        problems.append(f"marker [{n}] has no source entry")
    for n in sorted(entries - nums):
        problems.append(f"source [{n}] is never cited")
    if len(entries) != len(citations):
        problems.append("duplicate source numbers")
    return problems


def highlight_html(citation: Citation) -> str:
    """The passage as escaped HTML with the quoted sentence in ``<mark>`` (document text is untrusted)."""
    passage = citation.passage or citation.quote
    start = citation.quote_start
    if start < 0 or passage[start:start + len(citation.quote)] != citation.quote:
        start = passage.find(citation.quote)
    if start < 0:
        return html.escape(passage)
    end = start + len(citation.quote)
    return (html.escape(passage[:start]) + "<mark>" + html.escape(passage[start:end]) + "</mark>"
            + html.escape(passage[end:])).replace("\n\n", "<br><br>")
