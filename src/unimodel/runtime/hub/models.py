"""`HubModels`: what the gateway calls to serve a model by its Hugging Face id (async; one per process).

    hub = HubModels(settings.hub)
    local = hub.local("Qwen/Qwen2.5-0.5B-Instruct")      # LocalModel | None, no network
    plan = await hub.resolve("Qwen/Qwen2.5-0.5B-Instruct")  # Plan, or a 4xx/5xx UnimodelError
    pull = hub.pull(plan)                                 # Pull (the running one for the same plan)
    pull.progress()                                       # PullProgress
    local = await pull.wait()                             # LocalModel
    spec = model_config(local)                            # OpenModelConfig for the controller

or all of it in one call, once per id however many requests ask at the same time:

    local = await hub.ensure("Qwen/Qwen2.5-0.5B-Instruct")    # local, else resolve + pull
    spec = await hub.configured(table)                        # a [[models]] table with no path → its spec

`local`, `list`, `pull` and `pulling` only read a few files and may run on the event loop; `remove` scans the
cache (huggingface_hub's cache manager) and blocks: call it with `asyncio.to_thread` from async code.

Offline (`[hub] offline`, HF_HUB_OFFLINE) only local models are served; others are a 503 naming the setting.
A local model is served whatever `[hub] allow` says now (allow decides what may be pulled). Who may make the
server pull (`[hub] pull`: admin keys or any key) is the gateway's to check before calling `ensure`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path

from ...config import HubConfig, OpenModelConfig
from ...protocol.errors import UnimodelError
from .client import HubClient
from .errors import offline
from .local import LocalCatalog, LocalModel, model_config
from .plan import Plan, check_repo_id
from .pull import Pull, Pulls, free_bytes
from .settings import DEFAULT_TIMEOUT_S, HubSettings


class HubModels:
    def __init__(
        self,
        config: HubConfig,
        *,
        environ: Mapping[str, str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        free: Callable[[Path], int] = free_bytes,
    ) -> None:
        self.settings = HubSettings.resolve(config, environ, timeout_s=timeout_s)
        self.client = HubClient(self.settings)
        self.catalog = LocalCatalog(self.settings.cache_dir)
        self.pulls = Pulls(self.settings, self.catalog, free=free)
        self._ensuring: dict[tuple[str, str | None, str | None], asyncio.Task[LocalModel]] = {}

    def warm_up(self) -> None:
        """Import huggingface_hub ahead of the first pull (about 0.1 s a first call would otherwise wait); for a
        background thread. Nothing when offline or not installed."""
        if self.settings.offline:
            return
        try:
            import huggingface_hub.file_download  # noqa: F401 - the import is the point
            from huggingface_hub import HfApi  # noqa: F401
        except ImportError:
            return

    def local(self, model_id: str, *, revision: str | None = None, file: str | None = None) -> LocalModel | None:
        """The pulled model (whole, matching `revision` and `file` when given), without the network."""
        return self.catalog.get(model_id, revision=revision, file=file)

    def list(self) -> list[LocalModel]:
        return self.catalog.list()

    async def resolve(self, model_id: str, *, revision: str | None = None, file: str | None = None) -> Plan:
        """Ask the Hub and decide (task, engine, files); nothing is downloaded."""
        return await asyncio.to_thread(self.client.plan, model_id, revision=revision, file=file)

    def pull(self, plan: Plan) -> Pull:
        """Start pulling `plan` (or join the pull of it already running)."""
        return self.pulls.start(plan)

    def pulling(self, model_id: str) -> Pull | None:
        """The pull of `model_id` running now, for its progress."""
        return self.pulls.find(model_id)

    async def ensure(self, model_id: str, *, revision: str | None = None, file: str | None = None) -> LocalModel:
        """The model on this machine: local already, else resolved and pulled. Concurrent calls for the same id
        share one resolve and one pull; a caller cancelled while waiting does not cancel them."""
        check_repo_id(model_id)
        found = self.local(model_id, revision=revision, file=file)
        if found is not None:
            return found
        if self.settings.offline:
            raise offline(model_id, self.settings)
        key = (model_id.lower(), revision, file)
        task = self._ensuring.get(key)
        if task is None:
            task = asyncio.ensure_future(self._resolve_and_pull(model_id, revision, file))
            self._ensuring[key] = task
            task.add_done_callback(lambda t: self._settled(key, t))
        return await asyncio.shield(task)

    async def configured(self, table: OpenModelConfig) -> OpenModelConfig:
        """A `[[models]]` table: as it is when it has a path (or runs a command); else its Hub model, pulled if
        need be, as the spec the controller takes (the table's own settings kept)."""
        if table.path is not None or table.engine == "command":
            return table
        local = await self.ensure(table.id, revision=table.revision, file=table.file)
        return model_config(local, table)

    def remove(self, model_id: str) -> int:
        """Delete a pulled model's files; the bytes freed. 409 while it is being pulled, 404 when not pulled."""
        if self.pulling(model_id) is not None:
            raise UnimodelError(
                f"'{model_id}' is being pulled; remove it once the pull has ended.", status=409, code="pull_in_progress"
            )
        return self.catalog.remove(model_id)

    def _settled(self, key: tuple[str, str | None, str | None], task: asyncio.Task[LocalModel]) -> None:
        if self._ensuring.get(key) is task:
            del self._ensuring[key]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone

    async def _resolve_and_pull(self, model_id: str, revision: str | None, file: str | None) -> LocalModel:
        plan = await self.resolve(model_id, revision=revision, file=file)
        return await self.pull(plan).wait()
