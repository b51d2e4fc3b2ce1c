"""Stages plug into the Assistant through small Protocols (assistant.stages); per-request results travel on the
returned objects; one BM25 index and one word lexicon per index are shared by every part that uses them."""
from __future__ import annotations

import threading

from assistant.answer import ExtractiveAnswerer, key_terms
from assistant.pipeline import Assistant
from assistant.retrieval import HybridRetriever
from assistant.schema import Answer
from assistant.stages import Answerer, Retriever

from .conftest import SEEDS

QUESTION = "How much did Morocco allocate to startups?"


def test_built_in_stages_satisfy_the_protocols(seeds_assistant):
    assert isinstance(seeds_assistant.retriever, Retriever) and isinstance(seeds_assistant.retriever, HybridRetriever)
    assert isinstance(seeds_assistant.extractive, Answerer) and isinstance(seeds_assistant.extractive, ExtractiveAnswerer)
    assert not isinstance(object(), Retriever) and not isinstance(object(), Answerer)


class ReversingReranker:
    """A reranker as a Retriever: the hybrid retriever's passages, worst first (so its effect is visible)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def run(self, question, history=None, k=None):
        self.calls += 1
        retrieval = self.inner.run(question, history, k=k)
        retrieval.chunks = list(reversed(retrieval.chunks))
        return retrieval


class EchoAnswerer:
    """Another answerer: quotes the first passage it is given, cites nothing."""

    def run(self, retrieval):
        return Answer(question=retrieval.question, answer=retrieval.chunks[0].text[:80], abstained=False,
                      retrieved=retrieval.chunks)


def test_a_reranker_and_another_answerer_plug_in_without_editing_the_assistant(seeds_assistant, settings_factory,
                                                                               embedder, seeds_index):
    base = seeds_assistant.retriever.run(QUESTION, None)
    assert len(base.chunks) >= 2 and base.chunks[0].chunk_id != base.chunks[-1].chunk_id
    reranker = ReversingReranker(seeds_assistant.retriever)
    a = Assistant(settings_factory(index_dir=str(seeds_index)), embedder=embedder, retriever=reranker,
                  answerer=EchoAnswerer())
    a.warm_up()  # a stage without warm_up()/refresh() is fine
    answer = a.ask(QUESTION)
    assert reranker.calls == 1
    assert [c.chunk_id for c in answer.retrieved] == [c.chunk_id for c in reversed(base.chunks)]
    assert answer.answer == base.chunks[-1].text[:80] and not answer.abstained
    assert answer.timings_ms["total"] > 0
    # the same through streaming
    final = list(a.stream(QUESTION))[-1]
    assert isinstance(final, Answer) and final.answer == answer.answer and reranker.calls == 2


def test_diagnostics_are_per_answer_not_on_the_shared_answerer(seeds_assistant):
    """`ask --explain` reads the rules' terms and candidates from the Answer: two threads asking different questions
    each get their own (a shared `last_candidates` attribute would mix them)."""
    questions = [QUESTION, "Quel montant le Maroc a-t-il consacré aux startups ?", "What is the capital of Peru?"]
    results: dict[str, Answer] = {}

    def ask(q):
        results[q] = seeds_assistant.ask(q)

    threads = [threading.Thread(target=ask, args=(q,)) for q in questions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for q, ans in results.items():
        terms = {t.key for t in ans.diagnostics["terms"]}
        assert terms and terms == {t.key for t in key_terms(q)}
        assert ans.diagnostics["candidates"] is ans.rule_candidates and ans.rule_candidates
    assert not hasattr(seeds_assistant.extractive, "last_candidates")
    assert "diagnostics" not in results[QUESTION].to_json()


def test_one_lexical_index_and_one_lexicon_per_index(fresh_settings, embedder, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text((SEEDS / "000_aa041678daf2c786.txt").read_text())
    a = Assistant(fresh_settings, embedder=embedder)
    assert a.indexer.lexical is a.lexical and a.retriever.lexical is a.lexical
    assert a.indexer.lexicon is a.lexicon and a.retriever.lexicon is a.lexicon
    report = a.index([docs], show_progress=False)
    assert report.total > 0 and report.words > 0
    # the indexer's build is what the retriever reads: the shared object saw the new snapshot and the new words
    assert a.lexical.current() is not None and a.lexical.load()[0] == a.lexical.current()[0]
    assert len(a.lexicon) == report.words
    answer = a.ask(QUESTION)
    assert not answer.abstained and "1.3" in answer.answer.replace(",", ".")


def test_a_loader_plugs_in_by_registering_an_extractor(monkeypatch, fresh_settings, embedder, tmp_path):
    """A new file type is one function registered with its suffixes; the indexer then reads, chunks, embeds and
    answers from it, and a broken file of that type is skipped with its reason while the rest is indexed."""
    from assistant import loaders

    monkeypatch.setattr(loaders, "SUPPORTED", dict(loaders.SUPPORTED))
    monkeypatch.setattr(loaders, "_EXTRACTORS", dict(loaders._EXTRACTORS))

    def extract_csv(data: bytes, deadline):
        rows = [line.split(";") for line in data.decode("utf-8").splitlines() if line.strip()]
        if any(len(r) != 2 for r in rows):
            raise loaders.LoadError("every row must have two fields")
        return [loaders.Paragraph(f"{k.strip()} is {v.strip()}.", section="table") for k, v in rows], "capitals"

    loaders.register_loader("csv", [".csv"], extract_csv)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "capitals.csv").write_text("The capital of Peru;Lima\nThe capital of Norway;Oslo\n")
    (docs / "broken.csv").write_text("one;two;three\n")
    a = Assistant(fresh_settings, embedder=embedder)
    report = a.index([docs], show_progress=False)
    assert report.total > 0 and len(report.failed) == 1
    assert "broken.csv" in str(report.failed) and "two fields" in str(report.failed)
    answer = a.ask("What is the capital of Norway?")
    assert not answer.abstained and "Oslo" in answer.answer
    assert answer.citations[0].source.endswith("capitals.csv")
