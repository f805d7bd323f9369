"""Anthropic Messages API requests, validated once by pydantic and turned into the canonical form.

The Anthropic surface (anthropic_messages.py) decodes with these models for every model but Claude, whose
requests go to Anthropic as they came. So a field only Anthropic's own servers can act on (a server tool, a
`document` block, `container`, …) is refused here with a 400 that names it, never dropped.

Gemini's thought signature on a tool call has no place in Anthropic's `tool_use` block; the surface sends it as a
signed, empty `thinking` block just before the call (clients send thinking blocks back untouched, as Claude needs),
and a request's empty signed thinking block directly before a `tool_use` is read back as that call's signature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator
from pydantic_core import to_json

from ..protocol import (
    ChatRequest,
    GenerationParams,
    ImagePart,
    InvalidRequest,
    Message,
    Part,
    ReasoningPart,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from .wire import invalid_request

# Fields and blocks Anthropic's servers act on for Claude; another model cannot take them.
CLAUDE_ONLY_FIELDS = frozenset(
    {
        "container",
        "context_management",
        "diagnostics",
        "inference_geo",
        "mcp_servers",
        "speed",
        "user_profile_id",
        "workspace_id",
    }
)
CLAUDE_ONLY_BLOCKS = frozenset(
    {
        "document",
        "search_result",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "container_upload",
        "compaction",
    }
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CacheControl(_Strict):
    """A prompt-caching breakpoint: Claude caches up to it; other models cache by themselves or not at all."""

    type: Literal["ephemeral"]
    ttl: Literal["5m", "1h"] | None = None


class TextBlock(_Strict):
    type: Literal["text"]
    text: str = Field(min_length=1)
    cache_control: CacheControl | None = None
    citations: list[dict[str, Any]] | None = None  # a previous answer's citations: kept by Claude, unused elsewhere


class Base64Source(_Strict):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str = Field(min_length=1)


class URLSource(_Strict):
    type: Literal["url"]
    url: str = Field(min_length=1)


class FileSource(_Strict):
    type: Literal["file"]
    file_id: str


def _source_tag(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"{kind}-source" if kind in ("base64", "url", "file") else None


ImageSource = Annotated[
    Annotated[Base64Source, Tag("base64-source")]
    | Annotated[URLSource, Tag("url-source")]
    | Annotated[FileSource, Tag("file-source")],
    Discriminator(
        _source_tag,
        custom_error_type="invalid_source",
        custom_error_message="expected a source of type 'base64', 'url' or 'file'",
    ),
]


class ImageBlock(_Strict):
    type: Literal["image"]
    source: ImageSource
    cache_control: CacheControl | None = None


class ToolUseBlock(_Strict):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any]
    cache_control: CacheControl | None = None


class ThinkingBlock(_Strict):
    type: Literal["thinking"]
    thinking: str
    signature: str


class RedactedThinkingBlock(_Strict):
    type: Literal["redacted_thinking"]
    data: str


class OtherBlock(BaseModel):
    """Any other block: Claude-only ones (`document`, server tool results …) or a mistake, told apart on decoding."""

    model_config = ConfigDict(extra="allow", title="OtherContentBlock")

    type: str


def _block_tag(value: Any) -> str:
    """Which model validates a content block. Tags contain '-', so field names in errors leave them out."""
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"{kind}-block" if kind in _BLOCKS else "other-block"


def _result_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"{kind}-block" if kind in ("text", "image") else "other-block"


_BLOCKS = ("text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking")
ResultContent = Annotated[
    Annotated[TextBlock, Tag("text-block")]
    | Annotated[ImageBlock, Tag("image-block")]
    | Annotated[OtherBlock, Tag("other-block")],
    Discriminator(_result_tag),
]


class ToolResultBlock(_Strict):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[ResultContent] | None = None
    is_error: bool | None = None
    cache_control: CacheControl | None = None


ContentBlock = Annotated[
    Annotated[TextBlock, Tag("text-block")]
    | Annotated[ImageBlock, Tag("image-block")]
    | Annotated[ToolUseBlock, Tag("tool_use-block")]
    | Annotated[ToolResultBlock, Tag("tool_result-block")]
    | Annotated[ThinkingBlock, Tag("thinking-block")]
    | Annotated[RedactedThinkingBlock, Tag("redacted_thinking-block")]
    | Annotated[OtherBlock, Tag("other-block")],
    Discriminator(_block_tag),
]


class MessageParam(_Strict):
    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class CustomTool(_Strict):
    type: Literal["custom"] | None = None
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,128}$")
    description: str | None = None
    input_schema: dict[str, Any]
    cache_control: CacheControl | None = None
    strict: bool | None = None

    @field_validator("input_schema")
    @classmethod
    def _an_object_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        if schema.get("type") != "object":
            raise ValueError("input_schema must be a JSON Schema with type 'object'")
        return schema


class ServerTool(BaseModel):
    """A tool Anthropic runs (`web_search_20250305`, `bash_20250124`, …): Claude only."""

    model_config = ConfigDict(extra="allow", title="ServerTool")

    type: str
    name: str | None = None


def _tool_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "custom-tool" if kind in (None, "custom") else "server-tool"


ToolParam = Annotated[
    Annotated[CustomTool, Tag("custom-tool")] | Annotated[ServerTool, Tag("server-tool")], Discriminator(_tool_tag)
]


class ToolChoiceParam(_Strict):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingParam(_Strict):
    type: Literal["enabled", "disabled", "adaptive", "between_tools"]
    budget_tokens: int | None = Field(default=None, ge=1024)
    display: Literal["summarized", "omitted"] | None = None


class Metadata(_Strict):
    user_id: str | None = Field(default=None, max_length=256)


class JSONOutputFormat(_Strict):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(_Strict):
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    format: JSONOutputFormat | None = None


class _Prompt(_Strict):
    """What a Messages request and a token count share: the model and everything it reads."""

    model: str = Field(min_length=1)
    messages: list[MessageParam]
    system: str | list[TextBlock] | None = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoiceParam | None = None
    thinking: ThinkingParam | None = None
    output_config: OutputConfig | None = None
    cache_control: CacheControl | None = None  # automatic prompt caching (Claude)


class MessagesRequest(_Prompt):
    model_config = ConfigDict(extra="forbid", strict=True, title="AnthropicMessagesRequest")

    max_tokens: int = Field(ge=1)
    stream: bool = False
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    metadata: Metadata | None = None
    service_tier: Literal["auto", "standard_only"] | None = None  # a Claude capacity choice; nothing elsewhere

    @field_validator("stop_sequences")
    @classmethod
    def _stops_not_blank(cls, stops: list[str] | None) -> list[str] | None:
        if stops and not all(s.strip() for s in stops):
            raise ValueError("each stop sequence must contain non-whitespace")
        return stops


class CountTokensRequest(_Prompt):
    model_config = ConfigDict(extra="forbid", strict=True, title="AnthropicCountTokensRequest")


class RequestHead(BaseModel):
    """The fields read before the backend is known: which model, and whether it streams."""

    model_config = ConfigDict(extra="ignore", strict=True)

    model: str = Field(min_length=1)
    stream: bool = False


@dataclass(slots=True)
class Decoded:
    request: ChatRequest
    image_fields: list[str] = field(default_factory=list)  # where each image is, for a model that takes none
    stop_sequences: tuple[str, ...] = ()


M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], body: bytes) -> M:
    """`body` as `model`, or a 400 naming the field; a field only Claude takes is named as such."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = error["loc"]
            if error["type"] == "extra_forbidden" and len(loc) == 1 and loc[0] in CLAUDE_ONLY_FIELDS:
                raise InvalidRequest(
                    f"{loc[0]}: served for Claude models only (anthropic/…); remove it for this model.",
                    param=str(loc[0]),
                ) from None
        raise invalid_request(exc) from None


