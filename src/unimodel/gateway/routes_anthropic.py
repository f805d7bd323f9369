"""The Anthropic Messages API, under `/v1/messages` and `/models/v2/anthropic/v1`, for every model.

    POST /v1/messages                 Claude forwarded as it is (anthropic_native.py); any other model: decode →
                                      dispatch.backend_for → complete / stream → encode (frontends/anthropic_messages.py)
    POST /v1/messages/count_tokens    Claude: Anthropic's count; any other model: an estimate (estimate_tokens)
    GET  /v1/models[/{model_id}]      Anthropic's model list when the request carries `anthropic-version` (every
                                      Anthropic SDK sends it), else OpenAI's; under /models/v2/anthropic/v1 always
                                      Anthropic's

Errors are Anthropic's body with Anthropic's statuses (frontends/anthropic_messages.error_status).
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic_core import to_json
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..frontends import anthropic_messages, openai_compat
from ..frontends.anthropic_wire import Decoded
from ..protocol import InvalidRequest, NotFound, UnimodelError
from ..runtime.service import CHAT_TASKS
from . import anthropic_native, dispatch
from .catalog import Route as ProviderRoute
from .context import context
from .http import Handler, close_after, guarded, json_response, read_body
from .model_backends import ChatBackend, ClosedBackend, ForwardedBackend, ModelBackend
from .service import Gateway

PREFIXES = ("/v1", "/models/v2/anthropic/v1")
MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
VERSION_HEADER = "anthropic-version"
# A model that reads images besides text; an open model of another chat task (`chat`) takes text only.
_READS_IMAGES = frozenset({"image-text-to-text", "video-text-to-text"})


def anthropic(handler: Handler) -> Handler:
    """Errors in Anthropic's body and with Anthropic's statuses."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except UnimodelError as exc:
            exc.status = anthropic_messages.error_status(exc)
            raise

    return guarded(anthropic_messages.error_body)(endpoint)


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


@anthropic
async def create_message(request: Request) -> Response:
    """Anthropic's Messages API for any model: Claude forwarded as it is, every other model translated."""
    gateway = _gateway(request)
    body = await read_body(request, gateway.settings.server.max_body_bytes)
    head = anthropic_messages.decode_head(body)
    ctx = context(request)
    backend = await dispatch.backend_for(gateway, head.model, ctx, request.headers)
    if isinstance(backend, ForwardedBackend):
        return await backend.forward(request, body)
    if isinstance(backend, ClosedBackend) and backend.route.provider == anthropic_messages.NATIVE_PROVIDER:
        path = _upstream_path(MESSAGES_PATH, request)
        return await anthropic_native.forward(gateway, backend.route, ctx, path, body, head, request.headers)
    _check_chat(backend)
    decoded = anthropic_messages.decode_messages(body, backend.name)
    _check_images(backend, decoded)
    chat = decoded.request
    if chat.stream:
        events = await backend.stream(chat)
        chunks = anthropic_messages.encode_stream(events, backend.model_id, decoded.stop_sequences, ctx.add_usage)
        return StreamingResponse(
            close_after(chunks, events.aclose, backend.model_id),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", **backend.headers(streaming=True)},
        )
    result = await backend.complete(chat)
    answer = anthropic_messages.encode_result(result, backend.model_id, decoded.stop_sequences)
    return json_response(answer, headers=backend.headers())


@anthropic
async def count_tokens(request: Request) -> Response:
    """Claude: Anthropic's own count. Any other model: an estimate — no instance is started, nothing is pulled."""
    gateway = _gateway(request)
    body = await read_body(request, gateway.settings.server.max_body_bytes)
    head = anthropic_messages.decode_head(body)
    ctx = context(request)
    target = await dispatch.resolve(gateway, head.model, ctx.principal, pull=False)
    if isinstance(target, dispatch.ForwardTarget):
        assert gateway.link is not None
        return await gateway.link.forward(request, body, ctx)
    if isinstance(target, ProviderRoute):
        if target.provider == anthropic_messages.NATIVE_PROVIDER:
            path = _upstream_path(COUNT_TOKENS_PATH, request)
            return await anthropic_native.forward(gateway, target, ctx, path, body, head, request.headers)
        name = target.model
    else:
        task = gateway.open.task(target.model_id)
        if task not in CHAT_TASKS:
            raise _not_chat(target.model_id, task)
        name = target.model_id
    decoded = anthropic_messages.decode_count_tokens(body, name)
    return json_response(to_json({"input_tokens": anthropic_messages.estimate_tokens(decoded.request)}))


def _upstream_path(path: str, request: Request) -> str:
    """Anthropic's path, with the caller's query (the SDKs' beta client adds `?beta=true`)."""
    return f"{path}?{request.url.query}" if request.url.query else path


def _check_chat(backend: ModelBackend) -> None:
    assert not isinstance(backend, ForwardedBackend)
    if backend.task not in CHAT_TASKS:
        raise _not_chat(backend.model_id, backend.task)


def _not_chat(model_id: str, task: str) -> InvalidRequest:
    return InvalidRequest(f"model: '{model_id}' is a {task} model, not a chat model.", param="model")


def _check_images(backend: ChatBackend, decoded: Decoded) -> None:
    """An image for an open model that reads text only is refused here, naming where the image is."""
    if decoded.image_fields and backend.kind == "open" and backend.task not in _READS_IMAGES:
        where = decoded.image_fields[0]
        raise InvalidRequest(
            f"{where}: '{backend.model_id}' takes text only (an open {backend.task} model); send text, or choose a "
            "model that reads images.",
            param=where,
        )


# --------------------------------------------------------------------------------------------------- models


