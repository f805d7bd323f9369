"""Where an instance can run: why no node places it (the "Pending: …" reason), and what a node offers.

Pure functions of `ray.nodes()`'s records (`Alive`, `NodeManagerAddress`, `NodeID`, `Resources`: totals), so they
are tested without a cluster. Ray keeps an actor that no node can take waiting for one (an autoscaler may add it);
the backend asks these functions why, and fails the start with the answer when it waits too long.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["node_summary", "pending_reason"]

Describe = Callable[[str, float], str]
_SHOWN = ("CPU", "GPU", "memory")
_GIB = float(1 << 30)


def _fits(total: Mapping[str, float], request: Mapping[str, float]) -> bool:
    return all(total.get(name, 0.0) >= amount for name, amount in request.items())


def pending_reason(request: Mapping[str, float], nodes: Sequence[Mapping[str, Any]], describe: Describe) -> str:
    """Why an instance asking `request` (Ray's resource names) is not placed: "Pending: no node has num_gpus=1"
    when no live node has that much of a resource at all; "Pending: no node has all of …" when each is somewhere
    but not together; else every node that could host it is busy."""
    alive = [n for n in nodes if n.get("Alive")]
    if not alive:
        return "Pending: the Ray cluster has no live node"
    totals = [dict(n.get("Resources") or {}) for n in alive]
    hosts = [t for t in totals if _fits(t, request)]
    if not hosts:
        missing = {k: v for k, v in request.items() if not any(t.get(k, 0.0) >= v for t in totals)}
        if missing:
            return "Pending: no node has " + ", ".join(describe(k, v) for k, v in missing.items())
        return "Pending: no node has all of " + ", ".join(describe(k, v) for k, v in request.items())
    wanted = ", ".join(describe(k, v) for k, v in request.items()) or "what it needs"
    count = f"{len(hosts)} node" + ("s" if len(hosts) != 1 else "")
    return f"Pending: every node that has {wanted} ({count}) is fully taken by other work now"


def node_summary(nodes: Sequence[Mapping[str, Any]], limit: int = 4) -> str:
    """The live nodes and what they have, for a message: `127.0.0.2 (CPU 2, memory 15.9 GiB), …`."""
    alive = [n for n in nodes if n.get("Alive")]
    parts = []
    for node in alive[:limit]:
        total = node.get("Resources") or {}
        have = [
            f"{name} {total[name] / _GIB:.1f} GiB" if name == "memory" else f"{name} {total[name]:g}"
            for name in _SHOWN
            if total.get(name)
        ]
        have += [
            f"{name} {amount:g}"
            for name, amount in sorted(total.items())
            if name not in _SHOWN and not name.startswith("node:") and name != "object_store_memory"
        ]
        parts.append(f"{node.get('NodeManagerAddress', '?')} ({', '.join(have)})")
    more = f", and {len(alive) - limit} more" if len(alive) > limit else ""
    return f"{len(alive)} live node{'s' if len(alive) != 1 else ''}: " + "; ".join(parts) + more
