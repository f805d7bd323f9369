"""OpenAI-compatible vendors as data rows: config-defined vendors, built-in rows, Azure, and config errors.

The gateway runs on loopback with the fake OpenAI server behind it (tests/fakes/openai_fake.py), which checks
requests the way OpenAI does: it stands in for vendors wherever they speak plain OpenAI. For Azure a small ASGI
front maps Azure's URLs and `api-key` header onto it, recording what Azure would have received.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from click.testing import CliRunner

from unimodel.cli import cli
from unimodel.config import ConfigError, ProviderConfig, Settings, load_settings
from unimodel.gateway import create_app
from unimodel.gateway.catalog import Catalog, Route
from unimodel.protocol import ChatRequest, Message, ModelNotFound, StreamEvent, TextPart, UsageEvent
from unimodel.providers import ADAPTERS, create_adapter
from unimodel.providers.base import SSEMessage
from unimodel.providers.vendors import VENDORS, VendorAdapter, VendorStreamDecoder

from .conftest import OPENAI_KEY, Fake
from .fakes.openai_fake import create_openai_app
from .fakes.script import FakeReply, FakeScript
from .fakes.server import LiveServer

AZURE_KEY = "azure-key-Qp41secretAZUREkey00000000"
DEPLOYMENT = "gpt-4o-mini-prod"


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "unimodel.toml"
    path.write_text(text)
    return path


@pytest.fixture
def start_gateway() -> Iterator[Any]:
    started: list[LiveServer] = []

    def start(settings: Settings) -> LiveServer:
        live = LiveServer(create_app(settings)).start()
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()


def sdk(gateway: LiveServer, provider_key: str | None = OPENAI_KEY) -> openai.OpenAI:
    headers = {"provider-key": provider_key} if provider_key else {}
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="gateway-key", default_headers=headers, max_retries=0)


# ------------------------------------------------------------------------------------ config-defined vendors


def test_a_vendor_defined_in_the_config_routes_to_its_base_url(
    tmp_path: Path, openai_fake: Fake, start_gateway: Any
) -> None:
    config = write_config(
        tmp_path,
        f"""
[providers.acme]
compatible = "openai"
base_url = "{openai_fake.url}/v1"
max_retries = 0
""",
    )
    gateway = start_gateway(load_settings(config))
    openai_fake.script.push(FakeReply(text="Hello from Acme", input_tokens=11, output_tokens=4))
    out = sdk(gateway).chat.completions.create(
        model="acme/acme-large-2",  # no row lists it: an unknown model under a known prefix still routes
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=32,
    )
    assert out.choices[0].message.content == "Hello from Acme"
    assert out.model == "acme/acme-large-2"
    assert out.usage is not None and (out.usage.prompt_tokens, out.usage.completion_tokens) == (11, 4)
    sent = openai_fake.script.last_request
    assert sent.path == "/v1/chat/completions"
    assert sent.header("authorization") == f"Bearer {OPENAI_KEY}"
    assert sent.json["model"] == "acme-large-2"
    assert sent.json["max_completion_tokens"] == 32


def test_a_vendor_defined_in_the_config_streams(tmp_path: Path, openai_fake: Fake, start_gateway: Any) -> None:
    config = write_config(
        tmp_path, f'[providers.acme]\ncompatible = "openai"\nbase_url = "{openai_fake.url}/v1"\nmax_retries = 0\n'
    )
    gateway = start_gateway(load_settings(config))
    openai_fake.script.push(FakeReply(text="one two three", input_tokens=5, output_tokens=3))
    stream = sdk(gateway).chat.completions.create(
        model="acme/acme-large-2",
        messages=[{"role": "user", "content": "Count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert openai_fake.script.last_request.json["stream_options"] == {"include_usage": True}


def test_a_config_vendor_declares_its_quirks_in_the_same_keys_as_a_row(
    tmp_path: Path, openai_fake: Fake, start_gateway: Any
) -> None:
    config = write_config(
        tmp_path,
        f"""
