"""Per-sentence vectors, computed at index time and stored next to the chunks.

The answerers (:class:`assistant.answer.ExtractiveAnswerer` and :class:`assistant.reader.Reader`) compare the
question with every sentence of the retrieved passages. Embedding those sentences at question time was most of an
``/ask`` (226 ms p50 at 393 chunks); the indexer now embeds them once, with the chunk, and the answerers' vector
cache (:meth:`assistant.answer.VectorCache.sentence_vectors`) looks them up by the hash of the sentence's text,
embedding only what it does not find (an index built before this existed, a sentence the store lacks). Such an
index fills in as files are read again: a changed file's new *and* kept chunks get their rows.

* **Which sentences**: :func:`sentence_texts` gives every text either answerer may take as a candidate from a
  passage: :func:`assistant.text.sentence_spans` of the chunk's text, plus the sentence + next-sentence
  texts the rule-based answerer joins ("… with the following command:" + the command). The same splitting,
  so lookups hit.
* **How** (setting ``sentence_vectors``): ``encode`` (default) embeds each sentence on its own with the passage
  prefix - the very vector the answerer would compute at question time (cosine >= 0.999: float16 storage); ``pool``
  mean-pools the chunk's own token states over each sentence's tokens, in the forward pass that embeds the
  chunk (no extra model time, different vectors: see docs/performance.md); ``off`` stores nothing and looks
  nothing up.
* **Where**: the embedded store keeps them in ``sentences.sqlite3`` (float16, one row per sentence of a chunk,
  indexed by text hash) under the index folder; a Chroma server keeps them in a second collection
  ``<collection>__sentences`` (ids ``<chunk_id>:<i>``, metadata ``chunk_id`` and ``h`` = text hash), so every
  app process on that server finds them.
* **When**: ``encode`` embeds them *after* the run's chunks, BM25 snapshot and lexicon are published
  (:meth:`assistant.indexing.Indexer._finish_sentences`): they are as many tokens as the chunks, half of a first
  index's model time, and answers work without them (embedding at question time) - so new documents are
  searchable about twice as soon (``searchable_seconds`` in the report). ``pool`` writes them with their chunk.
* **Consistency**: rows are deleted with their chunk (:meth:`ChunkStore.delete`, so re-indexing, removing a
  document from the library and the repair of an interrupted run all remove them); a run that did not finish
  prunes rows of chunks no manifest row accounts for and embeds the rows its committed chunks lack. A missing row
  only costs an embedding at question time: a stored vector is keyed by its text, so a surviving row is never
  wrong.
"""
from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .text import sentence_spans

log = logging.getLogger(__name__)

METHODS = ("encode", "pool", "off")
MIN_CHARS = 12  # shorter texts are never candidates (answer.py: len(text) < 12; reader.py: MIN_CHARS = 12)
JOIN_MAX = 200  # answer.py joins an announcing sentence with the next one when that one is at most this long


