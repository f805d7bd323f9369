"""Which adapter serves which provider name. The only place that lists providers."""

from __future__ import annotations

from collections.abc import Mapping

from ..config import ProviderConfig
from .anthropic import AnthropicAdapter
from .base import ProviderAdapter
from .cohere import CohereAdapter
from .google import GoogleAdapter
from .mistral import MistralAdapter
from .openai import OpenAIAdapter
from .vendors import VENDORS, adapter_class, create_vendor_adapter, given_vendor_keys, vendor_problems, vendor_row

ADAPTERS: dict[str, type[ProviderAdapter]] = {
    "openai": OpenAIAdapter,
    "anthropic": AnthropicAdapter,
    "google": GoogleAdapter,
    "cohere": CohereAdapter,
    "mistral": MistralAdapter,
}


# OpenAI-compatible vendors are data, not modules: rows of vendors.toml (VENDORS), or config tables with
# `compatible` (see vendors.py).


def provider_names(providers: Mapping[str, ProviderConfig] | None = None) -> list[str]:
    """Every provider a model id can name: the adapter modules, the vendor rows, and the vendors `providers`
    (the config's tables) adds with `compatible`."""
    added = {name for name, cfg in (providers or {}).items() if cfg.compatible}
    return sorted({*ADAPTERS, *VENDORS, *added})


def create_adapter(name: str, config: ProviderConfig) -> ProviderAdapter:
    """The adapter for provider `name`. Raises KeyError for a name that is no provider."""
    adapter = ADAPTERS.get(name)
    if adapter is not None:
        return adapter(config)
    return create_vendor_adapter(name, config)


def provider_models(name: str, config: ProviderConfig | None = None) -> tuple[str, ...]:
    """The model names the catalog lists for a provider (any other name under its prefix still routes)."""
    adapter = ADAPTERS.get(name)
    if adapter is not None:
        return adapter.info.models
    return vendor_row(name, config or ProviderConfig()).models


def provider_embedding_models(name: str) -> tuple[str, ...]:
    """The embedding models the catalog lists for a provider (its adapter's; the vendor rows list none)."""
    adapter = ADAPTERS.get(name)
    return adapter.info.embedding_models if adapter is not None else ()


def provider_task_models(name: str, config: ProviderConfig | None = None) -> dict[str, str]:
    """The provider's listed models of tasks other than chat, each with its task (PROTOCOL.md's task names)."""
    adapter = ADAPTERS.get(name)
    info = adapter.info if adapter is not None else adapter_class(vendor_row(name, config or ProviderConfig())).info
    return {
        **dict.fromkeys(info.embedding_models, "feature-extraction"),
        **dict.fromkeys(info.image_models, "text-to-image"),
        **dict.fromkeys(info.transcription_models, "automatic-speech-recognition"),
        **dict.fromkeys(info.speech_models, "text-to-speech"),
    }


def config_problems(name: str, config: ProviderConfig) -> list[str]:
    """Why the config's `[providers.<name>]` table cannot be used, one sentence each (empty when it can)."""
    where = f"[providers.{name}]"
    vendor_keys = sorted(given_vendor_keys(config))
    if name in ADAPTERS:
        if vendor_keys:
            return [
                f"{where}: {', '.join(vendor_keys)} only apply to OpenAI-compatible vendors, and '{name}' is a "
                "provider with an adapter of its own (to add a vendor, give it a new name)"
            ]
        return []
    if name in VENDORS and config.compatible is not None:
        return [f"{where}: '{name}' is a built-in vendor; drop compatible and set only the keys to change"]
    if name not in VENDORS and config.compatible is None:
        known = ", ".join(provider_names())
        return [
            f"{where}: unknown provider '{name}' (known: {known}); to add an OpenAI-compatible vendor, set "
            'compatible = "openai" and its base_url'
        ]
    return [f"{where}: {problem}" for problem in vendor_problems(name, config)]
