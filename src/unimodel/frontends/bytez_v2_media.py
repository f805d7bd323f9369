"""The v2 run of a closed media model (PROTOCOL.md, "Output per task"):

    text-to-image                  text in → a URL string (the server's media store); `json: false` → the bytes
    text-to-speech                 text in → a URL string; `json: false` → the audio bytes
    automatic-speech-recognition   url / base64 in → the text

The Bytez SDK asks a media generator for its bytes by sending `stream: true` with `json: false`; a stream of a
media output can only be its bytes, so `stream: true` alone answers them too.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_json

from ..protocol import AudioFile, ImageRequest, InvalidRequest, PayloadTooLarge, SpeechRequest, TranscriptionRequest
from ..protocol.media import SPEECH_FORMATS
from .openai_media import MAX_AUDIO_BYTES
from .wire import invalid_request

MEDIA_TASKS = frozenset({"text-to-image", "text-to-speech", "automatic-speech-recognition"})
DEFAULT_VOICE = "alloy"  # OpenAI's voices all models take; params.voice picks another
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?(;[^,]*)?;base64,", re.IGNORECASE)
# Audio formats by their first bytes: (signature, offset, extension providers read the format from, content type)
_AUDIO_SIGNATURES = (
    (b"RIFF", 0, "wav", "audio/wav"),
    (b"fLaC", 0, "flac", "audio/flac"),
    (b"OggS", 0, "ogg", "audio/ogg"),
    (b"ID3", 0, "mp3", "audio/mpeg"),
    (b"\xff\xfb", 0, "mp3", "audio/mpeg"),
    (b"\xff\xf3", 0, "mp3", "audio/mpeg"),
    (b"\xff\xf2", 0, "mp3", "audio/mpeg"),
    (b"\x1aE\xdf\xa3", 0, "webm", "audio/webm"),
    (b"ftyp", 4, "m4a", "audio/mp4"),
)


class MediaRunRequest(BaseModel):
    """A run body for a media model: the SDK's `input` (a string, or `{url|base64|text}`) or the HTTP fields."""

    model_config = ConfigDict(extra="forbid", strict=True)

    input: str | dict[str, Any] | None = None
    text: str | None = None
    url: str | None = None
    base64_: str | None = Field(default=None, alias="base64")
    params: dict[str, Any] | None = None
    stream: bool | None = None
    json_: bool | None = Field(default=None, alias="json")

    @property
    def wants_bytes(self) -> bool:
        return self.json_ is False or bool(self.stream)


def _wire(body: bytes) -> MediaRunRequest:
    try:
        return MediaRunRequest.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_request(exc) from None


def _prompt(wire: MediaRunRequest, task: str) -> str:
    source = wire.input.get("text") if isinstance(wire.input, dict) else wire.input
    if source is None:
        source = wire.text
    if not isinstance(source, str) or not source.strip():
        raise InvalidRequest(f"input: a {task} model takes a non-empty text.", param="input")
    return source


@dataclass(frozen=True, slots=True)
class MediaRun:
    """A decoded run: the canonical request, and whether the caller asked for the bytes themselves."""

    request: ImageRequest | SpeechRequest
    wants_bytes: bool


def decode_text_to_image(body: bytes, model: str) -> MediaRun:
    """`params`: size, quality, style and the provider's own (background, output_format …); one image."""
    wire = _wire(body)
    params = dict(wire.params or {})
    n = params.pop("n", None)
    if n not in (None, 1):
        raise InvalidRequest(
            "params.n: a v2 run makes one image (its output is one URL); leave n out.", param="params.n"
        )
    size, quality, style = (
        _param_text(params.pop(k), k) if k in params else None for k in ("size", "quality", "style")
    )
    request = ImageRequest(model, _prompt(wire, "text-to-image"), None, size, quality, style, extra=params)
    return MediaRun(request, wire.wants_bytes)


