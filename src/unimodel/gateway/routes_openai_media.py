"""OpenAI's media endpoints, under `/models/v2/openai/v1` and `/v1`: image generation, speech to text (a multipart
upload) and text to speech (audio bytes). Decode → backend → encode: a closed media model's ClosedBackend, or for
image generation and speech an open text-to-image / text-to-speech model's OpenBackend (gateway/open_media.py)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import replace
from typing import Any, Literal, TypeVar

from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..frontends import openai_compat, openai_media
from ..protocol import ImageRequest, InvalidRequest, SpeechRequest, TranscriptionRequest
from . import dispatch
from .context import context
from .http import guarded, json_response, read_body
from .media_store import MEDIA_PATH, media_base_url
from .model_backends import ClosedBackend, ForwardedBackend, ModelBackend, OpenBackend
from .service import Gateway

openai = guarded(openai_compat.SURFACE.error_body)

MediaTask = Literal["text-to-image", "automatic-speech-recognition", "text-to-speech"]
# What each endpoint's models are called in a message, and its path after the prefix.
_WHAT: dict[MediaTask, tuple[str, str]] = {
    "text-to-image": ("image generation", "/images/generations"),
    "automatic-speech-recognition": ("transcription", "/audio/transcriptions"),
    "text-to-speech": ("text-to-speech", "/audio/speech"),
}
_MAX_FORM_FIELDS = 64


# The open models' tasks each endpoint serves.
_OPEN_TASKS: dict[MediaTask, frozenset[str]] = {
    "text-to-image": frozenset({"text-to-image"}),
    "automatic-speech-recognition": frozenset({"automatic-speech-recognition"}),
    "text-to-speech": frozenset({"text-to-speech", "text-to-audio"}),
}


def media_backend(gateway: Gateway, backend: ModelBackend, task: MediaTask) -> ClosedBackend | OpenBackend:
    """The backend for a media endpoint: an open model of the endpoint's task, else a closed one (below)."""
    if isinstance(backend, OpenBackend) and backend.task in _OPEN_TASKS[task]:
        return backend
    return closed_media_backend(gateway, backend, task)


def closed_media_backend(gateway: Gateway, backend: ModelBackend, task: MediaTask) -> ClosedBackend:
    """The closed backend for a media endpoint; a 400 naming what to use for an open model or a listed model of
    another task. A provider without the API refuses in its adapter (400 `unsupported_task`)."""
    what, path = _WHAT[task]
    if not isinstance(backend, ClosedBackend):
        served = f"closed providers' {what} models" + (
            f" and open {' / '.join(sorted(_OPEN_TASKS[task]))} models" if _OPEN_TASKS[task] else ""
        )
        raise InvalidRequest(
            f"'{backend.model_id}' is an open model; {path} serves {served}. Run it with "
            f"POST /models/v2/{backend.model_id}.",
            param="model",
        )
    if backend.task != task and gateway.catalog.listed(backend.model_id):
        hint = gateway.catalog.task_hint(backend.route.provider, task, what)
        if hint is not None:
            raise InvalidRequest(
                f"'{backend.model_id}' is a {backend.task} model, not a {what} model; {hint}", param="model"
            )
    return backend


def routes(gateway: Gateway) -> list[Route]:
    limit = gateway.settings.server.max_body_bytes

    @openai
    async def images_generations(request: Request) -> Response:
        """OpenAI image generation (`client.images.generate`): `url` answers are the server's own media URLs."""
        body = await read_body(request, limit)
        decoded = openai_media.decode_images(openai_compat.decode_object(body))
        ctx = context(request)
        found = await dispatch.backend_for(gateway, decoded.model_id, ctx, request.headers)
        if isinstance(found, ForwardedBackend):  # `serve --workers N`: the runtime process answers
            return await found.forward(request, body)
        backend = media_backend(gateway, found, "text-to-image")
        result = await backend.generate_images(_named(decoded.request, backend))
        urls = None
        if (decoded.response_format or result.native_format) == "url":
            base = media_base_url(request, gateway.settings.media.store)
            owner = ctx.principal.key_id
            urls = [
                (await gateway.media_store.put(i.data, i.content_type, owner, base_url=base)).url for i in result.images
            ]
        return json_response(openai_media.encode_images(result, urls), headers=backend.headers())

    @openai
    async def audio_transcriptions(request: Request) -> Response:
        """OpenAI speech to text (`client.audio.transcriptions.create`): the answer in the format asked."""
        body = await read_body(request, limit)
        decoded = openai_media.decode_transcription(await _form(request.headers, body))
        found = await dispatch.backend_for(gateway, decoded.model_id, context(request), request.headers)
        if isinstance(found, ForwardedBackend):
            return await found.forward(request, body)
        backend = media_backend(gateway, found, "automatic-speech-recognition")
        result = await backend.transcribe(_named(decoded.request, backend))
        return Response(result.body, media_type=result.content_type, headers=backend.headers())

    @openai
    async def audio_speech(request: Request) -> Response:
        """OpenAI text to speech (`client.audio.speech.create`): the audio bytes with their content type."""
        body = await read_body(request, limit)
        decoded = openai_media.decode_speech(openai_compat.decode_object(body))
        found = await dispatch.backend_for(gateway, decoded.model_id, context(request), request.headers)
        if isinstance(found, ForwardedBackend):
            return await found.forward(request, body)
        backend = media_backend(gateway, found, "text-to-speech")
        result = await backend.speak(_named(decoded.request, backend))
        return Response(result.audio, media_type=result.content_type, headers=backend.headers())

    out: list[Route] = []
    for prefix in openai_compat.SURFACE.prefixes:
        out.append(Route(f"{prefix}/images/generations", images_generations, methods=["POST"]))
        out.append(Route(f"{prefix}/audio/transcriptions", audio_transcriptions, methods=["POST"]))
        out.append(Route(f"{prefix}/audio/speech", audio_speech, methods=["POST"]))
    return out


