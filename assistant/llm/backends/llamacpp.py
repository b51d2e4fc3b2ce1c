"""The ``llamacpp`` backend: a local GGUF file run in-process by ``llama-cpp-python``, and llama.cpp's CPU patches.

This module owns :class:`ChatLlamaCppLocal` (a LangChain chat model over ``llama_cpp.Llama``, loaded once, one call
at a time), its construction from the settings, and the patch that keeps llama.cpp off its extra weight buffer
types where they are unsafe (:func:`llama_cpp_extra_buffers_enabled`, :func:`patch_llama_cpp_defaults`: ggml's AMX
kernels crash some AMX virtual machines; the setting ``llamacpp_extra_buffers``, env ``LLAMACPP_EXTRA_BUFFERS``,
decides), also applied by ``scripts/llama_server.py`` to llama.cpp's own server.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Iterator

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr

from ...config import Settings
from ..errors import LLMConfigError
from ..output import message_text
from . import register, require


def _extra_buffers_mode(settings: Settings | str | None) -> str:
    """``auto``, ``on`` or ``off``: from ``settings`` (or the value of its ``llamacpp_extra_buffers``), else from the
    environment."""
    if settings is None:
        settings = Settings.from_env()
    elif isinstance(settings, str):
        settings = Settings(llamacpp_extra_buffers=settings)  # checked and normalised like the setting
    return settings.llamacpp_extra_buffers


def llama_cpp_extra_buffers_enabled(settings: Settings | str | None = None) -> bool:
    """Whether llama.cpp may use its extra weight buffer types (repacking, AMX).

    ggml's AMX matrix multiplication segfaults on some AMX-capable virtual
    machines (observed with llama-cpp-python 0.3.36), taking the process down,
    so extra buffer types are off when the CPU reports AMX. Override with the
    setting ``llamacpp_extra_buffers`` (``LLAMACPP_EXTRA_BUFFERS=on|off``);
    without ``settings``, the settings of the environment decide.
    """
    mode = _extra_buffers_mode(settings)
    if mode == "on":
        return True
    if mode == "off":
        return False
    from ...engine_choice import cpu_flags

    return not ({"amx_tile", "amx_int8"} & cpu_flags())


_llama_patch_lock = threading.Lock()


def patch_llama_cpp_defaults(settings: Settings | str | None = None) -> None:
    """Make ``llama_cpp.Llama`` load models without extra buffer types when they are unsafe (see above)."""
    if llama_cpp_extra_buffers_enabled(settings):
        return
    import llama_cpp.llama_cpp as lib

    with _llama_patch_lock:
        if getattr(lib.llama_model_default_params, "_assistant_patched", False):
            return
        original = lib.llama_model_default_params

        def params():
            p = original()
            if hasattr(p, "use_extra_bufts"):
                p.use_extra_bufts = False
            return p

        params._assistant_patched = True  # type: ignore[attr-defined]
        lib.llama_model_default_params = params


class ChatLlamaCppLocal(BaseChatModel):
    """A LangChain chat model over ``llama_cpp.Llama`` (a local GGUF file), loaded once, one call at a time."""

    model_path: str
    n_ctx: int = 4096
    max_tokens: int = 512
    temperature: float = 0.1
    n_threads: int | None = None
    chat_format: str | None = None
    extra_buffers: str | None = None  # auto, on or off (the setting llamacpp_extra_buffers); None: the environment's
    _llama: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "llamacpp-local"

    def _load(self):
        if self._llama is None:
            patch_llama_cpp_defaults(self.extra_buffers)
            from llama_cpp import Llama

            kwargs: dict[str, Any] = {"model_path": self.model_path, "n_ctx": self.n_ctx, "verbose": False}
            if self.n_threads:
                kwargs.update(n_threads=self.n_threads, n_threads_batch=self.n_threads)
            if self.chat_format:
                kwargs["chat_format"] = self.chat_format
            self._llama = Llama(**kwargs)
        return self._llama

    @staticmethod
    def _dicts(messages: list[BaseMessage]) -> list[dict]:
        roles = {"system": "system", "human": "user", "ai": "assistant"}
        return [{"role": roles.get(m.type, "user"), "content": message_text(m.content, " ")} for m in messages]

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        with self._lock:
            llama = self._load()
            it = llama.create_chat_completion(messages=self._dicts(messages),
                                              max_tokens=kwargs.get("max_tokens", self.max_tokens),
                                              temperature=self.temperature, stop=stop, stream=True)
            count = 0
            try:
                for part in it:
                    choice = (part.get("choices") or [{}])[0]
                    delta = (choice.get("delta") or {}).get("content") or ""
                    if delta:
                        count += 1
                        chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
                        if run_manager:
                            run_manager.on_llm_new_token(delta, chunk=chunk)
                        yield chunk
                yield ChatGenerationChunk(message=AIMessageChunk(content="", usage_metadata={
                    "input_tokens": 0, "output_tokens": count, "total_tokens": count}))
            finally:
                close = getattr(it, "close", None)
                if close:
                    close()

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        text, usage = "", None
        for chunk in self._stream(messages, stop=stop, run_manager=run_manager, **kwargs):
            text += chunk.message.content
            usage = chunk.message.usage_metadata or usage
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text, usage_metadata=usage))])


def make(settings: Settings, **overrides: Any) -> ChatLlamaCppLocal:
    temp, max_tokens = settings.llm_temperature, int(settings.llm_max_tokens)
    require("llama_cpp", extra="llamacpp")
    path = settings.llm_model
    if not path:
        raise LLMConfigError("set ASSISTANT_LLM_MODEL to the path of a GGUF file")
    if not Path(path).is_file():
        raise LLMConfigError(f"no GGUF file at {path}")
    kwargs: dict[str, Any] = dict(model_path=str(path), n_ctx=int(settings.llm_context_tokens), max_tokens=max_tokens,
                                  temperature=temp, extra_buffers=settings.llamacpp_extra_buffers)
    kwargs.update(overrides)
    return ChatLlamaCppLocal(**kwargs)


def describe(settings: Settings) -> str:
    return f"llamacpp with {Path(settings.llm_model).name or 'no model file'}"


def limit_kwargs(settings: Settings, model: Callable[[], Any], limit: int) -> dict[str, Any]:
    return {"max_tokens": limit}


register("llamacpp", make, "a local GGUF file run in-process by llama-cpp-python", "llamacpp", describe=describe,
         limit_kwargs=limit_kwargs)
