"""The Ray backend's settings: `[runtime.ray]` (the cluster, timings) and a model's `ray` table (what an instance
needs from the node that runs it).

    [runtime]
    backend = "ray"

    [runtime.ray]                      # every key optional
    address = "auto"                   # "auto", a head's GCS address "10.0.0.5:6379", or "ray://10.0.0.5:10001"
    namespace = "unimodel"

    [[models]]
    id = "Qwen/Qwen2.5-7B-Instruct"
    engine = "command"
    command = "vllm serve {model} --port {port}"
    [models.ray]                       # every key optional
    num_cpus = 4
    num_gpus = 1
    memory = "16g"
    resources = { "accelerator_type:A100" = 0.001 }

Plain pydantic models beside config.py (which takes them as `RuntimeConfig.ray` and `OpenModelConfig.ray`), not
inside runtime/, which imports the config. Ray itself is not imported here: a config names Ray without it installed.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .container_settings import parse_size

__all__ = ["ModelRayConfig", "RayConfig", "display_address"]

_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$")
_BUILT_IN = {"CPU": "num_cpus", "GPU": "num_gpus", "memory": "memory"}
_CREDENTIALS = re.compile(r"//[^/@]*@")


def display_address(address: str) -> str:
    """The address with any credentials in it shown as ***."""
    return _CREDENTIALS.sub("//***@", address)


class RayConfig(BaseModel):
    """`[runtime.ray]`: the Ray cluster instances run on, and how closely the gateway watches them."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(
        default="auto",
        description='The cluster: "auto" (RAY_ADDRESS, else the cluster this machine is a node of), a head\'s GCS '
        'address "host:port" (this machine must be a Ray node), or a Ray Client address "ray://host:10001".',
    )
    namespace: str = Field(
        default="unimodel", min_length=1, description="The Ray namespace the instances' named actors live in."
    )
    node_ip_address: str | None = Field(
        default=None,
        description="This machine's address as its Ray node knows it, when Ray's guess is wrong (several "
        "addresses, or several nodes on one machine).",
    )
    connect_timeout_s: float = Field(default=20.0, gt=0, description="The longest wait for the cluster to answer.")
    pending_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description='An instance no node can place fails its start after this long, saying why ("Pending: no '
        "node has num_gpus=1\"); sooner when the model's queue_timeout_s or start_timeout_s is shorter.",
    )
    ping_interval_s: float = Field(default=1.0, gt=0, description="Each instance's actor is pinged this often.")
    lost_after_s: float = Field(
        default=3.0, gt=0, description="An actor that answers no ping for this long is lost (its node is gone)."
    )
    orphan_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="An instance not pinged by its gateway for this long stops itself (the gateway is gone).",
    )
    adopt_window_s: float = Field(
        default=120.0,
        ge=0,
        description="Instances a previous run of this server left are kept this long for this run to adopt; "
        "the rest are stopped.",
    )

    @field_validator("address")
    @classmethod
    def _check_address(cls, address: str) -> str:
        if address == "auto":
            return address
        rest = address.removeprefix("ray://")
        if not _HOST_PORT.match(rest.rsplit("@", 1)[-1]):
            raise ValueError(
                f"'{display_address(address)}' is not a Ray address: give \"auto\", the head's GCS address "
                '"host:port" (e.g. "10.0.0.5:6379"), or "ray://host:port" (Ray Client, e.g. "ray://10.0.0.5:10001")'
            )
        return address

    def endpoint(self) -> tuple[str, int] | None:
        """The host and port the address names (None for "auto")."""
        if self.address == "auto":
            return None
        host, _, port = self.address.removeprefix("ray://").rsplit("@", 1)[-1].rpartition(":")
        return host.strip("[]"), int(port)


class ModelRayConfig(BaseModel):
    """A model's `ray` table: what one instance needs from the node that runs it (Ray's own scheduling names)."""

    model_config = ConfigDict(extra="forbid")

    num_cpus: float = Field(default=1.0, ge=0, description="CPUs one instance holds on its node.")
    num_gpus: float = Field(default=0.0, ge=0, description="GPUs one instance holds (fractions share a GPU).")
    memory: int | str | None = Field(
        default=None, description='Memory one instance reserves, e.g. "4g" (k, m, g, t: powers of 1024).'
    )
    resources: dict[str, float] = Field(
        default_factory=dict,
        description='Custom resources one instance holds, e.g. { "accelerator_type:A100" = 0.001, "big_disk" = 1 }.',
    )

    @field_validator("memory")
    @classmethod
    def _check_memory(cls, value: int | str | None) -> int | str | None:
        if value is not None:
            parse_size(value)
        return value

    @field_validator("resources")
    @classmethod
    def _check_resources(cls, resources: dict[str, float]) -> dict[str, float]:
        for name, amount in resources.items():
            if name in _BUILT_IN:
                raise ValueError(f'resources: "{name}" is Ray\'s own; set {_BUILT_IN[name]} instead')
            if not name or amount <= 0:
                raise ValueError(f'resources: "{name}" = {amount}: give a name and an amount above 0')
        return resources

    def memory_bytes(self) -> int | None:
        return None if self.memory is None else parse_size(self.memory)

    def request(self) -> dict[str, float]:
        """What one instance asks of a node, in Ray's resource names (CPU, GPU, memory in bytes, custom ones);
        zero amounts left out."""
        wanted: dict[str, float] = {"CPU": self.num_cpus, "GPU": self.num_gpus}
        memory = self.memory_bytes()
        if memory is not None:
            wanted["memory"] = float(memory)
        wanted.update(self.resources)
        return {name: amount for name, amount in wanted.items() if amount > 0}

    def describe(self, name: str, amount: float) -> str:
        """One requirement in the config's words: `num_gpus=1`, `memory=4g`, `second=1`."""
        if name == "memory" and self.memory is not None:
            return f"memory={self.memory}"
        return f"{_BUILT_IN.get(name, name)}={amount:g}"
