"""The dataclasses convert to exactly the protobuf messages of the contract (no server)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar_metrics_client import (
    Approval,
    Budget,
    Execution,
    ToolCall,
    ToolStatus,
    error_type_of,
    new_execution_id,
)


def test_execution_converts_every_field() -> None:
    """Each field of the dataclass lands in its protobuf field, durations to the nanosecond."""
    start = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
    message = Execution(
        execution_id="e-1",
        trace_id="t-1",
        profile="sales_rep",
        outcome="failure",
        error_type="ToolError",
        duration=1.5,
        steps=3,
        start_time=start,
        budget=Budget(spent=2, limit=10, exceeded=True),
        tool_calls=[
            ToolCall("search_accounts", "territory", duration=0.2),
            ToolCall("score_lead", "qualification", ToolStatus.ERROR, 0.1, "timeout"),
            ToolCall("send_email", "engagement", "skipped", error_type="budget"),
        ],
        approvals=[Approval("timeout", wait=timedelta(minutes=15), operation="propose")],
    ).to_proto()
    expected = pb.Execution(
        execution_id="e-1",
        trace_id="t-1",
        profile="sales_rep",
        outcome=pb.OUTCOME_FAILURE,
        error_type="ToolError",
        duration={"seconds": 1, "nanos": 500_000_000},
        steps=3,
        start_time={"seconds": int(start.timestamp()), "nanos": 600_000_000},
        budget=pb.Budget(spent=2, limit=10, exceeded=True),
        tool_calls=[
            pb.ToolCall(
                tool="search_accounts",
                domain="territory",
                status=pb.TOOL_CALL_STATUS_SUCCESS,
                duration={"nanos": 200_000_000},
            ),
            pb.ToolCall(
                tool="score_lead",
                domain="qualification",
                status=pb.TOOL_CALL_STATUS_ERROR,
                duration={"nanos": 100_000_000},
                error_type="timeout",
            ),
            pb.ToolCall(
                tool="send_email",
                domain="engagement",
                status=pb.TOOL_CALL_STATUS_SKIPPED,
                duration={},
                error_type="budget",
            ),
        ],
        approvals=[
            pb.Approval(
                decision=pb.APPROVAL_DECISION_TIMEOUT,
                wait={"seconds": 900},
                operation=pb.APPROVAL_OPERATION_PROPOSE,
            )
        ],
    )
    assert message == expected


@pytest.mark.parametrize(
    ("value", "seconds", "nanos"),
    [
        (0, 0, 0),
        (1.5, 1, 500_000_000),
        (0.000000001, 0, 1),
        (1700000000, 1700000000, 0),
        (-0.25, 0, -250_000_000),
        (0.9999999999999, 1, 0),
        (timedelta(seconds=30), 30, 0),
        (timedelta(milliseconds=1500), 1, 500_000_000),
        (timedelta(seconds=-1.5), -1, -500_000_000),
    ],
)
def test_durations_are_exact(value: float | timedelta, seconds: int, nanos: int) -> None:
    """Seconds floats and timedeltas become Durations with the same sign on both parts."""
    duration = Execution("p", "success", value).to_proto().duration
    assert (duration.seconds, duration.nanos) == (seconds, nanos)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e12])
def test_unrepresentable_durations_raise_value_error(value: float) -> None:
    """NaN, infinities and values beyond Duration's range never reach the wire."""
    with pytest.raises(ValueError, match="duration must be a finite number of seconds"):
        Execution("p", "success", value).to_proto()


def test_unknown_enum_names_raise_value_error() -> None:
    """A misspelt outcome names the valid ones instead of sending OUTCOME_UNSPECIFIED."""
    with pytest.raises(ValueError, match="unknown outcome 'succes'; expected one of failure, "):
        Execution("p", "succes", 1.0).to_proto()
    with pytest.raises(ValueError, match="unknown tool call status 'ok'"):
        Execution("p", "success", 1.0, tool_calls=[ToolCall("t", "d", "ok")]).to_proto()


def test_execution_ids_are_unique_uuids() -> None:
    """Every execution gets its own id (the predecessor reused one trace id for every run)."""
    ids = {Execution("p", "success", 1.0).execution_id for _ in range(1000)}
    assert len(ids) == 1000
    assert len(new_execution_id()) == 36


def test_error_type_of_is_a_valid_label_name() -> None:
    """Exception class names become names matching ^[A-Za-z][A-Za-z0-9_.:-]{0,63}$."""

    class _PrivateError(Exception):
        pass

    long_name = type("E" * 80, (Exception,), {})
    assert error_type_of(ValueError("x")) == "ValueError"
    assert error_type_of(_PrivateError()) == "PrivateError"
    assert error_type_of(long_name()) == "E" * 64
