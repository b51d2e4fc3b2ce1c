"""Benchmark corpora: chunk counts per file and deterministic subsets of ~N chunks.

The real corpora live under ``bench/corpora/<name>/`` (``python -m bench.corpora``).
Every file is loaded and chunked once with the assistant's own loader and
chunker (default settings) to learn how many chunks it gives; the counts are
cached in ``bench/work/chunk-counts.json`` (keyed by path, size and mtime).

A subset of ~N chunks is a greedy pick over a fixed interleaving of the
corpora (files ordered by a hash of their path inside each corpus, corpora
taken in turn), so every subset mixes HTML, man pages (text) and PDF from all
corpora. A subset is materialised as a *copy* under ``bench/work/docs-<label>/``
(the re-index benchmark edits and deletes files; the real corpora stay intact).

"Every corpus" means every folder under ``bench/corpora/`` except the corpora
declared with ``perf=False`` in :mod:`bench.corpora` (the English
``debian-reference-en``, fetched only for its question set): they are never
counted nor picked, so the benchmark's corpus is the French documentation
whether or not they have been fetched.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
CORPORA = BENCH_DIR / "corpora"
WORK = BENCH_DIR / "work"


def corpus_files(root: Path = CORPORA) -> list[Path]:
    from assistant.loaders import discover

    if not root.exists():
        raise SystemExit(f"no corpora under {root}: run `python -m bench.corpora` first")
    files, _ = discover([root])
    return files


def perf_files(root: Path = CORPORA) -> list[Path]:
    """Every file of the performance benchmark's corpus: all of ``root`` but the ``perf=False`` corpora."""
    from bench.corpora import non_perf_corpora

    skip = non_perf_corpora()
    skip |= {n + ".partial" for n in skip}  # a build in progress
    return [f for f in corpus_files(root) if f.relative_to(root).parts[0] not in skip]


def _count_one(path: str) -> tuple[str, int, int, str]:
    """(path, chunks, cl100k tokens of the embedded text, error) for one file."""
    from assistant.chunking import Chunker
    from assistant.loaders import DocumentLoader, LoadError

    global _LOADER, _CHUNKER
    try:
        _LOADER
    except NameError:
        _LOADER, _CHUNKER = DocumentLoader(), Chunker()
    try:
        doc = _LOADER.run(path)
        chunks = _CHUNKER.run(doc, source_key=path)
        return path, len(chunks), sum(len(c.text) for c in chunks), ""
    except LoadError as err:
        return path, 0, 0, str(err)


def chunk_counts(root: Path = CORPORA, cache: Path | None = None, workers: int = 2, log=print,
                 corpora: tuple[str, ...] | None = None) -> dict[str, dict]:
    """{relative path: {chunks, chars, size, mtime, error}} for every file of the corpora, cached.

    ``corpora`` None: every corpus of the performance benchmark (:func:`perf_files`).
    """
    cache = cache or WORK / "chunk-counts.json"
    files = [f for c in corpora for f in corpus_files(root / c)] if corpora else perf_files(root)
    old = {}
    if cache.exists():
        try:
            old = json.loads(cache.read_text())
        except ValueError:
            old = {}
    out: dict[str, dict] = {}
    todo = []
    for f in files:
        rel = str(f.relative_to(root))
        st = f.stat()
        rec = old.get(rel)
        if rec and rec["size"] == st.st_size and rec["mtime"] == st.st_mtime:
            out[rel] = rec
        else:
            todo.append((rel, f, st))
    if todo:
        log(f"counting chunks of {len(todo)} corpus files (once; cached in {cache})…")
        t0 = time.perf_counter()
        by_path = {str(f): (rel, st) for rel, f, st in todo}
        # big files first so the pool ends together
        order = sorted(by_path, key=lambda p: -by_path[p][1].st_size)
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for i, (path, n, chars, err) in enumerate(pool.map(_count_one, order, chunksize=4)):
                rel, st = by_path[path]
                out[rel] = {"chunks": n, "chars": chars, "size": st.st_size, "mtime": st.st_mtime, "error": err}
                if (i + 1) % 500 == 0:
                    log(f"  {i + 1}/{len(order)} files, {time.perf_counter() - t0:.0f}s")
        cache.parent.mkdir(parents=True, exist_ok=True)
        merged = {**old, **out}
        cache.write_text(json.dumps(merged, indent=0, sort_keys=True))
        log(f"  done in {time.perf_counter() - t0:.0f}s: {sum(r['chunks'] for r in out.values())} chunks")
    return out


def _order(counts: dict[str, dict]) -> list[str]:
    """Corpora interleaved, files of each in a fixed pseudo-random order."""
    by_corpus: dict[str, list[str]] = {}
    for rel, rec in counts.items():
        if rec["chunks"] > 0:
            by_corpus.setdefault(rel.split("/", 1)[0], []).append(rel)
    for files in by_corpus.values():
        files.sort(key=lambda r: hashlib.blake2b(r.encode(), digest_size=8).hexdigest())
    lanes = [by_corpus[k] for k in sorted(by_corpus)]
    out = []
    i = 0
    while any(i < len(lane) for lane in lanes):
        out.extend(lane[i] for lane in lanes if i < len(lane))
        i += 1
    return out


def pick(counts: dict[str, dict], target: int | None, first: tuple[str, ...] = ()) -> list[str]:
    """Files whose chunks add up to about ``target`` (None: all of them).

    ``first``: corpus names whose files are taken before the interleaving (the
    question sets are about them), as long as they fit.
    """
    order = _order(counts)
    if target is None:
        return sorted(order)
    head = [r for r in order if r.split("/", 1)[0] in first]
    order = head + [r for r in order if r not in set(head)]
    chosen, total = [], 0
    for rel in order:
        n = counts[rel]["chunks"]
        if total + n <= target * 1.02:
            chosen.append(rel)
            total += n
        if total >= target * 0.98:
            break
    return sorted(chosen)


def materialise(files: list[str], dest: Path, root: Path = CORPORA) -> Path:
    """Copy the files into ``dest`` (idempotent: an identical copy is kept, with its mtimes)."""
    stamp = dest / ".subset.json"
    want = hashlib.sha256("\n".join(files).encode()).hexdigest()
    if stamp.exists():
        try:
            if json.loads(stamp.read_text()).get("files_sha256") == want:
                return dest
        except ValueError:
            pass
    shutil.rmtree(dest, ignore_errors=True)
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    stamp.write_text(json.dumps({"files_sha256": want, "files": len(files)}))
    return dest


def subset_chunks(counts: dict[str, dict], files: list[str]) -> int:
    return sum(counts[r]["chunks"] for r in files)


if __name__ == "__main__":  # python -m bench.subsets: print the corpus and the subsets
    c = chunk_counts()
    print(f"{len(c)} files, {sum(r['chunks'] for r in c.values())} chunks, "
          f"{sum(1 for r in c.values() if r['error'])} unreadable")
    for t in (1000, 3000, 10000, None):
        fs = pick(c, t, first=("debian-reference-fr",))
        print(t, len(fs), subset_chunks(c, fs))
    sys.exit(0)
