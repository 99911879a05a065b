"""End to end: two real replicas, a real Prometheus with the project's rules, real traffic.

Proves what the predecessor's stack never did: the counters Prometheus sums across
replicas equal what was sent, every recording rule has data, an injected failure burst
drives the error-ratio alert, and an idle service fires nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from tests.monitoring.promstack import RULES_DIR, Stack, finite, wait_for
from tests.monitoring.traffic import Driver

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
    assert len(alert_names()) == 16


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


def test_recorded_golden_signals_match_the_traffic(stack: Stack, traffic: Driver) -> None:
    """Values that the traffic fixes exactly: error ratio 2/40 in the second phase, and so on."""
    p = stack.prom
    err = p.value("job:cugar_executions:error_ratio_rate5m")
    assert err is not None and 0.0 < err < 0.10
    # Budget: every execution reported one; exceeded ones spent their whole limit.
    util = p.value("job:cugar_budget_utilization_ratio:mean_rate5m")
    assert util is not None and 0.1 <= util <= 1.0
    # The 1.5 s executions are the slowest: p99 lies in the bucket that holds them.
    p99 = p.value("job:cugar_execution_duration_seconds:p99_rate5m")
    assert p99 is not None and 1.0 < p99 <= 2.5


def test_failure_burst_drives_the_error_ratio_alert(stack: Stack, traffic: Driver) -> None:
    """2 failures in 40 do not alert; a burst of 30 failures makes HighErrorRate pend or fire."""
    names = {a["labels"]["alertname"] for a in stack.prom.alerts()}
    assert "HighErrorRate" not in names
    sent = time.time()
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
    assert time.time() - sent < 30
