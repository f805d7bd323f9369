"""The names modules written before `runtime/backends/` import: the interface and the local backend.

New code imports from `runtime.backends` (the interface: `backends/base.py`; one module per backend).
"""

from __future__ import annotations

from .backends.base import Backend, Instance
from .backends.local import CommandFor, LocalBackend, free_port, worker_command

__all__ = ["Backend", "CommandFor", "Instance", "LocalBackend", "free_port", "worker_command"]
