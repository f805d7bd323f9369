"""Prices: which `[prices]` row applies to a model, and what a request cost."""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase

from ..config import Price

_GLOB_CHARS = frozenset("*?[")


def price_for(model: str, prices: Mapping[str, Price]) -> Price | None:
    """The row for `model`: its exact id wins, else the most specific matching glob (the longest pattern; among
    equally long ones, the first in the table), else None."""
    exact = prices.get(model)
    if exact is not None:
        return exact
    best: tuple[int, Price] | None = None
    for pattern, price in prices.items():
        if _GLOB_CHARS.isdisjoint(pattern) or not fnmatchcase(model, pattern):
            continue
        if best is None or len(pattern) > best[0]:
            best = (len(pattern), price)
    return best[1] if best else None


def cost(price: Price, input_tokens: int | None, output_tokens: int | None, inference_s: float | None) -> float:
    """USD for one request: tokens at the per-million prices, instance-seconds at the per-second price, plus the
    per-request price. Missing counts cost nothing."""
    return (
        (input_tokens or 0) * price.input_per_mtok / 1_000_000
        + (output_tokens or 0) * price.output_per_mtok / 1_000_000
        + (inference_s or 0.0) * price.per_inference_s
        + price.per_request
    )


class PriceTable:
    """`price_for` with the answer remembered per model: the gateway asks for every request, and the table and the
    set of model ids seen are both small. Build a new table when the prices change."""

    def __init__(self, prices: Mapping[str, Price], *, max_cached: int = 4096) -> None:
        self._prices = dict(prices)
        self._cache: dict[str, Price | None] = {}
        self._max_cached = max_cached

    def price(self, model: str) -> Price | None:
        try:
            return self._cache[model]
        except KeyError:
            found = price_for(model, self._prices)
            if len(self._cache) < self._max_cached:
                self._cache[model] = found
            return found

    def cost(
        self, model: str, input_tokens: int | None, output_tokens: int | None, inference_s: float | None
    ) -> float | None:
        """USD for one request of `model`, or None when no row matches (the ledger then records no cost)."""
        found = self.price(model)
        return None if found is None else cost(found, input_tokens, output_tokens, inference_s)
