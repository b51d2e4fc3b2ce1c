"""Answering with a language model (LangChain chat models), grounded and cited, with a safe fallback.

Backends, chosen by ``ASSISTANT_LLM`` (:func:`make_chat_model`):

* ``openai`` - any OpenAI-compatible server (OpenAI, vLLM, llama.cpp's server,
  LM Studio, Ollama's ``/v1``) through ``langchain-openai``;
* ``ollama`` - ``langchain-ollama``;
* ``llamacpp`` - a local GGUF file run in-process by ``llama-cpp-python``;
* ``huggingface`` - Hugging Face Inference through ``langchain-huggingface``.

:class:`LLMAnswerer` builds a prompt from the files in ``prompts/`` (numbered,
delimited passages packed to a tiktoken budget), streams the model's answer
with a hard deadline, then checks it: ``[n]`` markers are repaired or dropped
so every one resolves to a passage the model saw, each cited sentence is
checked against its passage (numbers, accent-folded word overlap, multilingual
embedding similarity) and flagged when unsupported, and the model's fixed
"not in the documents" sentence becomes an abstention. When the model cannot
be used (unreachable, timeout, error, empty output, or an answer with no
resolvable or no supported citation) the user gets the extractive answer with
a note saying why - never a stack trace or a hang.
Secrets (API keys, tokens) are never put in notes, logs or errors.
"""
from __future__ import annotations

import logging
import math
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr

from .answer import NOT_FOUND
from .citations import MARKER, Quote, format_location, location, make_citation, renumber
from .config import Settings, hf_token, openai_api_key, secret_env_values
from .retrieval import Retrieval, _text as message_text, condense_question
from .schema import Answer, Citation, ScoredChunk
from .text import lexical_tokens, normalize_for_match, sentence_spans

log = logging.getLogger("assistant.llm")

BACKENDS = ("openai", "ollama", "llamacpp", "huggingface")
PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"

# tiktoken's cl100k_base is not the model's tokenizer: prompt sizes are inflated by this factor (and a fixed
# margin kept free for the chat template) so that a prompt that fits by our count fits the model's window too.
TOKEN_SAFETY = 1.2
TEMPLATE_TOKENS_PER_MESSAGE = 8
MIN_PASSAGE_TOKENS = 40  # a passage cut shorter than this is left out
RETRY_AFTER = 30.0  # seconds an unreachable backend is not called again (answers fall back at once)

# support of a cited sentence by its passage (calibrated on multilingual-e5-small, English answers over French
# text: translations of a passage sentence score 0.87-0.92, unrelated claims about the same topic 0.75-0.84)
LEXICAL_SUPPORT = 0.5
SEMANTIC_SUPPORT = 0.85


class LLMError(RuntimeError):
    """The backend did not produce a usable answer; ``reason`` is safe to show (no secrets)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class LLMConfigError(LLMError):
    """The backend is misconfigured or its package is missing."""


class LLMUnavailable(LLMError):
    """The backend failed to connect or timed out moments ago and is not called again yet."""


class LLMUnusable(LLMError):
    """The model answered, but nothing in its answer could be tied to the passages."""


# --------------------------------------------------------------------------- secrets
_SECRET_PATTERNS = [
    re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bhf_[A-Za-z0-9]{8,}"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._\-~+/=]{6,}"),
    re.compile(r"(?i)\b(api[_-]?key|token|authorization|password)(\s*[=:]\s*)[\"']?[^\s\"',;]{4,}"),
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),  # user:password@ in URLs
]


def _secret_values(settings: Settings | None = None) -> list[str]:
    vals = secret_env_values()
    if settings is not None:
        vals.append(settings.llm_api_key or "")
    return [v for v in vals if v and len(v) >= 4]


def redact(text: str, settings: Settings | None = None) -> str:
    """``text`` without API keys, tokens or URL passwords."""
    out = str(text)
    for val in _secret_values(settings):
        out = out.replace(val, "***")
    for pat in _SECRET_PATTERNS:
        if pat.groups >= 2:
            out = pat.sub(lambda m: m.group(1) + m.group(2) + "***", out)
        else:
            out = pat.sub("***", out)
    return out


def safe_url(url: str) -> str:
    """The URL without credentials, query or fragment (for notes and logs)."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(invalid URL)"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", "")) or redact(url)


# --------------------------------------------------------------------------- prompts
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
    from .offline import get_encoding

    return len(get_encoding("cl100k_base").encode(text, disallowed_special=()))


def _truncate_tokens(text: str, limit: int) -> str:
    from .offline import get_encoding

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


# --------------------------------------------------------------------------- output checks
_MARKER_LIKE = re.compile(
    r"[\[【]\s*\^?\s*(?:(?:passages?|sources?|docs?|documents?|refs?|references?|p)\s*[#:.]?\s*)?"
    r"(\d{1,3}(?:\s*(?:,|;|-|–|\band\b|\bet\b|&)\s*(?:(?:passages?|sources?)\s*)?#?\s*\d{1,3})*)\s*[\]】]", re.I)
_SPECIAL_TOKENS = re.compile(r"<end_of_turn>|<start_of_turn>(?:model|user)?|<\|eot_id\|>|<\|im_end\|>|<\|end\|>|</s>|<eos>")


def normalize_markers(text: str) -> str:
    """'[1, 2]', '[Passage 1]', '[1-3]', '【2】' -> '[1][2]', '[1]', '[1][2][3]', '[2]'."""
    def fix(m: re.Match) -> str:
        nums: list[int] = []
        for part in re.split(r"\s*(?:,|;|\band\b|\bet\b|&)\s*", m.group(1), flags=re.I):
            part = re.sub(r"(?i)passages?|sources?|#", "", part).strip()
            rng = re.fullmatch(r"(\d+)\s*[-–]\s*(\d+)", part)
            if rng:
                a, b = int(rng.group(1)), int(rng.group(2))
                nums.extend(range(a, b + 1) if 0 <= b - a <= 10 else (a, b))
            elif part.isdigit():
                nums.append(int(part))
        return "".join(f"[{n}]" for n in dict.fromkeys(nums))

    text = _MARKER_LIKE.sub(fix, text)

    def move(m: re.Match) -> str:  # "… startups. [1]" -> "… startups [1]."
        return " " + "".join(f"[{x}]" for x in MARKER.findall(m.group(2))) + m.group(1)

    text = re.sub(r"([.!?…])((?:[ \t]*\[\d{1,3}\])+)", move, text)
    return re.sub(r"[ \t]{2,}(?=\[\d)", " ", text)


def clean_output(text: str) -> str:
    """The model's text without chat-template tokens, echoed passages or a leading 'Answer:'."""
    text = _SPECIAL_TOKENS.sub("", text or "")
    text = re.sub(r"<passage\b[^>]*>.*?(?:</passage>|$)", " ", text, flags=re.S | re.I)  # echoed passages
    text = re.sub(r"</?passages?\b[^>]*>?", " ", text, flags=re.I)
    text = re.sub(r"<[a-z_/|][^<>\s]*$", "", text.rstrip(), flags=re.I)  # a tag cut by the token limit
    text = re.sub(r"^\s*(?:answer|réponse|reponse)\s*:\s*", "", text, flags=re.I)
    return text.strip()


_ABSTAIN_PHRASES = [normalize_for_match(p) for p in (
    "do not contain the answer", "does not contain the answer", "don't contain the answer", "doesn't contain the answer",
    "cannot find the answer", "can't find the answer", "could not find the answer", "no answer in the",
    "not contain any information", "no information about", "not mentioned in the passages", "not mentioned in the documents",
    "ne contiennent pas la réponse", "ne contient pas la réponse", "ne contiennent pas de réponse",
    "je ne trouve pas la réponse", "je ne trouve pas", "aucune information sur", "pas mentionné dans les",
)]


def is_abstention(text: str, passages: int = 0) -> bool:
    """Did the model say the passages do not contain the answer (fixed sentence or a close variant)?

    The answer counts as an abstention when it contains the prompt's fixed
    sentence (English or French) and little else, or a "cannot find"
    phrase without any citation of a passage.
    """
    cited = any(1 <= int(n) <= passages for n in MARKER.findall(text)) if passages else bool(MARKER.search(text))
    norm = normalize_for_match(MARKER.sub("", text))
    for sentence in NOT_FOUND.values():
        fixed = normalize_for_match(sentence).rstrip(".")
        if fixed in norm:
            rest = norm.replace(fixed, " ")
            if not cited or len(re.findall(r"\w+", rest)) < 6:
                return True
    if not cited and len(norm.split()) <= 60 and any(p in norm for p in _ABSTAIN_PHRASES):
        return True
    return False


_NUMBER = re.compile(r"\d{1,3}(?:[\u202f\u00a0 ]\d{3}(?!\d))+(?:[.,]\d+)?|\d+(?:[.,]\d+)*")


def _number(raw: str) -> str:
    parts = re.split(r"[.,\u202f\u00a0 ]", raw)
    if len(parts) > 1 and all(len(p) == 3 for p in parts[1:]):
        value = "".join(parts)  # thousands separators: "1 300", "1,300", "50.000"
    elif len(parts) > 1:
        value = "".join(parts[:-1]) + "." + parts[-1]  # decimal comma or point: "1,3", "1.3"
    else:
        value = raw
    whole, _, frac = value.partition(".")
    whole = whole.lstrip("0") or "0"
    frac = frac.rstrip("0")
    return f"{whole}.{frac}" if frac else whole


def numbers(text: str) -> set[str]:
    """Numbers in ``text`` (citation markers ignored), normalised: '1,3' and '1.3' -> '1.3'; '1 300', '1,300' -> '1300'."""
    return {_number(m) for m in _NUMBER.findall(MARKER.sub(" ", text))}


@dataclass
class Support:
    lexical: float  # share of the sentence's content words found in the best sentence (or pair) of the passage
    semantic: float  # best embedding similarity with one sentence of the passage (0 without an embedder)
    covered: set[str]  # the sentence's content words the best window covers
    numbers: set[str]  # numbers of the passage
    span: tuple[int, int]  # best-matching sentence of the passage (offsets in chunk.text)

    @property
    def score(self) -> float:
        return max(self.lexical, self.semantic)


