"""A faithful fake of Mistral's chat completions API (``POST /v1/chat/completions``, ``GET /v1/models``).

Requests are validated as the real API does (see `mistral_validate`) and answered with realistic
``chat.completion`` objects or ``chat.completion.chunk`` server-sent events ending in ``data: [DONE]``:
32-hex-digit completion ids, 9-character alphanumeric tool-call ids, a stream that sends every tool call whole
in one chunk and the usage with its last chunk. Reasoning models (``magistral-*``, or a request with
``prompt_mode: "reasoning"``, or a reply with ``thinking``) answer with ``thinking`` chunks before the text.
What to answer comes from a `FakeScript`; see `script.FakeReply`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .common import (
    EventStreamResponse,
    cut_at_stop,
    example_from_schema,
    fake_id,
    record_request,
    retry_after_value,
    stream_pieces,
    truncate_words,
    word_count,
)
from .mistral_validate import ChatCompletionRequest, MistralError, message_texts, validate_chat_request
from .script import FakeReply, FakeScript

__all__ = ["DEFAULT_MODELS", "create_mistral_app"]

DEFAULT_MODELS = (
    "mistral-large-latest",
    "mistral-medium-latest",
    "mistral-small-latest",
    "magistral-medium-latest",
    "magistral-small-latest",
    "pixtral-large-latest",
    "codestral-latest",
)
DEFAULT_THINKING = "The user wants a short answer. Let me think it through step by step before answering."

_SCRIPTED_ERRORS: Mapping[int, tuple[str, str | None, str]] = {
    # status: (type, code, message)
    400: ("invalid_request_error", None, "Bad request"),
    402: ("invalid_request_error", "3505", "Payment required: no active subscription"),
    403: ("invalid_request_error", None, "Forbidden"),
    404: ("invalid_request_error", None, "Not Found"),
    429: ("rate_limited", "1300", "Rate limit exceeded"),
    500: ("internal_server_error", "1000", "Internal server error"),
    502: ("internal_server_error", "1000", "Bad gateway"),
    503: ("service_unavailable", "1000", "Service unavailable"),
    504: ("internal_server_error", "1000", "Gateway timeout"),
}


def create_mistral_app(script: FakeScript | None = None) -> Starlette:
    """The fake Mistral API as a Starlette app; the script is also reachable as ``app.state.script``."""
    the_script = script if script is not None else FakeScript()

    async def chat_completions(request: Request) -> Response:
        recorded = await record_request(request, the_script)
        try:
            _check_auth(recorded.header("authorization"), the_script)
            if recorded.json is None:
                raise MistralError(
                    "JSON decode error",
                    status=422,
                    body={"detail": [{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error",
                                      "input": {}, "ctx": {"error": "Expecting value"}}]},
                )  # fmt: skip
            parsed = validate_chat_request(recorded.json)
            if the_script.models is not None and parsed.model not in the_script.models:
                raise MistralError(f"Invalid model: {parsed.model}", type="invalid_model", code="1500")
        except MistralError as exc:
            return _error_response(exc, the_script)
        return await _answer(recorded.json, parsed, the_script)

    async def list_models(request: Request) -> Response:
        await record_request(request, the_script)
        try:
            _check_auth(request.headers.get("authorization"), the_script)
        except MistralError as exc:
            return _error_response(exc, the_script)
        data = [_model_object(name) for name in sorted(the_script.models or DEFAULT_MODELS)]
        return JSONResponse({"object": "list", "data": data}, headers=_headers(the_script))

    async def not_found(request: Request) -> Response:
        await record_request(request, the_script)
        return JSONResponse({"detail": "Not Found"}, status_code=404, headers=_headers(the_script))

    all_methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/{path:path}", not_found, methods=all_methods),
        ]
    )
    app.state.script = the_script
    return app


# ------------------------------------------------------------------------------------------- handling


def _check_auth(header: str | None, script: FakeScript) -> None:
    """The API gateway answers a bare `{"message": "Unauthorized"}` for a missing or unknown key."""
    key = header[7:].strip() if header and header.startswith("Bearer ") else ""
    if not key or (script.api_key is not None and key != script.api_key):
        raise MistralError("Unauthorized", status=401, body={"message": "Unauthorized", "request_id": ""})


def _headers(script: FakeScript, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    headers = {
        "mistral-correlation-id": fake_id("", script.next_serial(), 32).lower(),
        "x-kong-request-id": fake_id("", script.next_serial(), 24).lower(),
        "x-ratelimit-limit-tokens-minute": "500000",
        "x-ratelimit-remaining-tokens-minute": "499980",
        "x-envoy-upstream-service-time": "42",
    }
    headers.update(extra or {})
    return headers


def _error_response(exc: MistralError, script: FakeScript, extra: Mapping[str, str] | None = None) -> Response:
    headers = _headers(script, extra)
    body = dict(exc.body)
    if "request_id" in body:
        body["request_id"] = headers["x-kong-request-id"]
    return JSONResponse(body, status_code=exc.status, headers=headers)


def _model_object(name: str) -> dict[str, Any]:
    return {
        "id": name,
        "object": "model",
        "created": 1735689600,
        "owned_by": "mistralai",
        "capabilities": {"completion_chat": True, "function_calling": True, "vision": "pixtral" in name},
        "type": "base",
    }


async def _answer(body: dict[str, Any], request: ChatCompletionRequest, script: FakeScript) -> Response:
    reply = script.next_reply()
    if reply is not None and reply.delay_s:
        await asyncio.sleep(reply.delay_s)
    if reply is not None and reply.status != 200:
        return _scripted_error(reply, script)
    chosen = reply if reply is not None else default_reply(request)
    plan = plan_completion(request, chosen, script)
    extra = dict(chosen.headers)
    if chosen.retry_after is not None:
        extra["retry-after"] = retry_after_value(chosen.retry_after)
    if request.stream:
        return EventStreamResponse(
            _stream_events(request, plan, chosen),
            headers=_headers(script, extra),
            chunk_delay_s=chosen.chunk_delay_s,
            cut_after=chosen.cut_stream_after,
        )
    return JSONResponse(_completion_object(request, plan), headers=_headers(script, extra))


def _scripted_error(reply: FakeReply, script: FakeScript) -> Response:
    extra = dict(reply.headers)
    if reply.retry_after is not None:
        extra["retry-after"] = retry_after_value(reply.retry_after)
    if reply.status == 401:
        return _error_response(MistralError("Unauthorized", status=401, body={"message": "Unauthorized",
                                                                              "request_id": ""}), script, extra)  # fmt: skip
    if reply.status == 422:
        message = reply.error_message or "Extra inputs are not permitted"
        detail = [{"type": reply.error_type or "extra_forbidden", "loc": ["body", "unknown_field"], "msg": message,
                   "input": None}]  # fmt: skip
        return _error_response(MistralError(message, status=422, body={"detail": detail}), script, extra)
    kind, code, message = _SCRIPTED_ERRORS.get(
        reply.status, ("internal_server_error" if reply.status >= 500 else "invalid_request_error", None, "Error")
    )
    exc = MistralError(reply.error_message or message, status=reply.status, type=reply.error_type or kind, code=code)
    return _error_response(exc, script, extra)


# -------------------------------------------------------------------------------------------- planning


@dataclass
class Choice:
    content: str | None
    thinking: str | None
    tool_calls: list[tuple[str, str, str]]  # (id, name, arguments JSON)
    finish_reason: str


@dataclass
class Plan:
    completion_id: str
    created: int
    choices: list[Choice] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0


def last_user_text(request: ChatCompletionRequest) -> str:
    for message in reversed(request.messages):
        if message.role == "user":
            return " ".join(message_texts([message]))
    return ""


def default_reply(request: ChatCompletionRequest) -> FakeReply:
    """What the fake answers when the script has no reply queued: a forced call when tool_choice forces one."""
    functions = [t.function for t in request.tools or []]
    choice = request.tool_choice
    target = None
    if functions and choice in ("any", "required"):
        target = functions[0]
    elif not isinstance(choice, str):
        target = next((f for f in functions if f.name == choice.function.name), None)
    if target is not None:
        return FakeReply(tool_calls=[(target.name, example_from_schema(target.parameters))])
    last = last_user_text(request)
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_object":
        return FakeReply(text=json.dumps({"echo": last}))
    if fmt is not None and fmt.type == "json_schema" and fmt.json_schema is not None:
        return FakeReply(text=json.dumps(example_from_schema(fmt.json_schema.schema_)))
    return FakeReply(text=last or "Hello!")


def _stops(request: ChatCompletionRequest) -> list[str]:
    if isinstance(request.stop, str):
        return [request.stop]
    return [s for s in request.stop or [] if s]


def call_id(script: FakeScript) -> str:
    """A tool-call id as Mistral makes them: 9 characters from [a-zA-Z0-9]."""
    return fake_id("", script.next_serial(), 9)


def _completion_id(script: FakeScript) -> str:
    return hashlib.md5(str(script.next_serial()).encode(), usedforsecurity=False).hexdigest()


def _thinks(request: ChatCompletionRequest, reply: FakeReply) -> bool:
    return reply.thinking is not None or request.model.startswith("magistral") or request.prompt_mode == "reasoning"


def plan_completion(request: ChatCompletionRequest, reply: FakeReply, script: FakeScript) -> Plan:
    text = reply.resolved_text()
    finish: str | None = None
    calls = [(call_id(script), name, json.dumps(args)) for name, args in reply.tool_calls]
    if text is not None:
        text, matched = cut_at_stop(text, _stops(request))
        if matched is not None:
            finish, calls = "stop", []
        if request.max_tokens is not None and word_count(text) > request.max_tokens:
            text, finish, calls = truncate_words(text, request.max_tokens), "length", []
    if finish is None:
        finish = "tool_calls" if calls else "stop"
    if reply.finish is not None:
        finish = reply.finish
    thinking = (reply.thinking or DEFAULT_THINKING) if _thinks(request, reply) else None
    per_choice = word_count(text or "") + word_count(thinking or "")
    per_choice += sum(word_count(args.replace('"', " ")) + 3 for _, _, args in calls)
    n = request.n or 1
    plan = Plan(completion_id=_completion_id(script), created=int(time.time()))
    plan.choices = [Choice(text, thinking, calls, finish) for _ in range(n)]
    words = sum(word_count(t) for t in message_texts(request.messages))
    tools = [t.model_dump() for t in request.tools or []]
    tool_words = word_count(json.dumps(tools).replace('"', " ")) if tools else 0
    prompt = max(1, words + 4 * len(request.messages) + tool_words)
    plan.prompt_tokens = reply.input_tokens if reply.input_tokens is not None else prompt
    plan.completion_tokens = reply.output_tokens if reply.output_tokens is not None else max(1, per_choice) * n
    return plan


# ------------------------------------------------------------------------------------------- rendering


def _usage(plan: Plan) -> dict[str, Any]:
    return {
        "prompt_tokens": plan.prompt_tokens,
        "total_tokens": plan.prompt_tokens + plan.completion_tokens,
        "completion_tokens": plan.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
        "service_tier": "standard",
    }


def _content(choice: Choice) -> str | list[dict[str, Any]]:
    if choice.thinking is None:
        return choice.content or ""
    chunks: list[dict[str, Any]] = [
        {"type": "thinking", "thinking": [{"type": "text", "text": choice.thinking}], "closed": True}
    ]
    if choice.content:
        chunks.append({"type": "text", "text": choice.content})
    return chunks


def _completion_object(request: ChatCompletionRequest, plan: Plan) -> dict[str, Any]:
    choices = []
    for index, choice in enumerate(plan.choices):
        message: dict[str, Any] = {"role": "assistant", "tool_calls": None, "content": _content(choice)}
        if choice.tool_calls:
            message["tool_calls"] = [
                {"id": cid, "function": {"name": name, "arguments": args}, "index": k}
                for k, (cid, name, args) in enumerate(choice.tool_calls)
            ]
        choices.append({"index": index, "message": message, "finish_reason": choice.finish_reason, "logprobs": None})
    return {
        "id": plan.completion_id,
        "created": plan.created,
        "model": request.model,
        "usage": _usage(plan),
        "object": "chat.completion",
        "choices": choices,
    }


def _sse(payload: Any) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def _stream_events(request: ChatCompletionRequest, plan: Plan, reply: FakeReply) -> list[bytes]:
    base = {"id": plan.completion_id, "object": "chat.completion.chunk", "created": plan.created,
            "model": request.model}  # fmt: skip
    chunks: list[dict[str, Any]] = []

    def add(index: int, delta: dict[str, Any], finish: str | None = None) -> None:
        chunks.append({**base, "choices": [{"index": index, "delta": delta, "finish_reason": finish}]})

    for index, choice in enumerate(plan.choices):
        add(index, {"role": "assistant", "content": ""})
        for piece in stream_pieces(choice.thinking or ""):
            add(index, {"content": [{"type": "thinking", "thinking": [{"type": "text", "text": piece}]}]})
        for piece in stream_pieces(choice.content or ""):
            add(index, {"content": [{"type": "text", "text": piece}] if choice.thinking else piece})
        calls = choice.tool_calls
        for k, (cid, name, args) in enumerate(calls):
            last = k == len(calls) - 1
            call = {"id": cid, "function": {"name": name, "arguments": args}, "index": k}
            add(index, {"content": None, "tool_calls": [call]}, choice.finish_reason if last else None)
        if not calls:
            add(index, {"content": ""}, choice.finish_reason)
    chunks[-1]["usage"] = _usage(plan)

    events = [_sse(chunk) for chunk in chunks]
    events.append(b"data: [DONE]\n\n")
    if reply.stream_error is not None:
        error = {"object": "error", "message": reply.error_message or "Internal server error",
                 "type": reply.stream_error, "param": None, "code": "1000"}  # fmt: skip
        events = [*events[: reply.stream_error_after], _sse(error)]
    return events
