"""Chunking in bounded memory (issue 15): unchanged chunks for ordinary documents, and a peak memory proportional to
the input for a single huge line.

The expected digests below were computed with the chunker as it was before the memory fixes (commit f65c84a): those
fixes must not move one chunk of an ordinary document.
"""
from __future__ import annotations

import hashlib
import json
import random
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.chunking import Chunker
from assistant.loaders import DocumentLoader

from .conftest import SEED_FILE

_FR = ("le port de brest accueille chaque été une grande fête maritime où des centaines de voiliers traditionnels "
       "participent la ville de quimper est connue pour ses faïences peintes à la main et son festival").split()
_EN = ("the harbour master records every ship that enters and leaves the port before dawn with the tide while the "
       "council meets on tuesdays to discuss the budget of the new library").split()


def _sentence(rnd: random.Random, words: list[str]) -> str:
    n = rnd.choice([3, 6, 9, 14, 22, 35])
    s = " ".join(rnd.choice(words) for _ in range(n))
    extra = rnd.random()
    if extra < 0.1:
        s += " (voir M. Dupont, p. 12)"
    elif extra < 0.2:
        s += ", etc. et le Dr. Martin"
    elif extra < 0.25:
        s += " — 1,3 milliard d'euros en 2021"
    return s[0].upper() + s[1:] + rnd.choice([".", ".", ".", "!", "?", "…", " :"])


def _markdown(seed: int) -> str:
    rnd = random.Random(seed)
    out = ["# Rapport annuel", ""]
    for sec in range(6):
        out += [f"## Partie {sec + 1}", ""]
        for _ in range(rnd.randint(2, 6)):
            kind = rnd.random()
            words = _FR if rnd.random() < 0.6 else _EN
            if kind < 0.1:
                out += [f"- {_sentence(rnd, words)}" for _ in range(rnd.randint(2, 5))]
            elif kind < 0.15:
                out += ["| année | montant |", "|---|---|"] + [f"| {2000 + i} | {rnd.randint(1, 999)} |"
                                                           for i in range(rnd.randint(2, 6))]
            elif kind < 0.25:  # a paragraph with hard line wraps
                para = " ".join(_sentence(rnd, words) for _ in range(rnd.randint(3, 8)))
                out += [para[i:i + 60] for i in range(0, len(para), 60)]
            elif kind < 0.3:  # one over-long sentence, no punctuation
                out.append(" ".join(rnd.choice(words) for _ in range(rnd.randint(200, 600))))
            elif kind < 0.33:  # a long token run
                out.append("x" * rnd.randint(500, 3000) + " fin.")
            else:
                out.append(" ".join(_sentence(rnd, words) for _ in range(rnd.randint(1, 12))))
            out.append("")
    return "\n".join(out)


def _html(seed: int) -> str:
    rnd = random.Random(seed)
    body = "".join(f"<h2>Section {i}</h2>" + "".join(f"<p>{' '.join(_sentence(rnd, _FR) for _ in range(rnd.randint(1, 8)))}</p>"
                                                     for _ in range(4)) for i in range(5))
    return f"<html><head><title>Une page</title></head><body><article>{body}</article></body></html>"


def _digest(doc, chunks) -> str:
    rows = [doc.text, [(b.start, b.end, b.page, b.section) for b in doc.blocks],
            [(c.id, c.start, c.end, c.text_hash, c.paragraph, c.page, c.section, c.ordinal, c.context) for c in chunks]]
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def _documents(tmp_path):
    (tmp_path / "rapport.md").write_text(_markdown(1), encoding="utf-8")
    (tmp_path / "notes.txt").write_text(_markdown(2).replace("#", ""), encoding="utf-8")
    (tmp_path / "court.md").write_text(_markdown(3), encoding="utf-8")
    (tmp_path / "page.html").write_text(_html(4), encoding="utf-8")
    (tmp_path / "seed.txt").write_bytes(SEED_FILE.read_bytes())
    return sorted(tmp_path.iterdir())


EXPECTED = {
    (160, 30): {"court.md": "7246bc63a93c0868", "notes.txt": "cd54320782d75868", "page.html": "62100fe08aba7146",
                "rapport.md": "7a6ae13fa95fccd9", "seed.txt": "71ea89da7608fde3"},
    (64, 10): {"court.md": "4c5a04cb79b6c72f", "notes.txt": "46eba4542e254183", "page.html": "fb06c1d6955c255b",
               "rapport.md": "f819a5c747caf63f", "seed.txt": "771cb5de3925c7c4"},
}


