"""Loaders: a file on disk -> a :class:`Document` (text + structural blocks).

Supported: ``.txt``, ``.md``/``.markdown``, ``.html``/``.htm``, ``.pdf``, ``.docx``.
A file that cannot be read raises :class:`LoadError` with a one-line reason;
the indexer skips it and lists it, and everything else is indexed.

The extracted ``Document.text`` is the concatenation of blocks separated by a
blank line, so that "paragraph n" is the n-th blank-line separated block and
character offsets stay meaningful for citations.

Why one file over 450 lines: five small extractors (one per format, each 30-60 lines) share the paragraph
type, the deadline and the checks of :class:`DocumentLoader`; a new type is one function given to
:func:`register_loader`, not a new module.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import time
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from .schema import Block, Document
from .text import error_line

SUPPORTED = {".txt": "txt", ".text": "txt", ".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".pdf": "pdf", ".docx": "docx"}

# Zip-bomb guards for docx: total uncompressed bytes and the worst compression ratio accepted.
MAX_DOCX_UNCOMPRESSED = 300 * 1024 * 1024
MAX_ZIP_RATIO = 200
MAX_HTML_BYTES = 20 * 1024 * 1024


class LoadError(Exception):
    """A file that cannot be indexed; ``str(err)`` is a one-line reason.

    ``unexpected``: an exception raised inside a reader (pypdf, python-docx, trafilatura, ours) rather than a
    reason the loader gave; it is the ``__cause__``, whose traceback the indexer logs (``assistant.health``)."""

    unexpected = False


class FileTimeout(LoadError):
    """A file whose reading and chunking went over its time budget (``file_timeout``)."""


class Deadline:
    """The time budget of one file, checked between pieces of work.

    The loaders check it between pages, paragraphs and lines, the chunker between blocks, sentences and the pieces
    of a long sentence: every piece is bounded (the stages are linear), so an expired budget is noticed within a
    fraction of a second and :class:`FileTimeout` unwinds the file's work cleanly, in the thread that does it.
    A check cannot interrupt one call into a third-party extractor (trafilatura on one HTML page); the indexer's
    watchdog covers that case (see ``Indexer._process``). ``seconds <= 0``: no budget.

    >>> Deadline(0).check()  # never expires
    """

    def __init__(self, seconds: float):
        self.seconds = float(seconds)
        self.end = time.monotonic() + self.seconds if self.seconds > 0 else float("inf")

    def expired(self) -> bool:
        return time.monotonic() > self.end

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise FileTimeout(timeout_reason(self.seconds))


def timeout_reason(seconds: float) -> str:
    return (f"took longer than {seconds:g} s to read; raise ASSISTANT_FILE_TIMEOUT (seconds, now {seconds:g}) "
            "to give such files more time")


_NO_DEADLINE = Deadline(0)


@dataclass
class _Para:
    text: str
    page: int | None = None
    section: str = ""
    heading: bool = False


# --------------------------------------------------------------------------- discovery
def kind_of(path: str | Path) -> str | None:
    return SUPPORTED.get(Path(path).suffix.lower())


def discover(paths: Iterable[str | Path], exclude: Iterable[str | Path] = ()) -> tuple[list[Path], list[Path]]:
    """Expand files and folders into (supported files, ignored files), sorted.

    Hidden files and folders (``.git`` …) and the ``exclude`` folders (the index
    itself) are not descended into.
    """
    excluded = {Path(p).resolve() for p in exclude}
    found: dict[Path, None] = {}
    ignored: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise FileNotFoundError(f"no such file or folder: {raw}")
        if p.is_file():
            (found.__setitem__(p, None) if kind_of(p) else ignored.append(p))
            continue
        for root, dirs, files in os.walk(p, followlinks=False):
            rp = Path(root)
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and _resolved(rp / d) not in excluded)
            for name in sorted(files):
                if name.startswith("."):
                    continue
                f = rp / name
                (found.__setitem__(f, None) if kind_of(f) else ignored.append(f))
    return sorted(found), sorted(ignored)


def _resolved(path: Path) -> Path | None:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        return None


def display_path(path: Path) -> str:
    """Path shown in citations: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


