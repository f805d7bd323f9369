"""The instances a previous run of this server left on the Ray cluster (it was killed): found by their actors'
names (`<server id>.…`, the id kept in `[store] data_dir`), claimed once their old owner stops pinging them,
kept alive until a start of the same model and fingerprint adopts one (`RayBackend._adopt`), else stopped after
`adopt_window_s`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ....ray_settings import RayConfig
from .client import Actor, ActorGone, ActorRaised, ActorUnavailable, RayCluster

log = logging.getLogger("unimodel.runtime")

LEFTOVER_STOP_GRACE_S = 5.0


@dataclasses.dataclass(eq=False)
class Leftover:
    """An instance a previous run of this server left running, claimed by this run until one of its model's
    starts adopts it (or `adopt_window_s` passes)."""

    actor: Actor
    info: dict[str, Any]
    stopped: bool = False


class Leftovers:
    """What this run claimed and has not adopted yet, by model id (`claimed`)."""

    def __init__(
        self,
        cluster: RayCluster,
        config: RayConfig,
        owner: str,
        stale_after_s: float,
        call: Callable[..., Awaitable[Any]],
        spawn: Callable[[Any, str], asyncio.Task[Any]],
    ) -> None:
        """`owner`: this run's token; `stale_after_s`: how long an actor goes unpinged before its owner counts as
        gone; `call` runs a blocking Ray call in the backend's threads, `spawn` starts one of its tasks."""
        self.cluster = cluster
        self.config = config
        self.owner = owner
        self.stale_after_s = stale_after_s
        self._call = call
        self._spawn = spawn
        self.claimed: dict[str, list[Leftover]] = {}

    async def claim_all(self, names: list[str]) -> None:
        await asyncio.gather(*(self._claim(name) for name in names))

    def take(self, model_id: str, fingerprint: str) -> Leftover | None:
        """A claimed leftover of `model_id` running `fingerprint`, no longer kept by this class (its adopter's
        pings take over); None when there is none."""
        found = self.claimed.get(model_id, [])
        for leftover in list(found):
            if leftover.info.get("fingerprint") == fingerprint and not leftover.stopped:
                found.remove(leftover)
                leftover.stopped = True  # its keeper stops
                return leftover
        return None

    async def end_all(self, why: str) -> None:
        leftovers = [left for found in self.claimed.values() for left in found if not left.stopped]
        await asyncio.gather(*(self.end(left, why) for left in leftovers))

    async def _claim(self, name: str) -> None:
        """Take over the actor `name` once its owner is gone (it has not pinged for `stale_after_s`)."""
        loop = asyncio.get_running_loop()
        actor = await self._call(self.cluster.find, name)
        if actor is None:
            return
        deadline = loop.time() + self.stale_after_s + 2 * self.config.ping_interval_s
        try:
            info: dict[str, Any] = await self.cluster.result(actor.call("describe"), within_s=5)
            if info.get("owner") == self.owner:
                return
            while not await self.cluster.result(actor.call("claim", self.owner, self.stale_after_s), within_s=5):
                if loop.time() >= deadline:
                    log.info("Ray actor %s belongs to a run of this server that still runs; left alone", name)
                    return
                await asyncio.sleep(self.config.ping_interval_s)
        except (TimeoutError, ActorGone, ActorUnavailable, ActorRaised) as exc:
            log.warning("Ray actor %s, left by a previous run, does not answer (%s); ending it", name, exc)
            await self._call(self.cluster.kill, actor)
            return
        leftover = Leftover(actor, info)
        if not info.get("running"):
            await self.end(leftover, "its worker had exited")
            return
        self.claimed.setdefault(str(info.get("model_id")), []).append(leftover)
        log.warning(
            "found instance %s of %s (Ray actor %s on node %s at %s) left by a previous run; it is adopted if the model "
            "needs an instance within %g s (adopt_window_s), else stopped",
            info.get("instance_id"),
            info.get("model_id"),
            name,
            info.get("node_ip"),
            info.get("address"),
            self.config.adopt_window_s,
        )
        self._spawn(self._keep(leftover), f"leftover:{name}")

    async def _keep(self, leftover: Leftover) -> None:
        """Ping it (so it does not stop itself) until it is adopted or `adopt_window_s` passes."""
        loop = asyncio.get_running_loop()
        until = loop.time() + self.config.adopt_window_s
        while not leftover.stopped and loop.time() < until:
            with contextlib.suppress(TimeoutError, ActorGone, ActorUnavailable, ActorRaised):
                await self.cluster.result(leftover.actor.call("ping", self.owner, 0), within_s=self.config.lost_after_s)
            await asyncio.sleep(min(self.config.ping_interval_s, max(0.0, until - loop.time())))
        if not leftover.stopped:
            await self.end(leftover, f"not adopted within {self.config.adopt_window_s:g} s (adopt_window_s)")

    async def end(self, leftover: Leftover, why: str) -> None:
        leftover.stopped = True
        found = self.claimed.get(str(leftover.info.get("model_id")), [])
        if leftover in found:
            found.remove(leftover)
        log.warning("stopping Ray actor %s, left by a previous run: %s", leftover.actor.name, why)
        with contextlib.suppress(TimeoutError, ActorGone, ActorUnavailable, ActorRaised):
            await self.cluster.result(leftover.actor.call("stop", LEFTOVER_STOP_GRACE_S), within_s=30)
        await self._call(self.cluster.kill, leftover.actor)


def server_id(data_dir: Path | None) -> str:
    """This server's id, kept in `<data_dir>/ray/server-id` (made once): what its actors' names start with."""
    if data_dir is None:
        return secrets.token_hex(6)
    path = data_dir / "ray" / "server-id"
    try:
        found = path.read_text().strip()
        if re.fullmatch(r"[0-9a-f]{12}", found):
            return found
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    made = secrets.token_hex(6)
    tmp = path.with_name(f".server-id.{secrets.token_hex(4)}")
    tmp.write_text(made + "\n")
    os.replace(tmp, path)
    return made
