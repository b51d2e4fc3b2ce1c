"""Security: the file route serves nothing private, uploads stay in their folder, loopback by default, login,
and no secret in answers, logs or error messages. All over HTTP against the running app where it matters."""
from __future__ import annotations

import http.server
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from assistant.ui import create_app, launch

from .conftest import ROOT, SEED_FILE, free_port
from .helpers import http_call

MOROCCO = "How much did Morocco allocate to startups?"


def get(url: str, opener=None) -> tuple[int, bytes]:
    try:
        with (opener or urllib.request.build_opener()).open(url, timeout=20) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def upload_raw(base: str, name: str, data: bytes, opener=None) -> str:
    """POST a file to Gradio's upload route (as the browser does); returns its path in Gradio's cache."""
    boundary = "----assistant-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode("utf-8") + data + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{base.rstrip('/')}/gradio_api/upload", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with (opener or urllib.request.build_opener()).open(req, timeout=30) as resp:
        return json.load(resp)[0]


def file_data(path: str, orig_name: str) -> dict:
    return {"path": path, "orig_name": orig_name, "meta": {"_type": "gradio.FileData"}}


# --------------------------------------------------------------------------- the file route
def private_targets(ui_server) -> dict[str, bytes]:
    """Paths the file route must refuse, with a fragment of their content."""
    index = Path(ui_server.settings.index_dir).resolve()
    ui_server.uploads.mkdir(parents=True, exist_ok=True)
    secret_upload = ui_server.uploads / "private-notes.txt"
    secret_upload.write_text("uploaded-secret-7731", encoding="utf-8")
    return {
        "/etc/passwd": b"root:",
        "/proc/self/environ": b"PATH=",
        str(index / "chroma" / "chroma.sqlite3"): b"SQLite format 3",
        str(index / "manifest.sqlite3"): b"SQLite format 3",
        str(secret_upload): b"uploaded-secret-7731",
        str(SEED_FILE): b"Seghrouchni",
        str(ROOT / "app.py"): b"serve(",
        str(ROOT / "assistant" / "config.py"): b"ENV_PREFIX",
    }


def route_variants(path: str) -> list[str]:
    rel = os.path.relpath(path, ROOT)
    quoted = urllib.parse.quote(path, safe="")
    return [
        f"/gradio_api/file={path}",
        f"/file={path}",
        f"/gradio_api/file={quoted}",
        f"/gradio_api/file={urllib.parse.quote(quoted, safe='')}",  # double-encoded
        f"/gradio_api/file=../../../../../..{path}",
        f"/gradio_api/file=..%2F..%2F..%2F..%2F..%2F..{urllib.parse.quote(path)}",
        f"/gradio_api/file={rel}",
        f"/gradio_api/file=/tmp/gradio/../../..{path}",
        f"/gradio_api/file={path}%00.png",
        f"/static/..%2F..%2F..%2F..{urllib.parse.quote(path)}",
        f"/assets/../../../..{path}",
        f"/gradio_api/static/../../../..{path}",
    ]


def test_file_route_refuses_everything_private(ui_server):
    targets = private_targets(ui_server)
    tried = 0
    for path, marker in targets.items():
        for route in route_variants(path):
            status, body = get(ui_server.url.rstrip("/") + route)
            tried += 1
            assert marker not in body, f"{route} served {path} (HTTP {status})"
            assert status in (400, 403, 404, 405, 422), (route, status)
    print(f"file route: {tried} requests for {len(targets)} private files, all refused")


def test_file_route_serves_only_gradio_uploads(ui_server):
    """What it must serve (a file just uploaded through Gradio) it serves; the same bytes in the uploads folder not."""
    cached = upload_raw(ui_server.url, "notes.txt", b"public-upload-4242")
    status, body = get(f"{ui_server.url.rstrip('/')}/gradio_api/file={cached}")
    assert status == 200 and body == b"public-upload-4242"


