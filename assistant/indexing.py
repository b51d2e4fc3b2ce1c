"""Indexing pipeline: folders -> loaders -> chunker -> embedder -> store, incrementally.

Guarantees:

* Re-indexing an unchanged folder embeds nothing (size+mtime, then content hash).
* A changed file replaces exactly its old chunks; chunks whose text did not
  change keep their ids and vectors. A deleted file's chunks are removed.
* Chunk ids are deterministic (source, text hash, duplicate number), so a
  repeated write can never duplicate a chunk. Identical text already in the
  store (a renamed or copied file) reuses its vector instead of re-embedding.
* A change of embedding model or chunking settings triggers a clean rebuild.
* A crash or kill mid-run leaves an index the next run repairs: files are
  recorded *pending* before their chunks are written and *done* after, and a
  run that did not finish makes the next one delete every chunk no manifest
  row accounts for (and rebuilds the BM25 snapshot and the word lexicon).
* Queries during a run read the previous BM25 snapshot's chunks (see
  ``HybridRetriever``); the chunks a changed file no longer contains are deleted
  only after the new snapshot is published, so readers get the old version or
  the new one, never neither.

Why one file over 450 lines: the run, its repair and its two threads (loader, embedder) implement one
protocol - the order of manifest, store, snapshot and lexicon writes that makes a kill at any point safe - and are
easier to check when read together (the manifest itself is ``assistant/manifest.py``).
"""
from __future__ import annotations

import os
import queue
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

import numpy as np

from .chunking import Chunker
from .config import Settings
from .loaders import Deadline, DocumentLoader, LoadError, discover, timeout_reason
from .priority import PRIORITY, background
from .schema import Chunk, Document
from .store import ChunkStore, FileRecord, Manifest, StoreError, index_lock
from .text import error_line, lexical_tokens

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class IndexReport:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: list[dict] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    embedded: int = 0
    reused: int = 0
    total: int = 0
    seconds: float = 0.0
    rebuilt: str = ""  # reason, when the whole index was rebuilt
    repaired: int = 0  # orphan chunks removed after an interrupted run
    words: int = 0  # new words embedded into the cross-lingual lexicon
    sentences: int = 0  # sentence vectors embedded (assistant.sentences)
    searchable_seconds: float = 0.0  # when the new chunks were searchable (before the sentence vectors were done)

    def to_json(self) -> dict:
        out = {
            "files": {"added": self.added, "updated": self.updated, "removed": self.removed,
                      "unchanged": self.unchanged, "failed": self.failed},
            "chunks": {"embedded": self.embedded, "total": self.total},
            "seconds": round(self.seconds, 3),
        }
        if self.searchable_seconds:
            out["searchable_seconds"] = round(self.searchable_seconds, 3)
        if self.sentences:
            out["sentences"] = self.sentences
        if self.ignored:
            out["files"]["ignored"] = self.ignored
        if self.reused:
            out["chunks"]["reused"] = self.reused
        if self.rebuilt:
            out["rebuilt"] = self.rebuilt
        if self.repaired:
            out["repaired"] = self.repaired
        return out

    def summary(self) -> str:
        lines = [f"Indexed in {self.seconds:.1f}s: {self.added} added, {self.updated} updated, {self.removed} removed, "
                 f"{self.unchanged} unchanged, {len(self.failed)} failed.",
                 f"Chunks: {self.embedded} embedded, {self.reused} reused, {self.total} in the index."]
        if self.sentences and self.searchable_seconds:
            lines.append(f"Searchable after {self.searchable_seconds:.1f}s; then {self.sentences} sentence vectors "
                         "embedded for faster answers.")
        if self.rebuilt:
            lines.append(f"Rebuilt from scratch: {self.rebuilt}.")
        if self.repaired:
            lines.append(f"Repaired an interrupted run: removed {self.repaired} orphan chunks.")
        for f in self.failed:
            lines.append(f"  skipped {f['path']}: {f['error']}")
        if self.ignored:
            lines.append(f"  ignored {len(self.ignored)} file(s) of unsupported type" +
                         (": " + ", ".join(self.ignored[:5]) + (" …" if len(self.ignored) > 5 else "")))
        return "\n".join(lines)


