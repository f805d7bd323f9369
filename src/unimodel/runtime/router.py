"""The router: which ready instance takes the next request.

A strategy with one method. Least loaded wins: the ready instance with the fewest requests in flight, among those
below the per-instance limit; ties go to the instance that has served the fewest requests in all, then round-robin,
so an idle pool is used evenly rather than always from its first member.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

__all__ = ["LeastLoadedRouter", "Routable"]


class Routable(Protocol):
    @property
    def routable(self) -> bool: ...  # ready and not leaving (draining, failed, stopped)

    @property
    def in_flight(self) -> int: ...

    @property
    def served(self) -> int: ...


R = TypeVar("R", bound=Routable)


class LeastLoadedRouter:
    def __init__(self) -> None:
        self._turn = 0

    def pick(self, instances: Iterable[R], limit: int) -> R | None:
        """The instance to send the next request to, or None when every ready instance is at `limit`."""
        candidates = [i for i in instances if i.routable and i.in_flight < limit]
        if not candidates:
            return None
        load = min((i.in_flight, i.served) for i in candidates)
        tied = [i for i in candidates if (i.in_flight, i.served) == load]
        self._turn += 1
        return tied[self._turn % len(tied)]
