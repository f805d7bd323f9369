"""OpenAI's media APIs, which the compatible vendors that have them share: the bodies sent and the answers read.

    POST /images/generations     JSON {model, prompt, n?, size?, quality?, style?, response_format?, background?,
                                 output_format?, output_compression?, moderation?, user?} → {created, data: [...]}
    POST /audio/transcriptions   multipart: file, model, language?, prompt?, response_format?, temperature?,
                                 timestamp_granularities[]?, include[]?, chunking_strategy? → JSON or text
    POST /audio/speech           JSON {model, input, voice, response_format?, speed?, instructions?} → audio bytes

Pure functions: the adapters (openai.py, vendors.py) call them and ProviderClient does the HTTP.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic_core import from_json, to_json

from ..protocol import (
    GeneratedImage,
    ImageRequest,
    ImageResult,
    SpeechRequest,
    SpeechResult,
    TranscriptionRequest,
    TranscriptionResult,
    UnsupportedParameter,
    Usage,
)
from ..protocol.media import SPEECH_CONTENT_TYPES
from .multipart import encode_multipart

IMAGE_EXTRAS = ("background", "output_format", "output_compression", "moderation", "user")
TRANSCRIPTION_EXTRAS = ("include", "chunking_strategy")
SPEECH_EXTRAS = ("stream_format",)
_IMAGE_ECHO = ("background", "output_format", "quality", "size")
_IMAGE_TYPES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"))


def _extras(extra: dict[str, Any], provider: str, allowed: tuple[str, ...], what: str) -> dict[str, Any]:
    for name in extra:
        if name not in allowed:
            raise UnsupportedParameter(name, provider, f"not a parameter of its {what} API")
    return dict(extra)


def takes_response_format(model: str) -> bool:
    """The dall-e models answer a URL unless asked for b64_json; the GPT image models always answer base64 and
    refuse `response_format`."""
    return not model.startswith("gpt-image")


def image_body(request: ImageRequest, provider: str) -> dict[str, Any]:
    """The generation body; base64 is always asked (where the model takes the field), so that the images come
    back through the gateway, which hands out its own URL when the caller wants one."""
    body: dict[str, Any] = {"model": request.model, "prompt": request.prompt}
    for name in ("n", "size", "quality", "style"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if takes_response_format(request.model):
        body["response_format"] = "b64_json"
    body.update(_extras(request.extra, provider, IMAGE_EXTRAS, "images"))
    return body


def parse_images(body: Any, request: ImageRequest) -> ImageResult:
    images: list[GeneratedImage] = []
    for item in body["data"]:
        encoded = item.get("b64_json")
        if not isinstance(encoded, str):
            raise ValueError("an image without b64_json")
        try:
            data = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"b64_json is not base64 ({exc})") from None
        images.append(GeneratedImage(data, image_type(data, body.get("output_format")), item.get("revised_prompt")))
    usage = body.get("usage") or {}
    kept = [{k: v for k, v in item.items() if k != "b64_json"} for item in body["data"]]
    return ImageResult(
        images,
        request.model,
        int(body.get("created") or 0),
        Usage(input_tokens=int(usage.get("input_tokens") or 0), output_tokens=int(usage.get("output_tokens") or 0)),
        native_format="url" if takes_response_format(request.model) else "b64_json",
        echo={k: body[k] for k in _IMAGE_ECHO if k in body},
        raw={**body, "data": kept},
    )


def image_type(data: bytes, output_format: object = None) -> str:
    """The content type of image bytes, by their signature; else the format the answer names; else PNG."""
    for magic, content_type in _IMAGE_TYPES:
        if data.startswith(magic):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return {"jpeg": "image/jpeg", "webp": "image/webp"}.get(str(output_format), "image/png")


def transcription_upload(request: TranscriptionRequest, provider: str) -> tuple[bytes, str]:
    """The multipart body (fields as the OpenAI SDK sends them: lists as `name[]`) and its content type."""
    fields: list[tuple[str, str]] = [("model", request.model)]
    for name in ("language", "prompt", "response_format"):
        value = getattr(request, name)
        if value is not None:
            fields.append((name, value))
    if request.temperature is not None:
        fields.append(("temperature", repr(request.temperature)))
    fields += [("timestamp_granularities[]", g) for g in request.timestamp_granularities]
    for name, value in _extras(request.extra, provider, TRANSCRIPTION_EXTRAS, "transcriptions").items():
        if isinstance(value, list):
            fields += [(f"{name}[]", str(v)) for v in value]
        else:
            fields.append((name, value if isinstance(value, str) else to_json(value).decode()))
    return encode_multipart(fields, [("file", request.audio)])


def parse_transcription(body: bytes, content_type: str, request: TranscriptionRequest) -> TranscriptionResult:
    """json and verbose_json answers are read for the text, the usage and the length; text, srt and vtt are text."""
    if (request.response_format or "json") not in ("json", "verbose_json"):
        return TranscriptionResult(body.decode("utf-8"), body, content_type or "text/plain; charset=utf-8")
    data = from_json(body)
    usage = data.get("usage") or {}
    seconds = data.get("duration", usage.get("seconds") if usage.get("type") == "duration" else None)
    tokens = Usage(input_tokens=int(usage.get("input_tokens") or 0), output_tokens=int(usage.get("output_tokens") or 0))
    return TranscriptionResult(
        str(data["text"]),
        body,
        "application/json",
        tokens,
        float(seconds) if isinstance(seconds, int | float) else None,
        data,
    )


def speech_body(request: SpeechRequest, provider: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": request.model, "input": request.input, "voice": request.voice}
    for name in ("response_format", "speed", "instructions"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    body.update(_extras(request.extra, provider, SPEECH_EXTRAS, "speech"))
    return body


def parse_speech(body: bytes, content_type: str, request: SpeechRequest) -> SpeechResult:
    """The audio; its content type from the answer when it names audio, else from the format asked."""
    if not content_type.startswith("audio/"):
        content_type = SPEECH_CONTENT_TYPES[request.response_format or "mp3"]
    return SpeechResult(body, content_type, len(request.input))
