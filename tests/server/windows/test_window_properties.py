"""Windows against a brute-force recount: for any sequence of accepted executions, ticks and
restarts, a window's counts are the raw executions recorded since its start, and its
quantiles are within 1 % of the exact ones (on values above the keys a slot may collapse)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cugar_metrics.aggregator import Aggregator, build_dashboard
from cugar_metrics.aggregator.persist import decode, encode
from cugar_metrics.aggregator.sketch import _MAPPING, RELATIVE_ACCURACY, SLOT_BINS
from cugar_metrics.model import Approval, Execution, ToolCall

T0 = 1_000_000.0  # a 10 s boundary
WINDOWS = (10, 60, 300, 310, 600, 900, 1800, 3599, 3600, None)
QS = (0.0, 0.25, 0.5, 0.95, 0.99, 1.0)

# Values from zero to 10^4 s: some windows spread wider than one slot keeps (4.7e6), so
# collapsed keys are exercised; the cumulative store never collapses at this spread.
values = st.one_of(
    st.just(0.0),
    st.floats(1e-3, 10.0),
    st.floats(1e-9, 1e4),
    st.sampled_from([1e-6, 0.5, 1.0, 3600.0]),
)
tool_calls = st.lists(
    st.builds(
        ToolCall,
        st.sampled_from(["t1", "t2"]),
        st.sampled_from(["d1", "d2"]),
        st.sampled_from(["success", "error", "skipped"]),
        values,
    ),
    max_size=2,
).map(tuple)
approvals = st.lists(
    st.builds(
        Approval,
        st.sampled_from(["approved", "denied", "timeout", "cancelled"]),
        values,
        st.just("execute"),
    ),
    max_size=1,
).map(tuple)


@st.composite
def executions(draw: st.DrawFn) -> Execution:
    failed = draw(st.booleans())
    return Execution(
        execution_id=draw(st.sampled_from(["x", "y"])),  # replaced by a unique id or a retry
        profile=draw(st.sampled_from(["p1", "p2"])),
        outcome="failure" if failed else "success",
        error_type=draw(st.sampled_from(["e1", "e2"])) if failed else "",
        duration=draw(values),
        steps=draw(st.integers(0, 20)),
        budget=None,
        approvals=draw(approvals),
        tool_calls=draw(tool_calls),
    )


# Time steps: within a tick, onto and across boundaries, and far enough for 1-minute and
# 5-minute slots.
dts = st.one_of(
    st.sampled_from([0.0, 0.5, 3.0, 9.99, 10.0, 25.0, 61.0, 299.0, 610.0, 1500.0]),
    st.floats(0.0, 400.0),
)
step = st.one_of(
    st.tuples(
        st.just("record"),
        dts,
        st.lists(executions(), min_size=1, max_size=4),
        st.booleans(),  # also retry the previous id (a duplicate: not counted)
        st.integers(10, 3600),  # one more window to check
    ),
    st.tuples(
        st.sampled_from(["restart", "query"]),
        dts,
        st.just([]),
        st.just(False),
        st.integers(10, 3600),
    ),
)


@dataclass
class Raw:
    time: float
    execution: Execution
    #: Restarts before it was recorded.
    epoch: int


def exact(sorted_values: list[float], q: float) -> float:
    """DDSketch's rank rule: the value at rank floor(q * (n - 1)), from 0."""
    return sorted_values[math.floor(q * (len(sorted_values) - 1))]


def check_quantiles(observed: list[float], estimates: list[float | None]) -> None:
    if not observed:
        assert estimates == [None] * len(estimates)
        return
    ordered = sorted(observed)
    positive = [v for v in ordered if v > 0]
    # A slot keeps the SLOT_BINS highest keys it saw; keys below the highest of the window
    # minus SLOT_BINS - 1 may have been folded into a higher key in some slot.
    floor_key = _MAPPING.key(positive[-1]) - (SLOT_BINS - 1) if positive else 0
    if positive and _MAPPING.key(positive[0]) <= floor_key:
        event("a window with values below the keys a slot keeps")
    for q, est in zip(QS, estimates, strict=True):
        true = exact(ordered, q)
        assert est is not None
        if true == 0.0:
            # A zero is counted apart (exact), unless collapsed values were moved above it:
            # then never below it.
            assert est >= 0.0
            continue
        if _MAPPING.key(true) > floor_key:
            assert abs(est - true) <= RELATIVE_ACCURACY * true * (1 + 1e-9), (q, true, est)
        else:
            # Among collapsed keys: over-estimated, never under.
            assert est >= true * (1 - RELATIVE_ACCURACY), (q, true, est)


