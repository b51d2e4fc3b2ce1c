"""Reports: ``report.json`` and ``report.md`` of one run (:func:`write_report`), the side-by-side comparison of
several configurations (:func:`write_comparison`), and the text and Markdown tables they print."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ..config import Settings
from .metrics import COUNTS, METRICS, fmt
from .plots import write_comparison_plot, write_plots
from .runner import EvalResult, _preview


def summary_keys(summary: dict) -> list[str]:
    """Summary keys in display order: counts, then metrics present."""
    keys = [k for k in COUNTS if k in summary] + [k for k in METRICS if k in summary]
    return keys + [k for k in summary if k not in keys]


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    out = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _facts_text(facts: Sequence[Sequence[str]]) -> str:
    return "; ".join(" or ".join(f"“{a}”" for a in alts) for alts in facts) or "(none)"


def render_markdown(result: EvalResult, plots: Sequence[str] = ()) -> str:
    s = result.summary
    meta = result.meta
    lines = [f"# Evaluation report{(' — ' + result.name) if result.name else ''}", ""]
    src = meta.get("cases_file", "")
    lines.append(f"{s['n_cases']} cases ({s['n_answerable']} answerable, {s['n_unanswerable']} unanswerable)"
                 + (f" from `{src}`" if src else "")
                 + (f", documents `{meta['docs']}`" if meta.get("docs") else "")
                 + f", index `{result.config.get('index_dir', '')}`, embedder `{meta.get('embedder', '')}`,"
                 f" k = {meta.get('answer_k')} passages for the answer, retrieval metrics on the top {meta.get('retrieval_depth')}.")
    if meta.get("started"):
        lines.append(f"Run {meta['started']}, {meta.get('seconds', 0):.1f} s.")
    lines += ["", "## Summary", "", md_table(["metric", "value"], [(k, fmt(k, s[k])) for k in summary_keys(s)]), ""]
    for p in plots:
        lines.append(f"![{Path(p).stem}]({Path(p).name})")
    if plots:
        lines.append("")
    changed = {k: v for k, v in result.config.items() if getattr(Settings, k, v) != v}
    if changed:
        lines += ["Settings different from the defaults: " + ", ".join(f"`{k}={v}`" for k, v in changed.items()) + ".", ""]
    failing = [r for r in result.cases if not r["metrics"]["passed"]]
    lines += [f"## Failing cases ({len(failing)})", ""]
    if not failing:
        lines += ["Every case passed (answerable: every fact present and no abstention; unanswerable: abstained).", ""]
    for r in failing:
        m = r["metrics"]
        lines.append(f"### `{r['id']}`")
        lines.append("")
        lines.append(f"- **Question:** {r['question']}")
        if r.get("history"):
            lines.append("- **History:** " + " / ".join(f"{t['role']}: {t['content']}" for t in r["history"]))
        if r.get("error"):
            lines.append(f"- **Error:** {r['error']}")
        if r["answerable"]:
            lines.append(f"- **Expected:** facts {_facts_text(r['expected']['facts'])}; evidence "
                         + ", ".join(f"“{e}”" for e in r["expected"]["evidence"]))
            why = "abstained" if r["abstained"] else "missing facts: " + _facts_text(m.get("missing_facts", []))
            lines.append(f"- **Got** ({why}): {r['answer'] or '(no answer)'}")
            rank = m.get("first_relevant_rank")
            lines.append(f"- **Retrieval:** " + (f"first relevant chunk at rank {rank}" if rank else
                                                  f"no relevant chunk in the top {meta.get('retrieval_depth')}"))
        else:
            lines.append("- **Expected:** abstention (the documents do not contain the answer)")
            lines.append(f"- **Got:** {r['answer'] or '(no answer)'}")
        if r.get("abstain_reason"):
            lines.append(f"- **Abstention reason:** {r['abstain_reason']}")
        for c in r.get("citations", []):
            lines.append(f"  - [{c['n']}] `{c['source']}` {'relevant' if c.get('relevant') else 'not relevant'}: “{_preview(c['quote'], 200)}”")
        top = r.get("retrieved", [])[:3]
        if top:
            lines.append("- **Top retrieved:**")
            for c in top:
                lines.append(f"  - {c['rank']}. `{c['source']}`{' (relevant)' if c['relevant'] else ''}: {c['preview']}")
        lines.append("")
    return "\n".join(lines)


def write_report(result: EvalResult, out: str | Path) -> dict[str, Path]:
    """Write report.json, report.md and the plots into ``out``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(result, out)
    paths = {"json": out / "report.json", "md": out / "report.md"}
    paths["json"].write_text(json.dumps(result.to_json(), ensure_ascii=False, indent=2), encoding="utf-8")
    paths["md"].write_text(render_markdown(result, plots), encoding="utf-8")
    for p in plots:
        paths[p.stem] = p
    return paths


def comparison_rows(results: Sequence[EvalResult]) -> tuple[list[str], list[list[str]]]:
    """Metrics as rows, configurations as columns; the best value of a metric is marked with *."""
    header = ["metric"] + [r.name for r in results]
    rows = []
    keys = summary_keys(results[0].summary)
    for r in results[1:]:
        keys += [k for k in summary_keys(r.summary) if k not in keys]
    for k in keys:
        vals = [r.summary.get(k) for r in results]
        nums = {v for v in vals if v is not None}
        best = (max(nums) if METRICS[k][0] else min(nums)) if k in METRICS and len(nums) > 1 else None
        rows.append([k] + [fmt(k, v) + ("*" if best is not None and v == best else "") for v in vals])
    return header, rows


def write_comparison(results: Sequence[EvalResult], overrides: dict[str, dict], out: str | Path) -> dict[str, Path]:
    """comparison.md, comparison.json and comparison.png across configurations."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    header, rows = comparison_rows(results)
    md = ["# Configuration comparison", "", f"{results[0].summary['n_cases']} cases"
          + (f" from `{results[0].meta['cases_file']}`" if results[0].meta.get("cases_file") else "") + ".", "",
          "| configuration | settings | report |", "|---|---|---|"]
    for r in results:
        ov = ", ".join(f"`{k}={v}`" for k, v in overrides.get(r.name, {}).items()) or "(base settings)"
        md.append(f"| {r.name} | {ov} | [{r.name}/report.md]({r.name}/report.md) |")
    md += ["", md_table(header, rows), "",
           "`*` marks the best value of a metric (highest, or lowest for `false_abstention_rate` and latencies).", "",
           "![comparison](comparison.png)", ""]
    paths = {"md": out / "comparison.md", "json": out / "comparison.json", "png": out / "comparison.png"}
    paths["md"].write_text("\n".join(md), encoding="utf-8")
    data = {"configs": [{"name": r.name, "settings": overrides.get(r.name, {}), "summary": r.summary,
                         "report": f"{r.name}/report.json"} for r in results],
            "metrics": {k: {r.name: r.summary.get(k) for r in results} for k in [row[0] for row in rows]}}
    paths["json"].write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    write_comparison_plot(results, paths["png"])
    return paths