class _Text(NamedTuple):
    """A committed chunk whose sentence vectors are still to be made: its id and text."""
    id: str
    text: str


@dataclass
class _Work:
    path: Path
    key: str
    size: int
    mtime: float
    doc: Document | None = None
    chunks: list[Chunk] | None = None
    error: str | None = None
    old: FileRecord | None = None


class Indexer:
    """Keeps a Chroma collection in sync with folders of documents.

    >>> from assistant.config import Settings
    >>> report = Indexer(Settings.from_env()).run(["seeds"])  # doctest: +SKIP
    """

    # chunks embedded and committed together: a kill loses at most one batch of work; a larger batch sorts more texts
    # by length (less padding) and makes larger matrix products (with the loader pause below: 87 -> 78 s for 2,949 chunks in bench/)
    BATCH_CHUNKS = 256

    def __init__(self, settings: Settings, embedder=None, store: ChunkStore | None = None,
                 loader: DocumentLoader | None = None, chunker: Chunker | None = None, lexical=None, lexicon=None):
        from .embeddings import make_embedder

        self.settings = settings
        self.embedder = embedder or make_embedder(settings)
        self.store = store or ChunkStore(settings, self.embedder)
        self.loader = loader or DocumentLoader(max_file_mb=settings.max_file_mb)
        self.chunker = chunker or Chunker(settings.chunk_tokens, settings.chunk_overlap)
        self._manifest: Manifest | None = None
        from .lexicon import Lexicon
        from .lexical import LexicalIndex

        # the index's BM25 snapshot and word lexicon: the Assistant's own objects when it runs the indexer
        self.lexical = lexical if lexical is not None else LexicalIndex(self.store, stemming=settings.stem)
        self.lexicon = lexicon if lexicon is not None else Lexicon(self.store.local_path("lexicon"), self.embedder)
        self._new_words: set[str] = set()
        self._stale: list[str] = []
        self._sentence_todo: list = []  # chunks whose sentence vectors are made once the index is searchable
        self._errors = 0  # files a reader raised on, this run
        self._may_load = threading.Event()  # cleared while the model runs: the loader thread waits (see _process)
        self._may_load.set()

    @property
    def manifest(self) -> Manifest:
        if self._manifest is None:
            self._manifest = Manifest(self.store.local_path("manifest.sqlite3"))
        return self._manifest

    def settings_fingerprint(self) -> dict[str, str]:
        return {"embedder": self.embedder.model_id, "chunker": self.chunker.settings_id(), "schema": "1"}

    # ------------------------------------------------------------------
    def run(self, paths: Iterable[str | Path] | None = None, rebuild: bool = False,
            progress: ProgressFn | None = None, show_progress: bool | None = None) -> IndexReport:
        paths = [Path(p) for p in (paths or [self.settings.docs_dir])]
        for p in paths:
            if not p.exists():
                raise FileNotFoundError(f"no such file or folder: {p}")
        t0 = time.perf_counter()
        report = IndexReport()
        bars = _Bars(show_progress if show_progress is not None else sys.stderr.isatty(), progress)
        try:
            with background():  # questions asked meanwhile go first (see assistant.priority)
                self._run(paths, rebuild, report, bars, t0)
        except (OSError, sqlite3.Error) as err:  # the manifest, BM25 or lexicon files could not be written (disk full…)
            raise self._stopped(self.store._error("indexing stopped", err)) from None
        except StoreError as err:
            raise self._stopped(err) from None
        report.seconds = time.perf_counter() - t0
        self._record(report, paths)
        return report

    def _record(self, report: IndexReport, paths: list[Path]) -> None:
        """The document library's notes on this run: when each file was indexed, its pages, failures and reasons."""
        from .library import record_run

        try:
            record_run(self.manifest, self.store, report.failed, explicit=[p for p in paths if p.is_file()])
        except (OSError, sqlite3.Error, StoreError):  # the index itself is consistent; the notes are best-effort
            import logging

            logging.getLogger(__name__).warning("could not update the document library", exc_info=True)

    @staticmethod
    def _stopped(err: StoreError) -> StoreError:
        if "is full" in str(err):
            return StoreError(f"{err}. Free some space and index again: the documents indexed before are still searchable.")
        return err

    def _run(self, paths: list[Path], rebuild: bool, report: IndexReport, bars: "_Bars", t0: float) -> None:
        with index_lock(self.settings.index_path):
            self._stale = []  # chunk ids replaced in this run, deleted once the new snapshot is live
            self._sentence_todo = []
            self._errors = 0
            from .health import clear

            clear("reader-errors", self.settings.index_path)  # counted again by this run
            unfinished = self._prepare(rebuild, report)
            files, ignored = discover(paths, exclude=[self.settings.index_path])
            from .library import skip_removed  # documents removed from the library stay out of folder runs

            files = skip_removed(self.manifest, files, explicit=[p for p in paths if p.is_file()])
            report.ignored = [printable(p) for p in ignored]
            manifest = self.manifest
            records = manifest.files()
            manifest.set_meta(state="indexing")
            work, seen = self._plan(files, records, report)
            seen |= {w.key for w in work}
            roots = [str(p.resolve()) for p in paths]
            gone = [r for key, r in records.items() if _under(key, roots) and key not in seen]
            bars.start(len(work), "files")
            self._process(work, records, report, bars)
            self._remove(gone, report)
            if (unfinished or not self.lexicon.load()) and self.store.count():
                # an index built before the lexicon existed (or whose lexicon was lost), or a run that was killed before
                # it saved its new words: add the words of every stored chunk (only the unknown ones are embedded)
                from .lexicon import dictionary_words

                for doc, meta in self.store.get(self.store.all_ids()).values():
                    self._new_words |= dictionary_words(f"{meta.get('context', '')}\n\n{doc}")
            if self._new_words:  # the cross-lingual word bridge grows with the corpus vocabulary
                bars.stage("lexicon", len(self._new_words))
                report.words = self.lexicon.add(self._new_words)
                self._new_words = set()
            bars.close()
            live = {cid for r in manifest.files().values() for cid in r.chunk_ids}
            report.total = len(live)
            # after an interrupted run the snapshot may predate chunks that run committed: always rebuild it then
            changed = report.added or report.updated or report.removed or report.rebuilt or report.repaired or unfinished
            if changed or not self.lexical.exists(manifest):
                gen = self.store.generation() + 1
                self.lexical.build(sorted(live), generation=gen, manifest=manifest)
                self.store.set_info(assistant_generation=gen, **{f"assistant_{k}": v for k, v in self.settings_fingerprint().items()})
            if self._stale:  # no snapshot refers to them any more
                self.store.delete(sorted(set(self._stale)))
                self._stale = []
            report.searchable_seconds = time.perf_counter() - t0
            self._finish_sentences(report, bars, live)
            self.store.call("cannot write sentence vectors", self.store.sentences.checkpoint)
            manifest.set_meta(state="clean", **self.settings_fingerprint(), target=self.store.target)

    # ------------------------------------------------------------------
    def _prepare(self, rebuild: bool, report: IndexReport) -> bool:
        """Rebuild when asked or when settings changed; repair an interrupted run (returns True after one)."""
        manifest = self.manifest
        want = self.settings_fingerprint()
        have = {k: manifest.get_meta(k) for k in want}
        if (not rebuild and not self.store.is_server and manifest.get_meta("state") == "clean"
                and manifest.get_meta("target") == self.store.target and all(have[k] == want[k] for k in want)):
            # the last run on this embedded index finished with these settings: nothing to check in the store (opening
            # Chroma costs ~2 s of imports, most of a re-index that finds nothing changed); it is opened when a file
            # needs writing. A server is always checked: another machine may have rebuilt its collection.
            return False
        info = self.store.info()
        stored = {k: info.get(f"assistant_{k}") for k in want}
        count = self.store.count()
        reason = ""
        if rebuild:
            reason = "requested (--rebuild)"
        elif count and any(stored[k] and stored[k] != want[k] for k in want):
            diff = [k for k in want if stored[k] and stored[k] != want[k]]
            reason = "settings changed: " + ", ".join(f"{k} {stored[k]} -> {want[k]}" for k in diff)
        elif any(have[k] and have[k] != want[k] for k in want):
            diff = [k for k in want if have[k] and have[k] != want[k]]
            reason = "settings changed: " + ", ".join(f"{k} {have[k]} -> {want[k]}" for k in diff)
        elif count and not manifest.files() and not manifest.get_meta("state"):
            reason = "the collection has chunks this index dir has no record of"
        if reason:
            self.store.reset()
            manifest.clear()
            self.lexicon.clear()
            report.rebuilt = reason
            return False
        if manifest.get_meta("state") == "indexing":  # the previous run did not finish
            records = manifest.files()
            known = set()
            for r in records.values():
                known.update(r.chunk_ids)
                known.update(r.pending_ids or [])
            orphans = [i for i in self.store.all_ids() if i not in known]
            if orphans:
                self.store.delete(orphans)
            # sentence vectors of chunks the kill stopped before they were committed
            self.store.call("cannot repair sentence vectors", self.store.sentences.prune, known)
            self._queue_lacking_sentences(records)
            report.repaired = len(orphans)
            return True
        return False

    def _plan(self, files: list[Path], records: dict[str, FileRecord], report: IndexReport) -> tuple[list[_Work], set[str]]:
        work: list[_Work] = []
        seen: set[str] = set()
        for f in files:
            try:
                key = str(f.resolve())
                st = f.stat()
            except (OSError, RuntimeError) as err:  # RuntimeError: a symlink loop
                report.failed.append({"path": printable(f), "error": f"cannot read file: {getattr(err, 'strerror', None) or err}"})
                seen.add(os.path.abspath(f))
                continue
            try:
                key.encode("utf-8")
            except UnicodeEncodeError:  # e.g. a Latin-1 name from an old archive: the manifest and Chroma need UTF-8
                report.failed.append({"path": printable(f), "error": "the file name is not valid UTF-8: rename the file to index it"})
                seen.add(key)
                continue
            old = records.get(key)
            if old and old.status == "done" and old.size == st.st_size and old.mtime == st.st_mtime:
                report.unchanged += 1
                seen.add(key)
                continue
            work.append(_Work(f, key, st.st_size, st.st_mtime, old=old))
        return work, seen

    def _load(self, w: _Work) -> _Work:
        deadline = Deadline(self.settings.file_timeout)  # the file's time budget, for reading and chunking together
        try:
            w.doc = self.loader.run(w.path, deadline=deadline)
            w.chunks = self.chunker.run(w.doc, source_key=w.key, deadline=deadline)
        except LoadError as err:
            w.error = str(err)
            if err.unexpected:  # an exception inside a reader: the reason for the report, the traceback for the log
                self._problem(w, err.__cause__ or err)
        except Exception as err:  # noqa: BLE001 - one bad file never stops the run
            w.error = f"cannot process: {error_line(err, 200)}"
            self._problem(w, err)
        return w

    def _problem(self, w: _Work, err: BaseException) -> None:
        """A reader or the chunker raised on a file: logged once with its traceback, counted, kept for status."""
        from .health import degraded

        self._errors += 1
        degraded("reader-errors", f"reading files: {self._errors} file(s) of the last indexing run failed with an "
                 f"exception in a reader (last: {printable(w.path)}: {w.error}); tracebacks in "
                 f"{self.settings.index_path / 'assistant.log'}", err, index_path=self.settings.index_path,
                 detail=printable(w.path), persist=True)

    def _process(self, work: list[_Work], records: dict[str, FileRecord], report: IndexReport, bars: "_Bars") -> None:
        """Load in a background thread while the main thread writes (and waits for the disk).

        The loader pauses while the embedder runs: the model uses every core, and a parser competing with its threads
        slows every matrix product down more than the parsing gains (on 2 cores).

        **Per-file time budget** (``file_timeout``). Python cannot kill a thread, and a subprocess per file would cost
        a process start and pickling every document (thousands of small files are the common case), so the budget
        is enforced in two layers:

        1. *Cooperatively*: the loaders and the chunker check the file's :class:`~assistant.loaders.Deadline` between
           pieces of work (pages, paragraphs, lines, sentences, pieces of a long sentence). Every stage is linear and
           works in bounded pieces, so a file over budget stops within a fraction of a second after it and is
           reported failed ("took longer than 120 s to read; raise ASSISTANT_FILE_TIMEOUT …").
        2. *Watchdog*: one call into third-party code (an HTML extractor on a pathological page) cannot be checked
           from inside. When the loader thread has been on one file for the budget plus a grace period, the main
           thread reports that file failed with the same reason, abandons the thread (a daemon: it can only finish
           that call, its result is dropped and it loads nothing more) and starts a new loader thread on the files
           after it. The index never waits on one file; the abandoned call may still use a core until it returns
           (or the process exits).
        """
        timeout = self.settings.file_timeout
        grace = min(30.0, max(2.0, timeout * 0.25))
        stop = threading.Event()

        class _Loader:
            """One loader thread over ``work[first:]``, with its own queue (an abandoned one's results are dropped)."""

            def __init__(self, owner: "Indexer", first: int):
                self.q: queue.Queue = queue.Queue(maxsize=64)
                self.lock = threading.Lock()
                self.abandoned = False
                self.current: tuple[int, float] | None = None  # (index in work, start time) of the file being read
                self.th = threading.Thread(target=self.produce, args=(owner, first), name="assistant-loader", daemon=True)
                self.th.start()

            def produce(self, owner: "Indexer", first: int) -> None:
                with background():
                    self._produce(owner, first)

            def _produce(self, owner: "Indexer", first: int) -> None:
                for i in range(first, len(work)):
                    owner._may_load.wait()
                    PRIORITY.yield_to_questions()  # a file is read between two questions, not during one
                    if stop.is_set() or self.abandoned:
                        return
                    with self.lock:
                        self.current = (i, time.monotonic())
                    w = owner._load(work[i])
                    with self.lock:
                        self.current = None
                        if self.abandoned:
                            return
                    self.q.put(w)
                self.q.put(None)

            def overdue(self) -> int | None:
                """Abandon the thread when it has been on one file too long; returns that file's index."""
                if timeout <= 0:
                    return None
                with self.lock:
                    if self.current is None or time.monotonic() - self.current[1] < timeout + grace:
                        return None
                    self.abandoned = True
                    return self.current[0]

        loader = _Loader(self, 0)
        # the model loads at the first batch that needs embedding, not before: a run whose files are unchanged, or whose
        # chunks all reuse stored vectors, never loads it (the app's start-up relies on that)
        batch: list[_Work] = []
        n_chunks = 0
        try:
            while True:
                try:
                    w = loader.q.get(timeout=1.0 if timeout > 0 else None)
                except queue.Empty:
                    i = loader.overdue()
                    if i is not None:
                        w = work[i]
                        w.error = timeout_reason(timeout)
                        loader = _Loader(self, i + 1)
                    else:
                        continue
                if w is None:
                    break
                bars.file(w.path)
                if w.error:
                    report.failed.append({"path": str(w.path), "error": w.error})
                    continue
                if w.old and w.old.status == "done" and w.old.file_hash == w.doc.file_hash and w.old.source == w.doc.source:
                    # touched but identical: refresh size/mtime only
                    self.manifest.put(FileRecord(w.key, w.doc.source, w.doc.file_hash, w.size, w.mtime, w.old.chunk_ids))
                    report.unchanged += 1
                    continue
                batch.append(w)
                n_chunks += len(w.chunks)
                if n_chunks >= self.BATCH_CHUNKS:
                    self._write(batch, report, bars)
                    batch, n_chunks = [], 0
            if batch:
                self._write(batch, report, bars)
        finally:
            stop.set()
            self._may_load.set()
            while loader.th.is_alive():  # unblock the producer if we stopped early
                try:
                    loader.q.get_nowait()
                except queue.Empty:
                    if loader.overdue() is not None:  # stuck in one file: leave it (see above)
                        break
                    loader.th.join(0.05)

    def _write(self, batch: list[_Work], report: IndexReport, bars: "_Bars") -> None:
        manifest, store = self.manifest, self.store
        # 1. record intent: these files are about to change
        manifest.put_many(FileRecord(w.key, w.old.source if w.old else w.doc.source, w.old.file_hash if w.old else "",
                                     w.old.size if w.old else 0, w.old.mtime if w.old else 0.0,
                                     w.old.chunk_ids if w.old else [], "pending",
                                     sorted({c.id for c in w.chunks} | set(w.old.pending_ids or [] if w.old else [])))
                         for w in batch)
        chunks = [c for w in batch for c in w.chunks]
        file_hash = {c.id: w.doc.file_hash for w in batch for c in w.chunks}
        # 2. chunks already stored under the same id keep their vector; identical text elsewhere lends its vector
        present = store.existing_ids([c.id for c in chunks])
        missing = [c for c in chunks if c.id not in present]
        reuse = store.vectors_by_text_hash(sorted({c.text_hash for c in missing})) if missing else {}
        # identical texts in this batch (a line of one repeated word, a boilerplate paragraph in every file) are
        # embedded once: the text hash covers everything that is embedded
        to_embed = list({c.text_hash: c for c in missing if c.text_hash not in reuse}.values())
        method = self._sentence_method()
        pooled: dict[bytes, np.ndarray] = {}  # sentence vectors pooled from the chunks' own forward passes
        if to_embed:
            texts = [c.embed_text for c in to_embed]
            step = self.BATCH_CHUNKS
            self._may_load.clear()  # the loader finishes the file it is reading, then waits
            try:
                if method == "pool":
                    step = 16  # the model lock is held for one piece: a question waits at most that long
                    from .sentences import pool_chunks

                    for i in range(0, len(to_embed), step):
                        PRIORITY.yield_to_questions()
                        vecs, per_chunk = pool_chunks(self.embedder, to_embed[i:i + step])
                        for c, v, sv in zip(to_embed[i:i + step], vecs, per_chunk):
                            reuse[c.text_hash] = v
                            pooled.update(sv)
                        bars.chunks(len(vecs))
                else:
                    for i in range(0, len(texts), step):
                        vecs = self.embedder.encode(texts[i:i + step])
                        for c, v in zip(to_embed[i:i + step], vecs):
                            reuse[c.text_hash] = v
                        bars.chunks(len(vecs))
            finally:
                self._may_load.set()
        kept = [c for c in chunks if c.id in present]
        # kept chunks too: their rows are found in the store (nothing embedded) unless the index predates them
        if method == "pool" and chunks:
            self._write_sentences(missing + kept, method, pooled, report)
        elif method == "encode" and chunks:  # embedded once the index is searchable (see _finish_sentences)
            self._sentence_todo.extend(_Text(c.id, c.text) for c in missing + kept)
        PRIORITY.yield_to_questions()  # the writes and the tokenising below, too, give way to a question
        report.embedded += len(to_embed)
        report.reused += len(missing) - len(to_embed)
        vectors: dict[str, np.ndarray] = {c.id: reuse[c.text_hash] for c in missing}
        # 3. write new chunks, refresh metadata of kept ones, cache their BM25 tokens
        if missing:
            store.upsert([c.id for c in missing], [c.text for c in missing],
                         [c.metadata(file_hash[c.id]) for c in missing], np.stack([vectors[c.id] for c in missing]))
        if kept:
            store.update_metadata([c.id for c in kept], [c.metadata(file_hash[c.id]) for c in kept])
        manifest.put_lex({c.id: lexical_tokens(c.embed_text) for c in missing})
        from .lexicon import dictionary_words

        for c in missing:
            self._new_words |= dictionary_words(c.embed_text)
        # 4. commit the files; what the new versions no longer contain is deleted at the end of the run
        stale = []
        for w in batch:
            new_ids = {c.id for c in w.chunks}
            if w.old:
                stale.extend(i for i in set(w.old.chunk_ids) | set(w.old.pending_ids or []) if i not in new_ids)
        # the chunks the new versions dropped stay until the new BM25 snapshot is published (see run): readers of the
        # old snapshot keep finding the old version until then; a kill before their deletion leaves orphans to repair
        self._stale.extend(stale)
        manifest.put_many(FileRecord(w.key, w.doc.source, w.doc.file_hash, w.size, w.mtime, [c.id for c in w.chunks])
                          for w in batch)
        for w in batch:
            if w.old and w.old.file_hash:
                report.updated += 1
            else:
                report.added += 1

    def _sentence_method(self) -> str:
        from .sentences import can_pool, method_of

        method = method_of(self.settings)
        if method == "pool":
            self.embedder.warm_up()
            if not can_pool(self.embedder):
                return "encode"  # an embedder without token states (sentence-transformers, USE): encode them
        return method

    SENTENCE_BATCH_CHUNKS = 64  # chunks whose sentences are embedded together (a question waits at most that long)

    def _finish_sentences(self, report: IndexReport, bars: "_Bars", live: set[str]) -> None:
        """Embed the sentence vectors of this run's chunks, after the chunks are committed and searchable.

        They are half of a first index's model time (as many tokens as the chunks), and answers do not need them to
        work: until a chunk's rows are written, the answerers embed its sentences at question time (slower answers,
        the same answers). So the chunks, BM25 and lexicon are published first (``searchable_seconds`` in the
        report), then the sentences are embedded in small batches that give way to questions. The run is not
        ``clean`` until they are: a run killed here leaves chunks without rows, and the repair of the next run
        (:meth:`_queue_lacking_sentences`) embeds them."""
        # live only: a chunk queued by the repair may belong to a file version this run replaced
        todo = list({c.id: c for c in self._sentence_todo if c.id in live}.values())
        self._sentence_todo = []
        if not todo:  # only `encode` queues chunks (here and in _queue_lacking_sentences)
            return
        bars.stage("sentences", len(todo))
        done = 0
        for i in range(0, len(todo), self.SENTENCE_BATCH_CHUNKS):
            PRIORITY.yield_to_questions()
            part = todo[i:i + self.SENTENCE_BATCH_CHUNKS]
            self._write_sentences(part, "encode", {}, report)
            done += len(part)
            bars.progress("sentences", done, len(todo))

    def _queue_lacking_sentences(self, records: dict[str, FileRecord]) -> None:
        """After an interrupted run: queue the committed chunks that have no sentence vectors yet."""
        if self._sentence_method() != "encode":
            return
        live = {cid for r in records.values() if r.status == "done" for cid in r.chunk_ids}
        have = self.store.call("cannot read sentence vectors", self.store.sentences.chunk_ids)
        lacking = sorted(live - have)
        for i in range(0, len(lacking), 500):
            got = self.store.get(lacking[i:i + 500])
            self._sentence_todo.extend(_Text(cid, doc) for cid, (doc, _meta) in got.items())

    def _write_sentences(self, chunks: list[Chunk], method: str, pooled: dict[bytes, np.ndarray],
                         report: IndexReport) -> None:
        """Store the vectors of the candidate sentences of new chunks (before the chunks: see assistant.sentences).

        Sentences already stored (another chunk with the same sentence, a renamed file) lend their vector; the rest
        is embedded (``encode``) or was pooled from the chunk's forward pass (``pool``)."""
        from .sentences import encode_sentences, sentence_texts, text_key

        per_chunk = [[(text_key(t), t) for t in sentence_texts(c.text)] for c in chunks]
        wanted = {k: t for rows in per_chunk for k, t in rows}
        have = dict(pooled)
        need = [k for k in wanted if k not in have]
        if need:
            have.update(self.store.call("cannot read sentence vectors", self.store.sentences.lookup, need))
        todo = [k for k in wanted if k not in have]
        if todo and method == "encode":
            self._may_load.clear()
            try:
                vecs = encode_sentences(self.embedder, [wanted[k] for k in todo])
            finally:
                self._may_load.set()
            have.update(zip(todo, vecs))
            report.sentences += len(todo)
        rows = [(c.id, i, k, have[k]) for c, keys in zip(chunks, per_chunk) for i, (k, _) in enumerate(keys) if k in have]
        self.store.call("cannot write sentence vectors", self.store.sentences.put, rows)

    def _remove(self, gone: list[FileRecord], report: IndexReport) -> None:
        if not gone:
            return
        ids = [i for r in gone for i in set(r.chunk_ids) | set(r.pending_ids or [])]
        self.store.delete(ids)
        self.manifest.remove([r.path for r in gone])
        report.removed += len(gone)


