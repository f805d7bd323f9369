"""The error envelope of the fake OpenAI API and builders for the real API's recurring error messages
(``Missing required parameter``, ``Invalid type for``, ``Unknown parameter``, range and pattern errors),
plus the structured-outputs ("strict") schema rules."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .common import is_int, is_number, json_type_name

__all__ = [
    "NAME_PATTERN",
    "OpenAIError",
    "article",
    "bad_type",
    "bad_value",
    "check_keys",
    "check_name",
    "check_range",
    "empty_array",
    "missing",
    "strict_schema_problem",
    "unknown",
]

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]+$")


class OpenAIError(Exception):
    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


# ----------------------------------------------------------------------------------------- error builders


def article(kind: str) -> str:
    """How OpenAI names a JSON type in messages: 'an integer', 'a decimal', …"""
    return {
        "integer": "an integer",
        "array": "an array",
        "object": "an object",
        "null": "null",
        "number": "a decimal",
        "string": "a string",
        "boolean": "a boolean",
    }[kind]


def missing(param: str) -> OpenAIError:
    return OpenAIError(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def unknown(param: str) -> OpenAIError:
    return OpenAIError(f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter")


def bad_type(param: str, expected: str, value: object) -> OpenAIError:
    got = article(json_type_name(value))
    return OpenAIError(
        f"Invalid type for '{param}': expected {expected}, but got {got} instead.", param=param, code="invalid_type"
    )


def bad_value(param: str, value: object, supported: Sequence[str]) -> OpenAIError:
    quoted = [f"'{s}'" for s in supported]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + ", and " + quoted[-1]
    return OpenAIError(f"Invalid value: '{value}'. Supported values are: {listed}.", param=param, code="invalid_value")


def empty_array(param: str) -> OpenAIError:
    return OpenAIError(
        f"Invalid '{param}': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        param=param,
        code="empty_array",
    )


def _num(value: float) -> str:
    return json.dumps(value)


def check_range(
    body: Mapping[str, Any], key: str, *, integer: bool, low: float | None = None, high: float | None = None
) -> None:
    value = body.get(key)
    if value is None:
        return
    if integer and not is_int(value):
        if is_number(value) and float(value).is_integer():
            value = int(value)
        else:
            raise bad_type(key, "an integer", value)
    if not integer and not is_number(value):
        raise bad_type(key, "a decimal", value)
    word = "integer" if integer else "decimal"
    if low is not None and value < low:
        raise OpenAIError(
            f"Invalid '{key}': {word} below minimum value. Expected a value >= {_num(low)}, "
            f"but got {_num(value)} instead.",
            param=key,
            code=f"{word}_below_min_value",
        )
    if high is not None and value > high:
        raise OpenAIError(
            f"Invalid '{key}': {word} above maximum value. Expected a value <= {_num(high)}, "
            f"but got {_num(value)} instead.",
            param=key,
            code=f"{word}_above_max_value",
        )


def check_keys(obj: Mapping[str, Any], allowed: frozenset[str] | set[str], prefix: str) -> None:
    for key in obj:
        if key not in allowed:
            raise unknown(f"{prefix}.{key}")


def check_name(param: str, value: object, max_len: int = 64) -> str:
    if not isinstance(value, str):
        raise bad_type(param, "a string", value)
    if len(value) > max_len:
        raise OpenAIError(
            f"Invalid '{param}': string too long. Expected a string with maximum length {max_len}, "
            f"but got a string with length {len(value)} instead.",
            param=param,
            code="string_above_max_length",
        )
    if not NAME_PATTERN.match(value):
        raise OpenAIError(
            f"Invalid '{param}': string does not match pattern. Expected a string that matches the pattern "
            f"'{NAME_PATTERN.pattern}'.",
            param=param,
            code="invalid_value",
        )
    return value


def strict_schema_problem(schema: Any, context: tuple[str, ...]) -> str | None:
    """Structured-outputs rules: every object has additionalProperties false and requires all its keys."""
    if not isinstance(schema, dict):
        return None
    ctx = "(" + ", ".join(f"'{c}'" for c in context) + ("," if len(context) == 1 else "") + ")"
    props = schema.get("properties")
    if schema.get("type") == "object" or isinstance(props, dict):
        if schema.get("additionalProperties") is not False:
            return f"In context={ctx}, 'additionalProperties' is required to be supplied and to be false."
        if isinstance(props, dict):
            required = schema.get("required")
            for key in props:
                if not isinstance(required, list) or key not in required:
                    return (
                        f"In context={ctx}, 'required' is required to be supplied and to be an array including "
                        f"every key in properties. Missing '{key}'."
                    )
            for key, sub in props.items():
                found = strict_schema_problem(sub, (*context, "properties", key))
                if found:
                    return found
    items = schema.get("items")
    if items is not None:
        return strict_schema_problem(items, (*context, "items"))
    for key in ("anyOf", "$defs", "definitions"):
        group = schema.get(key)
        members = group.items() if isinstance(group, dict) else enumerate(group or [])
        for name, sub in members:
            found = strict_schema_problem(sub, (*context, key, str(name)))
            if found:
                return found
    return None
