"""Small conversions several adapters share: data URLs, image mime types, tool-call arguments."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic_core import from_json

from ..protocol import ImagePart, InvalidRequest

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def split_data_url(url: str) -> tuple[str, str] | None:
    """(mime type, base64 data) of a `data:<mime>;base64,<data>` URL, or None for any other URL."""
    if not url.startswith("data:"):
        return None
    header, sep, data = url[5:].partition(",")
    if not sep or not header.endswith(";base64"):
        raise InvalidRequest("A data: URL must be base64-encoded: data:<mime type>;base64,<data>.", param="url")
    return header[: -len(";base64")] or "application/octet-stream", data


def sniff_image_mime(data: str) -> str | None:
    """The image type of base64 `data` from its first bytes, or None when unknown."""
    try:
        head = base64.b64decode(data[:64] + "=" * (-len(data[:64]) % 4), validate=False)[:16]
    except (binascii.Error, ValueError):
        return None
    for magic, mime in _MAGIC:
        if head.startswith(magic):
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_inline(part: ImagePart) -> tuple[str, str] | None:
    """(mime type, base64 data) when the image is inline (base64 or a data: URL); None for an http(s) URL."""
    if part.data is not None:
        mime = part.mime_type or sniff_image_mime(part.data)
        if mime is None:
            raise InvalidRequest(
                "Could not tell the image type of the base64 data; give its mime type (e.g. image/png).",
                param="image",
            )
        return mime, part.data
    if part.url is not None:
        return split_data_url(part.url)
    raise InvalidRequest("An image needs a url or base64 data.", param="image")


def image_url(part: ImagePart) -> str:
    """The image as a URL: its own http(s) URL, or a data: URL for inline data."""
    if part.url is not None:
        return part.url
    inline = image_inline(part)
    assert inline is not None
    return f"data:{inline[0]};base64,{inline[1]}"


def parse_arguments(arguments: str, where: str) -> dict[str, Any]:
    """A tool call's JSON argument text as an object; a 400 naming `where` when it is not one."""
    if not arguments.strip():
        return {}
    try:
        value = from_json(arguments)
    except ValueError as exc:
        raise InvalidRequest(f"{where}: tool call arguments are not valid JSON.", param=where) from exc
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where}: tool call arguments must be a JSON object.", param=where)
    return value
