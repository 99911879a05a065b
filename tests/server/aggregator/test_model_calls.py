"""Model calls: exact calls, tokens and cost per model, quantiles within 1 %, the model cap,
calls with no execution, windows, the state file, /metrics and GetDashboard."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from cugar_metrics.aggregator import Aggregator, Caps, build_dashboard
from cugar_metrics.aggregator.persist import decode, encode
from cugar_metrics.exposition import AggregatorCollector
from cugar_metrics.model import ModelCall
from tests.conftest import execution

T0 = 1_800_000_000.0


def call(
    model: str = "gpt-4o",
    status: str = "success",
    duration: float = 1.0,
    tokens: tuple[int, int, int, int] = (100, 20, 0, 0),
    cost: float | None = 0.5,
    ttft: float | None = 0.25,
    provider: str = "openai",
    operation: str = "chat",
) -> ModelCall:
    return ModelCall(provider, model, operation, status, duration, ttft, *tokens, cost)  # type: ignore[arg-type]


def scenario() -> Aggregator:
    agg = Aggregator(start_time=T0)
    agg.record(
        [
            execution("m-1", model_calls=(call(), call(tokens=(300, 40, 100, 10), cost=1.25))),
            execution("m-2", model_calls=(call(status="error", cost=None, ttft=None),)),
            execution(
                "m-3", model_calls=(call("claude", provider="anthropic", tokens=(7, 3, 0, 0)),)
            ),
            execution("m-1", model_calls=(call(),)),  # a duplicate: counted once
        ],
        T0 + 1,
    )
    agg.record_model_calls([("lone-1", call(status="rate_limited", cost=None, ttft=None))], T0 + 2)
    # A re-sent lone call (an exporter's retry) counts once.
    agg.record_model_calls([("lone-1", call(status="rate_limited", cost=None, ttft=None))], T0 + 2)
    return agg


def family(text: str, name: str) -> str:
    return "".join(
        line + "\n"
        for line in text.splitlines()
        if line.startswith((f"# HELP {name} ", f"# TYPE {name} ", f"{name}{{"))
    )


def test_exact_calls_tokens_and_cost_per_model() -> None:
    s = scenario().snapshot(T0 + 3)
    assert s.model_calls == {
        ("openai", "gpt-4o", "chat", "success"): 2,
        ("openai", "gpt-4o", "chat", "error"): 1,
        ("openai", "gpt-4o", "chat", "rate_limited"): 1,
        ("anthropic", "claude", "chat", "success"): 1,
        ("anthropic", "claude", "chat", "error"): 0,
        ("anthropic", "claude", "chat", "rate_limited"): 0,
    }
    assert s.model_tokens == {
        ("openai", "gpt-4o", "input"): 100 + 300 + 100 + 100,
        ("openai", "gpt-4o", "output"): 20 + 40 + 20 + 20,
        ("openai", "gpt-4o", "cached_input"): 100,
        ("openai", "gpt-4o", "reasoning"): 10,
        ("anthropic", "claude", "input"): 7,
        ("anthropic", "claude", "output"): 3,
        ("anthropic", "claude", "cached_input"): 0,
        ("anthropic", "claude", "reasoning"): 0,
    }
    assert s.model_cost == {("openai", "gpt-4o"): 1.75, ("anthropic", "claude"): 0.5}
    assert s.model_durations[("openai", "gpt-4o")].count == 4
    assert s.model_ttft[("openai", "gpt-4o")].count == 2  # the calls that reported one
    assert s.ingest["accepted"] == 3 and s.ingest["duplicate"] == 1


def test_metrics_text_of_the_model_families() -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AggregatorCollector(scenario().snapshot, lambda: T0 + 3))
    text = generate_latest(registry).decode()
    calls = family(text, "cugar_model_calls_total").splitlines()
    assert calls[:2] == [
        "# HELP cugar_model_calls_total Model calls made by executions, by operation and status.",
        "# TYPE cugar_model_calls_total counter",
    ]
    labels = 'cugar_model_calls_total{{model="{}",operation="chat",provider="{}",status="{}"}} {}'
    assert calls[2:] == [
        labels.format("claude", "anthropic", "error", "0.0"),
        labels.format("claude", "anthropic", "rate_limited", "0.0"),
        labels.format("claude", "anthropic", "success", "1.0"),
        labels.format("gpt-4o", "openai", "error", "1.0"),
        labels.format("gpt-4o", "openai", "rate_limited", "1.0"),
        labels.format("gpt-4o", "openai", "success", "2.0"),
    ]
    assert (
        'cugar_model_tokens_total{model="gpt-4o",provider="openai",type="cached_input"} 100.0'
        in text
    )
    assert 'cugar_model_cost_total{model="gpt-4o",provider="openai"} 1.75' in text
    assert 'cugar_model_call_duration_seconds_count{model="gpt-4o",provider="openai"} 4.0' in text
    assert (
        'cugar_model_time_to_first_token_seconds_count{model="gpt-4o",provider="openai"} 2.0'
        in text
    )
    assert "# TYPE cugar_model_call_duration_seconds histogram" in text


def test_an_idle_server_exports_no_model_series() -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AggregatorCollector(Aggregator(start_time=T0).snapshot, lambda: T0))
    text = generate_latest(registry).decode()
    assert "cugar_model_calls_total{" not in text
    assert 'cugar_label_overflow_total{label="model"} 0.0' in text


def test_models_past_the_cap_fold_into_overflow() -> None:
    agg = Aggregator(start_time=T0, caps=Caps(model=2))
    agg.record_model_calls([(f"c{i}", call(f"m{i}")) for i in range(5)], T0 + 1)
    s = agg.snapshot(T0 + 2)
    assert {k[:2] for k in s.model_calls} == {
        ("openai", "m0"),
        ("openai", "m1"),
        ("_overflow", "_overflow"),
    }
    assert s.model_calls[("_overflow", "_overflow", "chat", "success")] == 3
    assert s.overflow["model"] == 3 and s.label_values["model"] == 2


def test_dashboard_rows_signals_and_the_model_filter() -> None:
    agg = scenario()
    d = build_dashboard(agg.window(T0 + 3, None))
    assert [(r.provider, r.model, r.calls, r.errors, r.rate_limited) for r in d.models] == [
        ("anthropic", "claude", 1, 0, 0),
        ("openai", "gpt-4o", 4, 1, 1),
    ]
    gpt = d.models[1]
    assert (gpt.input_tokens, gpt.output_tokens, gpt.cached_input_tokens, gpt.cost) == (
        600,
        100,
        100,
        1.75,
    )
    assert d.model_error_rate == pytest.approx(1 / 5)
    assert d.tokens_per_execution == pytest.approx((700 + 10) / 3)
    assert d.cost_per_execution == pytest.approx(2.25 / 3)
    only = build_dashboard(agg.window(T0 + 3, None), model="claude")
    assert [r.model for r in only.models] == ["claude"] and only.model_error_rate == 0.0
    idle = build_dashboard(Aggregator(start_time=T0).window(T0 + 3, None))
    assert idle.models == []
    assert (
        idle.model_error_rate,
        idle.tokens_per_execution,
        idle.cost_per_execution,
        idle.tokens_per_second,
    ) == (None, None, None, None)


def test_latency_and_ttft_quantiles_within_one_percent() -> None:
    rng = random.Random(7)
    durations = [rng.lognormvariate(0.5, 0.8) for _ in range(3000)]
    agg = Aggregator(start_time=T0)
    agg.record_model_calls(
        [(f"c{i}", call(duration=x, ttft=x / 4)) for i, x in enumerate(durations)], T0 + 1
    )
    row = build_dashboard(agg.window(T0 + 2, None)).models[0]
    ordered = sorted(durations)

    def exact(q: float) -> float:
        return ordered[round(q * (len(ordered) - 1))]

    assert row.latency_p50 == pytest.approx(exact(0.5), rel=0.01)
    assert row.latency_p95 == pytest.approx(exact(0.95), rel=0.01)
    assert row.ttft_p95 == pytest.approx(exact(0.95) / 4, rel=0.01)


def test_a_window_counts_only_its_model_calls() -> None:
    agg = Aggregator(start_time=T0)
    agg.record_model_calls([("a", call())], T0 + 5)
    agg.record_model_calls([("b", call()), ("c", call(status="error"))], T0 + 125)
    d = build_dashboard(agg.window(T0 + 130, 60))
    assert [(r.calls, r.errors) for r in d.models] == [(2, 1)]


def test_the_state_file_keeps_model_series_and_restores_old_files_without_them() -> None:
    agg = scenario()
    data = encode(agg.export_state(T0 + 3))
    restored = Aggregator(start_time=T0 + 10)
    restored.restore(decode(data), T0 + 10)
    before, after = agg.snapshot(T0 + 3), restored.snapshot(T0 + 10)
    assert after.model_calls == before.model_calls
    assert after.model_tokens == before.model_tokens
    assert after.model_cost == before.model_cost
    assert after.model_durations[("openai", "gpt-4o")].count == 4
    assert after.label_values["model"] == 2
    # A file written before model calls existed restores with none.
    import json
    import struct

    from cugar_metrics.aggregator import persist

    head_len = struct.unpack_from("<IQ", data, len(persist.MAGIC))[1]
    start = len(persist.MAGIC) + 12
    header = json.loads(data[start : start + head_len])
    for key in (
        "model_layout",
        "model_calls",
        "model_tokens",
        "model_cost",
        "model_durations",
        "model_ttft",
    ):
        del header[key]
    del header["label_values"]["model"], header["overflow"]["model"]
    head = json.dumps(header, separators=(",", ":")).encode()
    body = persist.MAGIC + struct.pack("<IQ", persist.FORMAT_VERSION, len(head)) + head
    body += data[start + head_len : -32]
    import hashlib

    old = decode(body + hashlib.sha256(body).digest())
    assert old.snapshot.model_calls == {} and old.label_values["model"] == frozenset()
    assert old.snapshot.executions == before.executions
