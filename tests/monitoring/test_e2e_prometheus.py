"""End to end: two real replicas, a real Prometheus with the project's rules, real traffic.

Proves what the predecessor's stack never did: the counters Prometheus sums across
replicas equal what was sent, every recording rule has data, an injected failure burst
drives the error-ratio alert, and an idle service fires nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import yaml
from google.protobuf import duration_pb2

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar_metrics.aggregator.core import EXECUTION_BUCKETS
from tests.monitoring.promstack import RULES_DIR, Stack, finite, wait_for
from tests.monitoring.traffic import PHASE, Driver

pytestmark = pytest.mark.e2e


def recording_rules() -> list[str]:
    names = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(Path(path).read_text())["groups"]:
            names += [r["record"] for r in group["rules"] if "record" in r]
    return names


def alert_names() -> list[str]:
    names = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(Path(path).read_text())["groups"]:
            names += [r["alert"] for r in group["rules"] if "alert" in r]
    return names


def test_idle_service_fires_no_alert(stack: Stack) -> None:
    """Both replicas up, no execution recorded: no alert is pending or firing."""
    assert stack.idle_alerts == []
    assert stack.idle_alerts_series == []
    assert len(alert_names()) == 19


def test_both_replicas_are_scraped_one_target_each(stack: Stack) -> None:
    """Prometheus scrapes every replica as its own target (never a load-balanced address)."""
    up = stack.prom.by('up{job="cugar-metrics"}', "instance")
    assert up == {r.metrics_target: 1.0 for r in stack.replicas}


def test_summed_counts_equal_what_was_sent(stack: Stack, traffic: Driver) -> None:
    """Counters summed across replicas in PromQL equal the traffic's own tally, exactly."""
    t = traffic.tally
    p = stack.prom
    assert p.by("sum by (outcome) (cugar_executions_total)", "outcome") == {
        "success": float(t.executions["success"]),
        "failure": float(t.executions["failure"]),
    }
    assert p.by("sum by (instance) (cugar_executions_total)", "instance") == {
        r.metrics_target: float(t.per_replica[i]) for i, r in enumerate(stack.replicas)
    }
    tool = {f"{d}/{s}": float(n) for (d, s), n in t.tool_calls.items()}
    got = {
        f"{r['metric']['domain']}/{r['metric']['status']}": float(r["value"][1])
        for r in p.query("sum by (domain, status) (cugar_tool_calls_total) > 0")
    }
    assert got == tool
    assert p.by("sum by (decision) (cugar_approvals_total)", "decision") == {
        d: float(n) for d, n in t.approvals.items()
    }
    assert p.value("sum(cugar_approval_wait_seconds_count)") == sum(t.approvals.values())
    assert p.value("sum(cugar_budget_exceeded_total)") == t.budget_exceeded
    assert p.by("sum by (result) (cugar_ingest_executions_total)", "result") == {
        k: float(v) for k, v in t.ingest.items()
    }
    assert p.by("sum by (reason) (cugar_ingest_rejections_total) > 0", "reason") == {
        k: float(v) for k, v in t.rejections.items()
    }
    assert p.value("sum(cugar_execution_duration_seconds_count)") == sum(t.executions.values())
    assert p.by("sum by (status) (cugar_model_calls_total) > 0", "status") == {
        k: float(v) for k, v in t.model_calls.items()
    }
    assert p.by("sum by (type) (cugar_model_tokens_total) > 0", "type") == {
        k: float(v) for k, v in t.model_tokens.items()
    }


def test_exact_tally_of_the_traffic(traffic: Driver) -> None:
    """The traffic covers every family the rules and the dashboard read."""
    t = traffic.tally
    assert dict(t.executions) == {"success": 78, "failure": 4}
    assert dict(t.approvals) == {"approved": 10, "denied": 12, "timeout": 10, "cancelled": 10}
    assert t.budget_exceeded == 8
    assert dict(t.ingest) == {"accepted": 82, "duplicate": 3, "rejected": 4}
    assert dict(t.rejections) == {"required": 2, "out_of_range": 2}
    assert t.tool_calls[("qualification", "error")] == 8
    assert t.tool_calls[("engagement", "skipped")] == 8
    assert set(t.model_calls) == {"success", "error", "rate_limited"}


@pytest.mark.parametrize("record", recording_rules())
def test_every_recording_rule_returns_data(stack: Stack, traffic: Driver, record: str) -> None:
    """After traffic, each recording rule has at least one finite sample."""
    samples = wait_for(
        f"{record} to have finite samples",
        lambda: (lambda s: s if finite(s) else None)(stack.prom.query(record)),
        timeout=20,
    )
    assert all(s["metric"]["job"] == "cugar-metrics" for s in samples)
    assert all("instance" not in s["metric"] for s in samples), "rules must sum across replicas"


