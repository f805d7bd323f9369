"""`RayBackend`: the `Backend` of instances on a Ray cluster, each held by a named actor (this package's docstring
says what an instance is given, how it is watched, and what a restarted gateway does with the ones it finds)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx

from ....config import HubConfig, OpenModelConfig, RuntimeConfig, Settings
from ....ray_settings import ModelRayConfig, RayConfig
from ...instance_env import HOST_ONLY, remote_instance_environment
from ...raynode.host import WORKER_PROGRAM
from ..base import Backend, Instance
from ..local import WORKER_PROGRAM as LOCAL_WORKER_PROGRAM
from ..local import worker_command
from .client import Actor, ActorGone, ActorRaised, ActorUnavailable, RayCluster
from .errors import RayError, RayPending, RayStartFailed, RayUnreachable
from .leftovers import Leftovers, server_id
from .placement import node_summary, pending_reason

__all__ = ["HOST_ONLY", "RayBackend", "RayInstance", "ray_backend"]

log = logging.getLogger("unimodel.runtime")

T = TypeVar("T")

FINAL_LOG_TIMEOUT_S = 2.0
PORT_GONE_GRACE_S = 0.3  # a worker's port refuses: how long its actor may take to report the exit code
RAYLET_PROBE_S = 1.0  # a node's raylet that takes no TCP connection within this long counts as lost


@dataclasses.dataclass(eq=False)
class RayInstance(Instance):
    """An instance on a Ray node: its actor, the node it runs on and what it holds there."""

    actor_name: str = ""
    node_ip: str = ""
    node_id: str = ""
    resources: dict[str, str] = dataclasses.field(default_factory=dict)  # the config's names → amounts
    adopted: bool = False  # left running by a previous run of this server, and taken over

    def describe(self) -> str:
        return f"Ray actor {self.actor_name} on node {self.node_ip} ({self.address})"

    def placement(self) -> dict[str, Any]:
        """Where it runs, for the cluster status: node address and id, the resources it holds, its actor."""
        return {"node": self.node_ip, "nodeId": self.node_id, "resources": self.resources, "actor": self.actor_name}


@dataclasses.dataclass(eq=False)
class _Tracked:
    instance: RayInstance
    actor: Actor
    offset: int = 0  # of the node's log, mirrored up to here
    finishing: bool = False
    tasks: set[asyncio.Task[Any]] = dataclasses.field(default_factory=set)


ModelSettings = Callable[[OpenModelConfig], ModelRayConfig]


def _model_settings(spec: OpenModelConfig) -> ModelRayConfig:
    return spec.ray if spec.ray is not None else ModelRayConfig()


class RayBackend(Backend):
    """Instances as actors on a Ray cluster (this package's docstring)."""

    def __init__(
        self,
        config: RayConfig,
        runtime: RuntimeConfig,
        *,
        data_dir: Path | None = None,
        hub: HubConfig | None = None,
        program: Sequence[str] | None = None,
        model_settings: ModelSettings = _model_settings,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """`data_dir`: where this server's id is kept (`<data_dir>/ray/server-id`; None: a new id, so nothing is
        adopted). `hub`: the `[hub]` settings nodes pull with (never its token). `program`: replaces `python -m
        unimodel.runtime.worker` on the nodes (tests). `environ`: what the instances' environment is drawn from."""
        self.config = config
        self.cluster = RayCluster(config)
        self._runtime = runtime
        self._hub = hub.model_dump(mode="json", exclude={"token", "cache_dir"}) if hub is not None else None
        self._program = list(program) if program is not None else None
        self._model_settings = model_settings
        self._environ = os.environ if environ is None else environ
        self.server_id = server_id(data_dir)
        self.owner = secrets.token_hex(8)  # this run: the actors it pings are its own
        self._log_dir: Path | None = Path(runtime.log_dir) if runtime.log_dir else None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="unimodel-ray")
        self._connecting: asyncio.Future[None] | None = None
        self._sweep: asyncio.Task[None] | None = None
        self._sweep_wanted = False
        self._tracked: dict[str, _Tracked] = {}
        self._leftovers = Leftovers(self.cluster, config, self.owner, self.stale_after_s, self._call, self._spawn)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._pending: dict[str, str] = {}  # model id → why its instance waits for a node ("Pending: …")

    # ── plumbing ────────────────────────────────────────────────────────────

    @property
    def log_dir(self) -> Path:
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="unimodel-instances-"))
        self._log_dir.mkdir(parents=True, exist_ok=True)
        return self._log_dir

    @property
    def prefix(self) -> str:
        """What this server's actors' names start with."""
        return f"{self.server_id}."

    @property
    def stale_after_s(self) -> float:
        """How long an actor goes unpinged before its owner counts as gone (a restarted run may claim it)."""
        return 3 * self.config.ping_interval_s + self.config.lost_after_s

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    def _spawn(self, coro: Any, name: str, tracked: _Tracked | None = None) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        group = self._tasks if tracked is None else tracked.tasks
        group.add(task)
        task.add_done_callback(group.discard)
        return task

    async def _connect(self) -> None:
        """Reach the cluster once (an attempt already under way is joined, never doubled); `RayUnreachable` naming
        the address when it does not answer within `connect_timeout_s`. The first success sweeps leftovers if the
        start-up sweep could not."""
        attempt = self._connecting
        if attempt is None or (attempt.done() and attempt.exception() is not None):
            attempt = self._connecting = asyncio.get_running_loop().run_in_executor(self._pool, self.cluster.connect)
            attempt.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            await asyncio.wait_for(asyncio.shield(attempt), self.config.connect_timeout_s)
        except TimeoutError:
            raise RayUnreachable(
                f"the Ray cluster at {self.cluster.address} did not answer within {self.config.connect_timeout_s:g} s "
                "(connect_timeout_s); check that a Ray head runs there and that this machine can reach it"
            ) from None
        if self._sweep_wanted and self._sweep is None:
            self._sweep_wanted = False
            self._sweep = self._spawn(self._find_leftovers(), "ray-leftovers")

    # ── starting ────────────────────────────────────────────────────────────

    def worker_environment(self, spec: OpenModelConfig) -> dict[str, str]:
        """What the gateway allows an instance (instance_env.py's allow-list, never its secrets), less what
        describes this machine (HOST_ONLY) unless pass_env or the model's env names it; the node adds its own."""
        return remote_instance_environment(self._environ, self._runtime.pass_env, spec.env)

    def worker_argv(self, spec: OpenModelConfig) -> tuple[list[str], dict[str, int]]:
        """The worker's command line, built here (the local backend's) so that the node imports nothing of
        unimodel's configuration, and where in it the node puts its port and its copy of the model's path."""
        program = self._program or (WORKER_PROGRAM, *LOCAL_WORKER_PROGRAM[1:])
        argv = worker_command(spec, 0, program=program)
        slots = {"port": len(program) + argv[len(program) :].index("--port") + 1}
        if spec.path:
            slots["path"] = len(program) + argv[len(program) :].index("--path") + 1
        return argv, slots

    def fingerprint(self, spec: OpenModelConfig) -> str:
        """What an instance runs, as a short hash: a leftover is adopted only by a start of the same thing."""
        fields = spec.model_dump(
            mode="json", include={"engine", "task", "path", "revision", "file", "engine_args", "command", "env"}
        )
        fields |= {"request": self._model_settings(spec).request(), "program": self._program}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def _pending_timeout(self, spec: OpenModelConfig) -> float:
        """Long enough for an autoscaler to add a node, short enough that waiting requests hear why."""
        return max(1.0, min(self.config.pending_timeout_s, spec.queue_timeout_s - 1, spec.start_timeout_s - 1))

    async def start(self, spec: OpenModelConfig, instance_id: str) -> RayInstance:
        if self._closed:
            raise RayStartFailed(f"the Ray backend is shut down; instance {instance_id} not started")
        await self._connect()
        if self._sweep is not None and not self._sweep.done():
            await asyncio.shield(self._sweep)  # a leftover of this model is adopted, not started twice
        settings = self._model_settings(spec)
        fingerprint = self.fingerprint(spec)
        adopted = self._adopt(spec, instance_id, fingerprint, settings)
        if adopted is not None:
            return adopted
        request = settings.request()
        name = f"{self.prefix}{_safe(instance_id)}.{secrets.token_hex(3)}"
        meta = {"name": name, "model_id": spec.id, "fingerprint": fingerprint, "instance_id": instance_id}
        actor = await self._call(self.cluster.create, name, request, meta, self.owner, self.config.orphan_timeout_s)
        try:
            where = await self._placed(spec, settings, request, actor)
            argv, slots = self.worker_argv(spec)
            model = {"id": spec.id, "path": spec.path, "file": spec.file}
            launch = actor.call("launch", argv, slots, model, self.worker_environment(spec), self._hub)
            info: dict[str, Any] = await self.cluster.result(launch)
        except ActorRaised as exc:
            self._spawn(self._call(self.cluster.kill, actor), f"kill:{name}")
            raise RayStartFailed(
                f"the worker of model '{spec.id}' could not be launched on Ray node {where['node_ip']}: {exc}"
            ) from None
        except (ActorGone, ActorUnavailable) as exc:
            self._spawn(self._call(self.cluster.kill, actor), f"kill:{name}")
            raise RayStartFailed(f"the Ray actor of model '{spec.id}' was lost while it started: {exc}") from None
        except BaseException:
            self._spawn(self._call(self.cluster.kill, actor), f"kill:{name}")
            raise
        instance = self._instance(spec, instance_id, actor.name, info, settings, request)
        self._track(instance, actor)
        log.info(
            "instance %s of %s started: Ray actor %s on node %s (%s), worker pid %s at %s, log %s",
            instance_id,
            spec.id,
            name,
            instance.node_ip,
            instance.node_id[:12],
            info.get("pid"),
            instance.address,
            instance.log_path,
        )
        return instance

    async def _placed(
        self, spec: OpenModelConfig, settings: ModelRayConfig, request: dict[str, float], actor: Actor
    ) -> dict[str, Any]:
        """Where the actor was placed, once it answers. While no node takes it, `pending(model)` says why, and past
        the pending timeout the actor goes and `RayPending` says why. Once a node has taken it (Ray gave it a
        process there), its process may still be starting — slowly on a busy node: that is not pending, and it
        has the model's start timeout."""
        loop = asyncio.get_running_loop()
        patience = self._pending_timeout(spec)
        started = loop.time()
        deadline = started + patience
        where = actor.call("where")
        said = False
        try:
            while True:
                try:
                    placed: dict[str, Any] = await self.cluster.result(where, within_s=1.0)
                    return placed
                except TimeoutError:
                    pass
                if await self._call(self.cluster.scheduled, actor):
                    self._pending.pop(spec.id, None)
                    if loop.time() - started >= spec.start_timeout_s:
                        raise RayStartFailed(
                            f"the Ray actor of model '{spec.id}' was given a node but did not start within "
                            f"{spec.start_timeout_s:g} s (start_timeout_s): the node may be overloaded"
                        )
                    continue
                nodes = await self.live_nodes()
                reason = pending_reason(request, nodes, settings.describe)
                self._pending[spec.id] = reason
                if not said:
                    said = True
                    log.warning("model %s: an instance waits for a Ray node: %s", spec.id, reason)
                if loop.time() >= deadline:
                    raise RayPending(
                        f"{reason} ([models.ray] of model '{spec.id}'; the cluster has {node_summary(nodes)}); no node "
                        f"took it within {patience:g} s (pending_timeout_s)"
                    )
        finally:
            self._pending.pop(spec.id, None)

    def _instance(
        self,
        spec: OpenModelConfig,
        instance_id: str,
        actor_name: str,
        info: Mapping[str, Any],
        settings: ModelRayConfig,
        request: Mapping[str, float],
        *,
        adopted: bool = False,
    ) -> RayInstance:
        return RayInstance(
            id=instance_id,
            model_id=spec.id,
            address=str(info["address"]),
            log_path=self.log_dir / f"{_safe(instance_id)}.log",
            actor_name=actor_name,
            node_ip=str(info.get("node_ip", "")),
            node_id=str(info.get("node_id", "")),
            resources=_config_names(settings, request),
            adopted=adopted,
        )

    # ── watching ────────────────────────────────────────────────────────────

    def _track(self, instance: RayInstance, actor: Actor) -> None:
        tracked = _Tracked(instance, actor)
        self._tracked[instance.id] = tracked
        assert instance.log_path is not None
        with contextlib.suppress(OSError), open(instance.log_path, "ab") as out:
            how = "adopted from a previous run" if instance.adopted else "started"
            out.write(
                f"unimodel: Ray actor {actor.name} on node {instance.node_ip} ({instance.node_id}), {how}, at "
                f"{instance.address}\n".encode()
            )
        self._spawn(self._watch_ready(tracked), f"ready:{instance.id}", tracked)
        self._spawn(self._watch_exit(tracked), f"exit:{instance.id}", tracked)
        self._spawn(self._ping(tracked), f"ping:{instance.id}", tracked)
        self._spawn(self._watch_port(tracked), f"port:{instance.id}", tracked)

    async def _watch_ready(self, tracked: _Tracked) -> None:
        with contextlib.suppress(ActorGone, ActorUnavailable, ActorRaised):
            if await self.cluster.result(tracked.actor.call("wait_ready")):
                tracked.instance.announced.set()

    async def _watch_exit(self, tracked: _Tracked) -> None:
        """The worker's exit (its code, the last of its log), or its actor's death."""
        while not tracked.finishing:
            try:
                code = await self.cluster.result(tracked.actor.call("wait_exit"))
            except ActorGone as exc:
                self._finish(tracked, None, str(exc))
                return
            except (ActorUnavailable, ActorRaised):
                await asyncio.sleep(0.5)  # the pings decide whether it is lost
                continue
            await self._last_log(tracked)
            self._finish(tracked, code if isinstance(code, int) else None)
            return

    async def _ping(self, tracked: _Tracked) -> None:
        """The owner's heartbeat and the log mirror; an actor that answers nothing for `lost_after_s` is lost."""
        loop = asyncio.get_running_loop()
        last_answer = loop.time()
        while not tracked.finishing:
            try:
                reply = await self.cluster.result(
                    tracked.actor.call("ping", self.owner, tracked.offset), within_s=self.config.lost_after_s
                )
            except ActorGone as exc:
                self._finish(tracked, None, str(exc))
                return
            except (TimeoutError, ActorUnavailable, ActorRaised):
                if loop.time() - last_answer >= self.config.lost_after_s:
                    node = tracked.instance.node_ip
                    self._finish(
                        tracked, None, f"lost with its Ray node {node}: no answer for {self.config.lost_after_s:g} s"
                    )
                    return
            else:
                last_answer = loop.time()
                self._mirror(tracked, reply)
                if not reply.get("owned", True):
                    self._finish(tracked, None, "taken over by another run of this server", kill=False)
                    return
            await asyncio.sleep(self.config.ping_interval_s)

    async def _watch_port(self, tracked: _Tracked) -> None:
        """An idle connection to the worker's port, held open: when the worker dies its node's kernel closes it at
        once. A port that then refuses connections means the worker is gone; unless its actor says how within
        PORT_GONE_GRACE_S (an exit code), the instance has ended with its node or its actor. (A machine that
        vanishes closes nothing: the pings find that.)"""
        url = httpx.URL(tracked.instance.address)
        host, port = url.host, url.port or 80
        connected = False
        while not tracked.finishing:
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError:
                if connected:
                    break  # it answered before and refuses now: gone
                await asyncio.sleep(0.1)  # not listening yet
                continue
            connected = True
            try:
                while await reader.read(4096):
                    pass  # a server that answers an idle connection (a timeout) and closes it: connect again
            except OSError:
                pass
            finally:
                writer.close()
            await asyncio.sleep(0.05)
        if tracked.finishing:
            return
        await asyncio.sleep(PORT_GONE_GRACE_S)
        if tracked.finishing:
            return
        node = tracked.instance.node_ip
        nodes = await self.live_nodes()
        if not any(n.get("Alive") and n.get("NodeID") == tracked.instance.node_id for n in nodes):
            why = f"lost with its Ray node {node}: its worker's port refuses connections and the node's raylet is gone"
        else:
            why = f"its worker on Ray node {node} is gone (its port refuses connections) and its actor does not say why"
        self._finish(tracked, None, why)

    async def live_nodes(self) -> list[dict[str, Any]]:
        """Ray's node records, with `Alive` false for a node whose raylet takes no connection now: Ray declares a
        lost node dead only after its health checks time out (tens of seconds), and until then a "Pending" reason
        must not count it as a place the instance could go."""
        nodes = await self._call(self.cluster.nodes)

        async def answers(node: Mapping[str, Any]) -> bool:
            host, port = node.get("NodeManagerAddress"), node.get("NodeManagerPort")
            if not host or not port:
                return True  # nothing to probe: Ray's word
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(str(host), int(port)), RAYLET_PROBE_S)
            except (OSError, TimeoutError):
                return False
            writer.close()
            return True

        alive = [n for n in nodes if n.get("Alive")]
        for node, up in zip(alive, await asyncio.gather(*(answers(n) for n in alive)), strict=True):
            if not up:
                node["Alive"] = False
        return nodes

    def _mirror(self, tracked: _Tracked, reply: Mapping[str, Any]) -> None:
        data = reply.get("log") or b""
        tracked.offset = int(reply.get("offset", tracked.offset))
        if data and tracked.instance.log_path is not None:
            with contextlib.suppress(OSError), open(tracked.instance.log_path, "ab") as out:
                out.write(data)

    async def _last_log(self, tracked: _Tracked) -> None:
        with contextlib.suppress(TimeoutError, ActorGone, ActorUnavailable, ActorRaised):
            while True:
                reply = await self.cluster.result(
                    tracked.actor.call("ping", self.owner, tracked.offset), within_s=FINAL_LOG_TIMEOUT_S
                )
                self._mirror(tracked, reply)
                if not reply.get("log"):
                    return

    def _finish(self, tracked: _Tracked, code: int | None, why: str | None = None, *, kill: bool = True) -> None:
        """The instance has ended: say why in its log, set `exited`, and end its actor (which frees its
        resources on the node)."""
        if tracked.finishing:
            return
        tracked.finishing = True
        instance = tracked.instance
        if why is not None:
            instance.exit_reason = why
            log.error("instance %s of %s (%s): %s", instance.id, instance.model_id, instance.describe(), why)
            if instance.log_path is not None:
                with contextlib.suppress(OSError), open(instance.log_path, "ab") as out:
                    out.write(f"unimodel: Ray actor {tracked.actor.name}: {why}\n".encode())
        instance.returncode = code
        instance.exited.set()
        self._tracked.pop(instance.id, None)
        current = asyncio.current_task()
        for task in list(tracked.tasks):
            if task is not current:
                task.cancel()
        if kill:
            self._spawn(self._call(self.cluster.kill, tracked.actor), f"kill:{tracked.actor.name}")

    # ── stopping ────────────────────────────────────────────────────────────

    async def stop(self, instance: Instance, grace_s: float = 10.0) -> None:
        tracked = self._tracked.get(instance.id)
        if tracked is None or instance.exited.is_set():
            return
        code: int | None = None
        try:
            code = await self.cluster.result(tracked.actor.call("stop", grace_s), within_s=grace_s + 15)
        except (TimeoutError, ActorGone, ActorUnavailable, ActorRaised) as exc:
            log.warning("instance %s: stopping its worker failed (%s); ending its actor", instance.id, exc)
        await self._last_log(tracked)
        self._finish(tracked, code)

    async def kill(self, instance: Instance) -> None:
        tracked = self._tracked.get(instance.id)
        if tracked is None or instance.exited.is_set():
            return
        code: int | None = None
        with contextlib.suppress(TimeoutError, ActorGone, ActorUnavailable, ActorRaised):
            code = await self.cluster.result(tracked.actor.call("kill"), within_s=10)
        self._finish(tracked, code)

    # ── leftovers: found again, adopted or stopped ──────────────────────────

    async def stop_leftovers(self) -> None:
        """Look for this server's actors a previous run left (in the background: a cluster that does not answer
        never holds up the start); `start` waits for the look to end, so a leftover is adopted, not doubled."""
        if self._sweep is None:
            self._sweep = self._spawn(self._find_leftovers(), "ray-leftovers")

    async def _find_leftovers(self) -> None:
        try:
            await self._connect()
        except RayError as exc:
            self._sweep_wanted = True
            self._sweep = None
            log.warning("instances a previous run left on Ray will be looked for once the cluster answers: %s", exc)
            return
        names = await self._call(self.cluster.names, self.prefix)
        await self._leftovers.claim_all(names)

    def _adopt(
        self, spec: OpenModelConfig, instance_id: str, fingerprint: str, settings: ModelRayConfig
    ) -> RayInstance | None:
        """A leftover running the same thing as `spec` would, as this start's instance; None when there is none."""
        leftover = self._leftovers.take(spec.id, fingerprint)  # its keeper stops; the instance's pings take over
        if leftover is None:
            return None
        instance = self._instance(
            spec, instance_id, leftover.actor.name, leftover.info, settings, settings.request(), adopted=True
        )
        instance.announced.set()  # it served before: the controller checks its health at once
        self._track(instance, leftover.actor)
        log.info(
            "instance %s of %s: adopted Ray actor %s on node %s at %s, left running by a previous run",
            instance_id,
            spec.id,
            leftover.actor.name,
            instance.node_ip,
            instance.address,
        )
        return instance

    # ── the rest of the interface ───────────────────────────────────────────

    def running(self) -> list[str]:
        """The ids of the instances whose end has not been seen."""
        return list(self._tracked)

    def pending(self, model_id: str) -> str | None:
        return self._pending.get(model_id)

    def placements(self) -> dict[str, dict[str, Any]]:
        """Instance id → where it runs (node, resources, actor)."""
        return {i: t.instance.placement() for i, t in self._tracked.items()}

    async def aclose(self) -> None:
        """Stop every instance of this run (5 s grace) and every leftover not adopted; end their actors."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(self.stop(t.instance, grace_s=5.0) for t in list(self._tracked.values())))
        await self._leftovers.end_all("the server is stopping")
        for task in list(self._tasks):
            if not task.get_name().startswith("kill:"):
                task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)
        self._pool.shutdown(wait=False)


def _config_names(settings: ModelRayConfig, request: Mapping[str, float]) -> dict[str, str]:
    """`{"CPU": 1.0, "second": 1.0}` → `{"num_cpus": "1", "second": "1"}` (the config's words)."""
    named: dict[str, str] = {}
    for name, amount in request.items():
        key, _, value = settings.describe(name, amount).partition("=")
        named[key] = value
    return named


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "instance"


def ray_backend(settings: Settings, *, program: Sequence[str] | None = None) -> RayBackend:
    """The backend for `settings` (`backends.FACTORIES["ray"]`): `[runtime.ray]`, the server's id in `[store]
    data_dir`, `[hub]` for the pulls on the nodes."""
    return RayBackend(
        settings.runtime.ray,
        settings.runtime,
        data_dir=Path(settings.store.data_dir).expanduser(),
        hub=settings.hub,
        program=program,
    )
