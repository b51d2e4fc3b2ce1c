"""Faults: SIGKILL mid-indexing and mid-upload, a Chroma server that stops, a full disk, an LLM that is down or slow.

Every test ends by checking that nothing was lost or duplicated: the collection holds exactly the chunks the
manifest accounts for, the BM25 snapshot that queries read covers the same chunks, and content indexed before
the fault still answers. Child processes that are killed use :class:`tests.helpers.HashEmbedder` (crash
safety does not depend on the model; they start in a second instead of loading torch); the kill is a real
``SIGKILL`` of a real process, at a named point of the indexing code or at a random moment of an upload.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from assistant.indexing import Indexer
from assistant.retrieval import LexicalIndex
from assistant.store import WRITE_RESERVE_BYTES, ChunkStore, Manifest, StoreError

from .conftest import ROOT, SEEDS, free_port
from .helpers import ChromaServer, HashEmbedder, check_consistent

MOROCCO = "How much did Morocco allocate to startups?"
MOROCCO_FR = "Quel montant le Maroc a-t-il mobilisé pour les startups ?"  # answered by the hash embedder too (BM25)

TOPICS = [
    "Le port de {p} accueille chaque été une fête maritime où des voiliers traditionnels arrivent de toute l'Europe.",
    "La criée de {p} vend le poisson chaque matin; les mareyeurs achètent le bar, la sole et la lotte aux enchères.",
    "Le phare de {p} guide les navires depuis le XIXe siècle et sa lanterne porte à plus de trente kilomètres.",
    "Les randonneurs suivent le sentier des douaniers autour de {p}, entre les falaises et les criques de sable.",
    "La chapelle de {p} conserve des vitraux anciens et un calvaire sculpté dans le granit de la région.",
]


def write_corpus(folder: Path, names: list[str], paras: int = 12, version: str = "v1") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        body = "\n\n".join(f"{name} ({version}), partie {j}. " + TOPICS[j % len(TOPICS)].format(p=f"{name}-{j}")
                           for j in range(paras))
        (folder / f"{name}.txt").write_text(body, encoding="utf-8")


# --------------------------------------------------------------------------- SIGKILL at named points of a run
KILL_CHILD = textwrap.dedent(r"""
    import os, signal, sys
    sys.path.insert(0, sys.argv[4])
    from tests.helpers import HashEmbedder
    from assistant.config import Settings
    from assistant import indexing, lexicon, retrieval, store

    point, index_dir, docs = sys.argv[1:4]
    calls = {}
    indexing.Indexer.BATCH_CHUNKS = 64  # several batches in this small corpus, as a large one has

    def kill():
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    def wrap(owner, name, when, nth=1, match=None):
        orig = getattr(owner, name)
        def patched(*args, **kwargs):
            if match is None or match(args, kwargs):
                calls[name] = calls.get(name, 0) + 1
                if calls[name] == nth and when == "before":
                    kill()
            out = orig(*args, **kwargs)
            if calls.get(name) == nth and when == "after" and (match is None or match(args, kwargs)):
                kill()
            return out
        setattr(owner, name, patched)

    pending = lambda a, k: any(r.status == "pending" for r in list(a[1]))
    if point == "intent-recorded":      # files marked pending, nothing written yet
        wrap(store.Manifest, "put_many", "after")
    elif point == "chunks-written":     # first batch of chunks in the store, its files still pending
        wrap(store.ChunkStore, "upsert", "after")
    elif point == "second-batch":       # one batch committed, the second half-written
        wrap(store.ChunkStore, "upsert", "after", nth=2)
    elif point == "files-removed":      # a deleted file's chunks gone, its manifest row still there
        wrap(store.ChunkStore, "delete", "after", match=lambda a, k: True)
    elif point == "lexicon":            # all chunks written, the word lexicon being saved
        wrap(lexicon.Lexicon, "_save", "before")
    elif point == "bm25":               # all chunks written, the BM25 snapshot not yet rebuilt
        wrap(retrieval.LexicalIndex, "build", "before")
    elif point == "before-clean":       # everything written, the run not yet marked finished
        wrap(store.Manifest, "set_meta", "before", match=lambda a, k: k.get("state") == "clean")
    else:
        raise SystemExit(f"unknown point {point}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    settings = Settings.from_env(env=env, index_dir=index_dir)
    report = indexing.Indexer(settings, embedder=HashEmbedder()).run([docs], show_progress=False)
    print("FINISHED", report.to_json())
""")

KILL_POINTS = ["intent-recorded", "chunks-written", "second-batch", "files-removed", "lexicon", "bm25", "before-clean"]


@pytest.fixture(scope="module")
def kill_corpus(tmp_path_factory, settings_factory):
    """A v1 corpus indexed from scratch, its v2 (2 files edited, 1 deleted, 3 added), and v2's clean index."""
    root = tmp_path_factory.mktemp("kill")
    v1, v2 = root / "v1-docs", root / "v2-docs"
    write_corpus(v1, [f"ville{i}" for i in range(6)])
    shutil.copytree(v1, v2)
    write_corpus(v2, ["ville1", "ville2"], version="v2")
    (v2 / "ville5.txt").unlink()
    write_corpus(v2, [f"nouveau{i}" for i in range(3)], paras=200)
    # the reference: v2 indexed from scratch in place of v1 (chunk ids depend on the file's absolute path)
    docs = root / "docs"
    shutil.copytree(v2, docs)
    ref_settings = settings_factory(index_dir=str(root / "reference-index"))
    Indexer(ref_settings, embedder=HashEmbedder()).run([docs], show_progress=False)
    reference = check_consistent(ref_settings, HashEmbedder())
    shutil.rmtree(docs)
    lexicon = set(json.loads((root / "reference-index" / "lexicon" / "words.json").read_text()))
    return dict(root=root, v1=v1, v2=v2, reference=reference, lexicon=lexicon)


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_at_each_point_of_a_run_is_repaired(point, kill_corpus, tmp_path, settings_factory):
    emb = HashEmbedder()
    docs = kill_corpus["root"] / "docs"
    shutil.rmtree(docs, ignore_errors=True)
    shutil.copytree(kill_corpus["v1"], docs)
    settings = settings_factory(index_dir=str(tmp_path / "index"))
    Indexer(settings, embedder=emb).run([docs], show_progress=False)
    before = check_consistent(settings, emb)
    manifest = Manifest(settings.index_path / "manifest.sqlite3")
    kept = {k: r.chunk_ids for k, r in manifest.files().items() if not k.endswith(("ville1.txt", "ville2.txt", "ville5.txt"))}
    assert len(kept) == 3

    shutil.rmtree(docs)
    shutil.copytree(kill_corpus["v2"], docs)
    proc = subprocess.run([sys.executable, "-c", KILL_CHILD, point, str(settings.index_path), str(docs), str(ROOT)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr[-2000:])
    assert "FINISHED" not in proc.stdout

    # the index as left by the kill still serves the v1 content that did not change
    store = ChunkStore(settings, emb)
    present = set(store.all_ids())
    assert all(set(ids) <= present for ids in kept.values()), "chunks of unchanged files were lost by the kill"

    report = Indexer(settings, embedder=emb).run([docs], show_progress=False)
    assert not report.failed
    after = check_consistent(settings, emb)
    # exactly what a clean build of v2 holds: nothing orphaned, duplicated or missing
    assert after["ids"] == kill_corpus["reference"]["ids"]
    assert all(set(ids) <= after["ids"] for ids in kept.values())
    words = set(json.loads((settings.index_path / "lexicon" / "words.json").read_text()))
    assert kill_corpus["lexicon"] <= words, f"{len(kill_corpus['lexicon'] - words)} corpus words missing from the lexicon"
    again = Indexer(settings, embedder=emb).run([docs], show_progress=False)
    assert again.embedded == 0 and again.unchanged == len(list(docs.iterdir()))
    print(f"killed at {point}: v1 {before['chunks']} chunks -> repaired {after['chunks']} "
          f"(repaired {report.repaired} orphans, embedded {report.embedded}, reused {report.reused})")


# --------------------------------------------------------------------------- readers during a run
def test_readers_get_the_old_version_until_the_new_snapshot_is_published(tmp_path, settings_factory, embedder, monkeypatch):
    """Asked at every write of a re-index of a changed file, and just before the switch: always the old answer;
    just after it: the new one. (Before the fix, the changed file's old chunks were deleted at its batch and its
    content was unanswerable until the end of the run.)"""
    from assistant.pipeline import Assistant
    from assistant.store import ChunkStore as Store

    docs = tmp_path / "docs"
    docs.mkdir()
    code = docs / "a_registre.txt"
    code.write_text("Registre de la capitainerie de Roscoff.\n\nLe code du coffre de la capitainerie de Roscoff est 4417.",
                    encoding="utf-8")
    write_corpus(docs, [f"port{i}" for i in range(6)], paras=40)
    settings = settings_factory(index_dir=str(tmp_path / "index"))
    a = Assistant(settings, embedder=embedder)
    a.index([docs], show_progress=False)
    q = "Quel est le code du coffre de la capitainerie de Roscoff ?"
    assert "4417" in a.ask(q).answer

    code.write_text("Registre de la capitainerie de Roscoff, révisé.\n\nLe code du coffre de la capitainerie de Roscoff "
                    "est 9083.", encoding="utf-8")
    write_corpus(docs, [f"port{i}" for i in range(6)], paras=40, version="v2")
    answers: list[tuple[str, str]] = []
    orig_upsert, orig_build = Store.upsert, LexicalIndex.build

    def upsert(self, *args, **kwargs):
        out = orig_upsert(self, *args, **kwargs)
        answers.append(("after a batch", a.ask(q).answer))
        return out

    def build(self, *args, **kwargs):
        answers.append(("before the switch", a.ask(q).answer))
        return orig_build(self, *args, **kwargs)

    monkeypatch.setattr(Store, "upsert", upsert)
    monkeypatch.setattr(Indexer, "BATCH_CHUNKS", 32)  # several batches in this small corpus, as a large one has
    monkeypatch.setattr(LexicalIndex, "build", build)
    report = a.index([docs], show_progress=False)
    assert report.updated == 7 and len(answers) >= 3
    assert all("4417" in ans and "9083" not in ans for _, ans in answers), answers
    assert "9083" in a.ask(q).answer
    check_consistent(settings, embedder)


# --------------------------------------------------------------------------- disk full
@pytest.fixture()
def small_disk(tmp_path):
    """A real 64 MB file system (tmpfs, mounted as root) to fill up; skipped where mounting is not allowed."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root (the CI runs as root)")
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if out.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(disk: Path) -> Path:
    """Fill the file system to the last byte with a ballast file (deleting it frees the space again)."""
    ballast = disk / "ballast"
    with open(ballast, "ab") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    try:
        with open(ballast, "ab") as fh:  # the last partial block
            while True:
                fh.write(b"\0" * 512)
                fh.flush()
    except OSError:
        pass
    assert shutil.disk_usage(disk).free < 64 * 1024
    return ballast


FILL_POINTS = {  # where the disk becomes full during a run
    "chroma-write": ("assistant.store.ChunkStore", "upsert"),
    "manifest-commit": ("assistant.store.Manifest", "put_many"),
    "lexicon-save": ("assistant.lexicon.Lexicon", "_save"),
    "bm25-save": ("assistant.retrieval.LexicalIndex", "build"),
}


@pytest.mark.slow
@pytest.mark.parametrize("point", [*FILL_POINTS, "too-much-data"])
def test_disk_full_while_indexing_is_a_clear_error_and_loses_nothing(point, small_disk, tmp_path, settings_factory,
                                                                     monkeypatch, capsys):
    import importlib

    from assistant.cli import main
    from assistant.pipeline import Assistant

    emb = HashEmbedder()
    settings = settings_factory(index_dir=str(small_disk / "index"))
    a = Assistant(settings, embedder=emb)
    a.index([SEEDS], show_progress=False)
    want = a.ask(MOROCCO_FR).answer
    assert "1,3 milliard" in want
    docs = tmp_path / "docs"
    write_corpus(docs, [f"ville{i}" for i in range(8)], paras=60 if point == "too-much-data" else 12)
    ballast = None
    if point == "too-much-data":  # the disk fills up on its own: 3 MB left above the store's write reserve
        with open(small_disk / "ballast", "wb") as fh:
            fh.write(b"\0" * (shutil.disk_usage(small_disk).free - WRITE_RESERVE_BYTES - 3 * 1024 * 1024))
        ballast = small_disk / "ballast"
        for i in range(8):  # far over the 3 MB left, and the whole index (with its sentence vectors) fits once freed
            write_corpus(docs, [f"bourg{i}-{j}" for j in range(10)], paras=60)
    else:
        module, _, cls = FILL_POINTS[point][0].rpartition(".")
        owner = getattr(importlib.import_module(module), cls)
        name = FILL_POINTS[point][1]
        orig = getattr(owner, name)

        def filled(*args, **kwargs):
            nonlocal ballast
            if ballast is None:
                ballast = fill(small_disk)
            return orig(*args, **kwargs)

        monkeypatch.setattr(owner, name, filled)

    with pytest.raises(StoreError) as info:
        a.index([docs], show_progress=False)
    msg = str(info.value)
    assert "disk holding" in msg and "is full" in msg and "still searchable" in msg, msg
    assert "Traceback" not in msg and len(msg) < 600
    # the previous index still answers, the same way
    assert a.ask(MOROCCO_FR).answer == want
    assert a.status()["chunks"] > 0

    # the CLI says the same in one line, exit code 1 (the disk made full again: the failed run gave back its leftovers)
    fill(small_disk)
    monkeypatch.setattr("assistant.embeddings.make_embedder", lambda s: HashEmbedder())
    rc = main(["index", str(docs), "--index-dir", settings.index_dir, "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("error: ") and "is full" in err and "Traceback" not in err, err

    # space freed: the next run completes and repairs, nothing lost or duplicated
    monkeypatch.undo()
    ballast.unlink()
    report = Indexer(settings, embedder=emb).run([docs], show_progress=False)
    assert not report.failed
    Indexer(settings, embedder=emb).run([SEEDS], show_progress=False)
    state = check_consistent(settings, emb)
    assert state["files"] == 1 + len(list(docs.iterdir()))
    b = Assistant(settings, embedder=emb)
    assert b.ask(MOROCCO_FR).answer == want
    print(f"disk full at {point}: {msg[:160]}… then repaired {report.repaired} orphans, {state['chunks']} chunks")


def test_upload_on_a_full_disk_is_refused_per_file_and_the_index_still_answers(small_disk, tmp_path, settings_factory,
                                                                              embedder, seeds_index):
    from assistant.pipeline import Assistant
    from assistant.ui import ChatApp

    shutil.copytree(seeds_index, small_disk / "index", ignore=shutil.ignore_patterns(".index.lock"))
    settings = settings_factory(index_dir=str(small_disk / "index"))  # uploads under index/uploads, on the small disk
    app = ChatApp(settings, Assistant(settings, embedder=embedder))
    want = app.ask(MOROCCO).answer
    doc = tmp_path / "marees.txt"
    doc.write_text("Les grandes marées de Saint-Malo dépassent treize mètres d'amplitude.", encoding="utf-8")
    ballast = fill(small_disk)
    res = app.add_files([str(doc)])
    assert not res.indexed and len(res.failed) == 1
    assert "No space left on device" in res.failed[0]["error"] or "is full" in res.failed[0]["error"], res.failed
    assert app.ask(MOROCCO).answer == want
    assert not list(settings.uploads_path.glob("marees*"))  # nothing half-stored in the uploads folder
    ballast.unlink()
    res = app.add_files([str(doc)])
    assert [f["file"] for f in res.indexed] == ["marees.txt"]
    assert "treize mètres" in app.ask("Quelle est l'amplitude des grandes marées de Saint-Malo ?").answer
    check_consistent(settings, embedder)


# --------------------------------------------------------------------------- a Chroma server that goes away
@pytest.fixture()
def chroma_server(tmp_path):
    server = ChromaServer(tmp_path / "chroma-data", free_port()).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.server
@pytest.mark.slow
def test_chroma_server_stopped_frozen_and_back(chroma_server, tmp_path, settings_factory, embedder, monkeypatch, capsys):
    """Stopped: a clear message in the UI, the API and the CLI, at once. Frozen: the same within chroma_timeout, no
    hang. Back: the same running app answers again, without a restart."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from assistant.cli import main
    from assistant.pipeline import Assistant
    from assistant.ui import ChatApp, create_app, launch

    settings = settings_factory(index_dir=str(tmp_path / "local"), chroma_url=chroma_server.url, collection="faults",
                                chroma_timeout=3.0)
    a = Assistant(settings, embedder=embedder)
    a.index([SEEDS], show_progress=False)
    want = a.ask(MOROCCO).answer
    assert "1,3 milliard" in want
    demo = create_app(settings, a)
    _, url, _ = launch(demo, settings, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    client = Client(url, verbose=False, analytics_enabled=False)
    app = ChatApp(settings, a)
    monkeypatch.setattr("assistant.pipeline.make_embedder", lambda s: embedder)
    figures = {}
    try:
        assert client.predict(MOROCCO, api_name="/ask")["answer"] == want

        def down_everywhere(label: str, bound: float) -> None:
            t0 = time.monotonic()
            with pytest.raises(StoreError, match="unreachable or failing") as err:
                a.ask(MOROCCO)
            assert chroma_server.url in str(err.value) and "chroma run" in str(err.value)
            text = list(app.respond(MOROCCO, []))[-1][0][-1]["content"]
            assert "The document index is unavailable" in text and chroma_server.url in text
            with pytest.raises(AppError, match="unreachable or failing"):
                client.predict(MOROCCO, api_name="/ask")
            assert "unreachable" in client.predict(api_name="/status").get("error", "")
            rc = main(["ask", MOROCCO, "--chroma-url", chroma_server.url, "--index-dir", settings.index_dir])
            out, cli_err = capsys.readouterr()
            assert rc == 1 and cli_err.startswith("error: ") and "unreachable" in cli_err and "Traceback" not in cli_err
            elapsed = time.monotonic() - t0
            figures[label] = round(elapsed, 1)
            assert elapsed < bound, (label, elapsed)

        chroma_server.stop()
        down_everywhere("stopped", 20)  # refused connections: each answer at once
        chroma_server.start()
        assert client.predict(MOROCCO, api_name="/ask")["answer"] == want  # back, same process
        assert a.ask(MOROCCO).answer == want
        chroma_server.freeze()
        down_everywhere("frozen", 5 * (settings.chroma_timeout + 2) + 10)  # five calls, each bounded by the timeout
        chroma_server.thaw()
        assert client.predict(MOROCCO, api_name="/ask")["answer"] == want
    finally:
        client.close()
        demo.close()
    print(f"chroma server faults: seconds to report everywhere {figures}")


@pytest.mark.server
@pytest.mark.slow
def test_chroma_server_stopped_mid_indexing_then_repaired(chroma_server, tmp_path, settings_factory, monkeypatch):
    from assistant.pipeline import Assistant

    settings = settings_factory(index_dir=str(tmp_path / "local"), chroma_url=chroma_server.url, collection="midrun",
                                chroma_timeout=3.0)
    emb = HashEmbedder()  # the fault is the store's: a quick stand-in model
    a = Assistant(settings, embedder=emb)
    a.index([SEEDS], show_progress=False)
    docs = tmp_path / "docs"
    write_corpus(docs, [f"anse{i}" for i in range(10)], paras=40)
    orig = ChunkStore.upsert
    calls = []

    def upsert(self, *args, **kwargs):
        out = orig(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            chroma_server.stop()  # the server goes away after the first batch of the run
        return out

    monkeypatch.setattr(ChunkStore, "upsert", upsert)
    monkeypatch.setattr(Indexer, "BATCH_CHUNKS", 32)  # several batches in this small corpus, as a large one has
    t0 = time.monotonic()
    with pytest.raises(StoreError, match="unreachable or failing"):
        a.index([docs], show_progress=False)
    assert time.monotonic() - t0 < 60
    monkeypatch.undo()
    chroma_server.start()
    assert "1,3 milliard" in a.ask(MOROCCO_FR).answer  # what was indexed before is all there
    report = a.index([docs], show_progress=False)
    assert not report.failed and report.added >= 1 and report.added + report.unchanged == 10, report.to_json()
    a.index([SEEDS], show_progress=False)
    state = check_consistent(settings, emb)
    assert state["files"] == 11


# --------------------------------------------------------------------------- SIGKILL of the app during an upload
class AppProcess:
    """The app (what `assistant serve` runs) in a child process, with a slowed stand-in embedder."""

    def __init__(self, root: Path, docs: Path, delay: float):
        self.root, self.docs, self.delay = root, docs, delay
        self.index, self.uploads = root / "index", root / "uploads"
        self.port, self.proc = free_port(), None
        self.url = f"http://127.0.0.1:{self.port}/"

    def start(self) -> "AppProcess":
        code = "from tests.helpers import serve_app_for_tests; serve_app_for_tests()"
        self.log = open(self.root / f"app-{time.monotonic_ns()}.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(self.index), str(self.uploads), str(self.docs),
                                      str(self.port), str(self.delay)], cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            assert self.proc.poll() is None, (self.root / self.log.name).read_text()[-2000:]
            try:
                with urllib.request.urlopen(self.url + "gradio_api/info", timeout=2):
                    return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("the app did not start")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.mark.slow
def test_sigkill_during_an_uploads_indexing(tmp_path, settings_factory):
    """Kill the app while it indexes an upload; the next start completes that upload, keeps every earlier one and
    leaves no pending row, orphan or duplicate chunk; the uploads folder holds exactly what is searchable."""
    from gradio_client import Client, handle_file

    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(SEEDS / "000_aa041678daf2c786.txt", docs)
    app = AppProcess(tmp_path, docs, delay=0.4).start()
    try:
        client = Client(app.url, verbose=False, analytics_enabled=False)
        earlier = tmp_path / "phare.txt"
        earlier.write_text("Le phare de Kerbrat a été construit par l'ingénieur Paul Le Meur en 1869.", encoding="utf-8")
        _, _, res = client.predict([handle_file(str(earlier))], api_name="/upload")
        assert [f["file"] for f in res["indexed"]] == ["phare.txt"]
        q_earlier = "Qui a construit le phare de Kerbrat ?"
        assert "Paul Le Meur" in client.predict(q_earlier, api_name="/ask")["answer"]
        big = []
        for i in range(4):
            p = tmp_path / f"registre{i}.txt"
            write_corpus(tmp_path / "tmp-corpus", [f"registre{i}"], paras=150)
            shutil.move(tmp_path / "tmp-corpus" / f"registre{i}.txt", p)
            big.append(p)
        job = client.submit([handle_file(str(p)) for p in big], api_name="/upload")
        manifest = Manifest(app.index / "manifest.sqlite3")
        deadline = time.time() + 60
        while time.time() < deadline:
            rows = [r for k, r in manifest.files().items() if "registre" in k]
            if rows:
                break
            time.sleep(0.05)
        assert rows and not job.done(), "the upload's indexing finished before the kill"
        states = sorted(r.status for r in rows)
        app.kill()
        client.close()
    finally:
        app.stop()
    assert sorted(p.name for p in app.uploads.iterdir()) == ["phare.txt"] + [p.name for p in big]

    app.start()  # the next start: `assistant serve` indexes the docs and the uploads folders
    try:
        client = Client(app.url, verbose=False, analytics_enabled=False)
        assert "Paul Le Meur" in client.predict(q_earlier, api_name="/ask")["answer"]
        status = client.predict(api_name="/status")
        assert status["documents"] == 2 + len(big), status
        client.close()
    finally:
        app.stop()
    settings = settings_factory(index_dir=str(app.index), upload_dir=str(app.uploads))
    state = check_consistent(settings, HashEmbedder())
    searchable = {Path(k).name for k in Manifest(app.index / "manifest.sqlite3").files()}
    assert searchable == {"000_aa041678daf2c786.txt", "phare.txt"} | {p.name for p in big}
    print(f"killed during an upload's indexing (its rows were {states}): next start consistent, "
          f"{state['files']} files, {state['chunks']} chunks")
