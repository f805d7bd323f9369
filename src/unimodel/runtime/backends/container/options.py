"""What a container of an instance is made with — the engine's `containers.create` keywords for a model's spec and
its container table: pure translation, no I/O (the environment is read from the `environ` given)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from docker.types import DeviceRequest, Mount, Ulimit

from ....config import OpenModelConfig, RuntimeConfig
from ....container_settings import ContainerConfig, ModelContainerConfig, render
from ...instance_env import remote_instance_environment
from ..local import worker_command
from .ownership import LABEL_INSTANCE, LABEL_MODEL, LABEL_OWNER, LABEL_SERVER, Ownership


def container_environment(
    environ: Mapping[str, str],
    pass_env: list[str],
    model_env: Mapping[str, str],
    hf_cache: str | None,
) -> dict[str, str]:
    """A container's environment: instance_env.py's allow-list, less what describes this machine (HOST_ONLY),
    unless pass_env or the model's env names it; the mounted Hugging Face cache, offline."""
    env = remote_instance_environment(environ, pass_env, model_env)
    if hf_cache is not None:
        env.setdefault("HF_HUB_CACHE", hf_cache)
        env.setdefault("HF_HUB_OFFLINE", "1")  # the gateway pulls; a container reads the cache (read-only)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def create_options(
    config: ContainerConfig,
    runtime: RuntimeConfig,
    environ: Mapping[str, str],
    hf_cache: Path | None,
    owner: Ownership,
    spec: OpenModelConfig,
    settings: ModelContainerConfig,
    name: str,
) -> dict[str, Any]:
    """The container's settings (the `containers.create` keywords) for an instance of `spec`."""
    image = settings.image or config.image
    values = {"model": spec.id, "port": str(settings.port), "path": spec.path or ""}
    if settings.args is not None:
        args: list[str] = render(settings.args, values)
    else:  # the unimodel worker: listening on every address of the container, not only its loopback
        args = [*worker_command(spec, settings.port, program=()), "--host", "0.0.0.0"]
    mounts: list[Mount] = []
    cache = str(hf_cache) if hf_cache is not None and hf_cache.is_dir() else None
    if cache is not None:
        mounts.append(Mount(target=cache, source=cache, type="bind", read_only=True))
    if spec.path and not (cache is not None and _inside(spec.path, cache)):
        mounts.append(Mount(target=spec.path, source=spec.path, type="bind", read_only=True))
    for volume in settings.volumes:
        source, target, *mode = volume.split(":")
        if source.startswith("/"):
            mounts.append(Mount(target=target, source=source, type="bind", read_only=mode == ["ro"]))
        else:
            mounts.append(Mount(target=target, source=source, type="volume", read_only=mode == ["ro"]))
    env = container_environment(environ, runtime.pass_env, spec.env, cache)
    labels = {
        **config.labels,
        LABEL_SERVER: owner.server_id,
        LABEL_OWNER: owner.token,
        LABEL_INSTANCE: name,
        LABEL_MODEL: spec.id,
    }
    options: dict[str, Any] = {
        "image": image,
        "command": args,
        "name": name,
        "labels": labels,
        "environment": env,
        "ports": {f"{settings.port}/tcp": (config.host, 0)},  # 0: a free port, picked by the engine
        "mounts": mounts,
        "init": config.init,
        "detach": True,
    }
    if settings.command is not None:
        options["entrypoint"] = render(settings.command, values)
    if settings.cpus is not None:
        options["nano_cpus"] = int(settings.cpus * 1e9)
    if (memory := settings.memory_bytes()) is not None:
        options["mem_limit"] = memory
        options["memswap_limit"] = memory  # no swap beyond the limit: past it is an OOM kill, not a crawl
    if (shm := settings.shm_bytes()) is not None:
        options["shm_size"] = shm
    if settings.gpus is not None:
        options["device_requests"] = [_gpu_request(settings.gpus)]
    if settings.devices:
        options["devices"] = list(settings.devices)
    if config.network is not None:
        options["network"] = config.network
    if config.ulimits:
        options["ulimits"] = [_ulimit(n, v) for n, v in config.ulimits.items()]
    return options


def _gpu_request(gpus: str | int | list[str]) -> DeviceRequest:
    if gpus == "all":
        return DeviceRequest(count=-1, capabilities=[["gpu"]])
    if isinstance(gpus, int):
        return DeviceRequest(count=gpus, capabilities=[["gpu"]])
    return DeviceRequest(device_ids=list(gpus), capabilities=[["gpu"]])


def _ulimit(name: str, value: str) -> Ulimit:
    soft, _, hard = value.partition(":")
    return Ulimit(name=name, soft=int(soft), hard=int(hard or soft))


def _inside(path: str, folder: str) -> bool:
    try:
        return Path(path).resolve().is_relative_to(Path(folder).resolve()) or Path(path).is_relative_to(folder)
    except (OSError, ValueError):
        return False
