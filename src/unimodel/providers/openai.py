"""OpenAI chat completions — and the base every OpenAI-compatible vendor reuses."""

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
    ImageRequest,
    ImageResult,
    Message,
    PaymentRequired,
    ReasoningDelta,
    ResponseFormat,
    SpeechRequest,
    SpeechResult,
    StreamError,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    TranscriptionRequest,
    TranscriptionResult,
    UnimodelError,
    UnsupportedParameter,
    Usage,
    UsageEvent,
)
from . import openai_media
from .base import ProviderAdapter, ProviderInfo, SSEMessage, StreamDecoder, UpstreamRequest
from .content import image_url
from .embeddings import openai_style_body, parse_openai_style
from .params import Param, ParamTable, Unsupported, apply_params, passthrough

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}

OPENAI_PARAMS: ParamTable = {
    "max_tokens": Param("max_completion_tokens", minimum=1),
    "temperature": Param("temperature", minimum=0, maximum=2),
    "top_p": Param("top_p", minimum=0, maximum=1),
    "top_k": Unsupported("OpenAI has no top_k; use top_p or temperature"),
    "stop": Param("stop", transform=list),
    "seed": Param("seed"),
    "presence_penalty": Param("presence_penalty", minimum=-2, maximum=2),
    "frequency_penalty": Param("frequency_penalty", minimum=-2, maximum=2),
    "n": Param("n", minimum=1, maximum=1),
    "logprobs": Param("logprobs"),
    "top_logprobs": Param("top_logprobs", minimum=0, maximum=20),
    "parallel_tool_calls": Param("parallel_tool_calls"),
    "user": Param("user"),
    **passthrough(
        "logit_bias",
        "service_tier",
        "store",
        "metadata",
        "reasoning_effort",
        "verbosity",
        "modalities",
        "audio",
        "prediction",
        "web_search_options",
        "safety_identifier",
        "prompt_cache_key",
    ),
}


def _error_code(body: Any) -> str | None:
    err = body.get("error") if isinstance(body, dict) else None
    return err.get("code") if isinstance(err, dict) else None


def finish_reason(raw: str | None) -> FinishReason:
    return FINISH_REASONS.get(raw or "stop", "other")