def claim_tokens(sentence: str) -> set[str]:
    return set(lexical_tokens(MARKER.sub(" ", sentence)))


class SupportChecker:
    """Is an answer sentence supported by the passages it cites?

    Evidence: accent-folded, stemmed word overlap with the best sentence (or
    pair of sentences) of each passage; multilingual embedding similarity with
    its best sentence (through the shared embedder, when there is one), which
    carries the check across languages; and every number of the sentence must
    occur in the cited passages.
    """

    def __init__(self, cache=None):
        self.cache = cache  # answer.VectorCache (the shared embedder), or None for lexical only

    def _vectors(self, texts: list[str]):
        if self.cache is None or not texts:
            return None
        try:
            return self.cache.sentence_vectors(texts)
        except Exception as err:  # noqa: BLE001 - the embedder is optional here
            from .health import degraded

            degraded("support-vectors", "LLM support check: running without sentence vectors "
                     f"({type(err).__name__}: {str(err).splitlines()[0][:150] if str(err) else ''}); citations are "
                     "checked by word overlap only (paraphrases and translations are not recognised)", err)
            return None

    def check(self, sentence: str, passage: Passage) -> Support:
        claim = MARKER.sub(" ", sentence).strip()
        text = passage.text
        spans = sentence_spans(text) or [(0, len(text))]
        ctoks = claim_tokens(claim)
        windows = spans + [(spans[i][0], spans[i + 1][1]) for i in range(len(spans) - 1)]
        covered = [ctoks & set(lexical_tokens(text[s:e])) for s, e in windows]
        lex = [len(c) / len(ctoks) if ctoks else 0.0 for c in covered]
        sem = [0.0] * len(spans)
        vecs = self._vectors([claim] + [text[s:e] for s, e in spans])
        if vecs is not None:
            for i, v in enumerate(vecs[1:]):
                sem[i] = float(v @ vecs[0])
        best_w = max(range(len(windows)), key=lambda i: lex[i])
        # the quote is one sentence: the best by either measure
        best_s = max(range(len(spans)), key=lambda i: (max(lex[i], sem[i]), lex[i] + sem[i]))
        return Support(lex[best_w], max(sem), covered[best_w], numbers(text), spans[best_s])

    def judge(self, sentence: str, sups: dict[int, Support]) -> dict[int, bool]:
        """For one sentence and the passages it cites: is each citation supported?

        Numbers must occur in the cited passages together; a citation is
        supported by its own overlap or similarity, or when the cited passages
        together cover the sentence and this one contributes to it.
        """
        ctoks = claim_tokens(sentence)
        nums_ok = numbers(sentence) <= set().union(*(s.numbers for s in sups.values()))
        union = set().union(*(s.covered for s in sups.values()))
        together = len(union) / len(ctoks) if ctoks else 0.0
        return {n: nums_ok and (s.lexical >= LEXICAL_SUPPORT or s.semantic >= SEMANTIC_SUPPORT
                                or (together >= LEXICAL_SUPPORT and s.lexical >= 0.2))
                for n, s in sups.items()}


# --------------------------------------------------------------------------- llama.cpp in-process
def _extra_buffers_mode(settings: Settings | str | None) -> str:
    """``auto``, ``on`` or ``off``: from ``settings`` (or the value of its ``llamacpp_extra_buffers``), else from the
    environment."""
    if settings is None:
        settings = Settings.from_env()
    elif isinstance(settings, str):
        settings = Settings(llamacpp_extra_buffers=settings)  # checked and normalised like the setting
    return settings.llamacpp_extra_buffers


def llama_cpp_extra_buffers_enabled(settings: Settings | str | None = None) -> bool:
    """Whether llama.cpp may use its extra weight buffer types (repacking, AMX).

    ggml's AMX matrix multiplication segfaults on some AMX-capable virtual
    machines (observed with llama-cpp-python 0.3.36), taking the process down,
    so extra buffer types are off when the CPU reports AMX. Override with the
    setting ``llamacpp_extra_buffers`` (``LLAMACPP_EXTRA_BUFFERS=on|off``);
    without ``settings``, the settings of the environment decide.
    """
    mode = _extra_buffers_mode(settings)
    if mode == "on":
        return True
    if mode == "off":
        return False
    from .engine_choice import cpu_flags

    return not ({"amx_tile", "amx_int8"} & cpu_flags())


_llama_patch_lock = threading.Lock()


def patch_llama_cpp_defaults(settings: Settings | str | None = None) -> None:
    """Make ``llama_cpp.Llama`` load models without extra buffer types when they are unsafe (see above)."""
    if llama_cpp_extra_buffers_enabled(settings):
        return
    import llama_cpp.llama_cpp as lib

    with _llama_patch_lock:
        if getattr(lib.llama_model_default_params, "_assistant_patched", False):
            return
        original = lib.llama_model_default_params

        def params():
            p = original()
            if hasattr(p, "use_extra_bufts"):
                p.use_extra_bufts = False
            return p

        params._assistant_patched = True  # type: ignore[attr-defined]
        lib.llama_model_default_params = params


