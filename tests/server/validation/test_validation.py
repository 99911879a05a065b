"""Validation: every field checked, each violation names its field and reason."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar_metrics.validation import Limits, validate_execution
from tests.conftest import dur, pb_execution

NOW = 1_800_000_000.0


def violations(message: pb.Execution, path: str = "execution") -> list[tuple[str, str]]:
    result, found = validate_execution(message, path, Limits(), NOW)
    assert (result is None) == bool(found)
    return [(v.field, v.reason) for v in found]


def test_a_valid_execution_converts_to_the_domain_model() -> None:
    result, found = validate_execution(pb_execution("ok-1"), "execution", Limits(), NOW)
    assert found == []
    assert result is not None
    assert (result.execution_id, result.profile, result.outcome, result.duration) == (
        "ok-1",
        "sales_rep",
        "success",
        1.5,
    )
    assert [(t.tool, t.domain, t.status, t.duration) for t in result.tool_calls] == [
        ("search_accounts", "territory", "success", 0.2),
        ("score_lead", "qualification", "error", 0.1),
    ]
    assert [(a.decision, a.wait, a.operation) for a in result.approvals] == [
        ("approved", 30.0, "execute")
    ]


def _bad_tool(**kw: Any) -> list[pb.ToolCall]:
    fields: dict[str, Any] = {
        "tool": "t",
        "domain": "territory",
        "status": pb.TOOL_CALL_STATUS_SUCCESS,
        "duration": dur(0.1),
    }
    fields.update(kw)
    return [pb.ToolCall(**{k: v for k, v in fields.items() if v is not None})]


def _bad_approval(**kw: Any) -> list[pb.Approval]:
    fields: dict[str, Any] = {
        "decision": pb.APPROVAL_DECISION_DENIED,
        "wait": dur(5),
        "operation": pb.APPROVAL_OPERATION_PROPOSE,
    }
    fields.update(kw)
    return [pb.Approval(**{k: v for k, v in fields.items() if v is not None})]


CASES: list[tuple[str, dict[str, Any], tuple[str, str]]] = [
    ("missing id", {"execution_id": ""}, ("execution.execution_id", "REQUIRED")),
    ("id with a space", {"execution_id": "a b"}, ("execution.execution_id", "INVALID_NAME")),
    ("id too long", {"execution_id": "x" * 129}, ("execution.execution_id", "INVALID_NAME")),
    ("bad trace id", {"trace_id": "no/slash"}, ("execution.trace_id", "INVALID_NAME")),
    ("missing profile", {"profile": ""}, ("execution.profile", "REQUIRED")),
    ("profile with a quote", {"profile": 'we"ird'}, ("execution.profile", "INVALID_NAME")),
    ("profile starting with a digit", {"profile": "1x"}, ("execution.profile", "INVALID_NAME")),
    ("profile too long", {"profile": "p" * 65}, ("execution.profile", "INVALID_NAME")),
    ("outcome unspecified", {"outcome": pb.OUTCOME_UNSPECIFIED}, ("execution.outcome", "REQUIRED")),
    ("outcome unknown", {"outcome": 9}, ("execution.outcome", "INVALID_ENUM")),
    (
        "failure without error type",
        {"outcome": pb.OUTCOME_FAILURE},
        ("execution.error_type", "REQUIRED"),
    ),
    (
        "success with error type",
        {"error_type": "timeout"},
        ("execution.error_type", "INCONSISTENT"),
    ),
    ("missing duration", {"duration": None}, ("execution.duration", "REQUIRED")),
    (
        "negative duration",
        {"duration": duration_pb2.Duration(seconds=-1)},
        ("execution.duration", "OUT_OF_RANGE"),
    ),
    (
        "epoch milliseconds as duration",
        {"duration": duration_pb2.Duration(seconds=1_700_000_000)},
        ("execution.duration", "OUT_OF_RANGE"),
    ),
    (
        "just over 24 h",
        {"duration": duration_pb2.Duration(seconds=86_401)},
        ("execution.duration", "OUT_OF_RANGE"),
    ),
    (
        "mixed-sign duration",
        {"duration": duration_pb2.Duration(seconds=1, nanos=-5)},
        ("execution.duration", "OUT_OF_RANGE"),
    ),
    (
        "start time in the future",
        {"start_time": timestamp_pb2.Timestamp(seconds=int(NOW) + 3600)},
        ("execution.start_time", "OUT_OF_RANGE"),
    ),
    ("too many steps", {"steps": 100_001}, ("execution.steps", "OUT_OF_RANGE")),
    (
        "negative spend",
        {"budget": pb.Budget(spent=-1, limit=10)},
        ("execution.budget.spent", "OUT_OF_RANGE"),
    ),
    (
        "NaN spend",
        {"budget": pb.Budget(spent=float("nan"), limit=10)},
        ("execution.budget.spent", "OUT_OF_RANGE"),
    ),
    (
        "zero limit",
        {"budget": pb.Budget(spent=1, limit=0)},
        ("execution.budget.limit", "OUT_OF_RANGE"),
    ),
    (
        "tool missing name",
        {"tool_calls": _bad_tool(tool="")},
        ("execution.tool_calls[0].tool", "REQUIRED"),
    ),
    (
        "tool bad domain",
        {"tool_calls": _bad_tool(domain="ter ritory")},
        ("execution.tool_calls[0].domain", "INVALID_NAME"),
    ),
    (
        "tool status unspecified",
        {"tool_calls": _bad_tool(status=0)},
        ("execution.tool_calls[0].status", "REQUIRED"),
    ),
    (
        "tool missing duration",
        {"tool_calls": _bad_tool(duration=None)},
        ("execution.tool_calls[0].duration", "REQUIRED"),
    ),
    (
        "tool epoch duration",
        {"tool_calls": _bad_tool(duration=dur(1.7e9))},
        ("execution.tool_calls[0].duration", "OUT_OF_RANGE"),
    ),
    (
        "tool success with error type",
        {"tool_calls": _bad_tool(error_type="x")},
        ("execution.tool_calls[0].error_type", "INCONSISTENT"),
    ),
    (
        "too many tool calls",
        {"tool_calls": _bad_tool() * 1001},
        ("execution.tool_calls", "TOO_MANY"),
    ),
    (
        "approval decision unspecified",
        {"approvals": _bad_approval(decision=0)},
        ("execution.approvals[0].decision", "REQUIRED"),
    ),
    (
        "approval operation unknown",
        {"approvals": _bad_approval(operation=7)},
        ("execution.approvals[0].operation", "INVALID_ENUM"),
    ),
    (
        "approval missing wait",
        {"approvals": _bad_approval(wait=None)},
        ("execution.approvals[0].wait", "REQUIRED"),
    ),
    (
        "approval wait in milliseconds of a day",
        {"approvals": _bad_approval(wait=dur(86_400_000))},
        ("execution.approvals[0].wait", "OUT_OF_RANGE"),
    ),
    (
        "too many approvals",
        {"approvals": _bad_approval() * 101},
        ("execution.approvals", "TOO_MANY"),
    ),
]


@pytest.mark.parametrize(
    ("overrides", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_invalid_field_is_reported_with_its_path_and_reason(
    overrides: dict[str, Any], expected: tuple[str, str]
) -> None:
    message = pb_execution(**{"execution_id": "v-1", **overrides})
    assert violations(message) == [expected]


def test_all_violations_are_reported_not_only_the_first() -> None:
    message = pb_execution("", profile="", outcome=0, duration=None)
    assert violations(message, "executions[3]") == [
        ("executions[3].execution_id", "REQUIRED"),
        ("executions[3].profile", "REQUIRED"),
        ("executions[3].outcome", "REQUIRED"),
        ("executions[3].duration", "REQUIRED"),
    ]


def test_epoch_timestamp_violation_says_what_to_send() -> None:
    message = pb_execution("v", duration=duration_pb2.Duration(seconds=1_700_000_000))
    _, found = validate_execution(message, "execution", Limits(), NOW)
    assert "epoch timestamp" in found[0].description
    assert "86400s" in found[0].description


def test_the_maximum_duration_is_configurable() -> None:
    message = pb_execution("v", duration=dur(7200))
    assert (
        validate_execution(message, "execution", Limits(max_duration=3600), NOW)[1][0].field
        == "execution.duration"
    )
    assert validate_execution(message, "execution", Limits(), NOW)[1] == []
