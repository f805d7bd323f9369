"""Which backend serves a model id, and what `list/models` shows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..protocol import ModelNotFound
from ..providers import ADAPTERS


@dataclass(frozen=True, slots=True)
class Route:
    provider: str
    model: str


class Catalog:
    """Routes `provider/model` ids to closed providers. (Open models join the catalog with the runtime.)"""

    def __init__(self, providers: list[str] | None = None) -> None:
        self.providers = sorted(providers if providers is not None else ADAPTERS)

    def resolve(self, model_id: str) -> Route:
        provider, sep, model = model_id.partition("/")
        if not sep or not model or provider not in self.providers:
            raise ModelNotFound(model_id)
        return Route(provider, model)

    def closed_model_ids(self) -> list[str]:
        return [f"{p}/{m}" for p in self.providers for m in ADAPTERS[p].info.models]

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
