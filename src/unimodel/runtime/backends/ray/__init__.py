"""The Ray backend: each instance on a node of a Ray cluster, held by a named actor, reachable at that node's address.

    backend = RayBackend(RayConfig(address="10.0.0.5:6379"), settings.runtime, data_dir=Path(settings.store.data_dir))
    instance = await backend.start(spec, "smollm2-1")     # placed by Ray, files on the node, worker started
    await instance.exited.wait()                          # or: await backend.stop(instance, grace_s=10)

What an instance is: a detached actor (`WorkerHost` of runtime/raynode/, apart so that a node imports little)
named `<server id>.<instance id>.<random>` in `[runtime.ray] namespace`, holding the model's `[models.ray]`
resources (`num_cpus`, `num_gpus`, `memory`, `resources`) on the node Ray picks. The actor has the model's files on
its node (raynode/weights.py: a Hugging Face snapshot is found in, or pulled into, the node's own cache) and starts
the same worker as the local backend (`python -m unimodel.runtime.worker`, its command line built here), on the
node's address and a free port, with its ready pipe and lifeline: the worker dies with its actor. The controller
routes to `http://<node address>:<port>` as to any instance. The worker's environment is the local allow-list
(instance_env.py: never the gateway's secrets), less what describes the gateway's machine (PATH, HOME, the
caches, …), over the node's own allow-listed environment.

Watching (backend.py): a call that returns when the worker exits (its code → `returncode`); the actor's death
(killed, or Ray declares its node dead) → `exited`; and a ping every `ping_interval_s` that is the owner's
heartbeat and carries the worker's new log lines into `<[runtime] log_dir>/<instance>.log` — an actor that answers
no ping for `lost_after_s` (its node is gone: a killed raylet, a machine off) is lost: `exited` is set with the
reason, and the controller fails its requests and replaces it.

No node can take it: Ray keeps the actor waiting (an autoscaler may add a node); the backend asks the nodes why
(placement.py: "Pending: no node has num_gpus=1") and, after `pending_timeout_s` (or sooner, within the model's
queue and start timeouts), ends it and fails the start with that reason: the 503 the waiting requests get.

Leftovers (leftovers.py): actors are detached, so a gateway that dies leaves them running. Each stops itself when
its owner has not pinged it for `orphan_timeout_s`. A restarted run of the same server (same `[store] data_dir`, hence the same
server id) finds them by name at start-up, claims those whose owner stopped pinging, and hands each to the first
start of the same model running the same thing (a fingerprint of the spec): adopted, ready at once; the rest are
stopped after `adopt_window_s`. A run that still pings its actors keeps them.

Errors (errors.py) are `OSError`s with a status and a stable code: `ray_unreachable` (naming the address),
`ray_pending`, `ray_start_failed`, `ray_not_installed`. Ray is imported only when the backend connects
(client.py, the one module that touches Ray's API).
"""

from .backend import HOST_ONLY, RayBackend, RayInstance, ray_backend
from .errors import RayError, RayNotInstalled, RayPending, RayStartFailed, RayUnreachable

__all__ = [
    "HOST_ONLY",
    "RayBackend",
    "RayError",
    "RayInstance",
    "RayNotInstalled",
    "RayPending",
    "RayStartFailed",
    "RayUnreachable",
    "ray_backend",
]
