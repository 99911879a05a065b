"""Distributions: exact count and sum, Prometheus bucket counts, and a relative-error sketch.

The sketch is DDSketch's logarithmic key mapping (from the `ddsketch` library) over a dense
store of counts. Two frozen distributions of the same series can be *subtracted*, because
the store holds plain counts per key: the difference between the state at two instants is
the distribution of what happened in between, exactly, with the sketch's relative accuracy.
Distributions with the same mapping *merge* by adding counts per key. The aggregator's
windows are built from both (see core.py).

Bins are bounded, like DDSketch's collapsing-lowest store: a cumulative distribution keeps at
most `MAX_BINS` keys (2048 keys span a ratio of 6e17 between the smallest and the largest
value: nothing an accepted duration reaches), and a window slot keeps at most `SLOT_BINS`
(768 keys, a ratio of 4.7e6: for example 1 ms to 78 min). Counts of lower keys are added to
the lowest key kept, so the count stays exact; a quantile that falls among collapsed values
is over-estimated (it reads as the lowest value kept); quantiles above them keep their 1 %
accuracy.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from ddsketch.mapping import LogarithmicMapping

#: Relative accuracy of every quantile estimate: |estimate - true| <= 1 % of the true value.
RELATIVE_ACCURACY = 0.01
_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
# The mapping's key(), inlined on the hot path (the same arithmetic as
# LogarithmicMapping.key; test_sketch checks that they agree).
_MULTIPLIER = _MAPPING._multiplier
_KEY_OFFSET = _MAPPING._offset
#: Counts per sketch key: int64 in a cumulative distribution; in a window slot, the smallest
#: unsigned type that holds them (most 10-s slots need one byte a key).
Bins = npt.NDArray[np.integer[Any]]
_EMPTY_BINS: Bins = np.zeros(0, dtype=np.int64)

#: Most keys kept by a cumulative distribution, and by one window slot of a series.
MAX_BINS = 2048
SLOT_BINS = 768


@dataclass(frozen=True, slots=True)
class FrozenDistribution:
    """An immutable view of a distribution at one instant."""

    count: int
    sum: float
    #: Counts per Prometheus bucket (not cumulative); the last one is the +Inf bucket.
    buckets: tuple[int, ...]
    #: Observations equal to 0 (the logarithmic mapping covers only positive values).
    zero_count: int = 0
    #: Sketch key of bins[0].
    offset: int = 0
    bins: Bins = field(default_factory=lambda: _EMPTY_BINS)

    def minus(self, earlier: FrozenDistribution | None) -> FrozenDistribution:
        """The observations made after `earlier` (a frozen state of the same series)."""
        if earlier is None or earlier.count == 0:
            return self
        return FrozenDistribution(
            count=self.count - earlier.count,
            sum=self.sum - earlier.sum,
            buckets=tuple(a - b for a, b in zip(self.buckets, earlier.buckets, strict=True)),
            zero_count=self.zero_count - earlier.zero_count,
            offset=self.offset,
            bins=_subtract(self.offset, self.bins, earlier.offset, earlier.bins),
        )

    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.count else None

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0 <= q <= 1) within the sketch's relative accuracy; None if empty."""
        return merged_quantiles([self], [q])[0]


class _SparseDistribution(FrozenDistribution):
    """A FrozenDistribution whose few sketch keys are kept as (position << 16 | count) in one
    uint32 array: the form a thin window slot keeps. A 10-s slot of a series whose values
    spread from 1 us to 1 h holds about ten values over some 750 keys: 40 bytes of pairs
    instead of 750 of dense counts. `bins` gives the dense counts at each read."""

    __slots__ = ("_length", "_pairs")
    _length: int
    _pairs: npt.NDArray[np.uint32]

    def __init__(self, d: FrozenDistribution, nonzero: npt.NDArray[np.intp]) -> None:
        for name in ("count", "sum", "buckets", "zero_count", "offset"):
            object.__setattr__(self, name, getattr(d, name))
        pairs = (nonzero.astype(np.uint32) << 16) | d.bins[nonzero].astype(np.uint32)
        object.__setattr__(self, "_pairs", pairs)
        object.__setattr__(self, "_length", len(d.bins))

    @property
    def bins(self) -> Bins:
        out = np.zeros(self._length, dtype=np.uint16)
        out[self._pairs >> 16] = self._pairs & 0xFFFF
        return out


def _sparse_if_thin(d: FrozenDistribution) -> FrozenDistribution:
    """`d` (compacted: counts in the smallest type) as a _SparseDistribution when its keys
    with counts are few enough for the pairs to take at most half the dense form."""
    bins = d.bins
    if not len(bins) or bins.dtype.itemsize > 2:
        return d
    nonzero = np.flatnonzero(bins)
    if 8 * len(nonzero) > len(bins) * bins.itemsize:
        return d
    return _SparseDistribution(d, nonzero)


