"""No provider key leaves the gateway inside an upstream's answer.

A provider, or a debugging proxy in front of it, may echo the request's headers in an error — the
`Authorization` / `x-api-key` / `x-goog-api-key` header with the key unimodel sent, possibly a server-held one.
The fakes do that on request (`FakeReply(echo_headers=True)`), over real HTTP, for HTTP errors and for error
events inside a stream; the gateway's answers and its logs must show `***` where the keys were.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from unimodel.config import ProviderConfig, Settings
from unimodel.gateway import create_app
from unimodel.protocol import ChatRequest, Message, StreamError, TextPart, UnimodelError
from unimodel.providers import ProviderClient
from unimodel.providers.client import REDACTED, redact_error, secret_forms
from unimodel.providers.google import GoogleAdapter
from unimodel.providers.openai import OpenAIAdapter

from .fakes.anthropic_fake import create_anthropic_app
from .fakes.google_fake import create_google_app
from .fakes.openai_fake import create_openai_app
from .fakes.script import FakeReply, FakeScript
from .fakes.server import LiveServer

SERVER_KEYS = {
    "openai": "sk-proj-SERVERHELD-openai-4f1c2a9e77",
    "anthropic": "sk-ant-api03-SERVERHELD-anthropic-8d3b",
    "google": "AIzaSy-SERVERHELD-google-0c5e91d2aa",
}
CALLER_KEYS = {
    "openai": "sk-proj-CALLERS-own-openai-77aa01",
    "anthropic": "sk-ant-api03-CALLERS-own-anthropic-5e",
    "google": "AIzaSy-CALLERS-own-google-3b9f0c",
}
OTHER_SERVER_KEY = "mistral-SERVERHELD-key-never-sent-91ab"  # configured for a provider these requests never use
MODELS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "google": "google/gemini-2.5-flash",
}
STREAM_ERRORS = {"openai": "server_error", "anthropic": "overloaded_error", "google": "INTERNAL"}
EVERY_KEY = (*SERVER_KEYS.values(), *CALLER_KEYS.values(), OTHER_SERVER_KEY)
CHAT = [{"role": "user", "content": "Tell me about lighthouses"}]


def assert_no_key(text: str) -> None:
    for key in EVERY_KEY:
        assert key not in text
        assert key[:16] not in text  # not even a cut-off prefix


class Upstreams:
    def __init__(self) -> None:
        self.scripts = {name: FakeScript() for name in SERVER_KEYS}  # any key is accepted: both kinds get through
        self.servers = {
            "openai": LiveServer(create_openai_app(self.scripts["openai"])),
            "anthropic": LiveServer(create_anthropic_app(self.scripts["anthropic"])),
            "google": LiveServer(create_google_app(self.scripts["google"])),
        }

    def base_url(self, name: str) -> str:
        url = self.servers[name].url
        return url + "/v1" if name == "openai" else url


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    ups = Upstreams()
    for server in ups.servers.values():
        server.start()
    yield ups
    for server in ups.servers.values():
        server.stop()


@pytest.fixture(scope="module")
def gateway(upstreams: Upstreams) -> Iterator[LiveServer]:
    base = {"max_retries": 0, "read_timeout_s": 10.0}
    providers: dict[str, Any] = {
        name: ProviderConfig(**base, base_url=upstreams.base_url(name), api_key=SERVER_KEYS[name])
        for name in SERVER_KEYS
    }
    providers["mistral"] = ProviderConfig(api_key=OTHER_SERVER_KEY)
    with LiveServer(create_app(Settings(providers=providers))) as live:
        yield live


@pytest.fixture(autouse=True)
def fresh_scripts(upstreams: Upstreams) -> None:
    for script in upstreams.scripts.values():
        script.clear()


def key_headers(provider: str, whose: str) -> dict[str, str]:
    return {"provider-key": CALLER_KEYS[provider]} if whose == "caller" else {}


def sent_key(upstreams: Upstreams, provider: str) -> str:
    """The key the fake received, from the header the provider reads it from."""
    headers = upstreams.scripts[provider].last_request.headers
    return headers.get("x-goog-api-key") or headers.get("x-api-key") or headers["authorization"].removeprefix("Bearer ")


@pytest.mark.parametrize("whose", ["server", "caller"])
@pytest.mark.parametrize(("status", "answered"), [(400, 400), (401, 401), (500, 502)])
@pytest.mark.parametrize("provider", ["openai", "anthropic", "google"])
def test_an_upstream_error_echoing_the_request_headers_shows_no_key_on_either_surface_or_in_the_logs(
    gateway: LiveServer,
    upstreams: Upstreams,
    caplog: pytest.LogCaptureFixture,
    provider: str,
    status: int,
    answered: int,
    whose: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    leaky = FakeReply(status=status, echo_headers=True, error_message=f"Proxy token {OTHER_SERVER_KEY} rejected.")
    upstreams.scripts[provider].push(leaky, leaky)
    headers = key_headers(provider, whose)
    v2 = httpx.post(f"{gateway.url}/models/v2/{MODELS[provider]}", json={"messages": CHAT}, headers=headers, timeout=30)
    oai = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": MODELS[provider], "messages": CHAT},
        headers=headers,
        timeout=30,
    )
    expected = SERVER_KEYS[provider] if whose == "server" else CALLER_KEYS[provider]
    assert sent_key(upstreams, provider) == expected  # the fake did get, and so echo, that key
    assert v2.status_code == oai.status_code == answered, (v2.text, oai.text)
    for message in (v2.json()["error"], oai.json()["error"]["message"]):
        assert f"Proxy token {REDACTED} rejected." in message
        assert f'"{REDACTED}"' in message or f'"Bearer {REDACTED}"' in message  # the echoed key header, redacted
        assert f"'{provider}'" in message  # still says who answered
    assert_no_key(v2.text)
    assert_no_key(oai.text)
    assert_no_key(caplog.text)


@pytest.mark.parametrize("whose", ["server", "caller"])
@pytest.mark.parametrize("provider", ["openai", "anthropic", "google"])
def test_an_error_event_echoing_the_request_headers_mid_stream_shows_no_key_on_either_surface_or_in_the_logs(
    gateway: LiveServer, upstreams: Upstreams, caplog: pytest.LogCaptureFixture, provider: str, whose: str
) -> None:
    caplog.set_level(logging.DEBUG)
    leaky = FakeReply(
        text="one two three four five six",
        stream_error=STREAM_ERRORS[provider],
        stream_error_after=2,
        echo_headers=True,
        error_message=f"Proxy token {OTHER_SERVER_KEY} expired.",
    )
    upstreams.scripts[provider].push(leaky, leaky)
    headers = key_headers(provider, whose)
    oai = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": MODELS[provider], "messages": CHAT, "stream": True},
        headers=headers,
        timeout=30,
    )
    v2 = httpx.post(
        f"{gateway.url}/models/v2/{MODELS[provider]}",
        json={"messages": CHAT, "stream": True},
        headers=headers,
        timeout=30,
    )
    assert oai.status_code == v2.status_code == 200
    last = [line for line in oai.text.splitlines() if line.startswith("data: ")][-1]
    error = json.loads(last.removeprefix("data: "))["error"]
    assert f"Proxy token {REDACTED} expired." in error["message"]
    logged = [r.getMessage() for r in caplog.records if "stream ended early" in r.getMessage()]
    assert logged and f"Proxy token {REDACTED} expired." in logged[-1]  # the v2 stream can only log it
    assert_no_key(oai.text)
    assert_no_key(v2.text)
    assert_no_key(caplog.text)


# ---- the error object itself: provider_body, nested JSON text, stream events ----


def ask(stream: bool = False) -> ChatRequest:
    return ChatRequest(model="gemini-2.5-flash", messages=(Message("user", (TextPart("hi"),)),), stream=stream)


@pytest.fixture
def google_client(upstreams: Upstreams) -> Iterator[Callable[[], ProviderClient]]:
    made: list[ProviderClient] = []

    def make() -> ProviderClient:
        config = ProviderConfig(base_url=upstreams.base_url("google"), max_retries=0, api_key=SERVER_KEYS["google"])
        client = ProviderClient(GoogleAdapter(config), secrets=[OTHER_SERVER_KEY])
        made.append(client)
        return client

    yield make


async def test_the_provider_body_keeps_its_shape_with_keys_redacted_inside_nested_json_text(
    upstreams: Upstreams, google_client: Callable[[], ProviderClient]
) -> None:
    upstreams.scripts["google"].push(FakeReply(status=400, echo_headers=True))
    client = google_client()
    try:
        with pytest.raises(UnimodelError) as caught:
            await client.complete(ask(), CALLER_KEYS["google"])
    finally:
        await client.aclose()
    body = caught.value.provider_body
    assert isinstance(body, dict)
    assert body["error"]["status"] == "INVALID_ARGUMENT"
    (debug,) = [d for d in body["error"]["details"] if d["@type"].endswith("DebugInfo")]
    echoed = json.loads(debug["detail"])  # still valid JSON: the key was replaced inside the text
    assert echoed["x-goog-api-key"] == REDACTED
    assert_no_key(json.dumps(body))
    assert_no_key(str(caught.value))


async def test_a_stream_error_event_keeps_its_provider_body_with_keys_redacted(
    upstreams: Upstreams, google_client: Callable[[], ProviderClient]
) -> None:
    upstreams.scripts["google"].push(FakeReply(text="a b c d e f", stream_error="INTERNAL", echo_headers=True))
    client = google_client()
    try:
        events = [event async for event in await client.stream(ask(stream=True), SERVER_KEYS["google"])]
    finally:
        await client.aclose()
    error = events[-1]
    assert isinstance(error, StreamError)
    assert error.error.status == 502
    assert REDACTED in error.error.message
    assert_no_key(error.error.message)
    assert_no_key(json.dumps(error.error.provider_body))


def plain_text_upstream(text: str) -> Starlette:
    """An upstream (or a proxy before it) that answers errors as plain text, not JSON."""

    async def chat(request: Request) -> PlainTextResponse:
        return PlainTextResponse(text.format(key=request.headers["authorization"]), status_code=502)

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


async def test_a_plain_text_error_body_is_cut_to_length_only_after_redaction() -> None:
    # The key straddles the 500th character: cutting first would keep its first half.
    template = "x" * 480 + " upstream said no to {key} and more"
    with LiveServer(plain_text_upstream(template)) as upstream:
        config = ProviderConfig(base_url=upstream.url + "/v1", max_retries=0)
        client = ProviderClient(OpenAIAdapter(config))
        try:
            with pytest.raises(UnimodelError) as caught:
                await client.complete(ask(), CALLER_KEYS["openai"])
        finally:
            await client.aclose()
    body = caught.value.provider_body
    assert isinstance(body, str)
    assert body == ("x" * 480 + f" upstream said no to Bearer {REDACTED} and more")[:500]
    assert "sk-proj-CALLERS" not in body


@pytest.mark.parametrize(
    "shown",
    [
        "k3y/with+plus=and%20more",  # as given
        "k3y%2Fwith%2Bplus%3Dand%2520more",  # percent-encoded, e.g. echoed in a URL
    ],
)
def test_a_key_is_redacted_as_given_and_percent_encoded(shown: str) -> None:
    error = UnimodelError(f"upstream saw key={shown}", provider_body={"seen": [f"key={shown}"]})
    redact_error(error, secret_forms(["k3y/with+plus=and%20more"]))
    assert error.message == f"upstream saw key={REDACTED}"
    assert error.args == (error.message,)
    assert error.provider_body == {"seen": [f"key={REDACTED}"]}


def test_a_key_is_redacted_json_escaped_inside_json_text() -> None:
    key = 'tok"en\\with-quote'
    error = UnimodelError("x", provider_body={"detail": json.dumps({"authorization": key})})
    redact_error(error, secret_forms([key]))
    body = error.provider_body
    assert isinstance(body, dict)
    assert json.loads(body["detail"]) == {"authorization": REDACTED}


def test_strings_too_short_to_be_keys_are_left_alone() -> None:
    error = UnimodelError("the key 'abc' and the word test stay")
    redact_error(error, secret_forms(["abc", "test", ""]))
    assert error.message == "the key 'abc' and the word test stay"


def echoing_upstream() -> Starlette:
    """An OpenAI-compatible upstream (or a proxy) whose successful answer repeats the caller's Authorization."""
    from starlette.responses import JSONResponse

    async def chat(request: Request) -> JSONResponse:
        said = f"you sent {request.headers['authorization']}"
        return JSONResponse(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-4o",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": said}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4},
                "debug": {"headers": dict(request.headers)},
            }
        )

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


async def test_a_successful_answer_echoing_a_key_shows_it_nowhere() -> None:
    with LiveServer(echoing_upstream()) as upstream:
        config = ProviderConfig(base_url=upstream.url + "/v1", max_retries=0, api_key=SERVER_KEYS["openai"])
        client = ProviderClient(OpenAIAdapter(config))
        try:
            result = await client.complete(ask(), SERVER_KEYS["openai"])
        finally:
            await client.aclose()
    assert result.text == f"you sent Bearer {REDACTED}"
    assert_no_key(json.dumps(result.raw))
