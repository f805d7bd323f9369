"""Shared test vectors: one JSON file per case under tests/vectors/<provider>/.

A vector holds
- `request`: the canonical ChatRequest as JSON (the dataclasses' fields);
- `upstream_request`: the exact request the adapter must send: `url`, a subset of `headers`, the whole `body`
  (`null` when the adapter must refuse the request before sending anything);
- `upstream_response`: `status`, optional `headers`, and `json` (a body) or `sse` (a list of
  `{"event"?: name, "data": object | "[DONE]"}`) or `sse_raw` (a transcript);
- `expected`: `result` (a subset of the ChatResult fields), `events` (the canonical stream events) or
  `error` (`status`, `code`, and optionally `retry_after`);
- optionally `config`: the provider's config keys for this case (Azure's `base_url`, `api_version`), and, for an
  OpenAI-compatible vendor row, `covers`: the row quirks (vendors.VendorRow.quirks) the case pins.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import TypeAdapter

from unimodel.protocol import ChatRequest, StreamError, StreamEvent

VECTOR_DIR = Path(__file__).parent / "vectors"
_REQUEST = TypeAdapter(ChatRequest)


@dataclass
class Vector:
    provider: str
    name: str
    data: dict[str, Any]

    @property
    def request(self) -> ChatRequest:
        return _REQUEST.validate_python(self.data["request"])

    def upstream_response(self) -> httpx.Response:
        spec = self.data.get("upstream_response") or {"status": 599}
        headers = dict(spec.get("headers", {}))
        if "sse" in spec or "sse_raw" in spec:
            text = spec.get("sse_raw") or sse_transcript(spec["sse"])
            headers.setdefault("content-type", "text/event-stream")
            return httpx.Response(spec.get("status", 200), text=text, headers=headers)
        return httpx.Response(spec.get("status", 200), json=spec.get("json"), headers=headers)


def sse_transcript(events: list[dict[str, Any]]) -> str:
    out = []
    for ev in events:
        data = ev["data"] if isinstance(ev["data"], str) else json.dumps(ev["data"])
        out.append((f"event: {ev['event']}\n" if ev.get("event") else "") + f"data: {data}\n\n")
    return "".join(out)


def load_vectors() -> list[Vector]:
    return [
        Vector(path.parent.name, path.stem, json.loads(path.read_text()))
        for path in sorted(VECTOR_DIR.glob("*/*.json"))
    ]


def event_json(event: StreamEvent) -> dict[str, Any]:
    """A stream event as a vector writes it: `{"event": "TextDelta", "text": …}`."""
    if isinstance(event, StreamError):
        out: dict[str, Any] = {"event": "StreamError", "status": event.error.status, "code": event.error.code}
        return out
    return {"event": type(event).__name__, **asdict(event)}
