"""The worker's errors: each one an HTTP status, a stable code, a message a person can act on, and the parameter.

WorkerError                       answered as {"error": {"message", "code", "param", "type"}}
  400 invalid_request             a malformed body (the message names the field)
  400 invalid_parameter           a parameter with a bad value (`max_new_tokens: "x"`, `temperature: -1`)
  400 unsupported_parameter       a parameter this engine or task cannot honour
  400 unsupported_task            an endpoint this model's task does not serve
  400 context_length_exceeded     the input does not fit the model's context
  400 invalid_media               an image or audio input that cannot be decoded (not one, truncated, empty, a bomb)
  503 model_loading               the model is not loaded yet (GET /health says when it is)
  500 engine_error                the engine failed on this request
  502 upstream_error              the `command` engine's server failed or did not answer
LoadError                         the model cannot load: the process prints it and exits non-zero
"""

from __future__ import annotations

from typing import Any


class WorkerError(Exception):
    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status == 400 else "server_error"
        return {"error": {"message": self.message, "code": self.code, "param": self.param, "type": kind}}


class LoadError(Exception):
    """The model cannot be loaded; the message says which file and why."""


def invalid_request(message: str, param: str | None = None) -> WorkerError:
    return WorkerError(400, "invalid_request", message, param)


def invalid_parameter(name: str, message: str) -> WorkerError:
    return WorkerError(400, "invalid_parameter", f"Parameter '{name}' {message}", name)


def unsupported_parameter(name: str, engine: str, why: str = "") -> WorkerError:
    reason = f": {why}" if why else ""
    return WorkerError(
        400,
        "unsupported_parameter",
        f"Parameter '{name}' is not supported by engine '{engine}'{reason}. Remove it.",
        name,
    )
