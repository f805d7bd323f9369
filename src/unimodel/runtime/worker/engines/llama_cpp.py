"""The llama.cpp engine (llama-cpp-python): GGUF models for chat, text generation and embeddings.

Chat uses the model's own chat template (`create_chat_completion`); text generation `create_completion`;
embeddings need an embedding task (the context is created in embedding mode). llama.cpp is not thread-safe:
the app serves one request at a time. `engine_args` are `Llama(...)` keyword arguments (n_ctx, n_threads,
n_batch, chat_format, …; an unknown one fails the load), plus `reuse_prefix`: keep the previous request's
evaluated tokens and evaluate only what differs (faster multi-turn chat). It is off by default because the
numerics then depend on the previous request: the same greedy or seeded request can answer differently.

Defaults that differ from llama-cpp-python's: `n_ctx` 4096; `n_threads_batch` (prompt processing) = `n_threads`
(llama-cpp-python takes every core, so two instances on one machine would oversubscribe it); and
`repetition_penalty` 1.0 when a request names none, as Hugging Face `generate` and OpenAI-style servers have it
(llama-cpp-python's chat handlers would apply 1.1).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import LoadError, WorkerError
from ..params import Generation, Spec, pick
from .base import DEFAULT_MAX_NEW_TOKENS, EMBEDDING_TASKS, ChatMessages, Engine, Outcome

_GGUF_MAGIC = b"GGUF"
_RESERVED_ARGS = {"model_path", "embedding", "self", "kwargs"}
_WORKER_ARGS = {"reuse_prefix"}  # engine_args the worker reads itself


class _Meter:
    """A llama-cpp-python stopping criterion that counts tokens and enforces `max_length`.

    llama-cpp-python calls it after each sampled token with the tokens evaluated so far (the prompt first),
    and once more after the loop with the whole context, which it tells apart by length.
    """

    def __init__(self, max_length: int | None) -> None:
        self.max_length = max_length
        self.prompt_tokens: int | None = None
        self.sampled = 0
        self.hit_max_length = False

    def __call__(self, input_ids: Any, logits: Any) -> bool:
        n = len(input_ids)
        if self.prompt_tokens is None:
            self.prompt_tokens = n
        elif n != self.prompt_tokens + self.sampled:
            return self.hit_max_length  # the call after the loop
        if self.max_length is not None and n + 1 > self.max_length:
            self.hit_max_length = True
            return True
        self.sampled += 1
        return False


class _Metered:
    """The Llama as a chat handler sees it: completions get the meter among their stopping criteria."""

    def __init__(self, llm: Any, meter: _Meter) -> None:
        self._llm = llm
        self._meter = meter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)

    def create_completion(self, **kwargs: Any) -> Any:
        from llama_cpp import StoppingCriteriaList

        # StoppingCriteriaList calls every criterion (no short-circuit), so the meter sees every token
        criteria = StoppingCriteriaList([self._meter, *(kwargs.pop("stopping_criteria", None) or [])])
        return self._llm.create_completion(stopping_criteria=criteria, **kwargs)


class LlamaCppEngine(Engine):
    name = "llama.cpp"
    thread_safe = False
    tasks = frozenset({"chat", "text-generation", "feature-extraction", "sentence-similarity"})
    generate_specs = pick(
        "max_new_tokens max_length temperature top_k top_p min_p typical_p do_sample repetition_penalty"
        " presence_penalty frequency_penalty stop seed return_full_text",
        num_beams=Spec("int", ge=1, le=1, why="llama.cpp has no beam search"),
    )
    generate_reasons = {
        "min_new_tokens": "llama-cpp-python cannot hold back the end of sequence",
        "no_repeat_ngram_size": "use repetition_penalty, presence_penalty or frequency_penalty",
        "length_penalty": "a beam-search setting, and llama.cpp has no beam search",
        "early_stopping": "a beam-search setting, and llama.cpp has no beam search",
    }

    def prepare(self) -> None:
        with contextlib.suppress(ImportError):  # load() reports it
            import llama_cpp  # noqa: F401

    def load(self) -> None:
        path = self._gguf_file()
        try:
            from llama_cpp import Llama
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise LoadError(f"llama-cpp-python is not installed ({exc}); run `make install`") from exc
        _keep_stdio()
        known = set(inspect.signature(Llama.__init__).parameters) - _RESERVED_ARGS | _WORKER_ARGS
        unknown = sorted(set(self.spec.engine_args) - known)
        if unknown:
            raise LoadError(
                f"unknown llama.cpp engine_args: {', '.join(unknown)} (Llama() takes: {', '.join(sorted(known))})"
            )
        kwargs: dict[str, Any] = {"n_ctx": 4096, "verbose": False, **self.spec.engine_args}
        if kwargs.get("n_threads_batch") is None:
            kwargs["n_threads_batch"] = kwargs.get("n_threads") or default_threads()
        self._reuse_prefix = bool(kwargs.pop("reuse_prefix", False))
        kwargs["embedding"] = self.spec.task in EMBEDDING_TASKS
        try:
            self._llm: Any = Llama(model_path=str(path), **kwargs)
        except (ValueError, RuntimeError, OSError, TypeError) as exc:
            raise LoadError(f"llama.cpp cannot load {path}: {exc}") from exc

    def _gguf_file(self) -> Path:
        path = self.spec.local_path()
        if path is None:
            raise LoadError("the llama.cpp engine needs --path: a GGUF file (or a folder holding one)")
        if path.is_dir():
            found = sorted(path.glob("*.gguf"))
            if len(found) != 1:
                raise LoadError(f"expected one .gguf file in {path}, found {len(found)}")
            path = found[0]
        try:
            with path.open("rb") as file:
                magic = file.read(4)
        except OSError as exc:
            raise LoadError(f"cannot read model file {path}: {exc}") from exc
        if magic != _GGUF_MAGIC:
            raise LoadError(f"not a GGUF file (corrupt or wrong format): {path}")
        return path

    def _sampling(self, gen: Generation) -> dict[str, Any]:
        if not self._reuse_prefix:
            self._llm.reset()  # evaluate the whole prompt afresh: the same request, the same numerics
        max_tokens = gen.max_new_tokens
        if max_tokens is None and gen.max_length is None:
            max_tokens = DEFAULT_MAX_NEW_TOKENS
        kw: dict[str, Any] = {
            "max_tokens": max_tokens,  # None: up to the context's end (max_length then stops it)
            "stream": True,
        }
        if gen.greedy:
            kw["temperature"] = 0.0
        elif gen.temperature is not None:
            kw["temperature"] = gen.temperature
        # Hugging Face's default, and create_completion's; the chat handlers' own default would be 1.1
        kw["repeat_penalty"] = 1.0 if gen.repetition_penalty is None else gen.repetition_penalty
        for ours, theirs in (
            ("top_k", "top_k"),
            ("top_p", "top_p"),
            ("min_p", "min_p"),
            ("typical_p", "typical_p"),
            ("presence_penalty", "presence_penalty"),
            ("frequency_penalty", "frequency_penalty"),
            ("seed", "seed"),
        ):
            value = getattr(gen, ours)
            if value is not None:
                kw[theirs] = value
        return kw

    def chat(self, messages: ChatMessages, gen: Generation, outcome: Outcome) -> Iterator[str]:
        from llama_cpp import llama_chat_format

        meter = _Meter(None if gen.max_new_tokens is not None else gen.max_length)
        llm = self._llm
        # What create_chat_completion does, minus its lack of a stopping_criteria argument: the handler
        # renders the model's chat template and calls llama.create_completion, where the meter goes in.
        handler: Any = (  # Any: it is handed our stand-in for the Llama
            llm.chat_handler
            or llm._chat_handlers.get(llm.chat_format)
            or llama_chat_format.get_chat_completion_handler(llm.chat_format)
        )
        try:
            chunks = handler(llama=_Metered(llm, meter), messages=messages, **self._sampling(gen))
        except ValueError as exc:
            raise _context_error(exc, "messages") or exc from None
        return self._pieces(chunks, meter, outcome, "messages", chat=True)

    def complete(self, prompt: str, gen: Generation, outcome: Outcome) -> Iterator[str]:
        meter = _Meter(None if gen.max_new_tokens is not None else gen.max_length)
        chunks = _Metered(self._llm, meter).create_completion(prompt=prompt, **self._sampling(gen))
        return self._pieces(chunks, meter, outcome, "prompt", chat=False)

    def _pieces(self, chunks: Any, meter: _Meter, outcome: Outcome, field: str, *, chat: bool) -> Iterator[str]:
        finish: str | None = None
        ended = False
        try:
            for chunk in chunks:
                choice = chunk["choices"][0]
                text = choice["delta"].get("content") if chat else choice["text"]
                if text:
                    yield text
                finish = choice.get("finish_reason") or finish
            ended = True
        except ValueError as exc:  # raised at the first token: the prompt exceeds the context
            raise _context_error(exc, field) or exc from None
        finally:
            chunks.close()
            ended_by_eos = ended and finish == "stop" and not meter.hit_max_length
            outcome.prompt_tokens = meter.prompt_tokens or 0
            outcome.completion_tokens = max(0, meter.sampled - (1 if ended_by_eos else 0))
            outcome.finish_reason = "length" if meter.hit_max_length else (finish or "stop")

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        if self.spec.task not in EMBEDDING_TASKS:
            return super().embed(texts)
        vectors, count = self._llm.embed(texts, normalize=False, return_count=True)
        return [_normalize(_pooled(v)) for v in vectors], int(count)


def default_threads() -> int:
    """llama-cpp-python's default `n_threads`: half the cores (at least one)."""
    return max((os.cpu_count() or 1) // 2, 1)


class _NoRedirect:
    def __init__(self, disable: bool = True) -> None:
        pass

    def __enter__(self) -> _NoRedirect:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _keep_stdio() -> None:
    """Stop llama-cpp-python from pointing fds 1 and 2 (and sys.stdout, sys.stderr) at /dev/null while it loads
    a model without `verbose`. That is process-wide, and the worker's other threads run meanwhile (its HTTP
    server starts while the model loads): what they print then would be lost. Nothing of llama.cpp's shows
    instead: its messages go through llama-cpp-python's log callback, which without `verbose` prints none
    (llama.cpp's errors come at a level it takes for DEBUG); only a fatal error's last words would reach
    stderr now, where they help."""
    import llama_cpp._internals
    import llama_cpp.llama

    modules: list[Any] = [llama_cpp._internals, llama_cpp.llama]
    for module in modules:
        if hasattr(module, "suppress_stdout_stderr"):
            module.suppress_stdout_stderr = _NoRedirect


def _pooled(vector: Any) -> list[float]:
    # a model without pooling gives one vector per token: mean-pool them
    if vector and isinstance(vector[0], list):
        width = len(vector[0])
        return [sum(row[i] for row in vector) / len(vector) for i in range(width)]
    return [float(x) for x in vector]


def _normalize(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def _context_error(exc: ValueError, field: str) -> WorkerError | None:
    if "context window" not in str(exc):
        return None
    error = WorkerError(400, "context_length_exceeded", f"The input is too long for this model: {exc}", field)
    error.__cause__ = exc
    return error
