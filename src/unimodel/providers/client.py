"""HTTP to one provider: a pooled async client, timeouts, retries before the first byte, and streams.

httpx errors are converted into the protocol's error tree here and nowhere else.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncGenerator
from typing import Any

import httpx
from httpx_sse import EventSource, SSEError
from pydantic_core import from_json, to_json
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from ..protocol import (
    ChatRequest,
    ChatResult,
    Finish,
    StreamError,
    StreamEvent,
    ToolCallDelta,
    UnimodelError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .base import ProviderAdapter, SSEMessage, UpstreamRequest

log = logging.getLogger("unimodel.upstream")

_RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


class _Retryable(Exception):
    """Wraps an error that may be retried because no byte of an answer was produced yet."""

    def __init__(self, error: UnimodelError) -> None:
        super().__init__(error.message)
        self.error = error


class ProviderClient:
    """Sends canonical requests to one provider through its adapter."""

    def __init__(self, adapter: ProviderAdapter, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.adapter = adapter
        cfg = adapter.config
        self._cfg = cfg
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(
                connect=cfg.connect_timeout_s,
                read=cfg.read_timeout_s,
                write=cfg.read_timeout_s,
                pool=cfg.connect_timeout_s,
            ),
            limits=httpx.Limits(max_connections=cfg.max_connections, max_keepalive_connections=cfg.max_connections),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def complete(self, request: ChatRequest, api_key: str) -> ChatResult:
        upstream = self.adapter.build_request(request, api_key)
        response = await self._send(upstream)
        try:
            raw = await response.aread()
        except httpx.TimeoutException as exc:
            raise self._timeout() from exc
        except httpx.TransportError as exc:
            raise UpstreamProtocolError(
                f"The connection to provider '{self.adapter.name}' broke while reading its answer.",
                provider=self.adapter.name,
            ) from exc
        finally:
            await response.aclose()
        body = self._decode(raw)
        try:
            result = self.adapter.parse_response(body)
        except UnimodelError:
            raise
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise UpstreamProtocolError(
                f"Provider '{self.adapter.name}' sent an answer unimodel could not read ({type(exc).__name__}: {exc}).",
                provider=self.adapter.name,
            ) from exc
        if result.tool_calls and result.finish_reason == "stop":
            result.finish_reason = "tool_calls"  # some providers say "stop" after a forced call
        return result

    async def stream(self, request: ChatRequest, api_key: str) -> AsyncGenerator[StreamEvent, None]:
        """Open the upstream stream (errors before the first byte raise here) and return its events."""
        upstream = self.adapter.build_request(request, api_key)
        response = await self._send(upstream)
        return self._events(request, response)

    async def _events(self, request: ChatRequest, response: httpx.Response) -> AsyncGenerator[StreamEvent, None]:
        decoder = self.adapter.stream_decoder(request)
        finished = called = False
        name = self.adapter.name
        try:
            async for sse in EventSource(response).aiter_sse():
                for event in decoder.feed(SSEMessage(sse.event, sse.data)):
                    called = called or isinstance(event, ToolCallDelta)
                    if isinstance(event, Finish):
                        finished = True
                        if called and event.reason == "stop":  # some providers say "stop" after a forced call
                            event = Finish("tool_calls", event.raw_reason)
                    yield event
                    if isinstance(event, StreamError):
                        return
                if decoder.done():
                    break
            for event in decoder.close():
                finished = finished or isinstance(event, Finish)
                yield event
            if not finished:
                yield StreamError(
                    UpstreamProtocolError(f"Provider '{name}' ended its stream before finishing.", provider=name)
                )
        except httpx.TimeoutException:
            yield StreamError(self._timeout())
        except (httpx.TransportError, SSEError) as exc:
            yield StreamError(
                UpstreamProtocolError(f"Provider '{name}' stream broke off: {type(exc).__name__}.", provider=name)
            )
        except UnimodelError as exc:
            yield StreamError(exc)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            yield StreamError(
                UpstreamProtocolError(
                    f"Provider '{name}' sent a stream event unimodel could not read ({type(exc).__name__}).",
                    provider=name,
                )
            )
        finally:
            await response.aclose()

    async def _send(self, upstream: UpstreamRequest) -> httpx.Response:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._cfg.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: isinstance(exc, _Retryable)),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._send_once(upstream)
        except _Retryable as exc:
            raise exc.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, _Retryable) and exc.error.retry_after is not None:
            return exc.error.retry_after
        base = self._cfg.retry_backoff_s * (2 ** (state.attempt_number - 1))
        return float(base * (0.5 + random.random() / 2))

    async def _send_once(self, upstream: UpstreamRequest) -> httpx.Response:
        name = self.adapter.name
        req = self._http.build_request(
            "POST",
            upstream.url,
            content=to_json(upstream.body),
            headers={"content-type": "application/json", **upstream.headers},
        )
        try:
            response = await self._http.send(req, stream=True)
        except httpx.ConnectTimeout as exc:
            raise _Retryable(
                UpstreamTimeout(
                    f"Could not connect to provider '{name}' within {self._cfg.connect_timeout_s:g} s.",
                    provider=name,
                )
            ) from exc
        except httpx.TimeoutException as exc:
            raise self._timeout() from exc
        except (httpx.ConnectError, httpx.RemoteProtocolError) as exc:
            raise _Retryable(
                UpstreamUnavailable(
                    f"Could not connect to provider '{name}' at {self.adapter.base_url}: {type(exc).__name__}.",
                    provider=name,
                )
            ) from exc
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(
                f"The connection to provider '{name}' failed: {type(exc).__name__}.", provider=name
            ) from exc
        if response.status_code < 400:
            return response
        try:
            raw = await response.aread()
        except httpx.HTTPError:
            raw = b""
        finally:
            await response.aclose()
        error = self.adapter.map_error(response.status_code, _try_json(raw), response.headers)
        log.warning(
            "upstream error provider=%s status=%s code=%s answered_status=%s",
            name,
            response.status_code,
            error.code,
            error.status,
        )
        if response.status_code in _RETRY_STATUSES and (
            error.retry_after is None or error.retry_after <= self._cfg.retry_max_wait_s
        ):
            raise _Retryable(error)
        raise error

    def _timeout(self) -> UpstreamTimeout:
        name = self.adapter.name
        return UpstreamTimeout(
            f"Provider '{name}' did not answer within {self._cfg.read_timeout_s:g} s (read timeout).",
            provider=name,
        )

    def _decode(self, raw: bytes) -> Any:
        try:
            return from_json(raw)
        except ValueError as exc:
            raise UpstreamProtocolError(
                f"Provider '{self.adapter.name}' answered with a body that is not JSON.",
                provider=self.adapter.name,
            ) from exc


def _try_json(raw: bytes) -> Any:
    try:
        return from_json(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", "replace")[:500]
