"""Uploaded files: a safe name inside the uploads folder, a content check against the extension, the copy, the report.

:func:`safe_filename` keeps a browser-sent name to one harmless path component, :func:`sniff` refuses content
that does not match its extension, :func:`store_upload` copies into the uploads folder without ever leaving it
or overwriting, :func:`upload_hard_limit` is the size Gradio itself accepts and :class:`UploadResult` is the
per-file report (JSON for the API, HTML for the page). ``ChatApp.add_files`` (``assistant.ui_app``) puts them together.
"""
import html
import os
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Settings
from .offline import file_sha256
from .ui_i18n import language, tr

__all__ = ["safe_filename", "sniff", "UploadResult", "store_upload", "upload_hard_limit"]

# --------------------------------------------------------------------------- uploads
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BINARY_MAGIC = (b"%PDF", b"PK\x03\x04", b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"\x7fELF", b"MZ", b"\xd0\xcf\x11\xe0")


def safe_filename(name: str) -> str:
    """A file name safe to create inside the uploads folder: no folders, no control characters, no dot files.

    Only the last path component is kept (``../../etc/passwd.txt`` -> ``passwd.txt``, Windows paths too),
    NUL and control characters go, other unusual characters become ``_``, the extension is lower-cased
    and the name is kept well under the file system's 255-byte limit.
    """
    name = unicodedata.normalize("NFC", str(name or ""))
    name = name.replace("\x00", "")
    name = re.split(r"[\\/]", name)[-1]
    name = _CONTROL.sub("", name)
    name = re.sub(r"[^\w.\- ()+,@]+", "_", name)  # \w is Unicode: accented names stay readable
    name = re.sub(r"\s+", " ", name).strip(" ._")
    stem, ext = os.path.splitext(name)
    if not stem:
        stem, ext = (ext.lstrip(".") or "upload"), ""
    ext = ext.lower()[:12]
    while len(stem.encode("utf-8")) > 150:
        stem = stem[:-1]
    return stem.rstrip(" .") + ext


def sniff(path: Path, kind: str) -> str | None:
    """Why the content does not match the extension (None when it does)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8192)
    except OSError as err:
        return f"cannot read the upload: {err.strerror or err}"
    if not head.strip():
        return "empty file"
    if kind == "pdf":
        return None if head.lstrip()[:5].startswith(b"%PDF") else "not a PDF: the content does not start with %PDF"
    if kind == "docx":
        try:
            with zipfile.ZipFile(path) as zf:
                if "word/document.xml" not in zf.namelist():
                    return "not a Word document: the .docx archive has no word/document.xml"
        except (zipfile.BadZipFile, OSError):
            return "not a Word document: the .docx file is not a valid zip archive"
        return None
    # txt, md, html: text, not a binary format renamed
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None
    if head.startswith(_BINARY_MAGIC) or b"\x00" in head:
        return f"binary content, not a .{kind} text file"
    return None


@dataclass
class UploadResult:
    indexed: list[dict] = field(default_factory=list)  # {file, source, status}
    failed: list[dict] = field(default_factory=list)  # {file, error}
    report: dict | None = None

    def to_json(self) -> dict:
        def public(rows: list[dict]) -> list[dict]:
            return [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]

        return {"indexed": public(self.indexed), "failed": public(self.failed), "report": self.report}

    def to_html(self, lang: str | None = None) -> str:
        """The per-file report, in ``lang`` (default: the current language); the reasons the app itself gives are
        translated (``_msg``: key and values), those of the readers are shown as they are."""
        if lang is not None:
            with language(lang):
                return self.to_html()

        def reason(f: dict) -> str:
            msg = f.get("_msg")
            return tr(msg[0], **msg[1]) if msg else str(f.get("error", ""))

        rows = []
        for f in self.indexed:
            status = {"indexed": tr("upload_indexed"), "already indexed": tr("upload_already")}.get(f["status"], f["status"])
            rows.append(f'<li class="qa-ok">✓ <b>{html.escape(f["file"])}</b> — {html.escape(status)}</li>')
        for f in self.failed:
            rows.append(f'<li class="qa-bad">✗ <b>{html.escape(f["file"])}</b> — {html.escape(reason(f))}</li>')
        if not rows:
            return f'<div class="qa-muted">{html.escape(tr("upload_none"))}</div>'
        n_ok, n_bad = len(self.indexed), len(self.failed)
        head = (tr("upload_head_1") if n_ok == 1 else tr("upload_head", n=n_ok)) + (
            "" if not n_bad else tr("upload_failed_1") if n_bad == 1 else tr("upload_failed", n=n_bad))
        return f'<div class="qa-upload"><div>{html.escape(head)}</div><ul>{"".join(rows)}</ul></div>'


def _public_report(report: dict) -> dict:
    """IndexReport JSON without server paths (failures are listed per file in UploadResult.failed).

    Also, gradio_client would take any ``{"path": ...}`` dict in an output for a file to download.
    """
    files = dict(report.get("files", {}))
    files["failed"] = len(files.get("failed") or [])
    if "ignored" in files:
        files["ignored"] = len(files["ignored"])
    return {**report, "files": files}


def _upload_name(item: Any) -> tuple[Path | None, str]:
    """(server path, original name) of a Gradio upload (a path string or a FileData-like object)."""
    if item is None:
        return None, ""
    if isinstance(item, (str, Path)):
        p = Path(item)
        return p, p.name
    if isinstance(item, dict):
        p = item.get("path") or item.get("name")
        return (Path(p) if p else None), str(item.get("orig_name") or (Path(p).name if p else ""))
    p = getattr(item, "path", None) or getattr(item, "name", None)
    return (Path(p) if p else None), str(getattr(item, "orig_name", None) or (Path(p).name if p else ""))


def store_upload(src: Path, name: str, uploads: Path) -> tuple[Path, bool]:
    """Copy ``src`` into ``uploads`` as ``name`` (suffixed on a clash); returns (path, created).

    An identical file already there is reused rather than duplicated.
    """
    uploads.mkdir(parents=True, exist_ok=True)
    root = uploads.resolve()
    stem, ext = os.path.splitext(name)
    digest = file_sha256(src)
    for i in range(1, 1000):
        candidate = root / (name if i == 1 else f"{stem}-{i}{ext}")
        if candidate.resolve().parent != root or candidate.is_symlink():
            raise ValueError("refused: file name escapes the uploads folder")
        if candidate.exists():
            if candidate.is_file() and file_sha256(candidate) == digest:
                return candidate, False
            continue
        try:  # O_EXCL: claims the name atomically, even against a concurrent upload; never follows a link
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except FileExistsError:
            continue
        try:
            with os.fdopen(fd, "wb") as out, open(src, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    out.write(block)
        except BaseException:
            candidate.unlink(missing_ok=True)
            raise
        return candidate, True
    raise ValueError("too many files with this name in the uploads folder")


def upload_hard_limit(settings: Settings) -> int:
    """Bytes Gradio itself accepts per uploaded file.

    Above ``upload_max_mb`` but bounded: a file between the two limits gets our per-file message and the
    other files of the upload still index; a huge one is refused by Gradio before it fills the disk.
    """
    return int((2 * float(settings.upload_max_mb) + 1) * 1024 * 1024)
