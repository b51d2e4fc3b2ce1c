"""Chunking: a :class:`Document` -> token-bounded, sentence-aligned :class:`Chunk` s.

Sizes are counted in ``cl100k_base`` tokens (tiktoken, seeded offline).
Chunks end at sentence boundaries; a single sentence longer than the limit is
cut at token boundaries. Chunks never span two pdf pages or two sections. The
next chunk repeats trailing sentences of the previous one up to
``overlap_tokens``. Every chunk is an exact slice ``doc.text[start:end]``.
"""
from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass

from .offline import get_encoding
from .schema import Chunk, Document
from .text import sentence_spans


def text_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def chunk_id(source_key: str, thash: str, dup: int) -> str:
    return hashlib.blake2b(f"{source_key}\x00{thash}\x00{dup}".encode("utf-8"), digest_size=16).hexdigest()


@dataclass
class _Sent:
    start: int
    end: int
    tokens: int
    key: tuple  # (page, section): chunks never cross a change of key


class Chunker:
    """Split documents into chunks of at most ``chunk_tokens`` tokens.

    >>> from assistant.schema import Document, Block
    >>> doc = Document("a.txt", "One. Two.", [Block(0, 9)])
    >>> [c.text for c in Chunker(chunk_tokens=50).run(doc)]
    ['One. Two.']
    """

    def __init__(self, chunk_tokens: int = 160, overlap_tokens: int = 30, encoding: str = "cl100k_base"):
        if chunk_tokens < 16:
            raise ValueError("chunk_tokens must be at least 16")
        if not 0 <= overlap_tokens < chunk_tokens // 2:
            raise ValueError("chunk_overlap must be between 0 and half the chunk size")
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens
        self.encoding_name = encoding
        self._enc = None

    @property
    def enc(self):
        if self._enc is None:
            self._enc = get_encoding(self.encoding_name)
        return self._enc

    def settings_id(self) -> str:
        return f"sentence-v1:{self.encoding_name}:{self.chunk_tokens}:{self.overlap_tokens}"

    def count_tokens(self, text: str) -> int:
        return len(self.enc.encode_ordinary(text))

    # ------------------------------------------------------------------
    def run(self, doc: Document, source_key: str | None = None) -> list[Chunk]:
        source_key = source_key or doc.source
        sents = self._sentences(doc)
        spans = self._pack(sents)
        block_starts = [b.start for b in doc.blocks]
        chunks: list[Chunk] = []
        seen: dict[str, int] = {}
        for ordinal, (s, e, key) in enumerate(spans):
            text = doc.text[s:e]
            th = text_hash(text)
            dup = seen.get(th, 0)
            seen[th] = dup + 1
            bi = max(bisect.bisect_right(block_starts, s) - 1, 0)
            page, section = key
            chunks.append(Chunk(id=chunk_id(source_key, th, dup), source=doc.source, text=text, start=s, end=e,
                                text_hash=th, paragraph=bi + 1, page=page, section=section, ordinal=ordinal))
        return chunks

    def _sentences(self, doc: Document) -> list[_Sent]:
        spans: list[tuple[int, int, tuple]] = []
        for b in doc.blocks:
            key = (b.page, b.section)
            for s, e in sentence_spans(doc.text, b.start, b.end):
                spans.append((s, e, key))
        if not spans:
            return []
        counts = [len(t) for t in self.enc.encode_ordinary_batch([doc.text[s:e] for s, e, _ in spans])]
        out: list[_Sent] = []
        for (s, e, key), n in zip(spans, counts):
            if n <= self.chunk_tokens:
                out.append(_Sent(s, e, n, key))
            else:
                out.extend(self._cut_long(doc.text, s, e, key))
        return out

    def _cut_long(self, text: str, s: int, e: int, key: tuple) -> list[_Sent]:
        """Cut one over-long sentence at token boundaries (preferring whitespace)."""
        toks = self.enc.encode_ordinary(text[s:e])
        _, offsets = self.enc.decode_with_offsets(toks)
        pieces: list[_Sent] = []
        i = 0
        step = self.chunk_tokens
        while i < len(toks):
            j = min(i + step, len(toks))
            a = s + offsets[i]
            b = e if j >= len(toks) else s + offsets[j]
            if j < len(toks):  # back off to a space so words stay whole
                sp = text.rfind(" ", a + 1, b)
                if sp > a + (b - a) // 2:
                    b = sp
                    j = i + max(1, len(self.enc.encode_ordinary(text[a:b])))
            aa, bb = a, b
            while aa < bb and text[aa].isspace():
                aa += 1
            while bb > aa and text[bb - 1].isspace():
                bb -= 1
            if bb > aa:
                pieces.append(_Sent(aa, bb, self.count_tokens(text[aa:bb]), key))
            if j <= i:
                j = i + 1
            i = j
        return pieces

    def _pack(self, sents: list[_Sent]) -> list[tuple[int, int, tuple]]:
        out: list[tuple[int, int, tuple]] = []
        cur: list[_Sent] = []
        tokens = 0
        for st in sents:
            new_key = cur and st.key != cur[0].key
            if cur and (new_key or tokens + st.tokens > self.chunk_tokens):
                out.append((cur[0].start, cur[-1].end, cur[0].key))
                carry: list[_Sent] = []
                if not new_key and self.overlap_tokens:
                    ct = 0
                    for prev in reversed(cur[1:]):  # never repeat the whole chunk
                        if ct + prev.tokens > self.overlap_tokens or ct + prev.tokens + st.tokens > self.chunk_tokens:
                            break
                        carry.insert(0, prev)
                        ct += prev.tokens
                cur = carry
                tokens = sum(c.tokens for c in cur)
            cur.append(st)
            tokens += st.tokens
        if cur:
            out.append((cur[0].start, cur[-1].end, cur[0].key))
        return out
