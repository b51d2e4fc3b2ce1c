"""Fetch real French documentation corpora (and one English one) from Debian packages.

Usage::

    python -m bench.corpora                       # every default corpus
    python -m bench.corpora --only gimp-help-fr manpages-fr
    python -m bench.corpora --all                 # also opt-in ones (default=False; none now)
    python -m bench.corpora --list                # what exists / is extracted
    python -m bench.corpora --stats               # also estimate plain-text MB
    python -m bench.corpora --force --only manpages-fr   # rebuild one

Each corpus becomes a plain folder of documents under ``bench/corpora/<name>/``
(git-ignored), with a manifest ``bench/corpora/<name>.manifest.json`` beside it
(packages and versions, file count, bytes). A corpus whose folder and manifest
already exist is skipped unless ``--force``: the script is idempotent.

How it works
------------
* ``apt-get download <pkg>`` in a temporary directory (never ``apt-get
  install`` for the documentation packages).  If apt cannot locate a package,
  ``apt-get update`` is run once and the download retried.
* ``dpkg -x <deb> <dir>`` extracts the package; only document files are copied
  (HTML, PDF, converted text); images, CSS, JS and symlinks are dropped, so
  the same page never appears twice.
* Man pages (``manpages-fr``, ``manpages-fr-dev``) are converted to UTF-8
  plain text with ``mandoc -T utf8`` (fallback: ``groff -k -Tutf8 -mandoc``);
  backspace overstrikes are removed with a regex (what ``col -b`` does).  If
  neither tool exists the script runs ``apt-get install -y mandoc`` (a
  formatter, not a corpus; needs root, as on the project machines).  Pages
  that fail to convert or come out empty are skipped and counted.  Output
  names keep section and name: ``man3/printf.3.txt``.
* GNOME help (Mallard ``.page`` XML) is converted to plain text (title,
  then paragraphs) because nothing in the assistant reads Mallard; the 18
  guide/index pages that hold only links come out empty and are skipped.

Corpora (``--list`` prints them)
--------------------------------
Required ones:

* ``debian-reference-fr``   French Debian Reference, 14 HTML pages
  (``usr/share/debian-reference/*.fr.html``).
* ``debian-reference-fr-pdf`` the same book as one PDF, kept in its own folder
  so HTML and PDF are not duplicates inside one corpus.
* ``debian-reference-en``   the same book in English, 15 HTML pages
  (``usr/share/debian-reference/*.en.html``), for the English-over-English
  question set ``bench/questions/debian-reference-en.jsonl``.  Declared with
  ``lang="en", perf=False``: it is fetched by default like the others but is
  *not* part of the performance benchmark's corpus (``bench.subsets`` leaves
  out every corpus of :func:`non_perf_corpora` from its chunk counts and
  subsets, so ``python -m bench`` sees exactly the French corpora).
* ``gimp-help-fr``          GIMP 2.10 French help (~685 HTML pages; the Debian
  package has fewer pages than "thousands").
* ``manpages-fr``           French man pages from ``manpages-fr`` and
  ``manpages-fr-dev`` as ``.txt`` (symlinked aliases skipped).
* ``libreoffice-help-fr``   LibreOffice 7.4 French help.  Usable: the package
  ships pre-rendered static HTML (the text is in ``<div id="DisplayArea">``;
  the navigation is filled by JavaScript and so is mostly empty in the file),
  so it is kept as HTML, no XHP conversion needed.

Extra ones, added so the whole set reaches a useful size for scale tests
(all built by default):

* ``debian-handbook-fr``    Debian Administrator's Handbook, fr-FR HTML only
  (the package ships 26 languages; only French is kept).
* ``installation-guide-fr`` Debian installation guide (amd64), French HTML.
* ``developers-reference-fr``, ``debian-faq-fr``, ``maint-guide-fr``,
  ``aptitude-doc-fr`` (HTML), ``debian-edu-doc-fr`` (the bookworm manual plus
  the legacy Audacity/Rosegarden manuals, HTML), ``kicad-doc-fr`` (5 large
  HTML pages), ``texworks-help-fr`` (HTML).
* ``lilypond-doc-fr``       LilyPond French HTML manuals, split pages only
  (the ``*-big-page.fr.html`` one-page copies are dropped as duplicates).
* ``gnome-help-fr``         GNOME user help (Mallard -> ``.txt``).
* ``manpages-fr-debian``    French man pages shipped inside Debian's own tools
  (dpkg, apt, debhelper, devscripts, po4a, man-db, ...), as ``.txt``.
* ``linuxcnc-doc-fr-pdf``   LinuxCNC French manuals, 4 PDF (one has 1280
  pages, 26 MB): a stress test for PDF ingestion.
* ``texlive-doc-fr-pdf``    26 French TeX/LaTeX manuals from
  ``texlive-lang-french`` (explicit list: English twins, examples and PDFs
  whose text layer is garbled are left out).

Looked at and left out: ``scilab-doc-fr`` (its help jar has 2711 pages but
~1950 of them are the untranslated English fallback); ``gnucash-docs`` (no
French); ``lilypond-doc-pdf-fr`` (same text as the HTML); the installation
guides of other architectures (near duplicates).

Size of the French corpora (bookworm packages, measured): 6,053 files, 172 MB on disk; the
assistant's loaders extract ~36 M characters of text from them, which its
chunker (160 cl100k tokens, 30 overlap) turns into ~82,800 chunks (manpages-fr
21k, texlive-doc-fr-pdf 16k, libreoffice-help-fr 10k, lilypond-doc-fr 9.5k,
linuxcnc-doc-fr-pdf 6.5k, manpages-fr-debian 5k, gimp-help-fr 3.3k, the rest
under 2k each).  The table printed at the end of a run gives files and MB;
``--stats`` adds a plain-text estimate (PDFs need ``pdftotext`` from
``poppler-utils`` for it).

Library use::

    from bench.corpora import corpus_path, ensure
    root = ensure("debian-reference-fr")   # downloads once, returns the folder
"""