class ChatLlamaCppLocal(BaseChatModel):
    """A LangChain chat model over ``llama_cpp.Llama`` (a local GGUF file), loaded once, one call at a time."""

    model_path: str
    n_ctx: int = 4096
    max_tokens: int = 512
    temperature: float = 0.1
    n_threads: int | None = None
    chat_format: str | None = None
    extra_buffers: str | None = None  # auto, on or off (the setting llamacpp_extra_buffers); None: the environment's
    _llama: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "llamacpp-local"

    def _load(self):
        if self._llama is None:
            patch_llama_cpp_defaults(self.extra_buffers)
            from llama_cpp import Llama

            kwargs: dict[str, Any] = {"model_path": self.model_path, "n_ctx": self.n_ctx, "verbose": False}
            if self.n_threads:
                kwargs.update(n_threads=self.n_threads, n_threads_batch=self.n_threads)
            if self.chat_format:
                kwargs["chat_format"] = self.chat_format
            self._llama = Llama(**kwargs)
        return self._llama

    @staticmethod
    def _dicts(messages: list[BaseMessage]) -> list[dict]:
        roles = {"system": "system", "human": "user", "ai": "assistant"}
        return [{"role": roles.get(m.type, "user"),
                 "content": m.content if isinstance(m.content, str) else message_text(m.content)} for m in messages]

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        with self._lock:
            llama = self._load()
            it = llama.create_chat_completion(messages=self._dicts(messages),
                                              max_tokens=kwargs.get("max_tokens", self.max_tokens),
                                              temperature=self.temperature, stop=stop, stream=True)
            count = 0
            try:
                for part in it:
                    choice = (part.get("choices") or [{}])[0]
                    delta = (choice.get("delta") or {}).get("content") or ""
                    if delta:
                        count += 1
                        chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
                        if run_manager:
                            run_manager.on_llm_new_token(delta, chunk=chunk)
                        yield chunk
                yield ChatGenerationChunk(message=AIMessageChunk(content="", usage_metadata={
                    "input_tokens": 0, "output_tokens": count, "total_tokens": count}))
            finally:
                close = getattr(it, "close", None)
                if close:
                    close()

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        text, usage = "", None
        for chunk in self._stream(messages, stop=stop, run_manager=run_manager, **kwargs):
            text += chunk.message.content
            usage = chunk.message.usage_metadata or usage
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text, usage_metadata=usage))])


# --------------------------------------------------------------------------- backends
def _is_official_openai(base_url: str) -> bool:
    host = (urlsplit(base_url).hostname or "") if base_url else "api.openai.com"
    return host.endswith("openai.com") or host.endswith("openai.azure.com")


def _require(module: str, extra: str = "llm"):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        pkg = module.split(".")[0].replace("_", "-")
        raise LLMConfigError(f"the {pkg} package is not installed (pip install 'assistant[{extra}]')") from err


