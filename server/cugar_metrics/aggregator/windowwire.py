"""A replica's window state as bytes, and back: what `PeerService.GetWindowState` carries.

Format version 2 (binary, what a replica answers when the asking replica lists version 2 in
`GetWindowStateRequest.versions`):

    state  = u32 (little-endian) length of `header` | header | zlib(body)
    header = UTF-8 JSON: `start`, `end`, `time`, `first_execution`, `first_by_profile`,
             `layout` (as in version 1) and the gauges (`last_execution`, `label_values`,
             `dedup_entries`, `dedup_evicted`)
    body   = u32 length of `directory` | directory | zero padding to 8 bytes | arrays
    directory = UTF-8 JSON: `strings` (every label value, once), `counters` (rows per
             counter), `distributions` (rows, and rows with bucket counts, per
             distribution), `bins` (the numpy type of the sketch counts: u1, u2, u4 or i8)
    arrays = little-endian numpy arrays, each padded with zeros to a multiple of 8 bytes,
             in this order: per counter (in `_COUNTERS` order) its keys (i4: indexes into
             `strings`, `arity` per row) and values (i8, or f8 for float counters); per
             distribution (in `_DISTRIBUTIONS` order) its keys, count (i8), sum (f8),
             zero_count (i8), offset (i8: the sketch key of its first count), number of
             sketch counts (i8), has-bucket-counts (u1), the bucket counts of the rows that
             have them (i8, one row of len(bounds) + 1 each); then every distribution's
             sketch counts, concatenated in row order.

The body holds only the windowed series, so a replica can encode it once and reuse it while
they do not change (see cluster.PeerServicer); the header is written per request.

Format version 1 is UTF-8 JSON: `start`, `end`, `time`, `first_execution`,
`first_by_profile`, `layout` (the bucket bounds and sketch mapping, as in a state file: a
state with another layout is refused, since its sketch keys would not merge), one member per
windowed counter (`[label..., value]` rows) and distribution (`[label..., {count, sum,
buckets, zero_count, offset, bins}]` rows, `bins` being base64 of the zlib-compressed sketch
key counts from key `offset` as little-endian int64; `buckets` may be empty in a window,
whose slots may keep no bucket counts), and the gauges (`last_execution`, `label_values`,
`dedup_entries`, `dedup_evicted`). It is still written for a replica that lists no version
(one from before version 2) and still read. Pure: no I/O.
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
    dist_fields,
)
from cugar_metrics.aggregator.series import SERIES
from cugar_metrics.aggregator.sketch import FrozenDistribution

#: The newest format, and every format this build reads and writes.
WINDOW_FORMAT_VERSION = 2
WINDOW_FORMAT_VERSIONS = (1, 2)

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


#: The gauges (read at the end of a window), as the series table declares them.
_GAUGES = [s for s in SERIES if s.window != "sum"]


def _layout() -> dict[str, Any]:
    return {**LAYOUT, **MODEL_LAYOUT}


def _header_doc(w: WindowState) -> dict[str, Any]:
    """What both formats write as JSON: the window's times, the layout and the gauges."""
    s = w.current
    doc: dict[str, Any] = {
        "start": w.start,
        "end": w.end,
        "time": s.time,
        "first_execution": w.first_execution,
        "first_by_profile": dict(w.first_by_profile),
        "layout": _layout(),
    }
    for g in _GAUGES:
        value = getattr(s, g.field)
        doc[g.field] = dict(value) if g.labels else value
    return doc


def _header_fields(h: dict[str, Any]) -> dict[str, Any]:
    """The time and gauges of a header written by `_header_doc`, checked."""
    if h.get("layout") != _layout():
        raise StateFormatError(
            "bucket layout or sketch mapping differs from this build's: "
            f"received {json.dumps(h.get('layout'))}"
        )
    fields: dict[str, Any] = {"time": _float(h.get("time"), "time")}
    for g in _GAUGES:
        value = _float if g.floats else _int
        raw = h.get(g.field)
        fields[g.field] = _map(raw, g.field, value) if g.labels else value(raw, g.field)
    return fields


def _labels(key: object) -> list[Any]:
    return list(key) if isinstance(key, tuple) else [key]


def _key(labels: tuple[str, ...]) -> Any:
    return labels[0] if len(labels) == 1 else labels


