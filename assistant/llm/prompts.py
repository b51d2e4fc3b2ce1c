"""Prompts and what goes into them: the templates, the token budget, the numbered passages.

This module owns the prompt files of ``prompts/`` (:class:`PromptTemplate`, :func:`parse_prompt`,
:func:`load_prompt`: ``--- system ---`` / ``--- user ---`` sections with ``{name}`` placeholders), token counting
with tiktoken's cl100k_base and the safety factor that makes our count an upper bound of the model's
(:data:`TOKEN_SAFETY`, :data:`TEMPLATE_TOKENS_PER_MESSAGE`), and the passages: retrieved chunks numbered, delimited
(:func:`format_passage`, document text unable to close the delimiters) and packed to the budget
(:func:`pack_passages`, :class:`Passage`).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..citations import format_location, location
from ..schema import ScoredChunk
from ..text import sentence_spans
from .errors import LLMConfigError

PROMPTS_DIR = Path(__file__).resolve().parent.parent.parent / "prompts"

# tiktoken's cl100k_base is not the model's tokenizer: prompt sizes are inflated by this factor (and a fixed
# margin kept free for the chat template) so that a prompt that fits by our count fits the model's window too.
TOKEN_SAFETY = 1.2
TEMPLATE_TOKENS_PER_MESSAGE = 8
MIN_PASSAGE_TOKENS = 40  # a passage cut shorter than this is left out


@dataclass(frozen=True)
class PromptTemplate:
    """A two-part chat prompt (system, user) loaded from ``prompts/<name>.txt``.

    Sections start with ``--- system ---`` / ``--- user ---`` lines; ``{name}``
    placeholders are replaced by :meth:`render` (unknown ones are left alone,
    and substituted values are never re-parsed, so document text may contain
    braces).
    """

    name: str
    system: str
    user: str

    def render(self, **values: str) -> tuple[str, str]:
        def fill(text: str) -> str:
            return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), text)

        return fill(self.system), fill(self.user)


_SECTION = re.compile(r"^---\s*(system|user)\s*---\s*$", re.M)


def parse_prompt(name: str, text: str) -> PromptTemplate:
    parts: dict[str, str] = {}
    matches = list(_SECTION.finditer(text))
    if not matches:
        raise LLMConfigError(f"prompt file {name} has no '--- system ---' / '--- user ---' sections")
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        parts[m.group(1)] = text[m.end():end].strip("\n")
    if "user" not in parts:
        raise LLMConfigError(f"prompt file {name} has no '--- user ---' section")
    return PromptTemplate(name, parts.get("system", "").strip(), parts["user"].strip())


@lru_cache(maxsize=32)
def _read_prompt(path: str, mtime: float) -> PromptTemplate:
    return parse_prompt(Path(path).name, Path(path).read_text(encoding="utf-8"))


def load_prompt(name: str, language: str = "en", directory: str | Path | None = None) -> PromptTemplate:
    """``prompts/<name>_<language>.txt``, else ``<name>.txt``, else ``<name>_en.txt``.

    Looked up in ``directory`` when given, else in the repository's ``prompts/`` folder, then ``./prompts``.
    """
    bases = [Path(directory)] if directory else [PROMPTS_DIR, Path.cwd() / "prompts"]
    for base in bases:
        for candidate in (f"{name}_{language}.txt", f"{name}.txt", f"{name}_en.txt"):
            path = base / candidate
            if path.is_file():
                return _read_prompt(str(path), path.stat().st_mtime)
    raise LLMConfigError(f"no prompt file for {name!r} in {bases[0]} (expected {name}_{language}.txt or {name}.txt)")


# --------------------------------------------------------------------------- token budget
def count_tokens(text: str) -> int:
    from ..offline import get_encoding

    return len(get_encoding("cl100k_base").encode(text, disallowed_special=()))


def _truncate_tokens(text: str, limit: int) -> str:
    from ..offline import get_encoding

    enc = get_encoding("cl100k_base")
    ids = enc.encode(text, disallowed_special=())
    if len(ids) <= limit:
        return text
    return enc.decode(ids[:max(0, limit)]).rstrip() + "…"


@dataclass
class Passage:
    n: int  # the number the model sees
    chunk: ScoredChunk
    end: int  # characters of chunk.text given to the model (shorter when the last passage was cut)
    tokens: int

    @property
    def text(self) -> str:
        return self.chunk.text[:self.end]


_TAG = re.compile(r"<\s*(/?)\s*(passages?|conversation)\b", re.I)


def _neutralise(text: str) -> str:
    """Document text cannot close or open our delimiters: '<passage' -> '‹passage'."""
    return _TAG.sub(lambda m: "‹" + m.group(1) + m.group(2), text)


def format_passage(n: int, chunk: ScoredChunk, text: str | None = None) -> str:
    text = chunk.text if text is None else text
    src = re.sub(r'["<>\n]', "", chunk.source)
    loc = format_location(location(chunk))
    attrs = f'id="{n}" source="{src}"' + (f' location="{loc}"' if loc else "")
    return f"<passage {attrs}>\n{_neutralise(text.strip())}\n</passage>"


def pack_passages(chunks: list[ScoredChunk], budget: int) -> list[Passage]:
    """Number the retrieved chunks 1..m in retrieval order, as many as fit in ``budget`` tokens.

    Sizes are counted with tiktoken (cl100k_base) times :data:`TOKEN_SAFETY`.
    A passage that does not fit whole is cut at a sentence boundary when at
    least :data:`MIN_PASSAGE_TOKENS` of it fit; packing stops there.
    """
    out: list[Passage] = []
    used = 0
    for chunk in chunks:
        n = len(out) + 1
        cost = math.ceil(count_tokens(format_passage(n, chunk) + "\n\n") * TOKEN_SAFETY)
        if used + cost <= budget:
            out.append(Passage(n, chunk, len(chunk.text), cost))
            used += cost
            continue
        left = budget - used
        if left >= MIN_PASSAGE_TOKENS * TOKEN_SAFETY:
            best = None
            for _s, e in sentence_spans(chunk.text):
                c = math.ceil(count_tokens(format_passage(n, chunk, chunk.text[:e]) + "\n\n") * TOKEN_SAFETY)
                if c > left:
                    break
                best = (e, c)
            if best and best[1] >= MIN_PASSAGE_TOKENS:
                out.append(Passage(n, chunk, best[0], best[1]))
                used += best[1]
        break
    return out
