"""Which open models this server serves, and how a model it does not have yet joins: by its Hugging Face id.

    catalog = OpenCatalog(settings, controller, hub)
    catalog.canonical("qwen/qwen2.5-0.5b-instruct")      # "Qwen/Qwen2.5-0.5B-Instruct" once served, else None
    await catalog.adopt("Qwen/Qwen2.5-0.5B-Instruct", may_pull=True)   # asks the Hub; the id it is served under

Served: the `[[models]]` tables, the bundled models, and every model pulled before (its manifest in the
Hugging Face cache, read at start without the network). A table without a `path` names a Hub id, as does a
model called by an id nothing else claims: each becomes a deployment whose `HubSource` (hub/source.py) pulls
the files before its first instance starts, so the call that adopts a model returns as soon as the Hub has said
what it is, and its requests wait in the model's queue while the files come (the cluster status shows the
progress). A pulled model and a model configured by hand become the same spec before the controller sees them.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from ..config import OpenModelConfig, Settings
from ..protocol import InvalidRequest, ModelNotFound, PermissionDenied
from .bundled import bundled_models
from .controller import Controller
from .hub import HubModels, Plan, check_repo_id, format_bytes, model_config
from .hub.source import HubSource

log = logging.getLogger("unimodel.runtime")


def default_models() -> list[OpenModelConfig]:
    """The bundled models `make install` puts on the machine (SmolLM2 chat, all-MiniLM embeddings), if installed."""
    return [
        OpenModelConfig(
            id=m.id, task=m.task, engine=m.engine, path=str(m.path), max_instances=2 if m.task == "chat" else 1
        )
        for m in bundled_models()
    ]


class OpenCatalog:
    def __init__(self, settings: Settings, controller: Controller, hub: HubModels) -> None:
        self.controller = controller
        self.hub = hub
        self._aliases: dict[str, str] = {}  # a Hub model's id, lower-cased → the id it is served under
        self._planning: dict[str, asyncio.Task[Plan]] = {}
        for table in settings.models:
            self._add_configured(table)
        if settings.runtime.default_models:
            for spec in default_models():
                if controller.get(spec.id) is None:
                    controller.add(spec)
        for local in hub.list():  # pulled before: served again, without the network
            if self.canonical(local.id) is None:
                spec = model_config(local)
                self._add(spec, HubSource(hub, spec))
        threading.Thread(target=hub.warm_up, name="hub-warm-up", daemon=True).start()

    def _add_configured(self, table: OpenModelConfig) -> None:
        if table.path is not None or table.engine == "command":
            self.controller.add(table)
            return
        local = self.hub.local(table.id, revision=table.revision, file=table.file)
        self._add(model_config(local, table) if local is not None else table, HubSource(self.hub, table))

    def _add(self, spec: OpenModelConfig, source: HubSource) -> None:
        self.controller.add(spec, source)
        self._aliases[spec.id.lower()] = spec.id

    # -- what is served ------------------------------------------------------------------------------------

    def canonical(self, model_id: str) -> str | None:
        """The id `model_id` is served under (a Hub model's id in any letter case), or None."""
        if model_id in self.controller.deployments:
            return model_id
        return self._aliases.get(model_id.lower())

    def task(self, model_id: str) -> str:
        deployment = self.controller.get(model_id)
        if deployment is None:
            raise ModelNotFound(model_id)
        return deployment.spec.task

    def tasks(self) -> dict[str, str]:
        """Every served model's id → its task."""
        return {model_id: d.spec.task for model_id, d in self.controller.deployments.items()}

    # -- joining -------------------------------------------------------------------------------------------

    async def adopt(self, model_id: str, *, may_pull: bool) -> str:
        """Serve `model_id`, an id no provider and no served model claims, as a Hugging Face model: at once when
        it was pulled before, else once the Hub has said what it is (its files follow before its first instance).
        Returns the id it is served under. Raises ModelNotFound when it cannot name a Hub repo (or the Hub is off
        and it is not here), PermissionDenied when the caller may not make the server pull, and the Hub's
        errors (400 unsupported, 403 not allowed or too large, 404 unknown, 502–504 the Hub failing)."""
        known = self.adopt_local(model_id)
        if known is not None:
            return known
        if self.hub.settings.offline:
            raise ModelNotFound(model_id)
        if not may_pull:
            raise PermissionDenied(
                f"'{model_id}' is not on this server, and pulling a model from the Hugging Face Hub needs an admin "
                f'key here ([hub] pull = "admin"); an admin can run `unimodel pull {model_id}`.',
                code="pull_not_allowed",
            )
        plan = await self._plan(model_id)
        known = self.canonical(model_id)  # another request adopted it while this one asked the Hub
        if known is not None:
            return known
        spec = OpenModelConfig.model_validate({"id": plan.repo_id, "task": plan.task, "engine": plan.engine})
        log.info(
            "model %s: %s on %s, %s to pull (%s)",
            spec.id,
            plan.task,
            plan.engine,
            format_bytes(plan.total_bytes),
            plan.why,
        )
        return self._join(model_id, spec, HubSource(self.hub, spec, plan))

    def adopt_local(self, model_id: str) -> str | None:
        """The id `model_id` is served under when it is served or pulled (joining it), without the network;
        ModelNotFound when it cannot name a Hub repo."""
        known = self.canonical(model_id)
        if known is not None:
            return known
        try:
            check_repo_id(model_id)
        except InvalidRequest:
            raise ModelNotFound(model_id) from None
        local = self.hub.local(model_id)
        if local is None:
            return None
        spec = model_config(local)
        return self._join(model_id, spec, HubSource(self.hub, spec))

    def _join(self, model_id: str, spec: OpenModelConfig, source: HubSource) -> str:
        if self.controller.get(spec.id) is None:
            self._add(spec, source)
        self._aliases[model_id.lower()] = spec.id
        return spec.id

    async def _plan(self, model_id: str) -> Plan:
        """One Hub question per id however many requests ask at once; a cancelled caller does not cancel it."""
        key = model_id.lower()
        task = self._planning.get(key)
        if task is None:
            task = self._planning[key] = asyncio.ensure_future(self.hub.resolve(model_id))
            task.add_done_callback(lambda t: self._planned(key, t))
        return await asyncio.shield(task)

    def _planned(self, key: str, task: asyncio.Task[Plan]) -> None:
        if self._planning.get(key) is task:
            del self._planning[key]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone
