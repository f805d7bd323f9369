"""Cohere v2 chat (`POST /v2/chat`): p/k sampling, REQUIRED/NONE tool choice, `tool_plan`, thinking content
blocks, usage in billed units, and its typed SSE events (`message-start` … `message-end`).

Reference: https://docs.cohere.com/reference/chat and the official `cohere` SDK (`cohere.ClientV2`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic_core import from_json

from ..protocol import (
    ChatRequest,
    ChatResult,
    EmbeddingRequest,
    EmbeddingResult,
    Finish,
    FinishReason,
    ImagePart,
    InvalidRequest,
    Message,
    ReasoningDelta,
    ReasoningPart,
    ResponseFormat,
    StreamError,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    Tool,
    ToolCallDelta,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    UnimodelError,
    UnsupportedParameter,
    UpstreamError,
    Usage,
    UsageEvent,
)
from .base import ProviderAdapter, ProviderInfo, SSEMessage, StreamDecoder, UpstreamRequest
from .content import image_url, parse_arguments
from .embeddings import refuse_extras
from .params import OnlyDefault, Param, ParamTable, Unsupported, apply_params, passthrough

MAX_STOP_SEQUENCES = 5
FINISH_REASONS: dict[str, FinishReason] = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR": "error",
}


def _thinking(value: Any) -> Any:
    """Cohere names the budget `token_budget`; Anthropic's `budget_tokens` spelling is accepted for it."""
    if isinstance(value, dict) and "budget_tokens" in value and "token_budget" not in value:
        value = {("token_budget" if k == "budget_tokens" else k): v for k, v in value.items()}
    return value


def _stop_sequences(value: Any) -> list[str]:
    stops = list(value)
    if len(stops) > MAX_STOP_SEQUENCES:
        raise InvalidRequest(
            f"Parameter 'stop' takes at most {MAX_STOP_SEQUENCES} sequences for provider 'cohere', got {len(stops)}.",
            param="stop",
        )
    return stops


# Ranges are the API reference's (temperature 0–1, p 0.01–0.99, k 0–500, penalties 0–1).
COHERE_PARAMS: ParamTable = {
    "max_tokens": Param("max_tokens", minimum=1),
    "temperature": Param("temperature", minimum=0, maximum=1),
    "top_p": Param("p", minimum=0.01, maximum=0.99),
    "top_k": Param("k", minimum=0, maximum=500),
    "stop": Param("stop_sequences", transform=_stop_sequences),
    "seed": Param("seed", minimum=0),
    "presence_penalty": Param("presence_penalty", minimum=0, maximum=1),
    "frequency_penalty": Param("frequency_penalty", minimum=0, maximum=1),
    "n": OnlyDefault(1, "Cohere returns one completion per request"),
    "logprobs": Param("logprobs"),
    "top_logprobs": Unsupported("Cohere returns only the chosen tokens' log probabilities; use logprobs"),
    "parallel_tool_calls": OnlyDefault(True, "Cohere may always call several tools at once and has no switch for it"),
    "user": Unsupported("Cohere has no end-user field"),
    "thinking": Param("thinking", transform=_thinking),
    **passthrough("safety_mode", "documents", "citation_options", "strict_tools", "priority"),
}


def finish_reason(raw: str | None) -> FinishReason:
    if not raw:
        return "stop"
    return FINISH_REASONS.get(raw, "other")


# Cohere's input_type for a canonical purpose.
COHERE_INPUT_TYPES = {
    "query": "search_query",
    "document": "search_document",
    "similarity": "clustering",
    "classification": "classification",
    "clustering": "clustering",
}


