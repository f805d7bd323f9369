"""The Anthropic Messages surface when things go wrong: bad input is a 400 in Anthropic's error body naming the
field, upstream faults get Anthropic's statuses (Claude's own answers pass as they are), a stream that fails
midway ends with an `error` event the SDK raises, keys never show, and gateway keys work in `x-api-key`."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from unimodel.config import Settings
from unimodel.gateway import create_app
from unimodel.gateway.auth import gateway_key
from unimodel.gateway.catalog import Route
from unimodel.gateway.dispatch import bare_name

from .conftest import ANTHROPIC_KEY, OPENAI_KEY
from .fakes.anthropic_fake import create_anthropic_app
from .fakes.openai_fake import create_openai_app
from .fakes.script import FakeReply, FakeScript
from .fakes.server import LiveServer
from .platform_helpers import Platform

MAX_BODY = 100_000
KEYS = {"provider-key": OPENAI_KEY, "anthropic-version": "2023-06-01"}
HI = [{"role": "user", "content": "hi"}]


class Upstreams:
    def __init__(self) -> None:
        self.openai = FakeScript(api_key=OPENAI_KEY)
        self.anthropic = FakeScript(api_key=ANTHROPIC_KEY)
        self.servers = [
            LiveServer(create_openai_app(self.openai)).start(),
            LiveServer(create_anthropic_app(self.anthropic)).start(),
        ]
        base = {"max_retries": 0, "read_timeout_s": 10.0}
        settings = Settings(
            server={"max_body_bytes": MAX_BODY},
            providers={
                "openai": {**base, "base_url": self.servers[0].url + "/v1"},
                "anthropic": {**base, "base_url": self.servers[1].url},
            },
        )
        self.gateway = LiveServer(create_app(settings)).start()

    def client(self, provider_key: str = OPENAI_KEY) -> anthropic.Anthropic:
        return anthropic.Anthropic(
            base_url=self.gateway.url, api_key="gw", default_headers={"provider-key": provider_key}, max_retries=0
        )

    def post(self, body: Any, headers: dict[str, str] | None = None, path: str = "/v1/messages") -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.post(
            self.gateway.url + path,
            content=content,
            headers={"content-type": "application/json", **(KEYS if headers is None else headers)},
        )


@pytest.fixture(scope="module")
def up() -> Iterator[Upstreams]:
    u = Upstreams()
    yield u
    u.gateway.stop()
    for server in u.servers:
        server.stop()


@pytest.fixture
def ups(up: Upstreams) -> Iterator[Upstreams]:
    yield up
    for script in (up.openai, up.anthropic):
        script.replies.clear()
        script.requests.clear()


def body_of(**fields: Any) -> dict[str, Any]:
    return {"model": "openai/gpt-4o-mini", "max_tokens": 50, "messages": HI, **fields}


def image(source: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "image", "source": source}]}


BAD_INPUT: list[tuple[str, Any, str]] = [
    ("not json", b"{", "not valid JSON"),
    ("not an object", b"[1]", "body: expected a JSON object"),
    ("no model", {"max_tokens": 5, "messages": HI}, "model: this field is required"),
    ("bad model id", body_of(model="a b"), "is not a valid model id"),
    ("no max_tokens", {"model": "openai/gpt-4o-mini", "messages": HI}, "max_tokens: this field is required"),
    ("max_tokens a string", body_of(max_tokens="50"), "max_tokens: Input should be a valid integer"),
    ("max_tokens zero", body_of(max_tokens=0), "max_tokens: Input should be greater than or equal to 1"),
    ("unknown field", body_of(frobnicate=1), "frobnicate: unknown field"),
    ("stream not a bool", body_of(stream="yes"), "stream: Input should be a valid boolean"),
    ("no messages", body_of(messages=[]), "messages: at least one message is required"),
    ("system role", body_of(messages=[{"role": "system", "content": "x"}]), "messages[0].role: Input should be"),
    ("content a number", body_of(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
    ("text block without text", body_of(messages=[{"role": "user", "content": [{"type": "text"}]}]), "content[0].text"),
    (
        "image type",
        body_of(messages=[image({"type": "base64", "media_type": "image/bmp", "data": "AA=="})]),
        "messages[0].content[0].source.media_type",
    ),
    ("image source", body_of(messages=[image({"type": "zip"})]), "messages[0].content[0].source: expected a source"),
    (
        "files api image",
        body_of(messages=[image({"type": "file", "file_id": "file_1"})]),
        "served for Claude models only",
    ),
    (
        "tool_use from the user",
        body_of(messages=[{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]),
        "messages[0].content[0]: `tool_use` blocks can only be in `assistant` messages",
    ),
    (
        "a document for a model other than Claude",
        body_of(messages=[{"role": "user", "content": [{"type": "document", "source": {}}]}]),
        "messages[0].content[0].type: `document` blocks are served for Claude models only",
    ),
    ("unknown block", body_of(messages=[{"role": "user", "content": [{"type": "video"}]}]), "'video' is not a content"),
    (
        "a server tool",
        body_of(tools=[{"type": "web_search_20250305", "name": "web_search"}]),
        "tools[0].type: 'web_search_20250305' is a tool Anthropic runs for Claude models",
    ),
    ("tool schema", body_of(tools=[{"name": "f", "input_schema": {"type": "string"}}]), "tools[0].input_schema"),
    ("tool name", body_of(tools=[{"name": "no spaces", "input_schema": {"type": "object"}}]), "tools[0].name"),
    (
        "tool_choice names no tool",
        body_of(tools=[{"name": "f", "input_schema": {"type": "object"}}], tool_choice={"type": "tool", "name": "g"}),
        "tool_choice: tool 'g' not found in tools",
    ),
    ("tool_choice any without tools", body_of(tool_choice={"type": "any"}), "requires tools to be provided"),
    ("temperature", body_of(temperature=1.5), "temperature: Input should be less than or equal to 1"),
    ("a field only Claude takes", body_of(container="c1"), "container: served for Claude models only"),
    ("thinking budget", body_of(thinking={"type": "enabled", "budget_tokens": 10}), "thinking.budget_tokens"),
    ("blank stop", body_of(stop_sequences=[" "]), "stop_sequences"),
    ("metadata field", body_of(metadata={"session": "x"}), "metadata.session: unknown field"),
    ("a parameter the provider lacks", body_of(top_k=5), "Parameter 'top_k' is not supported by provider 'openai'"),
]


@pytest.mark.parametrize(("body", "names"), [(b, n) for _, b, n in BAD_INPUT], ids=[c for c, *_ in BAD_INPUT])
def test_bad_input_is_a_400_in_anthropics_shape_naming_the_field(ups: Upstreams, body: Any, names: str) -> None:
    r = ups.post(body)
    assert r.status_code == 400, r.text
    error = r.json()
    assert set(error) == {"type", "error"} and error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert names in error["error"]["message"]
    assert ups.openai.requests == []  # nothing reached the provider


def test_claudes_own_validation_comes_back_as_anthropic_wrote_it(ups: Upstreams) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        ups.client(ANTHROPIC_KEY).messages.create(
            model="claude-sonnet-4-5",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"frobnicate": 1},
        )
    assert info.value.body["error"] == {  # type: ignore[index]
        "type": "invalid_request_error",
        "message": "frobnicate: Extra inputs are not permitted",
    }
    assert info.value.body["request_id"].startswith("req_")  # type: ignore[index]


@pytest.mark.parametrize(
    ("reply", "status", "kind", "error_class"),
    [
        (FakeReply(status=429, retry_after=2), 429, "rate_limit_error", anthropic.RateLimitError),
        (FakeReply(status=503), 529, "overloaded_error", anthropic.OverloadedError),
        (FakeReply(status=500), 500, "api_error", anthropic.InternalServerError),
        (FakeReply(status=401), 401, "authentication_error", anthropic.AuthenticationError),
        (FakeReply(status=404), 404, "not_found_error", anthropic.NotFoundError),
    ],
    ids=["429", "503", "500", "401", "404"],
)
def test_upstream_faults_get_anthropics_statuses(
    ups: Upstreams, reply: FakeReply, status: int, kind: str, error_class: type[anthropic.APIStatusError]
) -> None:
    ups.openai.push(reply)
    with pytest.raises(error_class) as info:
        ups.client().messages.create(model="openai/gpt-4o-mini", max_tokens=10, messages=HI)  # type: ignore[arg-type]
    assert info.value.status_code == status
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == kind  # type: ignore[index]
    if reply.retry_after is not None:
        assert info.value.response.headers["retry-after"] == "2"


def test_claudes_errors_pass_with_their_own_status_and_body(ups: Upstreams) -> None:
    ups.anthropic.push(FakeReply(status=529))
    with pytest.raises(anthropic.OverloadedError) as info:
        ups.client(ANTHROPIC_KEY).messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=HI)  # type: ignore[arg-type]
    assert info.value.status_code == 529
    assert info.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}  # type: ignore[index]
    with pytest.raises(anthropic.AuthenticationError) as bad_key:
        ups.client("sk-ant-wrong-provider-key").messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=HI)  # type: ignore[arg-type]
    assert "rejected the provider key" in bad_key.value.body["error"]["message"]  # type: ignore[index]


def test_the_gateways_own_refusals_are_in_anthropics_shape(ups: Upstreams) -> None:
    no_key = ups.post(body_of(), headers={})
    assert no_key.status_code == 401
    assert no_key.json()["error"]["type"] == "authentication_error" and "provider-key" in no_key.text
    unknown = ups.post(body_of(model="nobody/nothing"))
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found_error"
    too_big = ups.post(body_of(messages=[{"role": "user", "content": "x" * MAX_BODY}]))
    assert too_big.status_code == 413 and too_big.json()["error"]["type"] == "request_too_large"
    no_route = ups.post(body_of(), path="/v1/messages/batches")
    assert no_route.status_code == 404 and no_route.json()["type"] == "error"
    wrong_method = httpx.get(ups.gateway.url + "/v1/messages")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["type"] == "invalid_request_error"


def test_a_translated_stream_that_breaks_ends_with_an_error_the_sdk_raises(ups: Upstreams) -> None:
    ups.openai.push(FakeReply(text="one two three four five six", cut_stream_after=3))
    stream = ups.client().messages.stream(model="openai/gpt-4o-mini", max_tokens=50, messages=HI)  # type: ignore[arg-type]
    with pytest.raises(anthropic.APIStatusError) as info, stream as events:
        for _ in events:
            pass
    assert info.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    assert "stream" in info.value.body["error"]["message"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (FakeReply(text="a b c d", stream_error="overloaded_error", stream_error_after=3), "overloaded_error"),
        (FakeReply(text="a b c d e f g", cut_stream_after=4), "api_error"),
    ],
    ids=["anthropic's error event", "cut off"],
)
def test_a_claude_stream_that_fails_midway_ends_with_an_error_event(
    ups: Upstreams, reply: FakeReply, kind: str
) -> None:
    ups.anthropic.push(reply)
    seen: list[str] = []
    stream = ups.client(ANTHROPIC_KEY).messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=HI)  # type: ignore[arg-type]
    with pytest.raises(anthropic.APIStatusError) as info, stream as events:
        seen.extend(event.type for event in events)
    assert seen[0] == "message_start"
    assert info.value.body["error"]["type"] == kind  # type: ignore[index]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_no_key_shows_in_errors_or_logs(ups: Upstreams, provider: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key, script = (OPENAI_KEY, ups.openai) if provider == "openai" else (ANTHROPIC_KEY, ups.anthropic)
    model = "openai/gpt-4o-mini" if provider == "openai" else "claude-sonnet-4-5"
    script.push(FakeReply(status=400, echo_headers=True))
    r = ups.post(body_of(model=model), headers={"provider-key": key, "x-api-key": "sk-gateway-secret-123456"})
    assert r.status_code == 400
    assert key not in r.text and "sk-gateway-secret-123456" not in r.text
    assert "***" in r.text  # the echoed header was there, redacted
    assert key not in caplog.text and "sk-gateway-secret-123456" not in caplog.text


def test_anthropic_version_is_accepted_and_not_required(ups: Upstreams) -> None:
    for version in ({"anthropic-version": "2023-06-01"}, {}):
        r = ups.post(body_of(), headers={"provider-key": OPENAI_KEY, **version})
        assert r.status_code == 200 and r.json()["type"] == "message"


# ------------------------------------------------------------------------------------------- keys mode


def test_a_gateway_key_in_x_api_key_works_with_keys_on(platform: Platform) -> None:
    key_id, key = platform.create_key("claude-code")
    body = {"model": "claude-sonnet-4-5", "max_tokens": 20, "messages": HI}
    r = httpx.post(platform.url + "/v1/messages", json=body, headers={"x-api-key": "not-a-key"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    missing = httpx.post(platform.url + "/v1/messages", json=body)
    assert missing.status_code == 401 and missing.json()["type"] == "error"
    stored = httpx.put(
        f"{platform.url}/models/v2/admin/keys/{key_id}/providers/anthropic",
        json={"key": ANTHROPIC_KEY},
        headers=platform.admin,
    )
    assert stored.status_code == 200, stored.text
    ok = httpx.post(platform.url + "/v1/messages", json=body, headers={"x-api-key": key}, timeout=30)
    assert ok.status_code == 200, ok.text  # the stored Anthropic key was used
    sdk = anthropic.Anthropic(base_url=platform.url, api_key=key, max_retries=0)  # sends Authorization: Bearer
    assert sdk.messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=HI).type == "message"  # type: ignore[arg-type]
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(records) < 2:
        records = platform.usage(key)["records"]
        time.sleep(0.1)
    assert {r["model"] for r in records} == {"anthropic/claude-sonnet-4-5"}
    assert all(r["inputTokens"] and r["outputTokens"] for r in records)


# ------------------------------------------------------------------------------------------------ units


@pytest.mark.parametrize(
    ("model_id", "route"),
    [
        ("claude-sonnet-4-5", Route("anthropic", "claude-sonnet-4-5")),
        ("claude-3-5-haiku-latest", Route("anthropic", "claude-3-5-haiku-latest")),
        ("acme/claude-tuned", None),
        ("gpt-4o", None),
    ],
)
def test_a_bare_claude_name_is_anthropics(model_id: str, route: Route | None) -> None:
    assert bare_name(model_id) == route


def test_the_gateway_key_comes_from_x_api_key_when_authorization_is_absent() -> None:
    assert gateway_key({"x-api-key": " um_abc "}) == "um_abc"
    assert gateway_key({"authorization": "Bearer um_1", "x-api-key": "um_2"}) == "um_1"
    assert gateway_key({"x-api-key": ""}) is None
