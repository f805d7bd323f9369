"""One typed settings object, loaded from a TOML file and overridden by the environment.

Environment variables win over the file. Names are `UNIMODEL_` + the TOML path joined by `__`, e.g.
`UNIMODEL_SERVER__PORT=9000` or `UNIMODEL_PROVIDERS__OPENAI__API_KEY=sk-…`. `UNIMODEL_CONFIG` names the
file when `--config` is not given.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""


class ServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=20 * 1024 * 1024, ge=1024, description="Larger bodies get a 413.")
    log_level: str = "info"
    access_log: bool = False


class ProviderConfig(BaseModel):
    """One `[providers.<name>]` table. `base_url` means what it means in the provider's official Python SDK."""

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
    api_version: str | None = Field(default=None, description="A provider API version header, where one applies.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="UNIMODEL_",
        env_nested_delimiter="__",
        extra="forbid",
        nested_model_default_partial_update=True,
    )

    server: ServerConfig = ServerConfig()
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)

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
        lines.append(f"  {loc}: {err['msg']}")
    return "\n".join(lines)