from __future__ import annotations

import argparse
import fnmatch
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_DEST = BENCH_DIR / "corpora"


@dataclass(frozen=True)
class Rule:
    """Select files under ``base`` (relative to the extracted package root)."""

    base: str
    patterns: tuple[str, ...]  # fnmatch patterns on the path relative to base
    convert: str = "copy"  # copy | man | mallard
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class Corpus:
    name: str
    packages: tuple[str, ...]
    rules: tuple[Rule, ...]
    description: str
    default: bool = True
    notes: str = ""
    lang: str = "fr"  # language of the documents
    perf: bool = True  # part of the performance benchmark's corpus (bench.subsets / bench.run)?


def _c(name, packages, rules, description, default=True, notes="", lang="fr", perf=True):
    return Corpus(name, tuple(packages), tuple(rules), description, default, notes, lang, perf)


def non_perf_corpora() -> frozenset[str]:
    """Corpora declared ``perf=False``, kept out of the performance benchmark (its subsets and chunk counts)."""
    return frozenset(n for n, c in CORPORA.items() if not c.perf)


# Debian tools that ship their own French man pages (not in manpages-fr).
MANPAGES_DEBIAN_PACKAGES = [
    "dpkg", "dpkg-dev", "dselect", "apt", "apt-utils", "apt-listchanges", "debconf-doc", "debhelper",
    "devscripts", "debsums", "po4a", "man-db", "adduser", "debianutils", "passwd", "login", "procps",
    "psmisc", "xz-utils",
]

# French manuals of texlive-lang-french (English twins, examples and
# garbled-text PDFs left out); paths relative to usr/share/doc/texlive-doc.
TEXLIVE_FRENCH_PDFS = (
    "plain/apprendre-a-programmer-en-tex/output/apprendre-a-programmer-en-tex.pdf",
    "plain/impatient-fr/fbook.pdf",
    "latex/latex2e-help-texinfo-fr/latex2e-fr.pdf",
    "latex/profcollege/ProfCollege-doc.pdf",
    "latex/proflycee/ProfLycee-doc.pdf",
    "latex/lshort-french/lshort-fr.pdf",
    "latex/apprends-latex/Apprends_LaTeX.pdf",
    "latex/formation-latex-ul/formation-latex-ul.pdf",
    "texlive/texlive-fr/texlive-fr.pdf",
    "latex/visualtikz/VisualTikZ-fr.pdf",
    "generic/e-french/manuels/efrench.pdf",
    "generic/e-french/manuels/frenchle.pdf",
    "generic/e-french/manuels/faq.pdf",
    "generic/babel-french/frenchb-doc.pdf",
    "latex/tdsfrmath/tdsfrmath.pdf",
    "lualatex/letgut/letgut.pdf",
    "latex/droit-fr/droit-fr.pdf",
    "latex/l2tabu-french/l2tabufr.pdf",
    "latex/translation-natbib-fr/f-natbib.pdf",
    "latex/expose-expl3-dunkerque-2019/dun19expl3.pdf",
    "latex/matapli/matapli-doc.pdf",
    "latex/frenchmath/frenchmath.pdf",
    "latex/tabvar/tabvar.pdf",
    "latex/booktabs-fr/f-booktabs.pdf",
    "latex/impnattypo/impnattypo-fr.pdf",
    "xelatex/facture/facture.pdf",
)

