"""Images and audio out of a v2 run input, decoded for a model — or a 400 that says what is wrong with them.

A task's media is the first of the input's `base64`, `url`, `image` and (the SDK's bare string) `text` fields:
raw base64, or a `data:` URI. An http(s) URL never reaches the worker: the gateway fetches it through its guard
(providers/media.py: public addresses only, size, time and redirect caps) and hands it on as a data URI, so a
URL here is refused rather than fetched (a worker must not open a way into the network it runs in).

- Images: Pillow, RGB. A header that promises more than `MAX_PIXELS` is refused before a pixel is decoded (a
  decompression bomb: a few KB of PNG that would inflate to gigapixels); not an image, truncated, empty → 400.
- Audio: libsndfile (soundfile: wav, flac, ogg/vorbis/opus, mp3 and more), mixed down to mono and resampled to
  the model's rate with a polyphase filter (scipy); longer than `MAX_AUDIO_S` is refused before it is decoded.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from typing import Any

from .errors import WorkerError, invalid_request

MAX_PIXELS = 50_000_000  # ~7000 × 7000: more is refused before decoding (Pillow's own bomb limit is 89 M)
MAX_AUDIO_S = 600.0  # ten minutes of audio per request
MEDIA_FIELDS = ("base64", "url", "image", "text")
_DATA_URI = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[^;,]*)*)(?P<b64>;base64)?,", re.I)


def bad_media(message: str, field: str) -> WorkerError:
    return WorkerError(400, "invalid_media", message, field)


def media_bytes(fields: dict[str, Any], kind: str) -> tuple[bytes, str]:
    """The raw bytes of the input's image or audio, and the field they came from."""
    for name in MEDIA_FIELDS:
        value = fields.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise invalid_request(f"'{name}' must be a non-empty string: the {kind} as base64 or a data URI.", name)
        return _decode_source(value.strip(), name, kind), name
    raise invalid_request(f"This task takes an {kind}: send 'url', 'base64' or a data URI as 'input'.", "input")


def _decode_source(value: str, field: str, kind: str) -> bytes:
    if value[:8].lower().startswith(("http://", "https://")):
        raise invalid_request(
            f"'{field}' is a URL; the worker does not fetch URLs. Send it through the gateway, which fetches it, "
            f"or send the {kind} as base64.",
            field,
        )
    match = _DATA_URI.match(value)
    if match is not None:
        payload = value[match.end() :]
        if not match.group("b64"):
            from urllib.parse import unquote_to_bytes

            data = unquote_to_bytes(payload)
        else:
            data = _b64(payload, field, kind)
    elif value[:5].lower() == "data:":
        raise invalid_request(f"'{field}' is not a valid data URI (data:<type>;base64,<data>).", field)
    else:
        data = _b64(value, field, kind)
    if not data:
        raise bad_media(f"'{field}' is empty: the {kind} has 0 bytes.", field)
    return data


def _b64(text: str, field: str, kind: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)  # the common case, at C speed (a regex pass costs more)
    except (binascii.Error, ValueError):
        pass
    compact = "".join(text.split())  # base64 wrapped in lines
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            return decode(compact, validate=True) if decode is base64.b64decode else decode(compact)
        except (binascii.Error, ValueError):
            continue
    raise invalid_request(f"'{field}' is neither a URL, a data URI nor valid base64 of an {kind}.", field)


def decode_image(data: bytes, field: str) -> Any:
    """A PIL image (RGB) of `data`; a 400 when it is not an image, is cut short, or would be too large."""
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = None  # the check below is the one gate: it names the size (Pillow's raises without)
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise bad_media(
                f"'{field}' is a {width} × {height} image ({width * height / 1e6:.0f} megapixels); unimodel decodes "
                f"images of at most {MAX_PIXELS / 1e6:.0f} megapixels (a small file that inflates to that many "
                "pixels is a decompression bomb).",
                field,
            )
        image.load()
        return image.convert("RGB")
    except UnidentifiedImageError:
        raise bad_media(
            f"'{field}' is not an image Pillow can read (PNG, JPEG, GIF, WebP, BMP, TIFF …).", field
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise bad_media(f"'{field}' is a broken or truncated image: {exc}.", field) from None


def decode_audio(data: bytes, field: str, rate: int) -> Any:
    """Mono float32 samples of `data` at `rate` Hz (numpy); a 400 when it is not audio, is empty or too long."""
    import numpy as np
    import soundfile  # type: ignore[import-untyped]

    try:
        with soundfile.SoundFile(io.BytesIO(data)) as sound:
            source_rate, frames = sound.samplerate, sound.frames
            if frames > MAX_AUDIO_S * source_rate:
                raise bad_media(
                    f"'{field}' is {frames / source_rate:.0f} s of audio; unimodel takes at most {MAX_AUDIO_S:g} s.",
                    field,
                )
            samples = sound.read(dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise bad_media(
            f"'{field}' is not audio libsndfile can decode (wav, flac, ogg, mp3 …), or it is truncated: {exc}.", field
        ) from None
    if samples.shape[0] == 0:
        raise bad_media(f"'{field}' holds no audio samples (0 frames): it is empty or truncated.", field)
    wave = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if source_rate != rate:
        from math import gcd

        from scipy.signal import resample_poly  # type: ignore[import-untyped]

        g = gcd(int(source_rate), int(rate))
        wave = resample_poly(wave, rate // g, source_rate // g).astype(np.float32)
    return np.ascontiguousarray(wave, dtype=np.float32)
