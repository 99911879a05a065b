"""Bins are bounded whatever the spread of the values: a cumulative distribution keeps at most
MAX_BINS keys, a window slot SLOT_BINS, lower keys folded into the lowest kept."""

from __future__ import annotations

from cugar_metrics.aggregator import Aggregator
from cugar_metrics.aggregator.sketch import (
    _MAPPING,
    MAX_BINS,
    SLOT_BINS,
    Distribution,
    compact,
    merge,
    merged_quantiles,
)
from cugar_metrics.model import Execution

T0 = 1_000_000.0


def test_cumulative_store_collapses_its_lowest_keys_and_subtraction_stays_exact() -> None:
    d = Distribution((1.0,))
    for v in (1.0, 2.0, 1e-300, 1e-250):  # far below: into the lowest key kept
        d.observe(v)
    early = d.freeze()
    assert len(early.bins) <= MAX_BINS and int(early.bins.sum()) == 4
    d.observe(1e300)  # far above: the store moves up, everything below folds into bins[0]
    d.observe(5.0)
    late = d.freeze()
    assert len(late.bins) == MAX_BINS
    assert late.offset + MAX_BINS - 1 == _MAPPING.key(1e300)
    assert int(late.bins.sum()) == late.count == 6
    window = late.minus(early)
    assert (window.count, int(window.bins.sum())) == (2, 2)
    # The two later values: 5.0 sits among the collapsed keys (read as the lowest kept),
    # 1e300 keeps its 1 % accuracy.
    low, high = merged_quantiles([window], [0.0, 1.0])
    assert high is not None and abs(high - 1e300) <= 0.01 * 1e300
    assert low is not None and low >= 5.0


def test_a_slot_keeps_at_most_slot_bins_keys_in_a_small_type() -> None:
    d = Distribution((1.0,))
    values = [1e-6 * 1.05**i for i in range(400)]  # 1 us to 300 s: ~980 keys
    for v in values:
        d.observe(v)
    slot = compact(d.freeze())
    assert len(slot.bins) == SLOT_BINS and slot.bins.dtype.itemsize == 1
    assert int(slot.bins.sum()) == slot.count == 400 and slot.buckets == ()
    assert slot.offset + SLOT_BINS - 1 == _MAPPING.key(values[-1])
    merged = merge([slot, slot], SLOT_BINS)
    assert (merged.count, int(merged.bins.sum()), len(merged.bins)) == (800, 800, SLOT_BINS)
    # Quantiles above the collapsed keys keep their accuracy.
    (p99,) = merged_quantiles([merged], [0.99])
    exact = sorted(values)[int(0.99 * 399)]
    assert p99 is not None and abs(p99 - exact) <= 0.01 * exact


def _execution(i: int, duration: float) -> Execution:
    return Execution(f"id-{i}", "p", "success", "", duration, 1, None, (), ())


def test_window_memory_does_not_grow_with_the_spread_of_values() -> None:
    """The same number of executions, narrow or 1 us to 1 h: the slots keep the same
    number of keys at most, and as many slots."""
    held = []
    for spread in (1.001, 3.6e9):
        agg = Aggregator(start_time=T0)
        n = 0
        for tick in range(400):  # over an hour of 10-s ticks
            batch = []
            for j in range(50):
                n += 1
                batch.append(_execution(n, 1e-6 * spread ** (j / 49)))
            agg.record(batch, T0 + 10 * tick + 1)
        slots = [*agg._fine.values(), *agg._minutes.values(), *agg._fives.values()]
        keys = sum(len(d.bins) for s in slots for d in s.part.durations.values())
        held.append((len(slots), keys))
        assert all(len(d.bins) <= SLOT_BINS for s in slots for d in s.part.durations.values())
    (narrow_slots, _), (wide_slots, wide_keys) = held
    # 30 10-s slots, 11 1-minute slots (the last 5 to 15 minutes, one partly filled) and 11
    # 5-minute slots (back to 65 minutes): the same whatever the values.
    assert narrow_slots == wide_slots == 30 + 11 + 11
    assert wide_keys <= wide_slots * SLOT_BINS
