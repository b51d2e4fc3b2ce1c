"""Builders for real test documents (PDF via reportlab, DOCX via python-docx)."""
from __future__ import annotations

from pathlib import Path


def make_pdf(path: Path, pages: list[str]) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    for text in pages:
        y = 800
        for line in _wrap(text, 90):
            c.drawString(50, y, line)
            y -= 14
        c.showPage()
    c.save()
    return path


def _wrap(text: str, width: int) -> list[str]:
    words, lines, cur = text.split(), [], ""
    for w in words:
        if len(cur) + len(w) + 1 > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    if cur:
        lines.append(cur)
    return lines


def make_docx(path: Path, paragraphs: list[tuple[str, str]], table: list[list[str]] | None = None) -> Path:
    import docx

    d = docx.Document()
    for style, text in paragraphs:
        d.add_paragraph(text, style=style)
    if table:
        t = d.add_table(rows=len(table), cols=len(table[0]))
        for i, row in enumerate(table):
            for j, cell in enumerate(row):
                t.cell(i, j).text = cell
    d.save(str(path))
    return path


# --------------------------------------------------------------------------- reliability tests
from langchain_core.embeddings import Embeddings  # noqa: E402


class HashEmbedder(Embeddings):
    """A deterministic stand-in embedder (hashed word and character-trigram features), for fault tests.

    Crash safety, locking and the store do not depend on the model, and child processes that import this
    start in about a second instead of loading torch and the model. ``delay`` seconds are slept per
    ``encode`` call, to hold an indexing run open long enough to kill it mid-way. Not for answer quality.
    """

    dim = 256

    def __init__(self, delay: float = 0.0, name: str = "test-hash-256"):
        import threading

        self.delay = delay
        self.name = name
        self._ready = True
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.name

    def warm_up(self) -> None:
        pass

    def encode(self, texts, is_query: bool = False):
        import hashlib
        import re
        import time

        import numpy as np

        if self.delay:
            time.sleep(self.delay)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            low = text.lower()
            feats = re.findall(r"\w+", low) + [low[i:i + 3] for i in range(max(0, len(low) - 2))]
            for f in feats or ["."]:
                h = int.from_bytes(hashlib.blake2b(f.encode(), digest_size=4).digest(), "little")
                out[row, h % self.dim] += 1.0 if h & 1 << 31 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def embed_documents(self, texts):
        return self.encode(texts).tolist()

    def embed_query(self, text):
        return self.encode([text], is_query=True)[0].tolist()

    def describe(self) -> str:
        return self.name
