"""Google Gemini API (`v1beta` `generateContent` / `streamGenerateContent?alt=sse`).

The shape: `contents` of `user`/`model` turns whose `parts` are text, `inlineData`, `fileData`, `functionCall`
and `functionResponse`; system messages become `systemInstruction`; sampling goes in `generationConfig`.

- Gemini matches function results by name, not id. Call ids are Gemini's own when it sends one; otherwise a
  stable id is derived from the response id and the call's position (`gcall_…`, never sent back upstream).
  A result's function name is found statelessly: the earlier assistant call with the result's id.
- Thoughts (`thought: true` parts) are reasoning; a `thoughtSignature` on a function call is the call's
  `signature` and goes back on that call; one on a text part closes the reasoning block (a signed
  ReasoningPart) and goes back on the turn's last text part. Thought summaries are not sent back.
- Usage: canonical output tokens include the thoughts (`candidatesTokenCount + thoughtsTokenCount`, as OpenAI
  counts reasoning inside completion_tokens) and input includes tool-use prompt tokens, so input + output is
  Gemini's `totalTokenCount`; `reasoning_tokens` is `thoughtsTokenCount`.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic_core import from_json, to_json

from ..protocol import (
    AuthenticationError,
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
    Usage,
    UsageEvent,
)
from .base import ProviderAdapter, ProviderInfo, SSEMessage, StreamDecoder, UpstreamRequest
from .content import image_inline, parse_arguments
from .embeddings import refuse_extras
from .google_schema import is_free_object, to_gemini_schema
from .params import OnlyDefault, Param, ParamTable, Unsupported, apply_params

API_VERSION = "v1beta"
SYNTHETIC_ID_PREFIX = "gcall_"
GEMINI_TASK_TYPES = {  # Gemini's taskType for a canonical purpose
    "query": "RETRIEVAL_QUERY",
    "document": "RETRIEVAL_DOCUMENT",
    "similarity": "SEMANTIC_SIMILARITY",
    "classification": "CLASSIFICATION",
    "clustering": "CLUSTERING",
}
MODEL_COLLECTIONS = frozenset({"models", "tunedModels"})  # the resource collections generateContent is called on
# Google's documented stand-in for a call Gemini 3 did not generate (history from another model).
DUMMY_SIGNATURE = "skip_thought_signature_validator"
MAX_STOP_SEQUENCES = 5

FINISH_REASONS: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
}
AUTH_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED"})


def _stop_sequences(stops: Iterable[str]) -> list[str]:
    out = list(stops)
    if len(out) > MAX_STOP_SEQUENCES:
        raise InvalidRequest(
            f"Parameter 'stop' takes at most {MAX_STOP_SEQUENCES} sequences for provider 'google', got {len(out)}.",
            param="stop",
        )
    return out


GOOGLE_PARAMS: ParamTable = {
    "max_tokens": Param("generationConfig.maxOutputTokens", minimum=1),
    "temperature": Param("generationConfig.temperature", minimum=0, maximum=2),
    "top_p": Param("generationConfig.topP", minimum=0, maximum=1),
    "top_k": Param("generationConfig.topK", minimum=1),
    "stop": Param("generationConfig.stopSequences", transform=_stop_sequences),
    "seed": Param("generationConfig.seed"),
    "presence_penalty": Param("generationConfig.presencePenalty", minimum=-2, maximum=2),
    "frequency_penalty": Param("generationConfig.frequencyPenalty", minimum=-2, maximum=2),
    "n": Param("generationConfig.candidateCount", minimum=1, maximum=1),
    "logprobs": Param("generationConfig.responseLogprobs"),
    "top_logprobs": Param("generationConfig.logprobs", minimum=0, maximum=20),
    "parallel_tool_calls": OnlyDefault(True, "Gemini has no switch to turn off parallel function calls"),
    "user": Unsupported("Gemini has no end-user field"),
    "reasoning_effort": Unsupported(
        "use thinkingConfig: {thinkingBudget: N} (Gemini 2.5) or {thinkingLevel: 'low'|'high'} (Gemini 3)"
    ),
    # Gemini's own fields by their REST names (and the proto names the REST API also accepts).
    "thinkingConfig": Param("generationConfig.thinkingConfig"),
    "thinking_config": Param("generationConfig.thinkingConfig"),
    "responseModalities": Param("generationConfig.responseModalities"),
    "mediaResolution": Param("generationConfig.mediaResolution"),
    "speechConfig": Param("generationConfig.speechConfig"),
    "imageConfig": Param("generationConfig.imageConfig"),
    "enableEnhancedCivicAnswers": Param("generationConfig.enableEnhancedCivicAnswers"),
    "safetySettings": Param("safetySettings"),
    "safety_settings": Param("safetySettings"),
    "cachedContent": Param("cachedContent"),
    "cached_content": Param("cachedContent"),
}


def finish_reason(raw: str | None) -> FinishReason:
    return FINISH_REASONS.get(raw or "STOP", "other")


class GoogleAdapter(ProviderAdapter):
    info = ProviderInfo(
        name="google",
        default_base_url="https://generativelanguage.googleapis.com",
        models=(
            "gemini-3-pro-preview",
            "gemini-3-flash-preview",
            "gemini-2.5-pro",
            "gemini-2.5-flash",
            "gemini-2.5-flash-lite",
            "gemini-2.0-flash",
        ),
        key_header="x-goog-api-key",
        docs="https://ai.google.dev/api/generate-content",
        inline_images=True,
        embedding_models=("gemini-embedding-001", "text-embedding-004"),
    )
    params: ClassVar[ParamTable] = GOOGLE_PARAMS

    def build_request(self, request: ChatRequest, api_key: str) -> UpstreamRequest:
        system, contents = self.encode_messages(request.messages, _needs_signatures(request.model))
        if not contents:
            raise InvalidRequest(
                "Gemini needs at least one user or assistant message besides the system ones.", param="messages"
            )
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": system}
        apply_params(self.name, self.params, request.params.given(), body)
        apply_params(self.name, self.params, request.extra, body)
        if request.tools:
            body["tools"] = [{"functionDeclarations": [self._declaration(i, t) for i, t in enumerate(request.tools)]}]
        if request.tool_choice is not None:
            body["toolConfig"] = {"functionCallingConfig": encode_tool_choice(request.tool_choice)}
        if request.response_format is not None:
            self._response_format(request.response_format, body)
        version = self.config.api_version or API_VERSION
        action = "streamGenerateContent?alt=sse" if request.stream else "generateContent"
        url = f"{self.base_url}/{version}/{resource_name(request.model)}:{action}"
        return UpstreamRequest(url, {"x-goog-api-key": api_key}, body, stream=request.stream)

    def build_embeddings_request(self, request: EmbeddingRequest, api_key: str) -> UpstreamRequest:
        """`POST …/models/<name>:batchEmbedContents`: one request per text, each naming the model, with the purpose as
        `taskType` and `dimensions` as `outputDimensionality`."""
        refuse_extras(request, self.name)
        resource = resource_name(request.model)
        one: dict[str, Any] = {"model": resource}
        if request.purpose is not None:
            one["taskType"] = GEMINI_TASK_TYPES[request.purpose]
        if request.dimensions is not None:
            one["outputDimensionality"] = request.dimensions
        body = {"requests": [{**one, "content": {"parts": [{"text": text}]}} for text in request.inputs]}
        version = self.config.api_version or API_VERSION
        url = f"{self.base_url}/{version}/{resource}:batchEmbedContents"
        return UpstreamRequest(url, {"x-goog-api-key": api_key}, body)

    def parse_embeddings_response(self, body: Any, request: EmbeddingRequest) -> EmbeddingResult:
        vectors = [[float(x) for x in e["values"]] for e in body["embeddings"]]
        if len(vectors) != len(request.inputs):
            raise ValueError(f"{len(vectors)} vectors for {len(request.inputs)} inputs")
        return EmbeddingResult(vectors, request.model)  # Gemini's embeddings answer has no token counts

    def _declaration(self, index: int, tool: Tool) -> dict[str, Any]:
        decl: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            decl["description"] = tool.description
        if not is_free_object(tool.parameters):  # Gemini refuses an OBJECT without properties: send none
            decl["parameters"] = to_gemini_schema(tool.parameters or {}, self.name, f"tools[{index}].parameters")
        return decl

    def _response_format(self, fmt: ResponseFormat, body: dict[str, Any]) -> None:
        if fmt.type == "text":
            return
        config = body.setdefault("generationConfig", {})
        config["responseMimeType"] = "application/json"
        if fmt.type == "json_schema" and not is_free_object(fmt.schema):
            config["responseSchema"] = to_gemini_schema(
                fmt.schema or {}, self.name, "response_format.schema", order_properties=True
            )

    # ---------------------------------------------------------------------------------------- messages

    def encode_messages(
        self, messages: tuple[Message, ...], sign_calls: bool = False
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(systemInstruction parts, contents). Consecutive turns of one role merge; results lead their turn."""
        system: list[dict[str, Any]] = []
        contents: list[dict[str, Any]] = []
        names: dict[str, str] = {}  # call id -> function name, from the assistant calls seen so far
        for i, msg in enumerate(messages):
            where = f"messages[{i}]"
            if msg.role == "system":
                if msg.text():
                    system.append({"text": msg.text()})
                continue
            if msg.role == "assistant":
                role, parts = "model", self._model_parts(msg, where, sign_calls)
                names.update((c.id, c.name) for c in msg.tool_calls())
            elif msg.role == "tool":
                role, parts = "user", self._result_parts(msg, where, names)
            else:
                role, parts = "user", [self._user_part(p, where) for p in msg.parts if not _empty(p)]
            if not parts:
                continue
            if contents and contents[-1]["role"] == role:
                contents[-1]["parts"].extend(parts)
            else:
                contents.append({"role": role, "parts": parts})
        for content in contents:  # a turn answering calls opens with its functionResponse parts
            content["parts"].sort(key=lambda p: "functionResponse" not in p)
        return system, contents

    def _user_part(self, part: Any, where: str) -> dict[str, Any]:
        if isinstance(part, TextPart):
            return {"text": part.text}
        if isinstance(part, ImagePart):
            return self.encode_image(part, where)
        raise InvalidRequest(f"{where}: a user message cannot carry a {part.type} part.", param=where)

    def _model_parts(self, msg: Message, where: str, sign_calls: bool) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        signatures = [p.signature for p in msg.parts if isinstance(p, ReasoningPart) and p.signature and not p.redacted]
        first_call = True
        for part in msg.parts:
            if isinstance(part, TextPart) and part.text:
                parts.append({"text": part.text})
            elif isinstance(part, ImagePart):
                parts.append(self.encode_image(part, where))
            elif isinstance(part, ToolCallPart):
                call: dict[str, Any] = {"name": part.name, "args": parse_arguments(part.arguments, where)}
                if not part.id.startswith(SYNTHETIC_ID_PREFIX):
                    call["id"] = part.id
                out: dict[str, Any] = {"functionCall": call}
                signature = part.signature or (DUMMY_SIGNATURE if sign_calls and first_call else None)
                if signature:
                    out["thoughtSignature"] = signature
                parts.append(out)
                first_call = False
        texts = [p for p in parts if "text" in p]
        if signatures and texts:  # a signature that came on a text part goes back on the turn's last text part
            texts[-1]["thoughtSignature"] = signatures[-1]
        return parts

    def _result_parts(self, msg: Message, where: str, names: Mapping[str, str]) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        images: list[dict[str, Any]] = []
        for part in msg.parts:
            if not isinstance(part, ToolResultPart):
                continue
            name = names.get(part.tool_call_id) or part.name
            if name is None:
                raise InvalidRequest(
                    f"{where}: tool result '{part.tool_call_id}' answers no earlier assistant tool call; Gemini "
                    "matches results by function name, so send the assistant message with that call first.",
                    param=f"{where}.tool_call_id",
                )
            text = "".join(p.text for p in part.content if isinstance(p, TextPart))
            response = {"error" if part.is_error else "output": _result_value(text)}
            result: dict[str, Any] = {"name": name, "response": response}
            if not part.tool_call_id.startswith(SYNTHETIC_ID_PREFIX):
                result["id"] = part.tool_call_id
            parts.append({"functionResponse": result})
            images.extend(self.encode_image(p, where) for p in part.content if isinstance(p, ImagePart))
        return parts + images

    def encode_image(self, part: ImagePart, where: str) -> dict[str, Any]:
        if part.url is not None and not part.url.startswith("data:"):
            if not self.is_file_uri(part.url):
                raise InvalidRequest(
                    f"{where}: Gemini takes images inline (base64 or a data: URL) or as a Files API or gs:// URI; "
                    "this http(s) image URL was not fetched into inline data. Send the image as base64.",
                    param=f"{where}.image",
                )
            file: dict[str, Any] = {"fileUri": part.url}
            mime = part.mime_type or mimetypes.guess_type(part.url.split("?")[0])[0]
            if mime:
                file["mimeType"] = mime
            return {"fileData": file}
        inline = image_inline(part)
        assert inline is not None
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}

    def reads_url(self, url: str) -> bool:
        return self.is_file_uri(url)

    def is_file_uri(self, url: str) -> bool:
        """A URI Gemini reads itself: Files API (`…/v1beta/files/…`), Cloud Storage, YouTube."""
        if url.startswith(("gs://", "https://www.youtube.com/", "https://youtu.be/")):
            return True
        hosts = {self.info.default_base_url, self.base_url}
        return any(url.startswith(f"{h}/") and "/files/" in url for h in hosts)

    # --------------------------------------------------------------------------------------- responses

    def parse_response(self, body: Any) -> ChatResult:
        response_id = body.get("responseId", "")
        candidate = _first_candidate(body)
        reader = PartReader(response_id)
        events = reader.read((candidate.get("content") or {}).get("parts") or []) if candidate else []
        texts = [e.text for e in events if isinstance(e, TextDelta)]
        calls = [
            ToolCallPart(e.id or "", e.name or "", e.arguments, e.signature)
            for e in events
            if isinstance(e, ToolCallDelta)
        ]
        reasoning = _reasoning_parts(events)
        finish, raw = _finish(body, candidate, bool(calls))
        return ChatResult(
            id=response_id,
            model=body.get("modelVersion", ""),
            text="".join(texts) if texts or (not calls and candidate) else None,
            tool_calls=calls,
            reasoning="".join(r.text for r in reasoning) or None,
            reasoning_parts=reasoning,
            finish_reason=finish,
            raw_finish_reason=raw,
            usage=parse_usage(body.get("usageMetadata")),
            raw=body,
        )

    def stream_decoder(self, request: ChatRequest) -> StreamDecoder:
        return GoogleStreamDecoder(self)

    # ------------------------------------------------------------------------------------------ errors

    def error_message(self, body: Any) -> str | None:
        if isinstance(body, list) and body:  # streamGenerateContent without alt=sse wraps errors in a list
            body = body[0]
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            status = err.get("status")
            return f"{status}: {err['message']}" if status else str(err["message"])
        return super().error_message(body)

    def map_error(self, status: int, body: Any, headers: Mapping[str, str]) -> UnimodelError:
        details = _error_details(body)
        reason = next((d.get("reason") for d in details if str(d.get("@type", "")).endswith("ErrorInfo")), None)
        if reason in AUTH_REASONS:  # an invalid key is a 400 INVALID_ARGUMENT on the Gemini API
            return AuthenticationError(
                f"Provider '{self.name}' rejected the provider key: {self.error_message(body) or reason}",
                code="provider_auth_failed",
                provider=self.name,
                provider_body=body,
            )
        error = super().map_error(status, body, headers)
        if error.retry_after is None:  # Gemini says when to retry in a RetryInfo detail, not a header
            delay = next((d.get("retryDelay") for d in details if str(d.get("@type", "")).endswith("RetryInfo")), None)
            error.retry_after = _duration(delay)
        return error


