"""The ``openai`` backend: any OpenAI-compatible server through ``langchain-openai``.

OpenAI itself, vLLM, llama.cpp's server, LM Studio, Ollama's ``/v1``. This module owns the chat model's
construction (key: the setting ``llm_api_key``, else ``OPENAI_API_KEY``; a local server needs none), and the token
limit: langchain-openai sends ``max_completion_tokens``, which servers other than OpenAI's own ignore, so they also
get ``max_tokens`` in the request body (:func:`is_official_openai` tells them apart).
"""
from __future__ import annotations

from typing import Any, Callable
from urllib.parse import urlsplit

from ...config import Settings, openai_api_key
from ..errors import LLMConfigError, safe_url
from . import register, require


def is_official_openai(base_url: str) -> bool:
    host = (urlsplit(base_url).hostname or "") if base_url else "api.openai.com"
    return host.endswith("openai.com") or host.endswith("openai.azure.com")


def make(settings: Settings, **overrides: Any):
    temp, max_tokens, timeout = settings.llm_temperature, int(settings.llm_max_tokens), float(settings.llm_timeout)
    mod = require("langchain_openai")
    base = settings.llm_base_url.strip() or None
    key = openai_api_key(settings)
    if not key:
        if base is None:
            raise LLMConfigError("no API key: set ASSISTANT_LLM_API_KEY or OPENAI_API_KEY, or ASSISTANT_LLM_BASE_URL "
                                 "for a local OpenAI-compatible server")
        key = "not-needed"  # local servers accept any key, the client library requires one
    kwargs: dict[str, Any] = dict(model=settings.llm_model or ("gpt-4o-mini" if base is None else "local-model"),
                                  base_url=base, api_key=key, temperature=temp, max_tokens=max_tokens,
                                  timeout=timeout, max_retries=0, stream_usage=True)
    if not is_official_openai(base or ""):
        kwargs["extra_body"] = {"max_tokens": max_tokens}
    kwargs.update(overrides)
    return mod.ChatOpenAI(**kwargs)


def describe(settings: Settings) -> str:
    return f"openai at {safe_url(settings.llm_base_url) or 'https://api.openai.com/v1'}"


def limit_kwargs(settings: Settings, model: Callable[[], Any], limit: int) -> dict[str, Any]:
    kw: dict[str, Any] = {"max_completion_tokens": limit}
    if not is_official_openai(settings.llm_base_url):
        kw["extra_body"] = {"max_tokens": limit}
    return kw


register("openai", make, "any OpenAI-compatible server (OpenAI, vLLM, llama.cpp's server, LM Studio, Ollama's /v1) "
         "through langchain-openai", "llm", describe=describe, limit_kwargs=limit_kwargs)
