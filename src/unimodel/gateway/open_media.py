"""The canonical media requests (protocol/media.py) as the run bodies of an open model's instance, and back.

    text-to-image   ImageRequest → `{text, params}` per image: `size` "WxH" becomes params width/height, every
                    other field of the request (`extra`: num_inference_steps, guidance_scale, seed,
                    negative_prompt …) goes as a param, checked by the engine (an unknown one is its 400); `n`
                    images are n runs, the seed (when given) counted up so they differ
    text-to-speech  SpeechRequest → `{text, params}`: the model speaks in its one voice (`voice` is accepted, as
                    OpenAI's API requires it, and not used); it answers WAV, so `response_format` may only be wav;
                    `speed` and `instructions` have no open-model equivalent and are refused

The instance answers the media's bytes (runtime/service.py GeneratedMedia).
"""

from __future__ import annotations

import re
import time
from typing import Any

from ..protocol import GeneratedImage, ImageRequest, ImageResult, InvalidRequest, SpeechRequest
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
