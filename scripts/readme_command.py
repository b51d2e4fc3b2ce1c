#!/usr/bin/env python
"""Print one of the README's two set-up commands (`app` or `tests`), so CI runs exactly what the README says."""
import re
import sys
from pathlib import Path

MARKERS = {"app": "**Install and start the app", "tests": "**Install and run the tests"}

text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
start = text.index(MARKERS[sys.argv[1]])
block = re.search(r"```bash\n(.+?)\n```", text[start:], flags=re.S)
print(block.group(1).strip())