def _wire_dist(d: FrozenDistribution) -> dict[str, Any]:
    """A distribution with its sketch key counts as base64 of zlib-compressed little-endian
    int64s (compact: most keys of a wide sketch are empty)."""
    return {
        **dist_fields(d),
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


def _encode_v1(w: WindowState) -> bytes:
    """`w` as format-version-1 bytes."""
    s = w.current
    doc = _header_doc(w)
    for name in _COUNTERS:
        doc[name] = [[*_labels(k), v] for k, v in getattr(s, name).items()]
    for name in _DISTRIBUTIONS:
        doc[name] = [[*_labels(k), _wire_dist(d)] for k, d in getattr(s, name).items()]
    return json.dumps(doc, separators=(",", ":")).encode()


def _decode_v1(data: bytes) -> WindowState:
    """The window state in `data` (format version 1)."""
    try:
        h = json.loads(data)
    except ValueError as e:
        raise StateFormatError(f"window state is not JSON: {e}") from None
    if not isinstance(h, dict):
        raise StateFormatError("window state is not an object")
    fields = _header_fields(h)
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


# --- format version 2 ------------------------------------------------------------------

_BINS_TYPES = {"u1": "u1", "u2": "<u2", "u4": "<u4", "i8": "<i8"}


def _header(w: WindowState) -> bytes:
    return json.dumps(_header_doc(w), separators=(",", ":")).encode()


def encode_body(s: Snapshot) -> bytes:
    """The windowed series of `s` (counters and distributions) as a format-version-2 body:
    the part of a state that a replica may cache while they do not change."""
    strings: dict[str, int] = {}

    def keys(series: dict[Any, Any], arity: int) -> npt.NDArray[np.int32]:
        out = np.empty((len(series), arity), dtype="<i4")
        if not series:
            return out.ravel()
        columns = [list(series)] if arity == 1 else list(zip(*series, strict=True))
        for j, column in enumerate(columns):
            for label in dict.fromkeys(column):
                if label not in strings:
                    strings[label] = len(strings)
            out[:, j] = list(map(strings.__getitem__, column))
        return out.ravel()

    arrays: list[npt.NDArray[Any]] = []
    counters: dict[str, int] = {}
    for name, (arity, floats) in _COUNTERS.items():
        series: dict[Any, Any] = getattr(s, name)
        counters[name] = len(series)
        arrays.append(keys(series, arity))
        arrays.append(np.array(list(series.values()), dtype="<f8" if floats else "<i8"))
    distributions: dict[str, list[int]] = {}
    bins: list[npt.NDArray[Any]] = []
    for name, (arity, bounds, _) in _DISTRIBUTIONS.items():
        dists: dict[Any, FrozenDistribution] = getattr(s, name)
        values = list(dists.values())
        with_buckets = [d.buckets for d in values if d.buckets]
        distributions[name] = [len(values), len(with_buckets)]
        arrays.append(keys(dists, arity))
        arrays.append(np.array([d.count for d in values], dtype="<i8"))
        arrays.append(np.array([d.sum for d in values], dtype="<f8"))
        arrays.append(np.array([d.zero_count for d in values], dtype="<i8"))
        arrays.append(np.array([d.offset for d in values], dtype="<i8"))
        arrays.append(np.array([len(d.bins) for d in values], dtype="<i8"))
        arrays.append(np.array([bool(d.buckets) for d in values], dtype="u1"))
        arrays.append(np.array(with_buckets, dtype="<i8").reshape(-1, len(bounds) + 1))
        bins.extend(d.bins for d in values if len(d.bins))
    all_bins = np.concatenate(bins) if bins else np.zeros(0, dtype=np.int64)
    top = int(all_bins.max()) if all_bins.size else 0
    kind = "u1" if top < 2**8 else "u2" if top < 2**16 else "u4" if top < 2**32 else "i8"
    arrays.append(all_bins.astype("<" + kind if kind != "u1" else "u1", copy=False))
    directory = json.dumps(
        {
            "strings": list(strings),
            "counters": counters,
            "distributions": distributions,
            "bins": kind,
        },
        separators=(",", ":"),
    ).encode()
    parts = [len(directory).to_bytes(4, "little"), directory]
    used = 4 + len(directory)
    for a in [np.zeros(0, dtype="u1"), *arrays]:
        raw = a.tobytes()
        pad = -used % 8
        parts.append(b"\0" * pad + raw)
        used += pad + len(raw)
    return zlib.compress(b"".join(parts), 1)


def encode_window(
    w: WindowState, version: int = WINDOW_FORMAT_VERSION, body: bytes | None = None
) -> bytes:
    """`w` as bytes of format `version` (1 or 2). For version 2, `body` is
    `encode_body(w.current)` when the caller has it already."""
    if version == 1:
        return _encode_v1(w)
    if version != 2:
        raise ValueError(f"window state format version {version}: this build writes 1 and 2")
    header = _header(w)
    if body is None:
        body = encode_body(w.current)
    return len(header).to_bytes(4, "little") + header + body


class _Reader:
    """Arrays read in order from a version-2 body, each checked to be there."""

    def __init__(self, body: bytes, start: int) -> None:
        self._body = body
        self._at = start

    def take(self, dtype: str, count: int, what: str) -> npt.NDArray[Any]:
        self._at += -self._at % 8
        size = np.dtype(dtype).itemsize * count
        if count < 0 or self._at + size > len(self._body):
            raise StateFormatError(f"{what}: the body ends before its {count} values")
        a = np.frombuffer(self._body, dtype=dtype, count=count, offset=self._at)
        self._at += size
        return a

    def done(self) -> None:
        if self._at != len(self._body):
            raise StateFormatError(f"{len(self._body) - self._at} bytes after the last array")


def _rows(directory: dict[str, Any], member: str, name: str) -> Any:
    v = directory.get(member)
    if not isinstance(v, dict) or name not in v:
        raise StateFormatError(f"directory.{member}: {name} missing")
    return v[name]


def _count(v: object, what: str) -> int:
    return _int(v, what)


class BodyCache:
    """The last version-2 body decoded from one peer, with its series: a peer that answers
    the same body again (nothing recorded there since) is not decoded again."""

    __slots__ = ("body", "series")

    def __init__(self) -> None:
        self.body = b""
        self.series: dict[str, Any] | None = None


def _prefixed_json(data: bytes, what: str, short: str) -> tuple[dict[str, Any], int]:
    """A JSON object (`what`) after its u32 little-endian length, and where the bytes after
    it start; `short` says what is wrong when there is no length."""
    if len(data) < 4:
        raise StateFormatError(short)
    n = int.from_bytes(data[:4], "little")
    try:
        doc = json.loads(data[4 : 4 + n])
    except ValueError as e:
        raise StateFormatError(f"{what} is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise StateFormatError(f"{what} is not an object")
    return doc, 4 + n


def _decode_v2(data: bytes, cache: BodyCache | None = None) -> WindowState:
    h, end = _prefixed_json(
        data, "window state header", "window state shorter than its header length"
    )
    fields = _header_fields(h)
    packed = data[end:]
    if cache is not None and cache.series is not None and cache.body == packed:
        series = cache.series
    else:
        series = _decode_body(packed)
        if cache is not None:
            cache.body, cache.series = packed, series
    return WindowState(
        start=_float(h.get("start"), "start"),
        end=_float(h.get("end"), "end"),
        current=Snapshot(**fields, **series),
        first_execution=_opt_float(h.get("first_execution"), "first_execution"),
        first_by_profile=_map(h.get("first_by_profile"), "first_by_profile", _float),
    )


def _row_sums(
    bins: npt.NDArray[Any], starts: npt.NDArray[np.int64], length: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Per row, the sum of its `length` counts from `starts` (rows laid end to end in
    `bins`)."""
    out = np.zeros(len(length), dtype=np.int64)
    filled = np.flatnonzero(length)
    if filled.size:
        out[filled] = np.add.reduceat(bins, starts[filled], dtype=np.int64)
    return out


def _decode_body(packed: bytes) -> dict[str, Any]:
    """The counters and distributions of a version-2 body."""
    try:
        body = zlib.decompress(packed)
    except zlib.error as e:
        raise StateFormatError(f"window state body is not zlib data: {e}") from None
    directory, start = _prefixed_json(
        body, "window state directory", "window state body shorter than its directory length"
    )
    strings = directory.get("strings")
    if not isinstance(strings, list) or not all(isinstance(x, str) for x in strings):
        raise StateFormatError("directory.strings: not a list of strings")
    kind = directory.get("bins")
    if kind not in _BINS_TYPES:
        raise StateFormatError(f"directory.bins: {kind!r} is not one of {list(_BINS_TYPES)}")
    reader = _Reader(body, start)

    def labels(name: str, rows: int, arity: int) -> list[Any]:
        idx = reader.take("<i4", rows * arity, f"{name} keys")
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= len(strings)):
            raise StateFormatError(f"{name} keys: a label index outside the strings")
        if arity == 1:
            return [strings[i] for i in idx.tolist()]
        cols = idx.reshape(rows, arity).T.tolist()
        return list(zip(*[[strings[i] for i in col] for col in cols], strict=True))

    def where(name: str, key: Any) -> str:
        return f"{name}{_labels(key)}"

    fields: dict[str, Any] = {}
    for name, (arity, floats) in _COUNTERS.items():
        rows = _count(_rows(directory, "counters", name), f"directory.counters.{name}")
        keys = labels(name, rows, arity)
        values = reader.take("<f8" if floats else "<i8", rows, name)
        bad = ~np.isfinite(values) if floats else values < 0
        if bad.any():
            k = keys[int(np.flatnonzero(bad)[0])]
            raise StateFormatError(
                f"{where(name, k)}: {values[int(np.flatnonzero(bad)[0])].item()!r} is not a "
                + ("finite number" if floats else "non-negative integer")
            )
        fields[name] = dict(zip(keys, values.tolist(), strict=True))
        if len(fields[name]) != rows:
            raise StateFormatError(f"{name}: a key appears twice")
    specs: list[tuple[str, list[Any], tuple[npt.NDArray[Any], ...], bool]] = []
    total_bins = 0
    for name, (arity, bounds, sketch) in _DISTRIBUTIONS.items():
        spec = _rows(directory, "distributions", name)
        if not (isinstance(spec, list) and len(spec) == 2):
            raise StateFormatError(f"directory.distributions.{name}: not [rows, with buckets]")
        rows = _count(spec[0], f"directory.distributions.{name}")
        nb = _count(spec[1], f"directory.distributions.{name}")
        keys = labels(name, rows, arity)
        count = reader.take("<i8", rows, f"{name} count")
        sums = reader.take("<f8", rows, f"{name} sum")
        zero = reader.take("<i8", rows, f"{name} zero_count")
        offset = reader.take("<i8", rows, f"{name} offset")
        length = reader.take("<i8", rows, f"{name} bins")
        has = reader.take("u1", rows, f"{name} has buckets")
        buckets = reader.take("<i8", nb * (len(bounds) + 1), f"{name} buckets").reshape(
            nb, len(bounds) + 1
        )
        for what, bad in (
            ("count: a negative count", count < 0),
            ("sum: not a finite number", ~np.isfinite(sums)),
            ("zero_count: a negative count", zero < 0),
            ("bins: a negative number of sketch counts", length < 0),
        ):
            if bad.any():
                raise StateFormatError(f"{where(name, keys[int(np.flatnonzero(bad)[0])])}.{what}")
        if int(np.count_nonzero(has)) != nb or (has > 1).any():
            raise StateFormatError(f"{name}: {nb} rows with buckets, flags say otherwise")
        if nb and (buckets < 0).any():
            raise StateFormatError(f"{name}: a negative bucket count")
        with_buckets = np.flatnonzero(has)
        bucket_sums = buckets.sum(axis=1)
        wrong = np.flatnonzero(bucket_sums != count[with_buckets])
        if wrong.size:
            i = int(with_buckets[wrong[0]])
            raise StateFormatError(
                f"{where(name, keys[i])}: bucket counts add up to "
                f"{int(bucket_sums[wrong[0]])}, not {int(count[i])}"
            )
        if not sketch and (zero.any() or length.any()):
            raise StateFormatError(f"{name}: a distribution without a sketch has sketch counts")
        total_bins += int(length.sum())
        specs.append((name, keys, (count, sums, zero, offset, length, has, buckets), sketch))
    bins = reader.take(_BINS_TYPES[kind], total_bins, "sketch counts")
    reader.done()
    if kind == "i8" and bins.size and int(bins.min()) < 0:
        raise StateFormatError("sketch counts: a negative count")
    at = 0
    for name, keys, (count, sums, zero, offset, length, has, buckets), sketch in specs:
        size = int(length.sum())
        ends = np.cumsum(length)
        starts = ends - length
        family = bins[at : at + size]
        if sketch:
            sketched = zero + _row_sums(family, starts, length)
            wrong = np.flatnonzero(sketched != count)
            if wrong.size:
                i = int(wrong[0])
                raise StateFormatError(
                    f"{where(name, keys[i])}: sketch counts add up to {int(sketched[i])}, "
                    f"not {int(count[i])}"
                )
        bucket_rows = iter(buckets.tolist())
        out: dict[Any, FrozenDistribution] = {}
        for k, c, total, z, o, a, b, hb in zip(
            keys,
            count.tolist(),
            sums.tolist(),
            zero.tolist(),
            offset.tolist(),
            starts.tolist(),
            ends.tolist(),
            has.tolist(),
            strict=True,
        ):
            out[k] = FrozenDistribution(
                c,
                total,
                tuple(next(bucket_rows)) if hb else (),
                z,
                o,
                family[a:b] if b > a else _NO_BINS,
            )
        if len(out) != len(keys):
            raise StateFormatError(f"{name}: a key appears twice")
        fields[name] = out
        at += size
    return fields


_NO_BINS: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)


def decode_window(
    data: bytes, version: int = WINDOW_FORMAT_VERSION, cache: BodyCache | None = None
) -> WindowState:
    """The window state in `data`, of format `version`; raises StateFormatError (saying
    where) when it is not a state of that version with this build's layout, or of a version
    this build does not read. With `cache` (one per peer), a version-2 body equal to the
    last one decoded through it is not decoded again."""
    if version == 1:
        return _decode_v1(data)
    if version == 2:
        return _decode_v2(data, cache)
    raise StateFormatError(f"window state version {version}: this build reads 1 and 2")


__all__ = [
    "WINDOW_FORMAT_VERSION",
    "WINDOW_FORMAT_VERSIONS",
    "BodyCache",
    "decode_window",
    "encode_body",
    "encode_window",
]
