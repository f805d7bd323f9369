"""Upstream failures become clear errors with the right status — never a hang, never a bare 500."""

from __future__ import annotations

import logging
import socket
import time

import httpx
import pytest

from unimodel.config import ProviderConfig, Settings
from unimodel.gateway import create_app

from .conftest import ANTHROPIC_KEY, OPENAI_KEY, Fake, GatewayFactory
from .fakes.script import FakeReply
from .fakes.server import LiveServer

CHAT = {"messages": [{"role": "user", "content": "Tell me a long story about a lighthouse keeper"}]}


def oai(gateway: LiveServer, model: str, key: str, **extra: object) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": model, **CHAT, **extra},
        headers={"provider-key": key},
        timeout=30,
    )


def v2(gateway: LiveServer, model: str, key: str, **extra: object) -> httpx.Response:
    return httpx.post(
        gateway.url + f"/models/v2/{model}", json={"input": "hello", **extra}, headers={"provider-key": key}, timeout=30
    )


@pytest.mark.parametrize(
    ("upstream", "status", "code"),
    [
        (401, 401, "provider_auth_failed"),
        (403, 403, "permission_denied"),
        (404, 404, "upstream_not_found"),
        (429, 429, "rate_limited"),
        (500, 502, "upstream_error"),
        (503, 503, "upstream_unavailable"),
    ],
)
def test_openai_upstream_errors_keep_their_meaning(
    gateway: LiveServer, openai_fake: Fake, upstream: int, status: int, code: str
) -> None:
    openai_fake.script.push(FakeReply(status=upstream, retry_after=7 if upstream == 429 else None))
    r = v2(gateway, "openai/gpt-4o-mini", OPENAI_KEY)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["output"] is None and body["code"] == code
    assert "openai" in body["error"]
    if upstream == 429:
        assert r.headers["retry-after"] == "7"


@pytest.mark.parametrize(
    ("upstream", "status", "code"),
    [
        (401, 401, "provider_auth_failed"),
        (403, 403, "permission_denied"),
        (404, 404, "upstream_not_found"),
        (429, 429, "rate_limited"),
        (500, 502, "upstream_error"),
        (529, 503, "upstream_unavailable"),
    ],
)
def test_anthropic_upstream_errors_keep_their_meaning(
    gateway: LiveServer, anthropic_fake: Fake, upstream: int, status: int, code: str
) -> None:
    anthropic_fake.script.push(FakeReply(status=upstream, retry_after=3 if upstream in (429, 529) else None))
    r = oai(gateway, "anthropic/claude-sonnet-4-5", ANTHROPIC_KEY)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code
    assert "anthropic" in err["message"]
    if upstream in (429, 529):
        assert r.headers["retry-after"] == "3"


def test_wrong_provider_key_is_a_401_from_the_provider(gateway: LiveServer) -> None:
    r = v2(gateway, "openai/gpt-4o-mini", "sk-wrong")
    assert r.status_code == 401
    assert r.json()["code"] == "provider_auth_failed"
    assert "sk-wrong" not in r.text


def test_retries_before_the_first_byte_then_succeeds(gateway_factory: GatewayFactory, openai_fake: Fake) -> None:
    gw = gateway_factory(max_retries=2, retry_backoff_s=0.01)
    openai_fake.script.push(FakeReply(status=503), FakeReply(status=429, retry_after=0), FakeReply(text="third time"))
    r = v2(gw, "openai/gpt-4o-mini", OPENAI_KEY)
    assert r.status_code == 200, r.text
    assert r.json()["output"]["content"] == "third time"
    assert len(openai_fake.script.requests) == 3


def test_retry_after_is_honoured(gateway_factory: GatewayFactory, anthropic_fake: Fake) -> None:
    gw = gateway_factory(max_retries=1, retry_backoff_s=0.01)
    anthropic_fake.script.push(FakeReply(status=529, retry_after=1), FakeReply(text="after the wait"))
    started = time.monotonic()
    r = v2(gw, "anthropic/claude-sonnet-4-5", ANTHROPIC_KEY)
    assert r.status_code == 200
    assert r.json()["output"]["content"] == "after the wait"
    assert time.monotonic() - started >= 0.9


def test_a_retry_after_longer_than_the_cap_is_passed_to_the_client(
    gateway_factory: GatewayFactory, openai_fake: Fake
) -> None:
    gw = gateway_factory(max_retries=3, retry_max_wait_s=2)
    openai_fake.script.push(FakeReply(status=429, retry_after=60))
    r = v2(gw, "openai/gpt-4o-mini", OPENAI_KEY)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "60"
    assert len(openai_fake.script.requests) == 1


