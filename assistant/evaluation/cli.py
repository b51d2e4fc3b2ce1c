"""``assistant eval``: :func:`run_cli` (indexing with ``--docs``, configurations with ``--config``, exit codes),
its gates (``--fail-under`` / ``--fail-over``), configurations and where their indexes live."""
from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from ..config import Settings, parse_settings_string
from .cases import EvalInputError, load_cases
from .judge import make_judge
from .metrics import COUNTS, METRICS, fmt
from .reports import comparison_rows, summary_keys, text_table, write_comparison, write_report
from .runner import EvalResult, evaluate

EXIT_OK, EXIT_FAIL, EXIT_INPUT, EXIT_GATE = 0, 1, 2, 3  # same values as assistant.cli
# Settings that change what is stored in the index: a configuration that changes one needs its own index.
INDEX_FIELDS = ("embedding_model", "embedding_engine", "embedding_quantize", "embedding_precision", "chunk_tokens",
                "chunk_overlap")
EMBEDDER_FIELDS = ("embedding_model", "embedding_engine", "embedding_quantize", "embedding_precision",
                   "embedding_threads", "embedding_batch_tokens")


@dataclass
class Gate:
    metric: str
    value: float
    under: bool  # True: --fail-under (fails when metric < value); False: --fail-over (fails when metric > value)

    @property
    def flag(self) -> str:
        return "--fail-under" if self.under else "--fail-over"

    def check(self, summary: dict) -> str | None:
        """None when the gate passes, else why it failed."""
        got = summary.get(self.metric)
        if got is None:
            return f"{self.metric} could not be computed (no applicable cases), {self.flag} {self.metric}={self.value:g}"
        if self.under and got < self.value:
            return f"{self.metric} = {fmt(self.metric, got)} is below {self.value:g}"
        if not self.under and got > self.value:
            return f"{self.metric} = {fmt(self.metric, got)} is above {self.value:g}"
        return None


def parse_gates(under: Iterable[str], over: Iterable[str] = ()) -> list[Gate]:
    gates, errors = [], []
    known = list(METRICS) + ["n_judged", "judge_errors"]
    for specs, is_under in ((under or [], True), (over or [], False)):
        flag = "--fail-under" if is_under else "--fail-over"
        for spec in specs:
            name, sep, val = spec.partition("=")
            name = name.strip()
            if not sep:
                errors.append(f"{flag} {spec!r}: expected METRIC=VALUE, e.g. hit@1=0.8")
                continue
            if name not in known:
                errors.append(f"{flag} {spec!r}: unknown metric {name!r} (known: {', '.join(known)})")
                continue
            try:
                value = float(val)
            except ValueError:
                errors.append(f"{flag} {spec!r}: {val.strip()!r} is not a number")
                continue
            gates.append(Gate(name, value, is_under))
    if errors:
        raise EvalInputError(errors)
    return gates