def test_launch_configures_allowed_and_blocked_paths(ui_server):
    blocked = {str(Path(p)) for p in ui_server.demo.blocked_paths}
    for folder in (ui_server.settings.index_path, ui_server.settings.uploads_path, Path(ui_server.settings.docs_dir)):
        assert str(Path(folder).resolve()) in blocked
    assert not ui_server.demo.allowed_paths


def test_index_inside_gradio_cache_is_still_refused(tmp_path, monkeypatch, settings_factory, embedder, seeds_index):
    """Even misconfigured (the index inside Gradio's own cache, which the file route serves), the index stays private."""
    import shutil

    from assistant.pipeline import Assistant

    cache = tmp_path / "gradio-cache"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    shutil.copytree(seeds_index, cache / "index", ignore=shutil.ignore_patterns(".index.lock"))
    settings = settings_factory(index_dir=str(cache / "index"))
    demo = create_app(settings, Assistant(settings, embedder=embedder))
    _, url, _ = launch(demo, settings, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        for name in ("chroma/chroma.sqlite3", "manifest.sqlite3"):
            status, body = get(f"{url.rstrip('/')}/gradio_api/file={cache / 'index' / name}")
            assert status == 403 and b"SQLite" not in body, (name, status)
        (cache / "elsewhere.txt").write_text("cache file")
        status, body = get(f"{url.rstrip('/')}/gradio_api/file={cache / 'elsewhere.txt'}")
        assert status == 200  # the cache itself is served: the refusals above are the blocked paths at work
    finally:
        demo.close()


# --------------------------------------------------------------------------- uploads over HTTP
@pytest.mark.parametrize("name", ["../../escape.txt", "/etc/cron.d/escape2.txt", "..\\..\\windows.txt",
                                  "nul\x00byte.txt", "%2e%2e%2fencoded.txt", "....//....//dots.txt", "..", ".bashrc.txt",
                                  "a" * 300 + ".txt"])
def test_upload_names_never_leave_the_uploads_folder(ui_server, name):
    """A hostile file name, sent as the browser would (the multipart file name of Gradio's upload route)."""
    uploads = ui_server.uploads.resolve()
    text = f"Le fichier numéro {len(name)} décrit les marées du port de Camaret."
    try:
        cached = upload_raw(ui_server.url, name, text.encode("utf-8"))
    except urllib.error.HTTPError as err:  # Gradio refused the name itself: nothing stored anywhere
        assert err.code in (400, 422), err.code
        return
    _, _, result = http_call(ui_server.url, "upload", [[file_data(cached, name)]])
    if result["indexed"]:
        (stored,) = [f["file"] for f in result["indexed"]]
        assert "/" not in stored and "\\" not in stored and "\x00" not in stored and not stored.startswith(".")
        assert len(stored.encode("utf-8")) < 200
        assert (uploads / stored).read_text(encoding="utf-8") == text
    for p in (Path("/etc/cron.d/escape2.txt"), uploads.parent / "escape.txt", uploads.parent.parent / "escape.txt",
              ROOT / "escape.txt", Path("/escape.txt")):
        assert not p.exists(), p
    assert all(p.resolve().parent == uploads for p in uploads.rglob("*"))


@pytest.mark.parametrize("target", ["/etc/passwd", "{index}/manifest.sqlite3", "{index}/chroma/chroma.sqlite3", str(SEED_FILE)])
def test_upload_cannot_pull_in_a_server_file(ui_server, target):
    """A forged upload naming a server path (not in Gradio's cache) is not read, stored or indexed."""
    target = target.format(index=Path(ui_server.settings.index_dir).resolve())
    before = sorted(p.name for p in ui_server.uploads.iterdir()) if ui_server.uploads.exists() else []
    try:
        _, _, result = http_call(ui_server.url, "upload", [[file_data(target, "stolen.txt")]])
    except RuntimeError as err:  # Gradio refuses the path outright
        assert "stolen" not in str(err)
    else:
        assert not result["indexed"], result
    after = sorted(p.name for p in ui_server.uploads.iterdir()) if ui_server.uploads.exists() else []
    assert after == before
    out = http_call(ui_server.url, "ask", ["Who has the user id 0 in the password file root:x:0:0?", None, None, None])[0]
    assert "root:x:0:0" not in json.dumps(out)


@pytest.mark.parametrize("name, data, reason", [
    ("photo.txt", b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, "binary"),
    ("page.pdf", b"<html><body>not a pdf</body></html>", "not a PDF"),
    ("archive.docx", b"PK\x03\x04" + b"\x00" * 200, "not a Word document"),
    ("script.html", b"\x7fELF\x02\x01\x01" + b"\x00" * 200, "binary"),
    ("tool.exe", b"MZ\x90\x00", "unsupported file type"),
])
def test_upload_type_is_checked_by_content(ui_server, name, data, reason):
    cached = upload_raw(ui_server.url, name, data)
    _, _, result = http_call(ui_server.url, "upload", [[file_data(cached, name)]])
    assert not result["indexed"] and reason in result["failed"][0]["error"], result


# --------------------------------------------------------------------------- binding and login
def test_binds_to_loopback_unless_told_otherwise(settings_factory, tmp_path, monkeypatch):
    from .test_ui_api import _StubAssistant

    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    settings = settings_factory(index_dir=str(tmp_path / "index"))
    for env, expected in ((None, "127.0.0.1"), ("127.0.0.2", "127.0.0.2")):
        if env:
            monkeypatch.setenv("GRADIO_SERVER_NAME", env)
        demo = create_app(settings, _StubAssistant())
        _, url, _ = launch(demo, settings, port=free_port(), prevent_thread_lock=True, quiet=True)
        try:
            assert demo.server_name == expected and f"//{expected}:" in url
            listening = _listening_hosts(int(url.rstrip("/").rsplit(":", 1)[1]))
            assert listening == {expected}, listening
        finally:
            demo.close()


def _listening_hosts(port: int) -> set[str]:
    """Addresses a TCP port listens on, from /proc/net/tcp (IPv4) and tcp6."""
    import socket
    import struct

    hosts = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if int(p, 16) != port or state != "0A":  # 0A = LISTEN
                continue
            raw = bytes.fromhex(addr)
            if family == socket.AF_INET:
                hosts.add(socket.inet_ntop(family, struct.pack("<I", struct.unpack(">I", raw)[0])))
            else:
                hosts.add(socket.inet_ntop(family, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))))
    return hosts