def test_client_errors_are_not_retried(gateway_factory: GatewayFactory, openai_fake: Fake) -> None:
    gw = gateway_factory(max_retries=3)
    openai_fake.script.push(FakeReply(status=400))
    r = v2(gw, "openai/gpt-4o-mini", OPENAI_KEY)
    assert r.status_code == 400
    assert len(openai_fake.script.requests) == 1


def test_read_timeout_is_a_504_not_a_hang(gateway_factory: GatewayFactory, openai_fake: Fake) -> None:
    gw = gateway_factory(read_timeout_s=0.5)
    openai_fake.script.push(FakeReply(delay_s=3))
    started = time.monotonic()
    r = v2(gw, "openai/gpt-4o-mini", OPENAI_KEY)
    assert r.status_code == 504
    assert r.json()["code"] == "upstream_timeout"
    assert time.monotonic() - started < 2.5


def test_refused_connection_is_a_502(openai_fake: Fake) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before use: nothing listens there
    settings = Settings(
        providers={
            "openai": ProviderConfig(base_url=f"http://127.0.0.1:{port}/v1", max_retries=1, retry_backoff_s=0.01)
        }
    )
    with LiveServer(create_app(settings)) as gw:
        r = v2(gw, "openai/gpt-4o-mini", OPENAI_KEY)
    assert r.status_code == 502
    assert r.json()["code"] == "upstream_unavailable"
    assert f"127.0.0.1:{port}" in r.json()["error"]


def test_v2_stream_cut_in_the_middle_ends_cleanly_and_logs(
    gateway: LiveServer, openai_fake: Fake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    openai_fake.script.push(FakeReply(text="one two three four five six seven eight", cut_stream_after=3))
    with httpx.stream(
        "POST",
        gateway.url + "/models/v2/openai/gpt-4o-mini",
        json={"input": "hi", "stream": True},
        headers={"provider-key": OPENAI_KEY},
        timeout=10,
    ) as r:
        assert r.status_code == 200
        text = r.read().decode()
    assert text and "eight" not in text
    assert any("stream ended early" in rec.getMessage() for rec in caplog.records)


def test_openai_stream_cut_in_the_middle_ends_with_an_error_event(gateway: LiveServer, anthropic_fake: Fake) -> None:
    anthropic_fake.script.push(FakeReply(text="one two three four five six seven eight", cut_stream_after=4))
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json={"model": "anthropic/claude-sonnet-4-5", "stream": True, **CHAT},
        headers={"provider-key": ANTHROPIC_KEY},
        timeout=10,
    ) as r:
        assert r.status_code == 200
        lines = [line for line in r.iter_lines() if line]
    assert '"error"' in lines[-1]
    assert "[DONE]" not in lines[-1]


def test_stream_error_before_the_first_byte_keeps_its_status(gateway: LiveServer, openai_fake: Fake) -> None:
    openai_fake.script.push(FakeReply(status=429, retry_after=5))
    r = oai(gateway, "openai/gpt-4o-mini", OPENAI_KEY, stream=True)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "5"
    assert r.json()["error"]["type"] == "rate_limit_error"


def test_a_failing_request_does_not_harm_a_concurrent_one(gateway: LiveServer, openai_fake: Fake) -> None:
    import concurrent.futures

    openai_fake.script.push(FakeReply(delay_s=0.3, text="slow and fine"))
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        good = pool.submit(v2, gateway, "openai/gpt-4o-mini", OPENAI_KEY)
        bad = [pool.submit(v2, gateway, "openai/gpt-4o-mini", "sk-bad") for _ in range(3)]
        assert good.result().status_code == 200
        assert good.result().json()["output"]["content"] == "slow and fine"
        assert all(b.result().status_code == 401 for b in bad)


def test_provider_keys_never_reach_the_logs(
    gateway: LiveServer, openai_fake: Fake, anthropic_fake: Fake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    openai_fake.script.push(FakeReply(status=500), FakeReply(text="ok"))
    anthropic_fake.script.push(FakeReply(text="one two three four", cut_stream_after=2), FakeReply(status=401))
    assert v2(gateway, "openai/gpt-4o-mini", OPENAI_KEY).status_code == 502
    assert v2(gateway, "openai/gpt-4o-mini", OPENAI_KEY).status_code == 200
    oai(gateway, "anthropic/claude-sonnet-4-5", ANTHROPIC_KEY, stream=True)
    assert oai(gateway, "anthropic/claude-sonnet-4-5", ANTHROPIC_KEY).status_code == 401
    assert v2(gateway, "openai/gpt-4o-mini", "sk-leaky-but-wrong-key-1234").status_code == 401
    logged = "\n".join(f"{rec.getMessage()} {rec.exc_text or ''}" for rec in caplog.records)
    assert caplog.records, "the failing requests were logged"
    for secret in (OPENAI_KEY, ANTHROPIC_KEY, "sk-leaky-but-wrong-key-1234"):
        assert secret not in logged
