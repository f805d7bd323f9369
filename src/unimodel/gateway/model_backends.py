"""What answers a model call, behind one interface — so a route is decode → backend → encode, whatever answers.

    backend = await dispatch.backend(gateway, model_id, ctx, request.headers)
    ClosedBackend     a closed provider (providers/: translate and forward, with the provider key)
    OpenBackend       an open model this process runs (runtime/: a lease on an instance)
    ForwardedBackend  `serve --workers N`: the runtime process runs the open models; the request goes there as it is

Closed and open backends take the canonical chat request (`complete`, `stream`) and the canonical media requests
(`generate_images`, `speak`); an open model also runs other tasks (`run`) and OpenAI's completions/embeddings
natively (`passthrough`). Each notes the call on the request's context (the model, open or closed, for metrics
and the ledger) when it is made, and its usage when it is done; `headers` are what its answers carry (an open
model's `inference-meter` and `inference-time`).

Not to be confused with runtime/backends/, which start the instances an OpenBackend's requests run on.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pydantic_core import from_json
from starlette.requests import Request
from starlette.responses import Response

from ..protocol import (
    ChatRequest,
    ChatResult,
    EmbeddingRequest,
    EmbeddingResult,
    ImageRequest,
    ImageResult,
    SpeechRequest,
    SpeechResult,
    StreamEvent,
    TranscriptionRequest,
    TranscriptionResult,
)
from ..runtime.service import Metered
from .catalog import Route
from .context import RequestContext
from .metrics import upstream_latency
from .open_inputs import inline_chat_images, inline_run_urls
from .open_media import image_result, image_run_bodies, speech_run_body, transcription_result, transcription_run_body

if TYPE_CHECKING:
    from .service import Gateway

METER = "cpu"  # open-model instances run on this machine's CPUs


class ClosedBackend:
    kind = "closed"

    def __init__(
        self, gateway: Gateway, model_id: str, route: Route, ctx: RequestContext, headers: Mapping[str, str]
    ) -> None:
        self.gateway = gateway
        self.model_id = model_id  # as the caller named it
        self.name = route.model  # the provider's own name for it
        self.route = route
        self.task = gateway.catalog.closed_task(route)  # chat, or the task its provider lists it under
        self.ctx = ctx
        self._headers = headers
        ctx.routed(model_id, "closed", route.provider)

    def _key(self) -> str:  # asked when the call is made: a malformed request is a 400 before a missing key's 401
        return self.gateway.provider_key(self.route, self._headers, self.ctx.principal)

    async def complete(self, request: ChatRequest) -> ChatResult:
        key = self._key()
        with _upstream_timer(self.route.provider):
            result = await self.gateway.client(self.route.provider).complete(request, key)
        self.ctx.add_usage(result.usage)
        return result

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """The provider's stream, once its first event is in (the time to it is the upstream latency)."""
        key = self._key()
        with _upstream_timer(self.route.provider):
            return await self.gateway.client(self.route.provider).stream(request, key)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        key = self._key()
        with _upstream_timer(self.route.provider):
            result = await self.gateway.client(self.route.provider).embed(request, key)
        self.ctx.add_usage(result.usage)
        return result

    async def generate_images(self, request: ImageRequest) -> ImageResult:
        self.gateway.client(self.route.provider).adapter.require("text-to-image")  # its 400 before a key's 401
        key = self._key()
        with _upstream_timer(self.route.provider):
            result = await self.gateway.client(self.route.provider).generate_images(request, key)
        self.ctx.add_usage(result.usage)  # the GPT image models count tokens; dall-e answers none
        self.ctx.add_units(len(result.images), "images")
        return result

    async def transcribe(self, request: TranscriptionRequest) -> TranscriptionResult:
        self.gateway.client(self.route.provider).adapter.require("automatic-speech-recognition")
        key = self._key()
        with _upstream_timer(self.route.provider):
            result = await self.gateway.client(self.route.provider).transcribe(request, key)
        self.ctx.add_usage(result.usage)  # gpt-4o-transcribe counts tokens; whisper-1 the audio's seconds
        if result.seconds is not None:
            self.ctx.add_units(result.seconds, "seconds")
        return result

    async def speak(self, request: SpeechRequest) -> SpeechResult:
        self.gateway.client(self.route.provider).adapter.require("text-to-speech")
        key = self._key()
        with _upstream_timer(self.route.provider):
            result = await self.gateway.client(self.route.provider).speak(request, key)
        self.ctx.add_units(result.characters, "characters")  # what speech is billed by
        return result

    def headers(self, streaming: bool = False) -> dict[str, str]:
        return {}


