"""The container backend's settings: `[runtime.container]` (the engine, defaults) and a model's `container` table.

    [runtime]
    backend = "container"

    [runtime.container]                # every key optional
    url = "unix:///run/podman/podman.sock"   # DOCKER_HOST, else the first standard socket that exists
    image = "unimodel-worker:latest"   # for models that name none
    pull = "if-missing"                # never | if-missing | always

    [[models]]
    id = "Qwen/Qwen2.5-0.5B-Instruct-GGUF"
    engine = "llama.cpp"
    [models.container]                 # every key optional
    memory = "4g"
    cpus = 2

Plain pydantic models beside config.py (which takes them as `RuntimeConfig.container` and
`OpenModelConfig.container`), not inside runtime/, which imports the config. Sizes (`memory`, `shm_size`) are
bytes or a number with a unit (k, m, g, t: powers of 1024, as Docker reads them).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

__all__ = [
    "TEMPLATE_FIELDS",
    "ContainerConfig",
    "ModelContainerConfig",
    "PullPolicy",
    "default_engine_url",
    "parse_size",
    "render",
]

PullPolicy = Literal["never", "if-missing", "always"]
TEMPLATE_FIELDS = ("model", "port", "path")  # what `command` and `args` may name: {model}, {port}, {path}
DEFAULT_IMAGE = "unimodel-worker:latest"

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def parse_size(value: int | str) -> int:
    """Bytes from `512m`, `8g`, `1.5GiB`, `1048576` (k, m, g, t: powers of 1024). Raises `ValueError`."""
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"{value} is not a size: give a positive number of bytes, or e.g. '512m', '8g'")
        return value
    match = _SIZE.match(value)
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"'{value}' is not a size: give bytes, or a number with k, m, g or t, e.g. '512m', '8g'")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def render(template: str | list[str], values: Mapping[str, str]) -> list[str]:
    """A command line from a template: a string is split like a shell would (before substitution, so a path
    with spaces stays one argument), a list is taken as it is; then {model}, {port} and {path} are filled in."""
    parts = shlex.split(template) if isinstance(template, str) else list(template)
    return [_PLACEHOLDER.sub(lambda m: values[m.group(1)], part) for part in parts]


def _check_template(template: str | list[str] | None, key: str) -> str | list[str] | None:
    if template is None:
        return None
    try:
        parts = shlex.split(template) if isinstance(template, str) else template
    except ValueError as exc:
        raise ValueError(f"{key}: {exc} in {template!r}") from None
    for part in parts:
        for name in _PLACEHOLDER.findall(part):
            if name not in TEMPLATE_FIELDS:
                known = ", ".join("{" + n + "}" for n in TEMPLATE_FIELDS)
                raise ValueError(f"{key}: unknown placeholder {{{name}}} in {template!r}; use {known}")
    if not parts:
        raise ValueError(f"{key} is empty; leave it out to use the image's own")
    return template


def default_engine_url(environ: Mapping[str, str] | None = None) -> str:
    """`DOCKER_HOST`, else the first of Docker's, rootful Podman's and rootless Podman's sockets that exists,
    else Docker's (named in the error when nothing answers there)."""
    env = os.environ if environ is None else environ
    if env.get("DOCKER_HOST"):
        return env["DOCKER_HOST"]
    candidates = ["/var/run/docker.sock", "/run/podman/podman.sock"]
    if env.get("XDG_RUNTIME_DIR"):
        candidates += [f"{env['XDG_RUNTIME_DIR']}/podman/podman.sock", f"{env['XDG_RUNTIME_DIR']}/docker.sock"]
    for path in candidates:
        if Path(path).exists():
            return f"unix://{path}"
    return "unix:///var/run/docker.sock"


