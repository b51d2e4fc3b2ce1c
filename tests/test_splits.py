"""The train / dev / test question sets of ``bench.splits`` (see bench/questions/SPLITS.md).

These tests read ``../shared/data`` (about 1 s per assembly); they are skipped
when it is absent.  They never print or compare individual test cases: the
test split is checked as a whole (its hash and its counts).
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from bench import splits as S

SHARED = S.REPO.parent / "shared"
needs_shared = pytest.mark.skipif(not (SHARED / "data").is_dir(),
                                  reason="../shared/data is absent: the splits are assembled from it")


@pytest.fixture(scope="module")
def asm() -> S.Assembly:
    return S.assemble(SHARED, with_docs=False)


@needs_shared
def test_assembly_is_deterministic(asm):
    S.load_shared.cache_clear()         # read the shared files again
    again = S.assemble(SHARED, with_docs=False)
    assert S.canonical(again.cases) == S.canonical(asm.cases)
    assert again.heldout == asm.heldout


@needs_shared
def test_no_id_or_question_in_two_splits(asm):
    ids = [c["id"] for c in asm.cases]
    assert len(ids) == len(set(ids))
    splits_of_text: dict[str, set[str]] = defaultdict(set)
    for c in asm.cases:
        splits_of_text[S.norm(c["question"])].add(c["split"])
    leaked = {t: s for t, s in splits_of_text.items() if len(s) > 1}
    assert not leaked, f"{len(leaked)} question texts are in more than one split"


@needs_shared
def test_translation_in_the_split_of_its_original(asm):
    by_id = {c["id"]: c for c in asm.cases}
    translations = [c for c in asm.cases if c.get("of")]
    assert len(translations) >= 100
    for t in translations:
        orig = by_id[t["of"]]
        assert t["split"] == orig["split"], t["id"]
        assert (t["facts"], t["evidence"], t["answerable"], t["corpus"]) == \
               (orig["facts"], orig["evidence"], orig["answerable"], orig["corpus"]), t["id"]
        assert t["lang_q"] == "en" and orig["lang_q"] == "fr"
    # chosen by the hash rule, not by hand: exactly the candidates are translated
    assert {t["of"] for t in translations} == {c["id"] for c in S.translation_candidates(asm)}
    origins = Counter(by_id[t["of"]]["corpus"] for t in translations)
    assert {"service-public-heldout", "cnil-heldout"} <= set(origins)
    assert origins["debian-reference-fr"] + origins["debian-mixed-fr"] > 0


@needs_shared
def test_test_split_is_frozen(asm):
    test = asm.by_split("test")
    frozen = json.loads(S.FROZEN.read_text(encoding="utf-8"))
    assert S.content_hash(test) == frozen["test_sha256"], \
        "the test split changed: it is frozen (see bench/questions/SPLITS.md before re-freezing)"
    assert S.TEST_IDS.read_text(encoding="utf-8").split() == sorted(c["id"] for c in test)


@needs_shared
def test_requirements_on_the_test_split(asm):
    test = asm.by_split("test")
    failed = [rule for rule, ok in S.requirements(test).items() if not ok]
    assert not failed
    kinds = Counter(c["kind"] for c in test)
    assert kinds["topic-switch"] >= 10
    assert len({c["corpus"] for c in test}) >= 3


@needs_shared
def test_every_split_is_populated(asm):
    counts = S.counts(asm.cases)
    for split in S.SPLITS:
        assert sum(sum(k.values()) for k in counts[split].values()) >= 100, split
    followups = [c for c in asm.cases if c["kind"] in ("followup", "topic-switch") and c["origin"] == "derived"]
    assert len([c for c in followups if c["kind"] == "followup"]) >= 40
    assert len([c for c in followups if c["kind"] == "topic-switch"]) >= 20


@needs_shared
def test_unanswerables_are_honest(asm):
    for variant, left_out in asm.heldout.items():
        assert left_out, variant
        left = {p.removeprefix("docs/") for p in left_out}
        for c in asm.cases:
            if c["corpus"] != variant or c["origin"] == "derived":
                continue
            if c.get("source") in left:
                assert c["answerable"] is False and c["facts"] == [] and c["evidence"] == [], c["id"]
            elif c["origin"] == "shared-data":
                assert c["answerable"] is True, c["id"]
    # the hand-written cases hold against the documents (facts and evidence verbatim, absent terms absent)
    assert S.derived_problems(asm, SHARED) == []


@needs_shared
def test_case_files_are_valid_eval_input(asm, tmp_path):
    from assistant.evaluation import load_cases

    S.write(asm, tmp_path, with_docs=False)
    files = sorted(tmp_path.glob("*.jsonl"))
    assert {f.name.split(".")[0] for f in files} == set(S.SPLITS)
    n = 0
    for f in files:
        n += len(load_cases(f))
        for line in f.read_text(encoding="utf-8").splitlines():
            case = json.loads(line)
            assert case["kind"] in S.KINDS and case["split"] == f.name.split(".")[0]
            assert {"corpus", "lang_q", "lang_doc"} <= set(case)
    assert n == len(asm.cases)


@needs_shared
def test_smoke_cases_are_in_no_split(asm):
    ids = {c["id"] for c in asm.cases}
    texts = {S.norm(c["question"]) for c in asm.cases}
    for path in (SHARED / "eval" / "dev.jsonl", S.REPO / "eval" / "dev.jsonl"):
        if path.is_file():
            for case in S.read_jsonl(path):
                assert case["id"] not in ids and S.norm(case["question"]) not in texts


@needs_shared
def test_heldout_folder_leaves_the_documents_out(asm, tmp_path):
    cnil = S.load_shared(str(SHARED / "data"), "cnil")
    out = set(asm.heldout["cnil-heldout"])
    small = S.Assembly(asm.cases, asm.heldout, asm.eligible,
                       {"cnil-heldout": [cnil.root / p for p in cnil.docs if p not in out]})
    S.materialise(small, tmp_path)
    folder = tmp_path / "docs" / "cnil-heldout"
    names = {p.name for p in folder.iterdir()}
    assert names and all(p.is_symlink() for p in folder.iterdir())
    assert not names & {Path(p).name for p in asm.heldout["cnil-heldout"]}
    listed = (tmp_path / "docs" / "cnil-heldout.files.txt").read_text(encoding="utf-8").split("\n")
    assert len([x for x in listed if x]) == len(names)


def test_split_rule_is_a_stable_threshold():
    # the same group always lands in the same split, and the shares are near the targets
    got = Counter(S.split_of("x", f"g{i}") for i in range(4000))
    assert [S.split_of("x", "g1") for _ in range(3)] == [S.split_of("x", "g1")] * 3
    assert abs(got["test"] / 4000 - S.TEST_SHARE) < 0.03
    assert abs(got["dev"] / 4000 - S.DEV_SHARE) < 0.03