# =========================================================================== configurations and indexes
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def parse_configs(specs: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``["small=chunk_tokens=100,hybrid=off", "base"]`` -> {name: typed overrides}."""
    configs: dict[str, dict[str, Any]] = {}
    errors = []
    for spec in specs:
        name, _sep, rest = spec.partition("=")
        name = name.strip()
        if not _NAME.match(name):
            errors.append(f"--config {spec!r}: the name must be letters, digits, '.', '_' or '-' (it names a folder)")
            continue
        if name in configs:
            errors.append(f"--config {spec!r}: duplicate name {name!r}")
            continue
        try:
            configs[name] = parse_settings_string(rest)
        except ValueError as err:
            errors.append(f"--config {spec!r}: {err}")
    if errors:
        raise EvalInputError(errors)
    return configs


def index_key(docs: str | Path, settings: Settings) -> str:
    """Hash of the resolved documents folder and every setting that changes the index."""
    ident = {"docs": str(Path(docs).resolve()), **{f: getattr(settings, f) for f in INDEX_FIELDS},
             "store": settings.chroma_server}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def eval_cache_dir(docs: str | Path, settings: Settings) -> Path:
    from ..offline import cache_root

    return cache_root() / "eval-index" / index_key(docs, settings)


def resolve_index(settings: Settings, *, docs: str | None, index_dir: str | None, base: Settings) -> Settings:
    """Where a configuration's index lives.

    * ``--docs`` without ``--index-dir``: the cache keyed by folder + index settings;
    * ``--index-dir``: that folder, or ``<index-dir>/eval-variants/<key>`` for a
      configuration whose index settings differ from the base settings;
    * neither: the configured index (a configuration may not change index settings).
    With ``--docs`` and a Chroma server, the collection is ``eval-<key>``, never the configured one.
    """
    differs = [f for f in INDEX_FIELDS if getattr(settings, f) != getattr(base, f)]
    if docs:
        key = index_key(docs, settings)
        if index_dir:
            where = Path(index_dir) / "eval-variants" / key if differs else Path(index_dir)
        else:
            where = eval_cache_dir(docs, settings)
        changes: dict[str, Any] = {"index_dir": str(where)}
        if settings.chroma_server:
            changes["collection"] = f"eval-{key}"
        return settings.replace(**changes)
    if differs:
        raise EvalInputError(f"changing {', '.join(differs)} needs its own index: pass --docs DIR so it can be built")
    return settings


# =========================================================================== command
def _err(msg: str) -> None:
    for line in msg.splitlines():
        print(f"error: {line}", file=sys.stderr)


def _note(msg: str) -> None:
    print(msg, file=sys.stderr)


def _load_models(settings: Settings, pool: dict) -> tuple[Any, Any]:
    """The embedder (loaded once for every configuration that embeds alike) and a fresh vector cache.

    Each configuration starts with an empty word/sentence cache, as a fresh
    process would, so that latencies compare like with like.
    """
    from ..answer import VectorCache
    from ..embeddings import make_embedder

    key = tuple(getattr(settings, f) for f in EMBEDDER_FIELDS)
    if key not in pool:
        pool[key] = make_embedder(settings)
    return pool[key], VectorCache(pool[key])


def default_out_dir(root: str | Path = "eval-runs") -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(root) / stamp
    n = 2
    while out.exists():
        out = Path(root) / f"{stamp}-{n}"
        n += 1
    return out


def run_cli(args, settings: Settings) -> int:
    """``assistant eval`` (see docs/evaluation.md). Returns the exit code."""
    from ..pipeline import Assistant, IndexMissingError
    from ..store import StoreError

    show = not getattr(args, "no_progress", False) and sys.stderr.isatty()
    try:
        gates = parse_gates(getattr(args, "fail_under", None) or [], getattr(args, "fail_over", None) or [])
        for g in gates:
            if g.under and not METRICS.get(g.metric, (True,))[0]:
                _note(f"note: {g.metric} is lower-is-better; --fail-under fails only when it is below {g.value:g} "
                      f"(use --fail-over {g.metric}=VALUE to cap it)")
        configs = parse_configs(getattr(args, "config", None) or [])
        cases = load_cases(args.cases)
        docs = getattr(args, "docs", None)
        if docs and not Path(docs).exists():
            _err(f"--docs {docs}: no such file or folder")
            return EXIT_FAIL
        named = {name: settings.replace(**ov) for name, ov in configs.items()} if configs else {"": settings}
        runs = {name: resolve_index(s, docs=docs, index_dir=getattr(args, "index_dir", None), base=settings)
                for name, s in named.items()}
        use_judge = bool(getattr(args, "llm_judge", False) or settings.llm_judge)
        for name, s in runs.items():
            if s.answerer == "llm" and not s.llm:
                from ..llm.backends import backend_names

                raise EvalInputError(f"{'config ' + repr(name) + ': ' if name else ''}answerer=llm needs an LLM backend "
                                     f"(set llm={'|'.join(backend_names())} or ASSISTANT_LLM)")
            if use_judge and not s.llm:
                raise EvalInputError("--llm-judge needs an LLM backend: set ASSISTANT_LLM (or llm=… in each --config)")
    except EvalInputError as err:
        _err(str(err))
        return EXIT_INPUT

    out = Path(args.out) if getattr(args, "out", None) else default_out_dir()
    embedders: dict[tuple, Any] = {}  # one embedder per distinct embedding settings
    results: list[EvalResult] = []
    try:
        for name, s in runs.items():
            embedder, cache = _load_models(s, embedders)
            assistant = Assistant(s, embedder=embedder, cache=cache)
            judge = make_judge(s, embedder) if use_judge else None
            label = name or "eval"
            if docs:
                report = assistant.index([docs], show_progress=show)
                where = s.chroma_server + "#" + s.collection if s.chroma_server else s.index_dir
                changed = report.added or report.updated or report.removed or report.rebuilt
                _note(f"[{label}] index {where}: " + (report.summary() if changed or report.failed
                                                       else f"up to date ({report.total} chunks)"))
                if report.total == 0:
                    _err(f"no document could be indexed from {docs}")
                    return EXIT_FAIL
            else:
                assistant.require_index()
                _check_embedder(assistant)
            result = evaluate(cases, assistant, judge=judge, progress=show, label=label)
            result.name = name
            result.meta.update(cases_file=str(args.cases), docs=str(docs or ""), started=datetime.now().isoformat(timespec="seconds"))
            write_report(result, out / name if name else out)
            results.append(result)
    except EvalInputError as err:
        _err(str(err))
        return EXIT_INPUT
    except (IndexMissingError, StoreError) as err:
        _err(f"{err}" + (" (or pass --docs DIR to index a folder first)" if isinstance(err, IndexMissingError)
                             and "--docs" not in str(err) else ""))
        return EXIT_FAIL

    if configs:
        paths = write_comparison(results, configs, out)
        header, rows = comparison_rows(results)
        print(text_table(header, rows))
        print(f"\nComparison: {paths['md']} (each configuration's report in {out}/<name>/)")
    else:
        r = results[0]
        s = r.summary
        print(f"Evaluated {s['n_cases']} cases ({s['n_answerable']} answerable, {s['n_unanswerable']} unanswerable) "
              f"in {r.meta['seconds']:.1f} s")
        print(text_table(["metric", "value"], [(k, fmt(k, s[k])) for k in summary_keys(s) if k not in COUNTS]))
        print(f"\nReport: {out / 'report.md'}")

    failed = []
    for r in results:
        for g in gates:
            why = g.check(r.summary)
            if why:
                failed.append(f"{('config ' + repr(r.name) + ': ') if r.name else ''}{why}")
    for f in failed:
        print(f"gate failed: {f}", file=sys.stderr)
    return EXIT_GATE if failed else EXIT_OK


def _check_embedder(assistant) -> None:
    """An index built by another embedder gives meaningless similarities: say so instead."""
    from ..pipeline import IndexMissingError

    built = assistant.store.info().get("assistant_embedder")
    want = getattr(assistant.embedder, "model_id", None)
    if built and want and built != want:
        raise IndexMissingError(f"the index at {assistant.settings.index_dir} was built with the embedder {built!r} but the "
                             f"settings use {want!r}: re-index it, or pass --docs DIR")
