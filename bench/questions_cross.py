"""Questions first across processes: new questions to the app while *another process* indexes.

    python -m bench.questions_cross                      # 3 rounds, table in bench/QUESTIONS_CROSS.md
    python -m bench.questions_cross --rounds 2 --questions 15 --out /tmp/qc.md

``bench.questions_first`` measures an indexing run inside the app (an upload): there the indexer gives way to
questions at the model. A separate ``assistant index`` (the CLI, a cron job, a second app) shares only the CPU
with the app, so nothing in the app can make it wait. What it can do is run at a lower scheduling priority: the
CLI's ``index`` command lowers its own (``index_nice``, default 10: ``os.nice``), which costs it nothing on an
otherwise idle machine and lets the kernel run the app's threads first when both want the cores.

The app serves the seeds and a folder of generated notices; one user asks **new** questions through
``gradio_client`` (``/ask``), one at a time. Each round, back to back: ``idle`` (nothing else running), then the
same number of questions while ``assistant index`` rebuilds a separate index of another generated folder in its
own process, once with ``ASSISTANT_INDEX_NICE=0`` (the previous behaviour) and once with the default. Only the
questions answered entirely during the run count. The bound checked is p95(indexing) <= 2 x p95(idle) with the
default (exit status 1 when it breaks).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # python bench/questions_cross.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, load1, machine_info, percentile  # noqa: E402
from bench.questions_first import ServedApp, write_folder  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--questions", type=int, default=20, help="new questions per phase (at most)")
    ap.add_argument("--files", type=int, default=60, help="files of the folder the other process indexes")
    ap.add_argument("--paras", type=int, default=12, help="paragraphs per file")
    ap.add_argument("--out", default=str(REPO / "bench" / "QUESTIONS_CROSS.md"))
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = Path(tempfile.mkdtemp(prefix="questions-cross-"))
    write_folder(root / "served", 20, args.paras, version=0)
    served = ServedApp(root, [REPO / "seeds", root / "served"])
    ask, env = served.ask, served.env

    other = root / "other"
    version = [100]
    cli = [sys.executable, "-m", "assistant.cli"]
    modes = {"nice 0 (before)": "0", "nice 10 (default)": "10"}
    results: dict[str, list[float]] = {"idle": [], **{m: [] for m in modes}}
    index_s: dict[str, list[float]] = {m: [] for m in modes}
    loads: list[float] = []

    def phase(mode: str, nice: str) -> None:
        version[0] += 1
        write_folder(other, args.files, args.paras, version=version[0])
        idx = root / f"other-index-{version[0]}"
        penv = {**env, "ASSISTANT_INDEX_NICE": nice, "HF_HUB_OFFLINE": "1"}
        t0 = time.perf_counter()
        proc = subprocess.Popen(cli + ["index", str(other), "--index-dir", str(idx)], env=penv,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(8.0)  # past the model load, into the embedding
        lat = []
        while proc.poll() is None and len(lat) < args.questions:
            t = ask()
            if proc.poll() is None:
                lat.append(t)
        proc.wait()
        index_s[mode].append(time.perf_counter() - t0)
        results[mode] += lat
        shutil.rmtree(idx, ignore_errors=True)

    for r in range(args.rounds):
        loads.append(load1())
        results["idle"] += [ask() for _ in range(args.questions)]
        for mode, nice in modes.items():
            phase(mode, nice)
        loads.append(load1())
        print(f"round {r + 1}: idle p95 {percentile(results['idle'], 95):.3f} s; "
              + "; ".join(f"{m}: p95 {percentile(results[m], 95):.3f} s ({len(results[m])} q), "
                          f"index {index_s[m][-1]:.1f} s" for m in modes), flush=True)
    served.close()
    shutil.rmtree(root, ignore_errors=True)

    def fig(v: list[float]) -> dict:
        return {"n": len(v), "p50": round(percentile(v, 50), 3), "p95": round(percentile(v, 95), 3)}

    idle95 = percentile(results["idle"], 95)
    summary = {"machine": machine_info(), "args": vars(args), "idle": fig(results["idle"]),
               "modes": {m: {**fig(results[m]), "p95_ratio": round(percentile(results[m], 95) / idle95, 2),
                             "index_s": [round(x, 1) for x in index_s[m]]} for m in modes},
               "load1": [round(x, 2) for x in loads]}
    ok = summary["modes"]["nice 10 (default)"]["p95_ratio"] <= 2.0
    m = summary["machine"]
    lines = ["# Questions first across processes: new questions while another process indexes", "",
             f"`python -m bench.questions_cross --rounds {args.rounds} --questions {args.questions} --files "
             f"{args.files} --paras {args.paras}` on {m.get('cpu', '?')} ({m.get('cores', '?')} cores; 1-minute "
             f"load {min(loads):.1f}–{max(loads):.1f}), {m.get('date', '')}. One user asks new questions through "
             "`/ask` (gradio_client) while `assistant index` builds another index in its own process.", "",
             "| the other process | questions | p50 | p95 | p95 / idle p95 | its index run |", "|---|---|---|---|---|---|",
             f"| none (idle) | {summary['idle']['n']} | {summary['idle']['p50']:.3f} s | {summary['idle']['p95']:.3f} s "
             "| 1.00× | – |"]
    for mode, v in summary["modes"].items():
        lines.append(f"| `assistant index`, {mode} | {v['n']} | {v['p50']:.3f} s | {v['p95']:.3f} s | "
                     f"**{v['p95_ratio']:.2f}×** | {', '.join(f'{x:.1f}' for x in v['index_s'])} s |")
    lines += ["", f"Bound: p95 while another process indexes ≤ 2 × idle p95 with the default: "
              f"**{'met' if ok else 'missed'}**.", ""]
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    Path(args.out).with_suffix(".json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
