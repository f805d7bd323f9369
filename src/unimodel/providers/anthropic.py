"""Anthropic messages API: top-level system, required max_tokens, content blocks, and its SSE events.

What Anthropic's words mean (stop reasons, error types, usage) is dialects/anthropic.py, shared with the Anthropic
surface (frontends/anthropic_messages.py)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic_core import from_json, to_json

from ..dialects.anthropic import API_VERSION, ERROR_STATUSES, merge_usage, parse_usage, stop_reason
from ..protocol import (
    ChatRequest,
    ChatResult,
    Finish,
    ImagePart,
    InvalidRequest,
    Message,
    ReasoningDelta,
    ReasoningPart,
    StreamError,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    UnsupportedParameter,
    Usage,
    UsageEvent,
)
from .base import ProviderAdapter, ProviderInfo, SSEMessage, StreamDecoder, UpstreamRequest
from .content import image_inline, parse_arguments
from .params import OnlyDefault, Param, ParamTable, Unsupported, apply_params, passthrough

# Structured output goes through a forced tool with this name; its wrapper never reaches the caller.
JSON_TOOL = "json_response"

ANTHROPIC_PARAMS: ParamTable = {
    "max_tokens": Param("max_tokens", minimum=1),
    "temperature": Param("temperature", minimum=0, maximum=1),
    "top_p": Param("top_p", minimum=0, maximum=1),
    "top_k": Param("top_k", minimum=0),
    "stop": Param("stop_sequences", transform=list),
    "seed": Unsupported("Anthropic has no seed"),
    "presence_penalty": Unsupported("Anthropic has no presence penalty"),
    "frequency_penalty": Unsupported("Anthropic has no frequency penalty"),
    "n": OnlyDefault(1, "Anthropic returns one completion per request"),
    "logprobs": Unsupported("Anthropic does not return log probabilities"),
    "top_logprobs": Unsupported("Anthropic does not return log probabilities"),
    "parallel_tool_calls": Param("tool_choice.disable_parallel_tool_use", transform=lambda v: not v),
    "user": Param("metadata.user_id"),
    # `cache_control` at the top level turns on automatic prompt caching.
    # Beta-only fields (mcp_servers, context_management, container) are refused: they need an anthropic-beta header.
    **passthrough("metadata", "thinking", "service_tier", "cache_control"),
}


class AnthropicAdapter(ProviderAdapter):
    info = ProviderInfo(
        name="anthropic",
        default_base_url="https://api.anthropic.com",
        models=(
            "claude-opus-4-5",
            "claude-sonnet-4-5",
            "claude-haiku-4-5",
            "claude-opus-4-1",
            "claude-sonnet-4-0",
            "claude-3-5-haiku-latest",
        ),
        key_header="x-api-key",
        docs="https://docs.anthropic.com/en/api/messages",
    )
    params: ClassVar[ParamTable] = ANTHROPIC_PARAMS

    def build_request(self, request: ChatRequest, api_key: str) -> UpstreamRequest:
        system, messages = encode_messages(request.messages)
        body: dict[str, Any] = {"model": request.model, "messages": messages}
        if system is not None:
            body["system"] = system
        given = request.params.given()
        given.setdefault("max_tokens", self.config.default_max_tokens)
        apply_params(self.name, self.params, given, body)
        apply_params(self.name, self.params, request.extra, body)
        tools = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters or {"type": "object"}}
            for t in request.tools
        ]
        for tool in tools:
            if tool["description"] is None:
                del tool["description"]
        choice = encode_tool_choice(request.tool_choice) if request.tool_choice else None
        fmt = request.response_format
        if fmt is not None and fmt.type != "text":
            if tools:
                raise UnsupportedParameter(
                    "response_format",
                    self.name,
                    "structured output cannot be combined with tools on Anthropic",
                )
            tools = [
                {
                    "name": JSON_TOOL,
                    "description": "Answer with a JSON object" + (f" ({fmt.name})." if fmt.name else "."),
                    "input_schema": fmt.schema or {"type": "object"},
                }
            ]
            choice = {"type": "tool", "name": JSON_TOOL}
        if tools:
            body["tools"] = tools
        if choice is not None:
            body["tool_choice"] = {**choice, **body.get("tool_choice", {})}
        elif "tool_choice" in body:  # parallel_tool_calls given without a tool_choice
            body["tool_choice"] = {"type": "auto", **body["tool_choice"]}
        if request.stream:
            body["stream"] = True
        headers = {"x-api-key": api_key, "anthropic-version": self.config.api_version or API_VERSION}
        return UpstreamRequest(f"{self.base_url}/v1/messages", headers, body, stream=request.stream)

    def parse_response(self, body: Any) -> ChatResult:
        texts: list[str] = []
        reasoning: list[ReasoningPart] = []
        calls: list[ToolCallPart] = []
        for block in body.get("content") or []:
            kind = block.get("type")
            if kind == "text":
                texts.append(block["text"])
            elif kind == "tool_use" and block.get("name") == JSON_TOOL:
                texts.append(to_json(block.get("input") or {}).decode())
            elif kind == "tool_use":
                calls.append(ToolCallPart(block["id"], block["name"], to_json(block.get("input") or {}).decode()))
            elif kind == "thinking":
                reasoning.append(ReasoningPart(block.get("thinking", ""), block.get("signature")))
            elif kind == "redacted_thinking":
                reasoning.append(ReasoningPart(block.get("data", ""), redacted=True))
        raw = body.get("stop_reason")
        reason = stop_reason(raw)
        if reason == "tool_calls" and not calls:
            reason = "stop"  # the forced structured-output tool
        return ChatResult(
            id=body.get("id", ""),
            model=body.get("model", ""),
            text="".join(texts) if texts or not calls else None,
            tool_calls=calls,
            reasoning="".join(r.text for r in reasoning if not r.redacted) or None,
            reasoning_parts=reasoning,
            finish_reason=reason,
            raw_finish_reason=raw,
            usage=parse_usage(body.get("usage")),
            raw=body,
        )

    def stream_decoder(self, request: ChatRequest) -> StreamDecoder:
        return AnthropicStreamDecoder(self)

    def error_message(self, body: Any) -> str | None:
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            err = body["error"]
            return f"{err.get('type', 'error')}: {err.get('message', '')}"
        return super().error_message(body)


class AnthropicStreamDecoder(StreamDecoder):
    def __init__(self, adapter: AnthropicAdapter) -> None:
        self._adapter = adapter
        self._usage = Usage()
        self._raw_stop: str | None = None
        self._tool_index: dict[int, int] = {}  # content block index -> tool call index
        self._json_blocks: set[int] = set()
        self._done = False

    def done(self) -> bool:
        return self._done

    def feed(self, message: SSEMessage) -> list[StreamEvent]:
        if not message.data or message.event == "ping":
            return []
        data = from_json(message.data)
        kind = data.get("type", message.event)
        if kind == "content_block_delta":
            return self._delta(data["index"], data["delta"])
        if kind == "content_block_start":
            return self._block_start(data["index"], data["content_block"])
        if kind == "message_start":
            msg = data["message"]
            self._usage = parse_usage(msg.get("usage"))
            return [StreamStart(msg.get("id", ""), msg.get("model", ""))]
        if kind == "message_delta":
            self._raw_stop = (data.get("delta") or {}).get("stop_reason") or self._raw_stop
            merge_usage(self._usage, data.get("usage"))
            return []
        if kind == "message_stop":
            self._done = True
            reason = stop_reason(self._raw_stop)
            if reason == "tool_calls" and not self._tool_index:
                reason = "stop"
            return [UsageEvent(self._usage), Finish(reason, self._raw_stop)]
        if kind == "error":
            status = ERROR_STATUSES.get((data.get("error") or {}).get("type", ""), 500)
            return [StreamError(self._adapter.map_error(status, data, {}))]
        return []

    def _block_start(self, index: int, block: dict[str, Any]) -> list[StreamEvent]:
        kind = block.get("type")
        if kind == "tool_use" and block.get("name") == JSON_TOOL:
            self._json_blocks.add(index)
            return []
        if kind == "tool_use":
            call_index = len(self._tool_index)
            self._tool_index[index] = call_index
            return [ToolCallDelta(call_index, block.get("id"), block.get("name"), "")]
        if kind == "text" and block.get("text"):
            return [TextDelta(block["text"])]
        if kind == "thinking" and block.get("thinking"):
            return [ReasoningDelta(block["thinking"])]
        if kind == "redacted_thinking":
            return [ReasoningDelta(block.get("data", ""), redacted=True)]
        return []

    def _delta(self, index: int, delta: dict[str, Any]) -> list[StreamEvent]:
        kind = delta.get("type")
        if kind == "text_delta":
            return [TextDelta(delta["text"])]
        if kind == "input_json_delta":
            fragment = delta.get("partial_json", "")
            if not fragment:  # the API opens every tool_use block with an empty fragment
                return []
            if index in self._json_blocks:
                return [TextDelta(fragment)]
            return [ToolCallDelta(self._tool_index[index], arguments=fragment)]
        if kind == "thinking_delta":
            return [ReasoningDelta(delta.get("thinking", ""))]
        if kind == "signature_delta":
            return [ReasoningDelta("", signature=delta.get("signature"))]
        return []


def encode_messages(
    messages: tuple[Message, ...],
) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """(top-level system, alternating user/assistant turns). Tool results join the next user turn."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        if msg.role == "system":
            system.append(msg.text())
            continue
        role = "assistant" if msg.role == "assistant" else "user"
        blocks = [_encode_part(p, f"messages[{i}]") for p in msg.parts]
        blocks = [b for b in blocks if b is not None]
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:  # a lone text block is sent as a plain string, as the API's own examples do
        content = turn["content"]
        if len(content) == 1 and content[0]["type"] == "text":
            turn["content"] = content[0]["text"]
    if not system:
        return None, turns
    if len(system) == 1:
        return system[0], turns
    return [{"type": "text", "text": s} for s in system], turns


