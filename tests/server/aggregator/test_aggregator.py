"""The pure aggregator: exact counts, dedup, windows, caps, quantiles, absent rates."""

from __future__ import annotations

import random
import threading

import pytest

from cugar_metrics.aggregator import Aggregator, Caps, build_dashboard
from cugar_metrics.model import Approval, Budget, ToolCall
from tests.conftest import execution

T0 = 1_000_000.0  # a 10 s boundary


def test_counts_are_exact_per_profile_outcome_and_error_type() -> None:
    agg = Aggregator(start_time=T0)
    agg.record([execution(f"ok-{i}") for i in range(7)], T0 + 1)
    agg.record(
        [execution(f"bad-{i}", outcome="failure", error_type="timeout") for i in range(3)], T0 + 2
    )
    agg.record(
        [execution("other", profile="demo", outcome="failure", error_type="ToolError")], T0 + 3
    )
    snap = agg.snapshot(T0 + 4)
    assert snap.executions == {
        ("sales_rep", "success", ""): 7,
        ("sales_rep", "failure", "timeout"): 3,
        ("demo", "failure", "ToolError"): 1,
    }
    d = build_dashboard(agg.window(T0 + 4, None))
    assert (d.total, d.succeeded, d.failed) == (11, 7, 4)
    assert d.success_rate == pytest.approx(7 / 11)
    assert d.error_types == [("timeout", 3), ("ToolError", 1)]
    assert snap.ingest == {"accepted": 11, "duplicate": 0, "rejected": 0}


def test_repeated_execution_id_is_acknowledged_as_duplicate_and_counted_once() -> None:
    agg = Aggregator(start_time=T0, dedup_horizon=600)
    assert agg.record([execution("a")], T0 + 1) == ["accepted"]
    assert agg.record([execution("a")], T0 + 500) == ["duplicate"]
    assert agg.record([execution("b"), execution("b")], T0 + 501) == ["accepted", "duplicate"]
    snap = agg.snapshot(T0 + 502)
    assert snap.executions == {("sales_rep", "success", ""): 2}
    assert snap.ingest == {"accepted": 2, "duplicate": 2, "rejected": 0}


def test_dedup_remembers_ids_for_at_least_the_horizon_then_forgets_them() -> None:
    agg = Aggregator(start_time=T0, dedup_horizon=600)
    agg.record([execution("a")], T0)
    for minute in range(1, 11):  # keep generations rotating
        agg.record([execution(f"filler-{minute}")], T0 + 60 * minute)
    assert agg.record([execution("a")], T0 + 599) == ["duplicate"]
    assert agg.record([execution("a")], T0 + 600 + 61) == ["accepted"]


def test_dedup_memory_is_capped_and_evictions_counted() -> None:
    agg = Aggregator(start_time=T0, dedup_max_entries=1000)
    for batch in range(30):
        agg.record([execution(f"id-{batch}-{i}") for i in range(100)], T0 + batch)
    snap = agg.snapshot(T0 + 31)
    assert snap.dedup_entries <= 1000
    assert snap.dedup_evicted == 3000 - snap.dedup_entries
    assert snap.ingest["accepted"] == 3000


def test_window_covers_only_recent_executions_at_10s_granularity() -> None:
    agg = Aggregator(start_time=T0)
    agg.record([execution(f"old-{i}") for i in range(5)], T0 + 5)
    agg.record([execution(f"new-{i}", duration=4.0) for i in range(2)], T0 + 95)
    # At T0+125 a 60 s window starts at the boundary T0+60: only the two new ones.
    state = agg.window(T0 + 125, 60)
    assert state.start == T0 + 60
    d = build_dashboard(state)
    assert d.total == 2
    assert d.latency_mean == pytest.approx(4.0)
    assert d.first_execution == T0 + 95
    # Since start: all seven.
    assert build_dashboard(agg.window(T0 + 125, None)).total == 7
    # A window reaching before the start is the whole life of the server.
    assert agg.window(T0 + 125, 3600).start == T0


