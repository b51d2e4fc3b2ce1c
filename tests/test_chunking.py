"""Chunker: exact offsets, sentence boundaries, token limits, coverage (with property tests)."""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.chunking import Chunker
from assistant.loaders import DocumentLoader
from assistant.schema import Block, Document
from assistant.text import sentence_spans, split_sentences

from .conftest import SEED_FILE


def _doc(text: str, blocks=None) -> Document:
    if blocks is None:
        blocks = []
        for m in re.finditer(r"(?:[^\n]|\n(?!\n))+", text):
            blocks.append(Block(m.start(), m.end()))
    return Document("mem.txt", text, blocks)


def test_offline_tiktoken_works():
    from assistant.offline import get_encoding

    enc = get_encoding("cl100k_base")
    assert enc.decode(enc.encode("Bonjour le monde")) == "Bonjour le monde"


def test_seed_chunks_are_exact_slices_with_metadata():
    doc = DocumentLoader().run(SEED_FILE)
    chunker = Chunker(160, 30)
    chunks = chunker.run(doc)
    assert len(chunks) >= 4
    for c in chunks:
        assert doc.text[c.start:c.end] == c.text
        assert chunker.count_tokens(c.text) <= 160
        assert c.source == "seeds/000_aa041678daf2c786.txt"
        assert len(c.id) == 32 and len(c.text_hash) == 32
    third = next(c for c in chunks if "1,3 milliard" in c.text)
    assert third.paragraph == 3
    # deterministic ids
    assert [c.id for c in chunker.run(doc)] == [c.id for c in chunks]


def test_chunks_end_at_sentence_boundaries():
    text = " ".join(f"Phrase numéro {i} qui parle du sujet {i % 7} avec quelques mots de plus." for i in range(60))
    doc = _doc(text)
    chunks = Chunker(40, 10).run(doc)
    assert len(chunks) > 5
    for c in chunks:
        assert c.text.endswith(".")
        assert c.text[0].isupper()


def test_overlap_repeats_trailing_sentences():
    text = " ".join(f"Sentence {i} is short." for i in range(40))
    chunks = Chunker(30, 12).run(_doc(text))
    for a, b in zip(chunks, chunks[1:]):
        assert b.start < a.end, "consecutive chunks should overlap"


def test_chunks_do_not_cross_pages_or_sections():
    text = "Page one text. More page one.\n\nPage two text here."
    blocks = [Block(0, 29, page=1), Block(31, len(text), page=2)]
    chunks = Chunker(200, 0).run(Document("x.pdf", text, blocks))
    assert [c.page for c in chunks] == [1, 2]


def test_long_sentence_is_cut_under_limit():
    text = "Un " + "très " * 700 + "long."
    chunker = Chunker(50, 10)
    chunks = chunker.run(_doc(text))
    assert len(chunks) > 5
    assert all(chunker.count_tokens(c.text) <= 50 for c in chunks)
    assert chunks[0].start == 0 and chunks[-1].end == len(text)


@pytest.mark.parametrize("text,expected", [
    ("M. Dupont est arrivé. Il a parlé.", 2),
    ("Le montant est de 1,3 milliard. C'est beaucoup.", 2),
    ("Dr. Smith met Mrs. Jones in the U.S. yesterday. They talked.", 2),
    ("Quelle heure est-il ? Il est midi !", 2),
    ("Version 2.0 est sortie. Voir fig. 3 pour les détails.", 2),
    ("« Bonjour. » Puis il partit.", 2),
])
def test_sentence_splitting(text, expected):
    assert len(split_sentences(text)) == expected, split_sentences(text)


