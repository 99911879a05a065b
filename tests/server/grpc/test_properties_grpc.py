"""Property tests over the wire: every generated request is either recorded whole or rejected
with field violations, never INTERNAL, never partly recorded."""

from __future__ import annotations

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar_metrics.aggregator import Snapshot
from cugar_metrics_client._errors import violations_of
from tests.conftest import ServerHandle
from tests.server.validation.test_validation_properties import executions

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def recorded(s: Snapshot) -> tuple[int, int, int, int]:
    """What recording changes: executions, tool calls, approvals, budgets reported."""
    return (
        sum(s.executions.values()),
        sum(s.tool_calls.values()),
        sum(d.count for d in s.approvals.values()),
        sum(d.count for d in s.budget_utilization.values()),
    )


def expected_delta(m: pb.Execution) -> tuple[int, int, int, int]:
    return (1, len(m.tool_calls), len(m.approvals), 1 if m.HasField("budget") else 0)


def violations(error: grpc.RpcError) -> list[str]:
    return [v.field for v in violations_of(error)]


@SETTINGS
@given(message=executions())
def test_each_execution_is_recorded_whole_or_rejected_with_violations(
    server: ServerHandle, message: pb.Execution
) -> None:
    aggregator = server.running.aggregator
    before = recorded(aggregator.snapshot(0))
    try:
        response = server.stub.RecordExecution(
            pb.RecordExecutionRequest(execution=message), timeout=10
        )
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
        fields = violations(error)
        assert fields and all(f.startswith("execution.") for f in fields)
        assert recorded(aggregator.snapshot(0)) == before
        return
    after = recorded(aggregator.snapshot(0))
    if response.result == pb.RECORD_RESULT_ACCEPTED:
        assert tuple(a - b for a, b in zip(after, before, strict=True)) == expected_delta(message)
    else:
        assert response.result == pb.RECORD_RESULT_DUPLICATE
        assert after == before


@SETTINGS
@given(batch=st.lists(executions(), min_size=1, max_size=8))
def test_each_batch_item_is_recorded_whole_or_reported(
    server: ServerHandle, batch: list[pb.Execution]
) -> None:
    aggregator = server.running.aggregator
    before = recorded(aggregator.snapshot(0))
    response = server.stub.RecordExecutions(
        pb.RecordExecutionsRequest(executions=batch), timeout=10
    )
    results = list(response.results)
    assert len(results) == len(batch)
    assert results.count(pb.RECORD_RESULT_ACCEPTED) == response.accepted_count
    assert results.count(pb.RECORD_RESULT_DUPLICATE) == response.duplicate_count
    assert results.count(pb.RECORD_RESULT_REJECTED) == response.rejected_count
    assert [r.index for r in response.rejected_executions] == [
        i for i, r in enumerate(results) if r == pb.RECORD_RESULT_REJECTED
    ]
    for rejected in response.rejected_executions:
        assert rejected.field_violations
        assert all(
            v.field.startswith(f"executions[{rejected.index}].") for v in rejected.field_violations
        )
    delta = [0, 0, 0, 0]
    for item, result in zip(batch, results, strict=True):
        if result == pb.RECORD_RESULT_ACCEPTED:
            delta = [d + e for d, e in zip(delta, expected_delta(item), strict=True)]
    after = recorded(aggregator.snapshot(0))
    assert tuple(a - b for a, b in zip(after, before, strict=True)) == tuple(delta)
