"""A cross-lingual word bridge built from the corpus itself.

BM25 over French documents finds almost nothing for an English question
("allocate" never occurs in French text), and an extractive answerer cannot
check that a French sentence contains what an English question asks about.
A bilingual dictionary would fix both, but none ships offline. The multilingual
embedding model is one: single words embedded by multilingual-e5 land next to
their translations ("Morocco"/"Maroc" cosine 0.949, "ambassador"/"ambassadeur"
0.951) while unrelated words stay around 0.88-0.91.

At index time every dictionary word of the corpus (a word that ``wordfreq``
knows in English or French; identifiers and names need no translation) is
embedded once and stored as float16 next to the index. At query time a
question word is translated to the corpus words whose cosine is high in
absolute terms *and* stands out from the word's ten nearest neighbours (so that
"Spain" does not become "Maroc": countries are all ~0.91 from each other).
"""
from __future__ import annotations

import json
import time
import os
import re
import threading
from pathlib import Path

import numpy as np

from .text import STOP, error_line, fold_accents

_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)

# Calibrated for multilingual-e5 on English/French pairs (see the module docstring).
TRANSLATION_SIM = 0.92
TRANSLATION_MARGIN = 0.02


def dictionary_words(text: str) -> set[str]:
    """Folded, lower-case words of a text that are real English or French words."""
    from .text import zipf

    out = set()
    for w in _WORD.findall(text):
        low = w.lower()
        key = fold_accents(low)
        if key in STOP or len(key) < 3:
            continue
        if zipf(low) > 0 or zipf(key) > 0:
            out.add(key)
    return out