# --------------------------------------------------------------------------- loader
class DocumentLoader:
    """Reads one file into a :class:`Document`.

    >>> doc = DocumentLoader().run("seeds/000_aa041678daf2c786.txt")
    >>> doc.kind, len(doc.blocks) > 0
    ('txt', True)
    """

    def __init__(self, max_file_mb: float = 100.0):
        self.max_bytes = int(max_file_mb * 1024 * 1024)

    def run(self, path: str | Path, data: bytes | None = None, source: str | None = None,
            deadline: Deadline | None = None) -> Document:
        """The document of ``path`` (or of ``data``); :class:`LoadError` with a reason when it cannot be read, or
        :class:`FileTimeout` when ``deadline`` expires before it is read."""
        deadline = deadline or _NO_DEADLINE
        path = Path(path)
        kind = kind_of(path)
        if kind is None:
            raise LoadError(f"unsupported file type {path.suffix or '(none)'!r}")
        if data is None:
            try:
                st = path.stat()
                if not stat.S_ISREG(st.st_mode):  # a named pipe would block the read forever; devices never end
                    raise LoadError("not a regular file (a pipe, socket or device)")
                size = st.st_size
                if size > self.max_bytes:
                    raise LoadError(f"file is {size / 1e6:.1f} MB, over the {self.max_bytes / 1e6:.0f} MB limit")
                with open(path, "rb") as fh:
                    # read(n) allocates n bytes up front: the file's size, not the limit (100 MB for every file read)
                    data = fh.read(size + 1)
                    if len(data) > size:  # it grew since stat: the rest, up to the limit
                        data += fh.read(self.max_bytes + 1 - len(data))
            except PermissionError:
                raise LoadError("permission denied") from None
            except IsADirectoryError:
                raise LoadError("is a directory") from None
            except OSError as err:
                raise LoadError(f"cannot read file: {err.strerror or err}") from None
        if len(data) > self.max_bytes:
            raise LoadError(f"file is over the {self.max_bytes / 1e6:.0f} MB limit")
        if not data.strip():
            raise LoadError("empty file")
        try:
            paras, title = _EXTRACTORS[kind](data, deadline)
            deadline.check()
        except LoadError:
            raise
        except RecursionError:
            raise LoadError(f"{kind} structure is too deeply nested to read") from None
        except MemoryError:
            raise LoadError("file is too large to extract in memory") from None
        except Exception as err:  # a broken file must never stop the run
            msg = error_line(err)
            failure = LoadError(f"cannot read {kind}: {msg[:200]}")
            failure.unexpected = True  # the one-line reason for the report; the traceback (the cause) for the log
            raise failure from err
        doc = _assemble(paras)
        if not doc.text.strip():
            raise LoadError("no extractable text" + (" (scanned PDF? OCR is not supported)" if kind == "pdf" else ""))
        doc.source = source or display_path(path)
        doc.kind = kind
        doc.title = title
        doc.file_hash = hashlib.sha256(data).hexdigest()
        return doc


def _assemble(paras: list[_Para]) -> Document:
    parts: list[str] = []
    blocks: list[Block] = []
    pos = 0
    for p in paras:
        t = p.text.strip()
        if not t:
            continue
        if parts:
            parts.append("\n\n")
            pos += 2
        blocks.append(Block(start=pos, end=pos + len(t), page=p.page, section=p.section))
        parts.append(t)
        pos += len(t)
    return Document(source="", text="".join(parts), blocks=blocks)


# --------------------------------------------------------------------------- text helpers
_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    text = _CTRL.sub("", text)
    return unicodedata.normalize("NFC", text)


