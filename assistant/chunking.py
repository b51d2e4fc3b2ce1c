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
        if overlap_tokens < 0:
            raise ValueError("chunk_overlap must be 0 or more")
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = min(overlap_tokens, chunk_tokens // 2 - 1)  # overlap stays under half a chunk
        self.encoding_name = encoding
        self._enc = None

    @property
    def enc(self):
        if self._enc is None:
            self._enc = get_encoding(self.encoding_name)
        return self._enc

    def settings_id(self) -> str:
        return f"sentence-v2:{self.encoding_name}:{self.chunk_tokens}:{self.overlap_tokens}"

    def count_tokens(self, text: str) -> int:
        return len(self.enc.encode_ordinary(text))

    # ------------------------------------------------------------------
    def run(self, doc: Document, source_key: str | None = None) -> list[Chunk]:
        source_key = source_key or doc.source
        sents = self._sentences(doc)
        spans = self._pack(sents, doc.text)
        block_starts = [b.start for b in doc.blocks]
        chunks: list[Chunk] = []
        seen: dict[str, int] = {}
        for ordinal, (s, e, key) in enumerate(spans):
            text = doc.text[s:e]
            page, section = key
            context = " — ".join(dict.fromkeys(x.strip() for x in (doc.title, section) if x and x.strip()
                                               and x.strip() not in text[:200]))
            # the hash covers what is embedded: the same text under another heading gets its own vector
            th = text_hash(f"{context}\n\n{text}" if context else text)
            dup = seen.get(th, 0)
            seen[th] = dup + 1
            bi = max(bisect.bisect_right(block_starts, s) - 1, 0)
            chunks.append(Chunk(id=chunk_id(source_key, th, dup), source=doc.source, text=text, start=s, end=e,
                                text_hash=th, paragraph=bi + 1, page=page, section=section, ordinal=ordinal,
                                context=context[:300]))
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
        """Cut one over-long sentence into pieces of at most ``chunk_tokens`` tokens (at spaces when possible)."""
        pieces: list[_Sent] = []
        a = s
        while a < e:
            while a < e and text[a].isspace():
                a += 1
            if a >= e:
                break
            toks = self.enc.encode_ordinary(text[a:e])
            if len(toks) <= self.chunk_tokens:
                b = e
            else:
                _, offsets = self.enc.decode_with_offsets(toks)
                b = a + offsets[self.chunk_tokens]
                sp = text.rfind(" ", a + 1, b)
                if sp > a + (b - a) // 2:
                    b = sp
                while b > a + 1 and self.count_tokens(text[a:b]) > self.chunk_tokens:
                    b = a + (b - a) * 9 // 10  # rare: re-tokenising the piece gave more tokens
            end = b
            while end > a and text[end - 1].isspace():
                end -= 1
            pieces.append(_Sent(a, end, self.count_tokens(text[a:end]), key))
            a = b
        return pieces

    def _pack(self, sents: list[_Sent], text: str) -> list[tuple[int, int, tuple]]:
        out: list[tuple[int, int, tuple]] = []
        cur: list[_Sent] = []
        tokens = 0
        for st in sents:
            new_key = cur and st.key != cur[0].key
            if cur and (new_key or tokens + st.tokens > self.chunk_tokens):
                self._emit(out, cur, text)
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
            self._emit(out, cur, text)
        return out

    def _emit(self, out: list, cur: list[_Sent], text: str) -> None:
        """Append the chunk of sentences ``cur``; token counts of sentences are not exactly additive, so check the
        joined text and move trailing sentences out while it is over the limit."""
        sents = list(cur)
        while sents:
            take = len(sents)
            while take > 1 and self.count_tokens(text[sents[0].start:sents[take - 1].end]) > self.chunk_tokens:
                take -= 1
            out.append((sents[0].start, sents[take - 1].end, sents[0].key))
            sents = sents[take:]
