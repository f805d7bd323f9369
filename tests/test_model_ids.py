"""Model ids are checked once where they enter, and never rewrite an upstream URL: for every provider the model id
goes into the request body, or into the URL as one percent-encoded path segment."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import httpx
import pytest

from unimodel.config import ProviderConfig, Settings
from unimodel.protocol import ChatRequest, InvalidRequest, Message, TextPart
from unimodel.protocol.model_ids import check_model_id, model_id_problem
from unimodel.providers.registry import create_adapter, provider_names

from .conftest import Fake, GatewayFactory

GOOD = [
    "openai/gpt-4o",
    "Qwen/Qwen2.5-0.5B-Instruct",
    "openai/ft:gpt-4o-mini:acme::abc123",
    "anthropic/claude-3-5-sonnet@20240620",
    "openrouter/openai/gpt-4o:free",
    "fireworks/accounts/fireworks/models/llama-v3p1-8b-instruct",
    "google/tunedModels/my-model-1",
    "a" * 256,
]
BAD = [
    "google/x/../../../v1/files#",
    "google/../../admin/secret?x=",
    "openai/gpt-4o\x00",
    "openai/gpt 4o",
    "openai/./gpt-4o",
    "openai//gpt-4o",
    "/openai/gpt-4o",
    "openai/gpt-4o/",
    "openai/gpt%2e4o",
    "openai/a\\b",
    "openai/é",
    "a" * 257,
    "",
]


@pytest.mark.parametrize("model_id", GOOD)
def test_real_world_model_ids_are_accepted(model_id: str) -> None:
    assert model_id_problem(model_id) is None
    assert check_model_id(model_id) == model_id


@pytest.mark.parametrize("model_id", BAD)
def test_ids_that_could_change_a_url_or_a_record_are_refused_by_name(model_id: str) -> None:
    assert model_id_problem(model_id) is not None
    with pytest.raises(InvalidRequest) as caught:
        check_model_id(model_id, "modelId")
    assert caught.value.code == "invalid_model_id" and caught.value.param == "modelId"
    assert "\x00" not in caught.value.message  # shown escaped, never raw


def test_a_configured_open_model_id_is_checked_too() -> None:
    with pytest.raises(ValueError, match=r"'\.\.' segments"):
        Settings(models=[{"id": "acme/../chat", "path": "/x"}])


# Every provider, its expected path for a weird-but-valid model name: the name never adds a path segment.
WEIRD = "m:a@b~c+d"
PROVIDER_CONFIGS = {"azure": ProviderConfig(base_url="https://res.openai.azure.com", api_version="2024-10-21")}


@pytest.mark.parametrize("provider", provider_names())
def test_every_provider_keeps_the_model_out_of_the_url_path_or_encodes_it(provider: str) -> None:
    adapter = create_adapter(provider, PROVIDER_CONFIGS.get(provider, ProviderConfig(base_url="https://up.example/v1")))
    request = ChatRequest(model=WEIRD, messages=(Message("user", (TextPart("hi"),)),))
    upstream = adapter.build_request(request, api_key="k")
    base_path = urlsplit(adapter.base_url).path.rstrip("/")
    url = urlsplit(upstream.url)
    assert url.netloc == urlsplit(adapter.base_url).netloc
    assert url.path.startswith(base_path + "/")
    assert "#" not in upstream.url and ".." not in url.path
    assert WEIRD not in upstream.url  # never raw in the URL
    if WEIRD not in str(upstream.body.get("model", "")):  # not in the body: in the path, as one encoded segment
        assert "/m%3Aa%40b~c%2Bd" in url.path, url.path


def test_gemini_model_names_map_to_one_resource_segment() -> None:
    adapter = create_adapter("google", ProviderConfig())
    for model, path in [
        ("gemini-2.5-flash", "/v1beta/models/gemini-2.5-flash:generateContent"),
        ("models/gemini-2.5-flash", "/v1beta/models/gemini-2.5-flash:generateContent"),
        ("tunedModels/my-model", "/v1beta/tunedModels/my-model:generateContent"),
    ]:
        request = ChatRequest(model=model, messages=(Message("user", (TextPart("hi"),)),))
        assert urlsplit(adapter.build_request(request, "k").url).path == path
    for model in ("files/abc", "x/models/y", "tunedModels/"):
        request = ChatRequest(model=model, messages=(Message("user", (TextPart("hi"),)),))
        with pytest.raises(InvalidRequest) as caught:
            adapter.build_request(request, "k")
        assert caught.value.code == "invalid_model_id"


ATTACKS = [
    # (raw path after /models/v2/, as a client that does not normalise would send it)
    "google/x/%2e%2e/%2e%2e/%2e%2e/v1/files%23",
    "google/%2e%2e/%2e%2e/admin/secret%3Fx=",
    "openai/gpt-4o%00",
    "anthropic/claude%20x",
]


@pytest.mark.parametrize("raw", ATTACKS)
def test_crafted_ids_are_refused_before_any_upstream_call_on_both_surfaces(
    gateway_factory: GatewayFactory, openai_fake: Fake, anthropic_fake: Fake, raw: str
) -> None:
    gw = gateway_factory()
    headers = {"provider-key": "sk-anything"}
    with httpx.Client() as client:
        r = client.post(gw.url + "/models/v2/" + raw, json={"input": "hi"}, headers=headers)
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "invalid_model_id" and r.json()["output"] is None
        r = client.post(
            gw.url + "/v1/chat/completions",
            json={"model": unquote(raw), "messages": [{"role": "user", "content": "hi"}]},
            headers=headers,
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "invalid_model_id"
        # the cluster API checks ids the same way
        assert client.get(gw.url + "/models/v2/" + raw).status_code == 400
    assert openai_fake.script.requests == [] and anthropic_fake.script.requests == []
