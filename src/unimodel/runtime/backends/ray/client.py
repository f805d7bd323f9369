"""A narrow, typed wrapper around the parts of Ray this backend uses: connecting (once per process), making and
finding the instances' named actors, killing them, the nodes, and awaiting a call's result on the event loop.

Ray's own objects (actor handles, object refs) stay inside: the backend holds `Actor`s and gets plain values or
one of three errors back — `ActorGone` (the actor is dead: killed, or its node is), `ActorUnavailable` (no answer
now: its node may be gone, or the network), `ActorRaised` (the method raised; its message). Every call that may
block (connecting, making an actor, listing, the nodes) is synchronous: the backend runs it in a thread.

`ray.init` belongs to the process: the first backend to connect decides the cluster, and a second address in the
same process is an error that says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ....ray_settings import RayConfig, display_address
from ...raynode.host import WorkerHost
from .errors import RayError, RayNotInstalled, RayUnreachable

__all__ = ["Actor", "ActorGone", "ActorRaised", "ActorUnavailable", "RayCluster", "disconnect"]

log = logging.getLogger("unimodel.runtime")

MAX_CONCURRENCY = 16  # an actor's calls at once: two waits and pings beside them
PROBE_TIMEOUT_S = 3.0


class ActorGone(Exception):
    """The actor is dead (killed, exited, or its node died); the message says what Ray knows."""


class ActorUnavailable(Exception):
    """The actor does not answer now (its node may be gone); it may still come back."""


class ActorRaised(Exception):
    """The actor's method raised; the message is its own."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayNotInstalled(
            'backend = "ray" needs Ray in the server\'s environment: pip install "unimodel[ray]" (and on every node)'
        ) from None
    return ray


_lock = threading.Lock()
_connected: str | None = None  # the address this process's ray.init reached
_remote_host: Any = None  # ray.remote(WorkerHost), made once


def disconnect() -> None:
    """Leave the cluster this process reached (`ray.shutdown`), so that a later `connect` may reach another; the
    detached actors run on. For a process that ends its use of Ray (tests, tools)."""
    global _connected, _remote_host
    with _lock:
        if _connected is None:
            return
        with contextlib.suppress(Exception):
            _ray().shutdown()
        _connected, _remote_host = None, None


@dataclass(eq=False)
class Actor:
    """An instance's actor: its name, and Ray's handle."""

    name: str
    handle: Any

    def call(self, method: str, *args: Any) -> Any:
        """Submit `method(*args)`; an object ref to `RayCluster.result`."""
        return getattr(self.handle, method).remote(*args)