class CohereAdapter(ProviderAdapter):
    info = ProviderInfo(
        name="cohere",
        default_base_url="https://api.cohere.com",
        models=(
            "command-a-03-2025",
            "command-a-reasoning-08-2025",
            "command-a-vision-07-2025",
            "command-r7b-12-2024",
            "command-r-plus-08-2024",
            "command-r-08-2024",
        ),
        docs="https://docs.cohere.com/reference/chat",
        embedding_models=("embed-v4.0", "embed-english-v3.0", "embed-multilingual-v3.0"),
    )
    params: ClassVar[ParamTable] = COHERE_PARAMS

    def build_request(self, request: ChatRequest, api_key: str) -> UpstreamRequest:
        body: dict[str, Any] = {"model": request.model, "messages": encode_messages(request.messages, self.name)}
        apply_params(self.name, self.params, request.params.given(), body)
        apply_params(self.name, self.params, request.extra, body)
        if request.tools:
            body["tools"] = [encode_tool(t) for t in request.tools]
            if strict_tools(request.tools, self.name):
                body.setdefault("strict_tools", True)
        if request.tool_choice is not None:
            choice = encode_tool_choice(request.tool_choice, self.name)
            if choice is not None and request.tools:
                body["tool_choice"] = choice
        if request.response_format is not None:
            if request.response_format.type != "text" and (request.tools or "documents" in body):
                raise UnsupportedParameter(
                    "response_format",
                    self.name,
                    "Cohere cannot combine structured output with tools or documents",
                )
            body["response_format"] = encode_response_format(request.response_format)
        if request.stream:
            body["stream"] = True
        headers = {"authorization": f"Bearer {api_key}"}
        return UpstreamRequest(f"{self.base_url}/v2/chat", headers, body, stream=request.stream)

    def build_embeddings_request(self, request: EmbeddingRequest, api_key: str) -> UpstreamRequest:
        """`POST /v2/embed`: `texts`, the required `input_type` (from the purpose; documents when none is given),
        float vectors, `output_dimension` (embed-v4) for `dimensions`."""
        body: dict[str, Any] = {
            "model": request.model,
            "texts": list(request.inputs),
            "input_type": COHERE_INPUT_TYPES[request.purpose or "document"],
            "embedding_types": ["float"],
        }
        if request.dimensions is not None:
            body["output_dimension"] = request.dimensions
        body.update(refuse_extras(request, self.name, ("truncate", "max_tokens")))
        return UpstreamRequest(f"{self.base_url}/v2/embed", {"authorization": f"Bearer {api_key}"}, body)

    def parse_embeddings_response(self, body: Any, request: EmbeddingRequest) -> EmbeddingResult:
        vectors = [[float(x) for x in v] for v in body["embeddings"]["float"]]
        if len(vectors) != len(request.inputs):
            raise ValueError(f"{len(vectors)} vectors for {len(request.inputs)} inputs")
        billed = ((body.get("meta") or {}).get("billed_units") or {}).get("input_tokens")
        return EmbeddingResult(vectors, request.model, Usage(input_tokens=int(billed or 0)))

    def parse_response(self, body: Any) -> ChatResult:
        message = body.get("message") or {}
        texts: list[str] = [message["tool_plan"]] if message.get("tool_plan") else []
        reasoning: list[ReasoningPart] = []
        for block in message.get("content") or []:
            if block.get("type") == "text":
                texts.append(block.get("text") or "")
            elif block.get("type") == "thinking":
                reasoning.append(ReasoningPart(block.get("thinking") or ""))
        calls = [
            ToolCallPart(c["id"], c["function"]["name"], c["function"].get("arguments") or "{}")
            for c in message.get("tool_calls") or []
        ]
        raw = body.get("finish_reason")
        return ChatResult(
            id=body.get("id", ""),
            model="",  # Cohere's answer does not name the model
            text="".join(texts) if texts or not calls else None,
            tool_calls=calls,
            reasoning="".join(r.text for r in reasoning) or None,
            reasoning_parts=reasoning,
            finish_reason=finish_reason(raw),
            raw_finish_reason=raw,
            usage=parse_usage(body.get("usage")),
            raw=body,
        )

    def stream_decoder(self, request: ChatRequest) -> StreamDecoder:
        return CohereStreamDecoder(self, request.model)

    def map_error(self, status: int, body: Any, headers: Mapping[str, str]) -> UnimodelError:
        detail = self.error_message(body) or f"HTTP {status}"
        if status == 498:  # a deny-listed token in the request or the answer
            return InvalidRequest(
                f"Provider 'cohere' refused a blocked token (498): {detail}",
                code="upstream_invalid_request",
                provider=self.name,
                provider_body=body,
            )
        if status == 501:  # a feature this model or endpoint does not offer: changing the request is the fix
            return InvalidRequest(
                f"Provider 'cohere' does not implement this (501): {detail}",
                code="upstream_invalid_request",
                provider=self.name,
                provider_body=body,
            )
        return super().map_error(status, body, headers)


class CohereStreamDecoder(StreamDecoder):
    def __init__(self, adapter: CohereAdapter, model: str) -> None:
        self._adapter = adapter
        self._model = model
        self._calls: dict[int, int] = {}  # Cohere's tool-call index -> canonical call index
        self._done = False

    def done(self) -> bool:
        return self._done

    def feed(self, message: SSEMessage) -> list[StreamEvent]:
        if message.data == "[DONE]":
            self._done = True
            return []
        if not message.data:
            return []
        data = from_json(message.data)
        kind = data.get("type") or message.event
        delta = data.get("delta") or {}
        inner = delta.get("message") or {}
        if kind == "content-delta" or kind == "content-start":
            return _content(inner.get("content") or {})
        if kind == "tool-plan-delta":
            plan = inner.get("tool_plan")
            return [TextDelta(plan)] if plan else []
        if kind == "tool-call-start":
            call = inner.get("tool_calls") or {}
            fn = call.get("function") or {}
            index = self._calls.setdefault(data.get("index", len(self._calls)), len(self._calls))
            return [ToolCallDelta(index, call.get("id"), fn.get("name"), fn.get("arguments") or "")]
        if kind == "tool-call-delta":
            fragment = ((inner.get("tool_calls") or {}).get("function") or {}).get("arguments")
            if not fragment:
                return []
            index = self._calls.get(data.get("index", -1), len(self._calls) - 1)
            return [ToolCallDelta(index, arguments=fragment)]
        if kind == "message-start":
            return [StreamStart(data.get("id") or "", self._model)]
        if kind == "message-end":
            self._done = True
            if delta.get("error"):
                name = self._adapter.name
                error = UpstreamError(f"Provider '{name}' failed mid-stream: {delta['error']}", provider=name)
                return [StreamError(error)]
            raw = delta.get("finish_reason")
            return [UsageEvent(parse_usage(delta.get("usage"))), Finish(finish_reason(raw), raw)]
        return []  # content-end, tool-call-end, citation-start/end, debug