[providers.acme]
compatible = "openai"
base_url = "{openai_fake.url}/v1"
max_retries = 0
models = ["acme-large-2", "acme-small"]
max_tokens_field = "max_tokens"
stream_usage = false
unsupported = {{ logit_bias = "Acme has no tokenizer-level biasing" }}
""",
    )
    gateway = start_gateway(load_settings(config))
    client = sdk(gateway)
    client.chat.completions.create(model="acme/acme-small", messages=[{"role": "user", "content": "Hi"}], max_tokens=9)
    assert openai_fake.script.last_request.json["max_tokens"] == 9
    assert "max_completion_tokens" not in openai_fake.script.last_request.json

    list(
        client.chat.completions.create(
            model="acme/acme-small", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    )
    assert "stream_options" not in openai_fake.script.last_request.json

    sent_before = len(openai_fake.script.requests)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="acme/acme-small", messages=[{"role": "user", "content": "Hi"}], logit_bias={"1": -100}
        )
    assert info.value.body["message"] == (  # type: ignore[index]
        "Parameter 'logit_bias' is not supported by provider 'acme': Acme has no tokenizer-level biasing. "
        "Remove it or choose another model."
    )
    assert len(openai_fake.script.requests) == sent_before  # refused before anything was sent

    listed = {m.id for m in client.models.list()}
    assert {"acme/acme-large-2", "acme/acme-small", "groq/llama-3.3-70b-versatile", "openai/gpt-4o"} <= listed


def test_the_environment_can_add_a_vendor(
    monkeypatch: pytest.MonkeyPatch, openai_fake: Fake, start_gateway: Any
) -> None:
    monkeypatch.setenv("UNIMODEL_PROVIDERS__ACME__COMPATIBLE", "openai")
    monkeypatch.setenv("UNIMODEL_PROVIDERS__ACME__BASE_URL", openai_fake.url + "/v1")
    gateway = start_gateway(load_settings())
    out = sdk(gateway).chat.completions.create(model="acme/m", messages=[{"role": "user", "content": "Hi"}])
    assert out.choices[0].message.content == "Hi"  # the fake echoes the last user text
    assert openai_fake.script.last_request.json["model"] == "m"


def test_upstream_errors_name_the_vendor(tmp_path: Path, openai_fake: Fake, start_gateway: Any) -> None:
    config = write_config(
        tmp_path, f'[providers.acme]\ncompatible = "openai"\nbase_url = "{openai_fake.url}/v1"\nmax_retries = 0\n'
    )
    gateway = start_gateway(load_settings(config))
    with pytest.raises(openai.AuthenticationError) as info:
        sdk(gateway, provider_key="sk-wrong-key-0000").chat.completions.create(
            model="acme/m", messages=[{"role": "user", "content": "Hi"}]
        )
    assert info.value.body["message"].startswith("Provider 'acme' rejected the provider key")  # type: ignore[index]
    assert "sk-wrong-key-0000" not in info.value.message


# ------------------------------------------------------------------------------------------ built-in rows


def test_a_built_in_row_takes_base_url_and_key_from_the_config(openai_fake: Fake, start_gateway: Any) -> None:
    settings = Settings(
        providers={
            "deepseek": ProviderConfig(base_url=openai_fake.url + "/v1", api_key=OPENAI_KEY, max_retries=0),
        }
    )
    gateway = start_gateway(settings)
    out = sdk(gateway, provider_key=None).chat.completions.create(  # the server-held key is used
        model="deepseek/deepseek-chat", messages=[{"role": "user", "content": "Hi"}], max_tokens=20
    )
    assert out.model == "deepseek/deepseek-chat"
    sent = openai_fake.script.last_request.json
    assert sent["model"] == "deepseek-chat"
    assert sent["max_tokens"] == 20  # DeepSeek's name for it; the row says so
    assert "max_completion_tokens" not in sent


def test_a_vendor_refusing_a_parameter_names_it_and_the_vendor(openai_fake: Fake, start_gateway: Any) -> None:
    settings = Settings(providers={"perplexity": ProviderConfig(base_url=openai_fake.url + "/v1", max_retries=0)})
    gateway = start_gateway(settings)
    r = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"provider-key": OPENAI_KEY},
        json={"model": "perplexity/sonar", "messages": [{"role": "user", "content": "Hi"}], "logit_bias": {"1": 5}},
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "unsupported_parameter"
    assert error["message"].startswith("Parameter 'logit_bias' is not supported by provider 'perplexity': ")
    assert openai_fake.script.requests == []


def test_a_vendor_parameter_in_v2_params_reaches_the_vendor(openai_fake: Fake, start_gateway: Any) -> None:
    # The fake checks OpenAI's own parameter set and so refuses xAI's search_parameters with a 400, as OpenAI
    # would; what counts here is the body it recorded, and that the error names the vendor.
    settings = Settings(providers={"xai": ProviderConfig(base_url=openai_fake.url + "/v1", max_retries=0)})
    gateway = start_gateway(settings)
    r = httpx.post(
        gateway.url + "/models/v2/xai/grok-4",
        headers={"provider-key": OPENAI_KEY},
        json={"input": "Hi", "params": {"search_parameters": {"mode": "auto"}}},
    )
    assert openai_fake.script.last_request.json["search_parameters"] == {"mode": "auto"}
    assert r.status_code == 400  # OpenAI (the fake) does not know search_parameters; xAI does
    assert "xai" in r.json()["error"]


def test_azure_without_a_base_url_says_what_to_configure(start_gateway: Any) -> None:
    gateway = start_gateway(Settings())
    r = httpx.post(
        gateway.url + f"/models/v2/azure/{DEPLOYMENT}", headers={"provider-key": AZURE_KEY}, json={"input": "Hi"}
    )
    assert r.status_code == 500
    body = r.json()
    assert body["code"] == "provider_not_configured"
    assert "set base_url under [providers.azure]" in body["error"]


# ------------------------------------------------------------------------------------------------- azure


class AzureFront:
    """Azure OpenAI's URLs and `api-key` header in front of the fake OpenAI app (which speaks /v1, Bearer)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[str, str, dict[str, str]]] = []  # path, query, headers as Azure received them

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            self.seen.append((scope["path"], scope["query_string"].decode(), headers))
            path = scope["path"]
            azure_path = path == "/openai/v1/chat/completions" or (
                path.startswith("/openai/deployments/") and path.endswith("/chat/completions")
            )
            if azure_path and "api-key" in headers:
                rest = [(k, v) for k, v in scope["headers"] if k.lower() not in (b"api-key", b"authorization")]
                key = headers["api-key"].encode()
                scope = {
                    **scope,
                    "path": "/v1/chat/completions",
                    "raw_path": b"/v1/chat/completions",
                    "query_string": b"",
                    "headers": [*rest, (b"authorization", b"Bearer " + key)],
                }
        await self.app(scope, receive, send)