def decode_text_to_speech(body: bytes, model: str) -> MediaRun:
    """`params`: voice (alloy unless given), response_format (mp3), speed, instructions."""
    wire = _wire(body)
    params = dict(wire.params or {})
    voice = _param_text(params.pop("voice", DEFAULT_VOICE), "voice")
    fmt = params.pop("response_format", None)
    if fmt is not None and fmt not in SPEECH_FORMATS:
        raise InvalidRequest(
            f"params.response_format: one of {', '.join(SPEECH_FORMATS)}.", param="params.response_format"
        )
    speed = params.pop("speed", None)
    if speed is not None and (isinstance(speed, bool) or not isinstance(speed, int | float) or not 0.25 <= speed <= 4):
        raise InvalidRequest("params.speed: a number from 0.25 to 4.", param="params.speed")
    instructions = params.pop("instructions", None)
    if instructions is not None:
        instructions = _param_text(instructions, "instructions")
    text = _prompt(wire, "text-to-speech")
    request = SpeechRequest(
        model, text, voice, fmt, float(speed) if speed is not None else None, instructions, extra=params
    )
    return MediaRun(request, wire.wants_bytes)


def _param_text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"params.{name}: expected a non-empty string.", param=f"params.{name}")
    return value


@dataclass(frozen=True, slots=True)
class SpeechInput:
    """An automatic-speech-recognition run: the audio (or its URL, for the route to fetch) and the params."""

    model: str
    data: bytes | None
    url: str | None
    content_type: str | None
    params: dict[str, Any]

    def request(self, data: bytes, content_type: str | None = None) -> TranscriptionRequest:
        """The canonical request for the audio's bytes (fetched, when the input was a URL)."""
        audio = audio_file(data, content_type or self.content_type)
        params = dict(self.params)
        language, prompt = params.pop("language", None), params.pop("prompt", None)
        for name, value in (("language", language), ("prompt", prompt)):
            if value is not None:
                _param_text(value, name)
        temperature = params.pop("temperature", None)
        if temperature is not None and (
            isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 1
        ):
            raise InvalidRequest("params.temperature: a number from 0 to 1.", param="params.temperature")
        return TranscriptionRequest(
            self.model,
            audio,
            language=language,
            prompt=prompt,
            temperature=float(temperature) if temperature is not None else None,
            extra=params,
        )


def decode_speech_recognition(body: bytes, model: str) -> SpeechInput:
    """`input` (an http(s) URL, a data: URL or raw base64; or `{url|base64}`), or `url` / `base64` at the top."""
    wire = _wire(body)
    if wire.stream:
        raise InvalidRequest(
            "stream: an automatic-speech-recognition model answers its text at once; leave stream out.",
            param="stream",
        )
    source: Any = wire.input
    if isinstance(source, dict):
        source = source.get("url") or source.get("base64")
    source = source or wire.url or wire.base64_
    if not isinstance(source, str) or not source:
        raise InvalidRequest("input: the audio, as a URL or base64.", param="input")
    params = dict(wire.params or {})
    if source.startswith(("http://", "https://")):
        return SpeechInput(model, None, source, None, params)
    content_type = None
    if (match := _DATA_URL.match(source)) is not None:
        content_type, source = match.group(1), source[match.end() :]
    if len(source) * 3 // 4 > MAX_AUDIO_BYTES:
        raise PayloadTooLarge(f"input: the audio is over {MAX_AUDIO_BYTES} bytes (25 MB).", param="input")
    try:
        data = base64.b64decode(source, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("input: neither an http(s) URL nor valid base64 audio.", param="input") from None
    return SpeechInput(model, data, None, content_type, params)


def audio_file(data: bytes, content_type: str | None) -> AudioFile:
    """The audio with a file name whose extension says its format (providers read it from there)."""
    for signature, offset, extension, sniffed in _AUDIO_SIGNATURES:
        if data[offset : offset + len(signature)] == signature:
            return AudioFile(data, f"audio.{extension}", sniffed)
    raise InvalidRequest(
        f"input: not audio in a format the providers take (wav, mp3, flac, ogg, webm, m4a){_given(content_type)}.",
        param="input",
    )


def _given(content_type: str | None) -> str:
    return f"; it was sent as {content_type}" if content_type else ""


def encode_output(output: Any, provider: Any = None) -> bytes:
    """The envelope: a URL string (generated media) or the text (speech recognition)."""
    return to_json({"error": None, "output": output, "provider": provider})
