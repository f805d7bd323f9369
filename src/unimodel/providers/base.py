"""The narrow interface every closed provider implements: a parameter table plus small hooks.

An adapter is pure translation — it builds the upstream request, reads the upstream answer and its stream
events, and classifies upstream errors. It does no I/O: `ProviderClient` (client.py) does the HTTP.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, ClassVar

from ..config import ProviderConfig
from ..protocol import (
    AuthenticationError,
    ChatRequest,
    ChatResult,
    EmbeddingRequest,
    EmbeddingResult,
    ImageRequest,
    ImageResult,
    InvalidRequest,
    NotFound,
    PaymentRequired,
    PermissionDenied,
    RateLimited,
    SpeechRequest,
    SpeechResult,
    TranscriptionRequest,
    TranscriptionResult,
    UnimodelError,
    UpstreamError,
    UpstreamUnavailable,
)
from ..upstream.events import StreamDecoder
from ..upstream.sse import SSEMessage
from .params import ParamTable

__all__ = ["ProviderAdapter", "ProviderInfo", "SSEMessage", "StreamDecoder", "UpstreamRequest", "parse_retry_after"]


@dataclass(slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    stream: bool = False
    content: bytes | None = None  # a body that is not JSON (a multipart upload), sent as it is instead of `body`


@dataclass(slots=True)
class ProviderInfo:
    """What the catalog shows about a provider."""

    name: str
    default_base_url: str
    models: tuple[str, ...] = ()
    key_header: str = "Authorization"
    docs: str = ""
    # The provider takes images only as inline data: the client fetches http(s) image URLs first (media.py).
    inline_images: bool = False
    embedding_models: tuple[str, ...] = ()  # its embedding models the catalog lists (task feature-extraction)
    image_models: tuple[str, ...] = ()  # text-to-image
    transcription_models: tuple[str, ...] = ()  # automatic-speech-recognition
    speech_models: tuple[str, ...] = ()  # text-to-speech
    extra: dict[str, Any] = field(default_factory=dict)


# A media task's adapter hook, what the API is called, and what to use instead where a provider has none.
MEDIA_APIS = {
    "text-to-image": ("build_image_request", "an image generation API", "openai/gpt-image-1 or openai/dall-e-3"),
    "automatic-speech-recognition": (
        "build_transcription_request",
        "a speech-to-text API",
        "openai/gpt-4o-transcribe or openai/whisper-1",
    ),
    "text-to-speech": ("build_speech_request", "a text-to-speech API", "openai/gpt-4o-mini-tts or openai/tts-1"),
}


class ProviderAdapter(ABC):
    info: ClassVar[ProviderInfo]
    params: ClassVar[ParamTable]

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.base_url = (config.base_url or self.info.default_base_url).rstrip("/")

    @property
    def name(self) -> str:
        return self.info.name

    def reads_url(self, url: str) -> bool:
        """True for an image URL the provider fetches itself (Gemini's Files API, gs://), so the gateway must not."""
        return False

    @abstractmethod
    def build_request(self, request: ChatRequest, api_key: str) -> UpstreamRequest:
        """The upstream HTTP request for a canonical request."""

    @abstractmethod
    def parse_response(self, body: Any) -> ChatResult:
        """The canonical result for a successful upstream JSON body."""

    @abstractmethod
    def stream_decoder(self, request: ChatRequest) -> StreamDecoder:
        """A fresh decoder for one streamed answer."""

    def build_embeddings_request(self, request: EmbeddingRequest, api_key: str) -> UpstreamRequest:
        """The upstream request for an embeddings call; a provider without an embeddings API refuses it."""
        raise InvalidRequest(
            f"Provider '{self.name}' has no embeddings API; use another provider's embedding model, or an open one "
            "(e.g. sentence-transformers/all-MiniLM-L6-v2).",
            code="unsupported_task",
            param="model",
        )

    def parse_embeddings_response(self, body: Any, request: EmbeddingRequest) -> EmbeddingResult:
        """The vectors of a successful embeddings answer, in the order of the inputs."""
        raise NotImplementedError  # pragma: no cover - only reached after build_embeddings_request

    def require(self, task: str) -> None:
        """A 400 naming what to use when the provider has no API for a media `task` (before any key is asked)."""
        hook, what, instead = MEDIA_APIS[task]
        if getattr(type(self), hook) is getattr(ProviderAdapter, hook):
            raise self._no_api(what, instead)

    def build_image_request(self, request: ImageRequest, api_key: str) -> UpstreamRequest:
        """The upstream request for an image generation; a provider without an images API refuses it."""
        self.require("text-to-image")
        raise AssertionError("unreachable")  # pragma: no cover

    def parse_image_response(self, body: Any, request: ImageRequest) -> ImageResult:
        """The images of a successful answer, as bytes."""
        raise NotImplementedError  # pragma: no cover - only reached after build_image_request

    def build_transcription_request(self, request: TranscriptionRequest, api_key: str) -> UpstreamRequest:
        """The upstream request (a multipart upload in `content`) for a transcription."""
        self.require("automatic-speech-recognition")
        raise AssertionError("unreachable")  # pragma: no cover

    def parse_transcription_response(
        self, body: bytes, content_type: str, request: TranscriptionRequest
    ) -> TranscriptionResult:
        """The text of a successful answer, which comes in the format the request asked (JSON or text)."""
        raise NotImplementedError  # pragma: no cover - only reached after build_transcription_request

    def build_speech_request(self, request: SpeechRequest, api_key: str) -> UpstreamRequest:
        """The upstream request for text to speech."""
        self.require("text-to-speech")
        raise AssertionError("unreachable")  # pragma: no cover

    def parse_speech_response(self, body: bytes, content_type: str, request: SpeechRequest) -> SpeechResult:
        """The audio of a successful answer (the body's bytes)."""
        raise NotImplementedError  # pragma: no cover - only reached after build_speech_request

    def _no_api(self, what: str, instead: str) -> InvalidRequest:
        return InvalidRequest(
            f"Provider '{self.name}' has no {what} in unimodel; use {instead}, or an open model.",
            code="unsupported_task",
            param="model",
        )

    def error_message(self, body: Any) -> str | None:
        """The human message inside an upstream error body, if it has one."""
        if isinstance(body, dict):
            err = body.get("error")
            if isinstance(err, dict) and isinstance(err.get("message"), str):
                return str(err["message"])
            if isinstance(err, str):
                return err
            if isinstance(body.get("message"), str):
                return str(body["message"])
        return None

    def map_error(self, status: int, body: Any, headers: Mapping[str, str]) -> UnimodelError:
        """Classify an upstream error by status first, then by its message. Keeps status and Retry-After."""
        detail = self.error_message(body) or f"HTTP {status}"
        msg = f"Provider '{self.name}' answered {status}: {detail}"
        retry_after = parse_retry_after(headers.get("retry-after"))
        kwargs: dict[str, Any] = {"provider": self.name, "provider_body": body, "retry_after": retry_after}
        if status == 400 or status == 422:
            return InvalidRequest(msg, status=400, code="upstream_invalid_request", **kwargs)
        if status == 401:
            return AuthenticationError(
                f"Provider '{self.name}' rejected the provider key: {detail}",
                code="provider_auth_failed",
                **kwargs,
            )
        if status == 402:
            return PaymentRequired(f"Provider '{self.name}' refused the request for billing: {detail}", **kwargs)
        if status == 403:
            return PermissionDenied(msg, **kwargs)
        if status == 404:
            return NotFound(msg, code="upstream_not_found", **kwargs)
        if status == 413:
            return InvalidRequest(msg, status=413, code="payload_too_large", **kwargs)
        if status == 429:
            return RateLimited(f"Provider '{self.name}' rate limit exceeded: {detail}", **kwargs)
        if status in (503, 529):
            return UpstreamUnavailable(
                f"Provider '{self.name}' is overloaded or unavailable: {detail}", status=503, **kwargs
            )
        if status == 504:
            return UpstreamError(msg, status=504, code="upstream_timeout", **kwargs)
        if status >= 500:
            return UpstreamError(msg, status=502, **kwargs)
        return UpstreamError(msg, status=status if 400 <= status < 500 else 502, **kwargs)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from datetime import datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
