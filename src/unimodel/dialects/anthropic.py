"""Anthropic's Messages API vocabulary, in both directions: the provider adapter reads Anthropic's words into the
canonical form (providers/anthropic.py); the Anthropic surface writes canonical values as Anthropic's words
(frontends/anthropic_messages.py)."""

from __future__ import annotations

from typing import Any

from ..protocol import FinishReason, Usage

API_VERSION = "2023-06-01"

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}
# The canonical reason as Anthropic says it (`stop` after a stop sequence is told apart by the caller).
ANTHROPIC_STOP_REASONS: dict[FinishReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "error": "end_turn",
    "other": "end_turn",
}

# The HTTP status each error type has when Anthropic answers it as a response; an `error` event mid-stream
# carries only the type.
ERROR_STATUSES = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def stop_reason(raw: str | None) -> FinishReason:
    """Anthropic's stop reason in the canonical form."""
    return STOP_REASONS.get(raw or "end_turn", "other")


def error_type(status: int) -> str:
    """The Anthropic error type of an HTTP status (the reverse of ERROR_STATUSES, plus the statuses between)."""
    if status in (408, 504):
        return "timeout_error"
    if status in (503, 529):
        return "overloaded_error"
    if status >= 500:
        return "api_error"
    return _ERROR_TYPES.get(status, "invalid_request_error")


_ERROR_TYPES = {status: kind for kind, status in ERROR_STATUSES.items() if status < 500}


def parse_usage(usage: Any) -> Usage:
    out = Usage()
    merge_usage(out, usage)
    return out


def merge_usage(out: Usage, usage: Any) -> None:
    """Anthropic counts cached input apart from input_tokens; canonical input includes it."""
    if not isinstance(usage, dict):
        return
    cache_read = usage.get("cache_read_input_tokens") or 0
    cache_write = usage.get("cache_creation_input_tokens") or 0
    if usage.get("input_tokens") is not None:
        out.input_tokens = usage["input_tokens"] + cache_read + cache_write
        out.cached_input_tokens = cache_read if "cache_read_input_tokens" in usage else out.cached_input_tokens
    if usage.get("output_tokens") is not None:
        out.output_tokens = usage["output_tokens"]


def usage_json(usage: Usage) -> dict[str, Any]:
    """Canonical usage as Anthropic counts it: cache reads apart from `input_tokens`."""
    cached = usage.cached_input_tokens or 0
    return {
        "input_tokens": max(0, usage.input_tokens - cached),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": usage.output_tokens,
    }
