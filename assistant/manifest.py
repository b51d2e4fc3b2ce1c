"""The file manifest: a small SQLite database (WAL) recording what each indexed file contributed - its hash, size,
mtime and chunk ids (*pending* while they are being written) - and the chunks' BM25 tokens. It is the record manager
that makes indexing incremental and crash-safe; :func:`sqlite_connect`/:func:`sqlite_transaction` are the one
SQLite setup (the sentence-vector store opens its database the same way).
"""
from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator


@dataclass
class FileRecord:
    path: str  # absolute path (the key)
    source: str  # display path stored in chunk metadata
    file_hash: str
    size: int
    mtime: float
    chunk_ids: list[str]
    status: str = "done"  # or "pending" while its chunks are being written
    pending_ids: list[str] | None = None


def sqlite_connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode with the WAL journal (readers never wait for the writer), shareable across
    threads: the manifest and the sentence-vector store (assistant.sentences) open theirs this way."""
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


@contextmanager
def sqlite_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception (a kill included: BaseException)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    else:
        db.execute("COMMIT")


class Manifest:
    """What every indexed file contributed (SQLite, one row per file)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            db.execute("""CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, source TEXT, file_hash TEXT,
                          size INTEGER, mtime REAL, chunk_ids TEXT, status TEXT, pending_ids TEXT)""")
            db.execute("CREATE TABLE IF NOT EXISTS lex (chunk_id TEXT PRIMARY KEY, tokens TEXT)")

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = sqlite_connect(self.path)
        return db

    def _tx(self):
        return sqlite_transaction(self._db())

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # --- meta ----------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._db().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, **values: Any) -> None:
        with self._tx() as db:
            for k, v in values.items():
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, str(v)))

    # --- files ---------------------------------------------------------------
    def files(self) -> dict[str, FileRecord]:
        out = {}
        for row in self._db().execute("SELECT path, source, file_hash, size, mtime, chunk_ids, status, pending_ids FROM files"):
            out[row[0]] = FileRecord(row[0], row[1], row[2], row[3], row[4], json.loads(row[5] or "[]"), row[6],
                                     json.loads(row[7]) if row[7] else None)
        return out

    def put(self, rec: FileRecord) -> None:
        with self._tx() as db:
            self._put(db, rec)

    @staticmethod
    def _put(db: sqlite3.Connection, rec: FileRecord) -> None:
        db.execute("INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?)",
                   (rec.path, rec.source, rec.file_hash, rec.size, rec.mtime, json.dumps(rec.chunk_ids), rec.status,
                    json.dumps(rec.pending_ids) if rec.pending_ids is not None else None))

    def put_many(self, recs: Iterable[FileRecord]) -> None:
        with self._tx() as db:
            for rec in recs:
                self._put(db, rec)

    def remove(self, paths: Iterable[str]) -> None:
        with self._tx() as db:
            db.executemany("DELETE FROM files WHERE path=?", [(p,) for p in paths])

    def clear(self) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM files")
            db.execute("DELETE FROM lex")
            db.execute("DELETE FROM meta")

    # --- lexical token cache (so BM25 rebuilds only tokenise new chunks) ---------
    def lex_tokens(self, ids: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        db = self._db()
        for i in range(0, len(ids), 900):
            part = ids[i:i + 900]
            q = f"SELECT chunk_id, tokens FROM lex WHERE chunk_id IN ({','.join('?' * len(part))})"
            for cid, toks in db.execute(q, part):
                out[cid] = toks.split(" ") if toks else []
        return out

    def put_lex(self, items: dict[str, list[str]]) -> None:
        with self._tx() as db:
            db.executemany("INSERT OR REPLACE INTO lex VALUES (?, ?)", [(k, " ".join(v)) for k, v in items.items()])

    def prune_lex(self, keep: set[str]) -> None:
        ids = [r[0] for r in self._db().execute("SELECT chunk_id FROM lex")]
        drop = [i for i in ids if i not in keep]
        if drop:
            with self._tx() as db:
                db.executemany("DELETE FROM lex WHERE chunk_id=?", [(i,) for i in drop])
