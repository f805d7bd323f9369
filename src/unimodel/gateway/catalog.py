"""Which backend serves a model id, and what `list/models` shows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..config import ProviderConfig
from ..protocol import ModelNotFound
from ..protocol.model_ids import check_model_id
from ..providers.registry import provider_models, provider_names, provider_task_models


@dataclass(frozen=True, slots=True)
class Route:
    provider: str
    model: str


class OpenModelsView(Protocol):
    """The open models served now (runtime/catalog.py); models pulled by id join while the server runs."""

    def canonical(self, model_id: str) -> str | None: ...

    def tasks(self) -> dict[str, str]: ...


class _NoOpenModels:
    def canonical(self, model_id: str) -> str | None:
        return None

    def tasks(self) -> dict[str, str]:
        return {}


class Catalog:
    """Routes `provider/model` ids to closed providers, and lists them with the open models.

    Every provider name is a prefix: the adapter modules, the OpenAI-compatible vendor rows, and the vendors the
    config adds (`providers`: the config's `[providers.<name>]` tables). A model a provider does not list still
    routes; the provider says whether it exists.
    """

    def __init__(
        self, providers: Mapping[str, ProviderConfig] | None = None, open_models: OpenModelsView | None = None
    ) -> None:
        self.open = open_models or _NoOpenModels()
        configured = providers or {}
        self._models = {name: provider_models(name, configured.get(name)) for name in provider_names(configured)}
        # each provider's listed models of other tasks (embeddings, images, speech), with the task
        self._tasks = {name: provider_task_models(name, configured.get(name)) for name in self._models}
        self.providers = sorted(self._models)
        self._closed = frozenset(self.closed_model_ids())

    def listed(self, model_id: str) -> bool:
        """Whether the catalog names this model (an open model served now, or a closed one its provider's row
        lists): a set an operator bounds, unlike the ids callers may send."""
        return model_id in self._closed or self.open.canonical(model_id) == model_id

    def resolve(self, model_id: str) -> Route:
        """The provider route of a closed model id; a 400 for an id that is not well-formed, a 404 for one no
        provider prefix claims."""
        check_model_id(model_id)
        provider, sep, model = model_id.partition("/")
        if not sep or not model or provider not in self.providers:
            raise ModelNotFound(model_id)
        return Route(provider, model)

    def closed_task(self, route: Route) -> str:
        """A closed model's task: the one its provider lists it under (feature-extraction, text-to-image,
        automatic-speech-recognition, text-to-speech), else chat."""
        return self._tasks.get(route.provider, {}).get(route.model, "chat")

    def embedding_hint(self, provider: str) -> str | None:
        """The provider's embedding models to use instead, for an error message; None when it lists none."""
        return self.task_hint(provider, "feature-extraction", "embedding")

    def task_hint(self, provider: str, task: str, what: str) -> str | None:
        """`its <what> models: p/a, p/b.` for the provider's listed models of `task`; None when it lists none."""
        models = sorted(m for m, t in self._tasks.get(provider, {}).items() if t == task)
        if not models:
            return None
        return f"its {what} models: " + ", ".join(f"{provider}/{m}" for m in models) + "."

    def closed_model_ids(self) -> list[str]:
        """The chat models and the other tasks' models the providers list, as `provider/model` ids."""
        return [f"{p}/{m}" for p in self.providers for m in (*self._models[p], *sorted(self._tasks[p]))]

    def list_models(self, task: str | None = None, model_id: str | None = None) -> list[dict[str, Any]]:
        open_models = self.open.tasks()
        entries = [_open_entry(m, t) for m, t in open_models.items()]
        if model_id is not None:
            model_id = self.open.canonical(model_id) or model_id
            if model_id not in open_models:
                try:
                    self.resolve(model_id)
                except ModelNotFound:
                    return []
                entries = [_closed_entry(model_id, self.closed_task(self.resolve(model_id)))]
            entries = [e for e in entries if e["modelId"] == model_id]
        else:
            entries += [_closed_entry(m, self.closed_task(self.resolve(m))) for m in self.closed_model_ids()]
        return [e for e in entries if task is None or e["task"] == task]

    def tasks(self) -> list[str]:
        closed = {task for models in self._tasks.values() for task in models.values()}
        return sorted({"chat", *closed, *self.open.tasks().values()})


def _open_entry(model_id: str, task: str) -> dict[str, Any]:
    return {"modelId": model_id, "task": task, "params": None, "ramRequired": None, "meter": "cpu", "meterPrice": None}


def _closed_entry(model_id: str, task: str) -> dict[str, Any]:
    return {"modelId": model_id, "task": task, "params": None, "ramRequired": None, "meter": None, "meterPrice": None}
