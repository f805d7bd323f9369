"""The local backend: instances as subprocesses on this machine.

`LocalBackend` runs `python -m unimodel.runtime.worker …` (docs/open-models.md, "The worker") as a
subprocess in its own process group, on a free loopback port, with stdout and stderr in one log file per
instance. The command line is injectable (`command_for`) so tests can launch a fake worker instead. Each
process inherits the write end of a pipe, named by `UNIMODEL_READY_FD`; the worker writes `ready` there once it
serves (worker/state.py). It also inherits the read end of a lifeline (`UNIMODEL_LIFELINE_FD`, lifeline.py)
whose write end only this process holds: when this process ends, however it ends, the instance kills its
process group and exits. Each instance is recorded in `state_dir` (leftovers.py) so that the next start stops
one that outlived a killed gateway all the same (`stop_leftovers`). Instances start with an environment
allow-list, never the gateway's secrets (instance_env.py).

    backend = LocalBackend(settings.runtime)
    instance = await backend.start(spec, "smollm2-1")     # returns once the process runs (not yet ready)
    await instance.exited.wait()                          # or: backend.stop(instance, grace_s=10)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ...config import OpenModelConfig, RuntimeConfig
from ..instance_env import instance_environment
from ..leftovers import InstanceRecords
from ..lifeline import LIFELINE_FD_ENV, open_lifeline
from .base import Backend, Instance

__all__ = ["CommandFor", "LocalBackend", "free_port", "worker_command"]

log = logging.getLogger("unimodel.runtime")

WORKER_PROGRAM: tuple[str, ...] = (sys.executable, "-m", "unimodel.runtime.worker")
READY_FD_ENV = "UNIMODEL_READY_FD"  # the worker's side: worker/state.py


CommandFor = Callable[[OpenModelConfig, int], Sequence[str]]


def worker_command(spec: OpenModelConfig, port: int, *, program: Sequence[str] = WORKER_PROGRAM) -> list[str]:
    """The worker's command line for `spec` on `port` (docs/open-models.md); `program` replaces the interpreter
    and module (tests pass a fake worker script that takes the same arguments)."""
    argv = [*program, "--engine", spec.engine, "--task", spec.task, "--model-id", spec.id]
    if spec.path:
        argv += ["--path", spec.path]
    argv += ["--port", str(port)]
    for key, value in spec.engine_args.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        argv += ["--engine-arg", f"{key}={text}"]
    if spec.engine == "command":
        argv += ["--command", spec.command or "", "--health-path", spec.health_path]
        argv += ["--start-timeout", f"{spec.start_timeout_s:g}"]
    return argv


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS reports free right now (the worker binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LocalBackend(Backend):
    """Instances as subprocesses on this machine, one log file each under `runtime.log_dir` (or a temp dir)."""

    def __init__(
        self,
        runtime: RuntimeConfig,
        command_for: CommandFor = worker_command,
        *,
        host: str = "127.0.0.1",
        state_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """`state_dir`: where running instances are recorded (None: not recorded). `environ`: the environment
        the instances' allow-list draws from (the process's by default)."""
        self._runtime = runtime
        self._command_for = command_for
        self._host = host
        self._environ = environ
        self._records = InstanceRecords(state_dir) if state_dir is not None else None
        self._log_dir: Path | None = Path(runtime.log_dir) if runtime.log_dir else None
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._lifelines: dict[str, int] = {}  # instance id → the write end of its lifeline

    @property
    def log_dir(self) -> Path:
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="unimodel-instances-"))
        self._log_dir.mkdir(parents=True, exist_ok=True)
        return self._log_dir

    async def start(self, spec: OpenModelConfig, instance_id: str) -> Instance:
        port = free_port(self._host)
        argv = list(self._command_for(spec, port))
        log_path = self.log_dir / f"{_safe_name(instance_id)}.log"
        log.debug("instance %s: %s", instance_id, " ".join(argv))
        out = await asyncio.to_thread(open, log_path, "ab")
        ready_r, ready_w = os.pipe()  # the process writes "ready" to ready_w once it serves
        life_r, life_w = open_lifeline()  # the process dies when life_w closes: with this process at the latest
        environ = os.environ if self._environ is None else self._environ
        env = instance_environment(environ, self._runtime.pass_env, spec.env)
        env |= {"PYTHONUNBUFFERED": "1", READY_FD_ENV: str(ready_w), LIFELINE_FD_ENV: str(life_r)}
        try:
            with out:  # the child has its own copy of the descriptor
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stop() reaches the engine's children too
                    env=env,
                    pass_fds=(ready_w, life_r),
                )
        except BaseException:
            os.close(ready_r)
            os.close(life_w)
            raise
        finally:
            os.close(ready_w)
            os.close(life_r)
        instance = Instance(
            id=instance_id, model_id=spec.id, address=f"http://{self._host}:{port}", pid=proc.pid, log_path=log_path
        )
        self._listen_for_ready(instance, ready_r)
        self._procs[instance_id] = proc
        self._lifelines[instance_id] = life_w
        if self._records is not None:
            self._records.add(instance_id, spec.id, proc.pid)
        self._watchers[instance_id] = asyncio.create_task(self._watch(instance, proc), name=f"watch:{instance_id}")
        log.info("instance %s of %s started: pid %d on %s, log %s", instance_id, spec.id, proc.pid, port, log_path)
        return instance

    def _listen_for_ready(self, instance: Instance, fd: int) -> None:
        """Set `instance.announced` when the process writes "ready" to its end of the pipe; stop listening at
        the end of the pipe (the process wrote, closed it or exited)."""
        loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        received = bytearray()

        def readable() -> None:
            try:
                data = os.read(fd, 64)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            received.extend(data)
            if b"ready" in received:
                instance.announced.set()
            if not data or instance.announced.is_set():
                loop.remove_reader(fd)
                os.close(fd)

        loop.add_reader(fd, readable)

    async def _watch(self, instance: Instance, proc: asyncio.subprocess.Process) -> None:
        try:
            instance.returncode = await proc.wait()
        finally:
            # Anything the worker left in its group (an engine's server) goes with it.
            _signal_group(proc.pid, signal.SIGKILL)
            instance.exited.set()
            self._procs.pop(instance.id, None)
            self._watchers.pop(instance.id, None)
            life_w = self._lifelines.pop(instance.id, None)
            if life_w is not None:
                os.close(life_w)
            if self._records is not None:
                self._records.remove(instance.id)

    async def stop(self, instance: Instance, grace_s: float = 10.0) -> None:
        proc = self._procs.get(instance.id)
        if proc is None or instance.exited.is_set():
            return
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(instance.exited.wait(), grace_s)
        except TimeoutError:
            log.warning("instance %s did not stop within %.1f s of SIGTERM; killing it", instance.id, grace_s)
            _signal_group(proc.pid, signal.SIGKILL)
            await instance.exited.wait()

    async def kill(self, instance: Instance) -> None:
        proc = self._procs.get(instance.id)
        if proc is None or instance.exited.is_set():
            return
        _signal_group(proc.pid, signal.SIGKILL)  # a stopped process dies of SIGKILL too
        await instance.exited.wait()

    async def stop_leftovers(self) -> None:
        if self._records is not None and self._records.enabled:
            await asyncio.to_thread(self._records.sweep)

    def running(self) -> list[str]:
        """The ids of the instances whose process has not exited yet."""
        return list(self._procs)

    async def aclose(self) -> None:
        procs = list(self._procs.values())
        for proc in procs:
            _signal_group(proc.pid, signal.SIGTERM)
        watchers = list(self._watchers.values())
        if watchers:
            _done, pending = await asyncio.wait(watchers, timeout=5.0)
            for proc in procs:
                if proc.returncode is None:
                    _signal_group(proc.pid, signal.SIGKILL)
            if pending:
                await asyncio.wait(pending, timeout=5.0)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "instance"