def histogram_quantile(q: float, bounds: Sequence[float], counts: Sequence[float]) -> float:
    """PromQL's histogram_quantile: `counts` are cumulative, one per upper bound in `bounds`
    (then +Inf); linear interpolation inside the bucket that holds the rank, from 0 in the
    first bucket."""
    rank = q * counts[-1]
    below, lower = 0.0, 0.0
    for upper, count in zip(bounds, counts, strict=False):
        if count >= rank:
            return lower + (upper - lower) * (rank - below) / (count - below)
        below, lower = count, upper
    return lower  # the rank falls in the +Inf bucket


def test_recorded_golden_signals_match_the_traffic(stack: Stack, traffic: Driver) -> None:
    """The recording rules equal what the driver's own tally gives, to float precision.

    `rate()` sees the second phase (the first only sets each counter's baseline) and scales
    each replica's increases by that replica's extrapolation factor (from its first and last
    scrape in the window). The factor is read from the replica's rate of the counter that
    counts the rule's executions, at the rule's own evaluation time; every other value the rule
    combines comes from the tally. The tolerance
    (1e-4 relative) covers series of one replica whose scrapes differ by milliseconds; one
    execution more or less in 41 moves every one of these values by more than 1 %."""
    seen: dict[str, list[pb.Execution]] = {}
    for replica, ex in traffic.accepted[traffic.baseline : traffic.phase_end]:
        seen.setdefault(stack.replicas[replica].metrics_target, []).append(ex)
    assert sum(map(len, seen.values())) == PHASE + 1  # and the valid item of an invalid batch

    def check(record: str, expected: Callable[[dict[str, float]], float], counter: str) -> None:
        """Waits until the rule has been evaluated over every scrape (an evaluation can run
        before a scrape with an earlier timestamp is stored); a wrong value never converges."""
        last: list[object] = []  # (value, expected), evaluation time, rates, factors

        def evaluated() -> bool:
            (series,) = stack.prom.query(f"{record}[10s]")  # raw samples: their own times
            at, value = (float(x) for x in series["values"][-1])
            rates = stack.prom.by_at(f"sum by (instance) (rate({counter}[5m]))", at)
            factors = {instance: rates[instance] / len(seen[instance]) for instance in seen}
            want = expected(factors)
            last[:] = [(value, want), at, rates, factors]
            return value == pytest.approx(want, rel=1e-4)

        deadline = time.monotonic() + 30  # bounds the wait for the evaluation
        while not evaluated() and time.monotonic() < deadline:
            time.sleep(0.25)
        assert last, record
        value, want = last[0]  # type: ignore[misc]
        assert value == pytest.approx(want, rel=1e-4), (record, last)

    def weighted(f: dict[str, float], of: Callable[[pb.Execution], float]) -> float:
        return sum(f[i] * sum(of(ex) for ex in executions) for i, executions in seen.items())

    def mean(of: Callable[[pb.Execution], float]) -> Callable[[dict[str, float]], float]:
        return lambda f: weighted(f, of) / weighted(f, lambda _: 1.0)

    executions = "cugar_executions_total"
    durations = "cugar_execution_duration_seconds_count"
    check(
        "job:cugar_executions:error_ratio_rate5m",
        mean(lambda ex: float(ex.outcome == pb.OUTCOME_FAILURE)),  # 2 in 41
        executions,
    )
    check(
        "job:cugar_budget_utilization_ratio:mean_rate5m",
        mean(lambda ex: ex.budget.spent / ex.budget.limit),
        "cugar_budget_utilization_ratio_count",
    )
    check(
        "job:cugar_execution_duration_seconds:mean_rate5m",
        mean(lambda ex: seconds(ex.duration)),
        durations,
    )
    check(
        "job:cugar_execution_duration_seconds:p99_rate5m",
        lambda f: histogram_quantile(
            0.99,
            EXECUTION_BUCKETS,
            [
                weighted(f, lambda ex, b=b: float(seconds(ex.duration) <= b))
                for b in EXECUTION_BUCKETS
            ]
            + [weighted(f, lambda _: 1.0)],
        ),
        durations,
    )


BOUNDS = (*EXECUTION_BUCKETS, float("inf"))


def seconds(d: duration_pb2.Duration) -> float:
    return d.ToNanoseconds() / 1e9


def test_failure_burst_drives_the_error_ratio_alert(stack: Stack, traffic: Driver) -> None:
    """2 failures in 40 do not alert; a burst of 30 failures makes HighErrorRate pend or fire."""
    names = {a["labels"]["alertname"] for a in stack.prom.alerts()}
    assert "HighErrorRate" not in names
    traffic.send_failures(30)
    stack.wait_scraped("sum(cugar_executions_total)", sum(traffic.tally.executions.values()))

    def error_alert() -> list[dict[str, object]]:
        return [a for a in stack.prom.alerts() if a["labels"]["alertname"] == "HighErrorRate"]

    alerts = wait_for("HighErrorRate to be pending or firing", error_alert, timeout=30)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["state"] in ("pending", "firing")
    assert alert["labels"] == {
        "alertname": "HighErrorRate",
        "job": "cugar-metrics",
        "severity": "warning",
        "signal": "execution_outcome",
    }
    assert alert["annotations"]["runbook_url"] == "monitoring/runbooks/HighErrorRate.md"
    assert float(alert["value"]) > 0.10