def text_key(text: str) -> bytes:
    """The key of a sentence's vector (the answerers' vector cache uses the same)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).digest()


def sentence_spans_for_vectors(text: str) -> list[tuple[int, int]]:
    """(start, end) in ``text`` of every candidate sentence the answerers may take from a passage ``text``."""
    from .answer import _introduces

    spans = sentence_spans(text)
    out: list[tuple[int, int]] = []
    for i, (s, e) in enumerate(spans):
        if e - s >= MIN_CHARS:
            out.append((s, e))
        if i + 1 < len(spans) and _introduces(text[s:e]) and spans[i + 1][1] - spans[i + 1][0] <= JOIN_MAX:
            out.append((s, spans[i + 1][1]))
    return list(dict.fromkeys(out))


def sentence_texts(text: str) -> list[str]:
    """The candidate sentence texts of a passage (see :func:`sentence_spans_for_vectors`), duplicates once."""
    return list(dict.fromkeys(text[s:e] for s, e in sentence_spans_for_vectors(text)))


def method_of(settings) -> str:
    name = str(getattr(settings, "sentence_vectors", "encode") or "encode").strip().lower()
    if name not in METHODS:
        raise ValueError(f"sentence_vectors must be one of {', '.join(METHODS)}, not {name!r}")
    return name


# =========================================================================== making them
def encode_sentences(embedder, texts: Sequence[str]) -> np.ndarray:
    """(a) Each sentence on its own with the passage prefix: the vectors question time would compute."""
    return embedder.encode(list(texts), is_query=False)


def can_pool(embedder) -> bool:
    """Does this embedder expose what :func:`pool_chunks` needs (a ``tokenizers`` tokenizer, token states)?"""
    engine = getattr(embedder, "engine", None)
    tok = getattr(getattr(embedder, "tokenizer", None), "_tok", None)
    return engine is not None and tok is not None and hasattr(engine, "token_states") and \
        type(engine).token_states is not _base_token_states()


def _base_token_states():
    from .engines import Engine

    return Engine.token_states


def pool_chunks(embedder, chunks) -> tuple[np.ndarray, list[dict[bytes, np.ndarray]]]:
    """(b) One forward pass per chunk: its vector (the mean of all its token states, as ``encode`` gives) and,
    for each candidate sentence, the mean of the token states over the sentence's own tokens.

    A sentence whose tokens fall beyond the model's length limit gets no vector (question time embeds it)."""
    embedder.warm_up()
    tok = embedder.tokenizer._tok
    prefix = getattr(embedder, "passage_prefix", "") or ""
    inputs, bases = [], []
    for c in chunks:
        text = c.embed_text if c.embed_text.strip() else "."
        inputs.append(prefix + text)
        bases.append(len(prefix) + (len(c.embed_text) - len(c.text)))  # where c.text starts in the input
    limit = getattr(embedder, "max_length", 512)
    tok.enable_truncation(limit)
    embedder.tokenizer._max = limit
    encs = tok.encode_batch(inputs, add_special_tokens=True)
    ids = [e.ids for e in encs]
    with embedder._model_lock:
        states = embedder.engine.token_states(ids)
    chunk_vecs = np.zeros((len(chunks), embedder.dim), np.float32)
    per_chunk: list[dict[bytes, np.ndarray]] = []
    for n, (c, enc, st) in enumerate(zip(chunks, encs, states)):
        chunk_vecs[n] = st.mean(0)
        special = np.asarray(enc.special_tokens_mask, dtype=bool)
        offs = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
        out: dict[bytes, np.ndarray] = {}
        base = bases[n]
        for s, e in sentence_spans_for_vectors(c.text):
            sel = (~special) & (offs[:, 0] >= base + s) & (offs[:, 1] <= base + e) & (offs[:, 1] > offs[:, 0])
            if sel.any():
                out.setdefault(text_key(c.text[s:e]), st[sel].mean(0))
        per_chunk.append(out)
    chunk_vecs /= np.maximum(np.linalg.norm(chunk_vecs, axis=1, keepdims=True), 1e-12)
    for out in per_chunk:
        for k, v in out.items():
            out[k] = v / max(float(np.linalg.norm(v)), 1e-12)
    return chunk_vecs, per_chunk


