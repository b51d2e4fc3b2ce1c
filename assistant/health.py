"""No silent degradation: every fallback is logged once with its traceback, counted, and shown.

A part that falls back to a weaker way of working (the cross-lingual lexicon missing or unreadable, the LLM
support check without sentence vectors, a reader raising an exception on a file, a background BM25 build failing)
calls :func:`degraded` with a stable ``key``, a one-line message saying what is lost and how to fix it, and the
exception. Then:

* the first occurrence of each (key, detail) is logged at WARNING with its traceback - through :mod:`logging`
  (logger ``assistant.health``) and, with the traceback, appended to ``<index dir>/assistant.log`` when the
  problem belongs to an index dir;
* every occurrence is counted;
* :func:`states` lists them (message, count, first and last time): ``Assistant.status()`` (the UI's ``/status``)
  and ``assistant settings`` show them. Problems of an index dir are also kept in ``<index dir>/problems.json``, so
  that another process (``assistant settings`` after an ``assistant index``) sees what the run met.

Messages stay one line for reports (``IndexReport.failed``, the UI); tracebacks go to the log only.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import traceback
from pathlib import Path

log = logging.getLogger("assistant.health")
# a library: without a logging configuration, warnings must not print tracebacks on a command's stderr (the
# CLI promises one-line errors); assistant.log has them, and an application's own logging configuration gets them
logging.getLogger("assistant").addHandler(logging.NullHandler())

LOG_NAME = "assistant.log"
STATE_NAME = "problems.json"
LOG_MAX_BYTES = 2 * 1024 * 1024

_lock = threading.Lock()
_states: dict[tuple[str, str], dict] = {}  # (index dir or "", key) -> state
_logged: set[tuple[str, str, str]] = set()


def _where(index_path) -> str:
    return str(Path(index_path).resolve()) if index_path else ""


def degraded(key: str, message: str, err: BaseException | None = None, index_path=None, detail: str = "",
             persist: bool = False) -> None:
    """Record a fallback: log it (once per ``key``/``detail``, with ``err``'s traceback), count it, show it.

    ``index_path``: the index dir the problem belongs to (its ``assistant.log``/``problems.json``); ``detail``:
    what makes one occurrence different (a file name), so each is logged once; ``persist``: keep it in
    ``problems.json`` for other processes."""
    where = _where(index_path)
    now = time.time()
    with _lock:
        st = _states.get((where, key))
        if st is None:
            st = _states[(where, key)] = {"key": key, "message": message, "count": 0, "first": now}
        st["message"], st["last"] = message, now
        st["count"] += 1
        first = (where, key, detail or message) not in _logged
        if first:
            _logged.add((where, key, detail or message))
            if len(_logged) > 10_000:
                _logged.clear()
        snapshot = dict(st)
    if first:
        log.warning("%s%s", message, f" [{detail}]" if detail else "", exc_info=err if err is not None else None)
        if where:
            _append_log(Path(where), message, detail, err)
    if persist and where:
        _save(Path(where), key, snapshot)


def recovered(key: str, index_path=None) -> None:
    """The fallback ``key`` is no longer in use (e.g. the lexicon was rebuilt)."""
    where = _where(index_path)
    with _lock:
        gone = _states.pop((where, key), None)
    if gone is not None and where:
        _save(Path(where), key, None)


def states(index_path=None) -> list[dict]:
    """The problems recorded in this process for ``index_path`` and for no index dir, plus those another process
    kept in ``problems.json`` (most recent first)."""
    where = _where(index_path)
    with _lock:
        mine = {k: dict(v) for (w, k), v in _states.items() if w in ("", where)}
    if where:
        for k, v in _load(Path(where)).items():
            if k not in mine or v.get("last", 0) > mine[k].get("last", 0):
                mine[k] = v
    return sorted(mine.values(), key=lambda s: -s.get("last", 0))


def clear(key: str, index_path=None) -> None:
    """Forget ``key`` (the start of a run that measures it again, e.g. reader errors)."""
    recovered(key, index_path)


def describe(state: dict) -> str:
    n = state.get("count", 1)
    return state["message"] + (f" ({n} times)" if n > 1 else "")


# --------------------------------------------------------------------------- files beside the index
def _append_log(where: Path, message: str, detail: str, err: BaseException | None) -> None:
    try:
        if not where.is_dir():
            return
        path = where / LOG_NAME
        if path.exists() and path.stat().st_size > LOG_MAX_BYTES:
            os.replace(path, where / (LOG_NAME + ".1"))
        text = time.strftime("%Y-%m-%d %H:%M:%S ") + message + (f" [{detail}]" if detail else "") + "\n"
        if err is not None:
            text += "".join(traceback.format_exception(type(err), err, err.__traceback__))
        with open(path, "a", encoding="utf-8", errors="replace") as fh:
            fh.write(text)
    except OSError:  # a full or read-only disk: the logging record above is all there is
        pass


def _load(where: Path) -> dict:
    try:
        data = json.loads((where / STATE_NAME).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save(where: Path, key: str, state: dict | None) -> None:
    try:
        if not where.is_dir():
            return
        data = _load(where)
        if state is None:
            if key not in data:
                return
            data.pop(key)
        else:
            data[key] = state
        tmp = where / f".{STATE_NAME}.{os.getpid()}.{threading.get_ident()}"
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, where / STATE_NAME)
    except OSError:
        pass