class OpenBackend:
    kind = "open"

    def __init__(self, gateway: Gateway, model_id: str, ctx: RequestContext) -> None:
        self.gateway = gateway
        self.model_id = self.name = model_id  # the id it is served under
        self.task = gateway.open.task(model_id)
        self.ctx = ctx
        ctx.routed(model_id, "open")

    async def _admit(self) -> Metered:
        """Take one of the key's concurrent open-model slots (a 429 past its limit) and start metering."""
        await self.gateway.platform.acquire_open_slot(self.ctx)
        self.ctx.metered = Metered()
        return self.ctx.metered

    async def complete(self, request: ChatRequest) -> ChatResult:
        # a URL goes in as its bytes, counted under [media] max_inflight_bytes until the instance has answered
        with self.gateway.fetcher.hold() as hold:
            request = await inline_chat_images(self.gateway.fetcher, request, self.task, hold)
            result = await self.gateway.open.chat(self.model_id, request, await self._admit())
        self.ctx.add_usage(result.usage)
        return result

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        request = await inline_chat_images(self.gateway.fetcher, request, self.task)
        return await self.gateway.open.chat_stream(self.model_id, request, await self._admit())

    async def run(self, payload: dict[str, Any], raw: bytes | None = None) -> Any:
        """A task other than chat: the instance's `POST /v1/run` with the v2 body (its media URLs fetched here,
        open_inputs.py); its output."""
        with self.gateway.fetcher.hold() as hold:  # fetched bytes count until the instance has answered
            inlined = await inline_run_urls(self.gateway.fetcher, payload, self.task, hold)
            body = raw if raw is not None and inlined is payload else inlined  # `raw`: the same body as sent
            return await self.gateway.open.run(self.model_id, body, await self._admit())

    async def generate_images(self, request: ImageRequest) -> ImageResult:
        """A text-to-image model's images (open_media.py turns the canonical request into run bodies)."""
        bodies = image_run_bodies(request)
        metered = await self._admit()  # one slot for the n images, made one after another
        images = [await self.gateway.open.run_media(self.model_id, body, metered) for body in bodies]
        self.ctx.add_units(len(images), "images")
        return image_result(self.model_id, images)

    async def transcribe(self, request: TranscriptionRequest) -> TranscriptionResult:
        """An automatic-speech-recognition model's transcript of the upload (decoded by the instance)."""
        output = await self.gateway.open.run(self.model_id, transcription_run_body(request), await self._admit())
        return transcription_result(request, output)

    async def speak(self, request: SpeechRequest) -> SpeechResult:
        """A text-to-speech (or text-to-audio) model's audio: WAV, in the model's one voice."""
        media = await self.gateway.open.run_media(self.model_id, speech_run_body(request), await self._admit())
        self.ctx.add_units(len(request.input), "characters")
        return SpeechResult(media.data, media.content_type, len(request.input))

    async def passthrough(self, path: str, payload: dict[str, Any]) -> bytes:
        """OpenAI's `/v1/completions` or `/v1/embeddings`, which the instance speaks natively; its raw answer."""
        raw = await self.gateway.open.openai_passthrough(self.model_id, path, payload, await self._admit())
        self.ctx.add_openai_usage(from_json(raw))
        return raw

    def headers(self, streaming: bool = False) -> dict[str, str]:
        """`inference-meter`, and `inference-time` (the instance-seconds used) once known: not on a stream's head."""
        headers = {"inference-meter": METER}
        if not streaming and self.ctx.metered is not None:
            headers["inference-time"] = f"{self.ctx.metered.seconds:.3f}"
        return headers


class ForwardedBackend:
    kind = "forwarded"

    def __init__(self, gateway: Gateway, model_id: str, ctx: RequestContext) -> None:
        assert gateway.link is not None
        self.gateway = gateway
        self.model_id = model_id
        self.ctx = ctx
        ctx.routed(model_id, "open")

    async def forward(self, request: Request, body: bytes) -> Response:
        """The caller's slot is taken here (this process limits the key); the runtime process answers."""
        assert self.gateway.link is not None
        await self.gateway.platform.acquire_open_slot(self.ctx)
        return await self.gateway.link.forward(request, body, self.ctx)


ChatBackend = ClosedBackend | OpenBackend
ModelBackend = ClosedBackend | OpenBackend | ForwardedBackend


@contextmanager
def _upstream_timer(provider: str) -> Iterator[None]:
    """Observes the time to a provider's answer (or its stream's first event) as the upstream latency."""
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    finally:
        upstream_latency(provider, outcome).observe(time.perf_counter() - started)
