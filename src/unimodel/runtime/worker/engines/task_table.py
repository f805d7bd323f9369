"""The transformers engine's non-generative tasks as a table: a new task is one entry.

    TASKS[task] = Task(specs, call, pipeline="…")   # loaded as transformers.pipeline(pipeline, model=…)
    TASKS[task] = Task(specs, call, load=fn)        # loaded by fn(source, model_kwargs) (no pipeline fits)

`specs` are the `params` the task honours (anything else is a 400 naming it); `call(handle, fields, options)`
turns the v2 input fields and the validated options into the task's output (PROTOCOL.md), plain JSON.
The text tasks are here; the image and audio ones join from vision_tasks.py and audio_tasks.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import invalid_request
from ..params import Spec

Call = Callable[[Any, dict[str, Any], dict[str, Any]], Any]
Loader = Callable[[str, dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class Task:
    specs: Mapping[str, Spec]
    call: Call
    pipeline: str | None = None  # the transformers pipeline that serves it
    load: Loader | None = None  # or what loads it when no pipeline does


def text(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value.strip():
        raise invalid_request(f"'{name}' must be a non-empty string.", name)
    return value


def labels(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise invalid_request("'candidate_labels' must be a non-empty array of strings.", "candidate_labels")
    return list(value)


def plain(value: Any) -> Any:
    """Pipeline output as JSON: numpy scalars to Python numbers."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    item = getattr(value, "item", None)
    if item is not None and not isinstance(value, str | int | float):
        return item()
    return value


def _lists(options: dict[str, Any], *names: str) -> dict[str, Any]:
    """Spec `strs` values are tuples; pipelines want lists."""
    return {k: list(v) if k in names else v for k, v in options.items()}


def _text_classification(pipe: Any, fields: dict[str, Any], options: dict[str, Any]) -> Any:
    return plain(pipe(text(fields, "text"), **{"top_k": None, **options}))  # every label, best first


def _token_classification(pipe: Any, fields: dict[str, Any], options: dict[str, Any]) -> Any:
    return plain(pipe(text(fields, "text"), **_lists(options, "ignore_labels")))


def _zero_shot(pipe: Any, fields: dict[str, Any], options: dict[str, Any]) -> Any:
    return plain(pipe(text(fields, "text"), candidate_labels=labels(fields.get("candidate_labels")), **options))


def _fill_mask(pipe: Any, fields: dict[str, Any], options: dict[str, Any]) -> Any:
    value = text(fields, "text")
    mask = pipe.tokenizer.mask_token
    if mask and mask != "<mask>":
        value = value.replace("<mask>", mask)
    if not mask or mask not in value:
        raise invalid_request(f"'text' must hold the mask token <mask> (this model's: {mask}).", "text")
    return plain(pipe(value, **_lists(options, "targets")))


TEXT_TASKS: dict[str, Task] = {
    "text-classification": Task(
        {"top_k": Spec("int", ge=1), "function_to_apply": Spec("str", choices=("sigmoid", "softmax", "none"))},
        _text_classification,
        pipeline="text-classification",
    ),
    "token-classification": Task(
        {
            "aggregation_strategy": Spec("str", choices=("none", "simple", "first", "average", "max")),
            "ignore_labels": Spec("strs"),
        },
        _token_classification,
        pipeline="token-classification",
    ),
    "zero-shot-classification": Task(
        {"multi_label": Spec("bool"), "hypothesis_template": Spec("str")},
        _zero_shot,
        pipeline="zero-shot-classification",
    ),
    "fill-mask": Task({"top_k": Spec("int", ge=1), "targets": Spec("strs")}, _fill_mask, pipeline="fill-mask"),
}


def max_positions(config: Any) -> int | None:
    """The longest input a model's position embeddings cover, when its config says."""
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
