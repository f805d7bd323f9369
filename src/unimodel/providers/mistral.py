"""Mistral chat completions: OpenAI's shape with Mistral's own names, content chunks, and 9-character tool-call ids.

What differs from OpenAI, and is handled here:
- parameters: `max_tokens` (not max_completion_tokens), `random_seed` (not seed), `tool_choice` "any" (not
  "required"), `safe_prompt` / `prompt_mode`; no top_k, logprobs or user.
- tool-call ids must match `^[a-zA-Z0-9]{9}$`. Client ids of any other shape are replaced by a deterministic
  9-character digest, the same in the assistant's `tool_calls` and in the tool message's `tool_call_id`, so
  the mapping needs no state; Mistral's own ids already have that shape and pass through unchanged.
- only an assistant or a tool message may follow a tool message (Mistral answers 400 "Unexpected role 'user'
  after role 'tool'"): an empty assistant turn is put between them; a trailing assistant message is a prefix.
- answers: `content` is a string or a list of chunks (`text`, and `thinking` from reasoning models); a stream
  sends each tool call whole in one chunk and the usage with the last chunk; there is no `stream_options`.
- errors: `{"object": "error", "message", "type", "param", "code"}`, and FastAPI's 422 `{"detail": [...]}`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic_core import from_json, to_json

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
    NotFound,
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
    UnimodelError,
    UnsupportedParameter,
    Usage,
    UsageEvent,
)
from .base import ProviderAdapter, ProviderInfo, SSEMessage, StreamDecoder, UpstreamRequest
from .content import image_url
from .embeddings import openai_style_body, parse_openai_style
from .openai import encode_response_format
from .openai import parse_usage as parse_openai_usage
from .params import Param, ParamTable, Unsupported, apply_params, passthrough

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "model_length": "length",  # the context window ran out before max_tokens
    "tool_calls": "tool_calls",
    "error": "error",
}

MISTRAL_PARAMS: ParamTable = {
    "max_tokens": Param("max_tokens", minimum=1),
    "temperature": Param("temperature", minimum=0, maximum=1.5),
    "top_p": Param("top_p", minimum=0, maximum=1),
    "top_k": Unsupported("Mistral has no top_k; use top_p or temperature"),
    "stop": Param("stop", transform=list),
    "seed": Param("random_seed"),
    "presence_penalty": Param("presence_penalty", minimum=-2, maximum=2),
    "frequency_penalty": Param("frequency_penalty", minimum=-2, maximum=2),
    "n": Param("n", minimum=1, maximum=1),
    "logprobs": Unsupported("Mistral does not return log probabilities"),
    "top_logprobs": Unsupported("Mistral does not return log probabilities"),
    "parallel_tool_calls": Param("parallel_tool_calls"),
    "user": Unsupported("Mistral has no end-user identifier"),
    "random_seed": Param("random_seed"),  # Mistral's own name, when a caller uses it
    **passthrough(
        "safe_prompt",
        "prompt_mode",
        "prediction",
        "reasoning_effort",
        "metadata",
        "guardrails",
        "prompt_cache_key",
        "service_tier",
    ),
}

_CALL_ID = re.compile(r"^[a-zA-Z0-9]{9}$")
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def finish_reason(raw: str | None) -> FinishReason:
    return FINISH_REASONS.get(raw or "stop", "other")


def upstream_call_id(call_id: str) -> str:
    """The tool-call id Mistral accepts for a client's id: unchanged when it already has Mistral's shape,
    otherwise a deterministic 9-character base62 digest of it (stateless, so every turn maps it alike)."""
    if _CALL_ID.match(call_id):
        return call_id
    number = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big")
    chars = []
    for _ in range(9):
        number, rest = divmod(number, 62)
        chars.append(_ALPHABET[rest])
    return "".join(chars)


class MistralAdapter(ProviderAdapter):
    info = ProviderInfo(
        name="mistral",
        default_base_url="https://api.mistral.ai",
        models=(
            "mistral-large-latest",
            "mistral-medium-latest",
            "mistral-small-latest",
            "magistral-medium-latest",
            "magistral-small-latest",
            "codestral-latest",
            "devstral-medium-latest",
            "pixtral-large-latest",
            "ministral-8b-latest",
            "open-mistral-nemo",
        ),
        docs="https://docs.mistral.ai/api/#tag/chat",
        embedding_models=("mistral-embed", "codestral-embed"),
    )
    params: ClassVar[ParamTable] = MISTRAL_PARAMS

    def build_embeddings_request(self, request: EmbeddingRequest, api_key: str) -> UpstreamRequest:
        """`POST /v1/embeddings`, OpenAI's shape; `output_dimension` (codestral-embed) for `dimensions`."""
        body = openai_style_body(
            request, self.name, dimensions_field="output_dimension", allowed=("output_dtype",), encoding_format=False
        )
        headers = {"authorization": f"Bearer {api_key}"}
        return UpstreamRequest(f"{self.base_url}/v1/embeddings", headers, body)

    def parse_embeddings_response(self, body: Any, request: EmbeddingRequest) -> EmbeddingResult:
        return parse_openai_style(body, request)

    def build_request(self, request: ChatRequest, api_key: str) -> UpstreamRequest:
        body: dict[str, Any] = {"model": request.model, "messages": encode_messages(request.messages, self.name)}
        apply_params(self.name, self.params, request.params.given(), body)
        apply_params(self.name, self.params, request.extra, body)
        if request.tools:
            body["tools"] = [encode_tool(t.name, t.description, t.parameters, t.strict) for t in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = encode_tool_choice(request.tool_choice)
        if request.response_format is not None:
            body["response_format"] = encode_response_format(request.response_format)
        if request.stream:
            body["stream"] = True  # the usage comes with the last chunk; Mistral has no stream_options
        headers = {"authorization": f"Bearer {api_key}"}
        return UpstreamRequest(f"{self.base_url}/v1/chat/completions", headers, body, stream=request.stream)

    def parse_response(self, body: Any) -> ChatResult:
        choice = body["choices"][0]
        message = choice.get("message") or {}
        texts, reasoning = read_content(message.get("content"))
        calls = [
            ToolCallPart(c.get("id") or "", c["function"]["name"], arguments_text(c["function"].get("arguments")))
            for c in message.get("tool_calls") or []
        ]
        text = "".join(texts)
        raw = choice.get("finish_reason")
        return ChatResult(
            id=body.get("id", ""),
            model=body.get("model", ""),
            text=text if text or not calls else None,
            tool_calls=calls,
            reasoning="".join(r.text for r in reasoning) or None,
            reasoning_parts=reasoning,
            finish_reason=finish_reason(raw),
            raw_finish_reason=raw,
            usage=parse_usage(body.get("usage")),
            raw=body,
        )

    def stream_decoder(self, request: ChatRequest) -> StreamDecoder:
        return MistralStreamDecoder(self)

    def error_message(self, body: Any) -> str | None:
        if isinstance(body, dict):
            found = _validation_text(body.get("detail")) or _message_text(body.get("message"))
            if found:
                return found
        return super().error_message(body)

    def map_error(self, status: int, body: Any, headers: Mapping[str, str]) -> UnimodelError:
        error = super().map_error(status, body, headers)
        if status == 422:  # FastAPI's request validation: a bad request like any other 400
            error.status = 400
        elif status == 400 and isinstance(body, dict) and body.get("type") == "invalid_model":
            error = NotFound(error.message, code="upstream_not_found", provider=self.name, provider_body=body)
        return error


class MistralStreamDecoder(StreamDecoder):
    """`chat.completion.chunk` events. Each tool call arrives whole (id, name, arguments) in one chunk, so every
    call with an id is a new call; a piece without an id extends the call at its `index`."""

    def __init__(self, adapter: ProviderAdapter) -> None:
        self._adapter = adapter
        self._started = False
        self._finish: Finish | None = None
        self._done = False
        self._calls: dict[int, int] = {}  # upstream index of the latest call there -> canonical index
        self._count = 0

    def done(self) -> bool:
        return self._done

    def feed(self, message: SSEMessage) -> list[StreamEvent]:
        if message.data == "[DONE]":
            self._done = True
            return self.close()
        if not message.data:
            return []
        chunk = from_json(message.data)
        if "choices" not in chunk and (chunk.get("object") == "error" or "error" in chunk or "detail" in chunk):
            return [StreamError(self._adapter.map_error(500, chunk, {}))]
        out: list[StreamEvent] = []
        if not self._started:
            self._started = True
            out.append(StreamStart(chunk.get("id", ""), chunk.get("model", "")))
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            out.extend(_content_events(delta.get("content")))
            for call in delta.get("tool_calls") or []:
                out.append(self._call_event(call))
            if choice.get("finish_reason"):
                raw = choice["finish_reason"]
                self._finish = Finish(finish_reason(raw), raw)
        if chunk.get("usage"):
            out.append(UsageEvent(parse_usage(chunk["usage"])))
        return out

    def _call_event(self, call: dict[str, Any]) -> ToolCallDelta:
        fn = call.get("function") or {}
        arguments = arguments_text(fn.get("arguments"))
        upstream_index = call.get("index") or 0
        if call.get("id") or upstream_index not in self._calls:
            index = self._calls[upstream_index] = self._count
            self._count += 1
            return ToolCallDelta(index, call.get("id"), fn.get("name"), arguments)
        return ToolCallDelta(self._calls[upstream_index], None, None, arguments)

    def close(self) -> list[StreamEvent]:
        finish, self._finish = self._finish, None
        return [finish] if finish is not None else []


def _content_events(content: Any) -> list[StreamEvent]:
    if isinstance(content, str):
        return [TextDelta(content)] if content else []
    out: list[StreamEvent] = []
    for chunk in content or []:
        kind = chunk.get("type")
        if kind == "text" and chunk.get("text"):
            out.append(TextDelta(chunk["text"]))
        elif kind == "thinking":
            text = _thinking_text(chunk)
            if text:
                out.append(ReasoningDelta(text))
            if chunk.get("signature"):
                out.append(ReasoningDelta("", signature=chunk["signature"]))
    return out


def read_content(content: Any) -> tuple[list[str], list[ReasoningPart]]:
    """(text pieces, reasoning blocks) of a message's content: a string, or a list of chunks."""
    if isinstance(content, str):
        return [content], []
    texts: list[str] = []
    reasoning: list[ReasoningPart] = []
    for chunk in content or []:
        kind = chunk.get("type")
        if kind == "text":
            texts.append(chunk.get("text") or "")
        elif kind == "thinking":
            reasoning.append(ReasoningPart(_thinking_text(chunk), chunk.get("signature")))
    return texts, reasoning


def _thinking_text(chunk: dict[str, Any]) -> str:
    return "".join(p.get("text") or "" for p in chunk.get("thinking") or [] if p.get("type") == "text")


def arguments_text(arguments: Any) -> str:
    """Mistral sends arguments as JSON text, and sometimes as an object: always text in the canonical form."""
    if arguments is None:
        return ""
    if isinstance(arguments, str):
        return arguments
    return to_json(arguments).decode()


def parse_usage(usage: Any) -> Usage:
    out = parse_openai_usage(usage)
    if isinstance(usage, dict) and out.cached_input_tokens is None and usage.get("num_cached_tokens") is not None:
        out.cached_input_tokens = usage["num_cached_tokens"]
    return out


def _validation_text(detail: Any) -> str | None:
    """FastAPI's validation errors as one line: `messages.0.user.name: Extra inputs are not permitted; …`."""
    if isinstance(detail, str):
        return detail
    if not isinstance(detail, list) or not detail:
        return None
    lines = []
    for item in detail[:3]:
        if not isinstance(item, dict):
            continue
        loc = [str(p) for p in item.get("loc") or [] if p != "body"]
        lines.append(f"{'.'.join(loc)}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
    more = f" (and {len(detail) - 3} more)" if len(detail) > 3 else ""
    return "; ".join(lines) + more if lines else None


def _message_text(message: Any) -> str | None:
    """`message` is usually a string; older answers nest the validation errors in it (as an object, a list, or
    the JSON text of `{"detail": [...]}`)."""
    if isinstance(message, dict):
        return _validation_text(message.get("detail"))
    if isinstance(message, list):
        return _validation_text(message)
    if isinstance(message, str) and message.startswith('{"detail"'):
        try:
            return _validation_text(from_json(message).get("detail")) or message
        except ValueError:
            return message
    return message if isinstance(message, str) and message else None


# --------------------------------------------------------------------------------------------- requests


def encode_messages(messages: tuple[Message, ...], provider: str) -> list[dict[str, Any]]:
    """Mistral messages for the canonical ones (one tool message per result), bridging `tool` → `user`."""
    names = {c.id: c.name for m in messages if m.role == "assistant" for c in m.tool_calls()}
    out: list[dict[str, Any]] = []
    for msg in messages:
        encoded = _encode_message(msg, names, provider)
        if encoded and encoded[0]["role"] in ("user", "system") and out and out[-1]["role"] == "tool":
            out.append({"role": "assistant", "content": ""})  # only an assistant or a tool may follow a tool
        out.extend(encoded)
    if out and out[-1]["role"] == "assistant":
        out[-1]["prefix"] = True  # a trailing assistant message is a prefill; Mistral refuses it otherwise
    return out


def _encode_message(msg: Message, names: Mapping[str, str], provider: str) -> list[dict[str, Any]]:
    # Mistral forbids `name` on system, user and assistant messages (422 extra_forbidden): it is not sent.
    if msg.role == "tool":
        out = []
        for part in msg.parts:
            if isinstance(part, ToolResultPart):
                tool: dict[str, Any] = {
                    "role": "tool",
                    "tool_call_id": upstream_call_id(part.tool_call_id),
                    "content": _result_text(part, provider),
                }
                name = part.name or names.get(part.tool_call_id)
                if name:
                    tool["name"] = name
                out.append(tool)
        return out
    if msg.role == "assistant":
        return [_encode_assistant(msg)]
    if msg.role == "system" or all(isinstance(p, TextPart) for p in msg.parts):
        return [{"role": msg.role, "content": msg.text()}]
    return [{"role": msg.role, "content": [_encode_part(p) for p in msg.parts if isinstance(p, TextPart | ImagePart)]}]


def _encode_assistant(msg: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant"}
    reasoning = [p for p in msg.parts if isinstance(p, ReasoningPart) and not p.redacted and p.text]
    if reasoning:
        # Replayed as closed thinking chunks before the text, as Mistral returned them. Signatures are not sent:
        # Mistral's chat answers carry none, so any signature here is another provider's, which Mistral can't check.
        chunks = [
            {"type": "thinking", "thinking": [{"type": "text", "text": p.text}], "closed": True} for p in reasoning
        ]
        if msg.text():
            chunks.append({"type": "text", "text": msg.text()})
        out["content"] = chunks
    else:
        out["content"] = msg.text()
    calls = msg.tool_calls()
    if calls:
        out["tool_calls"] = [
            {
                "id": upstream_call_id(c.id),
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments or "{}"},
            }
            for c in calls
        ]
    return out


def _encode_part(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    url = image_url(part)
    return {"type": "image_url", "image_url": {"url": url, "detail": part.detail} if part.detail else url}


def _result_text(part: ToolResultPart, provider: str) -> str:
    if not all(isinstance(p, TextPart) for p in part.content):
        raise UnsupportedParameter(
            "tool_result.image",
            provider,
            "tool messages take text only; send the image in a user message after the tool results",
        )
    return "".join(p.text for p in part.content if isinstance(p, TextPart))


def encode_tool(
    name: str, description: str | None, parameters: dict[str, Any] | None, strict: bool | None
) -> dict[str, Any]:
    # Mistral requires `parameters`; a tool without arguments takes an empty object.
    fn: dict[str, Any] = {"name": name, "parameters": parameters or {"type": "object", "properties": {}}}
    if description is not None:
        fn["description"] = description
    if strict is not None:
        fn["strict"] = strict
    return {"type": "function", "function": fn}


def encode_tool_choice(choice: ToolChoice) -> str | dict[str, Any]:
    if choice.mode == "required":
        return "any"  # Mistral's word for "some tool" (it also takes "required" today; "any" is the documented one)
    if choice.mode == "tool":
        if not choice.name:
            raise InvalidRequest("tool_choice of mode 'tool' needs the tool's name.", param="tool_choice")
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode
