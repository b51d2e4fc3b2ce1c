"""Other ONNX Runtime graphs of the same e5 weights, measured beside the shipped ``onnx-fp32`` / ``onnx-int8``.

    python -m bench.onnx_probe                 # writes bench/work/onnx_probe/*.onnx, prints passages/s and cosines
    python -m bench.onnx_probe --n 128 --rounds 3

Issue 12 asks for an engine >= 1.5x sentence-transformers fp32 on AVX-512 CPUs without AMX. An ONNX Runtime
profile of the per-row int8 graph of ``ONNX_VERSION`` 2 showed the integer matmuls at only ~19 % of the time;
the rest was attention's softmax and mask, and ~15 element-wise ops around each matmul (the per-token
quantisation and the rescaling); version 3 does the quantisation in one ``QuantizeLinear`` and the rescaling
inside a fused ``MatMulIntegerToFloat`` (1.19x). This probe measures the graphs that could remove that overhead:

* ``fused-attention`` / ``fused-mha``: ONNX Runtime's transformer optimiser (``onnxruntime.transformers``,
  model type ``bert``): one ``Attention`` / ``MultiHeadAttention`` op per layer, ``SkipLayerNormalization``,
  ``BiasGelu``, ``EmbedLayerNormalization``;
* ``fused-mha-int8``: the same, then the shipped per-row int8 rewrite;
* ``int8-symmetric``: the shipped rewrite without its centring term (``quantize_rows(symmetric=True)``);
* ``nbits8-b32`` / ``nbits8-b128`` / ``nbits4-b128``: ``MatMulNBits`` (block-quantised weights, activations
  quantised to int8 per row and block by the kernel itself, ``accuracy_level`` 4): one op per linear layer
  instead of ~15, batch-independent like the per-row graph.

Every graph runs on the same pre-tokenised passages (the calibration's built-in sample, or ``--docs``), in
the same length-sorted batches of <= 1,024 tokens, 2 threads; passages/s is the best of ``--rounds``; cosine
is the lowest over the passages to the shipped fp32 graph. Nothing here changes the product.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "bench"

import numpy as np  # noqa: E402

from bench.common import log, machine_info  # noqa: E402

WORK = Path(__file__).resolve().parent / "work" / "onnx_probe"


def build(fp32: Path) -> dict[str, Path]:
    """The probe's graphs (cached in bench/work/onnx_probe)."""
    import onnx

    from assistant.engines import quantize_rows

    WORK.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for mha in (False, True):
        p = WORK / f"fused-{'mha' if mha else 'attention'}.onnx"
        if not p.exists():
            from onnxruntime.transformers.fusion_options import FusionOptions
            from onnxruntime.transformers.optimizer import optimize_model

            fo = FusionOptions("bert")
            fo.use_multi_head_attention = mha
            m = optimize_model(str(fp32), model_type="bert", num_heads=12, hidden_size=384,
                               optimization_options=fo, opt_level=0)
            m.save_model_to_file(str(p))
            log(f"{p.name}: {json.dumps({k: v for k, v in m.get_fused_operator_statistics().items() if v})}")
        out[p.stem] = p
    p = WORK / "fused-mha-int8.onnx"
    if not p.exists():
        quantize_rows(out["fused-mha"], p)
    out[p.stem] = p
    p = WORK / "int8-symmetric.onnx"
    if not p.exists():
        quantize_rows(fp32, p, symmetric=True)
    out[p.stem] = p
    try:
        from onnxruntime.quantization.matmul_nbits_quantizer import (DefaultWeightOnlyQuantConfig,
                                                                     MatMulNBitsQuantizer)
    except ImportError as e:  # onnx_ir missing (pip install onnx_ir)
        log(f"MatMulNBits graphs skipped: {e}")
        return out
    for bits, block in ((8, 32), (8, 128), (4, 128)):
        p = WORK / f"nbits{bits}-b{block}.onnx"
        if not p.exists():
            import logging

            logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
            cfg = DefaultWeightOnlyQuantConfig(block_size=block, is_symmetric=True, accuracy_level=4, bits=bits)
            q = MatMulNBitsQuantizer(onnx.load(str(fp32)), algo_config=cfg)
            q.process()
            q.model.save_model_to_file(str(p), use_external_data_format=False)
        out[p.stem] = p
    return out


def session(path: Path, threads: int):
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    o.add_session_config_entry("session.intra_op.allow_spinning", "0")
    o.log_severity_level = 3
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def vectors(sess, ids: list[list[int]]) -> np.ndarray:
    from assistant.engines import ONNX_BATCH_TOKENS, length_sorted_batches, mean_pool

    names = {i.name for i in sess.get_inputs()}
    out = np.zeros((len(ids), 384), np.float32)
    for batch, inp, mask in length_sorted_batches(ids, ONNX_BATCH_TOKENS, 0, as_numpy=True):
        feeds = {"input_ids": inp, "attention_mask": mask}
        if "token_type_ids" in names:
            feeds["token_type_ids"] = np.zeros_like(inp)
        out[batch] = mean_pool(sess.run(None, feeds)[0], mask)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def main(argv: list[str] | None = None) -> int:
    from assistant.engine_choice import sample_texts
    from assistant.engines import load_tokenizer, onnx_model
    from assistant.packaged_models import e5_small_folder

    ap = argparse.ArgumentParser(prog="python -m bench.onnx_probe", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--docs", default="", help="passages from this folder's .txt files (every 40th file, 700-char "
                                               "pieces of its first 3,000 characters) instead of the built-in sample")
    args = ap.parse_args(argv)
    folder = e5_small_folder()
    graphs = {"onnx-fp32 (shipped)": onnx_model(folder), "onnx-int8 per-row (shipped)": onnx_model(folder, quantized=True)}
    graphs.update(build(graphs["onnx-fp32 (shipped)"]))
    if args.docs:
        texts = []
        for f in sorted(Path(args.docs).rglob("*.txt"))[::40][:200]:
            t = f.read_text(encoding="utf-8", errors="ignore")
            texts += ["passage: " + t[i:i + 700] for i in range(0, min(len(t), 3000), 700)]
    else:
        texts = ["passage: " + t[len("passage: "):][:700] for t in sample_texts(args.n)]  # as bench.engines
    ids = load_tokenizer(folder)(texts, max_length=512)["input_ids"]
    info = machine_info()
    print(f"{info['cpu']}; flags: {', '.join(info['simd'])}; {len(ids)} passages, "
          f"{sum(map(len, ids))} tokens, {args.threads} threads, best of {args.rounds}")
    ref = None
    rows = []
    for name, path in graphs.items():
        sess = session(path, args.threads)
        v = vectors(sess, ids)
        best = min(_timed(lambda: vectors(sess, ids)) for _ in range(args.rounds))
        ref = v if ref is None else ref
        rows.append((name, len(ids) / best, float((v * ref).sum(1).min())))
        print(f"  {name:30s} {rows[-1][1]:7.1f} passages/s   cosine to fp32 >= {rows[-1][2]:.5f}", flush=True)
    return 0


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    sys.exit(main())
