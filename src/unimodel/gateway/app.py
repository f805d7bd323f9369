"""The ASGI app: wires the frontends' routes to the gateway service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from pydantic_core import to_json
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import __version__
from ..config import Settings
from ..frontends import bytez_v2, openai_compat
from ..protocol import NotFound, UnimodelError
from ..runtime.backend import Backend
from . import routes_clusters, routes_openai, routes_v2
from .http import error_response, json_response
from .openapi import build_openapi
from .service import Gateway


def create_app(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None, backend: Backend | None = None
) -> Starlette:
    """The unimodel server. `transport` replaces the upstream HTTP transport (tests use it for fakes);
    `backend` replaces how open-model instances are started."""
    gateway = Gateway(settings, transport, backend)
    openapi = to_json(build_openapi())

    async def index(request: Request) -> Response:
        return json_response(
            to_json({"name": "unimodel", "version": __version__, "openapi": "/openapi.json", "api": "/models/v2/"})
        )

    async def openapi_json(request: Request) -> Response:
        return json_response(openapi)

    async def healthz(request: Request) -> Response:
        return json_response(b'{"status":"ok"}')

    routes: list[BaseRoute] = [
        Route("/", index, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", healthz, methods=["GET"]),
        *routes_openai.routes(gateway),
        # Starlette takes the first route matching path AND method, so list/* win over /models/v2/{modelId}.
        *routes_v2.routes(gateway),
        *routes_clusters.routes(gateway),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.open.start()
        try:
            yield
        finally:
            await gateway.aclose()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            allowed = {k.lower(): v for k, v in (exc.headers or {}).items()}.get("allow", "another method")
            error = UnimodelError(
                f"{request.method} is not allowed on {request.url.path}; use {allowed}.",
                status=405,
                code="method_not_allowed",
            )
        else:
            error = NotFound(f"No route for {request.method} {request.url.path}; see /openapi.json.")
        if request.url.path.startswith(routes_openai.PREFIXES):
            return error_response(error, openai_compat.error_body)
        return error_response(error, bytez_v2.error_body)

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})
    app.state.gateway = gateway
    return app
