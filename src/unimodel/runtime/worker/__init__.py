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
"""

from __future__ import annotations

from .app import Worker, create_app
from .engines import ENGINES, Engine, ModelSpec, engine_class

__all__ = ["ENGINES", "Engine", "ModelSpec", "Worker", "create_app", "engine_class"]
