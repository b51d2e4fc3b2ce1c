"""Feedback on answers (👍/👎, an optional correction), kept locally, and turned into evaluation cases.

Feedback is appended to ``<index_dir>/feedback.jsonl`` (one JSON object per line, never sent anywhere). A correction
given after the vote is appended as a new line with the same ``id``; the last line of an id wins.

:func:`to_case` turns one feedback into an evaluation case in the format of ``eval/README.md`` (read by
``assistant eval --cases``):

* 👍 on an answer: an answerable case; its fact is the short answer (else the first cited sentence), its evidence
  the cited sentences;
* 👍 on an abstention: an unanswerable case (the documents do not contain it, the user agreed);
* 👎 with a correction ("the answer is …"): an answerable case whose fact and evidence are the correction;
* 👎 without a correction (on an answer or an abstention): a case *for review* — what the right answer is, is not
  known yet, so it cannot be scored. :func:`export` writes those to a separate file (``…review.jsonl``) with
  ``"review": true`` and empty facts, for a person to complete.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

FILE_NAME = "feedback.jsonl"
MAX_TEXT = 4000  # longest question / answer / correction kept (characters)
MAX_FILE_BYTES = 64 * 1024 * 1024  # beyond this the file takes no more feedback (a flood from the API cannot fill the disk)


class FeedbackError(ValueError):
    """Bad feedback input; ``str(err)`` says what is wrong."""


@dataclass
class Feedback:
    id: str
    time: str  # ISO 8601, UTC
    rating: str  # "up" or "down"
    question: str
    answer: str
    abstained: bool
    citations: list[dict] = field(default_factory=list)  # {n, source, quote, location}
    history: list[dict] = field(default_factory=list)  # {role, content}, earlier turns
    short_answer: str = ""
    correction: str = ""
    backend: str = "extractive"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> "Feedback":
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in obj.items() if k in names})


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    return str(value or "").replace("\x00", "").strip()[:limit]


def _history(history: Any) -> list[dict]:
    out = []
    for t in history or []:
        if isinstance(t, dict) and t.get("role") in ("user", "assistant") and isinstance(t.get("content"), str):
            out.append({"role": t["role"], "content": _text(t["content"])})
    return out[-12:]


class FeedbackStore:
    """The feedback file of one index (thread- and process-safe appends)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    @classmethod
    def for_settings(cls, settings) -> "FeedbackStore":
        return cls(Path(settings.index_dir) / FILE_NAME)

    def _append(self, fb: Feedback) -> None:
        line = json.dumps(fb.to_json(), ensure_ascii=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if self.path.stat().st_size + len(line.encode("utf-8")) > MAX_FILE_BYTES:
                raise FeedbackError(f"the feedback file {self.path.name} is full ({MAX_FILE_BYTES // 1048576} MB): "
                                    "export it (`assistant feedback --export FILE`) and move it away")
        except FileNotFoundError:
            pass
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.write(line)
                fh.flush()
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def add(self, rating: str, question: str, answer: dict | None, history: list | None = None,
            correction: str = "") -> Feedback:
        """Record a vote on an answer (``answer``: the answer JSON, as ``/ask`` returns it)."""
        rating = {"up": "up", "like": "up", "👍": "up", "down": "down", "dislike": "down", "👎": "down"}.get(
            str(rating or "").strip().lower())
        if rating is None:
            raise FeedbackError("rating must be 'up' or 'down'")
        question = _text(question)
        if not question:
            raise FeedbackError("the question is empty")
        answer = answer if isinstance(answer, dict) else {"answer": str(answer or "")}
        cits = []
        for c in answer.get("citations") or []:
            if isinstance(c, dict):
                cits.append({"n": c.get("n"), "source": _text(c.get("source"), 1000), "quote": _text(c.get("quote")),
                             "location": c.get("location") if isinstance(c.get("location"), dict) else {}})
        now = datetime.now(timezone.utc).replace(microsecond=0)
        seed = f"{time.time_ns()}|{question}|{rating}".encode("utf-8", "replace")
        fb = Feedback(id=hashlib.blake2b(seed, digest_size=6).hexdigest(), time=now.isoformat().replace("+00:00", "Z"),
                      rating=rating, question=question, answer=_text(answer.get("answer")),
                      abstained=bool(answer.get("abstained")), citations=cits[:10], history=_history(history),
                      short_answer=_text(answer.get("short_answer"), 500), correction=_text(correction, 1000),
                      backend=_text(answer.get("backend") or "extractive", 100))
        self._append(fb)
        return fb

    def correct(self, feedback_id: str, correction: str) -> Feedback:
        """Add (or replace) the correction of a recorded feedback."""
        items = {f.id: f for f in self.all()}
        fb = items.get(str(feedback_id or ""))
        if fb is None:
            raise FeedbackError(f"no feedback {feedback_id!r}")
        fb.correction = _text(correction, 1000)
        self._append(fb)
        return fb

    def all(self) -> list[Feedback]:
        """Every feedback, oldest first (the last line of an id wins); unreadable lines are skipped."""
        try:
            raw = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        items: dict[str, Feedback] = {}
        for line in raw.splitlines():
            try:
                obj = json.loads(line)
                fb = Feedback.from_json(obj)
            except (ValueError, TypeError):
                continue
            items.pop(fb.id, None)
            items[fb.id] = fb
        return sorted(items.values(), key=lambda f: f.time)


def to_case(fb: Feedback) -> dict[str, Any]:
    """One feedback as an evaluation case (``review: true`` when it cannot be scored as it is)."""
    case: dict[str, Any] = {"id": f"feedback-{fb.id}", "question": fb.question, "history": fb.history,
                            "origin": "feedback", "rating": fb.rating}
    quotes = [c["quote"] for c in fb.citations if c.get("quote")]
    if fb.correction:
        case.update(answerable=True, facts=[[fb.correction]], evidence=[fb.correction])
    elif fb.rating == "up" and fb.abstained:
        case.update(answerable=False, facts=[], evidence=[])
    elif fb.rating == "up" and (fb.short_answer or quotes):
        # the sentence without its final punctuation: the answer carries a [n] marker before it ("… bain [1]?")
        fact = fb.short_answer or quotes[0].rstrip(" .!?;:…»\"'") or quotes[0]
        case.update(answerable=True, facts=[[fact]], evidence=quotes or [fb.short_answer])
    else:  # 👎 without a correction: the right answer is not known yet
        case.update(answerable=True, facts=[], evidence=[], review=True,
                    note=("the assistant abstained and the user said it should have answered" if fb.abstained
                          else "the user said this answer is wrong: " + fb.answer[:300]))
    return case


def export(items: Iterable[Feedback], out: str | Path) -> tuple[int, int, Path | None]:
    """Write the scorable cases to ``out`` and the ones for review beside it; returns (cases, review, review path)."""
    out = Path(out)
    cases, review = [], []
    for fb in items:
        case = to_case(fb)
        (review if case.get("review") else cases).append(case)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases), encoding="utf-8")
    review_path = None
    if review:
        review_path = out.with_name(out.stem + ".review.jsonl")
        review_path.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in review), encoding="utf-8")
    return len(cases), len(review), review_path
