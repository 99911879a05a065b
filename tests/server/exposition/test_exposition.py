"""Exposition: the exact text Prometheus reads, produced by prometheus_client."""

from __future__ import annotations

import platform

import grpc
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cugar_metrics import __version__
from cugar_metrics.aggregator import Aggregator
from cugar_metrics.exposition import AggregatorCollector
from cugar_metrics.model import Approval, Budget, ToolCall
from tests.conftest import execution

T0 = 1_000_000.0


def exposition(agg: Aggregator) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AggregatorCollector(agg.snapshot, lambda: T0 + 7))
    return generate_latest(registry).decode()


def family(text: str, name: str) -> str:
    """The HELP/TYPE header and samples of one family, as text."""
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if line.startswith(f"# HELP {name} ")))
    end = start + 2
    while end < len(lines) and not lines[end].startswith("# HELP"):
        end += 1
    return "\n".join(lines[start:end]) + "\n"


def recorded() -> Aggregator:
    agg = Aggregator(start_time=T0)
    agg.record(
        [
            execution(
                "a",
                duration=1.5,
                tool_calls=(
                    ToolCall("search", "territory", "success", 0.2),
                    ToolCall("search", "territory", "error", 0.3),
                ),
            ),
            execution(
                "b",
                outcome="failure",
                error_type="timeout",
                duration=7.0,
                budget=Budget(12, 10, True),
                approvals=(Approval("denied", 40, "execute"),),
            ),
        ],
        T0 + 5,
    )
    agg.reject(["required"], T0 + 6)
    return agg


def test_counters_end_in_total_and_carry_exact_counts() -> None:
    text = exposition(recorded())
    assert (
        family(text, "cugar_executions_total")
        == """\
# HELP cugar_executions_total Finished executions recorded, by profile and outcome.
# TYPE cugar_executions_total counter
cugar_executions_total{error_type="timeout",outcome="failure",profile="sales_rep"} 1.0
cugar_executions_total{error_type="",outcome="success",profile="sales_rep"} 1.0
"""
    )
    assert (
        family(text, "cugar_tool_calls_total")
        == """\
# HELP cugar_tool_calls_total Tool calls made by executions, by status.
# TYPE cugar_tool_calls_total counter
cugar_tool_calls_total{domain="territory",status="error",tool="search"} 1.0
cugar_tool_calls_total{domain="territory",status="success",tool="search"} 1.0
"""
    )
    assert (
        family(text, "cugar_budget_spent_total") + family(text, "cugar_budget_exceeded_total")
        == """\
# HELP cugar_budget_spent_total Budget cost units spent by executions.
# TYPE cugar_budget_spent_total counter
cugar_budget_spent_total{profile="sales_rep"} 12.0
# HELP cugar_budget_exceeded_total Executions that exceeded their budget.
# TYPE cugar_budget_exceeded_total counter
cugar_budget_exceeded_total{profile="sales_rep"} 1.0
"""
    )
    assert (
        family(text, "cugar_approvals_total")
        == """\
# HELP cugar_approvals_total Human approval decisions, by decision.
# TYPE cugar_approvals_total counter
cugar_approvals_total{decision="approved"} 0.0
cugar_approvals_total{decision="denied"} 1.0
cugar_approvals_total{decision="timeout"} 0.0
cugar_approvals_total{decision="cancelled"} 0.0
"""
    )
    assert (
        family(text, "cugar_ingest_executions_total")
        + family(text, "cugar_ingest_rejections_total")
        == """\
# HELP cugar_ingest_executions_total Executions received by the Record RPCs, by result.
# TYPE cugar_ingest_executions_total counter
cugar_ingest_executions_total{result="accepted"} 2.0
cugar_ingest_executions_total{result="duplicate"} 0.0
cugar_ingest_executions_total{result="rejected"} 1.0
# HELP cugar_ingest_rejections_total Executions rejected by validation, by the reason of their \
first violation.
# TYPE cugar_ingest_rejections_total counter
cugar_ingest_rejections_total{reason="required"} 1.0
cugar_ingest_rejections_total{reason="invalid_name"} 0.0
cugar_ingest_rejections_total{reason="invalid_enum"} 0.0
cugar_ingest_rejections_total{reason="out_of_range"} 0.0
cugar_ingest_rejections_total{reason="inconsistent"} 0.0
cugar_ingest_rejections_total{reason="too_many"} 0.0
cugar_ingest_rejections_total{reason="batch_size"} 0.0
cugar_ingest_rejections_total{reason="not_allowed"} 0.0
"""
    )