def _encode_part(part: Any, where: str) -> dict[str, Any] | None:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text} if part.text else None
    if isinstance(part, ImagePart):
        return _encode_image(part)
    if isinstance(part, ToolCallPart):
        return {
            "type": "tool_use",
            "id": part.id,
            "name": part.name,
            "input": parse_arguments(part.arguments, where),
        }
    if isinstance(part, ToolResultPart):
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": part.tool_call_id}
        if all(isinstance(p, TextPart) for p in part.content):
            content: str | list[dict[str, Any]] = "".join(p.text for p in part.content if isinstance(p, TextPart))
        else:
            content = [b for b in (_encode_part(p, where) for p in part.content) if b is not None]
        if content:  # Anthropic rejects an empty content; the field is optional, so a tool with no output sends none
            block["content"] = content
        if part.is_error:
            block["is_error"] = True
        return block
    if isinstance(part, ReasoningPart):
        if part.redacted:
            return {"type": "redacted_thinking", "data": part.text}
        if part.signature is None:
            return None  # reasoning from another provider cannot be replayed to Anthropic
        return {"type": "thinking", "thinking": part.text, "signature": part.signature}
    raise InvalidRequest(f"{where}: unsupported content part.", param=where)


def _encode_image(part: ImagePart) -> dict[str, Any]:
    inline = image_inline(part)
    if inline is None:
        return {"type": "image", "source": {"type": "url", "url": part.url}}
    mime, data = inline
    return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}


def encode_tool_choice(choice: ToolChoice) -> dict[str, Any]:
    if choice.mode == "required":
        return {"type": "any"}
    if choice.mode == "tool":
        return {"type": "tool", "name": choice.name}
    return {"type": choice.mode}
