"""The conformance suite: every provider adapter runs through every one of its shared test vectors."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from unimodel.config import ProviderConfig
from unimodel.protocol import UnimodelError
from unimodel.providers import ProviderClient, create_adapter, provider_names

from .vectors import Vector, event_json, load_vectors

VECTORS = load_vectors()
KEY = "sk-vector-test-key"


@pytest.mark.parametrize("vector", VECTORS, ids=[f"{v.provider}/{v.name}" for v in VECTORS])
async def test_vector(vector: Vector) -> None:
    seen: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return vector.upstream_response()

    adapter = create_adapter(vector.provider, ProviderConfig(max_retries=0))
    client = ProviderClient(adapter, httpx.MockTransport(upstream))
    expected = vector.data["expected"]
    request = vector.request
    try:
        if "error" in expected:
            with pytest.raises(UnimodelError) as info:
                if request.stream:
                    await client.stream(request, KEY)
                else:
                    await client.complete(request, KEY)
            _check_error(info.value, expected["error"])
        elif request.stream:
            events = [event_json(e) async for e in await client.stream(request, KEY)]
            assert events == expected["events"]
        else:
            result = await client.complete(request, KEY)
            got = _result_json(result)
            for key, value in expected["result"].items():
                assert got[key] == value, f"result.{key}"
    finally:
        await client.aclose()
    _check_upstream(seen, vector.data["upstream_request"])


def _result_json(result: Any) -> dict[str, Any]:
    from dataclasses import asdict

    out = asdict(result)
    out.pop("raw")
    return out


def _check_error(error: UnimodelError, expected: dict[str, Any]) -> None:
    assert error.status == expected["status"]
    assert error.code == expected["code"]
    if "retry_after" in expected:
        assert error.retry_after == expected["retry_after"]
    assert KEY not in error.message


def _check_upstream(seen: list[httpx.Request], expected: dict[str, Any] | None) -> None:
    if expected is None:  # refused before anything was sent
        assert seen == []
        return
    assert len(seen) == 1, "exactly one upstream request"
    request = seen[0]
    assert str(request.url) == expected["url"]
    for name, value in expected.get("headers", {}).items():
        assert request.headers.get(name) == value.replace("$KEY", KEY), f"header {name}"
    assert json.loads(request.content) == expected["body"]


@pytest.mark.parametrize("provider", provider_names())
def test_every_provider_has_the_required_vectors(provider: str) -> None:
    names = {v.name for v in VECTORS if v.provider == provider}
    required = {
        "plain_chat",
        "system_prompt",
        "multi_turn",
        "image_url",
        "image_base64",
        "tool_definitions",
        "tool_result_turn",
        "parallel_tool_calls_streamed",
        "json_mode",
        "stop_sequences",
        "max_tokens_stop",
        "upstream_error",
    }
    assert required <= names, f"missing vectors: {sorted(required - names)}"
