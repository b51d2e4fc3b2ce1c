"""Questions first: indexing gives way to questions, at the model and between its steps.

The embedding model uses every core, and one process shares one model between the people asking questions and
an indexing run (an upload, a re-index). An indexing run embeds hundreds of chunks at a time: had it held the model
for a whole batch (seconds), a *new* question - its vector not cached - would wait for all of it. So:

* work done inside :func:`background` (the indexer marks its thread) is **background work**: in a process that
  answers questions (``PRIORITY.serve()``, called by every ``Assistant``) the embedder encodes it in short
  slices (:attr:`Priority.slice_seconds` of model time each - setting ``embed_slice_ms`` - sized from the
  measured speed) and takes the model for
  each slice only when no question is being answered (``yield_to_questions``); a process that only indexes
  keeps whole batches;
* a **question** (:meth:`Priority.question`, entered by ``Assistant.ask``/``stream`` and by every foreground
  ``encode``) is counted while it runs; background work waits at its next checkpoint (the next slice, the next
  file to read) until no question is running, at most :attr:`Priority.max_wait` seconds at a time (setting
  ``index_max_wait_ms``), so a continuous stream of questions slows indexing down but never stops it.

A question therefore waits at most for one slice in progress, and the indexer's other work (reading files,
tokenising) pauses while it is answered. ``bench/questions_first.py`` measures the latency of new questions
idle and during indexing; ``tests/test_priority.py`` checks the order of events with the real model.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

# the defaults of the settings embed_slice_ms and index_max_wait_ms (assistant.config), in seconds
DEFAULT_SLICE_SECONDS = 0.040  # model time of one background slice: a question waits at most about this for the model
DEFAULT_MAX_WAIT = 0.500  # longest a background checkpoint waits for running questions before one more step anyway

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

    def __init__(self, max_wait: float | None = None, slice_seconds: float | None = None):
        self.max_wait = DEFAULT_MAX_WAIT if max_wait is None else max_wait
        self.slice_seconds = DEFAULT_SLICE_SECONDS if slice_seconds is None else slice_seconds
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

    def serve(self, slice_ms: float | None = None, max_wait_ms: float | None = None) -> None:
        """This process answers questions: slice background work from now on, in slices of ``slice_ms`` of model
        time, each checkpoint waiting at most ``max_wait_ms`` for questions (the settings ``embed_slice_ms`` and
        ``index_max_wait_ms``; None keeps the current values). One scheduler per process: the Assistant created
        last sets them."""
        if slice_ms is not None:
            self.slice_seconds = slice_ms / 1000
        if max_wait_ms is not None:
            self.max_wait = max_wait_ms / 1000
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


def __getattr__(name: str) -> Any:
    """``SLICE_SECONDS`` and ``MAX_WAIT``, the former module constants: the process scheduler's current values."""
    if name == "SLICE_SECONDS":
        return PRIORITY.slice_seconds
    if name == "MAX_WAIT":
        return PRIORITY.max_wait
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
