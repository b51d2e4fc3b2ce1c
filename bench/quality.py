"""Answer quality on the train/dev/test splits: ``python -m bench.quality [--split dev|test|train] [--variants ...]``.

Per corpus variant it indexes the variant's documents once (cached under ``bench/work/quality/``), retrieves
every case once with the product's retriever (k = 5, exactly as ``assistant ask``), and hands the *same*
retrieval to every answerer compared:

* ``current`` - the rule-based :class:`assistant.answer.ExtractiveAnswerer`;
* ``baseline`` - the textbook pipeline's best-cosine sentence among the top-5 chunks (same embedder, no rules,
  never abstains);
* ``reader`` - the fitted reader (:mod:`assistant.reader`), when its weights exist for the embedder.

Scoring is that of ``../shared/eval/README.md`` (:func:`assistant.evaluation.case_metrics`: facts matched on
normalised text, citations relevant when the cited chunk holds an evidence string). Per kind and per corpus:
answer accuracy, wrongly abstained, abstention on unanswerables, citation precision, median answer length,
hit@5 and the *ceiling* - the share of answerable cases where one sentence of the top-5 passages holds every fact.

The TEST split is reported as aggregates only (``bench/questions/SPLITS.md``): nothing about its individual
cases is printed or written; its cached retrievals are only ever read back by this module to recompute the
same aggregates.

The corpora can be subsampled (``--max-docs``): every document that answers a case of the variant is kept and
the other documents are drawn by hash; the report states the number of documents indexed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from .common import REPO, WORK, log

QWORK = WORK / "quality"
SPLITS_OUT = WORK / "splits"
DEFAULT_VARIANTS = ("cnil-heldout", "service-public-heldout", "debian-reference-fr", "debian-mixed-fr",
                    "debian-reference-en")
KINDS = ("fr-fr", "en-en", "en-fr", "followup", "topic-switch", "unanswerable")
DEFAULT_MAX_DOCS = {"service-public-heldout": 700}  # 3,671 pages would take ~20 min to embed on 2 shared cores
METRIC_KEYS = ("answer_accuracy", "false_abstention_rate", "abstention_accuracy", "citation_precision",
               "median_answer_chars")


# --------------------------------------------------------------------------- corpus and index
def read_cases(split: str, variant: str) -> list[dict]:
    path = SPLITS_OUT / f"{split}.{variant}.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _unit(salt: str, key: str) -> float:
    return int(hashlib.sha256(f"{salt}|{key}".encode()).hexdigest()[:12], 16) / 16 ** 12


def variant_files(variant: str, max_docs: int | None) -> list[Path]:
    """The variant's documents; with ``max_docs``, every answering document plus others drawn by hash."""
    listing = SPLITS_OUT / "docs" / f"{variant}.files.txt"
    if not listing.is_file():
        return []
    files = [Path(p) for p in listing.read_text(encoding="utf-8").split("\n") if p.strip()]
    if not max_docs or len(files) <= max_docs:
        return files
    needed = set()
    for split in ("train", "dev", "test"):
        for c in read_cases(split, variant):
            for key in ("source", "history_source"):
                if c.get(key):
                    needed.add(Path(c[key]).name)
    keep = [f for f in files if f.name in needed]
    rest = sorted((f for f in files if f.name not in needed), key=lambda f: _unit("docqa-quality-v1", f.name))
    return sorted(keep + rest[:max(0, max_docs - len(keep))])


