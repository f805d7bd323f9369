"""`ContainerBackend`: the `Backend` of one container per instance (this package's docstring says what a container
gets, how it is watched, and what happens to leftovers)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import math
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import requests
from docker.models.containers import Container

from ....config import OpenModelConfig, RuntimeConfig, Settings
from ....container_settings import ContainerConfig, ModelContainerConfig, default_engine_url
from ..base import Backend, Instance
from .engine import (
    build_hint,
    display_url,
    explain,
    image_present,
    published_port,
    remove,
    safe_name,
    scrub,
    size,
    split_image,
)
from .errors import (
    ContainerEngineUnavailable,
    ContainerImageMissing,
    ContainerImagePullFailed,
    ContainerStartFailed,
)
from .oom import OomWatch
from .options import create_options
from .ownership import LABEL_INSTANCE, LABEL_MODEL, LABEL_OWNER, LABEL_SERVER, Ownership

log = logging.getLogger("unimodel.runtime")

T = TypeVar("T")

STREAM_TIMEOUT_S = 7 * 24 * 3600  # a log stream's socket timeout: a quiet server is not a broken stream
EXIT_CHECK_RETRY_S = 1.0  # a log stream ended but the engine does not answer: look again this often
MAX_POOL = 256  # connections to the engine: one per followed log, plus calls


@dataclasses.dataclass(eq=False)
class ContainerInstance(Instance):
    """An instance in a container. `exit_reason` says why it ended when the engine knows more than the code."""

    container_id: str = ""
    container_name: str = ""
    image: str = ""
    timings: dict[str, float] = dataclasses.field(default_factory=dict)  # pull, create, start (seconds)

    def describe(self) -> str:
        return f"container {self.container_name or self.container_id[:12]} ({self.address})"


@dataclasses.dataclass(eq=False)
class _Tracked:
    instance: ContainerInstance
    container: Container
    memory_limit: int | None
    finishing: bool = False
    oom: OomWatch | None = None
    last_log_at: float = 0.0  # wall clock of the last log chunk (a followed stream that breaks resumes there)
    followed_at: float = 0.0  # when the latest log stream was opened (monotonic)


ModelSettings = Callable[[OpenModelConfig], ModelContainerConfig]


def _model_settings(spec: OpenModelConfig) -> ModelContainerConfig:
    """The model's `container` table once config.py has one; the defaults until then."""
    table = getattr(spec, "container", None)
    if isinstance(table, ModelContainerConfig):
        return table
    if isinstance(table, Mapping):
        return ModelContainerConfig.model_validate(table)
    return ModelContainerConfig()