class PartReader:
    """Turns response parts into canonical deltas, numbering calls across the chunks of one response."""

    def __init__(self, response_id: str) -> None:
        self.response_id = response_id
        self.calls = 0

    def read(self, parts: Iterable[Any]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for part in parts:
            signature = part.get("thoughtSignature")
            if "functionCall" in part:
                call = part["functionCall"]
                args = to_json(call.get("args") or {}).decode()
                call_id = call.get("id") or self._synthetic_id(call.get("name", ""), args)
                out.append(ToolCallDelta(self.calls, call_id, call.get("name", ""), args, signature))
                self.calls += 1
            elif part.get("thought"):
                out.append(ReasoningDelta(part.get("text", ""), signature=signature))
            elif "text" in part:
                if part["text"]:
                    out.append(TextDelta(part["text"]))
                if signature:  # closes the reasoning that led to this text
                    out.append(ReasoningDelta("", signature=signature))
        return out

    def _synthetic_id(self, name: str, args: str) -> str:
        digest = hashlib.sha256(f"{self.response_id}:{self.calls}:{name}:{args}".encode()).hexdigest()
        return f"{SYNTHETIC_ID_PREFIX}{digest[:24]}"


class GoogleStreamDecoder(StreamDecoder):
    """Each SSE event is a whole GenerateContentResponse; the one with a finishReason is the last word.

    Usage is a running total (the last one wins); UsageEvent and Finish come when the stream ends.
    """

    def __init__(self, adapter: GoogleAdapter) -> None:
        self._adapter = adapter
        self._reader: PartReader | None = None
        self._usage: Usage | None = None
        self._finish: Finish | None = None

    def feed(self, message: SSEMessage) -> list[StreamEvent]:
        if not message.data.strip():
            return []
        chunk = from_json(message.data)
        if isinstance(chunk.get("error"), dict):
            status = chunk["error"].get("code")
            return [StreamError(self._adapter.map_error(status if isinstance(status, int) else 500, chunk, {}))]
        out: list[StreamEvent] = []
        if self._reader is None:
            self._reader = PartReader(chunk.get("responseId", ""))
            out.append(StreamStart(chunk.get("responseId", ""), chunk.get("modelVersion", "")))
        if chunk.get("usageMetadata"):
            self._usage = parse_usage(chunk["usageMetadata"])
        candidate = _first_candidate(chunk)
        if candidate is not None:
            out.extend(self._reader.read((candidate.get("content") or {}).get("parts") or []))
        if (candidate or {}).get("finishReason") or (chunk.get("promptFeedback") or {}).get("blockReason"):
            reason, raw = _finish(chunk, candidate, self._reader.calls > 0)
            self._finish = Finish(reason, raw)
        return out

    def close(self) -> list[StreamEvent]:
        if self._finish is None:
            return []
        usage = [UsageEvent(self._usage)] if self._usage is not None else []
        return [*usage, self._finish]


# ------------------------------------------------------------------------------------------- helpers


def resource_name(model: str) -> str:
    """The model's resource name in the URL path: `models/<name>` (or `tunedModels/<name>` when the caller names
    the collection), the name percent-encoded as one path segment, so that no model id can reach another path."""
    collection, sep, name = model.rpartition("/")
    if not sep:
        collection = "models"
    if collection not in MODEL_COLLECTIONS or not name:
        raise InvalidRequest(
            f"A Gemini model is named 'NAME', 'models/NAME' or 'tunedModels/NAME'; '{model[:100]}' is none of these.",
            code="invalid_model_id",
            param="model",
        )
    return f"{collection}/{quote(name, safe='')}"


def _needs_signatures(model: str) -> bool:
    """Gemini 3 and later refuse a function call turn whose first call carries no thought signature."""
    name = model.rsplit("/", 1)[-1]
    return name.startswith("gemini-") and not name.startswith(("gemini-1", "gemini-2"))


def _empty(part: Any) -> bool:
    return isinstance(part, TextPart) and not part.text


def _result_value(text: str) -> Any:
    """A tool's output: structured when it is a JSON object or array, otherwise the text itself."""
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        try:
            return from_json(stripped)
        except ValueError:
            pass
    return text


def _first_candidate(body: Mapping[str, Any]) -> dict[str, Any] | None:
    for candidate in body.get("candidates") or []:
        if candidate.get("index", 0) == 0:
            return dict(candidate)
    return None


def _finish(body: Mapping[str, Any], candidate: Mapping[str, Any] | None, called: bool) -> tuple[FinishReason, Any]:
    if candidate is None:  # the prompt itself was blocked: no candidates at all
        block = (body.get("promptFeedback") or {}).get("blockReason")
        return ("content_filter" if block else "other"), block
    raw = candidate.get("finishReason")
    reason = finish_reason(raw)
    return ("tool_calls" if called and reason == "stop" else reason), raw


def _reasoning_parts(events: Iterable[StreamEvent]) -> list[ReasoningPart]:
    """Thought text runs until a signature closes it; a signature alone is a signed empty block."""
    parts: list[ReasoningPart] = []
    text: list[str] = []
    for event in events:
        if isinstance(event, ReasoningDelta):
            text.append(event.text)
            if event.signature:
                parts.append(ReasoningPart("".join(text), event.signature))
                text = []
    if "".join(text):
        parts.append(ReasoningPart("".join(text)))
    return parts


def parse_usage(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    thoughts = usage.get("thoughtsTokenCount")
    return Usage(
        input_tokens=(usage.get("promptTokenCount") or 0) + (usage.get("toolUsePromptTokenCount") or 0),
        output_tokens=(usage.get("candidatesTokenCount") or 0) + (thoughts or 0),
        cached_input_tokens=usage.get("cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def encode_tool_choice(choice: ToolChoice) -> dict[str, Any]:
    if choice.mode == "tool":
        return {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    return {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice.mode]}


def _error_details(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, list) and body:
        body = body[0]
    err = body.get("error") if isinstance(body, dict) else None
    details = err.get("details") if isinstance(err, dict) else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _duration(value: Any) -> float | None:
    """Seconds of a protobuf Duration in JSON ("13s", "0.5s")."""
    if not isinstance(value, str) or not value.endswith("s"):
        return None
    try:
        return max(0.0, float(value[:-1]))
    except ValueError:
        return None
