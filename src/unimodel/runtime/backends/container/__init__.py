"""The container backend: one container per instance, through the Docker Engine API (Docker, or Podman's
Docker-compatible service), with the official `docker` SDK.

    backend = ContainerBackend(ContainerConfig(), settings.runtime, data_dir=Path(settings.store.data_dir))
    instance = await backend.start(spec, "smollm2-1")     # pulled if need be, created, started: not yet ready
    await instance.exited.wait()                          # or: await backend.stop(instance, grace_s=10)

What a container gets (unimodel/container_settings.py has the settings):
- the model's image (`[models.container] image`, else `[runtime.container] image`, `unimodel-worker:latest` by
  default, pulled by the `pull` policy: never, if-missing, always), and its `command`/`args` templates, or else
  the unimodel worker's command line with `--host 0.0.0.0 --port <port>`;
- its `port` published on `[runtime.container] host` (loopback by default) on a port the engine picks: the
  instance's address is `http://<connect host>:<published port>`;
- the Hugging Face cache mounted read-only at the same path (weights pulled once serve every container), the
  model's local `path` read-only at the same path, and the model's `volumes`; `cpus`, `memory`, `shm_size`,
  `gpus` (device requests) and `devices`;
- the environment of instance_env.py (an allow-list: never the gateway's secrets) less what describes this
  machine rather than the image (PATH, HOME, PYTHONPATH, VIRTUAL_ENV, …), plus HF_HUB_CACHE and HF_HUB_OFFLINE=1;
- labels naming its owner: this server (`io.unimodel.server`, an id kept in `<data_dir>/containers/server-id`)
  and this run of it (`io.unimodel.owner`, a token whose lock file `<data_dir>/containers/owners/<token>.lock`
  this process holds while it runs: the kernel lets go of it however the process ends).

Watching: a thread per container follows its log into the instance's log file (`[runtime] log_dir`, as the
local backend's); the stream ends when the container stops, and the container is then inspected: its exit code
becomes `returncode` (137 after SIGKILL, as engines report it), an OOM kill (the engine's `OOMKilled`, or, on a
cgroup v1 host where Podman does not report it, the container's memory cgroup's own OOM counter, watched with an
eventfd) is written to its log and counted (`metrics()`), `exited` is set, and the container is removed.

Leftovers: `stop_leftovers` removes the containers labelled with this server's id whose owner no longer holds its
lock (a run that crashed or was SIGKILLed); containers of a run that still holds its lock (another server
sharing the data folder) are left alone, and so are every other server's. `aclose` removes every container of
this run. A container engine that cannot be reached does not stop the server: starts fail with a 503 naming the
socket, and the leftovers are swept at the first successful connection.

The SDK blocks: its calls run in this backend's own threads, never on the event loop.
"""

from ...instance_env import HOST_ONLY
from .backend import ContainerBackend, ContainerInstance, container_backend
from .errors import (
    ContainerEngineUnavailable,
    ContainerError,
    ContainerImageMissing,
    ContainerImagePullFailed,
    ContainerStartFailed,
)
from .options import container_environment, create_options
from .ownership import LABEL_INSTANCE, LABEL_MODEL, LABEL_OWNER, LABEL_SERVER, Ownership

__all__ = [
    "HOST_ONLY",
    "LABEL_INSTANCE",
    "LABEL_MODEL",
    "LABEL_OWNER",
    "LABEL_SERVER",
    "ContainerBackend",
    "ContainerEngineUnavailable",
    "ContainerError",
    "ContainerImageMissing",
    "ContainerImagePullFailed",
    "ContainerInstance",
    "ContainerStartFailed",
    "Ownership",
    "container_backend",
    "container_environment",
    "create_options",
]
