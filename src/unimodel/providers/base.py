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
    InvalidRequest,
    NotFound,
    PaymentRequired,
    PermissionDenied,
    RateLimited,
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
    extra: dict[str, Any] = field(default_factory=dict)


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
