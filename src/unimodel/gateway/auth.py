"""Reading the caller's gateway key from `Authorization`, in every form the clients send."""

from __future__ import annotations

from collections.abc import Mapping

_SCHEMES = ("key ", "bearer ")


def gateway_key(headers: Mapping[str, str]) -> str | None:
    """The key from `Authorization: Key <k>` (Bytez SDKs), `Bearer <k>` (OpenAI clients) or a bare `<k>` (curl)."""
    value = headers.get("authorization", "").strip()
    if not value or value.lower() in ("key", "bearer"):
        return None
    lowered = value[:7].lower()
    for scheme in _SCHEMES:
        if lowered.startswith(scheme):
            return value[len(scheme) :].strip() or None
    return value