class Lexicon:
    """Corpus words and their embeddings (``<index>/lexicon/``)."""

    def __init__(self, root: Path, embedder):
        self.root = Path(root)
        self.embedder = embedder
        self._lock = threading.RLock()
        self._words: list[str] | None = None
        self._index: dict[str, int] = {}
        self._vectors: np.ndarray | None = None
        self._product: _ProductMatrix | None = None
        self._mtime = 0.0
        self.problem: str | None = None  # why the last load failed ("missing", "unreadable: …"), None when loaded
        self.problem_error: BaseException | None = None

    # --- persistence -------------------------------------------------------------
    def _paths(self):
        return self.root / "words.json", self.root / "vectors.npy", self.root / "meta.json"

    def load(self) -> bool:
        words_p, vec_p, meta_p = self._paths()
        with self._lock:
            try:
                mtime = meta_p.stat().st_mtime
            except OSError as err:
                self.problem, self.problem_error = "missing", err
                return False
            if self._words is not None and mtime == self._mtime:
                return True
            try:
                meta = json.loads(meta_p.read_text())
                if meta.get("embedder") != self.embedder.model_id:
                    self.problem, self.problem_error = f"built with another embedding model ({meta.get('embedder')})", None
                    return False
                words = json.loads(words_p.read_text())
                vectors = np.load(vec_p, mmap_mode="r")
            except (OSError, ValueError) as err:
                self.problem = f"unreadable ({error_line(err, 120, with_type=True)})"
                self.problem_error = err
                return False
            if len(words) != len(vectors):
                self.problem, self.problem_error = f"damaged ({len(words)} words, {len(vectors)} vectors)", None
                return False
            self.problem, self.problem_error = None, None
            self._words, self._vectors, self._mtime = words, vectors, mtime
            self._product = None
            self._index = {w: i for i, w in enumerate(words)}
            return True

    def __len__(self) -> int:
        return len(self._words or [])

    def add(self, words: set[str], batch: int = 2048) -> int:
        """Embed the words not yet known and persist; returns how many were added.

        The words are embedded outside the lock: queries keep translating with the saved lexicon meanwhile (an
        indexing run's encoding gives way to questions, which must not then wait here for all of it). One indexing
        run at a time adds words (the index lock), so the lexicon read at the start is still the one saved after."""
        with self._lock:
            if self.load():
                base_words, base_vectors = list(self._words), self._vectors
                new = sorted(w for w in words if w not in self._index)
            else:
                base_words, base_vectors = [], None
                new = sorted(words)
        if not new:
            return 0
        parts = [np.asarray(base_vectors, dtype=np.float16)] if base_words else []
        for i in range(0, len(new), batch):
            parts.append(self.embedder.encode(new[i:i + batch]).astype(np.float16))
        vectors = np.concatenate(parts) if len(parts) > 1 else parts[0]
        with self._lock:
            self._save(base_words + new, vectors)
        return len(new)

    def _save(self, words: list[str], vectors: np.ndarray) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        words_p, vec_p, meta_p = self._paths()
        tmp = f".tmp{os.getpid()}"
        try:
            np.save(str(vec_p) + tmp + ".npy", vectors)
            Path(str(words_p) + tmp).write_text(json.dumps(words, ensure_ascii=False))
        except BaseException:  # a full disk: give back what was written, the saved lexicon stays in use
            for leftover in (Path(str(vec_p) + tmp + ".npy"), Path(str(words_p) + tmp)):
                leftover.unlink(missing_ok=True)
            raise
        os.replace(str(vec_p) + tmp + ".npy", vec_p)
        os.replace(str(words_p) + tmp, words_p)
        meta_tmp = Path(str(meta_p) + tmp)
        meta_tmp.write_text(json.dumps({"embedder": self.embedder.model_id, "n": len(words)}))
        os.replace(meta_tmp, meta_p)
        self._mtime = -1.0  # reload (memory-mapped); a question translating meanwhile keeps the pair it took
        self.load()

    def clear(self) -> None:
        import shutil

        with self._lock:
            shutil.rmtree(self.root, ignore_errors=True)
            self._words, self._vectors, self._index = None, None, {}

    # --- lookup ------------------------------------------------------------------
    def translate(self, terms: list[str], vectors: np.ndarray | None = None, top: int = 4) -> dict[str, dict[str, float]]:
        """For each (folded) term, corpus words that are its translations or close variants, with cosines."""
        out: dict[str, dict[str, float]] = {t: {} for t in terms}
        with self._lock:  # one consistent (words, vectors) pair, though an indexing run may save a new one meanwhile
            if not terms or not self.load() or not len(self._words):
                return out
            if self._product is None:  # float16 on disk; in memory, the form of the fastest product on this CPU
                self._product = _ProductMatrix(self._vectors)
            words, stored, V = self._words, self._vectors, self._product
        if vectors is None:
            vectors = self.embedder.encode(terms)
        q = np.asarray(vectors, dtype=np.float32)
        approx = V.sims(q)
        from .text import stem

        for qv, term, arow in zip(q, terms, approx):
            # a shortlist by the (possibly bf16) product, then the exact cosines of the stored vectors for it
            m = min(SHORTLIST, len(arow))
            cand = np.sort(np.argpartition(-arow, m - 1)[:m]) if len(arow) > m else np.arange(len(arow))
            exact = np.asarray(stored[cand], dtype=np.float32) @ qv
            loc = np.argsort(-exact)[:60]
            order = cand[loc].tolist()
            sim = dict(zip(order, exact[loc].tolist()))
            # inflections of the term itself ("method" -> "methods") match lexically anyway; leave them out of both
            # the candidates and the neighbourhood baseline, so real translations ("méthode") can stand out
            others = [j for j in order if stem(words[j]) != stem(term) and words[j] != term]
            if not others:
                continue
            near = float(np.mean([sim[j] for j in others[:10]]))
            for j in others[:top * 3]:
                if sim[j] >= TRANSLATION_SIM and sim[j] - near >= TRANSLATION_MARGIN and len(out[term]) < top:
                    out[term][words[j]] = float(sim[j])
        return out


SHORTLIST = 120  # words whose exact cosine is computed (the 60 nearest are taken from them)


class _ProductMatrix:
    """The lexicon's vectors for question-word x vocabulary products.

    A bf16 copy in torch is about 5x faster than float32 numpy where the CPU multiplies bf16 natively (1.8 vs
    9.4 ms for ten words at 40k words with AMX) and slower where it does not, so both are timed once on the
    matrix itself and the faster kept; the bf16 shortlist is re-scored exactly (see ``SHORTLIST``), so the
    translations are those of the float32 product either way."""

    def __init__(self, vectors16: np.ndarray):
        self.torch = None
        self.m = np.asarray(vectors16, dtype=np.float32)
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a dependency
            return
        m16 = torch.from_numpy(self.m).to(torch.bfloat16)
        probe = np.random.default_rng(0).standard_normal((10, self.m.shape[1])).astype(np.float32)

        def best(fn) -> float:
            fn()
            times = []
            for _ in range(3):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            return min(times)

        with torch.inference_mode():
            t16 = best(lambda: (torch.from_numpy(probe).to(torch.bfloat16) @ m16.T).float())
        t32 = best(lambda: probe @ self.m.T)
        if t16 < 0.8 * t32:
            self.torch, self.m = torch, m16

    def sims(self, q: np.ndarray) -> np.ndarray:
        if self.torch is None:
            return q @ self.m.T
        t = self.torch
        with t.inference_mode():
            return (t.from_numpy(q).to(t.bfloat16) @ self.m.T).float().numpy()