def to_chat_request(wire: MessagesRequest | CountTokensRequest, model: str) -> Decoded:
    """The canonical request for `model` (the backend's own name for it)."""
    decoded = Decoded(ChatRequest(model=model, messages=()))
    messages = [*_system(wire.system), *_messages(wire.messages, decoded.image_fields)]
    tools = _tools(wire.tools, model)
    extra: dict[str, Any] = {}
    if wire.thinking is not None and wire.thinking.type != "disabled":
        if wire.thinking.type == "enabled" and wire.thinking.budget_tokens is None:
            raise InvalidRequest("thinking.budget_tokens: this field is required.", param="thinking.budget_tokens")
        extra["thinking"] = wire.thinking.model_dump(exclude_none=True)  # the provider's table takes or refuses it
    response_format: ResponseFormat | None = None
    if wire.output_config is not None:
        if wire.output_config.effort is not None:
            extra["reasoning_effort"] = wire.output_config.effort
        if wire.output_config.format is not None:
            response_format = ResponseFormat("json_schema", wire.output_config.format.schema_, "response")
    choice, parallel = _tool_choice(wire.tool_choice, tools)
    params = GenerationParams(parallel_tool_calls=parallel)
    if isinstance(wire, MessagesRequest):
        budget = wire.thinking.budget_tokens if wire.thinking and wire.thinking.type == "enabled" else None
        if budget is not None and wire.max_tokens <= budget:
            raise InvalidRequest("max_tokens: must be greater than thinking.budget_tokens.", param="max_tokens")
        decoded.stop_sequences = tuple(wire.stop_sequences or ())
        params = GenerationParams(
            max_tokens=wire.max_tokens,
            temperature=wire.temperature,
            top_p=wire.top_p,
            top_k=wire.top_k,
            stop=decoded.stop_sequences or None,
            parallel_tool_calls=parallel,
            user=wire.metadata.user_id if wire.metadata else None,
        )
    decoded.request = ChatRequest(
        model=model,
        messages=tuple(messages),
        params=params,
        tools=tools,
        tool_choice=choice,
        response_format=response_format,
        stream=isinstance(wire, MessagesRequest) and wire.stream,
        extra=extra,
    )
    return decoded


