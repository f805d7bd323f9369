"""Request validation of the fake Cohere v2 Chat API (``POST /v2/chat``), with the real API's statuses and wording.

Schema errors (a field the API does not know, a value of the wrong JSON type) are 422s worded like
``unknown field: parameter 'strict' is not a valid field. For proper usage, please refer to …``; semantic errors
(ranges, roles, tool-call ids) are 400s worded ``invalid request: …``. Sources: the API reference
(cohere-openapi.yaml), docs.cohere.com/reference/errors, and error bodies reported from the live API.

Every failure raises `CohereError`; the app renders it as ``{"id": <uuid>, "message": …}``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .common import is_int, is_number, json_type_name

__all__ = ["CohereError", "thinking_enabled", "validate_chat_request"]

REFERENCE = "For proper usage, please refer to https://docs.cohere.com/reference/chat"
TOP_LEVEL = frozenset(
    {
        "model", "messages", "stream", "tools", "strict_tools", "documents", "citation_options", "response_format",
        "safety_mode", "max_tokens", "stop_sequences", "temperature", "seed", "frequency_penalty",
        "presence_penalty", "k", "p", "logprobs", "tool_choice", "thinking", "priority",
    }
)  # fmt: skip
MESSAGE_KEYS: Mapping[str, frozenset[str]] = {
    "user": frozenset({"role", "content"}),
    "system": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls", "tool_plan", "citations"}),
    "tool": frozenset({"role", "tool_call_id", "content"}),
}
TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
MAX_IMAGES = 20


class CohereError(Exception):
    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def invalid(message: str) -> CohereError:
    return CohereError(f"invalid request: {message}")


def unknown_field(name: str) -> CohereError:
    return CohereError(f"unknown field: parameter '{name}' is not a valid field. {REFERENCE}", status=422)


def wrong_type(name: str, value: Any, want: str) -> CohereError:
    got = json_type_name(value)
    return CohereError(
        f"invalid type: parameter '{name}' is of type {got} but should be of type {want}. {REFERENCE}", status=422
    )


def check_keys(obj: Mapping[str, Any], allowed: frozenset[str] | set[str]) -> None:
    for key in obj:
        if key not in allowed:
            raise unknown_field(key)


def want(name: str, value: Any, kind: str) -> Any:
    ok = {
        "string": isinstance(value, str),
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "boolean": isinstance(value, bool),
        "integer": is_int(value),
        "number": is_number(value),
    }[kind]
    if not ok:
        raise wrong_type(name, value, kind)
    return value


def _range(name: str, value: Any, low: float, high: float, *, integer: bool = False) -> None:
    want(name, value, "integer" if integer else "number")
    if not low <= value <= high:
        raise invalid(f"{name} must be between {low:g} and {high:g} inclusive.")


def thinking_enabled(body: Mapping[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") == "enabled"


# --------------------------------------------------------------------------------------------- top level


def validate_chat_request(body: Any) -> None:
    if not isinstance(body, dict):
        raise CohereError("invalid json syntax: the request body must be a JSON object")
    check_keys(body, TOP_LEVEL)
    if not body.get("model"):
        raise CohereError("a model parameter is required for this endpoint.")
    want("model", body["model"], "string")
    if "messages" not in body or body["messages"] is None:
        raise invalid("messages is required.")
    messages = want("messages", body["messages"], "array")
    if not messages:
        raise invalid("messages must contain at least one message.")
    _validate_params(body)
    tool_names = _validate_tools(body.get("tools"))
    has_tools = bool(tool_names)
    has_documents = _validate_documents(body.get("documents"))
    _validate_choice(body, has_tools)
    _validate_response_format(body.get("response_format"), has_tools, has_documents)
    if body.get("safety_mode") is not None:
        if body["safety_mode"] not in ("CONTEXTUAL", "STRICT", "OFF"):
            raise invalid(f"safety_mode must be one of 'CONTEXTUAL', 'STRICT' or 'OFF', got '{body['safety_mode']}'.")
        if has_tools or has_documents:
            raise invalid("safety_mode is not supported in combination with tools or documents.")
    _validate_messages(messages)


def _validate_params(body: Mapping[str, Any]) -> None:
    if body.get("stream") is not None:
        want("stream", body["stream"], "boolean")
    for flag in ("logprobs", "strict_tools"):
        if body.get(flag) is not None:
            want(flag, body[flag], "boolean")
    if body.get("max_tokens") is not None and want("max_tokens", body["max_tokens"], "integer") < 1:
        raise invalid("max_tokens must be greater than 0.")
    if body.get("temperature") is not None:
        _range("temperature", body["temperature"], 0, 1)
    if body.get("p") is not None:
        _range("p", body["p"], 0.01, 0.99)
    if body.get("k") is not None:
        _range("k", body["k"], 0, 500, integer=True)
    for penalty in ("frequency_penalty", "presence_penalty"):
        if body.get(penalty) is not None:
            _range(penalty, body[penalty], 0, 1)
    if body.get("seed") is not None and want("seed", body["seed"], "integer") < 0:
        raise invalid("seed must be a non-negative integer.")
    if body.get("priority") is not None:
        _range("priority", body["priority"], 0, 999, integer=True)
    stops = body.get("stop_sequences")
    if stops is not None:
        for stop in want("stop_sequences", stops, "array"):
            want("stop_sequences", stop, "string")
        if len(stops) > 5:
            raise invalid(f"stop_sequences can contain at most 5 sequences, received {len(stops)}.")
    thinking = body.get("thinking")
    if thinking is not None:
        check_keys(want("thinking", thinking, "object"), {"type", "token_budget"})
        if thinking.get("type") not in ("enabled", "disabled"):
            raise invalid("thinking.type must be one of 'enabled' or 'disabled'.")
        budget = thinking.get("token_budget")
        if budget is not None and want("token_budget", budget, "integer") < 1:
            raise invalid("thinking.token_budget must be a positive integer.")
    options = body.get("citation_options")
    if options is not None:
        check_keys(want("citation_options", options, "object"), {"mode"})
        if options.get("mode") not in (None, "ENABLED", "DISABLED", "FAST", "ACCURATE", "OFF"):
            raise invalid("citation_options.mode must be one of 'ENABLED', 'DISABLED', 'FAST', 'ACCURATE' or 'OFF'.")


def _validate_tools(tools: Any) -> list[str]:
    if tools is None:
        return []
    names: list[str] = []
    for tool in want("tools", tools, "array"):
        check_keys(want("tools", tool, "object"), {"type", "function"})
        if tool.get("type") != "function":
            raise invalid("tool type must be 'function'.")
        fn = want("function", tool.get("function"), "object")
        check_keys(fn, {"name", "description", "parameters"})
        name = want("name", fn.get("name"), "string")
        if not TOOL_NAME.match(name):
            raise invalid(
                "tool names can only contain certain characters (A-Za-z0-9_) and can't begin with a digit "
                f"(provided name: '{name}')."
            )
        if fn.get("description") is not None:
            want("description", fn["description"], "string")
        if "parameters" not in fn:
            raise invalid(f"the '{name}' tool must have parameters.")
        schema = want("parameters", fn["parameters"], "object")
        if schema.get("type", "object") != "object":
            raise CohereError("schema must be an object")
        names.append(name)
    if len(set(names)) != len(names):
        raise invalid("tool names must be unique.")
    return names


def _validate_documents(documents: Any) -> bool:
    if documents is None:
        return False
    for i, doc in enumerate(want("documents", documents, "array")):
        if isinstance(doc, str):
            if not doc.strip():
                raise invalid(f"document at index {i} cannot be empty")
            continue
        check_keys(want("documents", doc, "object"), {"data", "id"})
        if "data" not in doc:
            raise invalid(f"document at index {i} must have data.")
        want("data", doc["data"], "object")
    return bool(documents)


def _validate_choice(body: Mapping[str, Any], has_tools: bool) -> None:
    choice = body.get("tool_choice")
    if choice is None:
        return
    if choice not in ("REQUIRED", "NONE"):
        raise invalid(f"tool_choice must be one of 'REQUIRED' or 'NONE', got '{choice}'.")
    if choice == "REQUIRED" and not has_tools:
        raise invalid("tool_choice 'REQUIRED' can only be used when tools are provided.")


def _validate_response_format(fmt: Any, has_tools: bool, has_documents: bool) -> None:
    if fmt is None:
        return
    check_keys(want("response_format", fmt, "object"), {"type", "json_schema"})
    kind = fmt.get("type")
    if kind not in ("text", "json_object"):
        raise invalid(f"response_format.type must be one of 'text' or 'json_object', got '{kind}'.")
    if kind == "text":
        if fmt.get("json_schema") is not None:
            raise invalid("json_schema must not be specified when the response_format type is 'text'.")
        return
    if has_documents:
        raise invalid("response_format is not supported with RAG.")
    if has_tools:
        raise invalid("response_format is not supported with tools.")
    if fmt.get("json_schema") is not None:
        schema = want("json_schema", fmt["json_schema"], "object")
        if schema.get("type") != "object":
            raise CohereError("schema must be an object")


# ---------------------------------------------------------------------------------------------- messages


def _validate_messages(messages: Sequence[Any]) -> None:
    called: set[str] = set()
    images = 0
    for index, message in enumerate(messages):
        want("messages", message, "object")
        role = message.get("role")
        if role not in MESSAGE_KEYS:
            raise invalid(
                f"invalid role '{role}' in messages at index {index}. Role must be one of the following: "
                "system, user, assistant, tool"
            )
        check_keys(message, MESSAGE_KEYS[role])
        if role == "user":
            images += _validate_user(index, message)
        elif role == "system":
            _validate_system(index, message)
        elif role == "assistant":
            called |= _validate_assistant(index, message, called)
        else:
            _validate_tool(index, message, called)
    if images > MAX_IMAGES:
        raise invalid(f"a maximum of {MAX_IMAGES} images is allowed per request, received {images}.")


def _nonempty(index: int, content: Any) -> None:
    if content is None:
        raise invalid(f"message at index {index} must have content.")
    if isinstance(content, str) and not content.strip():
        raise invalid(f"message at index {index} must be at least 1 token long.")
    if isinstance(content, list) and not content:
        raise invalid(f"message at index {index} must have at least one content block.")


def _validate_user(index: int, message: Mapping[str, Any]) -> int:
    content = message.get("content")
    _nonempty(index, content)
    if isinstance(content, str):
        return 0
    images = 0
    for block in want("content", content, "array"):
        kind = want("content", block, "object").get("type")
        if kind == "text":
            check_keys(block, {"type", "text"})
            want("text", block.get("text"), "string")
        elif kind == "image_url":
            check_keys(block, {"type", "image_url"})
            image = want("image_url", block.get("image_url"), "object")
            check_keys(image, {"url", "detail"})
            _validate_image_url(want("url", image.get("url"), "string"))
            if image.get("detail") not in (None, "auto", "low", "high"):
                raise invalid("image_url.detail must be one of 'auto', 'low' or 'high'.")
            images += 1
        else:
            raise invalid(f"invalid content type '{kind}' in user message at index {index}.")
    return images


def _validate_image_url(url: str) -> None:
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        mime = header.removesuffix(";base64")
        if not sep or not header.endswith(";base64"):
            raise invalid("image data URLs must be base64 encoded: data:<mime type>;base64,<data>.")
        if mime not in IMAGE_TYPES:
            raise invalid(f"unsupported image type '{mime}': supported types are png, jpeg, webp and gif.")
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise invalid("image data URL contains invalid base64 data.") from None
    elif not url.startswith(("http://", "https://")):
        raise invalid("image_url.url must be a base64 data URL or an http(s) URL.")


def _validate_system(index: int, message: Mapping[str, Any]) -> None:
    content = message.get("content")
    _nonempty(index, content)
    if isinstance(content, str):
        return
    for block in want("content", content, "array"):
        check_keys(want("content", block, "object"), {"type", "text"})
        if block.get("type") != "text":
            raise invalid(f"system message at index {index} can only contain text content.")
        want("text", block.get("text"), "string")


def _validate_assistant(index: int, message: Mapping[str, Any], seen: set[str]) -> set[str]:
    content = message.get("content")
    calls = message.get("tool_calls")
    if content is None and not calls:
        raise invalid(f"assistant message at index {index} must have content or tool_calls.")
    if message.get("tool_plan") is not None:
        want("tool_plan", message["tool_plan"], "string")
    if isinstance(content, list):
        for block in content:
            kind = want("content", block, "object").get("type")
            if kind == "text":
                check_keys(block, {"type", "text"})
                want("text", block.get("text"), "string")
            elif kind == "thinking":
                check_keys(block, {"type", "thinking"})
                want("thinking", block.get("thinking"), "string")
            else:
                raise invalid(f"invalid content type '{kind}' in assistant message at index {index}.")
    elif content is not None:
        want("content", content, "string")
    ids: set[str] = set()
    for call in want("tool_calls", calls, "array") if calls is not None else []:
        check_keys(want("tool_calls", call, "object"), {"id", "type", "function"})
        if call.get("type", "function") != "function":
            raise CohereError("tool call must be of type function")
        call_id = want("id", call.get("id"), "string")
        if call_id in ids or call_id in seen:
            raise CohereError("cannot have duplicate tool ids")
        ids.add(call_id)
        fn = want("function", call.get("function"), "object")
        check_keys(fn, {"name", "arguments"})
        want("name", fn.get("name"), "string")
        want("arguments", fn.get("arguments", ""), "string")
    return ids


def _validate_tool(index: int, message: Mapping[str, Any], called: set[str]) -> None:
    call_id = message.get("tool_call_id")
    if not call_id:
        raise CohereError("tool call id must be provided with tool message")
    want("tool_call_id", call_id, "string")
    if call_id not in called:
        raise CohereError("tool call id not found in previous tool calls")
    content = message.get("content")
    if content is None:
        raise invalid(f"tool message at index {index} must have content.")
    if isinstance(content, str):
        return
    for block in want("content", content, "array"):
        kind = want("content", block, "object").get("type")
        if kind == "text":
            check_keys(block, {"type", "text"})
            want("text", block.get("text"), "string")
        elif kind == "document":
            check_keys(block, {"type", "document"})
            document = want("document", block.get("document"), "object")
            check_keys(document, {"data", "id"})
            if "data" not in document:
                raise invalid(f"document in tool message at index {index} must have data.")
            if not isinstance(document["data"], dict | str):
                raise wrong_type("data", document["data"], "object")
        else:
            raise invalid(f"invalid content type '{kind}' in tool message at index {index}.")
