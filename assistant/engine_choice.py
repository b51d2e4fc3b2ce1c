"""Which engine runs the encoder on this CPU: chosen by a short measurement at first use, then cached.

CPU flags do not predict speed well enough (bf16 is the fastest engine with AMX and 5x slower than fp32 with AVX2
only; torch's int8 matmul is fast with AMX and takes seconds per text on AVX-512 without it), so every candidate
engine of :mod:`assistant.engines` runs the same fixed sample of passages and the fastest one whose vectors agree
with fp32 (cosine >= :data:`MIN_COSINE`) and do not depend on their batch wins. An engine whose first tiny call
already takes longer than :data:`PROBE_LIMIT_S` is pathological on this CPU and is not measured further.

The result is cached per machine and software: ``<cache>/assistant/engines/<key>.json``, the key hashing the CPU
model and its instruction-set flags, the oneDNN/MKL instruction caps in the environment (``ONEDNN_MAX_CPU_ISA``,
``MKL_ENABLE_INSTRUCTIONS``), the torch and onnxruntime versions, the thread count and the model folder. A
calibration takes 10-40 s once (most of it exporting the ONNX graphs on a first run); processes that start at the
same time wait for one calibration instead of measuring each other.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from .engines import ENGINES, Engine, _file_lock, make_engine
from .offline import cache_root, isa_caps
from .text import error_line

log = logging.getLogger(__name__)

CHOICE_VERSION = "2"  # 2: ONNX engines batch (padded, <= 1024 tokens)
MIN_COSINE = 0.999  # vectors of an engine vs torch fp32, worst text of the sample
MIN_BATCH_COSINE = 0.9999  # a text alone vs the same text inside the sample
PROBE_LIMIT_S = 0.5  # a 3-token text; the healthy engines take 3-30 ms
WARMUP_LIMIT_S = 5.0  # the two first sample passages (~60 tokens); the healthy engines take 20-300 ms
SLOW_FACTOR = 5.0  # warm-up slower than this x fp32's measured time (below 0.2x): cannot win (see too_slow)
REFERENCE = "torch-fp32"
# preference order on a tie (within the measurement's noise, see choose()): simpler, more exact engines first
CANDIDATES = ("onnx-fp32", "torch-fp32", "onnx-int8", "torch-bf16", "torch-int8")
BY_PRECISION = {"fp32": ("onnx-fp32", "torch-fp32"), "int8": ("onnx-int8", "torch-int8"), "bf16": ("torch-bf16",)}

_SAMPLE_SENTENCES = (
    "Le ministère a annoncé une enveloppe d'environ 1,3 milliard de dirhams pour soutenir les jeunes entreprises.",
    "The Debian project provides a free operating system with tens of thousands of packages maintained by volunteers.",
    "Pour changer le fuseau horaire du système, lancez dpkg-reconfigure tzdata en tant que superutilisateur.",
    "Each chapter of the reference explains one administration task, from the boot process to network configuration.",
    "La demande doit être déposée au moins deux mois avant la date prévue, accompagnée d'un justificatif de domicile.",
    "Les données personnelles ne peuvent être conservées que pendant la durée nécessaire à la finalité du traitement.",
    "To restore a file from the backup, mount the archive read-only and copy it back with its original permissions.",
    "Le château, construit au XIIe siècle, domine la vallée et accueille chaque été un festival de musique ancienne.",
)


def sample_texts(n: int = 24) -> list[str]:
    """``n`` fixed passages of 15 to 250 tokens, French and English, the lengths of real chunks."""
    out = []
    for i in range(n):
        k = 1 + (i * 5) % 9  # 1..9 sentences
        out.append("passage: " + " ".join(_SAMPLE_SENTENCES[(i + j) % len(_SAMPLE_SENTENCES)] for j in range(k)))
    return out


@dataclasses.dataclass
class Choice:
    engine: str
    results: dict  # engine name -> {"chunks_per_s", "tokens_per_s", "cosine_min", "batch_cosine", "probe_ms", ...}
    key: dict
    cached: bool = False

    def describe(self) -> str:
        r = self.results.get(self.engine, {})
        speed = f", {r['chunks_per_s']:.0f} passages/s measured" if r.get("chunks_per_s") else ""
        return f"{self.engine}{speed}"


def _cpuinfo() -> tuple[str, list[str]]:
    """The CPU's model name and all its flags, as ``/proc/cpuinfo`` reports them (the one parser of that file)."""
    model, flags = "", []
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    return model, flags


def cpu_flags() -> set[str]:
    """Every flag the CPU reports (e.g. ``amx_tile``, which decides llama.cpp's extra buffers); empty when unknown."""
    return set(_cpuinfo()[1])


