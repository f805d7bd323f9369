"""Request validation of the fake Anthropic Messages API, with the real API's error wording
(pydantic-style ``path: message`` strings, ``Extra inputs are not permitted`` for unknown fields).

Every failure raises `AnthropicError`; the app renders it as
``{"type": "error", "error": {"type", "message"}, "request_id"}``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .common import is_int, is_number

__all__ = [
    "ALLOWED_PARAMS",
    "COUNT_TOKENS_PARAMS",
    "AnthropicError",
    "Turn",
    "merge_turns",
    "thinking_enabled",
    "validate_count_tokens_request",
    "validate_messages_request",
]

ALLOWED_PARAMS = frozenset(
    {
        "model", "messages", "max_tokens", "metadata", "stop_sequences", "stream", "system", "temperature",
        "top_k", "top_p", "tools", "tool_choice", "thinking", "service_tier", "container", "cache_control",
        "inference_geo", "output_config", "diagnostics", "speed", "user_profile_id", "workspace_id",
    }
)  # fmt: skip
# POST /v1/messages/count_tokens takes what the model reads, nothing about generating (no max_tokens, stream, …).
COUNT_TOKENS_PARAMS = frozenset(
    {
        "model", "messages", "system", "tools", "tool_choice", "thinking", "cache_control", "output_config",
        "speed", "user_profile_id", "workspace_id",
    }
)  # fmt: skip
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
BLOCK_TAGS = (
    "text", "image", "document", "search_result", "thinking", "redacted_thinking", "tool_use", "tool_result",
    "server_tool_use", "web_search_tool_result",
)  # fmt: skip
BLOCK_KEYS: Mapping[str, frozenset[str]] = {
    "text": frozenset({"type", "text", "cache_control", "citations"}),
    "image": frozenset({"type", "source", "cache_control", "transformations"}),
    "document": frozenset({"type", "source", "cache_control", "citations", "context", "title"}),
    "tool_use": frozenset({"type", "id", "name", "input", "cache_control", "caller", "toolset_name"}),
    "tool_result": frozenset({"type", "tool_use_id", "content", "is_error", "cache_control", "toolset_name"}),
    "thinking": frozenset({"type", "thinking", "signature"}),
    "redacted_thinking": frozenset({"type", "data"}),
}
TOOL_KEYS = frozenset(
    {
        "name", "description", "input_schema", "cache_control", "type", "strict", "input_examples",
        "defer_loading", "allowed_callers", "eager_input_streaming",
    }
)  # fmt: skip
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
SERVER_TOOL_TYPE = re.compile(r"^[a-z_]+_\d{8}$")
ALL_NONEMPTY = "all messages must have non-empty content except for the optional final assistant message"


class AnthropicError(Exception):
    def __init__(self, message: str, *, status: int = 400, type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type


def _err(path: str, message: str) -> AnthropicError:
    return AnthropicError(f"{path}: {message}" if path else message)


def extra(path: str) -> AnthropicError:
    return _err(path, "Extra inputs are not permitted")


def required(path: str) -> AnthropicError:
    return _err(path, "Field required")


def check_extra(obj: Mapping[str, Any], allowed: frozenset[str] | set[str], prefix: str) -> None:
    for key in obj:
        if key not in allowed:
            raise extra(f"{prefix}.{key}" if prefix else key)


def want_str(path: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _err(path, "Input should be a valid string")
    return value


def want_dict(path: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _err(path, "Input should be a valid dictionary")
    return value


def want_list(path: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise _err(path, "Input should be a valid list")
    return value


def _bound(path: str, value: Any, *, integer: bool, low: float | None = None, high: float | None = None) -> None:
    if integer and not is_int(value):
        raise _err(path, "Input should be a valid integer")
    if not integer and not is_number(value):
        raise _err(path, "Input should be a valid number")
    if low is not None and value < low:
        raise _err(path, f"Input should be greater than or equal to {low:g}")
    if high is not None and value > high:
        raise _err(path, f"Input should be less than or equal to {high:g}")


def _tag_error(path: str, tag: Any, tags: Sequence[str]) -> AnthropicError:
    listed = ", ".join(f"'{t}'" for t in tags)
    return _err(path, f"Input tag '{tag}' found using 'type' does not match any of the expected tags: {listed}")


# --------------------------------------------------------------------------------------------- top level


def thinking_enabled(body: Mapping[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def validate_count_tokens_request(body: Any) -> None:
    """`POST /v1/messages/count_tokens`: the prompt's fields validated as for a message, generation fields refused."""
    if not isinstance(body, dict):
        raise AnthropicError("Input should be a valid dictionary")
    check_extra(body, COUNT_TOKENS_PARAMS, "")
    for key in ("model", "messages"):
        if key not in body:
            raise required(key)
    want_str("model", body["model"])
    _validate_prompt(body)


