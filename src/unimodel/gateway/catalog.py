"""Which backend serves a model id, and what `list/models` shows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import ProviderConfig
from ..protocol import ModelNotFound
from ..providers.registry import provider_models, provider_names


@dataclass(frozen=True, slots=True)
class Route:
    provider: str
    model: str


class Catalog:
    """Routes `provider/model` ids to closed providers. (Open models join the catalog with the runtime.)

    Every provider name is a prefix: the adapter modules, the OpenAI-compatible vendor rows, and the vendors the
    config adds (`providers`: the config's `[providers.<name>]` tables). A model a provider does not list still
    routes; the provider says whether it exists.
    """

    def __init__(self, providers: Mapping[str, ProviderConfig] | None = None) -> None:
        configured = providers or {}
        self._models = {name: provider_models(name, configured.get(name)) for name in provider_names(configured)}
        self.providers = sorted(self._models)

    def resolve(self, model_id: str) -> Route:
        provider, sep, model = model_id.partition("/")
        if not sep or not model or provider not in self.providers:
            raise ModelNotFound(model_id)
        return Route(provider, model)

    def closed_model_ids(self) -> list[str]:
        return [f"{p}/{m}" for p in self.providers for m in self._models[p]]

    def list_models(self, task: str | None = None, model_id: str | None = None) -> list[dict[str, Any]]:
        if task is not None and task not in self.tasks():
            return []
        if model_id is not None:
            try:
                self.resolve(model_id)
            except ModelNotFound:
                return []
            return [_closed_entry(model_id)]
        return [_closed_entry(m) for m in self.closed_model_ids()]

    def tasks(self) -> list[str]:
        return ["chat"]


def _closed_entry(model_id: str) -> dict[str, Any]:
    return {"modelId": model_id, "task": "chat", "params": None, "ramRequired": None, "meter": None, "meterPrice": None}
