"""Prometheus exposition: a custom collector that builds every family from one snapshot.

It holds no state of its own; the text format (escaping, `_total`, the final newline) is
prometheus_client's. Registered on an explicit CollectorRegistry, never the global one.
"""

from __future__ import annotations

import gzip
import platform
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any, cast
from urllib.parse import parse_qs

import grpc
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from cugar_metrics import __version__
from cugar_metrics.aggregator import Snapshot
from cugar_metrics.aggregator.series import SERIES, Series
from cugar_metrics.aggregator.sketch import FrozenDistribution, merge_buckets


def _buckets(bounds: Sequence[float], d: FrozenDistribution) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    acc = 0
    for bound, n in zip([*bounds, float("inf")], d.buckets, strict=True):
        acc += n
        out.append(("+Inf" if bound == float("inf") else repr(float(bound)), acc))
    return out


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family of a snapshot: what `collect()` turns into prometheus_client families
    and `render()` writes as text. `rows` are (label values, value) for a counter or gauge,
    (label values, distribution) for a histogram."""

    name: str
    doc: str
    type: str  # counter, gauge or histogram
    labels: tuple[str, ...]
    rows: Sequence[tuple[tuple[str, ...], Any]]
    bounds: Sequence[float] = ()


def _counters(
    name: str, doc: str, labels: tuple[str, ...], samples: Iterable[tuple[Any, float]]
) -> Family:
    return Family(name, doc, "counter", labels, [(_key(k), v) for k, v in samples])


def _gauges(
    name: str, doc: str, labels: tuple[str, ...], samples: Iterable[tuple[Any, float]]
) -> Family:
    return Family(name, doc, "gauge", labels, [(_key(k), v) for k, v in samples])


def _histograms(
    name: str,
    doc: str,
    labels: tuple[str, ...],
    bounds: Sequence[float],
    series: Mapping[Any, FrozenDistribution],
) -> Family:
    return Family(
        name, doc, "histogram", labels, [(_key(k), series[k]) for k in sorted(series)], bounds
    )


def _key(k: str | tuple[str, ...]) -> tuple[str, ...]:
    return (k,) if isinstance(k, str) else k


def _as_metric(f: Family) -> Metric:
    if f.type == "histogram":
        h = HistogramMetricFamily(f.name, f.doc, labels=list(f.labels))
        for key, d in f.rows:
            h.add_metric(list(key), _buckets(f.bounds, d), d.sum)
        return h
    cls = CounterMetricFamily if f.type == "counter" else GaugeMetricFamily
    if not f.labels:
        return cls(f.name, f.doc, value=f.rows[0][1])
    family = cls(f.name, f.doc, labels=list(f.labels))
    for key, value in f.rows:
        family.add_metric(list(key), value)
    return family


class AggregatorCollector(Collector):
    """Exports the aggregator's cumulative snapshot at every scrape."""

    def __init__(
        self, snapshot: Callable[[float], Snapshot], clock: Callable[[], float] = time.time
    ) -> None:
        self._snapshot = snapshot
        self._clock = clock

    def describe(self) -> list[Metric]:
        return []  # families are built at collect time; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        for family in families(self._snapshot(self._clock())):
            yield _as_metric(family)


def series_families(series: Series, value: Any) -> list[Family]:
    """The /metrics families of one series of the table, from its snapshot value: labelled
    rows sorted by key, fixed keys in their declared order; a series exposed by fewer labels
    summed over the others, with every value of its closed labels present."""
    if not series.labels:
        rows: list[tuple[tuple[str, ...], Any]] = [((), value)]
        return [Family(series.metric, series.help, series.kind, (), rows)]
    if series.exposed_by is not None:
        by = series.exposed_by
        positions = [series.labels.index(label) for label in by]
        groups: dict[tuple[str, ...], list[FrozenDistribution]] = {}
        for k, d in value.items():
            groups.setdefault(tuple(_key(k)[i] for i in positions), []).append(d)
        empty = FrozenDistribution(0, 0.0, (0,) * (len(series.buckets) + 1))
        keys = list(product(*(series.closed[label] for label in by)))
        merged = {k: merge_buckets(groups.get(k, [])) for k in keys}
        dists = [(k, merged[k] if merged[k].buckets else empty) for k in keys]
        out = []
        if series.count_metric is not None:
            name, doc = series.count_metric
            out.append(Family(name, doc, "counter", by, [(k, d.count) for k, d in dists]))
        out.append(Family(series.metric, series.help, "histogram", by, dists, series.buckets))
        return out
    if series.kind == "histogram":
        return [_histograms(series.metric, series.help, series.labels, series.buckets, value)]
    items = value.items() if series.fixed else sorted(value.items())
    return [
        Family(
            series.metric, series.help, series.kind, series.labels, [(_key(k), v) for k, v in items]
        )
    ]


