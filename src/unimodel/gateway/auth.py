"""Reading the caller's gateway key from `Authorization` (or `x-api-key`), in every form the clients send."""

from __future__ import annotations

from collections.abc import Mapping

_SCHEMES = ("key ", "bearer ")


def gateway_key(headers: Mapping[str, str]) -> str | None:
    """The key from `Authorization: Key <k>` (Bytez SDKs), `Bearer <k>` (OpenAI and Anthropic SDKs) or a bare `<k>`
    (curl); without `Authorization`, from `x-api-key` (Anthropic's header, which Claude Code sends)."""
    value = headers.get("authorization", "").strip()
    if not value:
        return headers.get("x-api-key", "").strip() or None
    if value.lower() in ("key", "bearer"):
        return None
    lowered = value[:7].lower()
    for scheme in _SCHEMES:
        if lowered.startswith(scheme):
            return value[len(scheme) :].strip() or None
    return value
