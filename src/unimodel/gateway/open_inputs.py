"""Media inputs of an open model's call, fetched here — the gateway's one guarded way out — and handed on inline.

An open model's instance never fetches a URL (runtime/worker/media_inputs.py refuses them): the gateway fetches
each http(s) `url` through the same MediaFetcher as provider images (providers/media.py: public addresses only
unless `[media] allow_hosts` names them, with its size, time and redirect caps) and passes the bytes on as a
`data:` URI in the same field. A refused or failed fetch is the fetcher's 400, naming the field.

- `/v1/run` bodies of image and audio tasks: `url`, `image`, `input` (a URL string) and `input.url`/`input.image`.
- chat requests to a vision-language model (image-text-to-text): every image part's URL (`inline_images`).
"""

from __future__ import annotations

import base64
from typing import Any

from ..protocol import ChatRequest
from ..providers.media import Budget, MediaFetcher, MediaHold
from ..runtime.service import AUDIO_IN_TASKS, IMAGE_IN_TASKS, VISION_CHAT_TASKS

_FIELDS = ("url", "image")


def _is_web_url(value: Any) -> bool:
    return isinstance(value, str) and value.lstrip()[:8].lower().startswith(("http://", "https://"))


async def inline_run_urls(
    media: MediaFetcher, payload: dict[str, Any], task: str, hold: MediaHold | None = None
) -> dict[str, Any]:
    """`payload` with its media URLs replaced by the fetched bytes as data URIs; `payload` itself (the same
    object) when it holds no URL to fetch, so that its caller may forward the body as it came.

    The fetched bytes count against `[media] max_inflight_bytes` in `hold` (until the caller leaves its `with`
    block, once the body has been sent on); without one, only while they are fetched."""
    kind = "image" if task in IMAGE_IN_TASKS else "audio" if task in AUDIO_IN_TASKS else None
    if kind is None or not _has_url(payload):
        return payload
    if hold is None:
        with media.hold() as own:
            return await inline_run_urls(media, payload, task, own)
    out = dict(payload)
    value = out.get("input")
    inner = dict(value) if isinstance(value, dict) else None
    # where each URL sits: (the dict holding it, its key there, the name errors give it)
    places = [(out, name, name) for name in _FIELDS if _is_web_url(out.get(name))]
    if isinstance(value, str) and _is_web_url(value):
        places.append((out, "input", "input"))
    elif inner is not None:
        places += [(inner, name, f"input.{name}") for name in _FIELDS if _is_web_url(inner.get(name))]
        out["input"] = inner
    budget = await media.budget(hold, [where for _, _, where in places], kind)
    for holder, name, where in places:
        holder[name] = await _data_uri(media, holder[name], where, kind, budget)
    return out


def _has_url(payload: dict[str, Any]) -> bool:
    value = payload.get("input")
    inner = value if isinstance(value, dict) else {}
    return any(_is_web_url(payload.get(name)) or _is_web_url(inner.get(name)) for name in _FIELDS) or _is_web_url(value)


async def inline_chat_images(
    media: MediaFetcher, request: ChatRequest, task: str, hold: MediaHold | None = None
) -> ChatRequest:
    """A vision-language model's chat request with its image URLs fetched (a text-only model's is left as it is:
    its instance refuses an image part with a 400 before anything is fetched); the bytes count in `hold`, as
    for `inline_run_urls`."""
    if task not in VISION_CHAT_TASKS:
        return request
    return await media.inline_images(request, hold=hold)


async def _data_uri(media: MediaFetcher, url: str, where: str, kind: str, budget: Budget) -> str:
    body, content_type, _ = await media.fetch_media(url.strip(), where, kind, budget)
    mime = content_type.partition(";")[0].strip().lower() or "application/octet-stream"
    if "/" not in mime or any(c in mime for c in ",; "):
        mime = "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(body).decode('ascii')}"
