"""What a request holds while an instance serves it, the instance records behind it, and the errors callers see.

ModelUnavailable        503  model_unavailable      no instance can take the request now (retry_after set)
 ├── QueueFull          503  queue_full             `queue_size` requests already wait
 ├── QueueTimeout       503  queue_timeout          no slot within `queue_timeout_s`
 ├── InstanceStartFailed 503 instance_start_failed  the instance could not start; the message says why
 └── ModelOff           503  model_off              the model is turned off or shutting down
InstanceFailed          502  instance_failed        the instance died, or stopped answering, while it had the request
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
from collections.abc import Callable

from ..protocol.errors import UpstreamUnavailable
from .backends import Instance

RETRY_AFTER_S = 1.0  # what a full queue, a queue timeout or a failed start tells the client to wait (at least)


class ModelUnavailable(UpstreamUnavailable):
    """No instance of the model can take the request now; `retry_after` says when to try again."""

    status = 503
    code = "model_unavailable"


class QueueFull(ModelUnavailable):
    code = "queue_full"


class QueueTimeout(ModelUnavailable):
    code = "queue_timeout"


class InstanceStartFailed(ModelUnavailable):
    code = "instance_start_failed"


class ModelOff(ModelUnavailable):
    code = "model_off"


class InstanceFailed(UpstreamUnavailable):
    """The instance serving a request died before answering it all. The gateway raises it (see `Lease`)."""

    status = 502
    code = "instance_failed"


class InstanceState(enum.StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclasses.dataclass(eq=False)
class Replica:
    """The controller's view of one instance: its state and its load."""

    id: str
    created_at: float
    state: InstanceState = InstanceState.STARTING
    instance: Instance | None = None  # None until the backend has launched it
    in_flight: int = 0
    served: int = 0
    ready_at: float | None = None
    draining_since: float | None = None
    failure: str | None = None  # why the controller failed it (unresponsive), for the requests it held
    fetching: bool = False  # waiting for the model's files (a pull) before it can be launched

    @property
    def routable(self) -> bool:
        return self.state is InstanceState.READY and not self.exited  # exited: its exit is being noticed

    @property
    def exited(self) -> bool:
        return self.instance is not None and self.instance.exited.is_set()


class Lease:
    """One request's slot on one ready instance. Release it (or leave the `lease()` block) when the answer is done.

    When the connection to `address` could not even be opened (no byte of the request reached the instance),
    the gateway may run the request elsewhere; once the instance had it, it may have run it, so it is not re-run:

        except ConnectFailed as exc:
            if refused(exc) and await lease.instance_gone():  # the instance died: take a slot on another one
                ...release, then `deployment.lease(retry=True)` (goes to the head of the queue)...
            raise lease.failure()                             # 502 instance_failed, or end the stream
    """

    def __init__(
        self,
        model_id: str,
        replica: Replica,
        granted_at: float,
        queued_s: float,
        *,
        clock: Callable[[], float],
        on_release: Callable[[Replica, float], None],
    ) -> None:
        """`on_release(replica, elapsed_s)` is called once, when the lease is released."""
        assert replica.instance is not None
        self._clock = clock
        self._on_release = on_release
        self._replica = replica
        self._instance: Instance = replica.instance
        self.model_id = model_id
        self.instance_id = replica.id
        self.address = self._instance.address  # the instance's base URL, no trailing slash
        self.granted_at = granted_at
        self.queued_s = queued_s  # how long the request waited for its slot
        self.released = False

    @property
    def failed(self) -> bool:
        """True once the instance has exited (its in-flight requests cannot complete)."""
        return self._instance.exited.is_set() or self._replica.state is InstanceState.FAILED

    @property
    def elapsed_s(self) -> float:
        """Instance time spent on this request so far (the `inference-time` header)."""
        return max(0.0, self._clock() - self.granted_at)

    async def instance_gone(self, wait_s: float = 1.0) -> bool:
        """Whether the instance has exited, waiting up to `wait_s` for the exit to be noticed (a reset connection
        usually arrives a moment before the process is reaped)."""
        if self.failed:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._instance.exited.wait(), wait_s)
        return self.failed

    def failure(self) -> InstanceFailed:
        """The 502 to answer when the instance failed under this request (died, or dropped the connection)."""
        if not self.failed:
            return InstanceFailed(
                f"The instance serving model '{self.model_id}' dropped the connection before answering; retry the request."
            )
        if self._replica.failure is not None:
            return InstanceFailed(
                f"The instance serving model '{self.model_id}' {self._replica.failure} before the answer was "
                "complete; retry the request."
            )
        code = self._instance.returncode
        how = f" (exit code {code})" if code is not None else ""
        return InstanceFailed(
            f"The instance serving model '{self.model_id}' stopped{how} before the answer was complete; retry the request."
        )

    def release(self) -> None:
        """Give the slot back and record the instance time. Idempotent."""
        if not self.released:
            self.released = True
            self._on_release(self._replica, self.elapsed_s)
