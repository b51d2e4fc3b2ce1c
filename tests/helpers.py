"""Builders for real test documents (PDF via reportlab, DOCX via python-docx), and a real Chroma server."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def make_pdf(path: Path, pages: list[str]) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    for text in pages:
        y = 800
        for line in _wrap(text, 90):
            c.drawString(50, y, line)
            y -= 14
        c.showPage()
    c.save()
    return path


def _wrap(text: str, width: int) -> list[str]:
    words, lines, cur = text.split(), [], ""
    for w in words:
        if len(cur) + len(w) + 1 > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    if cur:
        lines.append(cur)
    return lines


def make_docx(path: Path, paragraphs: list[tuple[str, str]], table: list[list[str]] | None = None) -> Path:
    import docx

    d = docx.Document()
    for style, text in paragraphs:
        d.add_paragraph(text, style=style)
    if table:
        t = d.add_table(rows=len(table), cols=len(table[0]))
        for i, row in enumerate(table):
            for j, cell in enumerate(row):
                t.cell(i, j).text = cell
    d.save(str(path))
    return path


# --------------------------------------------------------------------------- reliability tests
from langchain_core.embeddings import Embeddings  # noqa: E402


class HashEmbedder(Embeddings):
    """A deterministic stand-in embedder (hashed word and character-trigram features), for fault tests.

    Crash safety, locking and the store do not depend on the model, and child processes that import this
    start in about a second instead of loading torch and the model. ``delay`` seconds are slept per
    ``encode`` call, to hold an indexing run open long enough to kill it mid-way. Not for answer quality.
    """

    dim = 256

    def __init__(self, delay: float = 0.0, name: str = "test-hash-256"):
        import threading

        self.delay = delay
        self.name = name
        self._ready = True
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.name

    def warm_up(self) -> None:
        pass

    def encode(self, texts, is_query: bool = False):
        import hashlib
        import re
        import time

        import numpy as np

        if self.delay:
            time.sleep(self.delay)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            low = text.lower()
            feats = re.findall(r"\w+", low) + [low[i:i + 3] for i in range(max(0, len(low) - 2))]
            for f in feats or ["."]:
                h = int.from_bytes(hashlib.blake2b(f.encode(), digest_size=4).digest(), "little")
                out[row, h % self.dim] += 1.0 if h & 1 << 31 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def embed_documents(self, texts):
        return self.encode(texts).tolist()

    def embed_query(self, text):
        return self.encode([text], is_query=True)[0].tolist()

    def describe(self) -> str:
        return self.name


# --------------------------------------------------------------------------- plain HTTP client of the Gradio API
def http_call(base: str, api: str, data: list, timeout: float = 120.0, opener=None) -> list:
    """POST /gradio_api/call/<api>, then read the SSE stream of the event; returns the final outputs.

    Plain HTTP, as any client of the Gradio API would (``opener``: a urllib opener holding a login cookie).
    """
    import json
    import urllib.request

    open_ = (opener or urllib.request.build_opener()).open
    req = urllib.request.Request(f"{base.rstrip('/')}/gradio_api/call/{api}", data=json.dumps({"data": data}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with open_(req, timeout=timeout) as resp:
        event_id = json.load(resp)["event_id"]
    event = None
    with open_(f"{base.rstrip('/')}/gradio_api/call/{api}/{event_id}", timeout=timeout) as stream:
        for raw in stream:
            line = raw.decode("utf-8").rstrip("\r\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                payload = line[5:].strip()
                if event == "complete":
                    return json.loads(payload)
                if event == "error":
                    raise RuntimeError(f"API error: {payload}")
    raise RuntimeError(f"the SSE stream of {api} ended without a result (last event {event!r})")


# --------------------------------------------------------------------------- the app in a child process
def serve_app_for_tests() -> None:
    """``python -c 'from tests.helpers import serve_app_for_tests; serve_app_for_tests()' INDEX UPLOADS DOCS PORT DELAY``

    What ``assistant serve`` does (index the docs and uploads folders, then serve), with :class:`HashEmbedder`
    slowed by DELAY seconds per batch: a process that a test can SIGKILL in the middle of an upload's indexing.
    """
    import os
    import sys

    from assistant.config import Settings
    from assistant.pipeline import Assistant
    from assistant.ui import ChatApp, create_app, launch, prepare_index

    index_dir, upload_dir, docs_dir, port, delay = sys.argv[1:6]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    settings = Settings.from_env(env=env, index_dir=index_dir, upload_dir=upload_dir, docs_dir=docs_dir,
                                 upload_max_files=20, upload_max_mb=5.0)
    app = ChatApp(settings, Assistant(settings, embedder=HashEmbedder(delay=float(delay))))
    prepare_index(app)
    demo = create_app(settings, app.assistant)
    launch(demo, settings, host="127.0.0.1", port=int(port), quiet=True)


class ChromaServer:
    """A real `chroma run --path DIR --host 127.0.0.1 --port P` that a test can stop, freeze and start again."""

    def __init__(self, path: Path, port: int):
        self.path, self.port, self.proc = path, port, None
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> "ChromaServer":
        exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
        self.proc = subprocess.Popen([exe, "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=1):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("the chroma server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def freeze(self) -> None:  # still accepts connections (the kernel does), never answers
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.proc.send_signal(signal.SIGCONT)


def check_consistent(settings, embedder) -> dict:
    """No duplicate, orphan, missing or pending chunk; the BM25 snapshot covers exactly the live chunks."""
    from assistant.retrieval import LexicalIndex
    from assistant.store import ChunkStore, Manifest

    store = ChunkStore(settings, embedder)
    manifest = Manifest(store.local_path("manifest.sqlite3"))
    records = manifest.files()
    assert all(r.status == "done" for r in records.values()), "a file is left pending"
    live = [cid for r in records.values() for cid in r.chunk_ids]
    assert len(live) == len(set(live)), "duplicate chunk ids in the manifest"
    ids = store.all_ids()
    assert len(ids) == len(set(ids)), "duplicate chunks in the store"
    assert sorted(ids) == sorted(live), (f"{len(set(ids) - set(live))} orphan and "
                                         f"{len(set(live) - set(ids))} missing chunks")
    snapshot = LexicalIndex(store, manifest).live_ids()
    assert snapshot == set(live), "the BM25 snapshot that queries read is not the index"
    assert manifest.get_meta("state") == "clean"
    # sentence vectors (assistant.sentences): none without its chunk; with `encode`, every chunk has all of its own
    from assistant.sentences import method_of, sentence_texts

    with_rows = store.sentences.chunk_ids()
    assert with_rows <= set(live), f"sentence vectors of {len(with_rows - set(live))} chunks no longer indexed"
    if method_of(settings) == "encode" and ids:
        lacking = [cid for cid, (doc, _) in store.get(ids).items() if sentence_texts(doc) and cid not in with_rows]
        assert not lacking, f"{len(lacking)} chunks have no stored sentence vectors"
    return {"files": len(records), "chunks": len(ids), "ids": set(ids)}