def check_window(
    agg: Aggregator, raw: list[Raw], epoch: int, now: float, seconds: float | None
) -> None:
    state = agg.window(now, seconds)
    if agg._fives and seconds is not None and seconds > 900:
        event("a window over 5-minute slots")
    if agg.restored_at is not None and state.start == agg.restored_at:
        event("a window starting at a restart")
    # Window slots are not saved: a window reaching back to a restart starts there, and
    # holds what was recorded after it (even at the same instant). A window reaching back to
    # the start is everything since start.
    restarted = agg.restored_at
    since_start = state.start <= agg.start_time
    assert since_start or seconds is not None
    inside = [
        r.execution
        for r in raw
        if since_start
        or (
            r.time >= state.start
            and (restarted is None or state.start > restarted or r.epoch == epoch)
        )
    ]
    w = state.current
    # Counts: exact.
    want_exec: dict[tuple[str, str, str], int] = {}
    want_calls: dict[tuple[str, str, str], int] = {}
    want_approvals: dict[tuple[str, str], int] = {}
    durations: list[float] = []
    tool_durations: list[float] = []
    waits: list[float] = []
    for e in inside:
        key = (e.profile, e.outcome, e.error_type)
        want_exec[key] = want_exec.get(key, 0) + 1
        durations.append(e.duration)
        for t in e.tool_calls:
            tkey = (t.domain, t.tool, t.status)
            want_calls[tkey] = want_calls.get(tkey, 0) + 1
            if t.status != "skipped":
                tool_durations.append(t.duration)
        for a in e.approvals:
            akey = (e.profile, a.decision)
            want_approvals[akey] = want_approvals.get(akey, 0) + 1
            waits.append(a.wait)
    assert {k: v for k, v in w.executions.items() if v} == want_exec, (seconds, state.start)
    assert {k: v for k, v in w.tool_calls.items() if v} == want_calls
    assert {k: d.count for k, d in w.approvals.items() if d.count} == want_approvals
    assert sum(d.count for d in w.durations.values()) == len(durations)
    assert sum(d.count for d in w.tool_durations.values()) == len(tool_durations)
    assert w.ingest.get("accepted", 0) == len(inside)
    d = build_dashboard(state)
    assert d.total == len(inside)
    assert sum(r.count for r in d.approvals) == len(waits)
    # Quantiles: within 1 % of exact above the collapsed keys.
    from cugar_metrics.aggregator.sketch import merged_quantiles

    check_quantiles(durations, merged_quantiles(w.durations.values(), QS))
    check_quantiles(tool_durations, merged_quantiles(w.tool_durations.values(), QS))
    check_quantiles(waits, merged_quantiles(w.approvals.values(), QS))
    if durations:
        assert d.latency_p95 == merged_quantiles(w.durations.values(), [0.95])[0]


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(step, min_size=1, max_size=25))
def test_windows_equal_a_recount_of_the_raw_executions(steps: list[tuple]) -> None:  # type: ignore[type-arg]
    agg = Aggregator(start_time=T0)
    raw: list[Raw] = []
    now = T0
    n = epoch = 0
    last_id = ""
    for kind, dt, batch, retry, extra in steps:
        now += dt
        if kind == "restart":
            data = encode(agg.export_state(now))
            agg = Aggregator(start_time=now)
            agg.restore(decode(data), now)
            epoch += 1
        elif kind == "record":
            sent = []
            for e in batch:
                n += 1
                sent.append(e._replace(execution_id=f"id-{n}"))
            if retry and last_id:
                sent.append(batch[0]._replace(execution_id=last_id))
            results = agg.record(sent, now)
            for e, result in zip(sent, results, strict=True):
                if result == "accepted":
                    raw.append(Raw(now, e, epoch))
                else:
                    assert e.execution_id == last_id
            last_id = sent[-1].execution_id
        for seconds in (*WINDOWS, extra):
            check_window(agg, raw, epoch, now, seconds)
    assert agg.slot_count() <= 30 + 1 + 15 + 13