CORPORA: dict[str, Corpus] = {
    c.name: c
    for c in [
        _c(
            "debian-reference-fr",
            ["debian-reference-fr"],
            [Rule("usr/share/debian-reference", ("*.fr.html",))],
            "Debian Reference (French), HTML",
        ),
        _c(
            "debian-reference-fr-pdf",
            ["debian-reference-fr"],
            [Rule("usr/share/debian-reference", ("*.fr.pdf",))],
            "Debian Reference (French), PDF",
        ),
        _c(
            "debian-reference-en",
            ["debian-reference-en"],
            [Rule("usr/share/debian-reference", ("*.en.html",))],
            "Debian Reference (English), HTML; question set only, not in the performance benchmark",
            lang="en",
            perf=False,
        ),
        _c(
            "gimp-help-fr",
            ["gimp-help-fr"],
            [Rule("usr/share/gimp/2.0/help/fr", ("*.html",))],
            "GIMP 2.10 user manual (French), HTML",
        ),
        _c(
            "manpages-fr",
            ["manpages-fr", "manpages-fr-dev"],
            [Rule("usr/share/man/fr", ("man*/*.gz", "man*/*.[0-9]*"), convert="man")],
            "French man pages converted to UTF-8 text",
        ),
        _c(
            "libreoffice-help-fr",
            ["libreoffice-help-fr"],
            [Rule("usr/share/libreoffice/help/fr", ("*.html",), exclude=("noscript.html",))],
            "LibreOffice 7.4 help (French), static HTML",
        ),
        _c(
            "debian-handbook-fr",
            ["debian-handbook"],
            [Rule("usr/share/doc/debian-handbook/html/fr-FR", ("*.html",))],
            "Debian Administrator's Handbook (fr-FR), HTML",
        ),
        _c(
            "installation-guide-fr",
            ["installation-guide-amd64"],
            [Rule("usr/share/doc/installation-guide-amd64/fr", ("*.html",))],
            "Debian installation guide amd64 (French), HTML",
        ),
        _c(
            "developers-reference-fr",
            ["developers-reference-fr"],
            [Rule("usr/share/developers-reference/fr", ("*.html",))],
            "Debian Developer's Reference (French), HTML",
        ),
        _c(
            "debian-faq-fr",
            ["debian-faq-fr"],
            [Rule("usr/share/doc/debian/FAQ/fr", ("*.html",))],
            "Debian FAQ (French), HTML",
        ),
        _c(
            "maint-guide-fr",
            ["maint-guide-fr"],
            [Rule("usr/share/doc/maint-guide-fr/html", ("*.html",))],
            "Debian New Maintainers' Guide (French), HTML",
        ),
        _c(
            "aptitude-doc-fr",
            ["aptitude-doc-fr"],
            [Rule("usr/share/doc/aptitude/html/fr", ("*.html",))],
            "aptitude user manual (French), HTML",
        ),
        _c(
            "debian-edu-doc-fr",
            ["debian-edu-doc-fr", "debian-edu-doc-legacy-fr"],
            [
                Rule("usr/share/doc/debian-edu-doc-fr", ("debian-edu-bookworm-manual.html",)),
                Rule("usr/share/doc/debian-edu-doc-legacy-fr", ("*-manual.html",)),
            ],
            "Debian Edu bookworm manual + legacy Audacity/Rosegarden manuals (French), HTML",
        ),
        _c(
            "kicad-doc-fr",
            ["kicad-doc-fr"],
            [Rule("usr/share/doc/kicad/help/fr", ("*.html",))],
            "KiCad manuals (French), HTML",
        ),
        _c(
            "lilypond-doc-fr",
            ["lilypond-doc-html-fr"],
            [
                Rule(
                    "usr/share/doc/lilypond/html/Documentation",
                    ("*.fr.html",),
                    exclude=("*big-page*",),
                )
            ],
            "LilyPond manuals (French), split HTML pages",
        ),
        _c(
            "gnome-help-fr",
            ["gnome-user-docs"],
            [Rule("usr/share/help/fr", ("*.page",), convert="mallard")],
            "GNOME user help (French), Mallard converted to text",
        ),
        _c(
            "texworks-help-fr",
            ["texworks-help-fr"],
            [Rule("usr/share/texworks-help/fr", ("*.html",))],
            "TeXworks manual (French), HTML",
        ),
        _c(
            "manpages-fr-debian",
            MANPAGES_DEBIAN_PACKAGES,
            [Rule("usr/share/man/fr", ("man*/*.gz", "man*/*.[0-9]*"), convert="man")],
            "French man pages shipped by Debian's own tools (dpkg, apt, debhelper, ...), as text",
        ),
        _c(
            "linuxcnc-doc-fr-pdf",
            ["linuxcnc-doc-fr"],
            [Rule("usr/share/doc/linuxcnc", ("*_fr.pdf",))],
            "LinuxCNC manuals (French), 4 PDF (one of 1280 pages)",
        ),
        _c(
            "texlive-doc-fr-pdf",
            ["texlive-lang-french"],
            [Rule("usr/share/doc/texlive-doc", TEXLIVE_FRENCH_PDFS)],
            "French TeX/LaTeX manuals from texlive-lang-french, PDF",
        ),
    ]
}