# ---------------------------------------------------------------------------- properties
_word = st.text(alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd"), max_codepoint=0x2FF), min_size=1, max_size=12)
_sentence = st.lists(_word, min_size=1, max_size=30).map(lambda ws: " ".join(ws) + st_choice_end(ws))


def st_choice_end(ws):
    return "." if len(ws) % 3 else " !"


_paragraph = st.lists(_sentence, min_size=1, max_size=8).map(" ".join)
_document = st.lists(_paragraph, min_size=1, max_size=6).map("\n\n".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_document, size=st.integers(min_value=16, max_value=120), overlap_frac=st.floats(0, 0.45))
def test_property_chunks_cover_text_in_order_with_exact_offsets(text, size, overlap_frac):
    overlap = int(size * overlap_frac) if int(size * overlap_frac) < size // 2 else 0
    chunker = Chunker(size, overlap)
    doc = _doc(text)
    chunks = chunker.run(doc)
    # offsets point at the right characters
    for c in chunks:
        assert doc.text[c.start:c.end] == c.text
    # in order
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
    # every non-space character of the document is inside some chunk
    covered = [False] * len(text)
    for c in chunks:
        for i in range(c.start, c.end):
            covered[i] = True
    assert all(covered[i] for i, ch in enumerate(text) if not ch.isspace())
    # no chunk over the limit unless it is a single (cut) sentence
    for c in chunks:
        n = chunker.count_tokens(c.text)
        if n > size:
            assert len(sentence_spans(c.text)) == 1, (n, c.text)


@settings(max_examples=40, deadline=None)
@given(text=_document)
def test_property_sentence_spans_are_ordered_and_trimmed(text):
    spans = sentence_spans(text)
    last = 0
    for s, e in spans:
        assert last <= s < e <= len(text)
        assert not text[s].isspace() and not text[e - 1].isspace()
        last = e


# ---------------------------------------------------------------------------- long single lines (issue 15)
_LINE_WORDS = "le port de brest accueille chaque ete une grande fete maritime des voiliers traditionnels".split()


def _single_line(n_chars: int, seed: int = 0) -> str:
    import random

    rnd = random.Random(seed)
    out, total = [], 0
    while total < n_chars:
        w = rnd.choice(_LINE_WORDS)
        out.append(w)
        total += len(w) + 1
    return " ".join(out)


def _check_cut_line(doc: Document, chunker: Chunker) -> list:
    chunks = chunker.run(doc)
    text = doc.text
    for c in chunks:
        assert text[c.start:c.end] == c.text
        assert chunker.count_tokens(c.text) <= chunker.chunk_tokens
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    for a, b in zip(chunks, chunks[1:]):  # in order, and nothing but spaces between two chunks
        assert a.start < b.start and not text[a.end:b.start].strip()
    return chunks


def test_two_megabyte_single_line_chunks_in_bounded_time_with_exact_offsets():
    import time

    text = _single_line(2_000_000)
    chunker = Chunker(160, 30)
    chunker.count_tokens("warm up")
    t0 = time.perf_counter()
    chunks = _check_cut_line(_doc(text), chunker)
    took = time.perf_counter() - t0
    assert len(chunks) > 2000
    # ~1 s here; the quadratic cut took ~10 minutes. Generous: the machine is shared.
    assert took < 60, f"chunking a 2 MB line took {took:.1f} s"


@pytest.mark.parametrize("text", [
    "a" * 300_000,  # one "word" of a single letter: tokens are long runs
    "".join(chr(0x4E00 + (i * 7919) % 2000) for i in range(100_000)),  # CJK without spaces: tokens split characters
    "x" * 50_000 + " " + "abc" * 30_000,  # a word longer than a window, then another
])
def test_words_without_spaces_are_cut_under_the_limit_with_exact_offsets(text):
    chunker = Chunker(160, 30)
    chunks = _check_cut_line(_doc(text), chunker)
    assert len(chunks) > 10


def test_cutting_a_single_line_scales_linearly():
    import time

    chunker = Chunker(160, 30)
    chunker.count_tokens("warm up")

    def best(n_chars: int, runs: int) -> float:
        doc = _doc(_single_line(n_chars, seed=n_chars))
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            chunker.run(doc)
            times.append(time.perf_counter() - t0)
        return min(times)

    small, large = best(500_000, 3), best(4_000_000, 1)
    # 8x the input: ~8x the time when linear, 64x when quadratic; the bound leaves room for a busy machine
    assert large / small <= 15 * 1.5, f"0.5 MB: {small:.2f} s, 4 MB: {large:.2f} s"


def test_an_expired_deadline_stops_chunking_with_the_reason():
    from assistant.loaders import Deadline, FileTimeout

    deadline = Deadline(0.001)
    import time

    time.sleep(0.01)
    with pytest.raises(FileTimeout, match="took longer than 0.001 s to read; raise ASSISTANT_FILE_TIMEOUT"):
        Chunker(160, 30).run(_doc(_single_line(100_000)), deadline=deadline)
    assert Chunker(160, 30).run(_doc("Une phrase."), deadline=Deadline(0))  # 0: no budget


def _wrapped_lines(n: int) -> str:  # running text hard-wrapped at ~60 characters, no punctuation: one line group
    return "\n".join(_single_line(60, seed=i % 97)[:60] for i in range(n // 61))


def _markdown_markers(n: int) -> str:  # unclosed "**", "*", "[", "![" in one long paragraph
    words = _single_line(n).split(" ")
    marks = ["**", "*", "[", "![", "__"]
    return " ".join((marks[i % 5] + w) if i % 40 == 0 else w for i, w in enumerate(words))


@pytest.mark.parametrize("make,run", [
    (_wrapped_lines, lambda t: sentence_spans(t)),
    (lambda n: "Fin" + "." * n, lambda t: sentence_spans(t)),  # a run of dots
    (lambda n: "Fin. " + " " * n + "x", lambda t: sentence_spans(t)),  # a run of spaces after a sentence end
    (_markdown_markers, lambda t: __import__("assistant.loaders", fromlist=["x"]).markdown_paragraphs(t)),
], ids=["wrapped-lines", "dots", "spaces", "markdown-markers"])
def test_sentence_splitting_and_markdown_scale_linearly(make, run):
    import time

    def best(n: int) -> float:
        text = make(n)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            run(text)
            times.append(time.perf_counter() - t0)
        return max(min(times), 0.02)  # under 20 ms: timer noise and a busy machine

    small, large = best(100_000), best(800_000)
    # 8x the input: linear ~8x (up to ~15x measured here once the text outgrows the CPU caches), quadratic 64x
    assert large / small <= 8 * 3, f"100 KB: {small:.3f} s, 800 KB: {large:.3f} s"
