"""Server mode: index and query through a real `chroma run` server."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from assistant.indexing import Indexer
from assistant.pipeline import Assistant
from assistant.store import ChunkStore, StoreError

from .conftest import SEEDS, free_port
from .helpers import ChromaServer

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    server = ChromaServer(tmp_path_factory.mktemp("chroma-server"), free_port()).start()
    try:
        yield server.url
    finally:
        server.stop()


def test_index_and_ask_through_a_chroma_server(chroma_server, tmp_path, settings_factory, embedder):
    settings = settings_factory(index_dir=str(tmp_path / "local"), chroma_url=chroma_server, collection="seeds_test")
    report = Indexer(settings, embedder=embedder).run([SEEDS], show_progress=False)
    assert report.added == 1 and report.embedded == report.total > 0
    # the vectors live on the server, not under the local index dir
    assert not (tmp_path / "local" / "chroma").exists()
    store = ChunkStore(settings, embedder)
    assert store.count() == report.total
    assert store.info()["assistant_embedder"] == embedder.model_id

    again = Indexer(settings, embedder=embedder).run([SEEDS], show_progress=False)
    assert again.embedded == 0 and again.unchanged == 1

    a = Assistant(settings, embedder=embedder)
    ans = a.ask("How much did Morocco allocate to startups?")
    assert not ans.abstained and "1,3 milliard" in ans.answer
    assert ans.citations[0].source == "seeds/000_aa041678daf2c786.txt"

    # another machine (no local manifest, no BM25 cache) pointing at the same server answers too
    other = Assistant(settings.replace(index_dir=str(tmp_path / "elsewhere")), embedder=embedder)
    assert other.has_index()
    ans2 = other.ask("Qui est l'ambassadeur du Maroc au Qatar ?")
    assert "Mohammed Setri" in ans2.answer
    # it built its own BM25 cache from the server's collection, at the server's generation (in the background)
    assert other.retriever.wait_for_refresh(120)
    assert other.lexical.load()[0] == store.generation() and other.lexical.live_ids() == set(store.all_ids())


def test_unreachable_server_gives_a_clear_error_fast(tmp_path, settings_factory, embedder):
    port = free_port()  # nothing listens there
    settings = settings_factory(index_dir=str(tmp_path / "i"), chroma_url=f"http://127.0.0.1:{port}", chroma_timeout=3)
    t0 = time.time()
    with pytest.raises(StoreError) as err:
        Indexer(settings, embedder=embedder).run([SEEDS], show_progress=False)
    assert time.time() - t0 < 20
    msg = str(err.value)
    assert f"127.0.0.1:{port}" in msg and "unreachable" in msg and "chroma run" in msg
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    out = subprocess.run([sys.executable, "-m", "assistant", "index", str(SEEDS), "--chroma-url", f"http://127.0.0.1:{port}",
                          "--index-dir", str(tmp_path / "j")], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 1 and "unreachable" in out.stderr and "Traceback" not in out.stderr


def test_a_new_server_generation_is_followed_in_the_background(chroma_server, tmp_path, settings_factory, embedder):
    """Another machine indexes into the shared collection: a query that notices the new generation answers from the
    snapshot it has, at once, while a background thread builds the new one; the next queries use the new one."""
    settings = settings_factory(index_dir=str(tmp_path / "a"), chroma_url=chroma_server, collection="follow_test")
    writer = Indexer(settings, embedder=embedder)
    writer.run([SEEDS], show_progress=False)
    store = ChunkStore(settings, embedder)
    g1 = store.generation()

    reader = Assistant(settings.replace(index_dir=str(tmp_path / "b")), embedder=embedder)
    reader.warm_up()  # at start-up (not in a request) the snapshot is built at once
    assert reader.lexical.load()[0] == g1
    question = "Quel est le code du coffre de la capitainerie de Roscoff ?"
    assert "4417" not in reader.ask(question).answer

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "registre.txt").write_text("Registre de la capitainerie de Roscoff.\n\nLe code du coffre de la capitainerie "
                                       "de Roscoff est 4417.\n\nLe coffre contient les doubles des clés des pontons.",
                                       encoding="utf-8")
    writer.run([SEEDS, docs], show_progress=False)
    g2 = store.generation()
    assert g2 > g1

    # hold the reader's BM25 build until the query has been answered
    builds: list[str] = []
    started, release = threading.Event(), threading.Event()
    real_build = reader.lexical.build

    def held_build(ids, generation):
        builds.append(threading.current_thread().name)
        started.set()
        assert release.wait(120)
        return real_build(ids, generation=generation)

    reader.lexical.build = held_build
    reader.retriever._gen_checked = 0.0  # the generation is checked at the next query (else within 2 s)
    t0 = time.perf_counter()
    ans = reader.ask(question)
    took = time.perf_counter() - t0
    try:
        assert started.wait(30)  # the new generation was seen and its build started...
        assert not release.is_set() and builds == ["assistant-bm25-follow"]  # ...in the background, still held
        # the query answered from the snapshot it had: the old generation, which does not list the new file's chunks
        assert reader.lexical.load()[0] == g1
        assert "4417" not in ans.answer and all(c.source.startswith("seeds/") for c in ans.citations)
        assert took < 30, took
        again = reader.ask("Qui est l'ambassadeur du Maroc au Qatar ?")  # more queries meanwhile: no second build
        assert "Mohammed Setri" in again.answer and len(builds) == 1
    finally:
        release.set()
    assert reader.retriever.wait_for_refresh(120)
    assert reader.lexical.load()[0] == g2 and reader.lexical.live_ids() == set(store.all_ids())
    assert "4417" in reader.ask(question).answer
    assert len(builds) == 1


def test_sentence_vectors_live_on_the_server_and_leave_with_their_document(chroma_server, tmp_path, settings_factory,
                                                                           embedder):
    """Server mode keeps sentence vectors in `<collection>__sentences` on the server: every app process on it finds
    them (none embeds its candidate sentences), and they go with their document."""
    import shutil

    from assistant.sentences import sentence_texts, text_key

    from .conftest import SEED_FILE
    from .helpers import check_consistent

    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(SEED_FILE, docs / SEED_FILE.name)
    (docs / "phare.txt").write_text("Le phare d'Eckmühl, à Penmarch, mesure soixante-cinq mètres. "
                                    "Il a été allumé pour la première fois en 1897.\n", encoding="utf-8")
    settings = settings_factory(index_dir=str(tmp_path / "local"), chroma_url=chroma_server, collection="sent_test")
    report = Indexer(settings, embedder=embedder).run([docs], show_progress=False)
    assert report.sentences > 0
    assert not list((tmp_path / "local").glob("sentences*"))  # nothing local: the server holds them
    store = ChunkStore(settings, embedder)
    texts = {cid: sentence_texts(doc) for cid, (doc, _) in store.get(store.all_ids()).items()}
    assert store.sentences.count() == sum(len(t) for t in texts.values())
    assert "sent_test__sentences" in [getattr(c, "name", c) for c in store.client().list_collections()]
    found = store.sentences.lookup([text_key(t) for ts in texts.values() for t in ts])
    for t in {t for ts in texts.values() for t in ts}:
        assert float(found[text_key(t)] @ embedder.encode([t])[0]) >= 0.999
    check_consistent(settings, embedder)

    # another machine on the same server: answers without embedding a sentence
    other = Assistant(settings.replace(index_dir=str(tmp_path / "elsewhere")), embedder=embedder)
    ans = other.ask("How much did Morocco allocate to startups?")
    assert not ans.abstained and "1,3 milliard" in ans.answer
    assert other.cache.embedded_sentences == 0

    # a deleted file's sentence vectors leave the server with its chunks
    (docs / "phare.txt").unlink()
    Indexer(settings, embedder=embedder).run([docs], show_progress=False)
    check_consistent(settings, embedder)
    assert store.sentences.chunk_ids() == set(store.all_ids())
    assert not store.sentences.lookup([text_key("Le phare d'Eckmühl, à Penmarch, mesure soixante-cinq mètres.")])

    # a rebuild drops them with the collection (and writes them again)
    Indexer(settings, embedder=embedder).run([docs], rebuild=True, show_progress=False)
    fresh = ChunkStore(settings, embedder)
    assert fresh.sentences.chunk_ids() == set(fresh.all_ids()) and fresh.all_ids()
    # a process whose handle predates the rebuild reopens the sentence collection
    assert len(store.sentences.lookup([text_key(t) for ts in texts.values() for t in ts])) > 0