class ContainerBackend(Backend):
    """Instances as containers of a Docker Engine API (module docstring)."""

    def __init__(
        self,
        config: ContainerConfig,
        runtime: RuntimeConfig,
        *,
        data_dir: Path | None = None,
        hf_cache: Path | None = None,
        model_settings: ModelSettings = _model_settings,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """`data_dir`: where the server's identity is kept (`<data_dir>/containers/`); None: no leftovers are
        told apart. `hf_cache`: the Hugging Face cache to mount ([hub] cache_dir). `model_settings`: a model's
        container table (its `container` key by default). `environ`: what the instances' environment is drawn
        from (the process's by default)."""
        self.config = config
        self._runtime = runtime
        self._environ = os.environ if environ is None else environ
        self.url = config.url or default_engine_url(self._environ)
        self._hf_cache = hf_cache if config.mount_hf_cache else None
        self._model_settings = model_settings
        self._owner = Ownership(data_dir / "containers" if data_dir is not None else None)
        self._log_dir: Path | None = Path(runtime.log_dir) if runtime.log_dir else None
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="unimodel-container")
        self._connect_lock = threading.Lock()
        self._client: docker.DockerClient | None = None
        self._streams: docker.DockerClient | None = None  # for followed logs: no read timeout
        self._sweep_pending = False
        self._tracked: dict[str, _Tracked] = {}
        self._pulls: dict[str, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.oom_kills: dict[str, int] = {}  # model id → containers of it the kernel killed for memory

    # ── plumbing ────────────────────────────────────────────────────────────

    @property
    def server_id(self) -> str:
        return self._owner.server_id

    @property
    def owner_token(self) -> str:
        return self._owner.token

    @property
    def log_dir(self) -> Path:
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="unimodel-instances-"))
        self._log_dir.mkdir(parents=True, exist_ok=True)
        return self._log_dir

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` in the backend's threads; engine connection failures become
        ContainerEngineUnavailable."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(self._guarded, fn, *args, **kwargs))

    def _guarded(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except requests.exceptions.ConnectionError as exc:
            self._drop_client()
            raise self._unreachable(exc) from None

    def _make_client(self, timeout: float, version: str | None) -> docker.DockerClient:
        env = {k: v for k, v in self._environ.items() if k.startswith("DOCKER_")}
        env["DOCKER_HOST"] = self.url  # with DOCKER_TLS_VERIFY / DOCKER_CERT_PATH when the environment has them
        return docker.DockerClient.from_env(
            version=version, timeout=math.ceil(timeout), max_pool_size=MAX_POOL, environment=env
        )

    def _connect(self) -> docker.DockerClient:
        """The engine's client, connected now if it is not yet (then the pending leftover sweep runs)."""
        with self._connect_lock:
            if self._client is not None:
                return self._client
            try:
                client = self._make_client(self.config.api_timeout_s, None)  # asks the engine its API version
            except docker.errors.DockerException as exc:
                raise self._unreachable(exc) from None
            self._streams = self._make_client(STREAM_TIMEOUT_S, client.api.api_version)
            self._client = client
            log.info("container engine at %s: API %s", self.url, client.api.api_version)
        if self._sweep_pending:
            self._sweep_pending = False
            self._sweep(client)
        return client

    def _drop_client(self) -> None:
        with self._connect_lock:
            for client in (self._client, self._streams):
                if client is not None:
                    with contextlib.suppress(Exception):
                        client.close()
            self._client = self._streams = None

    def _unreachable(self, exc: BaseException) -> ContainerEngineUnavailable:
        text = str(exc)
        if "No such file or directory" in text:
            why = "no socket there"
        elif "Connection refused" in text:
            why = "connection refused"
        elif "Permission denied" in text:
            why = "permission denied: this user may not use it"
        else:
            why = re.sub(r"\s+", " ", text)[:300]
        return ContainerEngineUnavailable(
            f"the container engine at {display_url(self.url)} cannot be reached ({why}); start it (Podman: "
            "`podman system service`; Docker: `systemctl start docker`) or point [runtime.container] url "
            "(or DOCKER_HOST) at it"
        )

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ── images ──────────────────────────────────────────────────────────────

    async def _ensure_image(self, client: docker.DockerClient, image: str, policy: str, model_id: str) -> None:
        if policy != "always":
            if await self._call(image_present, client, image):
                return
            if policy == "never":
                raise ContainerImageMissing(
                    f"image '{image}' of model '{model_id}' is not in the container engine at "
                    f'{display_url(self.url)}, and pull = "never": {build_hint(image)}, or set pull = '
                    '"if-missing"'
                )
        pull = self._pulls.get(image)
        if pull is None:  # concurrent starts share one pull
            pull = asyncio.ensure_future(self._call(self._pull, client, image, model_id))
            self._pulls[image] = pull
            pull.add_done_callback(lambda _f: self._pulls.pop(image, None))
        await asyncio.shield(pull)

    def _pull(self, client: docker.DockerClient, image: str, model_id: str) -> None:
        repository, tag = split_image(image)
        log.info("pulling image %s for model %s", image, model_id)
        started = time.monotonic()
        try:
            for line in client.api.pull(repository, tag=tag, stream=True, decode=True):
                error = line.get("error") if isinstance(line, dict) else None
                if error:
                    raise ContainerImagePullFailed(self._pull_failed(image, model_id, str(error)))
        except docker.errors.APIError as exc:
            raise ContainerImagePullFailed(self._pull_failed(image, model_id, explain(exc))) from None
        log.info("pulled image %s in %.1f s", image, time.monotonic() - started)

    def _pull_failed(self, image: str, model_id: str, why: str) -> str:
        return (
            f"image '{image}' of model '{model_id}' could not be pulled by the container engine at "
            f"{display_url(self.url)} ({scrub(why)}): {build_hint(image)}, or check the image name and the "
            "engine's registry access"
        )

    # ── starting ────────────────────────────────────────────────────────────

    def create_options(self, spec: OpenModelConfig, settings: ModelContainerConfig, name: str) -> dict[str, Any]:
        """The container this backend makes for an instance of `spec` (the `containers.create` keywords)."""
        return create_options(
            self.config, self._runtime, self._environ, self._hf_cache, self._owner, spec, settings, name
        )

    async def start(self, spec: OpenModelConfig, instance_id: str) -> ContainerInstance:
        if self._closed:
            raise ContainerStartFailed(f"the container backend is shut down; instance {instance_id} not started")
        settings = self._model_settings(spec)
        image = settings.image or self.config.image
        started = time.monotonic()
        client = await self._call(self._connect)
        await self._ensure_image(client, image, settings.pull or self.config.pull, spec.id)
        pulled = time.monotonic()
        name = f"unimodel-{safe_name(instance_id)}-{secrets.token_hex(3)}"
        options = self.create_options(spec, settings, name)
        try:
            container = await self._call(client.containers.create, **options)
        except docker.errors.ImageNotFound:
            raise ContainerImageMissing(
                f"image '{image}' of model '{spec.id}' is not in the container engine at {display_url(self.url)}: "
                f"{build_hint(image)}"
            ) from None
        except docker.errors.APIError as exc:
            raise ContainerStartFailed(
                f"the container engine refused to create a container of image '{image}' for model '{spec.id}': "
                f"{scrub(explain(exc))}"
            ) from None
        created = time.monotonic()
        try:
            await self._call(container.start)
            running = time.monotonic()
            await self._call(container.reload)
            port = published_port(container.attrs, settings.port)
            if port is None:
                raise ContainerStartFailed(
                    f"the container of image '{image}' for model '{spec.id}' has no published port for "
                    f"{settings.port}/tcp"
                )
        except BaseException as exc:
            self._spawn_removal(container)
            if isinstance(exc, docker.errors.APIError):
                raise ContainerStartFailed(
                    f"the container of image '{image}' for model '{spec.id}' could not start: {scrub(explain(exc))}"
                ) from None
            raise
        state = container.attrs.get("State") or {}
        instance = ContainerInstance(
            id=instance_id,
            model_id=spec.id,
            address=f"http://{self.config.address_host()}:{port}",
            log_path=self.log_dir / f"{safe_name(instance_id)}.log",
            container_id=container.id or "",
            container_name=name,
            image=image,
            health_path=settings.health_path,
            timings={"pull": pulled - started, "create": created - pulled, "start": running - created},
        )
        tracked = _Tracked(instance, container, settings.memory_bytes())
        pid = state.get("Pid")
        if isinstance(pid, int) and pid > 0:
            self._watch_oom(tracked, pid)
        self._tracked[instance_id] = tracked
        self._follow(tracked, header=True)
        log.info(
            "instance %s of %s started: container %s (%s) of %s on port %d, log %s (create %.2f s, start %.2f s)",
            instance_id,
            spec.id,
            name,
            (container.id or "")[:12],
            image,
            port,
            instance.log_path,
            created - pulled,
            running - created,
        )
        return instance

    # ── watching ────────────────────────────────────────────────────────────

    def _watch_oom(self, tracked: _Tracked, pid: int) -> None:
        watch = OomWatch.of(pid, tracked.instance.container_id)
        if watch is None or watch.fd is None:
            return
        tracked.oom = watch
        loop = asyncio.get_running_loop()
        fd = watch.fd

        def readable() -> None:
            if watch.read():
                watch.events += 1  # the kernel ran out of memory in the cgroup (its counter may lag the notice)
            else:
                loop.remove_reader(fd)

        loop.add_reader(fd, readable)

    def _follow(self, tracked: _Tracked, *, header: bool = False, since: float | None = None) -> None:
        """Copy the container's log into the instance's log file in a thread of its own; when the stream ends,
        find out whether the container has stopped."""
        loop = asyncio.get_running_loop()
        streams = self._streams
        instance = tracked.instance
        if streams is None:  # the engine went away meanwhile: find out when it is back
            self._spawn(self._check_exit(tracked), f"exit:{instance.id}")
            return
        assert instance.log_path is not None
        log_path = instance.log_path
        tracked.followed_at = time.monotonic()

        def follow() -> None:
            try:
                with open(log_path, "ab") as out:
                    if header:
                        out.write(
                            f"unimodel: container {instance.container_name} ({instance.container_id[:12]}) of image "
                            f"{instance.image}, at {instance.address}\n".encode()
                        )
                        out.flush()
                    stream = streams.api.logs(
                        instance.container_id, stdout=True, stderr=True, stream=True, follow=True, since=since
                    )
                    for chunk in stream:
                        out.write(chunk)
                        out.flush()
                        tracked.last_log_at = time.time()
            except Exception as exc:  # the engine went away, or the container was removed under us
                log.debug("instance %s: log stream ended: %s", instance.id, exc)
            finally:
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                    loop.call_soon_threadsafe(self._stream_ended, tracked)

        threading.Thread(target=follow, name=f"unimodel-logs:{instance.id}", daemon=True).start()

    def _stream_ended(self, tracked: _Tracked) -> None:
        if not tracked.finishing:
            self._spawn(self._check_exit(tracked), f"exit:{tracked.instance.id}")

    async def _check_exit(self, tracked: _Tracked) -> None:
        """The log stream ended: the container stopped (finish it), or the stream broke (follow it again once
        the engine answers; until then look again every EXIT_CHECK_RETRY_S)."""
        warned = False
        while not tracked.finishing:
            try:
                await self._call(tracked.container.reload)
                state = tracked.container.attrs.get("State") or {}
                if not (state.get("Running") or state.get("Status") in ("running", "paused", "restarting")):
                    code = state.get("ExitCode")
                    oom = bool(state.get("OOMKilled"))
                    self._finish(tracked, code if isinstance(code, int) else None, engine_oom=oom)
                    return
                await self._call(self._connect)  # a new log stream needs the stream client
                if time.monotonic() - tracked.followed_at < EXIT_CHECK_RETRY_S:
                    # The stream ended at once (a log driver that cannot be followed): look every so often.
                    await asyncio.sleep(EXIT_CHECK_RETRY_S)
                    continue
                if self._streams is not None:
                    self._follow(tracked, since=tracked.last_log_at or None)
                    return
            except docker.errors.NotFound:
                self._finish(tracked, None, engine_oom=False, why="its container was removed by someone else")
                return
            except (ContainerEngineUnavailable, docker.errors.APIError) as exc:
                if not warned:
                    warned = True
                    log.warning(
                        "instance %s: cannot inspect its container (%s); trying again", tracked.instance.id, exc
                    )
            await asyncio.sleep(EXIT_CHECK_RETRY_S)

    def _finish(self, tracked: _Tracked, code: int | None, *, engine_oom: bool, why: str | None = None) -> None:
        """The container has stopped: say why in its log, set `exited`, remove it."""
        if tracked.finishing:
            return
        tracked.finishing = True
        instance = tracked.instance
        if tracked.oom is not None:
            tracked.oom.read()
            tracked.oom.close()
        watch = tracked.oom
        oom = engine_oom or (watch is not None and (watch.kills > 0 or (watch.events > 0 and code == 137)))
        lines: list[str] = []
        if oom:
            limit = f" of {size(tracked.memory_limit)}" if tracked.memory_limit else ""
            instance.oom_killed = True
            instance.exit_reason = f"killed for running out of memory (OOMKilled; memory limit{limit})"
            self.oom_kills[instance.model_id] = self.oom_kills.get(instance.model_id, 0) + 1
            lines.append(
                f"unimodel: container {instance.container_name} was killed for running out of memory (OOMKilled, "
                f"exit code {code}); raise its memory limit{limit} ([models.container] memory)"
            )
        elif why is not None:
            instance.exit_reason = why
            lines.append(f"unimodel: container {instance.container_name}: {why}")
        if lines and instance.log_path is not None:
            with contextlib.suppress(OSError), open(instance.log_path, "ab") as out:
                out.write(("\n".join(lines) + "\n").encode())
        if oom:
            log.error(
                "instance %s of %s: %s (container %s)",
                instance.id,
                instance.model_id,
                instance.exit_reason,
                instance.container_name,
            )
        instance.returncode = code
        instance.exited.set()
        self._tracked.pop(instance.id, None)
        self._spawn_removal(tracked.container)

    def _spawn_removal(self, container: Container) -> None:
        async def removal() -> None:
            try:
                await self._call(remove, container)
            except Exception as exc:
                log.warning("could not remove container %s: %s", container.name, exc)

        self._spawn(removal(), f"remove:{container.name}")

    # ── stopping ────────────────────────────────────────────────────────────

    async def stop(self, instance: Instance, grace_s: float = 10.0) -> None:
        tracked = self._tracked.get(instance.id)
        if tracked is None or instance.exited.is_set():
            return
        try:
            await self._call(tracked.container.stop, timeout=max(0, math.ceil(grace_s)))
        except docker.errors.NotFound:
            pass
        except Exception as exc:
            log.warning("instance %s: stopping its container failed (%s); killing it", instance.id, exc)
            await self._kill(tracked)
        await self._exited(tracked, grace_s + 15)

    async def kill(self, instance: Instance) -> None:
        tracked = self._tracked.get(instance.id)
        if tracked is None or instance.exited.is_set():
            return
        await self._kill(tracked)
        await self._exited(tracked, 15)

    async def _kill(self, tracked: _Tracked) -> None:
        try:
            await self._call(tracked.container.kill)
        except (docker.errors.APIError, ContainerEngineUnavailable) as exc:  # not running any more, or no engine
            log.debug("instance %s: kill: %s", tracked.instance.id, exc)

    async def _exited(self, tracked: _Tracked, within_s: float) -> None:
        """Wait for the exit to be seen; past `within_s` (an engine that does not answer) take it as exited."""
        try:
            await asyncio.wait_for(tracked.instance.exited.wait(), within_s)
        except TimeoutError:
            log.warning(
                "instance %s: its container was not seen to stop within %.0f s; forgetting it",
                tracked.instance.id,
                within_s,
            )
            self._finish(tracked, None, engine_oom=False, why="not seen to stop; forgotten")

    async def stop_leftovers(self) -> None:
        if not self._owner.persistent:
            return
        try:
            client = await self._call(self._connect)
        except ContainerEngineUnavailable as exc:
            self._sweep_pending = True
            log.warning("containers left by a previous run will be removed once the engine answers: %s", exc)
            return
        await self._call(self._sweep, client)

    def _sweep(self, client: docker.DockerClient) -> list[str]:
        """Remove this server's containers whose run is gone; the names removed."""
        removed: list[str] = []
        found = client.containers.list(all=True, filters={"label": f"{LABEL_SERVER}={self._owner.server_id}"})
        for container in found:
            labels = container.labels
            owner = labels.get(LABEL_OWNER, "")
            if self._owner.alive(owner):
                continue
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
            removed.append(container.name or container.id or "?")
            log.warning(
                "removed container %s (instance %s of %s), left by a run of this server that is gone",
                container.name,
                labels.get(LABEL_INSTANCE, "?"),
                labels.get(LABEL_MODEL, "?"),
            )
        self._owner.forget_dead()
        return removed

    def running(self) -> list[str]:
        """The ids of the instances whose container has not been seen to stop."""
        return list(self._tracked)

    def metrics(self) -> dict[str, dict[str, int]]:
        """Per model: `oom_kills`, its containers the kernel killed for memory."""
        return {model: {"oom_kills": n} for model, n in self.oom_kills.items()}

    async def aclose(self) -> None:
        """Stop every container of this run (5 s grace), remove them, and let go of the engine and the lock."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(self.stop(t.instance, grace_s=5.0) for t in list(self._tracked.values())))
        while self._tasks:
            await asyncio.wait(list(self._tasks))
        if self._client is not None:
            client = self._client
            try:
                await self._call(self._remove_owned, client)
            except Exception as exc:
                log.warning("could not list this run's containers to remove them: %s", exc)
        self._drop_client()
        self._owner.release()
        self._pool.shutdown(wait=False)

    def _remove_owned(self, client: docker.DockerClient) -> None:
        """Anything still labelled with this run (a start cancelled between create and return)."""
        for container in client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={self._owner.token}"}):
            remove(container)


def container_backend(
    settings: Settings,
    config: ContainerConfig | None = None,
    *,
    model_settings: ModelSettings = _model_settings,
) -> ContainerBackend:
    """The backend for `settings` (`backends.FACTORIES["container"]`): `config` defaults to `[runtime] container`
    once config.py has it; the identity lives in `[store] data_dir`, the cache mounted is `[hub] cache_dir`'s."""
    from ...hub.settings import HubSettings

    if config is None:
        table = getattr(settings.runtime, "container", None)
        config = table if isinstance(table, ContainerConfig) else ContainerConfig()
    return ContainerBackend(
        config,
        settings.runtime,
        data_dir=Path(settings.store.data_dir).expanduser(),
        hf_cache=HubSettings.resolve(settings.hub).cache_dir,
        model_settings=model_settings,
    )
