"""The document library: what is indexed, per file; removing one document; re-indexing one; reading one at a passage.

* :func:`record_run` is called by the indexer after every run: it notes when each file's current version was
  indexed, its page count (pdf), and the files that failed with their reason (a ``library`` table in the manifest's
  SQLite file; the manifest's own tables are untouched).
* :class:`Library` lists documents (:meth:`Library.documents`), removes one (:meth:`Library.remove`: its chunks, its
  BM25 entries and its manifest row, nothing else), re-indexes one (:meth:`Library.reindex`) and returns a document's
  text around a cited passage (:meth:`Library.passage`).

Removal reuses the indexer's crash-safety protocol: under the index lock the manifest is marked ``indexing``, the
file's row is removed (its chunks become orphans no row accounts for), a new BM25 snapshot without them is
published, then the chunks are deleted from Chroma and the manifest is marked ``clean``. A kill at any point leaves
an index the next indexing run repairs (it deletes orphans after an unfinished run and rebuilds the snapshot).
A removed file that still sits in an indexed folder is remembered as *removed* so that re-indexing the folder (the
app's start-up) does not bring it back; indexing that file explicitly (an upload, ``assistant index FILE``, the
library's re-index) brings it back.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from .loaders import kind_of
from .store import FileRecord, Manifest, index_lock

_TABLE = """CREATE TABLE IF NOT EXISTS library (path TEXT PRIMARY KEY, source TEXT, file_hash TEXT,
            indexed_at REAL, pages INTEGER, error TEXT, removed INTEGER DEFAULT 0)"""


def doc_id(path: str) -> str:
    """A short stable id for a file (its absolute path hashed): what the API and the page refer to."""
    return hashlib.blake2b(str(path).encode("utf-8", "replace"), digest_size=8).hexdigest()


def _table(manifest: Manifest):
    db = manifest._db()
    db.execute(_TABLE)
    return db


def _rows(manifest: Manifest) -> dict[str, dict]:
    db = _table(manifest)
    cur = db.execute("SELECT path, source, file_hash, indexed_at, pages, error, removed FROM library")
    return {r[0]: {"path": r[0], "source": r[1], "file_hash": r[2], "indexed_at": r[3], "pages": r[4], "error": r[5],
                   "removed": bool(r[6])} for r in cur}


def _put(manifest: Manifest, rows: Iterable[dict]) -> None:
    _table(manifest)
    with manifest._tx() as db:
        db.executemany("INSERT OR REPLACE INTO library VALUES (?,?,?,?,?,?,?)",
                       [(r["path"], r.get("source", ""), r.get("file_hash", ""), r.get("indexed_at"), r.get("pages"),
                         r.get("error"), int(bool(r.get("removed")))) for r in rows])


def _delete(manifest: Manifest, paths: Iterable[str]) -> None:
    _table(manifest)
    with manifest._tx() as db:
        db.executemany("DELETE FROM library WHERE path=?", [(p,) for p in paths])


def _pages(store, chunk_ids: list[str]) -> int | None:
    if not chunk_ids:
        return None
    pages = [meta.get("page") for _, meta in store.get(chunk_ids).values()]
    pages = [int(p) for p in pages if p is not None]
    return max(pages) if pages else None


def record_run(manifest: Manifest, store, failed: list[dict], explicit: Iterable[str | Path] = ()) -> None:
    """After an indexing run: note new versions (time indexed, pages), failures (reason) and explicit re-inclusions."""
    rows = _rows(manifest)
    now = time.time()
    out: list[dict] = []
    records = manifest.files()
    for key, rec in records.items():
        row = rows.get(key)
        if rec.status != "done":
            continue
        if row and row["file_hash"] == rec.file_hash and not row["error"] and not row["removed"]:
            continue
        pages = _pages(store, rec.chunk_ids) if kind_of(key) == "pdf" else None
        out.append({"path": key, "source": rec.source, "file_hash": rec.file_hash, "indexed_at": now, "pages": pages})
    for f in failed:
        key = _key(f.get("path", ""))
        if key in records and records[key].status == "done":
            continue  # an older version is still searchable; the failure shows with it below
        out.append({"path": key, "source": str(f.get("path", "")), "file_hash": "", "indexed_at": now,
                    "error": str(f.get("error", ""))})
    stale = [k for k, r in rows.items() if r["error"] and k not in {_key(f.get("path", "")) for f in failed}
             and (k not in records) and not Path(k).exists()]
    if out:
        _put(manifest, out)
    if stale:
        _delete(manifest, stale)
    include(manifest, explicit)


def _key(path: str | Path) -> str:
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError):
        return os.path.abspath(str(path))


def removed_paths(manifest: Manifest) -> set[str]:
    """Files removed from the library that folder re-indexing must skip."""
    return {k for k, r in _rows(manifest).items() if r["removed"]}


def include(manifest: Manifest, paths: Iterable[str | Path]) -> None:
    """Files indexed explicitly are no longer *removed*."""
    keys = [_key(p) for p in paths]
    if not keys:
        return
    rows = _rows(manifest)
    back = [k for k in keys if rows.get(k, {}).get("removed")]
    if back:
        _delete(manifest, back)


def skip_removed(manifest: Manifest, files: list[Path], explicit: Iterable[str | Path]) -> list[Path]:
    """``files`` without the removed ones, except those named explicitly (which the run brings back)."""
    gone = removed_paths(manifest) - {_key(p) for p in explicit}
    if not gone:
        return files
    return [f for f in files if _key(f) not in gone]


# --------------------------------------------------------------------------- listing
@dataclass
class DocumentInfo:
    id: str
    name: str
    source: str
    kind: str
    size: int
    pages: int | None
    chunks: int
    indexed_at: str | None  # ISO 8601, UTC
    status: str  # "indexed", "indexing" (a run is writing it), "failed"
    error: str | None = None
    uploaded: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class LibraryError(ValueError):
    """No such document, or it cannot be removed / re-indexed now; ``str(err)`` says why."""


def _iso(ts: float | None) -> str | None:
    if not ts:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class Library:
    """The documents of one assistant's index.

    >>> Library(assistant).documents()[0].name  # doctest: +SKIP
    '000_aa041678daf2c786.txt'
    """

    def __init__(self, assistant):
        self.assistant = assistant
        self.settings = assistant.settings

    @property
    def manifest(self) -> Manifest:
        return self.assistant.indexer.manifest

    def _uploaded(self, key: str) -> bool:
        up = _key(self.settings.uploads_path)
        return key.startswith(up.rstrip(os.sep) + os.sep)

    def documents(self) -> list[DocumentInfo]:
        manifest = self.manifest
        records = manifest.files()
        rows = _rows(manifest)
        out: list[DocumentInfo] = []
        for key, rec in records.items():
            row = rows.get(key) or {}
            if row.get("removed"):
                continue
            kind = kind_of(key) or Path(key).suffix.lstrip(".")
            ok = rec.status == "done"
            out.append(DocumentInfo(
                id=doc_id(key), name=Path(key).name, source=rec.source, kind=kind, size=int(rec.size or 0),
                pages=row.get("pages") if row.get("file_hash") == rec.file_hash else None,
                chunks=len(rec.chunk_ids) if ok else len(rec.pending_ids or []),
                indexed_at=_iso(row.get("indexed_at")) if row.get("file_hash") == rec.file_hash else None,
                status="indexed" if ok else "indexing", uploaded=self._uploaded(key)))
        for key, row in rows.items():
            if key in records or row["removed"] or not row["error"]:
                continue
            try:
                size = os.path.getsize(key)
            except OSError:
                size = 0
            out.append(DocumentInfo(id=doc_id(key), name=Path(key).name, source=row["source"] or key,
                                    kind=kind_of(key) or Path(key).suffix.lstrip("."), size=size, pages=None, chunks=0,
                                    indexed_at=None, status="failed", error=row["error"], uploaded=self._uploaded(key)))
        out.sort(key=lambda d: (d.status == "failed", d.name.lower(), d.source))
        return out

    def find(self, ref: str) -> tuple[str, FileRecord | None, dict | None]:
        """(path, manifest record, library row) of a document given by id or by source (as in citations)."""
        ref = str(ref or "").strip()
        if not ref:
            raise LibraryError("no document given")
        records = self.manifest.files()
        rows = _rows(self.manifest)
        for key, rec in records.items():
            if ref in (doc_id(key), rec.source) and not rows.get(key, {}).get("removed"):
                return key, rec, rows.get(key)
        for key, row in rows.items():
            if ref in (doc_id(key), row["source"]) and row["error"] and not row["removed"]:
                return key, None, row
        raise LibraryError(f"no document {ref!r} in the library")

    # --- removal ------------------------------------------------------------------------------
    def remove(self, ref: str) -> DocumentInfo:
        """Remove one document from the index: its chunks, BM25 entries and manifest row (and an uploaded copy)."""
        key, _, _ = self.find(ref)
        info = next(d for d in self.documents() if d.id == doc_id(key))
        indexer = self.assistant.indexer
        manifest, store = indexer.manifest, indexer.store
        with index_lock(self.settings.index_path):
            rec = manifest.files().get(key)
            # 1. remembered as removed first: a kill from here on never brings it back at the next folder run
            _put(manifest, [{**(_rows(manifest).get(key) or {"path": key, "source": info.source}), "removed": True}])
            if rec is not None:
                ids = sorted(set(rec.chunk_ids) | set(rec.pending_ids or []))
                # 2. the row goes; its chunks are orphans the next run repairs if we are killed before step 4
                manifest.set_meta(state="indexing")
                manifest.remove([key])
                # 3. a BM25 snapshot without them: readers stop finding them (dense hits are filtered by it too)
                live = sorted({cid for r in manifest.files().values() for cid in r.chunk_ids})
                gen = store.generation() + 1
                indexer.lexical.build(live, generation=gen, manifest=manifest)
                store.set_info(assistant_generation=gen)
                # 4. the chunks themselves
                store.delete(ids)
                manifest.set_meta(state="clean")
            if info.uploaded:  # the app's own copy goes too; a new upload of it is a new document
                Path(key).unlink(missing_ok=True)
                _delete(manifest, [key])
        self.assistant.refresh(wait=False)
        return info

    def reindex(self, ref: str, progress=None):
        """Read one document again (a changed or previously failed file); returns the IndexReport.

        A file that no longer exists is removed from the library."""
        key, _, _ = self.find(ref)
        if not Path(key).exists():
            self.remove(ref)
            raise LibraryError(f"{Path(key).name} no longer exists; it was removed from the library")
        return self.assistant.index([Path(key)], progress=progress, show_progress=False)

    # --- reading ------------------------------------------------------------------------------
    def passage(self, ref: str, chunk_id: str = "") -> dict[str, Any]:
        """The document's extracted text (rebuilt from its chunks) and where the cited chunk sits in it.

        Returns ``{id, name, source, kind, text, pages: [{page, start}], passage: {start, end, page} | None}``;
        offsets are into ``text``, which is the extracted text the citations' ``char_start`` refers to."""
        key, rec, _ = self.find(ref)
        if rec is None:
            raise LibraryError(f"{Path(key).name} is not indexed")
        chunks = self.assistant.store.get(list(rec.chunk_ids))
        items = sorted(((int(m.get("start", 0)), int(m.get("end", 0)), doc, m, cid) for cid, (doc, m) in chunks.items()),
                       key=lambda t: (t[0], t[1]))
        parts: list[str] = []
        pos = 0  # length of the text rebuilt so far == offset in the extracted text
        pages: list[dict] = []
        found = None
        for start, end, doc, meta, cid in items:
            if start > pos:  # the blank lines between two chunks: the same number of characters, offsets stay exact
                gap = start - pos
                parts.append("\n\n" + " " * (gap - 2) if gap >= 2 and pos else " " * gap)
                pos = start
            page = meta.get("page")
            if page is not None and (not pages or pages[-1]["page"] != int(page)):
                pages.append({"page": int(page), "start": start})
            if start + len(doc) > pos:  # chunks overlap by a few sentences: append only what is new
                parts.append(doc[pos - start:])
                pos = start + len(doc)
            if cid == chunk_id:
                found = {"start": start, "end": start + len(doc), "page": int(page) if page is not None else None}
        return {"id": doc_id(key), "name": Path(key).name, "source": rec.source, "kind": kind_of(key) or "",
                "text": "".join(parts), "pages": pages, "passage": found}
