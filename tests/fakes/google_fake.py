"""A faithful fake of the Gemini API (`generativelanguage.googleapis.com`, v1beta and v1).

    POST /{version}/models/{model}:generateContent
    POST /{version}/models/{model}:streamGenerateContent[?alt=sse]   (SSE, or a JSON array without alt=sse)
    GET  /{version}/models[/{model}]

The key comes in `x-goog-api-key` (or `?key=`): none → 403 PERMISSION_DENIED, a wrong one → 400
INVALID_ARGUMENT with reason API_KEY_INVALID, as the real service answers. Bodies are validated like the real
API (see `google_validate`) and answered with realistic GenerateContentResponse objects: `content.role`
"model", `finishReason`, `index`, `usageMetadata` (zero counts omitted, as proto3 JSON does), `modelVersion`,
`responseId`. Streams are `data: {GenerateContentResponse}\\r\\n\\r\\n` events with a running usage total, the
last carrying the finishReason; there is no terminal event.

FakeReply semantics as for the other fakes, plus:
- `finish` is a Gemini finishReason ("STOP", "MAX_TOKENS", "SAFETY", "RECITATION", …), verbatim; a
  safety-ish one answers a candidate without content and with `safetyRatings`. `finish="blocked:SAFETY"`
  blocks the prompt itself: `promptFeedback.blockReason` and no candidates.
- `thinking` is the thought text of thinking models (gemini-2.5*, gemini-3*, unless `thinkingBudget` is 0);
  it is counted in `thoughtsTokenCount` and shown as a `thought: true` part when `includeThoughts` is set.
  Their first function call carries a `thoughtSignature` (gemini-3: also the last text part of an answer
  without calls), and gemini-3 requests must send the signatures back.
- `status` renders Google's `{"error": {code, message, status, details?}}`; `error_type` overrides the status
  name (`error_type="API_KEY_INVALID"` on a 400 renders the invalid-key error); `stream_error` is a status
  name (INTERNAL, UNAVAILABLE, …) sent as an `{"error": …}` event mid-stream.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .common import (
    EventStreamResponse,
    cut_at_stop,
    echo_headers,
    example_from_schema,
    fake_id,
    record_request,
    retry_after_value,
    stream_pieces,
    truncate_words,
    word_count,
)
from .google_validate import GoogleError, requires_signatures, thinking_active, validate_generate_content
from .script import FakeReply, FakeScript, RecordedRequest

__all__ = ["DEFAULT_MODELS", "create_google_app"]

VERSIONS = ("v1beta", "v1", "v1alpha")
DEFAULT_MODELS = (
    "gemini-3-pro-preview",
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.0-flash",
)
DEFAULT_THINKING = "Let me think about how to answer this."
_METHOD = re.compile(r"^(models|tunedModels)/([^/:]+):([A-Za-z]+)$")
SAFETY_FINISHES = frozenset({"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "IMAGE_SAFETY"})
HARM_CATEGORIES = (
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
)
STATUS_CODES = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
_SCRIPTED_ERRORS: Mapping[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: (
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid "
        "authentication credential.",
    ),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: (
        "NOT_FOUND",
        "models/{model} is not found for API version {version}, or is not supported for generateContent. Call "
        "ListModels to see the list of available models and their supported methods.",
    ),
    429: (
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. For more information on this "
        "error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    ),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "The request timed out. Please try again."),
}
KEY_INVALID = "API key not valid. Please pass a valid API key."
UNREGISTERED = (
    "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other "
    "form of API consumer identity to call this API."
)
NOT_FOUND_HTML = (
    "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 404 (Not Found)!!1</title>\n"
    "  <p><b>404.</b> <ins>That’s an error.</ins>\n  <p>The requested URL <code>{path}</code> was not found on "
    "this server.  <ins>That’s all we know.</ins>\n"
)


def create_google_app(script: FakeScript | None = None) -> Starlette:
    """The fake Gemini API as a Starlette app; the script is also reachable as ``app.state.script``."""
    the_script = script if script is not None else FakeScript()

    async def dispatch(request: Request) -> Response:
        recorded = await record_request(request, the_script)
        version, name = request.path_params["version"], request.path_params["name"]
        if version not in VERSIONS:
            return _html_404(recorded.path)
        match = _METHOD.match(name)
        if request.method == "POST" and match and match[3] in ("generateContent", "streamGenerateContent"):
            return await _generate(recorded, the_script, version, match[2], match[3])
        if request.method == "GET" and (name == "models" or (name.startswith("models/") and ":" not in name)):
            return _models(recorded, the_script, name)
        return _html_404(recorded.path)

    async def not_found(request: Request) -> Response:
        recorded = await record_request(request, the_script)
        return _html_404(recorded.path)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    app = Starlette(
        routes=[
            Route("/{version}/{name:path}", dispatch, methods=methods),
            Route("/{path:path}", not_found, methods=methods),
        ]
    )
    app.state.script = the_script
    return app


# ------------------------------------------------------------------------------------------- handling


def _headers(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    headers = {"server": "scaffolding on HTTPServer2", "server-timing": "gfet4t7; dur=412", "vary": "Origin"}
    headers.update(extra or {})
    return headers


def _html_404(path: str) -> Response:
    return HTMLResponse(NOT_FOUND_HTML.format(path=path), status_code=404, headers=_headers())


def _error_response(exc: GoogleError, extra: Mapping[str, str] | None = None) -> Response:
    error: dict[str, Any] = {"code": exc.code, "message": exc.message, "status": exc.status}
    if exc.details:
        error["details"] = exc.details
    return JSONResponse({"error": error}, status_code=exc.code, headers=_headers(extra))


def _debug_info(recorded: RecordedRequest) -> dict[str, Any]:
    """google.rpc.DebugInfo, as Google's debug builds attach it: here the request's headers as JSON text."""
    return {"@type": "type.googleapis.com/google.rpc.DebugInfo", "detail": json.dumps(dict(recorded.headers))}


def _key_invalid() -> GoogleError:
    return GoogleError(
        KEY_INVALID,
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": KEY_INVALID},
        ],
    )


def _check_key(recorded: RecordedRequest, script: FakeScript) -> None:
    key = recorded.header("x-goog-api-key") or (parse_qs(recorded.query).get("key") or [""])[0]
    if not key:
        raise GoogleError(UNREGISTERED, code=403, status="PERMISSION_DENIED")
    if script.api_key is not None and key != script.api_key:
        raise _key_invalid()


def _models(recorded: RecordedRequest, script: FakeScript, name: str) -> Response:
    try:
        _check_key(recorded, script)
    except GoogleError as exc:
        return _error_response(exc)
    names = sorted(script.models or DEFAULT_MODELS)
    models = [_model_info(n) for n in names]
    if name == "models":
        return JSONResponse({"models": models}, headers=_headers())
    wanted = name.removeprefix("models/")
    if wanted not in names:
        return _error_response(GoogleError(f"models/{wanted} is not found", code=404, status="NOT_FOUND"))
    return JSONResponse(_model_info(wanted), headers=_headers())


def _model_info(name: str) -> dict[str, Any]:
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": name.replace("-", " ").title(),
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
        "thinking": name.startswith(("gemini-2.5", "gemini-3")),
    }


async def _generate(recorded: RecordedRequest, script: FakeScript, version: str, model: str, method: str) -> Response:
    try:
        _check_key(recorded, script)
        if recorded.json is None:
            raise GoogleError("Invalid JSON payload received. Unexpected token.")
        if script.models is not None and model not in script.models:
            state, message = _SCRIPTED_ERRORS[404]
            raise GoogleError(message.format(model=model, version=version), code=404, status=state)
        body = validate_generate_content(recorded.json, model)
    except GoogleError as exc:
        return _error_response(exc)

    reply = script.next_reply()
    if reply is not None and reply.delay_s:
        await asyncio.sleep(reply.delay_s)
    if reply is not None and reply.status != 200:
        return _scripted_error(reply, model, version, recorded)
    chosen = reply if reply is not None else default_reply(body)
    plan = plan_response(body, chosen, script, model)
    extra = dict(chosen.headers)
    if chosen.retry_after is not None:
        extra["retry-after"] = retry_after_value(chosen.retry_after)
    if method == "generateContent":
        return JSONResponse(_response_object(plan), headers=_headers(extra))
    chunks = _stream_chunks(plan, chosen, recorded)
    if "sse" not in parse_qs(recorded.query).get("alt", []):
        return JSONResponse(chunks, headers=_headers(extra))  # without alt=sse: one JSON array
    events = [f"data: {json.dumps(c, separators=(',', ':'))}\r\n\r\n".encode() for c in chunks]
    return EventStreamResponse(
        events, headers=_headers(extra), chunk_delay_s=chosen.chunk_delay_s, cut_after=chosen.cut_stream_after
    )


def _scripted_error(reply: FakeReply, model: str, version: str, recorded: RecordedRequest) -> Response:
    if reply.status == 400 and reply.error_type == "API_KEY_INVALID":
        return _error_response(_key_invalid(), reply.headers)
    state, message = _SCRIPTED_ERRORS.get(
        reply.status, ("INTERNAL" if reply.status >= 500 else "INVALID_ARGUMENT", "Error")
    )
    extra = dict(reply.headers)
    details: list[dict[str, Any]] = []
    if reply.status == 429:
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        "quotaDimensions": {"location": "global", "model": model},
                        "quotaValue": "10",
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            },
        ]
    if reply.retry_after is not None:
        extra["retry-after"] = retry_after_value(reply.retry_after)
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{reply.retry_after:g}s"})
    text = echo_headers(reply.error_message or message.format(model=model, version=version), reply, recorded)
    if reply.echo_headers:
        details.append(_debug_info(recorded))
    exc = GoogleError(text, code=reply.status, status=reply.error_type or state, details=details or None)
    return _error_response(exc, extra)


# -------------------------------------------------------------------------------------------- planning


@dataclass
class Plan:
    response_id: str
    model: str
    thought: str | None = None  # shown thought text (includeThoughts)
    thoughts_tokens: int = 0
    text: str | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    finish: str = "STOP"
    blocked: str | None = None
    call_signature: str | None = None
    text_signature: str | None = None
    prompt_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    candidates: int = 1


def _json_schema(schema: Any) -> Any:
    """A Gemini schema (normalized, snake_case) as the JSON schema `example_from_schema` reads."""
    if isinstance(schema, list):
        return [_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            out["type"] = value.lower()
        elif key == "any_of":
            out["anyOf"] = _json_schema(value)
        elif key == "properties":
            out["properties"] = {k: _json_schema(v) for k, v in value.items()}
        elif key == "items":
            out["items"] = _json_schema(value)
        else:
            out[key] = value
    return out


def _declarations(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [d for tool in body.get("tools") or [] for d in tool.get("function_declarations") or []]


def _user_texts(body: Mapping[str, Any]) -> str:
    for content in reversed(body["contents"]):
        texts = [p["text"] for p in content.get("parts") or [] if "text" in p and not p.get("thought")]
        if content.get("role", "user") == "user" and texts:
            return " ".join(texts)
    return ""


def default_reply(body: Mapping[str, Any]) -> FakeReply:
    """What the fake answers when the script has no reply queued."""
    calling = (body.get("tool_config") or {}).get("function_calling_config") or {}
    declarations = _declarations(body)
    if calling.get("mode") == "ANY" and declarations:
        allowed = calling.get("allowed_function_names") or [d["name"] for d in declarations]
        target = next(d for d in declarations if d["name"] == allowed[0])
        schema = target.get("parameters_json_schema") or _json_schema(target.get("parameters"))
        return FakeReply(tool_calls=[(target["name"], example_from_schema(schema) if schema else {})])
    config = body.get("generation_config") or {}
    if config.get("response_mime_type") == "application/json":
        schema = config.get("response_json_schema") or _json_schema(config.get("response_schema"))
        return FakeReply(text=json.dumps(example_from_schema(schema) if schema else {}))
    return FakeReply(text=_user_texts(body) or "Hello!")


def _words(value: Any) -> int:
    return word_count(json.dumps(value).replace('"', " ")) if not isinstance(value, str) else word_count(value)


def _prompt_tokens(body: Mapping[str, Any]) -> int:
    words = 0
    for content in [body.get("system_instruction") or {}, *body["contents"]]:
        for part in content.get("parts") or []:
            for key in ("text", "function_call", "function_response"):
                if key in part:
                    words += _words(part[key])
            if "inline_data" in part or "file_data" in part:
                words += 258  # what Gemini counts for one image
    if body.get("tools"):
        words += _words(body["tools"])
    return max(1, words)


def _signature(script: FakeScript) -> str:
    digest = hashlib.sha256(f"thought:{script.next_serial()}".encode()).digest()
    return base64.b64encode(b"\x0a\x24" + digest + digest[:16]).decode()


def plan_response(body: Mapping[str, Any], reply: FakeReply, script: FakeScript, model: str) -> Plan:
    config = body.get("generation_config") or {}
    plan = Plan(response_id=fake_id("", script.next_serial(), 23), model=model)
    plan.candidates = config.get("candidate_count") or 1
    plan.prompt_tokens = reply.input_tokens if reply.input_tokens is not None else _prompt_tokens(body)
    if body.get("cached_content"):
        plan.cached_tokens = plan.prompt_tokens // 2
    if (reply.finish or "").startswith("blocked:"):
        plan.blocked = reply.finish.split(":", 1)[1] if reply.finish else None
        return plan
    thinking = thinking_active(body, model)
    if thinking:
        thought = reply.thinking if reply.thinking is not None else DEFAULT_THINKING
        plan.thoughts_tokens = max(1, word_count(thought))
        if (config.get("thinking_config") or {}).get("include_thoughts"):
            plan.thought = thought
    text = reply.resolved_text()
    calls = list(reply.tool_calls)
    finish: str | None = None
    if text is not None:
        text, stop = cut_at_stop(text, config.get("stop_sequences") or [])
        if stop is not None:
            calls = []
        limit = config.get("max_output_tokens")
        if limit is not None and word_count(text) + plan.thoughts_tokens > limit:
            text, finish, calls = truncate_words(text, limit - plan.thoughts_tokens), "MAX_TOKENS", []
    plan.finish = reply.finish or finish or "STOP"
    if plan.finish in SAFETY_FINISHES:
        text, calls = None, []
    plan.text = text if text else None
    plan.calls = calls
    if thinking and calls:
        plan.call_signature = _signature(script)
    elif thinking and plan.text and requires_signatures(model):
        plan.text_signature = _signature(script)
    out = word_count(plan.text or "") + sum(_words(args) + 3 for _, args in calls)
    plan.output_tokens = reply.output_tokens if reply.output_tokens is not None else out
    return plan


# ------------------------------------------------------------------------------------------- rendering


def _usage(plan: Plan, output_tokens: int) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": plan.prompt_tokens}
    if output_tokens:
        usage["candidatesTokenCount"] = output_tokens
    usage["totalTokenCount"] = plan.prompt_tokens + output_tokens + plan.thoughts_tokens
    if plan.cached_tokens:
        usage["cachedContentTokenCount"] = plan.cached_tokens
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": plan.prompt_tokens}]
    if plan.cached_tokens:
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": plan.cached_tokens}]
    if plan.thoughts_tokens:
        usage["thoughtsTokenCount"] = plan.thoughts_tokens
    return usage


def _call_parts(plan: Plan) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for i, (name, args) in enumerate(plan.calls):
        part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
        if i == 0 and plan.call_signature:
            part["thoughtSignature"] = plan.call_signature
        parts.append(part)
    return parts


def _candidate(plan: Plan, index: int, parts: Sequence[dict[str, Any]], finish: str | None) -> dict[str, Any]:
    candidate: dict[str, Any] = {}
    if parts or finish not in SAFETY_FINISHES:
        candidate["content"] = {"parts": list(parts), "role": "model"} if parts else {"role": "model"}
    if finish is not None:
        candidate["finishReason"] = finish
        if finish in SAFETY_FINISHES:
            candidate["safetyRatings"] = [
                {
                    "category": c,
                    "probability": "HIGH" if i == 0 else "NEGLIGIBLE",
                    **({"blocked": True} if i == 0 else {}),
                }
                for i, c in enumerate(HARM_CATEGORIES)
            ]
    candidate["index"] = index
    return candidate


def _envelope(plan: Plan, candidates: list[dict[str, Any]] | None, output_tokens: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if candidates is not None:
        out["candidates"] = candidates
    else:
        out["promptFeedback"] = {
            "blockReason": plan.blocked,
            "safetyRatings": [{"category": c, "probability": "NEGLIGIBLE"} for c in HARM_CATEGORIES],
        }
    out["usageMetadata"] = _usage(plan, output_tokens)
    out["modelVersion"] = plan.model
    out["responseId"] = plan.response_id
    return out


def _response_object(plan: Plan) -> dict[str, Any]:
    if plan.blocked is not None:
        return _envelope(plan, None, 0)
    parts: list[dict[str, Any]] = []
    if plan.thought:
        parts.append({"text": plan.thought, "thought": True})
    if plan.text:
        parts.append({"text": plan.text, **({"thoughtSignature": plan.text_signature} if plan.text_signature else {})})
    parts.extend(_call_parts(plan))
    candidates = [_candidate(plan, i, parts, plan.finish) for i in range(plan.candidates)]
    return _envelope(plan, candidates, plan.output_tokens)


def _stream_chunks(plan: Plan, reply: FakeReply, recorded: RecordedRequest) -> list[dict[str, Any]]:
    if plan.blocked is not None:
        return [_envelope(plan, None, 0)]
    steps: list[list[dict[str, Any]]] = []  # the parts of each chunk
    if plan.thought:
        steps.append([{"text": plan.thought, "thought": True}])
    pieces = stream_pieces(plan.text or "")
    for start in range(0, len(pieces), 3):
        steps.append([{"text": "".join(pieces[start : start + 3])}])
    if plan.text_signature and steps and "thought" not in steps[-1][0]:
        steps[-1][0]["thoughtSignature"] = plan.text_signature
    if plan.calls:
        steps.append(_call_parts(plan))
    if not steps:
        steps.append([])
    chunks: list[dict[str, Any]] = []
    emitted = 0
    for n, parts in enumerate(steps):
        last = n == len(steps) - 1
        emitted += sum(word_count(p.get("text", "")) for p in parts if not p.get("thought"))
        output = plan.output_tokens if last else min(emitted, plan.output_tokens)
        finish = plan.finish if last else None
        candidates = [_candidate(plan, i, parts, finish) for i in range(plan.candidates)]
        chunks.append(_envelope(plan, candidates, output))
    if reply.stream_error is not None:
        code = STATUS_CODES.get(reply.stream_error, 500)
        message = reply.error_message or _SCRIPTED_ERRORS.get(code, ("", "Internal error"))[1]
        error: dict[str, Any] = {
            "error": {"code": code, "message": echo_headers(message, reply, recorded), "status": reply.stream_error}
        }
        if reply.echo_headers:
            error["error"]["details"] = [_debug_info(recorded)]
        chunks = [*chunks[: reply.stream_error_after], error]
    return chunks
