"""Train / dev / test question sets, kept apart, with a frozen test split.

Usage (from the repository root)::

    python -m bench.splits                                # ../shared, writes bench/work/splits/
    python -m bench.splits --shared ../shared --out bench/work/splits
    python -m bench.splits --no-docs                      # case files only, no document folders
    python -m bench.splits --check                        # also compare the test split with FROZEN.json
    python -m bench.splits --freeze                       # rewrite test.ids and FROZEN.json (see SPLITS.md)

The shared data (``../shared/data``) is never copied into the repository: this
script assembles the case files at run time from it plus what the repository
holds itself (``bench/questions/*.jsonl`` and the hand-written derived cases of
``bench/questions/derived/``).  What it writes under ``--out``:

* ``<split>.<variant>.jsonl`` -- one case file per (split, corpus variant), in
  the case format of ``../shared/eval/README.md`` plus ``split``, ``corpus``
  (the variant), ``lang_q``, ``lang_doc``, ``kind`` and, where known,
  ``source`` (the answering document, relative to the variant's folder) and
  ``of`` (the original of a translation);
* ``docs/<variant>/`` -- the variant's documents as symlinks (so
  ``assistant eval --cases <file> --docs <out>/docs/<variant>`` indexes exactly
  that variant), and ``docs/<variant>.files.txt``, the same as a file list;
* ``summary.json`` -- counts per split x kind x corpus, the held-out documents
  and the test content hash.

Rules (all deterministic, no randomness other than salted sha256):

* **groups**: cases that share an answering document (or a duplicate of it:
  CNIL has several passages published twice), a normalised question text, or
  a history question are one group; a group is never split.  A translation or
  a derived case joins the group of its original / of its answering document.
* **split**: ``h = sha256(SALT | corpus | group)`` mapped to [0, 1); test when
  ``h < 0.45``, dev when ``h < 0.65``, train otherwise (per corpus, so each
  corpus is stratified).  Thresholds, not ranks: adding cases never moves an
  existing case to another split.
* **held-out documents**: in the variants ``service-public-heldout`` and
  ``cnil-heldout`` a hash-chosen 30 % of the *eligible* answering documents is
  left out of the folder, and their questions become unanswerable (facts and
  evidence emptied).  Eligible = nothing else in the corpus can answer it by
  our checks: its answer span (facts and evidence, normalised) occurs in no
  other document; no other document holds 80 % or more of the span's content
  words; for service-public no sub-page of the same fiche (``F1234_*``) exists
  in ``docs/pages/``; CNIL duplicates are left out together.
* **translations** (``derived/translations_en.jsonl``): French originals whose
  ``sha256(TRANSLATE_SALT | id)`` falls under the rate of their split; the
  translation keeps the original's facts, evidence, answerability and split.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUESTIONS = REPO / "bench" / "questions"
DERIVED = QUESTIONS / "derived"
SPLITS_DIR = QUESTIONS / "splits"
FROZEN = SPLITS_DIR / "FROZEN.json"
TEST_IDS = SPLITS_DIR / "test.ids"
BENCH_CORPORA = REPO / "bench" / "corpora"          # where ``python -m bench.corpora`` puts the Debian corpora

SALT = "docqa-splits-v1"
HELDOUT_SALT = "docqa-heldout-v1"
TRANSLATE_SALT = "docqa-translate-v1"
SPLITS = ("train", "dev", "test")
TEST_SHARE, DEV_SHARE = 0.45, 0.20
HELDOUT_SHARE = 0.30
# share of the French originals of each split that is translated into English
# (more in test, so that English-over-French questions are >= 25 % of it)
TRANSLATE_RATE = {"test": 0.45, "dev": 0.10, "train": 0.10}
KINDS = ("fr-fr", "en-en", "en-fr", "followup", "topic-switch", "unanswerable")

# Debian question sets of this repository and the corpora they are asked over
DEBIAN_SETS = {
    "debian-reference-fr": ("debian-reference-fr.jsonl", ("debian-reference-fr",)),
    "debian-mixed-fr": ("mixed-fr.jsonl", ("gimp-help-fr", "debian-handbook-fr", "installation-guide-fr")),
    "debian-reference-en": ("debian-reference-en.jsonl", ("debian-reference-en",)),
}
VARIANTS = ("service-public-heldout", "cnil-heldout", "debian-reference-fr", "debian-mixed-fr", "debian-reference-en")

# shared cases that are not usable questions (with the reason); never in any split
EXCLUDED = {
    "cnil-287-1-0": "passage is the placeholder 'whsdjsfsd', not an answer",
    "cnil-288-1-0": "passage is the placeholder 'whsdjsfsd', not an answer",
}

CASE_KEYS = ("id", "question", "history", "answerable", "facts", "evidence")
_APOS = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201b": "'", "\u00b4": "'", "`": "'",
                       "\u201c": '"', "\u201d": '"', "\u00ab": '"', "\u00bb": '"'})


def norm(text: str) -> str:
    """The evaluation's matching normalisation (``../shared/eval/README.md``)."""
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return re.sub(r"\s+", " ", text.lower().translate(_APOS)).strip()