def families(s: Snapshot) -> list[Family]:
    """Every family of the snapshot, in exposition order: the series table's, then the
    build information."""
    out = [f for series in SERIES for f in series_families(series, getattr(s, series.field))]
    out.append(
        Family(
            "cugar_build_info",
            "Build information; always 1.",
            "gauge",
            ("version", "python", "grpcio"),
            [((__version__, platform.python_version(), grpc.__version__), 1)],
        )
    )
    return out


# --- the text format, written directly ----------------------------------------------------

#: prometheus_client's number format (typed here: the library leaves it unannotated).
_number = cast(Callable[[float], str], floatToGoString)

#: Escaped label sets by label names and values: bounded by the caps, so kept across scrapes.
_label_text: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[str, str]] = {}
_LABEL_TEXT_MAX = 100_000


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> tuple[str, str]:
    """`{a="x",b="y"}` with the names sorted (as prometheus_client writes them), and the same
    without its closing brace, for a histogram's `le` to be merged in at its sorted place:
    (text before `le`, text after it)."""
    key = (names, values)
    cached = _label_text.get(key)
    if cached is not None:
        return cached
    pairs = sorted(zip(names, values, strict=True))
    before = ",".join(f'{n}="{_escape(v)}"' for n, v in pairs if n < "le")
    after = ",".join(f'{n}="{_escape(v)}"' for n, v in pairs if n >= "le")
    result = (before, after)
    if len(_label_text) < _LABEL_TEXT_MAX:
        _label_text[key] = result
    return result


def _join(*parts: str) -> str:
    inner = ",".join(p for p in parts if p)
    return f"{{{inner}}}" if inner else ""


def render(fams: Iterable[Family], names: set[str] | None = None) -> str:
    """The text exposition format (0.0.4) of `fams`: byte for byte what prometheus_client's
    `generate_latest` writes for `AggregatorCollector` (a test holds the two together), in a
    fraction of its time, because each series' label text is built once and kept. With
    `names`, only the samples of those names, as prometheus_client's `name[]` filter does."""
    out: list[str] = []
    for f in fams:
        if f.type == "histogram":
            kinds = [
                k for k in ("_bucket", "_count", "_sum") if names is None or f.name + k in names
            ]
        else:
            kinds = [""] if names is None or f.name in names else []
        if not kinds:
            continue
        doc = f.doc.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {f.name} {doc}\n# TYPE {f.name} {f.type}\n")
        if f.type != "histogram":
            for key, value in f.rows:
                before, after = _labels(f.labels, key)
                out.append(f"{f.name}{_join(before, after)} {_number(value)}\n")
            continue
        les = [f'le="{float(b)!r}"' for b in f.bounds] + ['le="+Inf"']
        for key, d in f.rows:
            before, after = _labels(f.labels, key)
            if "_bucket" in kinds:
                running = 0
                for le, n in zip(les, d.buckets, strict=True):
                    running += n
                    out.append(f"{f.name}_bucket{_join(before, le, after)} {_number(running)}\n")
            plain = _join(before, after)
            if "_count" in kinds:
                out.append(f"{f.name}_count{plain} {_number(sum(d.buckets))}\n")
            if "_sum" in kinds:
                out.append(f"{f.name}_sum{plain} {_number(d.sum)}\n")
    return "".join(out)


def metrics_app(
    snapshot: Callable[[float], Snapshot], clock: Callable[[], float], registry: CollectorRegistry
) -> Callable[..., Iterable[bytes]]:
    """The `/metrics` WSGI app: the aggregator's families written by `render`, then what
    `registry` holds (the server's own metrics) written by prometheus_client; `name[]`
    filters both as prometheus_client does; gzip when the client accepts it. It answers in
    the text format 0.0.4, which Prometheus and every scraper accept."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method != "GET":  # as prometheus_client answers
            allow = [("Allow", "OPTIONS,GET")]
            if method == "OPTIONS":
                start_response("200 OK", allow)
                return [b""]
            start_response("405 Method Not Allowed", allow)
            return [f"# HTTP 405 Method Not Allowed: {method}; use OPTIONS or GET\n".encode()]
        listed = parse_qs(environ.get("QUERY_STRING", "")).get("name[]")
        own = registry.restricted_registry(listed) if listed else registry
        text = render(families(snapshot(clock())), set(listed) if listed else None)
        body = text.encode() + generate_latest(own)
        headers = [("Content-Type", CONTENT_TYPE_LATEST)]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = gzip.compress(body)
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [body]

    return app
