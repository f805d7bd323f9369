"""One module per engine, imported only when chosen (each pulls in heavy libraries lazily, at load)."""

from __future__ import annotations

import importlib

from .base import Engine, ModelSpec, Outcome

ENGINES = {
    "llama.cpp": ("llama_cpp", "LlamaCppEngine"),
    "transformers": ("transformers", "TransformersEngine"),
    "command": ("command", "CommandEngine"),
    "diffusers": ("diffusers", "DiffusersEngine"),
}


def engine_class(name: str) -> type[Engine]:
    """The engine class for `--engine NAME`; KeyError names the engines there are."""
    if name not in ENGINES:
        raise KeyError(f"unknown engine {name!r}; engines: {', '.join(ENGINES)}")
    module, cls = ENGINES[name]
    engine: type[Engine] = getattr(importlib.import_module(f"{__name__}.{module}"), cls)
    return engine


__all__ = ["ENGINES", "Engine", "ModelSpec", "Outcome", "engine_class"]
