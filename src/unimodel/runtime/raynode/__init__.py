"""What runs on a Ray node for the Ray backend (runtime/backends/ray/): the actor that holds one instance's worker
(host.py, `WorkerHost`) and the model's files on the node (weights.py).

Apart from the backend's package on purpose: a Ray worker process imports the actor's module, with its parent
packages, before the instance can start, on every cold start's path. This package and what it imports at load
are the standard library and two small stdlib-only modules of runtime/ (lifeline.py, instance_env.py); the
configuration and the Hub client are imported only when a Hub snapshot must be found or pulled on the node.
"""