def _chat_models(gateway: Gateway) -> list[str]:
    open_chat = [m for m, task in gateway.open.catalog.tasks().items() if task in CHAT_TASKS]
    return [*open_chat, *gateway.catalog.closed_model_ids()]


def _negotiated(handler: Handler) -> Handler:
    """A `/v1/models` route both surfaces share: Anthropic's answers and errors with `anthropic-version`, else
    OpenAI's (under /models/v2/anthropic/v1, Anthropic's always)."""
    answers_anthropic = anthropic(handler)
    answers_openai = guarded(openai_compat.SURFACE.error_body)(handler)

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        if _wants_anthropic(request):
            return await answers_anthropic(request)
        return await answers_openai(request)

    return endpoint


def _wants_anthropic(request: Request) -> bool:
    return VERSION_HEADER in request.headers or request.url.path.startswith("/models/v2/anthropic/")


@_negotiated
async def list_models(request: Request) -> Response:
    """The chat models (Anthropic's list: paged by `limit`, `after_id`, `before_id`), or OpenAI's list of all."""
    gateway = _gateway(request)
    if not _wants_anthropic(request):
        return json_response(
            openai_compat.encode_models([*gateway.open.catalog.tasks(), *gateway.catalog.closed_model_ids()])
        )
    query = request.query_params
    limit = _limit(query.get("limit"))
    page = anthropic_messages.encode_models(
        _chat_models(gateway), limit, query.get("after_id") or None, query.get("before_id") or None
    )
    return json_response(page)


@_negotiated
async def get_model(request: Request) -> Response:
    gateway = _gateway(request)
    model_id = request.path_params["model_id"]
    if _wants_anthropic(request):
        if model_id not in _chat_models(gateway):
            raise NotFound(f"model: {model_id}", param="model_id")
        return json_response(to_json(anthropic_messages.model_json(model_id)))
    if model_id not in gateway.open.catalog.tasks() and model_id not in gateway.catalog.closed_model_ids():
        raise NotFound(f"The model '{model_id}' does not exist.", code="model_not_found", param="model")
    owner = model_id.split("/", 1)[0]
    return json_response(to_json({"id": model_id, "object": "model", "created": 0, "owned_by": owner}))


def _limit(value: str | None) -> int:
    if value is None:
        return 20
    if not value.isdigit() or not 1 <= int(value) <= 1000:
        raise InvalidRequest("limit: must be an integer from 1 to 1000.", param="limit")
    return int(value)


def routes() -> list[Route]:
    """The routes; they come before the OpenAI and v2 routes (`/v1/models`, `/models/v2/anthropic/v1/…`)."""
    out: list[Route] = []
    for prefix in PREFIXES:
        out.append(Route(f"{prefix}/messages", create_message, methods=["POST"]))
        out.append(Route(f"{prefix}/messages/count_tokens", count_tokens, methods=["POST"]))
        out.append(Route(f"{prefix}/models", list_models, methods=["GET"]))
        out.append(Route(f"{prefix}/models/{{model_id:path}}", get_model, methods=["GET"]))
    return out


def openapi_paths(error_ref: str, statuses: tuple[int, ...]) -> dict[str, Any]:
    """This surface's part of the OpenAPI document (gateway/openapi.py)."""
    key = {"name": "provider-key", "in": "header", "required": False, "schema": {"type": "string"}}
    version = {"name": VERSION_HEADER, "in": "header", "required": False, "schema": {"type": "string"}}

    def errors(codes: tuple[int, ...]) -> dict[str, Any]:
        return {
            str(code): {
                "description": "An error in Anthropic's shape.",
                "content": {"application/json": {"schema": {"$ref": error_ref}}},
            }
            for code in codes
        }

    def post(op: str, summary: str, schema: str, ok: str) -> dict[str, Any]:
        return {
            "post": {
                "summary": summary,
                "operationId": op,
                "parameters": [key, version],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
                },
                "responses": {
                    "200": {"description": ok, "content": {"application/json": {}, "text/event-stream": {}}},
                    **errors(statuses),
                },
            }
        }

    paths: dict[str, Any] = {}
    for prefix in PREFIXES:
        tag = prefix.strip("/").replace("/", "_")
        paths[f"{prefix}/messages"] = post(
            f"createMessage_{tag}",
            "Anthropic Messages API (any model; Claude forwarded as it is)",
            "AnthropicMessagesRequest",
            "A message object, or Anthropic's SSE events when streaming.",
        )
        paths[f"{prefix}/messages/count_tokens"] = post(
            f"countTokens_{tag}",
            "Input tokens of a Messages request (Claude: Anthropic's count; others: an estimate)",
            "AnthropicCountTokensRequest",
            '{"input_tokens": N}',
        )
    models = "/models/v2/anthropic/v1/models"
    paths[models] = {
        "get": {
            "summary": "The chat models, in Anthropic's model list shape",
            "operationId": "listModels_anthropic",
            "parameters": [
                {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer"}},
                {"name": "after_id", "in": "query", "required": False, "schema": {"type": "string"}},
                {"name": "before_id", "in": "query", "required": False, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {"description": "A page of models", "content": {"application/json": {}}},
                **errors((400,)),
            },
        }
    }
    for prefix in PREFIXES:
        tag = prefix.strip("/").replace("/", "_")
        paths[f"{prefix}/models/{{model_id}}"] = {
            "get": {
                "summary": "One model (Anthropic's shape with anthropic-version or under /models/v2/anthropic/v1)",
                "operationId": f"getModel_{tag}",
                "parameters": [
                    {"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    version,
                ],
                "responses": {
                    "200": {"description": "The model", "content": {"application/json": {}}},
                    **errors((404,)),
                },
            }
        }
    return paths


ANTHROPIC_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}
