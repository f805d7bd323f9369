"""What the gateway calls for open models: the catalog of configured models, and requests run on instances.

Each request leases a slot on a ready instance from the model's Deployment (controller.py), which starts,
routes, scales and drains instances. A request is run on another instance only when no byte of it reached the
first one (the connection was refused: the instance had died) — then it cannot run twice. Once an instance
has a request, its failure is the client's: a 502 `instance_failed`, or, after the first byte of a stream, an
error event ending the stream. An instance that sends nothing for `[runtime] read_timeout_s` is a 504.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
from pydantic_core import from_json, to_json

from ..config import ProviderConfig, Settings
from ..protocol import (
    ChatRequest,
    ChatResult,
    InvalidRequest,
    ModelNotFound,
    StreamEvent,
    UnimodelError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ..upstream.events import stream_events
from ..upstream.transport import (
    AiohttpTransport,
    ConnectFailed,
    Limits,
    ReadTimedOut,
    TransportFailure,
    UpstreamResponse,
)
from .backends import Backend, Backends
from .catalog import OpenCatalog
from .controller import Controller
from .deployment import Deployment
from .hub import HubModels
from .instance_adapter import InstanceAdapter
from .lease import Lease

log = logging.getLogger("unimodel.runtime")

# Tasks whose instances speak OpenAI chat completions (the rest speak POST /v1/run).
CHAT_TASKS = frozenset({"chat", "image-text-to-text", "audio-text-to-text", "video-text-to-text"})
EMBEDDING_TASKS = frozenset({"feature-extraction", "sentence-similarity"})
MEDIA_OUT_TASKS = frozenset({"text-to-image", "text-to-speech", "text-to-audio"})  # instances answer bytes
# Tasks whose input is an image or audio (a URL the gateway fetches and inlines: instances never fetch), and chat
# whose messages may hold images. The worker's task tables (worker/engines/vision_tasks.py, audio_tasks.py) serve
# exactly these; tests/test_open_inputs_tasks.py keeps the two in step.
IMAGE_IN_TASKS = frozenset({
    "image-classification", "zero-shot-image-classification", "object-detection", "zero-shot-object-detection",
    "image-segmentation", "depth-estimation", "image-feature-extraction", "image-to-text",
    "visual-question-answering", "document-question-answering",
})  # fmt: skip
AUDIO_IN_TASKS = frozenset({"automatic-speech-recognition", "audio-classification"})
VISION_CHAT_TASKS = frozenset({"image-text-to-text"})
MEDIA_TYPES = ("image/", "audio/")
_ATTEMPTS = 2  # the first instance, and one other when the first refused the connection (it had died)


@dataclass(frozen=True, slots=True)
class GeneratedMedia:
    """What an instance generated: the bytes and their content type (image/png, audio/wav)."""

    data: bytes
    content_type: str


@dataclass(slots=True)
class Metered:
    """What a request cost: instance-seconds (time its lease held a slot)."""

    seconds: float = 0.0


class OpenModels:
    def __init__(self, settings: Settings, backend: Backend | None = None) -> None:
        """`backend`: one backend for every model (tests); by default each model's own, else `[runtime] backend`."""
        backends = Backends.from_settings(settings) if backend is None else backend
        self.controller = Controller(settings.model_copy(update={"models": []}), backends)
        self.catalog = OpenCatalog(settings, self.controller, HubModels(settings.hub))
        self._adapter = InstanceAdapter(ProviderConfig())
        self._read_timeout_s = settings.runtime.read_timeout_s
        self._http = AiohttpTransport(
            Limits(connect_timeout_s=5.0, read_timeout_s=self._read_timeout_s, max_connections=1024)
        )

    def has(self, model_id: str) -> bool:
        return self.catalog.canonical(model_id) is not None

    def task(self, model_id: str) -> str:
        return self.catalog.task(model_id)

    async def start(self) -> None:
        await self.controller.start()

    async def aclose(self) -> None:
        await self.controller.aclose()
        await self._http.aclose()

    # ------------------------------------------------------------------------------------------ chat

    async def chat(self, model_id: str, request: ChatRequest, metered: Metered) -> ChatResult:
        body = self._chat_body(request)
        async with self._answer(model_id, "/v1/chat/completions", body, metered) as response:
            raw = await self._read(response, model_id)
        result = self._adapter.parse_response(_json(raw, model_id))
        result.raw = None  # an open model has no provider answer to show
        return result

    async def chat_stream(
        self, model_id: str, request: ChatRequest, metered: Metered
    ) -> AsyncGenerator[StreamEvent, None]:
        """Open the stream (errors before the first byte raise here); the lease is held until it ends."""
        body = self._chat_body(request)
        stack = AsyncExitStack()
        response = await stack.enter_async_context(self._answer(model_id, "/v1/chat/completions", body, metered))
        return self._events(request, response, stack, model_id)

    async def _events(
        self, request: ChatRequest, response: UpstreamResponse, stack: AsyncExitStack, model_id: str
    ) -> AsyncGenerator[StreamEvent, None]:
        try:
            async for event in stream_events(
                response,
                self._adapter.stream_decoder(request),
                who=f"The instance serving '{model_id}'",
                timed_out=lambda: self._timed_out(model_id),
            ):
                yield event
        finally:
            await stack.aclose()

    def _chat_body(self, request: ChatRequest) -> bytes:
        return to_json(self._adapter.build_request(request, api_key="").body)

    # ------------------------------------------------------------------------------------- other tasks

    async def run(self, model_id: str, body: dict[str, Any] | bytes, metered: Metered) -> Any:
        """A non-chat task: the v2 body (or its JSON as the caller sent it: a MB-sized image is not encoded
        again) goes to the instance's POST /v1/run; its `output` comes back."""
        data = body if isinstance(body, bytes) else to_json(body)
        async with self._answer(model_id, "/v1/run", data, metered) as response:
            raw = await self._read(response, model_id)
        answer = _json(raw, model_id)
        if not isinstance(answer, dict) or "output" not in answer:
            raise UpstreamProtocolError(f"The instance of '{model_id}' answered without an output.")
        return answer["output"]

    async def run_media(self, model_id: str, body: dict[str, Any], metered: Metered) -> GeneratedMedia:
        """A media-out task (text-to-image, text-to-speech): the instance answers the media's bytes as they are."""
        async with self._answer(model_id, "/v1/run", to_json(body), metered) as response:
            raw = await self._read(response, model_id)
            content_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if not content_type.startswith(MEDIA_TYPES) or not raw:
            raise UpstreamProtocolError(
                f"The instance of '{model_id}' answered {content_type or 'no content type'}, not generated media."
            )
        return GeneratedMedia(raw, content_type)

    async def openai_passthrough(self, model_id: str, path: str, body: dict[str, Any], metered: Metered) -> bytes:
        """An OpenAI-style JSON request (completions, embeddings) forwarded as it is, `model` set to the id."""
        async with self._answer(model_id, path, to_json({**body, "model": model_id}), metered) as response:
            return await self._read(response, model_id)

    # ------------------------------------------------------------------------------------------ plumbing

    def deployment(self, model_id: str) -> Deployment:
        deployment = self.controller.get(model_id)
        if deployment is None:
            raise ModelNotFound(model_id)
        return deployment

    @asynccontextmanager
    async def _answer(self, model_id: str, path: str, body: bytes, metered: Metered) -> AsyncIterator[UpstreamResponse]:
        """A successful response from an instance of the model, holding its lease while the caller reads it."""
        deployment = self.deployment(model_id)
        retry = False
        for attempt in range(_ATTEMPTS):
            async with AsyncExitStack() as stack:
                lease: Lease = await stack.enter_async_context(deployment.lease(retry=retry))
                stack.callback(_add_time, metered, lease)
                try:
                    response = await self._http.send(lease.address + path, {"content-type": "application/json"}, body)
                except ConnectFailed as exc:
                    refused = _refused(exc)
                    log.warning(
                        "instance %s of %s failed %s: %s",
                        lease.instance_id,
                        model_id,
                        "before the request reached it" if refused else "before answering",
                        exc,
                    )
                    gone = await lease.instance_gone()  # (waits a moment for the exit: the error then names it)
                    if refused and gone and attempt + 1 < _ATTEMPTS:
                        retry = True  # no byte reached it, so it ran nothing: take a slot on another instance
                        continue
                    raise lease.failure() from exc
                except ReadTimedOut as exc:
                    if lease.failed:
                        raise lease.failure() from exc
                    raise self._timed_out(model_id) from exc
                except TransportFailure as exc:
                    if lease.failed:
                        raise lease.failure() from exc
                    raise UpstreamUnavailable(
                        f"The instance serving '{model_id}' failed: {exc}.", code="instance_failed"
                    ) from exc
                stack.push_async_callback(response.close)
                if response.status >= 400:
                    raise _instance_error(model_id, response.status, await self._read(response, model_id))
                yield response
                return
        raise AssertionError("unreachable")  # pragma: no cover

    async def _read(self, response: UpstreamResponse, model_id: str) -> bytes:
        try:
            return await response.read()
        except ReadTimedOut as exc:
            raise self._timed_out(model_id) from exc
        except TransportFailure as exc:
            raise UpstreamUnavailable(
                f"The instance serving '{model_id}' broke off its answer: {exc}.", code="instance_failed"
            ) from exc

    def _timed_out(self, model_id: str) -> UpstreamTimeout:
        return UpstreamTimeout(
            f"The instance serving '{model_id}' sent nothing for {self._read_timeout_s:g} s "
            "([runtime] read_timeout_s); retry, or raise the limit for long generations.",
            code="instance_timeout",
        )


