"""The engine choice's logic with stub engines: fastest valid engine wins, wrong or batch-dependent vectors and
pathological engines are rejected, ties go to the earlier candidate, the result is cached per machine key."""
from __future__ import annotations

import time
import zlib

import numpy as np
import pytest

from assistant import engine_choice
from assistant.engines import Engine


class _Tok:
    def __call__(self, texts, truncation=True, max_length=512):
        return {"input_ids": [[1] + [2 + (zlib.crc32(w.encode()) % 50) for w in t.split()][:40] + [3] for t in texts]}


def _stub(name, delay_per_text=0.0, probe_delay=0.0, noise=0.0, batch_noise=0.0):
    class Stub(Engine):
        def load(self):
            self.dim = 8

        def pooled(self, ids):
            if len(ids) == 1 and len(ids[0]) == 3 and probe_delay:
                time.sleep(probe_delay)
            time.sleep(delay_per_text * len(ids))
            out = np.zeros((len(ids), 8), np.float32)
            for i, row in enumerate(ids):
                rng = np.random.default_rng(sum(row))
                out[i] = rng.standard_normal(8) + 4
                if noise:
                    out[i] += np.random.default_rng(1000 + sum(row)).standard_normal(8) * noise
                if batch_noise and len(ids) == 1:  # a text alone gets another vector than in a batch
                    out[i] += batch_noise * np.random.default_rng(2000 + sum(row)).standard_normal(8)
            return out

    Stub.name = name
    return Stub


