"""Load: 20 concurrent users against the running app (gradio_client and plain HTTP + SSE), and queries that keep
being answered, from the old or the new index, while an upload or a re-index runs.

Figures go to ``test-artifacts/reliability/*.json`` (RELIABILITY.md records them).
"""
from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from assistant.evaluation import facts_found, load_cases
from assistant.ui import clean_history

from .conftest import EVAL_DEV
from .helpers import http_call

pytestmark = pytest.mark.slow

USERS = 20
QUESTIONS = 200


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    pos = (len(values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def record(artifacts: Path, name: str, data: dict) -> None:
    out = artifacts / "reliability"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"\n{name}: {json.dumps(data, ensure_ascii=False)}")


# --------------------------------------------------------------------------- expected answers
@pytest.fixture(scope="module")
def cases():
    return [c for c in load_cases(EVAL_DEV) if not c.history]


@pytest.fixture(scope="module")
def expected(ui_server, cases):
    """The answers of the app's own assistant, asked one at a time: concurrent answers must be the same."""
    out = {}
    for c in cases:
        ans = ui_server.assistant.ask(c.question)
        assert ans.abstained == (not c.answerable), c.id
        if c.answerable:
            assert all(facts_found(ans.answer, c.facts)), c.id
        out[c.question] = ans
    return out


def _check_ask(out: dict, want) -> None:
    assert out["abstained"] == want.abstained
    assert out["answer"] == want.answer
    assert [c["source"] for c in out["citations"]] == [c.source for c in want.citations]


def _check_chat(history: list, want) -> None:
    text = history[-1]["content"]
    text = text[0]["text"] if isinstance(text, list) else text
    if want.abstained:
        assert text.startswith('<div class="qa-abstain">'), text[:200]
    else:
        assert clean_history(history)[-1] == {"role": "assistant", "content": want.answer}


def test_twenty_concurrent_users_two_hundred_questions(ui_server, cases, expected, artifacts):
    """20 users at once: 8 on /ask and 8 on the streaming /chat through gradio_client, 4 over plain HTTP + SSE."""
    from gradio_client import Client

    per_user = QUESTIONS // USERS
    kinds = ["client-ask"] * 8 + ["client-chat"] * 8 + ["http-ask", "http-chat"] * 2
    assert len(kinds) == USERS
    results: list[dict] = []
    lock = threading.Lock()
    start = threading.Barrier(USERS)

    def user(u: int) -> None:
        kind = kinds[u]
        client = Client(ui_server.url, verbose=False, analytics_enabled=False) if kind.startswith("client") else None
        start.wait(timeout=120)
        try:
            for i in range(per_user):
                case = cases[(u * per_user + i) % len(cases)]
                want = expected[case.question]
                t0 = time.perf_counter()
                error = None
                try:
                    if kind == "client-ask":
                        _check_ask(client.predict(case.question, api_name="/ask"), want)
                    elif kind == "client-chat":
                        history, _ = client.predict(case.question, [], 5, "extractive", api_name="/chat")
                        _check_chat(history, want)
                    elif kind == "http-ask":
                        _check_ask(http_call(ui_server.url, "ask", [case.question, None, None, None])[0], want)
                    else:
                        history, _ = http_call(ui_server.url, "chat", [case.question, [], 5, "extractive"])
                        _check_chat(history, want)
                except Exception as err:  # noqa: BLE001 - counted and reported below
                    error = f"{type(err).__name__}: {err}"[:300]
                with lock:
                    results.append({"kind": kind, "case": case.id, "seconds": time.perf_counter() - t0, "error": error})
        finally:
            if client is not None:
                client.close()

    # the service time first: one user alone, 10 questions in a row
    solo = Client(ui_server.url, verbose=False, analytics_enabled=False)
    single = []
    for case in cases[:10]:
        t0 = time.perf_counter()
        _check_ask(solo.predict(case.question, api_name="/ask"), expected[case.question])
        single.append(time.perf_counter() - t0)
    solo.close()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(USERS) as pool:
        list(pool.map(user, range(USERS)))
    wall = time.perf_counter() - t0
    failures = [r for r in results if r["error"]]
    lat = [r["seconds"] for r in results]
    by_kind = {k: [r["seconds"] for r in results if r["kind"] == k] for k in sorted(set(kinds))}
    figures = {
        "users": USERS, "questions": len(results), "failed": len(failures), "wall_s": round(wall, 1),
        "throughput_qps": round(len(results) / wall, 2),
        "latency_s": {"p50": round(percentile(lat, 50), 2), "p95": round(percentile(lat, 95), 2), "max": round(max(lat), 2)},
        "by_client": {k: {"n": len(v), "p50": round(percentile(v, 50), 2), "p95": round(percentile(v, 95), 2)}
                      for k, v in by_kind.items()},
        "single_user_latency_s": {"p50": round(percentile(single, 50), 2), "max": round(max(single), 2)},
        "queue": {"concurrency": ui_server.settings.concurrency, "max_size": ui_server.demo._queue.max_size},
        "load_average_1min": round(os.getloadavg()[0], 1),  # other work on the machine during the run
    }
    record(artifacts, "load", figures)
    assert len(results) == QUESTIONS
    assert not failures, failures[:5]


def test_http_api_errors_are_events_not_hangs(ui_server):
    """The plain HTTP API reports a bad question as an SSE error event, promptly."""
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match="empty"):
        http_call(ui_server.url, "ask", ["   ", None, None, None], timeout=30)
    with pytest.raises(RuntimeError, match="maximum is 2000"):
        http_call(ui_server.url, "ask", ["x" * 100_000, None, None, None], timeout=30)
    assert time.perf_counter() - t0 < 30


