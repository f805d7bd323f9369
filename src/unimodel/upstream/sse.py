"""Server-sent events: an incremental decoder over raw body bytes, after the WHATWG event-stream rules.

It is fed whatever chunks the transport delivers, so it works the same over aiohttp and httpx, and it puts
no limit on a line's length (a streamed tool call or image can be one very long `data:` line).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass


@dataclass(slots=True)
class SSEMessage:
    """One server-sent event as read off the wire."""

    event: str
    data: str


class SSEDecoder:
    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._pending_cr = False
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes | str) -> list[SSEMessage]:
        """The events completed by this chunk."""
        text = self._utf8.decode(chunk) if isinstance(chunk, bytes) else chunk
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]  # the second half of a \r\n split across chunks
        self._pending_cr = text.endswith("\r")
        out: list[SSEMessage] = []
        lines = (self._buffer + text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self._buffer = lines.pop()
        for line in lines:
            message = self._line(line)
            if message is not None:
                out.append(message)
        return out

    def flush(self) -> list[SSEMessage]:
        """At the end of the body: an event not closed by a blank line is still dispatched."""
        out = []
        if self._buffer:
            message = self._line(self._buffer)
            self._buffer = ""
            if message is not None:
                out.append(message)
        message = self._line("")
        if message is not None:
            out.append(message)
        return out

    def _line(self, line: str) -> SSEMessage | None:
        if not line:
            if not self._data and not self._event:
                return None
            message = SSEMessage(self._event or "message", "\n".join(self._data))
            self._event, self._data = "", []
            return message
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None
