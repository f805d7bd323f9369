"""OpenAI-compatible vendors as data: a row becomes an adapter, and no vendor has code of its own.

A row is a table of `vendors.toml` (the built-in vendors) or a `[providers.<name>]` config table with
`compatible = "openai"` (or the name of a built-in row to copy); a config table for a built-in vendor replaces
the keys it gives. `adapter_class` turns a row into an `OpenAIAdapter` subclass carrying the row's name (so
errors name the vendor), base URL, auth header, URL path and parameter table; the few quirks rows declare
(`max_tokens_field`, `stream_usage`, `reasoning_field`, `model_prefix`, `unsupported`, `params`) are applied
by `VendorAdapter`'s small hooks.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from importlib.resources import files
from typing import Any, ClassVar, cast
from urllib.parse import quote

from pydantic import ValidationError

from ..config import ProviderConfig, VendorFields
from ..protocol import ChatRequest, StreamEvent, UnimodelError, UnsupportedParameter, UsageEvent
from .base import ProviderInfo, SSEMessage, StreamDecoder, UpstreamRequest
from .openai import OPENAI_PARAMS, OpenAIAdapter, OpenAIStreamDecoder
from .params import Param, Rule, Unsupported

# OpenAI platform features no compatible vendor is assumed to take; a row that does lists them in `params`.
PLATFORM_ONLY = frozenset(
    {
        "service_tier",
        "store",
        "metadata",
        "verbosity",
        "modalities",
        "audio",
        "prediction",
        "web_search_options",
        "safety_identifier",
        "prompt_cache_key",
    }
)

# Parts of a request that are not parameters but that a row may still declare `unsupported`.
FEATURES: Mapping[str, Callable[[ChatRequest], bool]] = {
    "tools": lambda r: bool(r.tools),
    "tool_choice": lambda r: r.tool_choice is not None,
    "response_format": lambda r: r.response_format is not None,
    "messages[].name": lambda r: any(m.name for m in r.messages),
}

# `compatible = "openai"`: a vendor that speaks plain OpenAI (the row defaults).
PLAIN = "openai"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Row keys that are not VendorFields (base_url is a ProviderConfig key; the media models are what the catalog lists).
_ROW_ONLY = ("base_url", "docs", "transcription_models", "speech_models", "image_models")
_MODEL_LISTS = ("models", "params", "transcription_models", "speech_models", "image_models")


@dataclass(frozen=True, slots=True)
class VendorRow:
    """One vendor; the defaults are OpenAI's own behaviour. Field meanings: vendors.toml's header."""

    name: str
    base_url: str = ""
    docs: str = ""
    models: tuple[str, ...] = ()
    auth_header: str = "authorization"
    auth_scheme: str = "Bearer"
    path: str = "/chat/completions"
    api_version_path: str | None = None
    max_tokens_field: str = "max_completion_tokens"
    stream_usage: bool = True
    reasoning_field: str = "reasoning_content"
    model_prefix: str = ""
    unsupported: Mapping[str, str] = field(default_factory=dict)
    params: tuple[str, ...] = ()
    transcription_models: tuple[str, ...] = ()  # its /audio/transcriptions models the catalog lists
    speech_models: tuple[str, ...] = ()  # its /audio/speech models
    image_models: tuple[str, ...] = ()  # its /images/generations models

    DESCRIPTIVE: ClassVar[frozenset[str]] = frozenset(
        {"name", "base_url", "docs", "models", "transcription_models", "speech_models", "image_models"}
    )

    def quirks(self) -> list[str]:
        """The fields where this vendor differs from plain OpenAI (each one wants a test vector)."""
        plain = VendorRow(self.name)
        return [
            f.name
            for f in fields(self)
            if f.name not in self.DESCRIPTIVE and getattr(self, f.name) != getattr(plain, f.name)
        ]

    def reason(self, name: str) -> str:
        """Why `name` is refused: the row's own words, else where the vendor's parameters are listed."""
        given = self.unsupported.get(name)
        if given:
            return given
        where = f" ({self.docs})" if self.docs else ""
        return f"it is not in {self.name}'s OpenAI-compatible API{where}"

    def param_table(self) -> dict[str, Rule]:
        """OpenAI's table, less platform-only features and `unsupported`, plus `params`; max_tokens re-targeted."""
        table: dict[str, Rule] = {}
        for name, rule in OPENAI_PARAMS.items():
            if name in PLATFORM_ONLY:
                rule = Unsupported(f"an OpenAI platform feature {self.name} is not known to take")
            elif isinstance(rule, Unsupported):  # OpenAI's reason names OpenAI
                rule = Unsupported(self.reason(name))
            table[name] = rule
        table["max_tokens"] = Param(self.max_tokens_field, minimum=1)
        for name in self.unsupported:
            if name not in FEATURES:
                table[name] = Unsupported(self.reason(name))
        for name in self.params:
            table[name] = Param(name)
        return table

    def problems(self, api_version: str | None = None) -> list[str]:
        """What makes this row unusable, as sentences naming the key."""
        out: list[str] = []
        if not _NAME.fullmatch(self.name):
            out.append(f"the name '{self.name}' must be letters, digits, '.', '_' or '-' (it prefixes model ids)")
        if not self.auth_header:
            out.append("auth_header must name a header")
        for key in ("path", "api_version_path"):
            value = getattr(self, key)
            if value is not None and not value.startswith("/"):
                out.append(f"{key} must start with '/', got '{value}'")
        known = set(OPENAI_PARAMS) | set(FEATURES)
        for name in self.unsupported:
            if name not in known:
                out.append(
                    f"unsupported names '{name}', which is neither an OpenAI parameter nor one of {sorted(FEATURES)}"
                )
        both = sorted(set(self.params) & set(self.unsupported))
        if both:
            out.append(f"{both} are both in params and in unsupported")
        if api_version and "{api_version}" not in self._path(api_version):
            out.append(f"api_version is set but {self.name}'s URL has no {{api_version}} (set api_version_path)")
        return out

    def url(self, base_url: str, model: str, api_version: str | None) -> str:
        path = self._path(api_version)
        path = path.replace("{model}", quote(model, safe="")).replace(
            "{api_version}", quote(api_version or "", safe="")
        )
        return base_url + path

    def _path(self, api_version: str | None) -> str:
        return self.api_version_path if api_version and self.api_version_path else self.path