def _subtract(offset: int, bins: Bins, old_offset: int, old_bins: Bins) -> Bins:
    if len(old_bins) == 0:
        return bins
    # A store only grows to the right, and a collapse folds its lowest keys into the lowest
    # key kept: earlier keys below `offset` were folded into bins[0].
    out = bins.astype(np.int64, copy=True)
    start = old_offset - offset
    if start < 0:
        out[0] -= int(old_bins[: min(-start, len(old_bins))].sum())
        old_bins = old_bins[-start:]
        start = 0
    out[start : start + len(old_bins)] -= old_bins
    return out


def trim(d: FrozenDistribution) -> FrozenDistribution:
    """`d` with its sketch trimmed to the keys that have counts (a running sum whose parts
    were subtracted keeps only the range of the parts left)."""
    bins = d.bins
    if not len(bins) or (bins[0] and bins[-1]):
        return d
    nz = np.flatnonzero(bins)
    if len(nz) == 0:
        return FrozenDistribution(d.count, d.sum, d.buckets, d.zero_count)
    lo, hi = int(nz[0]), int(nz[-1]) + 1
    return FrozenDistribution(d.count, d.sum, d.buckets, d.zero_count, d.offset + lo, bins[lo:hi])


def shrink(d: FrozenDistribution) -> FrozenDistribution:
    """`d` trimmed (see trim) with its counts in the smallest integer type that holds them."""
    t = trim(d)
    if not len(t.bins) or t.bins.dtype.itemsize == 1:
        return t
    return FrozenDistribution(t.count, t.sum, t.buckets, t.zero_count, t.offset, _small(t.bins))


def _small(bins: Bins) -> Bins:
    """`bins` (counts >= 0) in the smallest unsigned type that holds them."""
    top = int(bins.max()) if len(bins) else 0
    if top < 2**8:
        return bins.astype(np.uint8)
    if top < 2**16:
        return bins.astype(np.uint16)
    return bins.astype(np.uint32 if top < 2**32 else np.int64)


def compact(d: FrozenDistribution, limit: int = SLOT_BINS) -> FrozenDistribution:
    """`d` without Prometheus buckets, its sketch trimmed to the keys with counts and
    collapsed to at most `limit` keys (lowest keys folded into the lowest kept), in the
    smallest integer type that holds its counts: the small form a window slot keeps."""
    bins, offset = d.bins, d.offset
    if len(bins):
        nz = np.flatnonzero(bins)
        if len(nz) == 0:
            bins = _EMPTY_BINS
        else:
            lo, hi = int(nz[0]), int(nz[-1]) + 1
            if hi - lo > limit:
                cut = hi - limit
                kept = bins[cut:hi].astype(np.int64)
                kept[0] += int(bins[lo:cut].sum())
                bins, offset = _small(kept), offset + cut
            else:
                bins, offset = _small(bins[lo:hi]), offset + lo
    return _sparse_if_thin(FrozenDistribution(d.count, d.sum, (), d.zero_count, offset, bins))


def merge(parts: Sequence[FrozenDistribution], limit: int | None = None) -> FrozenDistribution:
    """The union of distributions with the same mapping: counts, sums, buckets (when all
    parts have them) and sketch keys added; collapsed to `limit` keys if given. One pass
    over the parts; a part's sketch counts are shared, not copied, when it is the only one
    with any (frozen counts are never written to)."""
    if len(parts) == 1 and limit is None:
        return parts[0]
    count = zero = 0
    total = 0.0
    all_buckets = True
    with_bins: list[tuple[FrozenDistribution, Bins]] = []
    lo = hi = 0
    for d in parts:
        count += d.count
        total += d.sum
        zero += d.zero_count
        if not d.buckets:
            all_buckets = False
        bins = d.bins  # once: a thin slot's counts are built at each read
        n = len(bins)
        if n:
            o = d.offset
            if not with_bins:
                lo, hi = o, o + n
            else:
                lo = o if o < lo else lo
                hi = o + n if o + n > hi else hi
            with_bins.append((d, bins))
    buckets: tuple[int, ...] = ()
    if parts and all_buckets:
        buckets = tuple(map(sum, zip(*(d.buckets for d in parts), strict=True)))
    if not with_bins:
        return FrozenDistribution(count, total, buckets, zero)
    if len(with_bins) == 1:
        out = FrozenDistribution(count, total, buckets, zero, lo, with_bins[0][1])
    else:
        acc = np.zeros(hi - lo, dtype=np.int64)
        for d, bins in with_bins:
            a = d.offset - lo
            acc[a : a + len(bins)] += bins
        out = FrozenDistribution(count, total, buckets, zero, lo, acc)
    if limit is not None:
        out = compact(out, limit)
        return FrozenDistribution(count, total, buckets, zero, out.offset, out.bins)
    return out


