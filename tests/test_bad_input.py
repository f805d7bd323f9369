"""Bad input gets a clear error with a status, a stable code and a message naming what to fix."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .conftest import OPENAI_KEY, Fake, GatewayFactory
from .fakes.server import LiveServer

V2 = "/models/v2/openai/gpt-4o-mini"
OAI = "/v1/chat/completions"
KEY = {"provider-key": OPENAI_KEY}


def post(gateway: LiveServer, path: str, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        gateway.url + path,
        content=content,
        headers={"content-type": "application/json", **(KEY if headers is None else headers)},
    )


@pytest.mark.parametrize(
    ("body", "status", "code", "names"),
    [
        (b"{", 400, "invalid_request", "not valid JSON"),
        (b"[]", 400, "invalid_request", "expected a JSON object"),
        (b"{}", 400, "invalid_request", "input"),
        (b'{"input": ""}', 400, "invalid_request", "input"),
        (b'{"messages": []}', 400, "invalid_request", "messages"),
        (b'{"input": [{"role": "robot", "content": "hi"}]}', 400, "invalid_request", "input[0].role"),
        (b'{"input": [{"role": "user", "content": 5}]}', 400, "invalid_request", "input[0].content"),
        (b'{"input": [{"role": "user"}]}', 400, "invalid_request", "messages[0]"),
        (b'{"input": "hi", "params": {"temperature": "hot"}}', 400, "invalid_request", "params.temperature"),
        (b'{"input": "hi", "params": {"max_new_tokens": "x"}}', 400, "invalid_request", "params.max_new_tokens"),
        (b'{"input": "hi", "params": {"temperature": -1}}', 400, "invalid_request", "params.temperature"),
        (b'{"input": "hi", "params": {"num_beams": 4}}', 400, "unsupported_parameter", "'num_beams'"),
        (b'{"input": "hi", "params": {"top_k": 4}}', 400, "unsupported_parameter", "'top_k'"),
        (b'{"input": "hi", "stream": "yes"}', 400, "invalid_request", "stream"),
        (b'{"input": "hi", "params": {"tool_choice": "required"}}', 400, "invalid_request", "tools"),
    ],
)
def test_v2_bad_body_is_a_400_naming_the_field(
    gateway: LiveServer, openai_fake: Fake, body: bytes, status: int, code: str, names: str
) -> None:
    r = post(gateway, V2, body)
    assert r.status_code == status, r.text
    payload = r.json()
    assert payload["output"] is None
    assert payload["code"] == code
    assert names in payload["error"]
    assert openai_fake.script.requests == []  # nothing reached the provider


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b'{"model": "openai/gpt-4o-mini"}', "messages"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "model"),
        (b'{"model": "openai/gpt-4o-mini", "messages": []}', "messages"),
        (b'{"model": "openai/gpt-4o-mini", "messages": [{"role": "wizard", "content": "hi"}]}', "messages[0].role"),
        (b'{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "n": "two"}', "n"),
        (
            b'{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream_options": {}}',
            "stream_options",
        ),
        (b'{"model": "openai/gpt-4o-mini", "messages": [{"role": "tool", "content": "42"}]}', "tool_call_id"),
    ],
)
def test_openai_bad_body_is_a_400_in_openai_error_shape(gateway: LiveServer, body: bytes, names: str) -> None:
    r = post(gateway, OAI, body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert names in err["message"]


def test_unsupported_parameter_names_parameter_and_provider(gateway: LiveServer) -> None:
    body = b'{"model": "anthropic/claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}], "seed": 7}'
    r = post(gateway, OAI, body, {"provider-key": "x"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "unsupported_parameter"
    assert err["param"] == "seed"
    assert "'seed'" in err["message"] and "'anthropic'" in err["message"]


def test_unknown_model_is_a_404_with_the_catalog_message(gateway: LiveServer) -> None:
    r = post(gateway, "/models/v2/nobody/some-model", b'{"input": "hi"}')
    assert r.status_code == 404
    assert r.json() == {
        "error": "Model does not exist or has yet to be added to the catalog.",
        "output": None,
        "code": "model_not_found",
    }
    r = post(gateway, OAI, b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}')
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found"


def test_missing_provider_key_is_a_401_saying_which_header_to_send(gateway: LiveServer) -> None:
    r = post(gateway, V2, b'{"input": "hi"}', headers={})
    assert r.status_code == 401
    assert r.json()["code"] == "missing_provider_key"
    assert "'provider-key' header" in r.json()["error"]
    r = post(
        gateway, OAI, b'{"model": "anthropic/claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]}', {}
    )
    assert r.status_code == 401
    assert "provider-key" in r.json()["error"]["message"]


def test_server_held_key_is_used_when_the_caller_sends_none(gateway_factory: GatewayFactory, openai_fake: Fake) -> None:
    gw = gateway_factory(api_key=OPENAI_KEY)
    r = post(gw, V2, b'{"input": "hi"}', headers={})
    assert r.status_code == 200, r.text
    assert openai_fake.script.last_request.header("authorization") == f"Bearer {OPENAI_KEY}"


def test_body_over_the_limit_is_a_413(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(server={"max_body_bytes": 2048})
    big = b'{"input": "' + b"a" * 4096 + b'"}'
    r = post(gw, V2, big)
    assert r.status_code == 413
    assert r.json()["code"] == "payload_too_large"
    assert "2048" in r.json()["error"]

    def chunks() -> Iterator[bytes]:
        yield b'{"input": "'
        for _ in range(8):
            yield b"a" * 512
        yield b'"}'

    r = httpx.post(gw.url + V2, content=chunks(), headers={"content-type": "application/json", **KEY})
    assert r.status_code == 413


def test_default_body_limit_is_20_mb(gateway: LiveServer) -> None:
    big = b'{"input": "' + b"a" * (20 * 1024 * 1024 + 1) + b'"}'
    r = post(gateway, V2, big)
    assert r.status_code == 413


def test_unknown_routes_and_methods_answer_in_the_surface_error_shape(gateway: LiveServer) -> None:
    r = httpx.get(gateway.url + "/models/v2/openai/gpt-4o")  # cluster status: a closed model has none
    assert r.status_code == 404
    assert "no cluster" in r.json()["error"]
    r = httpx.delete(gateway.url + "/healthz")
    assert r.status_code == 405
    assert r.json()["code"] == "method_not_allowed" and "GET" in r.json()["error"]
    r = httpx.post(gateway.url + "/nowhere")
    assert r.status_code == 404
    assert r.json()["output"] is None and "/nowhere" in r.json()["error"]
    r = httpx.get(gateway.url + "/v1/chat/completions")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"
