"""Example questions taken from the indexed corpus (no LLM), for the chat's example buttons.

Candidates, in this order of preference:

1. a curated ``.examples`` file beside the documents (one question per line, ``#`` comments): the folder must hold
   an indexed document (``seeds/.examples`` keeps the demo questions);
2. questions the documents ask themselves: headings that end with ``?`` (FAQ-style documents) and lines of the
   text that are a question (``Q: …?``, ``Comment … ?``);
3. when those give fewer than two: document titles and headings turned into a question in the passage's language
   ("What do the documents say about X?" / "Que disent les documents sur « X » ?").

At most two come from one document, documents taking turns, so the examples show the breadth of the corpus. They
are rebuilt when the index changes (its BM25 generation), cached in ``<index_dir>/examples.json``; :func:`verify`
keeps only those the assistant answers (used by the app once the model is loaded), so an example never leads to
"not found", and never refers to a document that is not indexed.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)

CURATED = ".examples"
CACHE = "examples.json"
LIMIT = 6
_QUESTION_LINE = re.compile(r"(?m)^[ \t]*(?:(?:Q|Question)\s*[:.\-–]\s*|\d{1,2}[.)]\s+|[#*\-•]+\s*)?"
                            r"([A-ZÀ-ÖØ-Þ¿«\"'][^\n?]{8,160}\?)[ \t]*$")


def _clean(q: str) -> str:
    return re.sub(r"\s+", " ", q).strip().strip("*_#").strip()


def _curated(folders: Iterable[Path]) -> list[str]:
    out: list[str] = []
    for folder in folders:
        f = folder / CURATED
        try:
            lines = f.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        out.extend(q.strip() for q in lines if q.strip() and not q.lstrip().startswith("#") and len(q.strip()) <= 300)
    return out


def _from_heading(h: str, lang: str) -> str:
    h = h.strip().rstrip(":.")
    return f"Que disent les documents sur « {h} » ?" if lang == "fr" else f"What do the documents say about {h}?"


def candidates(assistant, limit: int = LIMIT, max_files: int = 60) -> list[str]:
    """Example questions from the indexed corpus (not checked against the answerer; see :func:`verify`)."""
    from .text import detect_language

    records = [r for r in assistant.indexer.manifest.files().values() if r.status == "done" and r.chunk_ids]
    records.sort(key=lambda r: r.source)
    if not records:
        return []
    curated = _curated(dict.fromkeys(Path(r.path).parent for r in records))
    step = max(1, len(records) // max_files)
    per_doc: list[list[str]] = []
    headings: list[list[str]] = []
    for rec in records[::step][:max_files]:
        chunks = sorted(assistant.store.get(rec.chunk_ids[:40]).values(), key=lambda dm: int(dm[1].get("ordinal", 0)))
        qs: list[str] = []
        hs: list[str] = []
        for doc, meta in chunks:
            section = str(meta.get("section") or "").strip()
            if section.endswith("?") and 8 <= len(section) <= 160:
                qs.append(section)
            qs.extend(m.group(1) for m in _QUESTION_LINE.finditer(doc))
            title = str(meta.get("context") or "").split(" — ")[0].strip()
            for h in (title, section):
                if h and not h.endswith("?") and 1 <= len(h.split()) <= 8 and len(h) <= 80:
                    hs.append(_from_heading(h, detect_language(doc)))
        per_doc.append(list(dict.fromkeys(_clean(q) for q in qs))[:2])
        headings.append(list(dict.fromkeys(hs))[:1])
    out = list(dict.fromkeys(curated))
    for rnd in range(2):  # documents take turns
        for qs in per_doc:
            if rnd < len(qs) and qs[rnd] not in out:
                out.append(qs[rnd])
    if len(out) < 2:
        for hs in headings:
            out.extend(h for h in hs if h not in out)
    return out[:limit * 2]


def _generation(assistant) -> int | None:
    cur = assistant.lexical.current()
    return cur[0] if cur else None


def _cache_path(assistant) -> Path:
    return Path(assistant.settings.index_dir) / CACHE


def load(assistant, limit: int = LIMIT) -> list[str]:
    """The corpus's examples: cached for the current index generation, else rebuilt (without the model)."""
    gen = _generation(assistant)
    if gen is None:
        return []
    cached = _cached(assistant, gen, verified=False)
    if cached is not None:
        return cached[:limit]
    try:
        found = candidates(assistant, limit)
    except Exception:  # noqa: BLE001 - no examples is better than no page
        log.warning("could not build example questions", exc_info=True)
        return []
    _save(assistant, gen, found, verified=False)
    return found[:limit]


def _cached(assistant, gen: int, verified: bool) -> list[str] | None:
    """The cached examples of generation ``gen`` (only verified ones when ``verified``), or None."""
    try:
        cached = json.loads(_cache_path(assistant).read_text(encoding="utf-8"))
        if cached.get("generation") == gen and (cached.get("verified") or not verified):
            return list(cached.get("examples") or [])
    except (OSError, ValueError, AttributeError):
        pass
    return None


def _save(assistant, gen: int, examples: list[str], verified: bool) -> None:
    path = _cache_path(assistant)
    try:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"generation": gen, "verified": verified, "examples": examples}, ensure_ascii=False),
                       encoding="utf-8")
        tmp.replace(path)
    except OSError:
        log.debug("could not cache the examples", exc_info=True)


def verify(assistant, limit: int = LIMIT) -> list[str]:
    """Keep the examples the assistant answers (does not abstain on), and cache them; loads the model."""
    gen = _generation(assistant)
    if gen is None:
        return []
    cached = _cached(assistant, gen, verified=True)
    if cached is not None:
        return cached[:limit]
    kept: list[str] = []
    for q in candidates(assistant, limit):
        if len(kept) >= limit:
            break
        try:
            if not assistant.ask(q).abstained:
                kept.append(q)
        except Exception:  # noqa: BLE001 - a question that cannot be asked is not an example
            log.debug("example %r failed", q, exc_info=True)
    if _generation(assistant) == gen:  # the index did not change meanwhile
        _save(assistant, gen, kept, verified=True)
    return kept
