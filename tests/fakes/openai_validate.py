"""Request validation of the fake OpenAI Chat Completions API, with the real API's error wording.

Every failure raises `OpenAIError`; its `body()` is OpenAI's error envelope
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .common import is_number, json_type_name
from .openai_errors import (
    OpenAIError,
    article,
    bad_type,
    bad_value,
    check_keys,
    check_name,
    check_range,
    empty_array,
    missing,
    strict_schema_problem,
)

__all__ = ["ALLOWED_PARAMS", "OpenAIError", "message_texts", "validate_chat_request"]

ALLOWED_PARAMS = frozenset(
    {
        "messages", "model", "audio", "frequency_penalty", "function_call", "functions", "logit_bias",
        "logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities", "moderation", "n",
        "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key", "prompt_cache_options",
        "prompt_cache_retention", "reasoning_effort", "response_format", "safety_identifier", "seed",
        "service_tier", "stop", "store", "stream", "stream_options", "temperature", "tool_choice", "tools",
        "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
    }
)  # fmt: skip

ROLES = ("system", "assistant", "user", "function", "tool", "developer")
MESSAGE_KEYS: Mapping[str, frozenset[str]] = {
    "system": frozenset({"role", "content", "name"}),
    "developer": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset({"role", "content", "name", "tool_calls", "refusal", "audio", "function_call"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
    "function": frozenset({"role", "content", "name"}),
}
USER_PART_TYPES = ("text", "image_url", "input_audio", "file")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
# Chat models without reasoning: the real API refuses `reasoning_effort` for them.
NON_REASONING_MODELS = ("gpt-4o", "gpt-4.1", "gpt-4-", "gpt-3.5", "chatgpt-4o")
DATA_URL = re.compile(r"^data:([^;,]*)(;base64)?,(.*)$", re.DOTALL)
IMAGE_MIME = ("image/png", "image/jpeg", "image/jpg", "image/gif", "image/webp")


# --------------------------------------------------------------------------------------------- top level


def validate_chat_request(body: Any) -> None:
    if not isinstance(body, dict):
        raise OpenAIError(
            f"Invalid type for request body: expected an object, but got {article(json_type_name(body))} instead.",
            code="invalid_type",
        )
    for key in body:
        if key not in ALLOWED_PARAMS:
            raise OpenAIError(f"Unrecognized request argument supplied: {key}")
    if body.get("model") is None:
        raise OpenAIError("you must provide a model parameter")
    if not isinstance(body["model"], str):
        raise bad_type("model", "a string", body["model"])
    if "messages" not in body:
        raise missing("messages")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise bad_type("messages", "an array", messages)
    if not messages:
        raise empty_array("messages")

    _validate_scalars(body)
    for index, message in enumerate(messages):
        _validate_message(index, message)
    _validate_tool_sequence(messages)
    tool_names = _validate_tools(body)
    _validate_tool_choice(body, tool_names)
    _validate_response_format(body, messages)


def _validate_scalars(body: Mapping[str, Any]) -> None:
    check_range(body, "temperature", integer=False, low=0, high=2)
    check_range(body, "top_p", integer=False, low=0, high=1)
    check_range(body, "presence_penalty", integer=False, low=-2, high=2)
    check_range(body, "frequency_penalty", integer=False, low=-2, high=2)
    check_range(body, "n", integer=True, low=1, high=128)
    check_range(body, "max_tokens", integer=True, low=1)
    check_range(body, "max_completion_tokens", integer=True, low=1)
    check_range(body, "seed", integer=True)
    check_range(body, "top_logprobs", integer=True, low=0, high=20)
    for key in ("stream", "logprobs", "store", "parallel_tool_calls"):
        if body.get(key) is not None and not isinstance(body[key], bool):
            raise bad_type(key, "a boolean", body[key])
    for key in ("user", "safety_identifier", "prompt_cache_key", "reasoning_effort", "verbosity"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise bad_type(key, "a string", body[key])
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in REASONING_EFFORTS:
            raise bad_value("reasoning_effort", effort, REASONING_EFFORTS)
        if body["model"].startswith(NON_REASONING_MODELS):
            raise OpenAIError(
                "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
                param="reasoning_effort",
                code="unsupported_parameter",
            )
    if body.get("service_tier") is not None and body["service_tier"] not in (
        "auto", "default", "flex", "scale", "priority",
    ):  # fmt: skip
        raise bad_value("service_tier", body["service_tier"], ["auto", "default", "flex", "scale", "priority"])
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, list):
            if len(stop) > 4:
                raise OpenAIError(
                    "Invalid 'stop': array too long. Expected an array with maximum length 4, "
                    f"but got an array with length {len(stop)} instead.",
                    param="stop",
                    code="array_above_max_length",
                )
            for i, item in enumerate(stop):
                if not isinstance(item, str):
                    raise bad_type(f"stop[{i}]", "a string", item)
        elif not isinstance(stop, str):
            raise bad_type("stop", "a string", stop)
    logit_bias = body.get("logit_bias")
    if logit_bias is not None:
        if not isinstance(logit_bias, dict):
            raise bad_type("logit_bias", "an object", logit_bias)
        for token, bias in logit_bias.items():
            if not is_number(bias) or not -100 <= bias <= 100:
                raise OpenAIError(
                    f"Invalid 'logit_bias': the bias for token {token} must be between -100 and 100.",
                    param="logit_bias",
                    code="invalid_value",
                )
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise bad_type("metadata", "an object", metadata)
        for key, value in metadata.items():
            if not isinstance(value, str):
                raise bad_type(f"metadata.{key}", "a string", value)
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise bad_type("stream_options", "an object", options)
        check_keys(options, {"include_usage", "include_obfuscation"}, "stream_options")
        for key, value in options.items():
            if not isinstance(value, bool):
                raise bad_type(f"stream_options.{key}", "a boolean", value)
        if body.get("stream") is not True:
            raise OpenAIError(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
            )
    modalities = body.get("modalities")
    if modalities is not None:
        if not isinstance(modalities, list):
            raise bad_type("modalities", "an array", modalities)
        for i, item in enumerate(modalities):
            if item not in ("text", "audio"):
                raise bad_value(f"modalities[{i}]", item, ["text", "audio"])


# ---------------------------------------------------------------------------------------------- messages


def _validate_message(index: int, message: Any) -> None:
    p = f"messages[{index}]"
    if not isinstance(message, dict):
        raise bad_type(p, "an object", message)
    if "role" not in message:
        raise missing(f"{p}.role")
    role = message["role"]
    if role not in ROLES:
        raise bad_value(f"{p}.role", role, ROLES)
    check_keys(message, MESSAGE_KEYS[role], p)
    if message.get("name") is not None and not isinstance(message["name"], str):
        raise bad_type(f"{p}.name", "a string", message["name"])

    if role == "assistant":
        _validate_assistant(index, message)
        return
    if role == "tool":
        if "tool_call_id" not in message:
            raise missing(f"{p}.tool_call_id")
        if not isinstance(message["tool_call_id"], str):
            raise bad_type(f"{p}.tool_call_id", "a string", message["tool_call_id"])
    if role == "function" and "name" not in message:
        raise missing(f"{p}.name")
    if "content" not in message:
        raise missing(f"{p}.content")
    content = message["content"]
    if role == "function" and content is None:
        return
    allowed_parts: Sequence[str] = USER_PART_TYPES if role == "user" else ("text",)
    _validate_content(p, role, content, allowed_parts)


def _validate_assistant(index: int, message: Mapping[str, Any]) -> None:
    p = f"messages[{index}]"
    tool_calls = message.get("tool_calls")
    if tool_calls is not None:
        if not isinstance(tool_calls, list):
            raise bad_type(f"{p}.tool_calls", "an array", tool_calls)
        if not tool_calls:
            raise empty_array(f"{p}.tool_calls")
        for j, call in enumerate(tool_calls):
            _validate_tool_call(f"{p}.tool_calls[{j}]", call)
    content = message.get("content")
    if content is None:
        if not tool_calls and message.get("function_call") is None and message.get("refusal") is None:
            raise OpenAIError(
                "Invalid value for 'content': expected a string, got null.",
                param=f"messages.[{index}].content",
            )
        return
    _validate_content(p, "assistant", content, ("text", "refusal"))


def _validate_tool_call(p: str, call: Any) -> None:
    if not isinstance(call, dict):
        raise bad_type(p, "an object", call)
    check_keys(call, {"id", "type", "function", "custom"}, p)
    for key in ("id", "type"):
        if key not in call:
            raise missing(f"{p}.{key}")
    if not isinstance(call["id"], str):
        raise bad_type(f"{p}.id", "a string", call["id"])
    if call["type"] not in ("function", "custom"):
        raise bad_value(f"{p}.type", call["type"], ["function", "custom"])
    if call["type"] == "custom":
        return
    function = call.get("function")
    if function is None:
        raise missing(f"{p}.function")
    if not isinstance(function, dict):
        raise bad_type(f"{p}.function", "an object", function)
    check_keys(function, {"name", "arguments"}, f"{p}.function")
    for key in ("name", "arguments"):
        if key not in function:
            raise missing(f"{p}.function.{key}")
        if not isinstance(function[key], str):
            raise bad_type(f"{p}.function.{key}", "a string", function[key])


def _validate_content(p: str, role: str, content: Any, allowed: Sequence[str]) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise bad_type(f"{p}.content", "one of a string or array of objects", content)
    if not content:
        raise empty_array(f"{p}.content")
    for j, part in enumerate(content):
        pp = f"{p}.content[{j}]"
        if not isinstance(part, dict):
            raise bad_type(pp, "an object", part)
        if "type" not in part:
            raise missing(f"{pp}.type")
        kind = part["type"]
        if kind not in allowed:
            if kind == "image_url" and role != "user":
                raise OpenAIError(
                    f"Invalid '{p}'. Image URLs are only allowed for messages with role 'user', "
                    f"but this message with role '{role}' contains an image URL.",
                    param=p,
                    code="invalid_value",
                )
            raise bad_value(f"{pp}.type", kind, allowed)
        _validate_part(pp, kind, part)


def _validate_part(pp: str, kind: str, part: Mapping[str, Any]) -> None:
    check_keys(part, {"type", kind}, pp)
    if kind in ("text", "refusal"):
        if kind not in part:
            raise missing(f"{pp}.{kind}")
        if not isinstance(part[kind], str):
            raise bad_type(f"{pp}.{kind}", "a string", part[kind])
        return
    inner = part.get(kind)
    if inner is None:
        raise missing(f"{pp}.{kind}")
    if not isinstance(inner, dict):
        raise bad_type(f"{pp}.{kind}", "an object", inner)
    if kind == "image_url":
        check_keys(inner, {"url", "detail"}, f"{pp}.image_url")
        if "url" not in inner:
            raise missing(f"{pp}.image_url.url")
        _validate_image_url(f"{pp}.image_url.url", inner["url"])
        detail = inner.get("detail")
        if detail is not None and detail not in ("auto", "low", "high"):
            raise bad_value(f"{pp}.image_url.detail", detail, ["auto", "low", "high"])
    elif kind == "input_audio":
        check_keys(inner, {"data", "format"}, f"{pp}.input_audio")
        for key in ("data", "format"):
            if key not in inner:
                raise missing(f"{pp}.input_audio.{key}")
        if inner["format"] not in ("wav", "mp3"):
            raise bad_value(f"{pp}.input_audio.format", inner["format"], ["wav", "mp3"])
        if not isinstance(inner["data"], str) or not _is_base64(inner["data"]):
            raise OpenAIError(
                f"Invalid '{pp}.input_audio.data'. Expected base64-encoded audio data.",
                param=f"{pp}.input_audio.data",
                code="invalid_value",
            )
    elif kind == "file":
        check_keys(inner, {"file_data", "file_id", "filename"}, f"{pp}.file")
        if "file_data" not in inner and "file_id" not in inner:
            raise missing(f"{pp}.file.file_id")


def _is_base64(data: str) -> bool:
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return False
    return bool(data)


def _validate_image_url(param: str, url: Any) -> None:
    if not isinstance(url, str):
        raise bad_type(param, "a string", url)
    if url.startswith(("http://", "https://")) and len(url) > len("https://"):
        return
    match = DATA_URL.match(url)
    if match is None:
        raise OpenAIError(
            f"Invalid '{param}'. Expected a valid URL, but got a value with an invalid format.",
            param=param,
            code="invalid_value",
        )
    mime, is_b64, data = match.groups()
    if mime.lower() not in IMAGE_MIME:
        raise OpenAIError(
            f"Invalid '{param}'. Expected a base64-encoded data URL with an image MIME type "
            f"(e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got unsupported MIME type '{mime}'.",
            param=param,
            code="invalid_value",
        )
    if not is_b64 or not _is_base64(data):
        raise OpenAIError(
            "You uploaded an unsupported image. Please make sure your image is valid.",
            param=param,
            code="invalid_image_format",
        )


def _validate_tool_sequence(messages: Sequence[Mapping[str, Any]]) -> None:
    """Tool messages must answer the tool_calls of the assistant message right before them, all of them."""
    call_ids: list[str] | None = None  # ids of the assistant message the current tool block answers
    pending: list[str] = []
    owner = -1
    for index, message in enumerate(messages):
        role = message["role"]
        if role == "tool":
            if call_ids is None:
                raise OpenAIError(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                    "with 'tool_calls'.",
                    param=f"messages.[{index}].role",
                )
            call_id = message["tool_call_id"]
            if call_id not in call_ids:
                raise OpenAIError(
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' of previous message.",
                    param=f"messages.[{index}].tool_call_id",
                )
            if call_id in pending:
                pending.remove(call_id)
            continue
        _raise_unanswered(pending, owner)
        if role == "assistant" and message.get("tool_calls"):
            call_ids = [call["id"] for call in message["tool_calls"]]
            pending = list(call_ids)
            owner = index
        else:
            call_ids = None
    _raise_unanswered(pending, owner)


def _raise_unanswered(pending: Sequence[str], owner: int) -> None:
    if pending:
        raise OpenAIError(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(pending)}",
            param=f"messages.[{owner}].role",
        )


# ------------------------------------------------------------------------- tools, tool_choice, formats


def _validate_tools(body: Mapping[str, Any]) -> list[str]:
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise bad_type("tools", "an array", tools)
    if not tools:
        raise empty_array("tools")
    names: list[str] = []
    for i, tool in enumerate(tools):
        p = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise bad_type(p, "an object", tool)
        if "type" not in tool:
            raise missing(f"{p}.type")
        if tool["type"] not in ("function", "custom"):
            raise bad_value(f"{p}.type", tool["type"], ["function", "custom"])
        kind = tool["type"]
        check_keys(tool, {"type", kind}, p)
        spec = tool.get(kind)
        if spec is None:
            raise missing(f"{p}.{kind}")
        if not isinstance(spec, dict):
            raise bad_type(f"{p}.{kind}", "an object", spec)
        allowed = {"name", "description", "parameters", "strict"} if kind == "function" else {
            "name", "description", "format",
        }  # fmt: skip
        check_keys(spec, allowed, f"{p}.{kind}")
        if "name" not in spec:
            raise missing(f"{p}.{kind}.name")
        name = check_name(f"{p}.{kind}.name", spec["name"])
        if spec.get("description") is not None and not isinstance(spec["description"], str):
            raise bad_type(f"{p}.{kind}.description", "a string", spec["description"])
        if kind == "function":
            _validate_function_parameters(p, name, spec)
        names.append(name)
    return names


def _validate_function_parameters(p: str, name: str, spec: Mapping[str, Any]) -> None:
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise bad_type(f"{p}.function.strict", "a boolean", strict)
    params = spec.get("parameters")
    if params is None:
        return
    if not isinstance(params, dict):
        raise bad_type(f"{p}.function.parameters", "an object", params)
    kind = params.get("type")
    if kind is not None and kind != "object":
        raise OpenAIError(
            f"Invalid schema for function '{name}': schema must be a JSON Schema of 'type: \"object\"', "
            f"got 'type: \"{kind}\"'.",
            param=f"{p}.function.parameters",
            code="invalid_function_parameters",
        )
    if strict:
        problem = strict_schema_problem(params, ())
        if problem:
            raise OpenAIError(
                f"Invalid schema for function '{name}': {problem}",
                param=f"{p}.function.parameters",
                code="invalid_function_parameters",
            )


def _validate_tool_choice(body: Mapping[str, Any], tool_names: Sequence[str]) -> None:
    has_tools = body.get("tools") is not None
    if body.get("parallel_tool_calls") is not None and not has_tools:
        raise OpenAIError(
            "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' are "
            "specified.",
            param="parallel_tool_calls",
        )
    choice = body.get("tool_choice")
    if choice is None:
        return
    if not has_tools:
        raise OpenAIError(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            param="tool_choice",
        )
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise bad_value("tool_choice", choice, ["none", "auto", "required"])
        return
    if not isinstance(choice, dict):
        raise bad_type("tool_choice", "one of a string or object", choice)
    kind = choice.get("type")
    if kind not in ("function", "custom", "allowed_tools"):
        raise bad_value("tool_choice.type", kind, ["function", "custom", "allowed_tools"])
    if kind == "allowed_tools":
        return
    check_keys(choice, {"type", kind}, "tool_choice")
    spec = choice.get(kind)
    if not isinstance(spec, dict) or "name" not in spec:
        raise missing(f"tool_choice.{kind}.name")
    if spec["name"] not in tool_names:
        raise OpenAIError(
            f"Invalid value for 'tool_choice': function '{spec['name']}' not found in 'tools'.",
            param="tool_choice",
        )


def _validate_response_format(body: Mapping[str, Any], messages: Sequence[Mapping[str, Any]]) -> None:
    fmt = body.get("response_format")
    if fmt is None:
        return
    if not isinstance(fmt, dict):
        raise bad_type("response_format", "an object", fmt)
    kind = fmt.get("type")
    if kind is None:
        raise missing("response_format.type")
    if kind not in ("json_object", "json_schema", "text"):
        raise bad_value("response_format.type", kind, ["json_object", "json_schema", "text"])
    check_keys(fmt, {"type", "json_schema"} if kind == "json_schema" else {"type"}, "response_format")
    if kind == "json_object" and not any("json" in text.lower() for text in message_texts(messages)):
        raise OpenAIError(
            "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
            param="messages",
        )
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if spec is None:
            raise missing("response_format.json_schema")
        if not isinstance(spec, dict):
            raise bad_type("response_format.json_schema", "an object", spec)
        check_keys(spec, {"name", "description", "schema", "strict"}, "response_format.json_schema")
        if "name" not in spec:
            raise missing("response_format.json_schema.name")
        name = check_name("response_format.json_schema.name", spec["name"])
        schema = spec.get("schema")
        if schema is not None and not isinstance(schema, dict):
            raise bad_type("response_format.json_schema.schema", "an object", schema)
        if spec.get("strict") and isinstance(schema, dict):
            problem = strict_schema_problem(schema, ())
            if problem:
                raise OpenAIError(
                    f"Invalid schema for response_format '{name}': {problem}",
                    param="response_format",
                    code="invalid_json_schema",
                )


def message_texts(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """All text in the messages (string contents and text parts)."""
    texts: list[str] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return texts
