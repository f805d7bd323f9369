"""Open models by Hugging Face id: ask the Hub, decide, pull into the standard cache, remember (docs/hub.md).

    hub = HubModels(settings.hub)                  # models.py: the one object the gateway holds
    local = await hub.ensure("Qwen/Qwen2.5-0.5B-Instruct")
    spec = model_config(local)                     # the OpenModelConfig the controller takes

- settings.py   `HubSettings`: `[hub]` over HF_ENDPOINT / HF_TOKEN / HF_HUB_CACHE / HF_HOME / HF_HUB_OFFLINE
- info.py       `RepoInfo`: the Hub's model info, reduced to what deciding needs
- plan.py       `plan_pull(info, …) -> Plan`: task, engine, files — pure, the rules in its docstring
- client.py     `HubClient`: model info and plans from the Hub, errors mapped (blocking)
- pull.py       `Pulls` / `Pull` / `PullProgress`: the download, once per process and per machine
- local.py      `LocalCatalog` / `LocalModel` / `model_config`: what is pulled, without the network
- models.py     `HubModels`: the above for an async caller
- errors.py     the status and code of every failure
"""

from __future__ import annotations

from .client import HubClient
from .info import HubFile, RepoInfo
from .local import LocalCatalog, LocalModel, model_config
from .models import HubModels
from .plan import Plan, PlannedFile, PlanPolicy, check_allowed, check_repo_id, format_bytes, plan_pull
from .pull import Pull, PullProgress, Pulls
from .settings import HubSettings

__all__ = [
    "HubClient",
    "HubFile",
    "HubModels",
    "HubSettings",
    "LocalCatalog",
    "LocalModel",
    "Plan",
    "PlanPolicy",
    "PlannedFile",
    "Pull",
    "PullProgress",
    "Pulls",
    "RepoInfo",
    "check_allowed",
    "check_repo_id",
    "format_bytes",
    "model_config",
    "plan_pull",
]
