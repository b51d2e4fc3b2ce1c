"""Questions first: indexing gives way to questions, at the model and between its steps.

The embedding model uses every core, and one process shares one model between the people asking questions and
an indexing run (an upload, a re-index). An indexing run embeds hundreds of chunks at a time: had it held the model
for a whole batch (seconds), a *new* question - its vector not cached - would wait for all of it. So:

* work done inside :func:`background` (the indexer marks its thread) is **background work**: in a process that
  answers questions (``PRIORITY.serve()``, called by every ``Assistant``) the embedder encodes it in short
  slices (:data:`SLICE_SECONDS` of model time each, sized from the measured speed) and takes the model for
  each slice only when no question is being answered (``yield_to_questions``); a process that only indexes
  keeps whole batches;
* a **question** (:meth:`Priority.question`, entered by ``Assistant.ask``/``stream`` and by every foreground
  ``encode``) is counted while it runs; background work waits at its next checkpoint (the next slice, the next
  file to read) until no question is running, at most :data:`MAX_WAIT` seconds at a time, so a continuous stream
  of questions slows indexing down but never stops it.

A question therefore waits at most for one slice in progress, and the indexer's other work (reading files,
tokenising) pauses while it is answered. ``bench/questions_first.py`` measures the latency of new questions
idle and during indexing; ``tests/test_priority.py`` checks the order of events with the real model.
"""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from typing import Iterator

# model time of one background slice: a question waits at most about this long for the model
SLICE_SECONDS = float(os.environ.get("ASSISTANT_EMBED_SLICE_MS", "40")) / 1000
# longest a background checkpoint waits for running questions before it takes one more step anyway
MAX_WAIT = float(os.environ.get("ASSISTANT_INDEX_MAX_WAIT_MS", "500")) / 1000

_local = threading.local()


@contextmanager
def background() -> Iterator[None]:
    """Mark the calling thread's work (its ``encode`` calls) as background work until the block ends."""
    prev = getattr(_local, "background", False)
    _local.background = True
    try:
        yield
    finally:
        _local.background = prev


def is_background() -> bool:
    return getattr(_local, "background", False)


class Priority:
    """Counts the questions being answered; background work waits for them at its checkpoints."""

    def __init__(self, max_wait: float | None = None):
        self.max_wait = MAX_WAIT if max_wait is None else max_wait
        self._cond = threading.Condition(threading.Lock())
        self._questions = 0
        # set once this process can answer questions (an Assistant exists): only then is background work sliced; a
        # process that only indexes (``assistant index``) keeps the full batches and their throughput
        self.serving = False
        self.waits = 0  # checkpoints that waited for a question (for tests and the benchmark)
        self.waited_s = 0.0

    @contextmanager
    def question(self) -> Iterator[None]:
        """A question is being answered (re-entrant: a question's own encode calls nest)."""
        if is_background():  # background work never delays itself
            yield
            return
        depth = getattr(_local, "question_depth", 0)
        _local.question_depth = depth + 1
        if depth == 0:
            with self._cond:
                self._questions += 1
        try:
            yield
        finally:
            _local.question_depth = depth
            if depth == 0:
                with self._cond:
                    self._questions -= 1
                    if not self._questions:
                        self._cond.notify_all()

    def serve(self) -> None:
        """This process answers questions: slice background work from now on."""
        self.serving = True

    @property
    def questions(self) -> int:
        return self._questions

    def yield_to_questions(self, max_wait: float | None = None) -> float:
        """Wait while questions are being answered (at most ``max_wait``); returns the seconds waited."""
        if not self._questions or not is_background():
            return 0.0
        limit = self.max_wait if max_wait is None else max_wait
        t0 = time.monotonic()
        with self._cond:
            while self._questions:
                left = limit - (time.monotonic() - t0)
                if left <= 0:
                    break
                self._cond.wait(left)
        waited = time.monotonic() - t0
        self.waits += 1
        self.waited_s += waited
        return waited


PRIORITY = Priority()  # one per process: every Assistant and Indexer share the CPU
