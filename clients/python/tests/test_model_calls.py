"""run.model_call(): timed with a monotonic clock, usage and cost back through GetDashboard."""

from __future__ import annotations

import time
from typing import Any

import pytest

from cugar_metrics_client import (
    Client,
    Execution,
    InvalidExecutionError,
    ModelCall,
    ModelStatus,
    RecordResult,
)


class ProviderTimeout(Exception):
    """An error a model client might raise."""


def test_model_calls_tokens_and_cost_come_back_exactly(server: Any) -> None:
    with Client(server.target) as client:
        with client.run("sales_rep") as run:
            with run.model_call("openai", "gpt-4o") as call:
                time.sleep(0.01)
                call.first_token()
                time.sleep(0.01)
                call.usage(1200, 300, cached_input_tokens=200, cost=0.012)
                call.response_model = "gpt-4o-2024-08-06"
            with run.model_call("openai", "gpt-4o") as call:
                call.rate_limited(error_type="RateLimitError")
            with (
                pytest.raises(ProviderTimeout),
                run.model_call("anthropic", "claude-sonnet") as call,
            ):
                call.input_tokens = 50
                raise ProviderTimeout
            with run.model_call("anthropic", "claude-sonnet", "embeddings") as call:
                call.input_tokens, call.reasoning_tokens = 500, None
        everything = client.get_dashboard()
        only_claude = client.get_dashboard(model="claude-sonnet")
    assert run.result is RecordResult.ACCEPTED
    execution = run.execution
    assert execution is not None
    first, limited, failed, embed = execution.model_calls
    assert first.time_to_first_token is not None
    assert 0.01 <= float(first.time_to_first_token) <= float(first.duration)
    assert (limited.status, limited.error_type) == (ModelStatus.RATE_LIMITED, "RateLimitError")
    assert (failed.status, failed.error_type) == (ModelStatus.ERROR, "ProviderTimeout")
    assert failed.time_to_first_token is None and embed.operation == "embeddings"
    rows = {
        (m.provider, m.model): (
            m.calls,
            m.errors,
            m.rate_limited,
            m.input_tokens,
            m.output_tokens,
            m.cached_input_tokens,
            m.reasoning_tokens,
        )
        for m in everything.models
    }
    assert rows == {
        ("openai", "gpt-4o"): (2, 0, 1, 1200, 300, 200, 0),
        ("anthropic", "claude-sonnet"): (2, 1, 0, 550, 0, 0, 0),
    }
    cost = {m.model: m.cost for m in everything.models}
    assert cost["gpt-4o"] == pytest.approx(0.012, abs=1e-12)
    assert cost["claude-sonnet"] == 0
    assert [m.model for m in only_claude.models] == ["claude-sonnet"]


def test_model_call_duration_comes_from_the_monotonic_clock(server: Any, monkeypatch: Any) -> None:
    """A wall clock jump inside the call never becomes its duration."""
    with (
        Client(server.target) as client,
        client.run("sales_rep") as run,
        run.model_call("openai", "gpt-4o") as call,
    ):
        monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0)
        time.sleep(0.05)
        monkeypatch.undo()
        call.usage(10, 5)
    assert run.execution is not None
    (recorded,) = run.execution.model_calls
    assert isinstance(recorded.duration, float)
    # At least the 0.05 s slept; far below what a wall clock reading would give.
    assert 0.05 <= recorded.duration < 3600
    assert run.result is RecordResult.ACCEPTED


def test_invalid_model_call_is_rejected_naming_its_field(server: Any) -> None:
    bad = ModelCall("openai", "gpt-4o", input_tokens=10, cached_input_tokens=11, duration=0.2)
    with Client(server.target) as client:
        with pytest.raises(InvalidExecutionError) as caught:
            client.record(Execution("sales_rep", "success", 1.0, model_calls=[bad]))
        dashboard = client.get_dashboard()
    fields = [v.field for v in caught.value.violations]
    assert fields == ["execution.model_calls[0].cached_input_tokens"]
    assert (dashboard.executions.total, dashboard.ingest.rejected, len(dashboard.models)) == (
        0,
        1,
        0,
    )


def test_unknown_model_status_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="model call status"):
        ModelCall("openai", "gpt-4o", status="throttled").to_proto()