def make_chat_model(settings: Settings, **overrides: Any) -> BaseChatModel:
    """The LangChain chat model configured by ``settings.llm`` (also used by the evaluation's LLM judge).

    ``overrides`` go to the model's constructor (e.g. ``http_client=`` for the
    openai backend). Token limits are sent the way each server reads them:
    langchain-openai turns ``max_tokens`` into ``max_completion_tokens``, which
    llama.cpp's and other OpenAI-compatible servers ignore, so for any server
    other than OpenAI's own ``max_tokens`` is also sent in the request body.
    Raises :class:`LLMConfigError` (a message without secrets) when the
    backend is unknown, misconfigured or its package is missing.
    """
    name = (settings.llm or "").strip().lower()
    temp, max_tokens, timeout = settings.llm_temperature, int(settings.llm_max_tokens), float(settings.llm_timeout)
    if name == "openai":
        mod = _require("langchain_openai")
        base = settings.llm_base_url.strip() or None
        key = openai_api_key(settings)
        if not key:
            if base is None:
                raise LLMConfigError("no API key: set ASSISTANT_LLM_API_KEY or OPENAI_API_KEY, or ASSISTANT_LLM_BASE_URL "
                                     "for a local OpenAI-compatible server")
            key = "not-needed"  # local servers accept any key, the client library requires one
        kwargs: dict[str, Any] = dict(model=settings.llm_model or ("gpt-4o-mini" if base is None else "local-model"),
                                      base_url=base, api_key=key, temperature=temp, max_tokens=max_tokens,
                                      timeout=timeout, max_retries=0, stream_usage=True)
        if not _is_official_openai(base or ""):
            kwargs["extra_body"] = {"max_tokens": max_tokens}
        kwargs.update(overrides)
        return mod.ChatOpenAI(**kwargs)
    if name == "ollama":
        mod = _require("langchain_ollama")
        kwargs = dict(model=settings.llm_model or "llama3.2", temperature=temp, num_predict=max_tokens,
                      num_ctx=int(settings.llm_context_tokens), client_kwargs={"timeout": timeout})
        if settings.llm_base_url:
            kwargs["base_url"] = settings.llm_base_url
        kwargs.update(overrides)
        return mod.ChatOllama(**kwargs)
    if name == "llamacpp":
        _require("llama_cpp", extra="llamacpp")
        path = settings.llm_model
        if not path:
            raise LLMConfigError("set ASSISTANT_LLM_MODEL to the path of a GGUF file")
        if not Path(path).is_file():
            raise LLMConfigError(f"no GGUF file at {path}")
        kwargs = dict(model_path=str(path), n_ctx=int(settings.llm_context_tokens), max_tokens=max_tokens, temperature=temp,
                      extra_buffers=settings.llamacpp_extra_buffers)
        kwargs.update(overrides)
        return ChatLlamaCppLocal(**kwargs)
    if name == "huggingface":
        mod = _require("langchain_huggingface")
        hub_constants = _require("huggingface_hub.constants")
        if hub_constants.HF_HUB_OFFLINE:
            raise LLMConfigError("the huggingface backend calls the Hugging Face Inference API but HF_HUB_OFFLINE=1; "
                                 "set HF_HUB_OFFLINE=0")
        if not settings.llm_model and not settings.llm_base_url:
            raise LLMConfigError("set ASSISTANT_LLM_MODEL to a Hugging Face model id (e.g. Qwen/Qwen2.5-7B-Instruct)")
        token = hf_token(settings)
        ekw: dict[str, Any] = dict(max_new_tokens=max_tokens, temperature=max(temp, 0.01),  # TGI rejects 0
                                   timeout=max(1, math.ceil(timeout)), huggingfacehub_api_token=token,
                                   task="conversational")
        if settings.llm_base_url:
            ekw["endpoint_url"] = settings.llm_base_url
        else:
            ekw["repo_id"] = settings.llm_model
            ekw["provider"] = "auto"
        endpoint = mod.HuggingFaceEndpoint(**ekw)
        kwargs = dict(llm=endpoint, max_tokens=max_tokens, temperature=temp)
        if settings.llm_model:
            kwargs["model_id"] = settings.llm_model
        kwargs.update(overrides)
        return mod.ChatHuggingFace(**kwargs)
    if not name:
        raise LLMConfigError("no LLM backend configured (ASSISTANT_LLM is empty)")
    raise LLMConfigError(f"unknown LLM backend {settings.llm!r} (use one of: {', '.join(BACKENDS)})")


def describe_backend(settings: Settings) -> str:
    """'openai at http://127.0.0.1:8080/v1' - for notes (never contains secrets)."""
    name = (settings.llm or "").strip().lower() or "none"
    if name == "openai":
        return f"openai at {safe_url(settings.llm_base_url) or 'https://api.openai.com/v1'}"
    if name == "ollama":
        return f"ollama at {safe_url(settings.llm_base_url) or 'http://localhost:11434'}"
    if name == "llamacpp":
        return f"llamacpp with {Path(settings.llm_model).name or 'no model file'}"
    if name == "huggingface":
        where = safe_url(settings.llm_base_url) or (settings.llm_model or "no model")
        return f"huggingface, {where}"
    return redact(name, settings)


def failure_reason(err: BaseException, settings: Settings) -> str:
    """A short, secret-free description of why a call failed."""
    if isinstance(err, LLMError):
        return redact(err.reason, settings)
    names = {c.__name__ for c in type(err).__mro__}
    status = getattr(err, "status_code", None) or getattr(getattr(err, "response", None), "status_code", None)
    if names & {"APITimeoutError", "TimeoutException", "ReadTimeout", "ConnectTimeout", "TimeoutError", "Timeout"}:
        return f"timeout after {settings.llm_timeout:g} s"
    if names & {"APIConnectionError", "ConnectError", "ConnectionError", "ConnectionRefusedError", "RemoteProtocolError"}:
        return "cannot connect"
    if status == 401 or "AuthenticationError" in names:
        return "the server refused the credentials (HTTP 401)"
    if status == 404 or "NotFoundError" in names:
        return "model or endpoint not found (HTTP 404)"
    if status:
        body = getattr(err, "body", None)
        detail = body.get("message") or body.get("detail") or body.get("error") if isinstance(body, dict) else None
        detail = redact(str(detail or ""), settings).strip().replace("\n", " ")[:120]
        return f"HTTP {status}: {detail}" if detail else f"HTTP {status}"
    if isinstance(err, ImportError):
        return f"a package is missing ({redact(str(err), settings)[:120]})"
    msg = redact(str(err), settings).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {msg[:160]}" if msg else type(err).__name__