def _system(system: str | list[TextBlock] | None) -> list[Message]:
    if system is None:
        return []
    if isinstance(system, str):
        return [Message("system", (TextPart(system),))] if system else []
    return [Message("system", (TextPart(block.text),)) for block in system]


def _messages(wire: list[MessageParam], images: list[str]) -> list[Message]:
    if not wire:
        raise InvalidRequest("messages: at least one message is required.", param="messages")
    out: list[Message] = []
    for i, message in enumerate(wire):
        where = f"messages[{i}]"
        content = message.content
        if isinstance(content, str):
            if not content:
                if message.role == "assistant" and i == len(wire) - 1:
                    continue  # an empty final assistant turn prefills nothing
                raise InvalidRequest(f"{where}.content: must not be empty.", param=f"{where}.content")
            out.append(Message(message.role, (TextPart(content),)))
        elif message.role == "assistant":
            out.append(_assistant(content, where, images))
        else:
            out.extend(_user(content, where, images))
    return out


def _assistant(blocks: list[Any], where: str, images: list[str]) -> Message:
    parts: list[Part] = []
    call_signature: str | None = None
    for j, block in enumerate(blocks):
        at = f"{where}.content[{j}]"
        if isinstance(block, ThinkingBlock):
            follows = blocks[j + 1] if j + 1 < len(blocks) else None
            if not block.thinking and block.signature and isinstance(follows, ToolUseBlock):
                call_signature = block.signature  # the next call's own signature (Gemini), see the docstring
            else:
                parts.append(ReasoningPart(block.thinking, block.signature or None))
        elif isinstance(block, RedactedThinkingBlock):
            parts.append(ReasoningPart(block.data, redacted=True))
        elif isinstance(block, ToolUseBlock):
            parts.append(ToolCallPart(block.id, block.name, to_json(block.input).decode(), call_signature))
            call_signature = None
        elif isinstance(block, TextBlock | ImageBlock):
            parts.append(_media_part(block, at, images))
        elif isinstance(block, ToolResultBlock):
            raise InvalidRequest(f"{at}: `tool_result` blocks can only be in `user` messages.", param=at)
        else:
            raise _other_block(block, at)
    if not parts:
        raise InvalidRequest(f"{where}.content: must not be empty.", param=f"{where}.content")
    return Message("assistant", tuple(parts))