# =========================================================================== storing them
class SentenceStore:
    """Sentence vectors of the chunks of one store: ``put``, ``lookup`` by text key, ``delete`` by chunk."""

    def put(self, rows: Iterable[tuple[str, int, bytes, np.ndarray]]) -> None:  # (chunk_id, i, key, vector)
        raise NotImplementedError

    def lookup(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        raise NotImplementedError

    def delete(self, chunk_ids: Sequence[str]) -> None:
        raise NotImplementedError

    def chunk_ids(self) -> set[str]:
        raise NotImplementedError

    def prune(self, keep: set[str]) -> int:
        """Delete the rows of chunks not in ``keep`` (after an interrupted run); returns how many chunks."""
        drop = sorted(self.chunk_ids() - keep)
        if drop:
            self.delete(drop)
        return len(drop)

    def clear(self) -> None:
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    def checkpoint(self) -> None:
        """After an indexing run: give back what the writes left over (the embedded store's WAL)."""


class SqliteSentenceStore(SentenceStore):
    """float16 vectors in a SQLite file (WAL) under the embedded index's folder."""

    def __init__(self, path: Path, check_space=None):
        self.path = Path(path)
        self._local = threading.local()
        self._check_space = check_space or (lambda what, payload=0: None)
        self._ready = False
        self._lock = threading.Lock()

    def _db(self, create: bool) -> sqlite3.Connection | None:
        db = getattr(self._local, "db", None)
        if db is not None:
            return db
        if not create and not self.path.exists():
            return None  # an index built before sentence vectors existed: nothing to find, nothing to create
        self.path.parent.mkdir(parents=True, exist_ok=True)
        from .store import sqlite_connect

        db = sqlite_connect(self.path)
        db.execute("PRAGMA journal_size_limit=1048576")  # the WAL is cut back after a checkpoint, not kept at its peak
        with self._lock:
            if not self._ready:
                db.execute("CREATE TABLE IF NOT EXISTS sv (chunk_id TEXT, i INTEGER, h BLOB, vec BLOB, "
                           "PRIMARY KEY (chunk_id, i))")
                db.execute("CREATE INDEX IF NOT EXISTS sv_h ON sv (h)")
                self._ready = True
        self._local.db = db
        return db

    def _tx(self):
        from .store import sqlite_transaction

        return sqlite_transaction(self._db(create=True))

    def put(self, rows) -> None:
        rows = [(cid, int(i), bytes(k), np.asarray(v, dtype=np.float16).tobytes()) for cid, i, k, v in rows]
        if not rows:
            return
        self._check_space("cannot write sentence vectors", sum(len(r[3]) + 64 for r in rows))
        with self._tx() as db:
            db.executemany("INSERT OR REPLACE INTO sv VALUES (?, ?, ?, ?)", rows)

    def lookup(self, keys) -> dict[bytes, np.ndarray]:
        db = self._db(create=False)
        out: dict[bytes, np.ndarray] = {}
        if db is None or not keys:
            return out
        keys = list(dict.fromkeys(bytes(k) for k in keys))
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            q = f"SELECT h, vec FROM sv WHERE h IN ({','.join('?' * len(part))})"
            for h, vec in db.execute(q, part):
                if h not in out:
                    v = np.frombuffer(vec, dtype=np.float16).astype(np.float32)
                    out[h] = v / max(float(np.linalg.norm(v)), 1e-12)
        return out

    def delete(self, chunk_ids) -> None:
        ids = list(chunk_ids)
        if not ids or self._db(create=False) is None:
            return
        with self._tx() as db:
            for i in range(0, len(ids), 500):
                part = ids[i:i + 500]
                db.execute(f"DELETE FROM sv WHERE chunk_id IN ({','.join('?' * len(part))})", part)

    def chunk_ids(self) -> set[str]:
        db = self._db(create=False)
        return set() if db is None else {r[0] for r in db.execute("SELECT DISTINCT chunk_id FROM sv")}

    def count(self) -> int:
        db = self._db(create=False)
        return 0 if db is None else int(db.execute("SELECT COUNT(*) FROM sv").fetchone()[0])

    def clear(self) -> None:
        if self._db(create=False) is not None:
            with self._tx() as db:
                db.execute("DELETE FROM sv")

    def checkpoint(self) -> None:
        """Fold the WAL into the file and cut it back (end of an indexing run; best effort: a reader may hold it)."""
        db = self._db(create=False)
        if db is not None:
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                log.debug("sentence store checkpoint failed", exc_info=True)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


class ChromaSentenceStore(SentenceStore):
    """A second collection on the Chroma server, ``<collection>__sentences``: every process on the server shares it."""

    def __init__(self, store, name: str):
        self.store = store  # the ChunkStore (its client, its error handling)
        self.name = name
        self._col = None
        self._lock = threading.Lock()
        self._absent_until = 0.0

    ABSENT_FOR = 30.0  # seconds a missing collection is taken as missing (an old index: no listing per question)

    def _collection(self, create: bool = True):
        with self._lock:
            if self._col is None:
                client = self.store.client()
                if not create:
                    if time.monotonic() < self._absent_until:
                        return None
                    names = [getattr(c, "name", c) for c in self.store.call("cannot list collections", client.list_collections)]
                    if self.name not in names:
                        self._absent_until = time.monotonic() + self.ABSENT_FOR
                        return None
                # never searched by similarity: the smallest HNSW graph Chroma allows keeps the server's work down
                self._col = self.store.call(
                    "cannot open the sentence collection", client.get_or_create_collection, self.name,
                    configuration={"hnsw": {"space": "cosine", "ef_construction": 16, "max_neighbors": 4}})
            return self._col

    def _call(self, what: str, create: bool, method: str, **kwargs):
        """``collection.<method>(**kwargs)``; None when the collection does not exist and ``create`` is False.

        A handle opened before another process rebuilt the index points at a collection that no longer exists:
        the call is retried once on a freshly opened one."""
        for attempt in (0, 1):
            col = self._collection(create=create)
            if col is None:
                return None
            try:
                return getattr(col, method)(**kwargs)
            except Exception as err:  # noqa: BLE001
                with self._lock:
                    self._col = None
                if attempt or "does not exist" not in str(err).lower():
                    raise self.store._error(what, err) from None
        return None

    def put(self, rows) -> None:
        rows = list(rows)
        if not rows:
            return
        for i in range(0, len(rows), 1000):
            part = rows[i:i + 1000]
            self._call("cannot write sentence vectors", True, "upsert", ids=[f"{cid}:{n}" for cid, n, _, _ in part],
                       embeddings=np.stack([np.asarray(v, dtype=np.float32) for *_, v in part]),
                       metadatas=[{"chunk_id": cid, "h": bytes(k).hex()} for cid, _, k, _ in part])

    def lookup(self, keys) -> dict[bytes, np.ndarray]:
        out: dict[bytes, np.ndarray] = {}
        if not keys:
            return out
        hexes = list(dict.fromkeys(bytes(k).hex() for k in keys))
        for i in range(0, len(hexes), 500):
            res = self._call("cannot read sentence vectors", False, "get", where={"h": {"$in": hexes[i:i + 500]}},
                             include=["embeddings", "metadatas"])
            if res is None:
                return out
            embs = res.get("embeddings")
            if embs is None:
                continue
            for meta, emb in zip(res["metadatas"], embs):
                k = bytes.fromhex(meta["h"])
                if k not in out:
                    v = np.asarray(emb, dtype=np.float32)
                    out[k] = v / max(float(np.linalg.norm(v)), 1e-12)
        return out

    def delete(self, chunk_ids) -> None:
        ids = list(chunk_ids)
        if not ids or self._collection(create=False) is None:
            return
        for i in range(0, len(ids), 500):
            self._call("cannot delete sentence vectors", False, "delete", where={"chunk_id": {"$in": ids[i:i + 500]}})

    def chunk_ids(self) -> set[str]:
        out: set[str] = set()
        offset = 0
        while True:
            res = self._call("cannot read sentence vectors", False, "get", include=["metadatas"], limit=5000, offset=offset)
            if res is None:
                return out
            out.update(m["chunk_id"] for m in res["metadatas"])
            if len(res["ids"]) < 5000:
                return out
            offset += 5000

    def count(self) -> int:
        n = self._call("cannot count sentence vectors", False, "count")
        return int(n or 0)

    def clear(self) -> None:
        client = self.store.client()
        with self._lock:
            try:
                client.delete_collection(self.name)
            except Exception:  # noqa: BLE001 - did not exist
                pass
            self._col = None
            self._absent_until = 0.0
