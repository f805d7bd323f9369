"""One typed settings object, loaded from a TOML file and overridden by the environment.

Environment variables win over the file. Names are `UNIMODEL_` + the TOML path joined by `__`, e.g.
`UNIMODEL_SERVER__PORT=9000` or `UNIMODEL_PROVIDERS__OPENAI__API_KEY=sk-…`. `UNIMODEL_CONFIG` names the
file when `--config` is not given.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .container_settings import ContainerConfig, ModelContainerConfig
from .media_settings import MediaStoreConfig
from .ray_settings import ModelRayConfig, RayConfig

log = logging.getLogger("unimodel.config")


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""


# Where open-model instances run (runtime/backends/); a name not wired into this build is refused at load.
BackendName = Literal["local", "container", "ray"]


def _wired_backend(name: str) -> str:
    from .runtime.backends import problem  # the runtime knows which backends are wired in; it imports this module

    why = problem(name)
    if why is not None:
        raise ValueError(why)
    return name


class ServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=20 * 1024 * 1024, ge=1024, description="Larger bodies get a 413.")
    log_level: str = "info"
    access_log: bool = False
    log_format: Literal["json", "text"] = Field(default="json", description="json: one JSON object per line.")
    workers: int = Field(default=1, ge=1, le=256, description="Gateway processes (`serve --workers N`).")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names this server answers to in open mode besides loopback ones (DNS-rebinding guard).",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Browser origins allowed to call the API from another site ("https://app.example.com"); none '
        "by default.",
    )
    max_header_bytes: int = Field(
        default=64 * 1024, ge=1024, description="A request's headers together; more get a 431 and the connection ends."
    )
    max_headers: int = Field(default=100, ge=8, description="Header lines in one request; more get a 431.")
    header_timeout_s: float = Field(
        default=10.0, gt=0, description="A connection must send a request's headers within this; else it is closed."
    )

    @field_validator("allowed_hosts")
    @classmethod
    def _check_allowed_hosts(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if not _HOST.fullmatch(host):
                raise ValueError(f"'{host}' is not a host name or address (no scheme, port or path)")
        return [h.lower().rstrip(".") for h in hosts]

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"'{origin}' is not an origin: scheme://host[:port], no path (https://app.example.com)"
                )
        return [o.lower().rstrip("/") for o in origins]


class MetricsConfig(BaseModel):
    """`[metrics]`: who may read Prometheus metrics."""

    model_config = ConfigDict(extra="forbid")

    access: Literal["admin", "public"] = Field(
        default="admin",
        description="admin: `/metrics` needs an admin key when keys are on (open mode serves only loopback "
        "callers anyway); public: anyone who reaches the server.",
    )
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Also serve the metrics, with no key, on this port of `host` (for a scraper on a private network).",
    )
    host: str = Field(default="127.0.0.1", description="The address of the metrics port.")


class StoreConfig(BaseModel):
    """`[store]`: keys and the usage ledger. An SQLite file in `data_dir` unless `url` names another database."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr | None = Field(
        default=None, description='SQLAlchemy URL, e.g. "postgresql+psycopg://user:pw@host/db"; SQLite when unset.'
    )
    data_dir: str = Field(
        default="~/.local/share/unimodel", description="Holds the default SQLite file and the generated secret key."
    )
    flush_interval_s: float = Field(default=1.0, gt=0, description="Usage records are written this often.")
    flush_batch: int = Field(default=1000, ge=1, description="Most usage records written in one transaction.")
    max_buffered: int = Field(
        default=100_000, ge=1, description="Usage records held while the database is unreachable; more are dropped."
    )

    def sqlalchemy_url(self) -> str:
        if self.url is not None:
            return self.url.get_secret_value()
        return f"sqlite:///{Path(self.data_dir).expanduser() / 'unimodel.db'}"


class ResponsesConfig(BaseModel):
    """`[responses]`: answers of the Responses API (`POST /v1/responses`) kept in the store for `GET`, `DELETE` and
    `previous_response_id`."""

    model_config = ConfigDict(extra="forbid")

    retention_days: float = Field(
        default=30.0, gt=0, description="A stored response is gone (404, then deleted) this long after it was made."
    )