# --------------------------------------------------------------------------- calls with a deadline
class _DeadlineStream:
    """Iterate ``produce()`` in a worker thread; raise :class:`LLMError` when ``timeout`` seconds pass in total.

    The worker stops (and closes the model's stream, which drops the HTTP
    connection) at the next chunk after the deadline; it is a daemon thread,
    so a backend that never answers cannot hold the process either.
    """

    def __init__(self, produce: Callable[[], Iterator[Any]], timeout: float):
        self.produce = produce
        self.timeout = timeout
        self.queue: queue.Queue = queue.Queue()
        self.cancel = threading.Event()
        self.thread = threading.Thread(target=self._work, name="llm-call", daemon=True)

    def _work(self) -> None:
        it = None
        try:
            it = self.produce()
            for item in it:
                if self.cancel.is_set():
                    break
                self.queue.put(("item", item))
            self.queue.put(("done", None))
        except BaseException as err:  # noqa: BLE001 - handed to the caller
            self.queue.put(("error", err))
        finally:
            close = getattr(it, "close", None)
            if close:
                try:
                    close()
                except Exception:  # noqa: BLE001
                    pass

    def __iter__(self) -> Iterator[Any]:
        deadline = time.monotonic() + self.timeout
        self.thread.start()
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LLMError(f"timeout after {self.timeout:g} s")
                try:
                    kind, val = self.queue.get(timeout=left)
                except queue.Empty:
                    raise LLMError(f"timeout after {self.timeout:g} s") from None
                if kind == "item":
                    yield val
                elif kind == "done":
                    return
                else:
                    raise val
        finally:
            self.cancel.set()


def _chunk_text(chunk: Any) -> str:
    content = getattr(chunk, "content", chunk)
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks (some providers)
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return "" if content is None else str(content)


# --------------------------------------------------------------------------- the answerer
@dataclass
class Prepared:
    messages: list[BaseMessage]
    passages: list[Passage]
    language: str
    prompt_tokens: int = 0


@dataclass
class Usage:
    """One model call's token counts (as the backend reports them) and raw output: ``Answer.usage``."""

    output_tokens: int | None = None
    input_tokens: int | None = None
    raw: str = ""  # the model's raw output
    extra: dict = field(default_factory=dict)


