"""Open mode (no keys, loopback only) answers requests addressed to a loopback name and refuses browsers on other
sites: a cross-site `text/plain` POST and DNS rebinding must not spend the server-held key or read answers."""

from __future__ import annotations

import httpx
import pytest

from .conftest import OPENAI_KEY, Fake, GatewayFactory
from .platform_helpers import PlatformFactory

CHAT = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def held_key_gateway(gateway_factory: GatewayFactory) -> str:
    """An open-mode gateway holding the OpenAI key itself: a caller needs no key of any kind."""
    return gateway_factory(api_key=OPENAI_KEY).url


def test_loopback_names_and_addresses_are_answered(held_key_gateway: str) -> None:
    port = httpx.URL(held_key_gateway).port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}", "app.localhost"):
        r = httpx.post(held_key_gateway + "/v1/chat/completions", json=CHAT, headers={"host": host})
        assert r.status_code == 200, (host, r.text)


def test_a_foreign_host_is_refused_before_anything_runs(held_key_gateway: str, openai_fake: Fake) -> None:
    for path in ("/v1/chat/completions", "/models/v2/usage", "/metrics", "/models/v2/list/models"):
        method = "POST" if "chat" in path else "GET"
        r = httpx.request(method, held_key_gateway + path, json=CHAT, headers={"host": "rebound.attacker.example"})
        assert r.status_code == 403, (path, r.text)
    body = r.json()
    assert body["code"] == "host_not_allowed" and "allowed_hosts" in body["error"]
    assert openai_fake.script.requests == []


def test_a_cross_site_text_plain_post_is_refused(held_key_gateway: str, openai_fake: Fake) -> None:
    import json

    port = httpx.URL(held_key_gateway).port
    r = httpx.post(
        held_key_gateway + "/v1/chat/completions",
        content=json.dumps(CHAT),
        headers={"content-type": "text/plain", "origin": "https://evil.example", "host": f"127.0.0.1:{port}"},
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in r.headers
    r = httpx.get(held_key_gateway + "/models/v2/list/models", headers={"sec-fetch-site": "cross-site"})
    assert r.status_code == 403 and r.json()["code"] == "origin_not_allowed"
    assert openai_fake.script.requests == []


def test_a_same_origin_browser_request_is_answered(held_key_gateway: str) -> None:
    port = httpx.URL(held_key_gateway).port
    r = httpx.post(
        held_key_gateway + "/v1/chat/completions",
        json=CHAT,
        headers={"origin": f"http://127.0.0.1:{port}", "sec-fetch-site": "same-origin"},
    )
    assert r.status_code == 200, r.text


def test_configured_hosts_and_origins_are_allowed_with_cors(gateway_factory: GatewayFactory) -> None:
    url = gateway_factory(
        {"allowed_hosts": ["gateway.lan"], "cors_origins": ["https://app.example.com"]}, api_key=OPENAI_KEY
    ).url
    r = httpx.post(url + "/v1/chat/completions", json=CHAT, headers={"host": "gateway.lan:8080"})
    assert r.status_code == 200, r.text
    preflight = httpx.options(
        url + "/v1/chat/completions",
        headers={
            "origin": "https://app.example.com",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type, authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
    r = httpx.post(url + "/v1/chat/completions", json=CHAT, headers={"origin": "https://app.example.com"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "x-request-id" in r.headers["access-control-expose-headers"]
    r = httpx.post(url + "/v1/chat/completions", json=CHAT, headers={"origin": "https://other.example.com"})
    assert r.status_code == 403


def test_keys_mode_does_not_check_the_host(platform_factory: PlatformFactory) -> None:
    p = platform_factory()
    _, key = p.create_key()
    r = httpx.get(
        p.url + "/models/v2/list/models", headers={"host": "api.example.com", "authorization": f"Bearer {key}"}
    )
    assert r.status_code == 200


def test_config_rejects_malformed_hosts_and_origins() -> None:
    from unimodel.config import ServerConfig

    with pytest.raises(ValueError, match="not an origin"):
        ServerConfig(cors_origins=["app.example.com/path"])
    with pytest.raises(ValueError, match="not a host name"):
        ServerConfig(allowed_hosts=["http://gateway.lan"])
