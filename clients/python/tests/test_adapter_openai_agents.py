"""The OpenAI Agents SDK trace processor on a real agent, offline: a Model that answers with
fixed outputs and usage (inside a generation span, as the SDK's own models do), real function
tools, executions read back from a real server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from agents import Agent, Runner, function_tool, set_trace_processors
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.testing import assistant_message, function_call
from agents.tracing import generation_span
from agents.usage import Usage

from cugar_metrics_client import BatchRecorder, Client
from cugar_metrics_client.adapters.openai_agents import CugarMetricsProcessor


class FixedModel(Model):
    """Answers from a script: each turn's output items and token usage."""

    def __init__(self, turns: list[tuple[list[Any], int, int, int]]) -> None:
        self.turns = iter(turns)

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        output, inp, out, cached = next(self.turns)
        usage = Usage(
            requests=1,
            input_tokens=inp,
            output_tokens=out,
            total_tokens=inp + out,
        )
        with generation_span(model="gpt-4o") as span:
            span.span_data.usage = {
                "input_tokens": inp,
                "output_tokens": out,
                "input_tokens_details": {"cached_tokens": cached},
                "output_tokens_details": {"reasoning_tokens": 0},
            }
        return ModelResponse(output=output, usage=usage, response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


@function_tool
def search_accounts(region: str) -> str:
    """Find accounts in a region."""
    return f"3 accounts in {region}"


@function_tool
def score_lead(account: str) -> str:
    """Score one account."""
    raise RuntimeError("CRM down")


def turns() -> list[tuple[list[Any], int, int, int]]:
    return [
        ([function_call("search_accounts", {"region": "emea"}, call_id="c1")], 150, 20, 50),
        ([assistant_message("3 accounts")], 220, 35, 0),
    ]


@pytest.fixture
def processors() -> Iterator[list[Any]]:
    installed: list[Any] = []
    yield installed
    set_trace_processors([])


def test_agent_traces_become_executions(server: Any, processors: list[Any]) -> None:
    recorder = BatchRecorder(server.target, flush_interval=0.05)
    processor = CugarMetricsProcessor(
        recorder, "sales_rep", domains={"search_accounts": "territory"}
    )
    set_trace_processors([processor])
    for _ in range(3):
        agent = Agent(name="rep", model=FixedModel(turns()), tools=[search_accounts])
        result = Runner.run_sync(agent, "find emea accounts")
        assert result.final_output == "3 accounts"
    # A tool that fails: the SDK hands the error to the model, which answers anyway.
    failing = [
        ([function_call("score_lead", {"account": "acme"}, call_id="c2")], 100, 10, 0),
        ([assistant_message("not scored")], 130, 15, 0),
    ]
    agent = Agent(name="rep", model=FixedModel(failing), tools=[score_lead])
    assert Runner.run_sync(agent, "score acme").final_output == "not scored"
    recorder.close()
    with Client(server.target) as client:
        d = client.get_dashboard()
    assert (recorder.stats().accepted, processor.failures.count) == (4, 0)
    assert (d.executions.total, d.executions.failed, d.executions.total_steps) == (4, 0, 4)
    assert [(t.domain, t.tool, t.calls, t.errors) for t in d.tools] == [
        ("territory", "search_accounts", 3, 0),
        ("unknown", "score_lead", 1, 1),
    ]
    assert [
        (m.provider, m.model, m.calls, m.input_tokens, m.output_tokens, m.cached_input_tokens)
        for m in d.models
    ] == [("openai", "gpt-4o", 8, 3 * 370 + 230, 3 * 55 + 25, 3 * 50)]


class BrokenRecorder:
    def record(self, execution: Any) -> bool:
        raise RuntimeError("broken")


def test_a_failing_adapter_never_breaks_the_agent(processors: list[Any]) -> None:
    processor = CugarMetricsProcessor(BrokenRecorder(), "sales_rep")  # type: ignore[arg-type]
    set_trace_processors([processor])
    agent = Agent(name="rep", model=FixedModel(turns()), tools=[search_accounts])
    assert Runner.run_sync(agent, "find emea accounts").final_output == "3 accounts"
    assert processor.failures.count == 1
