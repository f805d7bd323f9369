"""Request parameters: validated against a table of specs, mapped from OpenAI names to Hugging Face names.

`params` in a `/v1/run` body are Hugging Face `generate` (or pipeline) arguments. The OpenAI endpoints take
OpenAI names; `from_openai` turns them into the same Hugging Face names, so one validator serves both.
An engine lists the parameters it honours (`Spec`s); anything else is a 400 naming the parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from .errors import invalid_parameter, invalid_request, unsupported_parameter

Kind = Literal["int", "float", "bool", "str", "strs"]
_KIND_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


@dataclass(frozen=True, slots=True)
class Spec:
    kind: Kind
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    choices: tuple[str, ...] = ()
    why: str = ""  # shown when a value is out of range for an engine-specific reason

    def check(self, name: str, value: Any) -> Any:
        if self.kind == "strs":
            if isinstance(value, str):
                return (value,)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return tuple(value)
            raise invalid_parameter(name, f"must be a string or a list of strings, got {_show(value)}.")
        ok = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, int | float) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "str": isinstance(value, str),
        }[self.kind]
        if not ok:
            raise invalid_parameter(name, f"must be {_KIND_WORDS[self.kind]}, got {_show(value)}.")
        if self.choices and value not in self.choices:
            raise invalid_parameter(name, f"must be one of {', '.join(self.choices)}; got {_show(value)}.")
        if self.kind in ("int", "float"):
            number = float(value)
            bounds = [
                (self.ge is not None and number < self.ge, f">= {_num(self.ge)}"),
                (self.gt is not None and number <= self.gt, f"> {_num(self.gt)}"),
                (self.le is not None and number > self.le, f"<= {_num(self.le)}"),
            ]
            for broken, rule in bounds:
                if broken:
                    why = f" ({self.why})" if self.why else ""
                    raise invalid_parameter(name, f"must be {rule}{why}, got {_show(value)}.")
            return float(value) if self.kind == "float" else value
        return value


def _num(value: float | None) -> str:
    return f"{value:g}" if value is not None else ""


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 60 else text[:57] + "..."


# Hugging Face `generate` arguments, with the ranges Hugging Face itself enforces.
GENERATE: dict[str, Spec] = {
    "max_new_tokens": Spec("int", ge=1),
    "min_new_tokens": Spec("int", ge=0),
    "max_length": Spec("int", ge=1),
    "temperature": Spec("float", ge=0),
    "top_k": Spec("int", ge=0),
    "top_p": Spec("float", gt=0, le=1),
    "min_p": Spec("float", ge=0, le=1),
    "typical_p": Spec("float", gt=0, le=1),
    "do_sample": Spec("bool"),
    "num_beams": Spec("int", ge=1),
    "repetition_penalty": Spec("float", gt=0),
    "presence_penalty": Spec("float", ge=-2, le=2),
    "frequency_penalty": Spec("float", ge=-2, le=2),
    "no_repeat_ngram_size": Spec("int", ge=0),
    "length_penalty": Spec("float"),
    "early_stopping": Spec("bool"),
    "stop": Spec("strs"),
    "seed": Spec("int"),
    "return_full_text": Spec("bool"),  # text-generation on /v1/run: the prompt before the continuation
}


def pick(names: str, **overrides: Spec) -> dict[str, Spec]:
    """The GENERATE specs named (space-separated), with engine-specific replacements."""
    specs = {name: GENERATE[name] for name in names.split()}
    specs.update(overrides)
    return specs


@dataclass(frozen=True, slots=True)
class Generation:
    """Validated generation settings; None means "the engine's default"."""

    max_new_tokens: int | None = None
    min_new_tokens: int | None = None
    max_length: int | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    typical_p: float | None = None
    do_sample: bool | None = None
    num_beams: int | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    no_repeat_ngram_size: int | None = None
    length_penalty: float | None = None
    early_stopping: bool | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    return_full_text: bool | None = None

    @property
    def greedy(self) -> bool:
        """Hugging Face semantics, with OpenAI's intuition: temperature 0 or do_sample=false is greedy."""
        return self.do_sample is False or self.temperature == 0

    def with_defaults(self, **defaults: Any) -> Generation:
        return replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})


def validate_object(params: Any) -> dict[str, Any]:
    """`params` as an object (absent: empty); anything else is a 400."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise invalid_request(f"'params' must be an object, got {_show(params)}.", "params")
    return params


def validate(
    params: Any, specs: Mapping[str, Spec], engine: str, reasons: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Check every parameter against `specs`; None values count as absent. `reasons` explain refusals."""
    clean: dict[str, Any] = {}
    for name, value in validate_object(params).items():
        spec = specs.get(name)
        if spec is None:
            raise unsupported_parameter(name, engine, (reasons or {}).get(name, ""))
        if value is not None:
            clean[name] = spec.check(name, value)
    return clean


def generation(
    params: Any, specs: Mapping[str, Spec], engine: str, reasons: Mapping[str, str] | None = None
) -> Generation:
    return Generation(**validate(params, specs, engine, reasons))


# OpenAI request fields → Hugging Face names. Fields the worker reads itself are not parameters.
_OPENAI_RENAMES = {
    "max_tokens": "max_new_tokens",
    "max_completion_tokens": "max_new_tokens",
    "min_tokens": "min_new_tokens",  # vLLM's extension
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",  # vLLM's and llama.cpp's extensions
    "min_p": "min_p",
    "typical_p": "typical_p",
    "repetition_penalty": "repetition_penalty",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "stop": "stop",
    "seed": "seed",
}
_OPENAI_OWN = {"model", "messages", "prompt", "input", "stream", "stream_options", "user", "encoding_format"}
# Fields accepted only at their do-nothing value.
_OPENAI_NEUTRAL: dict[str, Any] = {
    "n": 1,
    "best_of": 1,
    "echo": False,
    "logprobs": False,
    "parallel_tool_calls": True,
}


def _neutral(name: str, value: Any) -> bool:
    if name == "response_format":
        return isinstance(value, dict) and value.get("type") == "text"
    return name in _OPENAI_NEUTRAL and value == _OPENAI_NEUTRAL[name]


def from_openai(body: Mapping[str, Any], engine: str) -> dict[str, Any]:
    """The Hugging Face `params` an OpenAI request body asks for; a field with no equivalent is a 400.

    Hugging Face names (`do_sample`, `num_beams`, `max_length`, …) are taken as they are, as vLLM takes its
    extra sampling parameters: the gateway forwards them for open models.
    """
    params: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, value in body.items():
        if name in _OPENAI_OWN or value is None:
            continue
        target = _OPENAI_RENAMES.get(name) or (name if name in GENERATE and name != "return_full_text" else None)
        if target is not None:
            if target in params and params[target] != value:
                raise invalid_request(f"'{sources[target]}' and '{name}' say different things; send one.", name)
            params[target], sources[target] = value, name
        elif not _neutral(name, value):
            raise unsupported_parameter(name, engine)
    return params
