"""The instance worker: one process serving one model over HTTP on a loopback port.

`python -m unimodel.runtime.worker --engine E --task T --model-id ID [--path P] --port N` (docs/open-models.md).
"""

from __future__ import annotations

from .app import Worker, create_app
from .engines import ENGINES, Engine, ModelSpec, engine_class

__all__ = ["ENGINES", "Engine", "ModelSpec", "Worker", "create_app", "engine_class"]
