"""Answering with a language model (LangChain chat models), grounded and cited, with a safe fallback.

Backends, chosen by ``ASSISTANT_LLM`` (:func:`make_chat_model`; the registry of :mod:`assistant.llm.backends`):

* ``openai`` - any OpenAI-compatible server (OpenAI, vLLM, llama.cpp's server,
  LM Studio, Ollama's ``/v1``) through ``langchain-openai``;
* ``ollama`` - ``langchain-ollama``;
* ``llamacpp`` - a local GGUF file run in-process by ``llama-cpp-python``;
* ``huggingface`` - Hugging Face Inference through ``langchain-huggingface``.

:class:`LLMAnswerer` (:mod:`~assistant.llm.answerer`) builds a prompt from the files in ``prompts/`` (numbered,
delimited passages packed to a tiktoken budget, :mod:`~assistant.llm.prompts`), streams the model's answer with a
hard deadline, then checks it: ``[n]`` markers are repaired or dropped so every one resolves to a passage the model
saw (:mod:`~assistant.llm.output`), each cited sentence is checked against its passage (numbers, accent-folded word
overlap, multilingual embedding similarity: :mod:`~assistant.llm.support`) and flagged when unsupported, and the
model's fixed "not in the documents" sentence becomes an abstention. When the model cannot be used (unreachable,
timeout, error, empty output, or an answer with no resolvable or no supported citation) the user gets the
extractive answer with a note saying why - never a stack trace or a hang. Secrets (API keys, tokens) are never put
in notes, logs or errors (:mod:`~assistant.llm.errors`).

This package re-exports the names code elsewhere uses (``from assistant import llm as L``; ``from assistant.llm
import X``); each is defined in the module named above.
"""
from __future__ import annotations

from .answerer import RETRY_AFTER, LLMAnswerer, Prepared, Usage, clean_condensed, render_history
from .backends import (BACKENDS, Backend, backend_names, describe_backend, get_backend, limit_kwargs,
                       make_chat_model, register, require)
from .backends.llamacpp import ChatLlamaCppLocal, llama_cpp_extra_buffers_enabled, patch_llama_cpp_defaults
from .backends.openai import is_official_openai
from .errors import (LLMConfigError, LLMError, LLMUnavailable, LLMUnusable, failure_reason, first_line, redact,
                     safe_url)
from .output import append_marker, clean_output, is_abstention, message_text, normalize_markers
from .prompts import (MIN_PASSAGE_TOKENS, PROMPTS_DIR, TEMPLATE_TOKENS_PER_MESSAGE, TOKEN_SAFETY, Passage,
                      PromptTemplate, count_tokens, format_passage, load_prompt, pack_passages, parse_prompt)
from .support import LEXICAL_SUPPORT, SEMANTIC_SUPPORT, Support, SupportChecker, claim_tokens, numbers

__all__ = [
    "BACKENDS", "Backend", "ChatLlamaCppLocal", "LEXICAL_SUPPORT", "LLMAnswerer", "LLMConfigError", "LLMError",
    "LLMUnavailable", "LLMUnusable", "MIN_PASSAGE_TOKENS", "PROMPTS_DIR", "Passage", "Prepared", "PromptTemplate",
    "RETRY_AFTER", "SEMANTIC_SUPPORT", "Support", "SupportChecker", "TEMPLATE_TOKENS_PER_MESSAGE", "TOKEN_SAFETY",
    "Usage", "append_marker", "backend_names", "claim_tokens", "clean_condensed", "clean_output", "count_tokens",
    "describe_backend", "failure_reason", "first_line", "format_passage", "get_backend", "is_abstention",
    "is_official_openai", "limit_kwargs", "llama_cpp_extra_buffers_enabled", "load_prompt", "make_chat_model",
    "message_text", "normalize_markers", "numbers", "pack_passages", "parse_prompt", "patch_llama_cpp_defaults",
    "redact", "register", "render_history", "require", "safe_url",
]
