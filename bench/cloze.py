"""Cloze-style synthetic questions for training the reader (the unsupervised-QA recipe of Lewis et al., 2019).

From a document sentence holding a number, a date or a name, the span is masked and the clause around it is
turned into a question with the wh-word of the span's kind: "La durée de conservation est de 13 mois au
maximum." -> "Combien la durée de conservation est de au maximum ?" (the noisy-cloze, identity-mapping form).
The fact to find is the masked span. Only documents that answer no DEV or TEST case are used, so the
synthetic questions never tell the scorer about a held-out answer; they are training data only, never test.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from assistant.text import sentence_spans

_NUM = re.compile(r"\b\d+(?:[.,\u202f\u00a0 ]\d+)*(?:\s?(?:%|€|euros?|ans?|mois|jours?|heures?|minutes?|semaines?|"
                  r"années?|km|m|kg|ko|mo|go))?\b", re.I)
_DATE = re.compile(r"\b(?:\d{1,2}(?:er)?\s+(?:janvier|février|mars|avril|mai|juin|juillet|août|septembre|octobre|"
                   r"novembre|décembre)(?:\s+\d{4})?|(?:19|20)\d{2})\b", re.I)
_NAME = re.compile(r"(?<=[a-zà-ÿ,;:] )(?:[A-ZÀ-Ö][\w'’-]+|[A-Z]{2,}[\w-]*)(?:\s+(?:de |du |des |la |le )?[A-ZÀ-Ö][\w'’-]+)*")
WH = {"date": "Quand", "number": "Combien", "name": "Quel"}
WH_EN = {"date": "When", "number": "How much", "name": "Which"}


def _unit(key: str) -> float:
    return int(hashlib.sha256(f"docqa-cloze-v1|{key}".encode()).hexdigest()[:12], 16) / 16 ** 12


def spans_of(sentence: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) of the maskable spans: dates, numbers, names (first match of each kind)."""
    out = []
    for kind, rx in (("date", _DATE), ("number", _NUM), ("name", _NAME)):
        m = rx.search(sentence)
        if m and len(m.group(0).strip()) >= 2:
            out.append((kind, m.start(), m.end()))
    return out


def cloze_question(sentence: str, kind: str, start: int, end: int, window: int = 9) -> str:
    """The wh-word, then the clause around the masked span (``window`` words each side), then a question mark."""
    before = sentence[:start].split()[-window:]
    after = sentence[end:].split()[:window]
    body = " ".join(before + after)
    body = re.sub(r"\s+([,.;:!?])", r"\1", body).strip(" .;:,")
    return f"{WH[kind]} {body} ?"


def make(cases_by_split: dict[str, list[dict]], files: list[Path], n: int, corpus: str) -> list[dict]:
    """Up to ``n`` cloze cases over ``files``, none from a document that answers a DEV or TEST case."""
    held = {Path(c[k]).name for s in ("dev", "test") for c in cases_by_split.get(s, []) for k in ("source", "history_source")
            if c.get(k)}
    docs = sorted((f for f in files if f.name not in held), key=lambda f: _unit(f.name))
    out = []
    for f in docs:
        if len(out) >= n:
            break
        try:
            text = f.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        sents = [text[s:e] for s, e in sentence_spans(text) if 40 <= e - s <= 400]
        if not sents:
            continue
        sent = sents[int(_unit(f.name + "|s") * len(sents))]
        spans = spans_of(sent)
        if not spans:
            continue
        kind, s, e = spans[int(_unit(f.name + "|k") * len(spans))]
        span = sent[s:e].strip()
        q = cloze_question(sent, kind, s, e)
        if len(q.split()) < 5:
            continue
        out.append({"id": f"cloze-{corpus}-{len(out)}", "question": q, "history": [], "answerable": True,
                    "facts": [[span]], "evidence": [sent[:80]], "kind": "cloze", "corpus": corpus, "source": f.name,
                    "split": "train", "origin": "cloze"})
    return out