@pytest.fixture
def azure_fake() -> Iterator[tuple[AzureFront, FakeScript, LiveServer]]:
    script = FakeScript(api_key=AZURE_KEY)
    front = AzureFront(create_openai_app(script))
    with LiveServer(front) as server:
        yield front, script, server


@pytest.mark.parametrize(
    ("api_version", "path", "query"),
    [
        (None, "/openai/v1/chat/completions", ""),
        ("2024-10-21", f"/openai/deployments/{DEPLOYMENT}/chat/completions", "api-version=2024-10-21"),
    ],
    ids=["v1", "dated-api-version"],
)
def test_azure_deployments_through_the_openai_sdk(
    tmp_path: Path,
    azure_fake: tuple[AzureFront, FakeScript, LiveServer],
    start_gateway: Any,
    api_version: str | None,
    path: str,
    query: str,
) -> None:
    front, script, server = azure_fake
    version_line = f'api_version = "{api_version}"\n' if api_version else ""
    config = write_config(tmp_path, f'[providers.azure]\nbase_url = "{server.url}"\nmax_retries = 0\n{version_line}')
    gateway = start_gateway(load_settings(config))
    script.push(FakeReply(text="Hello from Azure"))
    client = sdk(gateway, provider_key=AZURE_KEY)
    out = client.chat.completions.create(
        model=f"azure/{DEPLOYMENT}", messages=[{"role": "user", "content": "Hi"}], max_tokens=16
    )
    assert out.choices[0].message.content == "Hello from Azure"
    assert out.model == f"azure/{DEPLOYMENT}"
    seen_path, seen_query, seen_headers = front.seen[-1]
    assert (seen_path, seen_query) == (path, query)
    assert seen_headers["api-key"] == AZURE_KEY
    assert "authorization" not in seen_headers
    assert script.last_request.json["model"] == DEPLOYMENT

    stream = client.chat.completions.create(
        model=f"azure/{DEPLOYMENT}", messages=[{"role": "user", "content": "Say two words"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Say two words"
    assert front.seen[-1][:2] == (path, query)


# ------------------------------------------------------------------------------------------ config errors


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            '[providers.acme]\ncompatible = "anthropic"\nbase_url = "https://api.acme.ai/v1"\n',
            'compatible = "anthropic" is not an OpenAI-compatible kind unimodel knows; use one of "openai", "azure"',
        ),
        (
            '[providers.acme]\nbase_url = "https://api.acme.ai/v1"\n',
            "unknown provider 'acme'",
        ),
        ('[providers.acme]\ncompatible = "openai"\n', "[providers.acme]: base_url is required"),
        ('[providers.anthropic]\nmax_tokens_field = "max_tokens"\n', "only apply to OpenAI-compatible vendors"),
        ('[providers.groq]\ncompatible = "openai"\n', "'groq' is a built-in vendor"),
        ('[providers.groq]\nunsupported = ["logit_bais"]\n', "unsupported names 'logit_bais'"),
        ('[providers.groq]\napi_version = "2024-10-21"\n', "groq's URL has no {api_version}"),
        ('[providers.azure]\napi_key = "k"\n', "[providers.azure]: base_url is required"),
        ('[providers."acme/eu"]\ncompatible = "openai"\nbase_url = "https://x"\n', "the name 'acme/eu' must be"),
    ],
    ids=[
        "unknown-compatible",
        "unknown-provider",
        "no-base-url",
        "vendor-key-on-adapter",
        "compatible-on-row",
        "typo-in-unsupported",
        "api-version-without-placeholder",
        "azure-without-endpoint",
        "slash-in-name",
    ],
)
def test_config_errors_say_which_table_and_why(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write_config(tmp_path, table))
    assert message in str(info.value)