class OpenAIAdapter(ProviderAdapter):
    info = ProviderInfo(
        name="openai",
        default_base_url="https://api.openai.com/v1",
        models=(
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-4.1-nano",
            "gpt-5",
            "gpt-5-mini",
            "o3",
            "o4-mini",
        ),
        docs="https://platform.openai.com/docs/api-reference/chat",
        embedding_models=("text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"),
        image_models=("gpt-image-1", "gpt-image-1-mini", "dall-e-3", "dall-e-2"),
        transcription_models=("gpt-4o-transcribe", "gpt-4o-mini-transcribe", "whisper-1"),
        speech_models=("gpt-4o-mini-tts", "tts-1", "tts-1-hd"),
    )
    params: ClassVar[ParamTable] = OPENAI_PARAMS
    # Where an answer carries reasoning text (a message field, and a stream delta field); compatible vendors differ.
    reasoning_key: ClassVar[str] = "reasoning_content"

    def headers(self, api_key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"}

    def url(self, request: ChatRequest) -> str:
        return f"{self.base_url}/chat/completions"

    def embeddings_url(self, model: str) -> str:
        return f"{self.base_url}/embeddings"

    # OpenAI's `dimensions` (text-embedding-3 models); a vendor without it says None
    embeddings_dimensions_field: ClassVar[str | None] = "dimensions"

    def build_embeddings_request(self, request: EmbeddingRequest, api_key: str) -> UpstreamRequest:
        body = openai_style_body(
            request, self.name, dimensions_field=self.embeddings_dimensions_field, allowed=("user",)
        )
        return UpstreamRequest(self.embeddings_url(request.model), self.headers(api_key), body)

    def parse_embeddings_response(self, body: Any, request: EmbeddingRequest) -> EmbeddingResult:
        return parse_openai_style(body, request)

    def task_url(self, model: str, path: str) -> str:
        """The URL of another of its APIs (`images/generations`, `audio/speech` …) for `model`."""
        return f"{self.base_url}/{path}"

    def build_image_request(self, request: ImageRequest, api_key: str) -> UpstreamRequest:
        body = openai_media.image_body(request, self.name)
        return UpstreamRequest(self.task_url(request.model, "images/generations"), self.headers(api_key), body)

    def parse_image_response(self, body: Any, request: ImageRequest) -> ImageResult:
        return openai_media.parse_images(body, request)

    def build_transcription_request(self, request: TranscriptionRequest, api_key: str) -> UpstreamRequest:
        content, content_type = openai_media.transcription_upload(request, self.name)
        headers = {**self.headers(api_key), "content-type": content_type}
        return UpstreamRequest(self.task_url(request.model, "audio/transcriptions"), headers, {}, content=content)

    def parse_transcription_response(
        self, body: bytes, content_type: str, request: TranscriptionRequest
    ) -> TranscriptionResult:
        return openai_media.parse_transcription(body, content_type, request)

    def build_speech_request(self, request: SpeechRequest, api_key: str) -> UpstreamRequest:
        body = openai_media.speech_body(request, self.name)
        return UpstreamRequest(self.task_url(request.model, "audio/speech"), self.headers(api_key), body)

    def parse_speech_response(self, body: bytes, content_type: str, request: SpeechRequest) -> SpeechResult:
        return openai_media.parse_speech(body, content_type, request)

    def build_request(self, request: ChatRequest, api_key: str) -> UpstreamRequest:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [m for msg in request.messages for m in encode_message(msg, self.name)],
        }
        apply_params(self.name, self.params, request.params.given(), body)
        apply_params(self.name, self.params, request.extra, body)
        if request.tools:
            body["tools"] = [encode_tool(t.name, t.description, t.parameters, t.strict) for t in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = encode_tool_choice(request.tool_choice)
        if request.response_format is not None:
            body["response_format"] = encode_response_format(request.response_format)
        if request.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return UpstreamRequest(self.url(request), self.headers(api_key), body, stream=request.stream)

    def parse_response(self, body: Any) -> ChatResult:
        choice = body["choices"][0]
        message = choice.get("message") or {}
        calls = [
            ToolCallPart(c["id"], c["function"]["name"], c["function"].get("arguments") or "")
            for c in message.get("tool_calls") or []
        ]
        text = message.get("content")
        reason = choice.get("finish_reason")
        mapped = finish_reason(reason)
        if text is None and message.get("refusal"):
            text, mapped = message["refusal"], "content_filter"
        return ChatResult(
            id=body.get("id", ""),
            model=body.get("model", ""),
            text=text,
            tool_calls=calls,
            reasoning=message.get(self.reasoning_key),
            finish_reason=mapped,
            raw_finish_reason=reason,
            usage=parse_usage(body.get("usage")),
            raw=body,
        )

    def stream_decoder(self, request: ChatRequest) -> StreamDecoder:
        return OpenAIStreamDecoder(self, self.reasoning_key)

    def map_error(self, status: int, body: Any, headers: Mapping[str, str]) -> UnimodelError:
        error = super().map_error(status, body, headers)
        if status == 429 and _error_code(body) == "insufficient_quota":
            # Out of credit, not a rate limit: waiting won't help, so clients must not retry it.
            error = PaymentRequired(error.message, provider=self.name, provider_body=body)
        return error


class OpenAIStreamDecoder(StreamDecoder):
    def __init__(self, adapter: ProviderAdapter, reasoning_key: str = "reasoning_content") -> None:
        self._adapter = adapter
        self._reasoning_key = reasoning_key
        self._started = False
        self._finish: Finish | None = None
        self._done = False
        self._text = False  # content text was streamed
        self._refused = False  # a refusal was streamed (and no content): finish as content_filter

    def done(self) -> bool:
        return self._done

    def feed(self, message: SSEMessage) -> list[StreamEvent]:
        if message.data == "[DONE]":
            self._done = True
            return self.close()
        if not message.data:
            return []
        chunk = from_json(message.data)
        if "error" in chunk and "choices" not in chunk:
            return [StreamError(self._adapter.map_error(500, chunk, {}))]
        out: list[StreamEvent] = []
        if not self._started:
            self._started = True
            out.append(StreamStart(chunk.get("id", ""), chunk.get("model", "")))
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get(self._reasoning_key):
                out.append(ReasoningDelta(delta[self._reasoning_key]))
            if delta.get("content"):
                self._text = True
                out.append(TextDelta(delta["content"]))
            if delta.get("refusal"):
                self._refused = True
                out.append(TextDelta(delta["refusal"]))
            for call in delta.get("tool_calls") or []:
                fn = call.get("function") or {}
                out.append(
                    ToolCallDelta(call.get("index", 0), call.get("id"), fn.get("name"), fn.get("arguments") or "")
                )
            if choice.get("finish_reason"):
                raw = choice["finish_reason"]
                mapped: FinishReason = "content_filter" if self._refused and not self._text else finish_reason(raw)
                self._finish = Finish(mapped, raw)
        if chunk.get("usage"):
            out.append(UsageEvent(parse_usage(chunk["usage"])))
        return out

    def close(self) -> list[StreamEvent]:
        finish, self._finish = self._finish, None
        return [finish] if finish is not None else []


def parse_usage(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=usage.get("prompt_tokens") or 0,
        output_tokens=usage.get("completion_tokens") or 0,
        cached_input_tokens=prompt_details.get("cached_tokens"),
        reasoning_tokens=completion_details.get("reasoning_tokens"),
    )


def encode_message(msg: Message, provider: str) -> list[dict[str, Any]]:
    """One canonical message as OpenAI messages (a tool message with several results becomes several)."""
    if msg.role == "tool":
        return [
            {"role": "tool", "tool_call_id": p.tool_call_id, "content": _encode_result_content(p, provider)}
            for p in msg.parts
            if isinstance(p, ToolResultPart)
        ]
    out: dict[str, Any] = {"role": msg.role}
    if msg.name:
        out["name"] = msg.name
    if msg.role == "assistant":
        calls = msg.tool_calls()
        text = msg.text()
        out["content"] = text if text or not calls else None
        if calls:
            out["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls
            ]
        return [out]
    if msg.role == "system" or all(isinstance(p, TextPart) for p in msg.parts):
        out["content"] = msg.text()
        return [out]
    out["content"] = [_encode_part(p) for p in msg.parts if isinstance(p, TextPart | ImagePart)]
    return [out]


def _encode_part(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    image: dict[str, Any] = {"url": image_url(part)}
    if part.detail:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def _encode_result_content(part: ToolResultPart, provider: str) -> str:
    """A tool result as a tool message's content: OpenAI takes text only there (no image parts)."""
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
    fn: dict[str, Any] = {"name": name}
    if description is not None:
        fn["description"] = description
    if parameters is not None:
        fn["parameters"] = parameters
    if strict is not None:
        fn["strict"] = strict
    return {"type": "function", "function": fn}


def encode_tool_choice(choice: ToolChoice) -> str | dict[str, Any]:
    if choice.mode == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def encode_response_format(fmt: ResponseFormat) -> dict[str, Any]:
    if fmt.type == "json":
        return {"type": "json_object"}
    if fmt.type == "json_schema":
        schema: dict[str, Any] = {"name": fmt.name or "response", "schema": fmt.schema or {"type": "object"}}
        if fmt.strict is not None:
            schema["strict"] = fmt.strict
        return {"type": "json_schema", "json_schema": schema}
    return {"type": "text"}
