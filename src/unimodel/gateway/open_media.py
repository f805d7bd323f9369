"""The canonical media requests (protocol/media.py) as the run bodies of an open model's instance, and back.

    text-to-image   ImageRequest → `{text, params}` per image: `size` "WxH" becomes params width/height, every
                    other field of the request (`extra`: num_inference_steps, guidance_scale, seed,
                    negative_prompt …) goes as a param, checked by the engine (an unknown one is its 400); `n`
                    images are n runs, the seed (when given) counted up so they differ
    text-to-speech  SpeechRequest → `{text, params}`: the model speaks in its one voice (`voice` is accepted, as
                    OpenAI's API requires it, and not used); it answers WAV, so `response_format` may only be wav;
                    `speed` and `instructions` have no open-model equivalent and are refused

The instance answers the media's bytes (runtime/service.py GeneratedMedia).

    automatic-speech-recognition  TranscriptionRequest → `{base64, params}` (the upload's bytes, decoded by the
                    instance: wav, flac, ogg, mp3 …); the transcript comes back as `json` `{"text"}` or `text`;
                    `language`, `prompt`, `temperature`, timestamps and the subtitle formats have no open-model
                    equivalent here and are refused, naming the field
"""

from __future__ import annotations

import base64
import re
import time
from typing import Any

from pydantic_core import to_json

from ..protocol import (
    GeneratedImage,
    ImageRequest,
    ImageResult,
    InvalidRequest,
    SpeechRequest,
    TranscriptionRequest,
    TranscriptionResult,
)
from ..runtime.service import GeneratedMedia

_SIZE = re.compile(r"(\d{1,5})x(\d{1,5})")
OPEN_SPEECH_FORMAT = "wav"


def image_run_bodies(request: ImageRequest) -> list[dict[str, Any]]:
    """One run body per image asked for."""
    for name, value in (("quality", request.quality), ("style", request.style)):
        if value is not None:
            raise InvalidRequest(
                f"{name}: an open text-to-image model has no {name}; use num_inference_steps, guidance_scale or "
                "negative_prompt instead.",
                param=name,
            )
    params = dict(request.extra)
    params.pop("user", None)  # OpenAI's end-user id, for its abuse monitoring: nothing to an open model
    if request.size is not None and request.size != "auto":
        found = _SIZE.fullmatch(request.size)
        if found is None:
            raise InvalidRequest(f"size: 'WIDTHxHEIGHT' in pixels (512x512), got '{request.size}'.", param="size")
        for name in ("width", "height"):
            if name in params:
                raise InvalidRequest(f"size and {name} both given; give one of them.", param=name)
        params["width"], params["height"] = int(found[1]), int(found[2])
    seed = params.get("seed")
    bodies = []
    for i in range(request.n or 1):
        each = dict(params)
        if isinstance(seed, int) and not isinstance(seed, bool) and i:
            each["seed"] = seed + i
        bodies.append({"text": request.prompt, "params": each})
    return bodies


def image_result(model_id: str, images: list[GeneratedMedia]) -> ImageResult:
    return ImageResult(
        [GeneratedImage(image.data, image.content_type) for image in images],
        model_id,
        int(time.time()),
        native_format="url",  # as a v2 run answers: the server's own media URL
    )


def speech_run_body(request: SpeechRequest) -> dict[str, Any]:
    if request.response_format is not None and request.response_format != OPEN_SPEECH_FORMAT:
        raise InvalidRequest(
            f"response_format: an open text-to-speech model answers {OPEN_SPEECH_FORMAT}; ask for "
            f"{OPEN_SPEECH_FORMAT} or leave it out.",
            param="response_format",
        )
    for name, value in (("speed", request.speed), ("instructions", request.instructions)):
        if value is not None:
            raise InvalidRequest(f"{name}: an open text-to-speech model takes no {name}; leave it out.", param=name)
    return {"text": request.input, "params": dict(request.extra)}


def transcription_run_body(request: TranscriptionRequest) -> dict[str, Any]:
    """The upload as an open speech recogniser's run body; what it cannot honour is a 400 naming the field."""
    if request.response_format not in (None, "json", "text"):
        raise InvalidRequest(
            f"response_format: an open speech recognition model answers json or text, not {request.response_format}.",
            param="response_format",
        )
    given = (
        ("language", request.language),
        ("prompt", request.prompt),
        ("temperature", request.temperature),
        ("timestamp_granularities", request.timestamp_granularities or None),
    )
    for name, value in given:
        if value is not None:
            raise InvalidRequest(
                f"{name}: an open speech recognition model takes no {name} here; leave it out.", param=name
            )
    return {"base64": base64.b64encode(request.audio.data).decode("ascii"), "params": dict(request.extra)}


def transcription_result(request: TranscriptionRequest, output: Any) -> TranscriptionResult:
    text = output if isinstance(output, str) else str(output)
    if request.response_format == "text":
        return TranscriptionResult(text, text.encode(), "text/plain; charset=utf-8")
    return TranscriptionResult(text, to_json({"text": text}), "application/json")
