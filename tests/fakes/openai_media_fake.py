"""A faithful fake of OpenAI's media APIs (and Groq's transcriptions, which take OpenAI's shape), written from
OpenAI's API reference: what each endpoint takes, what it refuses, what it answers. It makes real bytes: PNG images
(drawn here with zlib, or by Pillow when it is installed), WAV and PCM speech (the wave module), MP3 as silent
MPEG frames; opus, aac and flac answers carry only their format's signature.

    POST /v1/images/generations     JSON; dall-e-2, dall-e-3 (n=1 only), gpt-image-1 / gpt-image-1-mini (no
                                    response_format or style; background, output_format, output_compression,
                                    moderation are theirs alone); dall-e answers a URL unless asked b64_json
    POST /v1/audio/transcriptions   multipart: file (flac mp3 mp4 mpeg mpga m4a ogg wav webm, 25 MB), model,
                                    language, prompt, response_format (gpt-4o-*: json only), temperature,
                                    timestamp_granularities[] (verbose_json only)
    POST /v1/audio/speech           JSON {model, input (4096 chars), voice, response_format, speed, instructions
                                    (not tts-1/tts-1-hd)} → audio bytes

    app = create_media_app(api_key="sk-…")            # OpenAI, under /v1
    app = create_media_app(api_key="gsk_…", provider="groq")   # Groq, under /openai/v1 (transcriptions only)
    app.state.requests: (path, body) for every authenticated call; a transcription's body is its form, the
    file as {"filename", "content_type", "size"}.
    app.state.faults: (status, message) pairs; each authenticated call answers the first one instead (a test's
    way to make the upstream fail: 429s come with Retry-After: 0).
"""

from __future__ import annotations

import base64
import io
import math
import secrets
import struct
import time
import wave
import zlib
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

IMAGE_SIZES = {
    "dall-e-2": {"256x256", "512x512", "1024x1024"},
    "dall-e-3": {"1024x1024", "1792x1024", "1024x1792"},
    "gpt-image-1": {"auto", "1024x1024", "1536x1024", "1024x1536"},
    "gpt-image-1-mini": {"auto", "1024x1024", "1536x1024", "1024x1536"},
}
IMAGE_QUALITIES = {
    "dall-e-2": {"standard", "auto"},
    "dall-e-3": {"standard", "hd", "auto"},
    "gpt-image-1": {"auto", "high", "medium", "low"},
    "gpt-image-1-mini": {"auto", "high", "medium", "low"},
}
PROMPT_LIMITS = {"dall-e-2": 1000, "dall-e-3": 4000}  # GPT image models: 32000
GPT_IMAGE_ONLY = ("background", "output_format", "output_compression", "moderation")
IMAGE_FIELDS = {"model", "prompt", "n", "size", "quality", "style", "response_format", "user", *GPT_IMAGE_ONLY,
                "stream", "partial_images"}  # fmt: skip
AUDIO_EXTENSIONS = ("flac", "mp3", "mp4", "mpeg", "mpga", "m4a", "ogg", "wav", "webm")
MAX_AUDIO_BYTES = 25 * 1024 * 1024
TRANSCRIBE_MODELS = {
    "openai": {"whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"},
    "groq": {"whisper-large-v3", "whisper-large-v3-turbo"},
}
TRANSCRIPTION_FORMATS = {
    "whisper-1": {"json", "text", "srt", "verbose_json", "vtt"},
    "gpt-4o-transcribe": {"json"},
    "gpt-4o-mini-transcribe": {"json"},
    "whisper-large-v3": {"json", "text", "verbose_json"},  # Groq: no srt or vtt
    "whisper-large-v3-turbo": {"json", "text", "verbose_json"},
}
TTS_VOICES = {"alloy", "ash", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer"}
VOICES = {"gpt-4o-mini-tts": TTS_VOICES | {"ballad", "verse", "marin", "cedar"}, "tts-1": TTS_VOICES,
          "tts-1-hd": TTS_VOICES}  # fmt: skip
SPEECH_TYPES = {"mp3": "audio/mpeg", "opus": "audio/opus", "aac": "audio/aac", "flac": "audio/flac",
                "wav": "audio/wav", "pcm": "audio/pcm"}  # fmt: skip
SAMPLE_RATE = 24_000  # OpenAI's speech: 24 kHz, 16-bit, mono


def error(status: int, message: str, param: str | None = None, code: str | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}, status
    )


