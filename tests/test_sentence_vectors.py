"""Sentence vectors stored at index time (assistant/sentences.py): real embedder, real embedded Chroma."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from assistant.indexing import Indexer
from assistant.pipeline import Assistant
from assistant.sentences import sentence_texts, text_key
from assistant.store import ChunkStore

from .conftest import SEED_FILE, SEEDS
from .helpers import check_consistent

OTHER = """Le phare d'Eckmühl, à Penmarch, mesure soixante-cinq mètres. Il a été allumé pour la première fois en 1897.

Le port de Brest accueille chaque été une grande fête maritime. Des centaines de voiliers traditionnels y participent.

Pour vérifier l'horaire des marées, utilisez la commande suivante :

maree --port brest --jour demain
"""


class Recorder:
    """Every text the embedder is asked to embed, by call."""

    def __init__(self, monkeypatch, embedder):
        self.calls: list[list[str]] = []
        enc, both = embedder.encode, embedder.encode_with_query

        def encode(texts, is_query=False):
            self.calls.append(list(texts))
            return enc(texts, is_query=is_query)

        def encode_with_query(query, texts):
            self.calls.append([query, *texts])
            return both(query, texts)

        monkeypatch.setattr(embedder, "encode", encode)
        monkeypatch.setattr(embedder, "encode_with_query", encode_with_query)

    @property
    def texts(self) -> list[str]:
        return [t for c in self.calls for t in c]


def stored_texts(store: ChunkStore) -> dict[str, list[str]]:
    """chunk id -> the candidate sentences of its text."""
    return {cid: sentence_texts(doc) for cid, (doc, _) in store.get(store.all_ids()).items()}


def test_sentence_vectors_are_stored_at_index_time_and_answering_embeds_only_the_question(
        tmp_path, settings_factory, embedder, monkeypatch):
    settings = settings_factory(index_dir=str(tmp_path / "index"))
    report = Indexer(settings, embedder=embedder).run([SEEDS], show_progress=False)
    store = ChunkStore(settings, embedder)
    per_chunk = stored_texts(store)
    distinct = {t for ts in per_chunk.values() for t in ts}
    assert report.sentences == len(distinct) > 0
    assert store.sentences.count() == sum(len(ts) for ts in per_chunk.values())
    assert store.sentences.chunk_ids() == {cid for cid, ts in per_chunk.items() if ts}
    assert (tmp_path / "index" / "sentences.sqlite3").exists()
    check_consistent(settings, embedder)

    a = Assistant(settings, embedder=embedder)
    rec = Recorder(monkeypatch, embedder)
    ans = a.ask("How much did Morocco allocate to startups?")
    assert not ans.abstained and "1,3 milliard" in ans.answer
    assert a.cache.embedded_sentences == 0
    # what was embedded for this question: the question (and its words, for the cross-lingual match), no sentence
    assert rec.texts and "How much did Morocco allocate to startups?" in rec.texts
    assert not set(rec.texts) & distinct
    assert all(len(t.split()) <= 8 for t in rec.texts), rec.texts
    ans = a.ask("Qui est l'ambassadeur du Maroc au Qatar ?")
    assert "Mohammed Setri" in ans.answer and a.cache.embedded_sentences == 0


def test_stored_vectors_match_question_time_ones(tmp_path, settings_factory, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(SEED_FILE, docs / SEED_FILE.name)
    (docs / "bretagne.txt").write_text(OTHER, encoding="utf-8")
    settings = settings_factory(index_dir=str(tmp_path / "index"))
    Indexer(settings, embedder=embedder).run([docs], show_progress=False)
    store = ChunkStore(settings, embedder)
    texts = sorted({t for ts in stored_texts(store).values() for t in ts})
    # the joined "… commande suivante :" + command candidate of the rule-based answerer is stored too
    assert any("suivante" in t and "maree --port" in t for t in texts)
    found = store.sentences.lookup([text_key(t) for t in texts])
    assert set(found) == {text_key(t) for t in texts}
    for t in texts:  # what VectorCache computed before: each sentence alone, as a passage
        cos = float(found[text_key(t)] @ embedder.encode([t])[0])
        assert cos >= 0.999, (t, cos)


def test_sentence_vectors_leave_with_their_document(tmp_path, settings_factory, embedder):
    from assistant.library import Library

    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(SEED_FILE, docs / SEED_FILE.name)
    other = docs / "bretagne.txt"
    other.write_text(OTHER, encoding="utf-8")
    settings = settings_factory(index_dir=str(tmp_path / "index"), docs_dir=str(docs))
    a = Assistant(settings, embedder=embedder)
    a.index([docs], show_progress=False)
    store = a.store
    before = store.sentences.chunk_ids()
    breton = {cid for cid, (_, meta) in store.get(store.all_ids()).items() if meta["source"].endswith("bretagne.txt")}
    assert breton and breton <= before

    # an edited file: the chunks it no longer has lose their sentence vectors, the new ones get theirs
    other.write_text(OTHER.replace("soixante-cinq", "soixante-six"), encoding="utf-8")
    a.index([docs], show_progress=False)
    check_consistent(settings, embedder)
    assert store.sentences.lookup([text_key("Le phare d'Eckmühl, à Penmarch, mesure soixante-six mètres.")])

    # removed from the library
    lib = Library(a)
    doc = next(d for d in lib.documents() if d.name == "bretagne.txt")
    lib.remove(doc.id)
    check_consistent(settings, embedder)
    left = store.sentences.chunk_ids()
    assert left and all(not store.get([c])[c][1]["source"].endswith("bretagne.txt") for c in left)
    assert not store.sentences.lookup([text_key("Le phare d'Eckmühl, à Penmarch, mesure soixante-six mètres.")])

    # deleted from the folder
    shutil.copy(SEED_FILE, docs / "copy.txt")
    a.index([docs], show_progress=False)
    (docs / SEED_FILE.name).unlink()
    a.index([docs], show_progress=False)
    check_consistent(settings, embedder)
    assert store.sentences.chunk_ids() == set(store.all_ids())


def test_an_index_built_without_sentence_vectors_still_answers(tmp_path, settings_factory, embedder):
    old = settings_factory(index_dir=str(tmp_path / "index"), sentence_vectors="off")  # as before this existed
    Indexer(old, embedder=embedder).run([SEEDS], show_progress=False)
    assert not (tmp_path / "index" / "sentences.sqlite3").exists()
    a = Assistant(settings_factory(index_dir=str(tmp_path / "index")), embedder=embedder)
    ans = a.ask("How much did Morocco allocate to startups?")
    assert not ans.abstained and "1,3 milliard" in ans.answer
    assert a.cache.embedded_sentences > 0  # embedded at question time, as before
    assert not (tmp_path / "index" / "sentences.sqlite3").exists()  # looking up created nothing
    # the next run indexes nothing new (the settings fingerprint is unchanged): the old index is kept as it is
    again = Indexer(settings_factory(index_dir=str(tmp_path / "index")), embedder=embedder).run([SEEDS], show_progress=False)
    assert again.embedded == 0 and again.unchanged == 1


def test_an_old_index_gets_sentence_vectors_for_the_files_it_reads_again(tmp_path, settings_factory, embedder):
    from .test_indexing import write_docs

    docs = tmp_path / "docs"
    (path,) = write_docs(docs, n_files=1, paras_per_file=12)
    Indexer(settings_factory(index_dir=str(tmp_path / "index"), sentence_vectors="off"), embedder=embedder).run(
        [docs], show_progress=False)
    settings = settings_factory(index_dir=str(tmp_path / "index"))
    # an edit that keeps most chunks: those kept get their sentence vectors too, not only the new ones
    path.write_text(path.read_text(encoding="utf-8") + "\n\nLes galettes de sarrasin se mangent salées.\n",
                    encoding="utf-8")
    r = Indexer(settings, embedder=embedder).run([docs], show_progress=False)
    assert r.updated == 1 and 0 < r.embedded < r.total  # most chunks kept their ids and vectors
    check_consistent(settings, embedder)  # and every chunk has its sentence vectors now


def test_a_run_killed_after_writing_pooled_sentence_vectors_is_repaired(tmp_path, settings_factory, embedder, monkeypatch):
    """``pool`` writes a batch's rows before its chunks (they come out of the chunks' own forward pass)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bretagne.txt").write_text(OTHER, encoding="utf-8")
    settings = settings_factory(index_dir=str(tmp_path / "index"), sentence_vectors="pool")

    class Killed(BaseException):
        pass

    def boom(*_a, **_k):
        raise Killed()

    monkeypatch.setattr(ChunkStore, "upsert", boom)  # killed between the sentence vectors and their chunks
    with pytest.raises(Killed):
        Indexer(settings, embedder=embedder).run([docs], show_progress=False)
    monkeypatch.undo()
    store = ChunkStore(settings, embedder)
    assert store.sentences.count() > 0 and store.count() == 0
    # the file changed before the next run: the vectors written for chunks that never existed are orphans
    (docs / "bretagne.txt").write_text(OTHER.replace("Brest", "Lorient"), encoding="utf-8")
    r = Indexer(settings, embedder=embedder).run([docs], show_progress=False)
    assert not r.failed and r.total > 0
    check_consistent(settings, embedder)
    assert not store.sentences.lookup([text_key("Le port de Brest accueille chaque été une grande fête maritime.")])


