"""Where an open model's files come from when they may not be on this machine yet.

A model configured with a local `path` needs nothing: its spec is complete. A model named by its Hugging Face id
has a `ModelSource`: before an instance starts, the deployment asks it for the spec with the files on disk
(`fetch`), which pulls them the first time (runtime/hub/) and is a few file checks afterwards — so restarts and
scale-from-zero use the local copy, and a model removed from the disk is pulled again. While a pull runs, the
cluster status shows its `progress`.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..config import OpenModelConfig


class ModelSource(Protocol):
    async def fetch(self) -> OpenModelConfig:
        """The spec with the model's files on this machine, pulling them when they are not.

        Raises a `UnimodelError` saying why they cannot be had (the Hub unreachable, no disk space …).
        Concurrent calls share one pull; a cancelled caller does not cancel it."""
        ...

    def progress(self) -> dict[str, Any] | None:
        """The pull under way, as the cluster status shows it (`bytesDone`, `bytesTotal` …), or None."""
        ...

    def metrics(self) -> dict[str, float]:
        """`bytes_downloaded` (all pulls so far, the running one included), `downloading` (0 or 1) and
        `download_failures`."""
        ...
