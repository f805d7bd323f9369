"""Talking to one provider: timeouts, retries before the first byte, streams, and error conversion.

The bytes go through an `UpstreamTransport` (transport.py); its failures, and the provider's error answers,
are converted into the protocol's error tree here and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import httpx
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
from .base import ProviderAdapter, UpstreamRequest
from .media import MediaFetcher
from .sse import SSEDecoder
from .transport import (
    AiohttpTransport,
    ConnectFailed,
    ConnectionBroken,
    ConnectTimedOut,
    HttpxTransport,
    Limits,
    ReadTimedOut,
    TransportFailure,
    UpstreamResponse,
    UpstreamTransport,
)

log = logging.getLogger("unimodel.upstream")

_RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


class _Retryable(Exception):
    """Wraps an error that may be retried because no byte of an answer was produced yet."""

    def __init__(self, error: UnimodelError) -> None:
        super().__init__(error.message)
        self.error = error


class ProviderClient:
    """Sends canonical requests to one provider through its adapter.

    For a provider that takes images only inline (`info.inline_images`), `media` fetches http(s) image URLs
    into base64 first. The gateway always gives one (shared by its clients); without one no URL is fetched and
    the adapter sees image URLs as they are — a client never does network I/O it was not handed.

    `transport` replaces the production HTTP stack (aiohttp) with any httpx transport — tests pass
    `httpx.MockTransport` or an ASGI app.
    """

    def __init__(
        self,
        adapter: ProviderAdapter,
        transport: httpx.AsyncBaseTransport | None = None,
        media: MediaFetcher | None = None,
    ) -> None:
        self.adapter = adapter
        self._media = media
        cfg = adapter.config
        self._cfg = cfg
        limits = Limits(cfg.connect_timeout_s, cfg.read_timeout_s, cfg.max_connections)
        self._http: UpstreamTransport = (
            AiohttpTransport(limits) if transport is None else HttpxTransport(limits, transport)
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def complete(self, request: ChatRequest, api_key: str) -> ChatResult:
        request = await self._inline_media(request)
        upstream = self.adapter.build_request(request, api_key)
        response = await self._send(upstream)
        try:
            raw = await response.read()
        except ReadTimedOut as exc:
            raise self._timeout() from exc
        except TransportFailure as exc:
            raise UpstreamProtocolError(
                f"The connection to provider '{self.adapter.name}' broke while reading its answer.",
                provider=self.adapter.name,
            ) from exc
        finally:
            await response.close()
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
        request = await self._inline_media(request)
        upstream = self.adapter.build_request(request, api_key)
        response = await self._send(upstream)
        return self._events(request, response)

    async def _inline_media(self, request: ChatRequest) -> ChatRequest:
        """The request with image URLs fetched into base64 data, for providers that take only inline images."""
        if self._media is None or not self.adapter.info.inline_images:
            return request
        return await self._media.inline_images(request, keep=self.adapter.reads_url)

    async def _events(self, request: ChatRequest, response: UpstreamResponse) -> AsyncGenerator[StreamEvent, None]:
        decoder = self.adapter.stream_decoder(request)
        finished = called = False
        name = self.adapter.name
        try:
            _check_event_stream(response.headers, name)
            sse = SSEDecoder()
            async for chunk in _with_tail(response.chunks()):
                messages = sse.feed(chunk) if chunk is not None else sse.flush()
                for message in messages:
                    for event in decoder.feed(message):
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
                if decoder.done():
                    break
            for event in decoder.close():
                finished = finished or isinstance(event, Finish)
                yield event
            if not finished:
                yield StreamError(
                    UpstreamProtocolError(f"Provider '{name}' ended its stream before finishing.", provider=name)
                )
        except ReadTimedOut:
            yield StreamError(self._timeout())
        except TransportFailure as exc:
            yield StreamError(UpstreamProtocolError(f"Provider '{name}' stream broke off: {exc}.", provider=name))
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
            await response.close()

    async def _send(self, upstream: UpstreamRequest) -> UpstreamResponse:
        body = to_json(upstream.body)
        headers = {"content-type": "application/json", **upstream.headers}
        try:  # the first attempt stays off tenacity: most requests need no retry, and it costs per request
            return await self._send_once(upstream.url, headers, body)
        except _Retryable as exc:
            if self._cfg.max_retries == 0:
                raise exc.error from None
            await asyncio.sleep(self._delay(exc.error, 1))
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._cfg.max_retries),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: isinstance(exc, _Retryable)),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._send_once(upstream.url, headers, body)
        except _Retryable as exc:
            raise exc.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        error = exc.error if isinstance(exc, _Retryable) else None
        return self._delay(error, state.attempt_number + 1)

    def _delay(self, error: UnimodelError | None, retry: int) -> float:
        """Before retry number `retry` (1-based): the provider's Retry-After, else jittered exponential backoff."""
        if error is not None and error.retry_after is not None:
            return error.retry_after
        base = self._cfg.retry_backoff_s * (2 ** (retry - 1))
        return float(base * (0.5 + random.random() / 2))

    async def _send_once(self, url: str, headers: Mapping[str, str], body: bytes) -> UpstreamResponse:
        name = self.adapter.name
        try:
            response = await self._http.send(url, headers, body)
        except ConnectTimedOut as exc:
            raise _Retryable(
                UpstreamTimeout(
                    f"Could not connect to provider '{name}' within {self._cfg.connect_timeout_s:g} s.",
                    provider=name,
                )
            ) from exc
        except ReadTimedOut as exc:
            raise self._timeout() from exc
        except ConnectFailed as exc:
            raise _Retryable(
                UpstreamUnavailable(
                    f"Could not connect to provider '{name}' at {self.adapter.base_url}: {exc}.", provider=name
                )
            ) from exc
        except ConnectionBroken as exc:
            raise UpstreamUnavailable(f"The connection to provider '{name}' failed: {exc}.", provider=name) from exc
        if response.status < 400:
            return response
        try:
            raw = await response.read()
        except TransportFailure:
            raw = b""
        finally:
            await response.close()
        error = self.adapter.map_error(response.status, _try_json(raw), response.headers)
        log.warning(
            "upstream error provider=%s status=%s code=%s answered_status=%s",
            name,
            response.status,
            error.code,
            error.status,
        )
        if response.status in _RETRY_STATUSES and (
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


def _check_event_stream(headers: Mapping[str, str], provider: str) -> None:
    kind = headers.get("content-type", "")
    if "text/event-stream" not in kind:
        raise UpstreamProtocolError(
            f"Provider '{provider}' answered a stream request with '{kind or 'no content type'}', not an event stream.",
            provider=provider,
        )


async def _with_tail(chunks: AsyncIterator[bytes]) -> AsyncGenerator[bytes | None, None]:
    """The chunks, then None to mark the end of the body."""
    async for chunk in chunks:
        yield chunk
    yield None


def _try_json(raw: bytes) -> Any:
    try:
        return from_json(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", "replace")[:500]
