"""Store: Chroma (embedded on disk, or a server) plus the local file manifest.

* :class:`ChunkStore` wraps one Chroma collection, opened through chromadb's
  public client API (cosine space, telemetry off; ``vectorstore()`` gives the
  LangChain ``Chroma`` over it). We always hand Chroma our
  own vectors, so its default embedding function (which would download a model)
  is never used. The collection metadata records the embedder and chunker that
  produced the vectors, and a *generation* number bumped after every indexing
  run, so other processes (the app, another machine on the same server) know
  when to refresh their BM25 index.
* :class:`~assistant.manifest.Manifest` (``assistant/manifest.py``, re-exported here) is a small SQLite
  database (WAL) recording what each file contributed: its hash, size, mtime and chunk ids. It is the record
  manager that makes indexing incremental and crash-safe.
"""
from __future__ import annotations

import errno
import hashlib
import logging
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

log = logging.getLogger(__name__)

from .manifest import FileRecord, Manifest, sqlite_connect, sqlite_transaction  # noqa: F401 - re-exported
from .offline import configure_environment
from .text import error_line
from .schema import ScoredChunk

SCHEMA_VERSION = 1


class StoreError(RuntimeError):
    """The vector store cannot be reached or used; ``str(err)`` says what to do."""


LOW_DISK_BYTES = 64 * 1024 * 1024  # a store write that fails with less free space than this is blamed on the disk
# Free space an embedded-store write must leave: when Chroma's files hit a full disk it may fail with an unclear
# message, or never return while holding the GIL (freezing the whole process), so writes that would come close are
# refused up front with a clear error.
WRITE_RESERVE_BYTES = 32 * 1024 * 1024


