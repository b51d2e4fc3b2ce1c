"""The stage interfaces :class:`~assistant.pipeline.Assistant` composes, as small Protocols.

A stage is any object with the right ``run()``: the built-in ones are :class:`~assistant.retrieval.HybridRetriever`
(a :class:`Retriever`) and :class:`~assistant.answer.ExtractiveAnswerer` / :class:`~assistant.reader.Reader`
(:class:`Answerer`s). Another retriever (a reranker wrapping the hybrid one, a different store) or another answerer
plugs in through ``Assistant(settings, retriever=..., answerer=...)`` without editing the Assistant. ``warm_up()``
(load models ahead of the first question) and ``refresh()`` (follow new index content) are optional: the Assistant
calls them when a stage has them, as Haystack 2.x does with components.

Per-request results travel on the returned objects (``Retrieval``, ``Answer.diagnostics``), never on the stage, so
one stage instance serves several threads.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .retrieval import Retrieval
    from .schema import Answer


@runtime_checkable
class Retriever(Protocol):
    """Question (+ conversation) -> the passages to answer from, best first, with the question's language and the
    translations of its words."""

    def run(self, question: str, history: list[dict] | None = None, k: int | None = None) -> Retrieval: ...


@runtime_checkable
class Answerer(Protocol):
    """Retrieved passages -> an :class:`~assistant.schema.Answer` that quotes and cites them, or abstains."""

    def run(self, retrieval: Retrieval) -> Answer: ...
