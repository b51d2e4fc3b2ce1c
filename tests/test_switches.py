"""Every switch a setting (issue 14): the experiment and scheduling switches once read from the environment by the
component itself are fields of ``Settings`` under their documented ``ASSISTANT_*`` names, checked once, and reach
their component through the Settings it was built with - so two Assistants in one process (or two
``assistant eval --config`` configurations) can differ."""
from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from assistant import health
from assistant.config import Settings, parse_settings_string
from assistant.schema import ScoredChunk

from .conftest import ROOT

# setting -> (its documented env var, its default, a raw env value, what that value reads as)
SWITCHES = {
    "fusion": ("ASSISTANT_FUSION", "cc", "rrf", "rrf"),
    "xling": ("ASSISTANT_XLING", True, "0", False),
    "same_lang_expansion": ("ASSISTANT_SAME_LANG_EXPANSION", 0.3, "0.7", 0.7),
    "candidates": ("ASSISTANT_CANDIDATES", 20, "37", 37),
    "stem": ("ASSISTANT_STEM", True, "0", False),
    "reader": ("ASSISTANT_READER", "rules", "fitted", "fitted"),
    "embed_slice_ms": ("ASSISTANT_EMBED_SLICE_MS", 40.0, "10", 10.0),
    "index_max_wait_ms": ("ASSISTANT_INDEX_MAX_WAIT_MS", 500.0, "120", 120.0),
    "onnx_unpadded": ("ASSISTANT_ONNX_UNPADDED", False, "1", True),
    "llamacpp_extra_buffers": ("LLAMACPP_EXTRA_BUFFERS", "auto", "Off", "off"),
}


def test_every_switch_is_a_setting_under_its_documented_name():
    rows = {name: (env, default) for name, env, default, _help in Settings.describe()}
    base = Settings.from_env(env={})
    for name, (env, default, raw, value) in SWITCHES.items():
        assert rows[name] == (env, repr(default)), name
        assert getattr(base, name) == default, name
        assert getattr(Settings.from_env(env={env: raw}), name) == value, name
        # `assistant eval --config NAME:key=value` goes through parse_settings_string and Settings.replace
        assert getattr(base.replace(**parse_settings_string(f"{name}={raw}")), name) == value, name
    assert Settings.from_env(env={"ASSISTANT_FUSION": " RRF ", "ASSISTANT_READER": "Fitted"}).fusion == "rrf"


@pytest.mark.parametrize("env,value,message", [
    ("ASSISTANT_FUSION", "foo", r"ASSISTANT_FUSION \(fusion\): must be cc or rrf, not 'foo'"),
    ("ASSISTANT_READER", "neural", r"ASSISTANT_READER \(reader\): must be rules or fitted, not 'neural'"),
    ("ASSISTANT_XLING", "maybe", r"ASSISTANT_XLING: cannot read 'maybe' as bool"),
    ("ASSISTANT_STEM", "2", r"ASSISTANT_STEM: cannot read '2' as bool"),
    ("ASSISTANT_CANDIDATES", "0", r"ASSISTANT_CANDIDATES \(candidates\): must be at least 1"),
    ("ASSISTANT_CANDIDATES", "many", r"ASSISTANT_CANDIDATES: cannot read 'many' as int"),
    ("ASSISTANT_SAME_LANG_EXPANSION", "-1", r"ASSISTANT_SAME_LANG_EXPANSION \(same_lang_expansion\): must be at least 0"),
    ("ASSISTANT_EMBED_SLICE_MS", "0", r"ASSISTANT_EMBED_SLICE_MS \(embed_slice_ms\): must be at least"),
    ("ASSISTANT_INDEX_MAX_WAIT_MS", "-5", r"ASSISTANT_INDEX_MAX_WAIT_MS \(index_max_wait_ms\): must be at least 0"),
    ("ASSISTANT_ONNX_UNPADDED", "yes please", r"ASSISTANT_ONNX_UNPADDED: cannot read"),
    ("LLAMACPP_EXTRA_BUFFERS", "maybe", r"LLAMACPP_EXTRA_BUFFERS \(llamacpp_extra_buffers\): must be auto or on or off"),
])
def test_an_invalid_switch_is_rejected_with_a_clear_message(env, value, message):
    """No silent fall-back to the default (ASSISTANT_FUSION=foo used to mean cc, ASSISTANT_READER=foo rules)."""
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env={env: value})
    name = next(n for n, row in SWITCHES.items() if row[0] == env)
    with pytest.raises(ValueError, match=message.split(":")[0]):
        parse_settings_string(f"{name}={value}")  # `eval --config` reports it with the configuration's name


