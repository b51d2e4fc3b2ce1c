"""The BM25 side of retrieval: :class:`LexicalIndex`, a ``bm25s`` index over the live chunks.

Built by the indexer whenever the vector index changes and persisted under the index dir (one folder per
generation, switched atomically through ``CURRENT``). Queries load it once (memory-mapped) and reload only when the
generation changes: it is never rebuilt per query. One object per index is shared by everything that reads it.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .health import degraded, recovered
from .manifest import Manifest
from .store import ChunkStore
from .text import detect_language, lexical_tokens, lexical_version

log = logging.getLogger("assistant.retrieval")


# --------------------------------------------------------------------------- BM25


class LexicalIndex:
    """BM25 over the live chunks, persisted in ``<index>/bm25/gen-<n>/``.

    ``stemming`` (default: the store's setting ``stem``) is the tokeniser of the documents and of the queries; a
    snapshot records it (``lexical_version`` in its meta.json), and one built otherwise is rebuilt by the indexer.
    One object per index, shared by the retriever, the answerers (vocabulary, tokens) and the indexer (builds): the
    loaded snapshot is read once per generation. ``manifest`` (given here or per ``build``) caches the chunks' tokens."""

    def __init__(self, store: ChunkStore, manifest: Manifest | None = None, stemming: bool | None = None):
        self.store = store
        self.manifest = manifest
        if stemming is None:
            stemming = getattr(getattr(store, "settings", None), "stem", True)
        self.stemming = bool(stemming)
        self.version = lexical_version(self.stemming)
        self.root = store.local_path("bm25")
        self._lock = threading.Lock()
        self._loaded: tuple[int, Any, list[str], dict] | None = None  # (generation, bm25, ids, meta)
        self._live: tuple[Any, frozenset] | None = None  # (the loaded snapshot, its ids as a set)

    def exists(self, manifest: Manifest | None = None) -> bool:
        """A persisted index built by the current tokeniser exists."""
        manifest = manifest or self.manifest
        cur = self.current()
        if cur is None:
            return False
        try:
            meta = json.loads((cur[1] / "meta.json").read_text())
        except (OSError, ValueError):
            return False
        if meta.get("lexical_version") != self.version:
            if manifest and self.stemming:
                manifest.prune_lex(set())  # cached tokens are stale too (see build: only stemmed ones are cached)
            return False
        return True

    def tokens(self, text: str) -> list[str]:
        """``text``'s BM25 tokens, by this index's tokeniser (queries and documents alike)."""
        return lexical_tokens(text, self.stemming)

    def current(self) -> tuple[int, Path] | None:
        try:
            name = (self.root / "CURRENT").read_text().strip()
        except OSError:
            return None
        path = self.root / name
        if not path.exists():
            return None
        return int(name.split("-")[-1]), path

    # --- build -------------------------------------------------------------------
    def build(self, ids: list[str], generation: int, manifest: Manifest | None = None) -> None:
        import bm25s

        manifest = manifest or self.manifest
        # the manifest caches the default tokeniser's tokens (the indexer writes them as it embeds): an index without
        # stemming (an ablation) tokenises every chunk itself and leaves the cache to the default
        cached = manifest if manifest and self.stemming else None
        cache = cached.lex_tokens(ids) if cached else {}
        missing = [i for i in ids if i not in cache]
        if missing:  # chunks written by another machine (server mode) or a cold cache
            fetched = self.store.get(missing)
            fresh = {cid: self.tokens(f"{meta.get('context', '')}\n\n{doc}") for cid, (doc, meta) in fetched.items()}
            cache.update(fresh)
            if cached:
                cached.put_lex(fresh)
        ids = [i for i in ids if i in cache]
        corpus = [cache[i] or ["\u2205"] for i in ids]
        meta = {"generation": generation, "n": len(ids), "french_share": self._french_share(ids),
                "lexical_version": self.version}
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / f"gen-{generation}"
        tmp = self.root / f".tmp-{os.getpid()}-{generation}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            if ids:
                bm = bm25s.BM25(k1=1.2, b=0.75)
                bm.index(corpus, show_progress=False)
                bm.save(str(tmp / "bm25"))
            (tmp / "ids.json").write_text(json.dumps(ids))
            (tmp / "meta.json").write_text(json.dumps(meta))
        except BaseException:  # a full disk: give back what was written, the current snapshot stays in use
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        cur = self.root / f".CURRENT.{os.getpid()}"
        cur.write_text(target.name)
        os.replace(cur, self.root / "CURRENT")
        # keep the previous generation for readers that still have it open; drop older ones
        gens = sorted((p for p in self.root.glob("gen-*")), key=lambda p: int(p.name.split("-")[-1]))
        for old in gens[:-2]:
            shutil.rmtree(old, ignore_errors=True)
        if manifest:
            manifest.prune_lex(set(ids))

    def _french_share(self, ids: list[str], sample: int = 400) -> float:
        """Share of French passages, from a sample of the corpus (decides when questions need translating)."""
        if not ids:
            return 0.0
        step = max(1, len(ids) // sample)
        texts = [doc for doc, _ in self.store.get(ids[::step][:sample]).values()]
        return sum(detect_language(t) == "fr" for t in texts) / max(1, len(texts))

    # --- query -------------------------------------------------------------------
    def load(self) -> tuple[int, Any, list[str], dict] | None:
        cur = self.current()
        if cur is None:
            return None
        gen, path = cur
        with self._lock:
            if self._loaded and self._loaded[0] == gen:
                return self._loaded
            import bm25s

            ids = json.loads((path / "ids.json").read_text())
            meta = json.loads((path / "meta.json").read_text())
            bm = bm25s.BM25.load(str(path / "bm25"), mmap=True) if ids else None
            self._loaded = (gen, bm, ids, meta)
            self._check_version(meta)
            return self._loaded

    def _check_version(self, meta: dict) -> None:
        """A snapshot tokenised otherwise than the queries (the setting ``stem`` changed since the last index run)
        matches them badly: say so (``assistant.health``) until the indexer rebuilds it."""
        where = getattr(getattr(self.store, "settings", None), "index_path", None)
        built = meta.get("lexical_version")
        if built == self.version:
            recovered("bm25-tokens", where)
            return
        degraded("bm25-tokens", f"BM25 index: built by tokeniser {built or 'of an older version'}, queried by "
                 f"{self.version} (setting stem={'on' if self.stemming else 'off'}); keyword matches are poor until "
                 "`assistant index` rebuilds it", index_path=where)

    def search(self, tokens: list[str], n: int, extra: list[str] | None = None,
               extra_weight: float = 1.0, snapshot: tuple | None = None) -> tuple[list[tuple[str, float]], float]:
        """Top-n (chunk id, score) and the share of the query's terms the index knows.

        ``extra`` tokens (translations of the query's words) add their BM25 score times ``extra_weight``.
        ``snapshot``: a :meth:`load` result to search (one query reads one snapshot), else the current one."""
        loaded = self.load() if snapshot is None else snapshot
        if not loaded or loaded[1] is None or not tokens:
            return [], 0.0
        _, bm, ids, _ = loaded
        vocab = bm.vocab_dict
        known = [t for t in tokens if t in vocab]
        more = [t for t in dict.fromkeys(extra or []) if t in vocab and t not in known]
        if not known and not more:
            return [], 0.0
        scores = bm.get_scores(known) if known else np.zeros(len(ids), dtype=np.float32)
        if more and extra_weight > 0:
            scores = scores + extra_weight * bm.get_scores(more)
        n = min(n, len(ids))
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top])]
        hits = [(ids[i], float(scores[i])) for i in top if scores[i] > 0]
        coverage = (len(known) + (1 if more else 0)) / (len(tokens) + (1 if more else 0))
        return hits, min(1.0, coverage)

    def vocabulary(self) -> dict | None:
        """The corpus's lexical vocabulary (stemmed tokens), or None when there is no index."""
        loaded = self.load()
        if not loaded or loaded[1] is None:
            return None
        return loaded[1].vocab_dict

    def live_ids(self, snapshot: tuple | None = None) -> set[str] | None:
        loaded = self.load() if snapshot is None else snapshot
        if not loaded:
            return None
        live = self._live
        if live is None or live[0] is not loaded:  # built once per snapshot, not per query (100k ids: milliseconds)
            live = self._live = (loaded, frozenset(loaded[2]))
        return live[1]

    def meta(self, snapshot: tuple | None = None) -> dict:
        loaded = self.load() if snapshot is None else snapshot
        return loaded[3] if loaded else {}
