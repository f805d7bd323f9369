"""A gateway with the platform on (keys mode, its own store) for the platform tests: the `platform_factory`
fixture (loaded as a pytest plugin by conftest.py), a client for its admin API, and a chat helper."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from unimodel.config import Settings, StoreConfig
from unimodel.gateway import create_app
from unimodel.runtime.backend import LocalBackend, worker_command
from unimodel.store import Store

from .conftest import OPENAI_KEY, Fake
from .fakes.server import LiveServer

FAKE_WORKER = str(Path(__file__).parent / "fakes" / "fake_worker.py")
OPEN_CHAT = "acme/slow-chat"
CHAT = {"messages": [{"role": "user", "content": "Say hello to the platform"}]}


class Platform:
    """A running gateway with its own store, and an admin key to manage it."""

    def __init__(self, live: LiveServer, settings: Settings, admin_key: str) -> None:
        self.live = live
        self.url = live.url
        self.settings = settings
        self.admin = {"authorization": f"Key {admin_key}"}
        self.admin_key = admin_key

    def create_key(self, name: str = "team", **fields: Any) -> tuple[str, str]:
        r = httpx.post(self.url + "/models/v2/admin/keys", json={"name": name, **fields}, headers=self.admin)
        assert r.status_code == 201, r.text
        out = r.json()["output"]
        return out["id"], out["key"]

    def usage(self, key: str, **query: str) -> dict[str, Any]:
        r = httpx.get(self.url + "/models/v2/usage", params=query, headers={"authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
        output: dict[str, Any] = r.json()["output"]
        return output


PlatformFactory = Callable[..., Platform]


@pytest.fixture
def platform_factory(openai_fake: Fake, anthropic_fake: Fake, tmp_path: Path) -> Iterator[PlatformFactory]:
    started: list[LiveServer] = []

    def start(**overrides: Any) -> Platform:
        base = {"max_retries": 0, "read_timeout_s": 10.0}
        config: dict[str, Any] = {
            "auth": {"mode": "keys", "cache_ttl_s": 0.2},
            "store": {"data_dir": str(tmp_path / "data"), "flush_interval_s": 0.05},
            "providers": {
                "openai": {**base, "base_url": openai_fake.url + "/v1"},
                "anthropic": {**base, "base_url": anthropic_fake.url},
            },
            "runtime": {"default_models": False, "log_dir": str(tmp_path / "logs"), "tick_s": 0.2},
            "models": [
                {
                    "id": OPEN_CHAT,
                    "task": "chat",
                    "max_instances": 1,
                    "instance_concurrency": 4,
                    "idle_timeout_s": 60,
                    "engine_args": {"load_s": 0.1, "delay_s": 0.6},
                }
            ],
        }
        for section, values in overrides.items():
            config[section] = {**config.get(section, {}), **values} if isinstance(values, dict) else values
        settings = Settings(**config)
        settings.store = StoreConfig(**config["store"])  # this test's own store (the environment names a shared one)
        store = Store.open(settings.store)
        admin = store.create_key("admin", admin=True).secret
        command = functools.partial(worker_command, program=[sys.executable, FAKE_WORKER])
        backend = LocalBackend(settings.runtime, command_for=command)
        live = LiveServer(create_app(settings, backend=backend, store=store)).start()
        started.append(live)
        return Platform(live, settings, admin)

    yield start
    for live in started:
        live.stop(timeout_s=20)


@pytest.fixture
def platform(platform_factory: PlatformFactory) -> Platform:
    return platform_factory()


def chat(
    p: Platform, key: str | None, model: str = "openai/gpt-4o", provider_key: str | None = OPENAI_KEY, **extra: Any
) -> httpx.Response:
    headers = {}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    if provider_key is not None:
        headers["provider-key"] = provider_key
    return httpx.post(
        p.url + "/v1/chat/completions", json={"model": model, **CHAT, **extra}, headers=headers, timeout=30
    )
