"""The ``ollama`` backend: an Ollama server through ``langchain-ollama``.

This module owns the chat model's construction (model, context window ``num_ctx``, token limit ``num_predict``,
timeout) and the per-call token limit, which ChatOllama reads only from a complete ``options`` dict.
"""
from __future__ import annotations

from typing import Any, Callable

from ...config import Settings
from ..errors import safe_url
from . import register, require


def make(settings: Settings, **overrides: Any):
    temp, max_tokens, timeout = settings.llm_temperature, int(settings.llm_max_tokens), float(settings.llm_timeout)
    mod = require("langchain_ollama")
    kwargs: dict[str, Any] = dict(model=settings.llm_model or "llama3.2", temperature=temp, num_predict=max_tokens,
                                  num_ctx=int(settings.llm_context_tokens), client_kwargs={"timeout": timeout})
    if settings.llm_base_url:
        kwargs["base_url"] = settings.llm_base_url
    kwargs.update(overrides)
    return mod.ChatOllama(**kwargs)


def describe(settings: Settings) -> str:
    return f"ollama at {safe_url(settings.llm_base_url) or 'http://localhost:11434'}"


def limit_kwargs(settings: Settings, model: Callable[[], Any], limit: int) -> dict[str, Any]:
    chat = model()  # ChatOllama reads per-call limits only from a complete `options`
    opts = {"num_ctx": getattr(chat, "num_ctx", None), "temperature": getattr(chat, "temperature", None),
            "num_predict": limit}
    return {"options": {k: v for k, v in opts.items() if v is not None}}


register("ollama", make, "an Ollama server through langchain-ollama", "llm", describe=describe,
         limit_kwargs=limit_kwargs)