Named = TypeVar("Named", ImageRequest, TranscriptionRequest, SpeechRequest)


def _named(request: Named, backend: ClosedBackend | OpenBackend) -> Named:
    """The request with the provider's own model name (`dall-e-3`, not `openai/dall-e-3`; an open model's id)."""
    return replace(request, model=backend.name)


async def _form(headers: Headers, body: bytes) -> dict[str, list[str | openai_media.Upload]]:
    """A multipart/form-data body's fields (`name[]` as `name`), files read whole; a 400 for anything else."""
    if not headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise InvalidRequest(
            "This endpoint takes multipart/form-data (file, model, …), as the OpenAI SDK sends it.", param="file"
        )

    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(headers, stream(), max_files=1, max_fields=_MAX_FORM_FIELDS, max_part_size=64 * 1024)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidRequest(f"The multipart body could not be read: {exc.message}.", param="file") from None
    fields: dict[str, list[str | openai_media.Upload]] = {}
    try:
        for name, value in form.multi_items():
            key = name.removesuffix("[]")
            if isinstance(value, UploadFile):
                data = await value.read()
                fields.setdefault(key, []).append(
                    openai_media.Upload(data, value.filename or "", value.content_type or "")
                )
            else:
                fields.setdefault(key, []).append(value)
    finally:
        await form.close()
    return fields


def openapi_paths(error_ref: str, v2_envelope: str, errors: tuple[int, ...]) -> dict[str, Any]:
    """The media endpoints under each OpenAI prefix, and `GET /models/v2/media/{media_id}`; the JSON bodies'
    schemas are `ImagesBody` and `SpeechBody` (openapi.py adds them)."""

    def answer(description: str, content: dict[str, Any]) -> dict[str, Any]:
        responses: dict[str, Any] = {"200": {"description": description, "content": content}}
        for status in errors:
            responses[str(status)] = {
                "description": "An error; the body says what to change.",
                "content": {"application/json": {"schema": {"$ref": error_ref}}},
            }
        return responses

    key_header = [{"name": "provider-key", "in": "header", "required": False, "schema": {"type": "string"}}]
    upload = {
        "type": "object",
        "required": ["file", "model"],
        "properties": {
            "file": {"type": "string", "format": "binary"},
            "model": {"type": "string"},
            "language": {"type": "string"},
            "prompt": {"type": "string"},
            "response_format": {"enum": ["json", "text", "srt", "verbose_json", "vtt"]},
            "temperature": {"type": "number", "minimum": 0, "maximum": 1},
            "timestamp_granularities[]": {"type": "array", "items": {"enum": ["word", "segment"]}},
        },
    }
    out: dict[str, Any] = {}
    for prefix in openai_compat.SURFACE.prefixes:
        tag = prefix.strip("/").replace("/", "_")
        out[f"{prefix}/images/generations"] = {
            "post": {
                "summary": "OpenAI image generation (openai/gpt-image-1, openai/dall-e-3 …, open text-to-image models)",
                "operationId": f"imagesGenerations_{tag}",
                "parameters": key_header,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ImagesBody"}}},
                },
                "responses": answer("{created, data: [{url | b64_json}]}", {"application/json": {}}),
            }
        }
        out[f"{prefix}/audio/transcriptions"] = {
            "post": {
                "summary": "OpenAI speech to text, a multipart upload (openai/whisper-1, openai/gpt-4o-transcribe …)",
                "operationId": f"audioTranscriptions_{tag}",
                "parameters": key_header,
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": upload}}},
                "responses": answer("The text, in the format asked", {"application/json": {}, "text/plain": {}}),
            }
        }
        out[f"{prefix}/audio/speech"] = {
            "post": {
                "summary": "OpenAI text to speech (openai/tts-1 …, open text-to-speech models): the audio bytes",
                "operationId": f"audioSpeech_{tag}",
                "parameters": key_header,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SpeechBody"}}},
                },
                "responses": answer("The audio", {"audio/*": {}}),
            }
        }
    out[MEDIA_PATH + "{media_id}"] = {
        "get": {
            "summary": "Generated media a v2 run answered with a URL (the key that made it only)",
            "operationId": "getMedia",
            "parameters": [{"name": "media_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "The media's bytes", "content": {"image/*": {}, "audio/*": {}}},
                **{
                    str(s): {
                        "description": "An error",
                        "content": {"application/json": {"schema": {"$ref": v2_envelope}}},
                    }
                    for s in (401, 404)
                },
            },
        }
    }
    return out