@pytest.mark.parametrize("size", [(160, 30), (64, 10)])
def test_ordinary_documents_chunk_as_before(tmp_path, size):
    loader = DocumentLoader()
    chunker = Chunker(*size)
    got = {}
    for p in _documents(tmp_path):
        doc = loader.run(p, source=p.name)
        got[p.name] = _digest(doc, chunker.run(doc))
    assert got == EXPECTED[size]


# --------------------------------------------------------------------------- bounded memory
# Loading + chunking a single huge line under tracemalloc: the peak of Python allocations, over the input's bytes.
# Measured after the fixes (Python 3.11): 2.75x for 8 MB of words on one line, 4.0x for CJK text and 100k short
# lines (the document's text and the chunks' texts, ids and hashes, ~1.2x the text with the overlap, are most of it).
# Before them: ~150x (the paragraph regex kept a backtracking frame per character: 1.2 GB for 8 MB; a paragraph of
# short lines made a tiktoken Future per sentence).
PEAK_PER_INPUT_BYTE = 8.0


def _line_of_words(n: int, rnd: random.Random) -> str:
    words = _FR + _EN
    out, total = [], 0
    while total < n:
        w = rnd.choice(words)
        out.append(w)
        total += len(w.encode("utf-8")) + 1
    return " ".join(out)


def _cjk(n: int, rnd: random.Random) -> str:
    block = "".join(chr(0x4E00 + rnd.randrange(400)) for _ in range(50_000))
    return (block * (n // 3 // len(block) + 1))[:n // 3]


def _short_lines(n: int, rnd: random.Random) -> str:
    return "\n".join(" ".join(rnd.choice(_FR) for _ in range(3)) for _ in range(n // 18))


def _peak_ratio(path) -> tuple[float, int]:
    chunker = Chunker(160, 30)
    chunker.count_tokens("warm up")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        doc = DocumentLoader().run(path)
        chunks = chunker.run(doc)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert chunks and all(doc.text[c.start:c.end] == c.text for c in chunks[:50])
    return peak / size, len(chunks)


@pytest.mark.slow
@pytest.mark.parametrize("kind,mb", [("line-words", 8), ("cjk", 2), ("short-lines", 2)])
def test_chunking_peak_memory_is_proportional_to_the_input(tmp_path, kind, mb):
    make = {"line-words": _line_of_words, "cjk": _cjk, "short-lines": _short_lines}[kind]
    path = tmp_path / f"{kind}.txt"
    path.write_text(make(mb * 1_000_000, random.Random(0)), encoding="utf-8")
    ratio, n = _peak_ratio(path)
    assert ratio <= PEAK_PER_INPUT_BYTE, (f"{kind}: loading + chunking {path.stat().st_size / 1e6:.1f} MB peaked at "
                                          f"{ratio:.1f}x the input ({n} chunks), over {PEAK_PER_INPUT_BYTE}x")


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab \t\n.", max_size=40), st.data())
def test_paragraphs_are_the_old_regex_matches(text, data):
    """The paragraph splitter finds what ``(?:[^\\n]|\\n(?![ \\t]*\\n))+`` matched, without its per-character frames."""
    import re

    from assistant.text import _paragraphs

    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    expected = [(start + m.start(), start + m.end())
                for m in re.finditer(r"(?:[^\n]|\n(?![ \t]*\n))+", text[start:end])]
    assert list(_paragraphs(text, start, end)) == expected


@pytest.mark.slow
def test_a_large_html_page_leaves_no_copy_of_its_text_behind(tmp_path):
    """trafilatura's helper caches kept ~5 copies of a large page's text for the life of the process (12 MB held after
    loading a 2 MB page); the loader clears them after a large page. What stays is the document."""
    import gc

    small, big = tmp_path / "small.html", tmp_path / "big.html"
    small.write_text("<html><body><p>" + _line_of_words(5_000, random.Random(1)) + "</p></body></html>", encoding="utf-8")
    big.write_text("<html><head><title>Une page</title></head><body><p>" + _line_of_words(2_000_000, random.Random(0))
                   + "</p></body></html>", encoding="utf-8")
    loader = DocumentLoader()
    loader.run(small)  # imports and first-use state are not the page's
    gc.collect()
    tracemalloc.start()
    try:
        doc = loader.run(big)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(doc.text) > 1_900_000
    assert held <= 1.5 * len(doc.text), f"{held / 1e6:.1f} MB held after loading a {len(doc.text) / 1e6:.1f} MB page"