def unit_hash(*parts: str) -> float:
    """sha256 of the joined parts, as a number in [0, 1)."""
    digest = hashlib.sha256("|".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def split_of(corpus: str, group: str) -> str:
    h = unit_hash(SALT, corpus, group)
    return "test" if h < TEST_SHARE else "dev" if h < TEST_SHARE + DEV_SHARE else "train"


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"\w+", text) if len(w) >= 4}


# --------------------------------------------------------------------------- corpora
@dataclass
class SharedCorpus:
    """One corpus of ``../shared/data``: its documents (normalised text) and questions."""
    name: str                       # service-public | cnil
    root: Path                      # the corpus folder (holds questions.jsonl and docs/)
    docs: dict[str, str]            # path relative to root -> normalised text
    questions: list[dict]
    answer_docs: list[str] = field(default_factory=list)   # documents that answer a question

    @property
    def doc_root(self) -> Path:
        return self.root / "docs"


@lru_cache(maxsize=4)
def load_shared(data_dir: str, name: str) -> SharedCorpus:
    root = Path(data_dir) / name
    docs: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root / "docs"):
        dirnames.sort()
        for fn in sorted(filenames):
            p = Path(dirpath) / fn
            docs[p.relative_to(root).as_posix()] = norm(p.read_text(encoding="utf-8", errors="replace"))
    questions = [q for q in read_jsonl(root / "questions.jsonl") if q["id"] not in EXCLUDED]
    return SharedCorpus(name, root, docs, questions, sorted({q["source"] for q in questions}))


def _duplicates(corpus: SharedCorpus) -> dict[str, list[str]]:
    """Each document -> every document with the same text (itself included)."""
    by_text: dict[str, list[str]] = defaultdict(list)
    for path, text in corpus.docs.items():
        by_text[text].append(path)
    return {p: sorted(by_text[t]) for p, t in corpus.docs.items()}


def heldout_documents(corpus: SharedCorpus) -> tuple[list[str], list[str]]:
    """(documents left out of the variant, eligible documents), both sorted.

    An answering document is eligible when leaving it (and its exact
    duplicates) out leaves nothing in the corpus that answers its questions,
    by three checks (module docstring).  A fixed hash-chosen share of the
    eligible documents is left out.
    """
    dups = _duplicates(corpus)
    by_source: dict[str, list[dict]] = defaultdict(list)
    for q in corpus.questions:
        by_source[q["source"]].append(q)
    pages_fids = {Path(p).name.split("_")[0] for p in corpus.docs if p.startswith("docs/pages/")}
    words = {p: _words(t) for p, t in corpus.docs.items()}
    eligible: list[str] = []
    for src in corpus.answer_docs:
        group = set(dups[src])
        if corpus.name == "service-public" and Path(src).name.split("_")[0] in pages_fids:
            continue
        spans = [norm(s) for q in by_source[src] for s in q["evidence"] + [a for f in q["facts"] for a in f]]
        others = [p for p in corpus.docs if p not in group]
        if any(s in corpus.docs[p] for s in spans for p in others):
            continue
        span_words = set().union(*(_words(s) for s in spans))
        if span_words and any(len(span_words & words[p]) >= 0.8 * len(span_words) for p in others):
            continue
        eligible.append(src)
    # a duplicate group is chosen (or not) as a whole, by its first member
    chosen = {d for src in eligible if unit_hash(HELDOUT_SALT, corpus.name, dups[src][0]) < HELDOUT_SHARE
              for d in dups[src]}
    return sorted(chosen), sorted(eligible)