def cpu_identity() -> tuple[str, list[str]]:
    """The CPU's model name and its vector-instruction flags (what the engines' speed depends on)."""
    model, flags = _cpuinfo()
    return model, sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "f16c", "sse4")) or f in ("vnni",))


def machine_key(folder: Path, threads: int, candidates: tuple[str, ...]) -> dict:
    """What the measurement depends on."""
    from importlib.metadata import PackageNotFoundError, version

    model, flags = cpu_identity()
    versions = {}
    for mod in ("torch", "onnxruntime"):
        try:  # the installed version, without importing the package (torch: ~2 s of every start-up)
            versions[mod] = version(mod)
        except PackageNotFoundError:
            versions[mod] = None
    from .engines import ONNX_VERSION

    return {"version": CHOICE_VERSION, "cpu": model, "flags": flags, "threads": threads,
            **isa_caps(), "onnx_graphs": ONNX_VERSION,  # new graphs, new speeds: measured again
            "model": str(folder), "candidates": list(candidates), **versions}


def _cache_file(key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_root() / "engines" / f"{digest}.json"


def cached_choice(folder: Path, threads: int, candidates: tuple[str, ...] = CANDIDATES) -> Choice | None:
    key = machine_key(folder, threads, candidates)
    try:
        data = json.loads(_cache_file(key).read_text())
        # an engine whose package has since been removed is not offered from the cache: measure again
        if data.get("key") == key and data.get("engine") in ENGINES and not ENGINES[data["engine"]].unavailable():
            return Choice(data["engine"], data["results"], key, cached=True)
    except (OSError, ValueError, KeyError):
        pass
    return None


def choose(folder: str | Path, threads: int, tokenizer, candidates: tuple[str, ...] = CANDIDATES,
           batch_tokens: int = 8192, keep: bool = True) -> tuple[Choice, Engine | None]:
    """The engine for this machine (cached, or measured now) and, when just measured and ``keep``, the loaded
    winner (so it is not loaded twice)."""
    folder = Path(folder)
    found = cached_choice(folder, threads, candidates)
    if found:
        return found, None
    return measure_and_cache(folder, threads, tokenizer, candidates, batch_tokens, keep)


def forget(folder: str | Path, threads: int, candidates: tuple[str, ...] = CANDIDATES) -> None:
    """Drop the cached choice (its engine failed to load here): the next :func:`choose` measures again."""
    try:
        _cache_file(machine_key(Path(folder), threads, candidates)).unlink()
    except OSError:
        pass


def measure_and_cache(folder: Path, threads: int, tokenizer, candidates: tuple[str, ...] = CANDIDATES,
                      batch_tokens: int = 8192, keep: bool = True) -> tuple[Choice, Engine | None]:
    key = machine_key(folder, threads, candidates)
    path = _cache_file(key)
    with _file_lock(path.with_suffix(".lock")):
        found = cached_choice(folder, threads, candidates)  # another process measured while we waited
        if found:
            return found, None
        log.warning("choosing the embedding engine for this CPU (once; about 10-40 s)")
        choice, engine = measure(folder, threads, tokenizer, candidates, batch_tokens, keep)
        choice.key = key
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "engine": choice.engine, "results": choice.results,
                                   "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1))
        os.replace(tmp, path)
    log.warning("embedding engine: %s", choice.describe())
    return choice, engine


def measure(folder: Path, threads: int, tokenizer, candidates: tuple[str, ...], batch_tokens: int = 8192,
            keep: bool = True, rounds: int = 2) -> tuple[Choice, Engine | None]:
    """Run every candidate on the sample; the fastest valid one wins. Returns the choice and the loaded winner."""
    texts = sample_texts()
    ids = tokenizer(texts, truncation=True, max_length=512)["input_ids"]
    n_tokens = sum(len(x) for x in ids)
    probe = [ids[0][:3]]
    results: dict[str, dict] = {}
    ref = None
    order = [REFERENCE] + [c for c in candidates if c != REFERENCE]  # the reference first: the cosines need it
    engines: dict[str, Engine] = {}
    for name in order:
        cls = ENGINES[name]
        reason = cls.unavailable()
        if reason:
            results[name] = {"error": reason}
            continue
        try:
            t0 = time.perf_counter()
            eng = make_engine(name, folder, threads, batch_tokens)
            eng.load()
            load_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            eng.pooled(probe)
            probe_s = time.perf_counter() - t0
            rec = {"load_s": round(load_s, 2), "probe_ms": round(probe_s * 1000, 1)}
            if probe_s > PROBE_LIMIT_S:
                rec["error"] = f"pathological on this CPU: {probe_s:.1f} s for a 3-token text"
                results[name] = rec
                eng.close()
                continue
            ref_rate = results.get(REFERENCE, {}).get("tokens_per_s")  # None while the reference itself is measured
            t0 = time.perf_counter()
            eng.pooled(ids[:2])  # warm-up (first-call allocations, kernel selection)
            warm_s = time.perf_counter() - t0
            slow = too_slow(warm_s, sum(len(x) for x in ids[:2]), ref_rate)
            if slow:  # the full sample would take minutes: not worth measuring (it could never win)
                rec["error"] = f"pathological on this CPU: {slow}"
                results[name] = rec
                eng.close()
                continue
            # a pilot on a third of the sample: an engine already below 1/SLOW_FACTOR of fp32's speed cannot win,
            # and measuring it fully costs most of a calibration (torch-bf16 on an AVX2-only CPU: 36 s of ~90)
            pilot = ids[: max(2, len(ids) // 3)]
            t0 = time.perf_counter()
            eng.pooled(pilot)
            pilot_s = time.perf_counter() - t0
            pilot_rate = sum(len(x) for x in pilot) / max(pilot_s, 1e-9)
            if ref_rate and pilot_rate * SLOW_FACTOR < ref_rate:
                rec.update(tokens_per_s=round(pilot_rate, 1),
                           error=f"too slow on this CPU: {pilot_rate:.0f} tokens/s against {ref_rate:.0f} in fp32")
                results[name] = rec
                eng.close()
                continue
            best, vecs = float("inf"), None
            for _ in range(rounds):  # best of rounds: a measurement only ever gets slower under contention
                t0 = time.perf_counter()
                vecs = eng.pooled(ids)
                best = min(best, time.perf_counter() - t0)
            vecs = _normalise(vecs)
            alone = _normalise(eng.pooled([ids[-1]]))[0]
            if ref is None:
                ref = vecs
            rec.update(seconds=round(best, 3), chunks_per_s=round(len(ids) / best, 2),
                       tokens_per_s=round(n_tokens / best, 1),
                       cosine_min=round(float(np.min(np.sum(vecs * ref, axis=1))), 6),
                       batch_cosine=round(float(alone @ vecs[-1]), 7))
            if rec["cosine_min"] < MIN_COSINE:
                rec["error"] = f"vectors differ from fp32 (cosine {rec['cosine_min']:.4f} < {MIN_COSINE})"
            elif rec["batch_cosine"] < MIN_BATCH_COSINE:
                rec["error"] = f"vectors depend on the batch (cosine {rec['batch_cosine']:.5f})"
            results[name] = rec
            log.info("engine %s: %s", name, rec)
            if name in candidates and "error" not in rec:
                engines[name] = eng
            else:
                eng.close()
        except Exception as err:  # noqa: BLE001 - an engine that cannot run here is reported, not fatal
            results[name] = {"error": error_line(err, 10_000, with_type=True)}
            log.warning("embedding engine %s failed its measurement: %s", name, results[name]["error"])
    valid = [n for n in candidates if n in engines]
    if not valid:
        raise RuntimeError("no embedding engine runs on this machine: " +
                           "; ".join(f"{n}: {r.get('error')}" for n, r in results.items()))
    winner = pick(valid, results)
    for name, eng in engines.items():
        if name != winner or not keep:
            eng.close()
    return Choice(winner, results, {}), (engines[winner] if keep else None)


def too_slow(warm_s: float, warm_tokens: int, ref_tokens_per_s: float | None) -> str | None:
    """Why an engine is too slow to measure further, judged on its warm-up call (two sample passages), or None.

    The 3-token probe alone let torch's int8 matmul through on an AMD EPYC without AMX (0.48 s, just under
    :data:`PROBE_LIMIT_S`), and its measurement then took ~170 s of a first index. Its warm-up ran at under a
    hundredth of fp32's speed: an engine whose warm-up - first-call allocations included, so generously - is
    slower than :data:`SLOW_FACTOR` x the reference's measured time for the same tokens, or takes more than
    :data:`WARMUP_LIMIT_S`, cannot win and is reported instead of measured."""
    if warm_s > WARMUP_LIMIT_S:
        return f"{warm_s:.1f} s for two sample passages"
    if ref_tokens_per_s and warm_s > SLOW_FACTOR * warm_tokens / ref_tokens_per_s + PROBE_LIMIT_S:
        return f"{warm_s:.1f} s for two sample passages ({warm_tokens / ref_tokens_per_s:.2f} s in fp32)"
    return None


def pick(valid: list[str], results: dict, tie: float = 0.05) -> str:
    """The fastest valid engine; one within ``tie`` (5 %) of it and earlier in the candidate order wins the tie."""
    fastest = max(results[n]["chunks_per_s"] for n in valid)
    for name in valid:
        if results[name]["chunks_per_s"] >= fastest * (1 - tie):
            return name
    return valid[0]  # pragma: no cover - unreachable: the fastest qualifies


def _normalise(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
