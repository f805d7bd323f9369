"""OpenAI's media endpoints on the OpenAI-compatible surface, as the OpenAI SDK calls them:

    POST /v1/images/generations    client.images.generate(...)           JSON in, {created, data: [{url|b64_json}]}
    POST /v1/audio/transcriptions  client.audio.transcriptions.create()  multipart in, JSON or text out
    POST /v1/audio/speech          client.audio.speech.create(...)       JSON in, audio bytes out

Decoding checks what the endpoint itself defines (a 400 naming the field); what only a model or a provider refuses
(dall-e-3 with n > 1, an unknown voice) is the provider's to say. No I/O: the route reads the body and the form.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_json

from ..protocol import (
    AudioFile,
    ImageFormat,
    ImageRequest,
    ImageResult,
    InvalidRequest,
    PayloadTooLarge,
    SpeechRequest,
    TranscriptionRequest,
)
from ..protocol.media import TRANSCRIPTION_FORMATS
from .wire import invalid_request

# OpenAI's own limit on an uploaded audio file ("File uploads are currently limited to 25 MB").
MAX_AUDIO_BYTES = 25 * 1024 * 1024


class ImagesBody(BaseModel):
    """OpenAI's image generation request; the GPT image models' own fields (background, output_format,
    output_compression, moderation) go to the provider as they are."""

    model_config = ConfigDict(extra="allow", strict=True, title="ImagesGenerateRequest")

    model: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    n: int | None = Field(default=None, ge=1, le=10)
    size: str | None = None
    quality: str | None = None
    style: str | None = None
    response_format: Literal["url", "b64_json"] | None = None
    stream: Literal[False] | None = None  # streamed partial images are not served


@dataclass(frozen=True, slots=True)
class DecodedImages:
    model_id: str
    request: ImageRequest
    response_format: ImageFormat | None


def decode_images(payload: dict[str, Any]) -> DecodedImages:
    try:
        wire = ImagesBody.model_validate(payload)
    except ValidationError as exc:
        raise invalid_request(exc) from None
    extra = dict(wire.model_extra or {})
    if "partial_images" in extra:
        raise InvalidRequest(
            "partial_images: streamed image generation is not served; leave it out.", param="partial_images"
        )
    request = ImageRequest(wire.model, wire.prompt, wire.n, wire.size, wire.quality, wire.style, extra)
    return DecodedImages(wire.model, request, wire.response_format)


def encode_images(result: ImageResult, urls: Sequence[str] | None) -> bytes:
    """OpenAI's images answer: each image as `url` (the server's own, `urls`) or as `b64_json`."""
    data: list[dict[str, Any]] = []
    for i, image in enumerate(result.images):
        item: dict[str, Any] = (
            {"url": urls[i]} if urls is not None else {"b64_json": base64.b64encode(image.data).decode("ascii")}
        )
        if image.revised_prompt is not None:
            item["revised_prompt"] = image.revised_prompt
        data.append(item)
    answer: dict[str, Any] = {"created": result.created, "data": data, **result.echo}
    usage = result.raw.get("usage") if isinstance(result.raw, dict) else None
    if usage is not None:
        answer["usage"] = usage
    return to_json(answer)


# The form fields of a transcription upload (lists as the OpenAI SDK sends them: `name[]`, repeated).
_TRANSCRIPTION_FIELDS = frozenset(
    {"file", "model", "language", "prompt", "response_format", "temperature", "timestamp_granularities", "include",
     "chunking_strategy", "stream"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Upload:
    """A file part of a multipart form."""

    data: bytes
    filename: str
    content_type: str


@dataclass(frozen=True, slots=True)
class DecodedTranscription:
    model_id: str
    request: TranscriptionRequest


def decode_transcription(fields: Mapping[str, Sequence[str | Upload]]) -> DecodedTranscription:
    """A transcription form (`fields`: each name, `[]` dropped, with its values) as the canonical request."""
    for name in fields:
        if name not in _TRANSCRIPTION_FIELDS:
            raise InvalidRequest(f"{name}: unknown field.", param=name)

    def text(name: str) -> str | None:
        values = fields.get(name) or []
        if len(values) > 1:
            raise InvalidRequest(f"{name}: give it once.", param=name)
        if values and not isinstance(values[0], str):
            raise InvalidRequest(f"{name}: expected a text field, not a file.", param=name)
        return values[0] if values else None  # type: ignore[return-value]

    def texts(name: str) -> tuple[str, ...]:
        values = tuple(fields.get(name) or ())
        if not all(isinstance(v, str) for v in values):
            raise InvalidRequest(f"{name}: expected text fields, not files.", param=name)
        return values  # type: ignore[return-value]

    files = fields.get("file") or []
    if not files:
        raise InvalidRequest("file: this field is required (the audio file to transcribe).", param="file")
    upload = files[0]
    if len(files) > 1 or not isinstance(upload, Upload):
        raise InvalidRequest("file: send one audio file as a file part.", param="file")
    if not upload.data:
        raise InvalidRequest("file: the audio file is empty.", param="file")
    if len(upload.data) > MAX_AUDIO_BYTES:
        raise PayloadTooLarge(
            f"file: the audio file is {len(upload.data)} bytes; the limit is {MAX_AUDIO_BYTES} bytes (25 MB).",
            param="file",
        )
    model = text("model")
    if not model:
        raise InvalidRequest("model: this field is required.", param="model")
    response_format = text("response_format")
    if response_format is not None and response_format not in TRANSCRIPTION_FORMATS:
        raise InvalidRequest(
            f"response_format: '{response_format[:40]}' is not one of {', '.join(TRANSCRIPTION_FORMATS)}.",
            param="response_format",
        )
    temperature = _number(text("temperature"), "temperature", 0.0, 1.0)
    granularities = texts("timestamp_granularities")
    for value in granularities:
        if value not in ("word", "segment"):
            raise InvalidRequest(
                f"timestamp_granularities: '{value[:40]}' is not word or segment.", param="timestamp_granularities"
            )
    if text("stream") not in (None, "false", "False"):
        raise InvalidRequest("stream: streamed transcriptions are not served; leave it out.", param="stream")
    extra: dict[str, Any] = {}
    if include := texts("include"):
        extra["include"] = list(include)
    if (chunking := text("chunking_strategy")) is not None:
        extra["chunking_strategy"] = chunking
    audio = AudioFile(upload.data, upload.filename or "audio", upload.content_type or "application/octet-stream")
    request = TranscriptionRequest(
        model,
        audio,
        language=text("language"),
        prompt=text("prompt"),
        response_format=response_format,  # checked above
        temperature=temperature,
        timestamp_granularities=granularities,
        extra=extra,
    )
    return DecodedTranscription(model, request)


def _number(value: str | None, name: str, low: float, high: float) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise InvalidRequest(f"{name}: expected a number, got '{value[:40]}'.", param=name) from None
    if not low <= number <= high:
        raise InvalidRequest(f"{name}: must be from {low:g} to {high:g}.", param=name)
    return number


class SpeechBody(BaseModel):
    """OpenAI's text-to-speech request."""

    model_config = ConfigDict(extra="allow", strict=True, title="SpeechRequest")

    model: str = Field(min_length=1)
    input: str = Field(min_length=1)
    voice: str = Field(min_length=1)
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] | None = None
    speed: float | int | None = Field(default=None, ge=0.25, le=4.0)
    instructions: str | None = None
    stream_format: Literal["audio"] | None = None  # "sse" (audio deltas as events) is not served


@dataclass(frozen=True, slots=True)
class DecodedSpeech:
    model_id: str
    request: SpeechRequest


def decode_speech(payload: dict[str, Any]) -> DecodedSpeech:
    try:
        wire = SpeechBody.model_validate(payload)
    except ValidationError as exc:
        raise invalid_request(exc) from None
    extra = dict(wire.model_extra or {})
    voice = wire.voice
    if wire.stream_format is not None:
        extra["stream_format"] = wire.stream_format
    speed = float(wire.speed) if wire.speed is not None else None
    request = SpeechRequest(wire.model, wire.input, voice, wire.response_format, speed, wire.instructions, extra)
    return DecodedSpeech(wire.model, request)
