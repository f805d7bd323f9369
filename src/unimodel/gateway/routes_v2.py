"""The Bytez `/models/v2` routes: run a model, list models and tasks."""

from __future__ import annotations

import logging
from collections.abc import Callable

from pydantic_core import to_json
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..frontends import bytez_v2
from ..protocol import UnimodelError
from . import dispatch, routes_open
from .context import context
from .dispatch import ForwardTarget, OpenTarget
from .http import close_after, guarded, json_response, read_body
from .service import Gateway

log = logging.getLogger("unimodel.gateway")

v2 = guarded(bytez_v2.error_body)


def _log_stream_error(model_id: str) -> Callable[[UnimodelError], None]:
    def on_error(error: UnimodelError) -> None:
        log.warning(
            "stream ended early model=%s status=%s code=%s: %s", model_id, error.status, error.code, error.message
        )

    return on_error


def routes(gateway: Gateway) -> list[Route]:
    @v2
    async def run_model(request: Request) -> Response:
        """Run a model: the SDK body (`input`, `params`, `stream`) or the HTTP body (`messages`/`text`)."""
        model_id = request.path_params["model_id"]
        ctx = context(request)
        route = await dispatch.resolve(gateway, model_id, ctx.principal)
        if isinstance(route, ForwardTarget):
            body = await read_body(request, gateway.settings.server.max_body_bytes)
            return await routes_open.forward(gateway, request, ctx, route.model_id, body)
        if isinstance(route, OpenTarget):
            body = await read_body(request, gateway.settings.server.max_body_bytes)
            return await routes_open.run_v2(gateway, ctx, route.model_id, body)
        ctx.routed(model_id, "closed", route.provider)
        body = await read_body(request, gateway.settings.server.max_body_bytes)
        chat = bytez_v2.decode_chat(body, route.model)
        key = gateway.provider_key(route, request.headers, ctx.principal)
        if chat.stream:
            events = await gateway.stream(route, chat, key)
            chunks = bytez_v2.encode_stream(events, _log_stream_error(model_id), ctx.add_usage)
            return StreamingResponse(
                close_after(chunks, events.aclose, model_id), media_type="text/plain; charset=utf-8"
            )
        result = await gateway.complete(route, chat, key)
        ctx.add_usage(result.usage)
        return json_response(bytez_v2.encode_result(result))

    @v2
    async def list_models(request: Request) -> Response:
        """The catalog, filtered by `task` and `modelId`."""
        task, model_id = _list_query(request)
        output = gateway.catalog.list_models(task=task, model_id=model_id)
        return json_response(to_json({"error": None, "output": output}))

    @v2
    async def list_tasks(request: Request) -> Response:
        return json_response(to_json({"error": None, "output": gateway.catalog.tasks()}))

    return [
        Route("/models/v2/list/models", list_models, methods=["GET"]),
        Route("/models/v2/list/tasks", list_tasks, methods=["GET"]),
        Route("/models/v2/{model_id:path}", run_model, methods=["POST"]),
    ]


def _list_query(request: Request) -> tuple[str | None, str | None]:
    """`task` and `modelId`, tolerating the JS SDK's malformed `?task=X?modelId=Y`."""
    task = request.query_params.get("task")
    model_id = request.query_params.get("modelId")
    if task and "?modelId=" in task:
        task, _, model_id = task.partition("?modelId=")
    return task or None, model_id or None