# --------------------------------------------------------------------------- groups
class _Groups:
    """Union-find over string keys."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.order: dict[str, int] = {}

    def find(self, k: str) -> str:
        if k not in self.parent:
            self.parent[k] = k
            self.order[k] = len(self.order)
        while self.parent[k] != k:
            self.parent[k] = self.parent[self.parent[k]]
            k = self.parent[k]
        return k

    def union(self, a: str, b: str) -> None:
        """Merge; the root is the key seen first, so cases added later never move earlier groups."""
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            keep, drop = (ra, rb) if self.order[ra] < self.order[rb] else (rb, ra)
            self.parent[drop] = keep


def _doc_lang(folders) -> str:
    """Document language of a Debian set: its corpora's ``lang`` in :mod:`bench.corpora` (the question language
    comes from the case id)."""
    from bench.corpora import CORPORA

    langs = {CORPORA[f].lang for f in folders}
    if len(langs) != 1:
        raise ValueError(f"corpora {folders} mix document languages {sorted(langs)}")
    return langs.pop()


def _lang_of_debian(case_id: str, lang_doc: str = "fr") -> str:
    """Question language from the id: ``debref-en-07`` (English question), ``debref-enen-07`` (English
    question over English documents: the second code must be the set's document language)."""
    m = re.match(r"^[a-z]+-(en|fr)(en|fr)?-", case_id)
    if not m or (m.group(2) and m.group(2) != lang_doc):
        raise ValueError(f"cannot tell the question language of {case_id!r}")
    return m.group(1)


def kind_of(case: dict) -> str:
    """unanswerable > follow-up kinds > language pair."""
    if not case["answerable"]:
        return "unanswerable"
    if case.get("kind") in ("followup", "topic-switch"):
        return case["kind"]
    if case["history"]:
        return "followup"
    return f"{case['lang_q']}-{case['lang_doc']}"


def _case(obj: dict, **extra) -> dict:
    out = {k: obj[k] for k in CASE_KEYS if k in obj}
    out.setdefault("history", [])
    out.setdefault("facts", [])
    out.setdefault("evidence", [])
    out.update(extra)
    return out


# --------------------------------------------------------------------------- assembly
@dataclass
class Assembly:
    cases: list[dict]                         # every case, sorted by id
    heldout: dict[str, list[str]]             # variant -> documents left out (relative to the shared corpus root)
    eligible: dict[str, int]                  # variant -> number of documents that could have been left out
    doc_lists: dict[str, list[Path]]          # variant -> documents (absolute paths; Debian only when fetched)

    def by_split(self, split: str) -> list[dict]:
        return [c for c in self.cases if c["split"] == split]


def assemble(shared: str | Path, with_docs: bool = True) -> Assembly:
    """Every case of every split, from ``shared/data`` and the repository's own files."""
    data_dir = str(Path(shared) / "data")
    base: list[dict] = []          # the original cases, before translations and derived ones
    heldout: dict[str, list[str]] = {}
    eligible: dict[str, int] = {}
    doc_lists: dict[str, list[Path]] = {}
    groups = _Groups()
    doc_group_key: dict[tuple[str, str], str] = {}   # (variant, source) -> group key

    for name, variant in (("service-public", "service-public-heldout"), ("cnil", "cnil-heldout")):
        corpus = load_shared(data_dir, name)
        out, elig = heldout_documents(corpus)
        heldout[variant], eligible[variant] = out, len(elig)
        left_out = set(out)
        dups = _duplicates(corpus)
        if with_docs:
            doc_lists[variant] = [corpus.root / p for p in corpus.docs if p not in left_out]
        for src in sorted(corpus.docs, key=lambda p: (p not in corpus.answer_docs, p)):
            groups.find(f"{variant}|doc|{dups[src][0]}")
            doc_group_key[(variant, src.removeprefix("docs/"))] = f"{variant}|doc|{dups[src][0]}"
        for q in corpus.questions:
            src = q["source"].removeprefix("docs/")       # relative to the variant's folder
            answerable = q["answerable"] and q["source"] not in left_out
            case = _case(q, corpus=variant, lang_q="fr", lang_doc="fr", source=src, origin="shared-data")
            if not answerable:
                case.update(answerable=False, facts=[], evidence=[], heldout=True)
            base.append(case)

    for variant, (fname, folders) in DEBIAN_SETS.items():
        lang_doc = _doc_lang(folders)
        for q in read_jsonl(QUESTIONS / fname):
            base.append(_case(q, corpus=variant, lang_q=_lang_of_debian(q["id"], lang_doc), lang_doc=lang_doc,
                              origin=f"bench/questions/{fname}"))
        if with_docs:
            files: list[Path] = []
            for folder in folders:
                root = BENCH_CORPORA / folder
                if root.is_dir():
                    files += sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
            doc_lists[variant] = files

    derived = []
    for fname in ("followups.jsonl", "unanswerables.jsonl"):
        path = DERIVED / fname
        if path.is_file():
            derived += read_jsonl(path)

    # groups: shared answering document (up to duplicates), question text, history questions
    def link(case: dict) -> None:
        key = f"{case['corpus']}|case|{case['id']}"
        groups.find(key)
        if case.get("source"):
            groups.union(key, doc_group_key.get((case["corpus"], case["source"]), f"{case['corpus']}|doc|{case['source']}"))
        texts = [case["question"]]
        if case.get("kind") != "topic-switch":       # a topic switch's history is about another document
            texts += [t["content"] for t in case["history"] if t["role"] == "user"]
        for t in texts:
            groups.union(key, f"{case['corpus']}|q|{norm(t)}")

    for case in base + derived:
        link(case)

    def split_for(case: dict) -> str:
        return split_of(case["corpus"], groups.find(f"{case['corpus']}|case|{case['id']}"))

    cases: list[dict] = []
    by_id: dict[str, dict] = {}
    for case in base:
        case["split"] = split_for(case)
        case["kind"] = kind_of(case)
        by_id[case["id"]] = case
        cases.append(case)

    for d in derived:
        case = _case(d, corpus=d["corpus"], lang_q=d["lang_q"], lang_doc=d.get("lang_doc", "fr"), origin="derived")
        for k in ("source", "kind", "history_source", "absent"):
            if d.get(k):
                case[k] = d[k]
        if case["corpus"] in heldout and case.get("source") and "docs/" + case["source"] in set(heldout[case["corpus"]]):
            raise ValueError(f"derived case {case['id']} is answered by a held-out document ({case['source']})")
        case["split"] = split_for(case)
        case["kind"] = kind_of(case)
        by_id[case["id"]] = case
        cases.append(case)

    tpath = DERIVED / "translations_en.jsonl"
    for t in (read_jsonl(tpath) if tpath.is_file() else []):
        orig = by_id[t["of"]]
        case = {**orig, "id": t["id"], "question": t["question"], "lang_q": "en", "of": orig["id"], "origin": "translation"}
        case.pop("kind")
        case["kind"] = kind_of(case)
        groups.union(f"{case['corpus']}|case|{case['id']}", f"{orig['corpus']}|case|{orig['id']}")
        cases.append(case)

    cases.sort(key=lambda c: c["id"])
    ids = [c["id"] for c in cases]
    if len(ids) != len(set(ids)):
        raise ValueError(f"duplicate ids: {sorted(i for i, n in Counter(ids).items() if n > 1)}")
    return Assembly(cases, heldout, eligible, doc_lists)


def derived_problems(asm: Assembly, shared: str | Path) -> list[str]:
    """What is wrong with the hand-written cases (empty when they hold).

    Answerable ones: every evidence string and one alternative of every fact
    occur (normalised) in the answering document, which is in the variant's
    folder, and no fact alternative is given away by the question.
    Unanswerable ones: the document they are about is in the folder, and none
    of their ``absent`` terms occurs in any document of the variant.
    """
    data_dir = str(Path(shared) / "data")
    corpora = {"service-public-heldout": load_shared(data_dir, "service-public"),
               "cnil-heldout": load_shared(data_dir, "cnil")}
    problems = []
    for c in asm.cases:
        if c["origin"] != "derived":
            continue
        corpus = corpora[c["corpus"]]
        left_out = set(asm.heldout[c["corpus"]])
        for key in ("source", "history_source"):
            if key in c and ("docs/" + c[key] not in corpus.docs or "docs/" + c[key] in left_out):
                problems.append(f"{c['id']}: {key} {c[key]} is not in the {c['corpus']} folder")
        if c.get("history_source") and c["split"] != _split_of_doc(asm, c["corpus"], c["history_source"]):
            problems.append(f"{c['id']}: its history document is in another split")
        text = corpus.docs.get("docs/" + c.get("source", ""), "")
        if c["answerable"]:
            for e in c["evidence"]:
                if norm(e) not in text:
                    problems.append(f"{c['id']}: evidence not in {c['source']}: {e!r}")
            for f in c["facts"]:
                if not any(norm(a) in text for a in f):
                    problems.append(f"{c['id']}: fact not in {c['source']}: {f!r}")
                if any(norm(a) in norm(c["question"]) for a in f):
                    problems.append(f"{c['id']}: fact given away by the question: {f!r}")
        else:
            for term in c.get("absent", []):
                hits = [p for p, t in corpus.docs.items() if p not in left_out and norm(term) in t]
                if hits:
                    problems.append(f"{c['id']}: absent term {term!r} occurs in {hits[:3]}")
    return problems


def _split_of_doc(asm: Assembly, corpus: str, source: str) -> str | None:
    for c in asm.cases:
        if c["corpus"] == corpus and c.get("source") == source and c["origin"] == "shared-data":
            return c["split"]
    return None


def translation_candidates(asm: Assembly) -> list[dict]:
    """French originals chosen for translation by the hash rule (not yet translated or not)."""
    out = []
    for c in asm.cases:
        if c["lang_q"] != "fr" or c.get("of") or c["history"] or c["kind"] in ("followup", "topic-switch"):
            continue
        if c["origin"] in ("derived", "translation") or not c["answerable"]:
            continue
        if unit_hash(TRANSLATE_SALT, c["id"]) < TRANSLATE_RATE[c["split"]]:
            out.append(c)
    return out


# --------------------------------------------------------------------------- output
def canonical(cases: list[dict]) -> str:
    """The text whose sha256 is frozen: one sorted-key JSON object per line, sorted by id."""
    return "".join(json.dumps(c, ensure_ascii=False, sort_keys=True) + "\n" for c in sorted(cases, key=lambda c: c["id"]))


def content_hash(cases: list[dict]) -> str:
    return hashlib.sha256(canonical(cases).encode("utf-8")).hexdigest()


def counts(cases: list[dict]) -> dict[str, dict[str, dict[str, int]]]:
    """split -> corpus -> kind -> count."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for c in cases:
        out.setdefault(c["split"], {}).setdefault(c["corpus"], Counter())[c["kind"]] += 1
    return {s: {k: dict(v) for k, v in sorted(out.get(s, {}).items())} for s in SPLITS}


def table(cases: list[dict]) -> str:
    """Markdown table: split x corpus rows, one column per kind, totals."""
    c = counts(cases)
    head = "| split | corpus | " + " | ".join(KINDS) + " | total |"
    lines = [head, "|" + "---|" * (len(KINDS) + 3)]
    for split in SPLITS:
        tot = Counter()
        for corpus, kinds in c[split].items():
            tot.update(kinds)
            lines.append(f"| {split} | {corpus} | " + " | ".join(str(kinds.get(k, 0)) for k in KINDS)
                         + f" | {sum(kinds.values())} |")
        lines.append(f"| **{split}** | all | " + " | ".join(f"**{tot.get(k, 0)}**" for k in KINDS)
                     + f" | **{sum(tot.values())}** |")
    return "\n".join(lines)


def requirements(test: list[dict]) -> dict[str, bool]:
    """The issue's conditions on the frozen test split."""
    n = len(test)
    k = Counter(c["kind"] for c in test)
    corpora = {c["corpus"] for c in test}
    return {
        "test >= 300 cases": n >= 300,
        "en-fr >= 25 %": n > 0 and k["en-fr"] / n >= 0.25,
        "unanswerable >= 15 %": n > 0 and k["unanswerable"] / n >= 0.15,
        "follow-ups >= 20": k["followup"] >= 20,
        ">= 3 corpora": len(corpora) >= 3,
    }


def materialise(asm: Assembly, out: Path) -> dict[str, int]:
    """Symlink folders and file lists of every variant under ``out/docs``; returns files per variant."""
    written = {}
    for variant, files in asm.doc_lists.items():
        folder = out / "docs" / variant
        if folder.exists():
            for dirpath, dirnames, filenames in os.walk(folder, topdown=False):
                for fn in filenames:
                    os.unlink(os.path.join(dirpath, fn))
                for dn in dirnames:
                    os.rmdir(os.path.join(dirpath, dn))
        folder.mkdir(parents=True, exist_ok=True)
        for f in files:
            if variant.startswith(("service-public", "cnil")):
                rel = Path(*f.parts[f.parts.index("docs") + 1:])
            else:
                rel = f.relative_to(BENCH_CORPORA)
            link = folder / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(f.resolve(), link)
        (out / "docs" / f"{variant}.files.txt").write_text("".join(f"{f.resolve()}\n" for f in files), encoding="utf-8")
        written[variant] = len(files)
    return written


def write(asm: Assembly, out: Path, with_docs: bool = True) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.jsonl"):
        old.unlink()
    for split in SPLITS:
        for variant in VARIANTS:
            cs = [c for c in asm.by_split(split) if c["corpus"] == variant]
            if cs:
                (out / f"{split}.{variant}.jsonl").write_text(canonical(cs), encoding="utf-8")
    docs = materialise(asm, out) if with_docs else {}
    summary = {
        "counts": counts(asm.cases),
        "heldout": asm.heldout,
        "eligible_for_heldout": asm.eligible,
        "documents": docs,
        "test_sha256": content_hash(asm.by_split("test")),
        "n_test": len(asm.by_split("test")),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary


def freeze(asm: Assembly) -> None:
    test = asm.by_split("test")
    SPLITS_DIR.mkdir(parents=True, exist_ok=True)
    TEST_IDS.write_text("".join(f"{i}\n" for i in sorted(c["id"] for c in test)), encoding="utf-8")
    kinds = Counter(c["kind"] for c in test)
    FROZEN.write_text(json.dumps({
        "test_sha256": content_hash(test),
        "n_test": len(test),
        "kinds": dict(sorted(kinds.items())),
        "salt": SALT,
        "hash": "sha256 of bench.splits.canonical(test cases): one JSON object per line, keys sorted, "
                "ensure_ascii=False, cases sorted by id",
    }, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.splits", description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", default=str(REPO.parent / "shared"), help="the shared folder (default: ../shared)")
    ap.add_argument("--out", default=str(REPO / "bench" / "work" / "splits"), help="output folder")
    ap.add_argument("--no-docs", action="store_true", help="write the case files only")
    ap.add_argument("--check", action="store_true", help="exit 1 unless the test split matches FROZEN.json")
    ap.add_argument("--freeze", action="store_true", help="rewrite test.ids and FROZEN.json from this assembly")
    ap.add_argument("--todo-translations", action="store_true",
                    help="list the originals chosen for translation that have no translation yet")
    args = ap.parse_args(argv)
    if not (Path(args.shared) / "data").is_dir():
        print(f"no shared data under {args.shared}/data", file=sys.stderr)
        return 1
    asm = assemble(args.shared, with_docs=not args.no_docs)
    problems = derived_problems(asm, args.shared)
    for p in problems:
        print(f"derived: {p}", file=sys.stderr)
    if args.todo_translations:
        done = {c["of"] for c in asm.cases if c.get("of")}
        for c in translation_candidates(asm):
            if c["id"] not in done:
                print(json.dumps({"id": c["id"], "split": c["split"], "question": c["question"]}, ensure_ascii=False))
        return 0
    summary = write(asm, Path(args.out), with_docs=not args.no_docs)
    print(table(asm.cases))
    print()
    for variant, docs in asm.heldout.items():
        print(f"{variant}: {len(docs)} answering documents left out (of {asm.eligible[variant]} eligible)")
    for variant, n in summary["documents"].items():
        hint = "" if n else "  (not fetched: python -m bench.corpora --only " + " ".join(DEBIAN_SETS[variant][1]) + ")"
        print(f"docs/{variant}: {n} files{hint}")
    test = asm.by_split("test")
    for rule, ok in requirements(test).items():
        print(f"  [{'ok' if ok else 'FAIL'}] {rule}")
    print(f"test: {len(test)} cases, sha256 {summary['test_sha256']}")
    if problems:
        print(f"{len(problems)} problem(s) in the derived cases (above)", file=sys.stderr)
        return 1
    if args.freeze:
        freeze(asm)
        print(f"frozen: {TEST_IDS.relative_to(REPO)}, {FROZEN.relative_to(REPO)}")
    if args.check:
        frozen = json.loads(FROZEN.read_text(encoding="utf-8"))
        if frozen["test_sha256"] != summary["test_sha256"]:
            print(f"test split differs from FROZEN.json ({frozen['test_sha256']})", file=sys.stderr)
            return 1
        print("test split matches FROZEN.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
