"""Client and AsyncClient against a real server: exact counts, readable violations."""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Any

import grpc
import pytest

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar_metrics_client import (
    Approval,
    AsyncClient,
    Budget,
    Client,
    CugarMetricsError,
    Execution,
    FieldViolation,
    InvalidExecutionError,
    InvalidRequestError,
    RecordResult,
    ToolCall,
)


def scenario_execution(execution_id: str, profile: str = "sales_rep") -> Execution:
    return Execution(
        execution_id=execution_id,
        profile=profile,
        outcome="success",
        duration=1.5,
        steps=3,
        budget=Budget(spent=2, limit=10),
        tool_calls=[
            ToolCall("search_accounts", "territory", duration=0.2),
            ToolCall("score_lead", "qualification", "error", 0.1, "timeout"),
        ],
        approvals=[Approval("approved", wait=30, operation="execute")],
    )


def metric_lines(url: str, prefix: str) -> list[str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text: str = response.read().decode()
    return sorted(line for line in text.splitlines() if line.startswith(prefix))


def test_record_is_counted_once_and_a_resend_is_a_duplicate(server: Any) -> None:
    """The same execution sent twice is accepted, then acknowledged as a duplicate."""
    with Client(server.target) as client:
        execution = scenario_execution("dup-1")
        assert client.record(execution) is RecordResult.ACCEPTED
        assert client.record(execution) is RecordResult.DUPLICATE
        dashboard = client.get_dashboard(profile="sales_rep")
    assert (dashboard.executions.total, dashboard.executions.succeeded) == (1, 1)
    assert dashboard.executions.total_steps == 3
    assert (dashboard.ingest.accepted, dashboard.ingest.duplicate) == (1, 1)
    assert [(t.domain, t.tool, t.calls, t.errors) for t in dashboard.tools] == [
        ("qualification", "score_lead", 1, 1),
        ("territory", "search_accounts", 1, 0),
    ]
    assert metric_lines(server.metrics_url, "cugar_executions_total{") == [
        'cugar_executions_total{error_type="",outcome="success",profile="sales_rep"} 1.0'
    ]


def test_epoch_duration_raises_invalid_execution_with_readable_violation(server: Any) -> None:
    """An epoch timestamp sent as a duration is rejected; the violation names the field."""
    with Client(server.target) as client:
        with pytest.raises(InvalidExecutionError) as caught:
            client.record(Execution("sales_rep", "success", 1700000000, execution_id="bad-1"))
        dashboard = client.get_dashboard()
    error = caught.value
    assert isinstance(error, CugarMetricsError)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [(v.field, v.reason) for v in error.violations] == [
        ("execution.duration", "OUT_OF_RANGE")
    ]
    assert "epoch timestamp" in error.violations[0].description
    assert (dashboard.executions.total, dashboard.ingest.rejected) == (0, 1)


def test_every_violation_of_an_execution_is_listed(server: Any) -> None:
    """Several wrong fields give one violation each, with the path from the request root."""
    bad = Execution(
        execution_id="bad-2",
        profile="",
        outcome="failure",
        duration=1.0,
        tool_calls=[ToolCall("search_accounts", "9territory", duration=0.1)],
    )
    with Client(server.target) as client, pytest.raises(InvalidExecutionError) as caught:
        client.record(bad)
    assert [(v.field, v.reason) for v in caught.value.violations] == [
        ("execution.profile", "REQUIRED"),
        ("execution.error_type", "REQUIRED"),
        ("execution.tool_calls[0].domain", "INVALID_NAME"),
    ]


def test_record_batch_reports_each_item(server: Any) -> None:
    """One invalid item of a batch is reported by index and path; the others are recorded."""
    with Client(server.target) as client:
        result = client.record_batch(
            [
                Execution("p1", "failure", 2.0, error_type="ToolError", execution_id="b1"),
                Execution("", "success", 1.0, execution_id="b2"),
                Execution("p1", "success", 0.5, execution_id="b3"),
                Execution("p1", "success", 0.5, execution_id="b3"),
            ]
        )
        dashboard = client.get_dashboard(profile="p1")
    assert (result.accepted, result.duplicate, result.rejected) == (2, 1, 1)
    assert result.results == (
        RecordResult.ACCEPTED,
        RecordResult.REJECTED,
        RecordResult.ACCEPTED,
        RecordResult.DUPLICATE,
    )
    assert len(result.rejected_items) == 1
    item = result.rejected_items[0]
    assert (item.index, item.execution_id) == (1, "b2")
    assert [(v.field, v.reason) for v in item.violations] == [("executions[1].profile", "REQUIRED")]
    assert (dashboard.executions.total, dashboard.executions.failed) == (2, 1)


def test_record_batch_splits_past_the_maximum_and_keeps_indexes(server: Any) -> None:
    """1001 executions go in two calls; the item at 1000 keeps its index and path."""
    executions = [Execution("p2", "success", 0.1, execution_id=f"s-{i}") for i in range(1000)]
    executions.append(Execution("p2", "success", -1.0, execution_id="s-1000"))
    with Client(server.target) as client:
        result = client.record_batch(executions)
        assert client.record_batch([]).results == ()
        dashboard = client.get_dashboard(profile="p2")
    assert (result.accepted, result.duplicate, result.rejected) == (1000, 0, 1)
    assert len(result.results) == 1001
    item = result.rejected_items[0]
    assert (item.index, item.execution_id) == (1000, "s-1000")
    assert [v.field for v in item.violations] == ["executions[1000].duration"]
    assert dashboard.executions.total == 1000


def test_dashboard_of_an_idle_replica_has_absent_rates(server: Any) -> None:
    """With no data, rates are unset (absent), never 0; the scope says it is one replica."""
    with Client(server.target) as client:
        dashboard = client.get_dashboard(window=300)
    signals = dashboard.golden_signals
    for name in ("success_rate", "error_rate", "tool_error_rate", "throughput_per_second"):
        assert not signals.HasField(name), name
    assert not signals.HasField("latency_p95")
    assert dashboard.executions.total == 0
    assert dashboard.scope == pb.DASHBOARD_SCOPE_REPLICA
    assert dashboard.replica == "test-replica"


def test_invalid_dashboard_window_raises_invalid_request(server: Any) -> None:
    """A window under a minute is INVALID_ARGUMENT with a violation on `window`."""
    with Client(server.target) as client, pytest.raises(InvalidRequestError) as caught:
        client.get_dashboard(window=5)
    assert not isinstance(caught.value, InvalidExecutionError)
    assert [(v.field, v.reason) for v in caught.value.violations] == [("window", "OUT_OF_RANGE")]


def test_unreachable_server_raises_unavailable(unreachable_target: str) -> None:
    """After its retries, a call to nobody raises CugarMetricsError with code UNAVAILABLE."""
    client = Client(unreachable_target, timeout=3.0)
    with client, pytest.raises(CugarMetricsError) as caught:
        client.record(Execution("p", "success", 1.0))
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


def test_protobuf_executions_are_accepted_as_they_are(server: Any) -> None:
    """The record methods take the generated message as well as the dataclass."""
    message = scenario_execution("pb-1").to_proto()
    with Client(server.target) as client:
        assert client.record(message) is RecordResult.ACCEPTED
        assert client.record_batch([message]).results == (RecordResult.DUPLICATE,)


def test_async_client_records_and_reads(server: Any) -> None:
    """AsyncClient: the same results, errors and run() as the blocking client."""

    class QuotaExceeded(Exception):
        pass

    async def scenario() -> tuple[Any, ...]:
        async with AsyncClient(server.target) as client:
            first = await client.record(scenario_execution("async-1", "async_p"))
            again = await client.record(scenario_execution("async-1", "async_p"))
            with pytest.raises(InvalidExecutionError) as caught:
                await client.record(Execution("async_p", "success", 1e9, execution_id="x"))
            batch = await client.record_batch(
                [Execution("async_p", "success", 0.5), Execution("async_p", "success", 0.5)]
            )
            with pytest.raises(QuotaExceeded):
                async with client.run("async_p") as run:
                    run.step(2)
                    raise QuotaExceeded

            @client.track("async_p")
            async def tracked(x: int) -> int:
                return x * 2

            doubled = await tracked(21)
            dashboard = await client.get_dashboard(profile="async_p")
            return first, again, caught.value.violations, batch.accepted, run, doubled, dashboard

    first, again, violations, accepted, run, doubled, dashboard = asyncio.run(scenario())
    assert (first, again, accepted, doubled) == (
        RecordResult.ACCEPTED,
        RecordResult.DUPLICATE,
        2,
        42,
    )
    assert [v.field for v in violations] == ["execution.duration"]
    assert isinstance(violations[0], FieldViolation)
    assert run.result is RecordResult.ACCEPTED
    assert (run.execution.outcome, run.execution.error_type) == ("failure", "QuotaExceeded")
    counts = dashboard.executions
    assert (counts.total, counts.succeeded, counts.failed) == (5, 4, 1)
    assert [(e.error_type, e.count) for e in dashboard.error_types] == [("QuotaExceeded", 1)]
