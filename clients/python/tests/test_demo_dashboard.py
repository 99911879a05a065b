"""`cugar-metrics demo` and `cugar-metrics dashboard`, through their run() functions."""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from typing import Any

import pytest

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar_metrics import dashboard_view, demo
from cugar_metrics_client import Client, Execution, ToolCall

DOMAINS = ["engagement", "governance", "intelligence", "knowledge", "qualification", "territory"]


def parse(module: Any, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(argv)


def seeded_run(seed: int, count: int) -> tuple[list[Execution], int, int]:
    """What `demo --seed SEED --count COUNT` sends, drawn again from the same simulator and
    generator in the same order: the executions the server accepts, the simulated retries
    (duplicates) and the clock-as-duration bugs (rejected)."""
    rng = random.Random(seed)
    simulator = demo.Simulator(rng)
    accepted: list[Execution] = []
    duplicates = rejected = 0
    for sent in range(count):
        execution = simulator.execution()
        buggy = sent % demo.BUGGY_EVERY == demo.BUGGY_EVERY // 10
        if buggy:
            rng.random()  # the demo draws the bogus duration from the same generator
        retried = sent % demo.DUPLICATE_EVERY == demo.DUPLICATE_EVERY // 10
        if buggy:
            rejected += 2 if retried else 1
            continue
        accepted.append(execution)
        duplicates += retried
    return accepted, duplicates, rejected


def test_demo_sends_exactly_the_seeded_run(server: Any, capsys: Any) -> None:
    """`demo --seed 7 --count 300`: the server counts exactly the executions the seeded
    simulation draws, by profile, domain, approval decision, budget and error type."""
    args = parse(
        demo, ["--target", server.target, "--rate", "5000", "--count", "300", "--seed", "7"]
    )
    assert demo.run(args) == 0
    with Client(server.target) as client:
        d = client.get_dashboard()
    accepted, duplicates, rejected = seeded_run(7, 300)
    assert (d.ingest.accepted, d.ingest.duplicate, d.ingest.rejected) == (
        len(accepted),
        duplicates,
        rejected,
    )
    assert (len(accepted), duplicates, rejected) == (299, 2, 1)  # the 50th; the 25th, 275th
    failed = [e for e in accepted if e.outcome == "failure"]
    assert (d.executions.total, d.executions.failed) == (len(accepted), len(failed))
    assert d.executions.total_steps == sum(e.steps for e in accepted)

    profiles = Counter(e.profile for e in accepted)
    profile_failures = Counter(e.profile for e in failed)
    assert [(p.profile, p.total, p.failed) for p in d.profiles] == [
        (name, profiles[name], profile_failures[name]) for name in sorted(profiles)
    ]
    assert len(profiles) == 3

    calls = [c for e in accepted for c in e.tool_calls]
    by_domain = {
        domain: [c for c in calls if c.domain == domain] for domain in {c.domain for c in calls}
    }
    assert [(x.domain, x.calls, x.errors, x.skipped) for x in d.domains] == [
        (
            domain,
            len(by_domain[domain]),
            sum(c.status == "error" for c in by_domain[domain]),
            sum(c.status == "skipped" for c in by_domain[domain]),
        )
        for domain in DOMAINS
    ]
    decisions = Counter(str(a.decision) for e in accepted for a in e.approvals)
    assert [(a.decision, a.count) for a in d.approvals.by_decision] == [
        (pb.APPROVAL_DECISION_APPROVED, decisions["approved"]),
        (pb.APPROVAL_DECISION_DENIED, decisions["denied"]),
        (pb.APPROVAL_DECISION_TIMEOUT, decisions["timeout"]),
        (pb.APPROVAL_DECISION_CANCELLED, decisions["cancelled"]),
    ]
    assert all(count > 0 for count in decisions.values()) and len(decisions) == 4
    exceeded = sum(1 for e in accepted if e.budget is not None and e.budget.exceeded)
    assert d.budget.exceeded_count == exceeded > 0
    errors = Counter(e.error_type for e in failed)
    assert sorted((x.error_type, x.count) for x in d.error_types) == sorted(errors.items())

    model_calls = [c for e in accepted for c in e.model_calls]
    want_models = {}
    for provider, model in {(c.provider, c.model) for c in model_calls}:
        mine = [c for c in model_calls if (c.provider, c.model) == (provider, model)]
        want_models[(provider, model)] = (
            len(mine),
            sum(c.status == "error" for c in mine),
            sum(c.status == "rate_limited" for c in mine),
            sum(c.input_tokens for c in mine),
            sum(c.output_tokens for c in mine),
            sum(c.cached_input_tokens or 0 for c in mine),
            sum(c.reasoning_tokens or 0 for c in mine),
        )
    got_models = {
        (m.provider, m.model): (
            m.calls,
            m.errors,
            m.rate_limited,
            m.input_tokens,
            m.output_tokens,
            m.cached_input_tokens,
            m.reasoning_tokens,
        )
        for m in d.models
    }
    assert got_models == want_models
    assert len(want_models) == 3
    assert sum(row[2] for row in want_models.values()) > 0  # some calls were rate-limited
    cost = {(m.provider, m.model): m.cost for m in d.models}
    for key in want_models:
        want_cost = sum(c.cost or 0.0 for c in model_calls if (c.provider, c.model) == key)
        assert cost[key] == pytest.approx(want_cost, rel=1e-9)

    out = capsys.readouterr()
    assert "demo: 300 executions" in out.out
    assert f"accepted {len(accepted)}, duplicate {duplicates}" in out.out
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


def test_dashboard_model_filter(server: Any, capsys: Any) -> None:
    """--model limits the Models table to one model, and the header says so."""
    with Client(server.target) as client, client.run("sales_rep") as run:
        for model in ("gpt-4o", "gpt-4o-mini"):
            with run.model_call("openai", model) as call:
                call.usage(100, 10)
    args = parse(dashboard_view, ["--target", server.target, "--model", "gpt-4o-mini", "--json"])
    assert dashboard_view.run(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(m["model"], m["calls"]) for m in data["models"]] == [("gpt-4o-mini", 1)]
    args = parse(dashboard_view, ["--target", server.target, "--model", "gpt-4o"])
    assert dashboard_view.run(args) == 0
    out = capsys.readouterr().out
    assert "model=gpt-4o" in out
    assert "gpt-4o-mini" not in out


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
