"""The ``huggingface`` backend: Hugging Face Inference (or a TGI endpoint) through ``langchain-huggingface``.

This module owns the chat model's construction: a model id (``llm_model``, routed by the provider ``auto``) or an
endpoint URL (``llm_base_url``), the token (``HF_TOKEN``, else ``HUGGINGFACEHUB_API_TOKEN``, else the setting
``llm_api_key``), and the refusal to start while ``HF_HUB_OFFLINE=1`` forbids the calls it would make.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from ...config import Settings, hf_token
from ..errors import LLMConfigError, safe_url
from . import register, require


def make(settings: Settings, **overrides: Any):
    temp, max_tokens, timeout = settings.llm_temperature, int(settings.llm_max_tokens), float(settings.llm_timeout)
    mod = require("langchain_huggingface")
    hub_constants = require("huggingface_hub.constants")
    if hub_constants.HF_HUB_OFFLINE:
        raise LLMConfigError("the huggingface backend calls the Hugging Face Inference API but HF_HUB_OFFLINE=1; "
                             "set HF_HUB_OFFLINE=0")
    if not settings.llm_model and not settings.llm_base_url:
        raise LLMConfigError("set ASSISTANT_LLM_MODEL to a Hugging Face model id (e.g. Qwen/Qwen2.5-7B-Instruct)")
    token = hf_token(settings)
    ekw: dict[str, Any] = dict(max_new_tokens=max_tokens, temperature=max(temp, 0.01),  # TGI rejects 0
                               timeout=max(1, math.ceil(timeout)), huggingfacehub_api_token=token,
                               task="conversational")
    if settings.llm_base_url:
        ekw["endpoint_url"] = settings.llm_base_url
    else:
        ekw["repo_id"] = settings.llm_model
        ekw["provider"] = "auto"
    endpoint = mod.HuggingFaceEndpoint(**ekw)
    kwargs: dict[str, Any] = dict(llm=endpoint, max_tokens=max_tokens, temperature=temp)
    if settings.llm_model:
        kwargs["model_id"] = settings.llm_model
    kwargs.update(overrides)
    return mod.ChatHuggingFace(**kwargs)


def describe(settings: Settings) -> str:
    where = safe_url(settings.llm_base_url) or (settings.llm_model or "no model")
    return f"huggingface, {where}"


def limit_kwargs(settings: Settings, model: Callable[[], Any], limit: int) -> dict[str, Any]:
    return {"max_tokens": limit}


register("huggingface", make, "Hugging Face Inference through langchain-huggingface", "llm", describe=describe,
         limit_kwargs=limit_kwargs)
