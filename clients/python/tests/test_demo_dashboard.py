"""`cugar-metrics demo` and `cugar-metrics dashboard`, through their run() functions."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar_metrics import dashboard_view, demo
from cugar_metrics_client import Client, Execution, ToolCall

DOMAINS = ["engagement", "governance", "intelligence", "knowledge", "qualification", "territory"]


def parse(module: Any, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(argv)


def test_demo_sends_every_kind_of_data(server: Any, capsys: Any) -> None:
    """300 simulated executions reach the server; every profile, domain and decision shows."""
    args = parse(
        demo, ["--target", server.target, "--rate", "5000", "--count", "300", "--seed", "7"]
    )
    assert demo.run(args) == 0
    with Client(server.target) as client:
        d = client.get_dashboard()
    assert (d.ingest.accepted, d.ingest.rejected) == (299, 1)
    assert d.executions.total == d.ingest.accepted
    assert (d.ingest.duplicate, d.ingest.rejected) == (2, 1)  # the 25th and 275th; the 50th
    assert [p.profile for p in d.profiles] == ["demo", "sales_manager", "sales_rep"]
    assert [x.domain for x in d.domains] == DOMAINS
    assert all(x.calls > 0 for x in d.domains)
    assert sum(x.errors for x in d.domains) > 0 and sum(x.skipped for x in d.domains) > 0
    assert all(a.count > 0 for a in d.approvals.by_decision), d.approvals
    assert d.budget.exceeded_count > 0 and d.executions.failed > 0
    out = capsys.readouterr()
    assert "demo: 300 executions" in out.out
    assert f"accepted {d.ingest.accepted}, duplicate {d.ingest.duplicate}" in out.out
    assert "dropped:    0" in out.out
    assert "sent 300" in out.err


def test_demo_reports_an_unreachable_server(unreachable_target: str, capsys: Any) -> None:
    """With no server, the demo says so and exits 1 instead of dropping silently."""
    assert demo.run(parse(demo, ["--target", unreachable_target, "--count", "5"])) == 1
    assert f"cannot reach the server at {unreachable_target}" in capsys.readouterr().err


def test_dashboard_json_is_the_response(server: Any, capsys: Any) -> None:
    """--json prints MessageToDict of GetDashboard: exact counts, absent values left out."""
    with Client(server.target) as client:
        client.record(
            Execution(
                "sales_rep",
                "success",
                2.0,
                steps=4,
                tool_calls=[ToolCall("send_email", "engagement", duration=0.5)],
            )
        )
        client.record(Execution("sales_rep", "failure", 1.0, error_type="ToolError"))
    assert dashboard_view.run(parse(dashboard_view, ["--target", server.target, "--json"])) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["executions"] == {"total": 2, "succeeded": 1, "failed": 1, "total_steps": 4}
    assert data["golden_signals"]["success_rate"] == 0.5
    assert "approval_wait_p50" not in data["golden_signals"]
    assert data["ingest"] == {"accepted": 2, "duplicate": 0, "rejected": 0}
    assert data["scope"] == "DASHBOARD_SCOPE_REPLICA"
    assert data["tools"][0]["tool"] == "send_email"


def test_dashboard_view_shows_absent_values_as_dashes(server: Any, capsys: Any) -> None:
    """An idle replica shows "—" for its rates, never 0 %, and says the numbers are its own."""
    assert dashboard_view.run(parse(dashboard_view, ["--target", server.target])) == 0
    out = capsys.readouterr().out
    assert "replica test-replica" in out
    assert "this replica's only" in out
    lines = {
        line.split()[0] + " " + line.split()[1]: line
        for line in out.splitlines()
        if line.startswith("  success rate") or line.startswith("  error rate")
    }
    assert lines["success rate"].split()[2] == "—"
    assert lines["error rate"].split()[2] == "—"
    assert "0.0 %" not in out
    assert "Executions: total 0, succeeded 0, failed 0" in out


def test_dashboard_view_renders_tables(server: Any, capsys: Any) -> None:
    """Profiles, domains, tools, error types and approvals appear with their counts."""
    with Client(server.target) as client:
        client.record(
            Execution(
                "sales_manager",
                "failure",
                90.0,
                error_type="ApprovalTimeout",
                tool_calls=[
                    ToolCall(
                        "assign_territory", "territory", "skipped", error_type="approval_timeout"
                    )
                ],
            )
        )
    args = parse(
        dashboard_view, ["--target", server.target, "--window", "5m", "--profile", "sales_manager"]
    )
    assert dashboard_view.run(args) == 0
    out = capsys.readouterr().out
    assert "profile=sales_manager domain=all" in out
    assert any(
        line.split()[:6] == ["sales_manager", "1", "0", "1", "0.0", "%"]
        and line.split()[7:] == ["0.00", "0"]
        for line in out.splitlines()
    ), out
    assert any(
        line.split()[:4] == ["territory", "/", "assign_territory", "1"] for line in out.splitlines()
    ), out
    assert any(line.split() == ["ApprovalTimeout", "1"] for line in out.splitlines()), out
    assert any(line.split() == ["timeout", "0", "—"] for line in out.splitlines()), out


def test_dashboard_rejects_a_window_below_a_minute(server: Any, capsys: Any) -> None:
    """--window 30s parses, and the server's field violation is shown with exit code 2."""
    args = parse(dashboard_view, ["--target", server.target, "--window", "30s"])
    assert args.window == 30.0
    assert dashboard_view.run(args) == 2
    assert "error: window: is 30s" in capsys.readouterr().err


def test_dashboard_window_and_watch_parse() -> None:
    """Windows like 30s, 5m and 1h parse to seconds; --watch alone means every 5 s."""
    assert parse(dashboard_view, ["--window", "1h"]).window == 3600.0
    assert parse(dashboard_view, ["--window", "5m"]).window == 300.0
    assert parse(dashboard_view, ["--watch"]).watch == 5.0
    assert parse(dashboard_view, ["--watch", "2"]).watch == 2.0
    assert parse(dashboard_view, []).window is None
    assert pb.DASHBOARD_SCOPE_REPLICA == 1
