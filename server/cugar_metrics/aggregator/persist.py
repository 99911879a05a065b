"""The aggregator's saved state as bytes, and back. Pure: no file I/O (see statefile.py).

Layout of a state file (format version 1)::

    b"cugar-metrics state\\n"          20 bytes, the magic
    version, header length            little-endian uint32, uint64
    header                            UTF-8 JSON: every counter and distribution, the label
                                      values, first/last times, the bucket layouts, and where
                                      each dedup generation lies in the payload
    payload                           the dedup generations: sorted little-endian uint64 hashes
    SHA-256                           32 bytes, of everything before it

Nothing is unpickled: the header is JSON and the payload plain integers. A file is refused
(`StateFormatError`) when its magic, checksum or version is wrong, when its bucket layouts or
sketch mapping differ from this build's, or when a value outside the series sections is out of
shape (an unsorted dedup generation, a negative ingest count). A series section (`SECTIONS`)
with a value out of shape (a count that does not add up, a row of the wrong shape, an unknown
outcome) is dropped on its own by `decode_partial`, which reports it; `decode` refuses it.
Window slots are not saved.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from cugar_metrics.aggregator.core import (
    CHECKPOINT_SECONDS,
    SavedState,
    Snapshot,
)
from cugar_metrics.aggregator.dedup import DedupState
from cugar_metrics.aggregator.series import SERIES, Series, by_field
from cugar_metrics.aggregator.sketch import RELATIVE_ACCURACY, FrozenDistribution
from cugar_metrics.model import CAPPED_LABELS

MAGIC = b"cugar-metrics state\n"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<IQ")
_DIGEST = 32

#: What a state must agree on with this build to be restored.
LAYOUT: dict[str, Any] = {
    **{s.layout: list(s.buckets) for s in SERIES if s.kind == "histogram" and not s.since},
    "sketch": {"mapping": "logarithmic", "relative_accuracy": RELATIVE_ACCURACY},
    "checkpoint_seconds": CHECKPOINT_SECONDS,
}

#: The model-call series came later than the others: a file without them (written before
#: model calls existed) restores with none, and its label sets and overflow counts without
#: the `model` label; a file with them must agree on their buckets.
MODEL_LAYOUT: dict[str, Any] = {
    s.layout: list(s.buckets) for s in SERIES if s.kind == "histogram" and s.since == "model"
}
#: The capped labels that came with them (the overflow counts a file before them lacks).
_LATER_LABELS = by_field()["overflow"].fixed_added

#: The series sections of the header: one that cannot be restored is dropped on its own
#: (restored empty, reported) and the rest of the state is kept.
SECTIONS = tuple(s.field for s in SERIES if s.saved == "section")
#: The sections restored on their own: the series', and the values each agent introduced
#: (a file written before they were saved has none).
PARTS = (*SECTIONS, "agent_label_values")

T = TypeVar("T")


class StateFormatError(ValueError):
    """The bytes are not a state this build can restore; the message says why."""


# --- encode ---------------------------------------------------------------------------------


def dist_fields(d: FrozenDistribution) -> dict[str, Any]:
    """A distribution as JSON, but for its sketch counts (each format writes them its way)."""
    return {
        "count": d.count,
        "sum": d.sum,
        "buckets": list(d.buckets),
        "zero_count": d.zero_count,
        "offset": d.offset,
    }


def _dist(d: FrozenDistribution) -> dict[str, Any]:
    return {**dist_fields(d), "bins": [int(n) for n in d.bins]}


def encode_series(series: Series, value: Any) -> Any:
    """One series of a snapshot as JSON: an object for a counter or gauge with one label,
    else rows of label values and a value (a distribution for a histogram)."""
    if series.kind == "histogram":
        if series.arity == 1:
            return [[k, _dist(d)] for k, d in value.items()]
        return [[*k, _dist(d)] for k, d in value.items()]
    if series.arity == 1:
        return dict(value)
    return [[*k, v] for k, v in value.items()]


def encode(state: SavedState) -> bytes:
    """The state as bytes (see the module docstring for the layout)."""
    s = state.snapshot
    payload: list[bytes] = []
    position = 0

    def put(hashes: npt.NDArray[np.uint64]) -> dict[str, int]:
        nonlocal position
        data = hashes.astype("<u8", copy=False).tobytes()
        payload.append(data)
        where = {"offset": position, "count": len(hashes)}
        position += len(data)
        return where

    dedup = state.dedup
    header = {
        "format": "cugar-metrics state",
        "version": FORMAT_VERSION,
        "layout": LAYOUT,
        "saved_at": state.saved_at,
        "start_time": state.start_time,
        "model_layout": MODEL_LAYOUT,
        **{
            series.field: encode_series(series, getattr(s, series.field))
            for series in SERIES
            if series.saved != "no"
        },
        "label_values": {k: sorted(v) for k, v in sorted(state.label_values.items())},
        "agent_label_values": {
            agent: {label: sorted(v) for label, v in sorted(values.items())}
            for agent, values in sorted(state.agent_values.items())
        },
        "first_execution": state.first_execution,
        "first_by_profile": dict(state.first_by_profile),
        "dedup": {
            "open": put(dedup.open),
            "open_since": dedup.open_since,
            "open_newest": dedup.open_newest,
            "sealed": [{**put(h), "newest": newest} for h, newest in dedup.sealed],
            "evicted": dedup.evicted,
        },
        "payload_bytes": position,
    }
    head = json.dumps(header, separators=(",", ":")).encode()
    body = b"".join([MAGIC, _PREFIX.pack(FORMAT_VERSION, len(head)), head, *payload])
    return body + hashlib.sha256(body).digest()


# --- decode ---------------------------------------------------------------------------------


def _int(v: object, what: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise StateFormatError(f"{what}: {v!r} is not a non-negative integer")
    return v


def _float(v: object, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise StateFormatError(f"{what}: {v!r} is not a finite number")
    return float(v)


def _opt_float(v: object, what: str) -> float | None:
    return None if v is None else _float(v, what)


def _str(v: object, what: str) -> str:
    if not isinstance(v, str):
        raise StateFormatError(f"{what}: {v!r} is not a string")
    return v


def _list(v: object, what: str) -> list[Any]:
    if not isinstance(v, list):
        raise StateFormatError(f"{what}: not a list")
    return v


def _map(v: object, what: str, value: Callable[[object, str], T]) -> dict[str, T]:
    if not isinstance(v, dict):
        raise StateFormatError(f"{what}: not an object")
    return {_str(k, what): value(x, f"{what}[{k}]") for k, x in v.items()}


def _fixed(v: object, what: str, keys: Sequence[str], added: Sequence[str] = ()) -> dict[str, int]:
    """Counts by a fixed set of keys; `added` may be missing (a state written before they
    existed) and restore as 0."""
    counts = _map(v, what, _int)
    for key in added:
        counts.setdefault(key, 0)
    if set(counts) != set(keys):
        raise StateFormatError(f"{what}: keys {sorted(counts)}, expected {sorted(keys)}")
    return {k: counts[k] for k in keys}


def _frozen(v: object, what: str, bounds: Sequence[float], sketch: bool) -> FrozenDistribution:
    if not isinstance(v, dict):
        raise StateFormatError(f"{what}: not an object")
    count = _int(v.get("count"), f"{what}.count")
    buckets = tuple(_int(n, f"{what}.buckets") for n in _list(v.get("buckets"), what))
    zero = _int(v.get("zero_count"), f"{what}.zero_count")
    offset = v.get("offset")
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise StateFormatError(f"{what}.offset: {offset!r} is not an integer")
    bins = [_int(n, f"{what}.bins") for n in _list(v.get("bins"), what)]
    if len(buckets) != len(bounds) + 1:
        raise StateFormatError(f"{what}: {len(buckets)} buckets, expected {len(bounds) + 1}")
    if sum(buckets) != count:
        raise StateFormatError(f"{what}: bucket counts add up to {sum(buckets)}, not {count}")
    if sketch and zero + sum(bins) != count:
        raise StateFormatError(f"{what}: sketch counts add up to {zero + sum(bins)}, not {count}")
    if not sketch and (zero or bins):
        raise StateFormatError(f"{what}: a distribution without a sketch has sketch counts")
    return FrozenDistribution(
        count=count,
        sum=_float(v.get("sum"), f"{what}.sum"),
        buckets=buckets,
        zero_count=zero,
        offset=offset,
        bins=np.array(bins, dtype=np.int64) if bins else np.zeros(0, dtype=np.int64),
    )


def _keyed(v: object, what: str, arity: int) -> list[tuple[tuple[str, ...], Any]]:
    out = []
    for row in _list(v, what):
        if not isinstance(row, list) or len(row) != arity + 1:
            raise StateFormatError(f"{what}: a row is not {arity} names and a value")
        out.append((tuple(_str(x, what) for x in row[:arity]), row[arity]))
    return out


def _hashes(payload: bytes, where: object, what: str) -> npt.NDArray[np.uint64]:
    if not isinstance(where, dict):
        raise StateFormatError(f"{what}: not an object")
    offset, count = _int(where.get("offset"), what), _int(where.get("count"), what)
    if offset + 8 * count > len(payload):
        raise StateFormatError(f"{what}: past the end of the payload")
    arr = np.frombuffer(payload, dtype="<u8", count=count, offset=offset).astype(np.uint64)
    if count > 1 and not bool(np.all(arr[1:] > arr[:-1])):
        raise StateFormatError(f"{what}: hashes not sorted and distinct")
    return arr


def _names(v: object, what: str) -> frozenset[str]:
    return frozenset(_str(x, what) for x in _list(v, what))


def _label_sets(v: object, what: str) -> dict[str, frozenset[str]]:
    """label -> values, each a capped label."""
    sets = _map(v, what, _names)
    unknown = set(sets) - set(CAPPED_LABELS)
    if unknown:
        raise StateFormatError(f"{what}: unknown labels {sorted(unknown)}")
    return sets


def decode_series(series: Series, raw: object) -> dict[Any, Any]:
    """One series as `encode_series` wrote it, checked: its shape, its numbers, the values
    of its closed labels, its fixed keys."""
    what = series.field
    if series.fixed:
        return _fixed(raw, what, series.fixed, series.fixed_added)

    def value(v: object, at: str) -> Any:
        if series.kind == "histogram":
            return _frozen(v, at, series.buckets, series.sketch)
        return _float(v, at) if series.floats else _int(v, at)

    out: dict[Any, Any]
    if series.arity == 1 and series.kind != "histogram":
        out = _map(raw, what, value)
    else:
        out = {
            (k[0] if series.arity == 1 else k): value(v, f"{what}{list(k)}")
            for k, v in _keyed(raw, what, series.arity)
        }
    for position, label in enumerate(series.labels):
        allowed = series.closed.get(label)
        if allowed is not None:
            unknown = {k[position] for k in out} - set(allowed)
            if unknown:
                raise StateFormatError(f"{what}: unknown values {sorted(unknown)}")
    return out


def decode_partial(data: bytes) -> tuple[SavedState, list[tuple[str, str]]]:
    """The state in `data`, and the series sections that could not be restored, as
    (section, reason): each of those is left empty, and the rest is kept. Raises
    StateFormatError when the file as a whole cannot be restored (magic, version, checksum,
    header, bucket layouts, dedup ids, the ingest/rejection/overflow counters, label values)."""
    if not data.startswith(MAGIC):
        raise StateFormatError("not a cugar-metrics state file (wrong magic bytes)")
    if len(data) < len(MAGIC) + _PREFIX.size + _DIGEST:
        raise StateFormatError(f"truncated: {len(data)} bytes")
    version, head_len = _PREFIX.unpack_from(data, len(MAGIC))
    if version != FORMAT_VERSION:
        raise StateFormatError(
            f"format version {version}; this build reads version {FORMAT_VERSION}"
        )
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise StateFormatError("checksum mismatch (the file is truncated or damaged)")
    start = len(MAGIC) + _PREFIX.size
    if start + head_len > len(body):
        raise StateFormatError("header length past the end of the file")
    try:
        h = json.loads(body[start : start + head_len])
    except ValueError as e:
        raise StateFormatError(f"header is not JSON: {e}") from None
    payload = body[start + head_len :]
    if not isinstance(h, dict) or h.get("format") != "cugar-metrics state":
        raise StateFormatError("header is not a cugar-metrics state")
    if h.get("layout") != LAYOUT:
        raise StateFormatError(
            "bucket layout or sketch mapping differs from this build's: "
            f"saved {json.dumps(h.get('layout'))}, this build {json.dumps(LAYOUT)}"
        )
    has_models = "model_layout" in h
    if has_models and h.get("model_layout") != MODEL_LAYOUT:
        raise StateFormatError(
            "model-call bucket layout differs from this build's: "
            f"saved {json.dumps(h.get('model_layout'))}, this build {json.dumps(MODEL_LAYOUT)}"
        )
    if _int(h.get("payload_bytes"), "payload_bytes") != len(payload):
        raise StateFormatError(f"payload is {len(payload)} bytes, header says otherwise")

    label_values = _map(h.get("label_values"), "label_values", _names)
    if not has_models:  # the overflow counts may lack them too (series.fixed_added)
        for label in _LATER_LABELS:
            label_values.setdefault(label, frozenset())
    if set(label_values) != set(CAPPED_LABELS):
        raise StateFormatError(f"label_values: labels {sorted(label_values)}")
    d = h.get("dedup")
    if not isinstance(d, dict):
        raise StateFormatError("dedup: not an object")
    sealed = []
    for i, g in enumerate(_list(d.get("sealed"), "dedup.sealed")):
        if not isinstance(g, dict):
            raise StateFormatError("dedup.sealed: not an object")
        sealed.append(
            (_hashes(payload, g, f"dedup.sealed[{i}]"), _float(g.get("newest"), "dedup.sealed"))
        )
    dedup = DedupState(
        open=_hashes(payload, d.get("open"), "dedup.open"),
        open_since=_opt_float(d.get("open_since"), "dedup.open_since"),
        open_newest=_float(d.get("open_newest"), "dedup.open_newest"),
        sealed=tuple(sealed),
        evicted=_int(d.get("evicted"), "dedup.evicted"),
    )
    problems: list[tuple[str, str]] = []

    def section(key: str, build: Callable[[], dict[Any, T]]) -> dict[Any, T]:
        """One series section: a bad one is left empty and reported, the rest is kept."""
        try:
            return build()
        except StateFormatError as e:
            problems.append((key, str(e)))
            return {}

    saved_at = _float(h.get("saved_at"), "saved_at")
    fields: dict[str, Any] = {
        "label_values": {k: len(v) for k, v in label_values.items()},
        "dedup_entries": len(dedup.open) + sum(len(g) for g, _ in dedup.sealed),
        "dedup_evicted": dedup.evicted,
    }
    for series in SERIES:
        if series.saved == "no":
            continue
        # A series that came later is empty in a file written before it.
        raw = h.get(series.field) if has_models or series.since != "model" else []
        if series.saved == "core":
            fields[series.field] = decode_series(series, raw)
        else:
            fields[series.field] = section(series.field, partial(decode_series, series, raw))
    snapshot = Snapshot(saved_at, **fields)

    agent_values: dict[str, dict[str, frozenset[str]]] = section(
        "agent_label_values",
        partial(_map, h.get("agent_label_values", {}), "agent_label_values", _label_sets),
    )
    return SavedState(
        agent_values=agent_values,
        saved_at=saved_at,
        start_time=_float(h.get("start_time"), "start_time"),
        snapshot=snapshot,
        label_values=label_values,
        first_execution=_opt_float(h.get("first_execution"), "first_execution"),
        first_by_profile=_map(h.get("first_by_profile"), "first_by_profile", _float),
        dedup=dedup,
    ), problems


def decode(data: bytes) -> SavedState:
    """The state in `data`, whole; raises StateFormatError if any part of it cannot be
    restored (a checkpoint is checked with this before it is written)."""
    state, problems = decode_partial(data)
    if problems:
        raise StateFormatError(problems[0][1])
    return state


__all__ = [
    "FORMAT_VERSION",
    "LAYOUT",
    "MAGIC",
    "PARTS",
    "SECTIONS",
    "StateFormatError",
    "decode",
    "decode_partial",
    "encode",
]