def _free_bytes(path: Path) -> int | None:
    """Free bytes on the file system holding ``path`` (or its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


class ChunkStore:
    """One Chroma collection of chunks with their vectors and metadata."""

    def __init__(self, settings, embedder=None):
        self.settings = settings
        self.embedder = embedder
        self._client = None
        self._collection = None  # chromadb's Collection, opened on first use
        self._lock = threading.RLock()
        self._sentences = None

    # --- identity ------------------------------------------------------------
    @property
    def target(self) -> str:
        server = self.settings.chroma_server
        return f"{server}#{self.settings.collection}" if server else f"embedded#{self.settings.collection}"

    @property
    def is_server(self) -> bool:
        return bool(self.settings.chroma_server)

    def local_path(self, name: str) -> Path:
        """A path in the index dir private to this store target (manifest, BM25 files)."""
        base = self.settings.index_path
        if self.is_server or self.settings.collection != "documents":
            slug = hashlib.blake2b(self.target.encode(), digest_size=6).hexdigest()
            return base / f"{name}-{slug}"
        return base / name

    @property
    def sentences(self):
        """The chunks' sentence vectors (:mod:`assistant.sentences`): a SQLite file next to an embedded store, a
        second collection ``<collection>__sentences`` on a server."""
        with self._lock:
            if self._sentences is None:
                from .sentences import ChromaSentenceStore, SqliteSentenceStore

                if self.is_server:
                    self._sentences = ChromaSentenceStore(self, f"{self.settings.collection}__sentences")
                else:
                    self._sentences = SqliteSentenceStore(self.local_path("sentences.sqlite3"), self._check_space)
            return self._sentences

    def client(self):
        """The Chroma client (connected on first use)."""
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    # --- connection ----------------------------------------------------------
    def _connect(self):
        configure_environment()
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        cs = ChromaSettings(anonymized_telemetry=False, allow_reset=True)
        server = self.settings.chroma_server
        try:
            if server:
                from urllib.parse import urlparse

                u = urlparse(server if "://" in server else "http://" + server)
                host, port = u.hostname or "127.0.0.1", u.port or (443 if u.scheme == "https" else 8000)
                # chromadb's client talks to the server while it is built, with no timeout: a server that accepts
                # connections but never answers (frozen, overloaded) would hang us there, so ask it first, bounded
                _probe(f"{'https' if u.scheme == 'https' else 'http'}://{host}:{port}/api/v2/heartbeat",
                       self.settings.chroma_timeout)
                client = chromadb.HttpClient(host=host, port=port, ssl=u.scheme == "https", settings=cs)
                _set_http_timeout(client, self.settings.chroma_timeout)
                client.heartbeat()
            else:
                path = self.settings.index_path / "chroma"
                path.mkdir(parents=True, exist_ok=True)
                client = chromadb.PersistentClient(path=str(path), settings=cs)
        except Exception as err:  # noqa: BLE001 - every failure becomes one clear message
            raise self._error("cannot open the vector store", err) from None
        return client

    def _error(self, what: str, err: BaseException) -> StoreError:
        server = self.settings.chroma_server
        if server:
            return StoreError(f"{what}: the Chroma server at {server} is unreachable or failing ({error_line(err)}). "
                              "Start it (e.g. `chroma run --path DIR --port 8000`) or unset ASSISTANT_CHROMA_URL.")
        low = str(err).lower()
        if "disk" in low and "full" in low or "no space" in low or getattr(err, "errno", None) == errno.ENOSPC:
            return StoreError(f"{what}: the disk holding {self.settings.index_dir} is full ({error_line(err)})")
        free = _free_bytes(self.settings.index_path)
        if free is not None and free < LOW_DISK_BYTES:  # Chroma reports some ENOSPC failures as "Error in compaction"
            return StoreError(f"{what}: the disk holding {self.settings.index_dir} is full ({free / 1e6:.1f} MB free; "
                              f"{error_line(err)})")
        return StoreError(f"{what} under {self.settings.index_dir}: {error_line(err)}")

    # HNSW parameters chosen with bench/ (`hnsw` step: recall@20 against exact search): at 89k chunks ef_search 64 -> 128
    # raises recall from 0.91 to 0.96 for +0.2 ms a query; M=16 / ef_construction=128 build in 27 s with the same
    # recall as M=32 or ef_construction=256 at 10k. Older collections are raised to it when opened.
    @property
    def collection(self):
        """The Chroma collection, opened (or created) through chromadb's public API. ``embedding_function=None``: the
        store always supplies its own vectors, so Chroma's default model (a download) is never used."""
        with self._lock:
            if self._collection is None:
                client = self._client or self._connect()
                try:
                    collection = client.get_or_create_collection(
                        name=self.settings.collection, embedding_function=None,
                        configuration={"hnsw": {"space": "cosine", "ef_construction": 128, "max_neighbors": 16,
                                                "ef_search": EF_SEARCH}})
                except StoreError:
                    raise
                except Exception as err:  # noqa: BLE001
                    raise self._error("cannot open the collection", err) from None
                self._client = client
                _raise_ef_search(collection)
                self._collection = collection
            return self._collection

    def vectorstore(self):
        """The LangChain ``Chroma`` vector store over the same collection (for LangChain chains)."""
        from langchain_chroma import Chroma

        _ = self.collection
        return Chroma(collection_name=self.settings.collection, embedding_function=self.embedder, client=self._client)

    def exists(self) -> bool:
        """Does the collection exist (without creating it)?"""
        try:
            client = self._client or self._connect()
            self._client = client
            names = [getattr(c, "name", c) for c in client.list_collections()]
            return self.settings.collection in names
        except StoreError:
            raise
        except Exception as err:  # noqa: BLE001
            raise self._error("cannot list collections", err) from None

    def reset(self) -> None:
        """Drop the collection (a clean rebuild follows)."""
        with self._lock:
            client = self._client or self._connect()
            self._client = client
            try:
                client.delete_collection(self.settings.collection)
            except Exception:  # noqa: BLE001 - did not exist
                pass
            self._collection = None
            self.sentences.clear()

    def call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StoreError:
            raise
        except Exception as err:  # noqa: BLE001
            raise self._error(what, err) from None

    # --- metadata ------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        meta = dict(self.call("cannot read the collection", lambda: self.collection.metadata) or {})
        return meta

    def _check_space(self, what: str, payload: int = 0) -> None:
        """Refuse a write the disk holding the embedded store cannot safely take (see WRITE_RESERVE_BYTES)."""
        if self.is_server:
            return
        need = WRITE_RESERVE_BYTES + 4 * payload
        free = _free_bytes(self.settings.index_path)
        if free is not None and free < need:
            raise StoreError(f"{what}: the disk holding {self.settings.index_dir} is full ({free / 1e6:.1f} MB free, "
                             f"{need / 1e6:.0f} MB needed to write safely)")

    def set_info(self, **values: Any) -> None:
        self._check_space("cannot update the collection")
        meta = self.info()
        meta.update({k: v for k, v in values.items()})
        meta = {k: v for k, v in meta.items() if not k.startswith("hnsw:")}
        self.call("cannot update the collection", self.collection.modify, metadata=meta)

    def generation(self) -> int:
        if self.is_server:
            # a collection object keeps the metadata it was opened with: ask the server for the current ones (another
            # machine may have indexed since), or a long-running reader never sees a new generation
            _ = self.collection
            meta = self.call("cannot read the collection",
                             lambda: self._client.get_collection(self.settings.collection).metadata) or {}
            return int(meta.get("assistant_generation", 0))
        return int(self.info().get("assistant_generation", 0))

    def count(self) -> int:
        return int(self.call("cannot count chunks", self.collection.count))

    # --- writes ----------------------------------------------------------------
    def upsert(self, ids: list[str], texts: list[str], metadatas: list[dict], vectors: np.ndarray, batch: int = 1000) -> None:
        self._check_space("cannot write chunks", np.asarray(vectors).size * 4 + sum(len(t.encode("utf-8")) + 512 for t in texts))
        for i in range(0, len(ids), batch):
            self.call("cannot write chunks", self.collection.upsert, ids=ids[i:i + batch], documents=texts[i:i + batch],
                      metadatas=metadatas[i:i + batch], embeddings=np.asarray(vectors[i:i + batch], dtype=np.float32))

    def update_metadata(self, ids: list[str], metadatas: list[dict], batch: int = 1000) -> None:
        self._check_space("cannot update chunks", 512 * len(ids))
        for i in range(0, len(ids), batch):
            self.call("cannot update chunks", self.collection.update, ids=ids[i:i + batch], metadatas=metadatas[i:i + batch])

    def delete(self, ids: list[str], batch: int = 1000) -> None:
        """Delete chunks and their sentence vectors (those first: a kill in between leaves chunks that fall back
        to embedding their sentences at question time, never vectors without a chunk that nothing would remove)."""
        if ids:
            self._check_space("cannot delete chunks", 64 * len(ids))
            self.call("cannot delete sentence vectors", self.sentences.delete, ids)
        for i in range(0, len(ids), batch):
            self.call("cannot delete chunks", self.collection.delete, ids=ids[i:i + batch])

    # --- reads -----------------------------------------------------------------
    def existing_ids(self, ids: list[str], batch: int = 1000) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(ids), batch):
            res = self.call("cannot read chunks", self.collection.get, ids=ids[i:i + batch], include=[])
            found.update(res["ids"])
        return found

    def vectors_by_text_hash(self, hashes: list[str], batch: int = 500) -> dict[str, np.ndarray]:
        """Reuse embeddings of identical text already in the store (renamed or copied files)."""
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(hashes), batch):
            part = hashes[i:i + batch]
            res = self.call("cannot read chunks", self.collection.get, where={"text_hash": {"$in": part}},
                            include=["embeddings", "metadatas"])
            embs = res.get("embeddings")
            if embs is None:
                continue
            for meta, emb in zip(res["metadatas"], embs):
                out.setdefault(meta["text_hash"], np.asarray(emb, dtype=np.float32))
        return out

    def all_ids(self, batch: int = 5000) -> list[str]:
        out: list[str] = []
        offset = 0
        while True:
            res = self.call("cannot read chunks", self.collection.get, include=[], limit=batch, offset=offset)
            out.extend(res["ids"])
            if len(res["ids"]) < batch:
                return out
            offset += batch

    def get(self, ids: list[str], batch: int = 1000) -> dict[str, tuple[str, dict]]:
        out: dict[str, tuple[str, dict]] = {}
        for i in range(0, len(ids), batch):
            res = self.call("cannot read chunks", self.collection.get, ids=ids[i:i + batch], include=["documents", "metadatas"])
            for cid, doc, meta in zip(res["ids"], res["documents"], res["metadatas"]):
                out[cid] = (doc, meta)
        return out

    def query(self, vector: np.ndarray, k: int) -> list[ScoredChunk]:
        n = max(1, k)
        res = self.call("search failed", self.collection.query, query_embeddings=[np.asarray(vector, dtype=np.float32)],
                        n_results=n, include=["documents", "metadatas", "distances"])
        out = []
        for cid, doc, meta, dist in zip(res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0]):
            sim = 1.0 - float(dist)
            out.append(ScoredChunk(chunk_id=cid, source=meta.get("source", ""), text=doc, score=sim, metadata=meta, dense_score=sim))
        return out


