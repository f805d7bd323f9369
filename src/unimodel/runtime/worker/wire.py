"""Request fields in, response bodies out: OpenAI objects and SSE chunks, and the v2 run input."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from .engines.base import ChatMessages, Outcome
from .errors import invalid_request
from .media_inputs import decode_image, media_bytes

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def messages_from(value: Any, field: str = "messages", *, images: bool = False) -> ChatMessages:
    """Chat messages as the engines take them: `{role, content}` with string content; with `images` (a vision
    chat model), content with an image is a list of text parts and decoded images (engines/base.py)."""
    if not isinstance(value, list) or not value:
        raise invalid_request(f"'{field}' must be a non-empty array of messages.", field)
    out: ChatMessages = []
    for i, message in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(message, dict):
            raise invalid_request(f"'{where}' must be an object with 'role' and 'content'.", where)
        role = _ROLES.get(message.get("role"))  # type: ignore[arg-type]
        if role is None:
            raise invalid_request(
                f"'{where}.role' must be system, user or assistant; got {message.get('role')!r}.", f"{where}.role"
            )
        content = message.get("content")
        if images and isinstance(content, list):
            out.append({"role": role, "content": _media_content(content, f"{where}.content")})
        else:
            out.append({"role": role, "content": _text_content(content, f"{where}.content")})
    return out


def _media_content(content: list[Any], where: str) -> list[dict[str, Any]]:
    """Text and image parts, in order: OpenAI's `image_url` (its `url` a data URI or base64) and the v2
    `{type: image, url | base64}`; the image decoded here (media_inputs.py: a URL is refused, never fetched)."""
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        if isinstance(part, str):
            parts.append({"type": "text", "text": part})
            continue
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind in ("image_url", "image"):
            source = part.get("image_url") if kind == "image_url" else part
            if isinstance(source, str):
                source = {"url": source}
            if not isinstance(source, dict):
                raise invalid_request(f"'{at}' must carry the image as 'url' or 'base64'.", at)
            fields = {name: source[name] for name in ("base64", "url") if name in source}
            data, name = media_bytes(fields, "image")
            parts.append({"type": "image", "image": decode_image(data, f"{at}.{name}")})
        else:
            shown = kind if isinstance(kind, str) else type(part).__name__
            raise invalid_request(f"'{at}' is a {shown} part; this model takes text and images.", at)
    return parts


def _text_content(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if not isinstance(content, list):
        raise invalid_request(f"'{where}' must be a string or an array of parts.", where)
    texts: list[str] = []
    for j, part in enumerate(content):
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise invalid_request(f"'{where}[{j}]' is a {kind!s} part; this model takes text only.", f"{where}[{j}]")
    return "\n".join(texts)


def run_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The task's fields from either v2 body shape: SDK (`input`) or HTTP (fields at the top level)."""
    fields = {k: v for k, v in body.items() if k not in ("input", "params", "stream", "json", "model")}
    if "input" in body:
        value = body["input"]
        if isinstance(value, str):
            fields.setdefault("text", value)
        elif isinstance(value, list):
            fields.setdefault("messages", value)
        elif isinstance(value, dict):
            for key, item in value.items():
                fields.setdefault(key, item)
        else:
            raise invalid_request("'input' must be a string, an array of messages or an object.", "input")
    return fields


def text_field(fields: dict[str, Any], name: str = "text") -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value:
        raise invalid_request(f"'{name}' must be a non-empty string.", name)
    return value


def texts_field(value: Any, name: str) -> list[str]:
    """One string or an array of strings (as OpenAI's embeddings `input` and a v2 `text` may be)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise invalid_request(f"'{name}' must be a string or a non-empty array of strings.", name)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(outcome: Outcome) -> dict[str, int]:
    return {
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "total_tokens": outcome.prompt_tokens + outcome.completion_tokens,
    }


def sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


class Envelope:
    """The fields every response object and chunk of one request shares."""

    def __init__(self, kind: str, model: str) -> None:
        self.kind = kind  # "chat" or "text"
        self.id = new_id("chatcmpl" if kind == "chat" else "cmpl")
        self.created = int(time.time())
        self.model = model

    def _base(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def response(self, text: str, outcome: Outcome) -> dict[str, Any]:
        if self.kind == "chat":
            choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}}
            body = self._base("chat.completion")
        else:
            choice = {"index": 0, "text": text}
            body = self._base("text_completion")
        choice.update(logprobs=None, finish_reason=outcome.finish_reason)
        return {**body, "choices": [choice], "usage": usage(outcome)}

    def chunk(self, text: str | None, finish_reason: str | None = None, *, first: bool = False) -> bytes:
        if self.kind == "chat":
            delta: dict[str, Any] = {"role": "assistant", "content": text or ""} if first else {}
            if text and not first:
                delta["content"] = text
            choice: dict[str, Any] = {"index": 0, "delta": delta}
            body = self._base("chat.completion.chunk")
        else:
            choice = {"index": 0, "text": text or ""}
            body = self._base("text_completion")
        choice.update(logprobs=None, finish_reason=finish_reason)
        return sse({**body, "choices": [choice]})

    def usage_chunk(self, outcome: Outcome) -> bytes:
        obj = "chat.completion.chunk" if self.kind == "chat" else "text_completion"
        return sse({**self._base(obj), "choices": [], "usage": usage(outcome)})


def embeddings_response(vectors: list[list[float]], tokens: int, model: str, encoding: str) -> dict[str, Any]:
    data: list[dict[str, Any]] = []
    for index, vector in enumerate(vectors):
        embedding: Any = vector
        if encoding == "base64":
            import base64
            import struct

            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