def merged_quantiles(
    dists: Iterable[FrozenDistribution], qs: Sequence[float]
) -> list[float | None]:
    """Quantiles of the union of several distributions (same mapping): of their merge, or of
    the one distribution (a dashboard row: nothing to add up)."""
    parts = dists if isinstance(dists, list | tuple) else list(dists)
    if not parts:
        return [None for _ in qs]
    return _quantiles(merge(parts), qs)


def _quantiles(d: FrozenDistribution, qs: Sequence[float]) -> list[float | None]:
    total = d.count
    if total <= 0:
        return [None for _ in qs]
    zero = d.zero_count
    bins = d.bins
    lo, cum = (d.offset, bins.cumsum()) if len(bins) else (0, _EMPTY_BINS)
    out: list[float | None] = []
    for q in qs:
        # DDSketch's rank rule: the value of the (q * (n - 1))-th observation, from 0.
        rank = q * (total - 1)
        if rank < zero:
            out.append(0.0)
            continue
        idx = min(int(cum.searchsorted(rank - zero, side="right")), len(cum) - 1)
        out.append(float(_MAPPING.value(lo + idx)))
    return out


class Distribution:
    """A mutable distribution owned by the aggregator (called under its lock)."""

    __slots__ = (
        "_bins",
        "_bounds",
        "_buckets",
        "_frozen",
        "_offset",
        "_sketch",
        "count",
        "sum",
        "zero_count",
    )

    def __init__(self, bounds: Sequence[float], *, sketch: bool = True) -> None:
        self._bounds = bounds
        self._buckets = [0] * (len(bounds) + 1)
        self._sketch = sketch
        #: Counts per key as raw int64s (a list would hold a 28-byte int object per count
        #: over 256, growing with the counts).
        self._bins = array("q")
        self._offset = 0
        self._frozen: FrozenDistribution | None = None
        self.count = 0
        self.sum = 0.0
        self.zero_count = 0

    def observe(self, value: float) -> None:
        self.count += 1
        self.sum += value
        self._buckets[bisect_left(self._bounds, value)] += 1
        self._frozen = None
        if not self._sketch:
            return
        if value <= 0.0:
            self.zero_count += 1
            return
        key = int(math.ceil(math.log2(value) * _MULTIPLIER) + _KEY_OFFSET)
        bins = self._bins
        i = key - self._offset
        if 0 <= i < len(bins):
            bins[i] += 1
        elif not bins:
            self._offset = key
            bins.append(1)
        elif i < 0:
            if len(bins) - i > MAX_BINS:
                bins[0] += 1  # below the keys kept: collapsed into the lowest
            else:
                self._bins = array("q", [1]) + array("q", bytes(8 * (-i - 1))) + bins
                self._offset = key
        else:
            bins.frombytes(bytes(8 * (i - len(bins))))
            bins.append(1)
            if len(bins) > MAX_BINS:
                cut = len(bins) - MAX_BINS
                self._bins = array("q", [sum(bins[: cut + 1])]) + bins[cut + 1 :]
                self._offset += cut

    @classmethod
    def thaw(
        cls, bounds: Sequence[float], frozen: FrozenDistribution, *, sketch: bool = True
    ) -> Distribution:
        """A mutable distribution that continues from `frozen` (a restored state)."""
        if len(frozen.buckets) != len(bounds) + 1:
            raise ValueError(f"{len(frozen.buckets)} bucket counts for {len(bounds) + 1} buckets")
        d = cls(bounds, sketch=sketch)
        d.count = frozen.count
        d.sum = frozen.sum
        d.zero_count = frozen.zero_count
        d._buckets = list(frozen.buckets)
        d._offset = frozen.offset
        d._bins = array("q", np.asarray(frozen.bins, dtype=np.int64).tobytes())
        return d

    def freeze(self) -> FrozenDistribution:
        """An immutable copy; cached until the next observation, so idle series cost nothing."""
        if self._frozen is None:
            self._frozen = FrozenDistribution(
                count=self.count,
                sum=self.sum,
                buckets=tuple(self._buckets),
                zero_count=self.zero_count,
                offset=self._offset,
                bins=np.frombuffer(self._bins, dtype=np.int64).copy()
                if self._bins
                else _EMPTY_BINS,
            )
        return self._frozen


def merge_buckets(dists: Iterable[FrozenDistribution]) -> FrozenDistribution:
    """Sum of count, sum and Prometheus buckets (the sketch is left out): for exposition."""
    count, total, buckets = 0, 0.0, None
    for d in dists:
        count += d.count
        total += d.sum
        buckets = (
            list(d.buckets)
            if buckets is None
            else [a + b for a, b in zip(buckets, d.buckets, strict=True)]
        )
    return FrozenDistribution(count=count, sum=total, buckets=tuple(buckets or ()))
