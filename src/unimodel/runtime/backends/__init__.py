"""Instance backends: how an instance of an open model is started, stopped and watched.

    base.py       the interface (`Backend`, `Instance`) every backend implements
    local.py      subprocesses on this machine (`LocalBackend`), the default
    container/    one container per instance through the Docker Engine API (Docker or Podman)
    ray/          one Ray actor per instance, on the nodes of a Ray cluster

Which backend a model's instances run on is configuration: `[runtime] backend`, or a `[[models]]` table's own
`backend`. `FACTORIES` maps each name that is wired in to how it is made from the settings; a name the config
accepts but that is not wired in yet (`PLANNED`) is refused when the config is loaded (`problem`), so a server
never starts with models it cannot run. Wiring a backend in is one entry in `FACTORIES`.

    backends = Backends.from_settings(settings)           # the ones the config names, made once
    backends.for_model(spec)                              # the model's own, else [runtime] backend's
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from ...config import ConfigError, OpenModelConfig, Settings
from .base import Backend, Instance
from .local import LocalBackend

__all__ = ["FACTORIES", "PLANNED", "Backend", "BackendFactory", "Backends", "Instance", "LocalBackend", "problem"]

log = logging.getLogger("unimodel.runtime")

BackendFactory = Callable[[Settings], Backend]


def _local(settings: Settings) -> Backend:
    state_dir = Path(settings.store.data_dir).expanduser() / "instances"  # leftovers.py
    return LocalBackend(settings.runtime, state_dir=state_dir)


def _container(settings: Settings) -> Backend:
    from .container import container_backend  # imports the docker SDK: only when a model runs in a container

    return container_backend(settings)


def _ray(settings: Settings) -> Backend:
    from .ray import ray_backend  # Ray itself is imported when the backend first connects

    return ray_backend(settings)


FACTORIES: dict[str, BackendFactory] = {"local": _local, "container": _container, "ray": _ray}
PLANNED: dict[str, str] = {}  # names the config accepts that are not wired into this build yet


def problem(name: str) -> str | None:
    """Why `name` cannot be a backend in this build (a sentence for the config error), or None when it can."""
    if name in FACTORIES:
        return None
    usable = ", ".join(f'"{n}"' for n in FACTORIES)
    if name in PLANNED:
        return f'backend "{name}" ({PLANNED[name]}) is not available in this build yet; use {usable}'
    return f'backend "{name}" does not exist; use {usable}'


class Backends:
    """The backends a server's open models run on, by name, each made once: `for_model(spec)` is the model's own
    `backend`, else `[runtime] backend`."""

    def __init__(self, default: str, make: Callable[[str], Backend]) -> None:
        self._default = default
        self._make = make
        self._made: dict[str, Backend] = {}
        self.default = self._get(default)

    @classmethod
    def from_settings(cls, settings: Settings) -> Backends:
        """The backends `FACTORIES` makes for `settings`: `[runtime] backend` and every model's own, made now.
        Raises `ConfigError` for a name that is not wired in (the config refuses one already)."""

        def make(name: str) -> Backend:
            why = problem(name)
            if why is not None:
                raise ConfigError(why)
            return FACTORIES[name](settings)

        backends = cls(settings.runtime.backend, make)
        for spec in settings.models:
            backends.for_model(spec)
        return backends

    @classmethod
    def only(cls, backend: Backend) -> Backends:
        """Every model on `backend`, whatever its config names (tests, or a backend built by hand)."""
        return cls("", lambda _name: backend)

    def for_model(self, spec: OpenModelConfig) -> Backend:
        return self._get(spec.backend or self._default)

    def _get(self, name: str) -> Backend:
        backend = self._made.get(name)
        if backend is None:
            backend = self._made[name] = self._make(name)
        return backend

    def _distinct(self) -> list[Backend]:
        return list({id(b): b for b in self._made.values()}.values())

    async def stop_leftovers(self) -> None:
        """Each backend's `stop_leftovers`; one that fails is logged (a start-up chore: never a reason not to
        serve)."""
        for backend in self._distinct():
            try:
                await backend.stop_leftovers()
            except Exception:
                log.exception("stopping instances left by a previous run failed (%s)", type(backend).__name__)

    async def aclose(self) -> None:
        await asyncio.gather(*(b.aclose() for b in self._distinct()))
