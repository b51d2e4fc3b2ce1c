"""Scripted evaluation of answer quality: ``assistant eval``. One concept per module:

* :mod:`.cases` - :class:`Case`, :func:`load_cases` (format and validation: the shared ``eval/README.md``; every
  malformed line is reported as ``file:line: what is wrong``) and :class:`EvalInputError` (exit code 2);
* :mod:`.metrics` - the metric definitions: :func:`case_metrics`, :func:`summarize`, calibration, and
  :data:`METRICS`, the explicit list of the summary metrics reported;
* :mod:`.judge` - :class:`Judge`, the optional LLM-judged metrics (faithfulness, answer relevancy);
* :mod:`.runner` - :func:`evaluate`: the cases through an :class:`~assistant.pipeline.Assistant`, an :class:`EvalResult`;
* :mod:`.reports` - :func:`write_report` (``report.json``, ``report.md``) and :func:`write_comparison`;
* :mod:`.plots` - the PNG plots of a report and of a comparison;
* :mod:`.cli` - :func:`run_cli`, the command: indexing (``--docs``), configurations (``--config``), gates
  (``--fail-under`` / ``--fail-over``) and exit codes.

Every name below is importable from ``assistant.evaluation`` as it was from the single module it replaces.
"""
from __future__ import annotations

from ..text import normalize_for_match
from .cases import Case, EvalInputError, load_cases
from .cli import (EMBEDDER_FIELDS, EXIT_FAIL, EXIT_GATE, EXIT_INPUT, EXIT_OK, INDEX_FIELDS, Gate, default_out_dir,
                  eval_cache_dir, index_key, parse_configs, parse_gates, resolve_index, run_cli)
from .judge import Judge, make_judge, parse_json_object
from .metrics import (COUNTS, HIT_KS, JUDGE_KEYS, METRICS, RETRIEVAL_DEPTH, calibration_metrics, case_metrics,
                      facts_found, first_relevant_rank, fmt, hit_curve, ndcg_at, percentile, relevance, risk_coverage,
                      summarize)
from .plots import write_comparison_plot, write_plots
from .reports import comparison_rows, md_table, render_markdown, summary_keys, text_table, write_comparison, write_report
from .runner import EvalResult, evaluate

__all__ = [
    # cases
    "Case", "EvalInputError", "load_cases",
    # metrics
    "METRICS", "COUNTS", "JUDGE_KEYS", "RETRIEVAL_DEPTH", "HIT_KS", "facts_found", "relevance", "first_relevant_rank",
    "ndcg_at", "percentile", "case_metrics", "summarize", "calibration_metrics", "risk_coverage", "hit_curve", "fmt",
    # judge
    "Judge", "make_judge", "parse_json_object",
    # runner
    "EvalResult", "evaluate",
    # reports and plots
    "summary_keys", "text_table", "md_table", "render_markdown", "write_report", "comparison_rows", "write_comparison",
    "write_plots", "write_comparison_plot",
    # command
    "EXIT_OK", "EXIT_FAIL", "EXIT_INPUT", "EXIT_GATE", "INDEX_FIELDS", "EMBEDDER_FIELDS", "Gate", "parse_gates",
    "parse_configs", "index_key", "eval_cache_dir", "resolve_index", "default_out_dir", "run_cli",
    # the matching normalisation the metrics use (assistant.text), as before
    "normalize_for_match",
]
