"""Declarative parameter tables and the one interpreter that applies them.

A provider declares, for every parameter it accepts, where the value goes in its request body (a dotted path),
an optional transform and an allowed range. Anything the table does not name is refused with a 400 that names
the parameter and the provider: nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..protocol import InvalidRequest, UnsupportedParameter


@dataclass(frozen=True, slots=True)
class Param:
    target: str
    transform: Callable[[Any], Any] | None = None
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True, slots=True)
class Unsupported:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OnlyDefault:
    """Accepted only at the provider's fixed behaviour (`n = 1`, say), which needs nothing sent."""

    value: Any
    reason: str = ""


Rule = Param | Unsupported | OnlyDefault
ParamTable = Mapping[str, Rule]


def passthrough(*names: str) -> dict[str, Rule]:
    """Rows that forward parameters under their own name."""
    return {name: Param(name) for name in names}


def set_path(body: dict[str, Any], path: str, value: Any) -> None:
    """Set `value` at a dotted `path`, creating the objects on the way."""
    *parents, leaf = path.split(".")
    node = body
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[leaf] = value


def apply_params(provider: str, table: ParamTable, given: Mapping[str, Any], body: dict[str, Any]) -> None:
    """Write every given parameter into `body` by the provider's table, or refuse it by name."""
    for name, value in given.items():
        rule = table.get(name)
        if rule is None:
            raise UnsupportedParameter(name, provider)
        if isinstance(rule, Unsupported):
            raise UnsupportedParameter(name, provider, rule.reason)
        if isinstance(rule, OnlyDefault):
            if value != rule.value:
                raise UnsupportedParameter(name, provider, rule.reason)
            continue
        _check_range(provider, name, value, rule)
        set_path(body, rule.target, rule.transform(value) if rule.transform else value)


def _check_range(provider: str, name: str, value: Any, rule: Param) -> None:
    if rule.minimum is None and rule.maximum is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"Parameter '{name}' must be a number, got {type(value).__name__}.", param=name)
    if rule.minimum is not None and value < rule.minimum:
        raise InvalidRequest(
            f"Parameter '{name}' must be at least {rule.minimum:g} for provider '{provider}', got {value}.",
            param=name,
        )
    if rule.maximum is not None and value > rule.maximum:
        raise InvalidRequest(
            f"Parameter '{name}' must be at most {rule.maximum:g} for provider '{provider}', got {value}.",
            param=name,
        )
