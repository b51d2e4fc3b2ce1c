"""No silent degradation (assistant/health.py): every fallback is logged once with its traceback, counted, and shown
by ``Assistant.status()`` (the UI's ``/status``) and ``assistant settings``; reports keep one-line reasons."""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from assistant.health import recovered, states

from .conftest import ROOT, SEEDS
from .helpers import make_pdf

MOROCCO = "How much did Morocco allocate to startups?"


def _copy_index(seeds_index: Path, dest: Path) -> Path:
    shutil.copytree(seeds_index, dest, ignore=shutil.ignore_patterns(".index.lock", "assistant.log", "problems.json"))
    return dest


def _settings_cli(index_dir: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env["ASSISTANT_INDEX_DIR"] = str(index_dir)
    out = subprocess.run([sys.executable, "-m", "assistant", "settings"], capture_output=True, text=True, env=env,
                         timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    return out.stdout


def test_missing_or_broken_lexicon_is_logged_once_counted_and_shown(tmp_path, settings_factory, embedder, caplog):
    from assistant.indexing import Indexer
    from assistant.pipeline import Assistant
    from assistant.ui import status_html

    index_dir = tmp_path / "index"
    settings = settings_factory(index_dir=str(index_dir))
    Indexer(settings, embedder=embedder).run([SEEDS], show_progress=False)
    lexicon = index_dir / "lexicon"
    assert (lexicon / "meta.json").exists()
    assert "# state: ok, nothing degraded" in _settings_cli(index_dir)

    # 1. unreadable: garbage in the word list
    (lexicon / "words.json").write_text("{not json", encoding="utf-8")
    a = Assistant(settings, embedder=embedder)
    caplog.set_level(logging.WARNING, logger="assistant.health")
    a.ask(MOROCCO)
    a.ask("Qui est l'ambassadeur du Maroc au Qatar ?")
    records = [r for r in caplog.records if r.name == "assistant.health" and "lexicon" in r.getMessage()]
    assert len(records) == 1, [r.getMessage() for r in records]  # logged once...
    assert records[0].levelno == logging.WARNING and records[0].exc_info and issubclass(records[0].exc_info[0], ValueError)
    (state,) = [s for s in states(index_dir) if s["key"] == "lexicon"]
    assert state["count"] >= 2  # ...counted every time
    status = a.status()
    (line,) = [d for d in status["degraded"] if d.startswith("cross-lingual lexicon")]
    assert "unavailable (unreadable (JSONDecodeError" in line and "rebuild it with `assistant index" in line
    assert "cross-lingual lexicon: unavailable" in status_html(status)
    log_file = (index_dir / "assistant.log").read_text(encoding="utf-8")
    assert "cross-lingual lexicon: unavailable" in log_file and "Traceback (most recent call last)" in log_file
    # another process sees it too: assistant settings
    out = _settings_cli(index_dir)
    assert "# degraded: cross-lingual lexicon: unavailable (unreadable" in out and "rebuild it with `assistant index" in out

    # 2. missing altogether
    shutil.rmtree(lexicon)
    a.ask("Quel montant le Maroc a-t-il mobilisé ?")
    assert any("unavailable (missing)" in d for d in a.status()["degraded"])
    assert "# degraded: cross-lingual lexicon: unavailable (missing)" in _settings_cli(index_dir)

    # the fix the message gives works, and the state clears
    Indexer(settings, embedder=embedder).run([SEEDS], show_progress=False)
    assert (lexicon / "meta.json").exists()
    a.ask(MOROCCO)
    assert not [d for d in a.status()["degraded"] if "lexicon" in d]
    assert "# state: ok, nothing degraded" in _settings_cli(index_dir)


def test_a_reader_exception_keeps_a_one_line_reason_and_its_traceback_goes_to_the_log(tmp_path, settings_factory,
                                                                                     embedder, caplog):
    from assistant.indexing import Indexer
    from assistant.pipeline import Assistant

    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(SEEDS / "000_aa041678daf2c786.txt", docs / "seed.txt")
    pdf = make_pdf(tmp_path / "good.pdf", ["Le menhir de Kerloas mesure neuf mètres cinquante."]).read_bytes()
    (docs / "truncated.pdf").write_bytes(pdf[: len(pdf) // 2])  # pypdf raises inside its parser
    index_dir = tmp_path / "index"
    settings = settings_factory(index_dir=str(index_dir))
    caplog.set_level(logging.WARNING, logger="assistant.health")
    report = Indexer(settings, embedder=embedder).run([docs], show_progress=False)
    (fail,) = report.failed
    assert Path(fail["path"]).name == "truncated.pdf"
    assert fail["error"].startswith("cannot read pdf: ") and "\n" not in fail["error"] and "Traceback" not in fail["error"]
    assert report.added == 1
    recs = [r for r in caplog.records if r.name == "assistant.health" and "truncated.pdf" in r.getMessage()]
    assert len(recs) == 1 and recs[0].exc_info is not None  # the reader's own exception, with its traceback
    log_file = (index_dir / "assistant.log").read_text(encoding="utf-8")
    assert "truncated.pdf" in log_file and "Traceback (most recent call last)" in log_file and "pypdf" in log_file
    problems = Assistant(settings, embedder=embedder).status()["degraded"]
    assert any(p.startswith("reading files: 1 file(s) of the last indexing run failed with an exception") and
               "truncated.pdf" in p for p in problems), problems
    assert "# degraded: reading files: 1 file(s)" in _settings_cli(index_dir)
    # the next run counts again: the broken file is unchanged but still failing, and once removed, nothing is left
    (docs / "truncated.pdf").unlink()
    Indexer(settings, embedder=embedder).run([docs], show_progress=False)
    assert not [p for p in Assistant(settings, embedder=embedder).status()["degraded"] if p.startswith("reading files")]


def test_support_check_without_vectors_is_logged_once_and_counted(tmp_path, settings_factory, seeds_assistant, caplog):
    """The LLM answerer's citation check falls back to word overlap when the embedder fails: said, not silent."""
    from assistant.answer import VectorCache
    from assistant.embeddings import make_embedder
    from assistant.llm import Passage, SupportChecker

    broken = make_embedder(settings_factory(embedding_model=str(tmp_path / "no-such-model")))  # fails to load
    checker = SupportChecker(VectorCache(broken))
    chunk = seeds_assistant.retriever.run(MOROCCO).chunks[0]
    passage = Passage(1, chunk, len(chunk.text), 0)
    caplog.set_level(logging.WARNING, logger="assistant.health")
    before = next((s["count"] for s in states() if s["key"] == "support-vectors"), 0)
    for _ in range(3):
        sup = checker.check("Le Maroc a mobilisé une enveloppe d'environ 1,3 milliard de dirhams [1].", passage)
        assert sup.semantic == 0.0 and sup.lexical > 0.5  # lexical only, and still a useful check
    recs = [r for r in caplog.records if r.name == "assistant.health" and "support check" in r.getMessage()]
    assert len(recs) <= 1 and (before or len(recs) == 1)  # once per process
    if recs:
        assert recs[0].exc_info is not None
    (state,) = [s for s in states() if s["key"] == "support-vectors"]
    assert state["count"] == before + 3 and "word overlap only" in state["message"]
    assert any("LLM support check: running without sentence vectors" in d for d in seeds_assistant.status()["degraded"])
    recovered("support-vectors")  # process-wide state: leave none to the next tests


def test_status_endpoint_shows_degraded_states(ui_server, client):
    """/status of the running app (gradio_client, as a monitor would ask it) lists what is degraded."""
    st = client.predict(api_name="/status")
    assert not [d for d in st["degraded"] if "lexicon" in d] and st["documents"] >= 1
    shutil.rmtree(ui_server.settings.index_path / "lexicon")
    st = client.predict(api_name="/status")
    (line,) = [d for d in st["degraded"] if d.startswith("cross-lingual lexicon")]
    assert "unavailable (missing)" in line and "rebuild it with `assistant index" in line