def log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------- paths

def corpus_path(name: str, dest: Path | str | None = None) -> Path:
    """Folder of corpus ``name`` (may not exist yet; see :func:`ensure`)."""
    if name not in CORPORA:
        raise KeyError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")
    return Path(dest or DEFAULT_DEST) / name


def manifest_path(name: str, dest: Path | str | None = None) -> Path:
    p = corpus_path(name, dest)
    return p.with_name(p.name + ".manifest.json")


def is_ready(name: str, dest: Path | str | None = None) -> bool:
    return corpus_path(name, dest).is_dir() and manifest_path(name, dest).is_file()


def read_manifest(name: str, dest: Path | str | None = None) -> dict | None:
    try:
        return json.loads(manifest_path(name, dest).read_text())
    except (OSError, ValueError):
        return None


def ensure(name: str, dest: Path | str | None = None, force: bool = False) -> Path:
    """Return the corpus folder, fetching and extracting it first if needed."""
    if force or not is_ready(name, dest):
        with tempfile.TemporaryDirectory(prefix="corpora-") as tmp:
            build(name, Path(dest or DEFAULT_DEST), Fetcher(Path(tmp)))
    return corpus_path(name, dest)


# ------------------------------------------------------------------- fetching

def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


class Fetcher:
    """Downloads and extracts .deb files once per run (shared by corpora)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.debs = workdir / "debs"
        self.debs.mkdir(parents=True, exist_ok=True)
        # apt downloads as the unprivileged _apt user when it can write there
        os.chmod(self.debs, 0o777)
        self.extracted: dict[str, tuple[Path, str]] = {}
        self._updated = False

    def _download(self, pkg: str) -> Path:
        for attempt in range(2):
            r = _run(["apt-get", "download", "-q", pkg], cwd=self.debs)
            found = sorted(self.debs.glob(f"{pkg}_*.deb"))
            if r.returncode == 0 and found:
                return found[-1]
            if attempt == 0 and not self._updated:
                log(f"  apt-get download {pkg} failed ({r.stderr.strip()[:200]}); running apt-get update")
                _run(["apt-get", "update", "-q"])
                self._updated = True
                continue
            break
        raise RuntimeError(f"apt-get download {pkg} failed: {r.stderr.strip()[:500]}")

    def package_root(self, pkg: str) -> tuple[Path, str]:
        """Extracted root of ``pkg`` and its version."""
        if pkg not in self.extracted:
            deb = self._download(pkg)
            version = _run(["dpkg-deb", "-f", str(deb), "Version"]).stdout.strip()
            root = self.workdir / "x" / pkg
            root.mkdir(parents=True, exist_ok=True)
            r = _run(["dpkg", "-x", str(deb), str(root)])
            if r.returncode != 0:
                raise RuntimeError(f"dpkg -x {deb.name} failed: {r.stderr[:500]}")
            log(f"  fetched {deb.name} ({deb.stat().st_size / 1e6:.1f} MB)")
            self.extracted[pkg] = (root, version)
        return self.extracted[pkg]


# ----------------------------------------------------------------- converters

_OVERSTRIKE = re.compile(r".\x08")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _man_formatter() -> list[str]:
    if shutil.which("mandoc"):
        return ["mandoc", "-T", "utf8"]
    if shutil.which("groff"):
        return ["groff", "-k", "-Tutf8", "-mandoc", "-P", "-c"]
    log("  neither mandoc nor groff found: apt-get install -y mandoc")
    _run(["apt-get", "install", "-y", "-q", "mandoc"])
    if not shutil.which("mandoc"):
        _run(["apt-get", "update", "-q"])
        _run(["apt-get", "install", "-y", "-q", "mandoc"])
    if shutil.which("mandoc"):
        return ["mandoc", "-T", "utf8"]
    raise RuntimeError("cannot install mandoc (or groff) to format man pages")


def man_to_text(src: Path, formatter: list[str]) -> str | None:
    raw = src.read_bytes()
    if src.suffix == ".gz":
        raw = gzip.decompress(raw)
    if raw.lstrip().startswith(b".so "):  # alias page: content lives elsewhere
        return None
    r = subprocess.run(formatter, input=raw, capture_output=True, timeout=60)
    if r.returncode not in (0, 1) or not r.stdout.strip():  # mandoc: 1 = warnings
        return None
    text = r.stdout.decode("utf-8", "replace")
    text = _ANSI.sub("", _OVERSTRIKE.sub("", text)).expandtabs()
    text = "\n".join(line.rstrip() for line in text.splitlines())
    text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
    return text if len(text) > 40 else None


def mallard_to_text(src: Path) -> str | None:
    from xml.etree import ElementTree as ET

    try:
        root = ET.parse(src).getroot()
    except ET.ParseError:
        return None

    def local(tag) -> str:
        return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""

    blocks: list[str] = []
    block_tags = {"title", "p", "item", "td", "th", "code", "screen", "note", "desc"}

    def walk(el) -> None:
        tag = local(el.tag)
        if tag in {"info", "comment"}:  # metadata: credits, licence, links
            return
        if tag in block_tags and not any(local(c.tag) in block_tags | {"list", "terms", "steps"} for c in el):
            txt = " ".join("".join(el.itertext()).split())
            if txt:
                blocks.append(("# " + txt) if tag == "title" and not blocks else txt)
            return
        for child in el:
            walk(child)

    walk(root)
    text = "\n\n".join(blocks).strip()
    return text + "\n" if len(text) > 40 else None


# --------------------------------------------------------------------- build

def _select(root: Path, rule: Rule):
    base = root / rule.base
    if not base.is_dir():
        return
    for path in sorted(base.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        rel = path.relative_to(base).as_posix()
        if not any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(path.name, p) for p in rule.patterns):
            continue
        if any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(path.name, p) for p in rule.exclude):
            continue
        yield path, rel


def build(name: str, dest: Path, fetcher: Fetcher) -> dict:
    corpus = CORPORA[name]
    t0 = time.time()
    log(f"[{name}] {corpus.description}")
    out = corpus_path(name, dest)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    versions: dict[str, str] = {}
    n_files = n_bytes = n_skipped = 0
    formatter = None
    for pkg in corpus.packages:
        root, version = fetcher.package_root(pkg)
        versions[pkg] = version
        for rule in corpus.rules:
            for src, rel in _select(root, rule):
                if rule.convert == "copy":
                    target = staging / rel
                    if target.exists():
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, target)
                else:
                    if rule.convert == "man":
                        formatter = formatter or _man_formatter()
                        rel = re.sub(r"\.gz$", "", rel) + ".txt"
                        try:
                            text = man_to_text(src, formatter)
                        except (subprocess.SubprocessError, OSError, EOFError):
                            text = None
                    elif rule.convert == "mallard":
                        rel = re.sub(r"\.page$", "", rel) + ".txt"
                        text = mallard_to_text(src)
                    else:  # pragma: no cover
                        raise ValueError(rule.convert)
                    target = staging / rel
                    if text is None or target.exists():
                        n_skipped += text is None
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(text, encoding="utf-8")
                n_files += 1
                n_bytes += target.stat().st_size
    if n_files == 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(f"{name}: no document selected from {', '.join(corpus.packages)}")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    manifest = {
        "name": name,
        "description": corpus.description,
        "packages": versions,
        "files": n_files,
        "bytes": n_bytes,
        "skipped": n_skipped,
        "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    manifest_path(name, dest).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    extra = f", {n_skipped} skipped" if n_skipped else ""
    log(f"[{name}] {n_files} files, {n_bytes / 1e6:.1f} MB{extra} -> {out} ({time.time() - t0:.0f}s)")
    return manifest


# --------------------------------------------------------------------- stats

def text_bytes(folder: Path) -> int:
    """Rough plain-text size (whitespace-collapsed) of a corpus folder."""
    total = 0
    for p in folder.rglob("*"):
        if not p.is_file():
            continue
        if p.suffix in {".html", ".htm"}:
            import lxml.html

            try:
                doc = lxml.html.fromstring(p.read_bytes())
                for bad in doc.xpath("//script|//style"):
                    bad.drop_tree()
                t = doc.text_content()
            except Exception:
                continue
        elif p.suffix == ".pdf" and shutil.which("pdftotext"):
            t = _run(["pdftotext", "-q", "-enc", "UTF-8", str(p), "-"]).stdout
        elif p.suffix == ".txt":
            t = p.read_text("utf-8", "replace")
        else:
            continue
        total += len(" ".join(t.split()).encode())
    return total


# ----------------------------------------------------------------------- cli

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.corpora", description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", metavar="NAME", help="build only these corpora")
    ap.add_argument("--all", action="store_true", help="include opt-in corpora")
    ap.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="output folder (default bench/corpora)")
    ap.add_argument("--force", action="store_true", help="rebuild even if already extracted")
    ap.add_argument("--list", action="store_true", help="list corpora and their state, do nothing")
    ap.add_argument("--stats", action="store_true", help="also print an estimate of plain-text MB")
    args = ap.parse_args(argv)

    if args.only:
        unknown = [n for n in args.only if n not in CORPORA]
        if unknown:
            ap.error(f"unknown corpus: {', '.join(unknown)} (known: {', '.join(CORPORA)})")
        names = args.only
    else:
        names = [n for n, c in CORPORA.items() if c.default or args.all]

    if args.list:
        for n, c in CORPORA.items():
            m = read_manifest(n, args.dest) if is_ready(n, args.dest) else None
            state = f"{m['files']} files, {m['bytes'] / 1e6:.1f} MB" if m else "not extracted"
            opt = "" if c.default else " (opt-in)"
            log(f"{n:26s} {state:28s} {c.description}{opt}")
        return 0

    args.dest.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    rows = []
    with tempfile.TemporaryDirectory(prefix="corpora-") as tmp:
        fetcher = Fetcher(Path(tmp))
        for n in names:
            if is_ready(n, args.dest) and not args.force:
                m = read_manifest(n, args.dest) or {}
                log(f"[{n}] already extracted ({m.get('files', '?')} files), skipping (--force to rebuild)")
            else:
                try:
                    build(n, args.dest, fetcher)
                except Exception as e:  # keep going with the other corpora
                    log(f"[{n}] FAILED: {e}")
                    failed.append(n)
                    continue
            rows.append(n)
            # free the extracted packages no later corpus needs
            later = {p for m in names[names.index(n) + 1:] for p in CORPORA[m].packages}
            for pkg in list(fetcher.extracted):
                if pkg not in later:
                    shutil.rmtree(fetcher.extracted.pop(pkg)[0], ignore_errors=True)

    log("")
    log(f"{'corpus':26s} {'files':>7s} {'MB':>7s}" + (f" {'text MB':>8s}" if args.stats else ""))
    tot_f = tot_b = tot_t = 0
    for n in rows:
        m = read_manifest(n, args.dest) or {}
        f, b = m.get("files", 0), m.get("bytes", 0)
        tot_f += f
        tot_b += b
        line = f"{n:26s} {f:7d} {b / 1e6:7.1f}"
        if args.stats:
            t = text_bytes(corpus_path(n, args.dest))
            tot_t += t
            line += f" {t / 1e6:8.1f}"
        log(line)
    log(f"{'total':26s} {tot_f:7d} {tot_b / 1e6:7.1f}" + (f" {tot_t / 1e6:8.1f}" if args.stats else ""))
    if failed:
        log(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
