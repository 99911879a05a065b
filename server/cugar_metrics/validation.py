"""Validation of incoming executions, and their conversion into the domain model.

Every field is checked; every violation is reported with the field's path from the request
root (`execution.tool_calls[2].duration`, `executions[4].profile`), a description that says
what a valid value looks like, and a stable UPPER_SNAKE reason whose lowercase form is the
`reason` label of cugar_ingest_rejections_total.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
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
MAX_MODEL_CALLS: Final = 1000
#: Most tokens one model call may report in each count.
MAX_TOKENS: Final = 100_000_000
#: Highest cost one model call may report, in the deployment's currency.
MAX_COST: Final = 1_000_000.0
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
_MODEL_OPERATIONS: Final[dict[int, model.ModelOperation]] = {
    pb.MODEL_OPERATION_CHAT: "chat",
    pb.MODEL_OPERATION_TEXT_COMPLETION: "text_completion",
    pb.MODEL_OPERATION_EMBEDDINGS: "embeddings",
    pb.MODEL_OPERATION_GENERATE_CONTENT: "generate_content",
    pb.MODEL_OPERATION_OTHER: "other",
}
_MODEL_STATUSES: Final[dict[int, model.ModelStatus]] = {
    pb.MODEL_CALL_STATUS_SUCCESS: "success",
    pb.MODEL_CALL_STATUS_ERROR: "error",
    pb.MODEL_CALL_STATUS_RATE_LIMITED: "rate_limited",
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
    execution_id = message.execution_id
    execution = (
        _accept(message, execution_id, limits.max_duration, now) if _id(execution_id) else None
    )
    if execution is not None:
        return execution, []
    return None, _explain(message, path, limits, now)


def validate_executions(
    messages: Sequence[pb.Execution], path: str, limits: Limits, now: float, *, first: int = 0
) -> tuple[list[model.Execution | None], dict[int, list[Violation]]]:
    """Checks a batch, or the part of one starting at index `first`: the domain value of each
    item (None when refused), and the violations of each refused item by its index in the
    whole batch. Paths are `{path}[{index}]`.

    Equivalent to `validate_execution` on every item, in one pass: the ids of the whole batch
    are checked with one regular-expression match, and each valid item is read once.
    """
    ids = [m.execution_id for m in messages]
    joined = ID_SEPARATOR.join(ids) + ID_SEPARATOR
    # One separator per id: an id holding the separator itself must not pass as two ids.
    ids_ok = joined.count(ID_SEPARATOR) == len(ids) and _ids(joined) is not None
    max_duration = limits.max_duration
    accepted: list[model.Execution | None] = []
    refused: dict[int, list[Violation]] = {}
    for i, m in enumerate(messages):
        execution_id = ids[i]
        if ids_ok or _id(execution_id):
            execution = _accept(m, execution_id, max_duration, now)
        else:
            execution = None
        if execution is None:
            refused[first + i] = _explain(m, f"{path}[{first + i}]", limits, now)
        accepted.append(execution)
    return accepted, refused


def _explain(message: pb.Execution, path: str, limits: Limits, now: float) -> list[Violation]:
    violations = _violations(message, path, limits, now)
    if not violations:  # pragma: no cover - the property test keeps the two paths in step
        raise AssertionError(f"fast path refused a valid execution at {path}")
    return violations


# --- fast path -----------------------------------------------------------------------------

#: Joins the ids of a batch for one match; it cannot occur in a valid id.
ID_SEPARATOR: Final = "\n"
_ids = re.compile(r"(?:[A-Za-z0-9._:-]{1,128}\n)*").fullmatch

# Built from a tuple of the fields in order: skips the named tuples' keyword handling.
_execution = model.Execution._make
_tool_call = model.ToolCall._make
_approval = model.Approval._make
_budget = model.Budget._make
_model_call = model.ModelCall._make

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


def _accept(
    m: pb.Execution, execution_id: str, max_duration: float, now: float
) -> model.Execution | None:
    """The execution if it is valid, else None. Builds nothing but the result. The caller has
    checked `execution_id` (one match for a whole batch).

    The checks of each Duration are written out where they apply rather than called: this
    runs for every item of every batch, where a Python call per duration costs about as much
    as the checks themselves (bench/ingest_stages.py measures the stage). `_violations` states
    the same rules once each, and a property test holds the two together.

    Reads each field once. A sub-message that must be present (a duration) is asked for its
    presence only when its value is zero, since a non-zero value implies it was set; the
    optional start time is valid when unset, as its zero default is.
    """
    trace_id = m.trace_id
    if trace_id and not _id(trace_id):
        return None
    known = _known_names
    profile = m.profile
    if profile not in known and not _is_name(profile):
        return None
    outcome = _OUTCOMES.get(m.outcome)
    error_type = m.error_type
    if outcome is None:
        return None
    if error_type:
        if outcome == "success" or (error_type not in known and not _is_name(error_type)):
            return None
    elif outcome == "failure":
        return None
    ts = m.start_time
    ts_seconds, ts_nanos = ts.seconds, ts.nanos
    if (ts_seconds or ts_nanos) and (
        ts_seconds < 0
        or not 0 <= ts_nanos <= 999_999_999
        or ts_seconds + ts_nanos / 1e9 > now + MAX_CLOCK_SKEW_SECONDS
    ):
        return None
    d = m.duration
    seconds, nanos = d.seconds, d.nanos
    if seconds < 0 or nanos < 0 or nanos > 999_999_999:
        return None
    if not (seconds or nanos) and not m.HasField("duration"):
        return None
    duration = seconds + nanos / 1e9
    if duration > max_duration:
        return None
    steps = m.steps
    if steps > MAX_STEPS:
        return None
    budget = None
    b = m.budget
    spent, limit = b.spent, b.limit
    if limit or m.HasField("budget"):
        if not (0 <= spent <= MAX_BUDGET and MIN_BUDGET_LIMIT <= limit <= MAX_BUDGET):
            return None
        budget = _budget((spent, limit, b.exceeded))
    kept_approvals: tuple[model.Approval, ...] = ()
    approvals = m.approvals
    if approvals:
        if len(approvals) > MAX_APPROVALS:
            return None
        found_approvals = []
        for a in approvals:
            decision = _DECISIONS.get(a.decision)
            operation = _OPERATIONS.get(a.operation)
            if decision is None or operation is None:
                return None
            w = a.wait
            seconds, nanos = w.seconds, w.nanos
            if seconds < 0 or nanos < 0 or nanos > 999_999_999:
                return None
            if not (seconds or nanos) and not a.HasField("wait"):
                return None
            wait = seconds + nanos / 1e9
            if wait > max_duration:
                return None
            found_approvals.append(_approval((decision, wait, operation)))
        kept_approvals = tuple(found_approvals)
    kept_calls: tuple[model.ToolCall, ...] = ()
    calls = m.tool_calls
    if calls:
        if len(calls) > MAX_TOOL_CALLS:
            return None
        found_calls = []
        for t in calls:
            status = _STATUSES.get(t.status)
            tool, domain = t.tool, t.domain
            if status is None:
                return None
            if tool not in known and not _is_name(tool):
                return None
            if domain not in known and not _is_name(domain):
                return None
            d = t.duration
            seconds, nanos = d.seconds, d.nanos
            if seconds < 0 or nanos < 0 or nanos > 999_999_999:
                return None
            if not (seconds or nanos) and not t.HasField("duration"):
                return None
            call_duration = seconds + nanos / 1e9
            if call_duration > max_duration:
                return None
            call_error = t.error_type
            if call_error and (
                status == "success" or (call_error not in known and not _is_name(call_error))
            ):
                return None
            found_calls.append(_tool_call((tool, domain, status, call_duration)))
        kept_calls = tuple(found_calls)
    kept_models: tuple[model.ModelCall, ...] = ()
    models = m.model_calls
    if models:
        if len(models) > MAX_MODEL_CALLS:
            return None
        found_models = []
        for c in models:
            model_operation = _MODEL_OPERATIONS.get(c.operation)
            call_status = _MODEL_STATUSES.get(c.status)
            provider, model_name = c.provider, c.model
            if model_operation is None or call_status is None:
                return None
            if provider not in known and not _is_name(provider):
                return None
            if model_name not in known and not _is_name(model_name):
                return None
            response_model = c.response_model
            if response_model and response_model not in known and not _is_name(response_model):
                return None
            call_error = c.error_type
            if call_error and (
                call_status == "success" or (call_error not in known and not _is_name(call_error))
            ):
                return None
            d = c.duration
            seconds, nanos = d.seconds, d.nanos
            if seconds < 0 or nanos < 0 or nanos > 999_999_999:
                return None
            if not (seconds or nanos) and not c.HasField("duration"):
                return None
            call_duration = seconds + nanos / 1e9
            if call_duration > max_duration:
                return None
            ttft: float | None = None
            if c.HasField("time_to_first_token"):
                f = c.time_to_first_token
                seconds, nanos = f.seconds, f.nanos
                if seconds < 0 or nanos < 0 or nanos > 999_999_999:
                    return None
                ttft = seconds + nanos / 1e9
                if ttft > call_duration:
                    return None
            input_tokens, output_tokens = c.input_tokens, c.output_tokens
            cached, reasoning = c.cached_input_tokens, c.reasoning_tokens
            if (
                input_tokens > MAX_TOKENS
                or output_tokens > MAX_TOKENS
                or cached > input_tokens
                or reasoning > output_tokens
            ):
                return None
            cost: float | None = None
            if c.HasField("cost"):
                cost = c.cost
                if not 0 <= cost <= MAX_COST:  # NaN fails both comparisons
                    return None
            found_models.append(
                _model_call(
                    (
                        provider,
                        model_name,
                        model_operation,
                        call_status,
                        call_duration,
                        ttft,
                        input_tokens,
                        output_tokens,
                        cached,
                        reasoning,
                        cost,
                    )
                )
            )
        kept_models = tuple(found_models)
    return _execution(
        (
            execution_id,
            profile,
            outcome,
            error_type,
            duration,
            steps,
            budget,
            kept_approvals,
            kept_calls,
            kept_models,
        )
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
    if len(message.model_calls) > MAX_MODEL_CALLS:
        c.add(
            f"{path}.model_calls",
            f"has {len(message.model_calls)} items, more than the maximum of {MAX_MODEL_CALLS}",
            "TOO_MANY",
        )
    else:
        for i, mc in enumerate(message.model_calls):
            _check_model_call(c, f"{path}.model_calls[{i}]", mc)
    return c.violations


def _check_model_call(c: _Checker, p: str, mc: pb.ModelCall) -> None:
    c.name(f"{p}.provider", mc.provider)
    c.name(f"{p}.model", mc.model)
    c.name(f"{p}.response_model", mc.response_model, required=False)
    c.enum(f"{p}.operation", mc.operation, _MODEL_OPERATIONS, "ModelOperation")
    c.enum(f"{p}.status", mc.status, _MODEL_STATUSES, "ModelCallStatus")
    if mc.error_type:
        if mc.status == pb.MODEL_CALL_STATUS_SUCCESS:
            c.add(
                f"{p}.error_type",
                "must be empty when status is MODEL_CALL_STATUS_SUCCESS",
                "INCONSISTENT",
            )
        else:
            c.name(f"{p}.error_type", mc.error_type)
    duration = c.duration(f"{p}.duration", mc.duration, mc.HasField("duration"))
    if mc.HasField("time_to_first_token"):
        ttft = c.duration(f"{p}.time_to_first_token", mc.time_to_first_token, True)
        if ttft >= 0 and 0 <= duration < ttft and mc.HasField("duration"):
            c.add(
                f"{p}.time_to_first_token",
                f"is {ttft:g}s, longer than the call's duration of {duration:g}s",
                "INCONSISTENT",
            )
    for field, value in (("input_tokens", mc.input_tokens), ("output_tokens", mc.output_tokens)):
        if value > MAX_TOKENS:
            c.add(
                f"{p}.{field}", f"is {value}, more than the maximum of {MAX_TOKENS}", "OUT_OF_RANGE"
            )
    if mc.cached_input_tokens > mc.input_tokens:
        c.add(
            f"{p}.cached_input_tokens",
            f"is {mc.cached_input_tokens}, more than input_tokens ({mc.input_tokens}): cached "
            "tokens are part of the input tokens",
            "INCONSISTENT",
        )
    if mc.reasoning_tokens > mc.output_tokens:
        c.add(
            f"{p}.reasoning_tokens",
            f"is {mc.reasoning_tokens}, more than output_tokens ({mc.output_tokens}): reasoning "
            "tokens are part of the output tokens",
            "INCONSISTENT",
        )
    if mc.HasField("cost") and not 0 <= mc.cost <= MAX_COST:
        c.add(
            f"{p}.cost",
            f"is {mc.cost}: must be a finite number from 0 to {MAX_COST:g}",
            "OUT_OF_RANGE",
        )


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


def validate_model_call(
    message: pb.ModelCall, path: str, limits: Limits, now: float
) -> tuple[model.ModelCall | None, list[Violation]]:
    """Checks a model call that belongs to no execution (an OpenTelemetry model span with no
    agent above it), by the rules of `Execution.model_calls`; paths start at `path`."""
    carrier = pb.Execution(execution_id="m", profile="m", outcome=pb.OUTCOME_SUCCESS)
    carrier.duration.SetInParent()
    carrier.model_calls.append(message)
    execution, violations = validate_execution(carrier, "e", limits, now)
    if execution is not None:
        return execution.model_calls[0], []
    prefix = "e.model_calls[0]"
    return None, [
        Violation(path + v.field.removeprefix(prefix), v.description, v.reason) for v in violations
    ]
