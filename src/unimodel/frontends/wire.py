"""Wire types shared by both frontends: chat messages (OpenAI's shape, plus the v2 `image`/`audio` parts)
and the generation parameters, validated once by pydantic and turned into the canonical form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..protocol import (
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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TextContent(_Strict):
    type: Literal["text"]
    text: str


class ImageURL(_Strict):
    url: str = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class ImageURLContent(_Strict):
    """OpenAI's image part."""

    type: Literal["image_url"]
    image_url: ImageURL


class MediaContent(_Strict):
    """The v2 protocol's media part: `{type: image|audio|video, url | base64}`."""

    type: Literal["image", "audio", "video"]
    url: str | None = None
    base64: str | None = None
    mime_type: str | None = None


ContentPart = Annotated[TextContent | ImageURLContent | MediaContent, Field(discriminator="type")]


class FunctionCall(BaseModel):
    model_config = ConfigDict(strict=True)

    name: str
    arguments: str = ""


class ToolCall(BaseModel):
    model_config = ConfigDict(strict=True)

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall
    # Google's OpenAI-compatible convention for a call's thought signature: {"google": {"thought_signature": …}}
    extra_content: dict[str, Any] | None = None

    def signature(self) -> str | None:
        google = (self.extra_content or {}).get("google")
        value = google.get("thought_signature") if isinstance(google, dict) else None
        return value if isinstance(value, str) else None


class ThinkingBlock(BaseModel):
    """A reasoning block with its signature, as returned in `thinking_blocks` (LiteLLM's convention)."""

    model_config = ConfigDict(strict=True)

    type: Literal["thinking", "redacted_thinking"]
    thinking: str = ""
    signature: str | None = None
    data: str | None = None


class WireMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None
    thinking_blocks: list[ThinkingBlock] | None = None


class FunctionDef(BaseModel):
    model_config = ConfigDict(strict=True)

    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDef(BaseModel):
    model_config = ConfigDict(strict=True)

    type: Literal["function"] = "function"
    function: FunctionDef


