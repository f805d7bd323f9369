"""Which adapter serves which provider name. The only place that lists providers."""

from __future__ import annotations

from ..config import ProviderConfig
from .anthropic import AnthropicAdapter
from .base import ProviderAdapter
from .openai import OpenAIAdapter

ADAPTERS: dict[str, type[ProviderAdapter]] = {
    "openai": OpenAIAdapter,
    "anthropic": AnthropicAdapter,
}


def provider_names() -> list[str]:
    return sorted(ADAPTERS)


def create_adapter(name: str, config: ProviderConfig) -> ProviderAdapter:
    return ADAPTERS[name](config)
