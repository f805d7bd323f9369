"""What an engine is to the worker: it loads one model, then serves the endpoints its task allows.

Every method runs in a worker thread (never on the event loop) and may block. An engine that is not
thread-safe is called for one request at a time (the app holds a lock). Text generation is an iterator of
text pieces; the engine fills an `Outcome` (finish reason, token counts) by the time the iterator ends, and
stops generating when the iterator is closed early (a stop string matched, the client went away).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..errors import LoadError, WorkerError
from ..params import Generation, Spec

CHAT_TASKS = frozenset({"chat", "image-text-to-text"})
VISION_CHAT_TASKS = frozenset({"image-text-to-text"})  # chat whose messages may hold images
GENERATIVE_TASKS = CHAT_TASKS | {"text-generation", "text2text-generation", "summarization", "translation"}
ChatMessages = list[dict[str, Any]]
"""`{role, content}`: content a string, or for a vision chat a list of `{type: text, text}` and `{type: image, image}`
parts, the image a decoded PIL image (wire.py)."""
EMBEDDING_TASKS = frozenset({"feature-extraction", "sentence-similarity"})
DEFAULT_MAX_NEW_TOKENS = 512  # when a request names no length limit: bounded work per request


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What the worker's command line says to serve."""

    engine: str
    task: str
    model_id: str
    path: str | None = None
    engine_args: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    command: str | None = None
    health_path: str = "/health"
    start_timeout_s: float = 600.0

    def local_path(self) -> Path | None:
        """The model's file or folder, checked to exist; None when the model is named by id only."""
        if self.path is None:
            return None
        path = Path(self.path).expanduser()
        if not path.exists():
            raise LoadError(f"model file not found: {path}")
        return path


@dataclass(frozen=True, slots=True)
class MediaOutput:
    """A task's output that is media (a generated image, speech): the worker answers its bytes as they are, with
    their content type, and the gateway keeps them in its media store (or hands them to the caller)."""

    data: bytes
    content_type: str  # image/png, audio/wav


@dataclass(slots=True)
class Outcome:
    """Filled in by a generation as it ends."""

    finish_reason: str = "stop"  # "stop" (end of sequence or a stop string) or "length"
    prompt_tokens: int = 0
    completion_tokens: int = 0


def unsupported_task(endpoint: str, task: str, wants: str) -> WorkerError:
    return WorkerError(
        400,
        "unsupported_task",
        f"{endpoint} is not served by this model: its task is '{task}', and {endpoint} needs {wants}.",
    )


class Engine:
    """The base answers every capability with a 400; an engine overrides what its model can do."""

    name: ClassVar[str]
    thread_safe: ClassVar[bool] = False
    tasks: ClassVar[frozenset[str]]
    generate_specs: Mapping[str, Spec] = {}  # the `params` generation honours
    generate_reasons: Mapping[str, str] = {}  # why a known parameter is refused (shown in the 400)
    on_fatal: Callable[[str], None] | None = None  # set by the app: call when the model can no longer serve

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    def prepare(self) -> None:
        """Called in the main thread before `load` starts in its own thread, while nothing else runs: import
        what the load needs here when importing it in the load thread would compete with the web stack's
        imports for the GIL (errors are left to `load`, which reports them)."""

    def load(self) -> None:
        """Load the model (blocking); raise LoadError with a message a person can act on."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the engine holds (child processes); called at shutdown."""

    def abandon(self) -> None:
        """Kill what the engine started outside the worker's process group, now, from any thread: the worker is
        about to die because its gateway is gone (lifeline.py), and nothing may outlive it."""

    def chat(self, messages: ChatMessages, gen: Generation, outcome: Outcome) -> Iterator[str]:
        raise unsupported_task("/v1/chat/completions", self.spec.task, "a chat or text-generation model")

    def complete(self, prompt: str, gen: Generation, outcome: Outcome) -> Iterator[str]:
        raise unsupported_task("/v1/completions", self.spec.task, "a text-generation model")

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """Vectors for `texts`, and the number of input tokens."""
        raise unsupported_task("/v1/embeddings", self.spec.task, "a feature-extraction model")

    def run(self, task_input: dict[str, Any], params: Any) -> Any:
        """A non-generative task's output (PROTOCOL.md), from its v2 input fields: plain JSON, or a MediaOutput."""
        raise unsupported_task("/v1/run", self.spec.task, "a task this engine runs")

    def task_specs(self) -> Mapping[str, Spec]:
        """The `params` that `run` honours for this model's task."""
        return {}
