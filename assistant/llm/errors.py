"""Why a language-model call failed, said without secrets.

This module owns the exceptions of the LLM answerer (:class:`LLMError` and its kinds: misconfigured, unavailable
for a while, unusable answer), the scrubbing of secrets from any text shown or logged (:func:`redact`,
:func:`safe_url`: API keys, tokens, URL passwords, and the secret values of the settings and the environment), the
short secret-free reason a call failed for (:func:`failure_reason`) and :func:`first_line`, the first line of an
error message used wherever the LLM code quotes one.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from ..config import Settings, secret_env_values
from ..text import first_line  # noqa: F401 - re-exported (the one first-line helper lives in assistant.text)


class LLMError(RuntimeError):
    """The backend did not produce a usable answer; ``reason`` is safe to show (no secrets)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class LLMConfigError(LLMError):
    """The backend is misconfigured or its package is missing."""


class LLMUnavailable(LLMError):
    """The backend failed to connect or timed out moments ago and is not called again yet."""


class LLMUnusable(LLMError):
    """The model answered, but nothing in its answer could be tied to the passages."""


# --------------------------------------------------------------------------- secrets
_SECRET_PATTERNS = [
    re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bhf_[A-Za-z0-9]{8,}"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._\-~+/=]{6,}"),
    re.compile(r"(?i)\b(api[_-]?key|token|authorization|password)(\s*[=:]\s*)[\"']?[^\s\"',;]{4,}"),
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),  # user:password@ in URLs
]


def _secret_values(settings: Settings | None = None) -> list[str]:
    vals = secret_env_values()
    if settings is not None:
        vals.append(settings.llm_api_key or "")
    return [v for v in vals if v and len(v) >= 4]


def redact(text: str, settings: Settings | None = None) -> str:
    """``text`` without API keys, tokens or URL passwords."""
    out = str(text)
    for val in _secret_values(settings):
        out = out.replace(val, "***")
    for pat in _SECRET_PATTERNS:
        if pat.groups >= 2:
            out = pat.sub(lambda m: m.group(1) + m.group(2) + "***", out)
        else:
            out = pat.sub("***", out)
    return out


def safe_url(url: str) -> str:
    """The URL without credentials, query or fragment (for notes and logs)."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(invalid URL)"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", "")) or redact(url)


def failure_reason(err: BaseException, settings: Settings) -> str:
    """A short, secret-free description of why a call failed."""
    if isinstance(err, LLMError):
        return redact(err.reason, settings)
    names = {c.__name__ for c in type(err).__mro__}
    status = getattr(err, "status_code", None) or getattr(getattr(err, "response", None), "status_code", None)
    if names & {"APITimeoutError", "TimeoutException", "ReadTimeout", "ConnectTimeout", "TimeoutError", "Timeout"}:
        return f"timeout after {settings.llm_timeout:g} s"
    if names & {"APIConnectionError", "ConnectError", "ConnectionError", "ConnectionRefusedError", "RemoteProtocolError"}:
        return "cannot connect"
    if status == 401 or "AuthenticationError" in names:
        return "the server refused the credentials (HTTP 401)"
    if status == 404 or "NotFoundError" in names:
        return "model or endpoint not found (HTTP 404)"
    if status:
        body = getattr(err, "body", None)
        detail = body.get("message") or body.get("detail") or body.get("error") if isinstance(body, dict) else None
        detail = redact(str(detail or ""), settings).strip().replace("\n", " ")[:120]
        return f"HTTP {status}: {detail}" if detail else f"HTTP {status}"
    if isinstance(err, ImportError):
        return f"a package is missing ({redact(str(err), settings)[:120]})"
    msg = first_line(redact(str(err), settings).strip())
    return f"{type(err).__name__}: {msg[:160]}" if msg else type(err).__name__
