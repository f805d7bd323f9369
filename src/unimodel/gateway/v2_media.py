"""The v2 run of a media model — a closed provider's (`openai/dall-e-3`, `openai/whisper-1`, `openai/tts-1` …) or
an open text-to-image / text-to-speech model this server runs: generated media answer a URL of this server's
media store, or with `json: false` the bytes themselves. One place for both: the backend makes the media."""

from __future__ import annotations

from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response

from ..frontends import bytez_v2_media
from ..protocol import ImageRequest
from .context import context
from .http import json_response
from .media_store import media_base_url
from .model_backends import ClosedBackend, OpenBackend
from .service import Gateway


async def run_media_model(
    gateway: Gateway, backend: ClosedBackend | OpenBackend, body: bytes, request: Request
) -> Response:
    """One run of `backend`: a closed model of one of bytez_v2_media.MEDIA_TASKS, or an open model of one of
    runtime.service.MEDIA_OUT_TASKS (text-to-audio answers as text-to-speech does)."""
    if isinstance(backend, ClosedBackend) and backend.task == "automatic-speech-recognition":
        speech = bytez_v2_media.decode_speech_recognition(body, backend.name)
        if speech.url is not None:  # fetched here, under the guard every fetched input passes (providers/media.py)
            fetched, content_type, _ = await gateway.fetcher.fetch_media(speech.url, "input", "audio")
            transcription = speech.request(bytes(fetched), content_type.partition(";")[0] or None)
        else:
            assert speech.data is not None
            transcription = speech.request(speech.data)
        result = await backend.transcribe(transcription)
        return json_response(bytez_v2_media.encode_output(result.text, result.raw))
    if backend.task == "text-to-image":
        run = bytez_v2_media.decode_text_to_image(body, backend.name)
        assert isinstance(run.request, ImageRequest)
        images = await backend.generate_images(replace(run.request, n=None))
        data, content_type, provider = images.images[0].data, images.images[0].content_type, images.raw
    else:
        run = bytez_v2_media.decode_text_to_speech(body, backend.name)
        assert not isinstance(run.request, ImageRequest)
        audio = await backend.speak(run.request)
        data, content_type, provider = audio.audio, audio.content_type, None
    if run.wants_bytes:
        return Response(data, media_type=content_type, headers=backend.headers())
    config = gateway.settings.media.store
    ref = await gateway.media_store.put(
        data, content_type, context(request).principal.key_id, base_url=media_base_url(request, config)
    )
    return json_response(bytez_v2_media.encode_output(ref.url, provider), headers=backend.headers())