def _row(name: str, values: Mapping[str, Any]) -> VendorRow:
    """A row from a vendors.toml table or from a config table's vendor keys (already validated)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None or key == "compatible":
            continue
        if key in _MODEL_LISTS:
            value = tuple(value)
        elif key == "unsupported":
            value = dict.fromkeys(value, "") if isinstance(value, list) else dict(value)
        out[key] = value
    return VendorRow(name, **out)


def _load_rows() -> dict[str, VendorRow]:
    data = tomllib.loads(files(__package__).joinpath("vendors.toml").read_text(encoding="utf-8"))
    rows: dict[str, VendorRow] = {}
    for name, table in data.items():
        vendor_keys = {k: v for k, v in table.items() if k not in _ROW_ONLY}
        try:
            fields_ = VendorFields.model_validate(vendor_keys)
        except ValidationError as exc:  # a broken built-in row is a bug: fail at import, loudly
            raise RuntimeError(f"vendors.toml [{name}]: {exc}") from exc
        if fields_.compatible is not None:
            raise RuntimeError(f"vendors.toml [{name}]: 'compatible' belongs in the config, not in a row")
        row = _row(name, {**fields_.model_dump(exclude_unset=True), **{k: table[k] for k in _ROW_ONLY if k in table}})
        if row.problems():
            raise RuntimeError(f"vendors.toml [{name}]: {'; '.join(row.problems())}")
        rows[name] = row
    return rows


VENDORS: Mapping[str, VendorRow] = _load_rows()


def vendor_row(name: str, config: ProviderConfig) -> VendorRow:
    """The row for `name`: the built-in row (or the one `compatible` names), with the config's keys over it.

    Raises KeyError when `name` is neither a built-in vendor nor added by `compatible`.
    """
    base = config.compatible or name
    row = VendorRow(name) if base == PLAIN else replace(VENDORS[base], name=name)
    given = given_vendor_keys(config)
    overrides = _row(name, given)
    changed = {f.name: getattr(overrides, f.name) for f in fields(overrides) if f.name in given}
    return replace(row, **changed)


def given_vendor_keys(config: ProviderConfig) -> dict[str, Any]:
    """The vendor keys a config table gives (None means not given: the settings loader re-validates tables,
    so `model_fields_set` cannot tell)."""
    return {k: v for k in VendorFields.model_fields if (v := getattr(config, k)) is not None}


def vendor_problems(name: str, config: ProviderConfig) -> list[str]:
    """Why a `[providers.<name>]` table for a vendor cannot be used (empty when it can)."""
    if config.compatible is not None and config.compatible != PLAIN and config.compatible not in VENDORS:
        kinds = ", ".join([f'"{PLAIN}"', *(f'"{v}"' for v in sorted(VENDORS))])
        return [
            f'compatible = "{config.compatible}" is not an OpenAI-compatible kind unimodel knows; use one of {kinds}'
        ]
    row = vendor_row(name, config)
    problems = row.problems(config.api_version)
    if not (config.base_url or row.base_url):
        problems.append(f"base_url is required{_docs(row)}")
    return problems


def _docs(row: VendorRow) -> str:
    return f" (see {row.docs})" if row.docs else ""


class VendorAdapter(OpenAIAdapter):
    """OpenAI's adapter driven by a row; `adapter_class` makes one subclass per row."""

    row: ClassVar[VendorRow]

    def headers(self, api_key: str) -> dict[str, str]:
        scheme = self.row.auth_scheme
        return {self.row.auth_header: f"{scheme} {api_key}" if scheme else api_key}

    def url(self, request: ChatRequest) -> str:
        if not self.base_url:
            raise UnimodelError(
                f"Provider '{self.name}' has no base URL: set base_url under [providers.{self.name}] in the server "
                f"config{_docs(self.row)}.",
                code="provider_not_configured",
                provider=self.name,
            )
        return self.row.url(self.base_url, request.model, self.config.api_version)

    def embeddings_url(self, model: str) -> str:
        return self.task_url(model, "embeddings")

    def task_url(self, model: str, path: str) -> str:
        """The row's chat URL with `path` (`embeddings`, `audio/transcriptions` …) for `chat/completions`
        (Azure's dated deployment path included)."""
        chat = self.url(ChatRequest(model=model, messages=()))
        return chat.replace("/chat/completions", "/" + path)

    def build_request(self, request: ChatRequest, api_key: str) -> UpstreamRequest:
        row = self.row
        for feature, used in FEATURES.items():
            if feature in row.unsupported and used(request):
                raise UnsupportedParameter(feature, self.name, row.reason(feature))
        if row.model_prefix and "/" not in request.model:
            request = replace(request, model=row.model_prefix + request.model)
        upstream = super().build_request(request, api_key)
        if not row.stream_usage:
            upstream.body.pop("stream_options", None)
        return upstream

    def stream_decoder(self, request: ChatRequest) -> StreamDecoder:
        return VendorStreamDecoder(self, self.reasoning_key)


