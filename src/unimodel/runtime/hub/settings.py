"""The Hub settings as they apply: `[hub]` first, then the standard Hugging Face environment, then defaults.

    endpoint   [hub] endpoint → HF_ENDPOINT → https://huggingface.co
    token      [hub] token → HF_TOKEN → HUGGING_FACE_HUB_TOKEN → the file `hf auth login` saved
               (HF_TOKEN_PATH, else $HF_HOME/token)
    cache_dir  [hub] cache_dir → HF_HUB_CACHE → HUGGINGFACE_HUB_CACHE → $HF_HOME/hub
               → $XDG_CACHE_HOME/huggingface/hub → ~/.cache/huggingface/hub
    offline    [hub] offline → HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) in 1/ON/YES/TRUE → false

The environment is read when `HubSettings.resolve` is called (not when a library was imported), so the same
process can resolve different settings. The token is held as a `SecretStr` and left out of `repr`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from ...config import HubConfig

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_TIMEOUT_S = 10.0
_TRUE = frozenset({"1", "ON", "YES", "TRUE"})


@dataclass(frozen=True, slots=True)
class HubSettings:
    endpoint: str
    cache_dir: Path
    offline: bool
    allow: tuple[str, ...] = ("*",)
    max_download_bytes: int | None = None
    gguf_preference: tuple[str, ...] = ()
    token: SecretStr | None = field(default=None, repr=False)
    token_source: str | None = None  # where the token came from, for messages: "[hub] token", "HF_TOKEN", …
    offline_source: str = "[hub] offline"
    timeout_s: float = DEFAULT_TIMEOUT_S  # each request to the Hub API; downloads use huggingface_hub's own

    @classmethod
    def resolve(
        cls, config: HubConfig, environ: Mapping[str, str] | None = None, *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> HubSettings:
        env = os.environ if environ is None else environ
        token, token_source = _token(config, env)
        offline, offline_source = _offline(config, env)
        return cls(
            endpoint=(config.endpoint or env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/"),
            cache_dir=_cache_dir(config, env),
            offline=offline,
            allow=tuple(config.allow),
            max_download_bytes=int(config.max_download_gb * 1e9),
            gguf_preference=tuple(config.gguf_preference),
            token=token,
            token_source=token_source,
            offline_source=offline_source,
            timeout_s=timeout_s,
        )

    @property
    def has_token(self) -> bool:
        return self.token is not None

    def token_value(self) -> str | None:
        return self.token.get_secret_value() if self.token is not None else None


def hf_home(env: Mapping[str, str]) -> Path:
    xdg = env.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return _path(env.get("HF_HOME") or os.path.join(xdg, "huggingface"))


def _cache_dir(config: HubConfig, env: Mapping[str, str]) -> Path:
    chosen = config.cache_dir or env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    return _path(chosen) if chosen else hf_home(env) / "hub"


def _token(config: HubConfig, env: Mapping[str, str]) -> tuple[SecretStr | None, str | None]:
    if config.token is not None and config.token.get_secret_value().strip():
        return SecretStr(config.token.get_secret_value().strip()), "[hub] token"
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        value = env.get(name, "").strip()
        if value:
            return SecretStr(value), name
    path = _path(env["HF_TOKEN_PATH"]) if env.get("HF_TOKEN_PATH") else hf_home(env) / "token"
    try:
        saved = path.read_text().strip()
    except OSError:
        return None, None
    return (SecretStr(saved), f"the token file {path}") if saved else (None, None)


def _offline(config: HubConfig, env: Mapping[str, str]) -> tuple[bool, str]:
    if config.offline is not None:
        return config.offline, "[hub] offline"
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if env.get(name, "").strip().upper() in _TRUE:
            return True, name
    return False, "[hub] offline"


def _path(text: str) -> Path:
    return Path(os.path.expandvars(text)).expanduser()