class AuthConfig(BaseModel):
    """`[auth]`: who may call. `keys`: every call needs a gateway key. `open`: anyone may call; allowed only while
    the server listens on loopback. Unset: open on loopback, keys otherwise."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["keys", "open"] | None = None
    cache_ttl_s: float = Field(
        default=2.0, gt=0, description="Key changes made elsewhere (revocation, other processes) apply within this."
    )


class LimitsConfig(BaseModel):
    """`[limits]`: default per-key limits (a key's own values win). 0 means unlimited."""

    model_config = ConfigDict(extra="forbid")

    rps: float = Field(default=0, ge=0, description="Requests per second per key (bursts up to one second's worth).")
    concurrency: int = Field(default=0, ge=0, description="Open-model requests one key may have in flight.")
    redis_url: SecretStr | None = Field(
        default=None, description='Share counters between gateway processes, e.g. "redis://127.0.0.1:6379/0".'
    )


class Price(BaseModel):
    """A price-table row; cost = tokens × per-million prices + inference seconds × per-second price + per request."""

    model_config = ConfigDict(extra="forbid")

    input_per_mtok: float = Field(default=0.0, ge=0, description="USD per million input tokens.")
    output_per_mtok: float = Field(default=0.0, ge=0, description="USD per million output tokens.")
    per_inference_s: float = Field(default=0.0, ge=0, description="USD per instance-second (open models).")
    per_request: float = Field(default=0.0, ge=0, description="USD per request.")


class VendorFields(BaseModel):
    """The row of an OpenAI-compatible vendor (built-in rows: `providers/vendors.toml`).

    In a `[providers.<name>]` table each key given replaces the built-in row's value; `compatible` adds a vendor
    under a new name. `None` means "as the row (or the OpenAI default) says".
    """

    model_config = ConfigDict(extra="forbid")

    compatible: str | None = Field(
        default=None, description='Adds a vendor: "openai" (plain OpenAI-compatible) or a built-in vendor to copy.'
    )
    models: list[str] | None = Field(default=None, description="Model names to list in the catalog.")
    auth_header: str | None = Field(default=None, description='The header carrying the key ("authorization").')
    auth_scheme: str | None = Field(
        default=None, description='Prefix of the key in that header ("Bearer"; "" for none).'
    )
    path: str | None = Field(default=None, description="Appended to base_url; may hold {model} and {api_version}.")
    api_version_path: str | None = Field(default=None, description="The path used instead when api_version is set.")
    max_tokens_field: str | None = Field(default=None, description="Where max_tokens goes (max_completion_tokens).")
    stream_usage: bool | None = Field(default=None, description="Send stream_options.include_usage when streaming.")
    reasoning_field: str | None = Field(default=None, description="The answer's reasoning text (reasoning_content).")
    model_prefix: str | None = Field(default=None, description="Prepended to model names that have no '/'.")
    unsupported: dict[str, str] | list[str] | None = Field(
        default=None, description="Parameters the vendor refuses (name, or name → reason): a 400 naming them."
    )
    params: list[str] | None = Field(default=None, description="Vendor parameters forwarded under their own name.")


class ProviderConfig(VendorFields):
    """One `[providers.<name>]` table. `base_url` means what it means in the provider's official Python SDK
    (for Azure OpenAI: the resource endpoint, `https://<resource>.openai.azure.com`)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    api_key: SecretStr | None = None
    connect_timeout_s: float = Field(default=10.0, gt=0)
    read_timeout_s: float = Field(default=600.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    retry_backoff_s: float = Field(default=0.5, ge=0, description="First backoff; doubles each try, jittered.")
    retry_max_wait_s: float = Field(
        default=20.0, ge=0, description="A Retry-After longer than this is passed to the client, not waited."
    )
    max_connections: int = Field(default=512, ge=1)
    default_max_tokens: int = Field(
        default=4096, ge=1, description="Sent when the caller gives none and the provider requires one."
    )
    api_version: str | None = Field(
        default=None, description="A provider API version (Anthropic's header; Azure's dated api-version query)."
    )


class MediaConfig(BaseModel):
    """`[media]`: fetching image URLs for providers that take only inline data (providers/media.py); `[media.store]`:
    the generated media the server keeps and serves (gateway/media_store.py).

    Loopback, private, link-local, metadata and other non-public addresses are refused unless `allow_hosts`
    names them; allow-listed targets may also use any port.
    """

    model_config = ConfigDict(extra="forbid")

    allow_hosts: list[str] = Field(
        default_factory=list,
        description='Addresses, CIDRs or host names ("*.example.com" for subdomains) fetched even when not public.',
    )
    ports: list[int] = Field(default_factory=lambda: [80, 443], description="Ports allowed for any public host.")
    max_bytes: int = Field(default=20 * 1024 * 1024, ge=1, description="Largest image fetched.")
    max_total_bytes: int = Field(default=50 * 1024 * 1024, ge=1, description="All images of one request together.")
    max_images: int = Field(default=16, ge=0, description="Image URLs fetched for one request.")
    timeout_s: float = Field(default=10.0, gt=0, description="Whole fetch of one image, redirects included.")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    max_redirects: int = Field(default=3, ge=0, le=20)
    max_concurrency: int = Field(default=4, ge=1, description="Images of one request fetched at once.")
    max_inflight_bytes: int = Field(
        default=128 * 1024 * 1024,
        ge=1,
        description="Fetched image bytes held by all requests of a gateway process together until their upstream "
        "call is sent; requests past it wait in line.",
    )
    inflight_wait_s: float = Field(
        default=10.0,
        ge=0,
        description="How long a request waits in line for room under max_inflight_bytes, then a 503 media_busy.",
    )
    store: MediaStoreConfig = Field(
        default_factory=MediaStoreConfig,
        description="`[media.store]`: generated images and speech served at /models/v2/media/{id} (v2 URL outputs).",
    )

    @field_validator("allow_hosts")
    @classmethod
    def _check_hosts(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            if not _ALLOW_ENTRY.fullmatch(entry):
                raise ValueError(
                    f"'{entry}' is neither an address, a CIDR (10.0.0.0/8) nor a host name (images.internal, *.example.com)"
                )
            if any(c in entry for c in ":/") or entry.replace(".", "").isdigit():
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError as exc:
                    raise ValueError(f"'{entry}' is not a valid address or CIDR: {exc}") from None
        return [e.lower().rstrip(".") for e in entries]

    @field_validator("ports")
    @classmethod
    def _check_ports(cls, ports: list[int]) -> list[int]:
        for port in ports:
            if not 0 < port < 65536:
                raise ValueError(f"{port} is not a TCP port")
        return ports


class OpenModelConfig(BaseModel):
    """One `[[models]]` table: an open model unimodel runs itself."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, description="The model id clients call, e.g. HuggingFaceTB/SmolLM2-135M-Instruct.")
    task: str = Field(default="chat", description="chat, text-generation, feature-extraction, fill-mask, …")
    backend: BackendName | None = Field(
        default=None, description="Where this model's instances run; [runtime] backend when unset."
    )
    container: ModelContainerConfig | None = Field(
        default=None,
        description="With the container backend: the image, command, limits, mounts (`[models.container]`).",
    )
    ray: ModelRayConfig | None = Field(
        default=None,
        description="With the Ray backend: the resources one instance needs from its node (`[models.ray]`).",
    )
    engine: Literal["llama.cpp", "transformers", "diffusers", "command"] = Field(
        default="transformers",
        description="What serves the model in its instances: llama.cpp (GGUF files), transformers, diffusers "
        '(text-to-image pipelines) or "command" (an external OpenAI-compatible server). `runtime` is its old name '
        "(deprecated).",
    )
    path: str | None = Field(default=None, description="A local file or folder; the Hugging Face id when absent.")
    revision: str | None = Field(default=None, description="No path: the Hub revision to pull (branch, tag, commit).")
    file: str | None = Field(
        default=None, description="No path, a GGUF repo: the file to pull (else [hub] preference)."
    )
    min_instances: int = Field(default=0, ge=0)
    max_instances: int = Field(default=1, ge=1)
    instance_concurrency: int = Field(default=1, ge=1, description="Requests one instance serves at once.")
    idle_timeout_s: float = Field(
        default=600.0, ge=0, description="Scale to zero after this long with no request waiting or in flight."
    )
    start_timeout_s: float = Field(default=180.0, gt=0, description="An instance not ready by then has failed.")
    queue_size: int = Field(default=256, ge=1, description="Requests that may wait for capacity; more get a 503.")
    queue_timeout_s: float = Field(default=300.0, gt=0, description="Longest wait for capacity; then a 503.")
    command: str | None = Field(
        default=None, description="engine = command: the server to launch, with {port}, {model} and {path}."
    )
    health_path: str = Field(default="/health", description="engine = command: the URL path that says ready.")
    engine_args: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Passed to the engine (llama.cpp: n_ctx, n_threads; transformers: dtype; diffusers: dtype, "
        "max_pixels, max_steps).",
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables for this model's instances, on top of the few they inherit "
        "([runtime] pass_env).",
    )

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        """`runtime` is the old name of `engine`: accepted, with a warning (it also named a package, a section
        and a process)."""
        if not isinstance(data, dict) or "runtime" not in data:
            return data
        data = dict(data)
        old = data.pop("runtime")
        if "engine" in data:
            raise ValueError("`runtime` is the old name of `engine`; give only `engine`")
        data["engine"] = old
        log.warning(
            'model \'%s\': `runtime = "%s"` is deprecated; call it `engine = "%s"`', data.get("id", "?"), old, old
        )
        return data

    @property
    def runtime(self) -> str:
        """Deprecated: the old name of `engine`, for code written before the rename."""
        return self.engine

    @field_validator("backend")
    @classmethod
    def _check_backend(cls, name: str | None) -> str | None:
        return None if name is None else _wired_backend(name)

    @field_validator("id")
    @classmethod
    def _check_id(cls, model_id: str) -> str:
        from .protocol.model_ids import model_id_problem

        problem = model_id_problem(model_id)
        if problem is not None:
            raise ValueError(problem)
        return model_id

    @model_validator(mode="after")
    def _check(self) -> OpenModelConfig:
        if self.min_instances > self.max_instances:
            raise ValueError(
                f"model '{self.id}': min_instances ({self.min_instances}) > max_instances ({self.max_instances})"
            )
        if self.engine == "command" and not self.command:
            raise ValueError(f"model '{self.id}': engine = \"command\" needs a command template")
        return self


class RuntimeConfig(BaseModel):
    """`[runtime]`: how open-model instances run."""

    model_config = ConfigDict(extra="forbid")

    backend: BackendName = Field(
        default="local",
        description='Where open-model instances run: "local" (processes on this machine), "container" (one '
        'container per instance, Docker or Podman) or "ray" (on the nodes of a Ray cluster). A model\'s own '
        "`backend` wins.",
    )
    container: ContainerConfig = Field(
        default_factory=ContainerConfig, description="`[runtime.container]`: the engine's socket, default image, pulls."
    )
    ray: RayConfig = Field(
        default_factory=RayConfig, description="`[runtime.ray]`: the Ray cluster's address, namespace and timings."
    )
    default_models: bool = Field(
        default=True, description="Offer the bundled SmolLM2-135M-Instruct and all-MiniLM-L6-v2 when installed."
    )
    log_dir: str | None = Field(default=None, description="Instance logs; a temporary folder when unset.")
    tick_s: float = Field(default=1.0, gt=0, description="How often the autoscaler looks at the load.")
    stable_window_s: float = Field(default=60.0, gt=0)
    panic_window_s: float = Field(default=6.0, gt=0)
    panic_threshold: float = Field(default=2.0, gt=1)
    scale_down_delay_s: float | None = Field(
        default=None,
        ge=0,
        description="The load must ask for fewer instances this long before any scale-down; unset: the "
        "break-even of keeping an idle instance, (1 + start_cost) × the latest start time.",
    )
    start_cost: float = Field(
        default=1.0,
        ge=0,
        description="What an instance's start costs besides its own slot, in start times (loading weights keeps "
        "a CPU busy as long again); sets the break-even above.",
    )
    target_utilization: float = Field(default=1.0, gt=0, le=1, description="Share of instance_concurrency to aim at.")
    drain_timeout_s: float = Field(default=60.0, gt=0, description="Longest wait for a draining instance.")
    health_interval_s: float = Field(default=5.0, gt=0, description="Ready instances' /health is checked this often.")
    health_timeout_s: float = Field(default=5.0, gt=0, description="A health check not answered by then failed.")
    health_failures: int = Field(
        default=3, ge=1, description="Failed health checks in a row before an instance is replaced."
    )
    read_timeout_s: float = Field(
        default=600.0, gt=0, description="Longest silence from an instance while it answers a request; then 504."
    )
    pass_env: list[str] = Field(
        default_factory=list,
        description="Environment variables instances inherit besides the defaults (PATH, HOME, locale, HF_*, "
        "CUDA_*, …); the gateway's secrets never reach them.",
    )

    @field_validator("backend")
    @classmethod
    def _check_backend(cls, name: str) -> str:
        return _wired_backend(name)


class HubConfig(BaseModel):
    """`[hub]`: open models named by a Hugging Face id, pulled on first use. Unset keys follow the standard Hugging
    Face environment (HF_ENDPOINT, HF_TOKEN, HF_HOME / HF_HUB_CACHE, HF_HUB_OFFLINE)."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str | None = Field(default=None, description="The Hub (or a mirror); HF_ENDPOINT, else huggingface.co.")
    token: SecretStr | None = Field(default=None, description="For gated and private repos; HF_TOKEN when unset.")
    cache_dir: str | None = Field(default=None, description="Where weights live; HF_HUB_CACHE / HF_HOME when unset.")
    offline: bool | None = Field(default=None, description="Never contact the Hub (only models already local).")
    allow: list[str] = Field(
        default_factory=lambda: ["*"], description='Glob patterns of ids that may be pulled ("Qwen/*"); [] for none.'
    )
    max_download_gb: float = Field(default=20.0, gt=0, description="A model larger than this is refused unpulled.")
    pull: Literal["admin", "any"] = Field(
        default="admin",
        description="Who may make the server pull a model it does not have when keys are on: admin keys, or any key.",
    )
    gguf_preference: list[str] = Field(
        default_factory=lambda: ["Q4_K_M", "Q4_K_S", "Q5_K_M", "Q8_0"],
        description="For a GGUF repo, the quantisations tried in order (then the smallest file).",
    )


_ALLOW_ENTRY = re.compile(r"(\*\.)?[A-Za-z0-9_.:/-]+")
_HOST = re.compile(r"[A-Za-z0-9_.-]+|\[?[0-9A-Fa-f:.]+\]?")
_ORIGIN = re.compile(r"https?://([A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?/?")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="UNIMODEL_",
        env_nested_delimiter="__",
        extra="forbid",
        nested_model_default_partial_update=True,
    )

    server: ServerConfig = ServerConfig()
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    media: MediaConfig = MediaConfig()
    models: list[OpenModelConfig] = Field(default_factory=list)
    runtime: RuntimeConfig = RuntimeConfig()
    store: StoreConfig = StoreConfig()
    auth: AuthConfig = AuthConfig()
    limits: LimitsConfig = LimitsConfig()
    metrics: MetricsConfig = MetricsConfig()
    hub: HubConfig = HubConfig()
    responses: ResponsesConfig = ResponsesConfig()
    prices: dict[str, Price] = Field(
        default_factory=dict, description='Model id (or glob, "openai/*") → price; the most specific match wins.'
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file arrives as init kwargs; the environment overrides it.
        return (env_settings, init_settings)

    @field_validator("providers")
    @classmethod
    def _known_providers(cls, providers: dict[str, ProviderConfig]) -> dict[str, ProviderConfig]:
        from .providers.registry import config_problems  # the registry knows the providers; it imports this module

        problems = [problem for name, cfg in providers.items() for problem in config_problems(name, cfg)]
        if problems:
            raise ValueError("; ".join(problems))
        return providers

    def provider(self, name: str) -> ProviderConfig:
        """The provider's table, or the defaults when the config has none."""
        return self.providers.get(name) or ProviderConfig()


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the TOML file (if any), apply the environment, then `overrides` (tests, CLI flags)."""
    data: dict[str, Any] = {}
    path = path or os.environ.get("UNIMODEL_CONFIG")
    if path:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError as exc:
            raise ConfigError(f"Config file not found: {path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"Config file {path} is not valid TOML: {exc}") from exc
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from exc
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        if field:
            setattr(getattr(settings, section), field, value)
        else:
            setattr(settings, key, value)
    return settings


def _describe(exc: ValidationError, path: str | Path | None) -> str:
    where = f" in {path}" if path else ""
    lines = [f"Invalid configuration{where}:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)
