"""Inference engines for a BERT-style encoder folder: the same weights, run by torch or by ONNX Runtime.

An engine turns token id lists into mean-pooled (not yet normalised) float32 vectors. Every engine computes the
same function as the fp32 network (vectors within cosine 0.999 of torch fp32, a test checks it) and every text's
vector is independent of the other texts in its call (batch-independent). Which one is fastest depends on the CPU
far more than a flag list predicts (bf16 is 3x faster than fp32 with AMX, 5x *slower* with AVX2 only; torch's
int8 matmul takes seconds per text on AVX-512 without AMX), so :mod:`assistant.engine_choice` measures them.

==============  ===========================================================================================
``torch-fp32``  torch, float32 (MKL/oneDNN GEMMs)
``torch-bf16``  torch, weights and activations in bfloat16 (fast only where the CPU multiplies bf16 natively)
``torch-int8``  torch, per-row int8 linear layers (:class:`RowInt8Linear`; fast only with AMX)
``onnx-fp32``   ONNX Runtime (MLAS kernels), float32
``onnx-int8``   ONNX Runtime, int8 linear layers with a scale per token and per weight column
                (:func:`quantize_rows`; batch-independent, cosine >= 0.9993 to fp32; u8 x u8 kernels where the
                CPU's u8 x s8 kernels saturate, see :func:`u8s8_exact`)
==============  ===========================================================================================

The ONNX graphs are exported once, offline, from the torch folder (like the folder itself is converted once from
the packaged weights) and cached beside it.

Why one file over 450 lines: five engines of one interface (each 40-80 lines) share the batching, the
ONNX export and the int8 row quantisation; the choice between them is ``assistant/engine_choice.py``.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from pathlib import Path
from typing import Iterator

import numpy as np

ONNX_VERSION = "3"  # bump when the export or the optimisation changes: the cached graphs are rebuilt
# 3: the per-token int8 activations by one QuantizeLinear, rescaled inside a fused MatMulIntegerToFloat (1.19x v2)
# 2: the query, key and value layers share one quantised matmul (same outputs); the u8 x u8 int8 graph
_export_lock = threading.Lock()
_path_locks: dict[str, threading.Lock] = {}
ONNX_BATCH_TOKENS = 1024  # padded tokens per ONNX Runtime run (see OnnxEngine._batches)


class Engine:
    """Base: ``load()`` once, then ``pooled(ids)`` (thread-compatible: the embedder serialises calls)."""

    name = "base"
    precision = "fp32"
    requires: tuple[str, ...] = ()  # importable modules this engine needs

    def __init__(self, folder: str | Path, threads: int, batch_tokens: int = 8192, unpadded: bool = False):
        self.folder = Path(folder)
        self.threads = threads
        self.batch_tokens = batch_tokens
        self.unpadded = unpadded  # ONNX engines: batches of one text length, no padding (setting onnx_unpadded)
        self.dim = 0

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this engine cannot run in this environment (a missing package), or None."""
        import importlib.util

        for mod in cls.requires:
            if importlib.util.find_spec(mod) is None:
                return f"needs the Python package {mod!r}"
        return None

    def load(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def pooled(self, ids: list[list[int]]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def token_states(self, ids: list[list[int]]) -> list[np.ndarray]:
        """The last hidden state of every token of each text, (tokens, dim) float32 each, in the batches ``pooled``
        runs: ``mean(token_states(ids)[i], 0)`` is ``pooled(ids)[i]`` (see :mod:`assistant.sentences`)."""
        raise NotImplementedError(f"{self.name} does not expose token states")

    def close(self) -> None:
        """Free the model (engines are loaded side by side only while they are measured)."""


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of the token states where ``mask`` is 1: (batch, tokens, dim) x (batch, tokens) -> (batch, dim)."""
    m = mask.astype(np.float32)[:, :, None]
    return (hidden.astype(np.float32) * m).sum(1) / np.maximum(m.sum(1), 1.0)


# --------------------------------------------------------------------------------------------------- torch
class TorchEngine(Engine):
    requires = ("torch", "transformers")

    def load(self) -> None:
        import torch
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        torch.set_num_threads(self.threads)
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        model = AutoModel.from_pretrained(str(self.folder)).eval()
        self.model = self._convert(model)
        self.dim = int(model.config.hidden_size)
        self.pad = int(model.config.pad_token_id or 0)

    def _convert(self, model):
        return model

    def pooled(self, ids: list[list[int]]) -> np.ndarray:
        import torch

        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for batch, inp, mask in length_sorted_batches(ids, self.batch_tokens, self.pad):
                hidden = self.model(input_ids=inp, attention_mask=mask).last_hidden_state.float()
                m = mask.unsqueeze(-1).to(hidden.dtype)
                out[batch] = ((hidden * m).sum(1) / m.sum(1).clamp(min=1)).numpy()
        return out

    def token_states(self, ids: list[list[int]]) -> list[np.ndarray]:
        import torch

        out: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * len(ids)
        with torch.inference_mode():
            for batch, inp, mask in length_sorted_batches(ids, self.batch_tokens, self.pad):
                hidden = self.model(input_ids=inp, attention_mask=mask).last_hidden_state.float().numpy()
                for r, k in enumerate(batch):
                    out[k] = hidden[r, : len(ids[k])]
        return out

    def close(self) -> None:
        self.model = None


class TorchFp32(TorchEngine):
    name = "torch-fp32"


class TorchBf16(TorchEngine):
    """Weights and activations in bf16; pooling and the output in fp32 (cosine 0.99998 to fp32)."""

    name = "torch-bf16"
    precision = "bf16"

    def _convert(self, model):
        import torch

        return model.to(torch.bfloat16)


class TorchInt8(TorchEngine):
    name = "torch-int8"
    precision = "int8"

    def _convert(self, model):
        return quantize_int8(model)


# ---------------------------------------------------------------------------------------------------- onnx
class OnnxEngine(Engine):
    requires = ("onnxruntime", "onnx", "torch", "transformers")
    quantized = False
    unsigned = False  # int8 graph with uint8 weights (u8 x u8 kernels)

    def load(self) -> None:
        import onnxruntime as ort

        path = onnx_model(self.folder, quantized=self.quantized, unsigned=self.unsigned)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # threads that sleep rather than spin between runs (the OMP_WAIT_POLICY=PASSIVE of torch, see offline.py)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = _session(ort, path, opts)
        config = json.loads((self.folder / "config.json").read_text())
        self.dim = int(config["hidden_size"])
        self.pad = int(config.get("pad_token_id") or 0)

    def _run(self, inp: np.ndarray, mask: np.ndarray) -> np.ndarray:
        hidden = self.session.run(["last_hidden_state"], {"input_ids": inp, "attention_mask": mask})[0]
        return mean_pool(hidden, mask)

    def pooled(self, ids: list[list[int]]) -> np.ndarray:
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        for batch, inp, mask in self._batches(ids):
            out[batch] = self._run(inp, mask)
        return out

    def token_states(self, ids: list[list[int]]) -> list[np.ndarray]:
        out: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * len(ids)
        for batch, inp, mask in self._batches(ids):
            hidden = self.session.run(["last_hidden_state"], {"input_ids": inp, "attention_mask": mask})[0]
            for r, k in enumerate(batch):
                out[k] = np.asarray(hidden[r, : len(ids[k])], dtype=np.float32)
        return out

    def _batches(self, ids: list[list[int]]) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
        # Small length-sorted padded batches (<= 1024 tokens with padding): measured on onnx-int8, 2 threads, against
        # texts of one length per run (no padding at all): chunks 88 vs 74/s, sentences 418 vs 316/s, words 2119 vs
        # 1848/s; larger budgets (8192) were slower than both (the activations leave the cache). Padding with its
        # attention mask changes a text's vector by rounding only (cosine 0.9999998 to the text alone).
        # unpadded (setting onnx_unpadded, ASSISTANT_ONNX_UNPADDED=1): one length per run, vectors identical to the
        # text alone to the last bit.
        if self.unpadded:
            yield from equal_length_batches(ids)
            return
        yield from length_sorted_batches(ids, min(self.batch_tokens, ONNX_BATCH_TOKENS), self.pad, as_numpy=True)

    def close(self) -> None:
        self.session = None


def _session(ort, path: Path, opts):
    """An ONNX Runtime session of ``path``, its graph optimised once per CPU and ORT version and cached.

    Optimising the graph (fusions, constant folding) takes ~1.1 s of a 1.8 s session start; the optimised graph
    is saved beside the model (named by a hash of the ORT version and the CPU's model and vector flags: an
    ``ORT_ENABLE_ALL`` graph may hold kernels of this CPU) and later sessions load it with the optimiser off
    (0.75 s; outputs identical). Any problem with the cached file falls back to optimising in memory."""
    import hashlib

    from .engine_choice import cpu_identity

    tag = hashlib.sha256(json.dumps([ort.__version__, *cpu_identity()]).encode()).hexdigest()[:12]
    opt = Path(path).with_name(f"{Path(path).stem}.opt-{tag}.onnx")
    try:
        if not opt.exists():
            with _file_lock(opt.with_suffix(".lock")):
                if not opt.exists():
                    tmp = opt.with_name(f".{opt.name}.{os.getpid()}.tmp")
                    opts.optimized_model_filepath = str(tmp)
                    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
                    os.replace(tmp, opt)
                    return session
        opts.optimized_model_filepath = ""
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return ort.InferenceSession(str(opt), opts, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - an unwritable folder, a damaged cached file: optimise in memory
        opts.optimized_model_filepath = ""
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OnnxFp32(OnnxEngine):
    name = "onnx-fp32"


class OnnxInt8(OnnxEngine):
    """int8 linear layers with per-token activation scales (:func:`quantize_rows`).

    Which int8 kernels run is measured, not guessed: ONNX Runtime's u8 x s8 kernels use ``vpdpbusd`` where the CPU
    has VNNI and AVX2's ``vpmaddubsw`` elsewhere, whose 16-bit pair sums saturate (on an AVX2-only AMD EPYC the
    vectors fell to cosine 0.9953 to fp32). :func:`u8s8_exact` multiplies a probe that saturates there; where it
    does, the graph stores its weights as uint8 (zero point 128) and the exact u8 x u8 kernels run instead (cosine
    0.9996 there, 1.2x the speed of ``onnx-fp32``)."""

    name = "onnx-int8"
    precision = "int8"
    quantized = True

    def load(self) -> None:
        self.unsigned = not u8s8_exact(self.threads)
        super().load()


_U8S8: dict[int, bool] = {}


def u8s8_exact(threads: int = 1) -> bool:
    """Whether ONNX Runtime's u8 x s8 integer matmul gives exact sums on this CPU (a probe whose pair sums exceed
    16 bits: 255 x 127 x 2 = 64,770). Measured once per process."""
    if threads not in _U8S8:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        m, k, n = 16, 256, 16
        w = np.full((k, n), 127, np.int8)
        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["a", "w", "azp"], ["y"])], "probe",
            [helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k])],
            [helper.make_tensor_value_info("y", TensorProto.INT32, [m, n])],
            [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(0, np.uint8), "azp")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        try:
            sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
            y = sess.run(None, {"a": np.full((m, k), 255, np.uint8)})[0]
            _U8S8[threads] = bool(np.all(y == 255 * 127 * k))
        except Exception:  # noqa: BLE001 - cannot probe: the exact u8 x u8 graph
            _U8S8[threads] = False
    return _U8S8[threads]


ENGINES: dict[str, type[Engine]] = {cls.name: cls for cls in (TorchFp32, TorchBf16, TorchInt8, OnnxFp32, OnnxInt8)}


def make_engine(name: str, folder: str | Path, threads: int, batch_tokens: int = 8192) -> Engine:
    try:
        cls = ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown embedding engine {name!r} (known: {', '.join(ENGINES)})") from None
    reason = cls.unavailable()
    if reason:
        raise RuntimeError(f"embedding engine {name} {reason}")
    return cls(folder, threads, batch_tokens)


def equal_length_batches(ids: list[list[int]], batch_tokens: int = 384, max_rows: int = 256):
    """Batches of texts of exactly the same token length: no padding at all, so every text's vector is the one
    it gets alone (measured: identical to the last bit with ONNX Runtime's kernels), while many short texts of one
    length - the lexicon's words, 4 to 7 tokens each - share one run instead of paying a run's fixed cost each
    (4-6x more words/s). Yields ``(indices, input_ids, attention_mask)``; a length that occurs once is a batch
    of one, as before. The budget is small on purpose: ONNX Runtime's CPU kernels ran 32-64 words of 6 tokens
    per run faster than 256 or 1024 (the activations stay in cache), 1.5-2x."""
    by_len: dict[int, list[int]] = {}
    for i, row in enumerate(ids):
        by_len.setdefault(len(row), []).append(i)
    for length in sorted(by_len):
        idx = by_len[length]
        rows = max(1, min(max_rows, batch_tokens // max(length, 1)))
        for s in range(0, len(idx), rows):
            part = idx[s:s + rows]
            arr = np.asarray([ids[i] for i in part], dtype=np.int64)
            yield part, arr, np.ones_like(arr)


class FolderTokenizer:
    """The model folder's ``tokenizer.json`` run by the ``tokenizers`` library directly.

    Gives exactly what ``transformers.AutoTokenizer`` gives for ``tokenizer(texts, truncation=True,
    max_length=n)["input_ids"]`` (checked on 300 mixed texts up to 900 words), without importing transformers
    (5 s of a first index's start-up here, more than the tokenizer itself). Folders without a ``tokenizer.json``
    fall back to ``AutoTokenizer``."""

    def __init__(self, folder: str | Path):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
        self._tok.no_padding()
        self._max = None

    def __call__(self, texts, truncation: bool = True, max_length: int = 512, add_special_tokens: bool = True):
        texts = [texts] if isinstance(texts, str) else list(texts)
        limit = max_length if truncation else None
        if limit != self._max:
            if limit:
                self._tok.enable_truncation(limit)
            else:
                self._tok.no_truncation()
            self._max = limit
        return {"input_ids": [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=add_special_tokens)]}


def load_tokenizer(folder: str | Path):
    if (Path(folder) / "tokenizer.json").exists():
        try:
            return FolderTokenizer(folder)
        except Exception:  # noqa: BLE001 - a tokenizer.json this tokenizers version cannot read
            pass
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    return AutoTokenizer.from_pretrained(str(folder))


# ------------------------------------------------------------------------------------------- ONNX export
@contextlib.contextmanager
def _file_lock(path: Path):
    """Exclusive lock across processes (and threads of this one) while a cached artefact is produced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _export_lock:  # one threading lock per lock file: the choice's cache lock nests the export's lock
        lock = _path_locks.setdefault(str(path), threading.Lock())
    with lock, open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def onnx_model(folder: Path, quantized: bool = False, unsigned: bool = False) -> Path:
    """Path of the encoder's ONNX graph (fp32, or its per-row int8 form), made on first use and cached.

    fp32: torch's TorchScript exporter on the folder's weights (eager attention), output ``last_hidden_state`` with
    dynamic batch and length; ONNX Runtime fuses LayerNorm, GELU and attention itself when it loads the graph.
    int8: :func:`quantize_rows` of that graph."""
    out = Path(folder) / f"onnx-v{ONNX_VERSION}"
    fp32 = out / "model.onnx"
    int8 = out / ("model-int8-rows-u8.onnx" if unsigned else "model-int8-rows.onnx")
    target = int8 if quantized else fp32
    if target.exists():
        return target
    with _file_lock(out.parent / f".onnx-v{ONNX_VERSION}.lock"):
        if target.exists():
            return target
        out.mkdir(parents=True, exist_ok=True)
        if not fp32.exists():
            _export_fp32(Path(folder), fp32)
        if quantized and not int8.exists():
            tmp = int8.with_name(f"int8.{os.getpid()}.onnx")
            quantize_rows(fp32, tmp, unsigned_weights=unsigned)
            os.replace(tmp, int8)
    return target


def _export_fp32(folder: Path, dest: Path) -> None:
    import warnings

    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()

    class Hidden(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=torch.zeros_like(input_ids)).last_hidden_state

    tmp = dest.with_name(f"fp32.{os.getpid()}.onnx")
    ids = torch.ones((2, 16), dtype=torch.long)
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(Hidden(model), (ids, torch.ones_like(ids)), str(tmp), input_names=["input_ids", "attention_mask"],
                          output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                                        "last_hidden_state": {0: "batch", 1: "tokens"}})
    os.replace(tmp, dest)


def quantize_rows(src: str | Path, dest: str | Path, min_inputs: int = 64, unsigned_weights: bool = False,
                  symmetric: bool = False) -> int:
    """Rewrite every ``MatMul(x, W)`` with a constant ``W`` (the linear layers) as an int8 matmul with a scale per
    activation row (token) and per weight column, in standard ONNX ops; returns how many were rewritten.

    ONNX Runtime's own dynamic quantisation scales activations per *tensor*: a text's vector then depends on the
    other texts of its batch, and one outlier token coarsens every other (cosine 0.996 to fp32 here). Per row:
    each token's ``x`` is centred on its mid-range ``m`` and scaled by its half-range ``s`` (``r = round(m / s)``)
    into ``q = round(x / s) - r`` in [-127, 127] by one per-axis ``QuantizeLinear`` (scale ``s`` and zero point
    ``128 - r`` per row; stored as uint8 ``q + 128``: the u8 x s8 kernels of every x86 CPU), ``W`` per column
    into ``Wq`` with scale ``w``; then ``x @ W ~ s * (q @ Wq) * w + s * r * colsum(Wq * w)``. The first term is
    written ``Mul(Cast(MatMulInteger), Mul(s, w))``, which ONNX Runtime fuses into one ``MatMulIntegerToFloat``.
    The centring uses the *dequantised* weights (with the exact ``W`` it would multiply the weights' rounding
    error by ``m``; GELU outputs have large mid-ranges). Cosine to fp32 on e5-small: >= 0.9993 (0.99935 on the
    calibration sample, 0.99952 on Debian passages); independent of the batch. ``symmetric`` (``s = max|x| / 127``,
    no centring) saves the second term: 1.15x faster, but cosine 0.9988 on Debian text, below the 0.999 every
    engine must keep (measured only, ``bench.onnx_probe``).

    v3 (2026-12-07) against v2 (the same maths in ~15 element-wise ops per layer - Sub, Div, Round, Add, Cast
    around the matmul, then Mul, Mul, Add - which took ~80 % of the int8 graph's time): 1.19x the passages/s
    (31.7 vs 26.7 on 205 Debian passages, AMX Xeon, 2 threads), the same cosine (0.99953 vs 0.99951).

    ``unsigned_weights`` stores ``Wq + 128`` as uint8 with zero point 128 (the same products, run by the u8 x u8
    kernels: see :class:`OnnxInt8`).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    nodes: list = []
    extra: list = []

    def const(name: str, arr: np.ndarray) -> str:
        extra.append(numpy_helper.from_array(arr, name))
        return name

    eps, half = const("rq_eps", np.array(1e-8, np.float32)), const("rq_half", np.array(0.5, np.float32))
    zero = const("rq_zero", np.array(0.0, np.float32))
    c127, c128 = const("rq_127", np.array(127.0, np.float32)), const("rq_128", np.array(128.0, np.float32))
    zero_point = const("rq_zp", np.array(128, np.uint8))
    w_zp = [const("rq_wzp", np.array(128, np.uint8))] if unsigned_weights else []

    all_nodes = list(graph.node)
    weights: dict[int, np.ndarray] = {}  # position of a linear layer's node -> its constant weight
    for i, node in enumerate(all_nodes):
        weight = inits.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
        w = numpy_helper.to_array(weight).astype(np.float32) if weight is not None else None
        if w is not None and w.ndim == 2 and w.shape[0] >= min_inputs:
            weights[i] = w
    # the linear layers that read the same activation (an attention block's query, key and value) share one
    # quantisation of it and one int8 matmul over their concatenated weight columns, split afterwards: every
    # column's integer sums and scales are the ones it had alone, so the outputs are identical, with a third of
    # the activation passes and one larger (faster) matmul instead of three
    groups: dict[str, list[int]] = {}
    for i in weights:
        groups.setdefault(all_nodes[i].input[0], []).append(i)
    count = 0
    for i, node in enumerate(all_nodes):
        if i not in weights:
            nodes.append(node)
            continue
        group = groups[node.input[0]]
        if group[0] != i:  # rewritten with the first layer of its group
            continue
        members = [all_nodes[j] for j in group]
        p = f"rq{count}_"
        count += len(members)
        w = np.concatenate([weights[j] for j in group], axis=1)
        scale = np.maximum(np.abs(w).max(0), 1e-12) / 127.0
        wq = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
        stored = (wq.astype(np.int16) + 128).astype(np.uint8) if unsigned_weights else wq
        colsum = (wq.astype(np.float32) * scale).sum(0).astype(np.float32)
        wq_name, ws_name, cs_name = const(p + "wq", stored), const(p + "ws", scale.astype(np.float32)), const(p + "cs", colsum)

        def op(kind: str, inputs: list[str], out: str | None = None, **attrs) -> str:
            name = out or f"{p}{kind}{len(nodes)}"
            nodes.append(helper.make_node(kind, inputs, [name], **attrs))
            return name

        x, k = node.input[0], w.shape[0]
        x2 = op("Reshape", [x, const(p + "rows", np.array([-1, k], np.int64))])  # (tokens, k): one row per token
        hi = op("ReduceMax", [x2], axes=[-1], keepdims=1)
        lo = op("ReduceMin", [x2], axes=[-1], keepdims=1)
        axis1 = const(p + "ax1", np.array([1], np.int64))
        if symmetric:  # bench.onnx_probe only: no centring (faster, but cosine 0.9988 on Debian text)
            s_col = op("Div", [op("Max", [op("Max", [hi, op("Neg", [lo])]), eps]), c127])
            s_row = op("Squeeze", [s_col, axis1])
            zp = op("Cast", [op("Add", [op("Mul", [s_row, zero]), c128])], to=TensorProto.UINT8)
        else:
            s_col = op("Div", [op("Max", [op("Mul", [op("Sub", [hi, lo]), half]), eps]), c127])  # (tokens, 1)
            r_col = op("Round", [op("Div", [op("Mul", [op("Add", [hi, lo]), half]), s_col])])  # mid-range in steps
            s_row = op("Squeeze", [s_col, axis1])
            zp = op("Cast", [op("Squeeze", [op("Sub", [c128, r_col]), axis1])], to=TensorProto.UINT8)
        q = op("QuantizeLinear", [x2, s_row, zp], axis=0)  # round(x / s) - r + 128 = round((x - m) / s) + 128
        # Mul(Cast(MatMulInteger), Mul(a_scale, b_scale)): ONNX Runtime fuses it into one MatMulIntegerToFloat
        acc = op("Cast", [op("MatMulInteger", [q, wq_name, zero_point] + w_zp)], to=TensorProto.FLOAT)
        y2 = op("Mul", [acc, op("Mul", [s_col, ws_name])])
        if not symmetric:
            y2 = op("Add", [y2, op("Mul", [op("Mul", [s_col, r_col]), cs_name])])
        lead = op("Slice", [op("Shape", [x]), const(p + "s0", np.array([0], np.int64)),
                            const(p + "s1", np.array([-1], np.int64))])
        outs = [m.output[0] for m in members]
        y = op("Reshape", [y2, op("Concat", [lead, const(p + "n", np.array([w.shape[1]], np.int64))], axis=0)],
               out=outs[0] if len(members) == 1 else None)
        if len(members) > 1:
            sizes = const(p + "split", np.array([weights[j].shape[1] for j in group], np.int64))
            nodes.append(helper.make_node("Split", [y, sizes], outs, axis=-1))
    used = {i for n in nodes for i in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept + extra)
    onnx.save(model, str(dest))
    return count


# ------------------------------------------------------------------------------------------------ batching
def length_sorted_batches(ids: list[list[int]], budget: int, pad: int, as_numpy: bool = False):
    """Token id lists sorted by length and packed into batches while batch size x longest <= ``budget`` tokens.

    Yields (indices into ``ids``, input_ids, attention_mask) as torch tensors (numpy int64 with ``as_numpy``);
    little padding, and the same batches for every engine and for the benchmark's measurement of the network."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    i = 0
    while i < len(order):
        # the longest item is last in the sorted batch: grow while batch_size * longest <= budget
        j = i + 1
        while j < len(order) and (j - i + 1) * len(ids[order[j]]) <= budget:
            j += 1
        batch = order[i:j]
        width = len(ids[batch[-1]])
        inp = np.full((len(batch), width), pad, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for r, k in enumerate(batch):
            inp[r, : len(ids[k])] = ids[k]
            mask[r, : len(ids[k])] = 1
        if as_numpy:
            yield batch, inp, mask
        else:
            import torch

            yield batch, torch.from_numpy(inp), torch.from_numpy(mask)
        i = j


# ------------------------------------------------------------------------------------- per-row int8 (torch)
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
        independent of the batch and is closer to fp32 (cosine 0.9994 vs 0.991).
        Fast only where oneDNN has AMX int8 kernels: on AVX-512 without AMX torch's
        int8 matmul takes seconds per text, which the engine choice measures.
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
