"""Metrics stay bounded and private: caller-chosen model ids never become label values, and `/metrics` needs an
admin key when keys are on (or its own port, or `[metrics] access = "public"`)."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx

from .conftest import OPENAI_KEY, GatewayFactory
from .platform_helpers import Platform, PlatformFactory
from .served import free_port, serve


def _chat(url: str, model: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        headers={"provider-key": OPENAI_KEY, **(headers or {})},
    )


def _label_values(text: str) -> set[str]:
    return {line.split('model="', 1)[1].split('"', 1)[0] for line in text.splitlines() if 'model="' in line}


def test_unlisted_model_ids_share_one_label_per_provider(gateway_factory: GatewayFactory) -> None:
    url = gateway_factory().url
    before = _label_values(httpx.get(url + "/metrics").text)  # the registry is this test process's
    invented = [f"openai/gpt-{secrets.token_hex(100)}" for _ in range(30)]
    for model in invented:
        _chat(url, model)
    _chat(url, "openai/gpt-4o")  # a listed model keeps its own label
    httpx.post(url + "/models/v2/nobody/" + secrets.token_hex(50), json={"input": "x"})  # unknown provider
    text = httpx.get(url + "/metrics").text
    assert not any(model in text for model in invented)
    assert 'model="openai/other"' in text and 'model="openai/gpt-4o"' in text
    assert _label_values(text) - before <= {"openai/gpt-4o", "openai/other", "-"}


def test_metrics_need_an_admin_key_when_keys_are_on(platform: Platform) -> None:
    assert httpx.get(platform.url + "/metrics").status_code == 401
    _, key = platform.create_key()
    r = httpx.get(platform.url + "/metrics", headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 403 and "admin key" in r.json()["error"]
    r = httpx.get(platform.url + "/metrics", headers=platform.admin)
    assert r.status_code == 200 and "unimodel_requests_total" in r.text


def test_public_metrics_when_configured(platform_factory: PlatformFactory) -> None:
    p = platform_factory(metrics={"access": "public"})
    assert httpx.get(p.url + "/metrics").status_code == 200


def test_metrics_on_their_own_port(tmp_path: Path) -> None:
    port = free_port()
    with serve(tmp_path, f'[auth]\nmode = "keys"\n[metrics]\nport = {port}\n') as served:
        assert httpx.get(served.url + "/metrics").status_code == 401  # the API port still needs an admin key
        r = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert r.status_code == 200 and "unimodel_requests_total" in r.text


def test_a_metrics_port_in_use_refuses_to_start(tmp_path: Path) -> None:
    import socket
    import subprocess

    from .served import UNIMODEL

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "unimodel.toml"
        config.write_text(
            f'[server]\nport = {free_port()}\n[store]\ndata_dir = "{tmp_path}"\n[runtime]\ndefault_models = false\n'
            f"[metrics]\nport = {port}\n"
        )
        result = subprocess.run(
            [*UNIMODEL, "serve", "--config", str(config)], capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 2
    assert "[metrics] port" in result.stderr
