"""Media in canonical form: image generation, speech to text and text to speech (closed providers' media models).

    ImageRequest → ImageResult             prompt in, images (their bytes) out
    TranscriptionRequest → TranscriptionResult   an audio file in, its text out (and the answer in the format asked)
    SpeechRequest → SpeechResult           text in, audio bytes out

Images come back as bytes whatever the provider sent: a frontend hands them on as base64 or keeps them in the
server's media store and hands on a URL of its own (gateway/media_store.py), never the provider's URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .result import Usage

ImageFormat = Literal["url", "b64_json"]
TranscriptionFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]
SpeechFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]

TRANSCRIPTION_FORMATS: tuple[TranscriptionFormat, ...] = ("json", "text", "srt", "verbose_json", "vtt")
SPEECH_FORMATS: tuple[SpeechFormat, ...] = ("mp3", "opus", "aac", "flac", "wav", "pcm")
# The content type of each speech format (pcm: raw 24 kHz 16-bit signed little-endian mono, OpenAI's).
SPEECH_CONTENT_TYPES: dict[str, str] = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


@dataclass(frozen=True, slots=True)
class ImageRequest:
    model: str  # the provider's own model name
    prompt: str
    n: int | None = None
    size: str | None = None
    quality: str | None = None
    style: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # provider parameters by their wire name (or refused)


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    data: bytes
    content_type: str
    revised_prompt: str | None = None


@dataclass(slots=True)
class ImageResult:
    images: list[GeneratedImage]
    model: str
    created: int  # Unix time, as the provider says
    usage: Usage = field(default_factory=Usage)
    native_format: ImageFormat = "b64_json"  # what the provider answers when the caller does not say (dall-e: url)
    echo: dict[str, Any] = field(default_factory=dict)  # answer fields a surface passes on (size, quality …)
    raw: Any = None  # the provider's answer, the image data taken out


@dataclass(frozen=True, slots=True)
class AudioFile:
    data: bytes
    filename: str  # providers read the format from its extension
    content_type: str


@dataclass(frozen=True, slots=True)
class TranscriptionRequest:
    model: str
    audio: AudioFile
    language: str | None = None
    prompt: str | None = None
    response_format: TranscriptionFormat | None = None
    temperature: float | None = None
    timestamp_granularities: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class TranscriptionResult:
    text: str
    body: bytes  # the provider's answer as it came, in the format asked
    content_type: str
    usage: Usage = field(default_factory=Usage)
    seconds: float | None = None  # the audio's length, where the provider says
    raw: Any = None  # the answer's JSON (json, verbose_json)


@dataclass(frozen=True, slots=True)
class SpeechRequest:
    model: str
    input: str
    voice: str
    response_format: SpeechFormat | None = None
    speed: float | None = None
    instructions: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class SpeechResult:
    audio: bytes
    content_type: str
    characters: int  # of the input: what speech is billed by
