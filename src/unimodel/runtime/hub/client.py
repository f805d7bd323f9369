"""Asking the Hub about a model: its info, and the plan for pulling it (blocking; run it in a thread).

    client = HubClient(HubSettings.resolve(settings.hub))
    plan = client.plan("Qwen/Qwen2.5-0.5B-Instruct", revision=None, file=None)

Each call is one `GET /api/models/{id}[/revision/{rev}]?blobs=true` through huggingface_hub's `HfApi`, bounded
by `settings.timeout_s`, and every failure is a UnimodelError (errors.py): an unknown repo is a 404 even when
the Hub answers 401 (it does for anonymous callers), a gated one without a usable token a 403 naming
`[hub] token` / HF_TOKEN, an unreachable Hub a 502, a 5xx a 502/503, a slow one a 504. Offline, nothing is
asked: a 503 naming the setting. The id is checked (a Hub repo id, allowed by `[hub] allow`) before any request.
"""

from __future__ import annotations

from typing import Any

from ... import __version__
from .errors import client_missing, gated, hub_error, offline
from .info import RepoInfo
from .plan import Plan, PlanPolicy, check_allowed, check_repo_id, check_revision, plan_pull
from .settings import HubSettings


class HubClient:
    def __init__(self, settings: HubSettings) -> None:
        self.settings = settings

    @property
    def policy(self) -> PlanPolicy:
        s = self.settings
        return PlanPolicy(allow=s.allow, max_download_bytes=s.max_download_bytes, gguf_preference=s.gguf_preference)

    def model_info(self, repo_id: str, revision: str | None = None) -> RepoInfo:
        """What the Hub says about `repo_id` at `revision` (the default branch when None), with file sizes."""
        check_repo_id(repo_id)
        if revision is not None:
            check_revision(revision)
        check_allowed(repo_id, self.settings.allow)
        if self.settings.offline:
            raise offline(repo_id, self.settings)
        api = self._api()
        try:
            info = api.model_info(repo_id, revision=revision, files_metadata=True, timeout=self.settings.timeout_s)
        except Exception as exc:
            raise hub_error(exc, repo_id, self.settings, revision=revision) from None
        return RepoInfo.from_model_info(info)

    def plan(self, model_id: str, *, revision: str | None = None, file: str | None = None) -> Plan:
        """The plan for pulling `model_id`: what the Hub has, decided by plan.py under `[hub]`'s policy."""
        info = self.model_info(model_id, revision)
        if info.gated and not self.settings.has_token:
            raise gated(info.id, self.settings)  # every file would be refused: say so before choosing any
        return plan_pull(info, revision=revision or "main", file=file, policy=self.policy)

    def _api(self) -> Any:
        try:
            from huggingface_hub import HfApi
        except ImportError:
            raise client_missing() from None
        token: str | bool = self.settings.token_value() or False  # False: never a token read from elsewhere
        return HfApi(endpoint=self.settings.endpoint, token=token, library_name="unimodel", library_version=__version__)