def variant_assistant(variant: str, files: list[Path], embedder=None, cache=None):
    """An :class:`Assistant` over the variant's own index (built or updated incrementally)."""
    from assistant.config import Settings
    from assistant.pipeline import Assistant

    folder = QWORK / f"{variant}-{len(files)}"
    docs = folder / "docs"
    # paths relative to the files' common folder: a variant made of several books holds several index.html
    if len({f.name for f in files}) == len(files):
        links = {docs / f.name: f for f in files}
    else:
        root = Path(os.path.commonpath([str(f.parent) for f in files]))
        links = {docs / f.relative_to(root): f for f in files}
    if not docs.is_dir() or sum(1 for p in docs.rglob("*") if p.is_symlink()) != len(links):
        docs.mkdir(parents=True, exist_ok=True)
        for old in sorted(docs.rglob("*"), reverse=True):
            old.unlink() if old.is_symlink() or old.is_file() else old.rmdir()
        for link, f in links.items():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(f.resolve())
    settings = Settings.from_env().replace(docs_dir=str(docs), index_dir=str(folder / "index"))
    a = Assistant(settings, embedder=embedder, cache=cache)
    t0 = time.perf_counter()
    report = a.index([str(docs)], show_progress=False)
    chunks = getattr(report, "chunks_total", None)
    log(f"{variant}: index ready ({len(files)} files, {time.perf_counter() - t0:.0f} s)")
    return a, chunks


# --------------------------------------------------------------------------- retrieval cache
def retrievals(a, variant: str, n_files: int, split: str, cases: list[dict]) -> list:
    """One :class:`Retrieval` per case (k = the product's k), cached on disk by question and history."""
    path = QWORK / f"{variant}-{n_files}" / f"retrievals.{split}.pkl"
    cached = {}
    if path.is_file():
        try:
            cached = pickle.loads(path.read_bytes())
        except Exception:  # noqa: BLE001 - a stale cache is rebuilt
            cached = {}
    gen = a.store.generation() if hasattr(a.store, "generation") else None
    if cached.get("__generation__") != gen:
        cached = {"__generation__": gen}
    out = []
    fresh = 0
    for c in cases:
        # a case with a history also depends on the follow-up decision (its code version and fitted weights)
        hist = [c.get("history") or [], followup_tag(a)] if c.get("history") else [[]]
        key = hashlib.sha256(json.dumps([c["question"], *hist], ensure_ascii=False).encode()).hexdigest()
        r = cached.get(key)
        if r is None:
            r = a.retrieve(c["question"], c.get("history") or None)
            cached[key] = r
            fresh += 1
        out.append(r)
    if fresh:
        path.write_bytes(pickle.dumps(cached))
    return out


def followup_tag(a) -> str:
    """What a follow-up's retrieval depends on besides the index: the decision's version and its weights file."""
    from assistant.followup import weights_path
    from assistant.retrieval import FOLLOWUP_VERSION

    p = weights_path(getattr(a.embedder, "model_id", "") or "")
    return FOLLOWUP_VERSION + ":" + (hashlib.sha256(p.read_bytes()).hexdigest()[:12] if p.is_file() else "cues")


def top(retrieval, k: int):
    """The same retrieval cut to its first k passages."""
    from dataclasses import replace

    return replace(retrieval, chunks=list(retrieval.chunks[:k]))


# --------------------------------------------------------------------------- answerers
class BestCosine:
    """The textbook baseline: the sentence of the top-k chunks closest to the question (no rules, no abstention)."""

    def __init__(self, cache):
        self.cache = cache

    def run(self, retrieval):
        from assistant.answer import with_marker
        from assistant.citations import Quote, make_citation
        from assistant.schema import Answer
        from assistant.text import sentence_spans

        sents = []
        for ch in retrieval.chunks:
            for s, e in sentence_spans(ch.text):
                if e - s >= 12:
                    sents.append((ch, s, e))
        ans = Answer(question=retrieval.question, answer="", abstained=True, retrieved=retrieval.chunks)
        if not sents:
            return ans
        qv = self.cache.query_vector(retrieval.standalone)
        svs = self.cache.sentence_vectors([ch.text[s:e] for ch, s, e in sents])
        best = max(range(len(sents)), key=lambda i: float(svs[i] @ qv))
        ch, s, e = sents[best]
        q = Quote(ch, s, e)
        ans.answer = with_marker(ch.text[s:e], 1)
        ans.citations = [make_citation(1, q)]
        ans.abstained = False
        return ans