def test_check_config_reports_an_unknown_compatible_kind(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[providers.acme]\ncompatible = "antropic"\nbase_url = "https://x"\n')
    result = CliRunner().invoke(cli, ["check-config", "--config", str(config)])
    assert result.exit_code == 2
    assert 'compatible = "antropic" is not an OpenAI-compatible kind' in result.output


def test_a_second_azure_resource_copies_the_azure_row(tmp_path: Path) -> None:
    settings = load_settings(
        write_config(
            tmp_path,
            '[providers.azure-eu]\ncompatible = "azure"\nbase_url = "https://eu-res.openai.azure.com"\n',
        )
    )
    adapter = create_adapter("azure-eu", settings.provider("azure-eu"))
    upstream = adapter.build_request(ChatRequest("dep-1", (Message("user", (TextPart("Hi"),)),)), "k")
    assert upstream.url == "https://eu-res.openai.azure.com/openai/v1/chat/completions"
    assert upstream.headers == {"api-key": "k"}
    assert adapter.name == "azure-eu"


# --------------------------------------------------------------------------------------- rows and catalog


def test_vendors_are_rows_not_modules() -> None:
    assert not set(VENDORS) & set(ADAPTERS)
    for name in VENDORS:
        assert importlib.util.find_spec(f"unimodel.providers.{name}") is None, f"{name} has a code module"
        adapter = create_adapter(name, ProviderConfig(base_url="https://example.test"))
        assert isinstance(adapter, VendorAdapter)
        assert adapter.name == name


def test_the_catalog_routes_every_vendor_prefix_and_lists_row_models() -> None:
    catalog = Catalog({"acme": ProviderConfig(compatible="openai", base_url="https://x", models=["a1"])})
    assert catalog.resolve("together/meta-llama/Llama-3.3-70B-Instruct-Turbo") == Route(
        "together", "meta-llama/Llama-3.3-70B-Instruct-Turbo"
    )
    assert catalog.resolve("groq/a-model-released-tomorrow") == Route("groq", "a-model-released-tomorrow")
    assert catalog.resolve("acme/anything") == Route("acme", "anything")
    with pytest.raises(ModelNotFound):
        catalog.resolve("nobody/model")
    ids = catalog.closed_model_ids()
    assert {"acme/a1", "deepseek/deepseek-reasoner", "perplexity/sonar", "openai/gpt-4o"} <= set(ids)
    assert not any(i.startswith("azure/") for i in ids)  # deployments are the user's own names
    assert catalog.list_models(model_id="xai/grok-9")[0]["modelId"] == "xai/grok-9"


def test_list_models_shows_vendor_models_over_http(start_gateway: Any) -> None:
    gateway = start_gateway(Settings())
    listed = {m["modelId"] for m in httpx.get(gateway.url + "/models/v2/list/models").json()["output"]}
    assert {"groq/llama-3.3-70b-versatile", "perplexity/sonar-pro", "anthropic/claude-sonnet-4-5"} <= listed
    one = httpx.get(gateway.url + "/models/v2/list/models", params={"modelId": "fireworks/new-model"}).json()
    assert [m["modelId"] for m in one["output"]] == ["fireworks/new-model"]


def test_usage_repeated_on_every_chunk_is_reported_once() -> None:
    adapter = create_adapter("perplexity", ProviderConfig())
    decoder = adapter.stream_decoder(None)  # type: ignore[arg-type]
    assert isinstance(decoder, VendorStreamDecoder)
    events: list[StreamEvent] = []
    for text, tokens, finish in [("Hi", 1, None), (" there", 2, None), ("", 2, "stop")]:
        chunk = {
            "id": "x",
            "model": "sonar",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
            "usage": {"prompt_tokens": 5, "completion_tokens": tokens},
        }
        events += decoder.feed(SSEMessage("", httpx.Response(200, json=chunk).text))
    events += decoder.feed(SSEMessage("", "[DONE]"))
    usages = [e for e in events if isinstance(e, UsageEvent)]
    assert [u.usage.output_tokens for u in usages] == [2]
    assert type(events[-1]).__name__ == "Finish"