def test_latency_is_a_histogram_in_seconds_not_a_gauge_of_percentiles() -> None:
    """Predecessor defect 5: percentiles were gauges in milliseconds with a percentile label."""
    text = exposition(recorded())
    assert (
        family(text, "cugar_tool_call_duration_seconds")
        == """\
# HELP cugar_tool_call_duration_seconds Duration of tool calls that ran (skipped calls excluded).
# TYPE cugar_tool_call_duration_seconds histogram
cugar_tool_call_duration_seconds_bucket{domain="territory",le="0.005",tool="search"} 0.0
cugar_tool_call_duration_seconds_bucket{domain="territory",le="0.01",tool="search"} 0.0
cugar_tool_call_duration_seconds_bucket{domain="territory",le="0.025",tool="search"} 0.0
cugar_tool_call_duration_seconds_bucket{domain="territory",le="0.05",tool="search"} 0.0
cugar_tool_call_duration_seconds_bucket{domain="territory",le="0.1",tool="search"} 0.0
cugar_tool_call_duration_seconds_bucket{domain="territory",le="0.25",tool="search"} 1.0
cugar_tool_call_duration_seconds_bucket{domain="territory",le="0.5",tool="search"} 2.0
cugar_tool_call_duration_seconds_bucket{domain="territory",le="1.0",tool="search"} 2.0
cugar_tool_call_duration_seconds_bucket{domain="territory",le="2.5",tool="search"} 2.0
cugar_tool_call_duration_seconds_bucket{domain="territory",le="5.0",tool="search"} 2.0
cugar_tool_call_duration_seconds_bucket{domain="territory",le="10.0",tool="search"} 2.0
cugar_tool_call_duration_seconds_bucket{domain="territory",le="30.0",tool="search"} 2.0
cugar_tool_call_duration_seconds_bucket{domain="territory",le="60.0",tool="search"} 2.0
cugar_tool_call_duration_seconds_bucket{domain="territory",le="300.0",tool="search"} 2.0
cugar_tool_call_duration_seconds_bucket{domain="territory",le="+Inf",tool="search"} 2.0
cugar_tool_call_duration_seconds_count{domain="territory",tool="search"} 2.0
cugar_tool_call_duration_seconds_sum{domain="territory",tool="search"} 0.5
"""
    )
    assert "percentile" not in text
    assert "# TYPE cugar_execution_duration_seconds histogram" in text
    assert 'cugar_execution_duration_seconds_sum{outcome="failure",profile="sales_rep"} 7.0' in text


def test_idle_service_exports_no_ratio_and_known_series_at_zero() -> None:
    """Predecessor defects 3 and 7: no success_rate gauge at 0; ratios are left to PromQL."""
    text = exposition(Aggregator(start_time=T0))
    gauges = {f.name for f in text_string_to_metric_families(text) if f.type == "gauge"}
    assert gauges == {
        "cugar_label_values",
        "cugar_last_execution_timestamp_seconds",
        "cugar_dedup_entries",
        "cugar_build_info",
    }
    assert 'cugar_ingest_executions_total{result="accepted"} 0.0' in text
    assert 'cugar_approvals_total{decision="timeout"} 0.0' in text
    assert 'cugar_label_overflow_total{label="tool"} 0.0' in text
    assert "cugar_executions_total{" not in text  # no execution, no fake zero series


def test_label_values_are_escaped_and_the_text_ends_with_a_newline() -> None:
    """Predecessor defect 8: `domain="we"ird"` broke the exposition; no final newline."""
    agg = Aggregator(start_time=T0)
    # Validation forbids such names; the aggregator is fed directly to prove the exposition
    # stays well-formed whatever reaches it.
    weird = 'we"ird\\dom\nain'
    agg.record([execution("w", tool_calls=(ToolCall("t", weird, "success", 0.1),))], T0 + 1)
    text = exposition(agg)
    assert text.endswith("\n")
    parsed = {
        (s.name, s.labels.get("domain")): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    assert parsed[("cugar_tool_calls_total", weird)] == 1.0


def test_build_info_names_the_versions() -> None:
    text = exposition(Aggregator(start_time=T0))
    assert (
        f'cugar_build_info{{grpcio="{grpc.__version__}",python="{platform.python_version()}",'
        f'version="{__version__}"}} 1.0'
    ) in text
