"""Why an instance could not be started on Ray: each error carries the status and code a caller sees."""

from __future__ import annotations

__all__ = ["RayError", "RayNotInstalled", "RayPending", "RayStartFailed", "RayUnreachable"]


class RayError(OSError):
    """An instance could not be started on the Ray cluster. `status` and `code` are what a caller should see; the
    message names the cluster's address or the resources, and what to do. (An `OSError`, as `Backend.start`
    raises; the controller answers the model's waiting requests 503 `instance_start_failed` with it.)"""

    status = 503
    code = "ray_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class RayUnreachable(RayError):
    """The cluster at `[runtime.ray] address` does not answer."""

    code = "ray_unreachable"


class RayPending(RayError):
    """No node could place the instance within the pending timeout; the message starts "Pending: …"."""

    code = "ray_pending"


class RayStartFailed(RayError):
    """The instance's actor was placed but its worker could not be launched (no files, a bad path, …)."""

    code = "ray_start_failed"


class RayNotInstalled(RayError):
    code = "ray_not_installed"
