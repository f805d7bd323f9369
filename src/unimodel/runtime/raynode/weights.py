"""The node side: a model's files on the node that runs its instance.

The gateway names the files as its machine sees them. A path inside a Hugging Face cache
(`…/models--<org>--<name>/snapshots/<commit>[/<file>]`, what a model pulled by its Hub id becomes) names the same
snapshot in this node's own cache (`HF_HUB_CACHE` / `HF_HOME` where the node runs, or `[hub] cache_dir`): used
when it is there, else pulled here, pinned to that commit, by runtime/hub (the same pull as the gateway's, with
this node's own `HF_TOKEN` for gated repos — the gateway's token is never sent). Any other path must exist on the
node as it is (the same path on every node that may run the model, e.g. a shared volume).

Standard library at import; the configuration and the Hub client only for a snapshot path.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Any

__all__ = ["SNAPSHOT", "WeightsMissing", "on_this_node"]

SNAPSHOT = re.compile(r"^(?P<cache>.*)/models--(?P<repo>[^/]+)/snapshots/(?P<commit>[0-9a-f]{40})(?:/(?P<file>.+))?$")


class WeightsMissing(FileNotFoundError):
    """The model's files are not on this node and cannot be had here."""


def on_this_node(model_id: str, path: str | None, file: str | None, hub: dict[str, Any] | None) -> str | None:
    """The model's `path` on this node, pulling a Hub snapshot into this node's cache when it is not there (None:
    the model has no path: loaded by id, or a command engine's own business). `hub`: the gateway's `[hub]` table
    less its token and cache (None: as this node's environment says)."""
    if path is None:
        return None
    match = SNAPSHOT.match(path)
    if match is None:
        if not os.path.exists(path):
            raise WeightsMissing(
                f"model '{model_id}': {path} does not exist on this node ({_node()}); put it at the same path "
                "on every node that may run the model (a shared volume), or name the model by its Hugging Face id "
                "(its files are then pulled on the node that runs it)"
            )
        return path
    import asyncio

    from ...config import HubConfig
    from ..hub import HubModels

    config = HubConfig.model_validate({k: v for k, v in (hub or {}).items() if k not in ("token", "cache_dir")})
    models = HubModels(config)
    in_snapshot = match.group("file")
    local_path = models.settings.cache_dir / f"models--{match.group('repo')}" / "snapshots" / match.group("commit")
    if in_snapshot:
        local_path /= in_snapshot
    if local_path.exists():
        return str(local_path)
    print(f"unimodel: pulling {model_id} @ {match.group('commit')[:12]} into {models.settings.cache_dir}", flush=True)
    try:
        local = asyncio.run(models.ensure(model_id, revision=match.group("commit"), file=file or in_snapshot))
    except Exception as exc:
        message = getattr(exc, "message", None) or str(exc)
        raise WeightsMissing(
            f"model '{model_id}': its files are not in this node's Hugging Face cache ({models.settings.cache_dir}, "
            f"node {_node()}) and could not be pulled here: {message}"
        ) from None
    return str(Path(local.path))


def _node() -> str:
    try:
        ray: Any = importlib.import_module("ray")
        return str(ray.util.get_node_ip_address())
    except Exception:
        return os.uname().nodename