def validate_messages_request(body: Any) -> None:
    if not isinstance(body, dict):
        raise AnthropicError("Input should be a valid dictionary")
    check_extra(body, ALLOWED_PARAMS, "")
    for key in ("model", "max_tokens", "messages"):
        if key not in body:
            raise required(key)
    want_str("model", body["model"])
    _bound("max_tokens", body["max_tokens"], integer=True, low=1)
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise _err("stream", "Input should be a valid boolean")
    for key, high in (("temperature", 1.0), ("top_p", 1.0)):
        if body.get(key) is not None:
            _bound(key, body[key], integer=False, low=0, high=high)
    if body.get("top_k") is not None:
        _bound("top_k", body["top_k"], integer=True, low=0)
    _validate_stop_sequences(body.get("stop_sequences"))
    _validate_metadata(body.get("metadata"))
    if body.get("service_tier") is not None and body["service_tier"] not in ("auto", "standard_only"):
        raise _err("service_tier", "Input should be 'auto' or 'standard_only'")
    _validate_prompt(body)


def _validate_prompt(body: Mapping[str, Any]) -> None:
    """What a message and a token count share: system, tools, tool choice, thinking and the messages."""
    _validate_system(body.get("system"))
    tool_names = _validate_tools(body.get("tools"))
    _validate_tool_choice(body.get("tool_choice"), tool_names)
    _validate_thinking(body)
    messages = want_list("messages", body["messages"])
    if not messages:
        raise _err("messages", "at least one message is required")
    for index, message in enumerate(messages):
        _validate_message(index, message, is_last=index == len(messages) - 1)
    _validate_turns(merge_turns(messages))


def _validate_stop_sequences(stops: Any) -> None:
    if stops is None:
        return
    for i, stop in enumerate(want_list("stop_sequences", stops)):
        want_str(f"stop_sequences.{i}", stop)
        if not stop.strip():
            raise _err("stop_sequences", "each stop sequence must contain non-whitespace")


def _validate_metadata(metadata: Any) -> None:
    if metadata is None:
        return
    check_extra(want_dict("metadata", metadata), {"user_id"}, "metadata")
    user_id = metadata.get("user_id")
    if user_id is not None and len(want_str("metadata.user_id", user_id)) > 256:
        raise _err("metadata.user_id", "String should have at most 256 characters")


def _validate_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise _err("system", "Input should be a valid string")
    for i, block in enumerate(system):
        path = f"system.{i}"
        want_dict(path, block)
        if block.get("type") != "text":
            raise _err(f"{path}.type", "Input should be 'text'")
        check_extra(block, BLOCK_KEYS["text"], path)
        if "text" not in block:
            raise required(f"{path}.text")
        if not want_str(f"{path}.text", block["text"]):
            raise _err("system", "text content blocks must be non-empty")


def _validate_tools(tools: Any) -> list[str]:
    if tools is None:
        return []
    names: list[str] = []
    for i, tool in enumerate(want_list("tools", tools)):
        want_dict(f"tools.{i}", tool)
        kind = tool.get("type")
        if kind is not None and kind != "custom":
            if not isinstance(kind, str) or not SERVER_TOOL_TYPE.match(kind):
                raise _tag_error(f"tools.{i}", kind, ["custom", "bash_20250124", "web_search_20250305", "…"])
            names.append(want_str(f"tools.{i}.{kind}.name", tool.get("name")))
            continue
        path = f"tools.{i}.custom"
        check_extra(tool, TOOL_KEYS, path)
        for key in ("name", "input_schema"):
            if key not in tool:
                raise required(f"{path}.{key}")
        name = want_str(f"{path}.name", tool["name"])
        if not TOOL_NAME.match(name):
            raise _err(f"{path}.name", f"String should match pattern '{TOOL_NAME.pattern}'")
        if tool.get("description") is not None:
            want_str(f"{path}.description", tool["description"])
        schema = want_dict(f"{path}.input_schema", tool["input_schema"])
        if "type" not in schema:
            raise required(f"{path}.input_schema.type")
        if schema["type"] != "object":
            raise _err(f"{path}.input_schema.type", "Input should be 'object'")
        if schema.get("properties") is not None:
            want_dict(f"{path}.input_schema.properties", schema["properties"])
        names.append(name)
    if len(set(names)) != len(names):
        raise _err("tools", "Tool names must be unique.")
    return names


