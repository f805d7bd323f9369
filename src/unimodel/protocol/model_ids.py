"""What a model id may look like. Checked once, where an id enters (the catalog, the config), so that no id can
reach an upstream URL, a log line, a metric or the usage ledger with characters that change what it means there.

An id is slash-separated segments (`openai/gpt-4o`, `Qwen/Qwen2.5-0.5B-Instruct`,
`fireworks/accounts/fireworks/models/llama-v3p1-8b-instruct`) of letters, digits and `- _ . : @ + ~`
(`ft:gpt-4o-mini:org::id`, `claude-3-5-sonnet@20240620`, `openrouter/openai/gpt-4o:free`). No empty, `.` or
`..` segment; no `?`, `#`, `%`, spaces, control characters or backslashes.
"""

from __future__ import annotations

import re

from .errors import InvalidRequest

MAX_LENGTH = 256
_SEGMENT = re.compile(r"[A-Za-z0-9_.:@+~-]+")


def model_id_problem(model_id: str) -> str | None:
    """What is wrong with `model_id` as a model id, or None when it is fine."""
    if not model_id:
        return "a model id cannot be empty"
    if len(model_id) > MAX_LENGTH:
        return f"a model id has at most {MAX_LENGTH} characters"
    for segment in model_id.split("/"):
        if not segment:
            return "a model id has no empty segments (no leading, trailing or double '/')"
        if segment in (".", ".."):
            return "a model id has no '.' or '..' segments"
        if not _SEGMENT.fullmatch(segment):
            bad = next(c for c in segment if not _SEGMENT.fullmatch(c))
            return f"a model id may not contain {bad!a}; it takes letters, digits and - _ . : @ + ~ between '/'"
    return None


def check_model_id(model_id: str, param: str = "model") -> str:
    """`model_id`, or a 400 `invalid_model_id` that says what is wrong with it (and shows it safely)."""
    problem = model_id_problem(model_id)
    if problem is not None:
        shown = ascii(model_id[:80]) + ("…" if len(model_id) > 80 else "")
        raise InvalidRequest(f"{shown} is not a valid model id: {problem}.", code="invalid_model_id", param=param)
    return model_id
