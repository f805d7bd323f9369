"""A model named by its Hugging Face id, as the controller's `ModelSource` (runtime/source.py): its files from the
local copy when they are there, else pulled once, with the progress the cluster status shows."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ...config import OpenModelConfig
from ...protocol.errors import UnimodelError
from .local import LocalModel, model_config
from .models import HubModels
from .plan import Plan, format_bytes
from .pull import Pull

log = logging.getLogger("unimodel.hub")

LOG_EVERY_S = 10.0


class HubSource:
    """`table` is the model's spec without its path: a `[[models]]` table naming a Hub id, or the spec made from a
    plan for a model called by its id. `plan`, when given, is used for the first pull (the caller just asked the
    Hub); a later pull (after a failure, or the files removed) asks the Hub again."""

    def __init__(self, hub: HubModels, table: OpenModelConfig, plan: Plan | None = None) -> None:
        self.hub = hub
        self.table = table
        self._plan = plan
        self._pull: Pull | None = None
        self._fetching: asyncio.Future[OpenModelConfig] | None = None
        self._bytes_before = 0  # bytes of the pulls that ended
        self._failures = 0

    async def fetch(self) -> OpenModelConfig:
        table = self.table
        local = self.hub.local(table.id, revision=table.revision, file=table.file)
        if local is not None:
            return model_config(local, table)
        if self.hub.settings.offline and self._plan is None:
            return table  # offline, and never pulled by unimodel: the engine looks in the Hugging Face cache
        if self._fetching is None or self._fetching.done():
            self._fetching = asyncio.ensure_future(self._pull_files())
            self._fetching.add_done_callback(lambda t: t.cancelled() or t.exception())  # seen even if nobody waits
        return await asyncio.shield(self._fetching)  # one pull for every caller; a cancelled one leaves it running

    async def _pull_files(self) -> OpenModelConfig:
        table = self.table
        plan, self._plan = self._plan, None
        if plan is None:  # a later pull asks the Hub again: the revision may have moved on
            plan = await self.hub.resolve(table.id, revision=table.revision, file=table.file)
        pull = self._pull = self.hub.pull(plan)
        try:
            local = await _wait_logging(pull)
        except UnimodelError:
            self._failures += 1
            raise
        finally:
            self._bytes_before += pull.progress().bytes_done
            self._pull = None
        return model_config(local, table)

    def progress(self) -> dict[str, Any] | None:
        pull = self._pull
        if pull is None or pull.done():
            return None
        p = pull.progress()
        return {
            "state": p.state,
            "bytesDone": p.bytes_done,
            "bytesTotal": p.bytes_total,
            "filesDone": p.files_done,
            "filesTotal": p.files_total,
            "rateBps": round(p.rate_bps),
            "etaS": None if p.eta_s is None else round(p.eta_s, 1),
        }

    def metrics(self) -> dict[str, float]:
        pull = self._pull
        running = pull is not None and not pull.done()
        current = pull.progress().bytes_done if pull is not None and running else 0
        return {
            "bytes_downloaded": float(self._bytes_before + current),
            "downloading": 1.0 if running else 0.0,
            "download_failures": float(self._failures),
        }


async def _wait_logging(pull: Pull) -> LocalModel:
    """The pull's result, with a progress line in the server log every `LOG_EVERY_S`."""
    while True:
        try:
            return await asyncio.wait_for(asyncio.shield(pull.wait()), LOG_EVERY_S)
        except TimeoutError:
            p = pull.progress()
            eta = "" if p.eta_s is None else f", about {p.eta_s:.0f} s left"
            log.info(
                "pulling %s: %s of %s (%d of %d files), %s/s%s",
                p.model_id,
                format_bytes(p.bytes_done),
                format_bytes(p.bytes_total),
                p.files_done,
                p.files_total,
                format_bytes(round(p.rate_bps)),
                eta,
            )