@pytest.fixture
def stubs(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    def install(**engines):
        table = {name.replace("_", "-"): cls for name, cls in engines.items()}
        monkeypatch.setattr(engine_choice, "ENGINES", table)
        import assistant.engines as eng

        monkeypatch.setattr(eng, "ENGINES", table)
        return table

    return install


def test_fastest_valid_engine_wins_and_is_cached(stubs, tmp_path):
    stubs(torch_fp32=_stub("torch-fp32", 0.004), fast=_stub("fast", 0.001), faster_but_wrong=_stub("wrong", 0.0002, noise=3.0))
    cands = ("fast", "torch-fp32", "faster-but-wrong")
    choice, engine = engine_choice.choose(tmp_path, 2, _Tok(), cands)
    assert choice.engine == "fast" and engine is not None and not choice.cached
    assert "vectors differ from fp32" in choice.results["faster-but-wrong"]["error"]
    assert choice.results["torch-fp32"]["cosine_min"] == pytest.approx(1.0)
    again, loaded = engine_choice.choose(tmp_path, 2, _Tok(), cands)
    assert again.cached and again.engine == "fast" and loaded is None
    # another machine key (an instruction-set cap) measures again
    import os

    os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"
    try:
        assert engine_choice.cached_choice(tmp_path, 2, cands) is None
    finally:
        del os.environ["ONEDNN_MAX_CPU_ISA"]


def test_pathological_and_batch_dependent_engines_are_rejected(stubs, tmp_path):
    stubs(torch_fp32=_stub("torch-fp32", 0.002), slow_probe=_stub("slow", probe_delay=engine_choice.PROBE_LIMIT_S + 0.1),
          batchy=_stub("batchy", 0.0001, batch_noise=0.5))
    choice, _ = engine_choice.choose(tmp_path, 2, _Tok(), ("slow-probe", "batchy", "torch-fp32"))
    assert choice.engine == "torch-fp32"
    assert "pathological" in choice.results["slow-probe"]["error"]
    assert "seconds" not in choice.results["slow-probe"]  # never timed on the sample
    assert "depend on the batch" in choice.results["batchy"]["error"]


def test_engines_too_slow_to_win_are_not_measured_fully(stubs, tmp_path):
    """An engine that passes the 3-token probe but runs below 1/SLOW_FACTOR of fp32 (torch-bf16 on an AVX2-only
    CPU, 0.18x) stops after its pilot; one whose warm-up alone takes seconds stops there (torch-int8 there)."""
    stubs(torch_fp32=_stub("torch-fp32", 0.001), crawl=_stub("crawl", 0.001 * engine_choice.SLOW_FACTOR * 2),
          fine=_stub("fine", 0.0015))
    t0 = time.perf_counter()
    choice, _ = engine_choice.choose(tmp_path, 2, _Tok(), ("crawl", "fine", "torch-fp32"))
    assert choice.engine == "torch-fp32"  # fine is slower than fp32 here, but valid and measured
    assert "too slow on this CPU" in choice.results["crawl"]["error"]
    assert "seconds" not in choice.results["crawl"] and "seconds" in choice.results["fine"]
    # crawl's full measurement (warm-up + 3 x 24 texts at 20 ms) would alone take > 1.4 s
    assert time.perf_counter() - t0 < 1.4


def test_too_slow_judges_the_warm_up_against_fp32():
    assert engine_choice.too_slow(6.0, 100, None)  # over WARMUP_LIMIT_S whatever the reference
    assert engine_choice.too_slow(0.3, 100, None) is None  # no reference yet: only the absolute limit
    # 100 tokens at fp32's 1000 tokens/s = 0.1 s; x SLOW_FACTOR + the probe limit's margin = 1.0 s
    assert engine_choice.too_slow(1.1, 100, 1000.0) and engine_choice.too_slow(0.9, 100, 1000.0) is None


def test_pick_prefers_the_earlier_candidate_within_the_tie_margin():
    results = {"a": {"chunks_per_s": 96.0}, "b": {"chunks_per_s": 100.0}, "c": {"chunks_per_s": 50.0}}
    assert engine_choice.pick(["a", "b", "c"], results) == "a"  # 96 >= 0.95 x 100
    assert engine_choice.pick(["a", "b", "c"], results, tie=0.02) == "b"
    assert engine_choice.pick(["c", "b"], results) == "b"


def test_no_engine_runs_is_a_clear_error(stubs, tmp_path):
    class Missing(Engine):
        requires = ("no_such_module_xyz",)

    stubs(torch_fp32=Missing)
    with pytest.raises(RuntimeError, match="no embedding engine runs on this machine"):
        engine_choice.choose(tmp_path, 2, _Tok(), ("torch-fp32",))


def test_sample_covers_real_chunk_lengths():
    texts = engine_choice.sample_texts()
    words = [len(t.split()) for t in texts]
    assert len(texts) == 24 and min(words) < 25 and max(words) > 120


def test_a_cached_engine_that_can_no_longer_run_is_measured_again(stubs, tmp_path):
    """The cache said "fast", then its package went away (``unavailable()``): the next choice measures again and
    picks among what runs, instead of failing to load the cached engine."""
    fast = _stub("fast", 0.0005)
    stubs(torch_fp32=_stub("torch-fp32", 0.003), fast=fast)
    cands = ("fast", "torch-fp32")
    assert engine_choice.choose(tmp_path, 2, _Tok(), cands)[0].engine == "fast"
    fast.unavailable = classmethod(lambda cls: "fast needs the Python package 'gone'")
    assert engine_choice.cached_choice(tmp_path, 2, cands) is None
    choice, engine = engine_choice.choose(tmp_path, 2, _Tok(), cands)
    assert choice.engine == "torch-fp32" and not choice.cached and engine is not None
    assert choice.results["fast"]["error"] == "fast needs the Python package 'gone'"
    # forget() drops a cached choice (the embedder calls it when a cached engine fails to load)
    assert engine_choice.cached_choice(tmp_path, 2, cands) is not None
    engine_choice.forget(tmp_path, 2, cands)
    assert engine_choice.cached_choice(tmp_path, 2, cands) is None


def test_file_locks_nest_across_paths_and_exclude_within_one(tmp_path):
    """The choice holds its cache lock while an engine exports its graph under another lock file: nesting two
    different lock files in one thread must not deadlock; the same file still excludes another thread."""
    import threading

    from assistant.engines import _file_lock

    with _file_lock(tmp_path / "a.lock"):
        with _file_lock(tmp_path / "b.lock"):
            pass
        got = []
        t = threading.Thread(target=lambda: got.append(_file_lock(tmp_path / "a.lock").__enter__()))
        t.daemon = True
        t.start()
        t.join(0.3)
        assert t.is_alive() and not got  # held by this thread: the other waits
    t.join(5)
    assert not t.is_alive()


def test_equal_length_batches_partition_without_padding():
    from assistant.engines import equal_length_batches

    ids = [[1] * n for n in (5, 7, 5, 5, 9, 7, 5)]
    batches = list(equal_length_batches(ids, batch_tokens=10))  # at most 2 rows of 5 tokens, 1 of 7 or 9
    seen = []
    for idx, arr, mask in batches:
        assert arr.shape == mask.shape and mask.all()  # no padding anywhere
        assert all(len(ids[i]) == arr.shape[1] for i in idx) and arr.shape[1] * len(idx) <= 10
        seen += idx
    assert sorted(seen) == list(range(len(ids)))
    assert [idx for idx, _, _ in batches] == [[0, 2], [3, 6], [1], [5], [4]]
    # a text longer than the budget still gets its own batch
    assert [idx for idx, _, _ in equal_length_batches([[1] * 50], batch_tokens=10)] == [[0]]
