"""The hand-written exposition is byte for byte what prometheus_client writes for the same
snapshot: a busy one with every family, odd label values (escaping), and an idle one."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from cugar_metrics.aggregator import Aggregator
from cugar_metrics.exposition import AggregatorCollector, families, render
from cugar_metrics.model import Approval, Budget, ModelCall, ToolCall
from tests.conftest import execution

T0 = 1_800_000_000.0


def library_text(agg: Aggregator) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AggregatorCollector(agg.snapshot, lambda: T0 + 60))
    return generate_latest(registry).decode()


def busy(seed: int, names: list[str]) -> Aggregator:
    rng = random.Random(seed)
    agg = Aggregator(start_time=T0)
    batch = []
    for i in range(300):
        failed = rng.random() < 0.2
        batch.append(
            execution(
                f"r-{seed}-{i}",
                profile=rng.choice(names),
                outcome="failure" if failed else "success",
                error_type=rng.choice(["timeout", "ToolError"]) if failed else "",
                duration=rng.lognormvariate(0, 2),
                steps=rng.randint(0, 50),
                budget=Budget(rng.uniform(0, 20), 10.0, rng.random() < 0.1),
                approvals=(Approval("approved", rng.uniform(0, 5000), "execute"),),
                tool_calls=(
                    ToolCall(rng.choice(names), rng.choice(names), "error", rng.random()),
                    ToolCall("search", "territory", "skipped", 0.0),
                ),
                model_calls=(
                    ModelCall(
                        "openai", rng.choice(names), "chat", "success", 1.5, 0.2, 10, 3, 0, 1, 0.25
                    ),
                ),
            )
        )
    agg.record(batch, T0 + 1)
    agg.reject(["required", "out_of_range"], T0 + 2)
    return agg


def test_a_busy_snapshot_is_written_exactly_as_the_library_writes_it() -> None:
    agg = busy(1, ["demo", "sales_rep", "we\\\\ird", 'quo"te', "new\\nline", "a.b:c-d"])
    text = render(families(agg.snapshot(T0 + 60)))
    assert text == library_text(agg)
    assert text.count("# TYPE ") == len(families(agg.snapshot(T0 + 60)))


def test_an_idle_snapshot_too() -> None:
    agg = Aggregator(start_time=T0)
    assert render(families(agg.snapshot(T0))) == library_text(agg)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=6), st.integers(0, 99))
def test_any_label_values(names: list[str], seed: int) -> None:
    """Whatever a label value holds (validation is bypassed here), both texts agree."""
    agg = busy(seed, names)
    assert render(families(agg.snapshot(T0 + 60))) == library_text(agg)


def test_the_name_filter_keeps_only_the_listed_samples() -> None:
    agg = busy(3, ["demo"])
    fams = families(agg.snapshot(T0 + 60))
    text = render(fams, {"cugar_ingest_executions_total", "cugar_execution_steps_count"})
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert {line.split("{")[0].split(" ")[0] for line in lines} == {
        "cugar_ingest_executions_total",
        "cugar_execution_steps_count",
    }
    assert 'cugar_ingest_executions_total{result="accepted"} 300.0' in lines
    assert render(fams, {"no_such_metric"}) == ""
