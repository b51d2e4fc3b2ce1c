"""`assistant eval`: case validation, metric definitions (eval/README.md), reports, gates, comparisons, LLM judge."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from assistant import evaluation as ev
from assistant.cli import EXIT_GATE, EXIT_INPUT, EXIT_OK, main

ROOT = Path(__file__).resolve().parent.parent
EVAL_DEV = ROOT / "eval" / "dev.jsonl"
SEEDS = ROOT / "seeds"

REPORT_KEYS = {"hit@1", "hit@3", "hit@5", "mrr@10", "ndcg@10", "answer_accuracy", "fact_recall", "abstention_accuracy",
               "false_abstention_rate", "citation_precision", "latency_p50_ms", "latency_p95_ms",
               "n_cases", "n_answerable", "n_unanswerable"}
CASE_KEYS = {"id", "question", "answer", "abstained", "citations", "retrieved", "metrics", "timings_ms"}


def case(**kw) -> ev.Case:
    base = {"id": "c", "question": "q?", "answerable": True, "facts": [["x"]], "evidence": ["x"]}
    base.update(kw)
    return ev.Case(**base)


def write_jsonl(path, rows) -> str:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n",
                    encoding="utf-8")
    return str(path)


def dev_subset(tmp_path, ids) -> str:
    rows = [line for line in EVAL_DEV.read_text(encoding="utf-8").splitlines() if json.loads(line)["id"] in ids]
    assert len(rows) == len(ids)
    return write_jsonl(tmp_path / "cases.jsonl", rows)


# --------------------------------------------------------------------------- normalisation and metric functions
@pytest.mark.parametrize("answer, fact", [
    ("Le développement des startups", "developpement"),  # accents dropped on both sides
    ("Le developpement des startups", "Développement"),
    ("la journée de l’IA", "l'ia"),  # typographic apostrophe
    ("l‘IA, l‛IA et l`IA", "l'ia et l'ia"),
    ("environ 1,3\u00a0milliard de dirhams", "1,3 milliard de dirhams"),  # no-break space
    ("1,3 \u202f  milliard", "1,3 milliard"),  # narrow no-break space and a run of spaces
    ("la journée « AI Made in Morocco »", 'journee " ai made in morocco "'),  # « » quotes
    ("the “AI Made in Morocco” day", '"ai made in morocco"'),
    ("MOHAMMED SETRI", "Mohammed Setri"),
    ("ﬁntech", "fintech"),  # NFKD compatibility ligature
])
def test_facts_match_after_normalisation(answer, fact):
    assert ev.facts_found(answer, [[fact]]) == [True]


def test_facts_need_one_alternative_each():
    facts = [["1,3 milliard", "1.3 billion"], ["dirham"]]
    assert ev.facts_found("About 1.3 billion dirhams [1].", facts) == [True, True]
    assert ev.facts_found("About 1.3 billion euros.", facts) == [True, False]
    assert ev.facts_found("", facts) == [False, False]


def test_relevance_rank_and_ndcg():
    texts = ["rien ici", "Mohammed Bin Ali Al\u00a0Mannaï a reçu", "autre", "AL MANNAI encore"]
    rel = ev.relevance(texts, ["Al Mannai"])
    assert rel == [False, True, False, True]
    assert ev.first_relevant_rank(rel) == 2
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    assert ev.ndcg_at(rel) == pytest.approx(dcg / (1 + 1 / math.log2(3)))
    assert ev.ndcg_at([True, True, False]) == 1.0
    assert ev.ndcg_at([False] * 10) == 0.0
    assert ev.ndcg_at([False] * 10 + [True]) == 0.0  # rank 11 is beyond @10
    assert ev.first_relevant_rank([False] * 10 + [True]) is None
    assert ev.relevance(["anything"], []) == [False]


def test_percentile_interpolates():
    assert ev.percentile([10, 20, 30, 40], 50) == 25
    assert ev.percentile([10, 20, 30, 40], 95) == pytest.approx(38.5)
    assert ev.percentile([7], 95) == 7
    assert ev.percentile([], 50) is None


def test_case_metrics_and_summary_on_known_cases():
    c1 = case(id="a", facts=[["1,3 milliard", "1.3 billion"], ["dirham"]], evidence=["1,3 milliard"])
    m1 = ev.case_metrics(c1, answer="Environ 1,3\u00a0milliard de dirhams [1].", abstained=False,
                         ranked_relevant=[False, False, True], cited_relevant=[True])
    assert m1["correct"] and m1["passed"] and m1["fact_recall"] == 1.0
    assert (m1["hit@1"], m1["hit@3"], m1["hit@5"], m1["rr"]) == (False, True, True, pytest.approx(1 / 3))
    c2 = case(id="b", facts=[["Rabat"], ["12 janvier"]])
    m2 = ev.case_metrics(c2, answer="Rabat, in January.", abstained=False, ranked_relevant=[True], cited_relevant=[True, False])
    assert not m2["correct"] and m2["fact_recall"] == 0.5 and m2["missing_facts"] == [["12 janvier"]]
    c3 = case(id="c", facts=[["Rabat"]])
    # an abstention is never correct, even if its text happens to contain the fact
    m3 = ev.case_metrics(c3, answer="Rabat? The documents do not say.", abstained=True, ranked_relevant=[], cited_relevant=[])
    assert not m3["correct"] and m3["false_abstention"] and m3["first_relevant_rank"] is None
    c4 = case(id="d", answerable=False, facts=[], evidence=[])
    m4 = ev.case_metrics(c4, answer="not in the documents", abstained=True, ranked_relevant=[False], cited_relevant=[])
    c5 = case(id="e", answerable=False, facts=[], evidence=[])
    m5 = ev.case_metrics(c5, answer="Paris [1].", abstained=False, ranked_relevant=[False], cited_relevant=[False])
    assert m4["passed"] and not m5["passed"]
    records = [{"metrics": m, "latency_ms": lat} for m, lat in zip([m1, m2, m3, m4, m5], [10, 20, 30, 40, 50])]
    s = ev.summarize(records)
    assert (s["n_cases"], s["n_answerable"], s["n_unanswerable"]) == (5, 3, 2)
    assert s["hit@1"] == pytest.approx(1 / 3) and s["hit@3"] == pytest.approx(2 / 3) and s["hit@5"] == pytest.approx(2 / 3)
    assert s["mrr@10"] == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert s["ndcg@10"] == pytest.approx((0.5 + 1 + 0) / 3)  # one relevant chunk at rank 3: 1/log2(4) = 0.5
    assert s["answer_accuracy"] == pytest.approx(1 / 3)
    assert s["fact_recall"] == pytest.approx((1 + 0.5 + 1) / 3)  # facts are looked for in the text, abstained or not
    assert s["false_abstention_rate"] == pytest.approx(1 / 3)
    assert s["abstention_accuracy"] == 0.5
    assert s["citation_precision"] == pytest.approx(2 / 3)  # cited chunks of answerable cases only: 2 relevant of 3
    assert (s["latency_p50_ms"], s["latency_p95_ms"]) == (30, 48)
    assert ev.hit_curve(records)[:3] == [pytest.approx(1 / 3), pytest.approx(1 / 3), pytest.approx(2 / 3)]


def test_undefined_metrics_are_null_and_fail_gates():
    m = ev.case_metrics(case(), answer="x", abstained=False, ranked_relevant=[True], cited_relevant=[])
    s = ev.summarize([{"metrics": m, "latency_ms": 5}])
    assert s["abstention_accuracy"] is None and s["citation_precision"] is None
    gates = ev.parse_gates(["abstention_accuracy=0.5", "hit@1=1"], ["latency_p95_ms=4"])
    why = [g.check(s) for g in gates]
    assert "could not be computed" in why[0] and why[1] is None and "above 4" in why[2]


# --------------------------------------------------------------------------- case files
def test_load_cases_reads_the_dev_set():
    cases = ev.load_cases(EVAL_DEV)
    assert len(cases) == 14 and sum(c.answerable for c in cases) == 11
    follow = next(c for c in cases if c.history)
    assert follow.history[0]["role"] == "user" and follow.line > 1


@pytest.mark.parametrize("line, expect", [
    ('{"id": "x", "question": "q", "answerable": true, "facts": [["a"]] "evidence": ["a"]}', "bad JSON"),
    ('{"id": "x", "question": "q", "facts": [["a"]], "evidence": ["a"]}', "missing field 'answerable'"),
    ('{"id": "x", "question": "q", "answerable": "yes", "facts": [["a"]], "evidence": ["a"]}', "'answerable' must be true or false"),
    ('{"id": "x", "question": "q", "answerable": true, "facts": ["a"], "evidence": ["a"]}', "'facts' must be a list of non-empty lists"),
    ('{"id": "x", "question": "q", "answerable": true, "facts": [["a"]]}', "missing field 'evidence'"),
    ('{"id": 3, "question": "q", "answerable": false}', "'id' must be a non-empty string"),
    ('{"id": "x", "question": "q", "answerable": false, "history": [{"role": "bot", "content": "hi"}]}', "'history' turn 1"),
    ('{"id": "x", "question": "q", "answerable": true, "facts": [[""]], "evidence": ["a"]}', "empty string"),
    ('["not", "an", "object"]', "expected a JSON object"),
    ('{"id": "startup-budget-en", "question": "q", "answerable": false}', "duplicate id 'startup-budget-en' (first used on line 1)"),
])
def test_malformed_case_names_the_line_and_exits_2(tmp_path, capsys, line, expect):
    good = EVAL_DEV.read_text(encoding="utf-8").splitlines()[0]
    path = write_jsonl(tmp_path / "bad.jsonl", [good, "", line])
    rc = main(["eval", "--cases", path, "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == EXIT_INPUT
    assert f"{path}:3: " in err and expect in err, err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_missing_or_empty_cases_file_exits_2(tmp_path, capsys):
    assert main(["eval", "--cases", str(tmp_path / "nope.jsonl")]) == EXIT_INPUT
    assert "cannot read the cases file" in capsys.readouterr().err
    assert main(["eval", "--cases", write_jsonl(tmp_path / "empty.jsonl", ["", "  "])]) == EXIT_INPUT
    assert "no cases" in capsys.readouterr().err


def test_bad_gate_or_config_exits_2(capsys):
    assert main(["eval", "--cases", str(EVAL_DEV), "--fail-under", "accuracy=0.9"]) == EXIT_INPUT
    assert "unknown metric 'accuracy'" in capsys.readouterr().err
    assert main(["eval", "--cases", str(EVAL_DEV), "--fail-under", "hit@1=high"]) == EXIT_INPUT
    assert "not a number" in capsys.readouterr().err
    assert main(["eval", "--cases", str(EVAL_DEV), "--config", "a=chunk_size=3"]) == EXIT_INPUT
    assert "unknown setting 'chunk_size'" in capsys.readouterr().err
    assert main(["eval", "--cases", str(EVAL_DEV), "--config", "a=k=3", "--config", "a=k=4"]) == EXIT_INPUT
    assert "duplicate name 'a'" in capsys.readouterr().err
    # an index-changing configuration needs --docs to build its index
    assert main(["eval", "--cases", str(EVAL_DEV), "--config", "big=chunk_tokens=300"]) == EXIT_INPUT
    assert "needs its own index: pass --docs" in capsys.readouterr().err


def test_index_locations(tmp_path, monkeypatch, settings_factory):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    base = settings_factory()
    small = base.replace(chunk_tokens=100)
    fast = base.replace(k=3, hybrid="off")
    key = ev.index_key(SEEDS, base)
    assert key == ev.index_key(str(SEEDS) + "/../seeds", fast)  # same resolved folder and index settings
    assert key != ev.index_key(SEEDS, small) and key != ev.index_key(tmp_path, base)
    got = ev.resolve_index(base, docs=str(SEEDS), index_dir=None, base=base)
    assert got.index_dir == str(tmp_path / "cache" / "assistant" / "eval-index" / key)
    assert ev.resolve_index(fast, docs=str(SEEDS), index_dir=str(tmp_path / "ix"), base=base).index_dir == str(tmp_path / "ix")
    variant = ev.resolve_index(small, docs=str(SEEDS), index_dir=str(tmp_path / "ix"), base=base)
    assert variant.index_dir == str(tmp_path / "ix" / "eval-variants" / ev.index_key(SEEDS, small))
    assert ev.resolve_index(fast, docs=None, index_dir=None, base=base) is fast
    with pytest.raises(ev.EvalInputError, match="chunk_tokens"):
        ev.resolve_index(small, docs=None, index_dir=None, base=base)
    server = base.replace(chroma_url="http://127.0.0.1:1")
    assert ev.resolve_index(server, docs=str(SEEDS), index_dir=None, base=server).collection.startswith("eval-")


# --------------------------------------------------------------------------- full runs
@pytest.fixture(scope="module")
def dev_result(seeds_assistant):
    return ev.evaluate(ev.load_cases(EVAL_DEV), seeds_assistant)


def test_dev_set_run_writes_report_and_plots(dev_result, tmp_path, artifacts):
    s = dev_result.summary
    print("dev summary:", json.dumps(s))
    assert s["answer_accuracy"] == 1.0 and s["abstention_accuracy"] == 1.0
    assert s["false_abstention_rate"] == 0.0 and s["fact_recall"] == 1.0
    assert (s["n_cases"], s["n_answerable"], s["n_unanswerable"]) == (14, 11, 3)
    assert s["hit@1"] <= s["hit@3"] <= s["hit@5"] and s["hit@5"] >= 0.9
    assert 0 < s["citation_precision"] <= 1 and 0 < s["ndcg@10"] <= 1
    paths = ev.write_report(dev_result, tmp_path / "run")
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert REPORT_KEYS <= set(data["summary"]) and {"summary", "config", "cases"} <= set(data)
    assert data["config"]["k"] == 5 and data["config"]["embedding_model"] == "e5-small" and "llm_api_key" in data["config"]
    assert len(data["cases"]) == 14 and all(CASE_KEYS <= set(c) for c in data["cases"])
    first = data["cases"][0]
    assert len(first["retrieved"]) >= 5 and first["citations"] and "hit@1" in first["metrics"]
    assert len(first["passages"]) == 5  # the answer saw k passages; retrieval metrics see up to 10
    assert len(data["curves"]["hit@k"]) == 10 and data["curves"]["hit@k"][4] == s["hit@5"]
    md = paths["md"].read_text(encoding="utf-8")
    assert "## Summary" in md and "| answer_accuracy | 1.000 |" in md and "## Failing cases (0)" in md
    for name in ("metrics", "hit_at_k", "latency"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for p in paths.values():  # kept for inspection
        (artifacts / "eval-dev").mkdir(exist_ok=True)
        (artifacts / "eval-dev" / p.name).write_bytes(p.read_bytes())


def test_failing_cases_are_listed_in_the_markdown(dev_result):
    result = ev.EvalResult(**{**dev_result.__dict__, "cases": [json.loads(json.dumps(c)) for c in dev_result.cases]})
    bad = next(c for c in result.cases if c["id"] == "ambassador-en")
    bad.update(answer="I do not know.", abstained=True)
    bad["metrics"].update(passed=False, correct=False)
    md = ev.render_markdown(result)
    assert "## Failing cases (1)" in md and "### `ambassador-en`" in md
    assert "“Mohammed Setri”" in md and "I do not know." in md


@pytest.fixture()
def cli_env(monkeypatch, seeds_assistant, tmp_path):
    """`assistant eval` through cli.main, with the session embedder (and its warm vector cache), no caller settings."""
    for k in list(os.environ):
        if k.startswith("ASSISTANT_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def session_models(settings, pool):
        assert settings.embedding_model == "e5-small" and settings.embedding_quantize
        return seeds_assistant.embedder, seeds_assistant.cache

    monkeypatch.setattr(ev.cli, "_load_models", session_models)  # where run_cli looks it up (assistant.evaluation.cli)


def test_fail_under_gate_exits_3(cli_env, seeds_index, tmp_path, capsys):
    cases = dev_subset(tmp_path, {"ambassador-en", "capital-of-france-en"})
    out = tmp_path / "gate"
    rc = main(["eval", "--cases", cases, "--index-dir", str(seeds_index), "--out", str(out), "--no-progress",
               "--fail-under", "answer_accuracy=1", "--fail-under", "hit@1=1.01", "--fail-over", "false_abstention_rate=0"])
    cap = capsys.readouterr()
    assert rc == EXIT_GATE, cap.err
    assert "gate failed: hit@1 = 1.000 is below 1.01" in cap.err and cap.err.count("gate failed") == 1
    assert "answer_accuracy" in cap.out and (out / "report.json").exists()
    rc = main(["eval", "--cases", cases, "--index-dir", str(seeds_index), "--out", str(out), "--no-progress",
               "--fail-under", "abstention_accuracy=1"])
    assert rc == EXIT_OK


def test_missing_index_is_a_clear_error(cli_env, tmp_path, capsys):
    rc = main(["eval", "--cases", str(EVAL_DEV), "--index-dir", str(tmp_path / "none"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "no index" in err and "--docs" in err


def test_config_comparison(cli_env, seeds_index, tmp_path, capsys):
    cases = dev_subset(tmp_path, {"startup-budget-en", "qatari-minister-en", "followup-purpose-en", "bank-budget-fr"})
    out = tmp_path / "cmp"
    rc = main(["eval", "--cases", cases, "--index-dir", str(seeds_index), "--out", str(out), "--no-progress",
               "--config", "k3=k=3", "--config", "k5-dense=k=5,hybrid=off", "--fail-under", "answer_accuracy=1.01"])
    cap = capsys.readouterr()
    assert rc == EXIT_GATE
    assert "config 'k3': answer_accuracy" in cap.err and "config 'k5-dense': answer_accuracy" in cap.err
    for name in ("comparison.md", "comparison.json", "comparison.png"):
        assert (out / name).exists()
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "comparison.md").read_text(encoding="utf-8")
    assert "`k=3`" in md and "`hybrid=off`" in md and "| hit@1 |" in md
    data = json.loads((out / "comparison.json").read_text(encoding="utf-8"))
    assert [c["name"] for c in data["configs"]] == ["k3", "k5-dense"]
    assert data["configs"][1]["settings"] == {"k": 5, "hybrid": "off"}
    for name, k, hybrid in (("k3", 3, "auto"), ("k5-dense", 5, "off")):
        rep = json.loads((out / name / "report.json").read_text(encoding="utf-8"))
        assert rep["config"]["k"] == k and rep["config"]["hybrid"] == hybrid
        assert all(len(c["passages"]) <= k for c in rep["cases"])
        assert all(len(c["retrieved"]) >= len(c["passages"]) for c in rep["cases"])  # the ranking is never shallower
        assert (out / name / "report.md").exists() and (out / name / "metrics.png").exists()
    assert "k3" in cap.out and "k5-dense" in cap.out  # the terminal table


def test_docs_are_indexed_first_into_the_cache(cli_env, tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.txt").write_text("The Lisbon office opened on 3 March 2021. It employs forty engineers.", encoding="utf-8")
    cases = write_jsonl(tmp_path / "c.jsonl", [
        {"id": "open", "question": "When did the Lisbon office open?", "answerable": True,
         "facts": [["3 March 2021"]], "evidence": ["opened on 3 March"], "history": []},
        {"id": "ceo", "question": "Who is the CEO of the Oslo office?", "answerable": False, "facts": [], "evidence": [], "history": []},
    ])
    args = ["eval", "--cases", cases, "--docs", str(docs), "--out", str(tmp_path / "o"), "--no-progress",
            "--fail-under", "answer_accuracy=1", "--fail-under", "abstention_accuracy=1", "--fail-under", "hit@1=1"]
    assert main(args) == EXIT_OK, capsys.readouterr().err
    err = capsys.readouterr().err
    cache = tmp_path / "cache" / "assistant" / "eval-index"
    assert "1 added" in err and len(list(cache.iterdir())) == 1
    assert main(args) == EXIT_OK  # incremental: nothing to embed the second time
    assert "up to date (1 chunks)" in capsys.readouterr().err


# --------------------------------------------------------------------------- LLM judge
class BagOfWordsEmbedder:
    """Deterministic stand-in for the embedder: normalised word counts."""

    def encode(self, texts, is_query=False):
        import numpy as np

        vocab: dict[str, int] = {}
        rows = [[vocab.setdefault(w, len(vocab)) for w in ev.normalize_for_match(t).replace("?", "").split()] for t in texts]
        out = np.zeros((len(texts), max(len(vocab), 1)), dtype=np.float32)
        for i, ids in enumerate(rows):
            for j in ids:
                out[i, j] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def fake_model(*replies):
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    return GenericFakeChatModel(messages=iter([AIMessage(content=r) for r in replies]))


def test_judge_faithfulness_and_relevancy():
    faith = json.dumps({"statements": [{"statement": "Morocco mobilised 1.3 billion dirhams.", "verdict": 1},
                                       {"statement": "It was in 2020.", "verdict": 0}]})
    rel = "Here you go:\n```json\n" + json.dumps({"questions": ["How much did Morocco allocate to startups?",
                                                               "How much did Morocco allocate to startups?"],
                                                 "noncommittal": 0}) + "\n```"
    judge = ev.Judge(fake_model(faith, rel), BagOfWordsEmbedder())
    out = judge.score("How much did Morocco allocate to startups?", "1.3 billion dirhams [1], in 2020.", ["... 1,3 milliard ..."])
    assert out["faithfulness"] == 0.5 and out["answer_relevancy"] == pytest.approx(1.0) and "judge_error" not in out
    assert "{answer}" in judge.relevancy_prompt.user and "{contexts}" in judge.faithfulness_prompt.user

    judge = ev.Judge(fake_model("no json here", json.dumps({"questions": ["What?"], "noncommittal": 1})), BagOfWordsEmbedder())
    out = judge.score("q", "a", ["c"])
    assert out["faithfulness"] is None and "faithfulness" in out["judge_error"] and out["answer_relevancy"] == 0.0


def test_judge_in_an_evaluation(seeds_assistant):
    cases = [c for c in ev.load_cases(EVAL_DEV) if c.id in {"ambassador-en", "capital-of-france-en"}]
    faith = json.dumps({"statements": [{"statement": "Setri is the ambassador.", "verdict": 1}]})
    rel = json.dumps({"questions": ["Who is Morocco's ambassador to Qatar?"], "noncommittal": 0})
    judge = ev.Judge(fake_model(faith, rel), seeds_assistant.embedder)  # one answered case: two calls; abstentions are not judged
    result = ev.evaluate(cases, seeds_assistant, judge=judge)
    s = result.summary
    assert s["faithfulness"] == 1.0 and s["answer_relevancy"] > 0.95 and s["n_judged"] == 1 and s["judge_errors"] == 0


def test_llm_judge_without_backend_exits_2(cli_env, capsys):
    assert main(["eval", "--cases", str(EVAL_DEV), "--llm-judge"]) == EXIT_INPUT
    assert "--llm-judge needs an LLM backend" in capsys.readouterr().err


def test_parse_json_object_tolerates_prose():
    assert ev.parse_json_object('Sure! {"a": {"b": "}"}} trailing') == {"a": {"b": "}"}}
    assert ev.parse_json_object('{bad} then {"ok": 1}') == {"ok": 1}
    with pytest.raises(ValueError):
        ev.parse_json_object("nothing")


def test_calibration_and_risk_coverage_of_confident_answers():
    from assistant.evaluation import calibration_metrics, risk_coverage

    def rec(conf, answerable, correct, abstained=False):
        m = {"answerable": answerable, "abstained": abstained}
        if answerable:
            m["correct"] = correct
        return {"metrics": m, "confidence": conf}

    records = [rec(0.9, True, True), rec(0.8, True, False), rec(0.3, False, False), rec(0.2, True, False, abstained=True)]
    cal = calibration_metrics(records)
    # answered: (0.9, 1), (0.8, 0), (0.3, 0 - an answer to an unanswerable question)
    assert cal["brier"] == pytest.approx((0.1 ** 2 + 0.8 ** 2 + 0.3 ** 2) / 3)
    assert cal["ece"] == pytest.approx((1 / 3) * 0.1 + (1 / 3) * 0.8 + (1 / 3) * 0.3)
    assert risk_coverage(records) == [(0.9, 0.25, 1.0), (0.8, 0.5, 0.5), (0.3, 0.75, pytest.approx(1 / 3))]
    assert calibration_metrics([{"metrics": {"answerable": True, "abstained": False, "correct": True}}]) == {}
