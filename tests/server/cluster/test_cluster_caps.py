"""Label caps applied after the cluster merge: replicas each under a cap can together exceed
it; the cluster then keeps the cap's values with the most executions (calls for tools and
models), ties by name, and folds the rest into `_overflow`, losing no count."""

from __future__ import annotations

from cugar_metrics.aggregator import Aggregator, Caps, build_dashboard
from cugar_metrics.clustermerge import merge_cluster
from cugar_metrics.model import OVERFLOW, Approval, Execution, ModelCall, ToolCall

T0 = 1_000_000.0  # a 10 s boundary
CAPS = Caps(profile=3, domain=2, tool=3, error_type=2, model=2)
BIG = Caps(profile=1000, domain=1000, tool=1000, error_type=1000, model=1000)


def _ex(
    n: int,
    profile: str,
    *,
    error: str = "",
    tools: tuple[tuple[str, str], ...] = (),
    model: tuple[str, str] | None = None,
) -> Execution:
    return Execution(
        execution_id=f"{profile}-{error}-{n}-{tools}-{model}",
        profile=profile,
        outcome="failure" if error else "success",
        error_type=error,
        duration=0.25 * (n + 1),
        steps=n + 1,
        budget=None,
        approvals=(Approval("approved", 0.5 * (n + 1), "execute"),),
        tool_calls=tuple(ToolCall(t, d, "success", 0.125 * (n + 1)) for d, t in tools),
        model_calls=()
        if model is None
        else (
            ModelCall(model[0], model[1], "chat", "success", 0.5 * (n + 1), 0.25, 10, 5, 0, 0, 0.5),
        ),
    )


def _many(k: int, profile: str, **kw: object) -> list[Execution]:
    return [_ex(n, profile, **kw) for n in range(k)]  # type: ignore[arg-type]


# Each replica is under every cap of CAPS; together they exceed each one.
REPLICAS: list[list[Execution]] = [
    _many(5, "a", tools=(("dA", "t1"),), model=("p", "m1"))
    + _many(1, "b", error="x", tools=(("dA", "t2"),))
    + _many(2, "a", error="x", tools=(("dA", "t1"),), model=("p", "m1")),
    _many(3, "c", error="y", tools=(("dB", "t1"),), model=("p", "m2"))
    + _many(3, "d", error="y", model=("p", "m2"))
    + _many(1, "c", model=("p", "m1")),
    _many(3, "e", error="z", tools=(("dC", "t9"),), model=("q", "m3")),
]


def _folded(e: Execution) -> Execution:
    """`e` as the cluster must show it under CAPS: profiles a (7), c (4), d (3) kept before
    e (3, d wins the tie by name) and b (1); error types x (3), y (6) kept, z (3) folded;
    domains dA (8 calls), dB (3) kept, dC (3, a tie lost by name) folded; then the pairs
    (dA, t1) 7, (dB, t1) 3, (_overflow, t9) 3 kept and (dA, t2) 1 folded; models (p, m1) 8,
    (p, m2) 6 kept, (q, m3) 3 folded."""
    profile = e.profile if e.profile in ("a", "c", "d") else OVERFLOW
    error = e.error_type if e.error_type in ("", "x", "y") else OVERFLOW
    tools = []
    for t in e.tool_calls:
        domain = t.domain if t.domain in ("dA", "dB") else OVERFLOW
        tool = t.tool if (domain, t.tool) != ("dA", "t2") else OVERFLOW
        tools.append(t._replace(domain=domain, tool=tool))
    models = [
        m if (m.provider, m.model) != ("q", "m3") else m._replace(provider=OVERFLOW, model=OVERFLOW)
        for m in e.model_calls
    ]
    return e._replace(
        profile=profile, error_type=error, tool_calls=tuple(tools), model_calls=tuple(models)
    )