class RayCluster:
    """This process's connection to the cluster of `config` (module docstring)."""

    def __init__(self, config: RayConfig) -> None:
        self.config = config
        self.address = display_address(config.address)

    # ── connecting ──────────────────────────────────────────────────────────

    def connected(self) -> bool:
        return _connected is not None

    def connect(self) -> None:
        """Reach the cluster (at most once per process; later calls return at once). Blocks up to the
        connect timeout; raises `RayUnreachable` naming the address, or `RayError`."""
        global _connected
        ray = _ray()
        with _lock:
            if _connected is not None:
                if _connected != self.config.address:
                    self._probe()  # an address that does not answer is that, whatever else this process reaches
                    raise RayError(
                        f"this server is connected to the Ray cluster at {display_address(_connected)} already; one "
                        f"process reaches one cluster, so [runtime.ray] address {self.address} cannot be used too"
                    )
                return
            self._probe()
            kwargs: dict[str, Any] = {
                "address": self.config.address,
                "namespace": self.config.namespace,
                "log_to_driver": False,
                "logging_level": logging.WARNING,
                "ignore_reinit_error": True,
            }
            if self.config.node_ip_address:
                kwargs["_node_ip_address"] = self.config.node_ip_address
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            try:
                ray.init(**kwargs)
            except Exception as exc:
                with contextlib.suppress(Exception):
                    ray.shutdown()
                raise self._unreachable(" ".join(str(exc).split())[:300]) from None
            _connected = self.config.address
        log.info("connected to the Ray cluster at %s (namespace %s)", self.address, self.config.namespace)

    def _probe(self) -> None:
        """A TCP connection to the address first: ray.init retries an address that does not answer for minutes."""
        endpoint = self.config.endpoint()
        if endpoint is None:
            return
        try:
            with socket.create_connection(endpoint, timeout=min(PROBE_TIMEOUT_S, self.config.connect_timeout_s)):
                pass
        except OSError as exc:
            raise self._unreachable(exc.strerror or type(exc).__name__) from None

    def _unreachable(self, why: str) -> RayUnreachable:
        return RayUnreachable(
            f"the Ray cluster at {self.address} cannot be reached ({why}); start it (`ray start --head` on its head "
            "node) or point [runtime.ray] address at it"
        )

    # ── actors ──────────────────────────────────────────────────────────────

    def create(self, name: str, request: Mapping[str, float], *args: Any) -> Actor:
        """A detached actor `name` holding `request` (Ray's resource names) on the node Ray picks; it is placed
        (and runs `WorkerHost(*args)`) when a node can take it."""
        global _remote_host
        ray = _ray()
        with _lock:
            if _remote_host is None:
                _remote_host = ray.remote(WorkerHost)
            remote = _remote_host
        custom = {k: v for k, v in request.items() if k not in ("CPU", "GPU", "memory")}
        options: dict[str, Any] = {
            "name": name,
            "namespace": self.config.namespace,
            "lifetime": "detached",  # it outlives this process: a restarted gateway finds it by name
            "max_concurrency": MAX_CONCURRENCY,
            "max_restarts": 0,
            "num_cpus": request.get("CPU", 0.0),
            "num_gpus": request.get("GPU", 0.0),
        }
        if "memory" in request:
            options["memory"] = int(request["memory"])
        if custom:
            options["resources"] = custom
        return Actor(name, remote.options(**options).remote(*args))

    def find(self, name: str) -> Actor | None:
        ray = _ray()
        try:
            return Actor(name, ray.get_actor(name, namespace=self.config.namespace))
        except ValueError:  # no such live actor
            return None

    def names(self, prefix: str) -> list[str]:
        """The names of the live named actors in the namespace that start with `prefix`."""
        ray = _ray()
        found = ray.util.list_named_actors(all_namespaces=True)
        return sorted(
            str(a["name"])
            for a in found
            if a.get("namespace") == self.config.namespace and str(a.get("name", "")).startswith(prefix)
        )

    def kill(self, actor: Actor) -> None:
        """End the actor's process now (its worker follows through its lifeline); never restarted."""
        ray = _ray()
        with contextlib.suppress(Exception):
            ray.kill(actor.handle, no_restart=True)

    def scheduled(self, actor: Actor) -> bool:
        """Whether a node has taken the actor: Ray gave it a worker process there (its constructor may still be
        running). False while no node can place it — and when Ray's actor table cannot say (an API of Ray's
        own that may change: then only the actor's first answer tells)."""
        ray = _ray()
        try:
            record = ray._private.state.actors(actor.handle._actor_id.hex())
            return bool(record.get("Pid"))  # (its address is set earlier: when the node is picked, alive or not)
        except Exception:
            return False

    def nodes(self) -> list[dict[str, Any]]:
        ray = _ray()
        return [dict(n) for n in ray.nodes()]

    # ── results ─────────────────────────────────────────────────────────────

    @staticmethod
    async def result(ref: Any, within_s: float | None = None) -> Any:
        """The value of a call, awaited on this loop; `TimeoutError` after `within_s`, else `ActorGone`,
        `ActorUnavailable` or `ActorRaised`."""
        ray = _ray()
        errors = ray.exceptions
        try:
            future = asyncio.wrap_future(ref.future())
            return await (asyncio.wait_for(future, within_s) if within_s is not None else future)
        except errors.ActorUnavailableError as exc:
            raise ActorUnavailable(_short(exc)) from None
        except errors.RayActorError as exc:
            raise ActorGone(_death(exc)) from None
        except errors.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            raise ActorRaised(str(cause) if cause is not None else _short(exc)) from None


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def _death(exc: BaseException) -> str:
    """What Ray says about an actor's death, in a few words."""
    text = str(exc)
    lowered = text.lower()
    if "node" in lowered and ("died" in lowered or "dead" in lowered or "failed" in lowered):
        return "its Ray node died"
    if "ray.kill" in lowered or "killed" in lowered:
        return "its Ray actor was killed"
    return "its Ray actor died: " + _short(exc)
