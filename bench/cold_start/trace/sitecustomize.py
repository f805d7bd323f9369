"""Time stamps of a unimodel worker's start, for bench/cold_start (``run.py``).

Python imports ``sitecustomize`` at start-up from any folder on ``PYTHONPATH``; ``run.py`` puts this folder
there, with ``UNIMODEL_BENCH_TRACE=1``, for the workers it starts and for ``unimodel serve`` (whose workers
inherit both). In any other process, or without that variable, this module does nothing.

In a worker (``python -m unimodel.runtime.worker``) it prints ``STAGE <name> <CLOCK_MONOTONIC seconds>`` lines
on stdout, which the worker's log keeps:

- ``interpreter``: Python is up (site has run);
- ``uvicorn_imported``: the worker's imports are done (the package with its app and starlette, the engine
  module, then uvicorn, which ``main`` imports last);
- ``load_start``, ``import_llama_cpp``, ``loaded``: inside the engine's ``load`` (run in a thread once uvicorn
  has started): llama_cpp imported, then ``Llama(...)`` built. The worker answers ``/health`` 200 right after;
- ``engine_chat``, ``engine_first_piece``: the engine's ``chat`` called for the first request, and its first
  text piece.

The stamps wrap the engine's methods and watch two imports; they cost microseconds.
"""

import os
import sys
import time

if os.environ.get("UNIMODEL_BENCH_TRACE") == "1" and "unimodel.runtime.worker" in getattr(sys, "orig_argv", ()):
    print(f"STAGE interpreter {time.monotonic():.6f}", flush=True)  # before this module's own imports

    import importlib.abc
    from collections.abc import Callable, Iterator
    from types import ModuleType
    from typing import Any

    def _stage(name: str) -> None:
        print(f"STAGE {name} {time.monotonic():.6f}", flush=True)

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
            import llama_cpp  # noqa: F401  (the engine's load imports it: timed here, then cached)

            _stage("import_llama_cpp")
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

    _WATCH: dict[str, Callable[[ModuleType], None]] = {
        "uvicorn": lambda module: _stage("uvicorn_imported"),
        "unimodel.runtime.worker.engines.llama_cpp": _patch_engine,
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
