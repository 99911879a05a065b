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
from cugar_metrics.aggregator import (
    APPROVAL_BUCKETS,
    EXECUTION_BUCKETS,
    MODEL_BUCKETS,
    STEP_BUCKETS,
    TOOL_BUCKETS,
    TTFT_BUCKETS,
    UTILIZATION_BUCKETS,
    Snapshot,
)
from cugar_metrics.aggregator.sketch import FrozenDistribution, merge_buckets
from cugar_metrics.model import DECISIONS


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


def families(s: Snapshot) -> list[Family]:
    """Every family of the snapshot, in exposition order."""
    by_decision = {
        d: merge_buckets(v for (_, dec), v in s.approvals.items() if dec == d) for d in DECISIONS
    }
    empty_wait = FrozenDistribution(0, 0.0, (0,) * (len(APPROVAL_BUCKETS) + 1))
    return [
        _counters(
            "cugar_executions_total",
            "Finished executions recorded, by profile and outcome.",
            ("profile", "outcome", "error_type"),
            sorted(s.executions.items()),
        ),
        _histograms(
            "cugar_execution_duration_seconds",
            "Measured duration of finished executions.",
            ("profile", "outcome"),
            EXECUTION_BUCKETS,
            s.durations,
        ),
        _histograms(
            "cugar_execution_steps",
            "Steps per finished execution.",
            ("profile",),
            STEP_BUCKETS,
            {(k,): v for k, v in s.steps.items()},
        ),
        _counters(
            "cugar_tool_calls_total",
            "Tool calls made by executions, by status.",
            ("domain", "tool", "status"),
            sorted(s.tool_calls.items()),
        ),
        _histograms(
            "cugar_tool_call_duration_seconds",
            "Duration of tool calls that ran (skipped calls excluded).",
            ("domain", "tool"),
            TOOL_BUCKETS,
            s.tool_durations,
        ),
        _counters(
            "cugar_budget_spent_total",
            "Budget cost units spent by executions.",
            ("profile",),
            sorted(s.budget_spent.items()),
        ),
        _histograms(
            "cugar_budget_utilization_ratio",
            "Budget spent / limit per execution that reported a budget.",
            ("profile",),
            UTILIZATION_BUCKETS,
            {(k,): v for k, v in s.budget_utilization.items()},
        ),
        _counters(
            "cugar_budget_exceeded_total",
            "Executions that exceeded their budget.",
            ("profile",),
            sorted(s.budget_exceeded.items()),
        ),
        _counters(
            "cugar_approvals_total",
            "Human approval decisions, by decision.",
            ("decision",),
            [(d, by_decision[d].count) for d in DECISIONS],
        ),
        Family(
            "cugar_approval_wait_seconds",
            "Wait from an approval request to its decision.",
            "histogram",
            ("decision",),
            [((d,), by_decision[d] if by_decision[d].buckets else empty_wait) for d in DECISIONS],
            APPROVAL_BUCKETS,
        ),
        # Model calls: provider/model pairs under the `model` cap, from zero once seen.
        _counters(
            "cugar_model_calls_total",
            "Model calls made by executions, by operation and status.",
            ("provider", "model", "operation", "status"),
            sorted(s.model_calls.items()),
        ),
        _counters(
            "cugar_model_tokens_total",
            "Model tokens, by type (cached_input is part of input, reasoning part of output).",
            ("provider", "model", "type"),
            sorted(s.model_tokens.items()),
        ),
        _histograms(
            "cugar_model_call_duration_seconds",
            "Duration of model calls.",
            ("provider", "model"),
            MODEL_BUCKETS,
            s.model_durations,
        ),
        _histograms(
            "cugar_model_time_to_first_token_seconds",
            "Time to the first token of model calls that reported it.",
            ("provider", "model"),
            TTFT_BUCKETS,
            s.model_ttft,
        ),
        _counters(
            "cugar_model_cost_total",
            "Cost of model calls that reported one, in the deployment's currency.",
            ("provider", "model"),
            sorted(s.model_cost.items()),
        ),
        # Bounded label sets, in their declared order (created at zero at start-up).
        _counters(
            "cugar_ingest_executions_total",
            "Executions received by the Record RPCs, by result.",
            ("result",),
            s.ingest.items(),
        ),
        _counters(
            "cugar_ingest_rejections_total",
            "Executions rejected by validation, by the reason of their first violation.",
            ("reason",),
            s.rejections.items(),
        ),
        _counters(
            "cugar_label_overflow_total",
            "Label values folded into _overflow because their cardinality cap was reached.",
            ("label",),
            s.overflow.items(),
        ),
        _gauges(
            "cugar_label_values",
            "Distinct values kept per capped label.",
            ("label",),
            s.label_values.items(),
        ),
        _gauges(
            "cugar_last_execution_timestamp_seconds",
            "When the last execution of a profile was recorded.",
            ("profile",),
            sorted(s.last_execution.items()),
        ),
        _gauges(
            "cugar_dedup_entries",
            "Execution ids remembered for deduplication.",
            (),
            [((), s.dedup_entries)],
        ),
        _counters(
            "cugar_dedup_evictions_total",
            "Execution ids forgotten before the dedup horizon because of the entry cap.",
            (),
            [((), s.dedup_evicted)],
        ),
        _gauges(
            "cugar_build_info",
            "Build information; always 1.",
            ("version", "python", "grpcio"),
            [((__version__, platform.python_version(), grpc.__version__), 1)],
        ),
    ]


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
