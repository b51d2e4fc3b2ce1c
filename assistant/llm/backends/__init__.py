"""The LLM backends: a registry of adapters, one module per backend, each registering itself.

Modelled on the plugin registry of simonw/llm, reduced to a dict: a :class:`Backend` names a backend (the value of
the setting ``llm``), says what it is and which pip extra it needs, builds its LangChain chat model
(:func:`make_chat_model`), describes where it answers from without secrets (:func:`describe_backend`) and passes a
per-call token limit in the parameter its client reads (:func:`limit_kwargs`). :data:`BACKENDS`, the settings table
and the CLI's help list the backends from here; adding one is a module that calls :func:`register`, imported at the
end of this file.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from ...config import Settings
from ..errors import LLMConfigError, redact


@dataclass(frozen=True)
class Backend:
    name: str
    factory: Callable[..., Any]  # (settings, **overrides) -> BaseChatModel
    description: str  # one line, for help texts
    extra: str  # the pip extra that installs its packages: pip install 'assistant[<extra>]'
    describe: Callable[[Settings], str]  # where it answers from, for notes (never contains secrets)
    limit_kwargs: Callable[[Settings, Callable[[], Any], int], dict]  # (settings, the model, limit) -> call kwargs


_REGISTRY: dict[str, Backend] = {}


def register(name: str, factory: Callable[..., Any], description: str, extra: str = "llm", *,
             describe: Callable[[Settings], str], limit_kwargs: Callable[[Settings, Callable[[], Any], int], dict]
             ) -> Backend:
    """Add a backend (the name is what the setting ``llm`` says); the order of registration is the order listed."""
    backend = Backend(name, factory, description, extra, describe, limit_kwargs)
    _REGISTRY[name] = backend
    return backend


def get_backend(name: str) -> Backend | None:
    """The backend called ``name`` (case and surrounding spaces ignored), or None."""
    return _REGISTRY.get((name or "").strip().lower())


def backend_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def backends() -> list[Backend]:
    return list(_REGISTRY.values())


def require(module: str, extra: str = "llm"):
    """``module`` imported, or :class:`LLMConfigError` saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        pkg = module.split(".")[0].replace("_", "-")
        raise LLMConfigError(f"the {pkg} package is not installed (pip install 'assistant[{extra}]')") from err


def make_chat_model(settings: Settings, **overrides: Any):
    """The LangChain chat model configured by ``settings.llm`` (also used by the evaluation's LLM judge).

    ``overrides`` go to the model's constructor (e.g. ``http_client=`` for the
    openai backend). Token limits are sent the way each server reads them:
    langchain-openai turns ``max_tokens`` into ``max_completion_tokens``, which
    llama.cpp's and other OpenAI-compatible servers ignore, so for any server
    other than OpenAI's own ``max_tokens`` is also sent in the request body.
    Raises :class:`LLMConfigError` (a message without secrets) when the
    backend is unknown, misconfigured or its package is missing.
    """
    backend = get_backend(settings.llm)
    if backend is not None:
        return backend.factory(settings, **overrides)
    if not (settings.llm or "").strip():
        raise LLMConfigError("no LLM backend configured (ASSISTANT_LLM is empty)")
    raise LLMConfigError(f"unknown LLM backend {settings.llm!r} (use one of: {', '.join(backend_names())})")


def describe_backend(settings: Settings) -> str:
    """'openai at http://127.0.0.1:8080/v1' - for notes (never contains secrets)."""
    backend = get_backend(settings.llm)
    if backend is not None:
        return backend.describe(settings)
    return redact((settings.llm or "").strip().lower() or "none", settings)


def limit_kwargs(settings: Settings, model: Callable[[], Any], limit: int) -> dict[str, Any]:
    """Per-call token limit in each backend's own parameter (``model()``: the chat model, for backends that need it)."""
    backend = get_backend(settings.llm)
    return backend.limit_kwargs(settings, model, limit) if backend is not None else {}


from . import openai, ollama, llamacpp, huggingface  # noqa: E402,F401 - each registers itself, in this order

BACKENDS = backend_names()