def _user(blocks: list[Any], where: str, images: list[str]) -> list[Message]:
    """Tool results first (each its own `tool` message, as the canonical form has them), then the rest."""
    results: list[Message] = []
    parts: list[Part] = []
    for j, block in enumerate(blocks):
        at = f"{where}.content[{j}]"
        if isinstance(block, ToolResultBlock):
            results.append(Message("tool", (_tool_result(block, at, images),)))
        elif isinstance(block, TextBlock | ImageBlock):
            parts.append(_media_part(block, at, images))
        elif isinstance(block, ToolUseBlock | ThinkingBlock | RedactedThinkingBlock):
            raise InvalidRequest(f"{at}: `{block.type}` blocks can only be in `assistant` messages.", param=at)
        else:
            raise _other_block(block, at)
    if not results and not parts:
        raise InvalidRequest(f"{where}.content: must not be empty.", param=f"{where}.content")
    return [*results, *([Message("user", tuple(parts))] if parts else [])]


def _tool_result(block: ToolResultBlock, at: str, images: list[str]) -> ToolResultPart:
    content: list[TextPart | ImagePart] = []
    if isinstance(block.content, str):
        if block.content:
            content.append(TextPart(block.content))
    else:
        for k, inner in enumerate(block.content or ()):
            if isinstance(inner, TextBlock | ImageBlock):
                content.append(_media_part(inner, f"{at}.content[{k}]", images))
            else:
                raise _other_block(inner, f"{at}.content[{k}]", ("text", "image"))
    return ToolResultPart(block.tool_use_id, tuple(content), is_error=bool(block.is_error))


def _media_part(block: TextBlock | ImageBlock, at: str, images: list[str]) -> TextPart | ImagePart:
    if isinstance(block, TextBlock):
        return TextPart(block.text)
    images.append(at)
    source = block.source
    if isinstance(source, Base64Source):
        return ImagePart(data=source.data, mime_type=source.media_type)
    if isinstance(source, URLSource):
        if not source.url.startswith(("https://", "http://")):
            raise InvalidRequest(f"{at}.source.url: must be an http or https URL.", param=f"{at}.source.url")
        return ImagePart(url=source.url)
    raise InvalidRequest(
        f"{at}.source: file sources (Anthropic's Files API) are served for Claude models only; send the image as "
        "base64 or a URL.",
        param=f"{at}.source",
    )


def _other_block(block: OtherBlock, at: str, expected: tuple[str, ...] = _BLOCKS) -> InvalidRequest:
    if block.type in CLAUDE_ONLY_BLOCKS:
        return InvalidRequest(
            f"{at}.type: `{block.type}` blocks are served for Claude models only (anthropic/…).", param=f"{at}.type"
        )
    return InvalidRequest(
        f"{at}.type: '{block.type}' is not a content block type here; expected one of {', '.join(expected)}.",
        param=f"{at}.type",
    )


def _tools(tools: list[CustomTool | ServerTool] | None, model: str) -> tuple[Tool, ...]:
    out: list[Tool] = []
    for i, tool in enumerate(tools or ()):
        if isinstance(tool, ServerTool):
            raise InvalidRequest(
                f"tools[{i}].type: '{tool.type}' is a tool Anthropic runs for Claude models; '{model}' takes custom "
                "tools only (a name, a description and an input_schema).",
                param=f"tools[{i}].type",
            )
        out.append(Tool(tool.name, tool.description, tool.input_schema, tool.strict))
    names = [t.name for t in out]
    if len(set(names)) != len(names):
        raise InvalidRequest("tools: tool names must be unique.", param="tools")
    return tuple(out)


def _tool_choice(choice: ToolChoiceParam | None, tools: tuple[Tool, ...]) -> tuple[ToolChoice | None, bool | None]:
    """The canonical choice, and `parallel_tool_calls` (False when the caller disabled parallel calls)."""
    if choice is None:
        return None, None
    parallel = False if choice.disable_parallel_tool_use else None
    if choice.type == "tool":
        if not choice.name:
            raise InvalidRequest("tool_choice.name: this field is required.", param="tool_choice.name")
        if choice.name not in {t.name for t in tools}:
            raise InvalidRequest(f"tool_choice: tool '{choice.name}' not found in tools.", param="tool_choice.name")
        return ToolChoice("tool", choice.name), parallel
    if choice.name is not None:
        raise InvalidRequest("tool_choice.name: only a choice of type 'tool' names a tool.", param="tool_choice.name")
    if choice.type == "any" and not tools:
        raise InvalidRequest("tool_choice: type 'any' requires tools to be provided.", param="tool_choice")
    mode: Literal["auto", "required", "none"] = "required" if choice.type == "any" else choice.type
    return ToolChoice(mode), parallel