def _validate_tool_choice(choice: Any, tool_names: Sequence[str]) -> None:
    if choice is None:
        return
    want_dict("tool_choice", choice)
    kind = choice.get("type")
    if kind not in ("auto", "any", "tool", "none"):
        raise _tag_error("tool_choice", kind, ["auto", "any", "tool", "none"])
    allowed = {"type", "name", "disable_parallel_tool_use"} if kind == "tool" else {"type"}
    if kind in ("auto", "any"):
        allowed.add("disable_parallel_tool_use")
    check_extra(choice, allowed, f"tool_choice.{kind}")
    if choice.get("disable_parallel_tool_use") is not None and not isinstance(
        choice["disable_parallel_tool_use"], bool
    ):
        raise _err(f"tool_choice.{kind}.disable_parallel_tool_use", "Input should be a valid boolean")
    if kind == "tool":
        if "name" not in choice:
            raise required("tool_choice.tool.name")
        name = want_str("tool_choice.tool.name", choice["name"])
        if name not in tool_names:
            raise _err("tool_choice", f"Tool '{name}' not found in tools")
    if kind in ("any", "tool") and not tool_names:
        raise _err("tool_choice", f"tool_choice.type '{kind}' requires tools to be provided")


def _validate_thinking(body: Mapping[str, Any]) -> None:
    thinking = body.get("thinking")
    if thinking is None:
        return
    want_dict("thinking", thinking)
    kind = thinking.get("type")
    if kind not in ("enabled", "disabled", "adaptive", "between_tools"):
        raise _tag_error("thinking", kind, ["enabled", "disabled", "adaptive", "between_tools"])
    if kind == "enabled":
        check_extra(thinking, {"type", "budget_tokens", "display"}, "thinking.enabled")
        if "budget_tokens" not in thinking:
            raise required("thinking.enabled.budget_tokens")
        _bound("thinking.enabled.budget_tokens", thinking["budget_tokens"], integer=True, low=1024)
        if "max_tokens" in body and body["max_tokens"] <= thinking["budget_tokens"]:
            raise AnthropicError("`max_tokens` must be greater than `thinking.budget_tokens`.")
    if not thinking_enabled(body):
        return
    if body.get("temperature") is not None and body["temperature"] != 1:
        raise AnthropicError("`temperature` may only be set to 1 when thinking is enabled.")
    if body.get("top_k") is not None:
        raise AnthropicError("`top_k` may not be set when thinking is enabled.")
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        raise AnthropicError("Thinking may not be enabled when tool_choice forces tool use.")


# ---------------------------------------------------------------------------------------------- messages


def _validate_message(index: int, message: Any, *, is_last: bool) -> None:
    path = f"messages.{index}"
    want_dict(path, message)
    if "role" not in message:
        raise required(f"{path}.role")
    role = message["role"]
    if role == "system":
        raise _err(
            "messages",
            'Unexpected role "system". The Messages API accepts a top-level `system` parameter, not "system" '
            "as an input message role.",
        )
    if role not in ("user", "assistant"):
        raise _err(f"{path}.role", "Input should be 'user' or 'assistant'")
    check_extra(message, {"role", "content"}, path)
    if "content" not in message:
        raise required(f"{path}.content")
    content = message["content"]
    final_assistant = is_last and role == "assistant"
    if isinstance(content, str):
        if not content and not final_assistant:
            raise _err(path, ALL_NONEMPTY)
        if final_assistant and content != content.rstrip():
            raise _err("messages", "final assistant content cannot end with trailing whitespace")
        return
    blocks = want_list(f"{path}.content", content)
    if not blocks and not final_assistant:
        raise _err(path, ALL_NONEMPTY)
    for j, block in enumerate(blocks):
        _validate_block(f"{path}.content.{j}", role, block)
    last = blocks[-1] if blocks else None
    if final_assistant and last is not None and last["type"] == "text" and last["text"] != last["text"].rstrip():
        raise _err("messages", "final assistant content cannot end with trailing whitespace")


def _validate_block(path: str, role: str, block: Any) -> None:
    want_dict(path, block)
    kind = block.get("type")
    if kind is None:
        raise required(f"{path}.type")
    if kind not in BLOCK_TAGS:
        raise _tag_error(path, kind, BLOCK_TAGS)
    if kind in BLOCK_KEYS:
        check_extra(block, BLOCK_KEYS[kind], f"{path}.{kind}")
    if kind == "text":
        if "text" not in block:
            raise required(f"{path}.text.text")
        if not want_str(f"{path}.text.text", block["text"]):
            raise _err("messages", "text content blocks must be non-empty")
    elif kind == "image":
        _validate_image(f"{path}.image", block)
    elif kind == "document":
        if "source" not in block:
            raise required(f"{path}.document.source")
        want_dict(f"{path}.document.source", block["source"])
    elif kind == "tool_use":
        if role != "assistant":
            raise _err(path, "`tool_use` blocks can only be in `assistant` messages")
        for key in ("id", "name", "input"):
            if key not in block:
                raise required(f"{path}.tool_use.{key}")
        want_str(f"{path}.tool_use.id", block["id"])
        want_str(f"{path}.tool_use.name", block["name"])
        want_dict(f"{path}.tool_use.input", block["input"])
    elif kind == "tool_result":
        if role != "user":
            raise _err(path, "`tool_result` blocks can only be in `user` messages")
        _validate_tool_result(f"{path}.tool_result", block)
    elif kind in ("thinking", "redacted_thinking"):
        if role != "assistant":
            raise _err(path, f"`{kind}` blocks can only be in `assistant` messages")
        for key in ("thinking", "signature") if kind == "thinking" else ("data",):
            if key not in block:
                raise required(f"{path}.{kind}.{key}")
            want_str(f"{path}.{kind}.{key}", block[key])


