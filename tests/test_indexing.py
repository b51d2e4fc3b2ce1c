"""Incremental, idempotent indexing into a real embedded Chroma with the real model."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.indexing import Indexer
from assistant.store import ChunkStore, Manifest

from .conftest import ROOT, SEEDS
from .helpers import check_consistent, make_pdf

PARAS = [
    "Le port de Brest accueille chaque été une grande fête maritime. Des centaines de voiliers traditionnels y participent.",
    "La ville de Quimper est connue pour ses faïences peintes à la main. Les ateliers existent depuis le XVIIe siècle.",
    "Le phare d'Eckmühl, à Penmarch, mesure soixante-cinq mètres. Il a été allumé pour la première fois en 1897.",
    "Les crêpes de froment se mangent sucrées, les galettes de sarrasin salées. Le cidre les accompagne souvent.",
]


def write_docs(folder: Path, n_files: int = 3, paras_per_file: int = 6) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n_files):
        body = "\n\n".join(f"[Document {i}, partie {j}] " + PARAS[(i + j) % len(PARAS)] for j in range(paras_per_file))
        p = folder / f"doc{i}.txt"
        p.write_text(body, encoding="utf-8")
        files.append(p)
    return files


def consistent(settings, embedder) -> tuple[int, int]:
    """The collection holds exactly the chunks the manifest accounts for; returns (files, chunks)."""
    r = check_consistent(settings, embedder)
    return r["files"], r["chunks"]


@pytest.fixture()
def indexer(fresh_settings, embedder):
    return Indexer(fresh_settings, embedder=embedder)


def test_seeds_index_then_reindex_embeds_nothing(indexer, fresh_settings, embedder):
    first = indexer.run([SEEDS], show_progress=False).to_json()
    assert first["files"] == {"added": 1, "updated": 0, "removed": 0, "unchanged": 0, "failed": []}
    assert first["chunks"]["embedded"] == first["chunks"]["total"] > 0
    second = indexer.run([SEEDS], show_progress=False).to_json()
    assert second["chunks"] == {"embedded": 0, "total": first["chunks"]["total"]}
    assert second["files"]["unchanged"] == 1 and second["files"]["added"] == 0
    # a touched but identical file is not re-embedded either
    os.utime(SEEDS / "000_aa041678daf2c786.txt")
    third = Indexer(fresh_settings, embedder=embedder).run([SEEDS], show_progress=False).to_json()
    assert third["chunks"]["embedded"] == 0 and third["files"]["unchanged"] == 1
    assert consistent(fresh_settings, embedder) == (1, first["chunks"]["total"])


def test_edit_add_delete_rename_exact_counts(tmp_path, indexer, fresh_settings, embedder):
    docs = tmp_path / "docs"
    files = write_docs(docs, n_files=3, paras_per_file=8)
    r = indexer.run([docs], show_progress=False)
    total = r.total
    assert r.added == 3 and r.embedded == total and total >= 6
    per_file = {f.name: len(rec.chunk_ids) for f in files for key, rec in indexer.manifest.files().items() if key.endswith(f.name)}

    # edit: append one paragraph to doc0 -> only the chunks that changed are embedded
    files[0].write_text(files[0].read_text() + "\n\nUn nouveau paragraphe ajouté à la fin parle des marées d'équinoxe à Saint-Malo.")
    r = indexer.run([docs], show_progress=False)
    assert (r.added, r.updated, r.removed, r.unchanged) == (0, 1, 0, 2)
    assert 1 <= r.embedded < per_file["doc0.txt"] + 1
    _, n = consistent(fresh_settings, embedder)
    assert n == r.total

    # add a file
    (docs / "new.md").write_text("# Marées\n\nLes grandes marées de Saint-Malo dépassent treize mètres.\n")
    r = indexer.run([docs], show_progress=False)
    assert (r.added, r.updated, r.removed) == (1, 0, 0) and r.embedded == 1

    # delete a file -> exactly its chunks go
    before = r.total
    files[1].unlink()
    r = indexer.run([docs], show_progress=False)
    assert (r.added, r.updated, r.removed) == (0, 0, 1) and r.embedded == 0
    assert r.total == before - per_file["doc1.txt"]

    # rename: same content under a new name -> nothing re-embedded, vectors reused
    files[2].rename(docs / "renamed.txt")
    r = indexer.run([docs], show_progress=False)
    assert (r.added, r.removed, r.embedded) == (1, 1, 0)
    assert r.reused == per_file["doc2.txt"]
    assert consistent(fresh_settings, embedder)[1] == r.total


def test_bad_files_are_skipped_and_listed(tmp_path, indexer, fresh_settings, embedder):
    docs = tmp_path / "mixed"
    docs.mkdir()
    shutil.copy(SEEDS / "000_aa041678daf2c786.txt", docs / "seed.txt")
    (docs / "latin1.txt").write_bytes("Le château de Fougères domine la vallée du Nançon depuis le Moyen Âge.".encode("latin-1"))
    (docs / "corrupt.pdf").write_bytes(b"%PDF-1.7\n% broken\n1 0 obj <<< garbage")
    (docs / "binary.txt").write_bytes(os.urandom(4096))
    (docs / "empty.md").write_text("")
    make_pdf(docs / "good.pdf", ["Le menhir de Kerloas mesure neuf mètres cinquante."])
    r = indexer.run([docs], show_progress=False)
    failed = {Path(f["path"]).name: f["error"] for f in r.failed}
    assert set(failed) == {"corrupt.pdf", "binary.txt", "empty.md"}
    assert "binary" in failed["binary.txt"] and "empty" in failed["empty.md"]
    assert r.added == 3
    store = ChunkStore(fresh_settings, embedder)
    texts = [doc for doc, _ in store.get(store.all_ids()).values()]
    assert any("Fougères" in t for t in texts)
    assert any("Kerloas" in t for t in texts)
    # the failures are reported again (not silently dropped) and nothing is re-embedded
    r2 = indexer.run([docs], show_progress=False)
    assert len(r2.failed) == 3 and r2.embedded == 0


def test_settings_change_triggers_clean_rebuild(tmp_path, fresh_settings, embedder):
    docs = tmp_path / "docs"
    write_docs(docs, 2, 4)
    r1 = Indexer(fresh_settings, embedder=embedder).run([docs], show_progress=False)
    r2 = Indexer(fresh_settings.replace(chunk_tokens=60), embedder=embedder).run([docs], show_progress=False)
    assert "chunker" in r2.rebuilt
    assert r2.embedded == r2.total and r2.total > r1.total
    consistent(fresh_settings.replace(chunk_tokens=60), embedder)
    # a different embedding model: never a mixed index
    from assistant.embeddings import make_embedder

    # (the engine is not a different model: its vectors agree with fp32 to cosine 0.999, so it keeps the index)
    other = make_embedder(fresh_settings.replace(embedding_model="minilm"))
    assert other.model_id != embedder.model_id
    r3 = Indexer(fresh_settings.replace(chunk_tokens=60, embedding_model="minilm"), embedder=other).run([docs], show_progress=False)
    assert "embedder" in r3.rebuilt and r3.embedded == r3.total
    store = ChunkStore(fresh_settings, other)
    assert store.info()["assistant_embedder"] == other.model_id


def test_kill_during_indexing_then_rerun_is_consistent(tmp_path, fresh_settings, embedder):
    """SIGKILL a real `assistant index` mid-run; the next run repairs the index: no duplicates, no orphans."""
    docs = tmp_path / "many"
    write_docs(docs, n_files=40, paras_per_file=12)
    # the first file is indexed before the kill and must survive it
    Indexer(fresh_settings, embedder=embedder).run([docs / "doc0.txt"], show_progress=False)
    env = {**os.environ, "ASSISTANT_INDEX_DIR": fresh_settings.index_dir, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "assistant", "index", str(docs), "--no-progress"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    manifest = Manifest(Path(fresh_settings.index_dir) / "manifest.sqlite3")
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        done = sum(1 for r in manifest.files().values() if r.status == "done")
        if done >= 3:  # some batches written, many files to go
            break
        time.sleep(0.05)
    assert proc.poll() is None, "indexing finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = Indexer(fresh_settings, embedder=embedder).run([docs], show_progress=False)
    assert not r.failed
    n_files, n_chunks = consistent(fresh_settings, embedder)
    assert n_files == 40 and n_chunks == r.total
    # the re-run did not re-embed what was already stored
    assert r.embedded < r.total
    again = Indexer(fresh_settings, embedder=embedder).run([docs], show_progress=False)
    assert again.embedded == 0 and again.unchanged == 40


def test_cli_index_json_and_errors(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "assistant", "index", str(tmp_path / "nope"), "--index-dir", str(tmp_path / "i"), "--json"],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 1 and "no such file or folder" in out.stderr
    docs = tmp_path / "d"
    docs.mkdir()
    (docs / "a.txt").write_text("Le Mont-Saint-Michel est une commune de la Manche.")
    (docs / "b.pdf").write_bytes(b"not a pdf")
    out = subprocess.run([sys.executable, "-m", "assistant", "index", str(docs), "--index-dir", str(tmp_path / "i"), "--json"],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) >= {"files", "chunks", "seconds"}
    assert data["files"]["added"] == 1 and data["chunks"] == {"embedded": 1, "total": 1}
    assert data["files"]["failed"][0]["path"].endswith("b.pdf") and "PDF" in data["files"]["failed"][0]["error"]


# --------------------------------------------------------------------------- pathological files (issue 15)
def test_pathological_files_never_stall_indexing(tmp_path, fresh_settings, embedder):
    """One good Markdown file beside a 2 MB line of one repeated word, a 2 MB single "word", CJK text without spaces
    and a 20,000-deep HTML: every bad file is indexed or listed with a reason, the good one answers, and identical
    chunk texts are embedded once."""
    from assistant.pipeline import Assistant

    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(SEEDS / "000_aa041678daf2c786.txt", docs / "good.md")
    (docs / "repeated.txt").write_text(" ".join(["sémaphore"] * (2_000_000 // 10)), encoding="utf-8")
    (docs / "word.txt").write_text("a" * 2_000_000, encoding="utf-8")
    (docs / "cjk.txt").write_text("灯塔守护者每天晚上点亮灯光为船只指引方向" * 15_000, encoding="utf-8")  # ~900 KB
    (docs / "deep.html").write_text("<html><body>" + "<div>" * 20_000 + "Texte tout au fond de la page."
                                    + "</div>" * 20_000 + "</body></html>", encoding="utf-8")
    t0 = time.perf_counter()
    r = Indexer(fresh_settings, embedder=embedder).run([docs], show_progress=False)
    took = time.perf_counter() - t0
    failed = {Path(f["path"]).name: f["error"] for f in r.failed}
    assert r.added + len(failed) == 5 and "good.md" not in failed, r.summary()
    assert all(reason and "\n" not in reason for reason in failed.values())
    assert {"repeated.txt", "word.txt", "cjk.txt"}.isdisjoint(failed), failed  # long lines are indexed, not refused
    assert took < 240, f"indexing took {took:.0f} s"  # ~30 s here; the quadratic chunker never finished
    # thousands of chunks of a repeated word or letter, a periodic CJK text: a handful of distinct texts to embed
    assert r.total > 3000 and r.embedded < 200, (r.total, r.embedded)
    assert r.embedded + r.reused == r.total
    check_consistent(fresh_settings, embedder)
    answer = Assistant(fresh_settings, embedder=embedder).ask("How much did Morocco allocate to startups?").answer
    assert "1,3 milliard" in answer, answer
    print(f"pathological folder indexed in {took:.1f} s: {r.summary()}")


def test_a_file_over_its_time_budget_is_skipped_with_the_reason(tmp_path, settings_factory, monkeypatch):
    """``file_timeout``: a loader that checks its deadline stops there; one stuck in a call that never checks it is
    abandoned by the watchdog; the rest of the folder is indexed either way."""
    import threading

    from assistant import loaders

    from .helpers import HashEmbedder

    release = threading.Event()
    calls = []

    def cooperative(data, deadline=loaders._NO_DEADLINE):  # a loop over pieces that never ends, checking its budget
        calls.append("md")
        while True:
            deadline.check()
            time.sleep(0.01)

    def stuck(data, deadline=loaders._NO_DEADLINE):  # one long third-party call that never looks at the deadline
        calls.append("html")
        while not release.is_set():
            sum(range(10_000))
        return [loaders._Para("jamais")], ""

    monkeypatch.setitem(loaders._EXTRACTORS, "md", cooperative)
    monkeypatch.setitem(loaders._EXTRACTORS, "html", stuck)
    docs = tmp_path / "docs"
    write_docs(docs, n_files=3)
    (docs / "a-loop.md").write_text("# Boucle\n\nUn texte.", encoding="utf-8")
    (docs / "b-stuck.html").write_text("<p>Une page.</p>", encoding="utf-8")
    settings = settings_factory(index_dir=str(tmp_path / "index"), file_timeout=1.0)
    emb = HashEmbedder()
    try:
        t0 = time.perf_counter()
        r = Indexer(settings, embedder=emb).run([docs], show_progress=False)
        took = time.perf_counter() - t0
    finally:
        release.set()
    failed = {Path(f["path"]).name: f["error"] for f in r.failed}
    assert set(failed) == {"a-loop.md", "b-stuck.html"} and sorted(calls) == ["html", "md"]
    for reason in failed.values():
        assert reason.startswith("took longer than 1 s to read; raise ASSISTANT_FILE_TIMEOUT"), reason
    assert r.added == 3 and took < 30, (r.summary(), took)  # budget 1 s + the watchdog's 2 s grace, then the rest
    check_consistent(settings, emb)
