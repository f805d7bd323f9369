"""Instance backends: how an instance of an open model is started, stopped and watched.

    base.py    the interface (`Backend`, `Instance`) every backend implements
    local.py   subprocesses on this machine (`LocalBackend`), the default

The controller knows instances only by address and events (base.py); which backend a model's instances run on
is configuration.
"""

from __future__ import annotations

from .base import Backend, Instance
from .local import LocalBackend

__all__ = ["Backend", "Instance", "LocalBackend"]
