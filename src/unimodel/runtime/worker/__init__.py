"""The instance worker: one process serving one model over HTTP on a loopback port (docs/open-models.md).

    python -m unimodel.runtime.worker --engine {llama.cpp,transformers,command} --task T --model-id ID
        [--path P] --port N [--engine-arg KEY=VALUE]… [--command TEMPLATE] [--health-path /health]
        [--start-timeout S]

- `GET /health`: 503 `{"status": "loading"}` while the model loads (in a background thread), 200
  `{"status": "ready"}` after; the process exits 3 with the reason on stderr when the model cannot load.
- `POST /v1/chat/completions`, `/v1/completions` (chat and generation tasks; `stream: true` is SSE ending in
  `data: [DONE]`, with a usage chunk when `stream_options.include_usage`), `/v1/embeddings` (embedding
  tasks), `GET /v1/models`.
- `POST /v1/run`: the task's v2 input (PROTOCOL.md) → `{"output": …}`; generation tasks stream raw text.
- Errors: `{"error": {"message", "code", "param", "type"}}` with a real status (errors.py lists the codes).
- With `UNIMODEL_READY_FD=<fd>` in its environment (an inherited pipe's write end) it writes `ready\n` there
  once `/health` answers 200, then closes it (state.py); the local backend passes one so it need not poll.
- With `UNIMODEL_LIFELINE_FD=<fd>` (an inherited pipe's read end) it kills its process group, itself included,
  as soon as that pipe reaches EOF: the process that started it is gone (runtime/lifeline.py).
- Exit status: 0 after SIGTERM or SIGINT (the requests being answered finish first), 1 when the port cannot
  be bound (at once, before loading), 2 for a bad command line, 3 when the model cannot load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Worker, create_app
    from .engines import ENGINES, Engine, ModelSpec, engine_class

__all__ = ["ENGINES", "Engine", "ModelSpec", "Worker", "create_app", "engine_class"]

_LAZY = {"Worker": ".app", "create_app": ".app", "ENGINES": ".engines", "Engine": ".engines"}
_LAZY |= {"ModelSpec": ".engines", "engine_class": ".engines"}


def __getattr__(name: str) -> Any:
    # Lazy: `python -m unimodel.runtime.worker` imports this package first, and its HTTP app and server are
    # imported only once the model has started loading (see __main__).
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name], __name__), name)
