#!/usr/bin/env python
"""Assemble README.md from docs/README.head.md, the settings table and the docs/*.md sections.

    python scripts/build_readme.py          # write README.md
    python scripts/build_readme.py --check  # exit 1 when README.md is out of date (a test runs this)
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SECTIONS = ["ui.md", "llm.md", "evaluation.md", "reader.md", "performance.md", "reliability.md", "architecture.md", "development.md"]


def shift(md: str) -> str:
    """Headings re-levelled so the page's top heading is '##' (outside code blocks); image paths from the root."""
    lines, fence, levels = md.splitlines(), False, []
    for line in lines:
        if line.lstrip().startswith("```"):
            fence = not fence
        elif not fence and re.match(r"^#{1,6} ", line):
            levels.append(len(line) - len(line.lstrip("#")))
    delta = 2 - min(levels) if levels else 0
    out, fence = [], False
    for line in lines:
        if line.lstrip().startswith("```"):
            fence = not fence
        elif not fence and re.match(r"^#{1,6} ", line):
            line = "#" * delta + line if delta >= 0 else line[-delta:]
        out.append(line.replace("](screenshot.png)", "](docs/screenshot.png)").replace("](../", "]("))  # docs/ links, seen from the root
    return "\n".join(out).strip() + "\n"


def build() -> str:
    sys.path.insert(0, str(ROOT))
    from assistant.cli import settings_markdown

    text = (DOCS / "README.head.md").read_text(encoding="utf-8")
    text = text.replace("SETTINGS_TABLE", settings_markdown())
    for key in re.findall(r"^RESULTS_([A-Z]+)$", text, flags=re.M):
        part = DOCS / f"results_{key.lower()}.md"
        text = text.replace(f"RESULTS_{key}", part.read_text(encoding="utf-8").strip() if part.exists() else "(to be measured)")
    for name in SECTIONS:
        p = DOCS / name
        if p.exists():
            text = text.rstrip() + "\n\n" + shift(p.read_text(encoding="utf-8"))
    return text.rstrip() + "\n"


if __name__ == "__main__":
    new = build()
    readme = ROOT / "README.md"
    if "--check" in sys.argv:
        if not readme.exists() or readme.read_text(encoding="utf-8") != new:
            print("README.md is out of date: run python scripts/build_readme.py", file=sys.stderr)
            sys.exit(1)
        sys.exit(0)
    readme.write_text(new, encoding="utf-8")
    print(f"wrote {readme} ({len(new.splitlines())} lines)")
