"""A faithful fake of the OpenAI Chat Completions API (``POST /v1/chat/completions``, ``GET /v1/models``).

A reasoning model given ``reasoning_effort`` spends hidden reasoning tokens (``REASONING_TOKENS``), reported in
``completion_tokens_details.reasoning_tokens``; models without reasoning (gpt-4o, gpt-4.1 …) refuse the parameter.

Requests are validated as the real API does (see `openai_validate`) and answered with realistic
``chat.completion`` objects or ``chat.completion.chunk`` server-sent events. What to answer comes from a
`FakeScript`; see `script.FakeReply`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .common import (
    EventStreamResponse,
    cut_at_stop,
    echo_headers,
    example_from_schema,
    fake_id,
    fragments,
    record_request,
    retry_after_value,
    stream_pieces,
    truncate_words,
    word_count,
)
from .openai_validate import OpenAIError, message_texts, validate_chat_request
from .script import FakeReply, FakeScript, RecordedRequest

__all__ = ["DEFAULT_MODELS", "create_openai_app"]

DEFAULT_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o3-mini")
FINGERPRINT = "fp_f4ke0000"
# Hidden reasoning a reasoning model spends per `reasoning_effort` (counted in completion_tokens, never shown).
REASONING_TOKENS = {"minimal": 8, "low": 16, "medium": 64, "high": 256, "xhigh": 512}

_SCRIPTED_ERRORS: Mapping[int, tuple[str, str | None, str]] = {
    # status: (type, code, message)
    400: ("invalid_request_error", None, "Bad request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided: sk-****. You can find your API key at https://platform.openai.com/account/api-keys.",
    ),
    403: ("request_forbidden", "unsupported_country_region_territory", "Country, region, or territory not supported"),
    404: ("invalid_request_error", "model_not_found", "The model `{model}` does not exist or you do not have access to it."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for {model} in organization org-fake on requests per min (RPM): Limit 3, Used 3, "
        "Requested 1. Please try again in 20s. Visit https://platform.openai.com/account/rate-limits to learn more.",
    ),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The server is overloaded or not ready yet."),
    504: ("server_error", None, "Gateway timeout."),
}  # fmt: skip


def create_openai_app(script: FakeScript | None = None) -> Starlette:
    """The fake OpenAI API as a Starlette app; the script is also reachable as ``app.state.script``."""
    the_script = script if script is not None else FakeScript()

    async def chat_completions(request: Request) -> Response:
        recorded = await record_request(request, the_script)
        return await _handle_chat(recorded, the_script)

    async def list_models(request: Request) -> Response:
        await record_request(request, the_script)
        try:
            _check_auth(request.headers.get("authorization"), the_script)
        except OpenAIError as exc:
            return _error_response(exc, the_script)
        data = [_model_object(name) for name in sorted(the_script.models or DEFAULT_MODELS)]
        return JSONResponse({"object": "list", "data": data}, headers=_headers(the_script))

    async def get_model(request: Request) -> Response:
        await record_request(request, the_script)
        name = request.path_params["model"]
        try:
            _check_auth(request.headers.get("authorization"), the_script)
            if name not in (the_script.models or DEFAULT_MODELS):
                raise _model_not_found(name)
        except OpenAIError as exc:
            return _error_response(exc, the_script)
        return JSONResponse(_model_object(name), headers=_headers(the_script))

    async def invalid_url(request: Request) -> Response:
        await record_request(request, the_script)
        exc = OpenAIError(f"Invalid URL ({request.method} {request.url.path})", status=404)
        return _error_response(exc, the_script)

    all_methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", get_model, methods=["GET"]),
            Route("/{path:path}", invalid_url, methods=all_methods),
        ]
    )
    app.state.script = the_script
    return app


# ------------------------------------------------------------------------------------------- handling


def _check_auth(header: str | None, script: FakeScript) -> None:
    if not header or not header.startswith("Bearer ") or not header[7:].strip():
        raise OpenAIError(
            "You didn't provide an API key. You need to provide your API key in an Authorization header using "
            "Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) "
            "if you're accessing the API from your browser and are prompted for a username and password. You "
            "can obtain an API key from https://platform.openai.com/account/api-keys.",
            status=401,
        )
    key = header[7:].strip()
    if script.api_key is not None and key != script.api_key:
        masked = key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 7 else "*" * len(key)
        raise OpenAIError(
            f"Incorrect API key provided: {masked}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            status=401,
            code="invalid_api_key",
        )


def _model_not_found(model: str) -> OpenAIError:
    return OpenAIError(
        f"The model `{model}` does not exist or you do not have access to it.", status=404, code="model_not_found"
    )


def _model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 1715367049, "owned_by": "system"}


def _headers(script: FakeScript, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    headers = {
        "x-request-id": fake_id("req_", script.next_serial(), 32),
        "openai-version": "2020-10-01",
        "openai-organization": "user-fake",
        "openai-processing-ms": "7",
    }
    headers.update(extra or {})
    return headers


def _error_response(exc: OpenAIError, script: FakeScript, extra: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(exc.body(), status_code=exc.status, headers=_headers(script, extra))


async def _handle_chat(recorded: RecordedRequest, script: FakeScript) -> Response:
    try:
        _check_auth(recorded.header("authorization"), script)
        if recorded.json is None:
            raise OpenAIError(
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
                "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid "
                "JSON. If you have trouble figuring out how to fix this, please contact us through our help "
                "center at help.openai.com.)"
            )
        body = recorded.json
        validate_chat_request(body)
        if script.models is not None and body["model"] not in script.models:
            raise _model_not_found(body["model"])
    except OpenAIError as exc:
        return _error_response(exc, script)

    reply = script.next_reply()
    if reply is not None and reply.delay_s:
        await asyncio.sleep(reply.delay_s)
    if reply is not None and reply.status != 200:
        return _scripted_error(reply, body["model"], script, recorded)
    chosen = reply if reply is not None else default_reply(body)
    plan = plan_completion(body, chosen, script)
    extra = dict(chosen.headers)
    if chosen.retry_after is not None:
        extra["retry-after"] = retry_after_value(chosen.retry_after)
    if body.get("stream"):
        return EventStreamResponse(
            _stream_events(body, plan, chosen, recorded),
            headers=_headers(script, extra),
            chunk_delay_s=chosen.chunk_delay_s,
            cut_after=chosen.cut_stream_after,
        )
    return JSONResponse(_completion_object(body, plan), headers=_headers(script, extra))


def _scripted_error(reply: FakeReply, model: str, script: FakeScript, recorded: RecordedRequest) -> Response:
    kind, code, message = _SCRIPTED_ERRORS.get(
        reply.status, ("server_error" if reply.status >= 500 else "invalid_request_error", None, "Error.")
    )
    extra = dict(reply.headers)
    if reply.retry_after is not None:
        extra["retry-after"] = retry_after_value(reply.retry_after)
    if reply.status == 429:
        extra.setdefault("x-ratelimit-limit-requests", "3")
        extra.setdefault("x-ratelimit-remaining-requests", "0")
        extra.setdefault("x-ratelimit-reset-requests", "20s")
    exc = OpenAIError(
        echo_headers(reply.error_message or message.format(model=model), reply, recorded),
        status=reply.status,
        type=reply.error_type or kind,
        code=code,
    )
    return _error_response(exc, script, extra)


# -------------------------------------------------------------------------------------------- planning


@dataclass
class Choice:
    content: str | None
    refusal: str | None
    tool_calls: list[tuple[str, str, str]]  # (id, name, arguments JSON)
    finish_reason: str


@dataclass
class Plan:
    completion_id: str
    created: int
    choices: list[Choice] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0  # part of completion_tokens, as the real API counts them


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return " ".join(message_texts([message]))
    return ""


def default_reply(body: Mapping[str, Any]) -> FakeReply:
    """What the fake answers when the script has no reply queued."""
    functions = [t["function"] for t in body.get("tools") or [] if t.get("type") == "function"]
    choice = body.get("tool_choice")
    target: Mapping[str, Any] | None = None
    if functions and choice == "required":
        target = functions[0]
    elif isinstance(choice, dict) and choice.get("type") == "function":
        target = next((f for f in functions if f["name"] == choice["function"]["name"]), None)
    if target is not None:
        return FakeReply(tool_calls=[(target["name"], example_from_schema(target.get("parameters") or {}))])
    last = last_user_text(body["messages"])
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_object":
        return FakeReply(text=json.dumps({"echo": last}))
    if fmt.get("type") == "json_schema":
        return FakeReply(text=json.dumps(example_from_schema(fmt["json_schema"].get("schema") or {})))
    return FakeReply(text=last or "Hello!")


def _stops(body: Mapping[str, Any]) -> list[str]:
    stop = body.get("stop")
    if isinstance(stop, str):
        return [stop]
    return [s for s in stop or [] if s]


def _prompt_tokens(body: Mapping[str, Any]) -> int:
    words = sum(word_count(t) for t in message_texts(body["messages"]))
    tools = body.get("tools")
    tool_words = word_count(json.dumps(tools).replace('"', " ")) if tools else 0
    return max(1, words + 4 * len(body["messages"]) + int(tool_words))


def plan_completion(body: Mapping[str, Any], reply: FakeReply, script: FakeScript) -> Plan:
    text = reply.resolved_text()
    finish: str | None = None
    calls = [(fake_id("call_", script.next_serial()), name, json.dumps(args)) for name, args in reply.tool_calls]
    if text is not None:
        text, matched = cut_at_stop(text, _stops(body))
        if matched is not None:
            finish, calls = "stop", []
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if limit is not None and word_count(text) > limit:
            text, finish, calls = truncate_words(text, int(limit)), "length", []
    if finish is None:
        finish = "tool_calls" if calls else "stop"
    if reply.finish is not None:
        finish = reply.finish
    refusal: str | None = None
    if finish == "refusal":
        refusal, text, finish = text or "", None, "stop"
    per_choice = word_count(text or "") + word_count(refusal or "")
    per_choice += sum(word_count(args.replace('"', " ")) + 3 for _, _, args in calls)
    n = int(body.get("n") or 1)
    plan = Plan(completion_id=fake_id("chatcmpl-", script.next_serial(), 29), created=int(time.time()))
    plan.choices = [Choice(text, refusal, calls, finish) for _ in range(n)]
    plan.prompt_tokens = reply.input_tokens if reply.input_tokens is not None else _prompt_tokens(body)
    plan.completion_tokens = reply.output_tokens if reply.output_tokens is not None else max(1, per_choice) * n
    plan.reasoning_tokens = REASONING_TOKENS.get(body.get("reasoning_effort") or "none", 0)
    plan.completion_tokens += plan.reasoning_tokens
    return plan


# ------------------------------------------------------------------------------------------- rendering


def _usage(plan: Plan) -> dict[str, Any]:
    return {
        "prompt_tokens": plan.prompt_tokens,
        "completion_tokens": plan.completion_tokens,
        "total_tokens": plan.prompt_tokens + plan.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": plan.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _logprobs(body: Mapping[str, Any], text: str | None) -> dict[str, Any] | None:
    if not body.get("logprobs"):
        return None
    top = int(body.get("top_logprobs") or 0)
    content = []
    for piece in stream_pieces(text or ""):
        entry = {"token": piece, "logprob": -0.0001, "bytes": list(piece.encode())}
        content.append({**entry, "top_logprobs": [entry] * top})
    return {"content": content, "refusal": None}


def _completion_object(body: Mapping[str, Any], plan: Plan) -> dict[str, Any]:
    choices = []
    for index, choice in enumerate(plan.choices):
        message: dict[str, Any] = {
            "role": "assistant",
            "content": choice.content,
            "refusal": choice.refusal,
            "annotations": [],
        }
        if choice.tool_calls:
            message["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                for cid, name, args in choice.tool_calls
            ]
        choices.append(
            {
                "index": index,
                "message": message,
                "logprobs": _logprobs(body, choice.content),
                "finish_reason": choice.finish_reason,
            }
        )
    return {
        "id": plan.completion_id,
        "object": "chat.completion",
        "created": plan.created,
        "model": body["model"],
        "choices": choices,
        "usage": _usage(plan),
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }


def _sse(payload: Any) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def _stream_events(body: Mapping[str, Any], plan: Plan, reply: FakeReply, recorded: RecordedRequest) -> list[bytes]:
    options = body.get("stream_options") or {}
    include_usage = bool(options.get("include_usage"))
    obfuscate = options.get("include_obfuscation", True)
    base = {
        "id": plan.completion_id,
        "object": "chat.completion.chunk",
        "created": plan.created,
        "model": body["model"],
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
    chunks: list[dict[str, Any]] = []

    def add(index: int, delta: dict[str, Any], finish: str | None = None) -> None:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        if body.get("logprobs") and "content" in delta and delta["content"]:
            choice["logprobs"] = _logprobs(body, delta["content"])
        chunks.append({**base, "choices": [choice]})

    for index, choice in enumerate(plan.choices):
        first_content = "" if choice.content is not None else None
        add(index, {"role": "assistant", "content": first_content, "refusal": None})
        for piece in stream_pieces(choice.content or ""):
            add(index, {"content": piece})
        for piece in stream_pieces(choice.refusal or ""):
            add(index, {"refusal": piece})
        for k, (cid, name, args) in enumerate(choice.tool_calls):
            header = {"index": k, "id": cid, "type": "function", "function": {"name": name, "arguments": ""}}
            add(index, {"tool_calls": [header]})
            for frag in fragments(args):
                add(index, {"tool_calls": [{"index": k, "function": {"arguments": frag}}]})
        add(index, {}, choice.finish_reason)

    events: list[bytes] = []
    for n, chunk in enumerate(chunks):
        if include_usage:
            chunk["usage"] = None
        if obfuscate:
            chunk["obfuscation"] = "x" * (n % 7 + 1)
        events.append(_sse(chunk))
    if include_usage:
        events.append(_sse({**base, "choices": [], "usage": _usage(plan)}))
    events.append(b"data: [DONE]\n\n")
    if reply.stream_error is not None:
        message = reply.error_message or "The server had an error while processing your request."
        error = {"message": echo_headers(message, reply, recorded), "type": reply.stream_error, "param": None,
                 "code": None}  # fmt: skip
        events = [*events[: reply.stream_error_after], _sse({"error": error})]
    return events
