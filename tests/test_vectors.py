"""The conformance suite: every provider adapter runs through every one of its shared test vectors."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from unimodel.config import ProviderConfig
from unimodel.protocol import UnimodelError
from unimodel.providers import ADAPTERS, ProviderClient, create_adapter
from unimodel.providers.vendors import VENDORS

from .vectors import Vector, event_json, load_vectors

VECTORS = load_vectors()
KEY = "sk-vector-test-key"


@pytest.mark.parametrize("vector", VECTORS, ids=[f"{v.provider}/{v.name}" for v in VECTORS])
async def test_vector(vector: Vector) -> None:
    seen: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return vector.upstream_response()

    # `config`: the provider's config table for this vector (Azure needs its resource endpoint, say).
    adapter = create_adapter(vector.provider, ProviderConfig(max_retries=0, **vector.data.get("config", {})))
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
    if "message" in expected:
        assert error.message == expected["message"]
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
        want = None if value is None else value.replace("$KEY", KEY)  # null: the header must not be sent
        assert request.headers.get(name) == want, f"header {name}"
    assert json.loads(request.content) == expected["body"]


@pytest.mark.parametrize("provider", sorted(ADAPTERS))
def test_every_provider_has_the_required_vectors(provider: str) -> None:
    """An adapter module runs the whole battery; an OpenAI-compatible vendor row, the test below."""
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


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_every_vendor_row_has_plain_chat_and_a_vector_per_quirk(vendor: str) -> None:
    """A vendor row reuses the OpenAI adapter, so it needs plain_chat plus one vector for each way it differs from
    OpenAI (each quirk the row declares); a vector says which quirks it covers in `covers`."""
    vectors = [v for v in VECTORS if v.provider == vendor]
    assert "plain_chat" in {v.name for v in vectors}
    covered = {quirk for v in vectors for quirk in v.data.get("covers", [])}
    missing = set(VENDORS[vendor].quirks()) - covered
    assert not missing, f"no vector covers {sorted(missing)}"