def _validate_image(path: str, block: Mapping[str, Any]) -> None:
    if "source" not in block:
        raise required(f"{path}.source")
    source = want_dict(f"{path}.source", block["source"])
    kind = source.get("type")
    if kind == "base64":
        check_extra(source, {"type", "media_type", "data"}, f"{path}.source.base64")
        for key in ("media_type", "data"):
            if key not in source:
                raise required(f"{path}.source.base64.{key}")
        if source["media_type"] not in IMAGE_TYPES:
            raise _err(
                f"{path}.source.base64.media_type",
                "Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'",
            )
        data = want_str(f"{path}.source.base64.data", source["data"])
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise _err(f"{path}.source.base64.data", "invalid base64 data") from None
    elif kind == "url":
        check_extra(source, {"type", "url"}, f"{path}.source.url")
        if "url" not in source:
            raise required(f"{path}.source.url.url")
        url = want_str(f"{path}.source.url.url", source["url"])
        if not url.startswith(("https://", "http://")):
            raise _err(f"{path}.source.url.url", "URL must use the http or https scheme")
    elif kind == "file":
        if "file_id" not in source:
            raise required(f"{path}.source.file.file_id")
    else:
        raise _tag_error(f"{path}.source", kind, ["base64", "url", "file"])


def _validate_tool_result(path: str, block: Mapping[str, Any]) -> None:
    if "tool_use_id" not in block:
        raise required(f"{path}.tool_use_id")
    want_str(f"{path}.tool_use_id", block["tool_use_id"])
    if block.get("is_error") is not None and not isinstance(block["is_error"], bool):
        raise _err(f"{path}.is_error", "Input should be a valid boolean")
    content = block.get("content")
    if content is None or isinstance(content, str):
        return
    for k, inner in enumerate(want_list(f"{path}.content", content)):
        inner_path = f"{path}.content.{k}"
        want_dict(inner_path, inner)
        kind = inner.get("type")
        if kind not in ("text", "image", "document", "search_result"):
            raise _tag_error(inner_path, kind, ["text", "image", "search_result", "document"])
        if kind == "text":
            if not want_str(f"{inner_path}.text.text", inner.get("text")):
                raise _err("messages", "text content blocks must be non-empty")
        elif kind == "image":
            _validate_image(f"{inner_path}.image", inner)


@dataclass
class Turn:
    """Consecutive messages of one role, merged as the real API does."""

    role: str
    indices: list[int] = field(default_factory=list)  # original message indices
    blocks: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)  # (message, block, block)


def merge_turns(messages: Sequence[Mapping[str, Any]]) -> list[Turn]:
    turns: list[Turn] = []
    for index, message in enumerate(messages):
        if not turns or turns[-1].role != message["role"]:
            turns.append(Turn(message["role"]))
        turn = turns[-1]
        turn.indices.append(index)
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        turn.blocks.extend((index, j, block) for j, block in enumerate(blocks))
    return turns


def _validate_turns(turns: Sequence[Turn]) -> None:
    if turns[0].role != "user":
        raise _err("messages", 'first message must use the "user" role')
    for t, turn in enumerate(turns):
        if turn.role == "user":
            previous = turns[t - 1] if t > 0 else None
            uses = {b["id"] for _, _, b in previous.blocks if b["type"] == "tool_use"} if previous else set()
            for m, j, block in turn.blocks:
                if block["type"] == "tool_result" and block["tool_use_id"] not in uses:
                    raise _err(
                        f"messages.{m}.content.{j}",
                        f"unexpected `tool_use_id` found in `tool_result` blocks: {block['tool_use_id']}. Each "
                        "`tool_result` block must have a corresponding `tool_use` block in the previous message.",
                    )
            continue
        ids = [b["id"] for _, _, b in turn.blocks if b["type"] == "tool_use"]
        following = turns[t + 1] if t + 1 < len(turns) else None
        answered = (
            {b["tool_use_id"] for _, _, b in following.blocks if b["type"] == "tool_result"} if following else set()
        )
        missing = [i for i in ids if i not in answered]
        if missing:
            raise _err(
                f"messages.{turn.indices[-1] + 1 if following else turn.indices[-1]}",
                f"`tool_use` ids were found without `tool_result` blocks immediately after: {', '.join(missing)}. "
                "Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
            )
