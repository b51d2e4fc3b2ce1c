"""The chat's state and logic, without Gradio: :class:`ChatApp`, what the page's events and the API endpoints call.

It asks the :class:`~assistant.pipeline.Assistant` (streamed answers, errors as one clear message), remembers
recent answers for feedback and export, validates and indexes uploads, rates answers and turns a chat into
export turns. The Gradio layout and event wiring around it are in ``assistant.ui``.
"""
import hashlib
import html
import logging
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterator

from .config import Settings
from .loaders import SUPPORTED, kind_of
from .schema import Answer
from .text import error_line
from .ui_i18n import language, tr
from .ui_render import (_EXTRAS, _content_text, answer_message, clean_history, error_message, md_escape, md_unescape,
                        short_answer, sources_html)
from .ui_uploads import UploadResult, _public_report, _upload_name, safe_filename, sniff, store_upload

__all__ = ["ChatApp", "ANSWER_CACHE"]

log = logging.getLogger("assistant.ui")

ANSWER_CACHE = 2000  # answers kept in memory for feedback and export (the chat sends back only their text)


def _message_key(text: str) -> str:
    return hashlib.blake2b(str(text).strip().encode("utf-8", "replace"), digest_size=16).hexdigest()


# --------------------------------------------------------------------------- the app logic
class ChatApp:
    """What the UI and the API endpoints call (testable without a browser)."""

    def __init__(self, settings: Settings | None = None, assistant=None):
        from .pipeline import Assistant

        self.settings = settings or Settings.from_env()
        self.assistant = assistant or Assistant(self.settings)
        self._warm_lock = threading.Lock()
        self._warm_started = False
        self._answers: "OrderedDict[str, tuple[str, list[dict], Answer]]" = OrderedDict()  # message key -> answer
        self._answers_lock = threading.Lock()

    # --- library, feedback, examples, export (assistant.library / .feedback / .examples / .conversation) ---
    @property
    def library(self):
        from .library import Library

        return Library(self.assistant)

    @property
    def feedback(self):
        from .feedback import FeedbackStore

        return FeedbackStore.for_settings(self.settings)

    def examples(self) -> list[str]:
        """Example questions from the indexed corpus (see assistant.examples); none when it cannot tell."""
        from . import examples

        try:
            return examples.load(self.assistant)
        except Exception:  # noqa: BLE001 - the page works without examples
            log.debug("examples failed", exc_info=True)
            return []

    def documents(self) -> list[dict]:
        return [d.to_json() for d in self.library.documents()]

    def _remember(self, message: str, question: str, prior: list[dict], answer: Answer) -> None:
        key = _message_key(message)
        with self._answers_lock:
            self._answers[key] = (question, prior, answer)
            self._answers.move_to_end(key)
            while len(self._answers) > ANSWER_CACHE:
                self._answers.popitem(last=False)

    def recall(self, message: Any) -> tuple[str, list[dict], Answer] | None:
        """(question, earlier turns, Answer) of an assistant message this process produced, if still cached."""
        with self._answers_lock:
            return self._answers.get(_message_key(_content_text(message)))

    def turns(self, history: list | None) -> list:
        """The chat as (question, Answer or text) turns, for the Markdown export."""
        from .conversation import Turn

        out: list[Turn] = []
        for msg in history or []:
            if not isinstance(msg, dict):
                continue
            if msg.get("role") == "user":
                out.append(Turn(md_unescape(_content_text(msg.get("content"))).strip()))
            elif msg.get("role") == "assistant" and out:
                hit = self.recall(msg.get("content"))
                if hit:
                    out[-1].answer = hit[2]
                else:
                    text = _content_text(msg.get("content"))
                    out[-1].text = re.sub(r"<[^>]+>", " ", md_unescape(_EXTRAS.split(text, 1)[0])).strip()
        return [t for t in out if t.question]

    def rate(self, history: list | None, index: Any, liked: Any) -> dict:
        """Record a 👍/👎 on the assistant message at ``index`` of the chat; returns the feedback JSON."""
        from .feedback import FeedbackError

        history = list(history or [])
        i = index[0] if isinstance(index, (list, tuple)) else index
        try:
            i = int(i)
            msg = history[i]
        except (TypeError, ValueError, IndexError):
            raise FeedbackError("no such message") from None
        if not isinstance(msg, dict) or msg.get("role") != "assistant":
            raise FeedbackError("only answers can be rated")
        rating = "up" if liked is True or str(liked).lower() in ("like", "true", "up") else "down"
        hit = self.recall(msg.get("content"))
        if hit:
            question, prior, answer = hit
            data = answer.to_json()
            data["short_answer"] = short_answer(answer)
        else:  # not produced by this process (e.g. before a restart): what the page shows
            earlier = clean_history(history[:i])
            question = next((t["content"] for t in reversed(earlier) if t["role"] == "user"), "")
            prior = earlier[:-1] if earlier and earlier[-1]["role"] == "user" else earlier
            text = _content_text(msg.get("content"))
            abstained = text.lstrip().startswith('<div class="qa-abstain">')
            data = {"answer": re.sub(r"<[^>]+>", " ", md_unescape(_EXTRAS.split(text, 1)[0])).strip(),
                    "abstained": abstained, "citations": []}
        return self.feedback.add(rating, question, data, history=prior).to_json()

    # --- settings ---------------------------------------------------------------
    def backends(self) -> list[str]:
        return self.assistant.backends()

    def default_backend(self) -> str:
        names = self.backends()
        if self.settings.answerer == "llm" and len(names) > 1:
            return names[1]
        return names[0]

    def _k(self, k: Any) -> int | None:
        try:
            return max(1, min(50, int(k))) if k not in (None, "") else None
        except (TypeError, ValueError):
            return None

    def _backend(self, backend: Any) -> str | None:
        return backend if isinstance(backend, str) and backend in self.backends() else None

    # --- asking -----------------------------------------------------------------
    def ask(self, question: str, history: list | None = None, k: Any = None, backend: Any = None) -> Answer:
        """Raises QuestionError, IndexMissingError or StoreError with a one-line message."""
        self.assistant.require_index()
        return self.assistant.ask(question, history=clean_history(history) or None, k=self._k(k),
                                  backend=self._backend(backend))

    def respond(self, message: Any, history: list | None, k: Any = None, backend: Any = None,
                lang: str = "en") -> Iterator[tuple]:
        """Stream (history, sources HTML): the question at once, the growing answer, then the final message
        with its sources (``None`` for the sources, on an empty message only, means "leave the panel as it is").
        ``lang``: the language of the page's own words in the HTML ("en" or "fr"; answers keep theirs)."""
        from .pipeline import IndexMissingError, QuestionError
        from .store import StoreError

        question = _content_text(message).strip()
        history = list(history or [])
        if not question:
            yield history, None
            return
        prior = clean_history(history)
        history.append({"role": "user", "content": md_escape(question)})
        with language(lang):
            searching = f'<div class="qa-muted">{html.escape(tr("searching"))}</div>'
            placeholder = f'<div class="qa-muted">{html.escape(tr("sources_placeholder"))}</div>'
        yield history, searching
        try:
            self.assistant.require_index()
            final = None
            for item in self.assistant.stream(question, history=prior or None, k=self._k(k), backend=self._backend(backend)):
                if isinstance(item, Answer):
                    final = item
                elif item:
                    yield history + [{"role": "assistant", "content": md_escape(item)}], searching
            if final is None:
                raise RuntimeError("the answerer returned nothing")
            with language(lang):
                message, panel = answer_message(final), sources_html(final)
            self._remember(message, question, prior, final)
            yield history + [{"role": "assistant", "content": message}], panel
            return
        except QuestionError as err:
            title, detail = "err_question", str(err)
        except IndexMissingError as err:
            title, detail = "err_no_index", str(err)
        except StoreError as err:
            title, detail = "err_store", str(err)
        except Exception as err:  # noqa: BLE001 - the browser gets one clear line; the log gets the traceback
            log.exception("chat failed")
            title, detail = "err_other", error_line(err, 200)
        with language(lang):
            title = tr(title)
        yield history + [{"role": "assistant", "content": error_message(title, detail)}], placeholder

    # --- uploads ----------------------------------------------------------------
    def add_files(self, files: list | None, progress: Callable[[str, int, int], None] | None = None) -> UploadResult:
        """Validate, copy into the uploads folder and index; one bad file never stops the others."""
        from .loaders import display_path
        from .store import StoreError

        items = [_upload_name(f) for f in (files or []) if f is not None]
        rows: list[tuple[int, str, dict]] = []  # (position in the upload, "ok"/"bad", row) -> report in upload order
        limit = max(1, int(self.settings.upload_max_files))
        for i, (_, name) in enumerate(items[limit:], start=limit):
            rows.append((i, "bad", {"file": safe_filename(name) or "?", "error":
                                    f"not indexed: at most {limit} files per upload (ASSISTANT_UPLOAD_MAX_FILES)",
                                    "_msg": ("upload_too_many", {"limit": limit})}))
        max_bytes = int(float(self.settings.upload_max_mb) * 1024 * 1024)
        saved: list[tuple[int, Path, bool]] = []
        for i, (src, orig) in enumerate(items[:limit]):
            name = safe_filename(orig)
            error, msg = None, None  # msg: the reason's key and values in ui_i18n, for the page
            kind = kind_of(name)
            if src is None or not src.is_file():
                error, msg = "the upload did not arrive; try again", ("upload_lost", {})
            elif kind is None:
                ext, supported = os.path.splitext(name)[1] or "(none)", ", ".join(sorted(SUPPORTED))
                error = f"unsupported file type {ext}; supported: {supported}"
                msg = ("upload_type", {"ext": ext, "supported": supported})
            elif src.stat().st_size > max_bytes:
                mb, limit_mb = f"{src.stat().st_size / 1048576:.1f}", f"{float(self.settings.upload_max_mb):g}"
                error = f"file is {mb} MB; the limit is {limit_mb} MB (ASSISTANT_UPLOAD_MAX_MB)"
                msg = ("upload_size", {"mb": mb, "limit": limit_mb})
            else:
                error = sniff(src, kind)
            if error is None:
                try:
                    path, created = store_upload(src, name, self.settings.uploads_path)
                    saved.append((i, path, created))
                    continue
                except (OSError, ValueError) as err:
                    error = f"cannot store the upload: {getattr(err, 'strerror', None) or err}"
            rows.append((i, "bad", {"file": name or "?", "error": error, **({"_msg": msg} if msg else {})}))
        result = UploadResult()
        if saved:
            failed: dict[str, str] = {}
            try:
                report = self.assistant.index([p for _, p, _ in saved], progress=progress, show_progress=False)
                result.report = _public_report(report.to_json())
                failed = {str(Path(f["path"]).resolve()): f["error"] for f in report.failed}
            except StoreError as err:
                failed = {str(p.resolve()): str(err) for _, p, _ in saved}
            except Exception as err:  # noqa: BLE001 - report it on every file of the batch, keep serving
                log.exception("indexing uploads failed")
                failed = {str(p.resolve()): f"indexing failed: {error_line(err, 200)}"
                          for _, p, _ in saved}
            for i, path, created in saved:
                err = failed.get(str(path.resolve()))
                if err:
                    rows.append((i, "bad", {"file": path.name, "error": err}))
                    if created:  # keep the uploads folder to what is searchable
                        path.unlink(missing_ok=True)
                else:
                    rows.append((i, "ok", {"file": path.name, "source": display_path(path),
                                           "status": "indexed" if created else "already indexed"}))
        for _, kind_, row in sorted(rows, key=lambda r: r[0]):
            (result.indexed if kind_ == "ok" else result.failed).append(row)
        return result

    def refresh_examples_soon(self) -> None:
        """After the corpus changed: check the new candidate examples in the background (once the model is loaded)."""
        if not getattr(self.assistant.embedder, "_ready", True):
            return  # the warm-up thread checks them when the model has loaded

        def run():
            try:
                from . import examples

                examples.verify(self.assistant)
            except Exception:  # noqa: BLE001
                log.debug("checking the examples failed", exc_info=True)

        threading.Thread(target=run, name="assistant-examples", daemon=True).start()

    def warm_up_soon(self) -> None:
        """Load the models in the background, once: called when a page opens, so that they load while the
        visitor types the first question rather than at start-up (which stays fast) or on the first answer."""
        with self._warm_lock:
            if self._warm_started:
                return
            self._warm_started = True

        def run():
            try:
                self.assistant.warm_up()
            except Exception:  # noqa: BLE001 - the first question reports the problem clearly
                log.debug("warm-up failed", exc_info=True)
                return
            try:  # keep the corpus's example questions to those the assistant answers (cached per index version)
                from . import examples

                examples.verify(self.assistant)
            except Exception:  # noqa: BLE001
                log.debug("checking the examples failed", exc_info=True)

        threading.Thread(target=run, name="assistant-warm-up", daemon=True).start()

    def status(self) -> dict:
        try:
            return self.assistant.status()
        except Exception as err:  # noqa: BLE001
            return {"embedding_model": getattr(self.assistant.embedder, "model_id", "?"), "documents": 0, "chunks": 0,
                    "error": error_line(err, 200)}
