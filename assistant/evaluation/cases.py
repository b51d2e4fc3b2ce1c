"""Evaluation cases: the :class:`Case` record, its validation and :func:`load_cases`.

The format is that of the shared ``eval/README.md``; every malformed line of a
cases file is reported as ``file:line: what is wrong`` in an
:class:`EvalInputError` (which also carries the other input errors of
``assistant eval``: ``--config``, ``--fail-under``; exit code 2).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..text import normalize_for_match


class EvalInputError(ValueError):
    """Bad input to the evaluation (cases file, --config, --fail-under): exit code 2."""

    def __init__(self, messages: str | list[str]):
        self.messages = [messages] if isinstance(messages, str) else list(messages)
        super().__init__("\n".join(self.messages))



@dataclass
class Case:
    id: str
    question: str
    answerable: bool
    facts: list[list[str]] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    line: int = 0


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _check_case(obj: Any) -> tuple[Case | None, list[str]]:
    """A case from one decoded JSON value, or the list of what is wrong with it."""
    if not isinstance(obj, dict):
        return None, [f"expected a JSON object, got {_type_name(obj)}"]
    errs: list[str] = []
    for name in ("id", "question", "answerable"):
        if name not in obj:
            errs.append(f"missing field '{name}'")
    cid, question, answerable = obj.get("id"), obj.get("question"), obj.get("answerable")
    if "id" in obj and (not isinstance(cid, str) or not cid.strip()):
        errs.append(f"field 'id' must be a non-empty string, got {_type_name(cid)}")
    if "question" in obj and (not isinstance(question, str) or not question.strip()):
        errs.append(f"field 'question' must be a non-empty string, got {_type_name(question)}"
                    + (" (empty)" if isinstance(question, str) else ""))
    if "answerable" in obj and not isinstance(answerable, bool):
        errs.append(f"field 'answerable' must be true or false, got {_type_name(answerable)}")
    is_answerable = answerable is True
    for name in ("facts", "evidence"):
        if name not in obj and is_answerable:
            errs.append(f"missing field '{name}' (required for an answerable case)")
    facts = obj.get("facts", [])
    if not (isinstance(facts, list) and all(isinstance(f, list) and f and all(isinstance(a, str) for a in f) for f in facts)):
        errs.append("field 'facts' must be a list of non-empty lists of strings (each inner list: one fact, "
                    "its alternative forms)" + (f", got {_type_name(facts)}" if not isinstance(facts, list) else ""))
        facts = []
    elif any(not normalize_for_match(a) for f in facts for a in f):
        errs.append("field 'facts' contains an empty string (it would match any answer)")
    elif is_answerable and "facts" in obj and not facts:
        errs.append("field 'facts' is empty: an answerable case needs at least one fact")
    evidence = obj.get("evidence", [])
    if not (isinstance(evidence, list) and all(isinstance(e, str) for e in evidence)):
        errs.append("field 'evidence' must be a list of strings"
                    + (f", got {_type_name(evidence)}" if not isinstance(evidence, list) else ""))
        evidence = []
    elif any(not normalize_for_match(e) for e in evidence):
        errs.append("field 'evidence' contains an empty string (it would match any chunk)")
    elif is_answerable and "evidence" in obj and not evidence:
        errs.append("field 'evidence' is empty: an answerable case needs at least one evidence string")
    history = obj.get("history", [])
    if history is None:
        history = []
    if not isinstance(history, list):
        errs.append(f"field 'history' must be a list of {{\"role\", \"content\"}} objects, got {_type_name(history)}")
    else:
        for i, turn in enumerate(history, start=1):
            if not isinstance(turn, dict) or turn.get("role") not in ("user", "assistant") or not isinstance(turn.get("content"), str):
                errs.append(f"field 'history' turn {i} must be {{\"role\": \"user\"|\"assistant\", \"content\": string}}")
                break
    if errs:
        return None, errs
    return Case(id=cid, question=question, answerable=answerable, facts=facts, evidence=evidence, history=history), []


def load_cases(path: str | Path) -> list[Case]:
    """Read and validate a JSONL file of cases.

    Blank lines are skipped. Raises :class:`EvalInputError` listing every
    problem as ``file:line: message`` (bad JSON, missing field, wrong type,
    duplicate id), or when the file is missing or holds no case.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise EvalInputError(f"{path}: cannot read the cases file ({err.strerror or err})") from None
    errors: list[str] = []
    cases: list[Case] = []
    first_line: dict[str, int] = {}
    for n, bline in enumerate(raw.split(b"\n"), start=1):
        if n == 1 and bline.startswith(b"\xef\xbb\xbf"):
            bline = bline[3:]
        try:
            line = bline.decode("utf-8")
        except UnicodeDecodeError as err:
            errors.append(f"{path}:{n}: not valid UTF-8 (byte {err.start + 1})")
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            errors.append(f"{path}:{n}: bad JSON: {err.msg} (column {err.colno})")
            continue
        except RecursionError:
            errors.append(f"{path}:{n}: bad JSON: nested too deeply")
            continue
        case, errs = _check_case(obj)
        if errs:
            errors.extend(f"{path}:{n}: {e}" for e in errs)
            continue
        assert case is not None
        case.line = n
        if case.id in first_line:
            errors.append(f"{path}:{n}: duplicate id {case.id!r} (first used on line {first_line[case.id]})")
            continue
        first_line[case.id] = n
        cases.append(case)
    if errors:
        raise EvalInputError(errors)
    if not cases:
        raise EvalInputError(f"{path}: no cases (expected one JSON object per line, see eval/README.md)")
    return cases
