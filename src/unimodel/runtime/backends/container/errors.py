"""Why an instance's container could not be started: each error carries the status and code a caller sees."""

from __future__ import annotations


class ContainerError(OSError):
    """An instance's container could not be started. `status` and `code` are what a caller should see; the
    message names the image or the engine's address and what to do. (An `OSError`, as `Backend.start` raises.)"""

    status = 503
    code = "container_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ContainerEngineUnavailable(ContainerError):
    code = "container_engine_unavailable"


class ContainerImageMissing(ContainerError):
    code = "container_image_missing"


class ContainerImagePullFailed(ContainerError):
    code = "container_image_pull_failed"


class ContainerStartFailed(ContainerError):
    code = "container_start_failed"
