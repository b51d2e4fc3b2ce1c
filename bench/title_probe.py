"""Would a plain-text file's *name* as its title help the reader?  ``python -m bench.title_probe``

The plain-text corpora's passages carry no title context (a ``.txt`` file has no heading, and its file name is
not used as its title), so the reader has no "which question does this passage answer" evidence there. This
probe measures what the file name would add, without changing the product: the cosine of the question to the
passage's title/section context, or, where that is empty, to its file name turned into words
(``F10009_apa-a-domicile--demande_--dossier-papier.txt`` -> "apa a domicile demande dossier papier"; leading
ids dropped), added to the shipped features; the scorer is fitted on TRAIN as :mod:`bench.fit_reader` does and
compared on DEV per corpus (*selection*: the most probable sentence holds every fact, answerable cases).

Caveat printed with the figures: the CNIL files are named after the FAQ question itself
(``cnil_010_0_usurpation-d-identite-sur-internet-la-cn.txt``), so on CNIL the file name leaks the question and its
figure is not evidence; service-public's names are the page titles (what a user's files look like). Nothing is
written but bench/work/quality/title_probe.json; TEST is not touched.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import PurePosixPath

import numpy as np

from .common import WORK, log
from .fit_reader import cv_choose_c, dataset, fit
from .maxsim_probe import selection_rate, title_columns
from .quality import DEFAULT_MAX_DOCS, DEFAULT_VARIANTS


def name_title(source: str) -> str:
    """A file name as words: extension, leading ids (letters+digits, digits) and separators removed."""
    stem = PurePosixPath(source).stem
    parts = [p for p in re.split(r"[_\-\s.]+", stem) if p]
    while parts and (re.fullmatch(r"[A-Za-z]{0,4}\d+[A-Za-z]?", parts[0]) or parts[0].lower() in ("cnil",)):
        parts.pop(0)
    return " ".join(parts)


def with_names(cs: dict) -> list[str]:
    """Each candidate's title: its context, or else its file name as words."""
    return [c or name_title(src) for c, src in zip(cs["contexts"], cs["sources"])]


def per_corpus_selection(scores, yd, dev) -> dict:
    out = {}
    for corpus in sorted({cs["case"]["corpus"] for cs in dev}):
        sub = [cs for cs in dev if cs["case"]["corpus"] == corpus]
        out[corpus] = round(selection_rate(scores, yd, sub), 4)
    out["all"] = round(selection_rate(scores, yd, dev), 4)
    out["all but cnil"] = round(selection_rate(scores, yd, [cs for cs in dev if cs["case"]["corpus"] != "cnil-heldout"]), 4)
    return out


def main(argv=None) -> int:
    from assistant.answer import VectorCache
    from assistant.config import Settings
    from assistant.embeddings import make_embedder
    from assistant.reader import FEATURES, weights_for

    embedder = make_embedder(Settings.from_env())
    cache = VectorCache(embedder)
    cols = [FEATURES.index(f) for f in weights_for(embedder).features]
    X, y, g, train = dataset("train", DEFAULT_VARIANTS, DEFAULT_MAX_DOCS, embedder, cache)
    Xd, yd, _, dev = dataset("dev", DEFAULT_VARIANTS, DEFAULT_MAX_DOCS, embedder, cache)
    X, Xd = X[:, cols], Xd[:, cols]
    results = {}
    for name, title, titles in (("shipped", False, None), ("+ title (context only)", True, None),
                                ("+ title (context, else file name)", True, with_names)):
        A, Ad = X, Xd
        if title:
            A = np.hstack([X, title_columns(embedder, cache, train, titles)])
            Ad = np.hstack([Xd, title_columns(embedder, cache, dev, titles)])
        C, _ = cv_choose_c(A, y, g)
        mean, scale, coef, b = fit(A, y, g, C)
        results[name] = per_corpus_selection(((Ad - mean) / scale) @ coef + b, yd, dev)
        log(f"{name}: {results[name]}")
    T = title_columns(embedder, cache, dev, with_names)
    results["file-name title alone (argmax)"] = per_corpus_selection(T[:, 0], yd, dev)
    out = WORK / "quality" / "title_probe.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print("DEV selection per corpus (CNIL's file names are its FAQ questions: leaky, not evidence)")
    for k, v in results.items():
        print(f"  {k:36s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
