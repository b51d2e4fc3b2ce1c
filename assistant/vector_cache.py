"""Vectors of questions, words and sentences, computed once per process (LRU caches), sentence vectors looked
up in the ones stored at index time (``assistant.sentences``) before anything is embedded."""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict

import numpy as np

from .sentences import text_key

log = logging.getLogger("assistant.answer")

# --------------------------------------------------------------------------- caches
class _LRU:
    def __init__(self, size: int):
        self.size = size
        self.data: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get_many(self, keys):
        with self.lock:
            out = {}
            for k in keys:
                if k in self.data:
                    self.data.move_to_end(k)
                    out[k] = self.data[k]
            return out

    def put_many(self, items: dict):
        with self.lock:
            for k, v in items.items():
                self.data[k] = v
                self.data.move_to_end(k)
            while len(self.data) > self.size:
                self.data.popitem(last=False)


class VectorCache:
    """Embeddings of words and sentences, computed once per process."""

    def __init__(self, embedder, size: int = 50_000):
        self.embedder = embedder
        self.words = _LRU(size)
        self.sents = _LRU(size)
        self.queries = _LRU(2048)
        self.stores: list = []  # sentence vectors stored at index time (assistant.sentences), looked up first
        self.embedded_sentences = 0  # sentences this cache had to embed (for tests and the benchmark)

    def attach(self, store) -> None:
        """Look sentence vectors up in ``store`` (a :class:`assistant.sentences.SentenceStore`) before embedding.

        A vector is keyed by its sentence's text and the store by its embedder, so a cache shared by assistants
        with the same embedder may look in each of their stores."""
        if all(s is not store for s in self.stores):
            self.stores.append(store)

    def query_and_words(self, query: str, words: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The question's vector and its words' vectors, whatever is not cached embedded in one call."""
        qhit = self.queries.get_many([query])
        have = self.words.get_many(words)
        need = [w for w in dict.fromkeys(words) if w not in have]
        if query in qhit:
            qvec = qhit[query]
            if need:
                have.update(self.word_vectors(need))
            return qvec, have
        from .embeddings import encode_with_query

        qvec, vecs = encode_with_query(self.embedder, query, need)
        self.queries.put_many({query: qvec})
        fresh = dict(zip(need, vecs))
        self.words.put_many(fresh)
        have.update(fresh)
        return qvec, have

    def query_vector(self, text: str) -> np.ndarray:
        """The question's vector (``is_query``), embedded once: retrieval and the answerer both need it."""
        hit = self.queries.get_many([text])
        if text in hit:
            return hit[text]
        vec = self.embedder.encode([text], is_query=True)[0]
        self.queries.put_many({text: vec})
        return vec

    def word_vectors(self, words: list[str]) -> dict[str, np.ndarray]:
        have = self.words.get_many(words)
        need = [w for w in dict.fromkeys(words) if w not in have]
        if need:
            vecs = self.embedder.encode(need, is_query=False)
            fresh = dict(zip(need, vecs))
            self.words.put_many(fresh)
            have.update(fresh)
        return have

    def sentence_vectors(self, sentences: list[str]) -> list[np.ndarray]:
        """The (passage) vectors of candidate sentences: cached, else stored at index time, else embedded now."""
        keys = [text_key(s) for s in sentences]
        have = self.sents.get_many(keys)
        need = [(k, s) for k, s in dict(zip(keys, sentences)).items() if k not in have]
        for store in self.stores:
            if not need:
                break
            try:
                found = store.lookup([k for k, _ in need])
            except Exception:  # noqa: BLE001 - a store that cannot be read (server down…) only costs embedding
                log.debug("sentence vector lookup failed", exc_info=True)
                continue
            if found:
                self.sents.put_many(found)
                have.update(found)
                need = [(k, s) for k, s in need if k not in found]
        if need:
            self.embedded_sentences += len(need)
            vecs = self.embedder.encode([s for _, s in need], is_query=False)
            fresh = {k: v for (k, _), v in zip(need, vecs)}
            self.sents.put_many(fresh)
            have.update(fresh)
        return [have[k] for k in keys]
