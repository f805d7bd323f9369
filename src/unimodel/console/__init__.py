"""The web console at /console: a small client (plain ES modules, uPlot vendored) served as static files.

Why a client rather than server-rendered pages: the console uses the same public APIs as every other caller (v2,
/v1, the cluster and admin APIs) with the caller's own key, kept in the browser's session storage, so it has no
back door and no server-side session to guard; streaming chat and live cluster views need a script anyway. The
assets are files of this package (`static/`): nothing is fetched from anywhere else at run time.

The files load without a key (they hold no data); every API call the page makes carries the key the user typed.
Every answer of the console's files carries a strict Content-Security-Policy (scripts from this server only, no
inline script), so markup that a model's output might smuggle into the page could not run even if it were ever
parsed as HTML — and the client renders untrusted text with `textContent` only.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).parent / "static"
PREFIX = "/console"

SECURITY_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        b"media-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        b"frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),  # revalidated each load: an upgraded server's files are seen at once
)


class _Hardened:
    """Adds the console's security headers to every answer of the app it wraps."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def wants_console(request: Request) -> bool:
    """A browser navigating to the server's root (it asks for HTML), not an API client asking what this is."""
    accept = request.headers.get("accept", "")
    return "text/html" in accept and request.headers.get("sec-fetch-dest", "document") == "document"


def console_redirect(request: Request | None = None) -> Response:
    return RedirectResponse(PREFIX + "/", status_code=307)


def is_console_path(path: str) -> bool:
    """The console's files: public (no key needed), unlike every API they call."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def routes() -> list[BaseRoute]:
    return [
        Route(PREFIX, console_redirect, methods=["GET", "HEAD"]),
        Mount(PREFIX, app=_Hardened(StaticFiles(directory=STATIC, html=True)), name="console"),
    ]
