"""Verify the question sets of bench/questions/ against the real corpora.

Run from the repository root::

    python -m bench.questions.check            # or: python bench/questions/check.py  (every file)
    python -m bench.questions.check --chunks   # also check against the assistant's own chunks
    python -m bench.questions.check bench/questions/mixed-fr.jsonl   # one file
    python -m bench.questions.check bench/questions/debian-reference-en.jsonl

Files and their corpora (``SPECS`` below)
-----------------------------------------
* ``debian-reference-fr.jsonl``: corpus ``debian-reference-fr``, ids
  ``debref-en-NN`` / ``debref-fr-NN``, ``history`` always empty.
* ``mixed-fr.jsonl``: the union of ``gimp-help-fr``, ``debian-handbook-fr``
  and ``installation-guide-fr``, ids ``mixed-en-NN`` / ``mixed-fr-NN``;
  follow-up cases carry a ``history`` of one user turn and one assistant turn.
* ``debian-reference-en.jsonl``: corpus ``debian-reference-en`` (the same
  book in English), ids ``debref-enen-NN`` (English questions over English
  pages); follow-ups as in ``mixed-fr``.  Its unanswerable key terms are also
  looked for in the full text of the HTML pages (``lxml`` ``text_content``),
  because trafilatura leaves out some tables (e.g. Table 9.7) and lists that
  another loader may keep.

A file given on the command line is checked with the spec of its file name
(unknown names: the ``debian-reference-fr`` spec, as before).

What it checks
--------------
* format: every line is a JSON object with exactly the keys ``id, question,
  history, answerable, facts, evidence`` and the right types; ids are unique;
  unanswerable cases have empty ``facts`` and ``evidence``; ``history`` is
  ``[]`` (or, where the spec allows follow-ups, ``[{"role": "user", ...},
  {"role": "assistant", ...}]`` with non-empty string contents);
* every page of the corpora (fetched with ``bench.corpora.ensure`` if
  missing) is extracted with ``trafilatura.extract(html,
  output_format="markdown", include_tables=True, include_comments=False)``
  (``.txt`` files are read as is) and normalised like the evaluation does
  (accents removed, lower case, typographic apostrophes and quotes
  straightened, whitespace collapsed);
* answerable cases: each evidence string occurs in at least one page, and in
  that same page at least one alternative of every fact occurs; evidence
  strings contain no markdown markup (so they also match text extracted
  without markup) and have 3 to 12 words (5 to 12 for ``mixed-fr``); no fact
  alternative already occurs in the question.  For ``mixed-fr`` the facts are
  looked up in the page text with markdown emphasis and code markers
  (``**``, backticks, backslash escapes) removed, because a key combination
  is ``**Ctrl**+**Z**`` in the markdown but ``Ctrl+Z`` in the text the
  assistant indexes; and an evidence string must be distinctive: it may occur
  in at most ``max_evidence_pages`` pages of the union;
* unanswerable cases: none of their key terms (``ABSENT_TERMS`` /
  ``ABSENT_TERMS_MIXED`` / ``ABSENT_TERMS_EN`` below) occurs anywhere in the corpora, as a whole
  word;
* counts by language (from the id: ``<prefix>-en-NN`` / ``<prefix>-fr-NN``;
  ``enen`` for ``debref-enen-NN``)
  and answerability, and the number of distinct pages used as evidence
  (``mixed-fr`` also: counts by corpus and follow-ups).

With ``--chunks`` it also loads the pages with ``assistant.loaders`` and
chunks them with ``assistant.chunking.Chunker`` (default settings) and checks
that every evidence string falls inside at least one chunk, and that each
answerable case has a chunk holding an evidence string and every fact.  For
``debian-reference-fr`` both are informative (they change the exit code only
with ``--strict-chunks``); for ``mixed-fr`` and ``debian-reference-en`` a case
with no such chunk is an error.

Exit code 0 when everything passes, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_FILE = HERE / "debian-reference-fr.jsonl"
MIXED_FILE = HERE / "mixed-fr.jsonl"
EN_FILE = HERE / "debian-reference-en.jsonl"
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

# Same for mixed-fr.jsonl, checked against the union of its three corpora.
ABSENT_TERMS_MIXED: dict[str, list[str]] = {
    # related-sounding, answer absent from all three corpora
    "mixed-en-33": ["adjustment layer", "adjustment layers", "calque d'ajustement", "calques d'ajustement"],
    "mixed-en-34": ["potrace", "autotrace", "auto-trace", "vectorisation", "vectoriser", "vectorize"],
    "mixed-en-35": ["flatpak", "flathub"],
    "mixed-en-36": ["fprintd", "fprintd-enroll", "empreinte digitale", "empreintes digitales"],
    "mixed-en-37": ["risc-v", "riscv", "riscv64"],
    "mixed-fr-33": ["remplacement du ciel", "sky replacement", "replace sky"],
    "mixed-fr-34": ["kubernetes", "kubeadm", "kubectl"],
    "mixed-fr-35": ["zfs", "openzfs", "zpool"],
    "mixed-fr-36": ["systemd-boot", "bootctl", "gummiboot"],
    "mixed-fr-37": ["2026"],
    # general knowledge
    "mixed-en-38": ["fahrenheit", "boiling point", "point d'ebullition"],
    "mixed-en-39": ["miserables", "victor hugo"],
    "mixed-en-40": ["ottawa"],
    "mixed-fr-38": ["kilimandjaro", "kilimanjaro"],
    "mixed-fr-39": ["berlin", "mur de berlin", "berlin wall"],
    "mixed-fr-40": ["rugby"],
}

# Same for debian-reference-en.jsonl (English Debian Reference), checked against the extracted
# text and against the full HTML text of its pages.
ABSENT_TERMS_EN: dict[str, list[str]] = {
    # subjects the book does not cover
    "debref-enen-41": ["nftables", "nft", "iptables-translate", "iptables-nft"],
    "debref-enen-42": ["fprintd", "fprintd-enroll", "pam_fprintd", "fingerprint reader", "fingerprint login"],
    "debref-enen-43": ["kubernetes", "kubeadm", "kubectl", "k8s"],
    "debref-enen-44": ["certbot", "let's encrypt", "letsencrypt", "nginx", "acme"],
    "debref-enen-45": ["zswap", "zram", "compressed swap"],
    # topics the book covers, attribute it does not give
    "debref-enen-46": ["branden robinson", "anthony towns", "sam hocevar", "steve mcintyre", "zacchiroli",
                       "lucas nussbaum", "neil mcgovern", "mehdi dogguy", "chris lamb", "sam hartman",
                       "jonathan carter", "andreas tille", "current leader", "current dpl"],
    "debref-enen-47": ["june 2023", "2023-06-10", "10 june 2023", "june 10, 2023", "10 june", "june 10"],
    "debref-enen-48": ["3142"],
}


@dataclass(frozen=True)
class Spec:
    corpora: tuple[str, ...]
    absent_terms: dict[str, list[str]]
    min_words: int = 3
    followups: bool = False  # may a case carry a 2-turn history?
    plain_facts: bool = False  # match facts against the page text without markdown markers
    max_evidence_pages: int | None = None  # evidence must be distinctive
    strict_chunks: bool = False  # --chunks: a case with no evidence+facts chunk is an error
    extra_counts: bool = False  # counts by corpus / follow-ups
    absent_in_html: bool = False  # also look for the absent terms in the full HTML text (not only trafilatura's)
    label: str = field(default="")


SPECS: dict[str, Spec] = {
    DEFAULT_FILE.name: Spec((CORPUS,), ABSENT_TERMS, label="debian-reference-fr"),
    MIXED_FILE.name: Spec(("gimp-help-fr", "debian-handbook-fr", "installation-guide-fr"), ABSENT_TERMS_MIXED,
                          min_words=5, followups=True, plain_facts=True, max_evidence_pages=3,
                          strict_chunks=True, extra_counts=True, label="mixed-fr"),
    EN_FILE.name: Spec(("debian-reference-en",), ABSENT_TERMS_EN, followups=True, strict_chunks=True,
                       extra_counts=True, absent_in_html=True, label="debian-reference-en"),
}

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201b": "'", "\u00b4": "'", "`": "'",
                         "\u201c": '"', "\u201d": '"', "\u00ab": '"', "\u00bb": '"'})
_MARKUP = re.compile(r"[`*_\\|#\[\]]")
_EMPHASIS = re.compile(r"\*\*|`|\\(?=[^\w\s])")


def normalize(text: str) -> str:
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return re.sub(r"\s+", " ", text.lower().translate(_QUOTES)).strip()


def _doc_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".html", ".txt"))


def extract_pages(folder: Path, raw: bool = False) -> dict[str, str]:
    """Page name -> normalised extracted text (``raw``: the markdown, not normalised)."""
    import trafilatura

    pages = {}
    for p in _doc_files(folder):
        if p.suffix == ".txt":
            md = p.read_text(encoding="utf-8", errors="replace")
        else:
            md = trafilatura.extract(p.read_text(encoding="utf-8", errors="replace"), output_format="markdown",
                                     include_tables=True, include_comments=False) or ""
        pages[p.relative_to(folder).as_posix()] = md if raw else normalize(md)
    return pages


def html_texts(folder: Path) -> dict[str, str]:
    """Page name -> normalised full text of the HTML (``lxml`` ``text_content``, scripts and styles dropped)."""
    import lxml.html

    out = {}
    for p in _doc_files(folder):
        if p.suffix == ".txt":
            text = p.read_text(encoding="utf-8", errors="replace")
        else:
            doc = lxml.html.fromstring(p.read_bytes())
            for bad in doc.xpath("//script|//style"):
                bad.drop_tree()
            text = doc.text_content()
        out[p.relative_to(folder).as_posix()] = normalize(text)
    return out


def chunk_texts(folder: Path) -> list[str]:
    sys.path.insert(0, str(REPO))
    from assistant.chunking import Chunker
    from assistant.loaders import DocumentLoader

    loader, chunker, out = DocumentLoader(), Chunker(), []
    for p in _doc_files(folder):
        doc = loader.run(p)
        out.extend(normalize(c.text) for c in chunker.run(doc))
    return out


def _resolve_folders(spec: Spec, given: list[Path] | None) -> dict[str, Path]:
    given = given or []
    folders: dict[str, Path] = {}
    if len(spec.corpora) == 1 and len(given) == 1:
        return {spec.corpora[0]: given[0]}
    for name in spec.corpora:
        for g in given:
            if g.name == name:
                folders[name] = g
            elif (g / name).is_dir():
                folders[name] = g / name
        if name not in folders:
            sys.path.insert(0, str(REPO))
            from bench.corpora import ensure

            folders[name] = ensure(name)
    return folders


def _history_ok(history, followups: bool) -> bool:
    if history == []:
        return True
    if not followups or not isinstance(history, list) or len(history) != 2:
        return False
    return all(isinstance(t, dict) and set(t) == {"role", "content"} and t["role"] == role
               and isinstance(t["content"], str) and t["content"].strip()
               for t, role in zip(history, ("user", "assistant")))


def check_file(path: Path, spec: Spec, corpus_dirs: list[Path] | None, chunks: bool, strict_chunks: bool) -> int:
    folders = _resolve_folders(spec, corpus_dirs)
    single = len(folders) == 1
    pages: dict[str, str] = {}
    plain: dict[str, str] = {}
    for name, folder in folders.items():
        raw = extract_pages(folder, raw=True)
        for rel, md in raw.items():
            key = rel if single else f"{name}/{rel}"
            pages[key] = normalize(md)
            if spec.plain_facts:
                plain[key] = normalize(_EMPHASIS.sub("", md))
        print(f"corpus {folder}: {len(raw)} pages, {sum(len(normalize(t)) for t in raw.values()) / 1e3:.0f} k chars extracted")
    fact_text = plain if spec.plain_facts else pages
    corpus_all = "\n".join(pages.values())
    if spec.absent_in_html:
        corpus_all += "\n" + "\n".join(t for folder in folders.values() for t in html_texts(folder).values())

    errors: list[str] = []
    cases = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
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
                    and _history_ok(case["history"], spec.followups) and isinstance(case["answerable"], bool)
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
    case_corpus: dict[str, str] = {}
    for c in cases:
        cid, q = c["id"], normalize(c["question"])
        if not c["answerable"]:
            if c["facts"] or c["evidence"]:
                errors.append(f"{cid}: unanswerable case with facts/evidence")
            terms = spec.absent_terms.get(cid)
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
            if not spec.min_words <= words <= 12:
                errors.append(f"{cid}: evidence has {words} words (want {spec.min_words}-12): {ev!r}")
            where = [name for name, text in pages.items() if nev in text]
            if not where:
                errors.append(f"{cid}: evidence not found in any page: {ev!r}")
                notes.append("evidence MISSING")
                continue
            if spec.max_evidence_pages and len(where) > spec.max_evidence_pages:
                errors.append(f"{cid}: evidence not distinctive, in {len(where)} pages: {ev!r}")
            good = [name for name in where
                    if all(any(normalize(a) in fact_text[name] for a in fact) for fact in c["facts"])]
            if not good:
                errors.append(f"{cid}: facts {c['facts']} not all in the evidence page(s) {where}")
                notes.append(f"facts missing in {where}")
            else:
                used_pages.update(good)
                case_corpus.setdefault(cid, good[0].split("/", 1)[0] if not single else next(iter(folders)))
                notes.append(",".join(good))
        tag = "answerable (follow-up)" if c["history"] else "answerable   "
        print(f"  {cid:13s} {tag} {'; '.join(notes)}")

    if chunks:
        try:
            all_chunks = [ch for folder in folders.values() for ch in chunk_texts(folder)]
        except Exception as e:  # the assistant package is optional here
            print(f"--chunks: could not chunk with the assistant package: {e!r}")
            if spec.strict_chunks:
                errors.append(f"--chunks: could not chunk with the assistant package: {e!r}")
        else:
            missing = [(c["id"], ev) for c in cases for ev in c["evidence"]
                       if not any(normalize(ev) in ch for ch in all_chunks)]
            print(f"--chunks: {len(all_chunks)} chunks; evidence strings found in no chunk: {len(missing)}")
            for cid, ev in missing:
                print(f"    {cid}: {ev!r}")
            # is there a chunk holding an evidence string and every fact?
            alone = [c["id"] for c in cases if c["answerable"] and not any(
                normalize(ev) in ch and all(any(normalize(a) in ch for a in f) for f in c["facts"])
                for ev in c["evidence"] for ch in all_chunks)]
            print(f"--chunks: answerable cases with no chunk holding evidence and all facts: {len(alone)} {alone}")
            if missing and (strict_chunks or spec.strict_chunks):
                errors += [f"{cid}: evidence in no chunk: {ev!r}" for cid, ev in missing]
            if alone and spec.strict_chunks:
                errors += [f"{cid}: no chunk holds an evidence string and all facts" for cid in alone]

    by = Counter((c["id"].split("-")[1] if c["id"].count("-") >= 2 else "?", c["answerable"]) for c in cases)
    print()
    print(f"{len(cases)} cases: " + ", ".join(
        f"{lang} {'answerable' if a else 'unanswerable'} {k}" for (lang, a), k in sorted(by.items())))
    if spec.extra_counts:
        corp = Counter(case_corpus.values())
        print("answerable by corpus: " + ", ".join(f"{k} {v}" for k, v in sorted(corp.items())))
        fu = Counter(c["id"].split("-")[1] for c in cases if c["history"])
        print(f"follow-ups (with history): {sum(fu.values())} (" + ", ".join(f"{k} {v}" for k, v in sorted(fu.items())) + ")")
    print(f"evidence pages used: {len(used_pages)} of {len(pages)}: {', '.join(sorted(used_pages))}")
    if errors:
        print(f"\nFAILED ({len(errors)} problems):")
        for e in errors:
            print(f"  - {e}")
        return 1
    print("all checks passed")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="verify the bench/questions question sets")
    ap.add_argument("file", nargs="?", type=Path, help="one question file (default: every file of SPECS)")
    ap.add_argument("--corpus", type=Path, action="append",
                    help="corpus folder (repeatable; a folder named like a corpus, or a parent of such folders; "
                         "default: bench.corpora.ensure)")
    ap.add_argument("--chunks", action="store_true", help="also check evidence against assistant chunks")
    ap.add_argument("--strict-chunks", action="store_true", help="fail when an evidence is in no chunk")
    args = ap.parse_args(argv)

    if args.file:
        todo = [(args.file, SPECS.get(args.file.name, SPECS[DEFAULT_FILE.name]))]
    else:
        todo = [(HERE / name, spec) for name, spec in SPECS.items()]
    status = 0
    for i, (path, spec) in enumerate(todo):
        if len(todo) > 1:
            print(("\n" if i else "") + f"=== {path.name} ({spec.label})")
        status |= check_file(path, spec, args.corpus, args.chunks, args.strict_chunks)
    return status


if __name__ == "__main__":
    sys.exit(main())
