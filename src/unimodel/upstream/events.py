"""From a streamed upstream body to canonical stream events: one loop for closed providers and open-model instances.

    decoder = adapter.stream_decoder(request)              # the upstream's dialect (a StreamDecoder)
    async for event in stream_events(response, decoder, who="Provider 'openai'", timeout=...):
        ...

bytes → server-sent events (sse.py) → the decoder's canonical events, plus what every stream needs whoever
answers it: a tool call that ends with "stop" ends with "tool_calls" (some upstreams say "stop" after a forced
call); a stream that ends before its finish event, breaks off, or goes silent past the read timeout ends with a
`StreamError` (after the first byte the stream can only end); an upstream event that cannot be read is a
`StreamError` too. The caller closes the response (or the lease holding it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping

from ..protocol import (
    Finish,
    StreamError,
    StreamEvent,
    ToolCallDelta,
    UnimodelError,
    UpstreamProtocolError,
)
from .sse import SSEDecoder, SSEMessage
from .transport import ReadTimedOut, TransportFailure, UpstreamResponse


class StreamDecoder(ABC):
    """Turns one upstream stream's events into canonical events; one instance per stream (it keeps state)."""

    @abstractmethod
    def feed(self, message: SSEMessage) -> list[StreamEvent]:
        """Canonical events for one upstream event (often none, sometimes several)."""

    def done(self) -> bool:
        """True once the upstream has said its last word (the rest of the connection is ignored)."""
        return False

    def close(self) -> list[StreamEvent]:
        """Events to emit when the upstream stream ended normally."""
        return []


def _unchanged(error: UnimodelError) -> UnimodelError:
    return error


async def stream_events(
    response: UpstreamResponse,
    decoder: StreamDecoder,
    *,
    who: str,
    timed_out: Callable[[], UnimodelError],
    provider: str | None = None,
    shown: Callable[[UnimodelError], UnimodelError] = _unchanged,
) -> AsyncGenerator[StreamEvent, None]:
    """The canonical events of a streamed answer. `who` names the upstream in errors ("Provider 'openai'", "The
    instance serving 'x'"); `timed_out()` is the error for a stream silent past the read timeout; `shown` is applied
    to every error before it leaves (providers redact their keys there)."""
    finished = called = False
    try:
        _check_event_stream(response.headers, who, provider)
        sse = SSEDecoder()
        async for chunk in _with_tail(response.chunks()):
            messages = sse.feed(chunk) if chunk is not None else sse.flush()
            for message in messages:
                for event in decoder.feed(message):
                    called = called or isinstance(event, ToolCallDelta)
                    if isinstance(event, Finish):
                        finished = True
                        if called and event.reason == "stop":  # some upstreams say "stop" after a forced call
                            event = Finish("tool_calls", event.raw_reason)
                    if isinstance(event, StreamError):
                        yield StreamError(shown(event.error))
                        return
                    yield event
                if decoder.done():
                    break
            if decoder.done():
                break
        for event in decoder.close():
            finished = finished or isinstance(event, Finish)
            yield StreamError(shown(event.error)) if isinstance(event, StreamError) else event
        if not finished:
            yield StreamError(UpstreamProtocolError(f"{who} ended its stream before finishing.", provider=provider))
    except ReadTimedOut:
        yield StreamError(shown(timed_out()))
    except TransportFailure as exc:
        yield StreamError(UpstreamProtocolError(f"{who} broke off its stream: {exc}.", provider=provider))
    except UnimodelError as exc:
        yield StreamError(shown(exc))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        yield StreamError(
            UpstreamProtocolError(
                f"{who} sent a stream event unimodel could not read ({type(exc).__name__}).", provider=provider
            )
        )


def _check_event_stream(headers: Mapping[str, str], who: str, provider: str | None) -> None:
    kind = headers.get("content-type", "")
    if "text/event-stream" not in kind:
        raise UpstreamProtocolError(
            f"{who} answered a stream request with '{kind or 'no content type'}', not an event stream.",
            provider=provider,
        )


async def _with_tail(chunks: AsyncIterator[bytes]) -> AsyncGenerator[bytes | None, None]:
    """The chunks, then None to mark the end of the body."""
    async for chunk in chunks:
        yield chunk
    yield None
