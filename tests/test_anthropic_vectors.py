"""The Anthropic Messages surface's shared vectors (tests/vectors/surfaces/anthropic_messages/), one JSON per case:

- `kind: decode`: a Messages body (`wire`) for `model` → the canonical `request` (as in the provider vectors) and
  `image_fields`, or the 400 `error` (`status`, `param`, `message`);
- `kind: result`: a canonical `result` → the `message` object (`wire`), with the request's `stop_sequences`;
- `kind: stream`: canonical `events` → Anthropic's events (`sse`: `{event, data}` in order); a message id of
  `"msg_…"` is a generated one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from unimodel import protocol
from unimodel.frontends import anthropic_messages
from unimodel.protocol import ChatRequest, ChatResult, StreamError, StreamEvent, UnimodelError

from .vectors import VECTOR_DIR

SURFACE_VECTORS = sorted((VECTOR_DIR / "surfaces" / "anthropic_messages").glob("*.json"))
KINDS = {"decode", "result", "stream"}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def event_of(spec: dict[str, Any]) -> StreamEvent:
    fields = {k: v for k, v in spec.items() if k != "event"}
    if spec["event"] == "StreamError":
        return StreamError(UnimodelError(fields["message"], status=fields["status"], code=fields["code"]))
    kind = getattr(protocol, spec["event"])
    event: StreamEvent = TypeAdapter(kind).validate_python(fields)
    return event


def parse_sse(raw: str) -> list[dict[str, Any]]:
    out = []
    for chunk in raw.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.split("\n"))
        out.append({"event": lines["event"], "data": json.loads(lines["data"])})
    return out


async def _events(specs: list[dict[str, Any]]) -> AsyncIterator[StreamEvent]:
    for spec in specs:
        yield event_of(spec)


def test_there_are_vectors_of_every_kind() -> None:
    assert {load(p)["kind"] for p in SURFACE_VECTORS} == KINDS
    assert len(SURFACE_VECTORS) >= 30


@pytest.mark.parametrize("path", SURFACE_VECTORS, ids=[p.stem for p in SURFACE_VECTORS])
async def test_anthropic_surface_vector(path: Path) -> None:
    vector = load(path)
    kind = vector["kind"]
    if kind == "decode":
        body = json.dumps(vector["wire"]).encode()
        if "error" in vector:
            with pytest.raises(UnimodelError) as info:
                anthropic_messages.decode_messages(body, vector["model"])
            expected = vector["error"]
            assert (info.value.status, info.value.param, info.value.message) == (
                expected["status"],
                expected["param"],
                expected["message"],
            )
            return
        decoded = anthropic_messages.decode_messages(body, vector["model"])
        assert decoded.request == TypeAdapter(ChatRequest).validate_python(vector["request"])
        assert decoded.image_fields == vector.get("image_fields", [])
    elif kind == "result":
        result = TypeAdapter(ChatResult).validate_python(vector["result"])
        wire = anthropic_messages.encode_result(result, vector["model_id"], tuple(vector["stop_sequences"]))
        assert json.loads(wire) == vector["wire"]
    else:
        chunks = anthropic_messages.encode_stream(
            _events(vector["events"]), vector["model_id"], tuple(vector["stop_sequences"])
        )
        got = parse_sse(b"".join([c async for c in chunks]).decode())
        for event, want in zip(got, vector["sse"], strict=True):
            if want["event"] == "message_start" and want["data"]["message"]["id"] == "msg_…":
                assert event["data"]["message"]["id"].startswith("msg_")
                event["data"]["message"]["id"] = "msg_…"
            assert event == want