READER_VARIANTS: list[str] = []  # "key=value" options of extra Reader answerers (--reader-variant)


def answerers(a) -> dict:
    rules = a.rules  # the rule-based answerer whatever the `reader` setting (a.extractive may be the reader)
    out = {"current": rules, "baseline": BestCosine(a.cache)}
    try:
        from assistant.reader import Reader, weights_for

        if weights_for(a.embedder) is not None:
            out["reader"] = Reader(a.embedder, cache=a.cache, lexicon=a.lexicon, vocabulary=a.lexical.vocabulary,
                                   rules=rules, type_veto=a.settings.reader_type_veto)
            for spec in READER_VARIANTS:
                k, v = spec.split("=", 1)
                if k == "weights":  # another fit (bench.fit_reader --out FILE), scored beside the shipped one
                    from assistant.reader import Weights

                    v = Weights.from_json(json.loads(Path(v).read_text(encoding="utf-8")))
                elif k == "threshold":
                    v = float(v)
                out[f"reader:{spec}"] = Reader(a.embedder, cache=a.cache, lexicon=a.lexicon,
                                               vocabulary=a.lexical.vocabulary, rules=rules, **{k: v})
    except ImportError:
        pass
    return out


# --------------------------------------------------------------------------- scoring
def ceiling(case: dict, retrieval) -> bool:
    """Does one sentence of the retrieved passages hold every fact?"""
    from assistant.evaluation import facts_found
    from assistant.text import sentence_spans

    for ch in retrieval.chunks:
        for s, e in sentence_spans(ch.text):
            if all(facts_found(ch.text[s:e], case["facts"])):
                return True
    return False


def score_case(case: dict, retrieval, answer) -> dict:
    from assistant.evaluation import Case, case_metrics, relevance

    c = Case(id=case["id"], question=case["question"], answerable=case["answerable"], facts=case.get("facts") or [],
             evidence=case.get("evidence") or [], history=case.get("history") or [])
    texts = {ch.chunk_id: ch.text for ch in retrieval.chunks}
    cited = {}
    for cit in answer.citations:
        cited.setdefault(cit.chunk_id, cit.passage or texts.get(cit.chunk_id) or cit.quote)
    m = case_metrics(c, answer=answer.answer, abstained=bool(answer.abstained),
                     ranked_relevant=relevance([ch.text for ch in retrieval.chunks], c.evidence),
                     cited_relevant=relevance(list(cited.values()), c.evidence))
    m["chars"] = None if answer.abstained else len(answer.answer)
    m["confidence"] = getattr(answer, "confidence", None)
    if case["answerable"]:
        m["ceiling"] = ceiling(case, retrieval)
    return m


def aggregate(ms: list[dict]) -> dict:
    ans = [m for m in ms if m["answerable"]]
    una = [m for m in ms if not m["answerable"]]

    def mean(xs):
        xs = list(xs)
        return round(sum(xs) / len(xs), 4) if xs else None

    cited = sum(m["citations_total"] for m in ans)
    chars = [m["chars"] for m in ms if m.get("chars") is not None]
    return {
        "n": len(ms), "n_answerable": len(ans), "n_unanswerable": len(una),
        "answer_accuracy": mean(float(m["correct"]) for m in ans),
        "false_abstention_rate": mean(float(m["abstained"]) for m in ans),
        "abstention_accuracy": mean(float(m["abstained"]) for m in una),
        "citation_precision": round(sum(m["citations_relevant"] for m in ans) / cited, 4) if cited else None,
        "median_answer_chars": statistics.median(chars) if chars else None,
        "hit@5": mean(float(m["hit@5"]) for m in ans),
        "ceiling": mean(float(m["ceiling"]) for m in ans),
        **calibration(ms),
    }