def _looks_binary(data: bytes) -> bool:
    head = data[:8192]
    if b"\x00" in head:
        return True
    ctrl = sum(1 for b in head if b < 9 or 13 < b < 32)
    return ctrl > len(head) * 0.05


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM) first, else the detected encoding."""
    for bom, enc in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            text = data.decode(enc, errors="replace")
            if text.count("\ufffd") > len(text) * 0.01:
                raise LoadError(f"binary content, not {enc} text")
            return text
    if _looks_binary(data):
        raise LoadError("binary content, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data[:200_000]).best()
    enc = best.encoding if best is not None else None
    # Short Western texts are often mistaken for another Latin code page ("Fougères" read as cp1250 "Fougčres").
    # When the detector picks a Latin-script code page and Windows-1252 decodes cleanly, prefer Windows-1252,
    # the superset of Latin-1 that French and English files actually use.
    if enc is None or enc.replace("-", "_").lower() in _LATIN_FAMILY:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            if enc is None:
                raise LoadError("unknown text encoding") from None
    return data.decode(enc, errors="replace")


_LATIN_FAMILY = {"ascii", "utf_8", "cp1250", "cp1252", "cp1254", "cp1257", "latin_1", "cp850", "cp437", "cp858",
                 "mac_roman", "mac_latin2", "mac_iceland", "mac_turkish"} | {f"iso8859_{n}" for n in (1, 2, 3, 4, 9, 10, 13, 14, 15, 16)}


def _split_paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n[ \t]*\n+", text) if p.strip()]


# --------------------------------------------------------------------------- txt
def _load_txt(data: bytes, deadline: Deadline = _NO_DEADLINE) -> tuple[list[_Para], str]:
    text = _clean(decode_text(data))
    return [_Para(p) for p in _split_paragraphs(text)], ""


# --------------------------------------------------------------------------- markdown
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
# Every pattern scans a bounded distance from where it starts (link and image texts up to 500 characters, their URL up
# to 2,000, emphasis up to 500): unbounded, each unclosed "[" or "**" of a long line scanned to the end of the line,
# which made a 2 MB paragraph with a few thousand of them quadratic. Longer spans keep their markers.
_MD_INLINE = [
    (re.compile(r"!\[([^\]]{0,500})\]\([^)]{0,2000}\)"), r"\1"),  # images -> alt text
    (re.compile(r"\[([^\]]{1,500})\]\([^)]{0,2000}\)"), r"\1"),  # links -> text
    (re.compile(r"(\*\*|__)(?=\S)(.{1,500}?)(?<=\S)\1"), r"\2"),  # bold
    (re.compile(r"(?<![\w*])\*(?=\S)(.{1,500}?)(?<=\S)\*(?![\w*])"), r"\1"),  # italics
    (re.compile(r"`([^`]+)`"), r"\1"),  # inline code (scans to the next backtick only: linear)
]


def _md_inline(text: str) -> str:
    for pat, rep in _MD_INLINE:
        text = pat.sub(rep, text)
    return text


def markdown_paragraphs(text: str, page: int | None = None, deadline: Deadline = _NO_DEADLINE) -> list[_Para]:
    """Paragraphs of a markdown text, with each heading recorded as the section of what follows."""
    paras: list[_Para] = []
    section = ""
    buf: list[str] = []
    in_fence = False

    def flush():
        if buf:
            joined = "\n".join(buf).strip()
            if joined:
                paras.append(_Para(_md_inline(joined), page, section))
            buf.clear()

    for i, line in enumerate(text.split("\n")):
        if not i % 1000:
            deadline.check()
        if line.strip().startswith("```"):
            in_fence = not in_fence  # the fence markers themselves are not content
            continue
        m = None if in_fence else _HEADING.match(line)
        if m:
            flush()
            section = _md_inline(m.group(2).strip())
            paras.append(_Para(section, page, section, heading=True))
        elif not line.strip() and not in_fence:
            flush()
        else:
            buf.append(line)
    flush()
    return paras


def _load_md(data: bytes, deadline: Deadline = _NO_DEADLINE) -> tuple[list[_Para], str]:
    text = _clean(decode_text(data))
    if text.startswith("---\n"):  # YAML front matter
        end = text.find("\n---", 4)
        if end != -1:
            text = text[end + 4 :]
    paras = markdown_paragraphs(text, deadline=deadline)
    title = next((p.text for p in paras if p.heading), "")
    return paras, title


# --------------------------------------------------------------------------- html
_TRAF_CONFIG = None


def _trafilatura_config():
    """trafilatura's defaults, except its own size cap (20,000,000 characters), which silently returned nothing
    for pages between that and our MAX_HTML_BYTES: the pages we accept are the pages it reads."""
    global _TRAF_CONFIG
    if _TRAF_CONFIG is None:
        from copy import deepcopy

        from trafilatura.settings import DEFAULT_CONFIG

        cfg = deepcopy(DEFAULT_CONFIG)
        cfg.set("DEFAULT", "max_file_size", str(MAX_HTML_BYTES + 1))
        _TRAF_CONFIG = cfg
    return _TRAF_CONFIG


def _load_html(data: bytes, deadline: Deadline = _NO_DEADLINE) -> tuple[list[_Para], str]:
    if len(data) > MAX_HTML_BYTES:
        raise LoadError(f"HTML page over {MAX_HTML_BYTES // (1024 * 1024)} MB")
    html = decode_text(data)
    import trafilatura

    md = trafilatura.extract(html, output_format="markdown", include_tables=True, include_comments=False,
                             include_links=False, include_images=False, deduplicate=False,
                             config=_trafilatura_config())
    deadline.check()
    if not md or len(md.strip()) < 20:
        # very short pages: trafilatura's precision filters may drop everything
        md = trafilatura.extract(html, output_format="markdown", include_tables=True, include_comments=False,
                                 favor_recall=True, config=_trafilatura_config())
    deadline.check()
    if not md:
        from trafilatura import baseline

        _, md, _ = baseline(html)
    if not (md or "").strip():
        # lxml (under trafilatura) drops a page with a text node over 10 MB ("discarding data"): read its text
        # with the standard library's parser, which has no such limit and is linear
        md = _html_text(html, deadline)
    title = ""
    try:
        # only the title is used: extensive=False skips htmldate's extensive date search, whose dateparser regexes
        # cost ~1.5 s on a process's first page and ~20 ms a page after (the title found is the same)
        meta = trafilatura.extract_metadata(html, extensive=False)
        title = (meta.title or "") if meta else ""
    except Exception:
        pass
    deadline.check()
    if len(html) > _HTML_CACHE_CLEAR:
        _clear_trafilatura_caches()
    return [_soft_unwrap(p) for p in markdown_paragraphs(_clean(md or ""), deadline=deadline)], title


# trafilatura caches its text helpers (trim, line_processing …) by their argument: after a large page they keep copies
# of its text for the life of the process (10 MB after a 2 MB page). Cleared after a page over this many characters,
# kept for ordinary pages (they speed up the next ones).
_HTML_CACHE_CLEAR = 1_000_000


def _clear_trafilatura_caches() -> None:
    try:
        from trafilatura import utils
    except ImportError:
        return
    for name in ("trim", "line_processing", "return_printables_and_spaces"):
        clear = getattr(getattr(utils, name, None), "cache_clear", None)
        if clear is not None:
            clear()


def _html_text(html: str, deadline: Deadline = _NO_DEADLINE) -> str:
    """The visible text of a page by ``html.parser`` (blocks become paragraphs; script/style dropped)."""
    from html.parser import HTMLParser

    blocks = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "td", "pre"}

    class _Text(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.parts: list[str] = []
            self.skip = 0

        def handle_starttag(self, tag, attrs):
            if tag in ("script", "style", "noscript", "template"):
                self.skip += 1
            elif tag in blocks:
                self.parts.append("\n\n")

        def handle_endtag(self, tag):
            if tag in ("script", "style", "noscript", "template") and self.skip:
                self.skip -= 1
            elif tag in blocks:
                self.parts.append("\n\n")

        def handle_data(self, data):
            if not self.skip:
                self.parts.append(data)

    parser = _Text()
    step = 1 << 20
    for i in range(0, len(html), step):  # fed in 1 MB pieces: the file's time budget is checked between them
        deadline.check()
        parser.feed(html[i:i + step])
    parser.close()
    return "".join(parser.parts)


# A line break and the spaces around it. The look-behind makes a match start where a run of spaces starts (as the
# leftmost match would anyway; a line break right after a match is the second branch): a long run of spaces with no
# line break after it is scanned once, not once per space.
_LINE_BREAK = re.compile(r"(?<![ \t])[ \t]*\n[ \t]*|\n[ \t]*")
_STRUCTURED_LINE = re.compile(r"^\s*(?:[-*+•]\s|\d+[.)]\s|\||#|>|\$ |# )|^\s{4,}|\t")


def _soft_unwrap(p: _Para) -> _Para:
    """HTML source line breaks inside running text become spaces (code, lists and tables keep theirs)."""
    lines = p.text.split("\n")
    if len(lines) < 2 or any(_STRUCTURED_LINE.match(line) for line in lines):
        return p
    p.text = _LINE_BREAK.sub(" ", p.text)
    return p


# --------------------------------------------------------------------------- pdf
_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")


def _unwrap(par: str) -> str:
    par = _HYPHEN_BREAK.sub(r"\1\2", par)
    return _LINE_BREAK.sub(" ", par).strip()


def _load_pdf(data: bytes, deadline: Deadline = _NO_DEADLINE) -> tuple[list[_Para], str]:
    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise LoadError("not a PDF (content does not match the .pdf extension)")
    import logging

    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        try:
            if not reader.decrypt(""):
                raise LoadError("encrypted PDF (password required)")
        except LoadError:
            raise
        except Exception:
            raise LoadError("encrypted PDF (password required)") from None
    paras: list[_Para] = []
    title = ""
    try:
        title = str((reader.metadata or {}).get("/Title") or "")
    except Exception:
        pass
    for i, page in enumerate(reader.pages, start=1):
        deadline.check()
        text = _clean(page.extract_text() or "")
        chunks = _split_paragraphs(text)
        if len(chunks) <= 1 and text.count("\n") > 3:
            # no blank lines: start a paragraph after lines that end a sentence
            chunks = [c for c in re.split(r"(?<=[.!?:])[ \t]*\n(?=[A-ZÀ-Ý0-9•\-–])", text) if c.strip()]
        for c in chunks:
            paras.append(_Para(_unwrap(c), page=i))
    return paras, title


# --------------------------------------------------------------------------- docx
def _check_zip(data: bytes) -> None:
    if not data.startswith(b"PK"):
        raise LoadError("not a DOCX (content is not a zip archive)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise LoadError("corrupt DOCX (bad zip archive)") from None
    with zf:
        names = set(zf.namelist())
        if "word/document.xml" not in names:
            raise LoadError("not a DOCX (no word/document.xml)")
        total = 0
        for info in zf.infolist():
            total += info.file_size
            if info.compress_size and info.file_size / max(info.compress_size, 1) > MAX_ZIP_RATIO and info.file_size > 10 * 1024 * 1024:
                raise LoadError("refused: DOCX member expands suspiciously (zip bomb?)")
        if total > MAX_DOCX_UNCOMPRESSED:
            raise LoadError(f"refused: DOCX expands to {total / 1e6:.0f} MB (zip bomb?)")


def _load_docx(data: bytes, deadline: Deadline = _NO_DEADLINE) -> tuple[list[_Para], str]:
    _check_zip(data)
    import docx  # python-docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    from docx.enum.style import WD_STYLE_TYPE

    d = docx.Document(io.BytesIO(data))
    paras: list[_Para] = []
    section = ""
    body = d.element.body
    # paragraph style names looked up once: python-docx's ``Paragraph.style`` scans every style of the document for
    # each paragraph (a DOCX of 200k paragraphs took minutes in it)
    styles = {s.style_id: s.name or "" for s in d.styles if s.type == WD_STYLE_TYPE.PARAGRAPH}
    default = d.styles.default(WD_STYLE_TYPE.PARAGRAPH)
    default_name = (default.name or "") if default is not None else ""
    for n, child in enumerate(body.iterchildren()):
        if not n % 500:
            deadline.check()
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            p = Paragraph(child, d)
            text = p.text.strip()
            if not text:
                continue
            style = styles.get(child.style, default_name) if child.style else default_name
            if style.lower().startswith(("heading", "titre", "title")):
                section = text
                paras.append(_Para(text, None, section, heading=True))
            else:
                paras.append(_Para(text, None, section))
        elif tag == "tbl":
            t = Table(child, d)
            rows = []
            for row in t.rows:
                cells = []
                for cell in row.cells:
                    ct = cell.text.strip()
                    if ct and (not cells or cells[-1] != ct):  # merged cells repeat
                        cells.append(ct)
                if cells:
                    rows.append(" | ".join(cells))
            if rows:
                paras.append(_Para("\n".join(rows), None, section))
    title = ""
    try:
        title = d.core_properties.title or ""
    except Exception:
        pass
    return paras, title


_EXTRACTORS = {"txt": _load_txt, "md": _load_md, "html": _load_html, "pdf": _load_pdf, "docx": _load_docx}
Paragraph = _Para  # what an extractor returns: text, page, section, whether it is a heading


def register_loader(kind: str, suffixes: Iterable[str], extract) -> None:
    """Add a file type: files ending in ``suffixes`` (``".csv"``) are read by ``extract(data: bytes, deadline) ->
    (paragraphs: list[Paragraph], title: str)``, which calls ``deadline.check()`` in long loops and raises
    :class:`LoadError` with a one-line reason for a file it cannot read. The loader's checks (size, empty file,
    time limit, a failure that skips the file and reports it) apply to it as to the built-in types."""
    _EXTRACTORS[kind] = extract
    for suffix in suffixes:
        SUPPORTED[suffix.lower()] = kind


def iter_documents(files: Iterable[Path], loader: DocumentLoader) -> Iterator[tuple[Path, Document | None, str | None]]:
    """(path, document or None, error or None) for each file."""
    for f in files:
        try:
            yield f, loader.run(f), None
        except LoadError as err:
            yield f, None, str(err)
