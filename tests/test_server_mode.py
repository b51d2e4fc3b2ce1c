"""Server mode: index and query through a real `chroma run` server."""
from __future__ import annotations

import os
import subprocess
import sys
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
    # it built its own BM25 cache from the server's collection, at the server's generation
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
