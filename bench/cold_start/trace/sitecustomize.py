"""Time stamps of a unimodel worker's start, for bench/cold_start (``run.py``).

Python imports ``sitecustomize`` at start-up from any folder on ``PYTHONPATH``; ``run.py`` puts this folder
there, with ``UNIMODEL_BENCH_TRACE=1``, for the workers it starts and for ``unimodel serve`` (whose workers
inherit both). In any other process, or without that variable, this module does nothing.

In a worker (``python -m unimodel.runtime.worker``) it prints ``STAGE <name> <CLOCK_MONOTONIC seconds>`` lines
on stdout, which the worker's log keeps:

- ``interpreter``: Python is up (site has run);
- ``import_llama_cpp``: llama_cpp imported (the worker imports it first, in its main thread: the engine's
  ``prepare``);
- ``load_start``, ``loaded``: the engine's ``load`` (``Llama(...)``) begins and ends, in the load thread;
- ``app_imported``: meanwhile, in the main thread, the HTTP app and server are imported;
- ``serving``: the HTTP server listens; ``worker_ready``: loaded and serving, so ``/health`` answers 200 from now on
  and the worker announces it on its ready pipe (state.py);
- ``engine_chat``, ``engine_first_piece``: the engine's ``chat`` called for the first request, and its first
  text piece.

The stamps wrap a few methods and watch a few imports; they cost microseconds. They are written to a copy of
stdout's descriptor.
"""

import os
import sys
import time

if os.environ.get("UNIMODEL_BENCH_TRACE") == "1" and "unimodel.runtime.worker" in getattr(sys, "orig_argv", ()):
    # A copy of stdout: the stamps still reach the log if something points fd 1 elsewhere for a while.
    _OUT = os.fdopen(os.dup(1), "w", buffering=1)
    _OUT.write(f"STAGE interpreter {time.monotonic():.6f}\n")  # before this module's own imports

    import importlib.abc
    from collections.abc import Callable, Iterator
    from types import ModuleType
    from typing import Any

    def _stage(name: str) -> None:
        _OUT.write(f"STAGE {name} {time.monotonic():.6f}\n")

    def _patch_engine(module: ModuleType) -> None:
        engine = module.LlamaCppEngine
        original_load, original_chat = engine.load, engine.chat
        seen: set[str] = set()

        def once(name: str) -> None:
            if name not in seen:
                seen.add(name)
                _stage(name)

        def load(self: Any) -> None:
            _stage("load_start")
            original_load(self)
            _stage("loaded")

        def chat(self: Any, *args: Any, **kwargs: Any) -> Iterator[str]:
            once("engine_chat")
            pieces = original_chat(self, *args, **kwargs)
            try:
                for piece in pieces:
                    once("engine_first_piece")
                    yield piece
            finally:
                close = getattr(pieces, "close", None)
                if close is not None:
                    close()

        engine.load, engine.chat = load, chat

    def _patch_state(module: ModuleType) -> None:
        state = module.ModelState
        original_serving, original_ready = state.serving, state._become_ready

        def serving(self: Any) -> None:
            _stage("serving")
            original_serving(self)

        def become_ready(self: Any) -> None:
            before = self.status
            original_ready(self)
            if before != "ready" and self.status == "ready":
                _stage("worker_ready")

        state.serving, state._become_ready = serving, become_ready

    _WATCH: dict[str, Callable[[ModuleType], None]] = {
        "llama_cpp": lambda module: _stage("import_llama_cpp"),
        "unimodel.runtime.worker.app": lambda module: _stage("app_imported"),
        "unimodel.runtime.worker.engines.llama_cpp": _patch_engine,
        "unimodel.runtime.worker.state": _patch_state,
    }

    class _AfterImport(importlib.abc.MetaPathFinder):
        """Runs a callback once a watched module has been executed."""

        def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
            if name not in _WATCH:
                return None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(name, path, target)
                if spec is not None and spec.loader is not None:
                    break
            else:
                return None
            loader, callback = spec.loader, _WATCH.pop(name)
            exec_module = loader.exec_module

            def exec_then_stamp(module: ModuleType) -> None:
                exec_module(module)
                callback(module)

            loader.exec_module = exec_then_stamp
            return spec

    sys.meta_path.insert(0, _AfterImport())