EF_SEARCH = 128


def _raise_ef_search(collection) -> None:
    """A collection made before ef_search was raised gets the current value (read by the next process to open it)."""
    try:
        hnsw = (getattr(collection, "configuration", None) or {}).get("hnsw") or {}
        if 0 < int(hnsw.get("ef_search") or 0) < EF_SEARCH:
            collection.modify(configuration={"hnsw": {"ef_search": EF_SEARCH}})
    except Exception:  # noqa: BLE001 - an older server or a read-only store: keep what it has
        log.debug("could not raise ef_search", exc_info=True)


def _probe(url: str, seconds: float) -> None:
    """Raise when the server does not answer within ``seconds`` (an HTTP error status is left to chromadb)."""
    import httpx

    with httpx.Client(timeout=httpx.Timeout(seconds, connect=min(seconds, 5.0))) as http:
        http.get(url)


def _set_http_timeout(client, seconds: float) -> None:
    """chromadb's HTTP client waits forever by default; a stopped server must not hang us."""
    import httpx

    server = getattr(client, "_server", None)
    session = getattr(server, "_session", None)
    if session is not None:
        session.timeout = httpx.Timeout(seconds, connect=min(seconds, 5.0))


@contextmanager
def index_lock(index_dir: Path, wait: float = 600.0) -> Iterator[None]:
    """One indexing run at a time per index dir (across processes)."""
    import fcntl

    index_dir.mkdir(parents=True, exist_ok=True)
    fh = open(index_dir / ".index.lock", "a+")
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreError(f"another indexing run holds {index_dir} (waited {wait:.0f}s)") from None
                time.sleep(0.2)
        yield
    finally:
        try:
            fcntl.flock(fh, fcntl.LOCK_UN)
        finally:
            fh.close()