def printable(path: Path) -> str:
    """A path as text that can be printed and stored (undecodable bytes of a file name become U+FFFD)."""
    return os.fsencode(str(path)).decode("utf-8", "replace")


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


class _Bars:
    """tqdm bars on a terminal, and/or a callback (the UI's progress)."""

    def __init__(self, show: bool, callback: ProgressFn | None):
        self.show = show
        self.callback = callback
        self.fbar = self.cbar = None
        self.total_files = 0
        self.done_files = 0
        self.done_chunks = 0

    def start(self, total_files: int, unit: str) -> None:
        self.total_files = total_files
        if self.show and total_files:
            from tqdm import tqdm

            self.fbar = tqdm(total=total_files, unit="file", desc="files ", position=0, leave=True, dynamic_ncols=True)
            self.cbar = tqdm(total=0, unit="chunk", desc="chunks", position=1, leave=True, dynamic_ncols=True, bar_format="{desc}: {n} embedded [{rate_fmt}]")
        if self.callback:
            self.callback("files", 0, total_files)

    def file(self, path: Path) -> None:
        self.done_files += 1
        if self.fbar:
            self.fbar.set_postfix_str(path.name[:30], refresh=False)
            self.fbar.update(1)
        if self.callback:
            self.callback("files", self.done_files, self.total_files)

    def chunks(self, n: int) -> None:
        self.done_chunks += n
        if self.cbar:
            self.cbar.update(n)
        if self.callback:
            self.callback("chunks", self.done_chunks, 0)

    def stage(self, name: str, total: int) -> None:
        if self.callback:
            self.callback(name, 0, total)

    def progress(self, name: str, done: int, total: int) -> None:
        if self.callback:
            self.callback(name, done, total)

    def close(self) -> None:
        for b in (self.fbar, self.cbar):
            if b:
                b.close()
