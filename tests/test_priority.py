"""Questions first (assistant/priority.py): background encodes run in slices, and a question is served between two
of them, with the real model; an indexing run gives way to a question. Latency figures: bench/questions_first.py."""
from __future__ import annotations

import shutil
import threading
import time

import numpy as np
import pytest

from assistant.priority import PRIORITY, Priority, background, is_background

from .conftest import SEEDS

PASSAGE = ("Le marché couvert de Bourg-{i} ouvre le mercredi et le samedi ; les producteurs y vendent des légumes, "
           "du fromage et du pain au levain. La halle date de {y} et sa charpente en chêne a été restaurée.")


class Spy:
    """Wraps an embedder's ``_encode`` (the forward pass) and records who ran it, when."""

    def __init__(self, embedder):
        self.embedder = embedder
        self.events: list[tuple[str, float, float, int]] = []  # (bg|fg, start, end, n texts)
        self.lock = threading.Lock()
        self.first_bg = threading.Event()
        self._orig = embedder._encode

    def __enter__(self):
        orig = self._orig

        def spy(texts, *args, **kwargs):
            kind = "bg" if is_background() else "fg"
            if kind == "bg":
                self.first_bg.set()
            t0 = time.perf_counter()
            out = orig(texts, *args, **kwargs)
            with self.lock:
                self.events.append((kind, t0, time.perf_counter(), len(texts)))
            return out

        self.embedder._encode = spy
        return self

    def __exit__(self, *exc):
        del self.embedder._encode  # back to the class's method

    def served_between_slices(self) -> bool:
        """Every foreground pass started after one background slice ended and before the next began."""
        bg = sorted(e for e in self.events if e[0] == "bg")
        fg = [e for e in self.events if e[0] == "fg"]
        if not fg:
            return False
        for _, s, e, _ in fg:
            if any(bs < e and s < be for _, bs, be, _ in bg):  # overlaps a slice: it ran during one
                return False
            if not any(be <= s for _, _, be, _ in bg) or not any(bs >= e for _, bs, _, _ in bg):
                return False
        return True


def test_background_encode_is_sliced_and_a_question_is_served_between_slices(embedder, monkeypatch):
    monkeypatch.setattr(PRIORITY, "serving", True)  # as in a process with an Assistant
    texts = [PASSAGE.format(i=i, y=1600 + i) for i in range(240)]
    whole = embedder.encode(texts)  # one foreground call: one forward pass over everything
    out: dict = {}
    with Spy(embedder) as spy:
        def index_like():
            with background():
                out["vecs"] = embedder.encode(texts)
                out["done"] = time.perf_counter()

        th = threading.Thread(target=index_like)
        slices0 = embedder.slices
        th.start()
        assert spy.first_bg.wait(60)
        time.sleep(0.05)
        qvec = embedder.encode(["Quel jour ouvre le marché couvert de Bourg-17 ?"], is_query=True)[0]
        answered = time.perf_counter()
        th.join(300)
    # the question got its vector while the long encode was still going, between two of its slices
    assert answered < out["done"]
    assert spy.served_between_slices(), spy.events
    n_slices = embedder.slices - slices0
    assert n_slices >= 4 and sum(e[3] for e in spy.events if e[0] == "bg") == len(texts)
    # slicing changes nothing: the same vectors, in the same order, as one call (engines are batch-independent)
    cos = np.sum(out["vecs"] * whole, axis=1)
    assert out["vecs"].shape == whole.shape and cos.min() > 0.999
    assert abs(float(np.linalg.norm(qvec)) - 1.0) < 1e-4


def test_a_background_checkpoint_waits_for_a_running_question_but_not_forever():
    pri = Priority(max_wait=5.0)
    started, finished = threading.Event(), threading.Event()
    log: list[str] = []

    def question():
        with pri.question():
            started.set()
            time.sleep(0.3)
            log.append("question done")
        finished.set()

    th = threading.Thread(target=question)
    th.start()
    started.wait(5)
    with background():
        waited = pri.yield_to_questions()
    log.append("background step")
    th.join()
    assert log == ["question done", "background step"] and 0.1 < waited < 2.0
    # outside background work, or with no question running, nothing waits
    assert pri.yield_to_questions() == 0.0
    with background():
        assert pri.yield_to_questions() == 0.0
    # a question that never ends delays background work by max_wait at most
    slow = Priority(max_wait=0.2)
    hold = threading.Event()

    def endless():
        with slow.question():
            hold.wait(10)

    th = threading.Thread(target=endless)
    th.start()
    time.sleep(0.05)
    with background():
        t0 = time.perf_counter()
        slow.yield_to_questions()
        assert 0.15 < time.perf_counter() - t0 < 2.0
    hold.set()
    th.join()
    # background work never counts as a question (the indexer does not delay itself)
    with background(), pri.question():
        assert pri.questions == 0