def calibration(ms: list[dict], bins: int = 10) -> dict:
    """Brier score and ECE of the confidence of the *answered* cases against their being right (an answer to an
    unanswerable question is wrong); cases without a confidence (other answerers) are left out."""
    pairs = [(float(m["confidence"]), float(bool(m.get("correct")) and m["answerable"])) for m in ms
             if m.get("confidence") is not None and not m["abstained"]]
    if not pairs:
        return {}
    ece = 0.0
    for b in range(bins):
        sel = [(c, y) for c, y in pairs if b / bins <= c < (b + 1) / bins or (b == bins - 1 and c == 1.0)]
        if sel:
            ece += len(sel) / len(pairs) * abs(sum(c for c, _ in sel) / len(sel) - sum(y for _, y in sel) / len(sel))
    return {"brier": round(sum((c - y) ** 2 for c, y in pairs) / len(pairs), 4), "ece": round(ece, 4)}


def groups(cases: list[dict]) -> dict[str, list[int]]:
    g: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(cases):
        g["all"].append(i)
        g["kind:" + c["kind"]].append(i)
        g["corpus:" + c["corpus"]].append(i)
    return dict(g)


def evaluate_split(split: str, variants, max_docs: dict, names: list[str] | None = None, embedder=None,
                   keep_cases: bool | None = None) -> dict:
    """{"cases": [...] (not for test), "per": {answerer: {group: aggregate}}, "corpora": {...}}"""
    from assistant.answer import VectorCache
    from assistant.config import Settings
    from assistant.embeddings import make_embedder

    keep_cases = split != "test" if keep_cases is None else keep_cases and split != "test"
    embedder = embedder or make_embedder(Settings.from_env())
    cache = VectorCache(embedder)
    all_cases, metrics, corpora = [], defaultdict(list), {}
    for variant in variants:
        cases = read_cases(split, variant)
        files = variant_files(variant, max_docs.get(variant))
        if not cases or not files:
            log(f"{variant}: {'no cases' if not cases else 'no documents (not fetched)'} - skipped")
            continue
        a, _ = variant_assistant(variant, files, embedder=embedder, cache=cache)
        corpora[variant] = {"documents": len(files), "chunks": a.store.count(), "cases": len(cases)}
        t0 = time.perf_counter()
        rs = retrievals(a, variant, len(files), split, cases)
        log(f"{variant}/{split}: {len(cases)} retrievals ({time.perf_counter() - t0:.0f} s)")
        ans = answerers(a)
        for name, answerer in ans.items():
            if names and name not in names:
                continue
            t0 = time.perf_counter()
            for c, r in zip(cases, rs):
                r5 = top(r, a.settings.k)
                out = answerer.run(r5)
                m = score_case(c, r5, out)
                metrics[name].append(m)
                if keep_cases and name in ("current", "baseline", "reader"):
                    c.setdefault("results", {})[name] = {
                        "answer": out.answer, "abstained": out.abstained, "correct": m.get("correct"),
                        "confidence": m.get("confidence"), "debug": getattr(out, "debug", "")}
            log(f"{variant}/{split}: {name} answered ({time.perf_counter() - t0:.0f} s)")
        all_cases.extend(cases)
    per = {}
    g = groups(all_cases)
    for name, ms in metrics.items():
        per[name] = {key: aggregate([ms[i] for i in idx]) for key, idx in sorted(g.items())}
    out = {"split": split, "corpora": corpora, "per": per}
    if keep_cases:
        out["cases"] = all_cases
    return out


# --------------------------------------------------------------------------- report
def _f(v, key=""):
    if v is None:
        return "–"
    if key == "median_answer_chars":
        return f"{v:.0f}"
    return f"{v:.2f}"


LABELS = {"answer_accuracy": "accuracy", "false_abstention_rate": "wrongly abstained",
          "abstention_accuracy": "abstained on unanswerable", "citation_precision": "citation precision",
          "median_answer_chars": "median answer chars"}


