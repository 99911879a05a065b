"""run()/track(): measured with a monotonic clock, recorded even when the body raises."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from cugar_metrics_client import (
    Client,
    CugarMetricsError,
    Outcome,
    RecordResult,
    ToolStatus,
    current_run,
)


class CrmUnavailable(Exception):
    """An error an agent's tool might raise."""


def test_run_records_success_with_everything_the_body_added(server: Any) -> None:
    """Tool calls, approvals, budget and steps added in the block are recorded."""
    with Client(server.target) as client:
        with client.run("sales_rep", trace_id="trace-1") as run:
            with run.tool("search_accounts", "territory"):
                run.step()
            run.tool_call(
                "score_lead", "qualification", status="error", duration=0.1, error_type="timeout"
            )
            run.skip_tool("send_email", "engagement", reason="approval_denied")
            run.approval("denied", wait=12.5, operation="execute")
            run.set_budget(spent=4.0, limit=5.0)
            run.step(2)
        dashboard = client.get_dashboard(profile="sales_rep")
    assert run.result is RecordResult.ACCEPTED
    execution = run.execution
    assert execution is not None
    assert (execution.outcome, execution.error_type, execution.steps) == (Outcome.SUCCESS, "", 3)
    assert [(c.tool, c.status) for c in execution.tool_calls] == [
        ("search_accounts", ToolStatus.SUCCESS),
        ("score_lead", "error"),
        ("send_email", ToolStatus.SKIPPED),
    ]
    assert dashboard.executions.total == 1
    assert dashboard.budget.spent == 4.0
    assert [(d.domain, d.calls, d.errors, d.skipped) for d in dashboard.domains] == [
        ("engagement", 1, 0, 1),
        ("qualification", 1, 1, 0),
        ("territory", 1, 0, 0),
    ]
    assert [(a.decision, a.count) for a in dashboard.approvals.by_decision] == [
        (1, 0),
        (2, 1),
        (3, 0),
        (4, 0),
    ]


def test_run_records_a_failure_with_the_exception_class_name_and_reraises(server: Any) -> None:
    """The body's exception propagates; the execution is a failure of its class name."""
    with Client(server.target) as client:
        with (
            pytest.raises(CrmUnavailable, match="crm down"),
            client.run("sales_rep") as run,
            run.tool("search_accounts", "territory"),
        ):
            raise CrmUnavailable("crm down")
        dashboard = client.get_dashboard(profile="sales_rep")
    assert run.result is RecordResult.ACCEPTED
    assert run.execution is not None
    assert (run.execution.outcome, run.execution.error_type) == ("failure", "CrmUnavailable")
    assert [(c.status, c.error_type) for c in run.execution.tool_calls] == [
        ("error", "CrmUnavailable")
    ]
    assert (dashboard.executions.total, dashboard.executions.failed) == (1, 1)
    assert [(e.error_type, e.count) for e in dashboard.error_types] == [("CrmUnavailable", 1)]
    assert [(t.tool, t.errors) for t in dashboard.tools] == [("search_accounts", 1)]


def test_fail_marks_a_failure_without_an_exception(server: Any) -> None:
    """run.fail(error_type) records a failure while the body returns normally."""
    with Client(server.target) as client, client.run("sales_rep") as run:
        run.fail("NoQualifiedLeads")
    assert run.execution is not None
    assert (run.execution.outcome, run.execution.error_type) == ("failure", "NoQualifiedLeads")
    assert run.result is RecordResult.ACCEPTED


def test_duration_comes_from_the_monotonic_clock(server: Any, monkeypatch: Any) -> None:
    """A wall clock reading never becomes the duration (predecessor defect 1)."""
    with Client(server.target) as client, client.run("sales_rep") as run:
        monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0)
        time.sleep(0.05)
        monkeypatch.undo()
    assert run.execution is not None
    assert isinstance(run.execution.duration, float)
    # At least the 0.05 s slept; nowhere near the 1.7e9 s a wall clock reading would give
    # (the bound is not a speed limit: a loaded machine stays far below it).
    assert 0.05 <= run.execution.duration < 3600
    assert run.result is RecordResult.ACCEPTED


def test_track_decorates_functions_with_one_execution_per_call(server: Any) -> None:
    """Each call of a tracked function is one execution; current_run() reaches it."""
    with Client(server.target) as client:

        @client.track("sales_manager")
        def forecast(region: str) -> str:
            run = current_run()
            assert run is not None
            run.tool_call("pipeline_report", "intelligence", duration=0.4)
            if region == "nowhere":
                raise LookupError(region)
            return f"forecast for {region}"

        assert forecast("emea") == "forecast for emea"
        assert forecast("apac") == "forecast for apac"
        with pytest.raises(LookupError):
            forecast("nowhere")
        assert current_run() is None
        dashboard = client.get_dashboard(profile="sales_manager")
    counts = dashboard.executions
    assert (counts.total, counts.succeeded, counts.failed) == (3, 2, 1)
    assert [(e.error_type, e.count) for e in dashboard.error_types] == [("LookupError", 1)]
    assert [(t.tool, t.calls) for t in dashboard.tools] == [("pipeline_report", 3)]


def test_a_failure_to_record_never_breaks_the_agent(unreachable_target: str, caplog: Any) -> None:
    """With no server, the block still completes (or re-raises its own error) and logs."""
    caplog.set_level(logging.WARNING, logger="cugar_metrics_client")
    with Client(unreachable_target, timeout=0.5) as client:
        with client.run("sales_rep") as run:
            pass
        assert run.result is None
        with pytest.raises(KeyError), client.run("sales_rep") as failed:
            raise KeyError("own error")
    assert run.execution is not None and failed.execution is not None
    logged = [(r.name, r.levelno, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert logged == [
        (
            "cugar_metrics_client",
            logging.WARNING,
            f"cugar-metrics: could not record execution {e.execution_id}",
            True,
        )
        for e in (run.execution, failed.execution)
    ]
    # With the traceback of the client's error (UNAVAILABLE or, within 0.5 s, DEADLINE_EXCEEDED).
    assert all(isinstance(r.exc_info[1], CugarMetricsError) for r in caplog.records if r.exc_info)
