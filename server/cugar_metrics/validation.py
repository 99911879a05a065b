"""Validation of incoming executions, and their conversion into the domain model.

Every field is checked; every violation is reported with the field's path from the request
root (`execution.tool_calls[2].duration`, `executions[4].profile`), a description that says
what a valid value looks like, and a stable UPPER_SNAKE reason whose lowercase form is the
`reason` label of cugar_ingest_rejections_total.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from google.protobuf import duration_pb2, timestamp_pb2

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar_metrics import model

#: Pattern of label-bound names: profile, domain, tool, error_type.
NAME_PATTERN: Final = r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$"
#: Pattern of execution_id (required) and trace_id (optional).
ID_PATTERN: Final = r"^[A-Za-z0-9._:-]{1,128}$"
MAX_STEPS: Final = 100_000
MAX_TOOL_CALLS: Final = 1000
MAX_APPROVALS: Final = 100
#: At most this many violations are reported per execution.
MAX_VIOLATIONS: Final = 20
#: Largest `budget.spent` and `budget.limit`, and smallest `budget.limit`, in cost units:
#: every sum and spent/limit ratio the server accumulates stays finite, so no accepted
#: execution can make a state file unrestorable.
MAX_BUDGET: Final = 1e12
MIN_BUDGET_LIMIT: Final = 1e-9
#: How far in the future of the server's clock a start_time may lie.
MAX_CLOCK_SKEW_SECONDS: Final = 300.0

_name = re.compile(NAME_PATTERN).fullmatch
_id = re.compile(ID_PATTERN).fullmatch

_OUTCOMES: Final[dict[int, model.Outcome]] = {
    pb.OUTCOME_SUCCESS: "success",
    pb.OUTCOME_FAILURE: "failure",
}
_STATUSES: Final[dict[int, model.ToolStatus]] = {
    pb.TOOL_CALL_STATUS_SUCCESS: "success",
    pb.TOOL_CALL_STATUS_ERROR: "error",
    pb.TOOL_CALL_STATUS_SKIPPED: "skipped",
}
_DECISIONS: Final[dict[int, model.Decision]] = {
    pb.APPROVAL_DECISION_APPROVED: "approved",
    pb.APPROVAL_DECISION_DENIED: "denied",
    pb.APPROVAL_DECISION_TIMEOUT: "timeout",
    pb.APPROVAL_DECISION_CANCELLED: "cancelled",
}
_OPERATIONS: Final[dict[int, model.Operation]] = {
    pb.APPROVAL_OPERATION_PROPOSE: "propose",
    pb.APPROVAL_OPERATION_EXECUTE: "execute",
}


@dataclass(frozen=True, slots=True)
class Violation:
    field: str
    description: str
    #: REQUIRED, INVALID_NAME, INVALID_ENUM, OUT_OF_RANGE, INCONSISTENT, TOO_MANY, BATCH_SIZE
    reason: str

    @property
    def metric_reason(self) -> str:
        return self.reason.lower()


@dataclass(frozen=True, slots=True)
class Limits:
    #: Longest accepted duration (execution, tool call, approval wait), in seconds.
    max_duration: float = 86_400.0


class _Checker:
    __slots__ = ("limits", "now", "violations")

    def __init__(self, limits: Limits, now: float) -> None:
        self.limits = limits
        self.now = now
        self.violations: list[Violation] = []

    def add(self, field: str, description: str, reason: str) -> None:
        if len(self.violations) < MAX_VIOLATIONS:
            self.violations.append(Violation(field, description, reason))

    def name(self, field: str, value: str, *, required: bool = True) -> None:
        if not value:
            if required:
                self.add(field, "is required: a name matching " + NAME_PATTERN, "REQUIRED")
        elif not _name(value):
            self.add(
                field,
                f"{_show(value)} is not a valid name: it must match {NAME_PATTERN} "
                "(a letter, then at most 63 letters, digits, '_', '.', ':' or '-')",
                "INVALID_NAME",
            )

    def enum(self, field: str, value: int, known: Mapping[int, str], enum: str) -> None:
        if value not in known:
            what = "is required" if value == 0 else f"has the unknown value {value}"
            self.add(
                field,
                f"{what}: one of {', '.join(sorted(_enum_names(enum, known)))}",
                "REQUIRED" if value == 0 else "INVALID_ENUM",
            )

    def duration(self, field: str, message: object, present: bool) -> float:
        if not present:
            self.add(
                field, "is required: the measured duration (google.protobuf.Duration)", "REQUIRED"
            )
            return 0.0
        assert isinstance(message, duration_pb2.Duration)
        seconds, nanos = message.seconds, message.nanos
        if (
            not -999_999_999 <= nanos <= 999_999_999
            or (seconds > 0 > nanos)
            or (seconds < 0 < nanos)
        ):
            self.add(
                field, f"is not a valid Duration (seconds={seconds}, nanos={nanos})", "OUT_OF_RANGE"
            )
            return 0.0
        value = seconds + nanos / 1e9
        if value < 0:
            self.add(field, f"is negative ({value:g}s): a duration is at least 0", "OUT_OF_RANGE")
        elif value > self.limits.max_duration:
            hint = ""
            if value > 1e9:
                hint = (
                    " It looks like an epoch timestamp: send the elapsed time, measured "
                    "with a monotonic clock, not the current time."
                )
            self.add(
                field,
                f"is {value:g}s, more than the maximum of {self.limits.max_duration:g}s.{hint}",
                "OUT_OF_RANGE",
            )
        return value


def _enum_names(enum: str, known: Mapping[int, str]) -> list[str]:
    descriptor = pb.DESCRIPTOR.enum_types_by_name[enum]
    return [descriptor.values_by_number[n].name for n in known]


def _show(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...")


def validate_execution(
    message: pb.Execution, path: str, limits: Limits, now: float
) -> tuple[model.Execution | None, list[Violation]]:
    """Checks one execution; returns the domain value, or None and every violation found.

    Valid executions take a fast path that builds no strings; anything it refuses is checked
    again field by field to say exactly what is wrong. Both apply the same rules (a property
    test holds them to it).
    """
    execution = _accept(message, limits.max_duration, now)
    if execution is not None:
        return execution, []
    violations = _violations(message, path, limits, now)
    if not violations:  # pragma: no cover - the property test keeps the two paths in step
        raise AssertionError(f"fast path refused a valid execution at {path}")
    return None, violations


# --- fast path -----------------------------------------------------------------------------

_known_names: set[str] = set()
_KNOWN_NAMES_MAX = 100_000


def _is_name(value: str) -> bool:
    if value in _known_names:
        return True
    if not _name(value):
        return False
    if len(_known_names) < _KNOWN_NAMES_MAX:
        _known_names.add(value)
    return True


def _seconds(d: duration_pb2.Duration, max_duration: float) -> float:
    """The duration in seconds, or -1.0 when it is invalid, negative or too long."""
    seconds, nanos = d.seconds, d.nanos
    if seconds < 0 or nanos < 0 or nanos > 999_999_999:
        return -1.0
    value = seconds + nanos / 1e9
    return value if value <= max_duration else -1.0


def _accept(m: pb.Execution, max_duration: float, now: float) -> model.Execution | None:
    """The execution if it is valid, else None. Builds nothing but the result."""
    if not _id(m.execution_id) or (m.trace_id and not _id(m.trace_id)):
        return None
    if not _is_name(m.profile):
        return None
    outcome = _OUTCOMES.get(m.outcome)
    error_type = m.error_type
    if outcome is None or (error_type and outcome == "success"):
        return None
    if outcome == "failure" and not _is_name(error_type):
        return None
    if m.HasField("start_time"):
        ts = m.start_time
        if (
            ts.seconds < 0
            or not 0 <= ts.nanos <= 999_999_999
            or (ts.seconds + ts.nanos / 1e9 > now + MAX_CLOCK_SKEW_SECONDS)
        ):
            return None
    if not m.HasField("duration"):
        return None
    duration = _seconds(m.duration, max_duration)
    if duration < 0 or m.steps > MAX_STEPS:
        return None
    budget = None
    if m.HasField("budget"):
        b = m.budget
        spent, limit = b.spent, b.limit
        if not (0 <= spent <= MAX_BUDGET and MIN_BUDGET_LIMIT <= limit <= MAX_BUDGET):
            return None
        budget = model.Budget(spent, limit, b.exceeded)
    approvals = m.approvals
    if len(approvals) > MAX_APPROVALS:
        return None
    kept_approvals = []
    for a in approvals:
        decision = _DECISIONS.get(a.decision)
        operation = _OPERATIONS.get(a.operation)
        if decision is None or operation is None or not a.HasField("wait"):
            return None
        wait = _seconds(a.wait, max_duration)
        if wait < 0:
            return None
        kept_approvals.append(model.Approval(decision, wait, operation))
    calls = m.tool_calls
    if len(calls) > MAX_TOOL_CALLS:
        return None
    kept_calls = []
    for t in calls:
        tool, domain = t.tool, t.domain
        status = _STATUSES.get(t.status)
        if status is None or not _is_name(tool) or not _is_name(domain):
            return None
        if not t.HasField("duration"):
            return None
        call_duration = _seconds(t.duration, max_duration)
        if call_duration < 0:
            return None
        if t.error_type and (status == "success" or not _is_name(t.error_type)):
            return None
        kept_calls.append(model.ToolCall(tool, domain, status, call_duration))
    return model.Execution(
        m.execution_id,
        m.profile,
        outcome,
        error_type,
        duration,
        m.steps,
        budget,
        tuple(kept_approvals),
        tuple(kept_calls),
    )


# --- the detailed check: what is wrong, field by field -------------------------------------


def _violations(message: pb.Execution, path: str, limits: Limits, now: float) -> list[Violation]:
    c = _Checker(limits, now)
    if not message.execution_id:
        c.add(
            f"{path}.execution_id",
            "is required: a unique id of 1 to 128 characters from "
            "[A-Za-z0-9._:-], chosen by the client (a UUID is a good choice)",
            "REQUIRED",
        )
    elif not _id(message.execution_id):
        c.add(
            f"{path}.execution_id",
            f"{_show(message.execution_id)} must match {ID_PATTERN}",
            "INVALID_NAME",
        )
    if message.trace_id and not _id(message.trace_id):
        c.add(
            f"{path}.trace_id", f"{_show(message.trace_id)} must match {ID_PATTERN}", "INVALID_NAME"
        )
    c.name(f"{path}.profile", message.profile)
    c.enum(f"{path}.outcome", message.outcome, _OUTCOMES, "Outcome")
    if message.outcome == pb.OUTCOME_FAILURE:
        c.name(f"{path}.error_type", message.error_type)
    elif message.error_type and message.outcome == pb.OUTCOME_SUCCESS:
        c.add(f"{path}.error_type", "must be empty when outcome is OUTCOME_SUCCESS", "INCONSISTENT")
    if message.HasField("start_time"):
        _check_start_time(c, f"{path}.start_time", message.start_time)
    c.duration(f"{path}.duration", message.duration, message.HasField("duration"))
    if message.steps > MAX_STEPS:
        c.add(
            f"{path}.steps",
            f"is {message.steps}, more than the maximum of {MAX_STEPS}",
            "OUT_OF_RANGE",
        )
    if message.HasField("budget"):
        b = message.budget
        if not 0 <= b.spent <= MAX_BUDGET:
            c.add(
                f"{path}.budget.spent",
                f"is {b.spent}: must be a number from 0 to {MAX_BUDGET:g}",
                "OUT_OF_RANGE",
            )
        if not MIN_BUDGET_LIMIT <= b.limit <= MAX_BUDGET:
            c.add(
                f"{path}.budget.limit",
                f"is {b.limit}: must be a number from {MIN_BUDGET_LIMIT:g} to {MAX_BUDGET:g}",
                "OUT_OF_RANGE",
            )
    if len(message.approvals) > MAX_APPROVALS:
        c.add(
            f"{path}.approvals",
            f"has {len(message.approvals)} items, more than the maximum of {MAX_APPROVALS}",
            "TOO_MANY",
        )
    else:
        for i, a in enumerate(message.approvals):
            p = f"{path}.approvals[{i}]"
            c.enum(f"{p}.decision", a.decision, _DECISIONS, "ApprovalDecision")
            c.enum(f"{p}.operation", a.operation, _OPERATIONS, "ApprovalOperation")
            c.duration(f"{p}.wait", a.wait, a.HasField("wait"))
    if len(message.tool_calls) > MAX_TOOL_CALLS:
        c.add(
            f"{path}.tool_calls",
            f"has {len(message.tool_calls)} items, more than the maximum of {MAX_TOOL_CALLS}",
            "TOO_MANY",
        )
    else:
        for i, t in enumerate(message.tool_calls):
            p = f"{path}.tool_calls[{i}]"
            c.name(f"{p}.tool", t.tool)
            c.name(f"{p}.domain", t.domain)
            c.enum(f"{p}.status", t.status, _STATUSES, "ToolCallStatus")
            c.duration(f"{p}.duration", t.duration, t.HasField("duration"))
            if t.error_type:
                if t.status == pb.TOOL_CALL_STATUS_SUCCESS:
                    c.add(
                        f"{p}.error_type",
                        "must be empty when status is TOOL_CALL_STATUS_SUCCESS",
                        "INCONSISTENT",
                    )
                else:
                    c.name(f"{p}.error_type", t.error_type)
    return c.violations


def _check_start_time(c: _Checker, field: str, ts: timestamp_pb2.Timestamp) -> None:
    if not 0 <= ts.nanos <= 999_999_999 or ts.seconds < 0:
        c.add(
            field,
            f"is not a valid Timestamp (seconds={ts.seconds}, nanos={ts.nanos})",
            "OUT_OF_RANGE",
        )
    elif ts.seconds + ts.nanos / 1e9 > c.now + MAX_CLOCK_SKEW_SECONDS:
        c.add(field, "lies more than 5 minutes in the future of the server's clock", "OUT_OF_RANGE")


def check_name_filter(field: str, value: str) -> list[Violation]:
    """Validates an optional name used as a dashboard filter (`_overflow` allowed)."""
    if not value or value == model.OVERFLOW:
        return []
    c = _Checker(Limits(), 0.0)
    c.name(field, value)
    return c.violations