def _replicas(caps: Caps) -> list[Aggregator]:
    out = []
    for executions in REPLICAS:
        agg = Aggregator(start_time=T0, caps=caps)
        assert agg.record(executions, T0 + 1) == ["accepted"] * len(executions)
        out.append(agg)
    return out


def test_caps_apply_after_the_merge_with_overflow_holding_the_rest() -> None:
    replicas = _replicas(CAPS)
    # Nothing was folded on any replica: each is under every cap.
    assert all(not any(a.snapshot(T0 + 2).overflow.values()) for a in replicas)
    reference = Aggregator(start_time=T0, caps=BIG)
    everything = [_folded(e) for executions in REPLICAS for e in executions]
    reference.record(everything, T0 + 1)
    for seconds in (None, 60.0):
        merged = merge_cluster([a.window(T0 + 5, seconds) for a in replicas], CAPS)
        want = reference.window(T0 + 5, seconds)
        got_d, want_d = build_dashboard(merged), build_dashboard(want)
        assert [p.profile for p in got_d.profiles] == [OVERFLOW, "a", "c", "d"]
        assert [(p.profile, p.total, p.failed) for p in got_d.profiles] == [
            (OVERFLOW, 4, 4),
            ("a", 7, 2),
            ("c", 4, 3),
            ("d", 3, 3),
        ]
        assert got_d.error_types == [("y", 6), (OVERFLOW, 3), ("x", 3)]
        assert [(r.domain, r.calls) for r in got_d.domains] == [
            (OVERFLOW, 3),
            ("dA", 8),
            ("dB", 3),
        ]
        assert [(r.domain, r.tool, r.calls) for r in got_d.tools] == [
            (OVERFLOW, "t9", 3),
            ("dA", OVERFLOW, 1),
            ("dA", "t1", 7),
            ("dB", "t1", 3),
        ]
        assert [(m.provider, m.model, m.calls) for m in got_d.models] == [
            (OVERFLOW, OVERFLOW, 3),
            ("p", "m1", 8),
            ("p", "m2", 6),
        ]
        assert got_d.total == 18 == sum(len(r) for r in REPLICAS)
        # Everything else (quantiles of the folded rows included) is what one replica that
        # received every execution, folded by the same rule, reports.
        assert got_d == want_d
        for name in ("executions", "tool_calls", "model_calls", "model_tokens"):
            assert getattr(merged.current, name) == {
                k: v for k, v in getattr(want.current, name).items()
            }, name
        assert merged.current.label_values == {
            "profile": 3,
            "domain": 2,
            "tool": 3,
            "error_type": 2,
            "model": 2,
        }
        # The filter by a folded profile finds it under _overflow only.
        assert build_dashboard(merged, profile="e").total == 0
        assert build_dashboard(merged, profile=OVERFLOW) == build_dashboard(want, OVERFLOW)


def test_under_the_caps_the_merge_folds_nothing() -> None:
    replicas = _replicas(BIG)
    windows = [a.window(T0 + 5, None) for a in replicas]
    merged = merge_cluster(windows, BIG)
    d = build_dashboard(merged)
    assert [p.profile for p in d.profiles] == ["a", "b", "c", "d", "e"]
    assert [(r.domain, r.tool) for r in d.tools] == [
        ("dA", "t1"),
        ("dA", "t2"),
        ("dB", "t1"),
        ("dC", "t9"),
    ]
    assert not any(merged.current.overflow.values())
    reference = Aggregator(start_time=T0, caps=BIG)
    reference.record([e for executions in REPLICAS for e in executions], T0 + 1)
    assert d == build_dashboard(reference.window(T0 + 5, None))


def test_the_fold_is_the_same_whatever_the_order_of_the_replicas() -> None:
    windows = [a.window(T0 + 5, None) for a in _replicas(CAPS)]
    one = build_dashboard(merge_cluster(windows, CAPS))
    other = build_dashboard(merge_cluster(windows[::-1], CAPS))
    assert one == other
    assert [r.profile for r in one.profiles] == [OVERFLOW, "a", "c", "d"]
