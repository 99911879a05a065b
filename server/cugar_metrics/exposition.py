"""Prometheus exposition: a custom collector that builds every family from one snapshot.

It holds no state of its own; the text format (escaping, `_total`, the final newline) is
prometheus_client's. Registered on an explicit CollectorRegistry, never the global one.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TypeVar

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


_Family = TypeVar("_Family", CounterMetricFamily, GaugeMetricFamily)


def _family(
    cls: type[_Family],
    name: str,
    doc: str,
    labels: list[str],
    samples: Iterable[tuple[str | tuple[str, ...], float]],
) -> _Family:
    """A counter or gauge family with one sample per (label value(s), value), in order."""
    family = cls(name, doc, labels=labels)
    for key, value in samples:
        family.add_metric([key] if isinstance(key, str) else list(key), value)
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

        yield _family(
            CounterMetricFamily,
            "cugar_executions_total",
            "Finished executions recorded, by profile and outcome.",
            ["profile", "outcome", "error_type"],
            sorted(s.executions.items()),
        )
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
        yield _family(
            CounterMetricFamily,
            "cugar_tool_calls_total",
            "Tool calls made by executions, by status.",
            ["domain", "tool", "status"],
            sorted(s.tool_calls.items()),
        )
        yield _histogram(
            "cugar_tool_call_duration_seconds",
            "Duration of tool calls that ran (skipped calls excluded).",
            ["domain", "tool"],
            TOOL_BUCKETS,
            dict(s.tool_durations.items()),
        )
        yield _family(
            CounterMetricFamily,
            "cugar_budget_spent_total",
            "Budget cost units spent by executions.",
            ["profile"],
            sorted(s.budget_spent.items()),
        )
        yield _histogram(
            "cugar_budget_utilization_ratio",
            "Budget spent / limit per execution that reported a budget.",
            ["profile"],
            UTILIZATION_BUCKETS,
            {(k,): v for k, v in s.budget_utilization.items()},
        )
        yield _family(
            CounterMetricFamily,
            "cugar_budget_exceeded_total",
            "Executions that exceeded their budget.",
            ["profile"],
            sorted(s.budget_exceeded.items()),
        )

        by_decision = {
            d: merge_buckets(v for (_, dec), v in s.approvals.items() if dec == d)
            for d in DECISIONS
        }
        yield _family(
            CounterMetricFamily,
            "cugar_approvals_total",
            "Human approval decisions, by decision.",
            ["decision"],
            [(d, by_decision[d].count) for d in DECISIONS],
        )
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

        # Model calls: provider/model pairs under the `model` cap, from zero once seen.
        yield _family(
            CounterMetricFamily,
            "cugar_model_calls_total",
            "Model calls made by executions, by operation and status.",
            ["provider", "model", "operation", "status"],
            sorted(s.model_calls.items()),
        )
        yield _family(
            CounterMetricFamily,
            "cugar_model_tokens_total",
            "Model tokens, by type (cached_input is part of input, reasoning part of output).",
            ["provider", "model", "type"],
            sorted(s.model_tokens.items()),
        )
        yield _histogram(
            "cugar_model_call_duration_seconds",
            "Duration of model calls.",
            ["provider", "model"],
            MODEL_BUCKETS,
            dict(s.model_durations.items()),
        )
        yield _histogram(
            "cugar_model_time_to_first_token_seconds",
            "Time to the first token of model calls that reported it.",
            ["provider", "model"],
            TTFT_BUCKETS,
            dict(s.model_ttft.items()),
        )
        yield _family(
            CounterMetricFamily,
            "cugar_model_cost_total",
            "Cost of model calls that reported one, in the deployment's currency.",
            ["provider", "model"],
            sorted(s.model_cost.items()),
        )

        # Bounded label sets, in their declared order (created at zero at start-up).
        yield _family(
            CounterMetricFamily,
            "cugar_ingest_executions_total",
            "Executions received by the Record RPCs, by result.",
            ["result"],
            s.ingest.items(),
        )
        yield _family(
            CounterMetricFamily,
            "cugar_ingest_rejections_total",
            "Executions rejected by validation, by the reason of their first violation.",
            ["reason"],
            s.rejections.items(),
        )
        yield _family(
            CounterMetricFamily,
            "cugar_label_overflow_total",
            "Label values folded into _overflow because their cardinality cap was reached.",
            ["label"],
            s.overflow.items(),
        )
        yield _family(
            GaugeMetricFamily,
            "cugar_label_values",
            "Distinct values kept per capped label.",
            ["label"],
            s.label_values.items(),
        )
        yield _family(
            GaugeMetricFamily,
            "cugar_last_execution_timestamp_seconds",
            "When the last execution of a profile was recorded.",
            ["profile"],
            sorted(s.last_execution.items()),
        )
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
