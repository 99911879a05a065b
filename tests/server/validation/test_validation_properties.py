"""Property tests: the fast path and the detailed check of validation always agree.

Executions are generated valid, then given zero or more mutations drawn from edge cases, so
that both outcomes are explored (see the `accepted`/`rejected` statistics with
--hypothesis-show-statistics).
"""

from __future__ import annotations

from google.protobuf import duration_pb2, timestamp_pb2
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar_metrics.validation import Limits, _accept, _id, _violations, validate_execution

NOW = 1_800_000_000.0

valid_names = st.sampled_from(["demo", "sales_rep", "Tool.v2", "a" * 64, "ok:1-2", "territory"])
any_names = st.one_of(
    valid_names,
    st.sampled_from(["", "a" * 65, "1x", 'we"ird', "_overflow", "x y", "é"]),
    st.text(max_size=70),
)
valid_durations = st.builds(
    lambda s, n: duration_pb2.Duration(seconds=s, nanos=n),
    st.integers(0, 86_399),
    st.integers(0, 999_999_999),
)
any_durations = st.builds(
    lambda s, n: duration_pb2.Duration(seconds=s, nanos=n),
    st.one_of(
        st.sampled_from([0, 86_400, 86_401, 1_700_000_000, -1]), st.integers(-(10**10), 10**11)
    ),
    st.one_of(
        st.sampled_from([0, -1, 999_999_999, 1_000_000_000]), st.integers(-(2**31), 2**31 - 1)
    ),
)
any_enums = st.integers(-1, 6)
any_floats = st.floats(allow_nan=True, allow_infinity=True)

valid_tool_calls = st.builds(
    lambda tool, domain, status, d, failed: pb.ToolCall(
        tool=tool,
        domain=domain,
        status=status,
        duration=d,
        error_type="timeout" if failed and status != pb.TOOL_CALL_STATUS_SUCCESS else "",
    ),
    valid_names,
    valid_names,
    st.integers(1, 3),
    valid_durations,
    st.booleans(),
)
valid_approvals = st.builds(
    lambda dec, op, w: pb.Approval(decision=dec, operation=op, wait=w),
    st.integers(1, 4),
    st.integers(1, 2),
    valid_durations,
)


