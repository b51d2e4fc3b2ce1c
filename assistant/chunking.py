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
from typing import Iterable, Iterator

from .offline import get_encoding
from .schema import Chunk, Document
from .text import iter_sentence_spans


def text_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def chunk_id(source_key: str, thash: str, dup: int) -> str:
    return hashlib.blake2b(f"{source_key}\x00{thash}\x00{dup}".encode("utf-8"), digest_size=16).hexdigest()


@dataclass(slots=True)
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
    def run(self, doc: Document, source_key: str | None = None, deadline=None) -> list[Chunk]:
        """Chunks of ``doc``; ``deadline`` (an object with ``check()``, see :class:`assistant.loaders.Deadline`) is
        checked between pieces of work, so that a file over its time budget stops with a reason."""
        source_key = source_key or doc.source
        # sentences -> pieces -> chunk spans is one stream: what is held at once is one chunk's sentences, whatever the
        # length of the document (lists of every sentence, and tiktoken's batch encoding, which makes a Future per
        # text, took ~200 bytes a character on a paragraph of 100k short lines)
        spans = self._pack(self._sentences(doc, deadline), doc.text)
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

    # Over-long sentences are tokenised through a window of text, never whole: a window holds a little more than one
    # piece (``chunk_tokens + _MARGIN`` tokens; it starts at ``_CHARS_PER_TOKEN`` characters a token and doubles while
    # it holds fewer), so each piece costs the same whatever the length of the sentence and cutting is linear in it.
    # Re-encoding the whole rest of the sentence for every piece made a 2 MB line of words take ~10 minutes.
    _MARGIN = 16  # tokens past the cut: the window's end cannot change the tokens before the cut
    _CHARS_PER_TOKEN = 8

    _CHECK_EVERY = 4096  # sentences between two deadline checks inside one block

    def _sentences(self, doc: Document, deadline=None) -> Iterator[_Sent]:
        """The sentences of ``doc`` with their token counts, over-long ones cut in pieces, one at a time."""
        # sentences longer than one window go to _cut_long without being encoded whole (encoding is linear, but a
        # 20 MB sentence would be encoded here and then again piece by piece)
        window = (self.chunk_tokens + self._MARGIN) * self._CHARS_PER_TOKEN
        encode = self.enc.encode_ordinary  # one text at a time: 12x faster than encode_ordinary_batch on short texts
        text = doc.text
        for b in doc.blocks:
            if deadline is not None:
                deadline.check()
            key = (b.page, b.section)
            for i, (s, e) in enumerate(iter_sentence_spans(text, b.start, b.end)):
                if deadline is not None and i % self._CHECK_EVERY == self._CHECK_EVERY - 1:
                    deadline.check()
                if e - s <= window:
                    n = len(encode(text[s:e]))
                    if n <= self.chunk_tokens:
                        yield _Sent(s, e, n, key)
                        continue
                yield from self._cut_long(text, s, e, key, deadline)

    def _cut_long(self, text: str, s: int, e: int, key: tuple, deadline=None) -> Iterator[_Sent]:
        """Cut one over-long sentence into pieces of at most ``chunk_tokens`` tokens (at spaces when possible).

        Linear in the sentence: each piece tokenises a bounded window of text starting at the piece (see _MARGIN).
        """
        limit = self.chunk_tokens
        width = (limit + self._MARGIN) * self._CHARS_PER_TOKEN
        a = s
        while a < e:
            while a < e and text[a].isspace():
                a += 1
            if a >= e:
                break
            if deadline is not None:
                deadline.check()
            while True:
                z = min(e, a + width)
                toks = self.enc.encode_ordinary(text[a:z])
                if z == e or len(toks) > limit + self._MARGIN:
                    break
                width *= 2  # long tokens (runs of one character, long words): widen until the window holds a piece
            if z == e and len(toks) <= limit:
                b = e
            else:
                _, offsets = self.enc.decode_with_offsets(toks)
                b = a + offsets[limit]
                sp = text.rfind(" ", a + 1, b)
                if sp > a + (b - a) // 2:
                    b = sp
                while b > a + 1 and self.count_tokens(text[a:b]) > limit:
                    b = a + (b - a) * 9 // 10  # rare: re-tokenising the piece gave more tokens
            end = b
            while end > a and text[end - 1].isspace():
                end -= 1
            yield _Sent(a, end, self.count_tokens(text[a:end]), key)
            # the next window: the characters this piece took per token (CJK text holds 1-2 characters a token, where
            # the first guess would tokenise ten pieces' worth), with room for the margin and a denser next piece
            width = max(64, (b - a) * (limit + 2 * self._MARGIN) // limit + 16)
            a = b

    def _pack(self, sents: Iterable[_Sent], text: str) -> Iterator[tuple[int, int, tuple]]:
        cur: list[_Sent] = []
        tokens = 0
        for st in sents:
            new_key = cur and st.key != cur[0].key
            if cur and (new_key or tokens + st.tokens > self.chunk_tokens):
                yield from self._emit(cur, text)
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
            yield from self._emit(cur, text)

    def _emit(self, cur: list[_Sent], text: str) -> Iterator[tuple[int, int, tuple]]:
        """The chunk spans of the sentences ``cur``; token counts of sentences are not exactly additive, so check the
        joined text and move trailing sentences out while it is over the limit."""
        sents = list(cur)
        while sents:
            take = len(sents)
            while take > 1 and self.count_tokens(text[sents[0].start:sents[take - 1].end]) > self.chunk_tokens:
                take -= 1
            yield sents[0].start, sents[take - 1].end, sents[0].key
            sents = sents[take:]