class LLMAnswerer:
    """Grounded, cited answers from a language model, with the extractive answerer as a safety net.

    >>> llm = LLMAnswerer(settings, fallback=extractive)  # doctest: +SKIP
    >>> llm.run(retrieval).backend  # doctest: +SKIP
    'llm:openai'
    """

    def __init__(self, settings: Settings, fallback, chat_model: BaseChatModel | None = None,
                 prompts_dir: str | Path | None = None):
        self.settings = settings
        self.fallback = fallback
        self.name = (settings.llm or "").strip().lower()
        self.backend = f"llm:{self.name}"
        self.prompts_dir = prompts_dir
        self._model = chat_model
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._down_reason = ""
        self.checker = SupportChecker(getattr(fallback, "cache", None))
        self._local = threading.local()  # per thread: the Usage of its last model call (see last_usage)

    @property
    def last_usage(self) -> Usage:
        """The :class:`Usage` of the last model call made by the calling thread (read-only; compatibility: an
        answer carries its own as ``Answer.usage``, which is what concurrent callers should read)."""
        usage = getattr(self._local, "usage", None)
        return usage if usage is not None else Usage()

    # --- model ------------------------------------------------------------------
    @property
    def model(self) -> BaseChatModel:
        with self._lock:
            if self._model is None:
                self._model = make_chat_model(self.settings)
            return self._model

    def _merge_system(self) -> bool:
        """Gemma chat templates have no system role (llama.cpp's drops it): send the rules in the user turn."""
        return "gemma" in (self.settings.llm_model or "").lower()

    def _messages(self, system: str, user: str) -> list[BaseMessage]:
        if not system:
            return [HumanMessage(user)]
        if self._merge_system():
            return [HumanMessage(system + "\n\n" + user)]
        return [SystemMessage(system), HumanMessage(user)]

    def _check_available(self) -> None:
        if time.monotonic() < self._down_until:
            raise LLMUnavailable(f"{self._down_reason} on a call moments ago; not retried for {RETRY_AFTER:g} s")

    def _mark(self, err: BaseException, reason: str) -> None:
        if not isinstance(err, LLMUnavailable) and reason.startswith(("timeout", "cannot connect")):
            self._down_until = time.monotonic() + RETRY_AFTER
            self._down_reason = reason

    def _stream_model(self, messages: list[BaseMessage], usage: Usage, **kwargs: Any) -> Iterator[str]:
        """Text pieces from the model within ``llm_timeout`` seconds in total (raises :class:`LLMError`); the call's
        token counts and raw output are recorded in ``usage``."""
        self._check_available()
        model = self.model
        self._local.usage = usage
        for chunk in _DeadlineStream(lambda: model.stream(messages, **kwargs), self.settings.llm_timeout):
            meta = getattr(chunk, "usage_metadata", None)
            if meta:
                usage.output_tokens = meta.get("output_tokens", usage.output_tokens)
                usage.input_tokens = meta.get("input_tokens", usage.input_tokens)
            piece = _chunk_text(chunk)
            if piece:
                usage.raw += piece
                yield piece

    # --- prompts -----------------------------------------------------------------
    def prepare(self, retrieval: Retrieval) -> Prepared:
        lang = retrieval.language if retrieval.language in NOT_FOUND else "en"
        tpl = load_prompt("answer", lang, self.prompts_dir)
        question = retrieval.question
        standalone = ""
        if retrieval.standalone and normalize_for_match(retrieval.standalone) != normalize_for_match(question):
            label = "Question autonome" if lang == "fr" else "Standalone form"
            standalone = f"\n({label}: {_neutralise(retrieval.standalone)})"
        values = dict(question=_neutralise(question), standalone=standalone, not_found=NOT_FOUND[lang])
        system, user_empty = tpl.render(passages="", **values)
        fixed = count_tokens(system) + count_tokens(user_empty) + 2 * TEMPLATE_TOKENS_PER_MESSAGE
        ctx, out = int(self.settings.llm_context_tokens), int(self.settings.llm_max_tokens)
        margin = max(32, int(0.03 * ctx))
        budget = int(ctx - out - margin - fixed * TOKEN_SAFETY)
        passages = pack_passages(retrieval.chunks, budget)
        if retrieval.chunks and not passages:
            raise LLMConfigError(f"the context window (llm_context_tokens={ctx}) leaves no room for passages "
                                 f"after the prompt ({fixed} tokens) and the answer (llm_max_tokens={out})")
        system, user = tpl.render(passages="\n\n".join(format_passage(p.n, p.chunk, p.text) for p in passages), **values)
        prompt_tokens = count_tokens(system) + count_tokens(user) + 2 * TEMPLATE_TOKENS_PER_MESSAGE
        return Prepared(self._messages(system, user), passages, lang, prompt_tokens)

    # --- answering ---------------------------------------------------------------
    def run(self, retrieval: Retrieval, history: list[dict] | None = None) -> Answer:
        final = None
        for item in self.stream(retrieval, history):
            if isinstance(item, Answer):
                final = item
        assert final is not None
        return final

    def stream(self, retrieval: Retrieval, history: list[dict] | None = None) -> Iterator[str | Answer]:
        """Yield the growing answer text, then the checked :class:`Answer` (or the fallback answer with a note)."""
        t0 = time.perf_counter()
        if not retrieval.chunks:
            yield self._finish(self._abstained(retrieval, "nothing retrieved"), t0)
            return
        raw = ""
        usage = None
        try:
            prepared = self.prepare(retrieval)
            usage = Usage()
            for piece in self._stream_model(prepared.messages, usage):
                raw += piece
                yield clean_output(raw)
            text = clean_output(raw)
            if not text:
                raise LLMError("empty output")
            answer = self.postprocess(text, prepared, retrieval)
        except Exception as err:  # noqa: BLE001 - every failure becomes the grounded answer with a note
            reason = failure_reason(err, self.settings)
            self._mark(err, reason)
            where = describe_backend(self.settings)
            if isinstance(err, LLMUnusable):
                log.info("answer of %s not used: %s", where, reason)
                note = (f"The language model's answer ({where}) was not used: {reason}; "
                        "this is the grounded extractive answer.")
            else:
                log.warning("LLM backend %s failed: %s", where, reason)
                note = f"The language model ({where}) did not answer ({reason}); this is the grounded extractive answer."
            answer = self._fallback(retrieval, note)
            yield answer.answer
        answer.usage = usage
        yield self._finish(answer, t0)

    def _finish(self, answer: Answer, t0: float) -> Answer:
        answer.timings_ms["answer"] = (time.perf_counter() - t0) * 1000
        return answer

    def _fallback(self, retrieval: Retrieval, note: str) -> Answer:
        answer = self.fallback.run(retrieval)
        answer.note = redact(note, self.settings)
        return answer

    def _abstained(self, retrieval: Retrieval, why: str) -> Answer:
        lang = retrieval.language if retrieval.language in NOT_FOUND else "en"
        return Answer(question=retrieval.question, answer=NOT_FOUND[lang], abstained=True, citations=[],
                      retrieved=retrieval.chunks, standalone_question=retrieval.standalone, language=lang,
                      backend=self.backend, debug=why)

    def postprocess(self, text: str, prepared: Prepared, retrieval: Retrieval) -> Answer:
        """The model's text -> a checked :class:`Answer` (markers resolved, sentences checked, abstention detected).

        Raises :class:`LLMError` when nothing in the answer can be tied to a passage.
        """
        passages = {p.n: p for p in prepared.passages}
        text = normalize_markers(text)
        if is_abstention(text, len(passages)):
            answer = self._abstained(retrieval, "the model replied that the passages do not contain the answer")
            return answer
        # sentence spans (a run of markers alone belongs to the sentence before); text between them is kept as is
        spans: list[list[int]] = []
        for s, e in sentence_spans(text):
            if spans and not MARKER.sub("", text[s:e]).strip(" \t.,;:!?"):
                spans[-1][1] = e
                continue
            spans.append([s, e])
        cites: dict[int, Citation] = {}
        best_quote: dict[int, float] = {}
        out: list[str] = []
        pos = 0
        for s, e in spans:
            sent = text[s:e]
            out.append(text[pos:s])
            pos = e
            claim = MARKER.sub("", sent).strip()
            valid = [n for n in dict.fromkeys(int(x) for x in MARKER.findall(sent)) if n in passages]
            if not valid and len(re.findall(r"\w+", claim)) >= 3:
                # repair: an uncited sentence gets the passage that supports it best, if one does
                sups = {p.n: self.checker.check(claim, p) for p in passages.values()}
                n = max(sups, key=lambda k: sups[k].score)
                if self.checker.judge(claim, {n: sups[n]})[n]:
                    sent = _append_marker(MARKER.sub("", sent).rstrip(), n)
                    valid = [n]
            if valid:
                sups = {n: self.checker.check(claim, passages[n]) for n in valid}
                verdict = self.checker.judge(claim, sups)
                for n in valid:
                    sup, p = sups[n], passages[n]
                    if n not in cites or sup.score > best_quote[n]:
                        c = make_citation(n, Quote(p.chunk, *sup.span))
                        c.supported = cites[n].supported if n in cites else True
                        cites[n] = c
                        best_quote[n] = sup.score
                    if not verdict[n]:
                        cites[n].supported = False
            out.append(sent)
        out.append(text[pos:])
        body = "".join(out)
        body, citations, dropped = renumber(body, list(cites.values()))
        if dropped:
            log.info("dropped citation markers that match no passage: %s", sorted(set(dropped)))
        if not citations:
            raise LLMUnusable("it cites none of the passages, so it could not be checked")
        if not any(c.supported for c in citations):
            raise LLMUnusable("none of its cited sentences is supported by the passages it cites")
        return Answer(question=retrieval.question, answer=body, abstained=False, citations=citations,
                      retrieved=retrieval.chunks, standalone_question=retrieval.standalone, language=prepared.language,
                      backend=self.backend, unsupported=[c.n for c in citations if not c.supported])

    # --- follow-ups --------------------------------------------------------------
    def condense(self, question: str, history: list[dict] | None) -> str:
        """A standalone form of a follow-up question, written by the model; the deterministic expansion
        (:func:`assistant.retrieval.condense_question`) on any failure."""
        fallback = condense_question(question, history, self.settings.history_turns)
        if not history:
            return question
        try:
            tpl = load_prompt("condense", "en", self.prompts_dir)
            system, user = tpl.render(history=_neutralise(render_history(history, self.settings.history_turns)),
                                      question=_neutralise(question))
            limit = max(32, min(160, int(self.settings.llm_max_tokens)))
            out = "".join(self._stream_model(self._messages(system, user), Usage(), **self._limit_kwargs(limit)))
            standalone = clean_condensed(out, question)
            if not standalone:
                raise LLMError("unusable condensed question")
            return standalone
        except Exception as err:  # noqa: BLE001
            reason = failure_reason(err, self.settings)
            self._mark(err, reason)
            log.info("condensing with %s failed (%s); using the deterministic expansion", self.name, reason)
            return fallback

    def _limit_kwargs(self, limit: int) -> dict[str, Any]:
        """Per-call token limit in each backend's own parameter."""
        if self.name == "openai":
            kw: dict[str, Any] = {"max_completion_tokens": limit}
            if not _is_official_openai(self.settings.llm_base_url):
                kw["extra_body"] = {"max_tokens": limit}
            return kw
        if self.name == "ollama":  # ChatOllama reads per-call limits only from a complete `options`
            model = self.model
            opts = {"num_ctx": getattr(model, "num_ctx", None), "temperature": getattr(model, "temperature", None),
                    "num_predict": limit}
            return {"options": {k: v for k, v in opts.items() if v is not None}}
        if self.name in ("llamacpp", "huggingface"):
            return {"max_tokens": limit}
        return {}