def _refused(exc: ConnectFailed) -> bool:
    """The connection could not be opened (refused: the process is gone), so no byte of the request reached
    the instance. Other connect-stage failures (reset, closed before the answer) come after it was sent."""
    return isinstance(exc.__cause__, aiohttp.ClientConnectorError | httpx.ConnectError)


def _add_time(metered: Metered, lease: Lease) -> None:
    metered.seconds += lease.elapsed_s


def _json(raw: bytes, model_id: str) -> Any:
    try:
        return from_json(raw)
    except ValueError as exc:
        raise UpstreamProtocolError(f"The instance of '{model_id}' answered with a body that is not JSON.") from exc


def _instance_error(model_id: str, status: int, raw: bytes) -> UnimodelError:
    """The worker's `{"error": {message, code, param}}` with its status; 5xx become 502."""
    try:
        body = from_json(raw)
    except ValueError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    message = err.get("message") if isinstance(err, dict) else None
    message = message or f"The instance of '{model_id}' answered {status}."
    code = (err.get("code") if isinstance(err, dict) else None) or None
    param = err.get("param") if isinstance(err, dict) else None
    if 400 <= status < 500:
        return InvalidRequest(message, status=status, code=code or "invalid_request", param=param)
    return UpstreamError(f"'{model_id}': {message}", status=502, code=code or "instance_error")