class NamedFunction(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    type: Literal["function"] = "function"
    function: NamedFunction


class JSONSchemaFormat(BaseModel):
    model_config = ConfigDict(strict=True, populate_by_name=True)

    name: str = "response"
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormatWire(BaseModel):
    model_config = ConfigDict(strict=True)

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class ChatParams(BaseModel):
    """Generation parameters under their OpenAI names; anything else lands in `model_extra` for the provider."""

    model_config = ConfigDict(extra="allow", strict=True)

    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    n: int | None = Field(default=None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0)
    parallel_tool_calls: bool | None = None
    user: str | None = None
    tools: list[ToolDef] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    response_format: ResponseFormatWire | None = None

    @field_validator("stop")
    @classmethod
    def _stop_not_empty(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and not all(v):
            raise ValueError("stop sequences must be non-empty strings")
        return v


def to_generation_params(p: ChatParams) -> GenerationParams:
    stop = p.stop
    return GenerationParams(
        max_tokens=p.max_completion_tokens or p.max_tokens,
        temperature=p.temperature,
        top_p=p.top_p,
        top_k=p.top_k,
        stop=None if stop is None else ((stop,) if isinstance(stop, str) else tuple(stop)),
        seed=p.seed,
        presence_penalty=p.presence_penalty,
        frequency_penalty=p.frequency_penalty,
        n=p.n,
        logprobs=p.logprobs,
        top_logprobs=p.top_logprobs,
        parallel_tool_calls=p.parallel_tool_calls,
        user=p.user,
    )


def to_tools(p: ChatParams) -> tuple[Tool, ...]:
    return tuple(
        Tool(t.function.name, t.function.description, t.function.parameters, t.function.strict) for t in p.tools or ()
    )


def to_tool_choice(p: ChatParams) -> ToolChoice | None:
    choice = p.tool_choice
    if choice is None:
        return None
    if not p.tools and choice != "none":
        raise InvalidRequest("'tool_choice' needs 'tools': give the tools the model may call.", param="tool_choice")
    if isinstance(choice, NamedToolChoice):
        names = {t.function.name for t in p.tools or ()}
        if choice.function.name not in names:
            raise InvalidRequest(
                f"'tool_choice' names '{choice.function.name}', which is not among the given tools.",
                param="tool_choice",
            )
        return ToolChoice("tool", choice.function.name)
    return ToolChoice(choice)


def to_response_format(p: ChatParams) -> ResponseFormat | None:
    fmt = p.response_format
    if fmt is None:
        return None
    if fmt.type == "json_object":
        return ResponseFormat("json")
    if fmt.type == "json_schema":
        if fmt.json_schema is None:
            raise InvalidRequest(
                "response_format of type 'json_schema' needs 'json_schema': {name, schema}.", param="response_format"
            )
        js = fmt.json_schema
        return ResponseFormat("json_schema", js.schema_ or {"type": "object"}, js.name, js.strict)
    return ResponseFormat("text")


def to_messages(messages: list[WireMessage]) -> tuple[Message, ...]:
    """Canonical messages; a 400 names the message index when one makes no sense."""
    if not messages:
        raise InvalidRequest("'messages' must contain at least one message.", param="messages")
    out: list[Message] = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        parts = _content_parts(m.content, where)
        if m.role == "tool":
            if not m.tool_call_id:
                raise InvalidRequest(f"{where}: a 'tool' message needs 'tool_call_id'.", param=f"{where}.tool_call_id")
            result = tuple(p for p in parts if isinstance(p, TextPart | ImagePart))
            out.append(Message("tool", (ToolResultPart(m.tool_call_id, result, name=m.name),)))
            continue
        if m.role == "assistant":
            calls = tuple(
                ToolCallPart(c.id, c.function.name, c.function.arguments, c.signature()) for c in m.tool_calls or ()
            )
            if not parts and not calls:
                raise InvalidRequest(f"{where}: an assistant message needs content or tool_calls.", param=where)
            out.append(Message("assistant", (*_reasoning_parts(m), *parts, *calls), name=m.name))
            continue
        if m.tool_calls:
            raise InvalidRequest(f"{where}: only assistant messages carry tool_calls.", param=f"{where}.tool_calls")
        if not parts:
            raise InvalidRequest(f"{where}: content must not be empty.", param=f"{where}.content")
        role = "system" if m.role == "developer" else m.role
        out.append(Message(role, parts, name=m.name))
    return tuple(out)


def _reasoning_parts(m: WireMessage) -> tuple[ReasoningPart, ...]:
    """Signed blocks from `thinking_blocks` win; plain `reasoning_content` is kept unsigned."""
    if m.thinking_blocks:
        return tuple(
            ReasoningPart(b.data or "", redacted=True)
            if b.type == "redacted_thinking"
            else ReasoningPart(b.thinking, b.signature)
            for b in m.thinking_blocks
        )
    if m.reasoning_content:
        return (ReasoningPart(m.reasoning_content),)
    return ()


def assistant_json(
    text: str | None, tool_calls: list[ToolCallPart], reasoning: str | None, reasoning_parts: list[ReasoningPart]
) -> dict[str, Any]:
    """An assistant message in the OpenAI shape both surfaces answer with (plus reasoning and signatures)."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if reasoning:
        message["reasoning_content"] = reasoning
    if any(p.signature or p.redacted for p in reasoning_parts):
        message["thinking_blocks"] = [thinking_block_json(p) for p in reasoning_parts]
    if tool_calls:
        message["tool_calls"] = [tool_call_json(c) for c in tool_calls]
    return message


def thinking_block_json(part: ReasoningPart) -> dict[str, Any]:
    if part.redacted:
        return {"type": "redacted_thinking", "data": part.text}
    return {"type": "thinking", "thinking": part.text, "signature": part.signature}


def tool_call_json(call: ToolCallPart) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }
    if call.signature:
        out["extra_content"] = {"google": {"thought_signature": call.signature}}
    return out


def _content_parts(content: str | list[Any] | None, where: str) -> tuple[Part, ...]:
    if content is None:
        return ()
    if isinstance(content, str):
        return (TextPart(content),) if content else ()
    parts: list[Part] = []
    for j, c in enumerate(content):
        if isinstance(c, TextContent):
            parts.append(TextPart(c.text))
        elif isinstance(c, ImageURLContent):
            parts.append(ImagePart(url=c.image_url.url, detail=c.image_url.detail))
        elif c.type == "image":
            if bool(c.url) == bool(c.base64):
                raise InvalidRequest(
                    f"{where}.content[{j}]: an image needs exactly one of 'url' or 'base64'.",
                    param=f"{where}.content[{j}]",
                )
            parts.append(ImagePart(url=c.url, data=c.base64, mime_type=c.mime_type))
        else:
            raise InvalidRequest(
                f"{where}.content[{j}]: '{c.type}' input is not supported for chat models yet.",
                param=f"{where}.content[{j}].type",
            )
    return tuple(parts)


_TYPE_LABELS = frozenset(
    {"str", "int", "float", "bool", "dict", "list", "none", "text", "image_url", "image", "audio", "video"}
)


def _clean_loc(loc: tuple[int | str, ...], prefix: str) -> tuple[str, int]:
    """`messages[0].content[1].text` from pydantic's loc, without the labels of union branches."""
    out, depth = prefix, 0
    for i, p in enumerate(loc):
        if isinstance(p, int):
            out += f"[{p}]"
        elif "[" in p or "-" in p or (p in _TYPE_LABELS and i + 1 < len(loc)):
            continue  # a union branch (`list[WireMessage]`, a tag), not a field
        else:
            out += f".{p}" if out else p
        depth += 1
    return out, depth


def invalid_request(
    exc: ValidationError, prefix: str = "", given_as: Mapping[str, str] | None = None
) -> InvalidRequest:
    """A 400 naming the most specific offending field, e.g. `messages[0].role: Input should be 'system', …`.
    `given_as` maps a top-level field the decoder renamed back to the caller's own name (`max_tokens` →
    `max_new_tokens`), so the message names what the caller sent."""
    errors = exc.errors(include_url=False)
    if errors[0]["type"] == "json_invalid":
        detail = errors[0].get("ctx", {}).get("error", errors[0]["msg"])
        return InvalidRequest(f"The request body is not valid JSON: {detail}.", param="body")
    # Of the branches of a union, the deepest failure is the one the caller meant.
    best = max(errors, key=lambda e: _clean_loc(e["loc"], prefix)[1])
    loc_parts = best["loc"]
    if given_as and loc_parts and isinstance(loc_parts[0], str) and loc_parts[0] in given_as:
        loc_parts = (given_as[loc_parts[0]], *loc_parts[1:])
    loc = _clean_loc(loc_parts, prefix)[0] or "body"
    kind, msg = best["type"], best["msg"]
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        msg = "expected a JSON object"
    elif kind == "missing":
        msg = "this field is required"
    elif kind == "extra_forbidden":
        msg = "unknown field"
    return InvalidRequest(f"{loc}: {msg}.", param=loc)