def _append_marker(sentence: str, n: int) -> str:
    m = re.search(r"([.!?…]+[»\"”’)]*|[:;])$", sentence)
    if m:
        return f"{sentence[:m.start()].rstrip()} [{n}]{m.group(0)}"
    return f"{sentence} [{n}]"


def render_history(history: list[dict], turns: int = 2, max_tokens: int = 200) -> str:
    """The last ``turns`` exchanges as 'User: …' / 'Assistant: …' lines (Gradio 6 content blocks accepted)."""
    lines = []
    for t in history[-2 * max(1, turns):]:
        role = "User" if t.get("role") == "user" else "Assistant"
        text = re.sub(r"\s+", " ", MARKER.sub("", message_text(t.get("content")))).strip()
        if text:
            lines.append(f"{role}: {_truncate_tokens(text, max_tokens)}")
    return "\n".join(lines)


def clean_condensed(out: str, question: str) -> str:
    """The model's standalone question, or '' when the output is not one."""
    text = clean_output(out)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return ""
    text = re.sub(r"^(?:standalone question|question autonome|question)\s*:\s*", "", lines[0], flags=re.I)
    text = text.strip().strip("\"'“”«» ").strip()
    if not text or len(text) > max(300, 3 * len(question)) or len(re.findall(r"\w+", text)) < 2:
        return ""
    if is_abstention(text) or "<" in text:
        return ""
    return text