def test_an_invalid_switch_is_rejected_by_replace_and_by_the_cli():
    with pytest.raises(ValueError, match="must be cc or rrf"):
        Settings().replace(fusion="foo")
    with pytest.raises(ValueError, match="must be rules or fitted"):
        Settings(reader="neural")
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    out = subprocess.run([sys.executable, "-m", "assistant", "settings"], cwd=ROOT, capture_output=True, text=True,
                         env={**env, "ASSISTANT_FUSION": "foo"})
    assert out.returncode == 2 and "error: ASSISTANT_FUSION (fusion): must be cc or rrf, not 'foo'" in out.stderr


def test_no_component_reads_a_switch_from_the_environment():
    """The settings module is the one reader of ASSISTANT_* variables (offline.py's are its own bootstrap)."""
    offenders = []
    for path in sorted((ROOT / "assistant").rglob("*.py")):
        if path.name in ("config.py", "offline.py"):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if ("os.environ" in line or "getenv" in line) and "ASSISTANT_" in line:
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, offenders


# --------------------------------------------------------------------------- retrieval
def _chunks(n: int) -> list[ScoredChunk]:
    return [ScoredChunk(f"c{i}", "s.txt", f"text {i}", 0.0, {}, dense_score=1.0 - 0.1 * i) for i in range(n)]


def test_fusion_reaches_the_retriever(settings_factory, embedder, seeds_index):
    """Two Assistants in one process, cc and rrf: each retriever fuses its own way."""
    from assistant.pipeline import Assistant

    cc = Assistant(settings_factory(index_dir=str(seeds_index)), embedder=embedder)
    rrf = Assistant(settings_factory(index_dir=str(seeds_index), fusion="rrf"), embedder=embedder)
    assert (cc.retriever.fusion, rrf.retriever.fusion) == ("cc", "rrf")
    dense, lex = _chunks(3), [("c2", 8.0), ("c9", 4.0)]
    got_rrf = rrf.retriever.fuse(dense, lex, 1.0)
    assert got_rrf["c0"] == pytest.approx(1 / 61) and got_rrf["c2"] == pytest.approx(1 / 63 + 1 / 61)
    got_cc = cc.retriever.fuse(dense, lex, 1.0)
    assert got_cc["c0"] == pytest.approx(1.0) and got_cc["c2"] == pytest.approx(0.0 + 1.0)
    assert got_cc["c9"] == pytest.approx(0.5)
    from assistant.retrieval import HybridRetriever

    with pytest.raises(ValueError, match="fusion must be cc or rrf"):
        HybridRetriever(None, None, lexical=object(), lexicon=object(), fusion="foo")


def test_expansion_and_candidates_reach_the_bm25_query(settings_factory, embedder, seeds_index):
    """xling, same_lang_expansion and candidates shape the BM25 search each retriever runs (spied on)."""
    from assistant.pipeline import Assistant

    def spied(**overrides):
        a = Assistant(settings_factory(index_dir=str(seeds_index), **overrides), embedder=embedder)
        calls = []
        search = a.lexical.search

        def spy(tokens, n, extra=None, extra_weight=1.0, snapshot=None):
            calls.append({"n": n, "extra": list(extra or []), "extra_weight": extra_weight})
            return search(tokens, n, extra, extra_weight, snapshot=snapshot)

        a.lexical.search = spy
        return a, calls

    base, base_calls = spied()
    other, other_calls = spied(xling=False, same_lang_expansion=0.7, candidates=37)
    q = "Quel montant le Maroc a-t-il mobilisé pour les startups ?"  # French, as the demo corpus is
    for a in (base, other):
        a.retrieve(q)
    assert base_calls[-1]["n"] == 20 and other_calls[-1]["n"] == 37  # candidates (at least 4 k = 20)
    assert base_calls[-1]["extra"] and not other_calls[-1]["extra"]  # xling: the lexicon's translations, or none
    assert base_calls[-1]["extra_weight"] == 0.3 and other_calls[-1]["extra_weight"] == 0.7  # same language
    small = Assistant(settings_factory(index_dir=str(seeds_index), candidates=1), embedder=embedder)
    assert small.retriever.candidates == 1  # never fewer than 4 k: the floor stays in run()