class ContainerConfig(BaseModel):
    """`[runtime.container]`: the container engine, and defaults for every model's containers."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        default=None,
        description="The Docker Engine API (Docker, or Podman's `podman system service`): unix:///path, "
        "tcp://host:port, ssh://user@host. DOCKER_HOST, else the first standard socket that exists.",
    )
    image: str = Field(default=DEFAULT_IMAGE, description="The image of models that name none (`make image`).")
    pull: PullPolicy = Field(
        default="if-missing", description="When to pull an image: never, if-missing, always (before each start)."
    )
    host: str = Field(
        default="127.0.0.1",
        description="The host address containers' ports are published on (loopback: only this machine).",
    )
    connect_host: str | None = Field(
        default=None,
        description="The address the gateway connects to; `host` unless that is 0.0.0.0 or :: (then 127.0.0.1). "
        "Set it when the engine runs on another machine.",
    )
    mount_hf_cache: bool = Field(
        default=True,
        description="Mount the Hugging Face cache ([hub] cache_dir) read-only at the same path in every container.",
    )
    init: bool = Field(
        default=True, description="Run an init process as PID 1 (signals reach the server; zombies are reaped)."
    )
    network: str | None = Field(default=None, description="The engine's network to attach to; its default if unset.")
    ulimits: dict[str, str] = Field(
        default_factory=dict,
        description='Limits for every container, e.g. { nofile = "1024:1024" } (soft:hard, or one value for both).',
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels for every container besides unimodel's own (io.unimodel.*)."
    )
    api_timeout_s: float = Field(default=60.0, gt=0, description="The longest one Engine API call may take.")

    @field_validator("ulimits")
    @classmethod
    def _check_ulimits(cls, limits: dict[str, str]) -> dict[str, str]:
        for name, value in limits.items():
            if not re.fullmatch(r"[a-z]+", name):
                raise ValueError(f"ulimits: '{name}' is not a limit name (nofile, nproc, memlock, …)")
            if not re.fullmatch(r"-?\d+(:-?\d+)?", str(value)):
                raise ValueError(f"ulimits.{name}: '{value}' is not SOFT:HARD or one number")
        return limits

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for name in labels:
            if name.startswith("io.unimodel."):
                raise ValueError(f"labels: '{name}' is one of unimodel's own (io.unimodel.*); choose another name")
        return labels

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"^(unix|tcp|ssh|npipe|http|https)://", url):
            raise ValueError(f"'{url}' is not an engine address: use unix:///path, tcp://host:port or ssh://user@host")
        return url

    def address_host(self) -> str:
        """The host the gateway connects to for a published port."""
        if self.connect_host:
            return self.connect_host
        return "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host


class ModelContainerConfig(BaseModel):
    """A `[[models]]` table's `container` table: the image its instances run and the resources they get.

    Without `args` the container gets the unimodel worker's command line (docs/open-models.md, "The worker":
    `--engine … --port <port> --host 0.0.0.0`), which is what `unimodel-worker` images take; an image of another
    server (vLLM, llama.cpp's llama-server) sets `args` (and `command` to replace its entry point)."""

    model_config = ConfigDict(extra="forbid")

    image: str | None = Field(default=None, description="The image; [runtime.container] image when unset.")
    command: str | list[str] | None = Field(
        default=None, description="Replaces the image's entry point; may hold {model}, {port} and {path}."
    )
    args: str | list[str] | None = Field(
        default=None,
        description="The arguments (the image's CMD); may hold {model}, {port} and {path}. Unset: the unimodel "
        "worker's command line.",
    )
    port: int = Field(default=8000, ge=1, le=65535, description="The port the server listens on inside the container.")
    health_path: str = Field(default="/health", description="The path that answers 200 once the model is loaded.")
    volumes: list[str] = Field(
        default_factory=list,
        description='Extra mounts, "SOURCE:TARGET[:ro|rw]" (SOURCE: an absolute host path, or a named volume).',
    )
    cpus: float | None = Field(default=None, gt=0, description="CPU cores the container may use (e.g. 1.5).")
    memory: int | str | None = Field(default=None, description="Memory limit, e.g. '4g'; past it the kernel kills.")
    shm_size: int | str | None = Field(default=None, description="Size of /dev/shm, e.g. '1g' (vLLM wants several).")
    gpus: Literal["all"] | int | list[str] | None = Field(
        default=None, description='GPUs (Docker device requests): "all", a count, or device ids ["0", "1"].'
    )
    devices: list[str] = Field(
        default_factory=list,
        description='Devices, "HOST[:CONTAINER[:rwm]]"; with Podman also CDI names ("nvidia.com/gpu=all").',
    )
    pull: PullPolicy | None = Field(default=None, description="[runtime.container] pull when unset.")

    @field_validator("command", "args")
    @classmethod
    def _check_templates(cls, template: str | list[str] | None, info: ValidationInfo) -> str | list[str] | None:
        return _check_template(template, info.field_name or "command")

    @field_validator("memory", "shm_size")
    @classmethod
    def _check_size(cls, value: int | str | None) -> int | str | None:
        if value is not None:
            parse_size(value)
        return value

    @field_validator("health_path")
    @classmethod
    def _check_health_path(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError(f"health_path '{path}' must start with '/'")
        return path

    @field_validator("volumes")
    @classmethod
    def _check_volumes(cls, volumes: list[str]) -> list[str]:
        for volume in volumes:
            parts = volume.split(":")
            if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
                raise ValueError(f"volume '{volume}' is not SOURCE:TARGET[:ro|rw] with an absolute TARGET")
            if len(parts) == 3 and parts[2] not in ("ro", "rw"):
                raise ValueError(f"volume '{volume}': the mode must be ro or rw, not '{parts[2]}'")
        return volumes

    @field_validator("gpus")
    @classmethod
    def _check_gpus(cls, gpus: str | int | list[str] | None) -> str | int | list[str] | None:
        if isinstance(gpus, int) and gpus < 1:
            raise ValueError(f'gpus = {gpus}: give a count of at least 1, "all", or device ids')
        return gpus

    def memory_bytes(self) -> int | None:
        return None if self.memory is None else parse_size(self.memory)

    def shm_bytes(self) -> int | None:
        return None if self.shm_size is None else parse_size(self.shm_size)
