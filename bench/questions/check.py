"""Verify bench/questions/debian-reference-fr.jsonl against the real corpus.

Run from the repository root::

    python -m bench.questions.check            # or: python bench/questions/check.py
    python -m bench.questions.check --chunks   # also check against the assistant's own chunks

What it checks
--------------
* format: every line is a JSON object with exactly the keys ``id, question,
  history, answerable, facts, evidence`` and the right types; ids are unique;
  unanswerable cases have empty ``facts`` and ``evidence``;
* every page of the ``debian-reference-fr`` corpus (fetched with
  ``bench.corpora.ensure`` if missing) is extracted with
  ``trafilatura.extract(html, output_format="markdown", include_tables=True,
  include_comments=False)`` and normalised like the evaluation does (accents
  removed, lower case, typographic apostrophes and quotes straightened,
  whitespace collapsed);
* answerable cases: each evidence string occurs in at least one page, and in
  that same page at least one alternative of every fact occurs; evidence
  strings contain no markdown markup (so they also match text extracted
  without markup) and have 3 to 12 words; no fact alternative already occurs
  in the question;
* unanswerable cases: none of their key terms (``ABSENT_TERMS`` below) occurs
  anywhere in the corpus, as a whole word;
* counts by language (from the id: ``debref-en-NN`` / ``debref-fr-NN``) and
  answerability, and the number of distinct pages used as evidence.

With ``--chunks`` it also loads the pages with ``assistant.loaders`` and
chunks them with ``assistant.chunking.Chunker`` (default settings) and checks
that every evidence string falls inside at least one chunk (informative: a
failure there is reported but does not change the exit code unless
``--strict-chunks``).

Exit code 0 when everything passes, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import unicodedata
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_FILE = HERE / "debian-reference-fr.jsonl"
CORPUS = "debian-reference-fr"
KEYS = {"id", "question", "history", "answerable", "facts", "evidence"}

# Key terms of the unanswerable cases: none may occur in the corpus.
ABSENT_TERMS: dict[str, list[str]] = {
    "debref-en-17": ["mokutil", "mok", "machine owner key", "secure boot", "secureboot"],
    "debref-en-18": ["wireguard", "wg-quick"],
    "debref-en-19": ["apparmor", "aa-complain", "complain mode"],
    "debref-en-20": ["canberra", "australia", "australie"],
    "debref-fr-17": ["zram", "zram-tools", "zramswap", "swap compresse"],
    "debref-fr-18": ["usrmerge", "usr-merge", "merged-usr", "usr fusionne"],
    "debref-fr-19": ["preseed", "preseeding", "preconfiguration"],
    "debref-fr-20": ["joconde", "vinci", "mona lisa"],
}

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201b": "'", "\u00b4": "'", "`": "'",
                         "\u201c": '"', "\u201d": '"', "\u00ab": '"', "\u00bb": '"'})
_MARKUP = re.compile(r"[`*_\\|#\[\]]")


def normalize(text: str) -> str:
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return re.sub(r"\s+", " ", text.lower().translate(_QUOTES)).strip()


def extract_pages(folder: Path) -> dict[str, str]:
    import trafilatura

    pages = {}
    for p in sorted(folder.rglob("*.html")):
        md = trafilatura.extract(p.read_text(encoding="utf-8", errors="replace"), output_format="markdown",
                                 include_tables=True, include_comments=False)
        pages[p.relative_to(folder).as_posix()] = normalize(md or "")
    return pages


def chunk_texts(folder: Path) -> list[str]:
    sys.path.insert(0, str(REPO))
    from assistant.chunking import Chunker
    from assistant.loaders import DocumentLoader

    loader, chunker, out = DocumentLoader(), Chunker(), []
    for p in sorted(folder.rglob("*.html")):
        doc = loader.run(p)
        out.extend(normalize(c.text) for c in chunker.run(doc))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="verify the debian-reference-fr question set")
    ap.add_argument("file", nargs="?", type=Path, default=DEFAULT_FILE)
    ap.add_argument("--corpus", type=Path, help="corpus folder (default: bench.corpora.ensure)")
    ap.add_argument("--chunks", action="store_true", help="also check evidence against assistant chunks")
    ap.add_argument("--strict-chunks", action="store_true", help="fail when an evidence is in no chunk")
    args = ap.parse_args(argv)

    if args.corpus:
        folder = args.corpus
    else:
        sys.path.insert(0, str(REPO))
        from bench.corpora import ensure

        folder = ensure(CORPUS)
    pages = extract_pages(folder)
    corpus_all = "\n".join(pages.values())
    print(f"corpus {folder}: {len(pages)} pages, {sum(map(len, pages.values())) / 1e3:.0f} k chars extracted")

    errors: list[str] = []
    cases = []
    for n, line in enumerate(args.file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
        except ValueError as e:
            errors.append(f"line {n}: invalid JSON ({e})")
            continue
        if not isinstance(case, dict) or set(case) != KEYS:
            errors.append(f"line {n}: keys {sorted(case) if isinstance(case, dict) else type(case)} != {sorted(KEYS)}")
            continue
        ok_types = (isinstance(case["id"], str) and isinstance(case["question"], str)
                    and case["history"] == [] and isinstance(case["answerable"], bool)
                    and isinstance(case["facts"], list) and isinstance(case["evidence"], list)
                    and all(isinstance(f, list) and f and all(isinstance(a, str) and a for a in f) for f in case["facts"])
                    and all(isinstance(e, str) and e for e in case["evidence"]))
        if not ok_types:
            errors.append(f"{case.get('id', n)}: wrong field types")
            continue
        cases.append(case)

    ids = Counter(c["id"] for c in cases)
    errors += [f"{i}: duplicate id" for i, k in ids.items() if k > 1]

    used_pages: set[str] = set()
    for c in cases:
        cid, q = c["id"], normalize(c["question"])
        if not c["answerable"]:
            if c["facts"] or c["evidence"]:
                errors.append(f"{cid}: unanswerable case with facts/evidence")
            terms = ABSENT_TERMS.get(cid)
            if not terms:
                errors.append(f"{cid}: no key terms listed in ABSENT_TERMS")
                continue
            found = [t for t in terms if re.search(r"(?<!\w)" + re.escape(normalize(t)) + r"(?!\w)", corpus_all)]
            status = "ok" if not found else f"FOUND {found}"
            if found:
                errors.append(f"{cid}: key terms present in corpus: {found}")
            print(f"  {cid:13s} unanswerable  absent terms {terms}: {status}")
            continue
        if not c["facts"] or not c["evidence"]:
            errors.append(f"{cid}: answerable case without facts or evidence")
            continue
        for fact in c["facts"]:
            hit = [a for a in fact if normalize(a) in q]
            if hit:
                errors.append(f"{cid}: fact alternative {hit} already in the question")
        notes = []
        for ev in c["evidence"]:
            nev = normalize(ev)
            words = len(nev.split())
            if _MARKUP.search(ev):
                errors.append(f"{cid}: evidence has markup characters: {ev!r}")
            if not 3 <= words <= 12:
                errors.append(f"{cid}: evidence has {words} words (want 3-12): {ev!r}")
            where = [name for name, text in pages.items() if nev in text]
            if not where:
                errors.append(f"{cid}: evidence not found in any page: {ev!r}")
                notes.append("evidence MISSING")
                continue
            good = [name for name in where
                    if all(any(normalize(a) in pages[name] for a in fact) for fact in c["facts"])]
            if not good:
                errors.append(f"{cid}: facts {c['facts']} not all in the evidence page(s) {where}")
                notes.append(f"facts missing in {where}")
            else:
                used_pages.update(good)
                notes.append(",".join(good))
        print(f"  {cid:13s} answerable    {'; '.join(notes)}")

    if args.chunks:
        try:
            chunks = chunk_texts(folder)
        except Exception as e:  # the assistant package is optional here
            print(f"--chunks: could not chunk with the assistant package: {e!r}")
        else:
            missing = [(c["id"], ev) for c in cases for ev in c["evidence"]
                       if not any(normalize(ev) in ch for ch in chunks)]
            print(f"--chunks: {len(chunks)} chunks; evidence strings found in no chunk: {len(missing)}")
            for cid, ev in missing:
                print(f"    {cid}: {ev!r}")
            # informative: is there a chunk holding an evidence string and every fact?
            alone = [c["id"] for c in cases if c["answerable"] and not any(
                normalize(ev) in ch and all(any(normalize(a) in ch for a in f) for f in c["facts"])
                for ev in c["evidence"] for ch in chunks)]
            print(f"--chunks: answerable cases with no chunk holding evidence and all facts: {len(alone)} {alone}")
            if missing and args.strict_chunks:
                errors += [f"{cid}: evidence in no chunk: {ev!r}" for cid, ev in missing]

    by = Counter((c["id"].split("-")[1] if c["id"].count("-") >= 2 else "?", c["answerable"]) for c in cases)
    print()
    print(f"{len(cases)} cases: " + ", ".join(
        f"{lang} {'answerable' if a else 'unanswerable'} {k}" for (lang, a), k in sorted(by.items())))
    print(f"evidence pages used: {len(used_pages)} of {len(pages)}: {', '.join(sorted(used_pages))}")
    if errors:
        print(f"\nFAILED ({len(errors)} problems):")
        for e in errors:
            print(f"  - {e}")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
