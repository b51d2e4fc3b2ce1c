"""Typed records passed between pipeline stages."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Block:
    """A run of extracted text with its structural location.

    ``start``/``end`` are character offsets into ``Document.text``.
    """

    start: int
    end: int
    page: int | None = None  # 1-based, pdf only
    section: str = ""  # nearest heading above the block ("" when none)


@dataclass
class Document:
    source: str  # path as given to the indexer (relative to the cwd when possible)
    text: str  # full extracted text; blocks are separated by blank lines
    blocks: list[Block] = field(default_factory=list)
    file_hash: str = ""  # sha256 of the file bytes
    kind: str = ""  # txt, md, html, pdf, docx
    title: str = ""


@dataclass
class Chunk:
    id: str
    source: str
    text: str
    start: int  # char offsets into Document.text
    end: int
    text_hash: str
    paragraph: int  # 1-based index of the paragraph (blank-line separated) the chunk starts in
    page: int | None = None
    section: str = ""
    ordinal: int = 0  # position of the chunk in its document
    context: str = ""  # document title and section heading, embedded with the text

    @property
    def embed_text(self) -> str:
        """What is embedded and indexed for BM25: the heading context, then the text."""
        return f"{self.context}\n\n{self.text}" if self.context else self.text

    def metadata(self, file_hash: str) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "source": self.source,
            "start": self.start,
            "end": self.end,
            "text_hash": self.text_hash,
            "file_hash": file_hash,
            "paragraph": self.paragraph,
            "section": self.section,
            "ordinal": self.ordinal,
        }
        if self.page is not None:
            meta["page"] = self.page
        if self.context:
            meta["context"] = self.context
        return meta


@dataclass
class ScoredChunk:
    chunk_id: str
    source: str
    text: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)
    dense_score: float | None = None
    lexical_score: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"chunk_id": self.chunk_id, "source": self.source, "text": self.text, "score": round(float(self.score), 6)}


@dataclass
class Citation:
    n: int
    source: str
    location: dict[str, Any]
    quote: str
    chunk_id: str
    passage: str = ""  # the whole chunk text, for display with the quote highlighted
    quote_start: int = -1  # offset of quote inside passage
    supported: bool = True  # False when an LLM sentence could not be matched to its passage

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "source": self.source, "location": self.location, "quote": self.quote, "chunk_id": self.chunk_id}


@dataclass
class Answer:
    question: str
    answer: str
    abstained: bool
    citations: list[Citation] = field(default_factory=list)
    retrieved: list[ScoredChunk] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    standalone_question: str = ""  # the question after follow-up condensing
    language: str = "en"
    backend: str = "extractive"
    note: str = ""  # e.g. "The language model was unreachable; showing the grounded answer."
    unsupported: list[int] = field(default_factory=list)  # citation numbers flagged as unsupported
    debug: str = ""  # why the answerer abstained (shown by `ask --verbose`, not part of the JSON)
    confidence: float | None = None  # the reader's calibrated probability that the quoted sentence answers
    short_answer: str | None = None  # the span asked for ("1,3 milliard de dirhams"), when the reader found one
    no_answer: float | None = None  # the reader's prod(1 - p_i) over its top candidates (not part of the JSON)
    usage: Any = None  # the LLM call's token counts and raw output (assistant.llm.Usage; not part of the JSON)
    # how this answer was reached, per request (`ask --explain`, the fitted reader's rule features; not part of the
    # JSON): "terms", "kind" and "candidates" from the rules, "scored" from the fitted reader
    diagnostics: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def rule_candidates(self) -> list:
        """The rule-based answerer's scored candidate sentences for this answer (empty when it did not run)."""
        return self.diagnostics.get("candidates") or []

    @rule_candidates.setter
    def rule_candidates(self, cands: list) -> None:
        self.diagnostics["candidates"] = cands

    def to_json(self) -> dict[str, Any]:
        out = {
            "answer": self.answer,
            "abstained": self.abstained,
            "citations": [c.to_json() for c in self.citations],
            "retrieved": [r.to_json() for r in self.retrieved],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }
        if self.confidence is not None:
            out["confidence"] = round(float(self.confidence), 4)
            out["short_answer"] = self.short_answer
        if self.note:
            out["note"] = self.note
        if self.backend != "extractive":
            out["backend"] = self.backend
        if self.unsupported:
            out["unsupported"] = self.unsupported
        return out


def as_dict(obj: Any) -> dict[str, Any]:
    return asdict(obj)
