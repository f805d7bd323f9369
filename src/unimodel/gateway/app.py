"""The ASGI app: wires the frontends' routes to the gateway service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from pydantic_core import to_json
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import __version__, console
from ..config import Settings
from ..frontends import bytez_v2
from ..frontends.surface import surface_of
from ..protocol import NotFound, PermissionDenied, UnimodelError
from ..runtime.backend import Backend
from ..store import Store
from . import (
    metrics,
    routes_admin,
    routes_anthropic,
    routes_clusters,
    routes_media,
    routes_openai,
    routes_openai_media,
    routes_responses,
    routes_v2,
)
from .http import error_response, guarded, json_response
from .limits import Limiter
from .logs import install_request_ids
from .middleware import PlatformMiddleware
from .openapi import build_openapi
from .origins import OpenModeGuard
from .platform import Platform
from .runtime_link import RuntimeLink
from .service import Gateway


def create_app(
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None = None,
    backend: Backend | None = None,
    *,
    store: Store | None = None,
    limiter: Limiter | None = None,
    runtime: RuntimeLink | None = None,
    internal_token: str | None = None,
) -> Starlette:
    """The unimodel server. `transport` replaces the upstream HTTP transport (tests use it for fakes);
    `backend` replaces how open-model instances are started; `store` is an already opened (and migrated) store,
    else the one `[store]` names is opened and migrated here — StoreUnavailable when it cannot be.

    `serve --workers N` runs this app in two roles (gateway/runtime_link.py): gateway processes get `runtime`, the
    link to the process that runs the open models, and forward those requests to it; that runtime process gets
    `internal_token` and answers only requests carrying it."""
    install_request_ids()
    platform = Platform(settings, store or Store.open(settings.store), limiter=limiter)
    gateway = Gateway(settings, transport, backend)
    gateway.platform = platform
    gateway.link = runtime
    platform.listed_model = gateway.catalog.listed
    runs_models = runtime is None
    openapi = to_json(build_openapi())

    async def index(request: Request) -> Response:
        if console.wants_console(request):  # a browser opening the server's address gets the console
            return console.console_redirect()
        return json_response(
            to_json({"name": "unimodel", "version": __version__, "openapi": "/openapi.json", "api": "/models/v2/"})
        )

    async def openapi_json(request: Request) -> Response:
        return json_response(openapi)

    async def healthz(request: Request) -> Response:
        """Liveness: the process answers."""
        return json_response(b'{"status":"ok"}')

    async def readyz(request: Request) -> Response:
        """Readiness: the store, the usage ledger and the shared limits all work (200 "ready"; 503 "not_ready"
        naming the check that fails); 200 "degraded" when the server serves but something is being lost."""
        ready, checks = await platform.readiness()
        status = (
            "not_ready" if not ready else "degraded" if any(c.get("degraded") for c in checks.values()) else "ready"
        )
        return json_response(to_json({"status": status, "checks": checks}), 200 if ready else 503)

    @guarded(bytez_v2.OTHER.error_body)
    async def metrics_text(request: Request) -> Response:
        """Prometheus metrics; with `[metrics] access = "admin"` and keys on, for admin keys only."""
        if settings.metrics.access == "admin" and platform.mode == "keys":
            principal = await platform.authenticate(request.headers, required=True)
            if not principal.admin:
                raise PermissionDenied(
                    'Metrics need an admin key (or set [metrics] access = "public", or serve them on their own '
                    "port with [metrics] port)."
                )
        if runs_models:
            gauges.update(gateway.open.controller.metrics())
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    gauges = metrics.OpenModelGauges()

    async def report_open_models() -> None:
        while True:
            gauges.update(gateway.open.controller.metrics())
            await asyncio.sleep(1.0)

    routes: list[BaseRoute] = [
        Route("/", index, methods=["GET"]),
        *console.routes(),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_text, methods=["GET"]),
        *routes_anthropic.routes(),  # before the OpenAI routes (it answers /v1/models by anthropic-version) and v2's
        *routes_openai.routes(gateway),
        *routes_openai_media.routes(gateway),
        *routes_responses.routes(gateway),
        # Starlette takes the first route matching path AND method, so admin/*, usage and list/* win over
        # /models/v2/{modelId}.
        *routes_admin.routes(platform, gateway.catalog.providers, settings.server.max_body_bytes),
        *routes_media.routes(gateway.media_store),  # GET /models/v2/media/{id}, before the clusters' GET
        *routes_v2.routes(gateway),
        *routes_clusters.routes(gateway),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await platform.start()
        reporter: asyncio.Task[None] | None = None
        if runs_models:
            await gateway.open.start()
            reporter = asyncio.create_task(report_open_models(), name="unimodel-open-model-metrics")
        try:
            yield
        finally:
            if reporter is not None:
                reporter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reporter
            await gateway.aclose()
            await platform.aclose()

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
        return error_response(error, surface_of(request.url.path).error_body)

    server = settings.server
    middleware = [
        Middleware(
            PlatformMiddleware,
            platform=platform,
            access_log=server.access_log,
            internal_token=internal_token,
            guard=OpenModeGuard(server.allowed_hosts, server.cors_origins)
            if platform.mode == "open" and internal_token is None
            else None,
        )
    ]
    if server.cors_origins:  # answers preflights and adds CORS headers for the listed origins only
        middleware.insert(0, cors_middleware(server.cors_origins))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},
        middleware=middleware,
    )
    app.state.gateway = gateway
    app.state.platform = platform
    return app


def cors_middleware(origins: list[str]) -> Middleware:
    """CORS for the configured origins: any method and request header (keys travel in `Authorization`), and the
    answer headers clients read."""
    exposed = ["x-request-id", "retry-after", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"]
    return Middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=[*exposed, "inference-meter", "inference-time"],
        max_age=600,
    )