def test_a_question_during_an_indexing_run_is_answered_between_slices(tmp_path, settings_factory, embedder, seeds_index):
    """The real indexer (real model, real Chroma) re-indexes a folder while a user asks a new question."""
    from assistant.pipeline import Assistant

    index_dir = tmp_path / "index"
    shutil.copytree(seeds_index, index_dir, ignore=shutil.ignore_patterns(".index.lock"))
    app = Assistant(settings_factory(index_dir=str(index_dir)), embedder=embedder)
    folder = tmp_path / "halles"
    folder.mkdir()
    for f in range(6):
        (folder / f"h{f}.txt").write_text("\n\n".join(PASSAGE.format(i=f"{f}-{j}", y=1700 + j) for j in range(40)),
                                          encoding="utf-8")
    box: dict = {}
    with Spy(embedder) as spy:
        th = threading.Thread(target=lambda: box.update(report=app.index([folder], show_progress=False)))
        th.start()
        assert spy.first_bg.wait(120)
        time.sleep(0.05)
        ans = app.ask("What amount did Morocco set aside for its startup ecosystem, in dirhams?")  # new: not cached
        answered = time.perf_counter()
        running = th.is_alive()
        th.join(600)
    assert box["report"].added == 6 and box["report"].embedded > 0
    assert running, "the indexing run ended before the question was answered: nothing was measured"
    assert spy.served_between_slices(), spy.events
    assert any(e[0] == "bg" and e[1] > answered for e in spy.events)  # indexing went on after the answer
    assert not ans.abstained and "1,3 milliard" in ans.answer
    assert ans.citations[0].source == "seeds/000_aa041678daf2c786.txt"
    assert PRIORITY.questions == 0


def test_a_question_is_not_held_by_the_lexicon_growing(tmp_path, settings_factory, embedder, seeds_index):
    """The end of an indexing run embeds the corpus's new words into the cross-lingual lexicon: questions keep
    translating with the saved lexicon and are served between the slices, not after all of them."""
    from assistant.lexicon import Lexicon
    from assistant.pipeline import Assistant

    index_dir = tmp_path / "index"
    shutil.copytree(seeds_index, index_dir, ignore=shutil.ignore_patterns(".index.lock"))
    app = Assistant(settings_factory(index_dir=str(index_dir)), embedder=embedder)
    before = len(app.lexicon) if app.lexicon.load() else 0
    assert before > 0
    growing = Lexicon(index_dir / "lexicon", embedder)  # the indexer's own instance, as in Indexer.run
    words = {f"{w}{n}" for w in ("phare", "halle", "marché", "écluse", "menhir", "chapelle") for n in range(250)}
    box: dict = {}
    with Spy(embedder) as spy:
        def grow():
            with background():
                box["added"] = growing.add(words)

        th = threading.Thread(target=grow)
        th.start()
        assert spy.first_bg.wait(60)
        time.sleep(0.05)
        ans = app.ask("Which amount in dirhams did the Moroccan government commit to young companies?")  # new
        answered = time.perf_counter()
        th.join(300)
    assert box["added"] == len(words)
    assert spy.served_between_slices(), spy.events
    assert any(e[0] == "bg" and e[1] > answered for e in spy.events)
    assert not ans.abstained and "1,3 milliard" in ans.answer
    assert app.lexicon.load() and len(app.lexicon) == before + len(words)  # the new words are live after


def test_a_process_that_only_indexes_keeps_whole_batches(embedder, monkeypatch):
    """``assistant index`` answers no question: its encode calls are not sliced (full batches, full throughput)."""
    monkeypatch.setattr(PRIORITY, "serving", False)
    texts = [PASSAGE.format(i=i, y=1800 + i) for i in range(40)]
    with Spy(embedder) as spy:
        with background():
            embedder.encode(texts)
    assert [(e[0], e[3]) for e in spy.events] == [("bg", 40)]
