"""The Bytez `/models/v2` routes: run a model, list models and tasks."""

from __future__ import annotations

import logging
from collections.abc import Callable

from pydantic import ValidationError
from pydantic_core import from_json, to_json
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..frontends import bytez_v2, bytez_v2_media
from ..frontends.wire import invalid_request
from ..protocol import ChatRequest, InvalidRequest, UnimodelError
from ..runtime.service import CHAT_TASKS, MEDIA_OUT_TASKS
from . import dispatch
from .context import context
from .http import close_after, guarded, json_response, read_body
from .model_backends import ChatBackend, ClosedBackend, ForwardedBackend, OpenBackend
from .service import Gateway
from .v2_media import run_media_model

log = logging.getLogger("unimodel.gateway")

v2 = guarded(bytez_v2.SURFACE.error_body)


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
        ctx = context(request)
        backend = await dispatch.backend_for(gateway, request.path_params["model_id"], ctx, request.headers)
        body = await read_body(request, gateway.settings.server.max_body_bytes)
        if isinstance(backend, ForwardedBackend):
            return await backend.forward(request, body)
        if backend.task in CHAT_TASKS:
            return await _answer(backend, bytez_v2.decode_chat(body, backend.name))
        if isinstance(backend, ClosedBackend) and backend.task in bytez_v2_media.MEDIA_TASKS:
            return await run_media_model(gateway, backend, body, request)
        if isinstance(backend, OpenBackend) and backend.task in MEDIA_OUT_TASKS:  # generated media, as closed models'
            return await run_media_model(gateway, backend, body, request)
        if isinstance(backend, ClosedBackend):  # a provider's embedding model
            embedding, single = bytez_v2.decode_embeddings(body, backend.name)
            result = await backend.embed(embedding)
            return json_response(bytez_v2.encode_embeddings(result, single))
        return await _run_task(backend, body)

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


async def _answer(backend: ChatBackend, chat: ChatRequest) -> Response:
    """A chat call: the envelope, or with `stream` the answer's text as it comes."""
    if chat.stream:
        events = await backend.stream(chat)
        chunks = bytez_v2.encode_stream(events, _log_stream_error(backend.model_id), backend.ctx.add_usage)
        return StreamingResponse(
            close_after(chunks, events.aclose, backend.model_id),
            media_type="text/plain; charset=utf-8",
            headers=backend.headers(streaming=True),
        )
    result = await backend.complete(chat)
    return json_response(bytez_v2.encode_result(result), headers=backend.headers())


async def _run_task(backend: OpenBackend, body: bytes) -> Response:
    """An open model's other tasks (fill-mask, embeddings, classification …): the v2 body goes as it is."""
    try:
        bytez_v2.RunRequest.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_request(exc) from None
    payload = from_json(body)
    if payload.get("stream"):
        raise InvalidRequest(
            f"'{backend.model_id}' is a {backend.task} model; streaming is for chat models.", param="stream"
        )
    output = await backend.run(payload, raw=body)
    return json_response(to_json({"error": None, "output": output}), headers=backend.headers())


def _list_query(request: Request) -> tuple[str | None, str | None]:
    """`task` and `modelId`, tolerating the JS SDK's malformed `?task=X?modelId=Y`."""
    task = request.query_params.get("task")
    model_id = request.query_params.get("modelId")
    if task and "?modelId=" in task:
        task, _, model_id = task.partition("?modelId=")
    return task or None, model_id or None
