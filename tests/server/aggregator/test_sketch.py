"""The distribution's sketch: the library's key mapping, windows by subtraction."""

from __future__ import annotations

import math
import random

from cugar_metrics.aggregator.series import EXECUTION_BUCKETS
from cugar_metrics.aggregator.sketch import _MAPPING, Distribution, merged_quantiles


def test_inlined_key_is_the_libraries_mapping() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(0, 4) for _ in range(20_000)] + [1e-9, 1.0, 86_400.0, 2.0**-20]
    d = Distribution((1.0,))
    for v in values:
        d.observe(v)
    frozen = d.freeze()
    keys = {frozen.offset + i for i, n in enumerate(frozen.bins) if n}
    assert keys == {_MAPPING.key(v) for v in values}


def test_subtracting_an_earlier_state_leaves_exactly_the_later_observations() -> None:
    d = Distribution((1.0, 10.0))
    for v in (0.5, 5.0, 50.0, 0.0):
        d.observe(v)
    early = d.freeze()
    for v in (0.001, 500.0, 5.0):  # grows the store on both sides
        d.observe(v)
    window = d.freeze().minus(early)
    assert (window.count, window.sum, window.buckets, window.zero_count) == (
        3,
        505.001,
        (1, 1, 1),
        0,
    )
    assert int(window.bins.sum()) == 3
    low, high = merged_quantiles([window], [0.0, 1.0])
    assert low is not None and abs(low - 0.001) <= 0.00001
    assert high is not None and abs(high - 500.0) <= 5.0


def test_zero_durations_are_counted_and_estimated_as_zero() -> None:
    d = Distribution((1.0,))
    for v in (0.0, 0.0, 0.0, 2.0):
        d.observe(v)
    assert merged_quantiles([d.freeze()], [0.5, 1.0]) == [0.0, _MAPPING.value(_MAPPING.key(2.0))]


def test_freeze_is_cached_until_the_next_observation() -> None:
    d = Distribution((1.0,))
    d.observe(1.0)
    first = d.freeze()
    assert d.freeze() is first
    d.observe(2.0)
    assert d.freeze() is not first


def test_one_distributions_quantiles_are_those_of_the_general_merge() -> None:
    """merged_quantiles takes a shortcut for a list of one distribution (a dashboard row);
    it gives exactly what the general path gives for the same distribution (an iterator
    takes the general path), zeros and empty sketches included."""
    rng = random.Random(3)
    qs = [0.0, 0.5, 0.95, 0.99, 1.0]
    for _ in range(300):
        d = Distribution(EXECUTION_BUCKETS)
        for _ in range(rng.randint(0, 50)):
            d.observe(0.0 if rng.random() < 0.1 else math.exp(rng.uniform(-14, 8)))
        frozen = d.freeze()
        assert merged_quantiles([frozen], qs) == merged_quantiles(iter([frozen]), qs)