def test_sentences_are_embedded_after_the_chunks_are_searchable(tmp_path, settings_factory, embedder, monkeypatch):
    """``encode``: chunks, BM25 and lexicon are published first, then the sentences; a run killed in between leaves
    a searchable index that answers (embedding at question time) and the next run embeds what is lacking."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bretagne.txt").write_text(OTHER, encoding="utf-8")
    settings = settings_factory(index_dir=str(tmp_path / "index"))
    seen_at_sentences = {}

    class Killed(BaseException):
        pass

    def boom(self, chunks, method, pooled, report):
        seen_at_sentences["chunks"] = self.store.count()
        seen_at_sentences["generation"] = self.store.generation()
        raise Killed()

    monkeypatch.setattr(Indexer, "_write_sentences", boom)
    with pytest.raises(Killed):
        Indexer(settings, embedder=embedder).run([docs], show_progress=False)
    monkeypatch.undo()
    # when the sentences started, the chunks and their BM25 snapshot were committed already
    assert seen_at_sentences["chunks"] > 0 and seen_at_sentences["generation"] >= 1
    store = ChunkStore(settings, embedder)
    assert store.sentences.count() == 0
    a = Assistant(settings, embedder=embedder)
    ans = a.ask("Quelle commande donne l'horaire des marées ?")
    assert not ans.abstained and "maree --port brest" in ans.answer
    rec = Recorder(monkeypatch, embedder)
    r = Indexer(settings, embedder=embedder).run([docs], show_progress=False)
    assert r.unchanged == 1 and r.embedded == 0 and r.sentences > 0  # nothing re-chunked, only the lacking rows
    assert any("soixante-cinq" in t for t in rec.texts)  # a sentence of the lacking rows, embedded by the repair
    check_consistent(settings, embedder)
    # a clean run: searchable before it ended, and a second run has nothing to do
    r2 = Indexer(settings, embedder=embedder).run([docs], show_progress=False)
    assert r2.sentences == 0 and r2.embedded == 0
    fresh = settings_factory(index_dir=str(tmp_path / "index2"))
    r3 = Indexer(fresh, embedder=embedder).run([docs], show_progress=False)
    assert r3.sentences > 0 and 0 < r3.searchable_seconds < r3.seconds
    assert r3.to_json()["searchable_seconds"] <= r3.to_json()["seconds"]


def test_pooled_sentence_vectors(tmp_path, settings_factory, embedder):
    """`pool`: one forward pass per chunk gives the chunk's vector (as `encode` does) and its sentences'."""
    from assistant.sentences import can_pool, pool_chunks

    if not can_pool(embedder):
        pytest.skip(f"{embedder.describe()} exposes no token states")
    from assistant.chunking import Chunker
    from assistant.loaders import DocumentLoader

    settings = settings_factory()
    chunks = Chunker(settings.chunk_tokens, settings.chunk_overlap).run(DocumentLoader().run(SEED_FILE), source_key="x")
    vecs, per_chunk = pool_chunks(embedder, chunks)
    ref = embedder.encode([c.embed_text for c in chunks])
    assert np.min(np.sum(vecs * ref, axis=1)) >= 0.999
    for c, sv in zip(chunks, per_chunk):
        assert set(sv) == {text_key(t) for t in sentence_texts(c.text)}
        for t in sentence_texts(c.text):
            cos = float(sv[text_key(t)] @ embedder.encode([t])[0])
            assert 0.8 < cos < 1.0  # close to, not the same as, the sentence embedded alone
    idx = settings_factory(index_dir=str(tmp_path / "index"), sentence_vectors="pool")
    Indexer(idx, embedder=embedder).run([SEEDS], show_progress=False)
    a = Assistant(idx, embedder=embedder)
    ans = a.ask("How much did Morocco allocate to startups?")
    assert not ans.abstained and "1,3 milliard" in ans.answer and a.cache.embedded_sentences == 0


def test_every_candidate_of_both_answerers_is_a_stored_sentence(tmp_path, settings_factory, embedder):
    """The index stores the sentences the answerers take as candidates: if their splitting changes, this fails
    (lookups would miss and question time would embed again)."""
    from assistant.answer import ExtractiveAnswerer
    from assistant.reader import candidates
    from assistant.schema import ScoredChunk

    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(SEED_FILE, docs / SEED_FILE.name)
    (docs / "bretagne.txt").write_text(OTHER, encoding="utf-8")
    (docs / "table.md").write_text("# Ports\n\n| Port | Marée |\n|---|---|\n| Brest | 6,9 m |\n| Lorient | 5,1 m |\n\n"
                                   "Liste :\n- un premier point assez long\n- un second point assez long\n", encoding="utf-8")
    settings = settings_factory(index_dir=str(tmp_path / "index"))
    Indexer(settings, embedder=embedder).run([docs], show_progress=False)
    store = ChunkStore(settings, embedder)
    chunks = [ScoredChunk(chunk_id=cid, source=meta["source"], text=doc, score=1.0, metadata=meta)
              for cid, (doc, meta) in store.get(store.all_ids()).items()]
    stored = set(store.sentences.lookup([text_key(t) for ch in chunks for t in sentence_texts(ch.text)]))
    rule = [c.text for c in ExtractiveAnswerer(embedder)._candidates(chunks)]
    fitted = [c.text for c in candidates(chunks)]
    assert rule and fitted
    assert {text_key(t) for t in rule + fitted} <= stored
