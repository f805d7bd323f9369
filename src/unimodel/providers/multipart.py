"""A `multipart/form-data` body (RFC 7578), built in memory: what an upload to a provider (a transcription) sends."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from ..protocol import AudioFile


def _quoted(value: str) -> str:
    # RFC 7578 4.2: a quote is percent-encoded in a name; line breaks would end the header
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", " ").replace("\n", " ")


def encode_multipart(fields: Sequence[tuple[str, str]], files: Sequence[tuple[str, AudioFile]]) -> tuple[bytes, str]:
    """The body and its content type (with the boundary) for text `fields` and `files`, in that order."""
    boundary = "unimodel-" + secrets.token_hex(16)  # random: it cannot occur in the data by chance
    dash = f"--{boundary}\r\n".encode()
    parts: list[bytes] = []
    for name, value in fields:
        parts += [dash, f'Content-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n'.encode(), value.encode()]
        parts.append(b"\r\n")
    for name, file in files:
        disposition = f'Content-Disposition: form-data; name="{_quoted(name)}"; filename="{_quoted(file.filename)}"'
        parts += [dash, f"{disposition}\r\nContent-Type: {file.content_type}\r\n\r\n".encode(), file.data, b"\r\n"]
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
