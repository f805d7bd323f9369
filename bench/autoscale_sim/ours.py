"""unimodel's own policy (``unimodel.runtime.policy.decide``) on the simulation, driven the way the controller
(``unimodel.runtime.deployment.Deployment``) drives it:

- every ``[runtime] tick_s`` (1 s) it observes, right then, the requests in flight plus waiting (and of them
  the waiting ones), the ready and the starting instances, when the model last had work (``last_request_at``:
  now while a request is in flight or waiting, else the last arrival or completion, as
  ``Deployment._last_busy_at``) and how long the latest instance took to start (``Deployment.observe``;
  ``start_s`` is ``Instances.last_start_s``), calls the policy with the
  config ``Deployment.policy_config`` builds (the ``[runtime]`` defaults of ``RuntimeConfig`` unless overridden),
  clamps the answer to [min, max] and keeps at least one instance while requests wait (``policy.bounded``), and
  scales to it (``Deployment.tick``);
- a request that has to wait while no instance is ready or starting launches one at once, without waiting for a
  tick (``Deployment._ensure_capacity``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from sim import Simulation

from unimodel.config import RuntimeConfig
from unimodel.runtime.policy import Observation, PolicyConfig, PolicyState, bounded, decide

__all__ = ["Ours", "policy_config"]

# A policy from before ``Observation.waiting`` (``run.py --src`` of an older tree) is driven without it.
_HAS_WAITING = "waiting" in {f.name for f in dataclasses.fields(Observation)}


def policy_config(
    runtime: RuntimeConfig,
    *,
    instance_concurrency: int,
    min_instances: int,
    max_instances: int,
    idle_timeout_s: float,
    overrides: Mapping[str, float] | None = None,
) -> PolicyConfig:
    """What ``Deployment.policy_config`` builds, plus any ``PolicyConfig`` field overridden by name."""
    names = {f.name for f in dataclasses.fields(PolicyConfig)}
    fields = {
        k: getattr(runtime, k) for k in names if k not in {"min_instances", "max_instances"} and hasattr(runtime, k)
    }
    fields.update(
        min_instances=min_instances,
        max_instances=max_instances,
        target_concurrency=instance_concurrency * runtime.target_utilization,
        idle_timeout_s=idle_timeout_s,
    )
    if "instance_concurrency" in names:
        fields["instance_concurrency"] = instance_concurrency
    fields.update(overrides or {})
    return PolicyConfig(**fields)


class Ours:
    def __init__(self, config: PolicyConfig, *, tick_s: float) -> None:
        self.name = "ours"
        self.config = config
        self.tick_s = tick_s
        self.state = PolicyState()
        self._ticks = 0
        self.panic_ticks = 0

    def start(self, sim: Simulation) -> None:
        sim.at(0.0, lambda: self._tick(sim))

    def on_arrival(self, sim: Simulation, waiting: bool) -> None:
        if waiting and not any(i.state in ("starting", "ready") for i in sim.alive.values()):
            sim.launch()  # _ensure_capacity

    def _tick(self, sim: Simulation) -> None:
        observation = Observation(
            now=sim.now,
            concurrency=float(sim.concurrency),
            ready=sim.count("ready"),
            starting=sim.count("starting"),
            last_request_at=sim.now if sim.concurrency else sim.last_busy,
            start_s=sim.last_start_s,
            **({"waiting": len(sim.queue)} if _HAS_WAITING else {}),
        )
        decision = decide(self.config, observation, self.state)
        self.state = decision.state
        self.panic_ticks += decision.panic
        sim.scale_to(bounded(self.config, decision.desired, len(sim.queue)))
        self._ticks += 1
        sim.at(self._ticks * self.tick_s, lambda: self._tick(sim))
