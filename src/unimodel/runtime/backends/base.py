"""The interface every instance backend implements: start an instance of a model, stop it, say when it exits.

A backend knows nothing of routing, load or health: the controller (controller.py, instances.py) knows an instance
only by its `address`, its two events and what the backend's methods do with it, never by which backend made it.

    instance = await backend.start(spec, "smollm2-1")     # returns once it runs (not yet ready)
    ...GET instance.address + "/health" until 200; route requests to instance.address...
    await instance.exited.wait()                          # or: await backend.stop(instance, grace_s=10)

What a backend must do:
- `start` returns an `Instance` whose `address` the gateway can reach over HTTP (`http://host:port`, no trailing
  slash), serving the worker's contract (docs/open-models.md, "The worker"); it raises `OSError` (or a subclass)
  when the instance cannot even be launched.
- `exited` is set within a second of the instance dying, however it died, with `returncode` set first when the
  backend knows one; `announced` may be set when the instance says it is ready (the controller then checks
  `/health` at once instead of at its next poll); a backend that cannot tell leaves it unset.
- `stop`, `kill`, `log_tail` and `aclose` as their docstrings say; `stop_leftovers` when instances can outlive the
  process that started them; `Instance.placement` and `pending` when instances run elsewhere (the cluster status
  shows where each runs, and why one waits for a place).
"""

from __future__ import annotations

import abc
import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...config import OpenModelConfig

__all__ = ["Backend", "Instance"]


@dataclass(eq=False)
class Instance:
    """A started instance. `address` is its base URL (`http://127.0.0.1:<port>`, no trailing slash).

    `pid` and `log_path` are the local backend's (the process, its log file); other backends leave them None."""

    id: str
    model_id: str
    address: str
    pid: int | None = None
    log_path: Path | None = None
    started_at: float = field(default_factory=time.monotonic)
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    returncode: int | None = None  # set when `exited` fires (negative: killed by that signal)
    announced: asyncio.Event = field(default_factory=asyncio.Event)  # the process said it is ready
    health_path: str = "/health"  # where the controller checks it (an image that is not the worker may differ)
    exit_reason: str | None = None  # set before `exited` when the backend knows more than the code
    oom_killed: bool = False  # the kernel killed it for running out of memory (set with `exit_reason`)

    def describe(self) -> str:
        """Where the instance runs, for a log line: its process id, else its address."""
        return f"pid {self.pid}" if self.pid is not None else self.address

    def placement(self) -> dict[str, Any] | None:
        """Where it runs beyond its address (a node, the resources it holds there), for the cluster status; None
        when its backend has nothing to add (a process or container on this machine)."""
        return None


class Backend(abc.ABC):
    """How instances are started and stopped. Implementations must set `Instance.exited` when it dies."""

    @abc.abstractmethod
    async def start(self, spec: OpenModelConfig, instance_id: str) -> Instance:
        """Launch an instance of `spec`; return once it runs (health is the caller's business).

        Raises `OSError` (or a subclass) when the instance cannot even be launched."""

    @abc.abstractmethod
    async def stop(self, instance: Instance, grace_s: float = 10.0) -> None:
        """Ask the instance to stop, kill it after `grace_s`, and return once it has exited. Idempotent."""

    async def kill(self, instance: Instance) -> None:
        """Kill the instance now (a stopped or hung process ignores a polite request) and return once it has
        exited. Idempotent."""
        await self.stop(instance, grace_s=0.0)

    async def stop_leftovers(self) -> None:
        """Stop instances a previous run of the gateway left running (it was killed); called once at start-up."""
        return None

    def pending(self, model_id: str) -> str | None:
        """Why an instance of the model is waiting for a place to run, while one is ("Pending: no node has
        num_gpus=1"); None when none waits (a backend that always has a place: this machine)."""
        return None

    def log_tail(self, instance: Instance, lines: int = 20) -> str:
        """The last `lines` lines of the instance's output ("" when there is none): its log file's last 64 KiB."""
        if instance.log_path is None:
            return ""
        try:
            with open(instance.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                data = f.read()
        except OSError:
            return ""
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])

    async def aclose(self) -> None:
        """Stop every instance this backend started and release its resources."""
        return None
