"""A replica's window state as bytes, and back: what `PeerService.GetWindowState` carries.

Format version 1 is UTF-8 JSON: `start`, `end`, `time`, `first_execution`,
`first_by_profile`, `layout` (the bucket bounds and sketch mapping, as in a state file: a
state with another layout is refused, since its sketch keys would not merge), one member per
windowed counter (`[label..., value]` rows) and distribution (`[label..., {count, sum,
buckets, zero_count, offset, bins}]` rows, `bins` being base64 of the zlib-compressed sketch
key counts from key `offset` as little-endian int64; `buckets` may be empty in a window,
whose slots may keep no bucket counts), and the gauges (`last_execution`, `label_values`,
`dedup_entries`, `dedup_evicted`). Pure: no I/O.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from cugar_metrics.aggregator.core import (
    Snapshot,
    WindowState,
)
from cugar_metrics.aggregator.persist import (
    LAYOUT,
    MODEL_LAYOUT,
    StateFormatError,
    _float,
    _frozen,
    _int,
    _keyed,
    _map,
    _opt_float,
)
from cugar_metrics.aggregator.series import SERIES
from cugar_metrics.aggregator.sketch import FrozenDistribution

WINDOW_FORMAT_VERSION = 1

#: counter -> (labels per key, float values)
_COUNTERS: dict[str, tuple[int, bool]] = {
    s.field: (s.arity, s.floats) for s in SERIES if s.window == "sum" and s.kind == "counter"
}
#: distribution -> (labels per key, bucket bounds, has a sketch)
_DISTRIBUTIONS: dict[str, tuple[int, Sequence[float], bool]] = {
    s.field: (s.arity, s.buckets, s.sketch)
    for s in SERIES
    if s.window == "sum" and s.kind == "histogram"
}


def _labels(key: object) -> list[Any]:
    return list(key) if isinstance(key, tuple) else [key]


def _key(labels: tuple[str, ...]) -> Any:
    return labels[0] if len(labels) == 1 else labels


def _wire_dist(d: FrozenDistribution) -> dict[str, Any]:
    """A distribution with its sketch key counts as base64 of zlib-compressed little-endian
    int64s (compact: most keys of a wide sketch are empty)."""
    return {
        "count": d.count,
        "sum": d.sum,
        "buckets": list(d.buckets),
        "zero_count": d.zero_count,
        "offset": d.offset,
        "bins": base64.b64encode(
            zlib.compress(np.asarray(d.bins, dtype="<i8").tobytes(), 1)
        ).decode(),
    }


def _bins(v: object, what: str) -> npt.NDArray[np.int64]:
    if not isinstance(v, str):
        raise StateFormatError(f"{what}.bins: not a base64 string")
    try:
        raw = zlib.decompress(base64.b64decode(v, validate=True))
    except (ValueError, zlib.error):
        raise StateFormatError(f"{what}.bins: not base64 of zlib data") from None
    if len(raw) % 8:
        raise StateFormatError(f"{what}.bins: {len(raw)} bytes, not whole int64s")
    bins = np.frombuffer(raw, dtype="<i8").astype(np.int64)
    if bins.size and int(bins.min()) < 0:
        raise StateFormatError(f"{what}.bins: a negative count")
    return bins


def _window_dist(v: object, what: str, bounds: Sequence[float], sketch: bool) -> FrozenDistribution:
    if not isinstance(v, dict):
        raise StateFormatError(f"{what}: not an object")
    bins = _bins(v.get("bins"), what)
    zero = _int(v.get("zero_count"), f"{what}.zero_count")
    # count, sum, buckets and offset checked as in a state file; the sketch counts here
    d = _checked({**v, "bins": [], "zero_count": 0}, what, bounds, False)
    if sketch and zero + int(bins.sum()) != d.count:
        raise StateFormatError(
            f"{what}: sketch counts add up to {zero + int(bins.sum())}, not {d.count}"
        )
    if not sketch and (zero or bins.size):
        raise StateFormatError(f"{what}: a distribution without a sketch has sketch counts")
    return dataclasses.replace(d, zero_count=zero, bins=bins)


def _checked(
    v: dict[str, Any], what: str, bounds: Sequence[float], sketch: bool
) -> FrozenDistribution:
    """A distribution of a window: as in a state file, except that a window's sketch may
    come without bucket counts (`buckets` empty: window slots may keep only the sketch
    keys, or only the count and sum)."""
    if v.get("buckets") == []:
        count = _int(v.get("count"), f"{what}.count")
        d = _frozen({**v, "buckets": [count] + [0] * len(bounds)}, what, bounds, sketch)
        return dataclasses.replace(d, buckets=())
    return _frozen(v, what, bounds, sketch)


def encode_window(w: WindowState) -> bytes:
    """`w` as format-version-1 bytes."""
    s = w.current
    doc: dict[str, Any] = {
        "start": w.start,
        "end": w.end,
        "time": s.time,
        "first_execution": w.first_execution,
        "first_by_profile": dict(w.first_by_profile),
        "layout": {**LAYOUT, **MODEL_LAYOUT},
        "last_execution": dict(s.last_execution),
        "label_values": dict(s.label_values),
        "dedup_entries": s.dedup_entries,
        "dedup_evicted": s.dedup_evicted,
    }
    for name in _COUNTERS:
        doc[name] = [[*_labels(k), v] for k, v in getattr(s, name).items()]
    for name in _DISTRIBUTIONS:
        doc[name] = [[*_labels(k), _wire_dist(d)] for k, d in getattr(s, name).items()]
    return json.dumps(doc, separators=(",", ":")).encode()


def decode_window(data: bytes) -> WindowState:
    """The window state in `data`; raises StateFormatError (saying where) when it is not a
    format-version-1 state with this build's layout."""
    try:
        h = json.loads(data)
    except ValueError as e:
        raise StateFormatError(f"window state is not JSON: {e}") from None
    if not isinstance(h, dict):
        raise StateFormatError("window state is not an object")
    if h.get("layout") != {**LAYOUT, **MODEL_LAYOUT}:
        raise StateFormatError(
            "bucket layout or sketch mapping differs from this build's: "
            f"received {json.dumps(h.get('layout'))}"
        )
    fields: dict[str, Any] = {
        "time": _float(h.get("time"), "time"),
        "last_execution": _map(h.get("last_execution"), "last_execution", _float),
        "label_values": _map(h.get("label_values"), "label_values", _int),
        "dedup_entries": _int(h.get("dedup_entries"), "dedup_entries"),
        "dedup_evicted": _int(h.get("dedup_evicted"), "dedup_evicted"),
    }
    for name, (arity, floats) in _COUNTERS.items():
        value = _float if floats else _int
        fields[name] = {
            _key(k): value(v, f"{name}{list(k)}") for k, v in _keyed(h.get(name), name, arity)
        }
    for name, (arity, bounds, sketch) in _DISTRIBUTIONS.items():
        fields[name] = {
            _key(k): _window_dist(d, f"{name}{list(k)}", bounds, sketch)
            for k, d in _keyed(h.get(name), name, arity)
        }
    return WindowState(
        start=_float(h.get("start"), "start"),
        end=_float(h.get("end"), "end"),
        current=Snapshot(**fields),
        first_execution=_opt_float(h.get("first_execution"), "first_execution"),
        first_by_profile=_map(h.get("first_by_profile"), "first_by_profile", _float),
    )


__all__ = ["WINDOW_FORMAT_VERSION", "decode_window", "encode_window"]
