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