def test_window_boundary_between_idle_checkpoints_is_exact() -> None:
    """Checkpoints are taken lazily; a window starting in an idle stretch still counts right."""
    agg = Aggregator(start_time=T0)
    agg.record([execution("a")], T0 + 51)  # bucket 5
    agg.record([execution("b")], T0 + 55)  # bucket 5, after its checkpoint
    agg.record([execution("c")], T0 + 95)  # bucket 9
    assert build_dashboard(agg.window(T0 + 135, 60)).total == 1  # boundary T0+70
    assert build_dashboard(agg.window(T0 + 105, 60)).total == 3  # boundary T0+40


def test_idle_aggregator_reports_absent_rates_never_zero() -> None:
    """Predecessor defect 3: an idle service exported success_rate 0 and paged on-call."""
    agg = Aggregator(start_time=T0)
    d = build_dashboard(agg.window(T0 + 300, 60))
    assert d.total == 0
    for value in (
        d.success_rate,
        d.error_rate,
        d.tool_error_rate,
        d.budget_utilization,
        d.latency_p50,
        d.latency_p95,
        d.latency_p99,
        d.latency_mean,
        d.mean_steps,
        d.approval_wait_p50,
        d.approval_wait_p95,
        d.throughput,
        d.first_execution,
        d.last_execution,
    ):
        assert value is None
    # Traffic an hour ago does not leak into an idle recent window either.
    agg.record([execution("a", outcome="failure", error_type="x")], T0 + 1)
    assert build_dashboard(agg.window(T0 + 4000, 60)).error_rate is None


def test_cardinality_caps_fold_into_overflow_and_count() -> None:
    agg = Aggregator(start_time=T0, caps=Caps(profile=2, domain=2, tool=3, error_type=1))
    calls = tuple(ToolCall(f"t{i}", f"d{i % 3}", "success", 0.1) for i in range(6))
    agg.record(
        [
            execution(
                f"p{i}", profile=f"p{i}", outcome="failure", error_type=f"e{i}", tool_calls=calls
            )
            for i in range(4)
        ],
        T0 + 1,
    )
    snap = agg.snapshot(T0 + 2)
    assert {k[0] for k in snap.executions} == {"p0", "p1", "_overflow"}
    assert {k[2] for k in snap.executions} == {"e0", "_overflow"}
    assert snap.overflow["profile"] == 2
    assert snap.overflow["error_type"] == 3
    assert snap.label_values == {"profile": 2, "domain": 2, "tool": 3, "error_type": 1, "model": 0}
    # kept pairs + one overflow tool per kept domain and for the overflow domain
    assert len({(d, t) for d, t, _ in snap.tool_calls}) == 3 + 2 + 1
    assert sum(snap.tool_calls.values()) == 24  # nothing lost, only folded


def test_state_does_not_grow_with_the_number_of_executions() -> None:
    agg = Aggregator(start_time=T0, dedup_max_entries=10_000)
    calls = (ToolCall("search", "territory", "success", 0.2),)

    def series() -> int:
        s = agg.snapshot(T0)
        return len(s.executions) + len(s.durations) + len(s.tool_calls) + len(s.approvals)

    agg.record([execution(f"w-{i}", tool_calls=calls) for i in range(1000)], T0 + 1)
    before = series()
    for b in range(20):
        agg.record([execution(f"x-{b}-{i}", tool_calls=calls) for i in range(1000)], T0 + 2 + b)
    assert series() == before
    assert agg.snapshot(T0 + 30).dedup_entries <= 10_000


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_quantiles_are_within_one_percent_of_exact_values(q: float) -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(1.0, 1.2) for _ in range(5000)]
    agg = Aggregator(start_time=T0)
    agg.record([execution(f"q{i}", duration=v) for i, v in enumerate(values)], T0 + 1)
    d = build_dashboard(agg.window(T0 + 2, None))
    exact = sorted(values)[int(q * (len(values) - 1))]
    estimate = {0.5: d.latency_p50, 0.95: d.latency_p95, 0.99: d.latency_p99}[q]
    assert estimate is not None
    assert abs(estimate - exact) <= 0.01 * exact


