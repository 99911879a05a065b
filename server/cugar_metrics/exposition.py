"""Prometheus exposition: a custom collector that builds every family from one snapshot.

It holds no state of its own; the text format (escaping, `_total`, the final newline) is
prometheus_client's. Registered on an explicit CollectorRegistry, never the global one.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import grpc
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from cugar_metrics import __version__
from cugar_metrics.aggregator import (
    APPROVAL_BUCKETS,
    EXECUTION_BUCKETS,
    STEP_BUCKETS,
    TOOL_BUCKETS,
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


def _histogram(
    name: str,
    doc: str,
    labels: list[str],
    bounds: Sequence[float],
    series: Mapping[tuple[str, ...], FrozenDistribution],
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for key in sorted(series):
        d = series[key]
        family.add_metric(list(key), _buckets(bounds, d), d.sum)
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
        s = self._snapshot(self._clock())

        executions = CounterMetricFamily(
            "cugar_executions_total",
            "Finished executions recorded, by profile and outcome.",
            labels=["profile", "outcome", "error_type"],
        )
        for (profile, outcome, error_type), n in sorted(s.executions.items()):
            executions.add_metric([profile, outcome, error_type], n)
        yield executions

        yield _histogram(
            "cugar_execution_duration_seconds",
            "Measured duration of finished executions.",
            ["profile", "outcome"],
            EXECUTION_BUCKETS,
            dict(s.durations.items()),
        )
        yield _histogram(
            "cugar_execution_steps",
            "Steps per finished execution.",
            ["profile"],
            STEP_BUCKETS,
            {(k,): v for k, v in s.steps.items()},
        )

        tool_calls = CounterMetricFamily(
            "cugar_tool_calls_total",
            "Tool calls made by executions, by status.",
            labels=["domain", "tool", "status"],
        )
        for (domain, tool, status), n in sorted(s.tool_calls.items()):
            tool_calls.add_metric([domain, tool, status], n)
        yield tool_calls
        yield _histogram(
            "cugar_tool_call_duration_seconds",
            "Duration of tool calls that ran (skipped calls excluded).",
            ["domain", "tool"],
            TOOL_BUCKETS,
            dict(s.tool_durations.items()),
        )

        spent = CounterMetricFamily(
            "cugar_budget_spent_total", "Budget cost units spent by executions.", labels=["profile"]
        )
        for profile, value in sorted(s.budget_spent.items()):
            spent.add_metric([profile], value)
        yield spent
        yield _histogram(
            "cugar_budget_utilization_ratio",
            "Budget spent / limit per execution that reported a budget.",
            ["profile"],
            UTILIZATION_BUCKETS,
            {(k,): v for k, v in s.budget_utilization.items()},
        )
        exceeded = CounterMetricFamily(
            "cugar_budget_exceeded_total",
            "Executions that exceeded their budget.",
            labels=["profile"],
        )
        for profile, n in sorted(s.budget_exceeded.items()):
            exceeded.add_metric([profile], n)
        yield exceeded

        by_decision = {
            d: merge_buckets(v for (_, dec), v in s.approvals.items() if dec == d)
            for d in DECISIONS
        }
        approvals = CounterMetricFamily(
            "cugar_approvals_total", "Human approval decisions, by decision.", labels=["decision"]
        )
        for decision in DECISIONS:
            approvals.add_metric([decision], by_decision[decision].count)
        yield approvals
        waits = HistogramMetricFamily(
            "cugar_approval_wait_seconds",
            "Wait from an approval request to its decision.",
            labels=["decision"],
        )
        for decision in DECISIONS:
            d = by_decision[decision]
            if not d.buckets:
                d = FrozenDistribution(0, 0.0, (0,) * (len(APPROVAL_BUCKETS) + 1))
            waits.add_metric([decision], _buckets(APPROVAL_BUCKETS, d), d.sum)
        yield waits

        ingest = CounterMetricFamily(
            "cugar_ingest_executions_total",
            "Executions received by the Record RPCs, by result.",
            labels=["result"],
        )
        for result, n in s.ingest.items():
            ingest.add_metric([result], n)
        yield ingest
        rejections = CounterMetricFamily(
            "cugar_ingest_rejections_total",
            "Executions rejected by validation, by the reason of their first violation.",
            labels=["reason"],
        )
        for reason, n in s.rejections.items():
            rejections.add_metric([reason], n)
        yield rejections
        overflow = CounterMetricFamily(
            "cugar_label_overflow_total",
            "Label values folded into _overflow because their cardinality cap was reached.",
            labels=["label"],
        )
        for label, n in s.overflow.items():
            overflow.add_metric([label], n)
        yield overflow
        values = GaugeMetricFamily(
            "cugar_label_values", "Distinct values kept per capped label.", labels=["label"]
        )
        for label, n in s.label_values.items():
            values.add_metric([label], n)
        yield values

        last = GaugeMetricFamily(
            "cugar_last_execution_timestamp_seconds",
            "When the last execution of a profile was recorded.",
            labels=["profile"],
        )
        for profile, t in sorted(s.last_execution.items()):
            last.add_metric([profile], t)
        yield last
        yield GaugeMetricFamily(
            "cugar_dedup_entries",
            "Execution ids remembered for deduplication.",
            value=s.dedup_entries,
        )
        yield CounterMetricFamily(
            "cugar_dedup_evictions_total",
            "Execution ids forgotten before the dedup horizon because of the entry cap.",
            value=s.dedup_evicted,
        )
        info = GaugeMetricFamily(
            "cugar_build_info",
            "Build information; always 1.",
            labels=["version", "python", "grpcio"],
        )
        info.add_metric([__version__, platform.python_version(), grpc.__version__], 1)
        yield info