def png(width: int, height: int, seed: str) -> bytes:
    """A real PNG of `width` x `height` (its colour from `seed`), by Pillow when installed, else by hand."""
    colour = tuple(zlib.crc32(seed.encode()).to_bytes(4, "big")[:3])
    try:
        from PIL import Image  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pass
    else:
        out = io.BytesIO()
        Image.new("RGB", (width, height), colour).save(out, "PNG")
        return out.getvalue()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(colour) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def speech_samples(text: str) -> bytes:
    """16-bit mono samples at 24 kHz: a tone of 60 ms per character."""
    count = int(SAMPLE_RATE * 0.06 * len(text))
    return b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / SAMPLE_RATE))) for i in range(count))


def wav(samples: bytes) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples)
    return out.getvalue()


def encode_speech(fmt: str, text: str) -> bytes:
    samples = speech_samples(text)
    if fmt == "wav":
        return wav(samples)
    if fmt == "pcm":
        return samples
    if fmt == "mp3":  # silent MPEG-1 Layer III frames, 128 kbit/s at 44.1 kHz (417 bytes each)
        frames = max(1, len(samples) // 2 // 1152)
        return (b"\xff\xfb\x90\x64" + bytes(413)) * frames
    return {"opus": b"OggS", "aac": b"\xff\xf1", "flac": b"fLaC"}[fmt] + bytes(64)


def audio_seconds(data: bytes) -> float:
    """The length of a WAV file; other formats count 16 kB a second."""
    try:
        with wave.open(io.BytesIO(data)) as w:
            return w.getnframes() / w.getframerate()
    except (wave.Error, EOFError):
        return len(data) / 16_000


def create_media_app(api_key: str, provider: str = "openai") -> Starlette:
    requests: list[tuple[str, Any]] = []
    faults: list[tuple[int, str]] = []
    prefix = "/openai/v1" if provider == "groq" else "/v1"

    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {api_key}"

    def unauthorized() -> JSONResponse:
        return error(401, "Incorrect API key provided.", code="invalid_api_key")

    def refusal(request: Request) -> Response | None:
        """401 for a wrong key, else the next scripted fault, else None."""
        if not authorized(request):
            return unauthorized()
        if faults:
            status, message = faults.pop(0)
            response = error(status, message, code="rate_limit_exceeded" if status == 429 else None)
            if status == 429:
                response.headers["retry-after"] = "0"
            return response
        return None

    async def images(request: Request) -> Response:
        if (refused := refusal(request)) is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            return error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return error(400, "We could not parse the JSON body of your request.")
        requests.append(("/images/generations", body))
        for name in body:
            if name not in IMAGE_FIELDS:
                return error(400, f"Unrecognized request argument supplied: {name}", param=name)
        model = body.get("model", "dall-e-2")
        if model not in IMAGE_SIZES:
            return error(404, f"The model `{model}` does not exist or you do not have access to it.",
                         code="model_not_found")  # fmt: skip
        gpt_image = model.startswith("gpt-image")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            return error(
                400, "Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter"
            )
        if len(prompt) > PROMPT_LIMITS.get(model, 32000):
            return error(400, f"'prompt' is too long for {model}.", param="prompt", code="string_above_max_length")
        n = body.get("n", 1)
        if not isinstance(n, int) or not 1 <= n <= 10:
            return error(400, f"Invalid 'n': {n}. Expected a value between 1 and 10.", param="n")
        if model == "dall-e-3" and n != 1:
            return error(400, "You must provide n=1 for this model.", param="n")
        size = body.get("size", "1024x1024" if not gpt_image else "auto")
        if size not in IMAGE_SIZES[model]:
            return error(400, f"Invalid value: '{size}'. Supported values are: {sorted(IMAGE_SIZES[model])}.",
                         param="size", code="invalid_value")  # fmt: skip
        quality = body.get("quality", "auto")
        if quality not in IMAGE_QUALITIES[model]:
            return error(400, f"Invalid value: '{quality}'. Supported values are: {sorted(IMAGE_QUALITIES[model])}.",
                         param="quality", code="invalid_value")  # fmt: skip
        if "style" in body and (model != "dall-e-3" or body["style"] not in ("vivid", "natural")):
            return error(400, f"Unknown parameter: 'style' for {model}." if model != "dall-e-3" else
                         "Invalid value for 'style': expected vivid or natural.", param="style")  # fmt: skip
        if gpt_image and "response_format" in body:
            return error(400, "Unknown parameter: 'response_format'.", param="response_format",
                         code="unknown_parameter")  # fmt: skip
        response_format = body.get("response_format", "url")
        if response_format not in ("url", "b64_json"):
            return error(400, f"Invalid value: '{response_format}'. Supported values are: 'url' and 'b64_json'.",
                         param="response_format")  # fmt: skip
        for name in GPT_IMAGE_ONLY:
            if name in body and not gpt_image:
                return error(400, f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
        output_format = body.get("output_format", "png")
        if gpt_image and output_format not in ("png", "jpeg", "webp"):
            return error(400, f"Invalid value: '{output_format}'.", param="output_format", code="invalid_value")
        if body.get("background") == "transparent" and output_format == "jpeg":
            return error(400, "Transparent background requires png or webp.", param="background")
        if body.get("stream"):
            return error(400, "Streaming is not supported by this fake.", param="stream")
        width, height = (1024, 1024) if size == "auto" else (int(x) for x in size.split("x"))
        scale = 64  # the fake draws small images of the size's proportions
        data: list[dict[str, Any]] = []
        for i in range(n):
            image = png(max(1, width // scale), max(1, height // scale), f"{prompt}#{i}")
            item: dict[str, Any] = {}
            if not gpt_image and response_format == "url":
                item["url"] = (
                    f"https://oaidalleapiprodscus.blob.core.windows.net/private/img-{secrets.token_hex(8)}.png"
                )
            else:
                item["b64_json"] = base64.b64encode(image).decode()
            if model == "dall-e-3":
                item["revised_prompt"] = f"A detailed picture: {prompt}"
            data.append(item)
        answer: dict[str, Any] = {"created": int(time.time()), "data": data}
        if gpt_image:
            words = len(prompt.split())
            answer.update(
                background=body.get("background", "opaque"), output_format=output_format,
                quality="medium" if quality == "auto" else quality, size="1024x1024" if size == "auto" else size,
                usage={"input_tokens": words, "output_tokens": 272 * n, "total_tokens": words + 272 * n,
                       "input_tokens_details": {"text_tokens": words, "image_tokens": 0}},
            )  # fmt: skip
        return JSONResponse(answer)

    async def transcriptions(request: Request) -> Response:
        if (refused := refusal(request)) is not None:
            return refused
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return error(400, "Expected multipart/form-data.")
        form = await request.form()
        fields: dict[str, Any] = {}
        upload: UploadFile | None = None
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                upload = value
            elif name.endswith("[]"):
                fields.setdefault(name, []).append(value)
            else:
                fields[name] = value
        file_bytes = await upload.read() if upload is not None else b""
        shown = dict(fields)
        if upload is not None:
            shown["file"] = {"filename": upload.filename, "content_type": upload.content_type, "size": len(file_bytes)}
        requests.append(("/audio/transcriptions", shown))
        if upload is None:
            return error(400, "Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
        model = fields.get("model")
        if model not in TRANSCRIBE_MODELS[provider]:
            return error(404, f"The model `{model}` does not exist or you do not have access to it.",
                         code="model_not_found")  # fmt: skip
        extension = (upload.filename or "").rpartition(".")[2].lower()
        if extension not in AUDIO_EXTENSIONS:
            return error(400, f"Invalid file format. Supported formats: {list(AUDIO_EXTENSIONS)}", param="file")
        if len(file_bytes) > MAX_AUDIO_BYTES:
            return error(413, "Maximum content size limit (26214400) exceeded.", param="file")
        fmt = fields.get("response_format", "json")
        if fmt not in TRANSCRIPTION_FORMATS[model]:
            return error(400, f"response_format '{fmt}' is not compatible with model '{model}'.",
                         param="response_format", code="unsupported_value")  # fmt: skip
        granularities = fields.get("timestamp_granularities[]", [])
        if granularities and fmt != "verbose_json":
            return error(400, "timestamp_granularities requires response_format=verbose_json.",
                         param="timestamp_granularities")  # fmt: skip
        temperature = fields.get("temperature")
        if temperature is not None:
            try:
                float(temperature)
            except ValueError:
                return error(400, f"Invalid 'temperature': {temperature}.", param="temperature")
        seconds = audio_seconds(file_bytes)
        text = f"Transcript of {seconds:.2f} seconds of audio."
        if fields.get("language"):
            text += f" Language: {fields['language']}."
        end = f"00:00:{seconds:06.3f}"
        if fmt == "text":
            return PlainTextResponse(text + "\n")
        if fmt == "srt":
            return PlainTextResponse(f"1\n00:00:00,000 --> {end.replace('.', ',')}\n{text}\n\n")
        if fmt == "vtt":
            return Response(f"WEBVTT\n\n00:00:00.000 --> {end}\n{text}\n\n", media_type="text/vtt")
        if model.startswith("gpt-4o"):
            audio_tokens = max(1, int(seconds * 10))
            usage: dict[str, Any] = {"type": "tokens", "input_tokens": audio_tokens, "output_tokens": len(text.split()),
                                     "total_tokens": audio_tokens + len(text.split()),
                                     "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens}}  # fmt: skip
        else:
            usage = {"type": "duration", "seconds": math.ceil(seconds)}
        if fmt == "json":
            return JSONResponse({"text": text, "usage": usage})
        verbose: dict[str, Any] = {
            "task": "transcribe", "language": "english", "duration": seconds, "text": text,
            "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": seconds, "text": text, "tokens": [1, 2],
                          "temperature": 0.0, "avg_logprob": -0.2, "compression_ratio": 1.0, "no_speech_prob": 0.01}],
            "usage": usage,
        }  # fmt: skip
        if "word" in granularities:
            words = text.split()
            step = seconds / len(words)
            verbose["words"] = [{"word": w, "start": i * step, "end": (i + 1) * step} for i, w in enumerate(words)]
        return JSONResponse(verbose)

    async def speech(request: Request) -> Response:
        if (refused := refusal(request)) is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            return error(400, "We could not parse the JSON body of your request.")
        requests.append(("/audio/speech", body))
        for name in body:
            if name not in ("model", "input", "voice", "response_format", "speed", "instructions", "stream_format"):
                return error(400, f"Unrecognized request argument supplied: {name}", param=name)
        model = body.get("model")
        if model not in VOICES:
            return error(404, f"The model `{model}` does not exist or you do not have access to it.",
                         code="model_not_found")  # fmt: skip
        text = body.get("input")
        if not isinstance(text, str) or not text:
            return error(400, "Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
        if len(text) > 4096:
            return error(400, "'input' is too long: at most 4096 characters.", param="input")
        voice = body.get("voice")
        if voice not in VOICES[model]:
            return error(400, f"Invalid value: '{voice}'. Supported values are: {sorted(VOICES[model])}.",
                         param="voice", code="invalid_value")  # fmt: skip
        fmt = body.get("response_format", "mp3")
        if fmt not in SPEECH_TYPES:
            return error(400, f"Invalid value: '{fmt}'.", param="response_format", code="invalid_value")
        speed = body.get("speed", 1.0)
        if not isinstance(speed, int | float) or not 0.25 <= speed <= 4.0:
            return error(400, f"Invalid 'speed': {speed}. Expected a value between 0.25 and 4.0.", param="speed")
        if "instructions" in body and model in ("tts-1", "tts-1-hd"):
            return error(400, f"instructions is not supported for {model}.", param="instructions")
        if body.get("stream_format") == "sse" and model in ("tts-1", "tts-1-hd"):
            return error(400, f"stream_format 'sse' is not supported for {model}.", param="stream_format")
        return Response(encode_speech(fmt, text), media_type=SPEECH_TYPES[fmt])

    routes = [Route(f"{prefix}/audio/transcriptions", transcriptions, methods=["POST"])]
    if provider == "openai":
        routes += [
            Route(f"{prefix}/images/generations", images, methods=["POST"]),
            Route(f"{prefix}/audio/speech", speech, methods=["POST"]),
        ]
    app = Starlette(routes=routes)
    app.state.requests = requests
    app.state.faults = faults
    return app
