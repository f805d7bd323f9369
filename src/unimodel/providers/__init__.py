"""Closed providers: one adapter per provider (a parameter table plus hooks) and the HTTP client."""

from .base import ProviderAdapter, UpstreamRequest
from .client import ProviderClient
from .registry import ADAPTERS, create_adapter, provider_names

__all__ = [
    "ADAPTERS",
    "ProviderAdapter",
    "ProviderClient",
    "UpstreamRequest",
    "create_adapter",
    "provider_names",
]