def markdown(result: dict) -> str:
    split, per = result["split"], result["per"]
    names = [n for n in ("reader", "current", "baseline") if n in per]
    lines = [f"### {split} split", ""]
    corp = ", ".join(f"{v}: {d['documents']} documents, {d['chunks']} chunks, {d['cases']} cases"
                     for v, d in result["corpora"].items())
    lines += [f"Corpora: {corp}.", ""]
    head = "| group | n | hit@5 | ceiling | " + " | ".join(
        f"{LABELS[k]} ({'/'.join(n[0] for n in names)})" for k in METRIC_KEYS) + " |"
    lines += [head, "|" + "---|" * (4 + len(METRIC_KEYS))]
    any_name = names[0]
    for key in per[any_name]:
        base = per[any_name][key]
        cells = [key, str(base["n"]), _f(base["hit@5"]), _f(base["ceiling"])]
        for k in METRIC_KEYS:
            cells.append(" / ".join(_f(per[n][key].get(k), k) for n in names))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Cells: " + " / ".join(f"{n}" for n in names) + " (r = reader, c = current rules, "
              "b = best-cosine baseline)."]
    if "reader" in per and per["reader"]["all"].get("brier") is not None:
        r = per["reader"]["all"]
        lines += ["", f"Reader calibration (confidence of the answered cases against their being right): Brier {r['brier']:.3f}, "
                  f"ECE {r['ece']:.3f}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", action="append", choices=("train", "dev", "test"),
                    help="split(s) to evaluate (default: dev); repeatable")
    ap.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS))
    ap.add_argument("--max-docs", action="append", default=[], metavar="VARIANT=N",
                    help="subsample a variant (default: service-public-heldout=700); VARIANT=0 for all")
    ap.add_argument("--answerers", nargs="+", default=None, help="subset of current, baseline, reader")
    ap.add_argument("--out", default=str(REPO / "bench" / "QUALITY"), help="report path without extension")
    ap.add_argument("--reader-variant", action="append", default=[], metavar="KEY=VALUE",
                    help="also score a Reader with this option (type_veto=abstain, threshold=0.3, weights=FILE); repeatable")
    args = ap.parse_args(argv)
    READER_VARIANTS[:] = args.reader_variant
    if not (SPLITS_OUT / "summary.json").is_file():
        log("no splits yet: run python -m bench.splits first")
        return 1
    max_docs = dict(DEFAULT_MAX_DOCS)
    for spec in args.max_docs:
        k, v = spec.split("=", 1)
        max_docs[k] = int(v) or None
    results = {}
    for split in args.split or ["dev"]:
        results[split] = evaluate_split(split, args.variants, max_docs, args.answerers)
    out = Path(args.out)
    old = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").is_file() else {}
    for split, r in results.items():
        old[split] = {k: v for k, v in r.items() if k != "cases"}
        if "cases" in r:
            (QWORK / f"cases.{split}.json").write_text(json.dumps(r["cases"], ensure_ascii=False, indent=1))
    out.with_suffix(".json").write_text(json.dumps(old, indent=1, ensure_ascii=False) + "\n")
    md = ["# Answer quality per split", "", "Written by `python -m bench.quality` (see its docstring and "
          "`docs/reader.md`). Test figures are aggregates only.", ""]
    for split in ("dev", "test", "train"):
        if split in old:
            md += [markdown(old[split]), ""]
    out.with_suffix(".md").write_text("\n".join(md), encoding="utf-8")
    for split, r in results.items():
        print(markdown(r))
        if READER_VARIANTS:
            print(variants_table(r))
    return 0


def variants_table(result: dict) -> str:
    """Every answerer (reader variants included) on the split's aggregate and per kind."""
    per = result["per"]
    keys = [k for k in next(iter(per.values())) if k == "all" or k.startswith("kind:")]
    lines = [f"### {result['split']}: all answerers", "", "| answerer | " + " | ".join(
        f"{k} acc / wrong-abst / abst" for k in keys) + " |", "|---|" + "---|" * len(keys)]
    for name, groups_ in per.items():
        cells = [" / ".join(_f(groups_[k].get(m)) for m in ("answer_accuracy", "false_abstention_rate",
                                                            "abstention_accuracy")) for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