class VendorStreamDecoder(OpenAIStreamDecoder):
    """OpenAI's decoder, except that usage is held to the end: vendors that repeat (cumulative) usage on several
    chunks still give one UsageEvent, the last, just before the Finish."""

    def __init__(self, adapter: OpenAIAdapter, reasoning_key: str) -> None:
        super().__init__(adapter, reasoning_key)
        self._usage: UsageEvent | None = None

    def feed(self, message: SSEMessage) -> list[StreamEvent]:
        events = super().feed(message)
        if message.data == "[DONE]":  # the base class closed the stream: its events include ours
            return events
        kept: list[StreamEvent] = []
        for event in events:
            if isinstance(event, UsageEvent):
                self._usage = event
            else:
                kept.append(event)
        return kept

    def close(self) -> list[StreamEvent]:
        usage, self._usage = self._usage, None
        return [*([usage] if usage is not None else []), *super().close()]


def adapter_class(row: VendorRow) -> type[VendorAdapter]:
    """The adapter class for a row: what a hand-written ~30-line OpenAIAdapter subclass would hold."""
    info = ProviderInfo(
        name=row.name,
        default_base_url=row.base_url,
        models=row.models,
        key_header=row.auth_header,
        docs=row.docs,
        transcription_models=row.transcription_models,
        speech_models=row.speech_models,
        image_models=row.image_models,
    )
    namespace = {
        "__module__": __name__,
        "info": info,
        "params": row.param_table(),
        "reasoning_key": row.reasoning_field,
        "row": row,
    }
    title = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", row.name))
    return cast(type[VendorAdapter], type(f"{title}Adapter", (VendorAdapter,), namespace))


def create_vendor_adapter(name: str, config: ProviderConfig) -> VendorAdapter:
    """The adapter for vendor `name` under `config`. Raises KeyError for a name that is no vendor."""
    return adapter_class(vendor_row(name, config))(config)