def _content(content: dict[str, Any]) -> list[StreamEvent]:
    if content.get("thinking"):
        return [ReasoningDelta(content["thinking"])]
    if content.get("text"):
        return [TextDelta(content["text"])]
    return []


def parse_usage(usage: Any) -> Usage:
    """Billed units (what Cohere charges); the raw token counts, which include its prompt template, as fallback."""
    if not isinstance(usage, dict):
        return Usage()
    billed = usage.get("billed_units") or {}
    tokens = usage.get("tokens") or {}

    def count(key: str) -> int:
        value = billed.get(key)
        if value is None:
            value = tokens.get(key)
        return int(value or 0)

    cached = usage.get("cached_tokens")
    return Usage(
        input_tokens=count("input_tokens"),
        output_tokens=count("output_tokens"),
        cached_input_tokens=int(cached) if cached is not None else None,
    )


def encode_messages(messages: tuple[Message, ...], provider: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if msg.role == "tool":
            out.extend(_tool_result(p, provider) for p in msg.parts if isinstance(p, ToolResultPart))
        elif msg.role == "assistant":
            assistant = _assistant(msg, where)
            if assistant is not None:
                out.append(assistant)
        elif msg.role == "system":
            out.append({"role": "system", "content": msg.text()})
        else:
            out.append({"role": "user", "content": _user_content(msg)})
    return out


def _user_content(msg: Message) -> str | list[dict[str, Any]]:
    if all(isinstance(p, TextPart) for p in msg.parts):
        return msg.text()
    blocks: list[dict[str, Any]] = []
    for part in msg.parts:
        if isinstance(part, TextPart) and part.text:
            blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            image: dict[str, Any] = {"url": image_url(part)}
            if part.detail:
                image["detail"] = part.detail
            blocks.append({"type": "image_url", "image_url": image})
    return blocks


def _assistant(msg: Message, where: str) -> dict[str, Any] | None:
    """Text said alongside tool calls goes back as the `tool_plan` it came from; reasoning as thinking blocks."""
    calls = msg.tool_calls()
    text = msg.text()
    # Signed or redacted reasoning belongs to another provider and cannot be replayed here.
    thinking = [
        {"type": "thinking", "thinking": p.text}
        for p in msg.parts
        if isinstance(p, ReasoningPart) and p.text and not p.redacted and p.signature is None
    ]
    out: dict[str, Any] = {"role": "assistant"}
    if calls:
        if text:
            out["tool_plan"] = text
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": _arguments(c.arguments, where)},
            }
            for c in calls
        ]
        if thinking:
            out["content"] = thinking
        return out
    if not text and not thinking:
        return None
    if not thinking:
        out["content"] = text
    else:
        out["content"] = [*thinking, {"type": "text", "text": text}] if text else thinking
    return out


def _arguments(arguments: str, where: str) -> str:
    parse_arguments(arguments, where)  # a 400 naming the message when they are not a JSON object
    return arguments if arguments.strip() else "{}"


def _tool_result(part: ToolResultPart, provider: str) -> dict[str, Any]:
    if not all(isinstance(p, TextPart) for p in part.content):
        raise UnsupportedParameter(
            "tool_result.image",
            provider,
            "Cohere tool messages take text or documents only; send the image in a user message",
        )
    text = "".join(p.text for p in part.content if isinstance(p, TextPart))
    return {"role": "tool", "tool_call_id": part.tool_call_id, "content": text}


def encode_tool(tool: Tool) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        fn["description"] = tool.description
    fn["parameters"] = tool.parameters if tool.parameters is not None else {"type": "object", "properties": {}}
    return {"type": "function", "function": fn}


def strict_tools(tools: tuple[Tool, ...], provider: str) -> bool:
    """Cohere's strictness is one switch for all tools (`strict_tools`); per-tool `strict` must agree."""
    flags = {bool(t.strict) for t in tools}
    if len(flags) > 1:
        raise UnsupportedParameter(
            "tools.strict",
            provider,
            "Cohere applies strict schemas to all tools or none; mark every tool strict or none",
        )
    return flags == {True}


def encode_tool_choice(choice: ToolChoice, provider: str) -> str | None:
    if choice.mode == "required":
        return "REQUIRED"
    if choice.mode == "none":
        return "NONE"
    if choice.mode == "tool":
        raise UnsupportedParameter(
            "tool_choice",
            provider,
            f"Cohere cannot force one named tool; use tool_choice 'required' and give only the tool '{choice.name}'",
        )
    return None  # auto is Cohere's default


def encode_response_format(fmt: ResponseFormat) -> dict[str, Any]:
    if fmt.type == "json":
        return {"type": "json_object"}
    if fmt.type == "json_schema":
        return {"type": "json_object", "json_schema": fmt.schema or {"type": "object"}}
    return {"type": "text"}