# --------------------------------------------------------------------------- answering while indexing
FILLER = ("Le marché couvert de {p} ouvre le mercredi et le samedi; les producteurs y vendent des légumes, "
          "du fromage et du pain au levain. La halle date de {y} et sa charpente en chêne a été restaurée.")


def _filler(folder: Path, n: int, paras: int, tag: str) -> None:
    for i in range(n):
        body = "\n\n".join(FILLER.format(p=f"Bourg-{tag}-{i}-{j}", y=1700 + j) for j in range(paras))
        (folder / f"b_{tag}_{i:03d}.txt").write_text(body, encoding="utf-8")


def test_queries_are_answered_during_an_upload_and_a_reindex(ui_server, expected, tmp_path, artifacts):
    """Readers never see an error or a half-built index: each answer comes from the index before or after."""
    from gradio_client import Client, handle_file

    morocco = next(q for q, a in expected.items() if "Morocco allocate" in q)
    want = expected[morocco]
    upload_q = "Qui garde les clés du hangar à bateaux de Locquirec ?"
    reindex_q = "Quel est le code du coffre de la capitainerie de Roscoff ?"
    stop = threading.Event()
    seen: dict[str, list] = {"morocco": [], "upload": [], "reindex": []}
    errors: list[str] = []
    lock = threading.Lock()

    def reader(n: int) -> None:
        client = Client(ui_server.url, verbose=False, analytics_enabled=False)
        try:
            i = 0
            while not stop.is_set():
                q = [morocco, upload_q, reindex_q][(i + n) % 3]
                i += 1
                try:
                    out = client.predict(q, api_name="/ask")
                except Exception as err:  # noqa: BLE001
                    with lock:
                        errors.append(f"{q}: {type(err).__name__}: {err}"[:300])
                    continue
                key = "morocco" if q == morocco else "upload" if q == upload_q else "reindex"
                with lock:
                    seen[key].append(out)
        finally:
            client.close()

    # v1 of a folder indexed into the app's index, before the readers start
    folder = tmp_path / "registre"
    folder.mkdir()
    (folder / "a_registre.txt").write_text(
        "Registre de la capitainerie de Roscoff.\n\nLe code du coffre de la capitainerie de Roscoff est 4417.\n\n"
        "Le coffre contient les doubles des clés des pontons.", encoding="utf-8")
    _filler(folder, 20, 4, "v1")
    ui_server.assistant.index([folder], show_progress=False)
    v1 = ui_server.assistant.ask(reindex_q)
    assert "4417" in v1.answer

    readers = [threading.Thread(target=reader, args=(n,), daemon=True) for n in range(4)]
    for t in readers:
        t.start()
    time.sleep(1.0)
    phases = {}
    try:
        # 1. an upload (through the API, as the browser does) of four files with many passages
        files = []
        for i in range(4):
            p = tmp_path / f"hangar{i}.txt"
            body = [FILLER.format(p=f"Locquirec-{i}-{j}", y=1800 + j) for j in range(25)]
            if i == 2:
                body.insert(10, "Les clés du hangar à bateaux de Locquirec sont gardées par Maïwenn Le Bris, la trésorière.")
            p.write_text("\n\n".join(body), encoding="utf-8")
            files.append(p)
        uploader = Client(ui_server.url, verbose=False, analytics_enabled=False)
        t0 = time.perf_counter()
        _, _, result = uploader.predict([handle_file(str(p)) for p in files], api_name="/upload")
        phases["upload_s"] = round(time.perf_counter() - t0, 1)
        uploader.close()
        assert len(result["indexed"]) == 4, result
        # 2. a re-index of the folder after every file changed (v2), the answer's file first
        (folder / "a_registre.txt").write_text(
            "Registre de la capitainerie de Roscoff, édition révisée.\n\nLe code du coffre de la capitainerie de "
            "Roscoff est 9083.\n\nLe coffre contient les doubles des clés des pontons et du phare.", encoding="utf-8")
        for p in folder.glob("b_v1_*"):
            p.unlink()
        _filler(folder, 20, 8, "v2")
        t0 = time.perf_counter()
        report = ui_server.assistant.index([folder], show_progress=False)
        phases["reindex_s"] = round(time.perf_counter() - t0, 1)
        assert report.updated == 1 and report.added == 20 and report.removed == 20
        time.sleep(1.0)
    finally:
        stop.set()
        for t in readers:
            t.join(60)

    counts = {k: len(v) for k, v in seen.items()}
    # the seed content never changed: every answer is the same, during the upload and the re-index
    bad_morocco = [o for o in seen["morocco"] if o["answer"] != want.answer]
    # the uploaded document: not there yet (the old index abstains) or found, never anything else
    old_up = [o for o in seen["upload"] if o["abstained"]]
    new_up = [o for o in seen["upload"] if not o["abstained"] and "Maïwenn Le Bris" in o["answer"]]
    # the re-indexed file: the v1 code or the v2 code, never neither (a half-built index would abstain)
    v1_codes = [o for o in seen["reindex"] if "4417" in o["answer"] and "9083" not in o["answer"]]
    v2_codes = [o for o in seen["reindex"] if "9083" in o["answer"] and "4417" not in o["answer"]]
    figures = {"readers": len(readers), "answers": counts, "errors": len(errors), **phases,
               "upload_question": {"old_index": len(old_up), "new_index": len(new_up)},
               "reindex_question": {"v1": len(v1_codes), "v2": len(v2_codes)},
               "unchanged_question_differs": len(bad_morocco)}
    record(artifacts, "answering-while-indexing", figures)
    assert not errors, errors[:5]
    assert all(counts[k] >= 1 for k in counts) and sum(counts.values()) >= 6, counts  # the readers did read meanwhile
    assert not bad_morocco
    assert len(old_up) + len(new_up) == counts["upload"], [o["answer"][:120] for o in seen["upload"]]
    assert len(v1_codes) + len(v2_codes) == counts["reindex"], [o["answer"][:120] for o in seen["reindex"]]
    # and afterwards both are answered from the new index
    assert "Maïwenn Le Bris" in ui_server.assistant.ask(upload_q).answer
    assert "9083" in ui_server.assistant.ask(reindex_q).answer


def test_queue_shares_answer_workers_and_isolates_uploads(ui_server):
    fns = {fn.api_name: fn for fn in ui_server.demo.fns.values() if fn.api_name}
    assert fns["chat"].concurrency_id == fns["ask"].concurrency_id == "answer"
    assert fns["upload"].concurrency_id == "indexing" and fns["upload"].concurrency_limit == 1
    assert not fns["status"].queue
    queue = ui_server.demo._queue
    assert queue.default_concurrency_limit == ui_server.settings.concurrency and queue.max_size == 64
