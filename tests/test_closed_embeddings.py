"""Closed providers' embedding models on both surfaces: OpenAI, Mistral, Cohere and Gemini through their own
embeddings APIs (faithful fakes), with the OpenAI SDK (which asks for base64 vectors) and the v2 run body."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from unimodel.config import ProviderConfig, Settings
from unimodel.gateway import create_app

from .conftest import ANTHROPIC_KEY, Fake
from .fakes.embeddings_fake import create_embeddings_app, vector
from .fakes.server import LiveServer

KEYS = {"openai": "sk-emb-openai-test-key", "mistral": "mistral-emb-test-key", "cohere": "co-emb-test-key",
        "google": "AIza-emb-test-key"}  # fmt: skip
MODELS = {
    "openai": "openai/text-embedding-3-small",
    "mistral": "mistral/mistral-embed",
    "cohere": "cohere/embed-v4.0",
    "google": "google/text-embedding-004",
}


class Upstreams:
    def __init__(self) -> None:
        self.apps = {name: create_embeddings_app(name, key) for name, key in KEYS.items()}
        self.servers = {name: LiveServer(app) for name, app in self.apps.items()}

    def requests(self, provider: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.apps[provider].state.requests
        return found


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    ups = Upstreams()
    for server in ups.servers.values():
        server.start()
    yield ups
    for server in ups.servers.values():
        server.stop()


@pytest.fixture
def gateway(upstreams: Upstreams, anthropic_fake: Fake) -> Iterator[LiveServer]:
    urls = {name: server.url for name, server in upstreams.servers.items()}
    base = {"max_retries": 0, "read_timeout_s": 10.0}
    settings = Settings(
        providers={
            "openai": ProviderConfig(base_url=urls["openai"] + "/v1", api_key=KEYS["openai"], **base),
            "mistral": ProviderConfig(base_url=urls["mistral"], api_key=KEYS["mistral"], **base),
            "cohere": ProviderConfig(base_url=urls["cohere"], api_key=KEYS["cohere"], **base),
            "google": ProviderConfig(base_url=urls["google"], api_key=KEYS["google"], **base),
            "anthropic": ProviderConfig(base_url=anthropic_fake.url, api_key=ANTHROPIC_KEY, **base),
        },
        runtime={"default_models": False},
    )
    with LiveServer(create_app(settings)) as live:
        yield live


@pytest.mark.parametrize("provider", list(MODELS))
def test_the_openai_sdk_embeds_with_every_provider_that_has_embeddings(gateway: LiveServer, provider: str) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="any", max_retries=0)
    out = client.embeddings.create(model=MODELS[provider], input=["a cat", "a kitten sleeps"])  # base64 by default
    assert out.data[0].embedding == pytest.approx(vector("a cat"), abs=1e-6)  # float32 through base64: close
    assert out.data[1].embedding == pytest.approx(vector("a kitten sleeps"), abs=1e-6)
    assert out.model == MODELS[provider]
    if provider != "google":  # Gemini's embeddings answer counts no tokens
        assert out.usage.prompt_tokens == 5


def test_each_provider_gets_its_own_request_shape(gateway: LiveServer, upstreams: Upstreams) -> None:
    def embed(model: str, **extra: Any) -> httpx.Response:
        body = {"model": model, "input": ["x y"], "encoding_format": "float", **extra}
        return httpx.post(gateway.url + "/v1/embeddings", json=body, timeout=30)

    assert embed("openai/text-embedding-3-large", dimensions=4).status_code == 200
    assert upstreams.requests("openai")[-1] == {
        "model": "text-embedding-3-large", "input": ["x y"], "encoding_format": "float", "dimensions": 4,
    }  # fmt: skip
    r = embed("mistral/codestral-embed", dimensions=4)
    assert r.status_code == 200 and len(r.json()["data"][0]["embedding"]) == 4
    assert upstreams.requests("mistral")[-1] == {"model": "codestral-embed", "input": ["x y"], "output_dimension": 4}
    assert embed("cohere/embed-v4.0", dimensions=4).status_code == 200
    assert upstreams.requests("cohere")[-1] == {
        "model": "embed-v4.0", "texts": ["x y"], "input_type": "search_document", "embedding_types": ["float"],
        "output_dimension": 4,
    }  # fmt: skip
    assert embed("google/gemini-embedding-001", dimensions=4).status_code == 200
    assert upstreams.requests("google")[-1] == {
        "requests": [{"model": "models/gemini-embedding-001", "outputDimensionality": 4,
                      "content": {"parts": [{"text": "x y"}]}}]
    }  # fmt: skip


def test_v2_gives_one_vector_for_a_string_and_a_list_for_a_list(gateway: LiveServer) -> None:
    r = httpx.post(gateway.url + "/models/v2/cohere/embed-v4.0", json={"input": "hello there"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["output"] == vector("hello there")
    assert r.json()["provider"]["response_type"] == "embeddings_by_type"
    r = httpx.post(gateway.url + "/models/v2/openai/text-embedding-3-small", json={"input": ["a", "b"]}, timeout=30)
    assert r.json()["output"] == [vector("a"), vector("b")]
    listed = httpx.get(gateway.url + "/models/v2/list/models", params={"task": "feature-extraction"}).json()["output"]
    assert {m["modelId"] for m in listed} >= set(MODELS.values())


def test_refusals_name_what_to_change(gateway: LiveServer) -> None:
    r = httpx.post(gateway.url + "/v1/embeddings", json={"model": "anthropic/claude-sonnet-4-5", "input": "x"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported_task"
    r = httpx.post(gateway.url + "/v1/embeddings", json={"model": "cohere/command-r-plus-08-2024", "input": "x"})
    assert r.status_code == 400 and "cohere/embed-v4.0" in r.json()["error"]["message"]
    r = httpx.post(gateway.url + "/v1/embeddings", json={"model": "cohere/embed-v4.0", "input": ["t"] * 97})
    assert r.status_code == 400 and "at most 96" in r.json()["error"]["message"]  # the provider's own refusal
    r = httpx.post(gateway.url + "/v1/embeddings", json={"model": "openai/text-embedding-3-small", "input": []})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"
    r = httpx.post(
        gateway.url + "/v1/embeddings", json={"model": "google/text-embedding-004", "input": "x", "user": "u"}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported_parameter"
    r = httpx.post(gateway.url + "/models/v2/mistral/mistral-embed", json={"input": ""})
    assert r.status_code == 400 and r.json()["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("api_version", "url"),
    [
        (None, "https://res.openai.azure.com/openai/v1/embeddings"),
        ("2024-10-21", "https://res.openai.azure.com/openai/deployments/emb-3/embeddings?api-version=2024-10-21"),
    ],
)
def test_a_compatible_vendor_embeds_at_its_rows_url(api_version: str | None, url: str) -> None:
    from unimodel.protocol import EmbeddingRequest
    from unimodel.providers.registry import create_adapter

    adapter = create_adapter("azure", ProviderConfig(base_url="https://res.openai.azure.com", api_version=api_version))
    upstream = adapter.build_embeddings_request(EmbeddingRequest(model="emb-3", inputs=("x",)), "k")
    assert upstream.url == url
    assert upstream.headers == {"api-key": "k"} and upstream.body["input"] == ["x"]