def _model_call(
    provider: str,
    model: str,
    op: int,
    status: int,
    d: duration_pb2.Duration,
    ttft: bool,
    tokens: tuple[int, int, int, int],
    cost: float | None,
) -> pb.ModelCall:
    m = pb.ModelCall(
        provider=provider,
        model=model,
        operation=op,
        status=status,
        duration=d,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        error_type="RateLimitError" if status == pb.MODEL_CALL_STATUS_RATE_LIMITED else "",
    )
    if ttft:
        m.time_to_first_token.FromNanoseconds(d.ToNanoseconds() // 2)
    if tokens[2] <= tokens[0]:
        m.cached_input_tokens = tokens[2]
    if tokens[3] <= tokens[1]:
        m.reasoning_tokens = tokens[3]
    if cost is not None:
        m.cost = cost
    return m


valid_model_calls = st.builds(
    _model_call,
    valid_names,
    valid_names,
    st.integers(1, 5),
    st.integers(1, 3),
    valid_durations,
    st.booleans(),
    st.tuples(*[st.integers(0, 100_000_000)] * 4),
    st.one_of(st.none(), st.floats(0, 1_000_000)),
)
valid_executions = st.builds(
    lambda eid, profile, failed, d, steps, budget, appr, calls, models: pb.Execution(
        execution_id=eid,
        profile=profile,
        outcome=pb.OUTCOME_FAILURE if failed else pb.OUTCOME_SUCCESS,
        error_type="ToolError" if failed else "",
        duration=d,
        steps=steps,
        budget=budget,
        approvals=appr,
        tool_calls=calls,
        model_calls=models,
    ),
    st.from_regex(r"\A[A-Za-z0-9._:-]{1,128}\Z"),
    valid_names,
    st.booleans(),
    valid_durations,
    st.integers(0, 100_000),
    st.one_of(
        st.none(),
        st.builds(
            lambda s, lim: pb.Budget(spent=s, limit=lim), st.floats(0, 1e6), st.floats(0.001, 1e6)
        ),
    ),
    st.lists(valid_approvals, max_size=3),
    st.lists(valid_tool_calls, max_size=3),
    st.lists(valid_model_calls, max_size=3),
)


def _mutations(draw: st.DrawFn, m: pb.Execution) -> None:
    target = draw(
        st.sampled_from(
            [
                "execution_id",
                "trace_id",
                "profile",
                "outcome",
                "error_type",
                "start_time",
                "duration",
                "steps",
                "budget",
                "approval",
                "tool_call",
                "model_call",
            ]
        )
    )
    if target in ("execution_id", "trace_id"):
        setattr(
            m,
            target,
            draw(st.one_of(st.sampled_from(["", "x" * 129, "a/b", "ok-1"]), st.text(max_size=130))),
        )
    elif target in ("profile", "error_type"):
        setattr(m, target, draw(any_names))
    elif target == "outcome":
        m.outcome = draw(any_enums)
    elif target == "start_time":
        m.start_time.CopyFrom(
            timestamp_pb2.Timestamp(
                seconds=draw(st.integers(-10, int(NOW) + 1000)),
                nanos=draw(st.sampled_from([0, -1, 5, 999_999_999, 1_000_000_000])),
            )
        )
    elif target == "duration":
        if draw(st.booleans()):
            m.ClearField("duration")
        else:
            m.duration.CopyFrom(draw(any_durations))
    elif target == "steps":
        m.steps = draw(st.integers(0, 200_000))
    elif target == "budget":
        m.budget.CopyFrom(pb.Budget(spent=draw(any_floats), limit=draw(any_floats)))
    elif target == "approval":
        a = m.approvals.add(decision=draw(any_enums), operation=draw(any_enums))
        if draw(st.booleans()):
            a.wait.CopyFrom(draw(any_durations))
    elif target == "model_call":
        mc = m.model_calls.add(
            provider=draw(any_names),
            model=draw(any_names),
            response_model=draw(st.one_of(st.just(""), any_names)),
            operation=draw(any_enums),
            status=draw(any_enums),
            error_type=draw(st.one_of(st.just(""), any_names)),
            input_tokens=draw(st.sampled_from([0, 5, 100_000_000, 100_000_001, 2**64 - 1])),
            output_tokens=draw(st.sampled_from([0, 7, 100_000_000, 100_000_001])),
        )
        if draw(st.booleans()):
            mc.duration.CopyFrom(draw(any_durations))
        if draw(st.booleans()):
            mc.time_to_first_token.CopyFrom(draw(any_durations))
        if draw(st.booleans()):
            mc.cached_input_tokens = draw(st.sampled_from([0, 5, 6, 2**64 - 1]))
        if draw(st.booleans()):
            mc.reasoning_tokens = draw(st.sampled_from([0, 7, 8]))
        if draw(st.booleans()):
            mc.cost = draw(st.one_of(any_floats, st.sampled_from([0.0, 1e6, 1e6 + 1, -0.0])))
    else:
        t = m.tool_calls.add(
            tool=draw(any_names),
            domain=draw(any_names),
            status=draw(any_enums),
            error_type=draw(any_names),
        )
        if draw(st.booleans()):
            t.duration.CopyFrom(draw(any_durations))


@st.composite
def executions(draw: st.DrawFn) -> pb.Execution:
    m = draw(valid_executions)
    for _ in range(draw(st.integers(0, 2))):
        _mutations(draw, m)
    return m


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(executions())
def test_fast_path_and_detailed_check_agree(message: pb.Execution) -> None:
    accepted = (
        _accept(message, message.execution_id, Limits().max_duration, NOW)
        if _id(message.execution_id)
        else None
    )
    event("accepted" if accepted is not None else "rejected")
    violations = _violations(message, "execution", Limits(), NOW)
    assert (accepted is None) == bool(violations), (accepted, violations)
    result, found = validate_execution(message, "execution", Limits(), NOW)
    assert (result is None) == bool(found)
    if result is not None:
        assert result.execution_id == message.execution_id
        assert len(result.tool_calls) == len(message.tool_calls)
        assert len(result.approvals) == len(message.approvals)
        assert len(result.model_calls) == len(message.model_calls)
    for v in found:
        assert v.field.startswith("execution.")
        assert v.reason in {
            "REQUIRED",
            "INVALID_NAME",
            "INVALID_ENUM",
            "OUT_OF_RANGE",
            "INCONSISTENT",
            "TOO_MANY",
        }