def test_login_guards_the_api_and_the_file_route(settings_factory, tmp_path):
    import http.cookiejar

    from .test_ui_api import _StubAssistant

    settings = settings_factory(index_dir=str(tmp_path / "index"), auth="alice:correct horse")
    demo = create_app(settings, _StubAssistant())
    _, url, _ = launch(demo, settings, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    base = url.rstrip("/")
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            http_call(base, "status", [])
        assert err.value.code in (401, 403)
        for path in ("/config", "/gradio_api/info", f"/gradio_api/file={tmp_path}", "/gradio_api/queue/status"):
            status, body = get(base + path)
            assert status in (401, 403, 404), (path, status)
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        bad = urllib.parse.urlencode({"username": "alice", "password": "wrong"}).encode()
        assert get_post(opener, base + "/login", bad) in (400, 401)
        with pytest.raises(urllib.error.HTTPError):
            http_call(base, "status", [], opener=opener)
        good = urllib.parse.urlencode({"username": "alice", "password": "correct horse"}).encode()
        assert get_post(opener, base + "/login", good) == 200
        assert http_call(base, "status", [], opener=opener)[0]["backends"] == ["extractive", "llm:stub"]
    finally:
        demo.close()


def get_post(opener, url: str, data: bytes) -> int:
    try:
        with opener.open(urllib.request.Request(url, data=data, method="POST"), timeout=20) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


# --------------------------------------------------------------------------- secrets
SECRET_KEY = "sk-secret-" + "Zq8Wv3Lp0Xt7Nm2Rb5Ky9Hd4"
SECRET_TOKEN = "hf_" + "SecretTokenAbCdEf0123456789"


class EchoLLM(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that fails and echoes what it received (the Authorization header included)."""

    status = 401

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        message = (f"Incorrect API key provided: {self.headers.get('Authorization')}; env token {SECRET_TOKEN}; "
                   f"request {body[:200]}")
        payload = json.dumps({"error": {"message": message, "type": "invalid_request_error",
                                        "code": "invalid_api_key"}}).encode()
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture()
def echo_llm():
    servers = []

    def start(status: int) -> str:
        handler = type(f"Echo{status}", (EchoLLM,), {"status": status})
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/v1"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("status", [401, 500, 429])
def test_no_secret_in_notes_logs_or_errors(status, echo_llm, seeds_index, settings_factory, embedder, monkeypatch,
                                          caplog, capsys):
    from assistant.cli import main
    from assistant.pipeline import Assistant
    from assistant.ui import ChatApp

    monkeypatch.setenv("ASSISTANT_LLM_API_KEY", SECRET_KEY)
    monkeypatch.setenv("HF_TOKEN", SECRET_TOKEN)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    base = echo_llm(status)
    monkeypatch.setenv("ASSISTANT_LLM_BASE_URL", base)  # the CLI reads its settings from the environment
    caplog.set_level(logging.DEBUG)  # everything any library logs, not only our warnings
    settings = settings_factory(index_dir=str(seeds_index), llm="openai", answerer="llm", llm_base_url=base,
                                llm_api_key=SECRET_KEY, llm_timeout=10)
    a = Assistant(settings, embedder=embedder)
    ans = a.ask(MOROCCO)
    assert ans.backend == "extractive" and "1,3 milliard" in ans.answer  # the grounded fallback
    assert ans.note and "did not answer" in ans.note
    seen = [ans.note, json.dumps(ans.to_json(), ensure_ascii=False)]
    app = ChatApp(settings, a)
    seen += [json.dumps(step, ensure_ascii=False) for step in app.respond(MOROCCO, [])]
    # the CLI, with the key in its environment and on its command line's settings
    monkeypatch.setattr("assistant.pipeline.make_embedder", lambda s: embedder)
    rc = main(["ask", MOROCCO, "--llm", "openai", "--index-dir", str(seeds_index)])
    out, err = capsys.readouterr()
    assert rc == 0
    seen += [out, err]
    rc = main(["settings"])
    seen.append(capsys.readouterr().out)
    seen += [r.getMessage() for r in caplog.records] + [caplog.text]
    for text in seen:
        for secret in (SECRET_KEY, SECRET_TOKEN, SECRET_KEY[10:], SECRET_TOKEN[3:]):
            assert secret not in text, text[:500]
    assert any(r.name == "assistant.llm" and r.levelno >= logging.WARNING for r in caplog.records)  # it was logged


def test_slow_or_silent_llm_falls_back_within_the_timeout(seeds_index, settings_factory, embedder):
    """A server that accepts and never answers, one that is closed: the grounded answer, bounded by llm_timeout."""
    import socket

    from assistant.pipeline import Assistant

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts connections (the kernel does), never answers
    closed = free_port()
    try:
        for url, reason in ((f"http://127.0.0.1:{silent.getsockname()[1]}/v1", "timeout after 2 s"),
                            (f"http://127.0.0.1:{closed}/v1", "cannot connect")):
            settings = settings_factory(index_dir=str(seeds_index), llm="openai", answerer="llm", llm_base_url=url,
                                        llm_timeout=2.0)
            a = Assistant(settings, embedder=embedder)
            a.extractive.run(a.retrieve(MOROCCO))  # warm
            t0 = time.monotonic()
            ans = a.ask(MOROCCO)
            elapsed = time.monotonic() - t0
            assert ans.backend == "extractive" and "1,3 milliard" in ans.answer
            assert reason in ans.note and elapsed < 2.0 + 3.0, (ans.note, elapsed)
            # the next question does not wait again: the backend is marked down for a while
            t0 = time.monotonic()
            again = a.ask(MOROCCO)
            assert "not retried" in again.note and time.monotonic() - t0 < 2.0
            print(f"LLM {reason}: grounded answer in {elapsed:.2f}s")
    finally:
        silent.close()