# --------------------------------------------------------------------------- stemming and the BM25 index
def test_stem_reaches_the_tokeniser_and_the_persisted_index(tmp_path, settings_factory, embedder):
    """stem=off: the BM25 index (and its queries) keep whole words, the index records it, and an index built the
    other way is rebuilt by the next index run, not used as is; an Assistant whose setting differs from its index
    says so (assistant.health) until then."""
    from assistant.indexing import Indexer
    from assistant.pipeline import Assistant
    from assistant.retrieval import LexicalIndex

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The ministers allocated funding to startups in Morocco.\n", encoding="utf-8")
    on = settings_factory(index_dir=str(tmp_path / "index"))
    off = on.replace(stem=False)
    try:
        Indexer(on, embedder=embedder).run([docs], show_progress=False)
        a_on = Assistant(on, embedder=embedder)
        assert a_on.lexical.tokens("startups ministers") == ["startu", "minist"]
        assert "startu" in a_on.lexical.vocabulary() and "startups" not in a_on.lexical.vocabulary()
        a_off = Assistant(off, embedder=embedder)  # same process, same index, the other tokeniser
        assert a_off.lexical.tokens("startups ministers") == ["startups", "ministers"]
        assert not LexicalIndex(a_off.store).exists() and LexicalIndex(a_on.store).exists()
        a_off.retrieve("startups")
        assert any(s["key"] == "bm25-tokens" and "stem=off" in s["message"] for s in health.states(off.index_path))

        Indexer(off, embedder=embedder).run([docs], show_progress=False)  # nothing changed but the tokeniser
        fresh = LexicalIndex(Assistant(off, embedder=embedder).store)
        assert fresh.exists() and fresh.load()[3]["lexical_version"].endswith("-nostem")
        vocab = fresh.vocabulary()
        assert "startups" in vocab and "ministers" in vocab and "startu" not in vocab
        assert not LexicalIndex(a_on.store).exists()
        hits = Assistant(off, embedder=embedder).retrieve("startups Morocco").chunks
        assert hits and hits[0].lexical_score and hits[0].lexical_score > 0

        Indexer(on, embedder=embedder).run([docs], show_progress=False)  # and back: the stemmed index again
        assert "startu" in LexicalIndex(a_on.store).vocabulary()
        Assistant(on, embedder=embedder).retrieve("startups")
        assert not any(s["key"] == "bm25-tokens" for s in health.states(on.index_path))
    finally:
        health.clear("bm25-tokens", on.index_path)


# --------------------------------------------------------------------------- reader
def test_reader_reaches_the_assistant(settings_factory, embedder, seeds_index):
    from assistant.answer import ExtractiveAnswerer
    from assistant.pipeline import Assistant
    from assistant.reader import Reader

    rules = Assistant(settings_factory(index_dir=str(seeds_index)), embedder=embedder)
    fitted = Assistant(settings_factory(index_dir=str(seeds_index), reader="fitted"), embedder=embedder)
    assert type(rules.extractive) is ExtractiveAnswerer and isinstance(fitted.extractive, Reader)


# --------------------------------------------------------------------------- questions first
def test_scheduling_settings_reach_the_process_scheduler(monkeypatch, settings_factory, embedder, seeds_index):
    """The Assistant that serves sets the process's slice and wait (one scheduler per process)."""
    from assistant import priority
    from assistant.pipeline import Assistant
    from assistant.priority import PRIORITY, Priority, background

    for attr in ("slice_seconds", "max_wait", "serving"):
        monkeypatch.setattr(PRIORITY, attr, getattr(PRIORITY, attr))  # restored after the test
    Assistant(settings_factory(index_dir=str(seeds_index), embed_slice_ms=10, index_max_wait_ms=120), embedder=embedder)
    assert (PRIORITY.slice_seconds, PRIORITY.max_wait) == (0.010, 0.120)
    assert (priority.SLICE_SECONDS, priority.MAX_WAIT) == (0.010, 0.120)  # the former constants' names still read them
    Assistant(settings_factory(index_dir=str(seeds_index)), embedder=embedder)
    assert (PRIORITY.slice_seconds, PRIORITY.max_wait) == (0.040, 0.500)

    sched = Priority()  # the wait is the setting's: a background checkpoint gives up after max_wait
    sched.serve(max_wait_ms=80)
    waited = []

    def checkpoint():
        with background():
            waited.append(sched.yield_to_questions())

    with sched.question():
        th = threading.Thread(target=checkpoint)
        th.start()
        th.join(5)
    assert 0.07 <= waited[0] < 1.0


# --------------------------------------------------------------------------- ONNX batching
def test_onnx_unpadded_reaches_the_engine(settings_factory):
    pytest.importorskip("onnxruntime")
    from assistant.embeddings import make_embedder

    padded = make_embedder(settings_factory(embedding_engine="onnx-int8"))
    unpadded = make_embedder(settings_factory(embedding_engine="onnx-int8", onnx_unpadded=True))
    padded.warm_up()
    unpadded.warm_up()
    assert (padded.engine.unpadded, unpadded.engine.unpadded) == (False, True)
    ids = padded.tokenizer(["passage: a", "passage: a longer text of several words", "passage: b"],
                           truncation=True, max_length=512)["input_ids"]

    def lengths(engine):
        return [sorted({len(ids[k]) for k in batch}) for batch, _inp, _mask in engine._batches(ids)]

    assert any(len(ls) > 1 for ls in lengths(padded.engine))  # texts of different lengths share a padded batch
    assert all(len(ls) == 1 for ls in lengths(unpadded.engine))  # one length per run
    vec = unpadded.encode(["a", "a longer text of several words"])
    alone = unpadded.encode(["a longer text of several words"])
    assert (vec[1] == alone[0]).all()  # identical to the text alone, to the last bit
