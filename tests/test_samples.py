"""The cluster status's latency percentiles: nearest-rank over the requests of a recent window."""

from __future__ import annotations

from unimodel.runtime.samples import Samples


def test_percentiles_are_nearest_rank_over_the_window_only() -> None:
    samples = Samples()
    samples.add(0.0, 100.0)  # older than the window: not counted
    for i in range(1, 101):
        samples.add(1000.0 + i, float(i))
    recent = samples.recent(now=1100.0, window_s=300)
    assert len(recent) == 100
    assert (Samples.percentile(recent, 50), Samples.percentile(recent, 99)) == (50.0, 99.0)
    assert Samples.percentile([], 50) is None
    assert Samples.percentile([7.0], 99) == 7.0


def test_the_window_keeps_a_bounded_number_of_samples() -> None:
    samples = Samples(maxlen=10)
    for i in range(100):
        samples.add(float(i), float(i))
    assert samples.recent(now=100.0, window_s=1000) == [float(i) for i in range(90, 100)]