def test_p95_of_twenty_values_is_not_the_maximum() -> None:
    """Predecessor defect 6: a floor index made p95 the maximum for n <= 20."""
    agg = Aggregator(start_time=T0)
    agg.record([execution(f"n{i}", duration=float(i)) for i in range(1, 21)], T0 + 1)
    p95 = build_dashboard(agg.window(T0 + 2, None)).latency_p95
    assert p95 is not None
    assert abs(p95 - 19.0) <= 0.19  # the 19th of 20 values, within 1 %


def test_windowed_quantiles_exclude_values_before_the_window() -> None:
    agg = Aggregator(start_time=T0)
    agg.record([execution(f"slow{i}", duration=100.0) for i in range(50)], T0 + 1)
    agg.record([execution(f"fast{i}", duration=1.0) for i in range(50)], T0 + 200)
    d = build_dashboard(agg.window(T0 + 230, 60))
    assert d.latency_p99 is not None and abs(d.latency_p99 - 1.0) <= 0.01


def test_tool_budget_and_approval_figures() -> None:
    agg = Aggregator(start_time=T0)
    calls = (
        ToolCall("search", "territory", "success", 0.2),
        ToolCall("search", "territory", "error", 0.4),
        ToolCall("send", "engagement", "skipped", 0.0),
    )
    agg.record(
        [
            execution(
                "a",
                tool_calls=calls,
                budget=Budget(5, 10, False),
                approvals=(Approval("approved", 30, "execute"),),
            ),
            execution(
                "b",
                budget=Budget(12, 10, True),
                approvals=(Approval("timeout", 600, "propose"), Approval("denied", 60, "execute")),
            ),
        ],
        T0 + 1,
    )
    d = build_dashboard(agg.window(T0 + 2, None))
    assert [(r.domain, r.tool, r.calls, r.errors, r.skipped) for r in d.tools] == [
        ("engagement", "send", 1, 0, 1),
        ("territory", "search", 2, 1, 0),
    ]
    assert d.tool_error_rate == pytest.approx(0.5)  # skipped calls did not run
    assert d.budget_spent == 17 and d.budget_exceeded == 1 and d.budget_executions == 2
    assert d.budget_utilization == pytest.approx((0.5 + 1.2) / 2)
    assert {r.decision: r.count for r in d.approvals} == {
        "approved": 1,
        "denied": 1,
        "timeout": 1,
        "cancelled": 0,
    }
    assert d.approvals_total == 3
    snap = agg.snapshot(T0 + 2)
    assert snap.tool_calls[("engagement", "send", "skipped")] == 1
    assert ("engagement", "send") not in snap.tool_durations  # skipped calls have no duration


def test_profile_and_domain_filters() -> None:
    agg = Aggregator(start_time=T0)
    agg.record(
        [
            execution("a", profile="demo"),
            execution("b", profile="sales_rep"),
            execution(
                "c",
                profile="sales_rep",
                tool_calls=(
                    ToolCall("t", "territory", "success", 0.1),
                    ToolCall("k", "knowledge", "error", 0.1),
                ),
            ),
        ],
        T0 + 1,
    )
    d = build_dashboard(agg.window(T0 + 2, None), profile="sales_rep", domain="knowledge")
    assert d.total == 2
    assert [p.profile for p in d.profiles] == ["sales_rep"]
    assert [r.domain for r in d.domains] == ["knowledge"]
    assert d.tool_error_rate == 1.0


def test_concurrent_records_are_counted_exactly() -> None:
    agg = Aggregator(start_time=T0)

    def worker(n: int) -> None:
        for i in range(500):
            agg.record([execution(f"{n}-{i}"), execution(f"{n}-{i}")], T0 + 1)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = agg.snapshot(T0 + 2)
    assert snap.ingest == {"accepted": 4000, "duplicate": 4000, "rejected": 0}
    assert snap.durations[("sales_rep", "success")].count == 4000
