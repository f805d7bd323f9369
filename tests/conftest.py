"""Shared fixtures: fake providers and the gateway itself, each a real HTTP server on loopback."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from unimodel.config import ProviderConfig, Settings
from unimodel.gateway import create_app

from .fakes.anthropic_fake import create_anthropic_app
from .fakes.openai_fake import create_openai_app
from .fakes.script import FakeScript
from .fakes.server import LiveServer

# Real PostgreSQL and Redis servers for the store and limit tests, started once per session when first asked for;
# a gateway with the platform on (keys mode, its own store).
pytest_plugins = [
    "tests.fixtures_pg",
    "tests.fixtures_redis",
    "tests.fixtures_podman",
    "tests.fixtures_ray",
    "tests.platform_helpers",
]

# Every app a test creates keeps its SQLite store and secret key in a throwaway folder, never in ~/.local/share.
os.environ.setdefault("UNIMODEL_STORE__DATA_DIR", tempfile.mkdtemp(prefix="unimodel-test-store-"))
# No test reaches the real Hugging Face Hub: gateways are offline (a model configured without a path is then
# loaded by id, as the fake workers are), with an empty cache of this run's own. The Hub tests drop the override
# and give their gateways a fake Hub. (Not HF_HUB_OFFLINE: huggingface_hub reads that once, at import.)
os.environ.setdefault("UNIMODEL_HUB__OFFLINE", "true")
os.environ.setdefault("HF_HUB_CACHE", tempfile.mkdtemp(prefix="unimodel-test-hf-cache-"))

OPENAI_KEY = "sk-proj-test-Zx81secretOPENAIkey0000"
ANTHROPIC_KEY = "sk-ant-api03-test-Qw77secretANTHROPICkey"


class Fake:
    def __init__(self, script: FakeScript, server: LiveServer) -> None:
        self.script = script
        self.server = server

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
def openai_fake() -> Iterator[Fake]:
    script = FakeScript(api_key=OPENAI_KEY)
    with LiveServer(create_openai_app(script)) as server:
        yield Fake(script, server)


@pytest.fixture
def anthropic_fake() -> Iterator[Fake]:
    script = FakeScript(api_key=ANTHROPIC_KEY)
    with LiveServer(create_anthropic_app(script)) as server:
        yield Fake(script, server)


GatewayFactory = Callable[..., LiveServer]


@pytest.fixture
def gateway_factory(openai_fake: Fake, anthropic_fake: Fake) -> Iterator[GatewayFactory]:
    """Start a gateway whose providers point at the fakes; keyword arguments override provider settings."""
    started: list[LiveServer] = []

    def start(server: dict[str, Any] | None = None, **provider_overrides: Any) -> LiveServer:
        base = {"max_retries": 0, "read_timeout_s": 10.0}
        settings = Settings(
            server=server or {},
            providers={
                "openai": ProviderConfig(**{**base, "base_url": openai_fake.url + "/v1", **provider_overrides}),
                "anthropic": ProviderConfig(**{**base, "base_url": anthropic_fake.url, **provider_overrides}),
            },
        )
        live = LiveServer(create_app(settings)).start()
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()


@pytest.fixture
def gateway(gateway_factory: GatewayFactory) -> LiveServer:
    return gateway_factory()
