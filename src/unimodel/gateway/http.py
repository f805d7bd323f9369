"""Request-body reading with a size cap, and the error-to-response boundary shared by every route."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pydantic_core import to_json
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ..protocol import PayloadTooLarge, UnimodelError

log = logging.getLogger("unimodel.gateway")

ErrorEncoder = Callable[[UnimodelError], dict[str, Any]]
Handler = Callable[[Request], Awaitable[Response]]


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or a 413 as soon as it passes `limit` bytes (before reading it all when declared)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than the server's limit of {limit} bytes (server.max_body_bytes).",
        param="body",
    )


def json_response(content: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(content, status_code=status, media_type="application/json", headers=headers)


def error_response(error: UnimodelError, encode: ErrorEncoder) -> Response:
    headers: dict[str, str] = {}
    if error.retry_after is not None:
        headers["retry-after"] = str(max(0, round(error.retry_after)))
    return json_response(to_json(encode(error)), error.status, headers)


def guarded(encode: ErrorEncoder) -> Callable[[Handler], Handler]:
    """Turn every error a handler raises into the surface's error body; unexpected ones are logged, never bare."""

    def wrap(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except UnimodelError as exc:
                if exc.status >= 500:
                    log.warning(
                        "request failed path=%s status=%s code=%s: %s",
                        request.url.path,
                        exc.status,
                        exc.code,
                        exc.message,
                    )
                return error_response(exc, encode)
            except ClientDisconnect:  # the client left before sending its whole body: nobody to answer
                log.info("client disconnected before its request body was read path=%s", request.url.path)
                return Response(status_code=499)
            except Exception:
                log.exception("unexpected error path=%s", request.url.path)
                return error_response(
                    UnimodelError(
                        "unimodel hit an unexpected error; it is logged on the server.", code="internal_error"
                    ),
                    encode,
                )

        endpoint.__name__ = handler.__name__
        endpoint.__doc__ = handler.__doc__
        return endpoint

    return wrap


async def close_after(
    body: AsyncIterator[bytes], closer: Callable[[], Awaitable[None]], what: str
) -> AsyncIterator[bytes]:
    """Stream `body`, always release the upstream afterwards, and end cleanly (with a log line) on a failure."""
    try:
        async for chunk in body:
            yield chunk
    except Exception:
        log.exception("stream failed after the first byte: %s", what)
    finally:
        await closer()
