"""Linearity of ingestion: every loading and chunking stage must grow at most linearly with its input.

    python -m bench.linearity                       # sizes 1,2,8,20 MB, table in bench/LINEARITY.md
    python -m bench.linearity --sizes 0.5,2 --out /tmp/lin.md --inputs line-words,cjk

Pathological inputs are generated in a temporary folder at each size (MB of file, or the equivalent page, line or
depth count), then each (input, size) runs in its own child process, which times the stages separately:

* ``load``      ``DocumentLoader.run`` (reading, decoding, the txt/md/html/pdf/docx extractor)
* ``sentences`` ``iter_sentence_spans`` over every block (the splitter, without ``sentence_spans``' list)
* ``chunk``     ``Chunker.run`` (sentence splitting again, token counting, cutting, packing)
* ``lexical``   ``lexical_tokens`` of every chunk (what BM25 indexes) and ``dictionary_words`` (the lexicon's input)

and reports its peak RSS above what the imports took, overall and per stage (the stage's high-water mark above the
RSS it started with: ``VmHWM`` of ``/proc/self/status``, reset through ``/proc/self/clear_refs`` before each stage),
with no tracemalloc overhead distorting the times. A second child process runs the same stages under ``tracemalloc``
and reports each stage's peak of Python allocations above what it started with (``--no-tracemalloc``: skip that
pass). No embedding: that is linear by construction (chunks are embedded in batches).

Bounds checked (the exit status is 1 when one breaks):

* time(largest) <= 15/10 x (largest / reference) x time(reference) for load + chunk + lexical and for each stage,
  the reference being 2 MB when measured (time(20 MB) <= 15 x time(2 MB)), else the smallest size; times under
  0.05 s count as 0.05 s (timer noise and fixed costs would make ratios of milliseconds meaningless);
* the same bound for the peak memory above the imports (RSS), and for each stage's peak (RSS and tracemalloc);
  peaks under 20 MB count as 20 MB;
* loading + chunking a 20 MB single line of words in 30 s or less.

This module is standalone: it is not part of ``python -m bench``'s main run.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # python bench/linearity.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "bench"

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
MB = 1_000_000
SLOPE = 1.5  # time(20 MB) <= 15 x time(2 MB): 1.5 x the size ratio
TIME_FLOOR = 0.05
MEM_FLOOR = 20.0
LINE_20MB_SECONDS = 30.0

_WORDS = ("le port de brest accueille chaque ete une grande fete maritime des centaines de voiliers traditionnels "
          "y participent la ville de quimper est connue pour ses faiences peintes a la main the harbour master "
          "records every ship that enters and leaves the port before dawn with the tide").split()
_CJK = "".join(chr(c) for c in range(0x4E00, 0x4E00 + 400)) + "的一是了我不人在他有这个上们来到时大地为子中你说生"


# --------------------------------------------------------------------------- inputs
def _words(n_chars: int, rnd: random.Random) -> str:
    out, total = [], 0
    while total < n_chars:
        w = rnd.choice(_WORDS)
        out.append(w)
        total += len(w) + 1
    return " ".join(out)[:n_chars].rstrip()


def gen_line_words(path: Path, mb: float, rnd: random.Random) -> Path:
    """One line of words, no punctuation (a log line, a minified export)."""
    p = path.with_suffix(".txt")
    p.write_text(_words(int(mb * MB), rnd), encoding="utf-8")
    return p


def gen_line_md(path: Path, mb: float, rnd: random.Random) -> Path:
    """The same single line as Markdown, with unclosed inline markers (``**``, ``*``, ``[``, `` ` ``) in it."""
    p = path.with_suffix(".md")
    text = _words(int(mb * MB), rnd).split(" ")
    marks = ["**", "*", "[", "`", "_", "!["]
    for i in range(0, len(text), 50):
        text[i] = marks[(i // 50) % len(marks)] + text[i]
    p.write_text("# Titre\n\n" + " ".join(text), encoding="utf-8")
    return p


def gen_one_word(path: Path, mb: float, rnd: random.Random) -> Path:
    """One "word" of letters, no space at all."""
    p = path.with_suffix(".txt")
    letters = "abcdefghijklmnopqrstuvwxyz"
    n = int(mb * MB)
    block = "".join(rnd.choice(letters) for _ in range(100_000))
    p.write_text((block * (n // len(block) + 1))[:n], encoding="utf-8")
    return p


def gen_repeated_word(path: Path, mb: float, rnd: random.Random) -> Path:
    """One line of one word repeated (every chunk has the same text)."""
    p = path.with_suffix(".txt")
    n = int(mb * MB)
    p.write_text(("phare " * (n // 6 + 1))[:n].rstrip(), encoding="utf-8")
    return p


def gen_short_lines(path: Path, mb: float, rnd: random.Random) -> Path:
    """Short lines without punctuation, no blank line: 100k lines at 2 MB (one paragraph of 100k lines)."""
    p = path.with_suffix(".txt")
    n_lines = int(mb * 50_000)
    p.write_text("\n".join(" ".join(rnd.choice(_WORDS) for _ in range(3)) for _ in range(n_lines)), encoding="utf-8")
    return p


def gen_long_lines(path: Path, mb: float, rnd: random.Random) -> Path:
    """Lines of ~60 characters without punctuation and no blank line: running text with hard line wraps."""
    p = path.with_suffix(".txt")
    n_lines = int(mb * MB / 61)
    p.write_text("\n".join(_words(60, rnd) for _ in range(n_lines)), encoding="utf-8")
    return p


def gen_cjk(path: Path, mb: float, rnd: random.Random) -> Path:
    """CJK text without spaces or punctuation, one line (MB of UTF-8: 3 bytes a character)."""
    p = path.with_suffix(".txt")
    n = int(mb * MB / 3)
    block = "".join(rnd.choice(_CJK) for _ in range(50_000))
    p.write_text((block * (n // len(block) + 1))[:n], encoding="utf-8")
    return p


def gen_html_deep(path: Path, mb: float, rnd: random.Random) -> Path:
    """Nested <div>s with a sentence in each: 20,000 deep at 2 MB."""
    p = path.with_suffix(".html")
    depth = int(mb * 10_000)
    parts = ["<html><body>"]
    for i in range(depth):
        parts.append(f"<div>Niveau {i} {_words(80, rnd)}.")
    parts.append("</div>" * depth + "</body></html>")
    p.write_text("".join(parts), encoding="utf-8")
    return p


def gen_html_line(path: Path, mb: float, rnd: random.Random) -> Path:
    """One <p> holding a single line of words."""
    p = path.with_suffix(".html")
    p.write_text("<html><head><title>Une page</title></head><body><p>" + _words(int(mb * MB), rnd)
                 + "</p></body></html>", encoding="utf-8")
    return p


def gen_pdf(path: Path, mb: float, rnd: random.Random) -> Path:
    """A PDF of 1,000 pages per MB (2,000 pages at 2 MB) of 10 short lines each, made with reportlab."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    p = path.with_suffix(".pdf")
    c = canvas.Canvas(str(p), pagesize=A4, pageCompression=0)
    lines = [_words(80, rnd) for _ in range(50)]
    for i in range(int(mb * 1000)):
        y = 800
        c.drawString(50, y, f"Page {i + 1}.")
        for j in range(10):
            y -= 14
            c.drawString(50, y, lines[(i + j) % len(lines)])
        c.showPage()
    c.save()
    return p


def gen_docx(path: Path, mb: float, rnd: random.Random) -> Path:
    """A DOCX of short paragraphs (10,000 per MB), a heading every 100.

    python-docx's ``add_paragraph`` searches the body for its insertion point each time (quadratic: 20 MB took
    over 10 minutes to *generate*), so one paragraph is made with it and the body XML is written directly."""
    import zipfile
    from xml.sax.saxutils import escape

    import docx

    p = path.with_suffix(".docx")
    tmp = path.with_suffix(".template.docx")
    d = docx.Document()
    d.add_paragraph("Partie 0", style="Heading 1")
    d.add_paragraph("MARKER")
    d.save(str(tmp))
    body = [_words(90, rnd) + "." for _ in range(200)]
    paras = []
    for i in range(int(mb * 10_000)):
        if i % 100 == 0:
            paras.append(f'<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Partie {i // 100}</w:t></w:r></w:p>')
        paras.append(f"<w:p><w:r><w:t>{escape(body[i % len(body)])}</w:t></w:r></w:p>")
    with zipfile.ZipFile(tmp) as zin, zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "word/document.xml":
                xml = data.decode("utf-8")
                start = xml.index("<w:body>") + len("<w:body>")
                end = xml.index("<w:sectPr")
                data = (xml[:start] + "".join(paras) + xml[end:]).encode("utf-8")
            zout.writestr(item, data)
    tmp.unlink()
    return p


INPUTS = {
    "line-words": gen_line_words,
    "line-md": gen_line_md,
    "repeated-word": gen_repeated_word,
    "one-word": gen_one_word,
    "short-lines": gen_short_lines,
    "long-lines": gen_long_lines,
    "cjk": gen_cjk,
    "html-line": gen_html_line,
    "html-deep": gen_html_deep,
    "pdf": gen_pdf,
    "docx": gen_docx,
}
# inputs whose size is a count (pages, paragraphs, depth): what "1 MB" means for them
UNITS = {"short-lines": "50k lines", "long-lines": "16k lines", "html-deep": "10k deep", "pdf": "1k pages",
         "docx": "10k paragraphs"}


# --------------------------------------------------------------------------- one measurement (child process)
def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _rss_mb() -> float:
    """The process's peak RSS (MB) since the last :func:`_reset_peak`."""
    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> float:
    """Reset the peak RSS to the current RSS (Linux: ``/proc/self/clear_refs``) and return it (MB)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    cur = _status_mb("VmRSS")
    return cur if cur is not None else _rss_mb()


class _Stages:
    """Each stage's seconds and peak memory above what the process held when it started (RSS, or with ``traced``
    the tracemalloc peak of Python allocations, which sees what CPython allocates but not tiktoken's own)."""

    def __init__(self, out: dict, traced: bool):
        self.out, self.traced = out, traced
        self.base = _reset_peak()
        self.top = 0.0
        if traced:
            import tracemalloc

            tracemalloc.start()

    def run(self, name: str, fn):
        if self.traced:
            import tracemalloc

            tracemalloc.reset_peak()
            start = tracemalloc.get_traced_memory()[0]
        else:
            start = _reset_peak()
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            self.out[name] = time.perf_counter() - t0
            if self.traced:
                self.out[f"{name}_traced_mb"] = (tracemalloc.get_traced_memory()[1] - start) / 2 ** 20
            else:
                peak = _rss_mb()
                self.out[f"{name}_mb"] = peak - start
                self.top = max(self.top, peak - self.base)
                self.out["peak_mb"] = self.top


def measure(path: Path, traced: bool = False) -> dict:
    """Time each stage on one file (run in a fresh process: its peak RSS is this file's); ``traced``: under
    tracemalloc, for each stage's peak of Python allocations (the times are then slower than they should be)."""
    from assistant.chunking import Chunker
    from assistant.lexicon import dictionary_words
    from assistant.loaders import DocumentLoader, LoadError
    from assistant.text import iter_sentence_spans, lexical_tokens

    import trafilatura  # noqa: F401  (imports are not the input's cost)
    import pypdf  # noqa: F401
    import docx  # noqa: F401

    chunker = Chunker(160, 30)
    chunker.count_tokens("warm up")
    dictionary_words("warm up the word frequencies")
    out: dict = {"bytes": path.stat().st_size}
    stages = _Stages(out, traced)
    try:
        doc = stages.run("load", lambda: DocumentLoader(max_file_mb=1000).run(path))
    except LoadError as err:
        out.update(error=str(err))
        return out
    # the splitter itself (sentence_spans' list of every sentence costs ~130 bytes a sentence more)
    n_sent = stages.run("sentences", lambda: sum(sum(1 for _ in iter_sentence_spans(doc.text, b.start, b.end))
                                                  for b in doc.blocks))
    chunks = stages.run("chunk", lambda: chunker.run(doc))

    def lexical():
        n = sum(len(lexical_tokens(c.embed_text)) for c in chunks)
        words: set[str] = set()
        for c in chunks:
            words |= dictionary_words(c.embed_text)
        return n

    n_tok = stages.run("lexical", lexical)
    assert all(doc.text[c.start:c.end] == c.text for c in chunks)
    out.update(chars=len(doc.text), blocks=len(doc.blocks), sentence_count=n_sent, chunks=len(chunks),
               max_tokens=max((chunker.count_tokens(c.text) for c in chunks), default=0), lexical_tokens=n_tok,
               unique_texts=len({c.text_hash for c in chunks}))
    return out


def _child(path: Path, timeout: float, traced: bool) -> dict:
    cmd = [sys.executable, "-m", "bench.linearity", "--measure", str(path)] + (["--traced"] if traced else [])
    proc = subprocess.run(cmd, cwd=str(REPO), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"measuring {path.name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_case(path: Path, timeout: float, traced: bool = True) -> dict:
    """The timed measurement, then (``traced``) each stage's tracemalloc peak from a second process."""
    out = _child(path, timeout, False)
    if traced and not out.get("error"):
        mem = _child(path, timeout, True)
        out.update({k: v for k, v in mem.items() if k.endswith("_traced_mb")})
    return out


# --------------------------------------------------------------------------- report
STAGES = ("load", "sentences", "chunk", "lexical")


def _reference(sizes: list[float]) -> float:
    """The size ratios are taken against: 2 MB when measured below the largest size, else the smallest."""
    return 2.0 if 2.0 in sizes and 2.0 < max(sizes) else min(sizes)


def _mem_ratio(a: float, b: float) -> float:
    return max(b, MEM_FLOOR) / max(a, MEM_FLOOR)


def total(r: dict) -> float:
    return r.get("load", 0) + r.get("chunk", 0) + r.get("lexical", 0)


def check(results: dict[str, dict[float, dict]], sizes: list[float]) -> list[str]:
    """Broken bounds, as sentences (empty: all hold)."""
    broken = []
    ref = _reference(sizes)
    top = max(sizes)
    if top <= ref:
        return broken
    allowed = SLOPE * top / ref
    for name, by_size in results.items():
        a, b = by_size.get(ref), by_size.get(top)
        if not a or not b:
            continue
        for stage in ("total",) + STAGES:
            ta = total(a) if stage == "total" else a.get(stage)
            tb = total(b) if stage == "total" else b.get(stage)
            if ta is None or tb is None:
                continue
            ratio = max(tb, TIME_FLOOR) / max(ta, TIME_FLOOR)
            if ratio > allowed:
                broken.append(f"{name} {stage}: time({top:g}) = {ratio:.1f} x time({ref:g}), over {allowed:.1f}")
        ratio = _mem_ratio(a["peak_mb"], b["peak_mb"])
        if ratio > allowed:
            broken.append(f"{name} memory: peak({top:g}) = {ratio:.1f} x peak({ref:g}), over {allowed:.1f}")
        for stage in STAGES:
            for suffix, what in (("_mb", "RSS"), ("_traced_mb", "tracemalloc")):
                ma, mb_ = a.get(stage + suffix), b.get(stage + suffix)
                if ma is None or mb_ is None:
                    continue
                ratio = _mem_ratio(ma, mb_)
                if ratio > allowed:
                    broken.append(f"{name} {stage} memory ({what}): peak({top:g}) = {ratio:.1f} x peak({ref:g}), "
                                  f"over {allowed:.1f}")
    line = results.get("line-words", {}).get(20.0)
    if line and line.get("load", 0) + line.get("chunk", 0) > LINE_20MB_SECONDS:
        broken.append(f"line-words: loading + chunking 20 MB took {line['load'] + line['chunk']:.1f} s, "
                      f"over {LINE_20MB_SECONDS:.0f} s")
    return broken


def markdown(results: dict[str, dict[float, dict]], sizes: list[float], broken: list[str], info: str) -> str:
    ref = _reference(sizes)
    top = max(sizes)
    head = ["input", "unit"] + [f"{s:g}" for s in sizes] + [f"ratio {top:g}/{ref:g}", "slowest stage at top",
                                                          f"peak MB at {top:g}", "chunks at top"]
    lines = [f"# Ingestion linearity\n", info, "",
             "Load + chunk + lexical tokens, seconds (no embedding), per input and size; the ratio is "
             f"time({top:g}) / time({ref:g}) (bound: {SLOPE * top / ref:.0f}, i.e. linear x {SLOPE}). "
             "Peak MB is the RSS above the imports. Written by `python -m bench.linearity`.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, by_size in results.items():
        row = [name, UNITS.get(name, "MB")]
        for s in sizes:
            r = by_size.get(s)
            row.append("—" if r is None else (f"{total(r):.2f}" + (" (refused)" if r.get("error") else "")))
        a, b = by_size.get(ref), by_size.get(top)
        if a and b and top > ref:
            row.append(f"{max(total(b), TIME_FLOOR) / max(total(a), TIME_FLOOR):.1f}")
        else:
            row.append("—")
        if b:
            stage = max(STAGES, key=lambda k: b.get(k, 0))
            row += [f"{stage} {b.get(stage, 0):.2f} s", f"{b['peak_mb']:.0f}", str(b.get("chunks", b.get("error", "")))]
        else:
            row += ["—", "—", "—"]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append("Per stage, seconds at each size (load / sentences / chunk / lexical):")
    lines.append("")
    for name, by_size in results.items():
        cells = []
        for s in sizes:
            r = by_size.get(s)
            if r:
                cells.append(f"{s:g}: " + " / ".join(f"{r.get(k, 0):.2f}" for k in STAGES))
        lines.append(f"* {name}: " + "; ".join(cells))
    lines.append("")
    lines.append(f"Peak memory per stage, MB above what the process held when the stage started, at {ref:g} -> {top:g} "
                 f"(ratio, peaks under {MEM_FLOOR:.0f} MB counting as {MEM_FLOOR:.0f}); RSS high-water mark, then the "
                 "tracemalloc peak of Python allocations (a second run; it does not see tiktoken's own). "
                 f"The last columns are the whole run's peak RSS at {top:g} per byte of input and per character of the "
                 "extracted text (a DOCX is compressed):")
    lines.append("")
    mhead = ["input"] + [f"{k} RSS" for k in STAGES] + [f"{k} traced" for k in STAGES] + [f"peak / input byte at {top:g}", f"peak / text character at {top:g}"]
    lines += ["| " + " | ".join(mhead) + " |", "|" + "---|" * len(mhead)]
    for name, by_size in results.items():
        a, b = by_size.get(ref), by_size.get(top)
        if not a or not b or b.get("error"):
            continue
        row = [name]
        for suffix in ("_mb", "_traced_mb"):
            for k in STAGES:
                ma, mb_ = a.get(k + suffix), b.get(k + suffix)
                row.append("—" if ma is None or mb_ is None else
                           f"{ma:.0f} -> {mb_:.0f} ({_mem_ratio(ma, mb_):.1f})")
        row.append(f"{b['peak_mb'] * 2 ** 20 / max(b['bytes'], 1):.1f}")
        row.append(f"{b['peak_mb'] * 2 ** 20 / max(b.get('chars', 0), 1):.1f}")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append("All bounds hold." if not broken else "**Broken bounds:**\n\n" + "\n".join(f"* {b}" for b in broken))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.linearity", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,2,8,20", help="sizes in MB, comma separated (default 1,2,8,20)")
    ap.add_argument("--inputs", default=",".join(INPUTS), help="inputs to measure (default: all)")
    ap.add_argument("--out", default=str(BENCH_DIR / "LINEARITY.md"), help="Markdown table (default bench/LINEARITY.md)")
    ap.add_argument("--json", default="", help="also write the raw figures here")
    ap.add_argument("--timeout", type=float, default=600, help="seconds before one measurement is abandoned")
    ap.add_argument("--no-tracemalloc", action="store_true",
                    help="skip the second, tracemalloc run of each measurement (per-stage Python allocation peaks)")
    ap.add_argument("--measure", default="", help=argparse.SUPPRESS)  # child mode: one file
    ap.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)  # child mode: under tracemalloc
    args = ap.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(Path(args.measure), traced=args.traced)))
        return 0
    sizes = sorted({float(s) for s in args.sizes.split(",") if s.strip()})
    names = [n.strip() for n in args.inputs.split(",") if n.strip()]
    unknown = [n for n in names if n not in INPUTS]
    if unknown:
        ap.error(f"unknown input(s) {', '.join(unknown)} (known: {', '.join(INPUTS)})")
    results: dict[str, dict[float, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="linearity-") as tmp:
        for name in names:
            results[name] = {}
            for mb in sizes:
                path = INPUTS[name](Path(tmp) / f"{name}-{mb:g}", mb, random.Random(0))
                try:
                    r = run_case(path, args.timeout, traced=not args.no_tracemalloc)
                except subprocess.TimeoutExpired:
                    r = {"bytes": path.stat().st_size, "load": args.timeout, "error": f"over {args.timeout:.0f} s",
                         "peak_mb": 0.0}
                results[name][mb] = r
                path.unlink()
                print(f"{name:14s} {mb:5g}  load {r.get('load', 0):6.2f}  sentences {r.get('sentences', 0):6.2f}  "
                      f"chunk {r.get('chunk', 0):6.2f}  lexical {r.get('lexical', 0):6.2f}  "
                      f"peak {r.get('peak_mb', 0):6.0f} MB (chunk {r.get('chunk_mb', 0):.0f} MB RSS, "
                      f"{r.get('chunk_traced_mb', 0):.0f} MB traced)  {r.get('chunks', r.get('error', ''))}",
                      file=sys.stderr, flush=True)
    broken = check(results, sizes)
    import platform

    info = (f"Run {time.strftime('%Y-%m-%d')} on {platform.machine()} Linux, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}; load average at the end {os.getloadavg()[0]:.1f}.")
    Path(args.out).write_text(markdown(results, sizes, broken, info), encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps({n: {str(k): v for k, v in r.items()} for n, r in results.items()},
                                              indent=1))
    for b in broken:
        print(f"BROKEN: {b}", file=sys.stderr)
    print(f"wrote {args.out}" + ("" if not broken else f"; {len(broken)} bound(s) broken"), file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
