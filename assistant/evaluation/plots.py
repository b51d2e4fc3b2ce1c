"""The PNG plots of a report (:func:`write_plots`) and of a comparison (:func:`write_comparison_plot`).

Figures are drawn with matplotlib's Agg canvas, without pyplot's global state.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .metrics import METRICS, fmt, percentile, risk_coverage

if TYPE_CHECKING:
    from .runner import EvalResult


def _figure(w: float = 7.0, h: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg, no pyplot global state: thread-safe
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    return path


def _fraction_curve(path: Path, x: Sequence[float], y: Sequence[float], *, marker: str, xlabel: str, ylabel: str,
                    title: str, xticks: Sequence[float] | None = None, xlim: tuple[float, float] | None = None) -> Path:
    """A line plot of a fraction (y axis 0..1.05, light grid), saved to ``path``."""
    fig = _figure(6, 4)
    ax = fig.add_subplot()
    ax.plot(x, y, marker=marker)
    if xticks is not None:
        ax.set_xticks(xticks)
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _fraction_keys(summaries: Sequence[dict]) -> list[str]:
    return [k for k, (_hib, frac) in METRICS.items() if frac and any(s.get(k) is not None for s in summaries)]


def write_plots(result: EvalResult, out: Path) -> list[Path]:
    """metrics.png (per-metric bars), hit_at_k.png (hit@k, k = 1..10), latency.png (histogram), and
    risk_coverage.png when answers carry a confidence."""
    paths = []
    s = result.summary
    keys = _fraction_keys([s])
    fig = _figure(7, 0.38 * max(len(keys), 3) + 1.2)
    ax = fig.add_subplot()
    vals = [s.get(k) or 0.0 for k in keys]
    colors = ["#4c72b0" if METRICS[k][0] else "#c44e52" for k in keys]
    ax.barh(range(len(keys)), vals, color=colors)
    ax.set_yticks(range(len(keys)), [k + ("" if METRICS[k][0] else " (lower is better)") for k in keys])
    ax.invert_yaxis()
    ax.set_xlim(0, 1.08)
    for i, k in enumerate(keys):
        ax.text(min(vals[i], 1.0) + 0.01, i, fmt(k, s.get(k)), va="center", fontsize=8)
    ax.set_title(f"Metrics{(' — ' + result.name) if result.name else ''} ({s['n_cases']} cases)")
    paths.append(_save(fig, out / "metrics.png"))

    curve = result.curve
    ks = list(range(1, len(curve) + 1))
    paths.append(_fraction_curve(out / "hit_at_k.png", ks, [c if c is not None else float("nan") for c in curve],
                                 marker="o", xticks=ks, xlabel="k (retrieved chunks)",
                                 ylabel="hit@k (answerable cases)", title="Relevant chunk in the top k"))

    lat = [r["latency_ms"] for r in result.cases if r.get("latency_ms") is not None]
    fig = _figure(6, 4)
    ax = fig.add_subplot()
    if lat:
        ax.hist(lat, bins=min(30, max(5, len(lat) // 2)), color="#55a868")
        for q, style in ((50, "--"), (95, ":")):
            v = percentile(lat, q)
            ax.axvline(v, color="black", linestyle=style, label=f"p{q} = {v:.0f} ms")
        ax.legend()
    ax.set_xlabel("end-to-end latency per question (ms)")
    ax.set_ylabel("cases")
    ax.set_title("Latency")
    paths.append(_save(fig, out / "latency.png"))

    rc = risk_coverage(result.cases)
    if rc:
        paths.append(_fraction_curve(out / "risk_coverage.png", [c for _, c, _ in rc], [a for _, _, a in rc],
                                     marker=".", xlim=(0, 1.02),
                                     xlabel="share of questions answered (threshold on confidence)",
                                     ylabel="answered correctly", title="Risk-coverage"))
    return paths


def write_comparison_plot(results: Sequence[EvalResult], path: Path) -> Path:
    """comparison.png: the fraction metrics (top) and the latencies (bottom), one bar per configuration."""
    keys = _fraction_keys([r.summary for r in results])
    fig = _figure(max(8, 0.9 * len(keys) + 2), 6)
    ax = fig.add_subplot(2, 1, 1)
    width = 0.8 / len(results)
    for i, r in enumerate(results):
        ax.bar([x + i * width for x in range(len(keys))], [r.summary.get(k) or 0.0 for k in keys], width, label=r.name)
    ax.set_xticks([x + width * (len(results) - 1) / 2 for x in range(len(keys))], keys, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title("Quality (false_abstention_rate: lower is better)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax2 = fig.add_subplot(2, 1, 2)
    lat_keys = ["latency_p50_ms", "latency_p95_ms"]
    for i, r in enumerate(results):
        ax2.bar([x + i * width for x in range(len(lat_keys))], [r.summary.get(k) or 0.0 for k in lat_keys], width, label=r.name)
    ax2.set_xticks([x + width * (len(results) - 1) / 2 for x in range(len(lat_keys))], lat_keys)
    ax2.set_ylabel("ms")
    ax2.set_title("Latency (lower is better)")
    return _save(fig, path)
